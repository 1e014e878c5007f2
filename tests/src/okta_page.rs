//! The Integrations > Okta page as a workspace admin fills it in, in a browser
//! ([`Web`]): the OIDC and security suites both save it.

use crate::region::Region;
use crate::web::{Page, Web, hidden};

/// The page's path on the app host.
pub const OKTA_PAGE_PATH: &str = "/integrations/okta";

/// The Okta page's form, as an admin fills it in.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'s> {
    /// The org's domain as typed (`acme.okta.com`, or the sim's loopback address).
    pub domain: &'s str,
    /// The Okta app's client id.
    pub client_id: &'s str,
    /// Its client secret.
    pub secret: &'s str,
    /// "Sign in with Okta" on.
    pub enabled: bool,
    /// Just-in-time provisioning on.
    pub jit: bool,
}

/// Saves the US Okta page's form with the signed-in admin of `web`; the page's answer
/// (not followed).
pub async fn save_setup(web: &mut Web, s: &Setup<'_>) -> Page {
    let url = format!("{}{OKTA_PAGE_PATH}", Region::Us.app_url());
    let page = web.get(&url).await.unwrap();
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = form_csrf(&page.body);
    let mut form = vec![
        ("csrf", csrf.as_str()),
        ("okta_domain", s.domain),
        ("client_id", s.client_id),
        ("client_secret", s.secret),
    ];
    if s.enabled {
        form.push(("sign_in_enabled", "on"));
    }
    if s.jit {
        form.push(("jit_provisioning", "on"));
    }
    web.post(&url, &form).await.unwrap()
}

/// The settings form's CSRF token (the first `csrf` field of the form, or of the page).
pub fn form_csrf(html: &str) -> String {
    let form = html
        .find("action=\"/integrations/okta\"")
        .map(|i| &html[i..])
        .unwrap_or(html);
    hidden(form, "csrf").unwrap()
}
