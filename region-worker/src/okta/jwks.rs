//! The signing keys of Okta orgs, cached per key-set URL (OKTA.md §8: keys rotate
//! about four times a year; honour `Cache-Control`).
//!
//! [`JwksCache::verify`] verifies a JWT with the cached keys of its issuer, fetching
//! them when absent or past their `max-age`. A token naming a `kid` the cached set
//! lacks triggers one refetch (Okta published a new key), but never more often than
//! once per [`JwksCache::min_refetch`] for one set, so that a stream of forged tokens
//! cannot make the worker hammer Okta. When a refetch fails, a stale set keeps
//! verifying the keys it holds. Time is the worker's [`Clock`], so tests drive expiry
//! and the refetch limit without sleeping.
//!
//! Issue 7 (Universal Logout) verifies its JWTs through the same cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use shared::jwt::{self, Expectations, Jwks, JwtError, Verified};
use url::Url;

use super::http::{HttpError, OktaHttp};
use super::max_age;
use crate::clock::Clock;

/// How long a key set is kept when the answer names no `max-age`.
const DEFAULT_TTL_SECS: i64 = 3600;
/// The longest a key set is kept, whatever `max-age` says.
const MAX_TTL_SECS: i64 = 24 * 3600;

/// Fetches of key sets, by outcome (`ok`, `error`).
pub const JWKS_FETCHES: &str = "worker_okta_jwks_fetches_total";

/// Why keys could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The call failed.
    #[error("could not fetch the signing keys: {0}")]
    Unreachable(#[from] HttpError),
    /// The answer was not `200`.
    #[error("the signing keys answered HTTP {0}")]
    Status(u16),
    /// The answer is not a JWKS document.
    #[error("the signing keys are not a JWKS document")]
    Invalid,
}

/// Why a token did not verify.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The keys could not be had (and no cached set was usable).
    #[error(transparent)]
    Keys(#[from] KeysError),
    /// The token is bad.
    #[error(transparent)]
    Jwt(#[from] JwtError),
}

/// One cached key set.
#[derive(Debug, Clone)]
struct Entry {
    /// The keys.
    keys: Arc<Jwks>,
    /// When they were fetched (Unix seconds, worker clock).
    fetched_at: i64,
    /// When they must be fetched again.
    expires_at: i64,
}

/// Key sets by URL.
#[derive(Debug)]
pub struct JwksCache {
    /// jwks_uri → entry.
    entries: Mutex<HashMap<String, Entry>>,
    /// The worker's clock.
    clock: Clock,
    /// The shortest interval between two fetches of one set.
    min_refetch: i64,
}

impl JwksCache {
    /// An empty cache on `clock` that fetches one set at most once per `min_refetch`.
    pub fn new(clock: Clock, min_refetch: time::Duration) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            clock,
            min_refetch: min_refetch.whole_seconds().max(1),
        }
    }

    /// The shortest interval between two fetches of one set, in seconds.
    pub fn min_refetch(&self) -> i64 {
        self.min_refetch
    }

    fn cached(&self, uri: &Url) -> Option<Entry> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(uri.as_str())
            .cloned()
    }

    /// Fetches the set at `uri` and caches it.
    async fn fetch(&self, http: &OktaHttp, uri: &Url) -> Result<Entry, KeysError> {
        let result = async {
            let response = http.get(uri, None).await?;
            if response.status != http::StatusCode::OK {
                return Err(KeysError::Status(response.status.as_u16()));
            }
            let keys = Jwks::parse(&response.body).map_err(|_| KeysError::Invalid)?;
            let ttl = max_age(&response.headers)
                .unwrap_or(DEFAULT_TTL_SECS)
                .clamp(self.min_refetch, MAX_TTL_SECS);
            Ok((keys, ttl))
        }
        .await;
        let now = self.clock.now().unix_timestamp();
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!(JWKS_FETCHES, "outcome" => outcome).increment(1);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok((keys, ttl)) => {
                let entry = Entry {
                    keys: Arc::new(keys),
                    fetched_at: now,
                    expires_at: now + ttl,
                };
                entries.insert(uri.as_str().to_owned(), entry.clone());
                Ok(entry)
            }
            Err(e) => {
                // A failed fetch counts against the refetch limit too, so that an
                // unreachable Okta is not asked again on every sign-in attempt.
                if let Some(stale) = entries.get_mut(uri.as_str()) {
                    stale.fetched_at = now;
                }
                Err(e)
            }
        }
    }

    /// Verifies `token` with the keys at `uri` and `expect`.
    pub async fn verify(
        &self,
        http: &OktaHttp,
        uri: &Url,
        token: &str,
        expect: &Expectations<'_>,
    ) -> Result<Verified, VerifyError> {
        let now = self.clock.now().unix_timestamp();
        let mut fetched_now = false;
        let entry = match self.cached(uri) {
            Some(e) if e.expires_at > now => e,
            stale => match self.fetch(http, uri).await {
                Ok(e) => {
                    fetched_now = true;
                    e
                }
                // Keep verifying with the keys we had while Okta is unreachable.
                Err(err) => stale.ok_or(err)?,
            },
        };
        match jwt::verify(token, &entry.keys, expect) {
            Err(JwtError::UnknownKey)
                if !fetched_now && now - entry.fetched_at >= self.min_refetch =>
            {
                tracing::info!(jwks_uri = %uri, "unknown signing key: fetching the key set again");
                let fresh = self.fetch(http, uri).await?;
                Ok(jwt::verify(token, &fresh.keys, expect)?)
            }
            other => Ok(other?),
        }
    }

    /// The `kid`s cached for `uri` (tests and diagnostics).
    pub fn cached_kids(&self, uri: &Url) -> Vec<String> {
        self.cached(uri)
            .map(|e| {
                e.keys
                    .kids()
                    .into_iter()
                    .flatten()
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use axum::Router;
    use axum::routing::get;

    use super::*;

    /// A key-set server that counts its calls and serves an empty set with `max-age`.
    async fn server(max_age: u64) -> (Url, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let app = Router::new().route(
            "/keys",
            get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    (
                        [("cache-control", format!("max-age={max_age}"))],
                        r#"{"keys":[]}"#,
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (Url::parse(&format!("http://{addr}/keys")).unwrap(), calls)
    }

    /// A token naming `kid` (its signature never gets checked: the key is unknown).
    fn token(kid: &str) -> String {
        use base64::Engine;
        let b = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        format!(
            "{}.{}.c2ln",
            b(serde_json::json!({ "alg": "RS256", "kid": kid })),
            b(serde_json::json!({}))
        )
    }

    #[tokio::test]
    async fn caches_by_max_age_and_refetches_unknown_kids_at_most_once_per_interval() {
        let (uri, calls) = server(600).await;
        let clock = Clock::adjustable();
        let cache = JwksCache::new(clock.clone(), time::Duration::seconds(30));
        let http = OktaHttp::new(Duration::from_secs(3), Duration::from_secs(10), true);
        let expect = Expectations::new("https://acme.okta.com", "client", 0);
        let verify = |kid: &'static str| {
            let (cache, http, uri, expect) = (&cache, &http, &uri, &expect);
            async move { cache.verify(http, uri, &token(kid), expect).await }
        };
        // First use fetches; the unknown kid does not refetch at once.
        assert!(matches!(
            verify("a").await,
            Err(VerifyError::Jwt(JwtError::UnknownKey))
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Within the interval: no refetch, however many forged kids arrive.
        for _ in 0..5 {
            assert!(verify("b").await.is_err());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // After it: one refetch for an unknown kid.
        clock.advance(Duration::from_secs(31));
        assert!(verify("c").await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(verify("d").await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Past max-age: fetched again on the next use.
        clock.advance(Duration::from_secs(601));
        assert!(verify("e").await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert!(cache.cached_kids(&uri).is_empty());
    }

    #[tokio::test]
    async fn an_unreachable_key_set_is_a_keys_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let uri = Url::parse(&format!("http://127.0.0.1:{port}/keys")).unwrap();
        let cache = JwksCache::new(Clock::adjustable(), time::Duration::seconds(30));
        let http = OktaHttp::new(Duration::from_secs(3), Duration::from_secs(10), true);
        let expect = Expectations::new("https://acme.okta.com", "client", 0);
        assert!(matches!(
            cache.verify(&http, &uri, &token("a"), &expect).await,
            Err(VerifyError::Keys(KeysError::Unreachable(_)))
        ));
    }
}
