//! Every page a person can reach, checked for accessibility in a real browser
//! ([`closedloop_tests::browser`]: headless Chromium over WebDriver).
//!
//! - **axe-core** (the npm package pinned in `tests/a11y`, installed by `tests/run.sh`
//!   with `npm ci`) is read from disk and injected into each page with WebDriver's
//!   Execute Script, then `axe.run` audits the page. WebDriver scripts are not subject to
//!   the page's Content-Security-Policy (the test checks the page is served with its
//!   hash-only policy and the audit still runs), so the pages' CSP stays as strict as in
//!   production. Any violation of impact `serious` or `critical` fails the test, with
//!   the rule, its help and the offending elements; lesser ones are printed. Each page's
//!   full axe result and a screenshot are saved under `target/artifacts/a11y/`. First,
//!   a page stripped of its language must be reported, so an audit that silently
//!   stopped running cannot pass.
//! - **Keyboard**: on the sign-in page and Integrations > Okta, real Tab key presses
//!   must reach every interactive element in document order, each with a visible focus
//!   outline (`:focus-visible` in the stylesheet), and the skip link must move focus
//!   into `<main>`.
//!
//! The walk is a list of [`Stop`]s, in order (a later page may need what an earlier one
//! did: Okta is saved on Integrations before the hand-off page and the workspace
//! chooser); adding a page is one line. Pages still being built are in
//! [`PENDING_PAGES`]: not walked yet, and the test fails as soon as one of them
//! answers, so that it is moved into [`PAGES`].
//!
//! Nothing sleeps: every wait polls the page with a deadline.

use std::path::{Path, PathBuf};

use Setup::{CreateToken, Open, SaveOkta, SignInAs};
use Who::{Admin, Member, Visitor};
use closedloop_tests::browser::{self, Driver, ENTER, Session, TAB};
use closedloop_tests::harness::{TestStack, okta_callback};
use closedloop_tests::okta_sim::OktaSim;
use closedloop_tests::okta_sim::directory::NewUser;
use closedloop_tests::okta_world;
use closedloop_tests::region::Region;
use closedloop_tests::scim_grant::scim_grant;
use closedloop_tests::session::get_page;
use serde_json::{Value, json};

/// Who opens a page: each is its own browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// Nobody signed in.
    Visitor,
    /// The workspace's first admin.
    Admin,
    /// Jane, a member provisioned by Okta.
    Member,
}

/// What happens on a page after it opens, before it is checked.
#[derive(Debug, Clone, Copy)]
enum Setup {
    /// Nothing: checked as it opens.
    Open,
    /// The sign-in form is sent with this email, past the browser's own validation, so
    /// that the page the server answers with is checked.
    SignInAs(&'static str),
    /// Integrations > Okta is saved with the simulated org's values (`true`), or with
    /// every field empty (`false`: the form comes back with its errors).
    SaveOkta(bool),
    /// A token of this name is created on the tokens page (its secret shown once).
    CreateToken(&'static str),
}

/// One page of the walk.
#[derive(Debug, Clone, Copy)]
struct Stop {
    /// The artefacts' name (`target/artifacts/a11y/<name>.json`, `.png`).
    name: &'static str,
    who: Who,
    /// A path on the app host, or a URL with placeholders ([`World::url`]).
    url: &'static str,
    setup: Setup,
    /// Text the page shows once it is the page meant: the walk waits for it.
    shows: &'static str,
}

const fn stop(
    name: &'static str,
    who: Who,
    url: &'static str,
    setup: Setup,
    shows: &'static str,
) -> Stop {
    Stop {
        name,
        who,
        url,
        setup,
        shows,
    }
}

/// Every page, in the order walked.
#[rustfmt::skip]
const PAGES: &[Stop] = &[
    stop("sign-in", Visitor, "/auth", Open, "Sign in with your work email"),
    stop("sign-in-invalid-email", Visitor, "/auth", SignInAs("not-an-email"), "Enter your work email address"),
    stop("sign-in-unknown-email", Visitor, "/auth", SignInAs("nobody@unknown.test"), "knows this email address"),
    stop("signed-out", Visitor, "/auth?signed_out=1", Open, "You are signed out"),
    stop("sign-in-to-continue", Visitor, "/auth?return_to=%2Ftokens", Open, "Continue with a one-time sign-in link"),
    stop("link-confirm", Visitor, "{link}", Open, "This one-time link signs you in"),
    stop("link-invalid", Visitor, "/auth/link?code=nope", Open, "This sign-in link cannot be used"),
    stop("home-admin", Admin, "/", Open, "Signed in as"),
    stop("workspace", Admin, "/workspace", Open, "Admins"),
    stop("okta-empty", Admin, "/integrations/okta", Open, "The issuer is generated from the domain"),
    stop("okta-not-saved", Admin, "/integrations/okta", SaveOkta(false), "The Okta setup was not saved"),
    stop("okta-saved", Admin, "/integrations/okta", SaveOkta(true), "Okta setup saved"),
    stop("okta-provisioning", Admin, "/integrations/okta/provisioning", Open, "Connected provisioning grants"),
    stop("scim-consent", Admin, "{consent}", Open, "Allow Okta to provision this workspace?"),
    stop("mcp-consent", Admin, "{mcp-consent}", Open, "to use ClosedLoop AI as you?"),
    stop("tokens-empty", Admin, "/tokens", Open, "You hold no live token"),
    stop("tokens-created", Admin, "/tokens", CreateToken("CI pipeline"), "Copy it now"),
    stop("tokens", Admin, "/tokens", Open, "Live tokens, newest first"),
    stop("people", Admin, "/people", Open, "jane@acme.test"),
    stop("person", Admin, "/people/{member}", Open, "Jane Doe</h1>"),
    stop("groups", Admin, "/groups", Open, "Engineering"),
    stop("group", Admin, "/groups/{group}", Open, "Engineering</h1>"),
    stop("activity", Admin, "/activity", Open, "Activity</h1>"),
    stop("home-member", Member, "/", Open, "Signed in as"),
    stop("not-an-admin", Member, "/integrations/okta", Open, "Only workspace admins can open this page"),
    stop("not-found", Visitor, "/no-such-page", Open, "Page not found"),
    stop("choose-workspace", Visitor, "/auth", SignInAs("jane@acme.test"), "Choose a workspace"),
    stop("handoff-confirm", Visitor, "{api}/api/okta/oidc/login?iss={iss}", Open, "Continue as jane@acme.test"),
];

/// Pages being built: not walked until they exist. The test fails when one answers,
/// so that its line moves into [`PAGES`] (as is).
#[rustfmt::skip]
const PENDING_PAGES: &[Stop] = &[];

/// The title of the worker's 404 page.
const NOT_FOUND_TITLE: &str = "Page not found · ClosedLoop AI";

/// Runs axe on the page and hands back its result as JSON text (element references
/// would not survive WebDriver's serialisation; targets are CSS selectors anyway).
const RUN_AXE: &str = "const done = arguments[arguments.length - 1];
axe.run(document, { resultTypes: ['violations'] })
  .then(r => done(JSON.stringify(r)), e => done(JSON.stringify({ error: String(e) })));";

/// A short description of an element, the same in the expected order and at each Tab
/// (so the two compare as strings).
const DESCRIBE: &str = "const describe = el => {
  if (!el || el === document.body) return 'body';
  const text = (el.getAttribute('aria-label') || el.innerText || el.value || '').trim().slice(0, 50);
  return el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (el.name ? '[name=' + el.name + ']' : '') + (text ? ' \"' + text + '\"' : '');
};";

/// Every element Tab should reach, in document order, and any positive `tabindex`
/// (which would reorder it).
const FOCUSABLE: &str = "const out = [], reordered = [];
for (const el of document.querySelectorAll('a[href], button, input, select, textarea, summary, [tabindex]')) {
  if (el.tabIndex > 0) reordered.push(describe(el));
  if (el.disabled || el.type === 'hidden' || el.tabIndex < 0) continue;
  if (!el.getClientRects().length || getComputedStyle(el).visibility === 'hidden') continue;
  if (el.type === 'radio' && el.name) {
    const group = [...document.getElementsByName(el.name)];
    if ((group.find(r => r.checked) || group[0]) !== el) continue;
  }
  out.push(describe(el));
}
return { order: out, reordered };";

/// The focused element, and whether its focus shows: `:focus-visible`, an outline of
/// at least 2px, and on screen.
const FOCUSED: &str = "const el = document.activeElement, cs = getComputedStyle(el), r = el.getBoundingClientRect();
return {
  who: describe(el),
  visible: el.matches(':focus-visible') && cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) >= 2
    && r.bottom > 0 && r.right > 0 && r.top < innerHeight && r.left < innerWidth,
  outline: cs.outlineStyle + ' ' + cs.outlineWidth + ' ' + cs.outlineColor
};";

/// What the walk needs from the stack: URLs, ids and the simulated org.
struct World {
    stack: TestStack,
    sim: OktaSim,
    app_url: String,
    api_url: String,
    team_id: String,
    admin_user_id: String,
    sign_in_url: String,
    member_id: String,
    group_id: String,
    consent_query: String,
    /// An MCP client's authorization request (a registered loopback client).
    mcp_consent_query: String,
}

impl World {
    /// A workspace Acme whose admin approved Okta provisioning once, with Jane (a
    /// member Okta provisioned, in the group Engineering and signed in at Okta); Jane
    /// is also the admin of a second workspace, Globex, so her email needs the chooser.
    async fn start() -> Self {
        // The stack at URLs with the gateway's port, so the browser can follow them.
        let stack = TestStack::start_configured(1, true, |_| {}).await.unwrap();
        let port = stack.gateway.addr.port();
        let app_url = format!("http://app.closedloop.localhost:{port}");
        let api_url = format!("http://api.closedloop.localhost:{port}");
        let sim = OktaSim::start().await.unwrap();
        sim.app()
            .add_redirect_uri(&format!("{api_url}/api/okta/oidc/callback"));
        let ws = stack.workspace(Region::Us, "Acme", "admin@acme.test").await;
        stack
            .workspace(Region::Us, "Globex", "jane@acme.test")
            .await;
        let jane = sim
            .add_user(NewUser::new("jane@acme.test", "Jane", "Doe"))
            .unwrap();
        sim.app().assign(&jane).await.unwrap();
        sim.set_auto_sign_in(Some(&jane));
        let member_id = okta_world::provision(&stack, &ws, "jane@acme.test", jane.as_str()).await;
        let (status, group) = stack
            .scim(Region::Us, &ws.team_id, "")
            .await
            .post(
                "/Groups",
                &json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                         "displayName": "Engineering", "externalId": "00g-engineering",
                         "members": [{ "value": member_id }] }),
            )
            .await;
        assert_eq!(status, 201, "{group}");
        let admin_cookie = stack
            .session_cookie(Region::Us, &ws.team_id, &ws.admin_user_id)
            .await;
        scim_grant(&stack, Region::Us, &admin_cookie).await;
        let (client_id, _) = Region::Us.scim_client();
        let consent_query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", &okta_callback(4443, "closedloop_ai"))
            .append_pair("state", "a11y")
            .append_pair("scope", "scim.read scim.write entitlements.read")
            .finish();
        // An MCP client registered as an editor would (RFC 7591), asking to act as the
        // admin: the authorization goes on to the MCP consent page.
        let (status, registered) = closedloop_tests::mcp_client::register(
            &stack,
            Region::Us,
            &json!({ "client_name": "Accessible Editor",
                     "redirect_uris": ["http://127.0.0.1/callback"] }),
        )
        .await;
        assert_eq!(status, 201, "{registered}");
        let verifier = closedloop_tests::mcp_client::verifier();
        let mcp_consent_query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", registered["client_id"].as_str().unwrap())
            .append_pair("redirect_uri", "http://127.0.0.1:40123/callback")
            .append_pair("code_challenge", &region_worker::pkce::s256(&verifier))
            .append_pair("code_challenge_method", "S256")
            .append_pair("resource", &format!("{api_url}/api/mcp"))
            .append_pair("scope", "mcp")
            .append_pair("state", "a11y")
            .finish();
        Self {
            app_url,
            api_url,
            team_id: ws.team_id.clone(),
            admin_user_id: ws.admin_user_id.clone(),
            sign_in_url: ws.sign_in_url.clone(),
            member_id,
            group_id: group["id"].as_str().expect("a group id").to_owned(),
            consent_query,
            mcp_consent_query,
            stack,
            sim,
        }
    }

    /// A stop's URL: a path is on the app host; placeholders are filled in.
    fn url(&self, template: &str) -> String {
        let iss =
            url::form_urlencoded::byte_serialize(self.sim.issuer().as_bytes()).collect::<String>();
        let filled = template
            .replace(
                "{consent}",
                &format!(
                    "{}/api/okta/scim/oauth/authorize?{}",
                    self.api_url, self.consent_query
                ),
            )
            .replace(
                "{mcp-consent}",
                &format!(
                    "{}/api/mcp/oauth/authorize?{}",
                    self.api_url, self.mcp_consent_query
                ),
            )
            .replace("{link}", &self.sign_in_url)
            .replace("{api}", &self.api_url)
            .replace("{iss}", &iss)
            .replace("{member}", &self.member_id)
            .replace("{group}", &self.group_id);
        if filled.starts_with('/') {
            format!("{}{filled}", self.app_url)
        } else {
            filled
        }
    }

    /// A browser for `who`: signed in with a session cookie as the sign-in would set.
    async fn browser<'d>(&self, driver: &'d Driver, profiles: &Path, who: Who) -> Session<'d> {
        let session = driver.session(&profiles.join(format!("{who:?}"))).await;
        let user = match who {
            Who::Visitor => return session,
            Who::Admin => &self.admin_user_id,
            Who::Member => &self.member_id,
        };
        let cookie = self
            .stack
            .session_cookie(Region::Us, &self.team_id, user)
            .await;
        let (name, value) = cookie.split_once('=').expect("name=value");
        session.goto(&format!("{}/auth", self.app_url)).await;
        session.add_cookie(name, value).await;
        session
    }

    /// Does what `setup` says on the open page.
    async fn set_up(&self, session: &Session<'_>, setup: Setup) {
        match setup {
            Setup::Open => {}
            Setup::SignInAs(email) => {
                session
                    .execute(
                        "const f = document.querySelector('form[action=\"/auth\"]');
                         f.querySelector('#email').value = arguments[0];
                         f.submit();",
                        json!([email]),
                    )
                    .await;
            }
            Setup::SaveOkta(valid) => {
                if valid {
                    let app = self.sim.app();
                    session
                        .type_into(
                            "#okta_domain",
                            self.sim.base_url().trim_start_matches("http://"),
                        )
                        .await;
                    session.type_into("#client_id", app.client_id()).await;
                    session
                        .type_into("#client_secret", &app.client_secret())
                        .await;
                }
                session
                    .click("form[action='/integrations/okta'] button[type=submit]")
                    .await;
            }
            Setup::CreateToken(name) => {
                session.type_into("#token-name", name).await;
                session
                    .click("form[action='/tokens'] button[type=submit]")
                    .await;
            }
        }
    }
}

/// Audits the open page with axe; saves its result and a screenshot as `name`. The
/// serious and critical violations, described.
async fn audit(session: &Session<'_>, axe: &str, dir: &Path, name: &str) -> Vec<String> {
    let injected = session
        .execute("return typeof window.axe === 'object';", json!([]))
        .await;
    if injected != Value::Bool(true) {
        session.execute(axe, json!([])).await;
    }
    let raw = session.execute_async(RUN_AXE, json!([])).await;
    let result: Value =
        serde_json::from_str(raw.as_str().expect("axe answers with JSON text")).unwrap();
    assert!(result["error"].is_null(), "axe failed on {name}: {result}");
    std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_string_pretty(&result).unwrap(),
    )
    .unwrap();
    session.screenshot(dir, &format!("{name}.png")).await;
    let mut serious = Vec::new();
    for v in result["violations"].as_array().expect("a violations list") {
        let impact = v["impact"].as_str().unwrap_or_default();
        let targets: Vec<String> = v["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| n["target"].to_string())
            .collect();
        let line = format!(
            "{name}: [{impact}] {}: {} ({}) at {}",
            v["id"].as_str().unwrap_or_default(),
            v["help"].as_str().unwrap_or_default(),
            v["helpUrl"].as_str().unwrap_or_default(),
            targets.join(", ")
        );
        if matches!(impact, "serious" | "critical") {
            serious.push(line);
        } else {
            eprintln!("a11y (not failing): {line}");
        }
    }
    // What axe could not decide (a colour over an overlapping element, say): for a
    // person to look at in the saved result, not a failure.
    for v in result["incomplete"].as_array().into_iter().flatten() {
        eprintln!(
            "a11y (needs review): {name}: {} ({} elements)",
            v["id"].as_str().unwrap_or_default(),
            v["nodes"].as_array().map_or(0, Vec::len)
        );
    }
    serious
}

/// Opens `url` and walks it with Tab: every interactive element in document order,
/// each with its focus visible; then the skip link moves focus into `<main>`. The
/// problems found.
async fn keyboard(
    session: &Session<'_>,
    url: &str,
    shows: &str,
    dir: &Path,
    name: &str,
) -> Vec<String> {
    let script = |body: &str| format!("{DESCRIBE}\n{body}");
    // Freshly loaded: nothing has focus, so the first Tab goes to the first element.
    session.goto(url).await;
    session.wait_for(shows).await;
    let found = session.execute(&script(FOCUSABLE), json!([])).await;
    let expected: Vec<String> = serde_json::from_value(found["order"].clone()).unwrap();
    let mut problems: Vec<String> = found["reordered"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| format!("{url}: positive tabindex reorders focus: {e}"))
        .collect();
    assert!(
        expected.len() > 2,
        "{url}: too few interactive elements: {expected:?}"
    );
    if expected[0] != "a \"Skip to main content\"" {
        problems.push(format!(
            "{url}: the first element is not the skip link: {}",
            expected[0]
        ));
    }
    let mut reached = Vec::new();
    for i in 0..expected.len() {
        session.press(TAB).await;
        if i == 1 {
            // The focus outline as a person sees it, on the first field or link.
            session
                .screenshot(dir, &format!("keyboard-{name}.png"))
                .await;
        }
        let focused = session.execute(&script(FOCUSED), json!([])).await;
        let who = focused["who"].as_str().unwrap_or_default().to_owned();
        if focused["visible"] != Value::Bool(true) {
            problems.push(format!(
                "{url}: focus is not visible on {who} (outline {})",
                focused["outline"]
            ));
        }
        reached.push(who);
    }
    eprintln!("a11y keyboard: {url}: Tab reaches {reached:?}");
    if reached != expected {
        problems.push(format!(
            "{url}: Tab order\n  reached  {reached:?}\n  expected {expected:?}"
        ));
    }

    // The skip link: Enter moves focus to <main>; the next Tab is the page's first
    // element after it.
    session.goto(url).await;
    session.wait_for(shows).await;
    session.press(TAB).await;
    session.press(ENTER).await;
    session
        .wait_until(
            "focus moving to <main>",
            "return document.activeElement.id === 'main';",
        )
        .await;
    session.press(TAB).await;
    let next = session.execute(&script(FOCUSED), json!([])).await;
    if next["who"].as_str() != Some(expected[1].as_str()) {
        problems.push(format!(
            "{url}: after the skip link, Tab reached {} instead of {}",
            next["who"], expected[1]
        ));
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a11y_every_page_passes_axe_and_works_with_the_keyboard() {
    if !browser::available() {
        return;
    }
    let axe_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("a11y/node_modules/axe-core/axe.min.js");
    let axe = std::fs::read_to_string(&axe_path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `npm ci` in tests/a11y (tests/run.sh does)",
            axe_path.display()
        )
    });
    let artifacts = browser::artifacts("a11y");
    let world = World::start().await;

    // Pages are served with their strict, hash-only script policy; the injected audit
    // runs anyway (WebDriver scripts are exempt), so nothing is loosened for the test.
    let auth = world
        .stack
        .get(Region::Us.app(), "/auth")
        .send()
        .await
        .unwrap();
    let csp = auth.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'sha256-") && !csp.contains("unsafe"),
        "{csp}"
    );

    // Pages still being built: the test fails once one answers, to be walked.
    let admin_cookie = world
        .stack
        .session_cookie(Region::Us, &world.team_id, &world.admin_user_id)
        .await;
    for p in PENDING_PAGES {
        let path = world.url(p.url).replacen(&world.app_url, "", 1);
        let reply = get_page(&world.stack, Region::Us, &admin_cookie, &path).await;
        assert_eq!(
            reply.status, 404,
            "{path} exists now: move the line of {:?} from PENDING_PAGES into PAGES",
            p.name
        );
    }

    let driver = Driver::start().await;
    let profiles: PathBuf =
        std::env::temp_dir().join(format!("clk-a11y-{}", uuid::Uuid::new_v4().simple()));
    let mut browsers: Vec<(Who, Session<'_>)> = Vec::new();

    // The audit can fail: a page stripped of its language is reported as serious.
    let visitor = world.browser(&driver, &profiles, Visitor).await;
    visitor.goto(&world.url("/auth")).await;
    visitor.wait_for("Sign in with your work email").await;
    visitor
        .execute(
            "document.documentElement.removeAttribute('lang');",
            json!([]),
        )
        .await;
    let found = audit(&visitor, &axe, &artifacts, "self-check-no-lang").await;
    assert!(
        found.iter().any(|p| p.contains("html-has-lang")),
        "axe did not report a page without a language: {found:?}"
    );
    browsers.push((Visitor, visitor));

    let mut problems = Vec::new();
    for stop in PAGES {
        if !browsers.iter().any(|(w, _)| *w == stop.who) {
            let b = world.browser(&driver, &profiles, stop.who).await;
            browsers.push((stop.who, b));
        }
        let session = &browsers.iter().find(|(w, _)| *w == stop.who).unwrap().1;
        session.goto(&world.url(stop.url)).await;
        world.set_up(session, stop.setup).await;
        session.wait_for(stop.shows).await;
        session
            .wait_until(
                "the page loading",
                "return document.readyState === 'complete';",
            )
            .await;
        if stop.shows != "Page not found" {
            assert_ne!(
                session.title().await,
                NOT_FOUND_TITLE,
                "{}: {}",
                stop.name,
                stop.url
            );
        }
        problems.extend(audit(session, &axe, &artifacts, stop.name).await);
    }

    // The keyboard, on the sign-in page and on Integrations > Okta (saved, so every
    // part of it shows).
    for (name, who, path, shows) in [
        ("sign-in", Visitor, "/auth", "Sign in with your work email"),
        (
            "okta",
            Admin,
            "/integrations/okta",
            "Provisioning connections",
        ),
    ] {
        let session = &browsers.iter().find(|(w, _)| *w == who).unwrap().1;
        let url = world.url(path);
        problems.extend(keyboard(session, &url, shows, &artifacts, name).await);
    }

    for (_, b) in browsers {
        b.quit().await;
    }
    let _ = std::fs::remove_dir_all(&profiles);
    assert!(
        problems.is_empty(),
        "accessibility problems (axe results and screenshots in {}):\n{}",
        artifacts.display(),
        problems.join("\n")
    );
}
