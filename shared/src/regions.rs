//! The region map, `regions.toml`: which hosts belong to which region, where the
//! region's workers listen, and where a worker finds its stores. The gateway and every
//! worker read the same file. Parsing is strict: an unknown key, a malformed URL, a host
//! claimed by two regions or a region without workers is refused with the line it is on.
//! A region may carry its SCIM OAuth server (`[regions.<id>.scim_oauth]`): one client,
//! its secret's source and the redirect URIs Okta may use.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;

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

/// The gateway's own listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySettings {
    /// Public listener.
    pub listen: SocketAddr,
    /// Admin listener (`/healthz`, `/metrics`); never the public port.
    pub admin_listen: SocketAddr,
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
    /// The region's SCIM OAuth server (`[regions.<id>.scim_oauth]`): the one client
    /// Okta uses to obtain SCIM bearer tokens. `None` leaves the endpoints answering
    /// that the server is not configured.
    pub scim_oauth: Option<ScimOAuthSettings>,
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
        let gateway = match raw.gateway {
            Some(g) => GatewaySettings {
                listen: parse_addr(&g.listen, &err)?,
                admin_listen: parse_addr(&g.admin_listen, &err)?,
            },
            None => GatewaySettings {
                listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
                admin_listen: SocketAddr::from(([127, 0, 0, 1], 9000)),
            },
        };

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
            let mut workers = Vec::with_capacity(r.workers.get_ref().len());
            for w in r.workers.into_inner() {
                validate_worker_addr(w.get_ref()).map_err(|m| err(w.span().start, m))?;
                workers.push(w.into_inner());
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
                scim_oauth: r
                    .scim_oauth
                    .map(|o| parse_scim_oauth(o, development, &err))
                    .transpose()?,
            });
        }
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
        let name = strip_port(host).trim_end_matches('.').to_ascii_lowercase();
        self.hosts.get(&name).map(|&i| &self.regions[i])
    }
}

/// Removes a `:port` suffix from a host (also from a bracketed IPv6 literal).
pub fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
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
    gateway: Option<RawGateway>,
    #[serde(default)]
    regions: BTreeMap<Spanned<String>, Spanned<RawRegion>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    listen: Spanned<String>,
    admin_listen: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegion {
    app_url: Spanned<String>,
    api_url: Spanned<String>,
    workers: Spanned<Vec<Spanned<String>>>,
    worker_listen: Option<Spanned<String>>,
    worker_admin_listen: Option<Spanned<String>>,
    postgres: Spanned<RawSecret>,
    redis: Spanned<RawSecret>,
    encryption_key: Option<Spanned<RawSecret>>,
    scim_oauth: Option<Spanned<RawScimOAuth>>,
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
        assert_eq!(map.region(&us).unwrap().workers.len(), 2);
        assert_eq!(
            map.region(&us).unwrap().redis,
            SecretSource::File("/run/secrets/us-redis-url".into())
        );
        assert!(!map.development);
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
    fn strips_ports() {
        assert_eq!(strip_port("a.b:80"), "a.b");
        assert_eq!(strip_port("a.b"), "a.b");
        assert_eq!(strip_port("[::1]:80"), "::1");
    }
}
