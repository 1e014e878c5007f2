//! The hand-off of a sign-in from the API host (where Okta's callback lands) to the app
//! host (where the session cookie lives): cookies are host-only, never shared through a
//! parent domain (DESIGN.md, Hosts and pages).
//!
//! The callback parks who signed in under the hash of a one-time code (Redis, at most
//! 60 s, the ID token sealed) and redirects to `{app}/auth/complete?code=…`, which takes
//! the code once. A session starts there only in the browser that asked for it
//! (DESIGN.md, "A session starts only in the browser that asked for it"; login CSRF,
//! RFC 6749 §10.12):
//!
//! - `POST {app}/auth` ([`super::discover`]) sets a fresh host-only sign-in cookie
//!   ([`signin_cookie_name`]) and passes only its SHA-256 on to the login, which parks
//!   it with the state; the callback copies it into the hand-off. The browser holding
//!   the preimage completes silently (compared in constant time).
//! - Any other browser (a hand-off URL opened elsewhere, a sign-in started from the
//!   Okta dashboard, a cookie that does not match) lands on a confirmation page:
//!   "Continue as {email} in {workspace} ({region})?", showing the account a signed-in
//!   browser would leave. The code is spent on that GET; the sign-in waits (a few
//!   minutes at most) under a fresh secret held in a host-only confirmation cookie, and
//!   only the page's POST (same origin, CSRF token bound to that cookie) starts the
//!   session.
//!
//! Starting a session ends the browser's previous one.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use serde_json::json;
use shared::ids::TeamId;
use shared::token::{self, TokenHash, TokenKind};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::failure::{SignInFailure, record};
use super::no_store;
use crate::cookie::{self, SetCookie, value as cookie_value};
use crate::crypto::Purpose;
use crate::okta::oidc::random_value;
use crate::paths::app;
use crate::session::{self, OktaSession};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::audit::AuditAction;
use crate::store::redis::Redis;
use crate::web::return_to::safe as safe_return_to;
use crate::web::{PageError, Text, csrf, page};

/// How long a sign-in waits on the confirmation page for the person's answer.
pub const CONFIRM_TTL_SECS: i64 = 180;

/// The CSRF purpose of the confirmation form.
const CONFIRM_PURPOSE: &str = "oidc-confirm";

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
    /// SHA-256 (hex) of the app host's sign-in cookie of the browser that began the
    /// sign-in at `POST {app}/auth`; `None` for a sign-in begun elsewhere.
    #[serde(default)]
    pub app_binding: Option<String>,
    /// The email Okta vouched for, shown on the confirmation page.
    #[serde(default)]
    pub email: String,
}

/// The app host's sign-in cookie, set by `POST {app}/auth` (`__Host-` under TLS).
pub fn signin_cookie_name(state: &AppState) -> &'static str {
    if secure(state) {
        "__Host-clk_signin"
    } else {
        "clk_signin"
    }
}

/// The confirmation page's cookie (`__Host-` under TLS).
fn confirm_cookie_name(state: &AppState) -> &'static str {
    if secure(state) {
        "__Host-clk_confirm"
    } else {
        "clk_confirm"
    }
}

fn secure(state: &AppState) -> bool {
    cookie::secure(&state.config.region.app_url)
}

/// A host-only app-host cookie (`Path=/`, as `__Host-` requires); `None` clears it.
fn app_cookie(state: &AppState, name: &str, value: Option<&str>, max_age: i64) -> HeaderValue {
    match value {
        Some(value) => SetCookie {
            name,
            value,
            path: "/",
            max_age: max_age.max(1),
            secure: secure(state),
        }
        .header(),
        None => SetCookie::clear(name, "/", secure(state)).header(),
    }
}

/// Mints the sign-in cookie for a sign-in about to begin at `POST {app}/auth`: the
/// `Set-Cookie` value, and the hash that travels with the sign-in. Always fresh, never
/// a value found in the browser (one planted there must bind nothing).
pub fn mint_signin_cookie(state: &AppState) -> (HeaderValue, String) {
    let value = random_value();
    let ttl = state.config.sign_in.state_ttl + state.config.sign_in.handoff_ttl;
    let cookie = app_cookie(
        state,
        signin_cookie_name(state),
        Some(&value),
        ttl.whole_seconds(),
    );
    (cookie, TokenHash::of(&value).to_hex())
}

/// Whether the request holds the preimage of `expected` in `cookie`, in constant time.
fn holds(headers: &HeaderMap, cookie: &str, expected: &str) -> bool {
    cookie_value(headers, cookie).is_some_and(|v| {
        bool::from(
            TokenHash::of(v)
                .to_hex()
                .as_bytes()
                .ct_eq(expected.as_bytes()),
        )
    })
}

fn key(redis: &Redis, hash: &TokenHash) -> String {
    redis.key(&format!("oidc:handoff:{}", hash.to_hex()))
}

fn confirm_key(redis: &Redis, hash: &TokenHash) -> String {
    redis.key(&format!("oidc:confirm:{}", hash.to_hex()))
}

/// Seals the ID token into `handoff`, bound to `context` (the hash of the secret the
/// record is kept under).
fn seal(state: &AppState, handoff: &mut Handoff, context: &TokenHash, id_token: &str) {
    let sealed = state.config.encryption_key.seal(
        Purpose::SessionIdToken,
        &context.to_hex(),
        id_token.as_bytes(),
    );
    handoff.id_token_sealed = hex::encode(sealed);
}

/// Opens the ID token sealed in `handoff` under `context`; empty when it no longer
/// opens (it only costs sign-out its `id_token_hint`).
fn open(state: &AppState, handoff: &Handoff, context: &TokenHash) -> String {
    hex::decode(&handoff.id_token_sealed)
        .ok()
        .and_then(|sealed| {
            state
                .config
                .encryption_key
                .open(
                    state.config.encryption_key.id(),
                    Purpose::SessionIdToken,
                    &context.to_hex(),
                    &sealed,
                )
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default()
}

/// Keeps `handoff` under `key` until its expiry.
async fn put(state: &AppState, key: String, handoff: &Handoff, ttl: i64) -> Result<(), StoreError> {
    let json = serde_json::to_string(handoff).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let _: () = state
        .redis
        .conn()
        .set_ex(key, json, ttl.max(1) as u64)
        .await?;
    Ok(())
}

/// Takes the record under `key`, once.
async fn take(state: &AppState, key: String) -> Result<Option<Handoff>, StoreError> {
    let json: Option<String> = state.redis.conn().get_del(key).await?;
    json.map(|j| serde_json::from_str(&j).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}

/// Mints a one-time code for `handoff` (its ID token given in clear, sealed here) and
/// returns the URL of the app host that redeems it.
pub async fn park(
    state: &AppState,
    mut handoff: Handoff,
    id_token: &str,
) -> Result<String, StoreError> {
    let code = token::mint(state.config.region_id(), TokenKind::OneTime);
    seal(state, &mut handoff, &code.hash, id_token);
    let ttl = state.config.sign_in.handoff_ttl;
    handoff.expires_at = (state.config.clock.now() + ttl).unix_timestamp();
    put(
        state,
        key(&state.redis, &code.hash),
        &handoff,
        ttl.whole_seconds(),
    )
    .await?;
    Ok(format!(
        "{}{}?code={}",
        state.config.region.app_base(),
        app::SIGN_IN_COMPLETE,
        code.secret
    ))
}

/// `GET {app}/auth/complete?code=…`: takes the code once; starts the session in the
/// browser that began the sign-in, asks any other browser to confirm.
pub async fn complete(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
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
    let handoff = match take(&state, key(&state.redis, &hash)).await {
        Ok(Some(h)) => h,
        Ok(None) => {
            return SignInFailure::HandoffUnknown
                .respond(&state, None, json!({ "step": "complete" }))
                .await;
        }
        Err(e) => return SignInFailure::Store(e).page(&state),
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
    let id_token = open(&state, &handoff, &hash);
    let bound = handoff
        .app_binding
        .as_deref()
        .is_some_and(|expected| holds(&headers, signin_cookie_name(&state), expected));
    if bound {
        return start(&state, &headers, handoff, id_token, false).await;
    }
    ask(&state, &headers, handoff, &id_token).await
}

/// Parks the sign-in for the confirmation page and shows it.
async fn ask(
    state: &AppState,
    headers: &HeaderMap,
    mut handoff: Handoff,
    id_token: &str,
) -> Response {
    let secret = random_value();
    let secret_hash = TokenHash::of(&secret);
    seal(state, &mut handoff, &secret_hash, id_token);
    handoff.expires_at = state.config.clock.now().unix_timestamp() + CONFIRM_TTL_SECS;
    if let Err(e) = put(
        state,
        confirm_key(&state.redis, &secret_hash),
        &handoff,
        CONFIRM_TTL_SECS,
    )
    .await
    {
        return SignInFailure::Store(e).page(state);
    }
    let view = match ConfirmView::load(state, headers, &handoff).await {
        Ok(v) => v,
        Err(e) => return SignInFailure::Store(e).page(state),
    };
    let token = csrf::token(&secret, CONFIRM_PURPOSE);
    let mut response = page("Continue signing in?", view.render(state, &token)).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        app_cookie(
            state,
            confirm_cookie_name(state),
            Some(&secret),
            CONFIRM_TTL_SECS,
        ),
    );
    response
        .headers_mut()
        .insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    no_store(&mut response);
    response
}

/// What the confirmation page shows.
struct ConfirmView {
    /// Whom the sign-in is for.
    email: String,
    /// Their workspace.
    workspace: String,
    /// The account of the browser's current session, if another: `(user, workspace)`.
    replaces: Option<(String, String)>,
}

impl ConfirmView {
    async fn load(
        state: &AppState,
        headers: &HeaderMap,
        handoff: &Handoff,
    ) -> Result<Self, StoreError> {
        let (email, workspace) = who(state, handoff.team_id, handoff.user_id).await?;
        let email = if handoff.email.is_empty() {
            email
        } else {
            handoff.email.clone()
        };
        let replaces = match session::current(state, headers).await? {
            Some(s) => match s.user_id {
                Some(u) if u == handoff.user_id && s.team_id == handoff.team_id => None,
                Some(u) => Some(who(state, s.team_id, u).await?),
                None => None,
            },
            None => None,
        };
        Ok(Self {
            email,
            workspace,
            replaces,
        })
    }

    fn render(&self, state: &AppState, token: &str) -> Markup {
        let region = state.config.region_id().as_str().to_ascii_uppercase();
        html! {
            h1 {
                "Continue as " (Text(&self.email)) " in " (Text(&self.workspace))
                " (" (Text(&region)) ")?"
            }
            p {
                "A sign-in to ClosedLoop AI arrived that this browser did not start here \
                 (for example from your Okta dashboard, or a link someone sent you). Continue \
                 only if you meant to sign in as " strong { (Text(&self.email)) } "."
            }
            @if let Some((user, workspace)) = &self.replaces {
                p.error role="alert" id="replaces" {
                    "This browser is signed in as " strong { (Text(user)) } " in "
                    strong { (Text(workspace)) } ". Continuing signs that account out here."
                }
            }
            form method="post" action=(app::SIGN_IN_COMPLETE) {
                input type="hidden" name=(csrf::FIELD) value=(Text(token));
                button type="submit" name="decision" value="continue" { "Continue" }
                " "
                button type="submit" name="decision" value="cancel" { "Cancel" }
            }
        }
    }
}

/// A user's name (email) and their workspace's name.
async fn who(
    state: &AppState,
    team_id: TeamId,
    user_id: Uuid,
) -> Result<(String, String), StoreError> {
    let client = state.pg.get().await?;
    let row = client
        .query_opt(
            "SELECT coalesce(u.email, u.user_name), w.name FROM workspaces w
               LEFT JOIN users u ON u.team_id = w.team_id AND u.id = $2
              WHERE w.team_id = $1",
            &[&team_id.as_uuid(), &user_id],
        )
        .await?;
    Ok(row.map_or_else(Default::default, |r| {
        (r.get::<_, Option<String>>(0).unwrap_or_default(), r.get(1))
    }))
}

/// The confirmation form's fields.
#[derive(Debug, Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
}

/// `POST {app}/auth/complete`: the person's answer on the confirmation page.
pub async fn confirm(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<ConfirmForm>,
) -> Response {
    if let Err(e) = csrf::check_origin(&state, &headers) {
        return PageError::from(e).into_response();
    }
    let cookie_name = confirm_cookie_name(&state);
    let Some(secret) = cookie_value(&headers, cookie_name).map(str::to_owned) else {
        return SignInFailure::HandoffUnknown
            .respond(&state, None, json!({ "step": "confirm", "cookie": false }))
            .await;
    };
    if !csrf::verify(&secret, CONFIRM_PURPOSE, &form.csrf) {
        return PageError::ForeignOrigin.into_response();
    }
    let hash = TokenHash::of(&secret);
    let handoff = match take(&state, confirm_key(&state.redis, &hash)).await {
        Ok(Some(h)) => h,
        Ok(None) => {
            return SignInFailure::HandoffUnknown
                .respond(&state, None, json!({ "step": "confirm" }))
                .await;
        }
        Err(e) => return SignInFailure::Store(e).page(&state),
    };
    let clear = app_cookie(&state, cookie_name, None, 0);
    if form.decision != "continue" {
        record(
            &state,
            Some(handoff.team_id),
            &format!("user:{}", handoff.user_id),
            AuditAction::OidcSignInDeclined,
            Some(&handoff.user_id.to_string()),
            json!({ "issuer": handoff.issuer }),
        )
        .await;
        let mut response = Redirect::to(app::SIGN_IN).into_response();
        response.headers_mut().append(header::SET_COOKIE, clear);
        no_store(&mut response);
        return response;
    }
    if handoff.expires_at <= state.config.clock.now().unix_timestamp() {
        return SignInFailure::HandoffUnknown
            .respond(
                &state,
                Some(handoff.team_id),
                json!({ "step": "confirm", "expired": true }),
            )
            .await;
    }
    let id_token = open(&state, &handoff, &hash);
    let mut response = start(&state, &headers, handoff, id_token, true).await;
    response.headers_mut().append(header::SET_COOKIE, clear);
    response
}

/// Starts the session (ending the browser's previous one) and lands on the target.
async fn start(
    state: &AppState,
    headers: &HeaderMap,
    handoff: Handoff,
    id_token: String,
    confirmed: bool,
) -> Response {
    // The browser's previous session ends: one browser, one account at a time, and a
    // session an attacker made the browser hold cannot outlive a real sign-in.
    let ended = match session::end(state, headers).await {
        Ok(e) => e,
        Err(e) => return SignInFailure::Store(e).page(state),
    };
    let okta = OktaSession {
        issuer: handoff.issuer.clone(),
        id_token,
    };
    let cookie = match session::start_with(
        state,
        handoff.team_id,
        handoff.user_id,
        handoff.user_epoch,
        "okta",
        Some(&okta),
    )
    .await
    {
        Ok(c) => c,
        Err(e) => return SignInFailure::Store(e).page(state),
    };
    record(
        state,
        Some(handoff.team_id),
        &format!("user:{}", handoff.user_id),
        AuditAction::SessionSignedInOkta,
        Some(&handoff.user_id.to_string()),
        json!({
            "issuer": handoff.issuer,
            "confirmed": confirmed,
            "replaced_session": ended.is_some(),
        }),
    )
    .await;
    metrics::counter!(
        crate::metrics::SIGN_INS,
        "method" => "okta", "outcome" => "signed_in", "reason" => "none"
    )
    .increment(1);
    tracing::info!(team_id = %handoff.team_id, user_id = %handoff.user_id, confirmed, "signed in with Okta");
    let target = handoff
        .return_to
        .as_deref()
        .and_then(safe_return_to)
        .unwrap_or(app::HOME);
    let mut response = Redirect::to(target).into_response();
    let headers_out = response.headers_mut();
    headers_out.append(header::SET_COOKIE, cookie);
    headers_out.append(
        header::SET_COOKIE,
        app_cookie(state, signin_cookie_name(state), None, 0),
    );
    no_store(&mut response);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_preimage_of_the_binding_holds_it() {
        let value = random_value();
        let expected = TokenHash::of(&value).to_hex();
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("clk_signin={value}")).unwrap(),
        );
        assert!(holds(&h, "clk_signin", &expected));
        assert!(!holds(&h, "clk_confirm", &expected));
        let mut forged = HeaderMap::new();
        forged.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("clk_signin={expected}")).unwrap(),
        );
        assert!(
            !holds(&forged, "clk_signin", &expected),
            "the hash is no key"
        );
        assert!(!holds(&HeaderMap::new(), "clk_signin", &expected));
    }
}
