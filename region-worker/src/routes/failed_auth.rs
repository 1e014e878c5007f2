//! A per-client limit on failed authentications, in front of every route that takes one
//! of our credentials: a `clk_…` bearer token on the API host (SCIM, the token API,
//! `/api/me`, `/api/mcp/whoami`) or the session cookie on the app host.
//!
//! Why: a well-formed but unknown token misses Redis and costs a Postgres query, so a
//! flood of made-up tokens would reach Postgres at the flood's rate and slow every real
//! client. Refused credentials are counted per client ([`ClientIp`]) in a shared Redis
//! bucket ([`rate_limit::take`], the region's `auth_rate_limit`); a client whose
//! refusals empty its bucket is blocked until the bucket has refilled: its credentials
//! are then answered from Redis alone, never Postgres (a valid token Redis holds keeps
//! working, a revoked one is still `401`), and one only Postgres could answer for gets
//! `429` in the route's own format.
//!
//! Only refusals that cost a Postgres lookup count (a revoked token Redis still holds
//! as a tombstone, or a made-up one the negative cache remembers, costs nothing worth
//! limiting), so a client presenting valid credentials is never slowed
//! (Okta's provisioning comes from a few shared addresses: a busy tenant must not
//! block another). The block itself is kept in this worker's memory, so checking it
//! costs no round trip on the hot path; each replica learns of a blocked client at its
//! first refusal there (the shared bucket is already empty), so a flood spread across
//! replicas gets at most one more lookup per replica.
//!
//! A blocked client's request is held for a second (at most its `Retry-After`, and at
//! most 10,000 at once) before its `429`: a flood over a few connections then runs at
//! the pace of its connections, not at the worker's full speed, and leaves the worker's
//! cores to real clients (BENCHMARKS.md, "Made-up bearer tokens").
//!
//! A refusal is seen as a `401` on the API host; on the app host, where pages answer an
//! unknown session by asking to sign in, [`session::current`](crate::session::current)
//! reports it through [`crate::failed_auth::note_refused`].

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::failed_auth;
use crate::rate_limit::{self, ClientIp};
use crate::routes::scim::ScimFailure;
use crate::routes::tokens::TokenApiError;
use crate::state::AppState;

/// The Redis bucket of failed authentications, per client.
const BUCKET: &str = "auth-failed";

/// Refused authentications answered `429`, by host (`api`, `app`).
pub const BLOCKED: &str = "worker_auth_failures_blocked_total";

/// Which of our credentials a request presents, if any.
fn presents_credential(state: &AppState, on_app_host: bool, headers: &HeaderMap) -> bool {
    if on_app_host {
        return crate::cookie::value(headers, crate::session::cookie_name(state)).is_some();
    }
    crate::auth_header::bearer(headers).is_some_and(|token| token.starts_with("clk_"))
}

/// `429` in the format of the route `path` on this host.
fn too_many(on_app_host: bool, path: &str, wait: u64) -> Response {
    if on_app_host {
        return rate_limit::page_too_many(wait);
    }
    let scim = path
        .strip_prefix(crate::paths::api::SCIM)
        .is_some_and(|rest| rest.starts_with('/'));
    if scim {
        return ScimFailure::too_many_requests(
            "Too many requests with invalid credentials from this client; retry later.",
            wait,
        )
        .into_response();
    }
    TokenApiError::RateLimited { retry_after: wait }.into_response()
}

/// The API host's middleware (bearer tokens).
pub async fn api_gate(
    State(state): State<AppState>,
    client: ClientIp,
    req: Request,
    next: Next,
) -> Response {
    gate(state, false, client, req, next).await
}

/// The app host's middleware (the session cookie).
pub async fn app_gate(
    State(state): State<AppState>,
    client: ClientIp,
    req: Request,
    next: Next,
) -> Response {
    gate(state, true, client, req, next).await
}

/// Turns a blocked client away before its credential is looked up, and counts the
/// refusals of the requests it lets through.
async fn gate(
    state: AppState,
    on_app_host: bool,
    client: ClientIp,
    req: Request,
    next: Next,
) -> Response {
    if !presents_credential(&state, on_app_host, req.headers()) {
        return next.run(req).await;
    }
    let now_ms = now_ms(&state);
    let blocked = state.failed_auth.left(&client.0, now_ms);
    let path = req.uri().path().to_owned();
    let (response, noted) = failed_auth::watch(blocked.is_some(), next.run(req)).await;
    if let Some(wait) = blocked
        && noted.skipped
    {
        metrics::counter!(BLOCKED, "host" => if on_app_host { "app" } else { "api" }).increment(1);
        // The tarpit: a closed-loop flood waits here instead of spending the worker.
        let hold = state
            .config
            .failed_auth_hold
            .min(std::time::Duration::from_secs(wait));
        if !hold.is_zero()
            && let Some(_held) = state.failed_auth.hold()
        {
            tokio::time::sleep(hold).await;
        }
        return too_many(on_app_host, &path, wait);
    }
    let refused = noted.refused || (!on_app_host && response.status() == StatusCode::UNAUTHORIZED);
    if refused && noted.looked_up {
        count_refusal(&state, &client).await;
    }
    response
}

/// Counts one refusal of `client`; when that empties its bucket, blocks it here.
async fn count_refusal(state: &AppState, client: &ClientIp) {
    let bucket = format!("rl:{BUCKET}:{}", client.0);
    match rate_limit::take(&state.redis, &bucket, state.config.auth_rate_limit).await {
        Ok(Some(wait)) => {
            tracing::warn!(
                seconds = wait,
                "client blocked after repeated invalid credentials"
            );
            state.failed_auth.block(&client.0, now_ms(state), wait);
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "could not count a failed authentication"),
    }
}

fn now_ms(state: &AppState) -> i64 {
    let now = state.config.clock.now();
    now.unix_timestamp() * 1000 + i64::from(now.millisecond())
}
