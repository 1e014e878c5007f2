//! The seed's troubleshooting table, one test per row: each reproduces the symptom as
//! an Okta admin would meet it and checks that the product says what the table's fix
//! says.

use closedloop_tests::harness::TestStack;
use closedloop_tests::okta_sim::OktaSim;
use closedloop_tests::okta_sim::directory::NewUser;
use closedloop_tests::okta_sim::logout::{Forgery, Subject};
use closedloop_tests::okta_sim::provisioning::Provisioned;
use closedloop_tests::okta_sim::upstream::Upstream;
use closedloop_tests::region::Region;
use closedloop_tests::story::{StoryTarget, configure, eval_expression};
use closedloop_tests::web::Web;

const JANE: &str = "jane@acme.test";

/// "Okta reports an invalid SCIM base URL" → "Confirm the base URL uses string
/// concatenation with `app.team_id` and that the tenant setting name is `team_id`."
#[tokio::test]
async fn a_scim_base_url_without_the_team_id_is_refused_with_a_pointer_to_team_id() {
    let stack = TestStack::start().await.unwrap();
    let target = StoryTarget::InProcess(&stack);
    let sim = OktaSim::start().await.unwrap();
    let mut c = configure(&target, &sim, Region::Us, false).await.unwrap();

    // The expression as shown evaluates; a wrong tenant setting name does not.
    let expr = format!(
        "'{}' + app.team_id",
        c.values.scim_base_url.trim_end_matches(&c.team_id)
    );
    assert_eq!(
        eval_expression(&expr, &c.team_id).unwrap(),
        c.values.scim_base_url
    );
    assert!(eval_expression(&expr.replace("team_id", "teamId"), &c.team_id).is_err());

    // The base URL typed without the concatenation: Okta calls `…/api/scim/v2/Users`.
    let bare = c
        .values
        .scim_base_url
        .trim_end_matches(&c.team_id)
        .trim_end_matches('/')
        .to_owned();
    let token = c
        .connect_provisioning_at(&target, &sim, Region::Us, &bare)
        .await
        .unwrap();
    let jane = sim.add_user(NewUser::new(JANE, "Jane", "Doe")).unwrap();
    let err = c
        .app
        .assign(&jane)
        .await
        .expect_err("nothing to provision into");
    println!("assign without team_id: {err:#}");
    let r = stack
        .get(closedloop_tests::harness::US_API, "/api/scim/v2/Users")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    println!("{status} {body}");
    assert!(matches!(status, 400 | 404), "{status} {body}");
    assert!(
        body.contains("app.team_id") && body.contains("tenant setting team_id"),
        "the answer says what the table's fix says: {body}"
    );
    assert!(format!("{err:#}").contains("app.team_id"), "{err:#}");
}

/// "Users can authenticate in Okta but cannot enter ClosedLoop AI" → "Confirm the user
/// is assigned to the Okta app and is provisioned or Just-in-time provisioning is
/// enabled in ClosedLoop AI."
#[tokio::test]
async fn an_okta_user_neither_provisioned_nor_jit_is_told_about_assignment_and_jit() {
    let stack = TestStack::start().await.unwrap();
    let target = StoryTarget::InProcess(&stack);
    let sim = OktaSim::start().await.unwrap();
    let c = configure(&target, &sim, Region::Us, false).await.unwrap();
    let jane = sim.add_user(NewUser::new(JANE, "Jane", "Doe")).unwrap();
    // Assigned in Okta (provisioning not connected: recorded only), authenticated there.
    assert!(matches!(
        c.app.assign(&jane).await.unwrap(),
        Provisioned::NotConnected
    ));
    sim.set_auto_sign_in(Some(&jane));
    let mut web = Web::new(&stack.gateway.url());
    let page = web.go(&c.values.initiate_login_uri).await.unwrap();
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(
        page.body.contains("Just-in-time provisioning"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("Signed in as"));
    assert!(
        web.cookie(closedloop_tests::harness::US_APP, "clk_session")
            .is_none()
    );
}

/// "The OIDC callback fails" → "Confirm the Redirect URI exactly matches the
/// region-specific callback URL."
#[tokio::test]
async fn a_redirect_uri_that_does_not_match_fails_and_the_page_shows_the_exact_one() {
    let stack = TestStack::start().await.unwrap();
    let target = StoryTarget::InProcess(&stack);
    let sim = OktaSim::start().await.unwrap();
    let c = configure(&target, &sim, Region::Us, false).await.unwrap();
    // The Okta app was given the EU callback instead of the page's.
    let wrong = sim
        .add_app(closedloop_tests::okta_sim::seed::SeedApp {
            name: "closedloop-mistyped".into(),
            client_id: None,
            client_secret: None,
            redirect_uris: vec!["http://eu.api.closedloop.localhost/api/okta/oidc/callback".into()],
            post_logout_redirect_uris: vec![c.values.post_logout_uri.clone()],
        })
        .unwrap();
    let mut admin = c.admin;
    let page = admin
        .get("http://app.closedloop.localhost/integrations/okta")
        .await
        .unwrap();
    let at = page.body.find("action=\"/integrations/okta\"").unwrap();
    let csrf = closedloop_tests::web::hidden(&page.body[at..], "csrf").unwrap();
    let domain = sim.base_url().trim_start_matches("http://").to_owned();
    let secret = wrong.client_secret();
    let saved = admin
        .post(
            "http://app.closedloop.localhost/integrations/okta",
            &[
                ("csrf", csrf.as_str()),
                ("okta_domain", domain.as_str()),
                ("client_id", wrong.client_id()),
                ("client_secret", secret.as_str()),
                ("sign_in_enabled", "on"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(saved.status, 303);
    let jane = sim.add_user(NewUser::new(JANE, "Jane", "Doe")).unwrap();
    wrong.assign(&jane).await.unwrap();
    sim.set_auto_sign_in(Some(&jane));
    let mut web = Web::new(&stack.gateway.url());
    let page = web.go(&c.values.initiate_login_uri).await.unwrap();
    println!("{} {}", page.status, page.body);
    assert!(!page.body.contains("Signed in as"), "{}", page.body);
    assert!(page.body.contains("redirect_uri"), "{}", page.body);
    // The page shows the exact, region-specific callback to enter.
    let shown = admin
        .get("http://app.closedloop.localhost/integrations/okta")
        .await
        .unwrap();
    assert!(shown.body.contains(
        "<code id=\"redirect-uri\">http://api.closedloop.localhost/api/okta/oidc/callback</code>"
    ));
}

/// "Universal Logout returns 401" → "Confirm Okta is using `SIGNED_JWT` and the Global
/// Token Revocation endpoint for the same region as the workspace."
#[tokio::test]
async fn universal_logout_with_the_wrong_method_or_the_other_regions_endpoint_is_401() {
    let stack = TestStack::start().await.unwrap();
    let target = StoryTarget::InProcess(&stack);
    let sim = OktaSim::start().await.unwrap();
    let c = configure(&target, &sim, Region::Us, false).await.unwrap();
    let subject = Subject::Email(JANE.into());
    let gw = stack.gateway.url();
    let own = Upstream::via(&c.values.gtr_endpoint, &gw).unwrap();
    // Another method than SIGNED_JWT: a static bearer, or the JWT with a shared secret.
    let r = stack
        .request(
            reqwest::Method::POST,
            closedloop_tests::harness::US_API,
            "/api/okta/universal-logout",
        )
        .bearer_auth("a-static-api-key")
        .json(&subject.body())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let sent = c
        .app
        .forged_logout(&own, &subject, Forgery::Hs256WithPublicKey)
        .await
        .unwrap();
    assert_eq!(sent.status, 401);
    // The other region's endpoint (its URL is the JWT's audience).
    let eu = Upstream::via(&c.values.gtr_endpoint.replace("://api.", "://eu.api."), &gw).unwrap();
    let sent = c.app.universal_logout(&eu, &subject).await.unwrap();
    assert_eq!(sent.status, 401, "{}", sent.body);
    // The same region's endpoint with SIGNED_JWT: authenticated (no such user here,
    // which is not a 401).
    let sent = c.app.universal_logout(&own, &subject).await.unwrap();
    assert_eq!(sent.status, 404, "{}", sent.body);
}

/// "A user is deactivated but still has the app open" → "Confirm Okta sent the SCIM
/// deactivation or Universal Logout event for the same ClosedLoop AI region."
#[tokio::test]
async fn a_deactivated_user_with_the_app_open_is_refused_on_the_next_request() {
    let stack = TestStack::start().await.unwrap();
    let target = StoryTarget::InProcess(&stack);
    let sim = OktaSim::start().await.unwrap();
    let mut c = configure(&target, &sim, Region::Us, false).await.unwrap();
    let base = c.values.scim_base_url.clone();
    c.connect_provisioning_at(&target, &sim, Region::Us, &base)
        .await
        .unwrap();
    let jane = sim.add_user(NewUser::new(JANE, "Jane", "Doe")).unwrap();
    c.app.assign(&jane).await.unwrap();
    sim.set_auto_sign_in(Some(&jane));
    let mut web = Web::new(&stack.gateway.url());
    let started = web
        .post("http://app.closedloop.localhost/auth", &[("email", JANE)])
        .await
        .unwrap();
    let (_, home) = web.trail(started).await.unwrap();
    assert!(home.body.contains("Signed in as"), "{}", home.body);
    let open = web
        .get("http://app.closedloop.localhost/tokens")
        .await
        .unwrap();
    assert_eq!(open.status, 200);

    // Deactivated in Okta: the SCIM event reaches this region; the next request of the
    // open app is refused.
    sim.deactivate_user(&jane).await.unwrap();
    let next = web
        .get("http://app.closedloop.localhost/tokens")
        .await
        .unwrap();
    assert_eq!(next.status, 303);
    assert!(
        next.location
            .as_deref()
            .is_some_and(|l| l.contains("/auth")),
        "{:?}",
        next.location
    );
}
