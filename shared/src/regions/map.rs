//! The region/host model: [`RegionMap`], its [`Region`]s with their public URLs, worker
//! replicas, stores and OAuth clients, and host routing ([`RegionMap::region_for_host`],
//! [`strip_port`]). [`RegionMap::parse`] is the one entry point that reads a
//! `regions.toml`; it hands the `[gateway]` table to [`GatewaySettings`] and turns any
//! refusal's offset into a line.

use std::collections::HashMap;
use std::net::SocketAddr;

use toml::Spanned;
use url::Url;

use super::error::{ConfigError, Refusal, RegionMapError};
use super::gateway::GatewaySettings;
use super::raw::{
    RawFile, RawIntrospection, RawScimOAuth, RawWorker, RawWorkerTable, in_range, socket_addr,
};
use super::redirect::RedirectUriPattern;
use super::secret::SecretSource;
use crate::ids::RegionId;

/// A validated region map.
#[derive(Debug, Clone)]
pub struct RegionMap {
    /// The development switch (DESIGN.md, Configuration): allows plain-HTTP URLs and
    /// loopback Okta domains. Off unless the file says `development = true`.
    pub development: bool,
    /// Where the gateway listens.
    pub gateway: GatewaySettings,
    /// `[telemetry]`: where both binaries export traces, and the sampling ratio.
    pub telemetry: crate::telemetry::TelemetrySettings,
    /// The regions, in file order.
    regions: Vec<Region>,
    /// Lower-case host name (no port) → index into `regions`.
    hosts: HashMap<String, usize>,
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
    /// How many days the region keeps audit events (`audit_retention_days`, default
    /// [`Region::DEFAULT_AUDIT_RETENTION_DAYS`], 1 to 3650): the workers prune older
    /// ones. Per region, as each region's data stays under its own rules.
    pub audit_retention_days: u32,
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

    /// Validates `[regions.<id>.scim_oauth]`.
    fn from_raw(raw: Spanned<RawScimOAuth>, development: bool) -> Result<Self, Refusal> {
        let raw = raw.into_inner();
        if !valid_client_id(raw.client_id.get_ref()) {
            return Err(ConfigError::ClientId {
                table: "scim_oauth",
            }
            .at(raw.client_id.span().start));
        }
        if raw.redirect_uris.get_ref().is_empty() {
            return Err(ConfigError::NoRedirectUris.at(raw.redirect_uris.span().start));
        }
        let mut redirect_uris = Vec::with_capacity(raw.redirect_uris.get_ref().len());
        for uri in raw.redirect_uris.into_inner() {
            redirect_uris.push(
                RedirectUriPattern::parse(uri.get_ref(), development)
                    .map_err(|e| e.at(uri.span().start))?,
            );
        }
        let client_secret = SecretSource::from_raw(raw.client_secret, "scim_oauth.client_secret")?;
        // The ranges are positive and below `u32::MAX`, so the casts cannot wrap.
        let access_token_ttl_secs = in_range(
            &raw.access_token_ttl_secs,
            "scim_oauth.access_token_ttl_secs",
            60..=86_400,
            Self::DEFAULT_ACCESS_TOKEN_TTL_SECS.into(),
        )? as u32;
        let refresh_idle_ttl_days = in_range(
            &raw.refresh_idle_ttl_days,
            "scim_oauth.refresh_idle_ttl_days",
            1..=365,
            Self::DEFAULT_REFRESH_IDLE_TTL_DAYS.into(),
        )? as u32;
        Ok(Self {
            client_id: raw.client_id.into_inner(),
            client_secret,
            redirect_uris,
            access_token_ttl_secs,
            refresh_idle_ttl_days,
        })
    }
}

impl IntrospectionSettings {
    /// Validates `[regions.<id>.introspection]`.
    fn from_raw(raw: Spanned<RawIntrospection>) -> Result<Self, Refusal> {
        let raw = raw.into_inner();
        if !valid_client_id(raw.client_id.get_ref()) {
            return Err(ConfigError::ClientId {
                table: "introspection",
            }
            .at(raw.client_id.span().start));
        }
        Ok(Self {
            client_id: raw.client_id.into_inner(),
            client_secret: SecretSource::from_raw(
                raw.client_secret,
                "introspection.client_secret",
            )?,
        })
    }
}

impl Region {
    /// The audit retention of a region whose map does not set `audit_retention_days`.
    pub const DEFAULT_AUDIT_RETENTION_DAYS: u16 = 90;

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

impl RegionMap {
    /// Parses and validates the text of a `regions.toml`.
    pub fn parse(text: &str) -> Result<Self, RegionMapError> {
        Self::from_text(text).map_err(|refusal| RegionMapError::locate(text, refusal))
    }

    /// [`RegionMap::parse`] with refusals still at their byte offsets. The checks run in
    /// file order, so the first refusal reported is the first one an operator meets.
    fn from_text(text: &str) -> Result<Self, Refusal> {
        let raw = RawFile::from_toml(text)?;

        let development = raw.development.unwrap_or(false);

        if raw.regions.is_empty() {
            return Err(ConfigError::NoRegions.at(0));
        }
        let mut regions = Vec::with_capacity(raw.regions.len());
        let mut hosts: HashMap<String, usize> = HashMap::new();
        for (name, raw_region) in raw.regions {
            let name_at = name.span().start;
            let id =
                RegionId::parse(name.get_ref()).map_err(|e| ConfigError::from(e).at(name_at))?;
            let r = raw_region.into_inner();
            let app_url = parse_url(&r.app_url, "app_url", development)?;
            let api_url = parse_url(&r.api_url, "api_url", development)?;
            if r.workers.get_ref().is_empty() {
                return Err(ConfigError::NoWorkers { region: id }.at(r.workers.span().start));
            }
            let worker_admin_port = match &r.worker_admin_listen {
                Some(a) => Some(socket_addr(a)?.port()),
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
                validate_worker_addr(&addr).map_err(|e| e.at(at))?;
                let admin = match admin {
                    Some(admin) => {
                        validate_worker_addr(&admin).map_err(|e| e.at(at))?;
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
                    return Err(ConfigError::HostTaken {
                        host,
                        region: other.id.clone(),
                    }
                    .at(at));
                }
                hosts.insert(host, index);
            }
            if app_url.host_str() == api_url.host_str() {
                return Err(ConfigError::SameHost { region: id }.at(r.api_url.span().start));
            }
            regions.push(Region {
                id,
                app_url,
                api_url,
                workers,
                worker_admins,
                worker_listen: match r.worker_listen {
                    Some(a) => socket_addr(&a)?,
                    None => SocketAddr::from(([0, 0, 0, 0], 8081)),
                },
                worker_admin_listen: match r.worker_admin_listen {
                    Some(a) => socket_addr(&a)?,
                    None => SocketAddr::from(([127, 0, 0, 1], 9091)),
                },
                postgres: SecretSource::from_raw(r.postgres, "postgres")?,
                redis: SecretSource::from_raw(r.redis, "redis")?,
                encryption_key: r
                    .encryption_key
                    .map(|k| SecretSource::from_raw(k, "encryption_key"))
                    .transpose()?,
                previous_encryption_keys: r
                    .previous_encryption_keys
                    .unwrap_or_default()
                    .into_iter()
                    .map(|k| SecretSource::from_raw(k, "previous_encryption_keys"))
                    .collect::<Result<_, _>>()?,
                scim_oauth: r
                    .scim_oauth
                    .map(|o| ScimOAuthSettings::from_raw(o, development))
                    .transpose()?,
                introspection: r
                    .introspection
                    .map(IntrospectionSettings::from_raw)
                    .transpose()?,
                trusted_proxies: match r.trusted_proxies {
                    Some(list) => parse_trusted_proxies(list.into_inner())?,
                    None => default_trusted_proxies(),
                },
                // The range is positive and below `u32::MAX`, so the cast cannot wrap.
                audit_retention_days: in_range(
                    &r.audit_retention_days,
                    "audit_retention_days",
                    1..=3650,
                    Region::DEFAULT_AUDIT_RETENTION_DAYS.into(),
                )? as u32,
            });
        }
        let gateway = match raw.gateway {
            Some(g) => GatewaySettings::from_raw(g, &hosts)?,
            None => GatewaySettings::defaults(),
        };
        let telemetry = match raw.telemetry {
            Some(t) => parse_telemetry(t.into_inner())?,
            None => crate::telemetry::TelemetrySettings::default(),
        };
        Ok(Self {
            development,
            gateway,
            telemetry,
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

/// `[telemetry]`: an `http(s)` collector URL (plain HTTP is normal for a collector on
/// the host or in the cluster), and a ratio within 0.0–1.0 (unset: see
/// [`TelemetrySettings::sampling_ratio`](crate::telemetry::TelemetrySettings)).
fn parse_telemetry(
    raw: super::raw::RawTelemetry,
) -> Result<crate::telemetry::TelemetrySettings, Refusal> {
    let otlp_endpoint = match &raw.otlp_endpoint {
        None => None,
        Some(s) => {
            let at = s.span().start;
            let url = Url::parse(s.get_ref())
                .map_err(|e| ConfigError::OtlpEndpoint(e.to_string()).at(at))?;
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return Err(ConfigError::OtlpEndpoint(format!("{:?}", s.get_ref())).at(at));
            }
            if url.query().is_some() || !url.username().is_empty() || url.password().is_some() {
                return Err(ConfigError::OtlpEndpoint(
                    "no credentials or query in the URL".to_owned(),
                )
                .at(at));
            }
            Some(url)
        }
    };
    let sampling_ratio = match &raw.sampling_ratio {
        None => None,
        Some(r) if (0.0..=1.0).contains(r.get_ref()) => Some(*r.get_ref()),
        Some(r) => return Err(ConfigError::SamplingRatio.at(r.span().start)),
    };
    Ok(crate::telemetry::TelemetrySettings {
        otlp_endpoint,
        sampling_ratio,
    })
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
fn parse_trusted_proxies(list: Vec<Spanned<String>>) -> Result<Vec<ipnet::IpNet>, Refusal> {
    list.into_iter()
        .map(|entry| {
            let at = entry.span().start;
            let text = entry.into_inner();
            let net = match text.parse::<ipnet::IpNet>() {
                Ok(net) => net,
                Err(_) => match text.parse::<std::net::IpAddr>() {
                    Ok(ip) => ipnet::IpNet::from(ip),
                    Err(_) => return Err(ConfigError::TrustedProxy { entry: text }.at(at)),
                },
            };
            if net.trunc() != net {
                return Err(ConfigError::TrustedProxyHostBits {
                    entry: text,
                    network: net.trunc(),
                }
                .at(at));
            }
            Ok(net)
        })
        .collect()
}

/// Whether `id` is a client id that HTTP Basic carries without encoding.
fn valid_client_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// `app_url` or `api_url` (`key`): a bare `https` origin (`http` in development) whose
/// host can be routed to by name.
fn parse_url(s: &Spanned<String>, key: &'static str, development: bool) -> Result<Url, Refusal> {
    let at = s.span().start;
    let url = Url::parse(s.get_ref()).map_err(|error| ConfigError::Url { key, error }.at(at))?;
    match url.scheme() {
        "https" => {}
        "http" if development => {}
        "http" => return Err(ConfigError::PlainHttp { key }.at(at)),
        other => {
            return Err(ConfigError::UnsupportedScheme {
                key,
                scheme: other.to_owned(),
            }
            .at(at));
        }
    }
    // Hosts are looked up by name with the port stripped and any trailing dot
    // removed: an IPv6 literal or a name ending in a dot could never be routed to.
    if matches!(url.host(), Some(url::Host::Ipv6(_)))
        || url.host_str().is_some_and(|h| h.ends_with('.'))
    {
        return Err(ConfigError::UnroutableHost { key }.at(at));
    }
    if url.host_str().is_none_or(str::is_empty)
        || url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
    {
        return Err(ConfigError::NotAnOrigin { key }.at(at));
    }
    Ok(url)
}

/// A worker's address: `host:port` with a non-zero port and nothing URL-like in the
/// host.
fn validate_worker_addr(s: &str) -> Result<(), ConfigError> {
    let bad = || ConfigError::WorkerAddress {
        worker: s.to_owned(),
    };
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
    use super::super::fixtures::{GOOD, OKTA_CALLBACK};
    use super::*;

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
    fn telemetry_is_off_by_default_and_its_values_are_checked() {
        let map = RegionMap::parse(GOOD).unwrap();
        assert_eq!(
            map.telemetry,
            crate::telemetry::TelemetrySettings::default()
        );
        let with = |table: &str| format!("[telemetry]\n{table}\n{GOOD}");
        let map = RegionMap::parse(&with(
            "otlp_endpoint = \"http://collector:4318\"\nsampling_ratio = 0.01",
        ))
        .unwrap();
        assert_eq!(
            map.telemetry.otlp_endpoint.unwrap().as_str(),
            "http://collector:4318/"
        );
        assert_eq!(map.telemetry.sampling_ratio, Some(0.01));
        for (bad, key) in [
            ("sampling_ratio = 1.5", "sampling_ratio"),
            ("sampling_ratio = -0.1", "sampling_ratio"),
            ("otlp_endpoint = \"collector:4318\"", "otlp_endpoint"),
            ("otlp_endpoint = \"ftp://collector\"", "otlp_endpoint"),
            (
                "otlp_endpoint = \"http://u:p@collector:4318\"",
                "otlp_endpoint",
            ),
            ("endpoint = \"http://collector:4318\"", "endpoint"),
        ] {
            let e = RegionMap::parse(&with(bad)).unwrap_err();
            assert_eq!(e.line, 2, "{e}");
            assert!(e.message.contains(key), "{e}");
        }
    }

    #[test]
    fn audit_retention_defaults_to_90_days_and_is_bounded() {
        let map = RegionMap::parse(GOOD).unwrap();
        let us = map.region(&RegionId::parse("us").unwrap()).unwrap();
        assert_eq!(us.audit_retention_days, 90);
        let with = |days: &str| {
            GOOD.replace(
                r#"workers = ["eu-worker-0:8081"]"#,
                &format!("workers = [\"eu-worker-0:8081\"]\naudit_retention_days = {days}"),
            )
        };
        let map = RegionMap::parse(&with("365")).unwrap();
        let eu = map.region(&RegionId::parse("eu").unwrap()).unwrap();
        assert_eq!(eu.audit_retention_days, 365);
        for bad in ["0", "3651", "-1"] {
            let text = with(bad);
            let e = RegionMap::parse(&text).unwrap_err();
            assert!(e.message.contains("audit_retention_days"), "{e}");
            assert!(
                text.lines()
                    .nth(e.line - 1)
                    .unwrap()
                    .starts_with("audit_retention_days"),
                "{e}"
            );
        }
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
    fn the_production_map_allows_exactly_oktas_callbacks() {
        let map = RegionMap::parse(include_str!("../../../regions.toml")).unwrap();
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
        let map = RegionMap::parse(include_str!("../../../regions.toml")).unwrap();
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
