//! The JSON token API on the API host, authenticated with a personal API token:
//!
//! - `GET /api/tokens[?limit=N&starting_after=ID]`: the caller's live tokens, newest
//!   first (`limit` 1 to 1000, default 100), with `has_more`;
//! - `POST /api/tokens` `{"name", "kind": "api"|"mcp", "expires_in_days"}`: `201` with
//!   the new token's secret in `token`, shown this once (default lifetime 90 days, and
//!   never beyond the expiry of the token that authenticates the request);
//! - `DELETE /api/tokens/{id}`: `204`; `404` when the caller has no such live token.
//!
//! A body that is not the expected JSON gets our error format, not the framework's.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use time::Duration;
use uuid::Uuid;

use super::auth::caller;
use super::{TokenApiError, summary_json};
use crate::state::AppState;
use crate::store::personal_tokens::{
    self, Creation, LIFETIME_DAYS, NewToken, PersonalKind, valid_name,
};

/// The default lifetime of a new token.
pub const DEFAULT_LIFETIME_DAYS: i64 = 90;
/// The default and largest page sizes of the list.
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

/// The list's query.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<String>,
    starting_after: Option<String>,
}

/// `GET /api/tokens`.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, TokenApiError> {
    let who = caller(&state, &headers, PersonalKind::Api).await?;
    // A repeated parameter gets our error format (after authentication), not the
    // framework's plain-text rejection.
    let Ok(Query(q)) = query else {
        return Err(TokenApiError::BadRequest(
            "send limit and starting_after at most once each",
        ));
    };
    let limit = match q.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or(TokenApiError::BadRequest("limit must be 1 to 1000"))?,
    };
    let after = match q.starting_after.as_deref() {
        None => None,
        Some(s) => Some(
            Uuid::parse_str(s)
                .map_err(|_| TokenApiError::BadRequest("starting_after must be a token id"))?,
        ),
    };
    let client = state
        .pg
        .get()
        .await
        .map_err(crate::store::StoreError::from)?;
    let (page, more) =
        personal_tokens::list(&client, who.owner, state.config.clock.now(), limit, after).await?;
    let tokens: Vec<_> = page.iter().map(summary_json).collect();
    Ok(no_store(
        Json(json!({ "tokens": tokens, "has_more": more })).into_response(),
    ))
}

/// The creation body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    kind: String,
    expires_in_days: Option<i64>,
}

/// `POST /api/tokens`.
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, TokenApiError> {
    let who = match caller(&state, &headers, PersonalKind::Api).await {
        Ok(who) => who,
        Err(e) => {
            // Read (and drop) what was sent before answering, so that a proxy still
            // sending it gets the answer rather than a reset connection.
            let _ = crate::body::read_limited(body, 0).await;
            return Err(e);
        }
    };
    let body = crate::body::read_limited(body, crate::body::MAX_SMALL_BODY)
        .await
        .map_err(|e| match e {
            crate::body::BodyError::TooLarge => TokenApiError::TooLarge,
            crate::body::BodyError::Unreadable => {
                TokenApiError::BadRequest("the body could not be read")
            }
        })?;
    let body: CreateBody = serde_json::from_slice(&body).map_err(|_| {
        TokenApiError::BadRequest(
            "send a JSON object {\"name\": …, \"kind\": \"api\"|\"mcp\", \"expires_in_days\": 1-366}",
        )
    })?;
    let name = valid_name(&body.name).ok_or(TokenApiError::BadRequest(
        "name must be 1 to 100 characters without control characters",
    ))?;
    let kind = PersonalKind::parse(&body.kind)
        .ok_or(TokenApiError::BadRequest("kind must be \"api\" or \"mcp\""))?;
    let days = body.expires_in_days.unwrap_or(DEFAULT_LIFETIME_DAYS);
    if !LIFETIME_DAYS.contains(&days) {
        return Err(TokenApiError::BadRequest(
            "expires_in_days must be 1 to 366",
        ));
    }
    let now = state.config.clock.now();
    // A token made with a token never outlives it: a leaked API token cannot mint
    // itself a longer life.
    let mut expires_at = now + Duration::days(days);
    if let Some(limit) = who
        .record
        .expires_at
        .and_then(|e| time::OffsetDateTime::from_unix_timestamp(e).ok())
    {
        expires_at = expires_at.min(limit);
    }
    let created = personal_tokens::create(
        &state.pg,
        &state.redis,
        state.config.region_id(),
        &NewToken {
            owner: who.owner,
            kind,
            name,
            expires_at,
            now,
        },
    )
    .await?;
    match created {
        Creation::Created(t) => {
            let mut body = summary_json(&t.summary);
            body["token"] = json!(t.secret);
            let location = crate::paths::api::token(t.summary.id);
            let mut response = (StatusCode::CREATED, Json(body)).into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, v);
            }
            Ok(no_store(response))
        }
        Creation::Stale => Err(TokenApiError::Unauthenticated {
            kind: PersonalKind::Api.code(),
        }),
        Creation::TooMany => Err(TokenApiError::TooMany),
    }
}

/// `DELETE /api/tokens/{id}`.
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, TokenApiError> {
    let who = caller(&state, &headers, PersonalKind::Api).await?;
    // An id that does not even decode (`%FF`) names no token either.
    let id = id
        .ok()
        .and_then(|Path(id)| Uuid::parse_str(&id).ok())
        .ok_or(TokenApiError::NotFound)?;
    if personal_tokens::revoke(&state.pg, &state.redis, who.owner, id).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(TokenApiError::NotFound)
    }
}

/// Marks a response uncacheable: it lists or carries credentials.
fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
