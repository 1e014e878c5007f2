//! Browser sessions on the app host. A session is a token of kind `ses` (stored hashed
//! like every token) held in a host-only cookie: `__Host-` prefixed, `Secure`,
//! `HttpOnly`, `SameSite=Lax` under TLS; without the prefix and `Secure` only on a
//! plain-HTTP development stack. Every check honours the user's revocation epoch
//! (deactivation, Universal Logout), so revoking a user ends their sessions at once.
//!
//! A session has two lifetimes ([`crate::config::SignInConfig`]): an absolute one from
//! sign-in (the token's expiry) and a sliding idle one. The last use is kept in Redis
//! (hot) and in `browser_sessions` (V5, the truth when Redis lost it), written at most
//! once a minute. For an Okta sign-in the same row keeps the org's issuer and the ID
//! token, sealed under the region key, for the `id_token_hint` of Okta's logout.

use axum::http::{HeaderMap, HeaderValue};
use redis::AsyncCommands;
use shared::ids::TeamId;
use shared::token::{self, TokenHash, TokenKind};
use uuid::Uuid;

use crate::cookie::{self, SetCookie};
use crate::crypto::Purpose;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::tokens::{self, NewTokenRecord, TokenRecord};

/// Absolute lifetime of a session by default (the configured one is
/// [`crate::config::SignInConfig::session_absolute`]).
pub const SESSION_LIFETIME_SECS: i64 = 12 * 3600;

/// How stale the recorded last use may get before a request records it again.
const TOUCH_RESOLUTION_SECS: i64 = 60;

/// The cookie name for this stack.
pub fn cookie_name(state: &AppState) -> &'static str {
    if secure(state) {
        "__Host-clk_session"
    } else {
        "clk_session"
    }
}

fn secure(state: &AppState) -> bool {
    cookie::secure(&state.config.region.app_url)
}

/// The Okta context of a session: what sign-out needs.
#[derive(Clone)]
pub struct OktaSession {
    /// The org issuer the user signed in with.
    pub issuer: String,
    /// The ID token, for the logout's `id_token_hint`.
    pub id_token: String,
}

impl std::fmt::Debug for OktaSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OktaSession")
            .field("issuer", &self.issuer)
            .field("id_token", &"[redacted]")
            .finish()
    }
}

/// A session that [`end`] ended.
#[derive(Debug)]
pub struct EndedSession {
    /// Its workspace.
    pub team_id: TeamId,
    /// Its user.
    pub user_id: Option<Uuid>,
    /// Its Okta context, for a session that began with Okta sign-in.
    pub okta: Option<OktaSession>,
}

fn seen_key(state: &AppState, hash: &TokenHash) -> String {
    state.redis.key(&format!("ses_seen:{}", hash.to_hex()))
}

/// Starts a session for a user and returns the `Set-Cookie` value.
pub async fn start(
    state: &AppState,
    team_id: TeamId,
    user_id: Uuid,
    user_epoch: i64,
    how: &str,
) -> Result<HeaderValue, StoreError> {
    start_with(state, team_id, user_id, user_epoch, how, None).await
}

/// Starts a session, keeping its Okta context (sealed) when there is one, and returns
/// the `Set-Cookie` value.
pub async fn start_with(
    state: &AppState,
    team_id: TeamId,
    user_id: Uuid,
    user_epoch: i64,
    how: &str,
    okta: Option<&OktaSession>,
) -> Result<HeaderValue, StoreError> {
    let minted = token::mint(state.config.region_id(), TokenKind::Session);
    let now = state.config.clock.now();
    let absolute = state.config.sign_in.session_absolute;
    let new = NewTokenRecord {
        hash: minted.hash,
        record: TokenRecord {
            team_id,
            kind: TokenKind::Session,
            scopes: Vec::new(),
            user_id: Some(user_id),
            user_epoch,
            expires_at: Some((now + absolute).unix_timestamp()),
        },
        name: None,
        created_by: how,
    };
    let key = &state.config.encryption_key;
    let sealed = okta.map(|o| {
        key.seal(
            Purpose::SessionIdToken,
            &minted.hash.to_hex(),
            o.id_token.as_bytes(),
        )
    });
    {
        let mut client = state.pg.get().await?;
        let tx = client.transaction().await?;
        tokens::insert_in(&tx, &new, None).await?;
        tx.execute(
            "INSERT INTO browser_sessions (token_hash, team_id, user_id, method, last_seen_at,
                                           okta_issuer, id_token_sealed, key_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &minted.hash.0.as_slice(),
                &team_id.as_uuid(),
                &user_id,
                &how,
                &now,
                &okta.map(|o| o.issuer.as_str()),
                &sealed,
                &sealed.as_ref().map(|_| key.id()),
            ],
        )
        .await?;
        // What the People pages show as the user's last sign-in.
        tx.execute(
            "UPDATE users SET last_sign_in_at = $3 WHERE team_id = $1 AND id = $2",
            &[&team_id.as_uuid(), &user_id, &now],
        )
        .await?;
        tx.commit().await?;
    }
    tokens::prime(&state.redis, &new, None).await;
    record_seen(state, &minted.hash, now.unix_timestamp()).await;
    Ok(SetCookie {
        name: cookie_name(state),
        value: &minted.secret,
        path: "/",
        max_age: absolute.whole_seconds(),
        secure: secure(state),
    }
    .header())
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(state: &AppState) -> HeaderValue {
    SetCookie::clear(cookie_name(state), "/", secure(state)).header()
}

/// The session cookie's token if it is one of this region's session tokens.
fn presented<'h>(state: &AppState, headers: &'h HeaderMap) -> Option<&'h str> {
    let value = cookie::value(headers, cookie_name(state))?;
    match token::parse_prefix(value) {
        Some(p)
            if p.kind == TokenKind::Session && p.region == state.config.region_id().as_str() =>
        {
            Some(value)
        }
        _ => None,
    }
}

/// The live session named by the request's cookie, if any: not revoked, issued under
/// the user's current revocation epoch, within its absolute lifetime and used within
/// its idle lifetime. A live session's last use is recorded (at most once a minute).
pub async fn current(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<TokenRecord>, StoreError> {
    let Some(value) = presented(state, headers) else {
        return Ok(None);
    };
    let hash = TokenHash::of(value);
    let Some(record) =
        tokens::check_personal(&state.pg, &state.redis, &hash, TokenKind::Session).await?
    else {
        crate::failed_auth::note_refused();
        return Ok(None);
    };
    let now_at = state.config.clock.now();
    let now = now_at.unix_timestamp();
    if record.expired_at(now) {
        return Ok(None);
    }
    let last_seen = match last_seen(state, &hash).await? {
        Some(t) => t,
        // A session from before idle tracking: it counts as seen now.
        None => now,
    };
    let idle = state.config.sign_in.session_idle.whole_seconds();
    if now - last_seen > idle {
        if let Err(e) = tokens::revoke(&state.pg, &state.redis, &hash).await {
            tracing::warn!(error = %e, "could not revoke an idle session");
        }
        return Ok(None);
    }
    if now - last_seen >= TOUCH_RESOLUTION_SECS {
        record_seen(state, &hash, now).await;
        let touched = async {
            let client = state.pg.get().await?;
            client
                .execute(
                    "UPDATE browser_sessions SET last_seen_at = $2 WHERE token_hash = $1",
                    &[&hash.0.as_slice(), &now_at],
                )
                .await?;
            Ok::<(), StoreError>(())
        };
        if let Err(e) = touched.await {
            tracing::warn!(error = %e, "could not record a session's last use");
        }
    }
    Ok(Some(record))
}

/// The last use of a session (Unix seconds): Redis first, then Postgres.
async fn last_seen(state: &AppState, hash: &TokenHash) -> Result<Option<i64>, StoreError> {
    let hot: Option<i64> = state.redis.conn().get(seen_key(state, hash)).await?;
    if hot.is_some() {
        return Ok(hot);
    }
    let client = state.pg.get().await?;
    let row = client
        .query_opt(
            "SELECT extract(epoch FROM last_seen_at)::bigint FROM browser_sessions
              WHERE token_hash = $1",
            &[&hash.0.as_slice()],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Records a use in Redis (best effort: Postgres keeps the truth to the minute).
async fn record_seen(state: &AppState, hash: &TokenHash, now: i64) {
    let ttl = state.config.sign_in.session_idle.whole_seconds().max(1) as u64
        + TOUCH_RESOLUTION_SECS as u64;
    let set: Result<(), _> = state
        .redis
        .conn()
        .set_ex(seen_key(state, hash), now, ttl)
        .await;
    if let Err(e) = set {
        tracing::warn!(error = %e, "could not record a session's last use in Redis");
    }
}

/// Ends the request's session: revokes its token in both stores and forgets its row.
/// Returns what sign-out needs (even for a session that had already expired, so that
/// its Okta session still ends), or `None` when the request had no session of ours.
pub async fn end(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<EndedSession>, StoreError> {
    let Some(value) = presented(state, headers) else {
        return Ok(None);
    };
    let hash = TokenHash::of(value);
    tokens::revoke(&state.pg, &state.redis, &hash).await?;
    let _: Result<(), _> = state.redis.conn().del(seen_key(state, &hash)).await;
    let client = state.pg.get().await?;
    let row = client
        .query_opt(
            "DELETE FROM browser_sessions WHERE token_hash = $1
             RETURNING team_id, user_id, okta_issuer, id_token_sealed, key_id",
            &[&hash.0.as_slice()],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let issuer: Option<String> = row.get(2);
    let sealed: Option<Vec<u8>> = row.get(3);
    let key_id: Option<String> = row.get(4);
    let okta = match (issuer, sealed, key_id) {
        (Some(issuer), Some(sealed), Some(key_id)) => {
            let opened = state.config.encryption_key.open(
                &key_id,
                Purpose::SessionIdToken,
                &hash.to_hex(),
                &sealed,
            );
            // An ID token that no longer opens (the region key changed) only costs the
            // logout its `id_token_hint`.
            let id_token = opened
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default();
            Some(OktaSession { issuer, id_token })
        }
        _ => None,
    };
    Ok(Some(EndedSession {
        team_id: TeamId::from(row.get::<_, Uuid>(0)),
        user_id: row.get(1),
        okta,
    }))
}
