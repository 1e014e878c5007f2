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
//! Outside the development switch every connection goes to a public address only: the
//! connector's resolver ([`GuardedResolver`]) drops loopback, private, link-local,
//! unique-local and other non-public addresses ([`super::domain::is_public`]) at
//! connect time, and an IP-literal URL is checked the same way. So an admin's Okta
//! domain cannot make the worker probe the region's own network, not even a domain
//! that resolved to a public address when it was saved and to a private one later
//! (DNS rebinding). [`OktaHttp::check_host`] runs the same check for the Okta page, so
//! it can say why in words.
//!
//! Why hyper's client and not reqwest: enabling any rustls feature on reqwest turns it
//! on for every crate of the workspace that uses reqwest (features unify), and with
//! `rustls-no-provider` every reqwest client built in such a process panics unless a
//! process-wide provider was installed first, including clients the worker does not
//! own (the simulated org's, the harness's). Building TLS here keeps that choice local.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use url::Url;

pub use crate::resolver::{ResolveError, Resolver};

use super::domain::is_public;

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
    /// The host resolves to no public address (outside the development switch).
    #[error("the domain leads to a private or local network address")]
    NotPublic,
    /// The host name does not resolve.
    #[error("the domain name cannot be found")]
    UnknownHost,
}

impl From<ResolveError> for HttpError {
    fn from(e: ResolveError) -> Self {
        match e {
            ResolveError::UnknownHost => HttpError::UnknownHost,
            ResolveError::NotPublic => HttpError::NotPublic,
        }
    }
}

/// The connector's resolver: [`Resolver`], then, outside the development switch, only
/// the public addresses it found (none → [`ResolveError::NotPublic`]). Checking here,
/// at connect time, is what defeats DNS rebinding: the address connected to is the
/// address checked.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    /// Where names are looked up.
    resolver: Resolver,
    /// The development switch: private addresses (the simulated org's loopback) allowed.
    allow_private: bool,
}

impl GuardedResolver {
    async fn resolve(&self, host: &str) -> Result<Vec<SocketAddr>, ResolveError> {
        let found = self.resolver.lookup(host).await?;
        if found.is_empty() {
            return Err(ResolveError::UnknownHost);
        }
        let usable: Vec<SocketAddr> = found
            .into_iter()
            .filter(|ip| self.allow_private || is_public(*ip))
            .map(|ip| SocketAddr::new(ip, 0))
            .collect();
        if usable.is_empty() {
            return Err(ResolveError::NotPublic);
        }
        Ok(usable)
    }
}

impl tower::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = ResolveError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ResolveError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ResolveError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.resolve(name.as_str()).await.map(Vec::into_iter) })
    }
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
    /// hyper's pooled client over rustls, connecting only where the resolver allows.
    client: Client<HttpsConnector<HttpConnector<GuardedResolver>>, Full<Bytes>>,
    /// The connector's resolver, also used by [`Self::check_host`].
    resolver: GuardedResolver,
    /// Total time allowed for one call, body included.
    timeout: Duration,
    /// The development switch: allows `http://` to loopback hosts, and private
    /// addresses.
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
    /// A client with these timeouts and the system's resolver; `development` allows
    /// plain HTTP to loopback, and private addresses.
    pub fn new(connect_timeout: Duration, timeout: Duration, development: bool) -> Self {
        Self::with_resolver(connect_timeout, timeout, development, Resolver::System)
    }

    /// [`Self::new`] with names resolved by `resolver`.
    pub fn with_resolver(
        connect_timeout: Duration,
        timeout: Duration,
        development: bool,
        resolver: Resolver,
    ) -> Self {
        let resolver = GuardedResolver {
            resolver,
            allow_private: development,
        };
        let mut http = HttpConnector::new_with_resolver(resolver.clone());
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
            resolver,
            timeout,
            allow_loopback_http: development,
        }
    }

    /// Whether `host` (a name from an admin) resolves to an address the worker would
    /// connect to: the same resolution and check as every connection, ahead of time,
    /// so the Okta page can say why a domain is refused.
    pub async fn check_host(&self, host: &str) -> Result<(), HttpError> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.check_ip(ip);
        }
        tokio::time::timeout(self.timeout, self.resolver.resolve(host))
            .await
            .map_err(|_| HttpError::Timeout(self.timeout))??;
        Ok(())
    }

    /// An IP literal is connected to without the resolver: the same rule, here.
    fn check_ip(&self, ip: IpAddr) -> Result<(), HttpError> {
        if self.allow_loopback_http || is_public(ip) {
            Ok(())
        } else {
            Err(HttpError::NotPublic)
        }
    }

    /// Whether the worker may call `url` at all.
    pub fn check_url(&self, url: &Url) -> Result<(), HttpError> {
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check_ip(ip.into())?,
            Some(url::Host::Ipv6(ip)) => self.check_ip(ip.into())?,
            Some(url::Host::Domain(_)) => {}
            None => return Err(HttpError::NotAllowed("the URL has no host")),
        }
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

    /// Sends one request; while traces are exported, in a client span named by the
    /// kind of Okta call (discovery, JWKS, token, userinfo) with the org's host, the
    /// status and an error kind: never the path, the query or a header.
    async fn send(&self, req: Request<Full<Bytes>>) -> Result<HttpResponse, HttpError> {
        if !shared::telemetry::in_trace() {
            return self.exchange(req).await;
        }
        use tracing::Instrument as _;
        let call = okta_call(req.uri().path());
        let span = tracing::info_span!(
            target: shared::telemetry::TRACE_TARGET,
            "okta",
            otel.name = format!("okta {call}"),
            otel.kind = "client",
            closedloop.okta.call = call,
            http.request.method = req.method().as_str(),
            server.address = req.uri().host().unwrap_or(""),
            closedloop.region = shared::telemetry::region(),
            http.response.status_code = tracing::field::Empty,
        );
        let result = self.exchange(req).instrument(span.clone()).await;
        match &result {
            Ok(response) => {
                span.record("http.response.status_code", response.status.as_u16());
                if !response.status.is_success() {
                    shared::telemetry::set_error(&span, "okta_refused");
                }
            }
            Err(e) => shared::telemetry::set_error(&span, e.kind()),
        }
        result
    }

    async fn exchange(&self, req: Request<Full<Bytes>>) -> Result<HttpResponse, HttpError> {
        let call = async {
            let response = self
                .client
                .request(req)
                .await
                .map_err(|e| match resolve_error(&e) {
                    Some(refused) => HttpError::from(refused),
                    None => HttpError::Transport(describe(&e)),
                })?;
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

/// Which Okta endpoint a path is (the span's name): the path itself may name an
/// authorization server, and is not exported.
fn okta_call(path: &str) -> &'static str {
    if path.ends_with("/.well-known/openid-configuration")
        || path.ends_with("/.well-known/oauth-authorization-server")
    {
        "discovery"
    } else if path.ends_with("/keys") {
        "jwks"
    } else if path.ends_with("/token") {
        "token"
    } else if path.ends_with("/userinfo") {
        "userinfo"
    } else {
        "other"
    }
}

impl HttpError {
    /// A short, stable name of the failure, for span attributes.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotAllowed(_) => "not_allowed",
            Self::Timeout(_) => "timeout",
            Self::Transport(_) => "transport",
            Self::TooLarge => "too_large",
            Self::NotPublic => "not_public",
            Self::UnknownHost => "unknown_host",
        }
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

/// The resolver's refusal, when that is why a connection failed.
fn resolve_error(e: &(dyn std::error::Error + 'static)) -> Option<ResolveError> {
    let mut source = Some(e);
    while let Some(s) = source {
        if let Some(refused) = s.downcast_ref::<ResolveError>() {
            return Some(*refused);
        }
        source = s.source();
    }
    None
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
    async fn outside_development_only_public_addresses_are_connected_to() {
        let resolver = Resolver::fixed([
            ("rebound.acme.test", "127.0.0.1".parse().unwrap()),
            ("metadata.acme.test", "169.254.169.254".parse().unwrap()),
            ("intranet.acme.test", "10.0.0.7".parse().unwrap()),
            ("v6.acme.test", "fd00::1".parse().unwrap()),
            ("mixed.acme.test", "127.0.0.1".parse().unwrap()),
            ("mixed.acme.test", "93.184.216.34".parse().unwrap()),
            ("public.acme.test", "93.184.216.34".parse().unwrap()),
        ]);
        let t = Duration::from_secs(3);
        let prod = OktaHttp::with_resolver(t, t, false, resolver.clone());
        let dev = OktaHttp::with_resolver(t, t, true, resolver);
        for host in [
            "rebound.acme.test",
            "metadata.acme.test",
            "intranet.acme.test",
            "v6.acme.test",
        ] {
            assert!(
                matches!(prod.check_host(host).await, Err(HttpError::NotPublic)),
                "{host}"
            );
            assert!(dev.check_host(host).await.is_ok(), "{host}");
            // At connect time too, whatever was checked before (DNS rebinding): the
            // connection is refused before any byte is sent.
            let url =
                Url::parse(&format!("https://{host}/.well-known/openid-configuration")).unwrap();
            assert!(
                matches!(prod.get(&url, None).await, Err(HttpError::NotPublic)),
                "{host}"
            );
        }
        assert!(prod.check_host("public.acme.test").await.is_ok());
        // Only the public addresses of a name are kept.
        let guard = GuardedResolver {
            resolver: Resolver::fixed([
                ("mixed.acme.test", "127.0.0.1".parse().unwrap()),
                ("mixed.acme.test", "93.184.216.34".parse().unwrap()),
            ]),
            allow_private: false,
        };
        assert_eq!(
            guard.resolve("mixed.acme.test").await.unwrap(),
            vec!["93.184.216.34:0".parse::<SocketAddr>().unwrap()]
        );
        assert!(matches!(
            prod.check_host("unknown.acme.test").await,
            Err(HttpError::UnknownHost)
        ));
        // IP literals skip the resolver: the same rule applies to them.
        for literal in ["https://127.0.0.1/", "https://[::1]/", "https://10.1.1.1/"] {
            let url = Url::parse(literal).unwrap();
            assert!(
                matches!(prod.check_url(&url), Err(HttpError::NotPublic)),
                "{literal}"
            );
        }
        assert!(
            prod.check_url(&Url::parse("https://93.184.216.34/").unwrap())
                .is_ok()
        );
        // The system resolver: `localhost` is loopback.
        let system = OktaHttp::new(t, t, false);
        assert!(matches!(
            system.check_host("localhost").await,
            Err(HttpError::NotPublic)
        ));
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
