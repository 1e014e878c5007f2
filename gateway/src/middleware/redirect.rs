//! `redirect_http_to_https`: the plain listener answers every request for a known host
//! with `308 Permanent Redirect` to the same path on HTTPS (308 keeps the method and
//! body, unlike 301). Sits after routing: only hosts we serve are redirected, so the
//! gateway is no open redirector, and an unknown host still gets `421`.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, LOCATION};
use http::uri::PathAndQuery;
use http::{HeaderValue, Response, StatusCode};

use crate::body::ResponseBody;
use crate::routing::host_name;

/// The redirect for a request to `host` and `path`, to HTTPS on `port` (omitted when
/// it is 443). `None` when no valid location can be formed from the host.
pub(crate) fn to_https(
    host: &str,
    path: &PathAndQuery,
    port: u16,
) -> Option<Response<ResponseBody>> {
    let name = host_name(host);
    let location = if port == 443 {
        format!("https://{name}{path}")
    } else {
        format!("https://{name}:{port}{path}")
    };
    let location = HeaderValue::from_str(&location).ok()?;
    let mut response = Response::new(ResponseBody::full(Bytes::from_static(
        b"{\"error\":\"https_required\",\"message\":\"use https\"}",
    )));
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    response.headers_mut().insert(LOCATION, location);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_path_and_query_and_drops_the_plain_port() {
        let path = PathAndQuery::from_static("/a/b?c=d");
        let r = to_https("API.example.test:8080", &path, 443).unwrap();
        assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(r.headers()[LOCATION], "https://API.example.test/a/b?c=d");
        let r = to_https("api.example.test", &path, 8443).unwrap();
        assert_eq!(
            r.headers()[LOCATION],
            "https://api.example.test:8443/a/b?c=d"
        );
    }
}
