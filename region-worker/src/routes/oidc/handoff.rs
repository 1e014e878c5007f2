//! The hand-off of a sign-in from the API host (where Okta's callback lands) to the app
//! host (where the session cookie lives): cookies are host-only, never shared through a
//! parent domain (DESIGN.md, Hosts and pages).
//!
//! The callback parks who signed in under the hash of a one-time code (Redis, at most
//! 60 s, the ID token sealed) and redirects to `{app}/auth/complete?code=…`, which takes
//! the code once and starts the session there.

use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use serde_json::json;
use shared::ids::TeamId;
use shared::token::{self, TokenHash, TokenKind};
use uuid::Uuid;

use super::failure::{SignInFailure, record};
use super::{COMPLETE_PATH, no_store};
use crate::crypto::Purpose;
use crate::routes::pages::safe_return_to;
use crate::session::{self, OktaSession};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::redis::Redis;

/// Who signed in, waiting for the app host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Handoff {
    /// The workspace.
    pub team_id: TeamId,
    /// The user.
    pub user_id: Uuid,
    /// The user's revocation epoch at sign-in (a revocation in between wins).
    pub user_epoch: i64,
    /// The org issuer, for sign-out.
    pub issuer: String,
    /// The ID token sealed under the region key (bound to the code's hash), hex.
    pub id_token_sealed: String,
    /// Where to land on the app host.
    pub return_to: Option<String>,
    /// Expiry, Unix seconds by the worker's clock.
    pub expires_at: i64,
}

fn key(redis: &Redis, hash: &TokenHash) -> String {
    redis.key(&format!("oidc:handoff:{}", hash.to_hex()))
}

/// Mints a one-time code for `handoff` (its ID token given in clear, sealed here) and
/// returns the URL of the app host that redeems it.
pub async fn park(
    state: &AppState,
    mut handoff: Handoff,
    id_token: &str,
) -> Result<String, StoreError> {
    let code = token::mint(state.config.region_id(), TokenKind::OneTime);
    let sealed = state.config.encryption_key.seal(
        Purpose::SessionIdToken,
        &code.hash.to_hex(),
        id_token.as_bytes(),
    );
    handoff.id_token_sealed = hex::encode(sealed);
    let ttl = state.config.sign_in.handoff_ttl;
    handoff.expires_at = (state.config.clock.now() + ttl).unix_timestamp();
    let json = serde_json::to_string(&handoff).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let _: () = state
        .redis
        .conn()
        .set_ex(
            key(&state.redis, &code.hash),
            json,
            ttl.whole_seconds().max(1) as u64,
        )
        .await?;
    Ok(format!(
        "{}{COMPLETE_PATH}?code={}",
        state.config.region.app_base(),
        code.secret
    ))
}

/// `GET {app}/auth/complete?code=…`: starts the session on the app host.
pub async fn complete(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let code = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let ours = matches!(
        token::parse_prefix(&code),
        Some(p) if p.kind == TokenKind::OneTime && p.region == state.config.region_id().as_str()
    );
    if !ours {
        return SignInFailure::HandoffUnknown
            .respond(&state, None, json!({ "step": "complete" }))
            .await;
    }
    let hash = TokenHash::of(&code);
    let taken: Result<Option<String>, _> =
        state.redis.conn().get_del(key(&state.redis, &hash)).await;
    let handoff = match taken {
        Ok(Some(json)) => match serde_json::from_str::<Handoff>(&json) {
            Ok(h) => h,
            Err(e) => return SignInFailure::Store(StoreError::Corrupt(e.to_string())).page(&state),
        },
        Ok(None) => {
            return SignInFailure::HandoffUnknown
                .respond(&state, None, json!({ "step": "complete" }))
                .await;
        }
        Err(e) => return SignInFailure::Store(e.into()).page(&state),
    };
    if handoff.expires_at <= state.config.clock.now().unix_timestamp() {
        return SignInFailure::HandoffUnknown
            .respond(
                &state,
                Some(handoff.team_id),
                json!({ "step": "complete", "expired": true }),
            )
            .await;
    }
    let id_token = hex::decode(&handoff.id_token_sealed)
        .ok()
        .and_then(|sealed| {
            state
                .config
                .encryption_key
                .open(
                    state.config.encryption_key.id(),
                    Purpose::SessionIdToken,
                    &hash.to_hex(),
                    &sealed,
                )
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default();
    let okta = OktaSession {
        issuer: handoff.issuer.clone(),
        id_token,
    };
    let cookie = match session::start_with(
        &state,
        handoff.team_id,
        handoff.user_id,
        handoff.user_epoch,
        "okta",
        Some(&okta),
    )
    .await
    {
        Ok(c) => c,
        Err(e) => return SignInFailure::Store(e).page(&state),
    };
    record(
        &state,
        Some(handoff.team_id),
        &format!("user:{}", handoff.user_id),
        "session.signed_in.okta",
        Some(&handoff.user_id.to_string()),
        json!({ "issuer": handoff.issuer }),
    )
    .await;
    tracing::info!(team_id = %handoff.team_id, user_id = %handoff.user_id, "signed in with Okta");
    let target = handoff
        .return_to
        .as_deref()
        .and_then(safe_return_to)
        .unwrap_or("/");
    let mut response = Redirect::to(target).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    no_store(&mut response);
    response
}
