//! The stores as operators run them in production: Postgres over TLS (verified, and
//! enforced by the server), Redis behind Sentinel, followed through a failover, and
//! Redis Cluster, followed through a slot move and a master's death under load.

use closedloop_tests::harness::{
    ClusterSet, RegionStores, Scim, SentinelSet, TestWorker, eventually, fresh_database,
    operator_token, redis_prefix, temp_dir, worker_config,
};
use closedloop_tests::region::Region;
use deploy::stores::PostgresServer;

/// A CA and a server certificate it signed, as PEM.
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn pki(hosts: &[&str]) -> Pki {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Managed Postgres test CA");
    let ca =
        rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())
            .unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    Pki {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

fn stores_with_pg(pg_url: String) -> RegionStores {
    RegionStores {
        pg_url,
        redis_url: closedloop_tests::harness::redis_url(),
        redis_prefix: redis_prefix(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_is_verified_and_plain_text_is_refused() {
    let dir = temp_dir("pg-tls");
    let mut pg =
        tokio::task::block_in_place(|| PostgresServer::start_on_free_port(&dir.join("pg"), false))
            .unwrap();
    let server = pki(&["localhost"]);
    tokio::task::block_in_place(|| pg.require_tls(&server.cert_pem, &server.key_pem)).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &server.ca_pem).unwrap();
    let other_ca = dir.join("other-ca.pem");
    std::fs::write(&other_ca, pki(&["localhost"]).ca_pem).unwrap();
    let port = pg.port();
    // The name the certificate carries, at the address the server listens on.
    let url = |host: &str, query: &str| {
        format!("postgres://postgres@{host}:{port}/postgres?hostaddr=127.0.0.1&{query}")
    };

    let worker = TestWorker::start(worker_config(
        Region::Us,
        &stores_with_pg(url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
        )),
    ))
    .await
    .unwrap();
    let conn = worker.state.pg.get().await.unwrap();
    let ssl: bool = conn
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl, "the worker's connection is encrypted");
    drop(conn);
    // Serving over it: a workspace and a SCIM read.
    let scim = Scim::operator_workspace(&worker.state, &worker.url()).await;
    assert_eq!(scim.get("/Users").await.0, 200);
    worker.stop().await.unwrap();

    // Each way of connecting that must not work, and what the operator reads.
    let refused = [
        (
            url(
                "localhost",
                &format!("sslmode=verify-full&sslrootcert={}", other_ca.display()),
            ),
            "invalid peer certificate",
        ),
        (
            url(
                "127.0.0.1",
                &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
            ),
            "certificate not valid for name \"127.0.0.1\"",
        ),
        (
            url("localhost", "sslmode=require"),
            "invalid peer certificate: UnknownIssuer",
        ),
        (url("localhost", "sslmode=disable"), "no encryption"),
    ];
    for (url, expected) in refused {
        let err = region_worker::connect(worker_config(Region::Us, &stores_with_pg(url.clone())))
            .await
            .map(|_| ())
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(expected), "{url}: {msg}");
    }
    drop(pg);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sentinel_failover_moves_the_worker_to_the_new_master() {
    let dir = temp_dir("sentinel");
    let SentinelSet {
        sentinel,
        replica,
        mut master,
    } = SentinelSet::start(&dir).await;

    let stores = RegionStores {
        pg_url: fresh_database().await.unwrap().url,
        redis_url: format!("redis+sentinel://127.0.0.1:{}/closedloop-us", sentinel.port),
        redis_prefix: redis_prefix(),
    };
    let worker = TestWorker::start(worker_config(Region::Us, &stores))
        .await
        .unwrap();
    let scim = Scim::operator_workspace(&worker.state, &worker.url()).await;
    assert_eq!(scim.get("/Users").await.0, 200);
    assert!(master.info("keyspace").await.contains("db0:keys="));

    // The master dies; Sentinel promotes the replica; the worker follows by itself.
    master.child.kill().unwrap();
    master.child.wait().unwrap();
    let seen = std::sync::Mutex::new(Vec::new());
    eventually("the worker to serve from the new master", || async {
        let status = scim.get("/Users").await.0;
        seen.lock().unwrap().push(status);
        status == 200
    })
    .await;
    let seen = seen.into_inner().unwrap();
    assert!(
        seen.iter().all(|s| *s == 200 || *s == 503),
        "only 503 during the failover: {seen:?}"
    );
    let role: Vec<redis::Value> = redis::cmd("ROLE")
        .query_async(&mut replica.conn().await)
        .await
        .unwrap();
    assert_eq!(role[0], redis::Value::BulkString(b"master".to_vec()));
    // New writes land on the promoted server: a token issued now is found there.
    let fresh = operator_token(&worker.state, &scim.team_id).await;
    let hash = shared::token::TokenHash::of(&fresh).to_hex();
    let key = format!("{}tok:{hash}", stores.redis_prefix);
    let exists: bool = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut replica.conn().await)
        .await
        .unwrap();
    assert!(exists, "{key} on the new master");
    assert_eq!(scim.with_token(&fresh).get("/Users").await.0, 200);
    worker.stop().await.unwrap();
    drop((sentinel, replica, master));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether node `i` of the cluster holds `key` itself (a node asked for a key of a slot
/// it does not serve answers `MOVED`: not there).
async fn exists_on(cluster: &ClusterSet, i: usize, key: &str) -> bool {
    let n: Result<i64, _> = redis::cmd("EXISTS")
        .arg(key)
        .query_async(&mut cluster.nodes[i].conn().await)
        .await;
    n.is_ok_and(|n| n == 1)
}

/// Whether `token` is accepted on the workspace's SCIM API.
async fn status_with(scim: &Scim, token: &str) -> u16 {
    scim.with_token(token).get("/Users?count=1").await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_cluster_slot_moves_and_a_master_killed_under_load_lose_nothing_and_revive_nothing() {
    use crate::faults::{self, Phase, Run};
    use region_worker::store::redis::CLUSTER_PARTITIONS;
    use region_worker::store::{revocations, tokens as token_store};
    use shared::token::{TokenHash, TokenKind};
    use std::collections::BTreeSet;
    use std::time::{Duration, Instant};

    let dir = temp_dir("cluster");
    let mut cluster = ClusterSet::start(&dir).await;
    let stores = RegionStores {
        pg_url: fresh_database().await.unwrap().url,
        redis_url: cluster.url(),
        redis_prefix: redis_prefix(),
    };
    let worker = TestWorker::start(worker_config(Region::Us, &stores))
        .await
        .unwrap();
    let state = &worker.state;
    assert!(state.redis.is_cluster());
    assert_eq!(state.redis.partitions(), CLUSTER_PARTITIONS);
    let (scim, _) = faults::load_workspace(&worker).await;
    assert_eq!(scim.get("/Users").await.0, 200);
    let tok_key = |token: &str| {
        let hash = TokenHash::of(token);
        state.redis.partition_key(
            revocations::token_partition(&state.redis, &hash),
            &format!("tok:{}", hash.to_hex()),
        )
    };

    // Tokens land in many partitions, hence slots, spread over the masters; each entry
    // is where the cluster says its slot is.
    let mut tokens = Vec::new();
    for _ in 0..24 {
        tokens.push(operator_token(state, &scim.team_id).await);
    }
    let (mut slots, mut owners) = (BTreeSet::new(), BTreeSet::new());
    for token in &tokens {
        assert_eq!(status_with(&scim, token).await, 200);
        let key = tok_key(token);
        let slot = cluster.slot_of(&key).await;
        let owner = cluster.owner_of_slot(slot).await;
        assert!(
            exists_on(&cluster, owner, &key).await,
            "{key} on its master"
        );
        slots.insert(slot);
        owners.insert(owner);
    }
    assert!(
        slots.len() >= 6 && owners.len() >= 2,
        "tokens spread: {} slots on {} masters",
        slots.len(),
        owners.len()
    );
    // Each partition's watermark sits in its partition's slot, not in one global key.
    let mut watermark_slots = BTreeSet::new();
    for p in 0..CLUSTER_PARTITIONS {
        let key = revocations::partition_watermark_key(&state.redis, p);
        watermark_slots.insert(cluster.slot_of(&key).await);
    }
    assert_eq!(watermark_slots.len(), usize::from(CLUSTER_PARTITIONS));

    // A personal credential: its entry and its user's epoch are in different
    // partitions; the check reads both (the second time with the owner remembered),
    // and raising the epoch (a SCIM deactivation) refuses it at once.
    let (status, user) = scim
        .post(
            "/Users",
            &serde_json::json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "personal@acme.test",
                "active": true,
            }),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    let user_id = uuid::Uuid::parse_str(user["id"].as_str().unwrap()).unwrap();
    let team_id = shared::ids::TeamId::parse(&scim.team_id).unwrap();
    let epoch = token_store::user_epoch(&state.pg, &state.redis, team_id, user_id)
        .await
        .unwrap()
        .unwrap();
    let api = TokenHash::of(&format!("personal-{user_id}"));
    token_store::insert(
        &state.pg,
        &state.redis,
        &token_store::NewTokenRecord {
            hash: api,
            record: token_store::TokenRecord {
                team_id,
                kind: TokenKind::Api,
                scopes: Vec::new(),
                user_id: Some(user_id),
                user_epoch: epoch,
                expires_at: None,
            },
            name: None,
            created_by: "test",
        },
    )
    .await
    .unwrap();
    let personal = || token_store::check_personal(&state.pg, &state.redis, &api, TokenKind::Api);
    assert!(personal().await.unwrap().is_some(), "first check");
    assert!(personal().await.unwrap().is_some(), "owner remembered");
    let (status, _) = scim
        .patch(
            &format!("/Users/{user_id}"),
            &serde_json::json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{ "op": "replace", "path": "active", "value": false }],
            }),
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        personal().await.unwrap().is_none(),
        "refused once deactivated"
    );

    let run = Run::new();
    faults::revoke(state, &run, &tokens[0]).await;
    let mut outage = Duration::ZERO;
    let out = faults::under_load(6, &scim, &run, async {
        run.successes_after(200).await;

        // A slot holding a live token moves to another master mid-traffic: the worker
        // follows the redirections and still finds the entry there.
        let moved = tok_key(&tokens[1]);
        let slot = cluster.slot_of(&moved).await;
        let from = cluster.owner_of_slot(slot).await;
        let to = cluster
            .masters()
            .await
            .into_iter()
            .find(|&m| m != from)
            .expect("another master");
        cluster.move_slot(slot, to).await;
        assert_eq!(cluster.owner_of_slot(slot).await, to);
        assert!(exists_on(&cluster, to, &moved).await, "{moved} moved");
        assert_eq!(status_with(&scim, &tokens[1]).await, 200);
        faults::revoke(state, &run, &tokens[2]).await;
        run.successes_after(200).await;

        // The master holding the load's own token dies (SIGKILL); its replica is
        // promoted; requests in between may answer 503, never anything else.
        let victim = cluster.owner_of(&tok_key(&scim.token)).await;
        run.enter(Phase::Fault);
        let down = Instant::now();
        cluster.kill(victim);
        eventually("a replica to take over the dead master's slots", || {
            cluster.healthy()
        })
        .await;
        faults::until_ready(&worker).await;
        outage = down.elapsed();
        run.enter(Phase::After);
        faults::revoke(state, &run, &tokens[3]).await;
        run.successes_after(200).await;
    })
    .await;
    faults::store_fault_report(
        "Redis Cluster: a slot moved, then a master killed",
        &scim,
        &out,
        outage,
    )
    .await;

    // Every partition's watermark is back up with the worker's (a promoted replica
    // that lacked revocations was caught up), and every token is as it was left.
    eventually("every partition to hold every revocation", || async {
        revocations::watermarks(&state.redis)
            .await
            .is_ok_and(|w| w.iter().all(|&w| w >= state.redis.guard().known()))
    })
    .await;
    assert!(
        state.redis.guard().known() >= 3,
        "the revocations were journaled"
    );
    for (i, token) in tokens.iter().enumerate() {
        let expected = if i <= 3 && i != 1 { 401 } else { 200 };
        assert_eq!(status_with(&scim, token).await, expected, "token {i}");
    }
    assert!(
        personal().await.unwrap().is_none(),
        "the deactivated user's token stays refused"
    );

    // One shard goes back in time for one partition (its watermark and a tombstone
    // gone, as a promoted replica that missed them would be): the revoked token stays
    // refused, that partition alone is caught up, and the tombstone is back.
    let revoked_key = tok_key(&tokens[0]);
    let partition = revocations::token_partition(&state.redis, &TokenHash::of(&tokens[0]));
    let watermark = revocations::partition_watermark_key(&state.redis, partition);
    let _: () = redis::cmd("DEL")
        .arg(&revoked_key)
        .arg(&watermark)
        .query_async(&mut state.redis.conn())
        .await
        .unwrap();
    assert_eq!(status_with(&scim, &tokens[0]).await, 401);
    eventually("the partition that went back to be caught up", || async {
        let w = revocations::watermarks(&state.redis).await.unwrap();
        let tomb: Option<String> = redis::cmd("GET")
            .arg(&revoked_key)
            .query_async(&mut state.redis.conn())
            .await
            .unwrap();
        w[usize::from(partition)] >= state.redis.guard().known()
            && tomb.as_deref() == Some("revoked")
    })
    .await;
    assert_eq!(status_with(&scim, &tokens[0]).await, 401);
    worker.stop().await.unwrap();
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}
