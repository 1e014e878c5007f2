//! The seed's Testing steps in a real browser: headless Chromium (Debian's `chromium`
//! and `chromium-driver`) driven over the W3C WebDriver protocol with plain HTTP calls
//! to chromedriver. An admin signs in, fills and saves Integrations > Okta; a user
//! signs in through the sign-in page and the (simulated) Okta login page, lands signed
//! in, signs out and lands on `/auth`. Screenshots are saved as test artefacts under
//! `target/artifacts/oidc-browser/`.
//!
//! Without Chromium the test says so and passes, unless `CLOSEDLOOP_REQUIRE_BROWSER` is
//! set (as `tests/run.sh` does, after installing it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use closedloop_tests::harness::TestStack;
use closedloop_tests::okta_sim::OktaSim;
use closedloop_tests::okta_sim::directory::NewUser;
use closedloop_tests::region::Region;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The Chromium binary chromedriver starts (Debian's `/usr/bin/chromium` is a wrapper).
fn chromium_binary() -> Option<PathBuf> {
    ["/usr/lib/chromium/chromium", "/usr/bin/chromium"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// A running chromedriver.
struct Driver {
    child: tokio::process::Child,
    url: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl Driver {
    /// Starts chromedriver on a port of its choosing and reads which.
    async fn start() -> Self {
        let mut child = tokio::process::Command::new("chromedriver")
            .arg("--port=0")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let port = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    return rest.trim_end_matches('.').trim().parse::<u16>().unwrap();
                }
            }
            panic!("chromedriver exited");
        })
        .await
        .expect("chromedriver reports its port");
        // Keep draining its output so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("webdriver call");
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {v}");
        v["value"].clone()
    }

    /// A fresh browser (its own profile directory).
    async fn session(&self, profile: &Path) -> Session<'_> {
        let binary = chromium_binary().expect("chromium is installed");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,2200",
        ]
        .into_iter()
        .map(str::to_owned)
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect::<Vec<_>>();
        let v = self
            .call(
                reqwest::Method::POST,
                "/session",
                Some(json!({ "capabilities": { "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": { "binary": binary, "args": args }
                }}})),
            )
            .await;
        Session {
            driver: self,
            id: v["sessionId"].as_str().expect("a session id").to_owned(),
        }
    }
}

/// One browser window.
struct Session<'d> {
    driver: &'d Driver,
    id: String,
}

impl Session<'_> {
    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.driver
            .call(method, &format!("/session/{}{path}", self.id), body)
            .await
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn source(&self) -> String {
        self.cmd(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        match v[ELEMENT].as_str() {
            Some(e) => e.to_owned(),
            None => panic!(
                "no {css} at {}: {v}\n{}",
                self.url().await,
                self.source().await
            ),
        }
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{e}/clear"),
            Some(json!({})),
        )
        .await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Waits (polling, with a deadline) until the page source contains `text`.
    async fn wait_for(&self, text: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let source = self.source().await;
            if source.contains(text) {
                return source;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{text:?} never appeared at {}:\n{source}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn screenshot(&self, dir: &Path, name: &str) {
        let b64 = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .expect("a PNG");
        std::fs::write(dir.join(name), png).expect("the screenshot is written");
    }

    async fn quit(self) {
        self.driver
            .call(
                reqwest::Method::DELETE,
                &format!("/session/{}", self.id),
                None,
            )
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_sets_up_okta_and_a_user_signs_in_and_out_in_chromium() {
    let required = std::env::var_os("CLOSEDLOOP_REQUIRE_BROWSER").is_some();
    let have = chromium_binary().is_some()
        && std::process::Command::new("chromedriver")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !have {
        assert!(!required, "chromium and chromedriver are required");
        eprintln!("skipped: chromium or chromedriver is not installed");
        return;
    }
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/artifacts/oidc-browser");
    std::fs::create_dir_all(&artifacts).unwrap();

    // The stack at URLs with the gateway's port, so the browser can follow them.
    let stack = TestStack::start_configured(1, true, |_| {}).await.unwrap();
    let port = stack.gateway.addr.port();
    let app_url = format!("http://app.closedloop.localhost:{port}");
    let sim = OktaSim::start().await.unwrap();
    let app = sim.app();
    app.add_redirect_uri(&format!(
        "http://api.closedloop.localhost:{port}/api/okta/oidc/callback"
    ));
    app.add_post_logout_redirect_uri(&format!("{app_url}/auth"));
    let ws = stack.workspace(Region::Us, "Acme", "admin@acme.test").await;
    let jane = sim
        .add_user(NewUser::new("jane@acme.test", "Jane", "Doe").with_password("correct horse"))
        .unwrap();
    app.assign(&jane).await.unwrap();
    let (status, _) = stack
        .scim(Region::Us, &ws.team_id, "")
        .await
        .post(
            "/Users",
            &json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                     "userName": "jane@acme.test", "externalId": jane.as_str(),
                     "name": { "givenName": "Jane", "familyName": "Doe" }, "active": true }),
        )
        .await;
    assert_eq!(status, 201);

    let driver = Driver::start().await;
    let profiles =
        std::env::temp_dir().join(format!("clk-chromium-{}", uuid::Uuid::new_v4().simple()));

    // The admin: one-time link, then Integrations > Okta.
    let admin = driver.session(&profiles.join("admin")).await;
    admin.goto(&ws.sign_in_url).await;
    admin.click("button[type=submit]").await;
    admin.wait_for("Signed in as").await;
    admin.goto(&format!("{app_url}/integrations/okta")).await;
    admin.wait_for("Save Okta setup").await;
    admin.screenshot(&artifacts, "01-okta-page.png").await;
    admin
        .type_into("#okta_domain", sim.base_url().trim_start_matches("http://"))
        .await;
    admin.type_into("#client_id", app.client_id()).await;
    admin
        .type_into("#client_secret", &app.client_secret())
        .await;
    admin
        .click("form[action='/integrations/okta'] button[type=submit]")
        .await;
    let saved = admin.wait_for("Okta setup saved").await;
    assert!(saved.contains(sim.issuer()));
    assert!(!saved.contains(&app.client_secret()));
    admin.screenshot(&artifacts, "02-okta-page-saved.png").await;
    admin.quit().await;

    // The user: /auth, the Okta login page, signed in, signed out.
    let user = driver.session(&profiles.join("user")).await;
    user.goto(&format!("{app_url}/auth")).await;
    user.wait_for("Sign in with your work email").await;
    user.type_into("#email", "jane@acme.test").await;
    user.screenshot(&artifacts, "03-sign-in.png").await;
    user.click("button[type=submit]").await;
    user.wait_for("Simulated Okta org").await;
    user.screenshot(&artifacts, "04-okta-login.png").await;
    user.type_into("input[name=username]", "jane@acme.test")
        .await;
    user.type_into("input[name=password]", "correct horse")
        .await;
    user.click("button[type=submit]").await;
    user.wait_for("Signed in as <strong>jane@acme.test</strong>")
        .await;
    assert_eq!(user.url().await, format!("{app_url}/"));
    user.screenshot(&artifacts, "05-signed-in.png").await;
    user.click("form[action='/auth/sign-out'] button").await;
    user.wait_for("You are signed out").await;
    assert!(user.url().await.starts_with(&format!("{app_url}/auth")));
    user.screenshot(&artifacts, "06-signed-out.png").await;
    assert_eq!(sim.logouts().len(), 1);
    user.quit().await;
    let _ = std::fs::remove_dir_all(&profiles);
}
