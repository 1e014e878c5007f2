//! Everything the worker knows about a workspace's Okta org, as the OIDC relying party
//! (OKTA.md §8, the seed's Steps 2 and 3):
//!
//! - [`domain`]: the Okta domain an admin types, validated, and the issuer made from it;
//! - [`settings`]: the workspace's Okta settings in Postgres (client secret sealed);
//! - [`http`]: the HTTPS client to Okta (timeouts, rustls with ring);
//! - [`discovery`]: the org's discovery document, checked and cached;
//! - [`jwks`]: the org's signing keys, cached, refetched on an unknown `kid`;
//! - [`oidc`]: the authorization-code flow with PKCE: the authorize URL, the code
//!   exchange, userinfo, and ID-token verification.
//!
//! [`Okta`] bundles the client and the caches for the shared state. The HTTP routes
//! that use all this are in `routes::oidc` and `routes::integrations`.

pub mod discovery;
pub mod domain;
pub mod http;
pub mod jwks;
pub mod oidc;
pub mod settings;

use ::http::HeaderMap;
use ::http::header::CACHE_CONTROL;

use crate::config::WorkerConfig;

/// The Okta client and its caches, shared by every request of a worker.
#[derive(Debug)]
pub struct Okta {
    /// The HTTPS client.
    pub http: http::OktaHttp,
    /// Discovery documents by issuer.
    pub discovery: discovery::DiscoveryCache,
    /// Signing keys by key-set URL.
    pub jwks: jwks::JwksCache,
}

impl Okta {
    /// The client and empty caches for `config`.
    pub fn new(config: &WorkerConfig) -> Self {
        let s = &config.sign_in;
        Self {
            http: http::OktaHttp::with_resolver(
                s.okta_connect_timeout,
                s.okta_timeout,
                config.development,
                s.okta_resolver.clone(),
            ),
            discovery: discovery::DiscoveryCache::new(config.clock.clone()),
            jwks: jwks::JwksCache::new(config.clock.clone(), s.jwks_min_refetch),
        }
    }
}

/// The `max-age` of a `Cache-Control` header in seconds: `0` for `no-store` and
/// `no-cache`, `None` when the header says nothing about it.
pub fn max_age(headers: &HeaderMap) -> Option<i64> {
    let mut found = None;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(text) = value.to_str() else { continue };
        for directive in text.split(',').map(str::trim) {
            let lower = directive.to_ascii_lowercase();
            if lower == "no-store" || lower == "no-cache" {
                return Some(0);
            }
            if let Some(n) = lower.strip_prefix("max-age=") {
                found = n.trim_matches('"').parse::<i64>().ok().map(|n| n.max(0));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use ::http::HeaderValue;

    use super::*;

    #[test]
    fn reads_max_age() {
        let h = |v: &'static str| {
            let mut m = HeaderMap::new();
            m.insert(CACHE_CONTROL, HeaderValue::from_static(v));
            m
        };
        assert_eq!(max_age(&h("max-age=3600, must-revalidate")), Some(3600));
        assert_eq!(max_age(&h("public, Max-Age=\"60\"")), Some(60));
        assert_eq!(max_age(&h("no-store")), Some(0));
        assert_eq!(max_age(&h("max-age=60, no-cache")), Some(0));
        assert_eq!(max_age(&h("public")), None);
        assert_eq!(max_age(&h("max-age=-5")), Some(0));
        assert_eq!(max_age(&HeaderMap::new()), None);
    }
}
