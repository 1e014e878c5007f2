//! The worker's HTTP client to Okta orgs: discovery, JWKS, the token and userinfo
//! endpoints. HTTPS through rustls with the `ring` provider given explicitly (no
//! process-wide provider is needed, none of aws-lc is linked) and Mozilla's root
//! certificates; a connect timeout and a total timeout on every call; bodies capped;
//! redirects never followed (Okta's endpoints do not redirect, and a redirect must not
//! carry a client secret elsewhere).
//!
//! Plain HTTP is allowed only to loopback hosts and only under the development switch
//! (the simulated org and the local OpenID Provider of the tests).
//!
//! Why hyper's client and not reqwest: enabling any rustls feature on reqwest turns it
//! on for every crate of the workspace that uses reqwest (features unify), and with
//! `rustls-no-provider` every reqwest client built in such a process panics unless a
//! process-wide provider was installed first, including clients the worker does not
//! own (the simulated org's, the harness's). Building TLS here keeps that choice local.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use url::Url;

/// The largest response body read from Okta (a JWKS or discovery document is a few
/// KiB).
pub const MAX_BODY: usize = 1024 * 1024;

/// What the worker sends as `User-Agent`.
const USER_AGENT: &str = concat!("ClosedLoop-Identity-Gateway/", env!("CARGO_PKG_VERSION"));

/// Why a call did not produce a response. The messages name no secret and no URL
/// query (a code could be in one).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL's scheme or host is not allowed (plain HTTP outside development).
    #[error("{0}")]
    NotAllowed(&'static str),
    /// No answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection or TLS handshake failed, or the exchange broke.
    #[error("could not reach the server: {0}")]
    Transport(String),
    /// The body is larger than [`MAX_BODY`].
    #[error("the answer is too large")]
    TooLarge,
}

/// A response, read whole.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

/// The client. Cheap to clone (one pooled connector).
#[derive(Clone)]
pub struct OktaHttp {
    /// hyper's pooled client over rustls.
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// Total time allowed for one call, body included.
    timeout: Duration,
    /// The development switch: allows `http://` to loopback hosts.
    allow_loopback_http: bool,
}

impl std::fmt::Debug for OktaHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OktaHttp")
            .field("timeout", &self.timeout)
            .field("allow_loopback_http", &self.allow_loopback_http)
            .finish_non_exhaustive()
    }
}

impl OktaHttp {
    /// A client with these timeouts; `development` allows plain HTTP to loopback.
    pub fn new(connect_timeout: Duration, timeout: Duration, development: bool) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        // The ring provider, its safe default protocol versions (TLS 1.2 and 1.3), and
        // Mozilla's roots; the provider is given here, not installed process-wide.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(provider)
            .unwrap_or_else(|_| unreachable!("ring supports the default TLS versions"))
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Self {
            client,
            timeout,
            allow_loopback_http: development,
        }
    }

    /// Whether the worker may call `url` at all.
    pub fn check_url(&self, url: &Url) -> Result<(), HttpError> {
        match url.scheme() {
            "https" => Ok(()),
            "http" if self.allow_loopback_http && is_loopback(url) => Ok(()),
            "http" => Err(HttpError::NotAllowed(
                "plain HTTP is allowed only to a loopback development org",
            )),
            _ => Err(HttpError::NotAllowed("only HTTPS URLs can be called")),
        }
    }

    /// `GET url`, with `Accept: application/json` and an optional bearer token.
    pub async fn get(&self, url: &Url, bearer: Option<&str>) -> Result<HttpResponse, HttpError> {
        let mut req = self.request(Method::GET, url)?;
        if let Some(token) = bearer {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| HttpError::NotAllowed("the token is not a header value"))?;
            req = req.header(header::AUTHORIZATION, value);
        }
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| HttpError::Transport(e.to_string()))?;
        self.send(req).await
    }

    /// `POST url` with a form body, authenticated by HTTP Basic (`client_secret_basic`,
    /// RFC 6749 §2.3.1: both parts form-encoded before base64).
    pub async fn post_form(
        &self,
        url: &Url,
        basic: (&str, &str),
        form: &[(&str, &str)],
    ) -> Result<HttpResponse, HttpError> {
        use base64::Engine;
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let credentials = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            enc(basic.0),
            enc(basic.1)
        ));
        let auth = HeaderValue::from_str(&format!("Basic {credentials}"))
            .map_err(|_| HttpError::NotAllowed("the credentials are not a header value"))?;
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let req = self
            .request(Method::POST, url)?
            .header(header::AUTHORIZATION, auth)
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| HttpError::Transport(e.to_string()))?;
        self.send(req).await
    }

    fn request(&self, method: Method, url: &Url) -> Result<http::request::Builder, HttpError> {
        self.check_url(url)?;
        Ok(Request::builder()
            .method(method)
            .uri(url.as_str())
            .header(header::ACCEPT, HeaderValue::from_static("application/json"))
            .header(header::USER_AGENT, HeaderValue::from_static(USER_AGENT)))
    }

    async fn send(&self, req: Request<Full<Bytes>>) -> Result<HttpResponse, HttpError> {
        let call = async {
            let response = self
                .client
                .request(req)
                .await
                .map_err(|e| HttpError::Transport(describe(&e)))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_BODY)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        HttpError::TooLarge
                    } else {
                        HttpError::Transport(e.to_string())
                    }
                })?
                .to_bytes();
            Ok(HttpResponse {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| HttpError::Timeout(self.timeout))?
    }
}

/// The error and its causes in one line (hyper's top-level message alone says little).
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback_and_only_in_development() {
        let prod = OktaHttp::new(Duration::from_secs(3), Duration::from_secs(10), false);
        let dev = OktaHttp::new(Duration::from_secs(3), Duration::from_secs(10), true);
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(prod.check_url(&url("https://acme.okta.com/")).is_ok());
        assert!(prod.check_url(&url("http://127.0.0.1:1/")).is_err());
        assert!(dev.check_url(&url("http://127.0.0.1:1/")).is_ok());
        assert!(dev.check_url(&url("http://localhost:1/")).is_ok());
        assert!(dev.check_url(&url("http://[::1]:1/")).is_ok());
        assert!(dev.check_url(&url("http://acme.okta.com/")).is_err());
        assert!(dev.check_url(&url("ftp://127.0.0.1/")).is_err());
    }

    #[tokio::test]
    async fn an_unreachable_host_is_an_error_within_the_timeout() {
        // Bind then drop a listener: nothing accepts on that port.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dev = OktaHttp::new(Duration::from_secs(3), Duration::from_secs(10), true);
        let url = Url::parse(&format!(
            "http://127.0.0.1:{port}/.well-known/openid-configuration"
        ))
        .unwrap();
        assert!(matches!(
            dev.get(&url, None).await,
            Err(HttpError::Transport(_))
        ));
    }
}
