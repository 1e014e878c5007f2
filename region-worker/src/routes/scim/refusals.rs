//! The audit of refused SCIM requests (`scim.request.refused`): what Okta's provisioning
//! log shows as a failure, the admin sees on the Activity page with the same status,
//! `scimType` and detail, and Okta's request id.
//!
//! A refusal of an authenticated caller is recorded every time: the caller holds a
//! token of the workspace and is held to the workspace's SCIM rate limit, so it cannot
//! flood the log faster than it can provision. A `401` (nobody authenticated) and a
//! `429` (the rate limit itself) are different: anyone can send them at any rate, so
//! they are recorded at most once a minute per workspace and status, each recorded
//! event counting the refusals left out since the last one ([`throttled`]); the gate is
//! one Redis round trip, never a Postgres write. A client the failed-authentication
//! gate has blocked is not recorded at all. No token, header or body is ever written.

use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};
use shared::ids::TeamId;
use shared::scim::error::ScimError;

use crate::state::AppState;
use crate::store::StoreError;
use crate::store::audit::{self, AuditAction, AuditEvent};

/// The most characters of the request's path and query kept.
const MAX_PATH: usize = 300;
/// The most characters of the error's detail kept.
const MAX_DETAIL: usize = 500;
/// One throttled event per workspace and status per this many seconds.
pub const THROTTLE_SECS: u64 = 60;

/// The throttle: `SET NX EX` on the gate key; when it was set, takes (and clears) the
/// count of refusals left out since the last recorded one; otherwise adds one to it.
/// Returns the count taken, or -1 when this refusal is left out. The count lives a day:
/// a workspace that stops being refused drops it.
const THROTTLE: &str = r"
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  local n = tonumber(redis.call('GET', KEYS[2])) or 0
  redis.call('DEL', KEYS[2])
  return n
end
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], 86400)
return -1";

/// The request a refusal answered: what the audit event says of it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The workspace of the URL.
    pub team_id: TeamId,
    /// The method.
    pub method: Method,
    /// The path and query.
    pub uri: Uri,
    /// The client's request id ([`audit::request_id`]).
    pub request_id: Option<String>,
}

impl Request {
    /// The event's detail: status, `scimType` and detail of the error (when the
    /// response carries one, [`super::ScimFailure`] puts it there), method and the path
    /// under the workspace's SCIM base (with its query: a refused filter is there).
    ///
    /// Taken before any `await`: a response (its body) is not `Sync`, so a reference to
    /// it cannot be held across one.
    pub fn detail(&self, response: &Response) -> Value {
        let error = response.extensions().get::<ScimError>();
        let base = crate::paths::api::scim_base(self.team_id);
        let full = self
            .uri
            .path_and_query()
            .map_or_else(|| self.uri.path(), |pq| pq.as_str());
        let path = full.strip_prefix(&base).unwrap_or(full);
        json!({
            "status": response.status().as_u16(),
            "scimType": error.and_then(|e| e.scim_type).map(|t| t.as_str()),
            "detail": error.map(|e| truncate(&e.detail, MAX_DETAIL)),
            "method": self.method.as_str(),
            "path": truncate(path, MAX_PATH),
        })
    }
}

/// Records a refusal of an authenticated caller (`actor`), `detail` from
/// [`Request::detail`].
pub async fn record(state: &AppState, request: &Request, actor: &str, detail: Value) {
    write(state, request, actor, detail).await;
}

/// Records a refusal anyone could provoke (`401`, `429`), at most once per
/// [`THROTTLE_SECS`] per workspace and status; `extra` joins the detail (what was
/// presented, the client). The event says how many were left out before it (`more`).
pub async fn throttled(
    state: &AppState,
    request: &Request,
    actor: &str,
    mut detail: Value,
    extra: Value,
) {
    let status = detail["status"].as_u64().unwrap_or_default();
    let name = format!("audit-throttle:{{scim:{}:{status}}}", request.team_id);
    let result: Result<i64, StoreError> = redis::Script::new(THROTTLE)
        .key(state.redis.key(&name))
        .key(state.redis.key(&format!("{name}:more")))
        .arg(THROTTLE_SECS)
        .invoke_async(&mut state.redis.conn())
        .await
        .map_err(StoreError::from);
    let more = match result {
        Ok(n) if n >= 0 => n,
        Ok(_) => return,
        // Without the gate, nothing is written: an outage must not open the flood.
        Err(e) => {
            tracing::warn!(error = %e, "could not throttle the audit of a refused SCIM request");
            return;
        }
    };
    if let (Value::Object(d), Value::Object(extra)) = (&mut detail, extra) {
        d.extend(extra);
        d.insert("more".into(), json!(more));
    }
    write(state, request, actor, detail).await;
}

/// Writes the event outside any transaction; a failure is logged, never answered.
async fn write(state: &AppState, request: &Request, actor: &str, detail: Value) {
    let written = async {
        let client = state.pg.get().await?;
        audit::record(
            &client,
            &AuditEvent {
                team_id: Some(request.team_id),
                actor,
                action: AuditAction::ScimRequestRefused,
                target: None,
                detail,
            },
        )
        .await
    };
    if let Err(e) = audit::with_request_id(request.request_id.clone(), written).await {
        tracing::error!(error = %e, "could not audit a refused SCIM request");
    }
}

/// Whether a SCIM answer is a refusal to audit: a `4xx`.
pub fn is_refusal(status: StatusCode) -> bool {
    status.is_client_error()
}

/// At most `max` characters of `s`.
fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;
    use shared::scim::error::ScimType;

    #[test]
    fn the_detail_names_the_error_and_the_path_under_the_base() {
        let team_id = TeamId::parse("0b7e6a1c-0f52-4a8e-9a57-1c3d2b4a5e6f").unwrap();
        let request = Request {
            team_id,
            method: Method::GET,
            uri: format!("/api/scim/v2/{team_id}/Users?filter=userName%20zz")
                .parse()
                .unwrap(),
            request_id: None,
        };
        let response = super::super::ScimFailure::from(ScimError::bad_request(
            ScimType::InvalidFilter,
            "x".repeat(2 * MAX_DETAIL),
        ))
        .into_response();
        let detail = request.detail(&response);
        assert_eq!(detail["status"], 400);
        assert_eq!(detail["scimType"], "invalidFilter");
        assert_eq!(detail["method"], "GET");
        assert_eq!(detail["path"], "/Users?filter=userName%20zz");
        assert_eq!(detail["detail"].as_str().unwrap().len(), MAX_DETAIL);
        // A response without a SCIM error (the framework's own) still says its status.
        let bare = StatusCode::METHOD_NOT_ALLOWED.into_response();
        let detail = request.detail(&bare);
        assert_eq!(detail["status"], 405);
        assert!(detail["scimType"].is_null() && detail["detail"].is_null());
    }
}
