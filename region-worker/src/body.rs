//! Reading a small request body (a form or a JSON document) under a size limit, for the
//! endpoints outside SCIM that buffer theirs: the OAuth token endpoint, introspection
//! and the token API. Their own error formats answer an oversized body; the framework's
//! plain-text rejection never reaches a client.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use http_body_util::BodyExt;

/// Whether the body is declared as a form (`application/x-www-form-urlencoded`, any
/// parameters): what the OAuth token and revocation endpoints require (RFC 6749
/// §4.1.3, RFC 7009 §2.1).
pub fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// The largest form or JSON body these endpoints accept: a few parameters or fields.
pub const MAX_SMALL_BODY: usize = 64 * 1024;

/// How much of an oversized body is read (and discarded) before answering: answering
/// while the client is still sending would close the connection with unread data, and
/// the client (or the gateway in front) would see a reset instead of our `413`.
pub const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// Why a body could not be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Larger than the limit (`413`).
    #[error("the request body is too large")]
    TooLarge,
    /// The client broke off while sending it.
    #[error("the request body could not be read")]
    Unreadable,
}

/// Reads at most `max` bytes of `body`, draining (up to [`DRAIN_LIMIT`]) what is over.
pub async fn read_limited(mut body: Body, max: usize) -> Result<Bytes, BodyError> {
    let mut buf = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Unreadable)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen > DRAIN_LIMIT {
            return Err(BodyError::TooLarge);
        }
        if seen <= max {
            buf.extend_from_slice(&data);
        }
    }
    if seen > max {
        return Err(BodyError::TooLarge);
    }
    Ok(Bytes::from(buf))
}
