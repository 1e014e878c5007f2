//! `X-Request-Id`: the id that ties a request's gateway log line to the worker's. A
//! client's id is kept when it is well-formed, so a caller can correlate its own logs;
//! anything else is replaced by a fresh UUID, so a log line never carries client junk.

use http::{HeaderMap, HeaderName, HeaderValue};

/// The request id header, on the upstream request and on the response.
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client-sent id we keep.
const MAX_LEN: usize = 128;

/// A validated request id: 1–128 characters of `[A-Za-z0-9._-]`, held as the header
/// value it is sent as (cloning it is a reference-count increment, not a copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestId(HeaderValue);

impl RequestId {
    /// Accepts a client-sent value if it is well-formed.
    pub(crate) fn parse(value: &HeaderValue) -> Option<Self> {
        let bytes = value.as_bytes();
        let ok = (1..=MAX_LEN).contains(&bytes.len())
            && bytes
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        ok.then(|| Self(value.clone()))
    }

    /// A fresh random id (a UUID v4, lower-case hyphenated). The bytes come from the
    /// thread-local generator rather than `Uuid::new_v4`, which asks the OS for every
    /// id: one system call per request is a measurable share of the proxy's budget.
    pub(crate) fn generate() -> Self {
        let uuid = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let text = uuid.hyphenated().encode_lower(&mut buf);
        Self(HeaderValue::from_str(text).expect("a UUID is a valid header value"))
    }

    /// The client's id from `headers` when well-formed, else a fresh one.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        headers
            .get(X_REQUEST_ID)
            .and_then(Self::parse)
            .unwrap_or_else(Self::generate)
    }

    /// The id as a header value.
    pub(crate) fn header_value(&self) -> &HeaderValue {
        &self.0
    }

    /// The id as text, for log lines.
    pub(crate) fn as_str(&self) -> &str {
        // Both constructors admit only ASCII, so this never falls back.
        self.0.to_str().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn parse(s: &[u8]) -> Option<RequestId> {
        RequestId::parse(&HeaderValue::from_bytes(s).unwrap())
    }

    #[test]
    fn keeps_well_formed_ids() {
        for ok in ["a", "req-42", "A.b_C-9", &"x".repeat(128)] {
            assert_eq!(parse(ok.as_bytes()).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_malformed_ids() {
        for bad in [
            &b""[..],
            b"has space",
            b"semi;colon",
            b"slash/",
            &[b'x'; 129],
            b"caf\xc3\xa9",
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn generated_ids_are_uuids_and_valid() {
        let id = RequestId::generate();
        let parsed = Uuid::parse_str(id.as_str()).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(RequestId::parse(id.header_value()), Some(id.clone()));
        assert_ne!(RequestId::generate(), id);
    }

    #[test]
    fn from_headers_replaces_an_invalid_id() {
        let mut headers = HeaderMap::new();
        headers.insert(X_REQUEST_ID, HeaderValue::from_static("bad id"));
        assert_ne!(RequestId::from_headers(&headers).as_str(), "bad id");
        headers.insert(X_REQUEST_ID, HeaderValue::from_static("good-id"));
        assert_eq!(RequestId::from_headers(&headers).as_str(), "good-id");
    }
}
