//! The org authorization server (OKTA.md §8): issuer exactly the org URL, endpoints
//! under `/oauth2/v1/`. This file holds the router, what the endpoints share (grants,
//! errors, parameter parsing) and the small endpoints (discovery, keys, userinfo,
//! logout); `authorize` (with the login page) and `token` have files of their own.
//!
//! Handlers never panic on what a client sends: a bad request gets the answer Okta
//! gives, an RFC 6749 error body from the token endpoint, an error redirect from
//! `/authorize` once the redirect URI is trusted, an error page before that.

pub mod authorize;
pub mod token;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::directory::UserId;
use super::{Org, lock};

/// The org's browser-session cookie (Okta's is `sid` too).
pub const SESSION_COOKIE: &str = "sid";

/// How long an authorization code is valid (Okta's documented token lifetimes: five
/// minutes for a code, one hour for access and ID tokens).
pub const CODE_TTL_SECS: i64 = 300;

/// Lifetime of access and ID tokens (Okta's org server: one hour).
pub const TOKEN_TTL_SECS: i64 = 3600;

/// The scopes the org server grants.
pub const SCOPES: [&str; 3] = ["openid", "profile", "email"];

/// An authorization code waiting to be exchanged.
#[derive(Debug, Clone)]
pub(crate) struct CodeGrant {
    /// The client it was issued to.
    pub(crate) client_id: String,
    /// The `redirect_uri` of the authorize request, which the exchange must repeat.
    pub(crate) redirect_uri: String,
    /// Who signed in.
    pub(crate) user: UserId,
    /// Granted scopes.
    pub(crate) scopes: Vec<String>,
    /// The authorize request's `nonce`, echoed in the ID token.
    pub(crate) nonce: Option<String>,
    /// The PKCE S256 challenge, when one was sent.
    pub(crate) code_challenge: Option<String>,
    /// When the code stops working (Unix seconds).
    pub(crate) expires_at: i64,
    /// When the user authenticated (the ID token's `auth_time`).
    pub(crate) auth_time: i64,
}

/// An access token the org issued, for `/userinfo`.
#[derive(Debug, Clone)]
pub(crate) struct AccessGrant {
    /// Whose.
    pub(crate) user: UserId,
    /// Its scopes, which decide the claims `/userinfo` returns.
    pub(crate) scopes: Vec<String>,
    /// Expiry (Unix seconds).
    pub(crate) expires_at: i64,
}

/// A request received at `/oauth2/v1/logout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutEvent {
    /// The `aud` of the `id_token_hint`.
    pub client_id: String,
    /// The `sub` of the hint.
    pub user: String,
    /// Where the browser was sent back, if anywhere.
    pub post_logout_redirect_uri: Option<String>,
}

/// Codes, tokens and sessions the org handed out.
#[derive(Debug, Default)]
pub(crate) struct Grants {
    /// Authorization codes by value (single use: removed on exchange).
    pub(crate) codes: HashMap<String, CodeGrant>,
    /// Access tokens by value.
    pub(crate) access_tokens: HashMap<String, AccessGrant>,
    /// Browser sessions: cookie value → user and when they authenticated.
    pub(crate) sessions: HashMap<String, (UserId, i64)>,
    /// Logout requests received.
    pub(crate) logouts: Vec<LogoutEvent>,
    /// Signs authorize requests without a session in as this user.
    pub(crate) auto_sign_in: Option<UserId>,
}

impl Grants {
    /// Opens a browser session for `user`, authenticated at `now`; returns the cookie
    /// value.
    pub(crate) fn open_session(&mut self, user: &UserId, now: i64) -> String {
        let sid = super::directory::random_secret(32);
        self.sessions.insert(sid.clone(), (user.clone(), now));
        sid
    }
}

/// An RFC 6749 error answer (`{"error","error_description"}`).
#[derive(Debug)]
pub(crate) struct OAuthError {
    /// 400, or 401 for client authentication.
    status: StatusCode,
    /// The RFC 6749 error code.
    error: &'static str,
    /// Okta's wording, for humans.
    description: String,
    /// A `WWW-Authenticate` challenge (401 after Basic authentication).
    challenge: Option<&'static str>,
}

impl OAuthError {
    pub(crate) fn new(
        status: StatusCode,
        error: &'static str,
        description: impl Into<String>,
    ) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            challenge: None,
        }
    }

    pub(crate) fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    pub(crate) fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    pub(crate) fn invalid_client(basic: bool) -> Self {
        Self {
            challenge: basic.then_some("Basic realm=\"okta-sim\""),
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Client authentication failed. Either the client or the client credentials are invalid.",
            )
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.error, "error_description": self.description });
        let mut r = (self.status, no_store(), axum::Json(body)).into_response();
        if let Some(c) = self.challenge {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
        r
    }
}

/// `Cache-Control: no-store` and `Pragma: no-cache`, for anything carrying tokens.
pub(crate) fn no_store() -> [(header::HeaderName, &'static str); 2] {
    [
        (header::CACHE_CONTROL, "no-store"),
        (header::PRAGMA, "no-cache"),
    ]
}

/// Parses a query string or form body; a repeated parameter is an error (RFC 6749
/// §3.1: parameters must not be included more than once). Returns its name.
pub(crate) fn parse_params(raw: &str) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        if out.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(k.into_owned());
        }
    }
    Ok(out)
}

/// Escapes text for HTML.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An error page, for requests that cannot be answered by redirect.
pub(crate) fn error_page(status: StatusCode, detail: &str) -> Response {
    let body = format!(
        "<!doctype html><title>Okta (simulated): error</title><h1>{} {}</h1><p id=\"error\">{}</p>",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default(),
        escape(detail)
    );
    (status, Html(body)).into_response()
}

/// The cookie value of the session cookie, if the request carries one.
pub(crate) fn session_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// The org's routes.
pub(crate) fn router(org: Arc<Org>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/oauth2/v1/authorize", get(authorize::authorize))
        .route("/sim/login", post(authorize::login))
        .route("/oauth2/v1/token", post(token::token))
        .route("/oauth2/v1/keys", get(keys))
        .route("/oauth2/v1/userinfo", get(userinfo).post(userinfo))
        .route("/oauth2/v1/logout", get(logout))
        .fallback(not_found)
        .with_state(org)
}

async fn home(State(org): State<Arc<Org>>) -> Html<String> {
    Html(format!(
        "<!doctype html><title>Okta (simulated)</title><h1>Simulated Okta org</h1><p>Issuer: <code>{}</code></p>",
        escape(&org.issuer)
    ))
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({
            "errorCode": "E0000007",
            "errorSummary": "Not found: Resource not found",
            "errorCauses": []
        })),
    )
        .into_response()
}

/// The discovery document of the org authorization server, limited to what it serves.
pub(crate) fn discovery_document(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth2/v1/authorize"),
        "token_endpoint": format!("{issuer}/oauth2/v1/token"),
        "userinfo_endpoint": format!("{issuer}/oauth2/v1/userinfo"),
        "jwks_uri": format!("{issuer}/oauth2/v1/keys"),
        "end_session_endpoint": format!("{issuer}/oauth2/v1/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": SCOPES,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "claims_supported": [
            "iss", "ver", "sub", "aud", "iat", "exp", "jti", "auth_time", "amr", "idp",
            "nonce", "at_hash", "name", "given_name", "family_name", "preferred_username",
            "locale", "email", "email_verified"
        ],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": false,
        "claims_parameter_supported": false
    })
}

async fn discovery(State(org): State<Arc<Org>>) -> Response {
    (
        [(header::CACHE_CONTROL, "max-age=86400, must-revalidate")],
        axum::Json(discovery_document(&org.issuer)),
    )
        .into_response()
}

/// `/oauth2/v1/keys[?client_id=…]`: the JWKS with the `Cache-Control` relying parties
/// must honour. A `client_id` must name an app (no app-pinned keys are modelled).
async fn keys(State(org): State<Arc<Org>>, RawQuery(query): RawQuery) -> Response {
    let params = match parse_params(query.as_deref().unwrap_or_default()) {
        Ok(p) => p,
        Err(name) => {
            return OAuthError::invalid_request(format!("The '{name}' parameter was repeated."))
                .into_response();
        }
    };
    if let Some(client_id) = params.get("client_id")
        && lock(&org.directory).app(client_id).is_none()
    {
        return OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "Invalid value for 'client_id' parameter.",
        )
        .into_response();
    }
    let jwks = lock(&org.keys).jwks();
    let cache = format!("max-age={}, must-revalidate", org.jwks_max_age.as_secs());
    ([(header::CACHE_CONTROL, cache)], axum::Json(jwks)).into_response()
}

/// The claims about `user` that `scopes` release (userinfo and ID token share them).
pub(crate) fn profile_claims(org: &Org, user: &UserId, scopes: &[String]) -> Option<Value> {
    let dir = lock(&org.directory);
    let u = dir.user(user)?;
    let mut claims = json!({ "sub": u.id.as_str() });
    if scopes.iter().any(|s| s == "profile") {
        claims["name"] = json!(u.profile.display_name());
        claims["given_name"] = json!(u.profile.given_name);
        claims["family_name"] = json!(u.profile.family_name);
        claims["preferred_username"] = json!(u.profile.login);
        claims["locale"] = json!(u.profile.locale);
    }
    if scopes.iter().any(|s| s == "email") {
        claims["email"] = json!(u.profile.email);
        claims["email_verified"] = json!(true);
    }
    Some(claims)
}

/// `/oauth2/v1/userinfo` with a bearer access token.
async fn userinfo(State(org): State<Arc<Org>>, headers: HeaderMap) -> Response {
    let invalid = || {
        (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                "Bearer error=\"invalid_token\", error_description=\"The access token is invalid.\"",
            )],
        )
            .into_response()
    };
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned())
    else {
        return invalid();
    };
    let now = org.clock.now();
    let grant = lock(&org.grants)
        .access_tokens
        .get(&token)
        .filter(|g| g.expires_at > now)
        .cloned();
    let Some(grant) = grant else {
        return invalid();
    };
    if !lock(&org.directory)
        .user(&grant.user)
        .is_some_and(|u| u.active)
    {
        return invalid();
    }
    match profile_claims(&org, &grant.user, &grant.scopes) {
        Some(claims) => (no_store(), axum::Json(claims)).into_response(),
        None => invalid(),
    }
}

/// `/oauth2/v1/logout?id_token_hint=…&post_logout_redirect_uri=…&state=…`: ends the
/// browser's org session and sends it back to a registered post-logout URI.
async fn logout(
    State(org): State<Arc<Org>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = match parse_params(query.as_deref().unwrap_or_default()) {
        Ok(p) => p,
        Err(name) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                &format!("The '{name}' parameter was repeated."),
            );
        }
    };
    let Some(hint) = params.get("id_token_hint") else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The 'id_token_hint' parameter is required.",
        );
    };
    let Some(claims) = token::check_id_token_hint(&org, hint) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The 'id_token_hint' parameter is not a valid ID token of this org.",
        );
    };
    let client_id = claims["aud"].as_str().unwrap_or_default().to_owned();
    let user = claims["sub"].as_str().unwrap_or_default().to_owned();
    let redirect = params.get("post_logout_redirect_uri").cloned();
    if let Some(uri) = &redirect {
        let registered = lock(&org.directory)
            .app(&client_id)
            .is_some_and(|a| a.post_logout_redirect_uris.iter().any(|u| u == uri));
        if !registered {
            return error_page(
                StatusCode::BAD_REQUEST,
                "The 'post_logout_redirect_uri' parameter must be a Logout redirect URI in the client app settings.",
            );
        }
    }
    {
        let mut grants = lock(&org.grants);
        if let Some(sid) = session_of(&headers) {
            grants.sessions.remove(&sid);
        }
        grants.logouts.push(LogoutEvent {
            client_id,
            user,
            post_logout_redirect_uri: redirect.clone(),
        });
    }
    let clear = format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax");
    match redirect.and_then(|u| url::Url::parse(&u).ok()) {
        Some(mut target) => {
            if let Some(state) = params.get("state") {
                target.query_pairs_mut().append_pair("state", state);
            }
            (
                StatusCode::FOUND,
                [
                    (header::LOCATION, target.to_string()),
                    (header::SET_COOKIE, clear),
                ],
            )
                .into_response()
        }
        None => (
            [(header::SET_COOKIE, clear)],
            Html("<!doctype html><title>Okta (simulated)</title><p>You are signed out.</p>"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests;
