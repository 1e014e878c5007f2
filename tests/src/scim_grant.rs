//! A SCIM OAuth grant as Okta connects one (the authorization code flow against the
//! region's SCIM OAuth client, approved on the consent page by a signed-in admin), for
//! the e2e modules that need a grant to revoke or log out. One copy here so the flow
//! is followed the same way everywhere.

use reqwest::Method;
use reqwest::header::{COOKIE, LOCATION};
use serde_json::Value;

use crate::harness::{TestStack, okta_callback};
use crate::region::Region;
use crate::session::get_page;
use crate::web::hidden;

/// A SCIM OAuth grant approved by the admin holding `cookie`: `(access, refresh)`.
pub async fn scim_grant(stack: &TestStack, region: Region, cookie: &str) -> (String, String) {
    let (client_id, secret) = region.scim_client();
    let redirect = okta_callback(4443, "closedloop_ai");
    let r = stack
        .get(region.api(), "/api/okta/scim/oauth/authorize")
        .query(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect.as_str()),
            ("state", "s1"),
            ("scope", "scim.read scim.write entitlements.read"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let consent = url::Url::parse(r.headers()[LOCATION].to_str().unwrap()).unwrap();
    let path = format!("{}?{}", consent.path(), consent.query().unwrap_or_default());
    let page = get_page(stack, region, cookie, &path).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let decided = stack
        .request(Method::POST, region.app(), "/oauth/consent")
        .header(COOKIE, cookie)
        .form(&[
            ("request", hidden(&page.body, "request").unwrap()),
            ("csrf", hidden(&page.body, "csrf").unwrap()),
            ("decision", "approve".to_owned()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(decided.status(), 303);
    let back = url::Url::parse(decided.headers()[LOCATION].to_str().unwrap()).unwrap();
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    let tokens: Value = stack
        .request(Method::POST, region.api(), "/api/okta/scim/oauth/token")
        .basic_auth(client_id, Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        tokens["access_token"]
            .as_str()
            .expect("access token")
            .to_owned(),
        tokens["refresh_token"]
            .as_str()
            .expect("refresh token")
            .to_owned(),
    )
}
