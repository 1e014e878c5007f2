//! The SCIM client engine: the requests Okta's provisioning sends to our SCIM API
//! (OKTA.md §1, §2, §5) when an admin assigns, changes, unassigns or deactivates users,
//! pushes groups, imports, and discovers and assigns entitlements.
//!
//! Each directory event is one provisioning job, run at once and in order per app (a
//! job lock), so a test sees its effect when the call returns; every exchange is logged
//! for tests to assert the exact sequence. A job first obtains the bearer token (an
//! operator token as is, or an OAuth token refreshed when expired). Every request
//! carries `User-Agent: Okta SCIM Client 1.0.0`; a `429` is retried after its integer
//! `Retry-After`, the wait doubling each time, giving up after ten tries.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use serde_json::{Value, json};
use shared::regions::Secret;
use tokio::sync::OwnedMutexGuard;

use super::directory::{GroupId, Profile, ScimId, User, UserId, random_secret};
use super::oauth_client::{OAuthClient, OAuthError};
use super::upstream::{Upstream, encode_query_value};
use super::{Org, lock};

/// The `User-Agent` of Okta's SCIM client.
pub const OKTA_USER_AGENT: &str = "Okta SCIM Client 1.0.0";
/// The SCIM core User schema.
pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The SCIM core Group schema.
pub const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The SCIM PATCH message schema.
pub const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Schemas Okta knows without fetching `/Schemas/{urn}`.
const KNOWN_SCHEMAS: [&str; 4] = [
    USER_URN,
    GROUP_URN,
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
    "urn:okta:scim:schemas:core:1.0:Role",
];
/// An upper bound on import pages, against a server whose paging never ends.
const MAX_PAGES: usize = 10_000;

/// A boxed future of a wait.
pub type SleepFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How the engine waits before retrying a `429`: injected so that tests can record the
/// waits and shorten them.
#[derive(Clone)]
pub struct Sleeper(Arc<dyn Fn(Duration) -> SleepFuture + Send + Sync>);

impl Sleeper {
    /// Really waits (`tokio::time::sleep`).
    pub fn tokio() -> Self {
        Self::new(tokio::time::sleep)
    }

    /// Waits with `f`.
    pub fn new<F, Fut>(f: F) -> Self
    where
        F: Fn(Duration) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self(Arc::new(move |d| Box::pin(f(d))))
    }

    fn sleep(&self, d: Duration) -> SleepFuture {
        (self.0)(d)
    }
}

impl fmt::Debug for Sleeper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sleeper")
    }
}

/// Where the SCIM bearer token comes from.
#[derive(Debug)]
pub enum ScimAuth {
    /// A token set directly (the operator's `token issue`).
    Bearer(Secret),
    /// An OAuth client holding the token it obtained; refreshed when a job finds it
    /// expired, as Okta does.
    OAuth(Box<OAuthClient>),
}

impl ScimAuth {
    /// A token set directly.
    pub fn bearer(token: impl Into<String>) -> Self {
        Self::Bearer(Secret::new(token))
    }
}

/// How an app reaches our SCIM API.
#[derive(Debug)]
pub struct ScimSettings {
    /// The SCIM base URL (`…/api/scim/v2/{team_id}`), and how to reach it.
    pub base: Upstream,
    /// The bearer token's source.
    pub auth: ScimAuth,
    /// `count` of import pages (Okta: 100).
    pub page_size: u32,
    /// Tries per request while the answer is `429` (Okta: 10).
    pub max_attempts: u32,
    /// Per-request timeout (Okta drops the connection after 60 s).
    pub timeout: Duration,
    /// How `Retry-After` waits are waited.
    pub sleeper: Sleeper,
}

impl ScimSettings {
    /// Okta's defaults for `base` with `auth`.
    pub fn new(base: Upstream, auth: ScimAuth) -> Self {
        Self {
            base,
            auth,
            page_size: 100,
            max_attempts: 10,
            timeout: Duration::from_secs(60),
            sleeper: Sleeper::tokio(),
        }
    }
}

/// One request the engine made, as the server finally answered it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimExchange {
    /// `GET`, `POST`, …
    pub method: String,
    /// Path and query under the SCIM base URL (`/Users?filter=…`).
    pub path: String,
    /// The final status (after `429` retries).
    pub status: u16,
    /// The JSON body sent, if any.
    pub request: Option<Value>,
    /// Tries it took (1 unless rate limited).
    pub attempts: u32,
}

/// What assigning a user did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provisioned {
    /// The app has no SCIM connection: the assignment is recorded only.
    NotConnected,
    /// `POST /Users` created it.
    Created(ScimId),
    /// The existence check found it; Okta linked it (and reactivated it if inactive).
    Linked(ScimId),
    /// It was linked before (assigned, then unassigned): `active:true` again.
    Reactivated(ScimId),
}

impl Provisioned {
    /// The SCIM id, unless nothing was provisioned.
    pub fn scim_id(&self) -> Option<&ScimId> {
        match self {
            Self::NotConnected => None,
            Self::Created(id) | Self::Linked(id) | Self::Reactivated(id) => Some(id),
        }
    }
}

/// Roles and other entitlements found by discovery.
#[derive(Debug, Clone, Default)]
pub struct Entitlements {
    /// `/ResourceTypes` entries other than User and Group.
    pub resource_types: Vec<Value>,
    /// Schemas fetched for extensions Okta did not know.
    pub schemas: Vec<Value>,
    /// Every value of each resource type, by resource type `id` (`"Role"` → roles).
    pub values: BTreeMap<String, Vec<Value>>,
}

/// A provisioning job that failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisioningError {
    /// No app has this client id.
    #[error("no app with client id {0:?}")]
    UnknownApp(String),
    /// No such user.
    #[error("no user {0}")]
    UnknownUser(String),
    /// No such group.
    #[error("no group {0}")]
    UnknownGroup(String),
    /// The operation needs a SCIM connection (set with `connect_scim`).
    #[error("the app has no SCIM connection")]
    NotConnected,
    /// The user is deactivated in the org: Okta provisions no deactivated user.
    #[error("user {0} is deactivated")]
    UserInactive(String),
    /// The user was never provisioned to the app (assign first).
    #[error("user {0} is not provisioned to the app")]
    NotProvisioned(String),
    /// The server answered a status the job cannot go on with.
    #[error("{method} {path}: HTTP {status}: {body}")]
    Status {
        /// The method.
        method: String,
        /// Path under the SCIM base URL.
        path: String,
        /// The status.
        status: u16,
        /// The body (JSON, or a string when not JSON).
        body: Value,
    },
    /// Still `429` after the last try.
    #[error("{method} {path}: still rate limited after {attempts} tries")]
    RateLimited {
        /// The method.
        method: String,
        /// Path under the SCIM base URL.
        path: String,
        /// Tries made.
        attempts: u32,
    },
    /// The request could not be sent or its answer read (including timeouts).
    #[error("{method} {path}: {source}")]
    Transport {
        /// The method.
        method: String,
        /// Path under the SCIM base URL.
        path: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// An answer without what Okta needs from it (an `id`, a `totalResults`).
    #[error("unusable SCIM response: {0}")]
    BadResponse(String),
    /// The SCIM token could not be obtained or refreshed.
    #[error("obtaining the SCIM token: {0}")]
    OAuth(#[from] OAuthError),
    /// A URL could not be built.
    #[error("URL: {0}")]
    Url(#[from] url::ParseError),
}

/// An app's SCIM connection.
#[derive(Debug)]
pub(crate) struct ScimConnection {
    /// Base URL and route.
    base: Upstream,
    /// HTTP client (timeout set).
    http: reqwest::Client,
    /// Token source; a lock because refreshing mutates it.
    auth: tokio::sync::Mutex<ScimAuth>,
    /// Import page size.
    page_size: u32,
    /// Tries per request under `429`.
    max_attempts: u32,
    /// `Retry-After` waits.
    sleeper: Sleeper,
    /// Every exchange, oldest first.
    pub(crate) log: Mutex<Vec<ScimExchange>>,
    /// Serialises jobs, as Okta runs one app's tasks in order.
    job: Arc<tokio::sync::Mutex<()>>,
}

impl ScimConnection {
    pub(crate) fn new(settings: ScimSettings) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .build()?;
        Ok(Self {
            base: settings.base,
            http,
            auth: tokio::sync::Mutex::new(settings.auth),
            page_size: settings.page_size.max(1),
            max_attempts: settings.max_attempts.max(1),
            sleeper: settings.sleeper,
            log: Mutex::new(Vec::new()),
            job: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// The bearer token for a job, refreshed first when an OAuth token has expired.
    async fn token(&self) -> Result<String, ProvisioningError> {
        let mut auth = self.auth.lock().await;
        match &mut *auth {
            ScimAuth::Bearer(t) => Ok(t.expose().to_owned()),
            ScimAuth::OAuth(client) => Ok(client.access_token().await?),
        }
    }
}

/// One provisioning job: the connection, its token, and the app's job lock.
struct Job {
    conn: Arc<ScimConnection>,
    token: String,
    _turn: OwnedMutexGuard<()>,
}

/// Starts a job on app `client_id`, or `None` when it has no SCIM connection.
async fn begin(org: &Org, client_id: &str) -> Result<Option<Job>, ProvisioningError> {
    let Some(conn) = org.connection(client_id) else {
        return Ok(None);
    };
    let turn = conn.job.clone().lock_owned().await;
    let token = conn.token().await?;
    Ok(Some(Job {
        conn,
        token,
        _turn: turn,
    }))
}

impl Job {
    /// Sends one request, retrying `429`s; returns the final status and body.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), ProvisioningError> {
        let conn = &self.conn;
        let mut wait: Option<Duration> = None;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = conn
                .base
                .request(&conn.http, method.clone(), path)?
                .bearer_auth(&self.token)
                .header(USER_AGENT, OKTA_USER_AGENT)
                .header(ACCEPT, "application/scim+json");
            if let Some(b) = body {
                req = req
                    .header(CONTENT_TYPE, "application/json; charset=utf-8")
                    .body(b.to_string());
            }
            let transport = |source| ProvisioningError::Transport {
                method: method.to_string(),
                path: path.to_owned(),
                source,
            };
            let resp = req.send().await.map_err(transport)?;
            let status = resp.status().as_u16();
            if status == 429 {
                let told = resp
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(1);
                if attempt >= conn.max_attempts {
                    self.record(&method, path, 429, body, attempt);
                    return Err(ProvisioningError::RateLimited {
                        method: method.to_string(),
                        path: path.to_owned(),
                        attempts: attempt,
                    });
                }
                // The server's word first; after that, twice the previous wait.
                let next = match wait {
                    None => Duration::from_secs(told),
                    Some(prev) => (prev * 2).max(Duration::from_secs(told)),
                };
                conn.sleeper.sleep(next).await;
                wait = Some(next);
                continue;
            }
            let bytes = resp.bytes().await.map_err(transport)?;
            let value = if bytes.iter().all(u8::is_ascii_whitespace) {
                Value::Null
            } else {
                serde_json::from_slice(&bytes)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
            };
            self.record(&method, path, status, body, attempt);
            return Ok((status, value));
        }
    }

    fn record(
        &self,
        method: &Method,
        path: &str,
        status: u16,
        body: Option<&Value>,
        attempts: u32,
    ) {
        lock(&self.conn.log).push(ScimExchange {
            method: method.to_string(),
            path: path.to_owned(),
            status,
            request: body.cloned(),
            attempts,
        });
    }

    /// Sends and requires one of `ok` statuses.
    async fn expect(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        ok: &[u16],
    ) -> Result<Value, ProvisioningError> {
        let (status, value) = self.call(method.clone(), path, body).await?;
        if ok.contains(&status) {
            Ok(value)
        } else {
            Err(ProvisioningError::Status {
                method: method.to_string(),
                path: path.to_owned(),
                status,
                body: value,
            })
        }
    }

    /// `PATCH /Users/{id}` setting `active`, in Okta's form (no path, value object).
    async fn set_active(&self, id: &ScimId, active: bool) -> Result<(), ProvisioningError> {
        let body = json!({
            "schemas": [PATCH_URN],
            "Operations": [{ "op": "replace", "value": { "active": active } }]
        });
        self.expect(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(&body),
            &[200, 204],
        )
        .await
        .map(|_| ())
    }

    /// `GET /{Users|Groups}?filter={attr} eq "{value}"&startIndex=1&count=100`: the
    /// first match.
    async fn find(
        &self,
        endpoint: &str,
        attr: &str,
        value: &str,
    ) -> Result<Option<Value>, ProvisioningError> {
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
        let filter = encode_query_value(&format!("{attr} eq \"{escaped}\""));
        let list = self
            .expect(
                Method::GET,
                &format!("/{endpoint}?filter={filter}&startIndex=1&count=100"),
                None,
                &[200],
            )
            .await?;
        Ok(list
            .get("Resources")
            .and_then(Value::as_array)
            .and_then(|r| r.first())
            .cloned())
    }

    /// Every resource of a list endpoint, page by page (`startIndex=1&count=N`, then
    /// `N+1`, …) until `totalResults` are read.
    async fn list_all(&self, endpoint: &str) -> Result<Vec<Value>, ProvisioningError> {
        let mut out = Vec::new();
        let mut start: u64 = 1;
        for _ in 0..MAX_PAGES {
            let page = self
                .expect(
                    Method::GET,
                    &format!(
                        "{endpoint}?startIndex={start}&count={}",
                        self.conn.page_size
                    ),
                    None,
                    &[200],
                )
                .await?;
            let total = page
                .get("totalResults")
                .and_then(Value::as_u64)
                .ok_or_else(|| {
                    ProvisioningError::BadResponse(format!(
                        "{endpoint}: totalResults is not an integer"
                    ))
                })?;
            let resources = page
                .get("Resources")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let n = resources.len() as u64;
            out.extend(resources);
            if n == 0 || out.len() as u64 >= total {
                break;
            }
            start += n;
        }
        Ok(out)
    }
}

/// The `id` of a SCIM resource in a response.
fn id_of(resource: &Value) -> Result<ScimId, ProvisioningError> {
    resource
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(ScimId::new)
        .ok_or_else(|| ProvisioningError::BadResponse(format!("no id in {resource}")))
}

/// What Okta POSTs to create a user (OKTA.md §1).
pub fn user_body(user: &User) -> Value {
    let p = &user.profile;
    json!({
        "schemas": [USER_URN],
        "userName": p.login,
        "name": { "givenName": p.given_name, "familyName": p.family_name },
        "emails": [{ "primary": true, "value": p.email, "type": "work" }],
        "displayName": p.display_name(),
        "locale": p.locale,
        "externalId": user.id.as_str(),
        "groups": [],
        // Okta sends a meaningless generated password; the server must ignore it.
        "password": random_secret(8),
        "active": true
    })
}

/// Writes `profile` into the user object read from the server (the PUT body).
pub fn apply_profile(current: &mut Value, user: &User) {
    let p = &user.profile;
    let Some(obj) = current.as_object_mut() else {
        return;
    };
    obj.insert("userName".into(), json!(p.login));
    let name = obj.entry("name").or_insert_with(|| json!({}));
    if let Some(name) = name.as_object_mut() {
        name.insert("givenName".into(), json!(p.given_name));
        name.insert("familyName".into(), json!(p.family_name));
    }
    obj.insert("displayName".into(), json!(p.display_name()));
    obj.insert("locale".into(), json!(p.locale));
    obj.insert("externalId".into(), json!(user.id.as_str()));
    let emails = obj.entry("emails").or_insert_with(|| json!([]));
    let primary = emails.as_array_mut().and_then(|list| {
        list.iter_mut()
            .find(|e| e.get("primary").and_then(Value::as_bool) == Some(true))
    });
    match primary {
        Some(e) => e["value"] = json!(p.email),
        None => *emails = json!([{ "primary": true, "value": p.email, "type": "work" }]),
    }
}

fn unknown_app(client_id: &str) -> ProvisioningError {
    ProvisioningError::UnknownApp(client_id.to_owned())
}

fn link_user(org: &Org, client_id: &str, user: &UserId, id: &ScimId) {
    if let Some(app) = lock(&org.directory).app_mut(client_id) {
        app.user_links.insert(user.clone(), id.clone());
    }
}

/// Assigns `user` to the app and provisions it: reactivation when linked before, else
/// the existence check, then a link or `POST /Users`.
pub(crate) async fn assign(
    org: &Org,
    client_id: &str,
    user_id: &UserId,
) -> Result<Provisioned, ProvisioningError> {
    let (user, link) = {
        let mut dir = lock(&org.directory);
        let user = dir
            .user(user_id)
            .cloned()
            .ok_or_else(|| ProvisioningError::UnknownUser(user_id.to_string()))?;
        if !user.active {
            return Err(ProvisioningError::UserInactive(user_id.to_string()));
        }
        let app = dir
            .app_mut(client_id)
            .ok_or_else(|| unknown_app(client_id))?;
        app.assigned.insert(user_id.clone());
        (user, app.user_links.get(user_id).cloned())
    };
    let Some(job) = begin(org, client_id).await? else {
        return Ok(Provisioned::NotConnected);
    };
    if let Some(id) = link {
        job.set_active(&id, true).await?;
        return Ok(Provisioned::Reactivated(id));
    }
    if let Some(existing) = job.find("Users", "userName", &user.profile.login).await? {
        return link_existing(org, client_id, &job, user_id, &existing).await;
    }
    let (status, created) = job
        .call(Method::POST, "/Users", Some(&user_body(&user)))
        .await?;
    match status {
        200 | 201 => {
            let id = id_of(&created)?;
            link_user(org, client_id, user_id, &id);
            Ok(Provisioned::Created(id))
        }
        // Created meanwhile by someone else: match it as the existence check would.
        409 => match job.find("Users", "userName", &user.profile.login).await? {
            Some(existing) => link_existing(org, client_id, &job, user_id, &existing).await,
            None => Err(ProvisioningError::Status {
                method: "POST".into(),
                path: "/Users".into(),
                status,
                body: created,
            }),
        },
        _ => Err(ProvisioningError::Status {
            method: "POST".into(),
            path: "/Users".into(),
            status,
            body: created,
        }),
    }
}

async fn link_existing(
    org: &Org,
    client_id: &str,
    job: &Job,
    user_id: &UserId,
    existing: &Value,
) -> Result<Provisioned, ProvisioningError> {
    let id = id_of(existing)?;
    if existing.get("active").and_then(Value::as_bool) == Some(false) {
        job.set_active(&id, true).await?;
    }
    link_user(org, client_id, user_id, &id);
    Ok(Provisioned::Linked(id))
}

/// Unassigns `user`: `active:false` where provisioned (Okta never deletes users).
pub(crate) async fn unassign(
    org: &Org,
    client_id: &str,
    user_id: &UserId,
) -> Result<(), ProvisioningError> {
    let link = {
        let mut dir = lock(&org.directory);
        let app = dir
            .app_mut(client_id)
            .ok_or_else(|| unknown_app(client_id))?;
        app.assigned.remove(user_id);
        app.user_links.get(user_id).cloned()
    };
    let (Some(id), Some(job)) = (link, begin(org, client_id).await?) else {
        return Ok(());
    };
    job.set_active(&id, false).await
}

/// The (app, SCIM id) pairs where `user` is assigned and provisioned.
fn provisioned_in(org: &Org, user: &UserId) -> Vec<(String, ScimId)> {
    lock(&org.directory)
        .apps()
        .filter(|a| a.assigned.contains(user))
        .filter_map(|a| {
            a.user_links
                .get(user)
                .map(|id| (a.client_id.clone(), id.clone()))
        })
        .collect()
}

/// Changes a profile, then `GET` + `PUT` it to every app where it is provisioned.
pub(crate) async fn update_profile(
    org: &Org,
    user_id: &UserId,
    change: impl FnOnce(&mut Profile),
) -> Result<(), ProvisioningError> {
    let user = {
        let mut dir = lock(&org.directory);
        let user = dir
            .user_mut(user_id)
            .ok_or_else(|| ProvisioningError::UnknownUser(user_id.to_string()))?;
        change(&mut user.profile);
        user.clone()
    };
    for (client_id, id) in provisioned_in(org, user_id) {
        let Some(job) = begin(org, &client_id).await? else {
            continue;
        };
        let path = format!("/Users/{id}");
        let mut current = job.expect(Method::GET, &path, None, &[200]).await?;
        apply_profile(&mut current, &user);
        job.expect(Method::PUT, &path, Some(&current), &[200])
            .await?;
    }
    Ok(())
}

/// Deactivates or reactivates a user in the org and sends `active` to every app where
/// it is assigned and provisioned.
pub(crate) async fn set_user_status(
    org: &Org,
    user_id: &UserId,
    active: bool,
) -> Result<(), ProvisioningError> {
    {
        let mut dir = lock(&org.directory);
        let user = dir
            .user_mut(user_id)
            .ok_or_else(|| ProvisioningError::UnknownUser(user_id.to_string()))?;
        user.active = active;
    }
    if !active {
        // Deactivation ends the user's org sessions.
        lock(&org.grants).sessions.retain(|_, (u, _)| u != user_id);
    }
    for (client_id, id) in provisioned_in(org, user_id) {
        if let Some(job) = begin(org, &client_id).await? {
            job.set_active(&id, active).await?;
        }
    }
    Ok(())
}

/// Members of `group` provisioned to app `client_id`: `{value, display}` entries.
fn pushed_members(
    org: &Org,
    client_id: &str,
    group: &GroupId,
) -> Result<Vec<Value>, ProvisioningError> {
    let dir = lock(&org.directory);
    let g = dir
        .group(group)
        .ok_or_else(|| ProvisioningError::UnknownGroup(group.to_string()))?;
    let app = dir.app(client_id).ok_or_else(|| unknown_app(client_id))?;
    Ok(g.members
        .iter()
        .filter(|u| app.assigned.contains(*u))
        .filter_map(|u| {
            let id = app.user_links.get(u)?;
            let login = dir
                .user(u)
                .map(|x| x.profile.login.clone())
                .unwrap_or_default();
            Some(json!({ "value": id.as_str(), "display": login }))
        })
        .collect())
}

fn patch(ops: Value) -> Value {
    json!({ "schemas": [PATCH_URN], "Operations": ops })
}

/// The rename PATCH Okta sends on every push (`value` carries the group's own id).
fn rename_body(id: &ScimId, name: &str) -> Value {
    patch(json!([{ "op": "replace", "value": { "id": id.as_str(), "displayName": name } }]))
}

/// Pushes `group` to the app: on first push the existence check, then a link or
/// `POST /Groups` followed by an `add` of its provisioned members; once linked, the
/// rename PATCH and a full `replace` of members.
pub(crate) async fn push_group(
    org: &Org,
    client_id: &str,
    group: &GroupId,
) -> Result<ScimId, ProvisioningError> {
    let (name, link) = {
        let dir = lock(&org.directory);
        let g = dir
            .group(group)
            .ok_or_else(|| ProvisioningError::UnknownGroup(group.to_string()))?;
        let app = dir.app(client_id).ok_or_else(|| unknown_app(client_id))?;
        (g.name.clone(), app.group_links.get(group).cloned())
    };
    let members = pushed_members(org, client_id, group)?;
    let job = begin(org, client_id)
        .await?
        .ok_or(ProvisioningError::NotConnected)?;
    let link = match link {
        Some(id) => Some(id),
        None => job
            .find("Groups", "displayName", &name)
            .await?
            .map(|g| id_of(&g))
            .transpose()?,
    };
    let id = match link {
        Some(id) => {
            let path = format!("/Groups/{id}");
            job.expect(
                Method::PATCH,
                &path,
                Some(&rename_body(&id, &name)),
                &[200, 204],
            )
            .await?;
            let full = patch(json!([{ "op": "replace", "path": "members", "value": members }]));
            job.expect(Method::PATCH, &path, Some(&full), &[200, 204])
                .await?;
            id
        }
        None => {
            let body = json!({ "schemas": [GROUP_URN], "displayName": name, "members": [] });
            let created = job
                .expect(Method::POST, "/Groups", Some(&body), &[200, 201])
                .await?;
            let id = id_of(&created)?;
            if !members.is_empty() {
                let add = patch(json!([{ "op": "add", "path": "members", "value": members }]));
                job.expect(
                    Method::PATCH,
                    &format!("/Groups/{id}"),
                    Some(&add),
                    &[200, 204],
                )
                .await?;
            }
            id
        }
    };
    if let Some(app) = lock(&org.directory).app_mut(client_id) {
        app.group_links.insert(group.clone(), id.clone());
    }
    Ok(id)
}

/// Apps pushing `group`, with its SCIM id there.
fn pushing(org: &Org, group: &GroupId) -> Vec<(String, ScimId)> {
    lock(&org.directory)
        .apps()
        .filter_map(|a| {
            a.group_links
                .get(group)
                .map(|id| (a.client_id.clone(), id.clone()))
        })
        .collect()
}

/// Renames a group and sends the rename PATCH where it is pushed.
pub(crate) async fn rename_group(
    org: &Org,
    group: &GroupId,
    name: &str,
) -> Result<(), ProvisioningError> {
    lock(&org.directory)
        .group_mut(group)
        .ok_or_else(|| ProvisioningError::UnknownGroup(group.to_string()))?
        .name = name.to_owned();
    for (client_id, id) in pushing(org, group) {
        if let Some(job) = begin(org, &client_id).await? {
            job.expect(
                Method::PATCH,
                &format!("/Groups/{id}"),
                Some(&rename_body(&id, name)),
                &[200, 204],
            )
            .await?;
        }
    }
    Ok(())
}

/// Adds or removes a member, with the membership PATCH where the group is pushed and
/// the user provisioned.
pub(crate) async fn change_membership(
    org: &Org,
    group: &GroupId,
    user: &UserId,
    add: bool,
) -> Result<(), ProvisioningError> {
    let login = {
        let mut dir = lock(&org.directory);
        let login = dir
            .user(user)
            .map(|u| u.profile.login.clone())
            .ok_or_else(|| ProvisioningError::UnknownUser(user.to_string()))?;
        let g = dir
            .group_mut(group)
            .ok_or_else(|| ProvisioningError::UnknownGroup(group.to_string()))?;
        if add {
            g.members.insert(user.clone());
        } else {
            g.members.remove(user);
        }
        login
    };
    for (client_id, gid) in pushing(org, group) {
        let member = {
            let dir = lock(&org.directory);
            dir.app(&client_id)
                .filter(|a| a.assigned.contains(user))
                .and_then(|a| a.user_links.get(user).cloned())
        };
        let Some(member) = member else {
            continue;
        };
        let Some(job) = begin(org, &client_id).await? else {
            continue;
        };
        let op = if add {
            json!([{ "op": "add", "path": "members", "value": [{ "value": member.as_str(), "display": login }] }])
        } else {
            json!([{ "op": "remove", "path": format!("members[value eq \"{member}\"]") }])
        };
        job.expect(
            Method::PATCH,
            &format!("/Groups/{gid}"),
            Some(&patch(op)),
            &[200, 204],
        )
        .await?;
    }
    Ok(())
}

/// Stops pushing `group` to the app; with `delete_remote`, `DELETE /Groups/{id}` (Okta
/// asks the admin which).
pub(crate) async fn unpush_group(
    org: &Org,
    client_id: &str,
    group: &GroupId,
    delete_remote: bool,
) -> Result<(), ProvisioningError> {
    let link = lock(&org.directory)
        .app_mut(client_id)
        .ok_or_else(|| unknown_app(client_id))?
        .group_links
        .remove(group);
    if let (true, Some(id)) = (delete_remote, link)
        && let Some(job) = begin(org, client_id).await?
    {
        job.expect(Method::DELETE, &format!("/Groups/{id}"), None, &[204, 200])
            .await?;
    }
    Ok(())
}

/// Deletes a group from the org and `DELETE`s it wherever it is pushed.
pub(crate) async fn delete_group(org: &Org, group: &GroupId) -> Result<(), ProvisioningError> {
    let targets = pushing(org, group);
    lock(&org.directory)
        .remove_group(group)
        .ok_or_else(|| ProvisioningError::UnknownGroup(group.to_string()))?;
    for (client_id, _) in targets {
        unpush_group(org, &client_id, group, true).await?;
    }
    Ok(())
}

/// The SCIM id of `user` in the app, if provisioned there.
fn provisioned_id(org: &Org, client_id: &str, user: &UserId) -> Result<ScimId, ProvisioningError> {
    lock(&org.directory)
        .app(client_id)
        .ok_or_else(|| unknown_app(client_id))?
        .user_links
        .get(user)
        .cloned()
        .ok_or_else(|| ProvisioningError::NotProvisioned(user.to_string()))
}

/// How a role entitlement changes (OKTA.md §5: the PATCH Okta sends is unconfirmed, so
/// each accepted form is available).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleChange {
    /// `{"op":"add","path":"roles","value":[{"value":id}]}`.
    Grant(String),
    /// `{"op":"remove","path":"roles[value eq \"id\"]"}`.
    Revoke(String),
    /// `{"op":"replace","path":"roles","value":[…]}`: exactly these roles.
    Set(Vec<String>),
}

/// Sends a role change for a provisioned user; returns the user as answered (`Null`
/// on `204`).
pub(crate) async fn change_roles(
    org: &Org,
    client_id: &str,
    user: &UserId,
    change: &RoleChange,
) -> Result<Value, ProvisioningError> {
    let id = provisioned_id(org, client_id, user)?;
    let op = match change {
        RoleChange::Grant(role) => {
            json!([{ "op": "add", "path": "roles", "value": [{ "value": role }] }])
        }
        RoleChange::Revoke(role) => {
            json!([{ "op": "remove", "path": format!("roles[value eq \"{role}\"]") }])
        }
        RoleChange::Set(roles) => {
            let values: Vec<Value> = roles.iter().map(|r| json!({ "value": r })).collect();
            json!([{ "op": "replace", "path": "roles", "value": values }])
        }
    };
    let job = begin(org, client_id)
        .await?
        .ok_or(ProvisioningError::NotConnected)?;
    job.expect(
        Method::PATCH,
        &format!("/Users/{id}"),
        Some(&patch(op)),
        &[200, 204],
    )
    .await
}

/// Imports every user (paged `GET /Users`).
pub(crate) async fn import(
    org: &Org,
    client_id: &str,
    endpoint: &str,
) -> Result<Vec<Value>, ProvisioningError> {
    let job = begin(org, client_id)
        .await?
        .ok_or(ProvisioningError::NotConnected)?;
    job.list_all(endpoint).await
}

/// Entitlement discovery: `GET /ResourceTypes`, `/Schemas/{urn}` for extensions it does
/// not know, then every value of each non-User, non-Group resource type.
pub(crate) async fn discover_entitlements(
    org: &Org,
    client_id: &str,
) -> Result<Entitlements, ProvisioningError> {
    let job = begin(org, client_id)
        .await?
        .ok_or(ProvisioningError::NotConnected)?;
    let types = job
        .expect(Method::GET, "/ResourceTypes", None, &[200])
        .await?;
    let mut out = Entitlements::default();
    let list = types
        .get("Resources")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for t in list {
        let id = t
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if id == "User" || id == "Group" || id.is_empty() {
            continue;
        }
        let extensions: Vec<String> = t
            .get("schemaExtensions")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(|e| e.get("schema").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        for ext in extensions {
            if !KNOWN_SCHEMAS.contains(&ext.as_str()) {
                let schema = job
                    .expect(Method::GET, &format!("/Schemas/{ext}"), None, &[200])
                    .await?;
                out.schemas.push(schema);
            }
        }
        let endpoint = t
            .get("endpoint")
            .and_then(Value::as_str)
            .filter(|e| e.starts_with('/') && !e.contains("..") && !e.contains('?'))
            .ok_or_else(|| {
                ProvisioningError::BadResponse(format!("resource type {id} has no usable endpoint"))
            })?
            .to_owned();
        let values = job.list_all(&endpoint).await?;
        out.values.insert(id, values);
        out.resource_types.push(t);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
