//! The gateway's own failures and their rendering. Error-handling policy:
//!
//! - Every failure the gateway answers itself is a [`ProxyError`] variant, rendered to a
//!   JSON body `{"error": code, "message": text}` in one place, [`ProxyError::to_response`].
//! - A response body never carries internal error text (socket errors, addresses of
//!   workers): the cause chain goes to the log, next to the request id, and the client
//!   gets the request id in `X-Request-Id` to quote.
//! - A worker's own error responses (its 4xx and 5xx) are not ours: they pass through.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};
use serde::Serialize;

use crate::body::ResponseBody;
use crate::upstream::SendError;

/// Why the gateway answered a request itself instead of relaying a worker's response.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyError {
    /// The request's host is missing or not in `regions.toml`.
    #[error("no region serves host {host:?}")]
    Misdirected {
        /// The host the client sent, if any and if printable.
        host: Option<String>,
    },
    /// On a TLS connection, the request's host is not the one named in the handshake.
    #[error("host {host:?} does not match the TLS server name")]
    SniMismatch {
        /// The host the client sent.
        host: String,
    },
    /// A `CONNECT` request: the gateway does not open tunnels.
    #[error("CONNECT is not supported")]
    ConnectMethod,
    /// The request line and headers exceed `max_header_bytes`.
    #[error("request headers too large")]
    HeadersTooLarge,
    /// The request body exceeds `max_body_bytes`.
    #[error("request body too large")]
    BodyTooLarge,
    /// The client had not finished sending its body when the request timed out.
    #[error("the client did not send its request in time")]
    ClientTimeout,
    /// No worker of the region is available: all are unhealthy, ejected or refused the
    /// connection. The other regions are unaffected.
    #[error("no worker of the region is available")]
    Unavailable,
    /// The connection exceeded a connection limit (answered on a shed connection).
    #[error("too many connections")]
    Overloaded,
    /// No connection to any tried worker could be made: the request reached no worker.
    #[error("could not connect to the worker")]
    Connect(#[source] SendError),
    /// A connection was made but the exchange failed before a response head arrived.
    #[error("the worker failed before answering")]
    Upstream(#[source] SendError),
    /// No response head arrived within the upstream timeout.
    #[error("the worker did not answer within {0:?}")]
    Timeout(Duration),
}

/// What went wrong with a worker: the `kind` label of `gateway_upstream_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpstreamErrorKind {
    /// No connection could be made.
    Connect,
    /// The connection failed during the exchange.
    Request,
    /// No response head within the upstream timeout.
    Timeout,
}

impl UpstreamErrorKind {
    /// The label value.
    pub(crate) fn label(self) -> &'static str {
        match self {
            UpstreamErrorKind::Connect => "connect",
            UpstreamErrorKind::Request => "request",
            UpstreamErrorKind::Timeout => "timeout",
        }
    }
}

/// The JSON error body.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
}

const METHOD_NOT_ALLOWED: &str =
    r#"{"error":"method_not_allowed","message":"CONNECT is not supported"}"#;
const HEADERS_TOO_LARGE: &str =
    r#"{"error":"request_header_fields_too_large","message":"the request headers are too large"}"#;
const BODY_TOO_LARGE: &str =
    r#"{"error":"payload_too_large","message":"the request body is too large"}"#;
const REQUEST_TIMEOUT: &str =
    r#"{"error":"request_timeout","message":"the request was not received in time"}"#;
const UNAVAILABLE: &str = r#"{"error":"service_unavailable","message":"the service is temporarily unavailable; try again"}"#;
const OVERLOADED: &str = r#"{"error":"overloaded","message":"too many connections; try again"}"#;

/// `Retry-After` of the gateway's `503`s: long enough for a health check or an
/// ejection back-off to move on, short enough not to idle a client.
pub(crate) const RETRY_AFTER_SECS: &str = "1";
const BAD_GATEWAY: &str =
    r#"{"error":"bad_gateway","message":"the service is temporarily unreachable; try again"}"#;
const GATEWAY_TIMEOUT: &str =
    r#"{"error":"gateway_timeout","message":"the service did not answer in time; try again"}"#;

impl ProxyError {
    /// Classifies an upstream error.
    pub(crate) fn from_client(err: SendError) -> Self {
        if err.is_connect() {
            ProxyError::Connect(err)
        } else {
            ProxyError::Upstream(err)
        }
    }

    /// The status the client receives.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ProxyError::Misdirected { .. } | ProxyError::SniMismatch { .. } => {
                StatusCode::MISDIRECTED_REQUEST
            }
            ProxyError::ConnectMethod => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProxyError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::ClientTimeout => StatusCode::REQUEST_TIMEOUT,
            ProxyError::Unavailable | ProxyError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Connect(_) | ProxyError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// What went wrong with the worker; `None` when the error is not about a worker.
    pub(crate) fn upstream_kind(&self) -> Option<UpstreamErrorKind> {
        match self {
            ProxyError::Misdirected { .. }
            | ProxyError::SniMismatch { .. }
            | ProxyError::ConnectMethod
            | ProxyError::HeadersTooLarge
            | ProxyError::BodyTooLarge
            | ProxyError::ClientTimeout
            | ProxyError::Unavailable
            | ProxyError::Overloaded => None,
            ProxyError::Connect(_) => Some(UpstreamErrorKind::Connect),
            ProxyError::Upstream(_) => Some(UpstreamErrorKind::Request),
            ProxyError::Timeout(_) => Some(UpstreamErrorKind::Timeout),
        }
    }

    /// The response for the client. The 5xx bodies are constants, so no internal text
    /// can leak into them; the `421` body names the host the client itself sent.
    pub(crate) fn to_response(&self) -> Response<ResponseBody> {
        let body = match self {
            ProxyError::Misdirected { host } => {
                let message = match host {
                    Some(host) => format!("host {host} is not served here"),
                    None => "a request without a host is not served here".to_owned(),
                };
                let body = ErrorBody {
                    error: "misdirected_request",
                    message: &message,
                };
                Bytes::from(serde_json::to_vec(&body).expect("a string pair serializes"))
            }
            ProxyError::SniMismatch { host } => {
                let message = format!("host {host} is not served on this TLS connection");
                let body = ErrorBody {
                    error: "misdirected_request",
                    message: &message,
                };
                Bytes::from(serde_json::to_vec(&body).expect("a string pair serializes"))
            }
            ProxyError::ConnectMethod => Bytes::from_static(METHOD_NOT_ALLOWED.as_bytes()),
            ProxyError::HeadersTooLarge => Bytes::from_static(HEADERS_TOO_LARGE.as_bytes()),
            ProxyError::BodyTooLarge => Bytes::from_static(BODY_TOO_LARGE.as_bytes()),
            ProxyError::ClientTimeout => Bytes::from_static(REQUEST_TIMEOUT.as_bytes()),
            ProxyError::Unavailable => Bytes::from_static(UNAVAILABLE.as_bytes()),
            ProxyError::Overloaded => Bytes::from_static(OVERLOADED.as_bytes()),
            ProxyError::Connect(_) | ProxyError::Upstream(_) => {
                Bytes::from_static(BAD_GATEWAY.as_bytes())
            }
            ProxyError::Timeout(_) => Bytes::from_static(GATEWAY_TIMEOUT.as_bytes()),
        };
        let mut response = Response::new(ResponseBody::full(body));
        *response.status_mut() = self.status();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
        }
        response
    }
}

/// Displays an error with its whole `source()` chain, for log lines.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn StdError + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn unavailable_is_a_503_with_retry_after() {
        let response = ProxyError::Unavailable.to_response();
        assert_eq!(response.headers()[RETRY_AFTER], RETRY_AFTER_SECS);
        let (status, json) = body_json(ProxyError::Unavailable).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(json["error"], "service_unavailable");
    }

    async fn body_json(err: ProxyError) -> (StatusCode, serde_json::Value) {
        let response = err.to_response();
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn misdirected_names_the_host_in_valid_json() {
        let (status, json) = body_json(ProxyError::Misdirected {
            host: Some("evil\"host".into()),
        })
        .await;
        assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
        assert_eq!(json["error"], "misdirected_request");
        assert_eq!(json["message"], "host evil\"host is not served here");

        let (_, json) = body_json(ProxyError::Misdirected { host: None }).await;
        assert!(
            json["message"]
                .as_str()
                .unwrap()
                .ends_with("is not served here")
        );
    }

    #[tokio::test]
    async fn timeout_is_a_504_without_detail() {
        let (status, json) = body_json(ProxyError::Timeout(Duration::from_secs(30))).await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(json["error"], "gateway_timeout");
        assert!(!json["message"].as_str().unwrap().contains("30"));
    }

    #[test]
    fn constant_bodies_are_json() {
        for body in [
            METHOD_NOT_ALLOWED,
            BAD_GATEWAY,
            GATEWAY_TIMEOUT,
            HEADERS_TOO_LARGE,
            BODY_TOO_LARGE,
            REQUEST_TIMEOUT,
            UNAVAILABLE,
            OVERLOADED,
        ] {
            serde_json::from_str::<serde_json::Value>(body).unwrap();
        }
    }
}
