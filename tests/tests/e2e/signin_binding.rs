//! Sign-in that no one can hijack (issue 14, sections 2 and 3, and the `iss_sub` part of
//! section 4), each attack played through the gateway against real workers and the
//! simulated Okta org:
//!
//! - login CSRF: an attacker's hand-off URL opened in the victim's browser never starts
//!   a session without the person confirming; a forged confirmation is refused;
//! - a sign-in started from the Okta dashboard needs one click on the confirmation page,
//!   and the new session ends the browser's previous one;
//! - accounts are Okta subjects: another Okta user given an admin's email is refused and
//!   audited, a SCIM user whose `externalId` is not the `sub` is refused, an email change
//!   in Okta keeps the account;
//! - Universal Logout's `iss_sub` finds a just-in-time user by their recorded subject.

use std::time::Duration;

use closedloop_tests::harness::{TestStack, Workspace, pg_connect};
use closedloop_tests::okta_sim::OktaSim;
use closedloop_tests::okta_sim::directory::UserId;
use closedloop_tests::okta_sim::logout::Subject;
use closedloop_tests::okta_world::{
    AuditEvent, assigned_user, audit, connect, provision_named, session_count,
};
use closedloop_tests::region::Region;
use serde_json::{Value, json};
use uuid::Uuid;

use closedloop_tests::tokens::{create_on_page, me};
use closedloop_tests::web::{Page, Web, hidden};

const APP: &str = "http://app.closedloop.localhost";
const API: &str = "http://api.closedloop.localhost";
const APP_HOST: &str = "app.closedloop.localhost";

/// A US workspace "Acme" whose first admin is `admin@acme.test`, connected to a
/// simulated org (sign-in on; just-in-time provisioning as asked).
struct Org<'a> {
    stack: &'a TestStack,
    ws: Workspace,
    sim: OktaSim,
}

async fn org(stack: &TestStack, jit: bool) -> Org<'_> {
    let sim = OktaSim::start().await.unwrap();
    let ws = stack.workspace(Region::Us, "Acme", "admin@acme.test").await;
    connect(stack, &ws.team_id, &sim).await;
    if jit {
        let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
        db.execute(
            "UPDATE okta_settings SET jit_provisioning = true WHERE team_id = $1",
            &[&Uuid::parse_str(&ws.team_id).unwrap()],
        )
        .await
        .unwrap();
    }
    Org { stack, ws, sim }
}

impl Org<'_> {
    /// An org user assigned to the app (not provisioned).
    async fn okta_user(&self, email: &str) -> UserId {
        assigned_user(&self.sim, email, "Some", "One").await
    }

    /// Provisions `email` with SCIM as Okta would; returns the SCIM id.
    async fn provision(&self, email: &str, external_id: &str) -> String {
        provision_named(
            self.stack,
            &self.ws.team_id,
            email,
            external_id,
            "Some",
            "One",
        )
        .await
    }

    /// "Sign in with your work email" in `web` as the org's `user`, to the end.
    async fn sign_in_with_email(&self, web: &mut Web, user: &UserId, email: &str) -> Page {
        self.sim.set_auto_sign_in(Some(user));
        web.sign_in_with_email(APP, email).await.unwrap()
    }

    /// The hand-off URL of `user`'s own sign-in in `web`, stopped before the app host.
    async fn handoff_url(&self, web: &mut Web, user: &UserId, email: &str) -> String {
        self.sim.set_auto_sign_in(Some(user));
        let mut p = web
            .post(&format!("{APP}/auth"), &[("email", email)])
            .await
            .unwrap();
        for _ in 0..6 {
            let next = p.location.clone().expect("a redirect");
            if next.starts_with(&format!("{APP}/auth/complete?")) {
                return next;
            }
            p = web.get(&next).await.unwrap();
        }
        panic!("no hand-off");
    }

    async fn db(&self) -> tokio_postgres::Client {
        pg_connect(&self.stack.us_stores.pg_url).await.unwrap()
    }

    /// The workspace's audit events `(action, target, detail)`, oldest first.
    async fn audit(&self) -> Vec<AuditEvent> {
        audit(self.stack, Some(&self.ws.team_id)).await
    }

    async fn sessions(&self) -> i64 {
        session_count(self.stack).await
    }

    async fn users(&self) -> i64 {
        self.db()
            .await
            .query_one("SELECT count(*) FROM users", &[])
            .await
            .unwrap()
            .get(0)
    }

    /// The user id and recorded Okta subject of the user named `user_name`.
    async fn binding(&self, user_name: &str) -> (Uuid, Option<String>, Option<String>) {
        let row = self
            .db()
            .await
            .query_one(
                "SELECT id, okta_issuer, okta_sub FROM users WHERE lower(user_name) = lower($1)",
                &[&user_name],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1), row.get(2))
    }
}

/// Who the browser's home page says is signed in, if anyone.
async fn signed_in_as(web: &mut Web) -> Option<String> {
    let home = web.get(&format!("{APP}/")).await.unwrap();
    let at = home.body.find("Signed in as <strong>")? + "Signed in as <strong>".len();
    let end = home.body[at..].find("</strong>")?;
    Some(home.body[at..at + end].to_owned())
}

#[tokio::test]
async fn signin_binding_an_attackers_handoff_in_the_victims_browser_needs_confirmation() {
    let stack = TestStack::start().await.unwrap();
    let o = org(&stack, false).await;
    let mallory = o.okta_user("mallory@acme.test").await;
    o.provision("mallory@acme.test", mallory.as_str()).await;

    // The victim works in the workspace as its admin; she also began a sign-in of her
    // own (her browser holds a sign-in cookie that is not the attacker's).
    let mut victim = Web::new(&stack.gateway.url());
    victim.sign_in_with_link(&o.ws.sign_in_url).await.unwrap();
    let victim_session = victim.cookie(APP_HOST, "clk_session").unwrap();
    let begun = victim
        .post(&format!("{APP}/auth"), &[("email", "admin@acme.test")])
        .await
        .unwrap();
    assert_eq!(begun.status, 303);
    assert!(victim.cookie(APP_HOST, "clk_signin").is_some());

    // The attacker signs in as himself and stops before the app host.
    let mut attacker = Web::new(&stack.gateway.url());
    let handoff = o
        .handoff_url(&mut attacker, &mallory, "mallory@acme.test")
        .await;
    let sessions = o.sessions().await;

    // The victim's browser opens it: a question, not a session.
    let page = victim.get(&handoff).await.unwrap();
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains("<h1>Continue as mallory@acme.test in Acme (US)?</h1>"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("This browser is signed in as <strong>admin@acme.test</strong>"),
        "the page says whom it would replace: {}",
        page.body
    );
    assert!(
        !page
            .set_cookies
            .iter()
            .any(|c| c.starts_with("clk_session=")),
        "{:?}",
        page.set_cookies
    );
    assert_eq!(o.sessions().await, sessions, "no session from a GET");
    assert_eq!(
        victim.cookie(APP_HOST, "clk_session").as_deref(),
        Some(victim_session.as_str())
    );
    assert_eq!(
        signed_in_as(&mut victim).await.as_deref(),
        Some("admin@acme.test")
    );
    // The code was spent by that GET.
    let again = victim.get(&handoff).await.unwrap();
    assert_eq!(again.status, 400);
    assert!(again.body.contains("expired"));

    // A cross-site page cannot answer for her: no CSRF token, a foreign Origin, or a
    // browser without the page's cookie are all refused, and change nothing.
    let forged = victim
        .post(&format!("{APP}/auth/complete"), &[("decision", "continue")])
        .await
        .unwrap();
    assert_eq!(forged.status, 403, "{}", forged.body);
    let csrf = hidden(&page.body, "csrf").unwrap();
    let foreign = o
        .stack
        .request(reqwest::Method::POST, APP_HOST, "/auth/complete")
        .header("origin", "http://evil.test")
        .header(
            "cookie",
            format!(
                "clk_confirm={}",
                victim.cookie(APP_HOST, "clk_confirm").unwrap()
            ),
        )
        .form(&[("csrf", csrf.as_str()), ("decision", "continue")])
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    let mut stranger = Web::new(&stack.gateway.url());
    let cookieless = stranger
        .post(
            &format!("{APP}/auth/complete"),
            &[("csrf", &csrf), ("decision", "continue")],
        )
        .await
        .unwrap();
    assert_eq!(cookieless.status, 400, "{}", cookieless.body);
    assert_eq!(o.sessions().await, sessions);
    assert_eq!(
        signed_in_as(&mut victim).await.as_deref(),
        Some("admin@acme.test")
    );

    // She declines: still herself; the waiting sign-in is gone.
    let declined = victim
        .post(
            &format!("{APP}/auth/complete"),
            &[("csrf", &csrf), ("decision", "cancel")],
        )
        .await
        .unwrap();
    assert_eq!(declined.status, 303);
    assert_eq!(o.sessions().await, sessions);
    assert_eq!(
        signed_in_as(&mut victim).await.as_deref(),
        Some("admin@acme.test")
    );

    // The attacker's own hand-off in his own browser completes silently.
    let mut attacker = Web::new(&stack.gateway.url());
    let handoff = o
        .handoff_url(&mut attacker, &mallory, "mallory@acme.test")
        .await;
    let home = attacker.go(&handoff).await.unwrap();
    assert!(
        home.body
            .contains("Signed in as <strong>mallory@acme.test</strong>"),
        "{}",
        home.body
    );

    // A confirmation waits a few minutes at most.
    let mut victim2 = Web::new(&stack.gateway.url());
    let mut other = Web::new(&stack.gateway.url());
    let handoff = o
        .handoff_url(&mut other, &mallory, "mallory@acme.test")
        .await;
    let page = victim2.get(&handoff).await.unwrap();
    assert_eq!(page.status, 200);
    stack.advance_clock(Region::Us, Duration::from_secs(181));
    let late = victim2
        .post(
            &format!("{APP}/auth/complete"),
            &[
                ("csrf", &hidden(&page.body, "csrf").unwrap()),
                ("decision", "continue"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(late.status, 400, "{}", late.body);
    assert!(signed_in_as(&mut victim2).await.is_none());
}

#[tokio::test]
async fn signin_binding_an_okta_dashboard_sign_in_is_confirmed_with_one_click() {
    let stack = TestStack::start().await.unwrap();
    let o = org(&stack, false).await;
    let jane = o.okta_user("jane@acme.test").await;
    o.provision("jane@acme.test", jane.as_str()).await;
    o.sim.set_auto_sign_in(Some(&jane));

    // The browser is signed in as the admin; Jane opens the app from Okta's dashboard.
    let mut web = Web::new(&stack.gateway.url());
    web.sign_in_with_link(&o.ws.sign_in_url).await.unwrap();
    let old_session = web.cookie(APP_HOST, "clk_session").unwrap();
    let iss = url::form_urlencoded::byte_serialize(o.sim.issuer().as_bytes()).collect::<String>();
    let page = web
        .go(&format!("{API}/api/okta/oidc/login?iss={iss}"))
        .await
        .unwrap();
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains("<h1>Continue as jane@acme.test in Acme (US)?</h1>"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("signed in as <strong>admin@acme.test</strong>")
    );

    // One click: signed in as Jane; the admin's session in this browser is over.
    let home = web.confirm(page).await.unwrap();
    assert!(
        home.body
            .contains("Signed in as <strong>jane@acme.test</strong>"),
        "{}",
        home.body
    );
    let new_session = web.cookie(APP_HOST, "clk_session").unwrap();
    assert_ne!(new_session, old_session);
    let old = stack
        .get(APP_HOST, "/")
        .header("cookie", format!("clk_session={old_session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 303, "the previous session was revoked");
    let confirmed = o
        .audit()
        .await
        .into_iter()
        .filter(|(a, _, _)| a == "session.signed_in.okta")
        .map(|(_, _, d)| (d["confirmed"].clone(), d["replaced_session"].clone()))
        .collect::<Vec<_>>();
    assert_eq!(confirmed, [(json!(true), json!(true))]);

    // Every sign-in mints a fresh sign-in cookie, whatever the browser holds.
    let mut planted = Web::new(&stack.gateway.url());
    let first = planted
        .post(&format!("{APP}/auth"), &[("email", "jane@acme.test")])
        .await
        .unwrap();
    let a = planted.cookie(APP_HOST, "clk_signin").unwrap();
    let second = planted
        .post(&format!("{APP}/auth"), &[("email", "jane@acme.test")])
        .await
        .unwrap();
    let b = planted.cookie(APP_HOST, "clk_signin").unwrap();
    assert_ne!(a, b);
    for p in [&first, &second] {
        let login = p.location.as_deref().unwrap();
        assert!(login.contains("&app_binding="), "{login}");
        assert!(
            !login.contains(&a) && !login.contains(&b),
            "only its hash travels"
        );
        let cookie = p
            .set_cookies
            .iter()
            .find(|c| c.starts_with("clk_signin="))
            .unwrap();
        assert!(
            cookie.contains("; Path=/; HttpOnly; SameSite=Lax; Max-Age="),
            "{cookie}"
        );
    }
    // The browser that began the sign-in at /auth completes without a question.
    let home = planted.follow(second).await.unwrap();
    assert!(
        home.body
            .contains("Signed in as <strong>jane@acme.test</strong>"),
        "{}",
        home.body
    );
    assert!(planted.cookie(APP_HOST, "clk_signin").is_none(), "spent");
}

#[tokio::test]
async fn signin_binding_another_okta_user_with_an_admins_email_is_refused_and_audited() {
    let stack = TestStack::start().await.unwrap();
    let o = org(&stack, true).await;
    // The admin signs in with Okta once: her account is now bound to her subject.
    let admin = o.okta_user("admin@acme.test").await;
    let mut web = Web::new(&stack.gateway.url());
    let home = o
        .sign_in_with_email(&mut web, &admin, "admin@acme.test")
        .await;
    assert!(
        home.body
            .contains("Signed in as <strong>admin@acme.test</strong>")
    );
    let (admin_id, issuer, sub) = o.binding("admin@acme.test").await;
    assert_eq!(issuer.as_deref(), Some(o.sim.issuer()));
    assert_eq!(sub.as_deref(), Some(admin.as_str()));
    assert!(
        o.audit()
            .await
            .iter()
            .any(|(a, t, _)| a == "oidc.user.bound" && t.as_deref() == Some(&*admin_id.to_string()))
    );

    // Another Okta user is given her email (a delegated admin, a profile edit) and
    // signs in, from /auth and from the dashboard.
    let mallory = o.okta_user("mallory@acme.test").await;
    o.sim
        .update_profile(&mallory, |p| p.email = "admin@acme.test".into())
        .await
        .unwrap();
    let sessions = o.sessions().await;
    let users = o.users().await;
    let mut attacker = Web::new(&stack.gateway.url());
    let p = o
        .sign_in_with_email(&mut attacker, &mallory, "admin@acme.test")
        .await;
    assert_eq!(p.status, 403, "{}", p.body);
    assert!(
        p.body.contains("This account belongs to another Okta user"),
        "{}",
        p.body
    );
    assert!(p.body.contains("subject_mismatch"));
    let p = attacker
        .go(&format!(
            "{API}/api/okta/oidc/login?team_id={}",
            o.ws.team_id
        ))
        .await
        .unwrap();
    assert_eq!(p.status, 403, "{}", p.body);
    assert!(signed_in_as(&mut attacker).await.is_none());
    assert_eq!(o.sessions().await, sessions, "no session");
    assert_eq!(o.users().await, users, "no second account");
    let refusals: Vec<Value> = o
        .audit()
        .await
        .into_iter()
        .filter(|(a, _, d)| a == "oidc.sign_in.failed" && d["reason"] == "subject_mismatch")
        .map(|(_, _, d)| d)
        .collect();
    assert_eq!(refusals.len(), 2, "{refusals:?}");
    for d in &refusals {
        assert_eq!(d["user_id"], json!(admin_id.to_string()));
        assert_eq!(d["okta_sub"], json!(mallory.as_str()));
    }
    // The binding is unchanged, and the admin still signs in.
    assert_eq!(
        o.binding("admin@acme.test").await.2.as_deref(),
        Some(admin.as_str())
    );
    let mut again = Web::new(&stack.gateway.url());
    let home = o
        .sign_in_with_email(&mut again, &admin, "admin@acme.test")
        .await;
    assert!(
        home.body
            .contains("Signed in as <strong>admin@acme.test</strong>")
    );
}

#[tokio::test]
async fn signin_binding_a_scim_user_signs_in_only_with_their_external_id_as_sub() {
    let stack = TestStack::start().await.unwrap();
    let o = org(&stack, false).await;
    // Provisioned for Okta user 00u-real-sam; another Okta user with that email signs in.
    o.provision("sam@acme.test", "00u-real-sam").await;
    let other = o.okta_user("sam@acme.test").await;
    assert_ne!(other.as_str(), "00u-real-sam");
    let sessions = o.sessions().await;
    let mut web = Web::new(&stack.gateway.url());
    let p = o
        .sign_in_with_email(&mut web, &other, "sam@acme.test")
        .await;
    assert_eq!(p.status, 403, "{}", p.body);
    assert!(p.body.contains("linked to a different Okta user"));
    assert_eq!(o.sessions().await, sessions);
    let (id, _, sub) = o.binding("sam@acme.test").await;
    assert_eq!(sub, None, "nothing recorded");
    let last = o
        .audit()
        .await
        .into_iter()
        .rfind(|(a, _, _)| a == "oidc.sign_in.failed")
        .unwrap();
    assert_eq!(last.2["reason"], "subject_mismatch");
    assert_eq!(last.2["user_id"], json!(id.to_string()));

    // The right Okta user (sub = externalId) signs in.
    let tia = o.okta_user("tia@acme.test").await;
    o.provision("tia@acme.test", tia.as_str()).await;
    let home = o.sign_in_with_email(&mut web, &tia, "tia@acme.test").await;
    assert!(
        home.body
            .contains("Signed in as <strong>tia@acme.test</strong>")
    );
}

#[tokio::test]
async fn signin_binding_an_email_change_in_okta_keeps_the_account() {
    let stack = TestStack::start().await.unwrap();
    let o = org(&stack, true).await;

    // Provisioned by SCIM, renamed by SCIM PATCH (userName and emails).
    let jane = o.okta_user("jane@acme.test").await;
    let scim_id = o.provision("jane@acme.test", jane.as_str()).await;
    let mut web = Web::new(&stack.gateway.url());
    o.sign_in_with_email(&mut web, &jane, "jane@acme.test")
        .await;
    let (id, _, sub) = o.binding("jane@acme.test").await;
    assert_eq!(sub.as_deref(), Some(jane.as_str()));
    o.sim
        .update_profile(&jane, |p| p.email = "jane.roe@acme.test".into())
        .await
        .unwrap();
    let scim = stack.scim(Region::Us, &o.ws.team_id, "").await;
    let (status, body) = scim
        .patch(
            &format!("/Users/{scim_id}"),
            &json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                     "Operations": [
                        { "op": "replace", "path": "userName", "value": "jane.roe@acme.test" },
                        { "op": "replace", "path": "emails",
                          "value": [{ "value": "jane.roe@acme.test", "primary": true, "type": "work" }] }
                     ] }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        o.binding("jane.roe@acme.test").await,
        (id, Some(o.sim.issuer().to_owned()), sub.clone())
    );
    let mut web = Web::new(&stack.gateway.url());
    let home = o
        .sign_in_with_email(&mut web, &jane, "jane.roe@acme.test")
        .await;
    assert!(
        home.body
            .contains("Signed in as <strong>jane.roe@acme.test</strong>"),
        "{}",
        home.body
    );

    // A just-in-time user whose email changes in Okta only (no SCIM to tell us): the
    // subject still finds their account; no second account appears.
    let bob = o.okta_user("bob@acme.test").await;
    o.sim.set_auto_sign_in(Some(&bob));
    let mut web = Web::new(&stack.gateway.url());
    web.go_confirmed(&format!(
        "{API}/api/okta/oidc/login?team_id={}",
        o.ws.team_id
    ))
    .await
    .unwrap();
    let (bob_id, _, _) = o.binding("bob@acme.test").await;
    o.sim
        .update_profile(&bob, |p| p.email = "robert@acme.test".into())
        .await
        .unwrap();
    let users = o.users().await;
    let mut web = Web::new(&stack.gateway.url());
    let home = web
        .go_confirmed(&format!(
            "{API}/api/okta/oidc/login?team_id={}",
            o.ws.team_id
        ))
        .await
        .unwrap();
    assert!(
        home.body
            .contains("Signed in as <strong>bob@acme.test</strong>"),
        "{}",
        home.body
    );
    assert_eq!(o.users().await, users, "no second account");
    let signed_in: Vec<Option<String>> = o
        .audit()
        .await
        .into_iter()
        .filter(|(a, _, _)| a == "session.signed_in.okta")
        .map(|(_, t, _)| t)
        .collect();
    assert_eq!(
        signed_in.last().unwrap().as_deref(),
        Some(&*bob_id.to_string())
    );
}

#[tokio::test]
async fn signin_binding_iss_sub_logout_finds_a_jit_user() {
    let stack = TestStack::start().await.unwrap();
    let o = org(&stack, true).await;
    let kim = o.okta_user("kim@acme.test").await;
    o.sim.set_auto_sign_in(Some(&kim));
    let mut web = Web::new(&stack.gateway.url());
    let home = web
        .go_confirmed(&format!(
            "{API}/api/okta/oidc/login?team_id={}",
            o.ws.team_id
        ))
        .await
        .unwrap();
    assert!(
        home.body
            .contains("Signed in as <strong>kim@acme.test</strong>")
    );
    let cookie = format!(
        "clk_session={}",
        web.cookie(APP_HOST, "clk_session").unwrap()
    );
    let token = create_on_page(&stack, Region::Us, &cookie, "laptop", "api").await;
    assert_eq!(me(&stack, Region::Us, &token).await, 200);
    let (_, _, sub) = o.binding("kim@acme.test").await;
    assert_eq!(
        sub.as_deref(),
        Some(kim.as_str()),
        "a JIT user has no externalId, but a subject"
    );

    let sent = o
        .sim
        .app()
        .universal_logout(
            &stack.universal_logout_endpoint(Region::Us),
            &Subject::IssSub {
                iss: o.sim.issuer().to_owned(),
                sub: kim.as_str().to_owned(),
            },
        )
        .await
        .unwrap();
    assert_eq!(sent.status, 204, "{}", sent.body);
    assert_eq!(me(&stack, Region::Us, &token).await, 401);
    assert!(signed_in_as(&mut web).await.is_none());
}
