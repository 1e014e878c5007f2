//! Redis, the token store: a multiplexed, self-reconnecting connection and the key
//! space of this worker (a prefix, empty in production, unique per test).
//!
//! Two ways to find the server:
//! - `redis://[[user]:password@]host:port[/db]`: one server;
//! - `redis+sentinel://[[user]:password@]host:port[,host:port…]/service[/db]`: Redis
//!   Sentinel. The worker asks the sentinels for the master of `service` at start, and
//!   asks again every [`SENTINEL_POLL`]: after a failover it connects to the new master
//!   (requests in between answer `503`, as with any Redis outage). The credentials are
//!   the master's; sentinels are reached without them;
//! - `redis+cluster://[[user]:password@]host:port[,host:port…][/]`: Redis Cluster. The
//!   nodes listed are where the worker learns the cluster's layout; it then follows
//!   `MOVED`/`ASK` redirections, slot moves and failovers by itself (the crate's
//!   cluster connection refreshes its slot map and retries). Commands to slots whose
//!   master is down answer `503` until a replica is promoted.
//!
//! # Key layout on a cluster
//!
//! A cluster runs one command, transaction or script only on keys of one hash slot.
//! Keys are named so that whatever one command touches shares a hash tag:
//! - the credential copies and the revocation watermark that vouches for them are
//!   split into [`CLUSTER_PARTITIONS`] partitions, each with its own hash tag
//!   ([`Redis::partition_key`]) and its own watermark (see [`super::revocations`]): a
//!   shard that fails over and loses writes rolls back its partitions' copies *and*
//!   their watermarks together, which is what lets the worker notice it per shard;
//! - workspace-scoped keys read or written together (paging positions, the SCIM
//!   refusal throttle) carry the workspace as their tag ([`Redis::tagged`]);
//! - every other key is touched alone.
//!
//! On a single server or under Sentinel there is one partition and no tag: key names
//! are what they always were, so a worker can be upgraded in place.

use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{AsyncCommands as _, Client, IntoConnectionInfo as _};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::ids::RegionId;

use super::StoreError;
use super::pg::StampMismatch;
use super::revocations::CacheGuard;

/// How often the worker asks the sentinels which server is the master.
pub const SENTINEL_POLL: Duration = Duration::from_millis(500);

/// The URL scheme for Redis Sentinel.
const SENTINEL_SCHEME: &str = "redis+sentinel://";

/// The URL scheme for Redis Cluster.
const CLUSTER_SCHEME: &str = "redis+cluster://";

/// How many partitions the credential copies are split into on a cluster: each has its
/// own hash tag, so its keys (and its watermark) live in one slot, and the 16 slots are
/// spread evenly over the slot space (one per 1,024 slots), hence over the masters of
/// any layout that gives each master a contiguous range. A fixed number: changing it
/// renames every credential copy (harmless, they are re-read from Postgres, but a cold
/// start).
pub const CLUSTER_PARTITIONS: u16 = 16;

/// How many slots a Redis Cluster has.
const CLUSTER_SLOTS: u16 = 16384;

/// A handle on the region's Redis; cheap to clone.
#[derive(Clone)]
pub struct Redis {
    /// Reconnects by itself after Redis restarts, so the worker recovers unaided.
    conn: Connection,
    /// Prepended to every key.
    prefix: Arc<str>,
    /// The hash tag of each credential partition, `{…}`, on a cluster; empty (one
    /// partition, no tag) otherwise.
    tags: Arc<[String]>,
    /// What this worker knows that Redis cannot be trusted to (the revocation
    /// watermark, unknown token hashes): shared by every clone of the handle, so every
    /// check consults it without new parameters.
    guard: Arc<CacheGuard>,
}

/// One server's connection as it is; under Sentinel, the current master's, replaced
/// after a failover (the lock is taken only there, never for a single server).
#[derive(Clone)]
enum Connection {
    Direct(ConnectionManager),
    Sentinel(Arc<RwLock<Master>>),
    /// Follows slot moves and failovers by itself.
    Cluster(ClusterConnection),
}

/// A Redis connection whose commands are spanned (the command name only, never a key
/// or a value) while traces are exported; otherwise a plain pass-through. Every Redis
/// call of the worker goes through [`Redis::conn`], so this is the one place.
#[derive(Clone)]
pub struct Traced(Inner);

/// The connection under [`Traced`]: one server's, or the cluster's.
#[derive(Clone)]
enum Inner {
    Server(ConnectionManager),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Inner {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Inner::Server(c) => c.req_packed_command(cmd),
            Inner::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Inner::Server(c) => c.req_packed_commands(pipeline, offset, count),
            Inner::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Inner::Server(c) => c.get_db(),
            Inner::Cluster(c) => c.get_db(),
        }
    }
}

impl std::fmt::Debug for Traced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Traced").finish_non_exhaustive()
    }
}

impl Traced {
    /// A span for a command (or a pipeline, named by its first command), or none.
    fn span(name: &[u8], commands: usize) -> Option<tracing::Span> {
        if !shared::telemetry::in_trace() {
            return None;
        }
        // Command names are ASCII words; anything else is not named.
        let name = std::str::from_utf8(name)
            .ok()
            .filter(|n| n.len() <= 32 && n.bytes().all(|b| b.is_ascii_alphanumeric()))
            .map_or_else(|| "OTHER".to_owned(), str::to_ascii_uppercase);
        Some(tracing::info_span!(
            target: shared::telemetry::TRACE_TARGET,
            "redis",
            otel.name = format!("redis {name}"),
            otel.kind = "client",
            db.system.name = "redis",
            db.operation.name = name.as_str(),
            db.operation.batch.size = commands,
            closedloop.region = shared::telemetry::region(),
        ))
    }

    fn first_name(cmd: &redis::Cmd) -> Vec<u8> {
        match cmd.args_iter().next() {
            Some(redis::Arg::Simple(name)) => name.to_vec(),
            _ => Vec::new(),
        }
    }
}

impl redis::aio::ConnectionLike for Traced {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        use tracing::Instrument as _;
        if !shared::telemetry::tracing_on() {
            return self.0.req_packed_command(cmd);
        }
        match Self::span(&Self::first_name(cmd), 1) {
            None => self.0.req_packed_command(cmd),
            Some(span) => Box::pin(
                async move {
                    let result = self.0.req_packed_command(cmd).await;
                    if result.is_err() {
                        shared::telemetry::set_error(&tracing::Span::current(), "redis");
                    }
                    result
                }
                .instrument(span),
            ),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        use tracing::Instrument as _;
        if !shared::telemetry::tracing_on() {
            return self.0.req_packed_commands(pipeline, offset, count);
        }
        let first = pipeline
            .cmd_iter()
            .next()
            .map(Self::first_name)
            .unwrap_or_default();
        match Self::span(&first, pipeline.len()) {
            None => self.0.req_packed_commands(pipeline, offset, count),
            Some(span) => Box::pin(
                async move {
                    let result = self.0.req_packed_commands(pipeline, offset, count).await;
                    if result.is_err() {
                        shared::telemetry::set_error(&tracing::Span::current(), "redis");
                    }
                    result
                }
                .instrument(span),
            ),
        }
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}

/// The connection in use and the server it goes to.
struct Master {
    conn: ConnectionManager,
    addr: String,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("prefix", &self.prefix)
            .field(
                "sentinel_master",
                &match &self.conn {
                    Connection::Direct(_) | Connection::Cluster(_) => None,
                    Connection::Sentinel(m) => {
                        Some(m.read().unwrap_or_else(|e| e.into_inner()).addr.clone())
                    }
                },
            )
            .field("cluster", &matches!(self.conn, Connection::Cluster(_)))
            .finish()
    }
}

/// What a `redis+sentinel://` URL names.
#[derive(Debug, PartialEq, Eq)]
pub struct SentinelUrl {
    /// `redis://host:port` of each sentinel.
    pub sentinels: Vec<String>,
    /// The monitored master's name.
    pub service: String,
    /// `redis://[user:password@]x/db`: the master's credentials and database.
    pub node: String,
}

/// Reads a `redis+sentinel://` URL; `None` for any other scheme.
pub fn parse_sentinel_url(url: &str) -> Option<Result<SentinelUrl, String>> {
    let rest = url.strip_prefix(SENTINEL_SCHEME)?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let mut parts = path.split('/');
    let service = parts.next().unwrap_or_default();
    let db = parts.next().filter(|d| !d.is_empty()).unwrap_or("0");
    if service.is_empty() || parts.next().is_some() {
        return Some(Err(
            "a Sentinel URL names the monitored master: redis+sentinel://host:port/service[/db]"
                .into(),
        ));
    }
    if db.parse::<u16>().is_err() {
        return Some(Err(format!("invalid database number {db:?}")));
    }
    let mut sentinels = Vec::new();
    for host in hosts.split(',') {
        if host.is_empty() {
            return Some(Err("a Sentinel URL lists at least one sentinel".into()));
        }
        let with_port = if host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            host.to_owned()
        } else {
            format!("{host}:26379")
        };
        sentinels.push(format!("redis://{with_port}"));
    }
    let node = match userinfo {
        Some(u) => format!("redis://{u}@sentinel-master/{db}"),
        None => format!("redis://sentinel-master/{db}"),
    };
    Some(Ok(SentinelUrl {
        sentinels,
        service: service.to_owned(),
        node,
    }))
}

/// Reads a `redis+cluster://` URL into the `redis://[user:password@]host:port` of each
/// node it lists; `None` for any other scheme. A cluster has one database, so the URL
/// names none.
pub fn parse_cluster_url(url: &str) -> Option<Result<Vec<String>, String>> {
    let rest = url.strip_prefix(CLUSTER_SCHEME)?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if !path.is_empty() {
        return Some(Err(format!(
            "a Redis Cluster URL names no database or path (a cluster has only database 0): \
             redis+cluster://host:port[,host:port…], not …/{path}"
        )));
    }
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let mut nodes = Vec::new();
    for host in hosts.split(',') {
        if host.is_empty() {
            return Some(Err(
                "a Redis Cluster URL lists at least one node: redis+cluster://host:port[,host:port…]"
                    .into(),
            ));
        }
        let with_port = match host.rsplit_once(':') {
            // An IPv6 address without a port ends in `]`.
            Some((_, p)) if !p.ends_with(']') => {
                if p.parse::<u16>().is_err() {
                    return Some(Err(format!("invalid port {p:?} in a Redis Cluster URL")));
                }
                host.to_owned()
            }
            _ => format!("{host}:6379"),
        };
        nodes.push(match userinfo {
            Some(u) => format!("redis://{u}@{with_port}"),
            None => format!("redis://{with_port}"),
        });
    }
    Some(Ok(nodes))
}

/// The hash slot of `key`, as Redis Cluster computes it (CRC16/XMODEM of the key or of
/// its hash tag, modulo 16384).
fn slot_of(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter()
                .position(|&b| b == b'}')
                .map(|close| &rest[..close])
        })
        .filter(|tag| !tag.is_empty())
        .unwrap_or(key);
    let mut crc: u16 = 0;
    for &byte in tagged {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % CLUSTER_SLOTS
}

/// The hash tag of each credential partition: `{cN.M}`, with the smallest `M` that puts
/// partition `N` in the `N`-th sixteenth of the slot space, so the partitions spread
/// evenly over the masters however many there are.
fn partition_tags() -> Vec<String> {
    let width = CLUSTER_SLOTS / CLUSTER_PARTITIONS;
    (0..CLUSTER_PARTITIONS)
        .map(|n| {
            (0u32..)
                .map(|m| format!("{{c{n}.{m}}}"))
                .find(|tag| slot_of(tag.as_bytes()) / width == n)
                .unwrap_or_else(|| format!("{{c{n}}}"))
        })
        .collect()
}

/// A stable partition number in `0..partitions` for an identifier (a token hash, a
/// user or grant id): FNV-1a, so every worker and every version agrees.
pub fn partition_of(id: &[u8], partitions: u16) -> u16 {
    if partitions <= 1 {
        return 0;
    }
    let mut hash: u32 = 0x811c_9dc5;
    for &byte in id {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    (hash % u32::from(partitions)) as u16
}

fn invalid_url(what: &'static str, detail: String) -> StoreError {
    StoreError::Redis(redis::RedisError::from((
        redis::ErrorKind::InvalidClientConfig,
        what,
        detail,
    )))
}

impl Redis {
    /// Connects to `url` (one server, the master Sentinel names, or a cluster). Fails
    /// when Redis cannot be reached now.
    pub async fn connect(url: &str, prefix: &str, timeout: Duration) -> Result<Self, StoreError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        if let Some(nodes) = parse_cluster_url(url) {
            let nodes = nodes.map_err(|e| invalid_url("invalid Redis Cluster URL", e))?;
            let client = ClusterClientBuilder::new(nodes)
                .connection_timeout(timeout)
                .response_timeout(timeout)
                // Enough retries, with short waits, to ride out a failover (the
                // cluster's node timeout plus a promotion) within a request or two,
                // never long enough to hold a request past the gateway's patience.
                .retries(4)
                .min_retry_wait(50)
                .max_retry_wait(500)
                .overall_response_timeout(Some(timeout.saturating_mul(2)))
                .build()?;
            let conn = tokio::time::timeout(timeout, client.get_async_connection())
                .await
                .map_err(|_| StoreError::Timeout)??;
            return Ok(Self {
                conn: Connection::Cluster(conn),
                prefix: prefix.into(),
                tags: partition_tags().into(),
                guard: Arc::default(),
            });
        }
        let Some(sentinel) = parse_sentinel_url(url) else {
            let client = Client::open(url)?;
            let conn = ConnectionManager::new_with_config(client, config).await?;
            return Ok(Self {
                conn: Connection::Direct(conn),
                prefix: prefix.into(),
                tags: Arc::new([]),
                guard: Arc::default(),
            });
        };
        let sentinel = sentinel.map_err(|e| invalid_url("invalid Redis Sentinel URL", e))?;
        let node = sentinel.node.as_str().into_connection_info()?;
        let mut client = SentinelClient::build(
            sentinel.sentinels,
            sentinel.service,
            Some(
                SentinelNodeConnectionInfo::default()
                    .set_redis_connection_info(node.redis_settings().clone()),
            ),
            SentinelServerType::Master,
        )?;
        let master = tokio::time::timeout(timeout, client.async_get_client())
            .await
            .map_err(|_| StoreError::Timeout)??;
        let addr = master.get_connection_info().addr().to_string();
        let conn = ConnectionManager::new_with_config(master, config.clone()).await?;
        let shared = Arc::new(RwLock::new(Master { conn, addr }));
        tokio::spawn(follow_master(
            Arc::downgrade(&shared),
            client,
            config,
            timeout,
        ));
        Ok(Self {
            conn: Connection::Sentinel(shared),
            prefix: prefix.into(),
            tags: Arc::new([]),
            guard: Arc::default(),
        })
    }

    /// The same handle with `guard` (the worker's, with its clock) in place of the
    /// default one.
    pub fn with_guard(self, guard: Arc<CacheGuard>) -> Self {
        Self { guard, ..self }
    }

    /// The worker's revocation watermark and negative cache (see
    /// [`super::revocations`]).
    pub fn guard(&self) -> &CacheGuard {
        &self.guard
    }

    /// The full key for `name` in this worker's key space.
    pub fn key(&self, name: &str) -> String {
        let mut k = String::with_capacity(self.prefix.len() + name.len());
        k.push_str(&self.prefix);
        k.push_str(name);
        k
    }

    /// How many credential partitions there are: [`CLUSTER_PARTITIONS`] on a cluster,
    /// one otherwise.
    pub fn partitions(&self) -> u16 {
        u16::try_from(self.tags.len()).unwrap_or(u16::MAX).max(1)
    }

    /// Whether Redis is a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.conn, Connection::Cluster(_))
    }

    /// The partition of an identifier (a token hash, a user or grant id).
    pub fn partition_of(&self, id: &[u8]) -> u16 {
        partition_of(id, self.partitions())
    }

    /// The full key for `name` in credential partition `partition`: on a cluster the
    /// partition's hash tag follows the prefix (so every key of a partition, its
    /// watermark included, is in one slot); otherwise the same as [`Redis::key`].
    pub fn partition_key(&self, partition: u16, name: &str) -> String {
        let tag = self
            .tags
            .get(usize::from(partition))
            .map_or("", String::as_str);
        let mut k = String::with_capacity(self.prefix.len() + tag.len() + name.len());
        k.push_str(&self.prefix);
        k.push_str(tag);
        k.push_str(name);
        k
    }

    /// `part` as a hash tag (`{part}`) on a cluster, as it is otherwise: for the parts of
    /// key names (a workspace) that keys used together share.
    pub fn tagged(&self, part: &str) -> String {
        if self.is_cluster() {
            format!("{{{part}}}")
        } else {
            part.to_owned()
        }
    }

    /// A connection to run commands on (a clone of the multiplexed handle), which spans
    /// each command while traces are exported.
    pub fn conn(&self) -> Traced {
        Traced(match &self.conn {
            Connection::Direct(conn) => Inner::Server(conn.clone()),
            Connection::Sentinel(master) => Inner::Server(
                master
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .conn
                    .clone(),
            ),
            Connection::Cluster(conn) => Inner::Cluster(conn.clone()),
        })
    }

    /// Runs `cmd` on the master that holds credential partition `partition`: for the
    /// commands that name no key but must reach that partition's server (`SCAN`). On a
    /// single server or under Sentinel, the one server.
    pub async fn query_partition_master<T: redis::FromRedisValue>(
        &self,
        partition: u16,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        match &self.conn {
            Connection::Cluster(conn) => {
                let route = Route::with_key(self.partition_key(partition, ""), SlotAddr::Master);
                let value = conn
                    .clone()
                    .route_command(
                        cmd.clone(),
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await?;
                Ok(redis::from_redis_value(value).map_err(redis::RedisError::from)?)
            }
            _ => Ok(cmd.query_async(&mut self.conn()).await?),
        }
    }

    /// Stores `value` as JSON under `key` for `ttl_secs` (at least a second): the
    /// short-lived records of the OAuth servers (pending requests, codes, cached client
    /// documents).
    pub async fn set_json(
        &self,
        key: String,
        value: &impl Serialize,
        ttl_secs: u64,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let _: () = self.conn().set_ex(key, json, ttl_secs.max(1)).await?;
        Ok(())
    }

    /// The JSON value under `key`, left in place.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        key: String,
    ) -> Result<Option<T>, StoreError> {
        from_json(self.conn().get(key).await?)
    }

    /// The JSON value under `key`, deleted in the same command: of concurrent callers
    /// only the first gets it (a code is redeemed once, a consent decided once).
    pub async fn take_json<T: DeserializeOwned>(
        &self,
        key: String,
    ) -> Result<Option<T>, StoreError> {
        from_json(self.conn().get_del(key).await?)
    }

    /// Round trip, for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn()).await?;
        Ok(())
    }

    /// Writes the region stamp on first use and checks it on every start.
    pub async fn check_stamp(&self, region: &RegionId) -> anyhow::Result<()> {
        let key = self.key("region_stamp");
        let mut conn = self.conn();
        let _: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(region.as_str())
            .arg("NX")
            .query_async(&mut conn)
            .await?;
        let found: String = redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
        if found != region.as_str() {
            return Err(StampMismatch {
                store: "Redis",
                expected: region.clone(),
                found,
            }
            .into());
        }
        Ok(())
    }
}

/// Asks the sentinels for the master every [`SENTINEL_POLL`] and moves the worker to a
/// new one after a failover. Ends when the last handle on the connection is dropped.
async fn follow_master(
    shared: Weak<RwLock<Master>>,
    mut client: SentinelClient,
    config: ConnectionManagerConfig,
    timeout: Duration,
) {
    loop {
        tokio::time::sleep(SENTINEL_POLL).await;
        let Some(current) = shared.upgrade() else {
            return;
        };
        let master = match tokio::time::timeout(timeout, client.async_get_client()).await {
            Ok(Ok(master)) => master,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "Redis Sentinel did not name a master");
                continue;
            }
            Err(_) => continue,
        };
        let addr = master.get_connection_info().addr().to_string();
        let old = current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .addr
            .clone();
        if addr == old {
            continue;
        }
        match ConnectionManager::new_with_config(master, config.clone()).await {
            Ok(conn) => {
                tracing::warn!(from = %old, to = %addr, "Redis Sentinel names a new master; moving to it");
                *current.write().unwrap_or_else(|e| e.into_inner()) = Master { conn, addr };
            }
            Err(e) => {
                tracing::warn!(to = %addr, error = %e, "could not connect to the new Redis master")
            }
        }
    }
}

/// A stored JSON value, read back; one that does not parse is [`StoreError::Corrupt`].
fn from_json<T: DeserializeOwned>(json: Option<String>) -> Result<Option<T>, StoreError> {
    json.map(|j| serde_json::from_str(&j).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_list_nodes_with_credentials_and_default_ports() {
        let nodes = parse_cluster_url("redis+cluster://u:pw@r1:7000,r2,10.0.0.3:7002/")
            .unwrap()
            .unwrap();
        assert_eq!(
            nodes,
            [
                "redis://u:pw@r1:7000",
                "redis://u:pw@r2:6379",
                "redis://u:pw@10.0.0.3:7002"
            ]
        );
        assert_eq!(
            parse_cluster_url("redis+cluster://127.0.0.1:7000")
                .unwrap()
                .unwrap(),
            ["redis://127.0.0.1:7000"]
        );
        assert_eq!(
            parse_cluster_url("redis+cluster://[::1]").unwrap().unwrap(),
            ["redis://[::1]:6379"]
        );
        assert!(parse_cluster_url("redis://127.0.0.1:6379/").is_none());
        assert!(parse_cluster_url("redis+sentinel://s1/main").is_none());
        for (bad, says) in [
            ("redis+cluster://", "at least one node"),
            ("redis+cluster://r1:7000,,r2", "at least one node"),
            ("redis+cluster://r1:7000/0", "no database"),
            ("redis+cluster://r1:7000/main", "no database"),
            ("redis+cluster://r1:seven", "invalid port"),
        ] {
            let err = parse_cluster_url(bad).unwrap().unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn slots_are_computed_as_redis_cluster_does() {
        // CRC16/XMODEM's check value, and the examples of the cluster specification.
        assert_eq!(slot_of(b"123456789"), 0x31C3);
        assert_eq!(slot_of(b"somekey"), 11058);
        assert_eq!(slot_of(b"foo{hash_tag}"), slot_of(b"hash_tag"));
        assert_eq!(
            slot_of(b"{user1000}.following"),
            slot_of(b"{user1000}.followers")
        );
        // An empty tag is no tag: the whole key is hashed.
        assert_eq!(slot_of(b"foo{}{bar}"), slot_of(b"foo{}{bar}"));
        assert_ne!(slot_of(b"foo{}{bar}"), slot_of(b"bar"));
        assert_eq!(slot_of(b"foo{{bar}}zap"), slot_of(b"{bar"));
    }

    #[test]
    fn cluster_partitions_spread_over_the_slot_space() {
        let tags = partition_tags();
        assert_eq!(tags.len(), usize::from(CLUSTER_PARTITIONS));
        let width = CLUSTER_SLOTS / CLUSTER_PARTITIONS;
        for (n, tag) in (0u16..).zip(&tags) {
            assert!(tag.starts_with('{') && tag.ends_with('}'), "{tag}");
            assert_eq!(slot_of(tag.as_bytes()) / width, n, "{tag}");
            // A key of the partition, prefixed or not, hashes to the tag's slot.
            let key = format!("t:abc:{tag}tok:00ff");
            assert_eq!(slot_of(key.as_bytes()), slot_of(tag.as_bytes()));
        }
        // Identifiers land in every partition, always the same one.
        let mut seen = std::collections::HashSet::new();
        for i in 0u32..1000 {
            let p = partition_of(&i.to_be_bytes(), CLUSTER_PARTITIONS);
            assert!(p < CLUSTER_PARTITIONS);
            assert_eq!(p, partition_of(&i.to_be_bytes(), CLUSTER_PARTITIONS));
            seen.insert(p);
        }
        assert_eq!(seen.len(), usize::from(CLUSTER_PARTITIONS));
        // One partition: always the first.
        assert_eq!(partition_of(b"anything", 1), 0);
    }

    #[test]
    fn sentinel_urls_name_sentinels_service_and_credentials() {
        let url = parse_sentinel_url("redis+sentinel://:pw@s1:26380,s2/main/2")
            .unwrap()
            .unwrap();
        assert_eq!(url.sentinels, ["redis://s1:26380", "redis://s2:26379"]);
        assert_eq!(url.service, "main");
        assert_eq!(url.node, "redis://:pw@sentinel-master/2");
        assert!(parse_sentinel_url("redis://127.0.0.1:6379/").is_none());
        for bad in [
            "redis+sentinel://s1:26379",
            "redis+sentinel://s1:26379/",
            "redis+sentinel://s1,/main",
            "redis+sentinel://s1/main/x",
            "redis+sentinel://s1/main/0/extra",
        ] {
            assert!(parse_sentinel_url(bad).unwrap().is_err(), "{bad}");
        }
    }
}
