//! Request size limits, checked first thing for every request, before routing: an
//! oversized request costs nothing more and never reaches a worker.
//!
//! - Headers: the request line (or HTTP/2 pseudo-headers) plus every header's name and
//!   value must fit `max_header_bytes`, else `431`. hyper enforces a coarse bound while
//!   reading (its buffer, at least 8 KiB) and HTTP/2's header list size; this check
//!   makes the limit exact and the same for both protocols.
//! - Body: a declared `Content-Length` over `max_body_bytes` is answered `413` at once.
//!   A body without a length (chunked, or HTTP/2 DATA frames) is counted as it streams
//!   (see `body.rs`); crossing the limit aborts the upstream request and answers `413`.

use http::header::CONTENT_LENGTH;
use http::request::Parts;

use crate::error::ProxyError;

/// Per-header overhead counted like HTTP/1.1's `": "` and CRLF.
const HEADER_OVERHEAD: usize = 4;

/// Checks the head of a request against the limits.
pub(crate) fn check(
    parts: &Parts,
    max_header_bytes: usize,
    max_body_bytes: u64,
) -> Result<(), ProxyError> {
    if head_size(parts) > max_header_bytes {
        return Err(ProxyError::HeadersTooLarge);
    }
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max_body_bytes) {
        return Err(ProxyError::BodyTooLarge);
    }
    Ok(())
}

/// The size of the request head as HTTP/1.1 would send it.
fn head_size(parts: &Parts) -> usize {
    let target = parts.uri.path_and_query().map_or(1, |p| p.as_str().len());
    // "METHOD target HTTP/1.1\r\n"
    let line = parts.method.as_str().len() + target + 12;
    parts.headers.iter().fold(line, |sum, (name, value)| {
        sum + name.as_str().len() + value.len() + HEADER_OVERHEAD
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut builder = Request::get("/path?q=1");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn headers_are_counted_like_http1() {
        let p = parts(&[("host", "a.example")]);
        // "GET /path?q=1 HTTP/1.1\r\n" + "host: a.example\r\n"
        assert_eq!(head_size(&p), 24 + 17);
        assert!(check(&p, 41, 0).is_ok());
        assert!(matches!(check(&p, 40, 0), Err(ProxyError::HeadersTooLarge)));
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused() {
        let p = parts(&[("content-length", "11")]);
        assert!(matches!(check(&p, 1024, 10), Err(ProxyError::BodyTooLarge)));
        assert!(check(&p, 1024, 11).is_ok());
        assert!(check(&parts(&[]), 1024, 0).is_ok());
    }
}
