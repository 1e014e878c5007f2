//! Traces across the hop (issue 19), through the real binaries: a gateway and a worker
//! exporting to a small OTLP/HTTP receiver in the test (protobuf decoded with
//! `opentelemetry-proto`), sampling 1.0. Each request is one trace whose gateway server
//! span is the parent of the worker's route span, with worker spans for Postgres (one
//! per statement, named by verb and table) and Redis under it; routes that find their
//! workspace other than by path carry it too; a client's `traceparent` is continued; no exported attribute or
//! event carries a credential, an email address or a query string; the gateway's
//! JSON access log line carries the trace id.

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use closedloop_tests::harness::{
    RegionStores, Scim, binary, eventually, region_map_text, worker_config, worker_env,
};
use closedloop_tests::region::Region;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

/// One exported span, flattened for assertions.
#[derive(Debug, Clone)]
struct Exported {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    /// Every attribute of the span, its events and its resource, as `key=value`.
    text: Vec<String>,
}

impl Exported {
    fn attr(&self, key: &str) -> Option<&str> {
        self.text
            .iter()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    }
}

/// The test's OTLP/HTTP receiver: `POST /v1/traces` with protobuf bodies.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Exported>>>,
}

fn value_text(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn flatten(attrs: &[KeyValue], out: &mut Vec<String>) {
    for kv in attrs {
        out.push(format!("{}={}", kv.key, value_text(&kv.value)));
    }
}

impl Receiver {
    async fn start(self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route(
                "/v1/traces",
                axum::routing::post(
                    |axum::extract::State(r): axum::extract::State<Receiver>,
                     body: bytes::Bytes| async move {
                        let request = ExportTraceServiceRequest::decode(body).unwrap();
                        let mut spans = r.spans.lock().unwrap();
                        for resource in request.resource_spans {
                            let mut resource_text = Vec::new();
                            if let Some(res) = &resource.resource {
                                flatten(&res.attributes, &mut resource_text);
                            }
                            let service = resource_text
                                .iter()
                                .find_map(|kv| kv.strip_prefix("service.name="))
                                .unwrap_or("")
                                .to_owned();
                            for scope in resource.scope_spans {
                                for span in scope.spans {
                                    let mut text = resource_text.clone();
                                    flatten(&span.attributes, &mut text);
                                    for event in &span.events {
                                        text.push(format!("event={}", event.name));
                                        flatten(&event.attributes, &mut text);
                                    }
                                    if let Some(status) = &span.status {
                                        text.push(format!("status.message={}", status.message));
                                    }
                                    spans.push(Exported {
                                        service: service.clone(),
                                        name: span.name.clone(),
                                        trace_id: hex(&span.trace_id),
                                        span_id: hex(&span.span_id),
                                        parent_span_id: hex(&span.parent_span_id),
                                        text,
                                    });
                                }
                            }
                        }
                        (
                            [("content-type", "application/x-protobuf")],
                            ExportTraceServiceResponse::default().encode_to_vec(),
                        )
                    },
                ),
            )
            .with_state(self);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    fn spans(&self) -> Vec<Exported> {
        self.spans.lock().unwrap().clone()
    }
}

/// A child process whose output lines (JSON log lines) are kept.
struct Process {
    _child: tokio::process::Child,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl Process {
    /// Spawns `command` and waits for the log line `message`; returns it too.
    async fn spawn(
        mut command: tokio::process::Command,
        stdout: bool,
        message: &str,
    ) -> (Self, Value) {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().unwrap();
        let out = if stdout {
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>)
        } else {
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>)
        }
        .unwrap();
        let mut reader = BufReader::new(out).lines();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let found = loop {
            let line = reader
                .next_line()
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("the process exited before logging {message:?}"));
            let value: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
            lines.lock().unwrap().push(value.clone());
            if value["message"] == message {
                break value;
            }
        };
        let keep = lines.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = reader.next_line().await {
                if let Ok(value) = serde_json::from_str(&line) {
                    keep.lock().unwrap().push(value);
                }
            }
        });
        (
            Self {
                _child: child,
                lines,
            },
            found,
        )
    }
}

fn addr_of(field: &Value) -> String {
    let text = field.as_str().unwrap();
    text.trim_start_matches("Some(")
        .trim_end_matches(')')
        .to_owned()
}

/// The spans of one trace, once both processes have exported the request's spans.
async fn trace_of(receiver: &Receiver, trace_id: &str) -> Vec<Exported> {
    eventually(&format!("the spans of trace {trace_id}"), || async {
        let spans: Vec<_> = receiver
            .spans()
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect();
        let gateway = spans.iter().any(|s| s.service == "gateway");
        let route = spans
            .iter()
            .any(|s| s.service == "region-worker" && s.attr("http.route").is_some());
        gateway && route
    })
    .await;
    receiver
        .spans()
        .into_iter()
        .filter(|s| s.trace_id == trace_id)
        .collect()
}

/// Whether a span with `key=value` hangs under a span of the worker.
fn under_worker(spans: &[Exported], key: &str, value: &str) -> bool {
    spans.iter().any(|s| {
        s.attr(key) == Some(value)
            && spans
                .iter()
                .any(|p| p.span_id == s.parent_span_id && p.service == "region-worker")
    })
}

/// Checks the shape of one request's trace: gateway server span → worker route span →
/// its children; returns the worker's route span.
fn check_hop(spans: &[Exported], route: &str) -> Exported {
    let gateway: Vec<_> = spans.iter().filter(|s| s.service == "gateway").collect();
    assert_eq!(gateway.len(), 1, "one gateway span: {spans:#?}");
    let worker = spans
        .iter()
        .find(|s| s.attr("http.route") == Some(route))
        .unwrap_or_else(|| panic!("a worker span for {route}: {spans:#?}"));
    assert_eq!(worker.service, "region-worker");
    assert_eq!(
        worker.parent_span_id, gateway[0].span_id,
        "the gateway's span is the worker's parent"
    );
    assert_eq!(worker.attr("closedloop.region"), Some("us"));
    worker.clone()
}

/// A gateway and a worker, real binaries, exporting every trace to the receiver.
struct TracedStack {
    receiver: Receiver,
    gateway: Process,
    _worker: Process,
    gateway_url: String,
    stores: RegionStores,
    dir: std::path::PathBuf,
}

impl TracedStack {
    async fn start() -> Self {
        let receiver = Receiver::default();
        let collector = receiver.clone().start().await;
        let stores = RegionStores::fresh().await.unwrap();
        let dir = std::env::temp_dir().join(format!("clt-trace-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        // The worker reads the collector from regions.toml, the gateway from the
        // standard variable: both ways of turning traces on.
        let worker_map = dir.join("worker.toml");
        std::fs::write(
            &worker_map,
            format!(
                "{}\n[telemetry]\notlp_endpoint = \"{collector}\"\nsampling_ratio = 1.0\n",
                region_map_text(&[], &[], None)
            ),
        )
        .unwrap();
        let mut worker = tokio::process::Command::new(binary("region-worker"));
        worker
            .args(["serve", "--region", "us", "--config"])
            .arg(&worker_map)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(["--log-format", "json"])
            .envs(worker_env(Region::Us, &stores))
            .env("RUST_LOG", "info")
            .env("OTEL_BSP_SCHEDULE_DELAY", "50");
        let (worker, serving) = Process::spawn(worker, false, "region worker serving").await;
        assert_eq!(serving["region"], "us", "{serving}");
        let worker_addr: std::net::SocketAddr = serving["fields"]["public"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();

        let gateway_map = dir.join("gateway.toml");
        std::fs::write(&gateway_map, region_map_text(&[worker_addr], &[], None)).unwrap();
        let mut gateway = tokio::process::Command::new(binary("gateway"));
        gateway
            .arg("--config")
            .arg(&gateway_map)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .env("CLOSEDLOOP_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector)
            .env("OTEL_BSP_SCHEDULE_DELAY", "50");
        let (gateway, started) = Process::spawn(gateway, true, "gateway started").await;
        let gateway_url = format!("http://{}", addr_of(&started["fields"]["listen"]));
        Self {
            receiver,
            gateway,
            _worker: worker,
            gateway_url,
            stores,
            dir,
        }
    }

    /// The gateway's access log line of the first request to `path` matching `pick`.
    async fn access_line(&self, pick: impl Fn(&Value) -> bool) -> Value {
        let lines = self.gateway.lines.clone();
        let find = move || {
            lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l["target"] == "gateway::access" && pick(l))
                .cloned()
        };
        let mut found = None;
        eventually("the access log line", || {
            found = find();
            let done = found.is_some();
            async move { done }
        })
        .await;
        found.unwrap()
    }

    /// Fails if any exported attribute, event or span name contains one of `needles`.
    fn assert_none_exported(&self, needles: &[&str]) {
        let all = self.receiver.spans();
        for span in &all {
            // The values (and the span's name): keys are the code's own words.
            let values = span
                .text
                .iter()
                .map(|kv| kv.split_once('=').map_or(kv.as_str(), |(_, v)| v));
            for text in values.chain([span.name.as_str()]) {
                for needle in needles {
                    assert!(
                        !text.contains(needle),
                        "span {} exports {needle:?} in {text:?}",
                        span.name
                    );
                }
            }
        }
    }
}

impl Drop for TracedStack {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_is_one_trace_from_the_gateway_into_the_worker_and_its_stores() {
    let stack = TracedStack::start().await;
    let receiver = &stack.receiver;
    let state = region_worker::connect(worker_config(Region::Us, &stack.stores))
        .await
        .unwrap();
    let scim = Scim::operator_workspace(&state, &stack.gateway_url).await;
    let email = "jane.traced@acme.test";

    // A SCIM create: gateway → worker route → SCIM operation, Postgres and Redis.
    let created = scim
        .request(reqwest::Method::POST, "/Users")
        .header("content-type", "application/scim+json")
        .json(&json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": email,
            "emails": [{"value": email, "primary": true}],
            "name": {"givenName": "Jane", "familyName": "Traced"},
            "active": true
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let request_id = created.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let access = stack
        .access_line(|l| l["request_id"] == request_id.as_str())
        .await;
    let trace_id = access["trace_id"]
        .as_str()
        .expect("the access log carries the trace id");
    assert_eq!(trace_id.len(), 32, "{access}");
    for key in [
        "timestamp",
        "level",
        "target",
        "message",
        "span_id",
        "region",
        "fields",
    ] {
        assert!(access.get(key).is_some(), "{key} in {access}");
    }
    assert_eq!(access["fields"]["status"], 201, "{access}");
    let spans = trace_of(receiver, trace_id).await;
    let route = check_hop(&spans, "/api/scim/v2/{team_id}/Users");
    let gateway_span = spans.iter().find(|s| s.service == "gateway").unwrap();
    assert_eq!(
        access["span_id"], gateway_span.span_id,
        "the access log names the gateway's span"
    );
    assert_eq!(
        route.attr("closedloop.team_id"),
        Some(scim.team_id.as_str())
    );
    assert_eq!(route.attr("http.response.status_code"), Some("201"));
    let scim_span = spans
        .iter()
        .find(|s| s.attr("scim.operation") == Some("create"))
        .unwrap_or_else(|| panic!("a SCIM operation span: {spans:#?}"));
    assert_eq!(scim_span.parent_span_id, route.span_id);
    assert!(
        under_worker(&spans, "db.system.name", "postgresql"),
        "a Postgres span: {spans:#?}"
    );
    assert!(
        under_worker(&spans, "db.system.name", "redis"),
        "a Redis span: {spans:#?}"
    );
    // A span per Postgres statement, under the SCIM operation, named by verb and table
    // only (never the statement's text or a parameter).
    let statements: Vec<_> = spans
        .iter()
        .filter(|s| {
            s.attr("db.system.name") == Some("postgresql") && s.attr("db.operation.name").is_some()
        })
        .collect();
    assert!(
        statements.len() > 1,
        "a span per statement: {statements:#?}"
    );
    for span in &statements {
        assert_eq!(
            span.parent_span_id, scim_span.span_id,
            "a statement under the SCIM operation: {span:#?}"
        );
        let verb = span.attr("db.operation.name").unwrap();
        assert!(
            [
                "SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "BEGIN", "COMMIT"
            ]
            .contains(&verb),
            "{span:#?}"
        );
        let summary = span.attr("db.query.summary").unwrap();
        assert!(
            summary.starts_with(verb)
                && summary
                    .bytes()
                    .all(|b| b.is_ascii_alphabetic() || b"_. ".contains(&b)),
            "a summary of keywords and names: {summary:?}"
        );
        assert_eq!(span.name, summary);
    }
    let names: Vec<&str> = statements.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"INSERT users"), "{names:?}");
    assert!(names.contains(&"COMMIT"), "{names:?}");

    // A client's unsampled trace is followed as it decided: no spans, in either process.
    let unsampled = "0af7651916cd43dd8448eb211c80319c";
    let (status, _) = closedloop_tests::harness::send(
        scim.request(reqwest::Method::GET, "/Users?count=1")
            .header("traceparent", format!("00-{unsampled}-b7ad6b7169203331-00")),
    )
    .await;
    assert_eq!(status, 200);

    // A refused token check with a query string, under the client's own trace.
    let client_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let refused = scim
        .with_token("clscim_not-a-real-token-but-secret")
        .request(
            reqwest::Method::GET,
            &format!("/Users?filter=userName%20eq%20%22{email}%22"),
        )
        .header(
            "traceparent",
            format!("00-{client_trace}-00f067aa0ba902b7-01"),
        )
        .header("tracestate", "acme=1")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let spans = trace_of(receiver, client_trace).await;
    let gateway_span = spans.iter().find(|s| s.service == "gateway").unwrap();
    assert_eq!(
        gateway_span.parent_span_id, "00f067aa0ba902b7",
        "the client's span is the parent"
    );
    let route = check_hop(&spans, "/api/scim/v2/{team_id}/Users");
    assert_eq!(route.attr("error.type"), Some("unauthorized"));
    // Spans are exported in the order they end: the unsampled request's would be here.
    assert!(
        !receiver.spans().iter().any(|s| s.trace_id == unsampled),
        "an unsampled request made spans"
    );

    // Background work (the revocation journal's polling) makes no traces of its own:
    // every worker store span belongs to a request.
    let all = receiver.spans();
    assert!(all.len() >= 8, "{all:#?}");
    for span in all.iter().filter(|s| s.attr("db.system.name").is_some()) {
        assert!(
            !span.parent_span_id.is_empty(),
            "a store span outside a request: {span:#?}"
        );
    }

    // Nothing secret or personal in any exported attribute or event.
    stack.assert_none_exported(&[
        scim.token.as_str(),
        "clscim_not-a-real-token-but-secret",
        "Bearer",
        email,
        "a@acme.test",
        "filter=",
        "userName",
        "?",
        "Traced",
        // No statement text: placeholders and clauses stay out of span names.
        "$1",
        "WHERE",
        "VALUES",
    ]);
}

/// An Okta sign-in through the simulated org and a Universal Logout from it: the
/// worker's spans of each call to the org (discovery, JWKS, token) hang under the
/// request's route span, and neither the code, the ID token, the client secret, the
/// session cookie nor the user's email is exported.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn okta_calls_sign_in_and_universal_logout_are_traced_without_credentials() {
    use closedloop_tests::okta_sim::OktaSim;
    use closedloop_tests::okta_sim::logout::Subject;
    use closedloop_tests::okta_world::okta_user;
    use closedloop_tests::web::Web;

    let stack = TracedStack::start().await;
    let state = region_worker::connect(worker_config(Region::Us, &stack.stores))
        .await
        .unwrap();
    let scim = Scim::operator_workspace(&state, &stack.gateway_url).await;
    let sim = OktaSim::start().await.unwrap();
    let app = sim.app();
    {
        use region_worker::okta::domain::OktaDomain;
        use region_worker::okta::settings::{self, NewSettings};
        let domain = OktaDomain::parse(sim.base_url(), true).unwrap();
        let client = state.pg.get().await.unwrap();
        assert!(
            settings::save(
                &client,
                &state.config.encryption_key,
                &NewSettings {
                    team_id: shared::ids::TeamId::parse(&scim.team_id).unwrap(),
                    okta_domain: domain.as_str(),
                    issuer: &domain.issuer(),
                    client_id: app.client_id(),
                    client_secret: Some(&app.client_secret()),
                    sign_in_enabled: true,
                    jit_provisioning: false,
                    updated_by: "test",
                },
            )
            .await
            .unwrap()
        );
    }
    let email = "kim.traced@acme.test";
    let kim = okta_user(&sim, email).await;
    let (status, user) = scim
        .post(
            "/Users",
            &json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": email, "externalId": kim.as_str(),
                "name": { "givenName": "Kim", "familyName": "Traced" },
                "emails": [{ "value": email, "primary": true, "type": "work" }],
                "active": true
            }),
        )
        .await;
    assert_eq!(status, 201, "{user}");

    // The sign-in, from the Initiate login URI.
    let api = "http://api.closedloop.localhost";
    let mut web = Web::new(&stack.gateway_url);
    let page = web
        .go(&format!(
            "{api}/api/okta/oidc/login?team_id={}",
            scim.team_id
        ))
        .await
        .unwrap();
    let page = if page.body.contains("<h1>Continue as ") {
        web.confirm(page).await.unwrap()
    } else {
        page
    };
    assert!(page.body.contains(email), "signed in: {}", page.body);
    let callback = stack
        .access_line(|l| l["fields"]["path"] == "/api/okta/oidc/callback")
        .await;
    let spans = trace_of(&stack.receiver, callback["trace_id"].as_str().unwrap()).await;
    let route = check_hop(&spans, "/api/okta/oidc/callback");
    // The workspace, found from the sign-in's state rather than a path parameter.
    assert_eq!(
        route.attr("closedloop.team_id"),
        Some(scim.team_id.as_str())
    );
    assert!(
        under_worker(&spans, "closedloop.okta.call", "token"),
        "a token call: {spans:#?}"
    );
    let login = stack
        .access_line(|l| l["fields"]["path"] == "/api/okta/oidc/login")
        .await;
    let login_spans = trace_of(&stack.receiver, login["trace_id"].as_str().unwrap()).await;
    assert_eq!(
        check_hop(&login_spans, "/api/okta/oidc/login").attr("closedloop.team_id"),
        Some(scim.team_id.as_str())
    );
    let okta_calls: Vec<_> = spans
        .iter()
        .chain(&login_spans)
        .filter_map(|s| s.attr("closedloop.okta.call"))
        .collect();
    for call in ["discovery", "jwks", "token"] {
        assert!(
            okta_calls.contains(&call),
            "an Okta {call} span in {okta_calls:?}"
        );
    }

    // Universal Logout from the org, through the gateway.
    let endpoint = closedloop_tests::okta_sim::upstream::Upstream::via(
        &format!("{api}/api/okta/universal-logout"),
        &stack.gateway_url,
    )
    .unwrap();
    let logout = app
        .universal_logout(&endpoint, &Subject::Email(email.into()))
        .await
        .unwrap();
    assert!(logout.status < 300, "{logout:?}");
    let access = stack
        .access_line(|l| l["fields"]["path"] == "/api/okta/universal-logout")
        .await;
    let spans = trace_of(&stack.receiver, access["trace_id"].as_str().unwrap()).await;
    let route = check_hop(&spans, "/api/okta/universal-logout");
    assert_eq!(
        route
            .attr("http.response.status_code")
            .map(|s| s.starts_with('2')),
        Some(true)
    );
    assert_eq!(
        route.attr("closedloop.team_id"),
        Some(scim.team_id.as_str()),
        "the workspace the logout token was verified for"
    );

    let cookies = web.cookie_header("app.closedloop.localhost");
    let mut needles = vec![
        email,
        "Bearer",
        "Basic ",
        "code=",
        "state=",
        "eyJ",
        "?",
        scim.token.as_str(),
    ];
    let secret = app.client_secret();
    needles.push(&secret);
    let cookie_values: Vec<&str> = cookies
        .split("; ")
        .filter_map(|c| c.split_once('=').map(|(_, v)| v))
        .filter(|v| v.len() >= 8)
        .collect();
    needles.extend(cookie_values);
    stack.assert_none_exported(&needles);
}
