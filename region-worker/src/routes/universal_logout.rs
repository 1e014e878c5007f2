//! `POST /api/okta/universal-logout` on the region's API host: Okta's Universal Logout
//! (Global Token Revocation, OKTA.md §7; the seed's Step 4 and last testing step).
//!
//! A valid request ends every browser session, API token and MCP token of the named
//! user in the workspace whose Okta app sent it: one `UPDATE` of the user's revocation
//! epoch, published to Redis before the commit, so the very next request with any of
//! them is refused (`401`, or a redirect to sign-in for pages) whatever their number.
//! SCIM tokens and grants are not the user's: they belong to the workspace's
//! provisioning and stay valid.
//!
//! The steps, and the status Okta reads when one fails:
//! 1. the bearer JWT ([`verify`]): missing or invalid → `401`; the org's keys
//!    unreachable → `422`;
//! 2. the workspace's rate limit (token bucket in Redis) → `429` with `Retry-After`;
//! 3. `jti` single use until `exp` (plus skew), per issuer, in Redis and durably in
//!    Postgres (in the revoking transaction) → `401`;
//! 4. the body ([`subject`]): malformed or unknown format → `400`;
//! 5. the user: an `iss_sub` naming another issuer → `403`; nobody → `404`;
//! 6. the revocation; a store failure anywhere → `422` (unable to log out).
//!
//! Bodies carry a short JSON error for humans and never more than the status says.
//! Every request, valid or not, is audited (the reason, the claimed issuer and client,
//! the subject, a digest of the `jti`; never the JWT), and counted in
//! [`UNIVERSAL_LOGOUTS`].

pub mod subject;
pub mod verify;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shared::ids::TeamId;
use shared::token::TokenHash;
use uuid::Uuid;

use self::subject::{Subject, SubjectError};
use self::verify::{Authenticated, Claimed, Refusal};
use crate::auth_header::bearer;
use crate::error::{Protocol, StoreUnavailable, json_error, set_retry_after, store_unavailable};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::audit::{self, AuditAction, AuditEvent};
use crate::store::personal_tokens;

/// The largest body accepted (a subject is a few hundred bytes).
pub const MAX_BODY: usize = 16 * 1024;

/// Universal Logout requests, by status, reason and `team_id` (the workspace whose
/// Okta settings the JWT's issuer and client named, else `none`: never a made-up id).
pub const UNIVERSAL_LOGOUTS: &str = "worker_universal_logouts_total";

/// The longest claimed value kept in the audit trail of a refused request.
const AUDIT_CLAIM_LEN: usize = 256;

/// Why a request did not log anyone out, with the status Okta reads.
#[derive(Debug, thiserror::Error)]
pub enum LogoutError {
    /// `401`: no bearer token, or an invalid or replayed one.
    #[error("the bearer JWT is missing or invalid")]
    Unauthenticated(&'static str),
    /// `400`: the body is malformed or names an unsupported subject format.
    #[error("the request body is malformed or names an unsupported subject format")]
    BadRequest(SubjectError),
    /// `403`: a valid JWT that may not log this subject out.
    #[error("this request may not log out this subject")]
    Forbidden(&'static str),
    /// `404`: no such user in the workspace.
    #[error("no such user")]
    UnknownUser,
    /// `422`: the logout could not be carried out (Okta's keys unavailable).
    #[error("the logout could not be completed; retry later")]
    Unable(&'static str),
    /// `422`: a store is unavailable (logged and counted on the way in).
    #[error("the logout could not be completed; retry later")]
    StoreUnavailable(StoreUnavailable),
    /// `429`: the workspace sent more requests than its rate limit allows, or this
    /// client's refused requests did.
    #[error("too many logout requests; retry later")]
    RateLimited {
        /// Seconds to wait.
        retry_after: u64,
    },
}

impl LogoutError {
    /// The status Okta reads.
    pub fn status(&self) -> StatusCode {
        match self {
            LogoutError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            LogoutError::BadRequest(_) => StatusCode::BAD_REQUEST,
            LogoutError::Forbidden(_) => StatusCode::FORBIDDEN,
            LogoutError::UnknownUser => StatusCode::NOT_FOUND,
            LogoutError::Unable(_) | LogoutError::StoreUnavailable(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            LogoutError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// A stable code for the audit trail and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            LogoutError::Unauthenticated(r)
            | LogoutError::Forbidden(r)
            | LogoutError::Unable(r) => r,
            LogoutError::BadRequest(e) => e.reason(),
            LogoutError::UnknownUser => "unknown_user",
            LogoutError::StoreUnavailable(_) => "store_unavailable",
            LogoutError::RateLimited { .. } => "rate_limited",
        }
    }

    fn code(&self) -> &'static str {
        match self {
            LogoutError::Unauthenticated(_) => "invalid_token",
            LogoutError::BadRequest(_) => "invalid_request",
            LogoutError::Forbidden(_) => "forbidden",
            LogoutError::UnknownUser => "not_found",
            LogoutError::Unable(_) | LogoutError::StoreUnavailable(_) => "unable_to_logout",
            LogoutError::RateLimited { .. } => "rate_limited",
        }
    }
}

impl From<StoreError> for LogoutError {
    fn from(e: StoreError) -> Self {
        LogoutError::StoreUnavailable(store_unavailable(Protocol::UniversalLogout, &e))
    }
}

impl From<Refusal> for LogoutError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Invalid(reason) => LogoutError::Unauthenticated(reason),
            Refusal::KeysUnavailable => LogoutError::Unable("keys_unavailable"),
            Refusal::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for LogoutError {
    fn into_response(self) -> Response {
        let mut response = json_error(self.status(), self.code(), &self.to_string());
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match self {
            LogoutError::Unauthenticated(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            LogoutError::RateLimited { retry_after } => {
                set_retry_after(headers, retry_after);
            }
            LogoutError::StoreUnavailable(outage) => outage.set_retry_after(headers),
            LogoutError::Unable(_) => set_retry_after(headers, StoreUnavailable::RETRY_AFTER),
            _ => {}
        }
        response
    }
}

/// What the audit trail of a request records, filled in as the request is read.
#[derive(Debug, Default)]
struct Trail {
    /// The workspace the request targeted, once known.
    team_id: Option<TeamId>,
    /// What the JWT claimed (unverified until `verified`).
    claimed: Option<Claimed>,
    /// Whether the JWT verified.
    verified: bool,
    /// The first 16 hex digits of SHA-256(`jti`): enough to correlate a replay, and
    /// never the JWT or the `jti` itself.
    jti_digest: Option<String>,
    /// The subject's format and identifier, once parsed.
    subject: Option<Subject>,
}

impl Trail {
    fn actor(&self) -> String {
        match (&self.claimed, self.verified) {
            (Some(c), true) => format!("okta:{}", truncate(&c.sub)),
            _ => "okta:unverified".to_owned(),
        }
    }

    fn detail(&self, status: StatusCode, reason: &str) -> serde_json::Value {
        json!({
            "status": status.as_u16(),
            "reason": reason,
            "iss": self.claimed.as_ref().map(|c| truncate(&c.iss)),
            "client_id": self.claimed.as_ref().map(|c| truncate(&c.sub)),
            "verified": self.verified,
            "jti_sha256": self.jti_digest,
            "format": self.subject.as_ref().map(Subject::format),
            "subject": self.subject.as_ref().map(|s| truncate(&s.describe())),
        })
    }
}

/// At most [`AUDIT_CLAIM_LEN`] characters of an untrusted value.
fn truncate(s: &str) -> String {
    s.chars().take(AUDIT_CLAIM_LEN).collect()
}

/// `POST /api/okta/universal-logout`.
pub async fn universal_logout(
    State(state): State<AppState>,
    client: crate::rate_limit::ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // Read first, whatever the answer, so that a client still sending gets it rather
    // than a reset; a body over the limit is answered (and audited) once the JWT is
    // checked.
    let body = crate::body::read_limited(body, MAX_BODY).await.ok();
    // An address whose forged requests emptied its bucket is turned away before any
    // signature check or audit write; Okta's genuine requests never count.
    if let Some(wait) = crate::rate_limit::blocked(&state, REFUSED_BUCKET, &client).await {
        metrics::counter!(
            UNIVERSAL_LOGOUTS,
            "status" => "429", "reason" => "client_blocked", "team_id" => "none"
        )
        .increment(1);
        return LogoutError::RateLimited { retry_after: wait }.into_response();
    }
    let mut trail = Trail::default();
    let outcome = run(&state, &headers, body.as_deref(), &mut trail).await;
    if let Err(LogoutError::Unauthenticated(_)) = &outcome {
        crate::rate_limit::refused(&state, REFUSED_BUCKET, &client).await;
    }
    let (status, reason) = match &outcome {
        Ok(_) => (StatusCode::NO_CONTENT, "revoked"),
        Err(e) => (e.status(), e.reason()),
    };
    let team = trail
        .team_id
        .map_or_else(|| "none".to_owned(), |t| t.to_string());
    metrics::counter!(
        UNIVERSAL_LOGOUTS,
        "status" => status.as_str().to_owned(), "reason" => reason, "team_id" => team
    )
    .increment(1);
    match outcome {
        Ok(users) => {
            tracing::info!(
                team_id = ?trail.team_id,
                users = users.len(),
                "universal logout: user sessions and tokens revoked"
            );
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => {
            tracing::info!(team_id = ?trail.team_id, status = status.as_u16(), reason, "universal logout refused");
            audit_refusal(&state, &trail, status, reason).await;
            e.into_response()
        }
    }
}

/// The per-address bucket of unauthenticated Universal Logout requests (under the
/// worker's `auth_rate_limit`).
const REFUSED_BUCKET: &str = "universal-logout-refused";

/// Records a refused request (best effort: the answer does not wait on a broken store).
async fn audit_refusal(state: &AppState, trail: &Trail, status: StatusCode, reason: &str) {
    let written = async {
        let client = state.pg.get().await?;
        audit::record(
            &client,
            &AuditEvent {
                team_id: trail.team_id,
                actor: &trail.actor(),
                action: AuditAction::OktaUniversalLogoutRefused,
                target: None,
                detail: trail.detail(status, reason),
            },
        )
        .await
    };
    if let Err(e) = written.await {
        tracing::error!(error = %e, "could not audit a refused universal logout");
    }
}

/// The request, step by step; returns the users logged out.
async fn run(
    state: &AppState,
    headers: &HeaderMap,
    body: Option<&[u8]>,
    trail: &mut Trail,
) -> Result<Vec<Uuid>, LogoutError> {
    let token = bearer(headers).ok_or(LogoutError::Unauthenticated("missing_token"))?;
    let claimed = verify::claimed(token).ok_or(LogoutError::Unauthenticated("malformed_token"))?;
    trail.claimed = Some(claimed.clone());
    let audience = format!(
        "{}{}",
        state.config.region.api_base(),
        crate::paths::api::OKTA_UNIVERSAL_LOGOUT
    );
    let authenticated =
        verify::authenticate(state, token, &claimed, &audience, &mut trail.team_id).await?;
    trail.verified = true;
    let team_id = authenticated.settings.team_id;
    crate::telemetry::record_team(team_id);
    trail.jti_digest = Some(TokenHash::of(&authenticated.jti).to_hex()[..16].to_owned());
    rate_limit(state, team_id).await?;
    claim_jti(state, &authenticated).await?;
    let body = body.ok_or(LogoutError::BadRequest(SubjectError::Malformed(
        "the body is too large or unreadable",
    )))?;
    let subject = subject::parse(body).map_err(LogoutError::BadRequest)?;
    trail.subject = Some(subject.clone());
    let users = resolve(state, &authenticated, &subject).await?;
    revoke(state, &authenticated, &users, trail).await?;
    Ok(users)
}

/// The users `subject` names in the workspace.
async fn resolve(
    state: &AppState,
    authenticated: &Authenticated,
    subject: &Subject,
) -> Result<Vec<Uuid>, LogoutError> {
    let team_id = authenticated.settings.team_id;
    let client = state.pg.get().await.map_err(StoreError::from)?;
    let users = match subject {
        Subject::Email(email) => personal_tokens::users_by_email(&client, team_id, email).await?,
        Subject::IssSub { iss, sub } => {
            if iss.trim_end_matches('/') != authenticated.settings.issuer.trim_end_matches('/') {
                // The org may only log out its own users.
                return Err(LogoutError::Forbidden("foreign_issuer"));
            }
            // Bound to (iss, sub) at sign-in, or provisioned with sub as externalId.
            let issuer = &authenticated.settings.issuer;
            crate::store::users::ids_by_okta_subject(&client, team_id, issuer, sub).await?
        }
        Subject::Opaque(id) => match Uuid::parse_str(id) {
            Ok(uuid) => personal_tokens::user_by_id(&client, team_id, uuid).await?,
            Err(_) => personal_tokens::users_by_external_id(&client, team_id, id).await?,
        },
    };
    if users.is_empty() {
        return Err(LogoutError::UnknownUser);
    }
    Ok(users)
}

/// Ends everything the users hold and audits it, in one transaction: the epochs are
/// published to Redis before the commit, and a failure to publish rolls it back, so
/// that a `204` always means the next request is refused. The `jti` is recorded in the
/// same transaction ([`claim_jti_durably`]).
async fn revoke(
    state: &AppState,
    authenticated: &Authenticated,
    users: &[Uuid],
    trail: &Trail,
) -> Result<(), LogoutError> {
    let team_id = authenticated.settings.team_id;
    let mut client = state.pg.get().await.map_err(StoreError::from)?;
    let tx = client.transaction().await.map_err(StoreError::from)?;
    claim_jti_durably(state, &tx, authenticated).await?;
    let raised = personal_tokens::revoke_users(&tx, &state.redis, team_id, users).await?;
    if raised.is_empty() {
        // Deleted between the lookup and now.
        return Err(LogoutError::UnknownUser);
    }
    let actor = trail.actor();
    for (user_id, _) in &raised {
        audit::record(
            &tx,
            &AuditEvent {
                team_id: Some(team_id),
                actor: &actor,
                action: AuditAction::OktaUniversalLogout,
                target: Some(&user_id.to_string()),
                detail: trail.detail(StatusCode::NO_CONTENT, "revoked"),
            },
        )
        .await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

/// The digest a `jti` is remembered by: per issuer, never the `jti` itself.
fn jti_digest(a: &Authenticated) -> TokenHash {
    TokenHash::of(&format!("{}\n{}", a.settings.issuer, a.jti))
}

/// Records the `jti` in Postgres until `exp` plus the skew, inside the revoking
/// transaction: a replay that got past Redis (flushed, or replaced by an empty one)
/// is refused here (`401`) and revokes nothing. Also drops a few expired entries.
async fn claim_jti_durably(
    state: &AppState,
    tx: &crate::store::pg::Transaction<'_>,
    a: &Authenticated,
) -> Result<(), LogoutError> {
    let skew = state.config.sign_in.clock_skew.whole_seconds();
    let now = state.config.clock.now().unix_timestamp();
    tx.execute(
        "DELETE FROM logout_jtis WHERE digest IN
             (SELECT digest FROM logout_jtis WHERE expires_at < to_timestamp($1) LIMIT 100)",
        &[&(now as f64)],
    )
    .await
    .map_err(StoreError::from)?;
    let fresh = tx
        .execute(
            "INSERT INTO logout_jtis (digest, expires_at) VALUES ($1, to_timestamp($2))
             ON CONFLICT (digest) DO NOTHING",
            &[&jti_digest(a).0.as_slice(), &((a.exp + skew) as f64)],
        )
        .await
        .map_err(StoreError::from)?;
    if fresh == 0 {
        return Err(LogoutError::Unauthenticated("replayed_jti"));
    }
    Ok(())
}

/// Claims the JWT's `jti` for its issuer until its `exp` plus the skew: a second
/// request with the same `jti` is a replay (`401`). Redis answers first and cheaply;
/// Postgres keeps the record durably ([`claim_jti_durably`]).
async fn claim_jti(state: &AppState, a: &Authenticated) -> Result<(), LogoutError> {
    let now = state.config.clock.now().unix_timestamp();
    let skew = state.config.sign_in.clock_skew.whole_seconds();
    let ttl = (a.exp + skew - now).max(1);
    let digest = jti_digest(a).to_hex();
    let fresh: Option<String> = redis::cmd("SET")
        .arg(state.redis.key(&format!("ulo_jti:{digest}")))
        .arg(1)
        .arg("EX")
        .arg(ttl)
        .arg("NX")
        .query_async(&mut state.redis.conn())
        .await
        .map_err(StoreError::from)?;
    if fresh.is_none() {
        return Err(LogoutError::Unauthenticated("replayed_jti"));
    }
    Ok(())
}

/// The workspace's bucket ([`crate::rate_limit::take`]) under the region's
/// `universal_logout_rate_limit`, which is separate from SCIM's so that a provisioning
/// burst never delays a logout.
async fn rate_limit(state: &AppState, team_id: TeamId) -> Result<(), LogoutError> {
    let bucket = format!("rl:ulo:{team_id}");
    let limit = state.config.universal_logout_rate_limit;
    match crate::rate_limit::take(&state.redis, &bucket, limit).await? {
        None => Ok(()),
        Some(wait) => Err(LogoutError::RateLimited { retry_after: wait }),
    }
}
