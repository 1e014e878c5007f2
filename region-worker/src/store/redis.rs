//! Redis, the token store: a multiplexed, self-reconnecting connection and the key
//! space of this worker (a prefix, empty in production, unique per test).
//!
//! Two ways to find the server:
//! - `redis://[[user]:password@]host:port[/db]`: one server;
//! - `redis+sentinel://[[user]:password@]host:port[,host:port…]/service[/db]`: Redis
//!   Sentinel. The worker asks the sentinels for the master of `service` at start, and
//!   asks again every [`SENTINEL_POLL`]: after a failover it connects to the new master
//!   (requests in between answer `503`, as with any Redis outage). The credentials are
//!   the master's; sentinels are reached without them.

use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
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

/// A handle on the region's Redis; cheap to clone.
#[derive(Clone)]
pub struct Redis {
    /// Reconnects by itself after Redis restarts, so the worker recovers unaided.
    conn: Connection,
    /// Prepended to every key.
    prefix: Arc<str>,
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
}

/// A Redis connection whose commands are spanned (the command name only, never a key
/// or a value) while traces are exported; otherwise a plain pass-through. Every Redis
/// call of the worker goes through [`Redis::conn`], so this is the one place.
#[derive(Clone)]
pub struct Traced(ConnectionManager);

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
                    Connection::Direct(_) => None,
                    Connection::Sentinel(m) => {
                        Some(m.read().unwrap_or_else(|e| e.into_inner()).addr.clone())
                    }
                },
            )
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

impl Redis {
    /// Connects to `url` (one server, or the master Sentinel names). Fails when Redis
    /// cannot be reached now.
    pub async fn connect(url: &str, prefix: &str, timeout: Duration) -> Result<Self, StoreError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let Some(sentinel) = parse_sentinel_url(url) else {
            let client = Client::open(url)?;
            let conn = ConnectionManager::new_with_config(client, config).await?;
            return Ok(Self {
                conn: Connection::Direct(conn),
                prefix: prefix.into(),
                guard: Arc::default(),
            });
        };
        let sentinel = sentinel.map_err(|e| {
            StoreError::Redis(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "invalid Redis Sentinel URL",
                e,
            )))
        })?;
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

    /// A connection to run commands on (a clone of the multiplexed handle), which spans
    /// each command while traces are exported.
    pub fn conn(&self) -> Traced {
        Traced(self.manager())
    }

    /// The multiplexed handle in use.
    fn manager(&self) -> ConnectionManager {
        match &self.conn {
            Connection::Direct(conn) => conn.clone(),
            Connection::Sentinel(master) => master
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .conn
                .clone(),
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
