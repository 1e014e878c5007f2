//! End-to-end tests of the gateway: real TCP on 127.0.0.1 port 0, tiny hyper "fake
//! workers" that answer with their name and echo what they received, and a gateway
//! started in one line per test. No fixed ports, no sleeps: a test that waits for
//! something waits on a channel, under a deadline.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use gateway::{Gateway, GatewayConfig, GatewayHandle, Listeners};
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use shared::regions::RegionMap;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

/// The longest any awaited step may take before the test fails instead of hanging.
const DEADLINE: Duration = Duration::from_secs(20);

type TestBody = BoxBody<Bytes, Infallible>;

// ---------------------------------------------------------------- fake workers

/// A fake region worker on 127.0.0.1:0.
struct FakeWorker {
    addr: SocketAddr,
    state: Arc<WorkerState>,
    /// The accept loop; aborting it (see [`FakeWorker::kill`]) closes the listener and
    /// every connection, as a killed process would.
    task: JoinHandle<()>,
}

struct WorkerState {
    /// Name reported in every answer (`x-worker` header and JSON `worker`).
    name: &'static str,
    /// Requests received, health probes (`/readyz`, `/api/ping`) excepted.
    hits: AtomicUsize,
    /// Health probes received.
    probes: AtomicUsize,
    /// What `/readyz` answers: 200 when true, 503 when false.
    ready: AtomicBool,
    /// Told when a `/gated` request has arrived.
    arrived: mpsc::UnboundedSender<()>,
    /// Releases `/gated` requests.
    release: Notify,
}

impl FakeWorker {
    /// Starts a worker. Routes: `/echo` streams the request body back; `/slow` never
    /// answers; `/gated` answers once released; `/hop` answers with hop-by-hop headers;
    /// `/readyz` answers 200 or 503 (see [`FakeWorker::set_ready`]); anything else
    /// answers JSON describing the request.
    async fn start(name: &'static str) -> (Self, mpsc::UnboundedReceiver<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (arrived, arrivals) = mpsc::unbounded_channel();
        let state = Arc::new(WorkerState {
            name,
            hits: AtomicUsize::new(0),
            probes: AtomicUsize::new(0),
            ready: AtomicBool::new(true),
            arrived,
            release: Notify::new(),
        });
        let accept_state = state.clone();
        let task = tokio::spawn(async move {
            // Connection tasks live in the set, so aborting this task drops them all.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let (stream, _) = accepted.unwrap();
                        let state = accept_state.clone();
                        connections.spawn(async move {
                            let service = service_fn(move |req| worker_answer(state.clone(), req));
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        (Self { addr, state, task }, arrivals)
    }

    fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    fn probes(&self) -> usize {
        self.state.probes.load(Ordering::SeqCst)
    }

    fn set_ready(&self, ready: bool) {
        self.state.ready.store(ready, Ordering::SeqCst);
    }

    /// Stops accepting and drops every connection, like a killed process; returns once
    /// the port refuses connections.
    async fn kill(&self) {
        self.task.abort();
        within(async {
            while TcpStream::connect(self.addr).await.is_ok() {
                tokio::task::yield_now().await;
            }
        })
        .await;
    }

    /// The entry listing this worker with itself as admin address (`/readyz` is served
    /// on the same port), so the gateway's health checks reach [`FakeWorker::set_ready`].
    fn entry_with_admin(&self) -> String {
        format!("{{ addr = \"{0}\", admin = \"{0}\" }}", self.addr)
    }
}

async fn worker_answer(
    state: Arc<WorkerState>,
    req: Request<Incoming>,
) -> Result<Response<BoxBody<Bytes, hyper::Error>>, Infallible> {
    let path = req.uri().path();
    if path == "/readyz" || path == "/api/ping" {
        state.probes.fetch_add(1, Ordering::SeqCst);
        let status = if path == "/api/ping" || state.ready.load(Ordering::SeqCst) {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let response = Response::builder()
            .status(status)
            .header("x-worker", state.name)
            .body(Empty::new().map_err(|never| match never {}).boxed());
        return Ok(response.unwrap());
    }
    state.hits.fetch_add(1, Ordering::SeqCst);
    let builder = Response::builder().header("x-worker", state.name);
    let full = |b: Vec<u8>| {
        Full::new(Bytes::from(b))
            .map_err(|never| match never {})
            .boxed()
    };
    let response = match req.uri().path() {
        "/echo" => builder.body(req.into_body().boxed()),
        "/slow" => std::future::pending().await,
        "/gated" => {
            let _ = state.arrived.send(());
            state.release.notified().await;
            builder.body(full(b"released".to_vec()))
        }
        "/hop" => builder
            .header("connection", "x-hop-only")
            .header("x-hop-only", "1")
            .header("keep-alive", "timeout=5")
            .header("x-end-to-end", "kept")
            .body(full(Vec::new())),
        _ => {
            let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (name, value) in req.headers() {
                headers
                    .entry(name.to_string())
                    .or_default()
                    .push(value.to_str().unwrap_or("<binary>").to_owned());
            }
            let method = req.method().to_string();
            let uri = req.uri().to_string();
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let answer = json!({
                "worker": state.name,
                "method": method,
                "uri": uri,
                "headers": headers,
                "body_len": body.len(),
            });
            builder
                .header(CONTENT_TYPE, "application/json")
                .body(full(serde_json::to_vec(&answer).unwrap()))
        }
    };
    Ok(response.unwrap())
}

/// An address where nothing listens: bound, then released.
async fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

// ---------------------------------------------------------------- the gateway

const US_APP: &str = "app.closedloop.localhost";
const US_API: &str = "api.closedloop.localhost";
const EU_APP: &str = "eu.app.closedloop.localhost";
const EU_API: &str = "eu.api.closedloop.localhost";

/// A `regions.toml` with the US hosts on `us` and the EU hosts on `eu`.
fn region_map(us: &[SocketAddr], eu: &[SocketAddr]) -> RegionMap {
    parse(&map_text(&entries(us), &entries(eu), ""))
}

/// Worker entries `"host:port"` for `addrs`.
fn entries(addrs: &[SocketAddr]) -> Vec<String> {
    addrs.iter().map(|a| format!("\"{a}\"")).collect()
}

/// The text of a `regions.toml`: `us` and `eu` are worker entries as TOML, `gateway`
/// the body of a `[gateway]` table (none when empty).
fn map_text(us: &[String], eu: &[String], gateway: &str) -> String {
    let gateway = if gateway.is_empty() {
        String::new()
    } else {
        format!("[gateway]\n{gateway}\n")
    };
    format!(
        r#"
development = true
{gateway}
[regions.us]
app_url = "http://{US_APP}"
api_url = "http://{US_API}"
workers = [{us}]
postgres = {{ env = "UNUSED_US_DATABASE_URL" }}
redis = {{ env = "UNUSED_US_REDIS_URL" }}

[regions.eu]
app_url = "http://{EU_APP}"
api_url = "http://{EU_API}"
workers = [{eu}]
postgres = {{ env = "UNUSED_EU_DATABASE_URL" }}
redis = {{ env = "UNUSED_EU_REDIS_URL" }}
"#,
        us = us.join(", "),
        eu = eu.join(", "),
    )
}

fn parse(text: &str) -> RegionMap {
    RegionMap::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// A running gateway.
struct TestGateway {
    addr: SocketAddr,
    admin: SocketAddr,
    /// The TLS listener, when the map names certificates.
    tls: Option<SocketAddr>,
    handle: GatewayHandle,
    client: Client<HttpConnector, TestBody>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl TestGateway {
    /// Starts a gateway with the default configuration.
    async fn start(map: RegionMap) -> Self {
        Self::start_with(GatewayConfig::new(map)).await
    }

    /// Starts a gateway on fresh port-0 listeners: plain and admin, and TLS when the map
    /// names certificates.
    async fn start_with(config: GatewayConfig) -> Self {
        let bind = || async { TcpListener::bind("127.0.0.1:0").await.unwrap() };
        let listener = bind().await;
        let admin = bind().await;
        let tls = if config.map.gateway.certificates.is_empty() {
            None
        } else {
            Some(bind().await)
        };
        let (addr, admin_addr) = (listener.local_addr().unwrap(), admin.local_addr().unwrap());
        let tls_addr = tls.as_ref().map(|l| l.local_addr().unwrap());
        let gateway = Gateway::new(config).unwrap();
        let handle = gateway.handle();
        let (tx, rx) = oneshot::channel::<()>();
        let listeners = Listeners {
            plain: Some(listener),
            tls,
            admin,
        };
        let task = tokio::spawn(gateway.serve(listeners, async {
            let _ = rx.await;
        }));
        Self {
            addr,
            admin: admin_addr,
            tls: tls_addr,
            handle,
            client: Client::builder(TokioExecutor::new()).build_http(),
            shutdown: Some(tx),
            task,
        }
    }

    /// Signals shutdown.
    fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// A request builder for `path` on the public port with `Host: host`.
    fn request(&self, method: Method, host: &str, path: &str) -> http::request::Builder {
        Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header(HOST, host)
    }

    /// Sends a request over HTTP/1.1 and collects the answer.
    async fn send(&self, request: Request<TestBody>) -> Answer {
        let response = within(self.client.request(request)).await.unwrap();
        Answer::collect(response).await
    }

    /// `GET path` with `Host: host`.
    async fn get(&self, host: &str, path: &str) -> Answer {
        self.send(self.request(Method::GET, host, path).body(empty()).unwrap())
            .await
    }

    /// `GET path` on the admin port.
    async fn admin_get(&self, path: &str) -> Answer {
        let uri = format!("http://{}{path}", self.admin);
        self.send(Request::get(uri).body(empty()).unwrap()).await
    }
}

/// A collected response.
struct Answer {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    async fn collect(response: Response<Incoming>) -> Self {
        let (parts, body) = response.into_parts();
        let body = within(body.collect()).await.unwrap().to_bytes();
        Self {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body,
        }
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// The worker that answered (from the fake worker's `x-worker` header).
    fn worker(&self) -> &str {
        self.header("x-worker").expect("answered by a worker")
    }

    /// All values the worker received for request header `name`.
    fn seen(&self, name: &str) -> Vec<String> {
        self.json()["headers"][name]
            .as_array()
            .map(|values| {
                values
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Asserts a gateway JSON error with this status and code.
    fn assert_error(&self, status: StatusCode, code: &str) {
        assert_eq!(
            self.status,
            status,
            "{:?}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.header("content-type"), Some("application/json"));
        assert_eq!(self.json()["error"], code);
        assert!(self.header("x-request-id").is_some());
        assert!(self.header("x-worker").is_none(), "a worker answered");
    }
}

fn empty() -> TestBody {
    Empty::new().boxed()
}

fn full(bytes: impl Into<Bytes>) -> TestBody {
    Full::new(bytes.into()).boxed()
}

/// Awaits `f`, failing the test if it takes longer than [`DEADLINE`].
async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(DEADLINE, f)
        .await
        .expect("step did not finish within the deadline")
}

// ---------------------------------------------------------------- routing

#[tokio::test]
async fn each_host_reaches_only_its_own_regions_workers_round_robin() {
    let (us0, _) = FakeWorker::start("us-0").await;
    let (us1, _) = FakeWorker::start("us-1").await;
    let (eu0, _) = FakeWorker::start("eu-0").await;
    let gw = TestGateway::start(region_map(&[us0.addr, us1.addr], &[eu0.addr])).await;

    let mut us_seen = Vec::new();
    for host in [US_API, US_APP, US_API, US_APP] {
        let answer = gw.get(host, "/whoami").await;
        assert_eq!(answer.status, StatusCode::OK);
        us_seen.push(answer.worker().to_owned());
    }
    assert_eq!(us_seen, ["us-0", "us-1", "us-0", "us-1"]);

    for host in [EU_API, EU_APP, EU_API] {
        assert_eq!(gw.get(host, "/whoami").await.worker(), "eu-0");
    }
    assert_eq!((us0.hits(), us1.hits(), eu0.hits()), (2, 2, 3));
}

#[tokio::test]
async fn host_matching_ignores_port_and_case() {
    let (us0, _) = FakeWorker::start("us-0").await;
    let (eu0, _) = FakeWorker::start("eu-0").await;
    let gw = TestGateway::start(region_map(&[us0.addr], &[eu0.addr])).await;

    assert_eq!(
        gw.get("API.ClosedLoop.LOCALHOST:8443", "/").await.worker(),
        "us-0"
    );
    assert_eq!(
        gw.get("Eu.App.closedloop.localhost:80", "/").await.worker(),
        "eu-0"
    );
    // The original Host goes upstream unchanged.
    let answer = gw.get("Eu.App.closedloop.localhost:80", "/").await;
    assert_eq!(answer.seen("host"), ["Eu.App.closedloop.localhost:80"]);
}

#[tokio::test]
async fn http2_requests_are_routed_by_authority() {
    let (us0, _) = FakeWorker::start("us-0").await;
    let (eu0, _) = FakeWorker::start("eu-0").await;
    let gw = TestGateway::start(region_map(&[us0.addr], &[eu0.addr])).await;

    // h2c with prior knowledge; the URI's authority becomes `:authority`, and no Host
    // header is sent.
    let stream = TcpStream::connect(gw.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    for (authority, worker) in [
        (EU_API, "eu-0"),
        (US_APP, "us-0"),
        ("EU.APP.closedloop.localhost:9", "eu-0"),
    ] {
        let request = Request::get(format!("http://{authority}/whoami?x=1"))
            .body(empty())
            .unwrap();
        let response = within(sender.send_request(request)).await.unwrap();
        let answer = Answer::collect(response).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.version, Version::HTTP_2);
        assert_eq!(answer.worker(), worker, "{authority}");
        assert_eq!(answer.seen("host"), [authority]);
        assert_eq!(answer.seen("x-forwarded-host"), [authority]);
        assert_eq!(answer.json()["uri"], "/whoami?x=1");
    }

    let request = Request::get("http://unknown.example/")
        .body(empty())
        .unwrap();
    let response = within(sender.send_request(request)).await.unwrap();
    Answer::collect(response)
        .await
        .assert_error(StatusCode::MISDIRECTED_REQUEST, "misdirected_request");
}

#[tokio::test]
async fn unknown_or_missing_host_is_misdirected() {
    let (us0, _) = FakeWorker::start("us-0").await;
    let (eu0, _) = FakeWorker::start("eu-0").await;
    let gw = TestGateway::start(region_map(&[us0.addr], &[eu0.addr])).await;

    for host in [
        "evil.example",
        "closedloop.localhost",
        "api.closedloop.localhost.evil",
    ] {
        let answer = gw.get(host, "/api/scim/v2/Users").await;
        answer.assert_error(StatusCode::MISDIRECTED_REQUEST, "misdirected_request");
        let message = answer.json()["message"].as_str().unwrap().to_owned();
        assert!(
            message.contains(host) && message.ends_with("is not served here"),
            "{message}"
        );
    }

    // HTTP/1.1 without any Host header (the low-level client adds none).
    let stream = TcpStream::connect(gw.addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::get("/").body(empty()).unwrap();
    assert!(request.headers().get(HOST).is_none());
    let response = within(sender.send_request(request)).await.unwrap();
    Answer::collect(response)
        .await
        .assert_error(StatusCode::MISDIRECTED_REQUEST, "misdirected_request");

    assert_eq!(
        us0.hits() + eu0.hits(),
        0,
        "a misdirected request reached a worker"
    );
}

// ---------------------------------------------------------------- headers

#[tokio::test]
async fn request_passes_through_with_forwarded_headers_replaced() {
    let (us0, _) = FakeWorker::start("us-0").await;
    let gw = TestGateway::start(region_map(&[us0.addr], &[us0.addr])).await;

    let request = gw
        .request(
            Method::PATCH,
            "api.closedloop.localhost:8080",
            "/api/scim/v2/Users/1?a=1&b=two",
        )
        .header("authorization", "Bearer secret-token")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-for", "7.7.7.7")
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-proto", "https")
        .header("forwarded", "for=6.6.6.6")
        .header("x-custom", "one")
        .header("x-custom", "two")
        .body(full(&b"{\"op\":\"replace\"}"[..]))
        .unwrap();
    let answer = gw.send(request).await;
    assert_eq!(answer.status, StatusCode::OK);
    let seen = answer.json();
    assert_eq!(seen["method"], "PATCH");
    assert_eq!(seen["uri"], "/api/scim/v2/Users/1?a=1&b=two");
    assert_eq!(seen["body_len"], 16);
    assert_eq!(answer.seen("host"), ["api.closedloop.localhost:8080"]);
    assert_eq!(answer.seen("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(
        answer.seen("x-forwarded-host"),
        ["api.closedloop.localhost:8080"]
    );
    assert_eq!(answer.seen("x-forwarded-proto"), ["http"]);
    assert!(answer.seen("forwarded").is_empty());
    assert_eq!(answer.seen("authorization"), ["Bearer secret-token"]);
    assert_eq!(answer.seen("x-custom"), ["one", "two"]);
}

#[tokio::test]
async fn request_id_is_kept_when_valid_and_replaced_otherwise() {
    let (us0, _) = FakeWorker::start("us-0").await;
    let gw = TestGateway::start(region_map(&[us0.addr], &[us0.addr])).await;
    let with_id = |id: &str| {
        gw.request(Method::GET, US_API, "/")
            .header("x-request-id", id)
            .body(empty())
            .unwrap()
    };

    let answer = gw.send(with_id("client-id_1.2")).await;
    assert_eq!(answer.seen("x-request-id"), ["client-id_1.2"]);
    assert_eq!(answer.header("x-request-id"), Some("client-id_1.2"));

    for bad in ["has space", "semi;colon", &"x".repeat(129)] {
        let answer = gw.send(with_id(bad)).await;
        let upstream = answer.seen("x-request-id");
        assert_eq!(upstream.len(), 1);
        assert!(uuid::Uuid::parse_str(&upstream[0]).is_ok(), "{upstream:?}");
        assert_eq!(answer.header("x-request-id"), Some(upstream[0].as_str()));
    }

    // Without one, a fresh id is generated, and it differs per request.
    let a = gw.get(US_API, "/").await.seen("x-request-id");
    let b = gw.get(US_API, "/").await.seen("x-request-id");
    assert_ne!(a, b);

    // The gateway's own answers carry one too.
    assert!(
        gw.get("nowhere.example", "/")
            .await
            .header("x-request-id")
            .is_some()
    );
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_both_ways() {
    let (us0, _) = FakeWorker::start("us-0").await;
    let gw = TestGateway::start(region_map(&[us0.addr], &[us0.addr])).await;

    let request = gw
        .request(Method::GET, US_API, "/")
        .header("connection", "x-client-hop")
        .header("x-client-hop", "1")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header("te", "trailers")
        .header("trailer", "x-checksum")
        .header("upgrade", "websocket")
        .header("x-end-to-end", "kept")
        .body(empty())
        .unwrap();
    let answer = gw.send(request).await;
    assert_eq!(answer.status, StatusCode::OK);
    for hop in [
        "connection",
        "x-client-hop",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "transfer-encoding",
    ] {
        assert!(answer.seen(hop).is_empty(), "{hop} reached the worker");
    }
    assert_eq!(answer.seen("x-end-to-end"), ["kept"]);

    let answer = gw.get(US_API, "/hop").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("x-end-to-end"), Some("kept"));
    for hop in ["x-hop-only", "keep-alive", "connection"] {
        assert!(answer.header(hop).is_none(), "{hop} reached the client");
    }
}

// ---------------------------------------------------------------- bodies

/// 8 MiB of a recognisable pattern, in 64 KiB chunks.
fn large_chunks() -> Vec<Bytes> {
    (0..128)
        .map(|i| {
            Bytes::from(
                (0..65536)
                    .map(|j| ((i * 7 + j) % 251) as u8)
                    .collect::<Vec<_>>(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_large_streamed_body_passes_through_intact_both_ways() {
    let (us0, _) = FakeWorker::start("us-0").await;
    let gw = TestGateway::start(region_map(&[us0.addr], &[us0.addr])).await;

    let chunks = large_chunks();
    let expected: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
    // No content-length: the body is sent chunked and must be streamed as it comes.
    let stream = futures_util::stream::iter(
        chunks
            .into_iter()
            .map(|c| Ok::<_, Infallible>(Frame::data(c))),
    );
    let request = gw
        .request(Method::PUT, US_API, "/echo")
        .body(StreamBody::new(stream).boxed())
        .unwrap();
    let answer = gw.send(request).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.worker(), "us-0");
    assert_eq!(answer.body.len(), expected.len());
    assert!(answer.body == expected, "the body was altered in transit");
}

#[tokio::test]
async fn bodies_stream_without_being_buffered() {
    let (us0, _) = FakeWorker::start("us-0").await;
    let gw = TestGateway::start(region_map(&[us0.addr], &[us0.addr])).await;

    // The client sends the first chunk and then waits for it to come back before
    // sending the rest: this only completes if neither direction is buffered whole.
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(Frame::data(chunk)), rx))
    });
    let request = gw
        .request(Method::POST, US_API, "/echo")
        .body(StreamBody::new(stream).boxed())
        .unwrap();
    tx.send(Bytes::from_static(b"first")).await.unwrap();
    let response = within(gw.client.request(request)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let frame = within(body.frame()).await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "first");
    tx.send(Bytes::from_static(b"second")).await.unwrap();
    drop(tx);
    let rest = within(body.collect()).await.unwrap().to_bytes();
    assert_eq!(rest, "second");
}

// ---------------------------------------------------------------- failures

#[tokio::test]
async fn a_region_whose_only_worker_is_down_is_a_503_without_internal_detail() {
    let dead = dead_addr().await;
    let gw = TestGateway::start(region_map(&[dead], &[dead])).await;

    let answer = gw.get(US_API, "/").await;
    answer.assert_error(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable");
    assert_eq!(answer.header("retry-after"), Some("1"));
    let body = String::from_utf8_lossy(&answer.body).to_lowercase();
    for internal in [
        "refused",
        "127.0.0.1",
        &dead.port().to_string(),
        "os error",
        "tcp",
    ] {
        assert!(!body.contains(internal), "{internal} leaked: {body}");
    }
}

#[tokio::test]
async fn a_connect_failure_is_retried_on_another_replica_of_the_same_region() {
    let dead = dead_addr().await;
    let (us_live, _) = FakeWorker::start("us-live").await;
    let (eu0, _) = FakeWorker::start("eu-0").await;
    // A fresh gateway's round-robin starts at the first listed worker: the dead one.
    let gw = TestGateway::start(region_map(&[dead, us_live.addr], &[eu0.addr])).await;

    let answer = gw.get(US_API, "/first").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.worker(), "us-live");
    assert_eq!(us_live.hits(), 1);
    assert_eq!(eu0.hits(), 0, "a retry left the region");

    // An idempotent request with a body is retried too, with its body intact.
    let gw = TestGateway::start(region_map(&[dead, us_live.addr], &[eu0.addr])).await;
    let request = gw
        .request(Method::PUT, US_API, "/put")
        .body(full(vec![b'x'; 1000]))
        .unwrap();
    let answer = gw.send(request).await;
    assert_eq!(answer.worker(), "us-live");
    assert_eq!(answer.json()["body_len"], 1000);

    // A POST without a body is safe to resend.
    let gw = TestGateway::start(region_map(&[dead, us_live.addr], &[eu0.addr])).await;
    let answer = gw
        .send(
            gw.request(Method::POST, US_API, "/empty")
                .body(empty())
                .unwrap(),
        )
        .await;
    assert_eq!(answer.worker(), "us-live");
    assert_eq!(eu0.hits(), 0);
}

#[tokio::test]
async fn a_post_with_a_body_is_not_retried() {
    let dead = dead_addr().await;
    let (us_live, _) = FakeWorker::start("us-live").await;
    // The first request of a fresh gateway goes to the first listed (dead) worker.
    let gw = TestGateway::start(region_map(&[dead, us_live.addr], &[us_live.addr])).await;

    let request = gw
        .request(Method::POST, US_API, "/api/oauth/token")
        .body(full(&b"grant_type=client_credentials"[..]))
        .unwrap();
    gw.send(request)
        .await
        .assert_error(StatusCode::BAD_GATEWAY, "bad_gateway");
    assert_eq!(
        us_live.hits(),
        0,
        "a non-idempotent request with a body was retried"
    );
}

#[tokio::test]
async fn a_worker_that_does_not_answer_in_time_is_a_504() {
    let (slow, _) = FakeWorker::start("us-slow").await;
    let mut config = GatewayConfig::new(region_map(&[slow.addr], &[slow.addr]));
    config.upstream_timeout = Duration::from_millis(300);
    let gw = TestGateway::start_with(config).await;

    gw.get(US_API, "/slow")
        .await
        .assert_error(StatusCode::GATEWAY_TIMEOUT, "gateway_timeout");
    assert_eq!(slow.hits(), 1);
}

// ---------------------------------------------------------------- admin, logs, shutdown

#[tokio::test]
async fn admin_serves_health_and_metrics() {
    let (us0, _) = FakeWorker::start("us-0").await;
    let gw = TestGateway::start(region_map(&[us0.addr], &[us0.addr])).await;
    assert_eq!(gw.get(US_API, "/").await.status, StatusCode::OK);
    assert_eq!(
        gw.get("nowhere.example", "/").await.status,
        StatusCode::MISDIRECTED_REQUEST
    );

    let health = gw.admin_get("/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body.trim_ascii(), b"ok");

    let metrics = gw.admin_get("/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = String::from_utf8(metrics.body.to_vec()).unwrap();
    for series in [
        r#"gateway_requests_total{region="us",status="200"}"#,
        r#"gateway_requests_total{region="none",status="421"}"#,
        r#"gateway_request_duration_seconds_bucket{region="us",le="0.005"}"#,
        r#"gateway_request_duration_seconds_count{region="us"}"#,
        "gateway_open_connections",
        "# TYPE gateway_request_duration_seconds histogram",
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
    assert!(!text.contains("path="), "a metric is labelled by path");

    // The admin port does not proxy, and the public port does not serve metrics.
    assert_eq!(gw.admin_get("/whoami").await.status, StatusCode::NOT_FOUND);
    let answer = gw.get(US_API, "/metrics").await;
    assert_eq!(answer.worker(), "us-0");
}

/// A log sink shared with the subscriber under test.
#[derive(Clone, Default)]
struct LogSink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The process-wide log sink: the subscriber is global, because a thread-local one
/// misses events whose callsites other tests of this binary registered first (tracing
/// caches a callsite's interest process-wide). Tests find their own lines by request id.
fn log_sink() -> &'static LogSink {
    static SINK: std::sync::OnceLock<LogSink> = std::sync::OnceLock::new();
    SINK.get_or_init(|| {
        let sink = LogSink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        sink
    })
}

#[tokio::test]
async fn the_access_log_has_one_line_per_request_without_query_or_secrets() {
    let sink = log_sink();
    let (us0, _) = FakeWorker::start("us-0").await;
    let gw = TestGateway::start(region_map(&[us0.addr], &[us0.addr])).await;
    let request = gw
        .request(
            Method::GET,
            US_API,
            "/api/oidc/callback?code=secret-code&state=s",
        )
        .header("authorization", "Bearer secret-token")
        .header("cookie", "session=secret-cookie")
        .header("x-request-id", "log-test-1")
        .body(empty())
        .unwrap();
    assert_eq!(gw.send(request).await.status, StatusCode::OK);

    // The line is written once the answer's body has been sent, which may be just
    // after the client has it: wait for it (bounded) rather than race it.
    let read = || String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    for _ in 0..500 {
        if read().contains("log-test-1") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let logs = read();
    let lines: Vec<&str> = logs.lines().filter(|l| l.contains("log-test-1")).collect();
    assert_eq!(lines.len(), 1, "{logs}");
    let line = lines[0];
    for field in [
        "method=GET",
        "path=\"/api/oidc/callback\"",
        "host=\"api.closedloop.localhost\"",
        "region=\"us\"",
        "status=200",
        "duration_us=",
        &format!("worker=\"{}\"", us0.addr),
    ] {
        assert!(line.contains(field), "{field} missing: {line}");
    }
    for secret in ["secret-code", "secret-token", "secret-cookie", "state=s"] {
        assert!(!logs.contains(secret), "{secret} logged: {logs}");
    }
}

/// Traces off (no collector in this process): the client's `traceparent` and
/// `tracestate` reach the worker as they came, a request without one gets a made-up
/// unsampled one, a malformed one is replaced (and its `tracestate` dropped), and the
/// access log line carries the trace id the worker received.
#[tokio::test]
async fn the_trace_context_reaches_the_worker_and_the_access_log() {
    let sink = log_sink();
    let (us0, _) = FakeWorker::start("us-0").await;
    let gw = TestGateway::start(region_map(&[us0.addr], &[us0.addr])).await;
    let client = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let send = |id: &'static str, traceparent: Option<&'static str>| {
        let mut request = gw
            .request(Method::GET, US_API, "/api/ping-trace")
            .header("x-request-id", id)
            .header("tracestate", "acme=1");
        if let Some(tp) = traceparent {
            request = request.header("traceparent", tp);
        }
        gw.send(request.body(empty()).unwrap())
    };
    let continued = send("trace-test-1", Some(client)).await;
    assert_eq!(continued.seen("traceparent"), [client]);
    assert_eq!(continued.seen("tracestate"), ["acme=1"]);

    let started = send("trace-test-2", None).await;
    let made_up = started.seen("traceparent");
    assert_eq!(made_up.len(), 1);
    let parts: Vec<&str> = made_up[0].split('-').collect();
    assert_eq!(
        (parts[0], parts[1].len(), parts[2].len(), parts[3]),
        ("00", 32, 16, "00")
    );
    assert!(
        started.seen("tracestate").is_empty(),
        "no tracestate without a traceparent"
    );

    let replaced = send("trace-test-3", Some("00-not-a-trace-01")).await;
    assert_ne!(replaced.seen("traceparent"), ["00-not-a-trace-01"]);
    assert!(replaced.seen("tracestate").is_empty());

    let read = || String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    for _ in 0..500 {
        if ["trace-test-1", "trace-test-2", "trace-test-3"]
            .iter()
            .all(|id| read().contains(id))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let logs = read();
    let line = |id: &str| {
        logs.lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("{id} not logged: {logs}"))
            .to_owned()
    };
    assert!(
        line("trace-test-1").contains("trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\""),
        "{logs}"
    );
    assert!(
        line("trace-test-2").contains(&format!("trace_id=\"{}\"", parts[1])),
        "{logs}"
    );
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish_then_stops_accepting() {
    let (us0, mut arrivals) = FakeWorker::start("us-0").await;
    let mut gw = TestGateway::start(region_map(&[us0.addr], &[us0.addr])).await;

    let in_flight = {
        let request = gw
            .request(Method::GET, US_API, "/gated")
            .body(empty())
            .unwrap();
        let client = gw.client.clone();
        tokio::spawn(async move { client.request(request).await })
    };
    within(arrivals.recv()).await.unwrap();

    gw.shutdown.take().unwrap().send(()).unwrap();
    // Connections stop being accepted once `run` has seen the signal; wait for that by
    // polling connect until it is refused.
    within(async {
        while TcpStream::connect(gw.addr).await.is_ok() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        !gw.task.is_finished(),
        "run returned with a request in flight"
    );

    us0.state.release.notify_one();
    let response = within(in_flight).await.unwrap().unwrap();
    let answer = Answer::collect(response).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, "released");
    within(&mut gw.task).await.unwrap().unwrap();
}

// ---------------------------------------------------------------- TLS support

/// A test certificate authority: made fresh per test, never written anywhere but the
/// test's own temporary directory.
struct Pki {
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    dir: std::path::PathBuf,
}

impl Pki {
    fn new() -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ClosedLoop test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap())
            .unwrap();
        let dir = std::env::temp_dir().join(format!("gw-pki-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Self { ca, dir }
    }

    /// The CA certificate, PEM.
    fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// Issues a certificate for `hosts`, writes it and its key as `name.pem` and
    /// `name.key`, and returns the `certificates` entry naming them.
    fn issue(&self, name: &str, hosts: &[&str]) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let (cert_path, key_path) = self.paths(name);
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        let hosts = hosts
            .iter()
            .map(|h| format!("\"{h}\""))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "{{ hosts = [{hosts}], cert = \"{}\", key = \"{}\" }}",
            cert_path.display(),
            key_path.display()
        )
    }

    fn paths(&self, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}.key")),
        )
    }

    /// A `[gateway]` body serving TLS with one certificate per region.
    fn gateway_table(&self, extra: &str) -> String {
        let us = self.issue("us", &[US_API, US_APP]);
        let eu = self.issue("eu", &[EU_API, EU_APP]);
        format!(
            "listen = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\n\
             certificates = [{us}, {eu}]\n{extra}"
        )
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A rustls client trusting `ca_pem`, offering `alpn`, TLS 1.2 and 1.3 (or only the
/// versions given).
fn tls_client(
    ca_pem: &str,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

const BOTH_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Opens a TLS connection to `addr` naming `sni`.
async fn tls_connect(
    addr: SocketAddr,
    sni: &str,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let stream = TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    within(tokio_rustls::TlsConnector::from(config).connect(name, stream)).await
}

/// An HTTP/1.1 or HTTP/2 sender over one TLS connection, as ALPN decided.
enum TlsSender {
    H1(hyper::client::conn::http1::SendRequest<TestBody>),
    H2(hyper::client::conn::http2::SendRequest<TestBody>),
}

impl TlsSender {
    async fn open(addr: SocketAddr, sni: &str, config: Arc<rustls::ClientConfig>) -> Self {
        let tls = tls_connect(addr, sni, config).await.unwrap();
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls);
        if h2 {
            let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
            tokio::spawn(conn);
            TlsSender::H2(sender)
        } else {
            let (sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            TlsSender::H1(sender)
        }
    }

    /// `GET path` for `host` (`Host` on HTTP/1.1, `:authority` on HTTP/2).
    async fn get(&mut self, host: &str, path: &str) -> Answer {
        let response = match self {
            TlsSender::H1(sender) => {
                let request = Request::get(path).header(HOST, host).body(empty()).unwrap();
                within(sender.ready()).await.unwrap();
                within(sender.send_request(request)).await.unwrap()
            }
            TlsSender::H2(sender) => {
                let request = Request::get(format!("https://{host}{path}"))
                    .body(empty())
                    .unwrap();
                within(sender.ready()).await.unwrap();
                within(sender.send_request(request)).await.unwrap()
            }
        };
        Answer::collect(response).await
    }
}

/// Polls `probe` until it returns true, failing the test after [`DEADLINE`].
async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !probe().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

mod limits;
mod reload;
mod replicas;
mod tls;
