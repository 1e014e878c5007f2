//! On a TLS connection, the host a request names must be the host the client named in
//! its TLS handshake (SNI). Otherwise the answer is `421 Misdirected Request`
//! (RFC 9110 §15.5.20): a browser that coalesced connections for two hosts sharing a
//! certificate then retries on a connection of its own, and a client cannot use one
//! host's handshake to reach another host. Sits after routing, so that an unknown host
//! gets the same `421` whether or not it agrees with SNI.

use crate::routing::host_name;

/// Whether `host` (a `Host` value or `:authority`, any case, port allowed) names the
/// same host as the handshake's `sni`.
pub(crate) fn agrees(sni: &str, host: &str) -> bool {
    let sni = sni.strip_suffix('.').unwrap_or(sni);
    host_name(host).eq_ignore_ascii_case(sni)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_sni_compare_without_port_case_or_trailing_dot() {
        assert!(agrees("api.example.test", "API.example.test:443"));
        assert!(agrees("api.example.test.", "api.example.test"));
        assert!(!agrees("app.example.test", "api.example.test"));
        assert!(!agrees("api.example.test", "api.example.test.evil"));
    }
}
