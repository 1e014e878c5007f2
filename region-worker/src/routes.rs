//! The HTTP surface of a worker, and its route tables: every path→handler line of the
//! worker is here, one table per host ([`api_host`], [`app_host`]) and one for the
//! admin listener ([`admin_router`]), over the paths of [`crate::paths`]; the
//! submodules hold the handlers (one file per page area or operation).
//!
//! Requests are first dispatched by host: the region's API host serves `/api/...`, its
//! app host serves the web pages, and any other host is refused with `421` (defense in
//! depth behind the gateway, which routes by host too).

pub mod activity;
pub mod admin;
pub mod failed_auth;
pub mod groups_page;
pub mod integrations;
pub mod introspect;
pub mod mcp;
pub mod me;
pub mod oauth;
pub mod oidc;
pub mod openapi;
pub mod pages;
pub mod people;
pub mod scim;
pub mod tokens;
pub mod universal_logout;
pub mod workspace;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post};
use serde_json::json;
use shared::regions::strip_port;
use tower::ServiceExt;

use crate::error::ApiError;
use crate::paths::{self, api, app};
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

/// The public router of a worker: the API host's table and the app host's, each behind
/// its failed-authentication gate and the metrics layer, dispatched by host.
pub fn public(state: AppState) -> Router {
    let hosts = Arc::new(Hosts {
        api: api_host(&state),
        app: app_host(&state),
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

/// The API host's routes: SCIM, the SCIM OAuth server, Okta sign-in, Universal Logout,
/// the token API.
fn api_host(state: &AppState) -> Router {
    Router::new()
        .route(api::PING, get(ping))
        .route(api::OPENAPI, openapi::route(state))
        .merge(scim_routes(state))
        .route(
            api::OKTA_SCIM_OAUTH_AUTHORIZE,
            get(oauth::authorize::authorize),
        )
        .route(api::OKTA_SCIM_OAUTH_TOKEN, post(oauth::token::token))
        .route(api::OKTA_OIDC_LOGIN, get(oidc::login::login))
        .route(api::OKTA_OIDC_CALLBACK, get(oidc::callback::callback))
        .route(
            api::TOKENS,
            get(tokens::api::list).post(tokens::api::create),
        )
        .route(api::TOKEN, delete(tokens::api::revoke))
        .route(api::ME, get(me::me))
        .route(api::MCP_WHOAMI, get(me::whoami))
        .route(
            api::MCP,
            post(mcp::server::post).fallback(mcp::server::not_allowed),
        )
        .route(
            api::MCP_RESOURCE_METADATA,
            get(mcp::metadata::protected_resource),
        )
        .route(
            api::RESOURCE_METADATA,
            get(mcp::metadata::protected_resource),
        )
        .route(
            api::AUTHORIZATION_SERVER_METADATA,
            get(mcp::metadata::authorization_server),
        )
        .route(api::MCP_OAUTH_AUTHORIZE, get(mcp::authorize::authorize))
        .route(api::MCP_OAUTH_TOKEN, post(mcp::token::token))
        .route(api::MCP_OAUTH_REGISTER, post(mcp::register::register))
        .route(api::MCP_OAUTH_REVOKE, post(mcp::revoke::revoke))
        .route(api::TOKEN_INTROSPECT, post(introspect::introspect))
        .route(
            api::OKTA_UNIVERSAL_LOGOUT,
            post(universal_logout::universal_logout),
        )
        // Inside the metrics layer, so that a client turned away still shows there.
        .route_layer(from_fn_with_state(state.clone(), failed_auth::api_gate))
        // Labels by the matched route template: no table is nested, so a label is the
        // path constant's text (e.g. `/api/scim/v2/{team_id}/Users`).
        .route_layer(from_fn(crate::metrics::track))
        .route_layer(from_fn(crate::telemetry::trace_route))
        .fallback(api_not_found)
        .with_state(state.clone())
}

/// SCIM 2.0: every route behind [`scim::authenticate`] (workspace, bearer token, the
/// per-workspace rate limit). A `route_layer` on this group, merged into the API host:
/// it runs on these paths only (on every method of them, so a workspace that is not
/// here is `404` in SCIM's format before any `405`), not on the rest of the host.
fn scim_routes(state: &AppState) -> Router<AppState> {
    use scim::{discovery, groups, roles, users};
    Router::new()
        .route(api::SCIM_USERS, get(users::list).post(users::create))
        .route(
            api::SCIM_USER,
            get(users::read)
                .put(users::replace)
                .patch(users::patch)
                .delete(users::delete),
        )
        .route(api::SCIM_GROUPS, get(groups::list).post(groups::create))
        .route(
            api::SCIM_GROUP,
            get(groups::read)
                .put(groups::replace)
                .patch(groups::patch)
                .delete(groups::delete),
        )
        .route(api::SCIM_ROLES, get(roles::list))
        .route(api::SCIM_ROLE, get(roles::read))
        .route(
            api::SCIM_SERVICE_PROVIDER_CONFIG,
            get(discovery::service_provider_config),
        )
        .route(api::SCIM_RESOURCE_TYPES, get(discovery::resource_types))
        .route(api::SCIM_RESOURCE_TYPE, get(discovery::resource_type))
        .route(api::SCIM_SCHEMAS, get(discovery::schemas))
        .route(api::SCIM_SCHEMA, get(discovery::schema))
        .route(api::SCIM_BULK, any(discovery::not_implemented))
        .route(api::SCIM_ME, any(discovery::not_implemented))
        .route(api::SCIM_WORKSPACE, any(scim::unknown_endpoint))
        .route(api::SCIM_OTHER, any(scim::unknown_endpoint))
        // Only this group's routes: other hosts' 405s stay as they are. Before the
        // route layer, so that authentication still answers first.
        .method_not_allowed_fallback(scim::io::method_not_allowed)
        .route_layer(from_fn_with_state(state.clone(), scim::authenticate))
}

/// The app host's routes: the web pages. An admin-only page is its handler (taking
/// [`crate::web::WorkspaceAdmin`]) and one line here.
fn app_host(state: &AppState) -> Router {
    Router::new()
        .route(app::HOME, get(pages::home))
        .route(
            app::SIGN_IN,
            get(pages::auth_page).post(oidc::discover::submit),
        )
        .route(
            app::SIGN_IN_LINK,
            get(pages::link_confirm).post(pages::link_redeem),
        )
        .route(
            app::SIGN_IN_COMPLETE,
            get(oidc::handoff::complete).post(oidc::handoff::confirm),
        )
        .route(app::SIGN_OUT, post(oidc::sign_out::sign_out))
        .route(
            app::OAUTH_CONSENT,
            get(oauth::consent::show).post(oauth::consent::decide),
        )
        .route(
            app::OKTA_INTEGRATION,
            get(integrations::show).post(integrations::save),
        )
        .route(app::OKTA_DOMAINS, post(integrations::domains::claim))
        .route(
            app::OKTA_DOMAINS_VERIFY,
            post(integrations::domains::verify),
        )
        .route(
            app::OKTA_DOMAINS_REMOVE,
            post(integrations::domains::remove),
        )
        .route(app::OKTA_PROVISIONING, get(oauth::grants_page::show))
        .route(
            app::OKTA_PROVISIONING_DISCONNECT,
            post(oauth::grants_page::disconnect),
        )
        .route(
            app::TOKENS,
            get(tokens::page::show).post(tokens::page::create),
        )
        .route(app::TOKENS_REVOKE, post(tokens::page::revoke))
        .route(app::MCP_DISCONNECT, post(mcp::connected::disconnect))
        .route(
            app::MCP_CONSENT,
            get(mcp::consent::show).post(mcp::consent::decide),
        )
        .route(app::WORKSPACE, get(workspace::show))
        .route(app::ACTIVITY, get(activity::show))
        .route(app::ACTIVITY_EXPORT, get(activity::export))
        .route(app::PEOPLE, get(people::list))
        .route(app::PERSON, get(people::show))
        .route(app::GROUPS, get(groups_page::list))
        .route(app::GROUP, get(groups_page::show))
        .route_layer(from_fn_with_state(state.clone(), failed_auth::app_gate))
        .route_layer(from_fn(crate::metrics::track))
        .route_layer(from_fn(crate::telemetry::trace_route))
        .fallback(app_not_found)
        .with_state(state.clone())
}

/// The admin listener's routes (liveness, readiness, metrics), never on the public port.
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .route(paths::admin::HEALTHZ, get(admin::healthz))
        .route(paths::admin::READYZ, get(admin::readyz))
        .route(paths::admin::METRICS, get(admin::metrics))
        .with_state(state)
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
        p { a.button href=(app::HOME) { "Go to the home page" } }
    };
    (
        axum::http::StatusCode::NOT_FOUND,
        crate::web::page("Page not found", body),
    )
}

async fn api_not_found() -> ApiError {
    ApiError::NotFound("no such endpoint")
}
