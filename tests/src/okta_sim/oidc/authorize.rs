//! `/oauth2/v1/authorize` and the sim's login page.
//!
//! Validation follows Okta's order: an unknown `client_id` or an unregistered
//! `redirect_uri` gets an error page (never a redirect to an untrusted URI); every later
//! problem is an error redirect to the registered URI with `state`. Every redirect, code
//! or error, carries the org's `iss` (RFC 9207), as Okta's do. A request is signed
//! in by the browser's org session cookie, else by the org's auto sign-in user (tests),
//! else the login page asks (`prompt=none` answers `login_required` instead).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::{
    CODE_TTL_SECS, CodeGrant, SCOPES, SESSION_COOKIE, error_page, escape, parse_params, session_of,
};
use crate::okta_sim::directory::{UserId, random_secret};
use crate::okta_sim::{Org, lock};

/// The redirect carrying an authorization error (RFC 6749 §4.1.2.1) and the issuer.
fn redirect_error(
    org: &Org,
    redirect_uri: &str,
    error: &str,
    description: &str,
    state: Option<&str>,
) -> Response {
    let pairs = [
        ("error", Some(error)),
        ("error_description", Some(description)),
        ("state", state),
        ("iss", Some(org.issuer.as_str())),
    ];
    redirect_with(redirect_uri, &pairs)
}

/// A `302` to `uri` with `pairs` appended to its query.
fn redirect_with(uri: &str, pairs: &[(&str, Option<&str>)]) -> Response {
    let Ok(mut target) = url::Url::parse(uri) else {
        return error_page(StatusCode::BAD_REQUEST, "The redirect URI is not a URL.");
    };
    {
        let mut q = target.query_pairs_mut();
        for (k, v) in pairs {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
    }
    (StatusCode::FOUND, [(header::LOCATION, target.to_string())]).into_response()
}

/// Why an authorize request cannot go on, as Okta words it.
fn check_request(params: &HashMap<String, String>) -> Result<Vec<String>, (&'static str, String)> {
    match params.get("response_type").map(String::as_str) {
        Some("code") => {}
        None => {
            return Err((
                "invalid_request",
                "The 'response_type' parameter is required.".into(),
            ));
        }
        Some(other) => {
            return Err((
                "unsupported_response_type",
                format!(
                    "The response type is not supported by the authorization server. Configured response types: [code]. Requested: {other}."
                ),
            ));
        }
    }
    let scopes: Vec<String> = params
        .get("scope")
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    if !scopes.iter().any(|s| s == "openid") {
        return Err((
            "invalid_scope",
            "The authentication request has an invalid 'scope' parameter: 'openid' is required."
                .into(),
        ));
    }
    if let Some(bad) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
        return Err((
            "invalid_scope",
            format!(
                "One or more scopes are not configured for the authorization server resource: {bad}."
            ),
        ));
    }
    if params.get("state").is_none_or(|s| s.is_empty()) {
        return Err((
            "invalid_request",
            "The 'state' parameter is required.".into(),
        ));
    }
    match (
        params.get("code_challenge"),
        params.get("code_challenge_method").map(String::as_str),
    ) {
        (None, None) => {}
        (Some(c), Some("S256")) if (43..=128).contains(&c.len()) => {}
        (Some(_), Some("S256")) => {
            return Err((
                "invalid_request",
                "The 'code_challenge' parameter must be between 43 and 128 characters.".into(),
            ));
        }
        (None, Some(_)) => {
            return Err((
                "invalid_request",
                "The 'code_challenge' parameter is required when 'code_challenge_method' is sent."
                    .into(),
            ));
        }
        (Some(_), _) => {
            return Err((
                "invalid_request",
                "The 'code_challenge_method' parameter must be S256.".into(),
            ));
        }
    }
    Ok(scopes)
}

/// `GET /oauth2/v1/authorize`.
pub(crate) async fn authorize(
    State(org): State<Arc<Org>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let raw = query.unwrap_or_default();
    let params = match parse_params(&raw) {
        Ok(p) => p,
        Err(name) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                &format!("The '{name}' parameter was repeated."),
            );
        }
    };
    let Some(client_id) = params.get("client_id").cloned() else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The 'client_id' parameter is required.",
        );
    };
    let registered = {
        let dir = lock(&org.directory);
        let Some(app) = dir.app(&client_id) else {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Invalid value for 'client_id' parameter.",
            );
        };
        params
            .get("redirect_uri")
            .filter(|u| app.redirect_uris.contains(u))
            .cloned()
    };
    let Some(redirect_uri) = registered else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The 'redirect_uri' parameter must be a Login redirect URI in the client app settings.",
        );
    };
    let state = params.get("state").map(String::as_str);
    let scopes = match check_request(&params) {
        Ok(s) => s,
        Err((error, description)) => {
            return redirect_error(&org, &redirect_uri, error, &description, state);
        }
    };
    if lock(&org.faults).deny_authorize {
        return redirect_error(
            &org,
            &redirect_uri,
            "access_denied",
            "Policy evaluation failed for this request, please check the policy configurations.",
            state,
        );
    }

    let prompt: Vec<&str> = params
        .get("prompt")
        .map(|p| p.split_whitespace().collect())
        .unwrap_or_default();
    let signed_in: Option<(UserId, i64)> = if prompt.contains(&"login") {
        None
    } else {
        let grants = lock(&org.grants);
        session_of(&headers)
            .and_then(|sid| grants.sessions.get(&sid).cloned())
            .or_else(|| grants.auto_sign_in.clone().map(|u| (u, org.clock.now())))
    };
    let Some((user, auth_time)) = signed_in else {
        if prompt.contains(&"none") {
            return redirect_error(
                &org,
                &redirect_uri,
                "login_required",
                "The client specified not to prompt, but the user is not logged in.",
                state,
            );
        }
        return login_page(&org, &raw, None, StatusCode::OK);
    };
    if !lock(&org.directory).may_sign_in(&user, &client_id) {
        return redirect_error(
            &org,
            &redirect_uri,
            "access_denied",
            "User is not assigned to the client application.",
            state,
        );
    }

    let code = random_secret(43);
    let now = org.clock.now();
    lock(&org.grants).codes.insert(
        code.clone(),
        CodeGrant {
            client_id,
            redirect_uri: redirect_uri.clone(),
            user,
            scopes,
            nonce: params.get("nonce").cloned(),
            code_challenge: params.get("code_challenge").cloned(),
            expires_at: now + CODE_TTL_SECS,
            auth_time,
        },
    );
    redirect_with(
        &redirect_uri,
        &[
            ("code", Some(&code)),
            ("state", state),
            ("iss", Some(&org.issuer)),
        ],
    )
}

/// The login page: a form, and the org's users so a person trying the demo knows whom
/// to sign in as.
fn login_page(
    org: &Org,
    authorize_query: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let users: String = lock(&org.directory)
        .users()
        .filter(|u| u.active)
        .map(|u| {
            format!(
                "<li><code>{}</code> ({})</li>",
                escape(&u.profile.login),
                escape(&u.profile.display_name())
            )
        })
        .collect();
    let error = error
        .map(|e| format!("<p id=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    let body = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Okta (simulated): sign in</title></head>
<body>
<h1>Sign in</h1>
<p>Simulated Okta org <code>{issuer}</code></p>
{error}
<form method="post" action="/sim/login">
<input type="hidden" name="authorize" value="{query}">
<label>Username <input name="username" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Sign in</button>
</form>
<h2>Users</h2>
<ul>{users}</ul>
</body></html>"#,
        issuer = escape(&org.issuer),
        query = escape(authorize_query),
    );
    (status, Html(body)).into_response()
}

/// `POST /sim/login`: checks the password, opens the org session and goes back to
/// `/authorize` with the original request.
pub(crate) async fn login(State(org): State<Arc<Org>>, body: Bytes) -> Response {
    let params = match std::str::from_utf8(&body).ok().map(parse_params) {
        Some(Ok(p)) => p,
        _ => {
            return error_page(StatusCode::BAD_REQUEST, "The sign-in form is malformed.");
        }
    };
    let authorize_query = params.get("authorize").cloned().unwrap_or_default();
    let username = params
        .get("username")
        .map(String::as_str)
        .unwrap_or_default();
    let password = params
        .get("password")
        .map(String::as_str)
        .unwrap_or_default();
    let user = {
        let dir = lock(&org.directory);
        dir.user_by_login(username)
            .filter(|u| u.active)
            .filter(|u| u.password.as_ref().is_none_or(|p| p.expose() == password))
            .map(|u| u.id.clone())
    };
    let Some(user) = user else {
        return login_page(
            &org,
            &authorize_query,
            Some("Unable to sign in: unknown user, wrong password or deactivated user."),
            StatusCode::UNAUTHORIZED,
        );
    };
    let sid = lock(&org.grants).open_session(&user, org.clock.now());
    let location = format!("{}/oauth2/v1/authorize?{authorize_query}", org.issuer);
    let cookie = format!("{SESSION_COOKIE}={sid}; Path=/; HttpOnly; SameSite=Lax");
    match (
        HeaderValue::from_str(&location),
        HeaderValue::from_str(&cookie),
    ) {
        (Ok(location), Ok(cookie)) => (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, location), (header::SET_COOKIE, cookie)],
        )
            .into_response(),
        _ => error_page(StatusCode::BAD_REQUEST, "The sign-in form is malformed."),
    }
}
