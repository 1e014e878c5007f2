//! An MCP client as the e2e tests play it (issue 17): a Client ID Metadata Document
//! served by a small HTTP server on loopback (the development switch lets the worker
//! fetch it over plain HTTP), dynamic registration, the authorization request with PKCE
//! S256 and `resource`, the consent page driven through the cookie-jar browser, the
//! token endpoint, and JSON-RPC calls to the MCP endpoint.
//!
//! The redirect URI is a loopback address nothing listens on: the browser part stops at
//! the redirect that goes there, and the test reads the code from its `Location`.

use anyhow::{Context, bail};
use reqwest::Method;
use reqwest::header::{HeaderMap, WWW_AUTHENTICATE};
use serde_json::{Value, json};

use crate::harness::TestStack;
use crate::region::Region;
use crate::web::{Page, Web, hidden};

/// The MCP endpoint's path.
pub const MCP_PATH: &str = "/api/mcp";

/// A client metadata document served on loopback for the life of the value.
#[derive(Debug)]
pub struct ClientDocument {
    /// The document's URL: the client id.
    pub url: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for ClientDocument {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Serves the document `make(url)` at `http://127.0.0.1:{port}/oauth/client.json`,
/// with `Cache-Control: max-age=60`.
pub async fn serve_document(make: impl FnOnce(&str) -> Value) -> ClientDocument {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://127.0.0.1:{}/oauth/client.json",
        listener.local_addr().unwrap().port()
    );
    let body = make(&url).to_string();
    let app = axum::Router::new().route(
        "/oauth/client.json",
        axum::routing::get(move || {
            let body = body.clone();
            async move {
                (
                    [
                        ("content-type", "application/json"),
                        ("cache-control", "max-age=60"),
                    ],
                    body,
                )
            }
        }),
    );
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    ClientDocument { url, server }
}

/// A standard document for `name` listing `redirect_uri`.
pub fn document(url: &str, name: &str, redirect_uri: &str) -> Value {
    json!({
        "client_id": url,
        "client_name": name,
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    })
}

/// One MCP client's OAuth state in one region: its id, redirect URI and PKCE verifier.
#[derive(Debug, Clone)]
pub struct McpClient {
    /// Which region's authorization server it talks to.
    pub region: Region,
    /// Its client id (a document URL or a registered id).
    pub client_id: String,
    /// The redirect URI it sends.
    pub redirect_uri: String,
    /// The PKCE verifier of its current authorization.
    pub verifier: String,
}

/// A random PKCE verifier (64 hex characters, of the unreserved set).
pub fn verifier() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The region's MCP resource identifier.
pub fn resource(region: Region) -> String {
    format!("{}{MCP_PATH}", region.api_url())
}

impl McpClient {
    /// A client of `region` with a fresh verifier.
    pub fn new(region: Region, client_id: &str, redirect_uri: &str) -> Self {
        Self {
            region,
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            verifier: verifier(),
        }
    }

    /// The authorization URL: code, S256, this region's resource, `state`; `over`
    /// replaces (or with an empty value, removes) parameters.
    pub fn authorize_url(&self, state: &str, over: &[(&str, &str)]) -> String {
        let challenge = region_worker::pkce::s256(&self.verifier);
        let resource = resource(self.region);
        let mut params: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("client_id", &self.client_id),
            ("redirect_uri", &self.redirect_uri),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("resource", &resource),
            ("scope", "mcp"),
            ("state", state),
        ];
        for (k, v) in over {
            params.retain(|(name, _)| name != k);
            if !v.is_empty() {
                params.push((k, v));
            }
        }
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        format!("{}/api/mcp/oauth/authorize?{query}", self.region.api_url())
    }

    /// Follows `page`'s redirects while they stay off the client's redirect URI;
    /// returns the last page (the consent page, the sign-in page, or the redirect to the
    /// client).
    pub async fn browse(&self, web: &mut Web, mut page: Page) -> anyhow::Result<Page> {
        for _ in 0..12 {
            match (page.status, page.location.clone()) {
                (301 | 302 | 303 | 307, Some(next)) if !self.is_callback(&next) => {
                    page = web.get(&next).await?;
                }
                _ => return Ok(page),
            }
        }
        bail!("too many redirects from {}", page.url)
    }

    /// Whether `location` goes to this client's redirect URI (any loopback port).
    pub fn is_callback(&self, location: &str) -> bool {
        let (Ok(l), Ok(r)) = (
            url::Url::parse(location),
            url::Url::parse(&self.redirect_uri),
        ) else {
            return false;
        };
        l.scheme() == r.scheme() && l.host() == r.host() && l.path() == r.path()
    }

    /// Starts an authorization in `web` and follows it to the page it stops at.
    pub async fn start(&self, web: &mut Web, state: &str) -> anyhow::Result<Page> {
        let p = web.get(&self.authorize_url(state, &[])).await?;
        self.browse(web, p).await
    }

    /// Posts `decision` on the consent page `consent`; returns the redirect to the
    /// client.
    pub async fn decide(
        &self,
        web: &mut Web,
        consent: &Page,
        decision: &str,
    ) -> anyhow::Result<Page> {
        let csrf = hidden(&consent.body, "csrf")?;
        let request = hidden(&consent.body, "request")?;
        let p = web
            .post(
                &format!("{}/mcp/consent", self.region.app_url()),
                &[
                    ("request", &request),
                    ("csrf", &csrf),
                    ("decision", decision),
                ],
            )
            .await?;
        Ok(p)
    }

    /// Approves on `consent`; returns the code, after checking `state` and `iss`.
    pub async fn approve(
        &self,
        web: &mut Web,
        consent: &Page,
        state: &str,
    ) -> anyhow::Result<String> {
        let p = self.decide(web, consent, "approve").await?;
        let location = p
            .location
            .clone()
            .with_context(|| format!("no redirect: {} {}", p.status, p.body))?;
        if !self.is_callback(&location) {
            bail!("approval went to {location}");
        }
        if param(&location, "state").as_deref() != Some(state) {
            bail!("state not echoed: {location}");
        }
        if param(&location, "iss") != Some(self.region.api_url()) {
            bail!("iss missing or wrong: {location}");
        }
        param(&location, "code").with_context(|| format!("no code in {location}"))
    }

    /// Posts `form` to the token endpoint.
    pub async fn token_request(&self, stack: &TestStack, form: &[(&str, &str)]) -> (u16, Value) {
        post_form(stack, self.region, "/api/mcp/oauth/token", form).await
    }

    /// Redeems `code` as this client.
    pub async fn exchange(&self, stack: &TestStack, code: &str) -> (u16, Value) {
        let resource = resource(self.region);
        self.token_request(
            stack,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &self.redirect_uri),
                ("code_verifier", &self.verifier),
                ("client_id", &self.client_id),
                ("resource", &resource),
            ],
        )
        .await
    }

    /// Rotates `refresh_token` as this client.
    pub async fn refresh(&self, stack: &TestStack, refresh_token: &str) -> (u16, Value) {
        let resource = resource(self.region);
        self.token_request(
            stack,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", &self.client_id),
                ("resource", &resource),
            ],
        )
        .await
    }

    /// The whole browser part for a browser already signed in: start, approve, redeem.
    /// Returns the token response.
    pub async fn connect(&self, stack: &TestStack, web: &mut Web) -> anyhow::Result<Value> {
        let consent = self.start(web, "st-1").await?;
        if !(consent.status == 200 && consent.body.contains("/mcp/consent")) {
            bail!("no consent page: {} {}", consent.status, consent.body);
        }
        let code = self.approve(web, &consent, "st-1").await?;
        let (status, tokens) = self.exchange(stack, &code).await;
        if status != 200 {
            bail!("token endpoint answered {status}: {tokens}");
        }
        Ok(tokens)
    }
}

/// A query parameter of `url`.
pub fn param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Posts a form to `path` on `region`'s API host: status and JSON body.
pub async fn post_form(
    stack: &TestStack,
    region: Region,
    path: &str,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let r = stack
        .request(Method::POST, region.api(), path)
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Registers a client with RFC 7591: status and body.
pub async fn register(stack: &TestStack, region: Region, metadata: &Value) -> (u16, Value) {
    let r = stack
        .request(Method::POST, region.api(), "/api/mcp/oauth/register")
        .json(metadata)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// One JSON-RPC message to the MCP endpoint with `token` (if any): status, headers,
/// body.
pub async fn rpc(
    stack: &TestStack,
    region: Region,
    token: Option<&str>,
    message: &Value,
) -> (u16, HeaderMap, Value) {
    let mut req = stack
        .request(Method::POST, region.api(), MCP_PATH)
        .header("accept", "application/json, text/event-stream")
        .json(message);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap_or_default();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// Calls the `whoami` tool: status and the tool result (or the whole body on error).
pub async fn whoami_tool(stack: &TestStack, region: Region, token: &str) -> (u16, Value) {
    let (status, _, body) = rpc(
        stack,
        region,
        Some(token),
        &json!({ "jsonrpc": "2.0", "id": 7, "method": "tools/call",
                 "params": { "name": "whoami", "arguments": {} } }),
    )
    .await;
    match status {
        200 => (status, body["result"].clone()),
        _ => (status, body),
    }
}

/// The `WWW-Authenticate` header of a response.
pub fn challenge(headers: &HeaderMap) -> String {
    headers
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// What an SDK's script asks of the test through the [`Bridge`].
#[derive(Debug)]
pub enum BridgeRequest {
    /// Consent to this authorization URL in the test's browser; answer the redirect to
    /// the client (`Ok`), or why there is none (`Err`).
    Authorize(String),
    /// Run the test's step of this name (e.g. Universal Logout), then answer.
    Step(String),
}

/// One request of the script and where its answer goes.
pub type BridgeCall = (
    BridgeRequest,
    tokio::sync::oneshot::Sender<Result<String, String>>,
);

/// The test's side of an SDK script: an HTTP server on loopback the script's redirect
/// handler and steps call, whose requests the test answers with its own browser and
/// stack ([`Bridge::calls`]). The script never sees the test's cookies.
#[derive(Debug)]
pub struct Bridge {
    /// `http://127.0.0.1:{port}`.
    pub url: String,
    /// The script's requests, in order.
    pub calls: tokio::sync::mpsc::Receiver<BridgeCall>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Starts a [`Bridge`].
pub async fn bridge() -> Bridge {
    use axum::http::StatusCode;
    let (tx, calls) = tokio::sync::mpsc::channel::<BridgeCall>(4);
    let ask = move |make: fn(String) -> BridgeRequest| {
        let tx = tx.clone();
        move |body: String| {
            let tx = tx.clone();
            async move {
                let (reply, answer) = tokio::sync::oneshot::channel();
                if tx.send((make(body), reply)).await.is_err() {
                    return (StatusCode::GONE, "the test is gone".to_owned());
                }
                match answer.await {
                    Ok(Ok(text)) => (StatusCode::OK, text),
                    Ok(Err(why)) => (StatusCode::CONFLICT, why),
                    Err(_) => (StatusCode::GONE, "the test is gone".to_owned()),
                }
            }
        }
    };
    let app = axum::Router::new()
        .route(
            "/authorize",
            axum::routing::post(ask(BridgeRequest::Authorize)),
        )
        .route("/step", axum::routing::post(ask(BridgeRequest::Step)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Bridge { url, calls, server }
}

/// Consents to `authorization_url` in `web` for a client returning to `redirect_uri`:
/// the redirect to the client, or why the browser did not get there (no session: the
/// sign-in page).
pub async fn consent_in_browser(
    web: &mut Web,
    region: Region,
    redirect_uri: &str,
    authorization_url: &str,
) -> Result<String, String> {
    let client = McpClient::new(region, "", redirect_uri);
    let first = web
        .get(authorization_url)
        .await
        .map_err(|e| e.to_string())?;
    let consent = client.browse(web, first).await.map_err(|e| e.to_string())?;
    if !(consent.status == 200 && consent.body.contains("action=\"/mcp/consent\"")) {
        return Err(format!(
            "the browser reached no consent page but {} ({})",
            consent.url, consent.status
        ));
    }
    let p = client
        .decide(web, &consent, "approve")
        .await
        .map_err(|e| e.to_string())?;
    match p.location {
        Some(l) if client.is_callback(&l) => Ok(l),
        other => Err(format!("approval answered {} {other:?}", p.status)),
    }
}

/// The official SDKs' scripts and how to run them, when installed
/// (`tests/mcp-clients/install.sh`): `None` when missing, unless
/// `CLOSEDLOOP_REQUIRE_MCP_SDKS` is set (then missing is a failure).
pub fn sdk_command(sdk: &str) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let (program, script) = match sdk {
        "python" => (
            root.join("target/mcp-python-venv/bin/python"),
            root.join("tests/mcp-clients/python_client.py"),
        ),
        _ => (
            std::path::PathBuf::from("node"),
            root.join("tests/mcp-clients/ts_client.mjs"),
        ),
    };
    let installed = match sdk {
        "python" => program.exists(),
        _ => root
            .join("tests/mcp-clients/node_modules/@modelcontextprotocol/sdk/package.json")
            .exists(),
    };
    if !installed {
        assert!(
            std::env::var_os("CLOSEDLOOP_REQUIRE_MCP_SDKS").is_none(),
            "the {sdk} MCP SDK is not installed: run tests/mcp-clients/install.sh"
        );
        eprintln!("the {sdk} MCP SDK is not installed (tests/mcp-clients/install.sh): skipped");
        return None;
    }
    Some((program, script))
}
