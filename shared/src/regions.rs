//! The region map, `regions.toml`: which hosts belong to which region, where the
//! region's workers listen, and where a worker finds its stores. The gateway and every
//! worker read the same file. Parsing is strict: an unknown key, a malformed URL, a host
//! claimed by two regions or a region without workers is refused with the line it is on.
//! A region may carry its SCIM OAuth server (`[regions.<id>.scim_oauth]`): one client,
//! its secret's source and the redirect URIs Okta may use.
//! A region may also name the service credential of its token introspection endpoint
//! (`[regions.<id>.introspection]`, RFC 7662): a client id and its secret's source.
//!
//! The `[gateway]` table configures the edge: its listeners (plain HTTP, TLS, admin),
//! the certificates it serves by SNI, its limits and timeouts, and how often it checks
//! the workers' health. Every key of it but `listen`/`tls_listen` has a default; see
//! [`GatewaySettings`]. A worker is listed as `"host:port"` or as
//! `{ addr = "host:port", admin = "host:port" }`; see [`Region::worker_admin`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use url::Url;

use crate::ids::RegionId;

/// A validated region map.
#[derive(Debug, Clone)]
pub struct RegionMap {
    /// The development switch (DESIGN.md, Configuration): allows plain-HTTP URLs and
    /// loopback Okta domains. Off unless the file says `development = true`.
    pub development: bool,
    /// Where the gateway listens.
    pub gateway: GatewaySettings,
    /// The regions, in file order.
    regions: Vec<Region>,
    /// Lower-case host name (no port) → index into `regions`.
    hosts: HashMap<String, usize>,
}

/// The gateway's `[gateway]` table: listeners, certificates, limits and health checks.
///
/// Only what the file says is here, validated and with defaults applied; the gateway
/// turns it into its runtime configuration. Keys (all optional but one listener):
///
/// | key | default | meaning |
/// |---|---|---|
/// | `listen` | `0.0.0.0:8080` without a `[gateway]` table | plain HTTP (HTTP/1.1 and h2c) |
/// | `tls_listen` | none | HTTPS (TLS 1.2/1.3, ALPN `h2` and `http/1.1`) |
/// | `admin_listen` | `127.0.0.1:9000` | `/healthz`, `/metrics` |
/// | `certificates` | `[]` | `[{ hosts = [...], cert = "/path.pem", key = "/path.pem" }]` |
/// | `redirect_http_to_https` | `false` | the plain listener answers `308` to HTTPS |
/// | `max_header_bytes` | 32768 | request line and headers, else `431` |
/// | `max_body_bytes` | 10 MiB | request body, else `413` |
/// | `request_timeout_secs` | 30 | until the worker's response head, else `504` |
/// | `idle_timeout_secs` | 60 | a connection without a request in flight is closed |
/// | `header_read_timeout_secs` | 10 | TLS handshake and request head (slow loris) |
/// | `max_connections` | 10000 | open client connections, else `503` and close |
/// | `max_connections_per_ip` | 512 | open connections of one client IP, else `503` |
/// | `health_check_interval_ms` | 2000 | active health checks; `0` turns them off |
/// | `shutdown_grace_secs` | 10 | how long in-flight requests may finish on SIGTERM |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySettings {
    /// Plain-HTTP listener (HTTP/1.1 and h2c). Optional when `tls_listen` is set: behind
    /// an L4 balancer or for local use it is the only one; in production it typically
    /// only redirects to HTTPS.
    pub listen: Option<SocketAddr>,
    /// TLS listener; requires `certificates` covering every host of every region.
    pub tls_listen: Option<SocketAddr>,
    /// Admin listener (`/healthz`, `/metrics`); never the public port.
    pub admin_listen: SocketAddr,
    /// The certificates served on `tls_listen`, chosen by the SNI name. Files are named
    /// here and read by the gateway at start and on every reload.
    pub certificates: Vec<CertificateSettings>,
    /// Whether the plain listener answers every request for a known host with `308` to
    /// the same URL on HTTPS instead of proxying it.
    pub redirect_http_to_https: bool,
    /// Request and connection limits.
    pub limits: GatewayLimits,
    /// How often each worker's health is checked; `None` when checks are off (workers
    /// are then only ejected passively, after connection failures).
    pub health_check_interval: Option<Duration>,
    /// After SIGTERM, how long in-flight requests may take to finish.
    pub shutdown_grace: Duration,
}

impl GatewaySettings {
    /// Default `max_header_bytes`: room for large cookies, far below memory concerns.
    pub const DEFAULT_MAX_HEADER_BYTES: usize = 32 * 1024;
    /// Default `max_body_bytes`: SCIM requests are small; a group PATCH with thousands of
    /// members stays well below it.
    pub const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;
    /// Default `health_check_interval_ms`.
    pub const DEFAULT_HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(2);
    /// Default `shutdown_grace_secs`.
    pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

    /// The settings used without a `[gateway]` table: plain HTTP on port 8080.
    fn defaults() -> Self {
        Self {
            listen: Some(SocketAddr::from(([0, 0, 0, 0], 8080))),
            tls_listen: None,
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9000)),
            certificates: Vec::new(),
            redirect_http_to_https: false,
            limits: GatewayLimits::default(),
            health_check_interval: Some(Self::DEFAULT_HEALTH_CHECK_INTERVAL),
            shutdown_grace: Self::DEFAULT_SHUTDOWN_GRACE,
        }
    }

    /// The certificate serving `host` (lower-case, no port): an exact name first, then a
    /// `*.parent` wildcard covering exactly one label.
    pub fn certificate_for(&self, host: &str) -> Option<&CertificateSettings> {
        let exact = self
            .certificates
            .iter()
            .find(|c| c.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)));
        exact.or_else(|| {
            let parent = host.split_once('.')?.1;
            self.certificates.iter().find(|c| {
                c.hosts.iter().any(|h| {
                    h.strip_prefix("*.")
                        .is_some_and(|p| p.eq_ignore_ascii_case(parent))
                })
            })
        })
    }
}

/// One certificate of the TLS listener: the host names it serves (exact names or a
/// `*.parent` wildcard) and the PEM files of its chain and private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSettings {
    /// Lower-case host names the certificate is served for (matched against SNI).
    pub hosts: Vec<String>,
    /// PEM file with the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The gateway's limits: what a client may send and how long it may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayLimits {
    /// Request line plus headers, in bytes; larger requests get `431`.
    pub max_header_bytes: usize,
    /// Request body, in bytes; larger bodies get `413`.
    pub max_body_bytes: u64,
    /// From the request's arrival to the worker's response head; past it `504` (or `408`
    /// when the client had not finished sending its body).
    pub request_timeout: Duration,
    /// A client connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// Time for the TLS handshake and for each request head: slow-loris protection.
    pub header_read_timeout: Duration,
    /// Open client connections over all listeners; excess connections get `503`.
    pub max_connections: usize,
    /// Open client connections from one IP address; excess connections get `503`.
    pub max_connections_per_ip: usize,
}

impl Default for GatewayLimits {
    fn default() -> Self {
        Self {
            max_header_bytes: GatewaySettings::DEFAULT_MAX_HEADER_BYTES,
            max_body_bytes: GatewaySettings::DEFAULT_MAX_BODY_BYTES,
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_connections_per_ip: 512,
        }
    }
}

/// One region: its public URLs, its worker replicas and its stores.
#[derive(Debug, Clone)]
pub struct Region {
    /// The region name (`us`, `eu`).
    pub id: RegionId,
    /// Base URL of the web pages (`https://app.closedloop.sh`).
    pub app_url: Url,
    /// Base URL of the API (`https://api.closedloop.sh`).
    pub api_url: Url,
    /// Addresses (`host:port`) of the worker replicas the gateway forwards to.
    pub workers: Vec<String>,
    /// Per worker (same order as `workers`), the admin address (`host:port`) whose
    /// `/readyz` the gateway's health checks call; see [`Region::worker_admin`].
    pub worker_admins: Vec<Option<String>>,
    /// Where a worker of this region listens for public traffic.
    pub worker_listen: SocketAddr,
    /// Where a worker of this region serves `/healthz`, `/readyz` and `/metrics`.
    pub worker_admin_listen: SocketAddr,
    /// Where the worker finds its Postgres URL.
    pub postgres: SecretSource,
    /// Where the worker finds its Redis URL.
    pub redis: SecretSource,
    /// Where the worker finds its 32-byte encryption key (hex or base64); optional.
    pub encryption_key: Option<SecretSource>,
    /// Where the worker finds the keys the region used before a rotation
    /// (`previous_encryption_keys`): they only open values sealed under them, until
    /// `region-worker keys reencrypt` has re-sealed every row under `encryption_key`.
    pub previous_encryption_keys: Vec<SecretSource>,
    /// The region's SCIM OAuth server (`[regions.<id>.scim_oauth]`): the one client
    /// Okta uses to obtain SCIM bearer tokens. `None` leaves the endpoints answering
    /// that the server is not configured.
    pub scim_oauth: Option<ScimOAuthSettings>,
    /// The service credential of the region's token introspection endpoint
    /// (`[regions.<id>.introspection]`), with which the product's API and MCP servers
    /// ask whether a personal token is active. `None` leaves the endpoint answering that
    /// introspection is not configured.
    pub introspection: Option<IntrospectionSettings>,
    /// The networks a worker of this region believes `X-Forwarded-For` from: where the
    /// region's gateways run (`trusted_proxies`, default loopback only). A request from
    /// any other peer is counted against the peer's own address, whatever it claims.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// The service credential of a region's token introspection endpoint (RFC 7662 §2.1:
/// the protected resources authenticate with HTTP Basic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntrospectionSettings {
    /// The client id (`[A-Za-z0-9._~-]`, 1 to 128 characters, like the SCIM OAuth
    /// client's, so that it needs no encoding in HTTP Basic credentials).
    pub client_id: String,
    /// Where the worker reads the client secret; it keeps only its SHA-256.
    pub client_secret: SecretSource,
}

/// The SCIM OAuth server of one region (OKTA.md §6). The Okta Integration Network gives
/// one client per integration, shared by every Okta tenant, so there is exactly one
/// client per region; a grant is bound to a workspace when one of its admins approves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimOAuthSettings {
    /// The client id Okta sends (`[A-Za-z0-9._~-]`, 1 to 128 characters, so that it
    /// needs no encoding in HTTP Basic credentials).
    pub client_id: String,
    /// Where the worker reads the client secret; it keeps only its SHA-256.
    pub client_secret: SecretSource,
    /// The redirect URIs a client may name; anything else is refused before any
    /// redirect happens.
    pub redirect_uris: Vec<RedirectUriPattern>,
    /// Lifetime of an access token, in seconds (60 to 86 400; default 3600).
    pub access_token_ttl_secs: u32,
    /// How long a refresh token lives unused, in days (1 to 365; default 90). Okta
    /// refreshes only when a provisioning job runs, so this must outlast idle tenants.
    pub refresh_idle_ttl_days: u32,
}

impl ScimOAuthSettings {
    /// Default access-token lifetime: one hour.
    pub const DEFAULT_ACCESS_TOKEN_TTL_SECS: u32 = 3600;
    /// Default refresh-token idle lifetime: 90 days.
    pub const DEFAULT_REFRESH_IDLE_TTL_DAYS: u32 = 90;

    /// Whether `uri`, exactly as the client sent it, is one of the allowed redirect URIs.
    pub fn allows_redirect(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|p| p.matches(uri))
    }
}

/// An allowed redirect URI: an exact URL in which a whole path segment may be
/// `{appName}` (one segment of `[A-Za-z0-9_-]`, as in Okta's
/// `https://system-admin.okta.com/admin/app/cpc/{appName}/oauth/callback`) and, under
/// the development switch only, a loopback `http://127.0.0.1:*` or `http://localhost:*`
/// origin whose port is any port. Matching is by exact string otherwise (RFC 6749
/// §3.1.2.3; no normalisation a browser or client could disagree with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUriPattern {
    /// The pattern as written in the map.
    text: String,
    /// The pattern cut into literal text and placeholders.
    parts: Vec<PatternPart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PatternPart {
    Literal(String),
    /// `{appName}`: one path segment of `[A-Za-z0-9_-]`, 1 to 100 characters.
    AppName,
    /// `*` in the port position: 1 to 65535.
    AnyPort,
}

/// The placeholder for Okta's app name in a redirect URI pattern.
const APP_NAME: &str = "{appName}";
/// The longest app name a pattern's placeholder accepts.
const MAX_APP_NAME: usize = 100;

impl RedirectUriPattern {
    /// Parses a pattern. `development` allows plain-HTTP loopback patterns and the port
    /// wildcard (DESIGN.md, Configuration: test settings only behind the switch).
    pub fn parse(text: &str, development: bool) -> Result<Self, String> {
        let bad = |why: &str| format!("redirect URI pattern {text:?}: {why}");
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| bad("must be an absolute https URL"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => return Err(bad("needs a path")),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        let loopback = matches!(host, "127.0.0.1" | "localhost");
        match scheme {
            "https" => {}
            "http" if development && loopback => {}
            "http" => {
                return Err(bad(
                    "must be https (plain http only for a loopback host with development = true)",
                ));
            }
            _ => return Err(bad("must be an https URL")),
        }
        let host_ok = !host.is_empty()
            && (loopback
                || host.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'
                }));
        if !host_ok {
            return Err(bad(
                "the host must be a lower-case DNS name, without wildcards",
            ));
        }
        let mut parts = Vec::new();
        let mut literal = format!("{scheme}://{host}");
        match port {
            None => {}
            Some("*") if development && loopback => {
                literal.push(':');
                parts.push(PatternPart::Literal(std::mem::take(&mut literal)));
                parts.push(PatternPart::AnyPort);
            }
            Some("*") => {
                return Err(bad(
                    "a port wildcard is allowed only for loopback hosts with development = true",
                ));
            }
            Some(p) if p.parse::<u16>().is_ok_and(|p| p != 0) => {
                literal.push(':');
                literal.push_str(p);
            }
            Some(_) => return Err(bad("invalid port")),
        }
        for (i, segment) in path.split('/').enumerate().skip(1) {
            literal.push('/');
            if segment == APP_NAME {
                parts.push(PatternPart::Literal(std::mem::take(&mut literal)));
                parts.push(PatternPart::AppName);
                continue;
            }
            let plain = segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
            if !plain || (segment.is_empty() && i + 1 < path.split('/').count()) {
                return Err(bad(
                    "path segments may hold only letters, digits, - . _ ~ or be exactly {appName}",
                ));
            }
            literal.push_str(segment);
        }
        if !literal.is_empty() {
            parts.push(PatternPart::Literal(literal));
        }
        Ok(Self {
            text: text.to_owned(),
            parts,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `uri` matches: literals exactly, `{appName}` one segment of
    /// `[A-Za-z0-9_-]`, `*` a port number. No query, fragment or trailing text.
    pub fn matches(&self, uri: &str) -> bool {
        let mut rest = uri;
        for part in &self.parts {
            match part {
                PatternPart::Literal(l) => match rest.strip_prefix(l.as_str()) {
                    Some(r) => rest = r,
                    None => return false,
                },
                PatternPart::AppName => {
                    let n = rest
                        .bytes()
                        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
                        .count();
                    if n == 0 || n > MAX_APP_NAME {
                        return false;
                    }
                    rest = &rest[n..];
                }
                PatternPart::AnyPort => {
                    let n = rest.bytes().take_while(u8::is_ascii_digit).count();
                    if !rest[..n].parse::<u16>().is_ok_and(|p| p != 0) || rest.starts_with('0') {
                        return false;
                    }
                    rest = &rest[n..];
                }
            }
        }
        rest.is_empty()
    }
}

impl fmt::Display for RedirectUriPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Region {
    /// Host of the web pages, lower-case, without port.
    pub fn app_host(&self) -> &str {
        self.app_url.host_str().unwrap_or_default()
    }

    /// Host of the API, lower-case, without port.
    pub fn api_host(&self) -> &str {
        self.api_url.host_str().unwrap_or_default()
    }

    /// Base URL of the API without a trailing slash, for building public URLs.
    pub fn api_base(&self) -> &str {
        self.api_url.as_str().trim_end_matches('/')
    }

    /// Base URL of the web pages without a trailing slash.
    pub fn app_base(&self) -> &str {
        self.app_url.as_str().trim_end_matches('/')
    }

    /// The admin address of worker `index`, whose `/readyz` the gateway checks:
    ///
    /// - the `admin` of a `{ addr = "…", admin = "…" }` entry;
    /// - else, when the region sets `worker_admin_listen`, the worker's host with that
    ///   port (`worker-0:8081` with `worker_admin_listen = "0.0.0.0:9091"` gives
    ///   `worker-0:9091`): every replica listens where the region says;
    /// - else `None`: no admin address is known, and the gateway checks the worker's
    ///   liveness on its public address instead (`GET /api/ping` with the API host).
    pub fn worker_admin(&self, index: usize) -> Option<&str> {
        self.worker_admins.get(index)?.as_deref()
    }

    /// Whether `host` (a `Host` header value, port allowed, any case) is one of ours.
    pub fn serves_host(&self, host: &str) -> bool {
        let name = strip_port(host);
        name.eq_ignore_ascii_case(self.app_host()) || name.eq_ignore_ascii_case(self.api_host())
    }
}

/// Where a secret comes from: an environment variable or a file. Never a literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// The value of this environment variable.
    Env(String),
    /// The contents of this file, trailing whitespace removed.
    File(String),
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env(name) => write!(f, "environment variable {name}"),
            SecretSource::File(path) => write!(f, "file {path}"),
        }
    }
}

/// A secret value whose `Debug` and `Display` never print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself; call only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A region map that could not be accepted, with the 1-based line it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct RegionMapError {
    /// 1-based line of the offending entry (1 when the file as a whole is wrong).
    pub line: usize,
    /// What is wrong, in words.
    pub message: String,
}

impl RegionMap {
    /// Parses and validates the text of a `regions.toml`.
    pub fn parse(text: &str) -> Result<Self, RegionMapError> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let err = |offset: usize, message: String| RegionMapError {
            line: line_of(offset),
            message,
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            err(offset, e.message().trim().to_owned())
        })?;

        let development = raw.development.unwrap_or(false);

        if raw.regions.is_empty() {
            return Err(err(0, "no regions: add a [regions.<id>] table".into()));
        }
        let mut regions = Vec::with_capacity(raw.regions.len());
        let mut hosts: HashMap<String, usize> = HashMap::new();
        for (name, raw_region) in raw.regions {
            let name_at = name.span().start;
            let id = RegionId::parse(name.get_ref()).map_err(|e| err(name_at, e.to_string()))?;
            let r = raw_region.into_inner();
            let app_url = parse_url(&r.app_url, "app_url", development, &err)?;
            let api_url = parse_url(&r.api_url, "api_url", development, &err)?;
            if r.workers.get_ref().is_empty() {
                return Err(err(
                    r.workers.span().start,
                    format!("region {id} has no workers: list at least one host:port"),
                ));
            }
            let worker_admin_port = match &r.worker_admin_listen {
                Some(a) => Some(parse_addr(a, &err)?.port()),
                None => None,
            };
            let mut workers = Vec::with_capacity(r.workers.get_ref().len());
            let mut worker_admins = Vec::with_capacity(r.workers.get_ref().len());
            for w in r.workers.into_inner() {
                let at = w.span().start;
                let (addr, admin) = match w.into_inner() {
                    RawWorker::Addr(addr) => (addr, None),
                    RawWorker::Table(RawWorkerTable { addr, admin }) => (addr, Some(admin)),
                };
                validate_worker_addr(&addr).map_err(|m| err(at, m))?;
                let admin = match admin {
                    Some(admin) => {
                        validate_worker_addr(&admin).map_err(|m| err(at, m))?;
                        Some(admin)
                    }
                    // Every replica's admin listener is where the region says, on the
                    // replica's own host.
                    None => worker_admin_port.map(|port| {
                        let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h);
                        format!("{host}:{port}")
                    }),
                };
                workers.push(addr);
                worker_admins.push(admin);
            }
            let index = regions.len();
            for (host, at) in [
                (
                    app_url.host_str().unwrap_or_default(),
                    r.app_url.span().start,
                ),
                (
                    api_url.host_str().unwrap_or_default(),
                    r.api_url.span().start,
                ),
            ] {
                let host = host.to_ascii_lowercase();
                if let Some(&other) = hosts.get(&host)
                    && other != index
                {
                    let other: &Region = &regions[other];
                    return Err(err(
                        at,
                        format!("host {host} is already served by region {}", other.id),
                    ));
                }
                hosts.insert(host, index);
            }
            if app_url.host_str() == api_url.host_str() {
                return Err(err(
                    r.api_url.span().start,
                    format!("region {id}: app_url and api_url must use different hosts"),
                ));
            }
            regions.push(Region {
                id,
                app_url,
                api_url,
                workers,
                worker_admins,
                worker_listen: match r.worker_listen {
                    Some(a) => parse_addr(&a, &err)?,
                    None => SocketAddr::from(([0, 0, 0, 0], 8081)),
                },
                worker_admin_listen: match r.worker_admin_listen {
                    Some(a) => parse_addr(&a, &err)?,
                    None => SocketAddr::from(([127, 0, 0, 1], 9091)),
                },
                postgres: r.postgres.into_source("postgres", &err)?,
                redis: r.redis.into_source("redis", &err)?,
                encryption_key: r
                    .encryption_key
                    .map(|k| k.into_source("encryption_key", &err))
                    .transpose()?,
                previous_encryption_keys: r
                    .previous_encryption_keys
                    .unwrap_or_default()
                    .into_iter()
                    .map(|k| k.into_source("previous_encryption_keys", &err))
                    .collect::<Result<_, _>>()?,
                scim_oauth: r
                    .scim_oauth
                    .map(|o| parse_scim_oauth(o, development, &err))
                    .transpose()?,
                introspection: r
                    .introspection
                    .map(|i| parse_introspection(i, &err))
                    .transpose()?,
                trusted_proxies: match r.trusted_proxies {
                    Some(list) => parse_trusted_proxies(list.into_inner(), &err)?,
                    None => default_trusted_proxies(),
                },
            });
        }
        let gateway = match raw.gateway {
            Some(g) => parse_gateway(g, &hosts, &err)?,
            None => GatewaySettings::defaults(),
        };
        Ok(Self {
            development,
            gateway,
            regions,
            hosts,
        })
    }

    /// The regions, in file order.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// The region with this id.
    pub fn region(&self, id: &RegionId) -> Option<&Region> {
        self.regions.iter().find(|r| &r.id == id)
    }

    /// The region serving `host` (a `Host` header or `:authority`: port ignored, any case).
    pub fn region_for_host(&self, host: &str) -> Option<&Region> {
        let name = strip_port(host);
        // One trailing dot (the root label), as the gateway allows; not several.
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        self.hosts.get(&name).map(|&i| &self.regions[i])
    }
}

/// Removes a `:port` suffix from a host (also from a bracketed IPv6 literal).
pub fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // An IP literal, then nothing or `:port`; anything else is no host we serve.
        let port_ok = |p: &str| {
            p.strip_prefix(':')
                .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
        };
        return match rest.split_once(']') {
            Some((inside, after)) if after.is_empty() || port_ok(after) => inside,
            _ => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    development: Option<bool>,
    gateway: Option<Spanned<RawGateway>>,
    #[serde(default)]
    regions: BTreeMap<Spanned<String>, Spanned<RawRegion>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    listen: Option<Spanned<String>>,
    tls_listen: Option<Spanned<String>>,
    admin_listen: Option<Spanned<String>>,
    certificates: Option<Spanned<Vec<Spanned<RawCertificate>>>>,
    redirect_http_to_https: Option<Spanned<bool>>,
    max_header_bytes: Option<Spanned<i64>>,
    max_body_bytes: Option<Spanned<i64>>,
    request_timeout_secs: Option<Spanned<i64>>,
    idle_timeout_secs: Option<Spanned<i64>>,
    header_read_timeout_secs: Option<Spanned<i64>>,
    max_connections: Option<Spanned<i64>>,
    max_connections_per_ip: Option<Spanned<i64>>,
    health_check_interval_ms: Option<Spanned<i64>>,
    shutdown_grace_secs: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCertificate {
    hosts: Spanned<Vec<Spanned<String>>>,
    cert: Spanned<String>,
    key: Spanned<String>,
}

/// A `workers` entry: `"host:port"` or `{ addr = "host:port", admin = "host:port" }`.
#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "a worker as \"host:port\" or { addr = \"host:port\", admin = \"host:port\" }"
)]
enum RawWorker {
    Addr(String),
    Table(RawWorkerTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkerTable {
    addr: String,
    admin: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegion {
    app_url: Spanned<String>,
    api_url: Spanned<String>,
    workers: Spanned<Vec<Spanned<RawWorker>>>,
    worker_listen: Option<Spanned<String>>,
    worker_admin_listen: Option<Spanned<String>>,
    postgres: Spanned<RawSecret>,
    redis: Spanned<RawSecret>,
    encryption_key: Option<Spanned<RawSecret>>,
    previous_encryption_keys: Option<Vec<Spanned<RawSecret>>>,
    scim_oauth: Option<Spanned<RawScimOAuth>>,
    introspection: Option<Spanned<RawIntrospection>>,
    trusted_proxies: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIntrospection {
    client_id: Spanned<String>,
    client_secret: Spanned<RawSecret>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScimOAuth {
    client_id: Spanned<String>,
    client_secret: Spanned<RawSecret>,
    redirect_uris: Spanned<Vec<Spanned<String>>>,
    access_token_ttl_secs: Option<Spanned<i64>>,
    refresh_idle_ttl_days: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    env: Option<String>,
    file: Option<String>,
}

/// Loopback: a gateway on the worker's own machine (the local launcher, one-host
/// deployments). Anything wider must be said in `regions.toml`.
fn default_trusted_proxies() -> Vec<ipnet::IpNet> {
    ["127.0.0.0/8", "::1/128"]
        .iter()
        .map(|n| n.parse().expect("a valid CIDR block"))
        .collect()
}

/// `trusted_proxies = ["10.0.0.0/8", "fd00::/8", "192.0.2.7"]`: CIDR blocks, or single
/// addresses. A block with host bits set (`10.0.0.1/8`) is refused as a likely typo.
fn parse_trusted_proxies(
    list: Vec<Spanned<String>>,
    err: &dyn Fn(usize, String) -> RegionMapError,
) -> Result<Vec<ipnet::IpNet>, RegionMapError> {
    list.into_iter()
        .map(|entry| {
            let at = entry.span().start;
            let text = entry.into_inner();
            let net = match text.parse::<ipnet::IpNet>() {
                Ok(net) => net,
                Err(_) => match text.parse::<std::net::IpAddr>() {
                    Ok(ip) => ipnet::IpNet::from(ip),
                    Err(_) => {
                        return Err(err(
                            at,
                            format!("trusted_proxies: {text:?} is not an address or CIDR block"),
                        ));
                    }
                },
            };
            if net.trunc() != net {
                return Err(err(
                    at,
                    format!(
                        "trusted_proxies: {text:?} has host bits set; did you mean {}?",
                        net.trunc()
                    ),
                ));
            }
            Ok(net)
        })
        .collect()
}

trait IntoSource {
    fn into_source(
        self,
        what: &str,
        err: &dyn Fn(usize, String) -> RegionMapError,
    ) -> Result<SecretSource, RegionMapError>;
}

impl IntoSource for Spanned<RawSecret> {
    fn into_source(
        self,
        what: &str,
        err: &dyn Fn(usize, String) -> RegionMapError,
    ) -> Result<SecretSource, RegionMapError> {
        let at = self.span().start;
        match self.into_inner() {
            RawSecret {
                env: Some(name),
                file: None,
            } if !name.is_empty() => Ok(SecretSource::Env(name)),
            RawSecret {
                env: None,
                file: Some(path),
            } if !path.is_empty() => Ok(SecretSource::File(path)),
            _ => Err(err(
                at,
                format!(
                    "{what} must be {{ env = \"VAR\" }} or {{ file = \"/path\" }} (exactly one)"
                ),
            )),
        }
    }
}

/// Whether `id` is a client id that HTTP Basic carries without encoding.
fn valid_client_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

fn parse_introspection(
    raw: Spanned<RawIntrospection>,
    err: &dyn Fn(usize, String) -> RegionMapError,
) -> Result<IntrospectionSettings, RegionMapError> {
    let raw = raw.into_inner();
    if !valid_client_id(raw.client_id.get_ref()) {
        return Err(err(
            raw.client_id.span().start,
            "introspection.client_id must be 1 to 128 letters, digits or - . _ ~".into(),
        ));
    }
    Ok(IntrospectionSettings {
        client_id: raw.client_id.into_inner(),
        client_secret: raw
            .client_secret
            .into_source("introspection.client_secret", err)?,
    })
}

fn parse_scim_oauth(
    raw: Spanned<RawScimOAuth>,
    development: bool,
    err: &dyn Fn(usize, String) -> RegionMapError,
) -> Result<ScimOAuthSettings, RegionMapError> {
    let raw = raw.into_inner();
    let id = raw.client_id.get_ref();
    let id_ok = (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !id_ok {
        return Err(err(
            raw.client_id.span().start,
            "scim_oauth.client_id must be 1 to 128 letters, digits or - . _ ~".into(),
        ));
    }
    if raw.redirect_uris.get_ref().is_empty() {
        return Err(err(
            raw.redirect_uris.span().start,
            "scim_oauth.redirect_uris must list at least one redirect URI".into(),
        ));
    }
    let mut redirect_uris = Vec::with_capacity(raw.redirect_uris.get_ref().len());
    for uri in raw.redirect_uris.into_inner() {
        redirect_uris.push(
            RedirectUriPattern::parse(uri.get_ref(), development)
                .map_err(|m| err(uri.span().start, m))?,
        );
    }
    let bounded = |v: Option<Spanned<i64>>,
                   what: &str,
                   range: std::ops::RangeInclusive<i64>,
                   default: u32| {
        match v {
            None => Ok(default),
            Some(v) if range.contains(v.get_ref()) => Ok(*v.get_ref() as u32),
            Some(v) => Err(err(
                v.span().start,
                format!(
                    "scim_oauth.{what} must be between {} and {}",
                    range.start(),
                    range.end()
                ),
            )),
        }
    };
    Ok(ScimOAuthSettings {
        client_id: raw.client_id.into_inner(),
        client_secret: raw
            .client_secret
            .into_source("scim_oauth.client_secret", err)?,
        redirect_uris,
        access_token_ttl_secs: bounded(
            raw.access_token_ttl_secs,
            "access_token_ttl_secs",
            60..=86_400,
            ScimOAuthSettings::DEFAULT_ACCESS_TOKEN_TTL_SECS,
        )?,
        refresh_idle_ttl_days: bounded(
            raw.refresh_idle_ttl_days,
            "refresh_idle_ttl_days",
            1..=365,
            ScimOAuthSettings::DEFAULT_REFRESH_IDLE_TTL_DAYS,
        )?,
    })
}

/// Validates the `[gateway]` table against the regions' hosts (`hosts`: lower-case host
/// name → region index), which every certificate must serve and, with `tls_listen`,
/// cover.
fn parse_gateway(
    raw: Spanned<RawGateway>,
    hosts: &HashMap<String, usize>,
    err: &dyn Fn(usize, String) -> RegionMapError,
) -> Result<GatewaySettings, RegionMapError> {
    let table_at = raw.span().start;
    let g = raw.into_inner();
    let defaults = GatewaySettings::defaults();
    let addr = |a: &Option<Spanned<String>>| a.as_ref().map(|a| parse_addr(a, err)).transpose();
    let listen = addr(&g.listen)?;
    let tls_listen = addr(&g.tls_listen)?;
    let admin_listen = addr(&g.admin_listen)?.unwrap_or(defaults.admin_listen);
    if listen.is_none() && tls_listen.is_none() {
        return Err(err(
            table_at,
            "[gateway] needs a listener: listen (plain HTTP), tls_listen (HTTPS) or both".into(),
        ));
    }
    let int = |v: &Option<Spanned<i64>>,
               key: &str,
               range: std::ops::RangeInclusive<i64>,
               default: i64|
     -> Result<i64, RegionMapError> {
        match v {
            None => Ok(default),
            Some(v) if range.contains(v.get_ref()) => Ok(*v.get_ref()),
            Some(v) => Err(err(
                v.span().start,
                format!(
                    "gateway.{key} must be between {} and {}",
                    range.start(),
                    range.end()
                ),
            )),
        }
    };
    let d = &defaults.limits;
    // The ranges are positive, so the casts below cannot wrap.
    let secs = |v, key, range, default: Duration| {
        int(v, key, range, default.as_secs() as i64).map(|s| Duration::from_secs(s as u64))
    };
    let limits = GatewayLimits {
        max_header_bytes: int(
            &g.max_header_bytes,
            "max_header_bytes",
            1024..=1 << 20,
            d.max_header_bytes as i64,
        )? as usize,
        max_body_bytes: int(
            &g.max_body_bytes,
            "max_body_bytes",
            0..=1 << 40,
            d.max_body_bytes as i64,
        )? as u64,
        request_timeout: secs(
            &g.request_timeout_secs,
            "request_timeout_secs",
            1..=3600,
            d.request_timeout,
        )?,
        idle_timeout: secs(
            &g.idle_timeout_secs,
            "idle_timeout_secs",
            1..=3600,
            d.idle_timeout,
        )?,
        header_read_timeout: secs(
            &g.header_read_timeout_secs,
            "header_read_timeout_secs",
            1..=300,
            d.header_read_timeout,
        )?,
        max_connections: int(
            &g.max_connections,
            "max_connections",
            1..=1_000_000,
            d.max_connections as i64,
        )? as usize,
        max_connections_per_ip: int(
            &g.max_connections_per_ip,
            "max_connections_per_ip",
            1..=1_000_000,
            d.max_connections_per_ip as i64,
        )? as usize,
    };
    let interval_ms = int(
        &g.health_check_interval_ms,
        "health_check_interval_ms",
        0..=600_000,
        GatewaySettings::DEFAULT_HEALTH_CHECK_INTERVAL.as_millis() as i64,
    )?;
    if (1..100).contains(&interval_ms) {
        let at = g
            .health_check_interval_ms
            .as_ref()
            .map_or(table_at, |v| v.span().start);
        return Err(err(
            at,
            "gateway.health_check_interval_ms must be 0 (off) or at least 100".into(),
        ));
    }
    let health_check_interval =
        (interval_ms > 0).then(|| Duration::from_millis(interval_ms as u64));
    let shutdown_grace = secs(
        &g.shutdown_grace_secs,
        "shutdown_grace_secs",
        0..=3600,
        defaults.shutdown_grace,
    )?;

    let redirect_http_to_https = match &g.redirect_http_to_https {
        Some(r) if *r.get_ref() && (tls_listen.is_none() || listen.is_none()) => {
            return Err(err(
                r.span().start,
                "redirect_http_to_https needs both listen and tls_listen".into(),
            ));
        }
        Some(r) => *r.get_ref(),
        None => false,
    };

    let mut certificates = Vec::new();
    if let Some(list) = g.certificates {
        let list_at = list.span().start;
        if tls_listen.is_none() {
            return Err(err(
                list_at,
                "certificates are served only with tls_listen".into(),
            ));
        }
        for c in list.into_inner() {
            let c = c.into_inner();
            if c.hosts.get_ref().is_empty() {
                return Err(err(
                    c.hosts.span().start,
                    "a certificate needs at least one host".into(),
                ));
            }
            let mut names = Vec::with_capacity(c.hosts.get_ref().len());
            for h in c.hosts.into_inner() {
                let at = h.span().start;
                let name = h.into_inner();
                validate_certificate_host(&name, hosts).map_err(|m| err(at, m))?;
                if names.contains(&name) {
                    return Err(err(at, format!("host {name} is listed twice")));
                }
                if certificates
                    .iter()
                    .any(|other: &CertificateSettings| other.hosts.contains(&name))
                {
                    return Err(err(at, format!("host {name} has two certificates")));
                }
                names.push(name);
            }
            let path = |p: Spanned<String>, what: &str| {
                if p.get_ref().trim().is_empty() {
                    Err(err(
                        p.span().start,
                        format!("certificate {what} must name a PEM file"),
                    ))
                } else {
                    Ok(PathBuf::from(p.into_inner()))
                }
            };
            certificates.push(CertificateSettings {
                hosts: names,
                cert: path(c.cert, "cert")?,
                key: path(c.key, "key")?,
            });
        }
    }
    let settings = GatewaySettings {
        listen,
        tls_listen,
        admin_listen,
        certificates,
        redirect_http_to_https,
        limits,
        health_check_interval,
        shutdown_grace,
    };
    if let Some(tls) = &g.tls_listen {
        let mut uncovered: Vec<&str> = hosts
            .keys()
            .map(String::as_str)
            .filter(|h| settings.certificate_for(h).is_none())
            .collect();
        uncovered.sort_unstable();
        if let Some(host) = uncovered.first() {
            return Err(err(
                tls.span().start,
                format!("tls_listen: host {host} has no certificate in certificates"),
            ));
        }
    }
    Ok(settings)
}

/// A certificate's host: a lower-case DNS name or `*.parent`, serving at least one
/// region host (a name no region serves is a typo, not a plan).
fn validate_certificate_host(name: &str, hosts: &HashMap<String, usize>) -> Result<(), String> {
    let bare = name.strip_prefix("*.").unwrap_or(name);
    let dns = !bare.is_empty()
        && bare.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if !dns {
        return Err(format!(
            "certificate host {name:?} must be a lower-case DNS name or *.parent"
        ));
    }
    let serves = |h: &String| match name.strip_prefix("*.") {
        Some(parent) => h.split_once('.').is_some_and(|(_, p)| p == parent),
        None => h == name,
    };
    if !hosts.keys().any(serves) {
        return Err(format!(
            "certificate host {name} is not a host of any region"
        ));
    }
    Ok(())
}

fn parse_addr(
    s: &Spanned<String>,
    err: &dyn Fn(usize, String) -> RegionMapError,
) -> Result<SocketAddr, RegionMapError> {
    s.get_ref().parse().map_err(|_| {
        err(
            s.span().start,
            format!("{:?} is not an ip:port socket address", s.get_ref()),
        )
    })
}

fn parse_url(
    s: &Spanned<String>,
    what: &str,
    development: bool,
    err: &dyn Fn(usize, String) -> RegionMapError,
) -> Result<Url, RegionMapError> {
    let at = s.span().start;
    let url = Url::parse(s.get_ref()).map_err(|e| err(at, format!("{what}: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if development => {}
        "http" => {
            return Err(err(
                at,
                format!("{what} must be https (plain http needs development = true)"),
            ));
        }
        other => return Err(err(at, format!("{what}: unsupported scheme {other}"))),
    }
    // Hosts are looked up by name with the port stripped and any trailing dot
    // removed: an IPv6 literal or a name ending in a dot could never be routed to.
    if matches!(url.host(), Some(url::Host::Ipv6(_)))
        || url.host_str().is_some_and(|h| h.ends_with('.'))
    {
        return Err(err(
            at,
            format!(
                "{what} must name its host by DNS name or IPv4 address, without a trailing dot"
            ),
        ));
    }
    if url.host_str().is_none_or(str::is_empty)
        || url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
    {
        return Err(err(
            at,
            format!("{what} must be a bare origin such as https://api.example.com"),
        ));
    }
    Ok(url)
}

fn validate_worker_addr(s: &str) -> Result<(), String> {
    let bad = || format!("worker {s:?} must be host:port");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(bad());
    }
    if host.contains(['/', ' ', '@']) {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[gateway]
listen = "0.0.0.0:443"
admin_listen = "127.0.0.1:9000"

[regions.us]
app_url = "https://app.closedloop.sh"
api_url = "https://api.closedloop.sh"
workers = ["us-worker-0:8081", "us-worker-1:8081"]
postgres = { env = "CLOSEDLOOP_US_DATABASE_URL" }
redis = { file = "/run/secrets/us-redis-url" }

[regions.eu]
app_url = "https://eu.app.closedloop.sh"
api_url = "https://eu.api.closedloop.sh"
workers = ["eu-worker-0:8081"]
postgres = { env = "CLOSEDLOOP_EU_DATABASE_URL" }
redis = { env = "CLOSEDLOOP_EU_REDIS_URL" }
"#;

    #[test]
    fn routes_hosts_case_and_port_insensitively() {
        let map = RegionMap::parse(GOOD).unwrap();
        let us = RegionId::parse("us").unwrap();
        let eu = RegionId::parse("eu").unwrap();
        assert_eq!(map.region_for_host("api.closedloop.sh").unwrap().id, us);
        assert_eq!(map.region_for_host("APP.closedloop.sh:443").unwrap().id, us);
        assert_eq!(map.region_for_host("eu.api.closedloop.sh").unwrap().id, eu);
        assert_eq!(map.region_for_host("eu.app.closedloop.sh.").unwrap().id, eu);
        assert!(map.region_for_host("closedloop.sh").is_none());
        assert!(map.region_for_host("").is_none());
        // One trailing dot is the root label; more is no host (as at the gateway).
        assert!(map.region_for_host("api.closedloop.sh..").is_none());
        assert!(map.region_for_host("[api.closedloop.sh]x").is_none());
        assert_eq!(map.region(&us).unwrap().workers.len(), 2);
        assert_eq!(
            map.region(&us).unwrap().redis,
            SecretSource::File("/run/secrets/us-redis-url".into())
        );
        assert!(!map.development);
    }

    #[test]
    fn trusted_proxies_default_to_loopback_and_name_a_bad_entry() {
        let map = RegionMap::parse(GOOD).unwrap();
        let us = map.region(&RegionId::parse("us").unwrap()).unwrap();
        let trusted = |ip: &str| {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            us.trusted_proxies.iter().any(|n| n.contains(&ip))
        };
        assert!(trusted("127.0.0.1") && trusted("::1"));
        assert!(!trusted("10.0.0.1") && !trusted("192.168.1.1") && !trusted("fd00::1"));

        let text = GOOD.replace(
            r#"workers = ["eu-worker-0:8081"]"#,
            "workers = [\"eu-worker-0:8081\"]\ntrusted_proxies = [\"10.8.0.0/16\", \"fd12::/64\", \"192.0.2.7\"]",
        );
        let map = RegionMap::parse(&text).unwrap();
        let eu = map.region(&RegionId::parse("eu").unwrap()).unwrap();
        let nets: Vec<String> = eu.trusted_proxies.iter().map(|n| n.to_string()).collect();
        assert_eq!(nets, ["10.8.0.0/16", "fd12::/64", "192.0.2.7/32"]);

        for (bad, says) in [
            ("10.8.0.1/16", "host bits set"),
            ("ten.eight", "not an address or CIDR block"),
        ] {
            let text = GOOD.replace(
                r#"workers = ["eu-worker-0:8081"]"#,
                &format!("workers = [\"eu-worker-0:8081\"]\ntrusted_proxies = [\"{bad}\"]"),
            );
            let e = RegionMap::parse(&text).unwrap_err();
            assert!(e.message.contains(says), "{e}");
            assert!(text.lines().nth(e.line - 1).unwrap().contains(bad));
        }
    }

    #[test]
    fn duplicate_host_names_its_line() {
        let text = GOOD.replace("https://eu.api.closedloop.sh", "https://api.closedloop.sh");
        let e = RegionMap::parse(&text).unwrap_err();
        assert!(e.message.contains("already served by region"), "{e}");
        let line = text.lines().nth(e.line - 1).unwrap();
        assert!(line.contains("api_url"), "line {}: {line}", e.line);
    }

    #[test]
    fn region_without_workers_names_its_line() {
        let text = GOOD.replace(r#"workers = ["eu-worker-0:8081"]"#, "workers = []");
        let e = RegionMap::parse(&text).unwrap_err();
        assert!(e.message.contains("no workers"), "{e}");
        assert_eq!(text.lines().nth(e.line - 1).unwrap(), "workers = []");
    }

    #[test]
    fn malformed_toml_names_its_line() {
        let text = GOOD.replace("[regions.eu]", "[regions.eu");
        let e = RegionMap::parse(&text).unwrap_err();
        assert!(
            text.lines()
                .nth(e.line - 1)
                .unwrap()
                .contains("[regions.eu"),
            "{e}"
        );
    }

    #[test]
    fn literal_credentials_and_unknown_keys_are_refused() {
        let text = GOOD.replace(
            r#"postgres = { env = "CLOSEDLOOP_EU_DATABASE_URL" }"#,
            r#"postgres = "postgres://user:pw@db/eu""#,
        );
        assert!(RegionMap::parse(&text).is_err());
        let text = GOOD.replace("[regions.eu]", "[regions.eu]\npassword = \"x\"");
        let e = RegionMap::parse(&text).unwrap_err();
        assert!(e.message.contains("password"), "{e}");
    }

    #[test]
    fn plain_http_needs_the_development_switch() {
        let text = GOOD.replace("https://eu.app", "http://eu.app");
        assert!(
            RegionMap::parse(&text)
                .unwrap_err()
                .message
                .contains("https")
        );
        let dev = format!("development = true\n{text}");
        assert!(RegionMap::parse(&dev).unwrap().development);
    }

    #[test]
    fn bad_worker_addresses_are_refused() {
        for bad in ["eu-worker-0", "eu-worker-0:0", ":8081", "http://x:1"] {
            let text = GOOD.replace("eu-worker-0:8081", bad);
            assert!(RegionMap::parse(&text).is_err(), "{bad}");
        }
    }

    const OKTA_CALLBACK: &str =
        "https://system-admin.okta.com/admin/app/cpc/{appName}/oauth/callback";

    fn with_oauth(table: &str) -> String {
        GOOD.replace(
            "redis = { env = \"CLOSEDLOOP_EU_REDIS_URL\" }\n",
            &format!("redis = {{ env = \"CLOSEDLOOP_EU_REDIS_URL\" }}\n\n[regions.eu.scim_oauth]\n{table}"),
        )
    }

    #[test]
    fn scim_oauth_table_with_defaults() {
        let text = with_oauth(&format!(
            "client_id = \"closedloop-okta-eu\"\n\
             client_secret = {{ file = \"/run/secrets/closedloop-eu/scim-oauth-client-secret\" }}\n\
             redirect_uris = [\"{OKTA_CALLBACK}\"]\n"
        ));
        let map = RegionMap::parse(&text).unwrap();
        let eu = map.region(&RegionId::parse("eu").unwrap()).unwrap();
        let o = eu.scim_oauth.as_ref().expect("configured");
        assert_eq!(o.client_id, "closedloop-okta-eu");
        assert_eq!(
            o.client_secret,
            SecretSource::File("/run/secrets/closedloop-eu/scim-oauth-client-secret".into())
        );
        assert_eq!(o.access_token_ttl_secs, 3600);
        assert_eq!(o.refresh_idle_ttl_days, 90);
        assert!(o.allows_redirect(
            "https://system-admin.okta.com/admin/app/cpc/closedloop_ai_1/oauth/callback"
        ));
        let us = map.region(&RegionId::parse("us").unwrap()).unwrap();
        assert!(us.scim_oauth.is_none(), "the table is optional");
    }

    #[test]
    fn scim_oauth_errors_name_their_line() {
        let base = format!(
            "client_id = \"c\"\nclient_secret = {{ env = \"S\" }}\nredirect_uris = [\"{OKTA_CALLBACK}\"]\n"
        );
        for (bad, needle) in [
            (
                base.replace("client_id = \"c\"", "client_id = \"a b\""),
                "client_id",
            ),
            (
                base.replace("{ env = \"S\" }", "\"literal\""),
                "client_secret",
            ),
            (
                base.replace(&format!("[\"{OKTA_CALLBACK}\"]"), "[]"),
                "redirect_uris",
            ),
            (
                base.replace("https://system-admin", "http://system-admin"),
                "redirect_uris",
            ),
            (
                format!("{base}access_token_ttl_secs = 5\n"),
                "access_token_ttl_secs",
            ),
            (
                format!("{base}refresh_idle_ttl_days = 0\n"),
                "refresh_idle_ttl_days",
            ),
            (format!("{base}secret = \"x\"\n"), "secret"),
        ] {
            let text = with_oauth(&bad);
            let e = RegionMap::parse(&text).unwrap_err();
            let line = text.lines().nth(e.line - 1).unwrap_or_default();
            assert!(
                line.contains(needle),
                "{needle}: line {} {line:?}: {e}",
                e.line
            );
        }
    }

    #[test]
    fn okta_redirect_patterns_match_one_app_name_segment() {
        let p = RedirectUriPattern::parse(OKTA_CALLBACK, false).unwrap();
        for good in [
            "https://system-admin.okta.com/admin/app/cpc/closedloop/oauth/callback",
            "https://system-admin.okta.com/admin/app/cpc/Closed-Loop_2/oauth/callback",
        ] {
            assert!(p.matches(good), "{good}");
        }
        for bad in [
            "https://system-admin.okta.com/admin/app/cpc//oauth/callback",
            "https://system-admin.okta.com/admin/app/cpc/a/b/oauth/callback",
            "https://system-admin.okta.com/admin/app/cpc/a.b/oauth/callback",
            "https://system-admin.okta.com/admin/app/cpc/app/oauth/callback?x=1",
            "https://system-admin.okta.com/admin/app/cpc/app/oauth/callback#f",
            "https://system-admin.okta.com/admin/app/cpc/app/oauth/callback/",
            "https://system-admin.okta.com:443/admin/app/cpc/app/oauth/callback",
            "https://system-admin.okta.com.evil.test/admin/app/cpc/app/oauth/callback",
            "https://evil.test/admin/app/cpc/app/oauth/callback",
            "http://system-admin.okta.com/admin/app/cpc/app/oauth/callback",
            "https://SYSTEM-ADMIN.okta.com/admin/app/cpc/app/oauth/callback",
            "",
        ] {
            assert!(!p.matches(bad), "{bad}");
        }
        let long = format!(
            "https://system-admin.okta.com/admin/app/cpc/{}/oauth/callback",
            "a".repeat(101)
        );
        assert!(!p.matches(&long));
    }

    #[test]
    fn loopback_patterns_need_the_development_switch() {
        let dev = "http://127.0.0.1:*/admin/app/cpc/{appName}/oauth/callback";
        assert!(RedirectUriPattern::parse(dev, false).is_err());
        let p = RedirectUriPattern::parse(dev, true).unwrap();
        assert!(p.matches("http://127.0.0.1:8080/admin/app/cpc/app/oauth/callback"));
        for bad in [
            "http://127.0.0.1/admin/app/cpc/app/oauth/callback",
            "http://127.0.0.1:0/admin/app/cpc/app/oauth/callback",
            "http://127.0.0.1:080/admin/app/cpc/app/oauth/callback",
            "http://127.0.0.1:70000/admin/app/cpc/app/oauth/callback",
            "http://127.0.0.1:80@evil.test/admin/app/cpc/app/oauth/callback",
        ] {
            assert!(!p.matches(bad), "{bad}");
        }
        for refused in [
            "http://example.com/cb",
            "https://example.com:*/cb",
            "https://*.okta.com/cb",
            "https://example.com",
            "https://example.com/a/{appName}x/cb",
            "https://example.com/a//cb",
            "https://user@example.com/cb",
            "ftp://example.com/cb",
        ] {
            assert!(
                RedirectUriPattern::parse(refused, true).is_err(),
                "{refused}"
            );
        }
    }

    #[test]
    fn the_production_map_allows_exactly_oktas_callbacks() {
        let map = RegionMap::parse(include_str!("../../regions.toml")).unwrap();
        for r in map.regions() {
            let o = r
                .scim_oauth
                .as_ref()
                .expect("every region serves SCIM OAuth");
            assert!(
                matches!(&o.client_secret, SecretSource::File(p) if p.starts_with(&format!("/run/secrets/closedloop-{}/", r.id))),
                "{:?}",
                o.client_secret
            );
            let patterns: Vec<&str> = o.redirect_uris.iter().map(|p| p.as_str()).collect();
            let expected: Vec<String> = [
                "okta.com",
                "okta-emea.com",
                "oktapreview.com",
                "trexcloud.com",
            ]
            .iter()
            .map(|d| format!("https://system-admin.{d}/admin/app/cpc/{{appName}}/oauth/callback"))
            .collect();
            assert_eq!(patterns, expected);
        }
    }

    #[test]
    fn introspection_table() {
        let text = GOOD.replace(
            "redis = { env = \"CLOSEDLOOP_EU_REDIS_URL\" }\n",
            "redis = { env = \"CLOSEDLOOP_EU_REDIS_URL\" }\n\n[regions.eu.introspection]\n\
             client_id = \"closedloop-api-eu\"\nclient_secret = { env = \"EU_INTROSPECTION\" }\n",
        );
        let map = RegionMap::parse(&text).unwrap();
        let eu = map.region(&RegionId::parse("eu").unwrap()).unwrap();
        let i = eu.introspection.as_ref().expect("configured");
        assert_eq!(i.client_id, "closedloop-api-eu");
        assert_eq!(
            i.client_secret,
            SecretSource::Env("EU_INTROSPECTION".into())
        );
        for (good, bad, key) in [
            ("\"closedloop-api-eu\"", "\"a:b\"", "client_id"),
            (
                "{ env = \"EU_INTROSPECTION\" }",
                "\"literal\"",
                "client_secret",
            ),
        ] {
            let text = text.replace(good, bad);
            let e = RegionMap::parse(&text).unwrap_err();
            let line = text.lines().nth(e.line - 1).unwrap_or_default();
            assert!(
                line.starts_with(key),
                "{key}: line {} {line:?}: {e}",
                e.line
            );
        }
    }

    #[test]
    fn the_production_map_names_introspection_secret_files() {
        let map = RegionMap::parse(include_str!("../../regions.toml")).unwrap();
        for r in map.regions() {
            let i = r
                .introspection
                .as_ref()
                .expect("every region serves introspection");
            assert_eq!(i.client_id, format!("closedloop-introspection-{}", r.id));
            assert!(
                matches!(&i.client_secret, SecretSource::File(p) if p.starts_with(&format!("/run/secrets/closedloop-{}/", r.id))),
                "{:?}",
                i.client_secret
            );
        }
    }

    /// `GOOD` with its `[gateway]` table replaced by `table`.
    fn with_gateway(table: &str) -> String {
        GOOD.replace(
            "listen = \"0.0.0.0:443\"\nadmin_listen = \"127.0.0.1:9000\"\n",
            table,
        )
    }

    const CERTS: &str = r#"certificates = [
  { hosts = ["*.closedloop.sh"], cert = "/etc/closedloop/tls/us.pem", key = "/etc/closedloop/tls/us.key" },
  { hosts = ["eu.api.closedloop.sh", "eu.app.closedloop.sh"], cert = "/etc/closedloop/tls/eu.pem", key = "/etc/closedloop/tls/eu.key" },
]
"#;

    fn gateway_error(table: &str) -> (String, RegionMapError) {
        let text = with_gateway(table);
        let e = RegionMap::parse(&text).unwrap_err();
        let line = text.lines().nth(e.line - 1).unwrap_or_default().to_owned();
        (line, e)
    }

    #[test]
    fn gateway_defaults_without_a_table_or_keys() {
        let text = GOOD.replace(
            "[gateway]\nlisten = \"0.0.0.0:443\"\nadmin_listen = \"127.0.0.1:9000\"\n",
            "",
        );
        let g = RegionMap::parse(&text).unwrap().gateway;
        assert_eq!(g.listen, Some("0.0.0.0:8080".parse().unwrap()));
        assert_eq!(g.tls_listen, None);
        assert_eq!(g.limits, GatewayLimits::default());
        assert_eq!(g.health_check_interval, Some(Duration::from_secs(2)));

        let g = RegionMap::parse(GOOD).unwrap().gateway;
        assert_eq!(g.listen, Some("0.0.0.0:443".parse().unwrap()));
        assert_eq!(g.admin_listen, "127.0.0.1:9000".parse().unwrap());
        assert!(g.certificates.is_empty() && !g.redirect_http_to_https);
        assert_eq!(g.shutdown_grace, Duration::from_secs(10));
    }

    #[test]
    fn gateway_tls_limits_and_health_keys() {
        let text = with_gateway(&format!(
            "listen = \"0.0.0.0:80\"\ntls_listen = \"0.0.0.0:443\"\nadmin_listen = \"127.0.0.1:9000\"\n\
             redirect_http_to_https = true\n{CERTS}max_header_bytes = 16384\nmax_body_bytes = 1048576\n\
             request_timeout_secs = 20\nidle_timeout_secs = 30\nheader_read_timeout_secs = 5\n\
             max_connections = 2000\nmax_connections_per_ip = 100\nhealth_check_interval_ms = 0\n\
             shutdown_grace_secs = 25\n"
        ));
        let g = RegionMap::parse(&text).unwrap().gateway;
        assert_eq!(g.tls_listen, Some("0.0.0.0:443".parse().unwrap()));
        assert!(g.redirect_http_to_https);
        assert_eq!(g.certificates.len(), 2);
        assert_eq!(
            g.certificate_for("app.closedloop.sh").unwrap().cert,
            PathBuf::from("/etc/closedloop/tls/us.pem")
        );
        assert_eq!(
            g.certificate_for("eu.api.closedloop.sh").unwrap().key,
            PathBuf::from("/etc/closedloop/tls/eu.key")
        );
        assert!(g.certificate_for("x.api.closedloop.sh").is_none());
        assert!(g.certificate_for("closedloop.sh").is_none());
        assert_eq!(
            g.limits,
            GatewayLimits {
                max_header_bytes: 16384,
                max_body_bytes: 1 << 20,
                request_timeout: Duration::from_secs(20),
                idle_timeout: Duration::from_secs(30),
                header_read_timeout: Duration::from_secs(5),
                max_connections: 2000,
                max_connections_per_ip: 100,
            }
        );
        assert_eq!(g.health_check_interval, None);
        assert_eq!(g.shutdown_grace, Duration::from_secs(25));

        // TLS only: the plain listener is optional.
        let text = with_gateway(&format!("tls_listen = \"0.0.0.0:443\"\n{CERTS}"));
        assert_eq!(RegionMap::parse(&text).unwrap().gateway.listen, None);
    }

    #[test]
    fn gateway_errors_name_their_line() {
        let tls = format!("listen = \"0.0.0.0:80\"\ntls_listen = \"0.0.0.0:443\"\n{CERTS}");
        for (table, needle, message) in [
            (
                "listen = \"0.0.0.0:80\"\nmax_body_bytes = -1\n".to_owned(),
                "max_body_bytes",
                "between",
            ),
            (
                "listen = \"0.0.0.0:80\"\nmax_header_bytes = 10\n".to_owned(),
                "max_header_bytes",
                "between",
            ),
            (
                "listen = \"0.0.0.0:80\"\nidle_timeout_secs = 0\n".to_owned(),
                "idle_timeout_secs",
                "between",
            ),
            (
                "listen = \"0.0.0.0:80\"\nhealth_check_interval_ms = 5\n".to_owned(),
                "health_check_interval_ms",
                "at least 100",
            ),
            (
                "listen = \"0.0.0.0:80\"\nmax_connections = 0\n".to_owned(),
                "max_connections",
                "between",
            ),
            (
                "listen = \"0.0.0.0:80\"\ntls_port = 443\n".to_owned(),
                "tls_port",
                "unknown field",
            ),
            (
                "listen = \"0.0.0.0:80\"\nredirect_http_to_https = true\n".to_owned(),
                "redirect_http_to_https",
                "tls_listen",
            ),
            (
                "tls_listen = \"0.0.0.0:443\"\n".to_owned(),
                "tls_listen",
                "no certificate",
            ),
            (
                "tls_listen = \"nowhere\"\n".to_owned(),
                "tls_listen",
                "socket address",
            ),
            (
                format!("listen = \"0.0.0.0:80\"\n{CERTS}"),
                "certificates",
                "tls_listen",
            ),
            (
                tls.replace(", \"eu.app.closedloop.sh\"", ""),
                "tls_listen",
                "eu.app.closedloop.sh has no certificate",
            ),
            (
                tls.replace(
                    "\"*.closedloop.sh\"",
                    "\"*.closedloop.sh\", \"www.closedloop.sh\"",
                ),
                "www.closedloop.sh",
                "not a host of any region",
            ),
            (
                tls.replace(
                    "\"*.closedloop.sh\"",
                    "\"*.closedloop.sh\", \"eu.app.closedloop.sh\"",
                ),
                "\"eu.app.closedloop.sh\"]",
                "two certificates",
            ),
            (
                tls.replace(
                    "\"*.closedloop.sh\"",
                    "\"*.closedloop.sh\", \"*.closedloop.sh\"",
                ),
                "*.closedloop.sh",
                "listed twice",
            ),
            (
                tls.replace("\"*.closedloop.sh\"", "\"*.CLOSEDLOOP.sh\""),
                "CLOSEDLOOP",
                "lower-case",
            ),
            (
                tls.replace("cert = \"/etc/closedloop/tls/eu.pem\"", "cert = \"\""),
                "eu.key",
                "PEM file",
            ),
            (
                tls.replace("hosts = [\"*.closedloop.sh\"]", "hosts = []"),
                "hosts = []",
                "at least one host",
            ),
            (
                tls.replace("key = \"/etc/closedloop/tls/eu.key\"", "kye = \"x\""),
                "kye",
                "unknown field",
            ),
        ] {
            let (line, e) = gateway_error(&table);
            assert!(e.message.contains(message), "{needle}: {e}");
            assert!(
                line.contains(needle),
                "{needle}: line {} {line:?}: {e}",
                e.line
            );
        }
        let (_, e) = gateway_error("admin_listen = \"127.0.0.1:9000\"\n");
        assert!(e.message.contains("needs a listener"), "{e}");
        assert!(e.line > 1);
    }

    #[test]
    fn workers_may_name_their_admin_address() {
        let text = GOOD.replace(
            r#"workers = ["us-worker-0:8081", "us-worker-1:8081"]"#,
            r#"workers = ["us-worker-0:8081", { addr = "us-worker-1:8081", admin = "10.0.0.7:9191" }]"#,
        );
        let map = RegionMap::parse(&text).unwrap();
        let us = map.region(&RegionId::parse("us").unwrap()).unwrap();
        assert_eq!(us.workers, ["us-worker-0:8081", "us-worker-1:8081"]);
        assert_eq!(us.worker_admin(0), None);
        assert_eq!(us.worker_admin(1), Some("10.0.0.7:9191"));

        // With worker_admin_listen, every plain entry's admin is on its own host.
        let text = text.replace(
            "redis = { file = \"/run/secrets/us-redis-url\" }",
            "redis = { file = \"/run/secrets/us-redis-url\" }\nworker_admin_listen = \"0.0.0.0:9091\"",
        );
        let map = RegionMap::parse(&text).unwrap();
        let us = map.region(&RegionId::parse("us").unwrap()).unwrap();
        assert_eq!(us.worker_admin(0), Some("us-worker-0:9091"));
        assert_eq!(us.worker_admin(1), Some("10.0.0.7:9191"));

        for bad in [
            r#"{ addr = "us-worker-1:8081" }"#,
            r#"{ addr = "us-worker-1:8081", admin = "nope" }"#,
            r#"{ addr = "us-worker-1:8081", admin = "h:1", extra = 1 }"#,
            "42",
        ] {
            let text = GOOD.replace(r#""us-worker-1:8081""#, bad);
            let e = RegionMap::parse(&text).unwrap_err();
            let line = text.lines().nth(e.line - 1).unwrap();
            assert!(line.starts_with("workers"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_production_map_serves_tls_for_every_host() {
        let map = RegionMap::parse(include_str!("../../regions.toml")).unwrap();
        let g = &map.gateway;
        assert!(g.tls_listen.is_some() && g.redirect_http_to_https);
        for r in map.regions() {
            for host in [r.app_host(), r.api_host()] {
                let cert = g.certificate_for(host).expect("a certificate per host");
                assert!(cert.cert.starts_with("/etc/closedloop/tls/"), "{cert:?}");
            }
            for i in 0..r.workers.len() {
                assert!(r.worker_admin(i).is_some_and(|a| a.ends_with(":9091")));
            }
        }
    }

    #[test]
    fn unroutable_hosts_are_refused() {
        for bad in ["http://[::1]:8080", "https://app.example."] {
            let text = format!(
                "development = true\n{}",
                GOOD.replace("https://eu.app.closedloop.sh", bad)
            );
            let e = RegionMap::parse(&text).unwrap_err();
            assert!(e.message.contains("DNS name"), "{bad}: {e}");
        }
    }

    #[test]
    fn strips_ports() {
        assert_eq!(strip_port("a.b:80"), "a.b");
        assert_eq!(strip_port("a.b"), "a.b");
        assert_eq!(strip_port("[::1]:80"), "::1");
        assert_eq!(strip_port("[::1]"), "::1");
        // Found by the gateway_headers fuzz target: text after the brackets is no port.
        assert_eq!(
            strip_port("[api.closedloop.sh]anything"),
            "[api.closedloop.sh]anything"
        );
        assert_eq!(strip_port("[::1]:8x"), "[::1]:8x");
    }
}
