//! The SCIM error (RFC 7644 §3.12): one type every SCIM function returns, rendered as
//! the RFC's JSON body in exactly one place ([`ScimError::to_json`]).
//!
//! Policy: a 4xx `detail` tells the client what to fix; a 5xx `detail` is a fixed,
//! generic sentence (the cause goes to the log, never into the body).

use std::fmt;

use serde_json::{Value, json};

/// The URN of the SCIM error message schema.
pub const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// The `scimType` detail code of a `400` (RFC 7644 §3.12, Table 9). Clients branch on
/// it (Okta on `uniqueness`), so it is a closed set rather than free text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScimType {
    /// The filter syntax or the attribute/operator combination is invalid.
    InvalidFilter,
    /// The filter would yield more results than the server will return.
    TooMany,
    /// A value is already in use (for `userName`, a duplicate on create).
    Uniqueness,
    /// The change is incompatible with an attribute's mutability (readOnly, immutable)
    /// or would leave a required attribute unassigned.
    Mutability,
    /// The request body is not a valid SCIM message.
    InvalidSyntax,
    /// A PATCH `path` is invalid or malformed.
    InvalidPath,
    /// A PATCH `path` selected nothing to operate on.
    NoTarget,
    /// A value has the wrong type or is otherwise unacceptable.
    InvalidValue,
    /// The version in the request is not supported.
    InvalidVers,
    /// The request carried sensitive data in the URI.
    Sensitive,
}

impl ScimType {
    /// Every code, for parsing and tests.
    pub const ALL: [ScimType; 10] = [
        ScimType::InvalidFilter,
        ScimType::TooMany,
        ScimType::Uniqueness,
        ScimType::Mutability,
        ScimType::InvalidSyntax,
        ScimType::InvalidPath,
        ScimType::NoTarget,
        ScimType::InvalidValue,
        ScimType::InvalidVers,
        ScimType::Sensitive,
    ];

    /// The code as written in the error body.
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::TooMany => "tooMany",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::InvalidValue => "invalidValue",
            ScimType::InvalidVers => "invalidVers",
            ScimType::Sensitive => "sensitive",
        }
    }

    /// The code written as `s` (exact spelling, as the RFC defines it).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for ScimType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A SCIM error: an HTTP status, an optional `scimType`, and a human-readable detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SCIM {status}{}: {detail}", scim_type.map(|t| format!(" {t}")).unwrap_or_default())]
pub struct ScimError {
    /// The HTTP status code, also written (as a string) into the body.
    pub status: u16,
    /// The RFC's detail code; only ever set on a `400`.
    pub scim_type: Option<ScimType>,
    /// What went wrong, for the human reading the IdP's provisioning log.
    pub detail: String,
}

impl ScimError {
    fn new(status: u16, scim_type: Option<ScimType>, detail: impl Into<String>) -> Self {
        Self {
            status,
            scim_type,
            detail: detail.into(),
        }
    }

    /// `400` with a `scimType`: the request is wrong in the way `scim_type` names.
    pub fn bad_request(scim_type: ScimType, detail: impl Into<String>) -> Self {
        Self::new(400, Some(scim_type), detail)
    }

    /// `401`: the bearer token is missing or invalid. Okta expects the SCIM body here.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(401, None, detail)
    }

    /// `403`: authenticated but not allowed (also a `filter` on `/Schemas`).
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(403, None, detail)
    }

    /// `404`: no such resource. Also for ids that do not parse: Okta expects 404, not 400.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, None, detail)
    }

    /// `405`: the endpoint exists but not with this method.
    pub fn method_not_allowed(detail: impl Into<String>) -> Self {
        Self::new(405, None, detail)
    }

    /// `409` `uniqueness`: a value that must be unique (`userName`) is already taken.
    pub fn conflict_uniqueness(detail: impl Into<String>) -> Self {
        Self::new(409, Some(ScimType::Uniqueness), detail)
    }

    /// `412`: `If-Match` names a version the resource no longer has.
    pub fn precondition_failed(detail: impl Into<String>) -> Self {
        Self::new(412, None, detail)
    }

    /// `413`: the request body is larger than the server accepts.
    pub fn payload_too_large(detail: impl Into<String>) -> Self {
        Self::new(413, None, detail)
    }

    /// `429`: rate limited; the caller adds an integer `Retry-After`, which Okta honours.
    pub fn too_many_requests(detail: impl Into<String>) -> Self {
        Self::new(429, None, detail)
    }

    /// `500`: a fault on our side. The detail is fixed so internals never reach a client.
    pub fn internal() -> Self {
        Self::new(500, None, "internal server error")
    }

    /// `501`: a SCIM feature we do not offer (`/Bulk`, `/Me`), as RFC 7644 prescribes.
    pub fn not_implemented(detail: impl Into<String>) -> Self {
        Self::new(501, None, detail)
    }

    /// `503`: a store is unreachable; the detail is fixed, like a `500`'s.
    pub fn service_unavailable() -> Self {
        Self::new(503, None, "service temporarily unavailable")
    }

    /// The RFC 7644 §3.12 body. `status` is a JSON string, as the RFC writes it;
    /// `scimType` is omitted when there is none.
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "schemas": [ERROR_URN],
            "status": self.status.to_string(),
        });
        if let (Some(t), Some(obj)) = (self.scim_type, body.as_object_mut()) {
            obj.insert("scimType".into(), Value::String(t.as_str().into()));
        }
        if let Some(obj) = body.as_object_mut() {
            obj.insert("detail".into(), Value::String(self.detail.clone()));
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_rfc_body_with_a_string_status() {
        let e = ScimError::bad_request(ScimType::InvalidFilter, "bad filter");
        assert_eq!(
            e.to_json(),
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": "400",
                "scimType": "invalidFilter",
                "detail": "bad filter"
            })
        );
    }

    #[test]
    fn omits_scim_type_when_none() {
        let body = ScimError::unauthorized("missing bearer token").to_json();
        assert_eq!(body["status"], "401");
        assert!(body.get("scimType").is_none());
        assert_eq!(body["detail"], "missing bearer token");
    }

    #[test]
    fn constructors_set_status_and_type() {
        let c = ScimError::conflict_uniqueness("userName taken");
        assert_eq!((c.status, c.scim_type), (409, Some(ScimType::Uniqueness)));
        assert_eq!(ScimError::not_found("x").status, 404);
        assert_eq!(ScimError::forbidden("x").status, 403);
        assert_eq!(ScimError::precondition_failed("x").status, 412);
        assert_eq!(ScimError::too_many_requests("x").status, 429);
        assert_eq!(ScimError::not_implemented("x").status, 501);
        assert_eq!(ScimError::internal().status, 500);
        assert_eq!(ScimError::service_unavailable().status, 503);
    }

    #[test]
    fn scim_types_round_trip() {
        for t in ScimType::ALL {
            assert_eq!(ScimType::parse(t.as_str()), Some(t));
        }
        assert_eq!(ScimType::parse("nope"), None);
        assert_eq!(ScimType::NoTarget.to_string(), "noTarget");
    }

    #[test]
    fn display_names_status_type_and_detail() {
        let e = ScimError::bad_request(ScimType::NoTarget, "no match");
        assert_eq!(e.to_string(), "SCIM 400 noTarget: no match");
        assert_eq!(ScimError::not_found("gone").to_string(), "SCIM 404: gone");
    }
}
