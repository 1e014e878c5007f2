//! The HTTP surface of a worker. Requests are first dispatched by host: the region's
//! API host serves `/api/...`, its app host serves the web pages, and any other host is
//! refused with `421` (defense in depth behind the gateway, which routes by host too).

pub mod admin;
pub mod failed_auth;
pub mod integrations;
pub mod introspect;
pub mod me;
pub mod oauth;
pub mod oidc;
pub mod openapi;
pub mod pages;
pub mod scim;
pub mod tokens;
pub mod universal_logout;
pub mod workspace;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use shared::regions::strip_port;
use tower::ServiceExt;

use crate::error::ApiError;
use crate::state::AppState;

/// Which of the region's hosts a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    /// `api.*`: SCIM, OAuth, OIDC, Universal Logout, token API.
    Api,
    /// `app.*`: the web pages.
    App,
}

struct Hosts {
    api: Router,
    app: Router,
    api_host: String,
    app_host: String,
}

/// The public router of a worker.
pub fn public(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/ping", get(ping))
        .route(openapi::PATH, openapi::route(&state))
        .nest("/api/scim/v2", scim::router(state.clone()))
        .nest("/api/okta/scim/oauth", oauth::api_router())
        .merge(oidc::api_router())
        .merge(tokens::api_router())
        .route(me::ME_PATH, get(me::me))
        .route(me::WHOAMI_PATH, get(me::whoami))
        .route(introspect::PATH, post(introspect::introspect))
        .route(
            universal_logout::PATH,
            post(universal_logout::universal_logout)
                .layer(DefaultBodyLimit::max(universal_logout::MAX_BODY)),
        )
        // Inside the metrics layer, so that a client turned away still shows there.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            failed_auth::api_gate,
        ))
        .route_layer(axum::middleware::from_fn(crate::metrics::track))
        .fallback(api_not_found)
        .with_state(state.clone());
    let app = pages::router()
        .merge(oauth::app_router())
        .merge(oidc::app_router())
        .merge(integrations::router())
        .merge(tokens::app_router())
        .route(workspace::PATH, get(workspace::show))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            failed_auth::app_gate,
        ))
        .route_layer(axum::middleware::from_fn(crate::metrics::track))
        .fallback(app_not_found)
        .with_state(state.clone());
    let hosts = Arc::new(Hosts {
        api,
        app,
        api_host: state.config.region.api_host().to_owned(),
        app_host: state.config.region.app_host().to_owned(),
    });
    Router::new().fallback(dispatch).with_state(hosts).layer(
        axum::middleware::map_response_with_state(
            Hsts(state.config.region.app_base().starts_with("https://")),
            security_headers,
        ),
    )
}

/// Whether answers carry `Strict-Transport-Security`: when the region's URLs are
/// HTTPS (production; the gateway redirects plain HTTP before it reaches a worker).
#[derive(Debug, Clone, Copy)]
struct Hsts(bool);

/// Headers on every answer: no MIME sniffing, no `Referer` to other sites (sign-in
/// URLs carry one-time codes; `no-referrer` would also blank the `Origin` of the
/// pages' own form posts, which the CSRF check reads); on pages also the Content-Security-Policy ([`crate::web::assets`]), `no-store` and a
/// refusal to be framed, for browsers that predate `frame-ancestors`; HTTPS only from
/// then on, where the region is served over HTTPS.
async fn security_headers(State(hsts): State<Hsts>, mut response: Response) -> Response {
    use axum::http::HeaderValue;
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if hsts.0 {
        // A year, the region's hosts only (api.* and app.* each send their own).
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    if is_html {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(crate::web::assets::content_security_policy()),
        );
        // Pages show CSRF tokens, one-time secrets and who is signed in: never cached.
        headers
            .entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    response
}

/// The host a request names: `:authority` for HTTP/2, else the `Host` header.
pub fn request_host(req: &Request) -> Option<&str> {
    req.uri().authority().map(|a| a.as_str()).or_else(|| {
        req.headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
    })
}

async fn dispatch(State(hosts): State<Arc<Hosts>>, req: Request) -> Response {
    // One trailing dot (the root label), as the gateway allows.
    let host = request_host(&req).map(|h| {
        let name = strip_port(h);
        name.strip_suffix('.').unwrap_or(name)
    });
    let router = match host {
        Some(h) if h.eq_ignore_ascii_case(&hosts.api_host) => &hosts.api,
        Some(h) if h.eq_ignore_ascii_case(&hosts.app_host) => &hosts.app,
        other => {
            return ApiError::Misdirected(other.unwrap_or_default().to_owned()).into_response();
        }
    };
    match router.clone().oneshot(req).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// A cheap public endpoint: which region answered. Used by probes and benchmarks.
async fn ping(State(state): State<AppState>) -> Response {
    axum::Json(json!({ "status": "ok", "region": state.config.region.id })).into_response()
}

async fn app_not_found() -> (axum::http::StatusCode, maud::Markup) {
    let body = maud::html! {
        h1 { "Page not found" }
        p { "There is no page at this address." }
        p { a.button href="/" { "Go to the home page" } }
    };
    (
        axum::http::StatusCode::NOT_FOUND,
        crate::web::page("Page not found", body),
    )
}

async fn api_not_found() -> ApiError {
    ApiError::NotFound("no such endpoint")
}
