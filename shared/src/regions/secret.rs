//! Secrets in the region map: [`SecretSource`], where a secret is read from (never the
//! secret itself, so `regions.toml` can be committed), and [`Secret`], a read value
//! whose `Debug` prints `[redacted]` so that no config dump or error logs it.

use std::fmt;

use toml::Spanned;

use super::error::{ConfigError, Refusal};
use super::raw::RawSecret;

/// Where a secret comes from: an environment variable or a file. Never a literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// The value of this environment variable.
    Env(String),
    /// The contents of this file, trailing whitespace removed.
    File(String),
}

impl SecretSource {
    /// Reads a raw `{ env = "VAR" }` or `{ file = "/path" }`: exactly one, not empty.
    /// `key` names the value in the refusal (`scim_oauth.client_secret`).
    pub(super) fn from_raw(raw: Spanned<RawSecret>, key: &'static str) -> Result<Self, Refusal> {
        let at = raw.span().start;
        match raw.into_inner() {
            RawSecret {
                env: Some(name),
                file: None,
            } if !name.is_empty() => Ok(Self::Env(name)),
            RawSecret {
                env: None,
                file: Some(path),
            } if !path.is_empty() => Ok(Self::File(path)),
            _ => Err(ConfigError::SecretSource { key }.at(at)),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::super::fixtures::{GOOD, offending_line};
    use super::super::{ConfigError, RegionMap};
    use super::*;

    #[test]
    fn debug_never_prints_the_secret() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&s)), "Some([redacted])");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn sources_name_where_to_look() {
        assert_eq!(
            SecretSource::Env("EU_REDIS".into()).to_string(),
            "environment variable EU_REDIS"
        );
        assert_eq!(
            SecretSource::File("/run/secrets/x".into()).to_string(),
            "file /run/secrets/x"
        );
    }

    #[test]
    fn a_source_is_exactly_one_of_env_and_file() {
        let good = r#"redis = { env = "CLOSEDLOOP_EU_REDIS_URL" }"#;
        for bad in [
            r#"redis = { env = "A", file = "/b" }"#,
            r#"redis = {}"#,
            r#"redis = { env = "" }"#,
            r#"redis = { file = "" }"#,
        ] {
            let text = GOOD.replace(good, bad);
            let e = RegionMap::parse(&text).unwrap_err();
            assert_eq!(
                e.reason,
                ConfigError::SecretSource { key: "redis" },
                "{bad}"
            );
            assert_eq!(offending_line(&text, &e), bad);
        }
    }
}
