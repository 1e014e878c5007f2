//! Who an MCP client is, without pre-registration: a Client ID Metadata Document (the
//! client id is an HTTPS URL whose JSON the server fetches, validates and caches;
//! draft-ietf-oauth-client-id-metadata-document), or a client registered with RFC 7591
//! ([`super::register`]). And which redirect URIs a client may use.
//!
//! Fetching a document is a request the worker makes to a URL anyone can type, so it
//! goes through the Okta client's guard ([`crate::okta::http`]): HTTPS only (plain HTTP
//! to loopback only under the development switch), public addresses only, checked at
//! connect time (DNS rebinding), no redirects; and here, at most [`MAX_DOCUMENT`] bytes
//! within [`FETCH_TIMEOUT`].

use std::time::Duration;

use url::{Host, Url};

use crate::okta::http::HttpError;
use crate::rate_limit::{self, ClientIp};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::mcp::{self, ClientInfo};

/// The largest client metadata document accepted.
pub const MAX_DOCUMENT: usize = 5 * 1024;
/// How long a document fetch may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a document is cached when it says nothing (`Cache-Control`).
const DEFAULT_CACHE_SECS: i64 = 300;
/// The bounds of a document's cache lifetime when it names one: often enough that a
/// client's change of redirect URIs shows within a day, rarely enough that a flood of
/// authorizations does not become a flood of fetches.
const CACHE_SECS: std::ops::RangeInclusive<i64> = 60..=86_400;
/// The longest redirect URI and client name accepted.
const MAX_URI_LEN: usize = 2000;
const MAX_NAME_CHARS: usize = 100;
/// How many redirect URIs a client may list.
pub const MAX_REDIRECT_URIS: usize = 10;

/// Why a client cannot be used. The messages are for the person at the browser.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Not a metadata document URL and not a registered client.
    #[error("unknown client")]
    Unknown,
    /// The metadata document could not be fetched or is not acceptable.
    #[error("{0}")]
    Document(String),
    /// A store is unavailable.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `client_id` as a metadata document's URL, when it is one this server fetches: HTTPS
/// (or plain HTTP to loopback under the development switch) with a path, no
/// credentials, no fragment, no dot segments.
pub fn document_url(state: &AppState, client_id: &str) -> Option<Url> {
    let url = Url::parse(client_id).ok()?;
    let scheme_ok = match url.scheme() {
        "https" => true,
        "http" => state.config.development && is_loopback(&url),
        _ => false,
    };
    let path_ok = url.path() != "/"
        && !url.path().is_empty()
        && !client_id.contains("/./")
        && !client_id.contains("/../");
    let ok = scheme_ok
        && path_ok
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.fragment().is_none()
        && client_id.len() <= MAX_URI_LEN;
    ok.then_some(url)
}

/// The client `client_id` names: its metadata document (cached, or fetched), or its
/// registration.
///
/// A fetch is a request the worker makes on anyone's behalf, so fetches (cache misses)
/// count against the caller's address like failed credentials do.
pub async fn resolve(
    state: &AppState,
    client_id: &str,
    caller: &ClientIp,
) -> Result<ClientInfo, ClientError> {
    if let Some(url) = document_url(state, client_id) {
        if let Some(cached) = mcp::cached_document(&state.redis, client_id).await? {
            return Ok(cached);
        }
        if rate_limit::take_for_client(state, "mcp-client-document", caller)
            .await
            .is_some()
        {
            super::count("client_document", "rate_limited");
            return Err(ClientError::Document(
                "Too many client metadata documents were fetched for your network; try again \
                 in a minute."
                    .into(),
            ));
        }
        let (client, ttl) = fetch(state, client_id, &url).await?;
        if ttl > 0 {
            mcp::cache_document(&state.redis, &client, ttl.unsigned_abs()).await?;
        }
        return Ok(client);
    }
    if client_id.starts_with("https://") || client_id.starts_with("http://") {
        return Err(ClientError::Document(
            "The application's client id is a URL this server does not fetch: it must be an \
             https:// address with a path."
                .into(),
        ));
    }
    mcp::registered(&state.pg, client_id)
        .await?
        .ok_or(ClientError::Unknown)
}

/// The document's members this server reads; the rest is ignored (the format is
/// extensible).
#[derive(serde::Deserialize)]
struct Document {
    client_id: String,
    #[serde(default)]
    client_name: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
}

fn refused(why: &str) -> ClientError {
    ClientError::Document(format!(
        "The application's client metadata document cannot be used: {why}."
    ))
}

/// Fetches and validates the document at `url`; returns the client and how long to
/// cache it (seconds, `0`: not at all).
async fn fetch(
    state: &AppState,
    client_id: &str,
    url: &Url,
) -> Result<(ClientInfo, i64), ClientError> {
    let answer = tokio::time::timeout(FETCH_TIMEOUT, state.okta.http.get(url, None)).await;
    let response = match answer {
        Err(_) | Ok(Err(HttpError::Timeout(_))) => {
            super::count("client_document", "timeout");
            return Err(refused("it did not arrive within 5 seconds"));
        }
        Ok(Err(e)) => {
            super::count("client_document", "unreachable");
            tracing::info!(error = %e, "client metadata document not fetched");
            return Err(refused(&e.to_string()));
        }
        Ok(Ok(r)) => r,
    };
    if response.status != http::StatusCode::OK {
        super::count("client_document", "refused");
        return Err(refused(&format!(
            "its address answered HTTP {}",
            response.status.as_u16()
        )));
    }
    if response.body.len() > MAX_DOCUMENT {
        super::count("client_document", "refused");
        return Err(refused("it is larger than 5 KB"));
    }
    let Ok(doc) = serde_json::from_slice::<Document>(&response.body) else {
        super::count("client_document", "refused");
        return Err(refused("it is not a JSON client metadata document"));
    };
    if doc.client_id != client_id {
        super::count("client_document", "refused");
        return Err(refused(
            "the client_id it names is not the address it was fetched from",
        ));
    }
    if doc
        .token_endpoint_auth_method
        .as_deref()
        .is_some_and(|m| m != "none")
    {
        super::count("client_document", "refused");
        return Err(refused(
            "it asks for a token endpoint authentication method other than none",
        ));
    }
    let redirect_uris = valid_redirect_uris(&doc.redirect_uris).map_err(refused)?;
    let client_name = doc.client_name.as_deref().and_then(valid_name).map_or_else(
        || url.host_str().unwrap_or_default().to_owned(),
        str::to_owned,
    );
    super::count("client_document", "fetched");
    let ttl = match crate::okta::max_age(&response.headers) {
        None => DEFAULT_CACHE_SECS,
        Some(0) => 0,
        Some(n) => n.clamp(*CACHE_SECS.start(), *CACHE_SECS.end()),
    };
    Ok((
        ClientInfo {
            client_id: client_id.to_owned(),
            client_name,
            redirect_uris,
        },
        ttl,
    ))
}

/// A client's name, trimmed, when acceptable: 1 to 100 characters, no control ones.
pub fn valid_name(name: &str) -> Option<&str> {
    let name = name.trim();
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && !name.chars().any(char::is_control);
    ok.then_some(name)
}

/// The redirect URIs a client lists, when every one is acceptable.
pub fn valid_redirect_uris(uris: &[String]) -> Result<Vec<String>, &'static str> {
    if uris.is_empty() {
        return Err("it lists no redirect_uris");
    }
    if uris.len() > MAX_REDIRECT_URIS {
        return Err("it lists more than 10 redirect_uris");
    }
    if !uris.iter().all(|u| valid_redirect_uri(u)) {
        return Err(
            "a redirect URI is not https://, a loopback http:// address, or a private-use scheme",
        );
    }
    Ok(uris.to_vec())
}

/// Whether a client may register `uri`: HTTPS; plain HTTP to a loopback address (RFC
/// 8252 §7.3, desktop clients); or a private-use scheme of a native app (§7.1: a
/// reverse domain name, so it contains a dot). Never a fragment, never credentials.
pub fn valid_redirect_uri(uri: &str) -> bool {
    let Ok(url) = Url::parse(uri) else {
        return false;
    };
    if uri.len() > MAX_URI_LEN
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return false;
    }
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" => is_loopback(&url),
        scheme => scheme.contains('.'),
    }
}

/// Whether `url` names the loopback interface: `127.0.0.0/8`, `[::1]` or `localhost`.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Whether `presented` is the registered `registered`: exactly, or, for a loopback
/// `http://` URI, in everything but the port (RFC 8252 §7.3: desktop clients listen on
/// whatever port is free).
pub fn redirect_matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    let (Ok(r), Ok(p)) = (Url::parse(registered), Url::parse(presented)) else {
        return false;
    };
    r.scheme() == "http"
        && p.scheme() == "http"
        && is_loopback(&r)
        && r.host() == p.host()
        && r.path() == p.path()
        && r.query() == p.query()
        && p.fragment().is_none()
        && p.username().is_empty()
        && p.password().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_https_loopback_or_private_use() {
        for good in [
            "https://client.example/callback",
            "http://127.0.0.1:33418/callback",
            "http://127.0.0.1/callback",
            "http://[::1]:8080/cb",
            "http://localhost:5173/oauth/callback",
            "com.example.app:/oauth2redirect",
        ] {
            assert!(valid_redirect_uri(good), "{good}");
        }
        for bad in [
            "http://client.example/callback",
            "https://client.example/cb#frag",
            "https://user:pw@client.example/cb",
            "javascript:alert(1)",
            "myapp:/cb",
            "not a uri",
            "http://10.0.0.1/cb",
        ] {
            assert!(!valid_redirect_uri(bad), "{bad}");
        }
    }

    #[test]
    fn only_loopback_ignores_the_port() {
        assert!(redirect_matches(
            "http://127.0.0.1/callback",
            "http://127.0.0.1:50123/callback"
        ));
        assert!(redirect_matches(
            "http://localhost:3000/cb",
            "http://localhost:4000/cb"
        ));
        assert!(!redirect_matches(
            "http://127.0.0.1/callback",
            "http://127.0.0.1:50123/other"
        ));
        assert!(!redirect_matches(
            "http://127.0.0.1/callback",
            "http://localhost:50123/callback"
        ));
        assert!(!redirect_matches(
            "https://client.example/cb",
            "https://client.example:8443/cb"
        ));
        assert!(!redirect_matches(
            "https://client.example/cb",
            "https://client.example/cb?x=1"
        ));
        assert!(redirect_matches(
            "https://client.example/cb",
            "https://client.example/cb"
        ));
    }

    #[test]
    fn names_are_bounded() {
        assert_eq!(valid_name("  Claude  "), Some("Claude"));
        assert_eq!(valid_name(""), None);
        assert_eq!(valid_name("a\u{7}b"), None);
        assert_eq!(valid_name(&"x".repeat(101)), None);
    }
}
