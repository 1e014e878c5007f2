//! A store that goes away makes requests answer `503` with `Retry-After` (never a
//! crash), `/readyz` fail, and service return by itself when the store comes back.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use closedloop_tests::harness::{
    RegionStores, Scim, TestGateway, TestWorker, US_API, binary, client, ensure_template,
    fresh_database_on, operator_token, region_map, region_map_text, with_database, worker_config,
    worker_env,
};
use closedloop_tests::region::Region;
use deploy::stores::{PostgresServer, RedisServer, free_port};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;

async fn scim_users(worker: &TestWorker, team: &str, token: &str) -> reqwest::Response {
    client()
        .get(format!("{}/api/scim/v2/{team}/Users", worker.url()))
        .header("host", US_API)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn ready(worker: &TestWorker) -> u16 {
    client()
        .get(format!("http://{}/readyz", worker.admin_addr))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A US worker whose Postgres is a private server (in `dir`) the test may stop.
async fn worker_on_private_postgres(durable: bool) -> (PathBuf, PostgresServer, TestWorker) {
    let dir = std::env::temp_dir().join(format!("clt-pg-{}", uuid::Uuid::new_v4().simple()));
    let pg =
        tokio::task::block_in_place(|| PostgresServer::start_on_free_port(&dir, durable)).unwrap();
    let admin = pg.url("postgres");
    let template = ensure_template(&admin).await.unwrap();
    let db = fresh_database_on(&admin, &template).await.unwrap();
    let stores = RegionStores {
        pg_url: with_database(&admin, &db.name),
        redis_url: closedloop_tests::harness::redis_url(),
        redis_prefix: closedloop_tests::harness::redis_prefix(),
    };
    let worker = TestWorker::start(worker_config(Region::Us, &stores))
        .await
        .unwrap();
    (dir, pg, worker)
}

/// A US worker whose Redis is a private server (in `dir`) the test may kill or flush.
async fn worker_on_private_redis() -> (PathBuf, RedisServer, TestWorker) {
    let dir = std::env::temp_dir().join(format!("clt-redis-{}", uuid::Uuid::new_v4().simple()));
    let port = free_port().unwrap();
    let redis = tokio::task::block_in_place(|| RedisServer::start(&dir, port, false)).unwrap();
    let stores = RegionStores {
        pg_url: closedloop_tests::harness::fresh_database()
            .await
            .unwrap()
            .url,
        redis_url: redis.url(),
        redis_prefix: String::new(),
    };
    let worker = TestWorker::start(worker_config(Region::Us, &stores))
        .await
        .unwrap();
    (dir, redis, worker)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_means_503_and_recovery_without_restart() {
    let (dir, mut pg, worker) = worker_on_private_postgres(false).await;
    let created = region_worker::cli::workspace_create(&worker.state, "Acme", "a@acme.test")
        .await
        .unwrap();
    let team = created.team_id.to_string();
    assert_eq!(scim_users(&worker, &team, "non-token").await.status(), 401);

    tokio::task::block_in_place(|| pg.stop(true)).unwrap();
    // A token only Postgres can answer for (well formed, never seen: a token that is
    // not one of ours is refused without a store, and the workspace is known by now).
    let unseen = format!("clk_us_scim_{}", "u".repeat(43));
    let r = scim_users(&worker, &team, &unseen).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    assert_eq!(r.headers()["content-type"], "application/scim+json");
    let body = r.text().await.unwrap();
    assert!(
        !body.contains("postgres") && !body.contains("connection"),
        "no internals: {body}"
    );
    assert_eq!(ready(&worker).await, 503);

    tokio::task::block_in_place(|| pg.resume()).unwrap();
    // The pool reconnects by itself; no restart of the worker.
    assert_eq!(scim_users(&worker, &team, "non-token").await.status(), 401);
    assert_eq!(ready(&worker).await, 200);
    worker.stop().await.unwrap();
    drop(pg);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_means_503_and_recovery_without_restart() {
    let (dir, mut redis, worker) = worker_on_private_redis().await;
    let created = region_worker::cli::workspace_create(&worker.state, "Acme", "a@acme.test")
        .await
        .unwrap();
    let team = created.team_id.to_string();
    let issued = region_worker::cli::token_issue(&worker.state, &team, "scim", "", 1)
        .await
        .unwrap();
    let token = issued.token;
    assert_ne!(scim_users(&worker, &team, &token).await.status(), 401);

    tokio::task::block_in_place(|| redis.stop()).unwrap();
    let r = scim_users(&worker, &team, &token).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    assert_eq!(ready(&worker).await, 503);

    // Restarted empty: the token is re-read from Postgres, nothing was lost.
    tokio::task::block_in_place(|| redis.resume()).unwrap();
    let mut status = 0;
    for _ in 0..50 {
        status = scim_users(&worker, &team, &token).await.status().as_u16();
        if status != 503 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        status != 503 && status != 401,
        "token accepted again, got {status}"
    );
    assert_eq!(ready(&worker).await, 200);
    worker.stop().await.unwrap();
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------
// Faults under load: SCIM clients write and read without pause while a store is
// flushed, killed and restarted, or a worker replica is killed; then every write that
// was acknowledged is read back, every write is found at most once, and no revoked
// token was ever accepted. Each test prints one `fault:` line with its figures
// (BENCHMARKS.md, "Faults under load").
// ---------------------------------------------------------------------------------

/// Where a run is; requests are counted in the phase they started in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    /// Before the fault.
    Before,
    /// From the moment the fault is injected until the service is back.
    Fault,
    /// After the service is back (`/readyz` answers 200 again).
    After,
    /// The clients stop.
    Done,
}

/// What the clients saw, and the writes they made.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Requests sent, per phase.
    requests: BTreeMap<Phase, usize>,
    /// Requests that failed (status or transport error), per phase.
    failures: BTreeMap<Phase, Vec<String>>,
    /// Users whose creation was acknowledged (`201`): userName → id.
    created: BTreeMap<String, String>,
    /// Users whose creation was not acknowledged (any other answer).
    unacknowledged: Vec<String>,
    /// Requests with a revoked token, sent after its revocation, that were accepted.
    revoked_accepted: Vec<String>,
}

impl Outcome {
    fn merge(&mut self, other: Outcome) {
        for (p, n) in other.requests {
            *self.requests.entry(p).or_default() += n;
        }
        for (p, f) in other.failures {
            self.failures.entry(p).or_default().extend(f);
        }
        self.created.extend(other.created);
        self.unacknowledged.extend(other.unacknowledged);
        self.revoked_accepted.extend(other.revoked_accepted);
    }

    fn failed(&self, phase: Phase) -> usize {
        self.failures.get(&phase).map_or(0, Vec::len)
    }

    fn total(&self) -> usize {
        self.requests.values().sum()
    }
}

/// Shared by the clients and the test: the phase, progress counters, and the tokens
/// revoked so far with the moment each revocation completed.
pub(crate) struct Run {
    phase: watch::Sender<Phase>,
    successes: watch::Sender<usize>,
    failures: watch::Sender<usize>,
    revoked: Mutex<Vec<(String, Instant)>>,
}

impl Run {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            phase: watch::channel(Phase::Before).0,
            successes: watch::channel(0).0,
            failures: watch::channel(0).0,
            revoked: Mutex::new(Vec::new()),
        })
    }

    /// Waits until `n` more requests have succeeded.
    pub(crate) async fn successes_after(&self, n: usize) {
        let start = *self.successes.borrow();
        let mut rx = self.successes.subscribe();
        rx.wait_for(|s| *s >= start + n).await.unwrap();
    }

    /// Waits until `n` more requests have failed.
    async fn failures_after(&self, n: usize) {
        let start = *self.failures.borrow();
        let mut rx = self.failures.subscribe();
        rx.wait_for(|s| *s >= start + n).await.unwrap();
    }

    pub(crate) fn enter(&self, phase: Phase) {
        self.phase.send_replace(phase);
    }

    fn revoke_recorded(&self, token: &str) {
        self.revoked
            .lock()
            .unwrap()
            .push((token.to_owned(), Instant::now()));
    }
}

/// One SCIM client: creates a user, changes two of its attributes in one PATCH (a
/// write that must land whole or not at all), and presents a revoked token; again and
/// again until the run is done. While the store is down it paces itself a little, as
/// a client honouring `Retry-After` would (without waiting the whole 5 s).
async fn load_client(n: usize, scim: Scim, run: Arc<Run>) -> Outcome {
    let mut out = Outcome::default();
    let mut phase_rx = run.phase.subscribe();
    for j in 0.. {
        let phase = *phase_rx.borrow_and_update();
        if phase == Phase::Done {
            break;
        }
        // A request counts against the phase it started in, unless it failed across
        // the fault's edges (started before it and ended in it, or started in it and
        // ended after): those belong to the fault.
        let ok = |out: &mut Outcome, started: Phase, good: bool, what: String| {
            let ended = *run.phase.borrow();
            let phase = if started < Phase::Fault && ended >= Phase::Fault && !good {
                Phase::Fault
            } else {
                started
            };
            *out.requests.entry(phase).or_default() += 1;
            if good {
                run.successes.send_modify(|s| *s += 1);
            } else {
                out.failures.entry(phase).or_default().push(what);
                run.failures.send_modify(|s| *s += 1);
            }
        };
        let now = || *run.phase.borrow();
        let user_name = format!("load-{n}-{j}@acme.test");
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": user_name,
            "name": { "givenName": "v-init", "familyName": "Load" },
            "title": "v-init",
            "emails": [{ "value": user_name, "type": "work", "primary": true }],
            "active": true,
        });
        let started = now();
        let created = scim
            .request(Method::POST, "/Users")
            .json(&body)
            .send()
            .await;
        let id = match created {
            Ok(r) if r.status() == 201 => {
                let v: Value = r.json().await.unwrap();
                let id = v["id"].as_str().unwrap().to_owned();
                out.created.insert(user_name.clone(), id.clone());
                ok(&mut out, started, true, String::new());
                Some(id)
            }
            Ok(r) => {
                let status = r.status().as_u16();
                out.unacknowledged.push(user_name.clone());
                ok(&mut out, started, false, format!("POST {status}"));
                None
            }
            Err(e) => {
                out.unacknowledged.push(user_name.clone());
                ok(&mut out, started, false, format!("POST {e}"));
                None
            }
        };
        if let Some(id) = id {
            let patch = json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [
                    { "op": "replace", "path": "name.givenName", "value": format!("v{j}") },
                    { "op": "replace", "path": "title", "value": format!("v{j}") },
                ],
            });
            let started = now();
            let r = scim
                .request(Method::PATCH, &format!("/Users/{id}"))
                .json(&patch)
                .send()
                .await;
            match r {
                Ok(r) if r.status().is_success() => ok(&mut out, started, true, String::new()),
                Ok(r) => ok(
                    &mut out,
                    started,
                    false,
                    format!("PATCH {}", r.status().as_u16()),
                ),
                Err(e) => ok(&mut out, started, false, format!("PATCH {e}")),
            }
        }
        let revoked = run.revoked.lock().unwrap().clone();
        if !revoked.is_empty() {
            let (token, revoked_at) = &revoked[j % revoked.len()];
            let sent_at = Instant::now();
            let started = now();
            match scim
                .with_token(token)
                .request(Method::GET, "/Users?count=1")
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => {
                    if sent_at > *revoked_at {
                        out.revoked_accepted.push(format!("{}…", &token[..16]));
                    }
                    ok(&mut out, started, true, String::new());
                }
                Ok(r) if r.status() == 401 => ok(&mut out, started, true, String::new()),
                Ok(r) => ok(
                    &mut out,
                    started,
                    false,
                    format!("GET(revoked) {}", r.status().as_u16()),
                ),
                Err(e) => ok(&mut out, started, false, format!("GET(revoked) {e}")),
            }
        }
        if phase == Phase::Fault {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    out
}

/// Runs `clients` load clients against `scim` until `fault` returns, then checks
/// every write against the stores (through `check`, a client with a live token).
pub(crate) async fn under_load<F: std::future::Future<Output = ()>>(
    clients: usize,
    scim: &Scim,
    run: &Arc<Run>,
    fault: F,
) -> Outcome {
    let tasks: Vec<_> = (0..clients)
        .map(|n| tokio::spawn(load_client(n, scim.clone(), run.clone())))
        .collect();
    fault.await;
    run.enter(Phase::Done);
    let mut total = Outcome::default();
    for t in tasks {
        total.merge(t.await.unwrap());
    }
    total
}

/// What the stores hold after the run: acknowledged users missing (lost), userNames
/// found more than once (applied twice), users whose PATCH landed in part, and
/// unacknowledged creations that were applied all the same (the answer was lost, not
/// the write: a retrying client gets `409`).
#[derive(Debug, Default)]
struct Audit {
    lost: Vec<String>,
    duplicated: Vec<String>,
    torn: Vec<String>,
    applied_unacknowledged: usize,
}

async fn audit(scim: &Scim, out: &Outcome) -> Audit {
    let mut audit = Audit::default();
    let names = out.created.keys().chain(out.unacknowledged.iter());
    for name in names {
        let filter = format!("userName eq \"{name}\"");
        let (status, list) = scim
            .get(&format!(
                "/Users?filter={}",
                url::form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>()
            ))
            .await;
        assert_eq!(status, 200, "{list}");
        let found = list["totalResults"].as_u64().unwrap();
        if found > 1 {
            audit.duplicated.push(name.clone());
        }
        match out.created.get(name) {
            Some(id) if found == 0 || list["Resources"][0]["id"] != id.as_str() => {
                audit.lost.push(name.clone())
            }
            None if found == 1 => audit.applied_unacknowledged += 1,
            _ => {}
        }
        if found == 1 {
            let user = &list["Resources"][0];
            if user["name"]["givenName"] != user["title"] {
                audit.torn.push(format!("{name}: {user}"));
            }
        }
    }
    audit
}

/// Prints the figures of one fault and checks the promises common to every fault.
fn report(fault: &str, out: &Outcome, audit: &Audit, outage: Duration) {
    eprintln!(
        "fault: {fault} | requests {} (before {}, during {}, after {}) | failed: before {}, during {}, after {} | \
         outage {} ms | writes acknowledged {} | lost {} | applied twice {} | torn {} | \
         unacknowledged {} of which applied {} | revoked tokens accepted {}",
        out.total(),
        out.requests.get(&Phase::Before).unwrap_or(&0),
        out.requests.get(&Phase::Fault).unwrap_or(&0),
        out.requests.get(&Phase::After).unwrap_or(&0),
        out.failed(Phase::Before),
        out.failed(Phase::Fault),
        out.failed(Phase::After),
        outage.as_millis(),
        out.created.len(),
        audit.lost.len(),
        audit.duplicated.len(),
        audit.torn.len(),
        out.unacknowledged.len(),
        audit.applied_unacknowledged,
        out.revoked_accepted.len(),
    );
    assert!(audit.lost.is_empty(), "lost: {:?}", audit.lost);
    assert!(audit.duplicated.is_empty(), "twice: {:?}", audit.duplicated);
    assert!(audit.torn.is_empty(), "torn: {:?}", audit.torn);
    assert!(
        out.revoked_accepted.is_empty(),
        "revoked tokens accepted: {:?}",
        out.revoked_accepted
    );
    assert_eq!(out.failed(Phase::Before), 0, "{:?}", out.failures);
    assert_eq!(out.failed(Phase::After), 0, "{:?}", out.failures);
}

/// Polls `/readyz` until it answers 200 (the stores are reachable again).
pub(crate) async fn until_ready(worker: &TestWorker) {
    for _ in 0..300 {
        if ready(worker).await == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the worker did not become ready again");
}

/// A workspace on `worker` with a SCIM client straight to the worker, and two more
/// live tokens.
pub(crate) async fn load_workspace(worker: &TestWorker) -> (Scim, [String; 2]) {
    let scim = Scim::operator_workspace(&worker.state, &worker.url()).await;
    let spare = [
        operator_token(&worker.state, &scim.team_id).await,
        operator_token(&worker.state, &scim.team_id).await,
    ];
    (scim, spare)
}

/// The fault's middle: it strikes (`stop`), lasts until 16 requests have failed, and
/// ends (`resume`) when `/readyz` is green again; then 200 more requests succeed.
/// Returns how long the service was out.
async fn outage<S>(
    run: &Run,
    worker: &TestWorker,
    server: &mut S,
    stop: impl FnOnce(&mut S),
    resume: impl FnOnce(&mut S),
) -> Duration {
    run.enter(Phase::Fault);
    let down = Instant::now();
    tokio::task::block_in_place(|| stop(server));
    run.failures_after(16).await;
    tokio::task::block_in_place(|| resume(server));
    until_ready(worker).await;
    let outage = down.elapsed();
    run.enter(Phase::After);
    run.successes_after(200).await;
    outage
}

/// Audits and reports a store fault, whose only failures may be `503`s.
pub(crate) async fn store_fault_report(fault: &str, scim: &Scim, out: &Outcome, outage: Duration) {
    let audit = audit(scim, out).await;
    report(fault, out, &audit, outage);
    for failure in out.failures.values().flatten() {
        assert!(failure.ends_with(" 503"), "only 503 while down: {failure}");
    }
}

pub(crate) async fn revoke(state: &region_worker::state::AppState, run: &Run, token: &str) {
    let hash = shared::token::TokenHash::of(token);
    assert!(
        region_worker::store::tokens::revoke(&state.pg, &state.redis, &hash)
            .await
            .unwrap()
    );
    run.revoke_recorded(token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_flushed_then_restarted_under_load_loses_nothing_and_revokes_stay_revoked() {
    let (dir, mut redis, worker) = worker_on_private_redis().await;
    let (scim, [early, spare]) = load_workspace(&worker).await;
    // One token revoked before the run; the clients present it throughout.
    let run = Run::new();
    revoke(&worker.state, &run, &early).await;

    let mut outage = Duration::ZERO;
    let out = under_load(8, &scim, &run, async {
        run.successes_after(200).await;
        // Flushed: every cached token, tombstone, session and counter gone at once.
        let mut conn = redis::Client::open(redis.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
        // Revoked after the flush: Postgres holds the revocation, Redis a tombstone.
        revoke(&worker.state, &run, &spare).await;
        run.successes_after(200).await;

        // Killed, then started again empty.
        outage = self::outage(
            &run,
            &worker,
            &mut redis,
            |r| r.stop().unwrap(),
            |r| r.resume().unwrap(),
        )
        .await;
    })
    .await;
    store_fault_report(
        "Redis flushed, then killed and restarted empty",
        &scim,
        &out,
        outage,
    )
    .await;
    worker.stop().await.unwrap();
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_crashed_and_restarted_under_load_loses_and_tears_nothing() {
    let (dir, mut pg, worker) = worker_on_private_postgres(true).await;
    let (scim, [spare, _]) = load_workspace(&worker).await;
    let run = Run::new();
    revoke(&worker.state, &run, &spare).await;

    let mut outage = Duration::ZERO;
    let out = under_load(8, &scim, &run, async {
        run.successes_after(200).await;
        // `immediate`: no checkpoint, in-flight transactions cut off, as in a crash.
        outage = self::outage(
            &run,
            &worker,
            &mut pg,
            |p| p.stop(true).unwrap(),
            |p| p.resume().unwrap(),
        )
        .await;
    })
    .await;
    store_fault_report(
        "Postgres crashed (immediate stop) and restarted",
        &scim,
        &out,
        outage,
    )
    .await;
    worker.stop().await.unwrap();
    drop(pg);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A `region-worker serve` process on port 0 with its stderr drained; `addr` is the
/// public address it logged.
struct WorkerProcess {
    child: tokio::process::Child,
    addr: SocketAddr,
}

impl WorkerProcess {
    async fn spawn(map: &std::path::Path, env: &[(String, String)]) -> Self {
        let mut child = tokio::process::Command::new(binary("region-worker"))
            .args(["serve", "--region", "us", "--config"])
            .arg(map)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("the worker exited before serving");
            let line = strip_ansi(&line);
            if let Some(rest) = line.split("public=").nth(1) {
                break rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        };
        // Keep reading, or the worker blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, addr }
    }
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_mid_request_applies_no_scim_write_twice() {
    let stores = RegionStores::fresh().await.unwrap();
    // The replicas share one Redis key space without a prefix: a private Redis.
    let dir = std::env::temp_dir().join(format!("clt-kill-{}", uuid::Uuid::new_v4().simple()));
    let port = free_port().unwrap();
    let redis = tokio::task::block_in_place(|| RedisServer::start(&dir, port, false)).unwrap();
    let stores = RegionStores {
        redis_url: redis.url(),
        redis_prefix: String::new(),
        ..stores
    };
    let map = dir.join("regions.toml");
    std::fs::write(&map, region_map_text(&[], &[], None)).unwrap();
    let env = worker_env(Region::Us, &stores);
    let mut first = WorkerProcess::spawn(&map, &env).await;
    let second = WorkerProcess::spawn(&map, &env).await;
    let gateway = TestGateway::start(region_map(&[first.addr, second.addr], &[]))
        .await
        .unwrap();

    // The workspace and its token, made by an operator command against the same stores.
    let state = region_worker::connect(worker_config(Region::Us, &stores))
        .await
        .unwrap();
    let scim = Scim::operator_workspace(&state, &gateway.url()).await;
    let revoked = operator_token(&state, &scim.team_id).await;

    // The clients also read (with a revoked token): reads in flight are retried.
    let run = Run::new();
    revoke(&state, &run, &revoked).await;
    let out = under_load(8, &scim, &run, async {
        run.successes_after(200).await;
        run.enter(Phase::Fault);
        // SIGKILL with requests in flight: no graceful shutdown, connections cut.
        first.child.start_kill().unwrap();
        first.child.wait().await.unwrap();
        run.successes_after(300).await;
    })
    .await;
    let audit = audit(&scim, &out).await;

    // A client retries each write that got no answer: it was applied at most once.
    let mut conflicts = 0;
    for name in &out.unacknowledged {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": name,
            "name": { "givenName": "v-init", "familyName": "Load" },
            "title": "v-init",
        });
        let (status, _) = scim.post("/Users", &body).await;
        assert!(status == 201 || status == 409, "retry answered {status}");
        conflicts += usize::from(status == 409);
    }
    eprintln!(
        "fault: replica killed | {} writes unanswered, retried by the client: {} already applied (409), {} applied now (201)",
        out.unacknowledged.len(),
        conflicts,
        out.unacknowledged.len() - conflicts
    );
    report(
        "one of two replicas killed (SIGKILL)",
        &out,
        &audit,
        Duration::ZERO,
    );
    // Only requests in flight at the kill may fail, and only writes (`502`): reads
    // are retried by the gateway, and new requests go to the live replica.
    let during = out.failures.get(&Phase::Fault).cloned().unwrap_or_default();
    assert!(during.len() <= 8, "at most one per client: {during:?}");
    for failure in &during {
        assert!(
            failure.starts_with("POST 502") || failure.starts_with("PATCH 502"),
            "{failure}"
        );
    }
    drop(second);
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}
