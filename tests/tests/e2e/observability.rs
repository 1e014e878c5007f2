//! The dashboard and alert rules of `deploy/observability/` against real parts (issue 19).
//!
//! `promtool` checks the rules and runs their unit tests (`alerts_test.yml`). Then a
//! private Prometheus (Debian's `prometheus`) scrapes a real stack (the gateways' and
//! workers' admin listeners, one second apart) with the rules loaded, and after traffic
//! that touches every concern (SCIM writes and a refused request, Okta and link sign-ins
//! and a refused one, Universal Logouts accepted and refused, token checks, an unknown
//! host, a gateway serving a certificate) every PromQL expression of the dashboard and
//! of the rules must answer with at least one series. A query that matches nothing is a
//! wrong metric or label name: the test fails listing each one. Alert expressions are
//! evaluated with every comparison turned into a `bool` one ([`without_thresholds`]),
//! so a quiet stack (nothing firing) still answers, and only a wrong name stays empty.
//!
//! Every gateway and worker of this process shares one metrics registry
//! (`gateway/src/metrics.rs`), so each target shows every series of the process; the
//! scrape keeps `gateway_*` from the gateways and `worker_*` from the workers, as
//! separate processes would export them.
//!
//! Without `prometheus` and `promtool` the test says so and passes, unless
//! `CLOSEDLOOP_REQUIRE_PROMETHEUS` is set (as `tests/run.sh` does after installing them).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use closedloop_tests::harness::{TestStack, region_map_text, temp_dir};
use closedloop_tests::okta_sim::OktaSim;
use closedloop_tests::okta_sim::logout::{Forgery, Subject};
use closedloop_tests::okta_world::{connect, okta_user, provision};
use closedloop_tests::region::Region;
use closedloop_tests::tokens::{create_on_page, introspect, me};
use closedloop_tests::web::Web;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// How long Prometheus gets to start, and the queries to answer.
const DEADLINE: Duration = Duration::from_secs(90);

fn observability_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/observability")
}

/// Whether `prometheus` and `promtool` run; without them the test passes unless
/// `CLOSEDLOOP_REQUIRE_PROMETHEUS` is set.
fn tools_present() -> bool {
    let runs = |tool: &str| {
        std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if runs("prometheus") && runs("promtool") {
        return true;
    }
    assert!(
        std::env::var_os("CLOSEDLOOP_REQUIRE_PROMETHEUS").is_none(),
        "prometheus and promtool are required (CLOSEDLOOP_REQUIRE_PROMETHEUS is set): apt install prometheus"
    );
    eprintln!("skipped: prometheus/promtool are not installed (apt install prometheus)");
    false
}

/// Runs `promtool` with `args` in `deploy/observability`; panics with its output unless
/// it succeeds.
fn promtool(args: &[&str]) {
    let out = std::process::Command::new("promtool")
        .args(args)
        .current_dir(observability_dir())
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool {}:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Prometheus server of this test: its own config, storage and port, killed on drop.
struct Prometheus {
    child: tokio::process::Child,
    url: String,
    http: reqwest::Client,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl Prometheus {
    /// Starts `prometheus` with `config` under `dir` and waits until it is ready.
    /// Prometheus cannot listen on port 0, so a port is found free by binding and
    /// releasing it; should another process take it in between, the next attempt gets
    /// another.
    async fn start(dir: &Path, config: &str) -> Self {
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, config).unwrap();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        for attempt in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .unwrap()
                .port();
            let log = dir.join(format!("prometheus-{attempt}.log"));
            let mut child = tokio::process::Command::new("prometheus")
                .arg(format!("--config.file={}", config_file.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join(format!("data-{attempt}")).display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .kill_on_drop(true)
                .spawn()
                .expect("prometheus starts");
            let url = format!("http://127.0.0.1:{port}");
            let started = Instant::now();
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    eprintln!(
                        "prometheus exited ({status}) on port {port}:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                    break;
                }
                let ready = http.get(format!("{url}/-/ready")).send().await;
                if ready.is_ok_and(|r| r.status() == 200) {
                    return Self { child, url, http };
                }
                assert!(
                    started.elapsed() < DEADLINE,
                    "prometheus never became ready:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        panic!("prometheus did not start in five attempts");
    }

    /// `GET /api/v1/{path}` with `query`: the `data` of a successful answer.
    async fn api(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, String> {
        let r = self
            .http
            .get(format!("{}/api/v1/{path}", self.url))
            .query(query)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = r.json().await.map_err(|e| e.to_string())?;
        if body["status"] == "success" {
            Ok(body["data"].clone())
        } else {
            Err(format!("{}: {}", body["errorType"], body["error"]))
        }
    }

    /// How many series `expr` answers now, or the error Prometheus gave.
    async fn series(&self, expr: &str) -> Result<usize, String> {
        let data = self.api("query", &[("query", expr)]).await?;
        match data["resultType"].as_str() {
            Some("vector" | "matrix") => Ok(data["result"].as_array().map_or(0, Vec::len)),
            Some("scalar") => Ok(1),
            other => Err(format!("unexpected result type {other:?}")),
        }
    }
}

/// `expr` with every comparison outside label matchers, strings and range selectors
/// turned into a `bool` comparison: `a > 0.5 and b >= 2` becomes
/// `a > bool 0.5 and b >= bool 2`, which answers 0 or 1 for every series instead of
/// only those past the threshold. An alert's expression then answers whenever the
/// series it reads exist, firing or not.
fn without_thresholds(expr: &str) -> String {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = String::with_capacity(expr.len() + 32);
    let (mut braces, mut brackets) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        out.push(c);
        i += 1;
        if let Some(q) = quote {
            if c == '\\' && q != '`' && i < chars.len() {
                out.push(chars[i]);
                i += 1;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '{' => braces += 1,
            '}' => braces = braces.saturating_sub(1),
            '[' => brackets += 1,
            ']' => brackets = brackets.saturating_sub(1),
            '>' | '<' | '=' | '!' if braces == 0 && brackets == 0 => {
                let next = chars.get(i).copied();
                let two = next == Some('=');
                if c == '!' && !two {
                    continue;
                }
                if c == '=' && !two {
                    continue;
                }
                if two {
                    out.push('=');
                    i += 1;
                }
                out.push_str(" bool");
            }
            _ => {}
        }
    }
    out
}

/// Every `expr` of the dashboard's panels (rows' nested panels too).
fn dashboard_exprs(node: &Value, out: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            if let Some(Value::Array(targets)) = map.get("targets") {
                for t in targets {
                    if let Some(expr) = t["expr"].as_str() {
                        out.push(expr.to_owned());
                    }
                }
            }
            for (key, value) in map {
                if key != "targets" {
                    dashboard_exprs(value, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

/// A query as Grafana would send it: every region, the default top N, a rate window
/// over several scrapes.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$region", ".*")
        .replace("$topn", "10")
}

/// The anchors GitHub gives the headings of a Markdown file.
fn heading_anchors(markdown: &str) -> Vec<String> {
    markdown
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| {
            l.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect()
}

/// A gateway serving a certificate (made for the test) over TLS in front of `stack`'s
/// workers: the expiry gauge comes from a certificate really loaded. Returns its admin
/// address and the sender that stops it.
async fn tls_gateway(stack: &TestStack, dir: &Path) -> (std::net::SocketAddr, oneshot::Sender<()>) {
    let hosts = [Region::Us, Region::Eu]
        .map(|r| [r.api(), r.app()])
        .concat();
    let cert =
        rcgen::generate_simple_self_signed(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())
            .expect("certificate made");
    let (cert_path, key_path) = (dir.join("api.pem"), dir.join("api.key"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let text = region_map_text(&[stack.worker(Region::Us).addr], &[stack.worker(Region::Eu).addr], None)
        .replace(
            "admin_listen = \"127.0.0.1:0\"\n",
            &format!(
                "admin_listen = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\ncertificates = [{{ hosts = [{}], cert = \"{}\", key = \"{}\" }}]\n",
                hosts.iter().map(|h| format!("\"{h}\"")).collect::<Vec<_>>().join(", "),
                cert_path.display(),
                key_path.display()
            ),
        );
    let map = shared::regions::RegionMap::parse(&text).expect("the TLS map is valid");
    assert!(
        !map.gateway.certificates.is_empty(),
        "the map names the certificate"
    );
    let gateway =
        gateway::Gateway::new(gateway::GatewayConfig::new(map)).expect("certificates load");
    let tls = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_addr = admin.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let listeners = gateway::Listeners {
        plain: None,
        tls: Some(tls),
        admin,
    };
    tokio::spawn(gateway.serve(listeners, async {
        let _ = stopped.await;
    }));
    (admin_addr, stop)
}

/// Traffic through the gateway that every row of the dashboard and every rule reads.
async fn drive_traffic(stack: &TestStack) {
    let sim = OktaSim::start().await.unwrap();
    let us = stack.workspace(Region::Us, "Acme", "admin@acme.test").await;
    let eu = stack
        .workspace(Region::Eu, "Acme EU", "admin@acme-eu.test")
        .await;
    connect(stack, &us.team_id, &sim).await;

    // SCIM: Okta provisions users in both regions; a stale token is refused.
    let jane = okta_user(&sim, "jane@acme.test").await;
    provision(stack, &us, "jane@acme.test", jane.as_str()).await;
    let scim_eu = stack.scim(Region::Eu, &eu.team_id, "").await;
    let (status, body) = scim_eu
        .post(
            "/Users",
            &json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "erik@acme-eu.test",
                "emails": [{ "value": "erik@acme-eu.test", "primary": true }],
                "active": true
            }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let stale = stack
        .scim(Region::Us, &us.team_id, "")
        .await
        .with_token("clk_us_scim_000000000000000000000000000000000000000000");
    assert_eq!(stale.get("/Users").await.0, 401);

    // Sign-ins: the first admin's link, Jane through Okta, and a refusal.
    let admin = stack.sign_in_with_link(Region::Us, &us).await;
    let mut web = Web::new(&stack.gateway.url());
    let started = web
        .post(
            &format!("http://{}/auth", Region::Us.app()),
            &[("email", "jane@acme.test")],
        )
        .await
        .unwrap();
    let home = web.follow(started).await.unwrap();
    assert_eq!(home.status, 200, "signed in through Okta: {}", home.body);
    let refused = stack
        .get(
            Region::Us.api(),
            "/api/okta/oidc/login?team_id=00000000-0000-4000-8000-000000000000",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404, "an unknown workspace is refused");

    // Token checks: an API token used and introspected.
    let token = create_on_page(stack, Region::Us, &admin, "CI", "api").await;
    assert_eq!(me(stack, Region::Us, &token).await, 200);
    assert_eq!(introspect(stack, Region::Us, &token).await["active"], true);

    // Universal Logout: Jane logged out by Okta; a request signed with a key the org
    // never published (its workspace known, refused); one with no JWT at all.
    let endpoint = stack.universal_logout_endpoint(Region::Us);
    let app = sim.app();
    let done = app
        .universal_logout(&endpoint, &Subject::Email("jane@acme.test".into()))
        .await
        .unwrap();
    assert_eq!(done.status, 204, "{}", done.body);
    let forged = app
        .forged_logout(
            &endpoint,
            &Subject::Email("jane@acme.test".into()),
            Forgery::UnpublishedKey,
        )
        .await
        .unwrap();
    assert_eq!(forged.status, 401, "{}", forged.body);
    let anonymous = stack
        .request(
            reqwest::Method::POST,
            Region::Us.api(),
            "/api/okta/universal-logout",
        )
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // A host no region serves.
    let unknown = stack
        .get("nowhere.example", "/api/ping")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 421);
}

#[test]
fn thresholds_become_bool_comparisons_outside_matchers() {
    assert_eq!(
        without_thresholds(r#"a{team_id!="none", s=~"4.."} > 0.5 and b[5m] >= 2"#),
        r#"a{team_id!="none", s=~"4.."} > bool 0.5 and b[5m] >= bool 2"#
    );
    assert_eq!(
        without_thresholds("sum(x) == 0 or y != 1 or z < 3 or w <= 4"),
        "sum(x) == bool 0 or y != bool 1 or z < bool 3 or w <= bool 4"
    );
    assert_eq!(without_thresholds(r#"x{a="b>c"}"#), r#"x{a="b>c"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_answers_every_dashboard_and_rule_query_with_data() {
    if !tools_present() {
        return;
    }
    promtool(&["check", "rules", "alerts.yml"]);
    promtool(&["test", "rules", "alerts_test.yml"]);

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(observability_dir().join("grafana-dashboard.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert!(
        variables.contains(&"datasource") && variables.contains(&"region"),
        "{variables:?}"
    );
    assert_eq!(dashboard["__inputs"][0]["pluginId"], "prometheus");
    let mut panel_exprs = Vec::new();
    dashboard_exprs(&dashboard["panels"], &mut panel_exprs);
    assert!(panel_exprs.len() > 20, "{panel_exprs:?}");

    let stack = TestStack::start().await.unwrap();
    let dir = temp_dir("observability");
    let (tls_admin, _stop_tls) = tls_gateway(&stack, &dir).await;
    let rules = observability_dir()
        .join("alerts.yml")
        .canonicalize()
        .unwrap();
    let config = format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - {rules}
scrape_configs:
  - job_name: closedloop-worker
    static_configs:
      - targets: ["{us}"]
        labels: {{ region: us }}
      - targets: ["{eu}"]
        labels: {{ region: eu }}
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: "worker_.*"
        action: keep
  - job_name: closedloop-gateway
    static_configs:
      - targets: ["{gateway}", "{tls_gateway}"]
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: "gateway_.*"
        action: keep
"#,
        rules = rules.display(),
        us = stack.worker(Region::Us).admin_addr,
        eu = stack.worker(Region::Eu).admin_addr,
        gateway = stack.gateway.admin_addr,
        tls_gateway = tls_admin,
    );
    let prometheus = Prometheus::start(&dir, &config).await;

    drive_traffic(&stack).await;

    // Every rule Prometheus loaded, with the annotations an alert must carry and a
    // runbook anchor that exists in the operator guide.
    let guide = std::fs::read_to_string(observability_dir().join("../README.md")).unwrap();
    let anchors = heading_anchors(&guide);
    let groups = prometheus.api("rules", &[]).await.unwrap()["groups"].clone();
    let mut rule_queries = Vec::new();
    let mut alerts = 0;
    for rule in groups
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
    {
        let name = rule["name"].as_str().unwrap();
        let query = rule["query"].as_str().unwrap();
        if rule["type"] == "alerting" {
            alerts += 1;
            for key in ["summary", "description", "runbook_url"] {
                assert!(
                    rule["annotations"][key]
                        .as_str()
                        .is_some_and(|s| !s.is_empty()),
                    "{name} has no {key}"
                );
            }
            let runbook = rule["annotations"]["runbook_url"].as_str().unwrap();
            let anchor = runbook
                .strip_prefix("deploy/README.md#")
                .unwrap_or_else(|| {
                    panic!("{name}: runbook {runbook} is not an anchor of deploy/README.md")
                });
            assert!(
                anchors.iter().any(|a| a == anchor),
                "{name}: deploy/README.md has no heading #{anchor}"
            );
            rule_queries.push((format!("alert {name}"), without_thresholds(query)));
        } else {
            rule_queries.push((format!("record {name}"), query.to_owned()));
        }
    }
    assert!(alerts >= 12, "{alerts} alerts loaded");

    let mut queries: Vec<(String, String)> = panel_exprs
        .iter()
        .map(|e| ("panel".to_owned(), substitute(e)))
        .collect();
    for (_, q) in &queries {
        assert!(!q.contains('$'), "an unknown dashboard variable in {q}");
    }
    queries.extend(rule_queries);

    // Prometheus scrapes every second and evaluates the rules every second: poll until
    // every query answers, then fail with those that never did.
    let started = Instant::now();
    let empty = loop {
        let mut empty = Vec::new();
        for (what, q) in &queries {
            match prometheus.series(q).await {
                Ok(n) if n > 0 => {}
                Ok(_) => empty.push(format!("{what}: no series: {q}")),
                Err(e) => empty.push(format!("{what}: {e}: {q}")),
            }
        }
        if empty.is_empty() || started.elapsed() > DEADLINE {
            break empty;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    if !empty.is_empty() {
        let targets = prometheus.api("targets", &[]).await.unwrap_or_default();
        panic!(
            "{} of {} queries answered nothing:\n{}\n\ntargets: {}",
            empty.len(),
            queries.len(),
            empty.join("\n"),
            targets["activeTargets"]
        );
    }
    // The region variable's values, as Grafana lists them.
    let regions = prometheus
        .api(
            "label/region/values",
            &[("match[]", "gateway_requests_total")],
        )
        .await
        .unwrap();
    for region in ["us", "eu"] {
        assert!(
            regions.as_array().unwrap().iter().any(|r| r == region),
            "{regions}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
