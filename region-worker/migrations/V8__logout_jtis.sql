-- Universal Logout `jti`s already used, per issuer (SHA-256 of issuer and jti), until
-- the JWT's `exp` plus the clock skew. Redis refuses a replay first; this table keeps
-- refusing it when Redis was flushed or replaced, and is written in the transaction
-- that revokes, so a replay can never revoke twice.
CREATE TABLE logout_jtis (
    digest      bytea PRIMARY KEY,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX logout_jtis_expiry ON logout_jtis (expires_at);
