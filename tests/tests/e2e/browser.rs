//! The seed's Testing steps in a real browser ([`closedloop_tests::browser`]: headless
//! Chromium over WebDriver). An admin signs in, fills and saves Integrations > Okta; a user
//! signs in through the sign-in page and the (simulated) Okta login page, lands signed
//! in, signs out and lands on `/auth`. Screenshots are saved as test artefacts under
//! `target/artifacts/oidc-browser/`.
//!
//! Without Chromium the test says so and passes, unless `CLOSEDLOOP_REQUIRE_BROWSER` is
//! set (as `tests/run.sh` does, after installing it).

use closedloop_tests::browser::{self, Driver};
use closedloop_tests::harness::TestStack;
use closedloop_tests::okta_sim::OktaSim;
use closedloop_tests::okta_sim::directory::NewUser;
use closedloop_tests::region::Region;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_sets_up_okta_and_a_user_signs_in_and_out_in_chromium() {
    if !browser::available() {
        return;
    }
    let artifacts = browser::artifacts("oidc-browser");

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
