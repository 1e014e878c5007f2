//! A real browser for the e2e tests: headless Chromium (Debian's `chromium` and
//! `chromium-driver`) driven over the W3C WebDriver protocol with plain HTTP calls to
//! chromedriver. No WebDriver client crate: the handful of commands the tests use are
//! a few lines each, and a failed command panics with chromedriver's own answer.
//!
//! Nothing here sleeps for a fixed time: [`Session::wait_for`] and
//! [`Session::wait_until`] poll the page with a deadline, so a slow machine only makes
//! a test slower, never flaky.
//!
//! Without Chromium a browser test says so and passes ([`available`]), unless
//! `CLOSEDLOOP_REQUIRE_BROWSER` is set (as `tests/run.sh` does, after installing it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long a page may take to show what a test waits for.
const WAIT: Duration = Duration::from_secs(20);

/// The WebDriver key code of Tab.
pub const TAB: &str = "\u{E004}";
/// The WebDriver key code of Enter.
pub const ENTER: &str = "\u{E007}";

/// The Chromium binary chromedriver starts (Debian's `/usr/bin/chromium` is a wrapper).
fn chromium_binary() -> Option<PathBuf> {
    ["/usr/lib/chromium/chromium", "/usr/bin/chromium"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Whether Chromium and chromedriver are installed. When they are not, a browser test
/// says so and passes, unless `CLOSEDLOOP_REQUIRE_BROWSER` is set: then it fails.
pub fn available() -> bool {
    let required = std::env::var_os("CLOSEDLOOP_REQUIRE_BROWSER").is_some();
    let have = chromium_binary().is_some()
        && std::process::Command::new("chromedriver")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !have {
        assert!(!required, "chromium and chromedriver are required");
        eprintln!("skipped: chromium or chromedriver is not installed");
    }
    have
}

/// The directory of a test's artefacts (screenshots, reports), `target/artifacts/<name>`,
/// created if missing.
pub fn artifacts(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/artifacts")
        .join(name);
    std::fs::create_dir_all(&dir).expect("the artefacts directory is created");
    dir
}

/// A running chromedriver, killed on drop.
#[derive(Debug)]
pub struct Driver {
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
    pub async fn start() -> Self {
        let mut child = tokio::process::Command::new("chromedriver")
            .arg("--port=0")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let port = tokio::time::timeout(WAIT, async {
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
                .timeout(Duration::from_secs(90))
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
    pub async fn session(&self, profile: &Path) -> Session<'_> {
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
                    "goog:chromeOptions": { "binary": binary, "args": args },
                    // Scripts (an accessibility audit of a long page) may take a while.
                    "timeouts": { "script": 60_000, "pageLoad": 30_000 }
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
#[derive(Debug)]
pub struct Session<'d> {
    driver: &'d Driver,
    id: String,
}

impl Session<'_> {
    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.driver
            .call(method, &format!("/session/{}{path}", self.id), body)
            .await
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// The URL shown.
    pub async fn url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The document's title.
    pub async fn title(&self) -> String {
        self.cmd(reqwest::Method::GET, "/title", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The page's markup as the browser holds it now.
    pub async fn source(&self) -> String {
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

    /// Replaces the text of the field `css` with `text`, typed as keys.
    pub async fn type_into(&self, css: &str, text: &str) {
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

    /// Clicks the element `css`.
    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page and returns
    /// its result. WebDriver scripts are not subject to the page's CSP.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Runs `script` in the page and waits until it calls its last argument (the
    /// callback) with the result.
    pub async fn execute_async(&self, script: &str, args: Value) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Sets a cookie for the current page's host (open a page of that host first).
    pub async fn add_cookie(&self, name: &str, value: &str) {
        self.cmd(
            reqwest::Method::POST,
            "/cookie",
            Some(json!({ "cookie": { "name": name, "value": value, "path": "/", "httpOnly": true } })),
        )
        .await;
    }

    /// Presses and releases `key` (a WebDriver key code such as [`TAB`]) as a keyboard
    /// does, so the page sees real key events (and `:focus-visible` applies).
    pub async fn press(&self, key: &str) {
        self.cmd(
            reqwest::Method::POST,
            "/actions",
            Some(json!({ "actions": [{
                "type": "key",
                "id": "keyboard",
                "actions": [
                    { "type": "keyDown", "value": key },
                    { "type": "keyUp", "value": key }
                ]
            }]})),
        )
        .await;
    }

    /// Waits (polling, with a deadline) until the page source contains `text`.
    pub async fn wait_for(&self, text: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
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

    /// Waits (polling, with a deadline) until `script` (a function body) returns
    /// something other than `null` or `false`, and returns that.
    pub async fn wait_until(&self, what: &str, script: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let v = self.execute(script, json!([])).await;
            if !v.is_null() && v != Value::Bool(false) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what} never happened at {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Saves a PNG of the window as `dir/name`.
    pub async fn screenshot(&self, dir: &Path, name: &str) {
        let b64 = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .expect("a PNG");
        std::fs::write(dir.join(name), png).expect("the screenshot is written");
    }

    /// Closes the browser.
    pub async fn quit(self) {
        self.driver
            .call(
                reqwest::Method::DELETE,
                &format!("/session/{}", self.id),
                None,
            )
            .await;
    }
}
