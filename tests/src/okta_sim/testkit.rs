//! Test helpers for the sim's own tests: an RS256 verifier independent of jsonwebtoken
//! (the `rsa` crate's PKCS#1 v1.5 verifier over the raw signing input), a capture
//! server that records requests and answers as told, and a real stack with a workspace
//! and a SCIM token.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::BoxedUint;
use rsa::signature::Verifier;
use serde_json::Value;
use tokio::sync::oneshot;

use super::lock;
use super::provisioning::{ScimAuth, ScimSettings};
use super::upstream::Upstream;
use crate::harness::{Scim, TestStack, US_API};
use crate::region::Region;

/// The three parts of a compact JWT, decoded (header, claims, signature bytes) and the
/// signing input.
pub(crate) fn split_jwt(jwt: &str) -> Result<(Value, Value, Vec<u8>, String), String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [h, c, s] = parts[..] else {
        return Err(format!("{} parts", parts.len()));
    };
    let json = |p: &str| -> Result<Value, String> {
        let bytes = URL_SAFE_NO_PAD.decode(p).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    };
    let sig = URL_SAFE_NO_PAD.decode(s).map_err(|e| e.to_string())?;
    Ok((json(h)?, json(c)?, sig, format!("{h}.{c}")))
}

/// Verifies an RS256 JWT against `jwks` by `kid`, without jsonwebtoken.
pub(crate) fn verify_rs256(jwt: &str, jwks: &Value) -> Result<(Value, Value), String> {
    let (header, claims, sig, input) = split_jwt(jwt)?;
    if header["alg"] != "RS256" {
        return Err(format!("alg {}", header["alg"]));
    }
    let kid = header["kid"].as_str().ok_or("no kid")?;
    let jwk = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == kid))
        .ok_or_else(|| format!("kid {kid} is not in the JWKS"))?;
    let field = |name: &str| -> Result<BoxedUint, String> {
        let b64 = jwk[name].as_str().ok_or(format!("no {name}"))?;
        let bytes = URL_SAFE_NO_PAD.decode(b64).map_err(|e| e.to_string())?;
        Ok(BoxedUint::from_be_slice_vartime(&bytes))
    };
    let public = rsa::PublicKey::new(field("n")?, field("e")?).map_err(|e| e.to_string())?;
    let verifier = rsa::pkcs1v15::VerifyingKey::<rsa::sha2::Sha256>::new(public);
    let signature =
        rsa::pkcs1v15::Signature::try_from(sig.as_slice()).map_err(|e| e.to_string())?;
    verifier
        .verify(input.as_bytes(), &signature)
        .map_err(|e| format!("signature: {e}"))?;
    Ok((header, claims))
}

/// A request the capture server received.
#[derive(Debug, Clone)]
pub(crate) struct Captured {
    /// Method.
    pub(crate) method: String,
    /// Path and query.
    pub(crate) uri: String,
    /// Headers.
    pub(crate) headers: HeaderMap,
    /// Body.
    pub(crate) body: Bytes,
}

/// What the capture server answers: status, headers, body.
pub(crate) type Reply = (u16, Vec<(&'static str, String)>, String);

/// A server on port 0 that records every request and answers with `respond(request,
/// index)`.
#[derive(Debug)]
pub(crate) struct Capture {
    /// `http://127.0.0.1:PORT`.
    pub(crate) url: String,
    /// Requests received, oldest first.
    pub(crate) requests: Arc<Mutex<Vec<Captured>>>,
    /// Dropping it stops the server.
    _stop: oneshot::Sender<()>,
}

impl Capture {
    pub(crate) async fn start(
        respond: impl Fn(&Captured, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let requests: Arc<Mutex<Vec<Captured>>> = Arc::default();
        let respond = Arc::new(respond);
        let log = requests.clone();
        let router = axum::Router::new().fallback(move |req: Request| {
            let log = log.clone();
            let respond = respond.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, 1 << 20)
                    .await
                    .unwrap_or_default();
                let captured = Captured {
                    method: parts.method.to_string(),
                    uri: parts.uri.to_string(),
                    headers: parts.headers,
                    body,
                };
                let index = {
                    let mut l = lock(&log);
                    l.push(captured.clone());
                    l.len() - 1
                };
                let (status, headers, body) = respond(&captured, index);
                let mut r: Response = body.into_response();
                *r.status_mut() = axum::http::StatusCode::from_u16(status).unwrap_or_default();
                for (k, v) in headers {
                    if let Ok(v) = v.parse() {
                        r.headers_mut().insert(k, v);
                    }
                }
                r
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Self {
            url,
            requests,
            _stop: tx,
        }
    }

    /// A copy of the requests so far.
    pub(crate) fn requests(&self) -> Vec<Captured> {
        lock(&self.requests).clone()
    }
}

/// A two-region stack, a US workspace, and a SCIM connection Okta would be given.
#[derive(Debug)]
pub(crate) struct ScimSetup {
    /// The stack (kept alive).
    pub(crate) stack: TestStack,
    /// A direct SCIM client, to check what the engine did.
    pub(crate) scim: Scim,
    /// The workspace's first admin's email.
    pub(crate) admin_email: String,
}

impl ScimSetup {
    pub(crate) async fn start() -> Self {
        let stack = TestStack::start().await.unwrap();
        let admin_email = "admin@acme.test".to_owned();
        let ws = stack.workspace(Region::Us, "Acme", &admin_email).await;
        let scim = stack.scim(Region::Us, &ws.team_id, "").await;
        Self {
            stack,
            scim,
            admin_email,
        }
    }

    /// The SCIM base URL, reached through the gateway.
    pub(crate) fn upstream(&self) -> Upstream {
        Upstream::via(
            &format!("http://{US_API}/api/scim/v2/{}", self.scim.team_id),
            &self.stack.gateway.url(),
        )
        .unwrap()
    }

    /// Settings with the operator token.
    pub(crate) fn settings(&self) -> ScimSettings {
        ScimSettings::new(self.upstream(), ScimAuth::bearer(self.scim.token.clone()))
    }
}
