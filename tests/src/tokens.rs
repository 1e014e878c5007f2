//! Personal API and MCP tokens from the outside, as several e2e modules need them:
//! made on the `/tokens` page with a session, presented on the API host, introspected
//! with the region's service credential. The assertions here are the ones every caller
//! relies on (a 401 carries `WWW-Authenticate`, introspection is `no-store`).

use reqwest::Method;
use reqwest::header::{CACHE_CONTROL, WWW_AUTHENTICATE};
use serde_json::Value;

use crate::harness::TestStack;
use crate::region::Region;
use crate::session::{get_page, post_form};
use crate::web::{hidden, shown_secret};

/// Creates a token on the `/tokens` page with a signed-in `cookie`; returns its secret.
pub async fn create_on_page(
    stack: &TestStack,
    region: Region,
    cookie: &str,
    name: &str,
    kind: &str,
) -> String {
    let page = get_page(stack, region, cookie, "/tokens").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = hidden(&page.body, "csrf").unwrap();
    let created = post_form(
        stack,
        region,
        cookie,
        "/tokens",
        &[
            ("name", name),
            ("kind", kind),
            ("expires_in_days", "30"),
            ("csrf", &csrf),
        ],
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let secret = shown_secret(&created.body).unwrap();
    assert!(
        secret.starts_with(&format!("clk_{}_{kind}_", region)),
        "{secret}"
    );
    secret
}

/// `GET /api/me` (API token) or `/api/mcp/whoami` (MCP token): status and body.
pub async fn call(stack: &TestStack, region: Region, path: &str, token: &str) -> (u16, Value) {
    let r = stack
        .get(region.api(), path)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    if status == 401 {
        assert!(
            r.headers().contains_key(WWW_AUTHENTICATE),
            "401 carries WWW-Authenticate"
        );
    }
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The status of `GET /api/me` with an API token.
pub async fn me(stack: &TestStack, region: Region, token: &str) -> u16 {
    call(stack, region, "/api/me", token).await.0
}

/// The status of `GET /api/mcp/whoami` with an MCP token.
pub async fn whoami(stack: &TestStack, region: Region, token: &str) -> u16 {
    call(stack, region, "/api/mcp/whoami", token).await.0
}

/// RFC 7662 introspection with the region's service credential.
pub async fn introspect(stack: &TestStack, region: Region, token: &str) -> Value {
    let (id, secret) = region.introspection();
    let r = stack
        .request(Method::POST, region.api(), "/api/tokens/introspect")
        .basic_auth(id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()[CACHE_CONTROL], "no-store");
    r.json().await.unwrap()
}
