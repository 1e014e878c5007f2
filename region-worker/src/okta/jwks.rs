//! The signing keys of Okta orgs, cached per key-set URL (OKTA.md §8: keys rotate
//! about four times a year; honour `Cache-Control`).
//!
//! [`JwksCache::verify`] verifies a JWT with the cached keys of its issuer, fetching
//! them when absent or past their `max-age`. A token naming a `kid` the cached set
//! lacks means Okta may have published a new key, so the set is fetched again, under
//! two rules that keep strangers from either hammering Okta or starving a genuine
//! request (DESIGN.md, Sign-in trust: "no unauthenticated request can delay a genuine
//! one"):
//!
//! - **Coalesced.** One fetch of a set runs at a time. A request with an unknown `kid`
//!   needs a fetch that *started after it arrived* (only such a fetch can hold a key
//!   published just before it), and every request waiting when a fetch starts shares
//!   that fetch's answer.
//! - **Throttled, by waiting rather than refusing.** Two fetches of one set start at
//!   least [`JwksCache::min_refetch`] apart (a second by default). A request that
//!   arrives inside that interval waits for the next fetch instead of being refused
//!   with the old keys, so a stream of forged `kid`s costs Okta one fetch per interval
//!   and delays a genuine request by at most one interval, never fails it.
//!
//! A token without `kid` is refused (Okta always sends one; picking "the only key"
//! would let a set of one key verify tokens nobody labelled). When a fetch fails, a
//! stale set keeps verifying the keys it holds; when no keys can be had at all the
//! caller gets [`VerifyError::Keys`] (Universal Logout answers `422`, retry later).
//!
//! Time: the cache's freshness (`max-age`) runs on the worker's [`Clock`], so tests
//! drive expiry without sleeping; the refetch interval is real time (tokio's clock),
//! because requests actually wait on it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use shared::jwt::{self, Expectations, Jwks, JwtError, Verified};
use tokio::time::Instant;
use url::Url;

use super::http::OktaHttp;
use super::max_age;
use crate::clock::Clock;

/// How long a key set is kept when the answer names no `max-age`.
const DEFAULT_TTL_SECS: i64 = 3600;
/// The shortest a key set is kept, whatever `max-age` says.
const MIN_TTL_SECS: i64 = 60;
/// The longest a key set is kept, whatever `max-age` says.
const MAX_TTL_SECS: i64 = 24 * 3600;
/// After a failed fetch, how long an expired set keeps verifying the keys it holds
/// before a request waits for Okta again.
const STALE_GRACE: Duration = Duration::from_secs(30);

/// Fetches of key sets, by outcome (`ok`, `error`).
pub const JWKS_FETCHES: &str = "worker_okta_jwks_fetches_total";

/// Why keys could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeysError {
    /// The call failed (the HTTP client's message: no secret, no query).
    #[error("could not fetch the signing keys: {0}")]
    Unreachable(String),
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

/// One fetched key set.
#[derive(Debug, Clone)]
struct Entry {
    /// The keys.
    keys: Arc<Jwks>,
    /// When they must be fetched again (Unix seconds, worker clock).
    expires_at: i64,
}

/// What the cache knows of one key-set URL.
#[derive(Debug, Default)]
struct SetState {
    /// The newest keys fetched successfully, if any.
    entry: Option<Entry>,
    /// When the newest fetch started (tokio's clock): the throttle's reference, and
    /// how a waiting request tells whether that fetch is recent enough for it.
    last_start: Option<Instant>,
    /// How the newest fetch ended (`None` while none has).
    last_outcome: Option<Result<Entry, KeysError>>,
}

/// One key-set URL: its state, and the lock that lets one fetch run at a time.
#[derive(Debug, Default)]
struct KeySet {
    /// Read and written briefly, never held across an await.
    state: Mutex<SetState>,
    /// Held for the whole of a fetch (and the throttle's wait before it): requests
    /// queue here and take the answer of the fetch that ran while they waited.
    fetching: tokio::sync::Mutex<()>,
}

impl KeySet {
    fn state(&self) -> std::sync::MutexGuard<'_, SetState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Key sets by URL.
#[derive(Debug)]
pub struct JwksCache {
    /// jwks_uri → its set.
    sets: Mutex<HashMap<String, Arc<KeySet>>>,
    /// The worker's clock, for `max-age`.
    clock: Clock,
    /// The shortest interval between the starts of two fetches of one set.
    min_refetch: Duration,
}

impl JwksCache {
    /// An empty cache on `clock` that starts fetches of one set at least `min_refetch`
    /// apart.
    pub fn new(clock: Clock, min_refetch: Duration) -> Self {
        Self {
            sets: Mutex::new(HashMap::new()),
            clock,
            min_refetch,
        }
    }

    /// The shortest interval between the starts of two fetches of one set.
    pub fn min_refetch(&self) -> Duration {
        self.min_refetch
    }

    fn set(&self, uri: &Url) -> Arc<KeySet> {
        self.sets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(uri.as_str().to_owned())
            .or_default()
            .clone()
    }

    /// One GET of the set at `uri`, parsed, with its time to live.
    async fn fetch_once(&self, http: &OktaHttp, uri: &Url) -> Result<Entry, KeysError> {
        let result = async {
            let response = http
                .get(uri, None)
                .await
                .map_err(|e| KeysError::Unreachable(e.to_string()))?;
            if response.status != http::StatusCode::OK {
                return Err(KeysError::Status(response.status.as_u16()));
            }
            let keys = Jwks::parse(&response.body).map_err(|_| KeysError::Invalid)?;
            let ttl = max_age(&response.headers)
                .unwrap_or(DEFAULT_TTL_SECS)
                .clamp(MIN_TTL_SECS, MAX_TTL_SECS);
            Ok(Entry {
                keys: Arc::new(keys),
                expires_at: self.clock.now().unix_timestamp() + ttl,
            })
        }
        .await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!(JWKS_FETCHES, "outcome" => outcome).increment(1);
        result
    }

    /// The outcome of a fetch of `set` that started at or after `since`: one already
    /// finished, or the next one, which this call runs (after the throttle's wait) or
    /// waits for.
    async fn fetch_since(
        &self,
        http: &OktaHttp,
        uri: &Url,
        set: &KeySet,
        since: Instant,
    ) -> Result<Entry, KeysError> {
        let _turn = set.fetching.lock().await;
        let next_start = {
            let state = set.state();
            match (state.last_start, &state.last_outcome) {
                (Some(started), Some(outcome)) if started >= since => return outcome.clone(),
                (Some(started), _) => Some(started + self.min_refetch),
                (None, _) => None,
            }
        };
        if let Some(at) = next_start {
            tokio::time::sleep_until(at).await;
        }
        set.state().last_start = Some(Instant::now());
        let outcome = self.fetch_once(http, uri).await;
        let mut state = set.state();
        if let Ok(entry) = &outcome {
            state.entry = Some(entry.clone());
        }
        state.last_outcome = Some(outcome.clone());
        outcome
    }

    /// The keys to try first: the cached set while fresh; else a new fetch, or the
    /// stale set when that fetch fails (or one failed within [`STALE_GRACE`], so that an
    /// unreachable Okta is not waited for on every sign-in).
    async fn current(
        &self,
        http: &OktaHttp,
        uri: &Url,
        set: &KeySet,
        arrived: Instant,
    ) -> Result<(Entry, bool), KeysError> {
        let now = self.clock.now().unix_timestamp();
        let (cached, failed_recently) = {
            let state = set.state();
            let failed_recently = matches!(
                (state.last_start, &state.last_outcome),
                (Some(started), Some(Err(_))) if started.elapsed() < STALE_GRACE
            );
            (state.entry.clone(), failed_recently)
        };
        match cached {
            Some(e) if e.expires_at > now => Ok((e, false)),
            Some(stale) if failed_recently => Ok((stale, false)),
            stale => match self.fetch_since(http, uri, set, arrived).await {
                Ok(e) => Ok((e, true)),
                // Keep verifying with the keys we had while Okta is unreachable.
                Err(err) => stale.map(|e| (e, false)).ok_or(err),
            },
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
        let arrived = Instant::now();
        if jwt::peek_kid(token).is_none() {
            // A malformed token keeps its own reason; a well-formed one lacks `kid`.
            return Err(match jwt::verify(token, &Jwks::default(), expect) {
                Ok(_) | Err(JwtError::UnknownKey) => JwtError::Malformed("no kid"),
                Err(e) => e,
            }
            .into());
        }
        let set = self.set(uri);
        let (entry, fresh) = self.current(http, uri, &set, arrived).await?;
        match jwt::verify(token, &entry.keys, expect) {
            Err(JwtError::UnknownKey) if !fresh => {
                tracing::info!(jwks_uri = %uri, "unknown signing key: fetching the key set again");
                // Only a set fetched after this token arrived can say the key does not
                // exist; if none can be had, the keys are unavailable (not the token bad).
                let entry = self.fetch_since(http, uri, &set, arrived).await?;
                Ok(jwt::verify(token, &entry.keys, expect)?)
            }
            other => Ok(other?),
        }
    }

    /// The `kid`s cached for `uri` (tests and diagnostics).
    pub fn cached_kids(&self, uri: &Url) -> Vec<String> {
        self.set(uri)
            .state()
            .entry
            .as_ref()
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

    use axum::Router;
    use axum::routing::get;
    use serde_json::{Value, json};

    use super::*;

    /// An RSA public key (any valid modulus: signatures are never meant to verify here;
    /// a token whose `kid` is found fails on its signature instead of its key).
    const RSA_N: &str = "tjbf5mHji_72p5eUP_G5pWxYtFBp-0vaQzp44WlmUAK6kkBl2EJtCc_2MU6J0k5280sAD4LTPe4qSKS717h9VP80NH0mz0QGBVjHG3GjGfOVNwGnMEX3CDLOKGRTyEMZCvwCVrtPkOEkMkZTpV9k_NKEFYX8LoTN_yQUTyCzfihCoCeNcX6TvaYaYMHdSfY2UaT3qznFsQzd8tq4qrcb_qhlgFyriDKGyrfxo1CehmP6C31h1kFgbaHVfs1_3k91avj48XV6RFEKraFDL6ce5vAcqY_MT7MLQsdJdLBdBqNVJ3vBNFUtaOUtO_2c5XALCeEakl5pVmyxSlaNamkjiw";

    /// A key-set server: counts its calls, serves the `kid`s in `kids` (changeable, as
    /// a rotation) with `max-age`, or `503` while `down`.
    struct KeyServer {
        uri: Url,
        calls: Arc<AtomicUsize>,
        kids: Arc<Mutex<Vec<&'static str>>>,
        down: Arc<std::sync::atomic::AtomicBool>,
    }

    impl KeyServer {
        async fn start(max_age: u64, kids: &[&'static str]) -> Self {
            let calls = Arc::new(AtomicUsize::new(0));
            let served = Arc::new(Mutex::new(kids.to_vec()));
            let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (c, s, d) = (calls.clone(), served.clone(), down.clone());
            let app = Router::new().route(
                "/keys",
                get(move || {
                    c.fetch_add(1, Ordering::SeqCst);
                    let kids = s.lock().unwrap().clone();
                    let down = d.load(Ordering::SeqCst);
                    async move {
                        let keys: Vec<Value> = kids
                            .iter()
                            .map(|kid| json!({ "kty": "RSA", "alg": "RS256", "kid": kid, "e": "AQAB", "n": RSA_N }))
                            .collect();
                        let status = if down { 503 } else { 200 };
                        (
                            http::StatusCode::from_u16(status).unwrap(),
                            [("cache-control", format!("max-age={max_age}"))],
                            json!({ "keys": keys }).to_string(),
                        )
                    }
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await });
            Self {
                uri: Url::parse(&format!("http://{addr}/keys")).unwrap(),
                calls,
                kids: served,
                down,
            }
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    /// A token naming `kid` (or none); its signature never verifies.
    fn token(kid: Option<&str>) -> String {
        use base64::Engine;
        let b = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let header = match kid {
            Some(kid) => json!({ "alg": "RS256", "kid": kid }),
            None => json!({ "alg": "RS256" }),
        };
        format!("{}.{}.c2ln", b(header), b(json!({})))
    }

    fn http() -> OktaHttp {
        OktaHttp::new(Duration::from_secs(3), Duration::from_secs(10), true)
    }

    fn expect() -> Expectations<'static> {
        Expectations::new("https://acme.okta.com", "client", 0)
    }

    /// What verifying a token naming `kid` came to: its key found (the signature then
    /// fails), its key unknown, or the keys unavailable.
    #[derive(Debug, PartialEq, Eq)]
    enum Seen {
        KeyFound,
        UnknownKey,
        KeysUnavailable,
        Other(String),
    }

    async fn seen(cache: &JwksCache, server: &KeyServer, kid: Option<&str>) -> Seen {
        match cache
            .verify(&http(), &server.uri, &token(kid), &expect())
            .await
        {
            Err(VerifyError::Jwt(JwtError::BadSignature)) => Seen::KeyFound,
            Err(VerifyError::Jwt(JwtError::UnknownKey)) => Seen::UnknownKey,
            Err(VerifyError::Keys(_)) => Seen::KeysUnavailable,
            other => Seen::Other(format!("{other:?}")),
        }
    }

    #[tokio::test]
    async fn a_forged_kid_never_makes_a_newly_published_key_fail() {
        let server = KeyServer::start(600, &["k1"]).await;
        let cache = JwksCache::new(Clock::adjustable(), Duration::from_millis(200));
        assert_eq!(seen(&cache, &server, Some("k1")).await, Seen::KeyFound);
        assert_eq!(server.calls(), 1);
        // A stranger's unknown kid: one refetch, which finds nothing.
        assert_eq!(
            seen(&cache, &server, Some("forged")).await,
            Seen::UnknownKey
        );
        assert_eq!(server.calls(), 2);
        // Okta rotates right after; the genuine token with the new key arrives within
        // the refetch interval: it waits for the next fetch instead of being refused.
        server.kids.lock().unwrap().push("k2");
        assert_eq!(seen(&cache, &server, Some("k2")).await, Seen::KeyFound);
        assert_eq!(server.calls(), 3);
        assert_eq!(cache.cached_kids(&server.uri), ["k1", "k2"]);
    }

    #[tokio::test]
    async fn a_flood_of_forged_kids_is_coalesced_into_few_fetches() {
        let server = KeyServer::start(600, &["k1"]).await;
        let cache = Arc::new(JwksCache::new(
            Clock::adjustable(),
            Duration::from_millis(300),
        ));
        assert_eq!(seen(&cache, &server, Some("k1")).await, Seen::KeyFound);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..50 {
            let (cache, uri) = (cache.clone(), server.uri.clone());
            tasks.push(tokio::spawn(async move {
                let forged = token(Some(&format!("forged-{i}")));
                cache.verify(&http(), &uri, &forged, &expect()).await
            }));
        }
        for t in tasks {
            assert!(matches!(
                t.await.unwrap(),
                Err(VerifyError::Jwt(JwtError::UnknownKey))
            ));
        }
        // Every forged request arrived before the next fetch started: they share it.
        // At most one more fetch per interval elapsed, whatever the number of requests.
        let intervals = (started.elapsed().as_millis() / 300) as usize;
        assert!(
            server.calls() <= 2 + intervals + 1,
            "{} fetches for 50 forged requests in {} intervals",
            server.calls(),
            intervals
        );
        assert!(server.calls() < 10, "{} fetches", server.calls());
    }

    #[tokio::test]
    async fn a_token_without_kid_is_refused() {
        let server = KeyServer::start(600, &["only"]).await;
        let cache = JwksCache::new(Clock::adjustable(), Duration::from_millis(50));
        assert_eq!(
            seen(&cache, &server, None).await,
            Seen::Other(format!(
                "{:?}",
                Err::<(), _>(VerifyError::Jwt(JwtError::Malformed("no kid")))
            ))
        );
        assert_eq!(server.calls(), 0, "refused before any key is fetched");
        // A malformed token keeps its own reason.
        assert!(matches!(
            cache.verify(&http(), &server.uri, "a.b", &expect()).await,
            Err(VerifyError::Jwt(JwtError::Malformed(m))) if m != "no kid"
        ));
    }

    #[tokio::test]
    async fn keys_that_cannot_be_had_are_unavailable_not_unknown() {
        let server = KeyServer::start(600, &["k1"]).await;
        let cache = JwksCache::new(Clock::adjustable(), Duration::from_millis(50));
        assert_eq!(seen(&cache, &server, Some("k1")).await, Seen::KeyFound);
        server.down.store(true, Ordering::SeqCst);
        // Known keys keep verifying; an unknown kid cannot be ruled out: unavailable.
        assert_eq!(seen(&cache, &server, Some("k1")).await, Seen::KeyFound);
        assert_eq!(
            seen(&cache, &server, Some("k2")).await,
            Seen::KeysUnavailable
        );
        // With nothing cached at all: unavailable too.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let uri = Url::parse(&format!("http://127.0.0.1:{port}/keys")).unwrap();
        assert!(matches!(
            cache
                .verify(&http(), &uri, &token(Some("a")), &expect())
                .await,
            Err(VerifyError::Keys(KeysError::Unreachable(_)))
        ));
    }

    #[tokio::test]
    async fn a_set_is_kept_for_its_max_age_by_the_worker_clock() {
        let server = KeyServer::start(600, &["k1"]).await;
        let clock = Clock::adjustable();
        let cache = JwksCache::new(clock.clone(), Duration::from_millis(10));
        for _ in 0..3 {
            assert_eq!(seen(&cache, &server, Some("k1")).await, Seen::KeyFound);
        }
        assert_eq!(server.calls(), 1);
        clock.advance(Duration::from_secs(601));
        assert_eq!(seen(&cache, &server, Some("k1")).await, Seen::KeyFound);
        assert_eq!(server.calls(), 2);
        // Expired while Okta is down: the stale set keeps verifying, and for a while
        // is not asked again on every use.
        server.down.store(true, Ordering::SeqCst);
        clock.advance(Duration::from_secs(601));
        assert_eq!(seen(&cache, &server, Some("k1")).await, Seen::KeyFound);
        assert_eq!(seen(&cache, &server, Some("k1")).await, Seen::KeyFound);
        assert_eq!(server.calls(), 3);
    }
}
