//! Sign-in by email domain (issue 16, home realm discovery), through the gateway with
//! real DNS: an admin claims a domain on Integrations > Okta, publishes the TXT record
//! the page shows in the test's DNS server, and Verify finds it through the worker's
//! resolver. A new user of a verified domain then signs in from `/auth` with the
//! workspace's Okta (the simulated org) and is created just in time, or told that
//! just-in-time provisioning is off. Read as the other tenant: a pending claim routes
//! nothing, a second workspace cannot verify a domain another holds until an operator
//! releases it (the real binary), cannot see, verify or remove another's claim, cannot
//! forge a claim without the form's token, and free mail domains are refused. A claim
//! never hides an existing membership. A DNS server that does not answer gets a page.

use closedloop_tests::dns_server::DnsServer;
use closedloop_tests::harness::{TestStack, Workspace, operator, pg_connect};
use closedloop_tests::okta_page::{Setup, save_setup};
use closedloop_tests::okta_sim::OktaSim;
use closedloop_tests::okta_world::{audit, failure_reasons, okta_user, provision_named};
use closedloop_tests::region::Region;
use closedloop_tests::web::{Page, Web, code_by_id, hidden};
use serde_json::json;

const APP: &str = "http://app.closedloop.localhost";
const API: &str = "http://api.closedloop.localhost";
const OKTA_PAGE: &str = "http://app.closedloop.localhost/integrations/okta";
const DOMAINS: &str = "http://app.closedloop.localhost/integrations/okta/domains";

/// A stack whose US workers verify domains against `dns`.
async fn stack_with(dns: &DnsServer) -> TestStack {
    let addr = dns.addr();
    TestStack::start_configured(1, false, move |c| c.dns_server = Some(addr))
        .await
        .unwrap()
}

/// A US workspace whose first admin is signed in (in the returned browser), connected
/// to `sim` on its Okta page with sign-in on and JIT as given.
async fn admin_of(
    stack: &TestStack,
    sim: &OktaSim,
    name: &str,
    admin_email: &str,
    jit: bool,
) -> (Workspace, Web) {
    let ws = stack.workspace(Region::Us, name, admin_email).await;
    let mut admin = Web::new(&stack.gateway.url());
    admin.sign_in_with_link(&ws.sign_in_url).await.unwrap();
    connect(&mut admin, sim, true, jit).await;
    (ws, admin)
}

/// Saves the Okta page's setup for `sim` (the secret kept after the first save).
async fn connect(admin: &mut Web, sim: &OktaSim, enabled: bool, jit: bool) {
    let app = sim.app();
    let secret = app.client_secret();
    let saved = save_setup(
        admin,
        &Setup {
            domain: sim.base_url().trim_start_matches("http://"),
            client_id: app.client_id(),
            secret: &secret,
            enabled,
            jit,
        },
    )
    .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
}

/// The CSRF token of the email-domain forms on the admin's Okta page.
async fn domain_csrf(admin: &mut Web) -> String {
    let page = admin.get(OKTA_PAGE).await.unwrap();
    assert_eq!(page.status, 200, "{}", page.body);
    let at = page
        .body
        .find("action=\"/integrations/okta/domains\"")
        .expect("the claim form");
    hidden(&page.body[at..], "csrf").unwrap()
}

/// Claims `domain` with the page's form; the answer, not followed.
async fn claim(admin: &mut Web, domain: &str) -> Page {
    let csrf = domain_csrf(admin).await;
    admin
        .post(DOMAINS, &[("csrf", &csrf), ("email_domain", domain)])
        .await
        .unwrap()
}

/// Presses Verify (`verb` "verify") or Remove ("remove") for `domain`.
async fn press(admin: &mut Web, verb: &str, domain: &str) -> Page {
    let csrf = domain_csrf(admin).await;
    admin
        .post(
            &format!("{DOMAINS}/{verb}"),
            &[("csrf", &csrf), ("domain", domain)],
        )
        .await
        .unwrap()
}

/// The TXT record the page shows for `domain`: (name, value).
fn record(html: &str, domain: &str) -> (String, String) {
    (
        code_by_id(html, &format!("dns-name-{domain}")).unwrap(),
        code_by_id(html, &format!("dns-value-{domain}")).unwrap(),
    )
}

/// Claims `domain`, publishes its record and verifies it.
async fn claim_and_verify(admin: &mut Web, dns: &DnsServer, domain: &str) -> (String, String) {
    let p = claim(admin, domain).await;
    assert_eq!(p.status, 303, "{}", p.body);
    let page = admin.follow(p).await.unwrap();
    let (name, value) = record(&page.body, domain);
    dns.publish_txt(&name, &value);
    let p = press(admin, "verify", domain).await;
    assert_eq!(p.status, 303, "{}", p.body);
    (name, value)
}

/// Where `/auth` sends `email` from a fresh browser: the Initiate login URI's
/// `team_id`, or the page's status when it sends nowhere.
async fn routed_to(stack: &TestStack, email: &str) -> Result<String, (u16, String)> {
    let mut browser = Web::new(&stack.gateway.url());
    let p = browser
        .post(&format!("{APP}/auth"), &[("email", email)])
        .await
        .unwrap();
    match p.location.as_deref() {
        Some(l) if p.status == 303 => {
            let url = url::Url::parse(l).unwrap();
            assert_eq!(
                format!(
                    "{}://{}{}",
                    url.scheme(),
                    url.host_str().unwrap(),
                    url.path()
                ),
                format!("{API}/api/okta/oidc/login"),
            );
            let hint = url.query_pairs().find(|(k, _)| k == "login_hint");
            assert_eq!(hint.map(|(_, v)| v.into_owned()).as_deref(), Some(email));
            Ok(url
                .query_pairs()
                .find(|(k, _)| k == "team_id")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default())
        }
        _ => Err((p.status, p.body)),
    }
}

/// The claims of `team_id` in the US store: (domain, verified).
async fn claims(stack: &TestStack, team_id: &str) -> Vec<(String, bool)> {
    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    let team = uuid::Uuid::parse_str(team_id).unwrap();
    db.query(
        "SELECT domain, verified_at IS NOT NULL FROM email_domains WHERE team_id = $1
          ORDER BY domain",
        &[&team],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// The audit actions of `team_id`, oldest first.
async fn actions(stack: &TestStack, team_id: &str) -> Vec<String> {
    audit(stack, Some(team_id))
        .await
        .into_iter()
        .map(|(a, _, _)| a)
        .collect()
}

#[tokio::test]
async fn a_verified_domain_takes_a_new_user_from_auth_to_okta_where_jit_creates_them() {
    let dns = DnsServer::start().await.unwrap();
    let stack = stack_with(&dns).await;
    let sim = OktaSim::start().await.unwrap();
    let (ws, mut admin) = admin_of(&stack, &sim, "Acme", "admin@acme.com", true).await;

    let page = admin.get(OKTA_PAGE).await.unwrap();
    assert!(
        page.body.contains("Sign-in by email domain"),
        "{}",
        page.body
    );
    assert!(page.body.contains("No email domain is claimed."));

    // The claim: normalised, pending, with the record to publish.
    let p = claim(&mut admin, " ACME.com. ").await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(
        p.location.as_deref(),
        Some(
            "http://app.closedloop.localhost/integrations/okta?domain_claimed=acme.com#email-domains"
        )
    );
    let page = admin.follow(p).await.unwrap();
    assert!(page.body.contains("Claimed acme.com."), "{}", page.body);
    assert!(page.body.contains("Pending"));
    let (name, value) = record(&page.body, "acme.com");
    assert_eq!(name, "_closedloop-challenge.acme.com");
    let token = value
        .strip_prefix("closedloop-domain-verification=")
        .expect("the value names the verification");
    assert!(token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()));

    // A new user of the domain, assigned in Okta, not provisioned: a pending claim
    // routes nothing.
    let bob = okta_user(&sim, "bob@acme.com").await;
    let (status, body) = routed_to(&stack, "bob@acme.com").await.unwrap_err();
    assert_eq!(status, 404);
    assert!(body.contains("No ClosedLoop AI workspace"), "{body}");

    // Verify before the record exists, then with someone else's value: refused, with
    // what to publish.
    let p = press(&mut admin, "verify", "acme.com").await;
    assert_eq!(p.status, 422, "{}", p.body);
    assert!(p.body.contains("acme.com is not verified"), "{}", p.body);
    assert!(p.body.contains("has no TXT record yet"));
    assert!(p.body.contains(&value), "the refusal repeats the value");
    dns.publish_txt(&name, "closedloop-domain-verification=0000");
    let p = press(&mut admin, "verify", "acme.com").await;
    assert_eq!(p.status, 422, "{}", p.body);
    assert!(p.body.contains("none with this value"), "{}", p.body);
    assert_eq!(
        claims(&stack, &ws.team_id).await,
        [("acme.com".into(), false)]
    );

    // Published: verified through the worker's resolver.
    dns.publish_txt(&name, &value);
    let p = press(&mut admin, "verify", "acme.com").await;
    assert_eq!(p.status, 303, "{}", p.body);
    let page = admin.follow(p).await.unwrap();
    assert!(page.body.contains("acme.com is verified"), "{}", page.body);
    assert!(!page.body.contains("aria-label=\"Verify acme.com\""));
    assert_eq!(
        claims(&stack, &ws.team_id).await,
        [("acme.com".into(), true)]
    );

    // Bob signs in from /auth: Acme's Okta with his email as hint, then created just in
    // time and signed in.
    assert_eq!(
        routed_to(&stack, "Bob@Acme.com").await,
        Ok(ws.team_id.clone())
    );
    let mut browser = Web::new(&stack.gateway.url());
    let home = browser
        .sign_in_with_email(APP, "bob@acme.com")
        .await
        .unwrap();
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(
        home.body
            .contains("Signed in as <strong>bob@acme.com</strong>"),
        "{}",
        home.body
    );
    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    let row = db
        .query_one(
            "SELECT id, source FROM users WHERE team_id = $1 AND lower(user_name) = 'bob@acme.com'",
            &[&uuid::Uuid::parse_str(&ws.team_id).unwrap()],
        )
        .await
        .unwrap();
    let bob_id: uuid::Uuid = row.get(0);
    assert_eq!(row.get::<_, String>(1), "jit");
    let events = audit(&stack, Some(&ws.team_id)).await;
    let created = events
        .iter()
        .find(|(a, _, _)| a == "oidc.user.jit_created")
        .expect("the JIT creation is audited");
    assert_eq!(created.1.as_deref(), Some(bob_id.to_string().as_str()));
    assert_eq!(created.2["okta_sub"], json!(bob.as_str()));
    for (action, detail) in [
        ("workspace.domain.claimed", "acme.com"),
        ("workspace.domain.verified", "acme.com"),
    ] {
        let e = events
            .iter()
            .find(|(a, _, _)| a == action)
            .unwrap_or_else(|| panic!("{action} is audited"));
        assert_eq!(e.2["domain"], json!(detail));
    }

    // JIT off: the next new user authenticates at Okta and is told why not.
    connect(&mut admin, &sim, true, false).await;
    okta_user(&sim, "carol@acme.com").await;
    let mut browser = Web::new(&stack.gateway.url());
    let p = browser
        .sign_in_with_email(APP, "carol@acme.com")
        .await
        .unwrap();
    assert_eq!(p.status, 403, "{}", p.body);
    assert!(p.body.contains("you are not provisioned"), "{}", p.body);
    assert!(
        p.body
            .contains("Just-in-time provisioning is off in this workspace")
    );
    let carol: i64 = db
        .query_one(
            "SELECT count(*) FROM users WHERE lower(user_name) = 'carol@acme.com'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(carol, 0);
    let reasons = failure_reasons(&audit(&stack, Some(&ws.team_id)).await);
    assert_eq!(reasons, ["not_provisioned"]);

    // Removed: the domain routes nothing any more; Bob, now a member, still signs in.
    let p = press(&mut admin, "remove", "acme.com").await;
    assert_eq!(p.status, 303, "{}", p.body);
    let page = admin.follow(p).await.unwrap();
    assert!(page.body.contains("Removed acme.com."), "{}", page.body);
    assert!(claims(&stack, &ws.team_id).await.is_empty());
    assert!(
        actions(&stack, &ws.team_id)
            .await
            .contains(&"workspace.domain.removed".to_owned())
    );
    assert_eq!(routed_to(&stack, "dave@acme.com").await.unwrap_err().0, 404);
    assert_eq!(
        routed_to(&stack, "bob@acme.com").await,
        Ok(ws.team_id.clone())
    );
}

#[tokio::test]
async fn another_workspace_cannot_take_a_verified_domain_until_an_operator_releases_it() {
    let dns = DnsServer::start().await.unwrap();
    let stack = stack_with(&dns).await;
    let (sim_a, sim_b) = tokio::try_join!(OktaSim::start(), OktaSim::start()).unwrap();
    let (a, mut admin_a) = admin_of(&stack, &sim_a, "Acme", "admin@acme.com", true).await;
    let (b, mut admin_b) = admin_of(&stack, &sim_b, "Beta", "admin@beta.com", true).await;
    let (_, value_a) = claim_and_verify(&mut admin_a, &dns, "acme.com").await;

    // B's admin sees none of A's claims and can neither verify nor remove them.
    let page = admin_b.get(OKTA_PAGE).await.unwrap();
    assert!(
        page.body.contains("No email domain is claimed."),
        "{}",
        page.body
    );
    assert!(!page.body.contains("_closedloop-challenge.acme.com"));
    assert!(!page.body.contains(&value_a));
    for verb in ["verify", "remove"] {
        let p = press(&mut admin_b, verb, "acme.com").await;
        assert_eq!(p.status, 404, "{verb}: {}", p.body);
        assert!(p.body.contains("does not claim this email domain"));
    }
    assert_eq!(
        claims(&stack, &a.team_id).await,
        [("acme.com".into(), true)]
    );

    // Forged claims: no token, or A's token in B's session, are refused.
    let token_a = domain_csrf(&mut admin_a).await;
    for form in [
        vec![("email_domain", "beta.com")],
        vec![("email_domain", "beta.com"), ("csrf", token_a.as_str())],
    ] {
        let p = admin_b.post(DOMAINS, &form).await.unwrap();
        assert_eq!(p.status, 403, "{}", p.body);
    }
    // And a foreign page posting with B's own token (its Origin gives it away).
    let token_b = domain_csrf(&mut admin_b).await;
    let forged = stack
        .request(
            reqwest::Method::POST,
            Region::Us.app(),
            "/integrations/okta/domains",
        )
        .header("cookie", admin_b.cookie_header(Region::Us.app()))
        .header("origin", "https://evil.example")
        .form(&[("email_domain", "beta.com"), ("csrf", token_b.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(claims(&stack, &b.team_id).await.is_empty());

    // Free mail and what is no company's domain: refused, the entry kept.
    let p = claim(&mut admin_b, "GMail.com").await;
    assert_eq!(p.status, 422, "{}", p.body);
    assert!(p.body.contains("free email provider"), "{}", p.body);
    assert!(p.body.contains("value=\"GMail.com\""));
    for bad in ["com", "co.uk", "https://beta.com/", "10.0.0.1", "localhost"] {
        let p = claim(&mut admin_b, bad).await;
        assert_eq!(p.status, 422, "{bad}: {}", p.body);
        assert!(p.body.contains("The domain was not claimed."), "{bad}");
    }
    assert!(claims(&stack, &b.team_id).await.is_empty());

    // B may hold a pending claim of acme.com, with its own record; it routes nothing.
    let p = claim(&mut admin_b, "acme.com").await;
    assert_eq!(p.status, 303, "{}", p.body);
    let page = admin_b.follow(p).await.unwrap();
    let (name_b, value_b) = record(&page.body, "acme.com");
    assert_ne!(value_b, value_a, "each claim has its own token");
    assert_eq!(
        routed_to(&stack, "dave@acme.com").await,
        Ok(a.team_id.clone())
    );
    // Even with its record published, B's verification is refused while A holds the
    // domain, with a way forward and without naming A.
    dns.publish_txt(&name_b, &value_b);
    let p = press(&mut admin_b, "verify", "acme.com").await;
    assert_eq!(p.status, 409, "{}", p.body);
    assert!(
        p.body
            .contains("acme.com is already verified by another ClosedLoop AI workspace"),
        "{}",
        p.body
    );
    assert!(p.body.contains("an operator can release the domain"));
    assert!(!p.body.contains(&a.team_id) && !p.body.contains("Acme"));
    assert_eq!(
        claims(&stack, &b.team_id).await,
        [("acme.com".into(), false)]
    );
    assert_eq!(
        routed_to(&stack, "dave@acme.com").await,
        Ok(a.team_id.clone())
    );
    // A crafted link cannot make B's page say otherwise.
    let page = admin_b
        .get(&format!("{OKTA_PAGE}?domain_verified=acme.com"))
        .await
        .unwrap();
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("acme.com is verified"), "{}", page.body);

    // The operator: lists A's domains, releases acme.com (audited under A), once.
    let (ok, out, err) = operator(&stack, &["workspace", "domains", "--team", &a.team_id]).await;
    assert!(ok, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["team_id"], json!(a.team_id));
    assert_eq!(listed["domains"][0]["domain"], json!("acme.com"));
    assert_eq!(listed["domains"][0]["verified"], json!(true));
    assert_eq!(listed["domains"][0]["record_value"], json!(value_a));
    let (ok, out, err) = operator(
        &stack,
        &["workspace", "release-domain", "--domain", "ACME.com"],
    )
    .await;
    assert!(ok, "{err}");
    let released: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        released,
        json!({ "domain": "acme.com", "team_id": a.team_id })
    );
    let (ok, _, err) = operator(
        &stack,
        &["workspace", "release-domain", "--domain", "acme.com"],
    )
    .await;
    assert!(!ok);
    assert!(err.contains("nothing to release"), "{err}");
    let (ok, _, err) = operator(
        &stack,
        &["workspace", "release-domain", "--domain", "gmail.com"],
    )
    .await;
    assert!(!ok);
    assert!(err.contains("free email provider"), "{err}");
    assert!(claims(&stack, &a.team_id).await.is_empty());
    let events = audit(&stack, Some(&a.team_id)).await;
    let release = events
        .iter()
        .find(|(a, _, _)| a == "workspace.domain.released")
        .expect("the release is audited");
    assert_eq!(release.2["domain"], json!("acme.com"));
    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    let actor: String = db
        .query_one(
            "SELECT actor FROM audit_events WHERE action = 'workspace.domain.released'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(actor, "operator");

    // Now B verifies, and new acme.com users go to B's Okta.
    let p = press(&mut admin_b, "verify", "acme.com").await;
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(
        claims(&stack, &b.team_id).await,
        [("acme.com".into(), true)]
    );
    assert_eq!(
        routed_to(&stack, "dave@acme.com").await,
        Ok(b.team_id.clone())
    );
    // A cannot take it back without an operator either.
    let p = claim(&mut admin_a, "acme.com").await;
    assert_eq!(p.status, 303);
    let page = admin_a.follow(p).await.unwrap();
    let (name, value) = record(&page.body, "acme.com");
    dns.publish_txt(&name, &value);
    assert_eq!(press(&mut admin_a, "verify", "acme.com").await.status, 409);
}

#[tokio::test]
async fn a_claim_never_hides_a_membership() {
    let dns = DnsServer::start().await.unwrap();
    let stack = stack_with(&dns).await;
    let sim = OktaSim::start().await.unwrap();
    let (a, mut admin) = admin_of(&stack, &sim, "Acme", "admin@acme.com", true).await;
    claim_and_verify(&mut admin, &dns, "acme.com").await;
    // Zeta, without Okta, knows some acme.com people too.
    let zeta = stack
        .workspace(Region::Us, "Zeta", "zeta-admin@zeta.com")
        .await;
    for (team, email, id) in [
        (&a.team_id, "ivy@acme.com", "00u-ivy"),
        (&zeta.team_id, "ivy@acme.com", "z-ivy"),
        (&zeta.team_id, "zed@acme.com", "z-zed"),
        (&zeta.team_id, "old@acme.com", "z-old"),
    ] {
        provision_named(&stack, team, email, id, "Given", "Family").await;
    }

    // Known by two workspaces: the picker, as before, listing the claiming one.
    let mut browser = Web::new(&stack.gateway.url());
    let p = browser
        .post(&format!("{APP}/auth"), &[("email", "ivy@acme.com")])
        .await
        .unwrap();
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.body.contains("Choose a workspace"));
    assert!(p.body.contains("Sign in to Acme"), "{}", p.body);
    assert!(p.body.contains("Zeta <small>(Okta sign-in is not enabled)"));

    // Known by Zeta alone: Zeta's answer, not Acme's Okta.
    let (status, body) = routed_to(&stack, "zed@acme.com").await.unwrap_err();
    assert_eq!(status, 403);
    assert!(
        body.contains("The workspace Zeta has not set up Okta sign-in yet"),
        "{body}"
    );

    // Deactivated in Zeta: nobody has them as an active user, so the domain decides.
    let scim = stack.scim(Region::Us, &zeta.team_id, "").await;
    let (_, list) = scim
        .get("/Users?filter=userName%20eq%20%22old@acme.com%22")
        .await;
    let old_id = list["Resources"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = scim
        .patch(
            &format!("/Users/{old_id}"),
            &json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                     "Operations": [{ "op": "replace", "value": { "active": false } }] }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        routed_to(&stack, "old@acme.com").await,
        Ok(a.team_id.clone())
    );

    // The picker's own choice is not widened by the claim: a workspace that does not
    // know the email cannot be picked.
    let p = browser
        .post(
            &format!("{APP}/auth"),
            &[("email", "nobody@acme.com"), ("team_id", &zeta.team_id)],
        )
        .await
        .unwrap();
    assert_eq!(p.status, 404, "{}", p.body);

    // With Okta sign-in off in Acme, the domain falls back to today's answer.
    connect(&mut admin, &sim, false, true).await;
    let (status, body) = routed_to(&stack, "new@acme.com").await.unwrap_err();
    assert_eq!(status, 404);
    assert!(body.contains("No ClosedLoop AI workspace"), "{body}");
}

#[tokio::test]
async fn a_dns_server_that_does_not_answer_gets_a_page_and_verifies_nothing() {
    // A port nothing listens on any more: no answer comes, and the page says so once
    // the lookup's time is up (a few seconds, the worker's bound).
    let closed = {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap()
    };
    let stack = TestStack::start_configured(1, false, move |c| c.dns_server = Some(closed))
        .await
        .unwrap();
    let sim = OktaSim::start().await.unwrap();
    let (ws, mut admin) = admin_of(&stack, &sim, "Acme", "admin@acme.com", true).await;
    assert_eq!(claim(&mut admin, "acme.com").await.status, 303);
    let p = press(&mut admin, "verify", "acme.com").await;
    assert_eq!(p.status, 502, "{}", p.body);
    assert!(
        p.body
            .contains("could not look up the DNS records of acme.com just now"),
        "{}",
        p.body
    );
    assert_eq!(
        claims(&stack, &ws.team_id).await,
        [("acme.com".into(), false)]
    );
}
