//! Sign-ins in flight: what `/login` parks in Redis under the hash of its `state` for
//! `/callback` to take once (DESIGN.md: OIDC `state`/`nonce`/PKCE records, single use,
//! TTL). Taking a state leaves a marker until the state would have expired, so that a
//! replayed callback is told apart from an unknown one (and audited under its
//! workspace).

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use shared::ids::TeamId;
use shared::token::TokenHash;

use crate::store::StoreError;
use crate::store::redis::Redis;

/// A sign-in waiting for Okta's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSignIn {
    /// The workspace signing in.
    pub team_id: TeamId,
    /// The issuer the request went to (the callback refuses if the setup changed).
    pub issuer: String,
    /// The client id the request named.
    pub client_id: String,
    /// The nonce the ID token must carry.
    pub nonce: String,
    /// The PKCE verifier of the request's challenge.
    pub code_verifier: String,
    /// Where on the app host to land after sign-in.
    pub return_to: Option<String>,
    /// SHA-256 (hex) of the browser's flow cookie: the callback must come to the
    /// browser that started the sign-in.
    pub binding: String,
    /// SHA-256 (hex) of the app host's sign-in cookie, when the sign-in began at
    /// `POST {app}/auth` (`None` from the Okta dashboard): the hand-off completes
    /// without a confirmation only in the browser that holds its preimage.
    #[serde(default)]
    pub app_binding: Option<String>,
    /// Expiry, Unix seconds by the worker's clock (Redis's TTL is a backstop).
    pub expires_at: i64,
}

/// What taking a state found.
#[derive(Debug)]
pub enum Taken {
    /// The sign-in, now consumed.
    Found(Box<PendingSignIn>),
    /// The state was taken before (a replay), in this workspace.
    Replayed(TeamId),
    /// Never seen, or long expired.
    Unknown,
}

fn key(redis: &Redis, state: &str) -> String {
    redis.key(&format!("oidc:state:{}", TokenHash::of(state).to_hex()))
}

fn used_key(redis: &Redis, state: &str) -> String {
    redis.key(&format!(
        "oidc:state_used:{}",
        TokenHash::of(state).to_hex()
    ))
}

/// Parks a sign-in under `state` for `ttl_secs`.
pub async fn save(
    redis: &Redis,
    state: &str,
    pending: &PendingSignIn,
    ttl_secs: u64,
) -> Result<(), StoreError> {
    let json = serde_json::to_string(pending).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let _: () = redis
        .conn()
        .set_ex(key(redis, state), json, ttl_secs.max(1))
        .await?;
    Ok(())
}

/// Takes the sign-in of `state`: once.
pub async fn take(redis: &Redis, state: &str, ttl_secs: u64) -> Result<Taken, StoreError> {
    let json: Option<String> = redis.conn().get_del(key(redis, state)).await?;
    match json {
        Some(json) => {
            let pending: PendingSignIn =
                serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let _: () = redis
                .conn()
                .set_ex(
                    used_key(redis, state),
                    pending.team_id.to_string(),
                    ttl_secs.max(1),
                )
                .await?;
            Ok(Taken::Found(Box::new(pending)))
        }
        None => {
            let used: Option<String> = redis.conn().get(used_key(redis, state)).await?;
            Ok(match used.as_deref().map(TeamId::parse) {
                Some(Ok(team)) => Taken::Replayed(team),
                _ => Taken::Unknown,
            })
        }
    }
}
