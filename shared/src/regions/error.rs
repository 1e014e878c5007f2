//! What reading a `regions.toml` can refuse: [`ConfigError`], one variant per reason,
//! and [`RegionMapError`], the reason with the line of the file it concerns.
//!
//! The parsers below this module find a refusal at a byte offset of the text (toml's
//! spans); they return a [`Refusal`], and [`RegionMap::parse`](super::RegionMap::parse)
//! alone turns the offset into the 1-based line an operator can open in an editor.

use crate::ids::{InvalidRegionId, RegionId};

use super::redirect::RedirectUriProblem;

/// Why a `regions.toml` (or one of its values) was refused, without its position.
///
/// The `Display` text is what an operator reads after `line N:`; it names the key and,
/// where it helps, the value and what would be accepted instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The text is not TOML, or not of the map's shape: a syntax error, an unknown key,
    /// a value of the wrong type, a missing key (toml's own words).
    #[error("{0}")]
    Toml(String),
    /// `[telemetry] otlp_endpoint` is not an `http(s)` URL.
    #[error("otlp_endpoint: {0} (an http:// or https:// URL such as http://collector:4318)")]
    OtlpEndpoint(String),
    /// `[telemetry] sampling_ratio` is outside 0.0–1.0.
    #[error("sampling_ratio must be between 0.0 and 1.0")]
    SamplingRatio,
    /// The file has no `[regions.<id>]` table.
    #[error("no regions: add a [regions.<id>] table")]
    NoRegions,
    /// A region's table name is not a region id.
    #[error(transparent)]
    RegionId(#[from] InvalidRegionId),
    /// A region lists no workers to forward to.
    #[error("region {region} has no workers: list at least one host:port")]
    NoWorkers {
        /// The region.
        region: RegionId,
    },
    /// A worker (or its admin address) is not `host:port`.
    #[error("worker {worker:?} must be host:port")]
    WorkerAddress {
        /// The entry as written.
        worker: String,
    },
    /// A listener is not an `ip:port` socket address.
    #[error("{text:?} is not an ip:port socket address")]
    SocketAddress {
        /// The value as written.
        text: String,
    },
    /// A host is claimed by two regions (or twice by one).
    #[error("host {host} is already served by region {region}")]
    HostTaken {
        /// The lower-case host name.
        host: String,
        /// The region that claimed it first.
        region: RegionId,
    },
    /// A region's web pages and API share one host, so requests could not be told apart.
    #[error("region {region}: app_url and api_url must use different hosts")]
    SameHost {
        /// The region.
        region: RegionId,
    },
    /// `app_url` or `api_url` is not a URL at all.
    #[error("{key}: {error}")]
    Url {
        /// `app_url` or `api_url`.
        key: &'static str,
        /// What the URL parser said. Not a `source`: the text above already says it.
        error: url::ParseError,
    },
    /// A plain-HTTP URL without the development switch.
    #[error("{key} must be https (plain http needs development = true)")]
    PlainHttp {
        /// `app_url` or `api_url`.
        key: &'static str,
    },
    /// A URL of a scheme other than `https` (or `http` in development).
    #[error("{key}: unsupported scheme {scheme}")]
    UnsupportedScheme {
        /// `app_url` or `api_url`.
        key: &'static str,
        /// The scheme as parsed.
        scheme: String,
    },
    /// A URL whose host could never be routed to: an IPv6 literal or a trailing dot.
    #[error("{key} must name its host by DNS name or IPv4 address, without a trailing dot")]
    UnroutableHost {
        /// `app_url` or `api_url`.
        key: &'static str,
    },
    /// A URL with a path, query, fragment or user info, or without a host.
    #[error("{key} must be a bare origin such as https://api.example.com")]
    NotAnOrigin {
        /// `app_url` or `api_url`.
        key: &'static str,
    },
    /// A secret's source is not exactly one of `{ env = "VAR" }` and `{ file = "/path" }`.
    #[error("{key} must be {{ env = \"VAR\" }} or {{ file = \"/path\" }} (exactly one)")]
    SecretSource {
        /// The key, with its table when it has one (`scim_oauth.client_secret`).
        key: &'static str,
    },
    /// A `trusted_proxies` entry that is neither an address nor a CIDR block.
    #[error("trusted_proxies: {entry:?} is not an address or CIDR block")]
    TrustedProxy {
        /// The entry as written.
        entry: String,
    },
    /// A `trusted_proxies` block with host bits set: likely a typo for a wider block.
    #[error("trusted_proxies: {entry:?} has host bits set; did you mean {network}?")]
    TrustedProxyHostBits {
        /// The entry as written.
        entry: String,
        /// The block it is probably meant to be.
        network: ipnet::IpNet,
    },
    /// A client id that HTTP Basic could not carry without encoding.
    #[error("{table}.client_id must be 1 to 128 letters, digits or - . _ ~")]
    ClientId {
        /// `scim_oauth` or `introspection`.
        table: &'static str,
    },
    /// A SCIM OAuth server that allows no redirect URI.
    #[error("scim_oauth.redirect_uris must list at least one redirect URI")]
    NoRedirectUris,
    /// A redirect URI pattern that is refused.
    #[error("redirect URI pattern {pattern:?}: {problem}")]
    RedirectUri {
        /// The pattern as written.
        pattern: String,
        /// What is wrong with it.
        problem: RedirectUriProblem,
    },
    /// A number outside the range its key allows.
    #[error("{key} must be between {min} and {max}")]
    OutOfRange {
        /// The key with its table (`gateway.max_body_bytes`).
        key: &'static str,
        /// The smallest value allowed.
        min: i64,
        /// The largest value allowed.
        max: i64,
    },
    /// A `[gateway]` table with neither `listen` nor `tls_listen`.
    #[error("[gateway] needs a listener: listen (plain HTTP), tls_listen (HTTPS) or both")]
    NoListener,
    /// A health-check interval so short the checks would be a load of their own.
    #[error("gateway.health_check_interval_ms must be 0 (off) or at least 100")]
    HealthCheckInterval,
    /// `redirect_http_to_https` without a plain listener to redirect from or a TLS one
    /// to redirect to.
    #[error("redirect_http_to_https needs both listen and tls_listen")]
    RedirectNeedsBothListeners,
    /// Certificates without a TLS listener to serve them.
    #[error("certificates are served only with tls_listen")]
    CertificatesWithoutTls,
    /// A certificate entry serving no host.
    #[error("a certificate needs at least one host")]
    CertificateWithoutHosts,
    /// A certificate host that is not a lower-case DNS name or `*.parent`.
    #[error("certificate host {host:?} must be a lower-case DNS name or *.parent")]
    CertificateHostSyntax {
        /// The host as written.
        host: String,
    },
    /// A certificate host no region serves: a typo, not a plan.
    #[error("certificate host {host} is not a host of any region")]
    CertificateHostUnknown {
        /// The host as written.
        host: String,
    },
    /// A host listed twice in one certificate.
    #[error("host {host} is listed twice")]
    CertificateHostRepeated {
        /// The host as written.
        host: String,
    },
    /// A host listed in two certificates: SNI could not choose.
    #[error("host {host} has two certificates")]
    HostWithTwoCertificates {
        /// The host as written.
        host: String,
    },
    /// A certificate's `cert` or `key` that names no file.
    #[error("certificate {key} must name a PEM file")]
    CertificateFile {
        /// `cert` or `key`.
        key: &'static str,
    },
    /// With `tls_listen`, a region host that no certificate covers.
    #[error("tls_listen: host {host} has no certificate in certificates")]
    HostWithoutCertificate {
        /// The lower-case region host.
        host: String,
    },
}

impl ConfigError {
    /// This refusal, found at byte `offset` of the text.
    pub(super) fn at(self, offset: usize) -> Refusal {
        Refusal {
            offset,
            reason: self,
        }
    }
}

/// A refusal at a byte offset of the text, before the offset is turned into a line.
#[derive(Debug)]
pub(super) struct Refusal {
    /// Byte offset of the offending value (0 when the file as a whole is wrong).
    pub(super) offset: usize,
    /// Why it is refused.
    pub(super) reason: ConfigError,
}

/// A region map that could not be accepted, with the 1-based line it concerns.
///
/// `message` is `reason`'s text, kept as a field because the binaries and the tests
/// print and search it; `reason` is there for code that decides on the cause. The
/// reason is deliberately not the error's `source`: the message already says it, and a
/// cause chain would repeat it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct RegionMapError {
    /// 1-based line of the offending entry (1 when the file as a whole is wrong).
    pub line: usize,
    /// What is wrong, in words.
    pub message: String,
    /// What is wrong, as a value.
    pub reason: ConfigError,
}

impl RegionMapError {
    /// The error for `refusal` in `text`: its offset becomes a line.
    pub(super) fn locate(text: &str, refusal: Refusal) -> Self {
        let line = text[..refusal.offset.min(text.len())].matches('\n').count() + 1;
        Self {
            line,
            message: refusal.reason.to_string(),
            reason: refusal.reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_is_the_reason_after_its_line() {
        let text = "a = 1\nb = 2\n";
        let e = RegionMapError::locate(text, ConfigError::NoListener.at(7));
        assert_eq!(e.line, 2);
        assert_eq!(e.message, ConfigError::NoListener.to_string());
        assert_eq!(
            e.to_string(),
            "line 2: [gateway] needs a listener: listen (plain HTTP), tls_listen (HTTPS) or both"
        );
        assert!(std::error::Error::source(&e).is_none());
        // An offset past the end (toml's span of a missing value) is the last line.
        let e = RegionMapError::locate(text, ConfigError::NoRegions.at(1000));
        assert_eq!(e.line, 3);
    }

    #[test]
    fn secret_sources_spell_their_braces() {
        let e = ConfigError::SecretSource { key: "redis" };
        assert_eq!(
            e.to_string(),
            "redis must be { env = \"VAR\" } or { file = \"/path\" } (exactly one)"
        );
    }
}
