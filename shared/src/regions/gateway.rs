//! The `[gateway]` table: the edge's listeners (plain HTTP, TLS, admin), the
//! certificates it serves by SNI, its limits and timeouts, and how often it checks the
//! workers' health. Every key but `listen`/`tls_listen` has a default; the table is
//! checked against the regions' hosts, which every certificate must serve and, with
//! `tls_listen`, cover.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::error::{ConfigError, Refusal};
use super::raw::{RawGateway, in_range, socket_addr};

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
    pub(super) fn defaults() -> Self {
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

    /// Validates the `[gateway]` table against the regions' hosts (`hosts`: lower-case
    /// host name → region index), which every certificate must serve and, with
    /// `tls_listen`, cover.
    pub(super) fn from_raw(
        raw: Spanned<RawGateway>,
        hosts: &HashMap<String, usize>,
    ) -> Result<Self, Refusal> {
        let table_at = raw.span().start;
        let g = raw.into_inner();
        let defaults = Self::defaults();
        let addr = |a: &Option<Spanned<String>>| a.as_ref().map(socket_addr).transpose();
        let listen = addr(&g.listen)?;
        let tls_listen = addr(&g.tls_listen)?;
        let admin_listen = addr(&g.admin_listen)?.unwrap_or(defaults.admin_listen);
        if listen.is_none() && tls_listen.is_none() {
            return Err(ConfigError::NoListener.at(table_at));
        }
        let d = &defaults.limits;
        // The ranges are positive, so the casts below cannot wrap.
        let secs = |v, key, range, default: Duration| {
            in_range(v, key, range, default.as_secs() as i64).map(|s| Duration::from_secs(s as u64))
        };
        let limits = GatewayLimits {
            max_header_bytes: in_range(
                &g.max_header_bytes,
                "gateway.max_header_bytes",
                1024..=1 << 20,
                d.max_header_bytes as i64,
            )? as usize,
            max_body_bytes: in_range(
                &g.max_body_bytes,
                "gateway.max_body_bytes",
                0..=1 << 40,
                d.max_body_bytes as i64,
            )? as u64,
            request_timeout: secs(
                &g.request_timeout_secs,
                "gateway.request_timeout_secs",
                1..=3600,
                d.request_timeout,
            )?,
            idle_timeout: secs(
                &g.idle_timeout_secs,
                "gateway.idle_timeout_secs",
                1..=3600,
                d.idle_timeout,
            )?,
            header_read_timeout: secs(
                &g.header_read_timeout_secs,
                "gateway.header_read_timeout_secs",
                1..=300,
                d.header_read_timeout,
            )?,
            max_connections: in_range(
                &g.max_connections,
                "gateway.max_connections",
                1..=1_000_000,
                d.max_connections as i64,
            )? as usize,
            max_connections_per_ip: in_range(
                &g.max_connections_per_ip,
                "gateway.max_connections_per_ip",
                1..=1_000_000,
                d.max_connections_per_ip as i64,
            )? as usize,
        };
        let interval_ms = in_range(
            &g.health_check_interval_ms,
            "gateway.health_check_interval_ms",
            0..=600_000,
            Self::DEFAULT_HEALTH_CHECK_INTERVAL.as_millis() as i64,
        )?;
        if (1..100).contains(&interval_ms) {
            let at = g
                .health_check_interval_ms
                .as_ref()
                .map_or(table_at, |v| v.span().start);
            return Err(ConfigError::HealthCheckInterval.at(at));
        }
        let health_check_interval =
            (interval_ms > 0).then(|| Duration::from_millis(interval_ms as u64));
        let shutdown_grace = secs(
            &g.shutdown_grace_secs,
            "gateway.shutdown_grace_secs",
            0..=3600,
            defaults.shutdown_grace,
        )?;

        let redirect_http_to_https = match &g.redirect_http_to_https {
            Some(r) if *r.get_ref() && (tls_listen.is_none() || listen.is_none()) => {
                return Err(ConfigError::RedirectNeedsBothListeners.at(r.span().start));
            }
            Some(r) => *r.get_ref(),
            None => false,
        };

        let mut certificates = Vec::new();
        if let Some(list) = g.certificates {
            let list_at = list.span().start;
            if tls_listen.is_none() {
                return Err(ConfigError::CertificatesWithoutTls.at(list_at));
            }
            for c in list.into_inner() {
                let c = c.into_inner();
                if c.hosts.get_ref().is_empty() {
                    return Err(ConfigError::CertificateWithoutHosts.at(c.hosts.span().start));
                }
                let mut names = Vec::with_capacity(c.hosts.get_ref().len());
                for h in c.hosts.into_inner() {
                    let at = h.span().start;
                    let name = h.into_inner();
                    validate_certificate_host(&name, hosts).map_err(|e| e.at(at))?;
                    if names.contains(&name) {
                        return Err(ConfigError::CertificateHostRepeated { host: name }.at(at));
                    }
                    if certificates
                        .iter()
                        .any(|other: &CertificateSettings| other.hosts.contains(&name))
                    {
                        return Err(ConfigError::HostWithTwoCertificates { host: name }.at(at));
                    }
                    names.push(name);
                }
                let path = |p: Spanned<String>, key| {
                    if p.get_ref().trim().is_empty() {
                        Err(ConfigError::CertificateFile { key }.at(p.span().start))
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
        let settings = Self {
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
                return Err(ConfigError::HostWithoutCertificate {
                    host: (*host).to_owned(),
                }
                .at(tls.span().start));
            }
        }
        Ok(settings)
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

/// A certificate's host: a lower-case DNS name or `*.parent`, serving at least one
/// region host (a name no region serves is a typo, not a plan).
fn validate_certificate_host(
    name: &str,
    hosts: &HashMap<String, usize>,
) -> Result<(), ConfigError> {
    let bare = name.strip_prefix("*.").unwrap_or(name);
    let dns = !bare.is_empty()
        && bare.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if !dns {
        return Err(ConfigError::CertificateHostSyntax {
            host: name.to_owned(),
        });
    }
    let serves = |h: &String| match name.strip_prefix("*.") {
        Some(parent) => h.split_once('.').is_some_and(|(_, p)| p == parent),
        None => h == name,
    };
    if !hosts.keys().any(serves) {
        return Err(ConfigError::CertificateHostUnknown {
            host: name.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::GOOD;
    use super::super::{RegionMap, RegionMapError};
    use super::*;

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
    fn the_production_map_serves_tls_for_every_host() {
        let map = RegionMap::parse(include_str!("../../../regions.toml")).unwrap();
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
}
