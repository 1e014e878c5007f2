//! Fixed test keys for the `jwt` target, generated for fuzzing only (never used
//! anywhere else): the issuer's keys, whose public halves make the key set, and an
//! attacker's keys of the same types, which the key set does not hold. Private keys are
//! DER (RSA: PKCS#1, EC: PKCS#8) in standard base64, as `jsonwebtoken` reads them;
//! public halves are JWK members (base64url).

/// The issuer's RSA key: in the key set as `rsa-1` (pinned to RS256) and as `rsa-any`.
pub const TRUSTED_RSA_DER: &str = "MIIEpAIBAAKCAQEAoXxrOK085enwQJYNnhN8/CqUgpax9FvKidIp+f1gFLilMXS3ckohNS+1pdCHSMlUNWLCqjS6mbgYbXNoiFoBTX1xfqapg+sXrMTL9WwczWjwbKJ3DJxplz01yDlduOgJL0U3WinIDHrTwOkxt4hfMBQjYKKbeEy9OJT6D+/7uS/LlQ32pFMPsoOtGNEJ7DKJ9ytkIVK79xzTpNwZmscoGuCWgB4uaCan8dS/DS8UNOWMUx0wRmV11vE3p9/DZYF0ueLozUWxD9PiuAPvH5ZSEBxUarmuaKr/omB9ss/IOyLh7RibqdkZWErAHlSXkNkkJOmZKaH7ECJDdcGS6OcsdQIDAQABAoIBAAgc5JQd2/PfC2NrRnbdGsfeacSfxoP0wpmm9dXp3VRdLGtuJjM3NzDhWzpf3hQRjUn7UrVTXdaQMaX6CNPk1bDrbvLCc7y9aFyVLHwBePb24TFL/jgjeYiQGi4bd7Js8d0umIfOlo7N8up7rLRARSv4rwhRUwc5r73yehen4lkc0ak0UQtxAm1GFeu9+yjMpvYEw6PHP2pzZ56AhBeBeg3khhcQRRrDlmB5JDCh9FiGRILzBFHfqDiayesPCY6vqkPyklMRuEUjQyIcnOA+13yB9dU6ZCjgvr+ciUwXG5Wk/Kye6/EP0+yN80MilyU9Q7JfQFSRRntFN8ciqNxhjkECgYEA0LjXgYr9Rf2Ok/DpcISCneP8wptj9oBPKXOZ1QvcqSs4rfVv4FkM5iKj1Y9JIIx3h8z5Q+S21uDSW5TRU4fFdpDH98QARN5oA1LYpcb6mV+lK+9OJqBt28ZjJzoh0K2K6D4ybxsIP8aDhJ6Tsg0uiJFO+LPaVgRuOB1sHAC6VFUCgYEAxhCAxPg1ViUJYGP54PRRMwy2ED1IIfldHNh+cOAfhLMygOQRdxIeN4WY0Mi5SOBTMLWbIscmn9/EFPZUj4hsLwTslHYBKyAUfyW+KXCT95Bbm3ae7vpHqmvPPNeVdh1QQ0R8xpY4YN4uCRHmlaz/tnfjqNUikol9xPOcQiYSl6ECgYEArqkfXf4rN7iY6V/+WPPqQaoZR9i07AAvPmbIYinM+5t5kMkEV97tFmACbaG79grVs8RpCtGH14THQ2/jQ10odrFtRP61ouvianWXahJ6foI1O/DDmztA81quepMA3Rl8ViBGIAek/YlnYUE6IxM4z3uZdDE9EiIfAcJNR5msUwkCgYBHiCxJdu8kZonlYxYa9YHh8wRKByfnBT1orpOzxm37qhBiVnwsScHaAYj4VpX8SPAilmQqAkzjzpftji1qDTYtIRUkZR306kgcx4/PPZZjAaLkGco6uu9pEDivW5jiKKIVOUXrHtPLwFJV+j4R7oIH73KsRhWPYNKob+cOSNvMIQKBgQC/jwm5J1Mqp4mBKzqyxgbHHrUHmlYP6QQz9EVLweZS6MR5EeD+KGVG0B1lWHXjfwsyqlBExv/1ynjyAWuyqM+wuplLqGCM+jSwnygGFNMjacUZPbno0d/ss2pZfxEug3H6JU4eQlK1FZvrMi+ABEwFQeRmMM+frcdMSFeOU5NYFA==";
/// Its modulus `n`.
pub const TRUSTED_RSA_N: &str = "oXxrOK085enwQJYNnhN8_CqUgpax9FvKidIp-f1gFLilMXS3ckohNS-1pdCHSMlUNWLCqjS6mbgYbXNoiFoBTX1xfqapg-sXrMTL9WwczWjwbKJ3DJxplz01yDlduOgJL0U3WinIDHrTwOkxt4hfMBQjYKKbeEy9OJT6D-_7uS_LlQ32pFMPsoOtGNEJ7DKJ9ytkIVK79xzTpNwZmscoGuCWgB4uaCan8dS_DS8UNOWMUx0wRmV11vE3p9_DZYF0ueLozUWxD9PiuAPvH5ZSEBxUarmuaKr_omB9ss_IOyLh7RibqdkZWErAHlSXkNkkJOmZKaH7ECJDdcGS6OcsdQ";
/// Its exponent `e`.
pub const TRUSTED_RSA_E: &str = "AQAB";
/// Its public key as PEM: the secret an HMAC forgery would try (the classic
/// "public key as HS256 secret" confusion).
pub const TRUSTED_RSA_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAoXxrOK085enwQJYNnhN8\n/CqUgpax9FvKidIp+f1gFLilMXS3ckohNS+1pdCHSMlUNWLCqjS6mbgYbXNoiFoB\nTX1xfqapg+sXrMTL9WwczWjwbKJ3DJxplz01yDlduOgJL0U3WinIDHrTwOkxt4hf\nMBQjYKKbeEy9OJT6D+/7uS/LlQ32pFMPsoOtGNEJ7DKJ9ytkIVK79xzTpNwZmsco\nGuCWgB4uaCan8dS/DS8UNOWMUx0wRmV11vE3p9/DZYF0ueLozUWxD9PiuAPvH5ZS\nEBxUarmuaKr/omB9ss/IOyLh7RibqdkZWErAHlSXkNkkJOmZKaH7ECJDdcGS6Ocs\ndQIDAQAB\n-----END PUBLIC KEY-----\n";

/// An RSA key the key set does not hold: an attacker's.
pub const ROGUE_RSA_DER: &str = "MIIEogIBAAKCAQEAjTvPgp9eLKtE+Pg3axoXGOVSWTU80xbw/yrFS27BYcQLb6Jt2+UNJHISfy+ZQjTQKHRg7+SaF1IygYnfW+T8Tdc5/IrAVauGuOZvP0hMPVhW003tRQPVQM7yLO6EX/CI3zEa8Q0iXyXDdskMvzb6Ta2JZgB8hMDKQpvb3fd2G7Zm05nndTHpNZwkiMtBpVNoTFg4mLMQcQ4K00nUUhf3OPIr2nNntrOCXehbZ76uCUlRx/A3Gkd9QxCft/P7aTqQ1nKaBUzLWGgRiruY//g1VQoVucFfpUbj5Oy0MKm5+R5Quso/sFyWXaP8pSAwEz50h0x05cjPQHTpEE5rv/Y2uQIDAQABAoIBAA5O2MIRkeV52OgVomyk5SHiKpZrxqyWcoYRP9FZaDk2tpdhx9orAWq3rUDKEk9TISL2DlODT+qMqt31eSW6xCZBJ4haiKttL/33p13Mfd/JnSs1RfQz1BUHmiB77fh3unANDh8NTvX/cgbMzbAp+k/oBKdLJZI/40W9+zdooGQkbwvffoM5ht5RCmQIPDXjafAduiovyDr4XgzeEn0GlBbFXCdaSWzG2fORGCXuLpYemdWKqk7QLUvYcN/OooDD4k7Uq4yTZx7AFDl+5b8n9VVwO4cxCrCHiQMxSQSAYxpBMwH6pZ/qML308C8e3+xwdAv8fP0RJwsWuWtq6huX3bECgYEAwdVsr1MnFpetvFOTKg3KbmaRedxzYS8qb/Xr6dZU2SE8Lx10j7POdCVGjeKyDZFk1LctfYtJ8GM3L2Gd3+hiv+U/Ev2SGYU3a768cjlOx61FjILOCLLVepnbk5eFwEEYy8j4apEd3JOjrJcafpNs27CgD8S2HtqPWd2foe+UeOkCgYEAuoeySqgJ9hJzp60V9YfsigpD1c0TlRr9dkYedcoG9x3PUCKwdGKQvXIYjrj1pUzvyudINVDMFgOgcR0BXBsi+OTw07eS/eTItM/weIpqu9ImXkEmtoFOPXfhAP0uuqWuNGA9EUjMWPR67k21OK955dJW0R4x6+Xf1UzhLD4DLVECgYBU7x0hshEFsE77n69zlPln6N/EAxo3soAo8Rx/qWAiiJKjnoeN1F8Zu5+v2m7kzRner6lqQpeSkxcCVwbjryNeLKi3vI7BSgNf3gMbFgt0KXO5PzPi0eIDR9nUUWfVN3ETEqvvnkj0d2kX3lpIrnbbyQhKAItA98oquZcSUTXAyQKBgGsZULB27UlBbPCAfBQ/F/xmSm6u0iiRl6haOFEPT5KBpi/vyvr4QPzVTu5bmodvtlr9EsOyAYw+RtfLfKVi22CnKvOU+qwWuXq/zeWYLBJtZiRGKjEt6zt14lYMCNGYIX7nJwkOkG4e6Zp8Oaozbr0bWUe2m5lDopI5Eyyw6mgRAoGAZKIYqSEbEp250ltIc6KcPHLrOovNAyyuFKAkir9MCRMbNFIPcs/8MxhZlgJGhDsylrvlLFIMwPrP1QMwKQNCzdlXX+U1SlMIChj0xy/+EAJHm0o6iVfy8Vnn6YCvMBI7vwAZcctX+FewXqafgRJP/H1+WSjMprMXP/RvfOUoTMI=";
/// Its modulus `n`.
pub const ROGUE_RSA_N: &str = "jTvPgp9eLKtE-Pg3axoXGOVSWTU80xbw_yrFS27BYcQLb6Jt2-UNJHISfy-ZQjTQKHRg7-SaF1IygYnfW-T8Tdc5_IrAVauGuOZvP0hMPVhW003tRQPVQM7yLO6EX_CI3zEa8Q0iXyXDdskMvzb6Ta2JZgB8hMDKQpvb3fd2G7Zm05nndTHpNZwkiMtBpVNoTFg4mLMQcQ4K00nUUhf3OPIr2nNntrOCXehbZ76uCUlRx_A3Gkd9QxCft_P7aTqQ1nKaBUzLWGgRiruY__g1VQoVucFfpUbj5Oy0MKm5-R5Quso_sFyWXaP8pSAwEz50h0x05cjPQHTpEE5rv_Y2uQ";
/// Its exponent `e`.
pub const ROGUE_RSA_E: &str = "AQAB";

/// The issuer's P-256 key: in the key set as `ec-256`.
pub const TRUSTED_P256_DER: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgBgpCbBj6aIWRufkZ3bx9KuKpGE2yEama9F+3AkieI/qhRANCAASvZRu1C1ZVrrRCCf/1jaCuLYbWCyX2jB7fWEd/J+HfNOwHuUJ/UfiXfeL+5oP1/JSUZqv49ijcUqoYg7HyI587";
/// Its public point `x`.
pub const TRUSTED_P256_X: &str = "r2UbtQtWVa60Qgn_9Y2gri2G1gsl9owe31hHfyfh3zQ";
/// Its public point `y`.
pub const TRUSTED_P256_Y: &str = "7Ae5Qn9R-Jd94v7mg_X8lJRmq_j2KNxSqhiDsfIjnzs";

/// A P-256 key the key set does not hold: an attacker's.
pub const ROGUE_P256_DER: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg/votCU596QKyqmbDAU2wQ/vccjtXb0iA56rfrusSxFahRANCAAQibMFrCt28bqqZRjmOjglXL3ztBvfBTMN5E16mB42Ji3glVfkdxydKm2mJOCw5nMt7MbV4SF4Le4oBdZFoaA3R";
/// Its public point `x`.
pub const ROGUE_P256_X: &str = "ImzBawrdvG6qmUY5jo4JVy987Qb3wUzDeRNepgeNiYs";
/// Its public point `y`.
pub const ROGUE_P256_Y: &str = "eCVV-R3HJ0qbaYk4LDmcy3sxtXhIXgt7igF1kWhoDdE";

/// The issuer's P-384 key: in the key set as `ec-384`, pinned to ES384.
pub const TRUSTED_P384_DER: &str = "MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDDkYr1lGcUWe7pBK0tqinSEh7MpEpLEBDqkJZv3OSk8ZHwUsizmTKfL4/Gi4FtMlp2hZANiAARcDWK709IMiob9egHt8a3liZtEop22SY913ySp1kvJa9TT89A4NkW3ZcxhwijL0w8h5NPCb8ZtSFBP89bQcfzFD8isZNLaZveWKH6mHeHekS7G3QNjPygQ6aDpuOcCcWs=";
/// Its public point `x`.
pub const TRUSTED_P384_X: &str = "XA1iu9PSDIqG_XoB7fGt5YmbRKKdtkmPdd8kqdZLyWvU0_PQODZFt2XMYcIoy9MP";
/// Its public point `y`.
pub const TRUSTED_P384_Y: &str = "IeTTwm_GbUhQT_PW0HH8xQ_IrGTS2mb3lih-ph3h3pEuxt0DYz8oEOmg6bjnAnFr";
