//! SCIM input and output: the JSON body extractor (so a bad body gets a SCIM error,
//! not the framework's), query parameters, the response shape (`application/scim+json`,
//! `Location`, `ETag`) and the error response.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use shared::scim::error::{ScimError, ScimType};

use crate::body::BodyError;
use crate::error::Protocol;
use crate::store::StoreError;

/// The SCIM media type of every response.
pub const SCIM_JSON: &str = "application/scim+json";

/// The largest request body accepted (a full member list of a large group fits).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// A SCIM error on its way out, the one renderer of SCIM errors (RFC 7644 §3.12):
/// `application/scim+json`, `WWW-Authenticate` on `401`, `Retry-After` on `429` and
/// `503`. 5xx details never reach the client.
#[derive(Debug)]
pub struct ScimFailure {
    error: ScimError,
    /// Seconds for `Retry-After` (at least 1).
    retry_after: Option<u64>,
}

impl ScimFailure {
    /// `429`: the client is to wait `seconds` before its next request.
    pub fn too_many_requests(detail: &str, seconds: u64) -> Self {
        Self {
            error: ScimError::too_many_requests(detail),
            retry_after: Some(seconds.max(1)),
        }
    }
}

impl From<ScimError> for ScimFailure {
    fn from(error: ScimError) -> Self {
        Self {
            error,
            retry_after: None,
        }
    }
}

/// The SCIM group's `405` (RFC 7644 §3.12): a path that exists, asked with a method it
/// does not answer (`POST /Roles`, `DELETE /ServiceProviderConfig`). Installed as the
/// group's method-not-allowed fallback, so axum still adds the `Allow` header; without
/// it a SCIM client would get the framework's empty body.
pub async fn method_not_allowed(method: axum::http::Method) -> ScimFailure {
    ScimError::method_not_allowed(format!(
        "{method} is not supported on this SCIM endpoint; the Allow header lists the methods it answers."
    ))
    .into()
}

impl From<StoreError> for ScimFailure {
    fn from(e: StoreError) -> Self {
        let outage = crate::error::store_unavailable(Protocol::Scim, &e);
        Self {
            error: ScimError::service_unavailable(),
            retry_after: Some(outage.retry_after_secs()),
        }
    }
}

impl IntoResponse for ScimFailure {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, self.error.to_json().to_string()).into_response();
        // For the audit of refused requests ([`super::refusals`]), which sees only the
        // response: the error itself, not its rendered body.
        response.extensions_mut().insert(self.error);
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
        if let Some(seconds) = self.retry_after {
            crate::error::set_retry_after(headers, seconds);
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"scim\""),
            );
        }
        response
    }
}

/// A SCIM request body: JSON (`application/scim+json` or `application/json`), at most
/// [`MAX_BODY_BYTES`], an object. Anything else is a SCIM `400` (or `413`, `415`).
#[derive(Debug)]
pub struct ScimJson(pub Value);

impl<S: Send + Sync> FromRequest<S> for ScimJson {
    type Rejection = ScimFailure;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
            let essence = ct.split(';').next().unwrap_or_default().trim();
            if !(essence == "application/json" || essence.ends_with("+json") || essence.is_empty())
            {
                return Err(ScimError {
                    status: 415,
                    scim_type: None,
                    detail: format!(
                        "unsupported content type {essence:?}: send application/scim+json"
                    ),
                }
                .into());
            }
        }
        let body = read_limited(req.into_body()).await?;
        parse_body(&body).map(ScimJson).map_err(ScimFailure::from)
    }
}

/// Reads at most [`MAX_BODY_BYTES`] with the worker's one bounded reader
/// ([`crate::body::read_limited`], which drains an oversized body before the `413`).
async fn read_limited(body: axum::body::Body) -> Result<Bytes, ScimError> {
    crate::body::read_limited(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge => {
                ScimError::payload_too_large(format!("the body exceeds {MAX_BODY_BYTES} bytes"))
            }
            BodyError::Unreadable => {
                ScimError::bad_request(ScimType::InvalidSyntax, "the body could not be read")
            }
        })
}

fn parse_body(body: &Bytes) -> Result<Value, ScimError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ScimError::bad_request(
            ScimType::InvalidSyntax,
            "the request body is empty",
        ));
    }
    // serde_json limits nesting to 128 levels: deep bodies fail here, never overflow.
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ScimError::bad_request(
            ScimType::InvalidSyntax,
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    if !value.is_object() {
        return Err(ScimError::bad_request(
            ScimType::InvalidSyntax,
            "the body must be a JSON object",
        ));
    }
    Ok(value)
}

/// Refuses a body whose `schemas` does not list `urn` (RFC 7643 §3).
pub fn require_schema(body: &Value, urn: &str) -> Result<(), ScimError> {
    let listed = body
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|list| {
            list.iter()
                .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(urn)))
        });
    if listed {
        Ok(())
    } else {
        Err(ScimError::bad_request(
            ScimType::InvalidSyntax,
            format!("\"schemas\" must be an array that lists {urn}"),
        ))
    }
}

/// The SCIM query parameters, names matched case-insensitively.
#[derive(Debug, Default)]
pub struct ListParams {
    /// `filter`.
    pub filter: Option<String>,
    /// `startIndex`.
    pub start_index: Option<String>,
    /// `count`.
    pub count: Option<String>,
    /// `attributes`.
    pub attributes: Option<String>,
    /// `excludedAttributes`.
    pub excluded_attributes: Option<String>,
}

impl ListParams {
    /// Whether the response is projected at all (`attributes` or
    /// `excludedAttributes` given); without either, resources go out as rendered.
    pub fn projects(&self) -> bool {
        self.attributes.is_some() || self.excluded_attributes.is_some()
    }

    /// Reads the query string (unknown parameters are ignored).
    pub fn parse(query: Option<&str>) -> Self {
        let mut p = Self::default();
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let slot = match k.to_ascii_lowercase().as_str() {
                "filter" => &mut p.filter,
                "startindex" => &mut p.start_index,
                "count" => &mut p.count,
                "attributes" => &mut p.attributes,
                "excludedattributes" => &mut p.excluded_attributes,
                _ => continue,
            };
            *slot = Some(v.into_owned());
        }
        p
    }
}

/// The weak ETag of a resource version.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// Whether an `If-None-Match` / `If-Match` header value names `tag` (or is `*`).
pub fn matches_etag(header: &HeaderValue, tag: &str) -> bool {
    let Ok(text) = header.to_str() else {
        return false;
    };
    let strip = |t: &str| {
        t.trim()
            .trim_start_matches("W/")
            .trim_matches('"')
            .to_owned()
    };
    let want = strip(tag);
    text.split(',').any(|t| t.trim() == "*" || strip(t) == want)
}

/// Checks `If-Match` for a write: a mismatch is `412`.
pub fn check_if_match(headers: &HeaderMap, version: i64) -> Result<(), ScimError> {
    match headers.get(header::IF_MATCH) {
        Some(h) if !matches_etag(h, &etag(version)) => Err(ScimError::precondition_failed(
            "the resource has changed since the version named in If-Match",
        )),
        _ => Ok(()),
    }
}

/// A SCIM response with a body.
pub fn reply(
    status: StatusCode,
    body: &Value,
    version: Option<i64>,
    location: Option<&str>,
) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    if let Some(v) = version
        && let Ok(h) = HeaderValue::from_str(&etag(v))
    {
        headers.insert(header::ETAG, h);
    }
    if let Some(l) = location
        && let Ok(h) = HeaderValue::from_str(l)
    {
        headers.insert(header::LOCATION, h);
    }
    response
}

/// `304 Not Modified` when `If-None-Match` names the current version.
pub fn not_modified(headers: &HeaderMap, version: i64) -> Option<Response> {
    let h = headers.get(header::IF_NONE_MATCH)?;
    if !matches_etag(h, &etag(version)) {
        return None;
    }
    let mut r = StatusCode::NOT_MODIFIED.into_response();
    if let Ok(v) = HeaderValue::from_str(&etag(version)) {
        r.headers_mut().insert(header::ETAG, v);
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_match_weak_and_strong_forms() {
        let tag = etag(3);
        assert!(matches_etag(&HeaderValue::from_static("W/\"3\""), &tag));
        assert!(matches_etag(&HeaderValue::from_static("\"3\""), &tag));
        assert!(matches_etag(
            &HeaderValue::from_static("\"1\", W/\"3\""),
            &tag
        ));
        assert!(matches_etag(&HeaderValue::from_static("*"), &tag));
        assert!(!matches_etag(&HeaderValue::from_static("W/\"2\""), &tag));
    }

    #[test]
    fn params_are_case_insensitive() {
        let p = ListParams::parse(Some("Filter=userName%20eq%20%22a%22&STARTINDEX=3&count=5"));
        assert_eq!(p.filter.as_deref(), Some("userName eq \"a\""));
        assert_eq!(p.start_index.as_deref(), Some("3"));
        assert_eq!(p.count.as_deref(), Some("5"));
    }

    #[test]
    fn bodies_must_be_json_objects() {
        assert!(parse_body(&Bytes::from_static(b"")).is_err());
        assert!(parse_body(&Bytes::from_static(b"[1]")).is_err());
        assert!(parse_body(&Bytes::from_static(b"{")).is_err());
        let deep = "[".repeat(10_000);
        assert!(parse_body(&Bytes::from(deep)).is_err());
        assert!(parse_body(&Bytes::from_static(b"{\"a\":1}")).is_ok());
    }
}
