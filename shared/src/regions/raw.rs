//! The raw serde mirror of `regions.toml`: every table as written, each value wrapped in
//! toml's [`Spanned`] so that a refusal found later can name its line. Nothing here is
//! validated beyond its TOML type; `deny_unknown_fields` everywhere makes a misspelt
//! key an error instead of a silently ignored setting.
//!
//! Also the two readers every table uses on its raw values: [`socket_addr`] and
//! [`in_range`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::RangeInclusive;

use serde::Deserialize;
use toml::Spanned;

use super::error::{ConfigError, Refusal};

/// The whole file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    pub(super) development: Option<bool>,
    pub(super) gateway: Option<Spanned<RawGateway>>,
    pub(super) telemetry: Option<Spanned<RawTelemetry>>,
    #[serde(default)]
    pub(super) regions: BTreeMap<Spanned<String>, Spanned<RawRegion>>,
}

impl RawFile {
    /// Reads `text` into the file's shape; TOML's own message, at its own position.
    pub(super) fn from_toml(text: &str) -> Result<Self, Refusal> {
        toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            ConfigError::Toml(e.message().trim().to_owned()).at(offset)
        })
    }
}

/// `[telemetry]`; see [`TelemetrySettings`](crate::telemetry::TelemetrySettings).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTelemetry {
    pub(super) otlp_endpoint: Option<Spanned<String>>,
    pub(super) sampling_ratio: Option<Spanned<f64>>,
}

/// `[gateway]`; see [`GatewaySettings`](super::GatewaySettings) for the keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGateway {
    pub(super) listen: Option<Spanned<String>>,
    pub(super) tls_listen: Option<Spanned<String>>,
    pub(super) admin_listen: Option<Spanned<String>>,
    pub(super) certificates: Option<Spanned<Vec<Spanned<RawCertificate>>>>,
    pub(super) redirect_http_to_https: Option<Spanned<bool>>,
    pub(super) max_header_bytes: Option<Spanned<i64>>,
    pub(super) max_body_bytes: Option<Spanned<i64>>,
    pub(super) request_timeout_secs: Option<Spanned<i64>>,
    pub(super) idle_timeout_secs: Option<Spanned<i64>>,
    pub(super) header_read_timeout_secs: Option<Spanned<i64>>,
    pub(super) max_connections: Option<Spanned<i64>>,
    pub(super) max_connections_per_ip: Option<Spanned<i64>>,
    pub(super) health_check_interval_ms: Option<Spanned<i64>>,
    pub(super) shutdown_grace_secs: Option<Spanned<i64>>,
}

/// One entry of `[gateway] certificates`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCertificate {
    pub(super) hosts: Spanned<Vec<Spanned<String>>>,
    pub(super) cert: Spanned<String>,
    pub(super) key: Spanned<String>,
}

/// A `workers` entry: `"host:port"` or `{ addr = "host:port", admin = "host:port" }`.
#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "a worker as \"host:port\" or { addr = \"host:port\", admin = \"host:port\" }"
)]
pub(super) enum RawWorker {
    Addr(String),
    Table(RawWorkerTable),
}

/// The table form of a `workers` entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWorkerTable {
    pub(super) addr: String,
    pub(super) admin: String,
}

/// `[regions.<id>]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegion {
    pub(super) app_url: Spanned<String>,
    pub(super) api_url: Spanned<String>,
    pub(super) workers: Spanned<Vec<Spanned<RawWorker>>>,
    pub(super) worker_listen: Option<Spanned<String>>,
    pub(super) worker_admin_listen: Option<Spanned<String>>,
    pub(super) postgres: Spanned<RawSecret>,
    pub(super) redis: Spanned<RawSecret>,
    pub(super) encryption_key: Option<Spanned<RawSecret>>,
    pub(super) previous_encryption_keys: Option<Vec<Spanned<RawSecret>>>,
    pub(super) scim_oauth: Option<Spanned<RawScimOAuth>>,
    pub(super) introspection: Option<Spanned<RawIntrospection>>,
    pub(super) trusted_proxies: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) audit_retention_days: Option<Spanned<i64>>,
}

/// `[regions.<id>.introspection]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIntrospection {
    pub(super) client_id: Spanned<String>,
    pub(super) client_secret: Spanned<RawSecret>,
}

/// `[regions.<id>.scim_oauth]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScimOAuth {
    pub(super) client_id: Spanned<String>,
    pub(super) client_secret: Spanned<RawSecret>,
    pub(super) redirect_uris: Spanned<Vec<Spanned<String>>>,
    pub(super) access_token_ttl_secs: Option<Spanned<i64>>,
    pub(super) refresh_idle_ttl_days: Option<Spanned<i64>>,
}

/// A secret's source as written: `{ env = "VAR" }` or `{ file = "/path" }`. Never the
/// secret itself: any other value is refused, and the refusal never repeats the value
/// (an operator who pasted a credential here must not find it in the start-up log).
pub(super) struct RawSecret {
    pub(super) env: Option<String>,
    pub(super) file: Option<String>,
}

/// The table form of [`RawSecret`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecretTable {
    env: Option<String>,
    file: Option<String>,
}

/// What a refused secret value is told, whatever it was.
const NOT_A_SOURCE: &str = "a credential is never written in this file: name where to read it, \
     { env = \"VARIABLE\" } or { file = \"/path\" }";

impl<'de> Deserialize<'de> for RawSecret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawSecret;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("{ env = \"VARIABLE\" } or { file = \"/path\" }")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawSecret, A::Error> {
                let t =
                    RawSecretTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(RawSecret {
                    env: t.env,
                    file: t.file,
                })
            }

            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<RawSecret, E> {
                Err(E::custom(NOT_A_SOURCE))
            }

            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<RawSecret, E> {
                Err(E::custom(NOT_A_SOURCE))
            }

            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<RawSecret, E> {
                Err(E::custom(NOT_A_SOURCE))
            }

            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<RawSecret, E> {
                Err(E::custom(NOT_A_SOURCE))
            }

            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<RawSecret, E> {
                Err(E::custom(NOT_A_SOURCE))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<RawSecret, A::Error> {
                Err(serde::de::Error::custom(NOT_A_SOURCE))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// `s` as an `ip:port` socket address.
pub(super) fn socket_addr(s: &Spanned<String>) -> Result<SocketAddr, Refusal> {
    s.get_ref().parse().map_err(|_| {
        ConfigError::SocketAddress {
            text: s.get_ref().clone(),
        }
        .at(s.span().start)
    })
}

/// `v` if it lies in `range`, `default` when the key is absent; `key` (with its table,
/// `gateway.max_body_bytes`) names it in the refusal.
pub(super) fn in_range(
    v: &Option<Spanned<i64>>,
    key: &'static str,
    range: RangeInclusive<i64>,
    default: i64,
) -> Result<i64, Refusal> {
    match v {
        None => Ok(default),
        Some(v) if range.contains(v.get_ref()) => Ok(*v.get_ref()),
        Some(v) => Err(ConfigError::OutOfRange {
            key,
            min: *range.start(),
            max: *range.end(),
        }
        .at(v.span().start)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::RegionMap;
    use super::super::fixtures::GOOD;

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
    fn a_literal_credential_is_never_repeated_in_the_refusal() {
        for (key, literal) in [
            ("postgres", r#""postgres://user:hunter2@db/eu""#),
            ("redis", "424242"),
            ("redis", r#"["redis://:hunter2@cache"]"#),
        ] {
            let line = match key {
                "postgres" => r#"postgres = { env = "CLOSEDLOOP_EU_DATABASE_URL" }"#,
                _ => r#"redis = { env = "CLOSEDLOOP_EU_REDIS_URL" }"#,
            };
            let text = GOOD.replace(line, &format!("{key} = {literal}"));
            let e = RegionMap::parse(&text).unwrap_err();
            let shown = format!("{e} {e:?}");
            assert!(
                !shown.contains("hunter2") && !shown.contains("424242"),
                "{shown}"
            );
            assert!(shown.contains("never written in this file"), "{shown}");
            assert!(
                text.lines().nth(e.line - 1).unwrap().starts_with(key),
                "{e}"
            );
        }
        // The table form still works, and its own mistakes are still named.
        let text = GOOD.replace(
            r#"redis = { env = "CLOSEDLOOP_EU_REDIS_URL" }"#,
            r#"redis = { path = "/x" }"#,
        );
        let e = RegionMap::parse(&text).unwrap_err();
        assert!(e.message.contains("path"), "{e}");
    }
}
