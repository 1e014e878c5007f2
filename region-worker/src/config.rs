//! The worker's typed configuration: its region from `regions.toml`, with the store
//! URLs resolved from the environment or secret files the map names. Parsing works from
//! a lookup function rather than the process environment, so tests never mutate it.

use std::net::SocketAddr;
use std::time::Duration;

use shared::ids::RegionId;
use shared::regions::{RedirectUriPattern, Region, RegionMap, Secret, SecretSource};
use shared::token::TokenHash;

use crate::clock::Clock;
use crate::crypto::RegionKey;

/// Everything a worker needs to serve one region.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The region this worker serves; requests for other hosts are refused.
    pub region: Region,
    /// The development switch of the region map (plain-HTTP URLs, loopback Okta).
    pub development: bool,
    /// Public listener address (from the map, overridable on the command line).
    pub listen: SocketAddr,
    /// Admin listener address (`/healthz`, `/readyz`, `/metrics`).
    pub admin_listen: SocketAddr,
    /// The region's Postgres URL.
    pub database_url: Secret,
    /// The region's Redis URL.
    pub redis_url: Secret,
    /// Prefix of every Redis key this worker writes: empty in production, unique per
    /// test so that tests share a Redis server without sharing a key space.
    pub redis_prefix: String,
    /// How long one store operation may take before the request answers `503`.
    pub store_timeout: Duration,
    /// Size of the Postgres connection pool.
    pub pg_pool_size: usize,
    /// The per-workspace SCIM rate limit.
    pub scim_rate_limit: RateLimit,
    /// The per-workspace rate limit of Universal Logout requests (after their JWT
    /// verified): generous, as Okta logs users out in bursts when an admin acts on a
    /// group; it stops a runaway client from monopolising the stores.
    pub universal_logout_rate_limit: RateLimit,
    /// The per-client limit of each endpoint that checks a credential or starts a
    /// sign-in before any is presented: every request to `POST /auth`, `/auth/link` and
    /// the OIDC login; only refused requests to the OAuth token endpoint and
    /// introspection (their callers are busy services on few addresses: Okta for many
    /// workspaces, the product's API servers). It slows guessing down.
    pub auth_rate_limit: RateLimit,
    /// How long a request from a client blocked for repeated invalid credentials is
    /// held before its `429` (at most its `Retry-After`): a tarpit, so that a flood of
    /// made-up tokens runs at the pace of its connections, not at the worker's full
    /// speed (`routes::failed_auth`). Zero answers at once.
    pub failed_auth_hold: Duration,
    /// The largest `count` a SCIM list returns (advertised as `filter.maxResults`).
    pub scim_max_results: u32,
    /// The region's SCIM OAuth server, resolved (client secret hashed); `None` when the
    /// map has no `[regions.<id>.scim_oauth]` table, and the OAuth endpoints say so.
    pub scim_oauth: Option<ScimOAuthConfig>,
    /// The service credential of token introspection (`POST /api/tokens/introspect`),
    /// resolved (secret hashed); `None` when the map has no
    /// `[regions.<id>.introspection]` table, and the endpoint says so.
    pub introspection: Option<IntrospectionConfig>,
    /// The clock time-dependent decisions read (OAuth code and refresh-token expiry);
    /// the system clock except in tests, which advance it instead of sleeping.
    pub clock: Clock,
    /// The region key: seals Okta client secrets and the ID tokens kept with sessions
    /// (AES-256-GCM). Required: a worker without one refuses to start rather than store
    /// secrets in the clear or under a key derived from nothing.
    pub encryption_key: RegionKey,
    /// Okta sign-in and browser-session settings.
    pub sign_in: SignInConfig,
    /// How long audit events are kept: the region's `audit_retention_days`
    /// ([`crate::audit_retention`] prunes older ones by [`WorkerConfig::clock`]).
    pub audit_retention: time::Duration,
    /// How often a worker prunes audit events (an hour; tests shorten it). Only one
    /// replica prunes at a time.
    pub audit_prune_every: Duration,
    /// The one DNS server the email-domain verification asks (development and tests: a
    /// server whose records the test controls); `None`, the default, reads the system's
    /// resolver configuration ([`crate::dns`]).
    pub dns_server: Option<SocketAddr>,
}

/// Okta sign-in (OIDC relying party) and browser sessions: lifetimes and limits.
#[derive(Debug, Clone)]
pub struct SignInConfig {
    /// A session unused this long ends (sliding: every request restarts it).
    pub session_idle: time::Duration,
    /// A session ends this long after sign-in, however busy.
    pub session_absolute: time::Duration,
    /// How long a sign-in may take at Okta (the life of `state`, `nonce` and PKCE).
    pub state_ttl: time::Duration,
    /// Life of the one-time code handing a session from the API host to the app host.
    pub handoff_ttl: time::Duration,
    /// Clock skew allowed on ID-token times (`exp`, `iat`).
    pub clock_skew: time::Duration,
    /// The shortest interval between the starts of two fetches of one issuer's JWKS:
    /// tokens naming unknown keys cannot make the worker hammer Okta, and a genuine
    /// token signed with a new key waits at most this long for it (`okta::jwks`).
    pub jwks_min_refetch: Duration,
    /// Connect timeout of every call to Okta.
    pub okta_connect_timeout: Duration,
    /// Total timeout of every call to Okta.
    pub okta_timeout: Duration,
    /// How Okta host names are resolved: the system's resolver, or a fixed table in
    /// tests (to make a domain resolve to a private address; `okta::http`).
    pub okta_resolver: crate::resolver::Resolver,
}

impl Default for SignInConfig {
    fn default() -> Self {
        Self {
            session_idle: time::Duration::hours(8),
            session_absolute: time::Duration::hours(12),
            state_ttl: time::Duration::minutes(10),
            handoff_ttl: time::Duration::seconds(60),
            clock_skew: time::Duration::seconds(60),
            jwks_min_refetch: Duration::from_secs(1),
            okta_connect_timeout: Duration::from_secs(3),
            okta_timeout: Duration::from_secs(10),
            okta_resolver: crate::resolver::Resolver::System,
        }
    }
}

/// The SCIM OAuth server of this region, ready to use: the map's
/// [`shared::regions::ScimOAuthSettings`] with the client secret read and hashed.
#[derive(Debug, Clone)]
pub struct ScimOAuthConfig {
    /// The one client id of this region (Okta's, shared by every tenant).
    pub client_id: String,
    /// SHA-256 of the client secret: the secret itself is dropped once hashed, so a
    /// memory dump or a `Debug` print never shows it.
    pub client_secret_hash: SecretDigest,
    /// Redirect URIs a client may name.
    pub redirect_uris: Vec<RedirectUriPattern>,
    /// Lifetime of an access token.
    pub access_token_ttl: time::Duration,
    /// How long a refresh token lives unused; every rotation starts it again.
    pub refresh_idle_ttl: time::Duration,
    /// Lifetime of an authorization code: at most 60 seconds.
    pub code_ttl: time::Duration,
    /// How long a pending authorization request waits for an admin to sign in and
    /// decide.
    pub pending_ttl: time::Duration,
}

impl ScimOAuthConfig {
    /// Whether `presented` is the client secret, compared in constant time.
    pub fn secret_matches(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(TokenHash::of(presented).0.ct_eq(&self.client_secret_hash.0))
    }

    /// Whether `uri`, exactly as sent, is an allowed redirect URI.
    pub fn allows_redirect(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|p| p.matches(uri))
    }
}

/// The service credential the product's API and MCP servers introspect tokens with
/// (RFC 7662 §2.1): the map's [`shared::regions::IntrospectionSettings`] with the
/// secret read and hashed.
#[derive(Debug, Clone)]
pub struct IntrospectionConfig {
    /// The client id.
    pub client_id: String,
    /// SHA-256 of the client secret; the secret itself is dropped once hashed.
    pub client_secret_hash: SecretDigest,
}

impl IntrospectionConfig {
    /// Whether (`id`, `secret`) is the credential: the id compared as text (it is not
    /// secret), the secret by hash in constant time.
    pub fn matches(&self, id: &str, secret: &str) -> bool {
        use subtle::ConstantTimeEq;
        let secret_ok = bool::from(TokenHash::of(secret).0.ct_eq(&self.client_secret_hash.0));
        secret_ok & (id == self.client_id)
    }
}

/// The SHA-256 of a secret, printed as `[redacted]`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SecretDigest(pub [u8; 32]);

impl std::fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The shortest client secret accepted: a guessable secret would let anyone who
/// learns a workspace admin's approval redeem the code.
pub const MIN_CLIENT_SECRET_LEN: usize = 32;

/// A token-bucket rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained requests per second; 0 turns the limit off.
    pub per_second: u32,
    /// Requests allowed in a burst above the sustained rate.
    pub burst: u32,
}

/// Why a configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The map has no region with this id.
    #[error("region {0} is not in the region map")]
    UnknownRegion(RegionId),
    /// A secret's environment variable is unset or empty.
    #[error("{what}: environment variable {name} is not set")]
    MissingEnv {
        /// Which setting.
        what: &'static str,
        /// The variable's name.
        name: String,
    },
    /// A secret is too short to be one.
    #[error("{what}: the secret must be at least {min} characters long")]
    WeakSecret {
        /// Which setting.
        what: &'static str,
        /// The minimum length.
        min: usize,
    },
    /// The region has no `encryption_key`.
    #[error(
        "region {0}: encryption_key is required (32 bytes as 64 hex digits or base64, from \
         an environment variable or a file); it seals Okta client secrets"
    )]
    MissingEncryptionKey(RegionId),
    /// The encryption key is not 32 bytes in hex or base64.
    #[error("region {region}: encryption_key: {source}")]
    BadEncryptionKey {
        /// The region.
        region: RegionId,
        /// What is wrong with it.
        source: crate::crypto::CryptoError,
    },
    /// A secret file could not be read.
    #[error("{what}: cannot read {path}: {source}")]
    File {
        /// Which setting.
        what: &'static str,
        /// The file's path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl WorkerConfig {
    /// Builds the configuration of `region` from the map, resolving secrets with `env`
    /// (the process environment in `main`, a map in tests).
    pub fn from_map(
        map: &RegionMap,
        region: &RegionId,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let r = map
            .region(region)
            .ok_or_else(|| ConfigError::UnknownRegion(region.clone()))?
            .clone();
        let database_url = resolve_secret("postgres", &r.postgres, env)?;
        let redis_url = resolve_secret("redis", &r.redis, env)?;
        let key_source = r
            .encryption_key
            .as_ref()
            .ok_or_else(|| ConfigError::MissingEncryptionKey(region.clone()))?;
        let bad_key = |source| ConfigError::BadEncryptionKey {
            region: region.clone(),
            source,
        };
        // The keys of earlier rotations open what they sealed until `keys reencrypt`
        // has moved every row to the current key; only the current key seals.
        let previous = r
            .previous_encryption_keys
            .iter()
            .map(|source| {
                RegionKey::parse(resolve_secret("previous_encryption_keys", source, env)?.expose())
                    .map_err(bad_key)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let encryption_key =
            RegionKey::parse(resolve_secret("encryption_key", key_source, env)?.expose())
                .map_err(bad_key)?
                .with_previous(previous);
        Ok(Self {
            development: map.development,
            listen: r.worker_listen,
            admin_listen: r.worker_admin_listen,
            database_url,
            redis_url,
            redis_prefix: String::new(),
            store_timeout: Duration::from_secs(2),
            pg_pool_size: 16,
            // Generous: Okta provisions in bursts; the limit stops runaway clients.
            scim_rate_limit: RateLimit {
                per_second: 2000,
                burst: 4000,
            },
            scim_max_results: 200,
            universal_logout_rate_limit: RateLimit {
                per_second: 50,
                burst: 1000,
            },
            auth_rate_limit: RateLimit {
                per_second: 20,
                burst: 200,
            },
            failed_auth_hold: Duration::from_secs(1),
            scim_oauth: r
                .scim_oauth
                .as_ref()
                .map(|o| resolve_scim_oauth(o, env))
                .transpose()?,
            introspection: r
                .introspection
                .as_ref()
                .map(|i| resolve_introspection(i, env))
                .transpose()?,
            clock: Clock::system(),
            encryption_key,
            sign_in: SignInConfig::default(),
            audit_retention: time::Duration::days(r.audit_retention_days.into()),
            audit_prune_every: Duration::from_secs(3600),
            dns_server: None,
            region: r,
        })
    }

    /// The region's id.
    pub fn region_id(&self) -> &RegionId {
        &self.region.id
    }
}

/// Reads and hashes the client secret of the SCIM OAuth server.
fn resolve_scim_oauth(
    o: &shared::regions::ScimOAuthSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ScimOAuthConfig, ConfigError> {
    const WHAT: &str = "scim_oauth.client_secret";
    let secret = resolve_secret(WHAT, &o.client_secret, env)?;
    if secret.expose().len() < MIN_CLIENT_SECRET_LEN {
        return Err(ConfigError::WeakSecret {
            what: WHAT,
            min: MIN_CLIENT_SECRET_LEN,
        });
    }
    Ok(ScimOAuthConfig {
        client_id: o.client_id.clone(),
        client_secret_hash: SecretDigest(TokenHash::of(secret.expose()).0),
        redirect_uris: o.redirect_uris.clone(),
        access_token_ttl: time::Duration::seconds(i64::from(o.access_token_ttl_secs)),
        refresh_idle_ttl: time::Duration::days(i64::from(o.refresh_idle_ttl_days)),
        code_ttl: time::Duration::seconds(60),
        pending_ttl: time::Duration::minutes(10),
    })
}

/// Reads and hashes the introspection client secret.
fn resolve_introspection(
    i: &shared::regions::IntrospectionSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<IntrospectionConfig, ConfigError> {
    const WHAT: &str = "introspection.client_secret";
    let secret = resolve_secret(WHAT, &i.client_secret, env)?;
    if secret.expose().len() < MIN_CLIENT_SECRET_LEN {
        return Err(ConfigError::WeakSecret {
            what: WHAT,
            min: MIN_CLIENT_SECRET_LEN,
        });
    }
    Ok(IntrospectionConfig {
        client_id: i.client_id.clone(),
        client_secret_hash: SecretDigest(TokenHash::of(secret.expose()).0),
    })
}

/// Reads a secret from where the map says it is.
pub fn resolve_secret(
    what: &'static str,
    source: &SecretSource,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Secret, ConfigError> {
    match source {
        SecretSource::Env(name) => env(name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| Secret::new(v.trim()))
            .ok_or_else(|| ConfigError::MissingEnv {
                what,
                name: name.clone(),
            }),
        SecretSource::File(path) => std::fs::read_to_string(path)
            .map(|v| Secret::new(v.trim_end()))
            .map_err(|source| ConfigError::File {
                what,
                path: path.clone(),
                source,
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &str = r#"
development = true
[regions.us]
app_url = "http://app.closedloop.localhost"
api_url = "http://api.closedloop.localhost"
workers = ["127.0.0.1:1"]
postgres = { env = "US_PG" }
redis = { env = "US_REDIS" }
encryption_key = { env = "US_KEY" }
"#;

    const KEY: &str = "8d3f1c0b5a2e4f6d9b7c1a3e5f7092b4c6d8e0f1a3b5c7d9e1f3a5b7c9d1e3f5";

    #[test]
    fn resolves_secrets_from_the_given_environment() {
        let map = RegionMap::parse(MAP).unwrap();
        let us = RegionId::parse("us").unwrap();
        let env = |k: &str| match k {
            "US_PG" => Some("postgres://localhost/us".to_owned()),
            "US_REDIS" => Some("redis://localhost/0".to_owned()),
            "US_KEY" => Some(KEY.to_owned()),
            _ => None,
        };
        let c = WorkerConfig::from_map(&map, &us, &env).unwrap();
        assert_eq!(c.database_url.expose(), "postgres://localhost/us");
        assert!(
            !format!("{c:?}").contains("postgres://"),
            "secrets must not print"
        );
        let e = WorkerConfig::from_map(&map, &us, &|_| None).unwrap_err();
        assert!(e.to_string().contains("US_PG"), "{e}");
        let eu = RegionId::parse("eu").unwrap();
        assert!(WorkerConfig::from_map(&map, &eu, &env).is_err());
        assert!(c.scim_oauth.is_none(), "no table, no OAuth server");
        assert!(
            !format!("{c:?}").contains(KEY),
            "the region key must not print"
        );
    }

    #[test]
    fn previous_keys_open_what_they_sealed() {
        const OLD: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let map = RegionMap::parse(&MAP.replace(
            "encryption_key = { env = \"US_KEY\" }\n",
            "encryption_key = { env = \"US_KEY\" }\n\
             previous_encryption_keys = [{ env = \"US_OLD_KEY\" }]\n",
        ))
        .unwrap();
        let us = RegionId::parse("us").unwrap();
        let env = |old: &'static str| {
            move |k: &str| match k {
                "US_PG" | "US_REDIS" => Some("x://y".to_owned()),
                "US_KEY" => Some(KEY.to_owned()),
                "US_OLD_KEY" => Some(old.to_owned()),
                _ => None,
            }
        };
        let c = WorkerConfig::from_map(&map, &us, &env(OLD)).unwrap();
        let old = RegionKey::parse(OLD).unwrap();
        assert!(c.encryption_key.holds(old.id()));
        assert_eq!(c.encryption_key.id(), RegionKey::parse(KEY).unwrap().id());
        assert!(matches!(
            WorkerConfig::from_map(&map, &us, &env("short")),
            Err(ConfigError::BadEncryptionKey { .. })
        ));
    }

    #[test]
    fn the_region_key_is_required_and_must_be_32_bytes() {
        let us = RegionId::parse("us").unwrap();
        let env = |key: Option<&'static str>| {
            move |k: &str| match k {
                "US_PG" | "US_REDIS" => Some("x://y".to_owned()),
                "US_KEY" => key.map(str::to_owned),
                _ => None,
            }
        };
        let without =
            RegionMap::parse(&MAP.replace("encryption_key = { env = \"US_KEY\" }\n", "")).unwrap();
        let e = WorkerConfig::from_map(&without, &us, &env(Some(KEY))).unwrap_err();
        assert!(matches!(e, ConfigError::MissingEncryptionKey(_)), "{e}");
        let map = RegionMap::parse(MAP).unwrap();
        let e = WorkerConfig::from_map(&map, &us, &env(Some("too-short"))).unwrap_err();
        assert!(matches!(e, ConfigError::BadEncryptionKey { .. }), "{e}");
        assert!(!e.to_string().contains("too-short"));
        let e = WorkerConfig::from_map(&map, &us, &env(None)).unwrap_err();
        assert!(e.to_string().contains("US_KEY"), "{e}");
    }

    #[test]
    fn hashes_the_scim_oauth_client_secret_and_keeps_only_the_hash() {
        let text = format!(
            "{MAP}[regions.us.scim_oauth]\nclient_id = \"okta\"\nclient_secret = {{ env = \"US_OAUTH\" }}\n\
             redirect_uris = [\"https://system-admin.okta.com/admin/app/cpc/{{appName}}/oauth/callback\"]\n\
             access_token_ttl_secs = 600\n"
        );
        let map = RegionMap::parse(&text).unwrap();
        let us = RegionId::parse("us").unwrap();
        let secret = "s3cret-s3cret-s3cret-s3cret-s3cret";
        let env = |k: &str| match k {
            "US_PG" | "US_REDIS" => Some("x://y".to_owned()),
            "US_KEY" => Some(KEY.to_owned()),
            "US_OAUTH" => Some(format!("{secret}\n")),
            _ => None,
        };
        let c = WorkerConfig::from_map(&map, &us, &env).unwrap();
        let o = c.scim_oauth.as_ref().unwrap();
        assert!(o.secret_matches(secret));
        assert!(!o.secret_matches("s3cret"));
        assert!(!o.secret_matches(""));
        assert_eq!(o.access_token_ttl, time::Duration::minutes(10));
        assert_eq!(o.refresh_idle_ttl, time::Duration::days(90));
        assert!(o.code_ttl <= time::Duration::seconds(60));
        assert!(o.allows_redirect("https://system-admin.okta.com/admin/app/cpc/x/oauth/callback"));
        assert!(!format!("{c:?}").contains("s3cret"));

        let weak = |k: &str| match k {
            "US_OAUTH" => Some("short".to_owned()),
            other => env(other),
        };
        let e = WorkerConfig::from_map(&map, &us, &weak).unwrap_err();
        assert!(e.to_string().contains("at least 32"), "{e}");
        let missing = |k: &str| if k == "US_OAUTH" { None } else { env(k) };
        let e = WorkerConfig::from_map(&map, &us, &missing).unwrap_err();
        assert!(e.to_string().contains("US_OAUTH"), "{e}");
    }

    #[test]
    fn hashes_the_introspection_secret_and_keeps_only_the_hash() {
        let text = format!(
            "{MAP}[regions.us.introspection]\nclient_id = \"api-servers\"\nclient_secret = {{ env = \"US_INTRO\" }}\n"
        );
        let map = RegionMap::parse(&text).unwrap();
        let us = RegionId::parse("us").unwrap();
        let secret = "introspection-secret-introspection-secret";
        let env = |k: &str| match k {
            "US_PG" | "US_REDIS" => Some("x://y".to_owned()),
            "US_KEY" => Some(KEY.to_owned()),
            "US_INTRO" => Some(secret.to_owned()),
            _ => None,
        };
        let c = WorkerConfig::from_map(&map, &us, &env).unwrap();
        let i = c.introspection.as_ref().unwrap();
        assert!(i.matches("api-servers", secret));
        assert!(!i.matches("api-servers", "introspection-secret"));
        assert!(!i.matches("other", secret));
        assert!(!format!("{c:?}").contains(secret));
        let weak = |k: &str| {
            if k == "US_INTRO" {
                Some("short".to_owned())
            } else {
                env(k)
            }
        };
        let e = WorkerConfig::from_map(&map, &us, &weak).unwrap_err();
        assert!(e.to_string().contains("introspection.client_secret"), "{e}");
        let plain = RegionMap::parse(MAP).unwrap();
        assert!(
            WorkerConfig::from_map(&plain, &us, &env)
                .unwrap()
                .introspection
                .is_none()
        );
    }
}
