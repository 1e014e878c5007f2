//! The test harness. Each test gets its own Postgres database (cloned from a migrated
//! template, so a test pays for `CREATE DATABASE … TEMPLATE`, not for migrations) and
//! its own Redis key prefix, and starts workers and gateways in-process on port 0.
//!
//! The shared servers come from `CLOSEDLOOP_TEST_PG` (an admin URL; default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and `CLOSEDLOOP_TEST_REDIS` (default
//! `redis://127.0.0.1:6379/`); `tests/run.sh` provides them on a fresh machine.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use region_worker::config::WorkerConfig;
use region_worker::state::AppState;
use sha2::{Digest, Sha256};
use shared::regions::{RegionMap, Secret};
use tokio::net::TcpListener;
use tokio::sync::{OnceCell, oneshot};
use tokio::task::JoinHandle;

use crate::region::Region;

/// The admin URL of the shared test Postgres.
pub fn pg_admin_url() -> String {
    std::env::var("CLOSEDLOOP_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The URL of the shared test Redis.
pub fn redis_url() -> String {
    std::env::var("CLOSEDLOOP_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned())
}

/// A fresh Redis key prefix: the test's own key space.
pub fn redis_prefix() -> String {
    format!("t:{}:", uuid::Uuid::new_v4().simple())
}

/// Connects a plain client (the connection task is spawned).
pub async fn pg_connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| "connecting to the test Postgres (is it running? see tests/run.sh)")?;
    tokio::spawn(conn);
    Ok(client)
}

/// Replaces the database name of a Postgres URL.
pub fn with_database(url: &str, db: &str) -> String {
    let base = url.split('?').next().unwrap_or(url);
    let cut = base.rfind('/').unwrap_or(base.len());
    format!("{}/{db}", &base[..cut])
}

/// The name of the migrated template: it changes whenever the migrations compiled
/// into the worker do.
fn template_name() -> String {
    let digest = Sha256::digest(region_worker::store::pg::migrations_fingerprint().as_bytes());
    format!("clt_tmpl_{}", &hex_of(&digest)[..16])
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Makes sure the migrated template exists on the server at `admin_url`, once per
/// process (and under an advisory lock across processes).
pub async fn ensure_template(admin_url: &str) -> anyhow::Result<String> {
    let name = template_name();
    let admin = pg_connect(admin_url).await?;
    admin.execute("SELECT pg_advisory_lock(7411)", &[]).await?;
    let ready = admin
        .query_opt(
            "SELECT 1 FROM pg_database WHERE datname = $1 AND datistemplate",
            &[&name],
        )
        .await?
        .is_some();
    if !ready {
        // Separate statements: CREATE DATABASE cannot run in a multi-statement batch.
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        {
            let mut client = pg_connect(&with_database(admin_url, &name)).await?;
            region_worker::store::pg::migrate(&mut client).await?;
        }
        admin
            .batch_execute(&format!("ALTER DATABASE {name} WITH IS_TEMPLATE true"))
            .await?;
    }
    admin
        .execute("SELECT pg_advisory_unlock(7411)", &[])
        .await?;
    Ok(name)
}

/// A database of one test's own, cloned from the migrated template.
#[derive(Debug, Clone)]
pub struct TestDb {
    /// Its name.
    pub name: String,
    /// Its URL.
    pub url: String,
}

/// A fresh database on the shared test Postgres.
pub async fn fresh_database() -> anyhow::Result<TestDb> {
    static TEMPLATE: OnceCell<String> = OnceCell::const_new();
    let admin_url = pg_admin_url();
    let template = TEMPLATE
        .get_or_try_init(|| ensure_template(&admin_url))
        .await?
        .clone();
    fresh_database_on(&admin_url, &template).await
}

/// A fresh database cloned from `template` on the server at `admin_url`.
pub async fn fresh_database_on(admin_url: &str, template: &str) -> anyhow::Result<TestDb> {
    let name = format!("clt_{}", uuid::Uuid::new_v4().simple());
    let admin = pg_connect(admin_url).await?;
    let mut delay = Duration::from_millis(20);
    for attempt in 0.. {
        match admin
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .await
        {
            Ok(()) => break,
            // Concurrent clones of one template can collide; try again shortly.
            Err(e)
                if attempt < 50
                    && e.code() == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE) =>
            {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(200));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(TestDb {
        url: with_database(admin_url, &name),
        name,
    })
}

/// The region map of the test stack: `*.closedloop.localhost` hosts, plain HTTP.
pub fn region_map(us_workers: &[SocketAddr], eu_workers: &[SocketAddr]) -> RegionMap {
    region_map_at(us_workers, eu_workers, None)
}

/// The test region map with the public URLs on `port` (`http://app.closedloop.localhost:PORT`):
/// for a real browser, which must reach the gateway at the URLs the workers build.
pub fn region_map_at(
    us_workers: &[SocketAddr],
    eu_workers: &[SocketAddr],
    port: Option<u16>,
) -> RegionMap {
    RegionMap::parse(&region_map_text(us_workers, eu_workers, port)).expect("the test map is valid")
}

/// The text of the test region map (see [`region_map_at`]), for the real binaries'
/// `--config`. Credentials are named by the variables [`worker_env`] sets.
pub fn region_map_text(
    us_workers: &[SocketAddr],
    eu_workers: &[SocketAddr],
    port: Option<u16>,
) -> String {
    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
    let list = |ws: &[SocketAddr]| {
        if ws.is_empty() {
            "\"127.0.0.1:9\"".to_owned()
        } else {
            ws.iter()
                .map(|a| format!("\"{a}\""))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    // Okta's callbacks as in production, and the same path on loopback for tests.
    let redirects = [
        "https://system-admin.okta.com",
        "https://system-admin.okta-emea.com",
        "https://system-admin.oktapreview.com",
        "https://system-admin.trexcloud.com",
        "http://127.0.0.1:*",
        "http://localhost:*",
    ]
    .map(|origin| format!("\"{origin}{OKTA_CALLBACK_PATH}\""))
    .join(", ");
    format!(
        r#"development = true
[gateway]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[regions.us]
app_url = "http://app.closedloop.localhost{port}"
api_url = "http://api.closedloop.localhost{port}"
workers = [{}]
postgres = {{ env = "US_PG" }}
redis = {{ env = "US_REDIS" }}
encryption_key = {{ env = "US_ENCRYPTION_KEY" }}

[regions.us.scim_oauth]
client_id = "{US_SCIM_CLIENT_ID}"
client_secret = {{ env = "US_SCIM_OAUTH_SECRET" }}
redirect_uris = [{redirects}]

[regions.us.introspection]
client_id = "{US_INTROSPECTION_CLIENT_ID}"
client_secret = {{ env = "US_INTROSPECTION_SECRET" }}

[regions.eu]
app_url = "http://eu.app.closedloop.localhost{port}"
api_url = "http://eu.api.closedloop.localhost{port}"
workers = [{}]
postgres = {{ env = "EU_PG" }}
redis = {{ env = "EU_REDIS" }}
encryption_key = {{ env = "EU_ENCRYPTION_KEY" }}

[regions.eu.scim_oauth]
client_id = "{EU_SCIM_CLIENT_ID}"
client_secret = {{ env = "EU_SCIM_OAUTH_SECRET" }}
redirect_uris = [{redirects}]

[regions.eu.introspection]
client_id = "{EU_INTROSPECTION_CLIENT_ID}"
client_secret = {{ env = "EU_INTROSPECTION_SECRET" }}
"#,
        list(us_workers),
        list(eu_workers)
    )
}

/// The environment a `region-worker` process needs for the test map: each region's
/// stores and the test credentials.
pub fn worker_env(region: Region, stores: &RegionStores) -> Vec<(String, String)> {
    let r = region.as_str().to_uppercase();
    let (_, scim) = region.scim_client();
    let (_, introspection) = region.introspection();
    let key = region.encryption_key();
    [
        ("PG", stores.pg_url.as_str()),
        ("REDIS", stores.redis_url.as_str()),
        ("SCIM_OAUTH_SECRET", scim),
        ("INTROSPECTION_SECRET", introspection),
        ("ENCRYPTION_KEY", key),
    ]
    .into_iter()
    .map(|(name, value)| (format!("{r}_{name}"), value.to_owned()))
    .collect()
}

/// The stores one region of a test uses.
#[derive(Debug, Clone)]
pub struct RegionStores {
    /// Its Postgres URL.
    pub pg_url: String,
    /// Its Redis URL.
    pub redis_url: String,
    /// Its Redis key prefix.
    pub redis_prefix: String,
}

impl RegionStores {
    /// A fresh database and key space on the shared test servers.
    pub async fn fresh() -> anyhow::Result<Self> {
        Ok(Self {
            pg_url: fresh_database().await?.url,
            redis_url: redis_url(),
            redis_prefix: redis_prefix(),
        })
    }
}

/// A worker configuration for `region` over `stores`.
pub fn worker_config(region: Region, stores: &RegionStores) -> WorkerConfig {
    worker_config_from(&region_map(&[], &[]), region, stores)
}

/// A worker configuration for `region` of `map` over `stores`.
pub fn worker_config_from(map: &RegionMap, region: Region, stores: &RegionStores) -> WorkerConfig {
    let id = region.id();
    let mut config = WorkerConfig::from_map(map, &id, &|name| match name {
        "US_PG" | "EU_PG" => Some(stores.pg_url.clone()),
        "US_REDIS" | "EU_REDIS" => Some(stores.redis_url.clone()),
        "US_SCIM_OAUTH_SECRET" => Some(US_SCIM_CLIENT_SECRET.to_owned()),
        "EU_SCIM_OAUTH_SECRET" => Some(EU_SCIM_CLIENT_SECRET.to_owned()),
        "US_INTROSPECTION_SECRET" => Some(US_INTROSPECTION_SECRET.to_owned()),
        "EU_INTROSPECTION_SECRET" => Some(EU_INTROSPECTION_SECRET.to_owned()),
        "US_ENCRYPTION_KEY" => Some(US_ENCRYPTION_KEY.to_owned()),
        "EU_ENCRYPTION_KEY" => Some(EU_ENCRYPTION_KEY.to_owned()),
        _ => None,
    })
    .expect("test config resolves");
    // Tests move time forward (code and refresh-token expiry) instead of sleeping.
    config.clock = region_worker::clock::Clock::adjustable();
    config.redis_prefix = stores.redis_prefix.clone();
    config.database_url = Secret::new(stores.pg_url.clone());
    config.pg_pool_size = 8;
    config.store_timeout = Duration::from_secs(2);
    config
}

/// A worker running in this process.
#[derive(Debug)]
pub struct TestWorker {
    /// Its public address.
    pub addr: SocketAddr,
    /// Its admin address.
    pub admin_addr: SocketAddr,
    /// Its state (stores), for operator commands in tests.
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl TestWorker {
    /// Connects (migrations, stamps) and serves on port 0.
    pub async fn start(config: WorkerConfig) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let admin = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let admin_addr = admin.local_addr()?;
        let state = region_worker::connect(config).await?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(region_worker::run(listener, admin, state.clone(), async {
            let _ = rx.await;
        }));
        Ok(Self {
            addr,
            admin_addr,
            state,
            stop: Some(tx),
            task,
        })
    }

    /// Stops it and waits for in-flight requests.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await?
    }

    /// `http://addr` of the public listener.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for TestWorker {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A gateway running in this process.
#[derive(Debug)]
pub struct TestGateway {
    /// Its public address.
    pub addr: SocketAddr,
    /// Its admin address.
    pub admin_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl TestGateway {
    /// Serves `map` on port 0.
    pub async fn start(map: RegionMap) -> anyhow::Result<Self> {
        Self::start_on(TcpListener::bind("127.0.0.1:0").await?, map).await
    }

    /// Serves `map` on the caller's `listener` (bound first when the map must name its
    /// port).
    pub async fn start_on(listener: TcpListener, map: RegionMap) -> anyhow::Result<Self> {
        let admin = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let admin_addr = admin.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let config = gateway::GatewayConfig::new(map);
        tokio::spawn(gateway::run(listener, admin, config, async {
            let _ = rx.await;
        }));
        Ok(Self {
            addr,
            admin_addr,
            stop: Some(tx),
        })
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Both regions, each with its own stores and workers, behind one gateway.
#[derive(Debug)]
pub struct TestStack {
    /// The US workers.
    pub us: Vec<TestWorker>,
    /// The EU workers.
    pub eu: Vec<TestWorker>,
    /// The US stores.
    pub us_stores: RegionStores,
    /// The EU stores.
    pub eu_stores: RegionStores,
    /// The gateway in front.
    pub gateway: TestGateway,
    /// An HTTP client that follows no redirects.
    pub http: reqwest::Client,
}

/// The US API host of the test map.
pub const US_API: &str = "api.closedloop.localhost";
/// The US app host.
pub const US_APP: &str = "app.closedloop.localhost";
/// The EU API host.
pub const EU_API: &str = "eu.api.closedloop.localhost";
/// The EU app host.
pub const EU_APP: &str = "eu.app.closedloop.localhost";

impl TestStack {
    /// One worker per region.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(1).await
    }

    /// `replicas` workers per region.
    pub async fn start_with(replicas: usize) -> anyhow::Result<Self> {
        Self::start_configured(replicas, false, |_| {}).await
    }

    /// `replicas` workers per region, each configuration adjusted by `adjust` (shorter
    /// timeouts, say). With `public_port`, the region URLs carry the gateway's port
    /// (`http://app.closedloop.localhost:PORT`), so a real browser can follow them.
    pub async fn start_configured(
        replicas: usize,
        public_port: bool,
        adjust: impl Fn(&mut WorkerConfig),
    ) -> anyhow::Result<Self> {
        let (us_stores, eu_stores) =
            tokio::try_join!(RegionStores::fresh(), RegionStores::fresh())?;
        Self::start_on_stores(us_stores, eu_stores, replicas, public_port, adjust).await
    }

    /// Like [`TestStack::start_configured`], on the caller's stores (a private Redis
    /// the test restarts or fails over, say).
    pub async fn start_on_stores(
        us_stores: RegionStores,
        eu_stores: RegionStores,
        replicas: usize,
        public_port: bool,
        adjust: impl Fn(&mut WorkerConfig),
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = public_port.then_some(listener.local_addr()?.port());
        let config_map = region_map_at(&[], &[], port);
        let mut us = Vec::new();
        let mut eu = Vec::new();
        for _ in 0..replicas {
            let mut c = worker_config_from(&config_map, Region::Us, &us_stores);
            adjust(&mut c);
            us.push(TestWorker::start(c).await?);
            let mut c = worker_config_from(&config_map, Region::Eu, &eu_stores);
            adjust(&mut c);
            eu.push(TestWorker::start(c).await?);
        }
        let map = region_map_at(
            &us.iter().map(|w| w.addr).collect::<Vec<_>>(),
            &eu.iter().map(|w| w.addr).collect::<Vec<_>>(),
            port,
        );
        let gateway = TestGateway::start_on(listener, map).await?;
        Ok(Self {
            us,
            eu,
            us_stores,
            eu_stores,
            gateway,
            http: client(),
        })
    }

    /// A request through the gateway to `host` (`Host` header) and `path`.
    pub fn request(
        &self,
        method: reqwest::Method,
        host: &str,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.gateway.url()))
            .header(reqwest::header::HOST, host)
    }

    /// A GET through the gateway.
    pub fn get(&self, host: &str, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::GET, host, path)
    }

    /// The first worker of `region`.
    pub fn worker(&self, region: Region) -> &TestWorker {
        &self.workers(region)[0]
    }

    /// Every worker of `region`.
    pub fn workers(&self, region: Region) -> &[TestWorker] {
        match region {
            Region::Us => &self.us,
            Region::Eu => &self.eu,
        }
    }

    /// The stores of `region`.
    pub fn stores(&self, region: Region) -> &RegionStores {
        match region {
            Region::Us => &self.us_stores,
            Region::Eu => &self.eu_stores,
        }
    }
}

/// An HTTP client for tests: no redirects followed, short timeouts.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client builds")
}

/// Where the workspace's binaries are (`target/<profile>`), for process-level tests.
pub fn binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/e2e-… → target/<profile>/<name>
    exe.parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join(name))
        .expect("target directory")
}

/// Runs `region-worker <args>` as an operator would, against the US stores of `stack`:
/// `(success, stdout, stderr)`. The first two words are the command (`workspace
/// create`); the region and a region map follow them.
pub async fn operator(stack: &TestStack, args: &[&str]) -> (bool, String, String) {
    let dir = std::env::temp_dir().join(format!("clt-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let map = dir.join("regions.toml");
    std::fs::write(&map, region_map_text(&[], &[], None)).unwrap();
    let out = tokio::process::Command::new(binary("region-worker"))
        .args(&args[..2])
        .args(["--region", "us", "--config"])
        .arg(&map)
        .args(&args[2..])
        .envs(worker_env(Region::Us, &stack.us_stores))
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A SCIM client for one workspace, through the gateway, as Okta would call it.
#[derive(Debug, Clone)]
pub struct Scim {
    /// HTTP client.
    pub http: reqwest::Client,
    /// The gateway's URL.
    pub gateway: String,
    /// The API host of the workspace's region.
    pub host: String,
    /// The workspace.
    pub team_id: String,
    /// The bearer token.
    pub token: String,
}

impl Scim {
    /// A new workspace ("Acme") made by the operator command on `state`, and a SCIM
    /// client for it with an operator-issued token, sent to `base` (a worker's or the
    /// gateway's URL) with the US API host.
    pub async fn operator_workspace(state: &region_worker::state::AppState, base: &str) -> Self {
        let created = region_worker::cli::workspace_create(state, "Acme", "a@acme.test")
            .await
            .expect("workspace created");
        let team_id = json_of(created)["team_id"]
            .as_str()
            .expect("team_id")
            .to_owned();
        let token = operator_token(state, &team_id).await;
        Self {
            http: client(),
            gateway: base.to_owned(),
            host: US_API.to_owned(),
            team_id,
            token,
        }
    }

    /// The same client with another bearer token.
    pub fn with_token(&self, token: &str) -> Self {
        Self {
            token: token.to_owned(),
            ..self.clone()
        }
    }

    /// A request to `path` under the workspace's SCIM base URL (with the bearer token
    /// unless it is empty).
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self
            .http
            .request(
                method,
                format!("{}/api/scim/v2/{}{path}", self.gateway, self.team_id),
            )
            .header(reqwest::header::HOST, &self.host)
            .header(reqwest::header::USER_AGENT, "Okta SCIM Client 1.0.0");
        if self.token.is_empty() {
            req
        } else {
            req.bearer_auth(&self.token)
        }
    }

    /// GET, returning status and JSON body (`Null` when empty).
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        send(self.request(reqwest::Method::GET, path)).await
    }

    /// A write with a JSON body (sent as `application/json`, as Okta does).
    pub async fn write(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        send(self.request(method, path).json(body)).await
    }

    /// POST.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        self.write(reqwest::Method::POST, path, body).await
    }

    /// PUT.
    pub async fn put(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        self.write(reqwest::Method::PUT, path, body).await
    }

    /// PATCH.
    pub async fn patch(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        self.write(reqwest::Method::PATCH, path, body).await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> (u16, serde_json::Value) {
        send(self.request(reqwest::Method::DELETE, path)).await
    }
}

/// Sends and reads status and JSON body.
pub async fn send(req: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let r = req.send().await.expect("request sent");
    let status = r.status().as_u16();
    let bytes = r.bytes().await.expect("body read");
    let body = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
        })
    };
    (status, body)
}

/// A workspace created with the operator command, and its first admin's link.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// `team_id`.
    pub team_id: String,
    /// The admin's one-time sign-in URL.
    pub sign_in_url: String,
    /// The admin's user id.
    pub admin_user_id: String,
}

impl TestStack {
    /// Creates a workspace in `region` with the operator command's code path.
    pub async fn workspace(&self, region: Region, name: &str, admin_email: &str) -> Workspace {
        let v = json_of(
            region_worker::cli::workspace_create(&self.worker(region).state, name, admin_email)
                .await
                .expect("workspace created"),
        );
        Workspace {
            team_id: v["team_id"].as_str().unwrap_or_default().to_owned(),
            sign_in_url: v["sign_in_url"].as_str().unwrap_or_default().to_owned(),
            admin_user_id: v["admin_user_id"].as_str().unwrap_or_default().to_owned(),
        }
    }

    /// A SCIM client for `team_id` in `region` with a token of `scopes` ("" = all).
    pub async fn scim(&self, region: Region, team_id: &str, scopes: &str) -> Scim {
        let t =
            region_worker::cli::token_issue(&self.worker(region).state, team_id, "scim", scopes, 1)
                .await
                .expect("token issued");
        Scim {
            http: self.http.clone(),
            gateway: self.gateway.url(),
            host: region.api().to_owned(),
            team_id: team_id.to_owned(),
            token: json_of(t)["token"].as_str().unwrap_or_default().to_owned(),
        }
    }

    /// Signs the first admin in with the one-time link; returns the session cookie.
    pub async fn sign_in_with_link(&self, region: Region, ws: &Workspace) -> String {
        let host = region.app();
        let code = ws.sign_in_url.split("code=").nth(1).unwrap_or_default();
        let r = self
            .request(reqwest::Method::POST, host, "/auth/link")
            .form(&[("code", code)])
            .send()
            .await
            .expect("sign-in sent");
        assert_eq!(r.status(), 303, "the sign-in link works");
        r.headers()["set-cookie"]
            .to_str()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_owned()
    }
}

/// The US region key of the test map (32 bytes, hex): seals Okta client secrets.
pub const US_ENCRYPTION_KEY: &str =
    "5a1f0c3e7b2d4968a0e1f2d3c4b5a6978877665544332211f0e1d2c3b4a59687";
/// The EU region key of the test map.
pub const EU_ENCRYPTION_KEY: &str =
    "c0ffee00112233445566778899aabbccddeeff00112233445566778899aabbcc";

/// The SCIM OAuth client id of the test map's US region.
pub const US_SCIM_CLIENT_ID: &str = "okta-scim-us";
/// The SCIM OAuth client id of the test map's EU region.
pub const EU_SCIM_CLIENT_ID: &str = "okta-scim-eu";
/// The US client's secret, handed to US workers through their (map) environment.
pub const US_SCIM_CLIENT_SECRET: &str = "us-test-scim-oauth-client-secret-0123456789";
/// The EU client's secret.
pub const EU_SCIM_CLIENT_SECRET: &str = "eu-test-scim-oauth-client-secret-9876543210";
/// The path of Okta's SCIM OAuth callback; `{appName}` is one path segment.
pub const OKTA_CALLBACK_PATH: &str = "/admin/app/cpc/{appName}/oauth/callback";

/// An allowed redirect URI of the test map: Okta's callback path for `app` on a
/// loopback port (nothing needs to listen there: tests read the `Location`).
pub fn okta_callback(port: u16, app: &str) -> String {
    format!(
        "http://127.0.0.1:{port}{}",
        OKTA_CALLBACK_PATH.replace("{appName}", app)
    )
}

impl TestStack {
    /// Moves the clock of every worker of `region` forward (OAuth code and
    /// refresh-token expiry), instead of sleeping.
    pub fn advance_clock(&self, region: Region, by: std::time::Duration) {
        for w in self.workers(region) {
            assert!(
                w.state.config.clock.advance(by),
                "test workers have adjustable clocks"
            );
        }
    }
}

/// The introspection client id of the test map's US region.
pub const US_INTROSPECTION_CLIENT_ID: &str = "introspection-us";
/// The US introspection secret, handed to US workers through their (map) environment.
pub const US_INTROSPECTION_SECRET: &str = "us-test-introspection-secret-0123456789abcdef";
/// The introspection client id of the test map's EU region.
pub const EU_INTROSPECTION_CLIENT_ID: &str = "introspection-eu";
/// The EU introspection secret.
pub const EU_INTROSPECTION_SECRET: &str = "eu-test-introspection-secret-fedcba9876543210";

impl TestStack {
    /// Saves a workspace's Okta settings in `region` (what the Integrations > Okta page
    /// saves): the org at `org_url` (the simulated org's base URL), its app's client id
    /// and secret, sign-in on, just-in-time provisioning off.
    pub async fn configure_okta(
        &self,
        region: Region,
        team_id: &str,
        org_url: &str,
        client_id: &str,
        client_secret: &str,
    ) {
        use region_worker::okta::domain::OktaDomain;
        use region_worker::okta::settings::{self, NewSettings};
        let state = &self.worker(region).state;
        let domain = OktaDomain::parse(org_url, state.config.development).expect("org domain");
        let team_id = shared::ids::TeamId::parse(team_id).expect("team id");
        let client = state.pg.get().await.expect("pg");
        let saved = settings::save(
            &client,
            &state.config.encryption_key,
            &NewSettings {
                team_id,
                okta_domain: domain.as_str(),
                issuer: &domain.issuer(),
                client_id,
                client_secret: Some(client_secret),
                sign_in_enabled: true,
                jit_provisioning: false,
                updated_by: "test",
            },
        )
        .await
        .expect("settings saved");
        assert!(saved, "Okta settings saved");
    }

    /// The Global Token Revocation endpoint of `region` as Okta is configured with it
    /// (`http://{api host}/api/okta/universal-logout`, the JWT's `aud`), reached through
    /// the gateway.
    pub fn universal_logout_endpoint(&self, region: Region) -> crate::okta_sim::upstream::Upstream {
        let host = region.api();
        crate::okta_sim::upstream::Upstream::via(
            &format!("http://{host}/api/okta/universal-logout"),
            &self.gateway.url(),
        )
        .expect("valid endpoint URL")
    }

    /// Starts a browser session for a user of `team_id` in `region`, as a sign-in ends,
    /// and returns its `Cookie` header value (`name=value`).
    pub async fn session_cookie(&self, region: Region, team_id: &str, user_id: &str) -> String {
        let state = &self.worker(region).state;
        let team = shared::ids::TeamId::parse(team_id).expect("team id");
        let user = uuid::Uuid::parse_str(user_id).expect("user id");
        let epoch: i64 = state
            .pg
            .get()
            .await
            .expect("pg")
            .query_one(
                "SELECT token_epoch FROM users WHERE team_id = $1 AND id = $2",
                &[&team.as_uuid(), &user],
            )
            .await
            .expect("the user exists")
            .get(0);
        let set_cookie = region_worker::session::start(state, team, user, epoch, "test")
            .await
            .expect("session started");
        set_cookie
            .to_str()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_owned()
    }
}

/// A new SCIM token (all scopes, one day) for `team_id`, as `region-worker token issue`
/// makes it.
pub async fn operator_token(state: &region_worker::state::AppState, team_id: &str) -> String {
    let issued = region_worker::cli::token_issue(state, team_id, "scim", "", 1)
        .await
        .expect("token issued");
    json_of(issued)["token"].as_str().expect("token").to_owned()
}

/// An operator command's result as the JSON it prints: the fields tests read, by the
/// names operators see.
pub fn json_of(result: impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(result).expect("an operator result serialises")
}

/// A `redis-server` child process of a test (a master, a replica or a sentinel, by its
/// arguments) on a free port, killed on drop.
#[derive(Debug)]
pub struct RedisProcess {
    /// The process, for tests that kill, stop or resume it.
    pub child: std::process::Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl RedisProcess {
    /// Starts `redis-server` with `args` in `dir`, persisting nothing by itself.
    pub fn start(dir: &std::path::Path, args: &[&str]) -> Self {
        use std::process::{Command, Stdio};
        let port = deploy::stores::free_port().expect("a free port");
        std::fs::create_dir_all(dir).expect("the server's directory");
        let child = Command::new("redis-server")
            .args(args)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir)
            .args(["--logfile", "redis.log"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        deploy::stores::wait_for_port(port, Duration::from_secs(15)).expect("redis-server listens");
        Self { child, port }
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A new connection to it. Polled for up to 10 s: right after a `SIGCONT` or a
    /// promotion, on a loaded machine, the server may take a moment to accept again.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(self.url()).expect("a Redis URL");
        let mut last = None;
        for _ in 0..100 {
            match client.get_multiplexed_async_connection().await {
                Ok(conn) => return conn,
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("Redis on port {} unreachable: {last:?}", self.port)
    }

    /// `INFO section`.
    pub async fn info(&self, section: &str) -> String {
        redis::cmd("INFO")
            .arg(section)
            .query_async(&mut self.conn().await)
            .await
            .expect("INFO answered")
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh directory `clt-NAME-<uuid>` under the system's temporary directory, for the
/// servers a test starts itself.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("clt-{name}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A Redis master, its replica, and one Sentinel (quorum 1) that monitors the master as
/// `closedloop-us` and calls it down after half a second: the failover set-up of the
/// tests that kill the master. Fields drop sentinel first, as the tests stop them.
#[derive(Debug)]
pub struct SentinelSet {
    /// The sentinel (started with `--sentinel`).
    pub sentinel: RedisProcess,
    /// The replica, synced with the master when [`SentinelSet::start`] returns.
    pub replica: RedisProcess,
    /// The master the sentinel monitors.
    pub master: RedisProcess,
}

impl SentinelSet {
    /// Starts the three servers under `dir` (`a`, `b`, `s`) and waits until the replica
    /// is synced and the sentinel has seen it.
    pub async fn start(dir: &std::path::Path) -> Self {
        let master = RedisProcess::start(&dir.join("a"), &[]);
        let master_port = master.port.to_string();
        let replica =
            RedisProcess::start(&dir.join("b"), &["--replicaof", "127.0.0.1", &master_port]);
        eventually("the replica to sync", || async {
            replica
                .info("replication")
                .await
                .contains("master_link_status:up")
        })
        .await;
        let sentinel_dir = dir.join("s");
        std::fs::create_dir_all(&sentinel_dir).unwrap();
        let conf = sentinel_dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "sentinel monitor closedloop-us 127.0.0.1 {master_port} 1\n\
                 sentinel down-after-milliseconds closedloop-us 500\n\
                 sentinel failover-timeout closedloop-us 5000\n"
            ),
        )
        .unwrap();
        let sentinel = RedisProcess::start(&sentinel_dir, &[conf.to_str().unwrap(), "--sentinel"]);
        eventually("the sentinel to see the replica", || async {
            let replicas: Vec<redis::Value> = redis::cmd("SENTINEL")
                .arg("replicas")
                .arg("closedloop-us")
                .query_async(&mut sentinel.conn().await)
                .await
                .unwrap_or_default();
            !replicas.is_empty()
        })
        .await;
        Self {
            sentinel,
            replica,
            master,
        }
    }
}

/// A Redis Cluster of three masters and three replicas (one each), on free ports, with
/// a one-second node timeout so a killed master's replica is promoted within seconds:
/// the set-up of the cluster tests. Nodes are killed on drop.
#[derive(Debug)]
pub struct ClusterSet {
    /// The six nodes, in start order; which are masters changes with failovers (see
    /// [`ClusterSet::masters`]). A killed node stays in the list.
    pub nodes: Vec<RedisProcess>,
    /// The indices of the nodes the test killed.
    pub killed: Vec<usize>,
}

/// One line of `CLUSTER NODES`: a node as the cluster sees it.
#[derive(Debug, Clone)]
pub struct ClusterNode {
    /// The node's id.
    pub id: String,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Whether it is a master now.
    pub master: bool,
    /// Whether the cluster marks it failed.
    pub failed: bool,
    /// The slot ranges it serves (masters), inclusive.
    pub slots: Vec<(u16, u16)>,
}

impl ClusterSet {
    /// Starts six cluster nodes under `dir`, joins them with `redis-cli --cluster
    /// create` (one replica per master), and waits until every node says
    /// `cluster_state:ok` and every replica is synced.
    pub async fn start(dir: &std::path::Path) -> Self {
        let nodes: Vec<RedisProcess> = (0..6)
            .map(|i| {
                RedisProcess::start(
                    &dir.join(format!("n{i}")),
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-node-timeout",
                        "1000",
                        "--cluster-config-file",
                        "nodes.conf",
                    ],
                )
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("redis-cli")
                .arg("--cluster")
                .arg("create")
                .args(&addrs)
                .args(["--cluster-replicas", "1", "--cluster-yes"])
                .output()
                .expect("redis-cli runs")
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let set = Self {
            nodes,
            killed: Vec::new(),
        };
        set.until_healthy().await;
        set
    }

    /// `redis+cluster://` naming two of the nodes (the worker learns the rest).
    pub fn url(&self) -> String {
        format!(
            "redis+cluster://127.0.0.1:{},127.0.0.1:{}",
            self.nodes[0].port, self.nodes[1].port
        )
    }

    /// The nodes not killed.
    pub fn live(&self) -> impl Iterator<Item = (usize, &RedisProcess)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.killed.contains(i))
    }

    /// Kills node `i` with `SIGKILL` (no chance to hand anything over).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].child.kill().unwrap();
        self.nodes[i].child.wait().unwrap();
        self.killed.push(i);
    }

    /// `CLUSTER INFO` of node `i`, or `None` when it does not answer.
    pub async fn info(&self, i: usize) -> Option<String> {
        let client = redis::Client::open(self.nodes[i].url()).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("CLUSTER")
            .arg("INFO")
            .query_async(&mut conn)
            .await
            .ok()
    }

    /// Whether every live node says `cluster_state:ok`, every slot is served, and
    /// every live replica is synced with its master.
    pub async fn healthy(&self) -> bool {
        for (i, node) in self.live() {
            let Some(info) = self.info(i).await else {
                return false;
            };
            if !info.contains("cluster_state:ok") || !info.contains("cluster_slots_ok:16384") {
                return false;
            }
            let replication = node.info("replication").await;
            if replication.contains("role:slave") && !replication.contains("master_link_status:up")
            {
                return false;
            }
        }
        true
    }

    /// Waits until [`ClusterSet::healthy`].
    pub async fn until_healthy(&self) {
        eventually("the Redis Cluster to be healthy", || self.healthy()).await;
    }

    /// The cluster as a live node sees it (`CLUSTER NODES`).
    pub async fn cluster_nodes(&self) -> Vec<ClusterNode> {
        let (_, node) = self.live().next().expect("a live node");
        let text: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut node.conn().await)
            .await
            .unwrap();
        text.lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                let port = f
                    .get(1)?
                    .split('@')
                    .next()?
                    .rsplit(':')
                    .next()?
                    .parse()
                    .ok()?;
                let flags = f.get(2)?;
                Some(ClusterNode {
                    id: f[0].to_owned(),
                    port,
                    master: flags.contains("master"),
                    failed: flags.contains("fail") && !flags.contains("fail?"),
                    slots: f
                        .iter()
                        .skip(8)
                        .filter(|r| !r.starts_with('['))
                        .filter_map(|r| match r.split_once('-') {
                            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                            None => r.parse().ok().map(|s| (s, s)),
                        })
                        .collect(),
                })
            })
            .collect()
    }

    /// The index of the node with `port`.
    pub fn index_of(&self, port: u16) -> usize {
        self.nodes
            .iter()
            .position(|n| n.port == port)
            .expect("a node of the set")
    }

    /// The indices of the live masters.
    pub async fn masters(&self) -> Vec<usize> {
        self.cluster_nodes()
            .await
            .iter()
            .filter(|n| n.master && !n.failed && !n.slots.is_empty())
            .map(|n| self.index_of(n.port))
            .filter(|i| !self.killed.contains(i))
            .collect()
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`).
    pub async fn slot_of(&self, key: &str) -> u16 {
        let (_, node) = self.live().next().expect("a live node");
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut node.conn().await)
            .await
            .unwrap()
    }

    /// The index of the live master serving `slot`.
    pub async fn owner_of_slot(&self, slot: u16) -> usize {
        let owner = self
            .cluster_nodes()
            .await
            .into_iter()
            .find(|n| n.master && !n.failed && n.slots.iter().any(|&(a, b)| a <= slot && slot <= b))
            .expect("a master serves the slot");
        self.index_of(owner.port)
    }

    /// The index of the live master holding `key`.
    pub async fn owner_of(&self, key: &str) -> usize {
        self.owner_of_slot(self.slot_of(key).await).await
    }

    /// Moves `slot`, with its keys, to the master `to`, as `redis-cli --cluster
    /// reshard` does (`SETSLOT IMPORTING/MIGRATING`, `MIGRATE`, `SETSLOT NODE`): a
    /// client meanwhile gets `ASK`, then `MOVED`.
    pub async fn move_slot(&self, slot: u16, to: usize) {
        let from = self.owner_of_slot(slot).await;
        if from == to {
            return;
        }
        let nodes = self.cluster_nodes().await;
        let id = |i: usize| {
            nodes
                .iter()
                .find(|n| n.port == self.nodes[i].port)
                .expect("the node is known")
                .id
                .clone()
        };
        let (from_id, to_id) = (id(from), id(to));
        let mut src = self.nodes[from].conn().await;
        let mut dst = self.nodes[to].conn().await;
        let setslot = |state: &str, node: &str| {
            let mut cmd = redis::cmd("CLUSTER");
            cmd.arg("SETSLOT").arg(slot).arg(state).arg(node);
            cmd
        };
        let _: () = setslot("IMPORTING", &from_id)
            .query_async(&mut dst)
            .await
            .unwrap();
        let _: () = setslot("MIGRATING", &to_id)
            .query_async(&mut src)
            .await
            .unwrap();
        loop {
            let keys: Vec<String> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(100)
                .query_async(&mut src)
                .await
                .unwrap();
            if keys.is_empty() {
                break;
            }
            let _: () = redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(self.nodes[to].port)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys)
                .query_async(&mut src)
                .await
                .unwrap();
        }
        // The new owner first, then the old one, then the other masters (replicas
        // refuse SETSLOT and learn it from their masters).
        let _: () = setslot("NODE", &to_id).query_async(&mut dst).await.unwrap();
        let _: () = setslot("NODE", &to_id).query_async(&mut src).await.unwrap();
        for i in self.masters().await {
            if i != from && i != to {
                let _: () = setslot("NODE", &to_id)
                    .query_async(&mut self.nodes[i].conn().await)
                    .await
                    .unwrap();
            }
        }
    }
}

/// Polls `check` (pausing between tries) until it holds; panics with `what` after 30 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Deletes every Redis key of `region`'s worker but its region stamp: a flushed or
/// replaced Redis.
pub async fn flush_redis(stack: &TestStack, region: Region) {
    let stores = stack.stores(region);
    let client = redis::Client::open(stores.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", stores.redis_prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    // Keep the region stamp: a replaced Redis is stamped again at start, not mid-run.
    let doomed: Vec<&String> = keys
        .iter()
        .filter(|k| !k.ends_with("region_stamp"))
        .collect();
    assert!(!doomed.is_empty(), "the worker wrote keys");
    let _: () = redis::cmd("DEL")
        .arg(doomed)
        .query_async(&mut conn)
        .await
        .unwrap();
}
