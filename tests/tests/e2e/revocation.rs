//! Revocations that Redis cannot undo (issue 14 §5). Each test plays it against a real
//! worker and gateway whose US Redis is a private server the test snapshots, kills and
//! restarts on its data directory (loading the older snapshot), or fails over under
//! Sentinel to a replica that missed the revocation: the revoked credential is refused
//! on the very first request after. Every kind: API and MCP tokens, browser sessions,
//! operator-issued SCIM tokens, SCIM OAuth grant tokens; every way: Universal Logout,
//! DELETE, SCIM deactivation, grant Disconnect. Plus the journal's catch-up itself:
//! contiguous replay, and a flush when the journal no longer reaches back.

use std::path::PathBuf;
use std::time::Duration;

use closedloop_tests::harness::{
    RegionStores, Scim, SentinelSet, TestStack, client, eventually, fresh_database, operator_token,
    redis_prefix, temp_dir,
};
use closedloop_tests::okta_sim::OktaSim;
use closedloop_tests::okta_sim::logout::Subject;
use closedloop_tests::region::Region;
use deploy::stores::{RedisServer, free_port};
use region_worker::store::revocations;
use reqwest::Method;
use reqwest::header::COOKIE;
use serde_json::{Value, json};
use shared::token::TokenHash;

use closedloop_tests::scim_grant::scim_grant;
use closedloop_tests::session::get_page;
use closedloop_tests::tokens::{create_on_page, me, whoami};
use closedloop_tests::web::hidden;

const ADMIN: &str = "jane@acme.test";

/// A stack whose US Redis is a private server in `dir` (no automatic snapshots: the
/// test takes them with `SAVE`).
struct Fixture {
    stack: TestStack,
    redis: RedisServer,
    dir: PathBuf,
    team_id: String,
    admin_id: String,
}

async fn fixture() -> Fixture {
    let dir = temp_dir("revocation");
    let port = free_port().unwrap();
    let redis = tokio::task::block_in_place(|| RedisServer::start(&dir.join("redis"), port, false))
        .unwrap();
    let us = RegionStores {
        pg_url: fresh_database().await.unwrap().url,
        redis_url: redis.url(),
        redis_prefix: redis_prefix(),
    };
    let eu = RegionStores::fresh().await.unwrap();
    let stack = TestStack::start_on_stores(us, eu, 1, false, |_| {})
        .await
        .unwrap();
    let ws = stack.workspace(Region::Us, "Acme", ADMIN).await;
    Fixture {
        stack,
        redis,
        dir,
        team_id: ws.team_id,
        admin_id: ws.admin_user_id,
    }
}

impl Fixture {
    async fn redis_conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.redis.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// `SAVE`: the snapshot the restart will load.
    async fn snapshot(&self) {
        let ok: String = redis::cmd("SAVE")
            .query_async(&mut self.redis_conn().await)
            .await
            .unwrap();
        assert_eq!(ok, "OK");
    }

    /// What Redis holds for `key` right now.
    async fn get(&self, key: &str) -> Option<String> {
        redis::cmd("GET")
            .arg(format!("{}{key}", self.stack.us_stores.redis_prefix))
            .query_async(&mut self.redis_conn().await)
            .await
            .unwrap()
    }

    /// Kills Redis (as a crash would) and starts it again on its data directory: it
    /// comes back with the last snapshot. Returns once the worker is ready again, before
    /// any credential is presented.
    async fn restart_from_snapshot(&mut self) {
        tokio::task::block_in_place(|| {
            self.redis.stop().unwrap();
            self.redis.resume().unwrap();
        });
        let admin = format!("http://{}/readyz", self.stack.worker(Region::Us).admin_addr);
        let http = client();
        eventually("the worker to reach the restarted Redis", || async {
            http.get(&admin)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
    }

    /// A session for the workspace's admin, as a sign-in ends.
    async fn admin_session(&self) -> String {
        self.stack
            .session_cookie(Region::Us, &self.team_id, &self.admin_id)
            .await
    }

    fn scim(&self, token: &str) -> Scim {
        Scim {
            http: self.stack.http.clone(),
            gateway: self.stack.gateway.url(),
            host: Region::Us.api().to_owned(),
            team_id: self.team_id.clone(),
            token: token.to_owned(),
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.redis.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The status of the `/tokens` page with `cookie`: 200 signed in, 303 to sign-in.
async fn session_status(stack: &TestStack, cookie: &str) -> u16 {
    get_page(stack, Region::Us, cookie, "/tokens").await.status
}

fn hash_of(secret: &str) -> String {
    TokenHash::of(secret).to_hex()
}

/// `GET /api/tokens` with an API token: the owner's tokens (name → id).
async fn token_ids(stack: &TestStack, api_token: &str) -> Vec<(String, String)> {
    let listed: Value = stack
        .get(Region::Us.api(), "/api/tokens")
        .bearer_auth(api_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    listed["tokens"]
        .as_array()
        .unwrap_or_else(|| panic!("a token list: {listed}"))
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                t["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn universal_logout_stays_when_redis_restarts_from_an_older_snapshot() {
    let mut f = fixture().await;
    let sim = OktaSim::start().await.unwrap();
    let app = sim.app();
    f.stack
        .configure_okta(
            Region::Us,
            &f.team_id,
            sim.base_url(),
            app.client_id(),
            &app.client_secret(),
        )
        .await;
    let session = f.admin_session().await;
    let api = create_on_page(&f.stack, Region::Us, &session, "CI", "api").await;
    let mcp = create_on_page(&f.stack, Region::Us, &session, "Claude", "mcp").await;
    assert_eq!(me(&f.stack, Region::Us, &api).await, 200);
    assert_eq!(whoami(&f.stack, Region::Us, &mcp).await, 200);
    assert_eq!(session_status(&f.stack, &session).await, 200);

    // Redis snapshots; then Okta logs the user out, and everything of theirs stops.
    f.snapshot().await;
    let epoch_key = format!("uep:{}:{}", f.team_id, f.admin_id);
    let before = f.get(&epoch_key).await;
    let sent = app
        .universal_logout(
            &f.stack.universal_logout_endpoint(Region::Us),
            &Subject::Email(ADMIN.into()),
        )
        .await
        .unwrap();
    assert_eq!(sent.status, 204, "{}", sent.body);
    assert_eq!(me(&f.stack, Region::Us, &api).await, 401);
    assert_eq!(whoami(&f.stack, Region::Us, &mcp).await, 401);
    assert_eq!(session_status(&f.stack, &session).await, 303);
    assert_ne!(
        f.get(&epoch_key).await,
        before,
        "the logout raised the epoch"
    );

    // Redis crashes and comes back with the snapshot from before the logout: the very
    // first request of each credential is refused.
    f.restart_from_snapshot().await;
    assert_eq!(
        me(&f.stack, Region::Us, &api).await,
        401,
        "API token after restart"
    );
    assert_eq!(
        whoami(&f.stack, Region::Us, &mcp).await,
        401,
        "MCP token after restart"
    );
    assert_eq!(
        session_status(&f.stack, &session).await,
        303,
        "session after restart"
    );
    // And Redis was repaired: the epoch it lost is back.
    eventually("Redis to hold the raised epoch again", || async {
        f.get(&epoch_key).await != before
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_api_and_mcp_tokens_stay_deleted_when_redis_restarts_from_an_older_snapshot() {
    let mut f = fixture().await;
    let session = f.admin_session().await;
    let keep = create_on_page(&f.stack, Region::Us, &session, "keep", "api").await;
    let api = create_on_page(&f.stack, Region::Us, &session, "CI", "api").await;
    let mcp = create_on_page(&f.stack, Region::Us, &session, "Claude", "mcp").await;
    assert_eq!(me(&f.stack, Region::Us, &api).await, 200);
    assert_eq!(whoami(&f.stack, Region::Us, &mcp).await, 200);
    let ids = token_ids(&f.stack, &keep).await;
    let id = |name: &str| ids.iter().find(|(n, _)| n == name).unwrap().1.clone();

    f.snapshot().await;
    for name in ["CI", "Claude"] {
        let r = f
            .stack
            .request(
                Method::DELETE,
                Region::Us.api(),
                &format!("/api/tokens/{}", id(name)),
            )
            .bearer_auth(&keep)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{name} deleted");
    }
    assert_eq!(me(&f.stack, Region::Us, &api).await, 401);
    assert_eq!(whoami(&f.stack, Region::Us, &mcp).await, 401);
    assert_eq!(
        f.get(&format!("tok:{}", hash_of(&api))).await.as_deref(),
        Some("revoked")
    );

    f.restart_from_snapshot().await;
    assert_eq!(
        me(&f.stack, Region::Us, &api).await,
        401,
        "API token after restart"
    );
    assert_eq!(
        whoami(&f.stack, Region::Us, &mcp).await,
        401,
        "MCP token after restart"
    );
    // Only what was revoked: the other token and the session still work.
    assert_eq!(me(&f.stack, Region::Us, &keep).await, 200);
    assert_eq!(session_status(&f.stack, &session).await, 200);
    eventually("the tombstone to be replayed", || async {
        f.get(&format!("tok:{}", hash_of(&api))).await.as_deref() == Some("revoked")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_deactivation_stays_when_redis_restarts_from_an_older_snapshot() {
    let mut f = fixture().await;
    let scim = f.scim(&operator_token(&f.stack.worker(Region::Us).state, &f.team_id).await);
    let (status, user) = scim
        .post(
            "/Users",
            &json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "bob@acme.test", "externalId": "00ubob",
                "name": { "givenName": "Bob", "familyName": "Doe" },
                "emails": [{ "value": "bob@acme.test", "primary": true, "type": "work" }],
                "active": true
            }),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    let bob = user["id"].as_str().unwrap().to_owned();
    let session = f.stack.session_cookie(Region::Us, &f.team_id, &bob).await;
    let api = create_on_page(&f.stack, Region::Us, &session, "bob's", "api").await;
    assert_eq!(me(&f.stack, Region::Us, &api).await, 200);

    f.snapshot().await;
    let (status, body) = scim
        .patch(
            &format!("/Users/{bob}"),
            &json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{ "op": "replace", "value": { "active": false } }]
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(me(&f.stack, Region::Us, &api).await, 401);
    assert_eq!(session_status(&f.stack, &session).await, 303);

    f.restart_from_snapshot().await;
    assert_eq!(
        me(&f.stack, Region::Us, &api).await,
        401,
        "API token after restart"
    );
    assert_eq!(
        session_status(&f.stack, &session).await,
        303,
        "session after restart"
    );
    assert_eq!(
        scim.get("/Users").await.0,
        200,
        "the SCIM token still works"
    );
}

/// Presses Disconnect on the provisioning page for the workspace's one grant.
async fn disconnect(stack: &TestStack, cookie: &str) {
    let page = get_page(stack, Region::Us, cookie, "/integrations/okta/provisioning").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let r = stack
        .request(
            Method::POST,
            Region::Us.app(),
            "/integrations/okta/provisioning/disconnect",
        )
        .header(COOKIE, cookie)
        .form(&[
            ("grant_id", hidden(&page.body, "grant_id").unwrap()),
            ("csrf", hidden(&page.body, "csrf").unwrap()),
            ("return_to", hidden(&page.body, "return_to").unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_scim_tokens_and_grants_stay_revoked_when_redis_restarts_from_an_older_snapshot() {
    let mut f = fixture().await;
    let state = f.stack.worker(Region::Us).state.clone();
    let operator = operator_token(&state, &f.team_id).await;
    let other = operator_token(&state, &f.team_id).await;
    let session = f.admin_session().await;
    let (access, _refresh) = scim_grant(&f.stack, Region::Us, &session).await;
    for t in [&operator, &other, &access] {
        assert_eq!(f.scim(t).get("/Users").await.0, 200);
    }

    f.snapshot().await;
    // The operator's token, as an operator revokes it (no HTTP endpoint revokes an
    // operator-issued token: the store call the worker uses), and the grant through
    // the admin's Disconnect.
    assert!(
        region_worker::store::tokens::revoke(&state.pg, &state.redis, &TokenHash::of(&operator))
            .await
            .unwrap()
    );
    disconnect(&f.stack, &session).await;
    assert_eq!(f.scim(&operator).get("/Users").await.0, 401);
    assert_eq!(f.scim(&access).get("/Users").await.0, 401);

    f.restart_from_snapshot().await;
    assert_eq!(
        f.scim(&operator).get("/Users").await.0,
        401,
        "operator token after restart"
    );
    assert_eq!(
        f.scim(&access).get("/Users").await.0,
        401,
        "grant token after restart"
    );
    assert_eq!(
        f.scim(&other).get("/Users").await.0,
        200,
        "only what was revoked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_whose_publication_never_reached_redis_is_still_enforced() {
    // What a revocation leaves when Redis failed between its commit and its
    // publication (SCIM and Disconnect publish after the commit): Postgres has it,
    // Redis does not. An HTTP request cannot make Redis fail at that instant, so the
    // commit is made here, as the store would have made it.
    let f = fixture().await;
    let state = f.stack.worker(Region::Us).state.clone();
    let session = f.admin_session().await;
    let api = create_on_page(&f.stack, Region::Us, &session, "CI", "api").await;
    assert_eq!(me(&f.stack, Region::Us, &api).await, 200);
    let pg = state.pg.get().await.unwrap();
    let committed: i64 = pg
        .query_one(
            "WITH raised AS (UPDATE users SET token_epoch = token_epoch + 1, active = false
                              WHERE id = $1 RETURNING 1)
             SELECT count(*) FROM raised",
            &[&uuid::Uuid::parse_str(&f.admin_id).unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(committed, 1);
    let seq: i64 = pg
        .query_one("SELECT seq FROM revocation_counter", &[])
        .await
        .unwrap()
        .get(0);
    // The worker hears of the commit (NOTIFY); nothing was published to Redis.
    eventually("the worker to hear of the revocation", || async {
        state.redis.guard().known() >= seq
    })
    .await;
    assert_eq!(me(&f.stack, Region::Us, &api).await, 401, "API token");
    assert_eq!(session_status(&f.stack, &session).await, 303, "session");
}

/// Sends `SIGSTOP` or `SIGCONT` to a process.
fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_to_a_replica_that_missed_the_revocation_does_not_bring_it_back() {
    let dir = temp_dir("rev-sentinel");
    let SentinelSet {
        sentinel,
        replica,
        mut master,
    } = SentinelSet::start(&dir).await;

    let prefix = redis_prefix();
    let us = RegionStores {
        pg_url: fresh_database().await.unwrap().url,
        redis_url: format!("redis+sentinel://127.0.0.1:{}/closedloop-us", sentinel.port),
        redis_prefix: prefix.clone(),
    };
    let eu = RegionStores::fresh().await.unwrap();
    let stack = TestStack::start_on_stores(us, eu, 1, false, |_| {})
        .await
        .unwrap();
    let ws = stack.workspace(Region::Us, "Acme", ADMIN).await;
    let session = stack
        .session_cookie(Region::Us, &ws.team_id, &ws.admin_user_id)
        .await;
    let keep = create_on_page(&stack, Region::Us, &session, "keep", "api").await;
    let api = create_on_page(&stack, Region::Us, &session, "CI", "api").await;
    assert_eq!(me(&stack, Region::Us, &api).await, 200);
    let key = format!("{prefix}tok:{}", hash_of(&api));
    eventually("the replica to hold the token", || async {
        let v: Option<String> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut replica.conn().await)
            .await
            .unwrap();
        v.is_some_and(|v| v.starts_with('{'))
    })
    .await;

    // The replica stops taking in the replication stream (paused), and the stream is
    // filled with more than the kernel buffers between them hold, so that what comes
    // next stays in the master's memory only.
    signal(replica.child.id(), "-STOP");
    let mut conn = master.conn().await;
    let filler = "x".repeat(1 << 20);
    for i in 0..48 {
        let _: () = redis::cmd("SET")
            .arg(format!("{prefix}filler:{i}"))
            .arg(&filler)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    // The revocation, while the replica is paused.
    let ids = token_ids(&stack, &keep).await;
    let id = &ids.iter().find(|(n, _)| n == "CI").unwrap().1;
    let r = stack
        .request(
            Method::DELETE,
            Region::Us.api(),
            &format!("/api/tokens/{id}"),
        )
        .bearer_auth(&keep)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(me(&stack, Region::Us, &api).await, 401);

    // The master dies before the replica read it; the replica resumes and is promoted.
    master.child.kill().unwrap();
    master.child.wait().unwrap();
    signal(replica.child.id(), "-CONT");
    eventually("the replica to be promoted", || async {
        let role: Vec<redis::Value> = redis::cmd("ROLE")
            .query_async(&mut replica.conn().await)
            .await
            .unwrap_or_default();
        role.first() == Some(&redis::Value::BulkString(b"master".to_vec()))
    })
    .await;
    let stale: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut replica.conn().await)
        .await
        .unwrap();
    assert!(
        stale.as_deref().is_some_and(|v| v.starts_with('{')),
        "the promoted replica never got the tombstone: {stale:?}"
    );

    // Through the failover, the revoked token is never accepted: 503 while the worker
    // has no master, then 401.
    let seen = std::sync::Mutex::new(Vec::new());
    eventually("the worker to answer from the new master", || async {
        let status = me(&stack, Region::Us, &api).await;
        seen.lock().unwrap().push(status);
        status != 503
    })
    .await;
    let seen = seen.into_inner().unwrap();
    assert!(
        seen.iter().all(|s| *s == 503 || *s == 401),
        "the revoked token was never accepted: {seen:?}"
    );
    assert_eq!(seen.last(), Some(&401));
    assert_eq!(
        me(&stack, Region::Us, &keep).await,
        200,
        "the other token works"
    );
    drop(stack);
    drop((sentinel, replica, master));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A worker's state on its own database and key space, for driving the catch-up.
async fn journal_worker() -> closedloop_tests::harness::TestWorker {
    let stores = RegionStores::fresh().await.unwrap();
    closedloop_tests::harness::TestWorker::start(closedloop_tests::harness::worker_config(
        Region::Us,
        &stores,
    ))
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_replays_the_journal_contiguously_and_flushes_what_it_cannot_replay() {
    let worker = journal_worker().await;
    let state = &worker.state;
    let scim = Scim::operator_workspace(state, &worker.url()).await;
    let team = shared::ids::TeamId::parse(&scim.team_id).unwrap();
    let a = operator_token(state, &scim.team_id).await;
    let b = operator_token(state, &scim.team_id).await;
    let c = operator_token(state, &scim.team_id).await;
    let mut conn = state.redis.conn();
    let key = revocations::watermark_key(&state.redis);
    let get = |name: String| {
        let mut conn = state.redis.conn();
        async move {
            let v: Option<String> = redis::cmd("GET")
                .arg(name)
                .query_async(&mut conn)
                .await
                .unwrap();
            v
        }
    };
    let tok = |t: &str| state.redis.key(&format!("tok:{}", hash_of(t)));
    let pg = state.pg.get().await.unwrap();
    let counter = || async {
        let v: i64 = pg
            .query_one("SELECT seq FROM revocation_counter", &[])
            .await
            .unwrap()
            .get(0);
        v
    };
    let start = counter().await;

    // Two revocations committed in Postgres only (as if their publication was lost):
    // the journal numbers them in order, without gaps.
    for t in [&a, &b] {
        pg.execute(
            "UPDATE tokens SET revoked_at = now() WHERE hash = $1",
            &[&TokenHash::of(t).0.as_slice()],
        )
        .await
        .unwrap();
    }
    let seqs: Vec<i64> = pg
        .query(
            "SELECT seq FROM revocation_journal WHERE seq > $1 ORDER BY seq",
            &[&start],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(seqs, [start + 1, start + 2]);
    assert_eq!(counter().await, start + 2);

    // A Redis whose watermark is behind is caught up: both tombstones, watermark raised.
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(start)
        .query_async(&mut conn)
        .await
        .unwrap();
    revocations::load_watermark(&state.pg, &state.redis)
        .await
        .unwrap();
    revocations::catch_up(&state.pg, &state.redis)
        .await
        .unwrap();
    assert_eq!(get(tok(&a)).await.as_deref(), Some("revoked"));
    assert_eq!(get(tok(&b)).await.as_deref(), Some("revoked"));
    assert_eq!(get(key.clone()).await, Some((start + 2).to_string()));

    // A user's epoch raised and the user deleted: both journaled, replayed as raises.
    let user = scim
        .post(
            "/Users",
            &json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "eve@acme.test", "active": true
            }),
        )
        .await
        .1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let user_id = uuid::Uuid::parse_str(&user).unwrap();
    let before = counter().await;
    pg.execute(
        "UPDATE users SET token_epoch = token_epoch + 1 WHERE id = $1",
        &[&user_id],
    )
    .await
    .unwrap();
    assert_eq!(counter().await, before + 1);
    revocations::load_watermark(&state.pg, &state.redis)
        .await
        .unwrap();
    revocations::catch_up(&state.pg, &state.redis)
        .await
        .unwrap();
    let epoch_key = state.redis.key(&format!("uep:{team}:{user_id}"));
    let epoch: i64 = pg
        .query_one("SELECT token_epoch FROM users WHERE id = $1", &[&user_id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(get(epoch_key.clone()).await, Some(epoch.to_string()));

    // A transaction that rolls back takes no number.
    let mut raw = closedloop_tests::harness::pg_connect(state.config.database_url.expose())
        .await
        .unwrap();
    let tx = raw.transaction().await.unwrap();
    tx.execute(
        "UPDATE tokens SET revoked_at = now() WHERE hash = $1",
        &[&TokenHash::of(&c).0.as_slice()],
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(counter().await, before + 1);

    // The journal pruned past Redis's watermark: the entry Redis lacks cannot be
    // replayed, so the credential copies go (and the token still answers right, from
    // Postgres).
    let live = tok(&c);
    assert_eq!(f_status(&scim, &c).await, 200);
    assert!(get(live.clone()).await.is_some(), "c is hot");
    pg.execute(
        "DELETE FROM revocation_journal WHERE seq <= $1",
        &[&(start + 1)],
    )
    .await
    .unwrap();
    // Redis goes back to before both token revocations (the next request or the
    // worker's poll may start the same catch-up: it ends the same way).
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(start)
        .query_async(&mut conn)
        .await
        .unwrap();
    revocations::catch_up(&state.pg, &state.redis)
        .await
        .unwrap();
    assert_eq!(get(live.clone()).await, None, "credential copies flushed");
    assert_eq!(get(tok(&a)).await, None);
    assert_eq!(get(key.clone()).await, Some((before + 1).to_string()));
    assert!(
        get(state.redis.key("region_stamp")).await.is_some(),
        "only credential copies go"
    );
    assert_eq!(f_status(&scim, &a).await, 401);
    assert_eq!(f_status(&scim, &c).await, 200);

    // Contiguity, in the script itself: entries after `from` are applied and the
    // watermark raised only when Redis's watermark is at least `from`; a Redis that
    // went back before `from` meanwhile keeps its watermark and takes nothing.
    let w = before + 1;
    let entry = |t: &str| revocations::Entry::Token(TokenHash::of(t));
    let d = operator_token(state, &scim.team_id).await;
    let e = operator_token(state, &scim.team_id).await;
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(w - 1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let after = revocations::apply(&state.redis, w, w + 5, &[entry(&d)])
        .await
        .unwrap();
    assert_eq!(after, w - 1, "a gap: nothing raised");
    assert_eq!(get(key.clone()).await, Some((w - 1).to_string()));
    assert_ne!(
        get(tok(&d)).await.as_deref(),
        Some("revoked"),
        "nor applied"
    );
    let after = revocations::apply(&state.redis, w - 1, w + 5, &[entry(&d)])
        .await
        .unwrap();
    assert_eq!(after, w + 5, "contiguous: raised");
    assert_eq!(get(tok(&d)).await.as_deref(), Some("revoked"));
    // Redis already further on: the entries are applied again (idempotent), the
    // watermark stays where it is.
    let after = revocations::apply(&state.redis, w, w + 2, &[entry(&e)])
        .await
        .unwrap();
    assert_eq!(after, w + 5);
    assert_eq!(get(tok(&e)).await.as_deref(), Some("revoked"));
    // An epoch only goes up.
    let raise = |epoch| revocations::Entry::Epoch {
        team_id: team,
        user_id,
        epoch,
    };
    revocations::apply(&state.redis, w + 5, w + 6, &[raise(epoch), raise(0)])
        .await
        .unwrap();
    assert_eq!(get(epoch_key.clone()).await, Some(epoch.to_string()));
    drop(pg);
    worker.stop().await.unwrap();
}

async fn f_status(scim: &Scim, token: &str) -> u16 {
    scim.with_token(token).get("/Users").await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_bearer_is_remembered_briefly_and_a_minted_token_is_never_hidden() {
    let worker = journal_worker().await;
    let state = &worker.state;
    let scim = Scim::operator_workspace(state, &worker.url()).await;
    let fake = format!("clk_us_scim_{}", "A".repeat(43));
    assert_eq!(f_status(&scim, &fake).await, 401);
    assert!(
        state.redis.guard().known_unknown(&TokenHash::of(&fake)),
        "remembered as unknown"
    );
    // Repeated, it is refused without asking Postgres (the cache answers).
    for _ in 0..20 {
        assert_eq!(f_status(&scim, &fake).await, 401);
    }
    // A token minted here right after a miss is usable at once.
    let fresh = operator_token(state, &scim.team_id).await;
    assert!(!state.redis.guard().known_unknown(&TokenHash::of(&fresh)));
    assert_eq!(f_status(&scim, &fresh).await, 200);
    // The entry lives seconds, by the worker's clock.
    assert!(
        state
            .config
            .clock
            .advance(revocations::NEGATIVE_TTL + Duration::from_secs(1))
    );
    assert!(!state.redis.guard().known_unknown(&TokenHash::of(&fake)));
    worker.stop().await.unwrap();
}
