//! The one browser of the tests and the story: a cookie jar per host, redirects
//! followed on demand, region hosts (`*.closedloop.localhost`) reached through the
//! gateway with their `Host` header, everything else (the simulated Okta org, an
//! independent provider, a hostile one) directly.
//!
//! It returns errors instead of panicking, so the story's operator command can print a
//! failed step and carry on to the next region; tests `unwrap()`. The preconditions of
//! the multi-step helpers (a link answers 303, a confirmation page is one) are errors
//! too, so a test that unwraps still fails where it used to.
//!
//! Cookies are kept per host name, not per port, as browsers keep them (RFC 6265 §8.5:
//! cookies do not isolate by port): the simulated org and another server on 127.0.0.1
//! share a jar, as they would in a real browser.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, bail, ensure};
use reqwest::Method;

/// The suffix of the region hosts: such URLs go through the gateway.
pub const REGION_SUFFIX: &str = "closedloop.localhost";

/// A response, read whole, with its `Location` made absolute.
#[derive(Debug, Clone)]
pub struct Page {
    /// HTTP status.
    pub status: u16,
    /// The URL requested.
    pub url: String,
    /// The absolute `Location`, if any.
    pub location: Option<String>,
    /// The body as text.
    pub body: String,
    /// Every `Set-Cookie` of the response, as sent (the attributes tests check).
    pub set_cookies: Vec<String>,
}

/// A browser: cookies per host, redirects, region hosts through the gateway.
#[derive(Debug)]
pub struct Web {
    /// The gateway's URL: where requests to region hosts really go.
    gateway: String,
    /// A client that follows no redirect: the browser decides.
    http: reqwest::Client,
    /// Cookies by host name (no port), then by name.
    jar: HashMap<String, BTreeMap<String, String>>,
}

impl Web {
    /// A browser whose region hosts are served by the gateway at `gateway`
    /// (`http://127.0.0.1:PORT`).
    pub fn new(gateway: &str) -> Self {
        Self {
            gateway: gateway.to_owned(),
            http: crate::harness::client(),
            jar: HashMap::new(),
        }
    }

    /// A cookie's value on `host` (a `:port` is ignored: the jar is per host name).
    pub fn cookie(&self, host: &str, name: &str) -> Option<String> {
        self.jar
            .get(without_port(host))
            .and_then(|c| c.get(name))
            .cloned()
    }

    /// Every cookie of `host` as a `Cookie` header value (a `:port` is ignored).
    pub fn cookie_header(&self, host: &str) -> String {
        self.jar
            .get(without_port(host))
            .map(|c| {
                c.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default()
    }

    /// Forgets every cookie (a fresh browser profile, same gateway).
    pub fn clear(&mut self) {
        self.jar.clear();
    }

    /// One request; cookies stored, no redirect followed.
    pub async fn send(
        &mut self,
        method: Method,
        url: &str,
        form: Option<&[(&str, &str)]>,
    ) -> anyhow::Result<Page> {
        let parsed = url::Url::parse(url).with_context(|| format!("URL {url}"))?;
        let host = parsed.host_str().unwrap_or_default().to_owned();
        let via_gateway = host.ends_with(REGION_SUFFIX);
        let target = if via_gateway {
            let mut t = url::Url::parse(&self.gateway)?;
            t.set_path(parsed.path());
            t.set_query(parsed.query());
            t.to_string()
        } else {
            url.to_owned()
        };
        let mut req = self.http.request(method, &target);
        if via_gateway {
            req = req.header(reqwest::header::HOST, host_of(&parsed));
        }
        let cookies = self.cookie_header(&host);
        if !cookies.is_empty() {
            req = req.header(reqwest::header::COOKIE, cookies);
        }
        if let Some(f) = form {
            req = req.form(f);
        }
        let r = req
            .send()
            .await
            .with_context(|| format!("sending to {url}"))?;
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| {
                parsed
                    .join(l)
                    .map(|u| u.to_string())
                    .unwrap_or_else(|_| l.to_owned())
            });
        let set_cookies: Vec<String> = r
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        for c in &set_cookies {
            let first = c.split(';').next().unwrap_or_default();
            let Some((name, value)) = first.split_once('=') else {
                continue;
            };
            let expired = c.to_ascii_lowercase().contains("max-age=0");
            let jar = self.jar.entry(host.clone()).or_default();
            if expired || value.is_empty() {
                jar.remove(name.trim());
            } else {
                jar.insert(name.trim().to_owned(), value.to_owned());
            }
        }
        let body = r.text().await.unwrap_or_default();
        Ok(Page {
            status,
            url: url.to_owned(),
            location,
            body,
            set_cookies,
        })
    }

    /// GET, no redirect followed.
    pub async fn get(&mut self, url: &str) -> anyhow::Result<Page> {
        self.send(Method::GET, url, None).await
    }

    /// A form POST, no redirect followed.
    pub async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> anyhow::Result<Page> {
        self.send(Method::POST, url, Some(form)).await
    }

    /// Follows redirects from `page` (GET), at most 12 hops; returns the final page.
    pub async fn follow(&mut self, page: Page) -> anyhow::Result<Page> {
        Ok(self.trail(page).await?.1)
    }

    /// Follows redirects from `page` (GET), at most 12 hops; returns every URL of the
    /// chain and the final page.
    pub async fn trail(&mut self, mut page: Page) -> anyhow::Result<(Vec<String>, Page)> {
        let mut urls = vec![page.url.clone()];
        for _ in 0..12 {
            match (page.status, page.location.clone()) {
                (301 | 302 | 303 | 307, Some(next)) => {
                    urls.push(next.clone());
                    page = self.get(&next).await?;
                }
                _ => return Ok((urls, page)),
            }
        }
        bail!("too many redirects from {}", urls[0])
    }

    /// Answers the confirmation page of a sign-in the browser did not start on the app
    /// host (from the Okta dashboard): posts its Continue form (to the page's own
    /// origin), follows the redirects.
    pub async fn confirm(&mut self, page: Page) -> anyhow::Result<Page> {
        if !(page.status == 200 && page.body.contains("<h1>Continue as ")) {
            bail!(
                "no confirmation page at {}: {} {}",
                page.url,
                page.status,
                page.body
            );
        }
        let csrf = hidden(&page.body, "csrf")?;
        let p = self
            .post(
                &same_origin(&page.url, "/auth/complete")?,
                &[("csrf", &csrf), ("decision", "continue")],
            )
            .await?;
        ensure!(
            p.status == 303,
            "Continue answered {}: {}",
            p.status,
            p.body
        );
        self.follow(p).await
    }

    /// GET and follow the redirects.
    pub async fn go(&mut self, url: &str) -> anyhow::Result<Page> {
        let p = self.get(url).await?;
        self.follow(p).await
    }

    /// GET, follow the redirects, and confirm the sign-in they lead to.
    pub async fn go_confirmed(&mut self, url: &str) -> anyhow::Result<Page> {
        let p = self.go(url).await?;
        self.confirm(p).await
    }

    /// Signs a workspace's first admin in with its one-time link (`sign_in_url`, as the
    /// operator command prints it): posts the code to the link's origin, as the page
    /// there does, and follows the redirects.
    pub async fn sign_in_with_link(&mut self, sign_in_url: &str) -> anyhow::Result<Page> {
        let code = sign_in_url
            .split("code=")
            .nth(1)
            .with_context(|| format!("a code in {sign_in_url}"))?
            .to_owned();
        let p = self
            .post(&same_origin(sign_in_url, "/auth/link")?, &[("code", &code)])
            .await?;
        ensure!(
            p.status == 303,
            "the link answered {}: {}",
            p.status,
            p.body
        );
        self.follow(p).await
    }

    /// "Sign in with your work email" on the app at `app` (`http://app.…`), followed
    /// to the end.
    pub async fn sign_in_with_email(&mut self, app: &str, email: &str) -> anyhow::Result<Page> {
        let p = self
            .post(&format!("{app}/auth"), &[("email", email)])
            .await?;
        self.follow(p).await
    }
}

/// `path` on the origin of `url`.
fn same_origin(url: &str, path: &str) -> anyhow::Result<String> {
    let mut u = url::Url::parse(url).with_context(|| format!("URL {url}"))?;
    u.set_path(path);
    u.set_query(None);
    u.set_fragment(None);
    Ok(u.to_string())
}

/// `host` without a `:port`.
fn without_port(host: &str) -> &str {
    host.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(name, _)| name)
}

/// `host[:port]` of a URL: its `Host` header.
fn host_of(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    }
}

/// The value of a hidden field (`name="…" value="…"`) of a page, unescaped.
pub fn hidden(html: &str, name: &str) -> anyhow::Result<String> {
    let needle = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&needle)
        .map(|i| i + needle.len())
        .with_context(|| format!("no {name} field on the page"))?;
    let end = html[start..].find('"').context("closing quote")?;
    Ok(unescape(&html[start..start + end]))
}

/// The text of `<code id="{id}">…</code>`, unescaped: a value the page shows.
pub fn code_by_id(html: &str, id: &str) -> anyhow::Result<String> {
    let needle = format!("<code id=\"{id}\">");
    let start = html
        .find(&needle)
        .map(|i| i + needle.len())
        .with_context(|| format!("the page shows no {id}"))?;
    let end = html[start..].find("</code>").context("closing tag")?;
    Ok(unescape(&html[start..start + end]))
}

/// Undoes the HTML escaping the pages apply.
pub fn unescape(s: &str) -> String {
    s.replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The secret a token creation page shows once.
pub fn shown_secret(html: &str) -> anyhow::Result<String> {
    let at = html
        .find("id=\"new-token-value\"")
        .context("the page shows no new token")?;
    let rest = &html[at..];
    let start = rest.find("value=\"").context("value")? + "value=\"".len();
    let end = rest[start..].find('"').context("closing quote")?;
    Ok(rest[start..start + end].to_owned())
}
