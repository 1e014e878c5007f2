//! Pages requested the way a signed-in browser requests them, without a browser: one
//! request through the gateway to a region's app host with a session `Cookie` header,
//! no jar and no redirect followed (for that, [`crate::web::Web`]).

use reqwest::Method;
use reqwest::header::{COOKIE, LOCATION};

use crate::harness::TestStack;
use crate::region::Region;

/// A page fetched with a session cookie: status, `Location`, body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The `Location` as sent (empty when there is none).
    pub location: String,
    /// The body as text.
    pub body: String,
}

impl Reply {
    /// Reads a response whole.
    pub async fn read(r: reqwest::Response) -> Self {
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Self {
            status,
            location,
            body: r.text().await.unwrap_or_default(),
        }
    }
}

/// `GET {app}{path}` with `cookie`.
pub async fn get_page(stack: &TestStack, region: Region, cookie: &str, path: &str) -> Reply {
    Reply::read(
        stack
            .get(region.app(), path)
            .header(COOKIE, cookie)
            .send()
            .await
            .expect("page requested"),
    )
    .await
}

/// A form POST to `{app}{path}` with `cookie`.
pub async fn post_form(
    stack: &TestStack,
    region: Region,
    cookie: &str,
    path: &str,
    form: &[(&str, &str)],
) -> Reply {
    Reply::read(
        stack
            .request(Method::POST, region.app(), path)
            .header(COOKIE, cookie)
            .form(form)
            .send()
            .await
            .expect("form posted"),
    )
    .await
}
