//! Reading redirects the way Okta's admin console and a browser follow them: where a
//! response points, and the path and query of that URL (requests go to the gateway
//! with a `Host` header, so only the path travels).

use std::collections::HashMap;

use reqwest::header::LOCATION;

use crate::harness::okta_callback;

/// The Okta admin-console callback the tests register as the SCIM OAuth
/// `redirect_uri` (an allowed loopback variant; nothing listens there).
pub fn callback() -> String {
    okta_callback(4443, "closedloop_ai")
}

/// The `Location` of a response (empty when there is none).
pub fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Path and query of an absolute URL.
pub fn path_of(url: &str) -> String {
    let u = url::Url::parse(url).expect("absolute URL");
    match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_owned(),
    }
}

/// The query parameters of an absolute URL.
pub fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .expect("absolute URL")
        .query_pairs()
        .into_owned()
        .collect()
}
