//! Operator commands and the first admin's one-time sign-in link; malformed region
//! maps refused by both binaries; custom Okta domains allowed and withdrawn.

use closedloop_tests::harness::{
    TestStack, US_APP, binary, operator, pg_connect, region_map_text, worker_env,
};
use closedloop_tests::region::Region;
use reqwest::Method;

#[tokio::test]
async fn the_first_admin_link_signs_in_once() {
    let stack = TestStack::start().await.unwrap();
    let state = &stack.worker(Region::Us).state;
    let created = region_worker::cli::workspace_create(state, "Acme", "Admin@Acme.test")
        .await
        .unwrap();
    let url = created.sign_in_url.as_str();
    assert!(
        url.starts_with("http://app.closedloop.localhost/auth/link?code=clk_us_otc_"),
        "{url}"
    );
    let path = url.trim_start_matches("http://app.closedloop.localhost");
    let code = url.split("code=").nth(1).unwrap();

    // GET only shows a button (link scanners must not consume it).
    let page = stack.get(US_APP, path).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("method=\"post\""));

    let signed_in = stack
        .request(Method::POST, US_APP, "/auth/link")
        .form(&[("code", code)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax")
            && !cookie.contains("Domain"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();

    let home = stack
        .get(US_APP, "/")
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), 200);
    let html = home.text().await.unwrap();
    assert!(
        html.contains("Admin@Acme.test") && html.contains("Acme"),
        "{html}"
    );

    // Single use.
    let again = stack
        .request(Method::POST, US_APP, "/auth/link")
        .form(&[("code", code)])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 400);
    // Without a session, home sends the browser to sign-in.
    let anon = stack.get(US_APP, "/").send().await.unwrap();
    assert_eq!(anon.status(), 303);
    assert_eq!(anon.headers()["location"], "/auth");

    let list = region_worker::cli::workspace_list(state).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].team_id, created.team_id);
}

#[tokio::test]
async fn token_issue_validates_its_input() {
    let stack = TestStack::start().await.unwrap();
    let state = &stack.worker(Region::Us).state;
    let created = region_worker::cli::workspace_create(state, "Acme", "admin@acme.test")
        .await
        .unwrap();
    let team = &created.team_id.to_string();
    let t = region_worker::cli::token_issue(state, team, "scim", "scim.read", 1)
        .await
        .unwrap();
    assert!(t.token.starts_with("clk_us_scim_"));
    assert_eq!(t.scopes, "scim.read");
    assert!(
        region_worker::cli::token_issue(state, team, "scim", "admin", 1)
            .await
            .is_err()
    );
    assert!(
        region_worker::cli::token_issue(state, team, "api", "", 1)
            .await
            .is_err()
    );
    let unknown = uuid::Uuid::new_v4().to_string();
    assert!(
        region_worker::cli::token_issue(state, &unknown, "scim", "", 1)
            .await
            .is_err()
    );
    assert!(
        region_worker::cli::workspace_create(state, "X", "not-an-email")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn operator_credentials_expire_by_the_workers_clock() {
    let stack = TestStack::start().await.unwrap();
    let state = &stack.worker(Region::Us).state;
    let created = region_worker::cli::workspace_create(state, "Acme", "admin@acme.test")
        .await
        .unwrap();
    // A token issued for one day, and the first admin's link (valid 24 h).
    let scim = stack
        .scim(Region::Us, &created.team_id.to_string(), "")
        .await;
    assert_eq!(scim.get("/Users").await.0, 200);
    let day = std::time::Duration::from_secs(86_400);
    stack.advance_clock(Region::Us, day - std::time::Duration::from_secs(60));
    assert_eq!(scim.get("/Users").await.0, 200);
    stack.advance_clock(Region::Us, std::time::Duration::from_secs(120));
    assert_eq!(scim.get("/Users").await.0, 401);
    let code = created.sign_in_url.split("code=").nth(1).unwrap();
    let late = stack
        .request(Method::POST, US_APP, "/auth/link")
        .form(&[("code", code)])
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), 400);
}

#[tokio::test]
async fn malformed_region_maps_are_refused_with_their_line() {
    let dir = std::env::temp_dir().join(format!("clt-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let map = dir.join("regions.toml");
    std::fs::write(
        &map,
        "[regions.us]\napp_url = \"https://app.closedloop.sh\"\napi_url = \"https://api.closedloop.sh\"\n\
         workers = []\npostgres = { env = \"A\" }\nredis = { env = \"B\" }\n",
    )
    .unwrap();
    let gateway = tokio::process::Command::new(binary("gateway"))
        .arg("--config")
        .arg(&map)
        .output()
        .await
        .unwrap();
    assert!(!gateway.status.success());
    let stderr = String::from_utf8_lossy(&gateway.stderr);
    assert!(
        stderr.contains("line 4") && stderr.contains("no workers"),
        "{stderr}"
    );

    let worker = tokio::process::Command::new(binary("region-worker"))
        .args(["serve", "--region", "us", "--config"])
        .arg(&map)
        .output()
        .await
        .unwrap();
    assert!(!worker.status.success());
    let stderr = String::from_utf8_lossy(&worker.stderr);
    assert!(
        stderr.contains("line 4") && stderr.contains("no workers"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_production_map_matches_the_seed() {
    let text = include_str!("../../../regions.toml");
    let map = shared::regions::RegionMap::parse(text).unwrap();
    assert!(!map.development);
    let hosts: Vec<(String, String, String)> = map
        .regions()
        .iter()
        .map(|r| {
            (
                r.id.to_string(),
                r.app_base().to_owned(),
                r.api_base().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        hosts,
        vec![
            (
                "eu".into(),
                "https://eu.app.closedloop.sh".into(),
                "https://eu.api.closedloop.sh".into()
            ),
            (
                "us".into(),
                "https://app.closedloop.sh".into(),
                "https://api.closedloop.sh".into()
            ),
        ]
    );
    for r in map.regions() {
        assert!(r.workers.len() >= 2, "several replicas per region");
    }
}

/// `region-worker workspace allow-okta-domain` (and its way back), as an operator runs
/// it: the real binary against the region's stores.
#[tokio::test]
async fn operators_allow_and_disallow_custom_okta_domains_listed_and_audited() {
    let stack = TestStack::start().await.unwrap();
    let state = &stack.worker(Region::Us).state;
    let created = region_worker::cli::workspace_create(state, "Acme", "admin@acme.test")
        .await
        .unwrap();
    let team = created.team_id.to_string();
    let dir = std::env::temp_dir().join(format!("clt-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let map = dir.join("regions.toml");
    std::fs::write(&map, region_map_text(&[], &[], None)).unwrap();
    let run = |args: Vec<String>| {
        let map = map.clone();
        let env = worker_env(Region::Us, &stack.us_stores);
        async move {
            let out = tokio::process::Command::new(binary("region-worker"))
                .args(&args[..2])
                .args(["--region", "us", "--config"])
                .arg(&map)
                .args(&args[2..])
                .envs(env)
                .env("RUST_LOG", "warn")
                .output()
                .await
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            (out.status.success(), stdout, stderr)
        }
    };
    let cmd = |verb: &str, rest: &[&str]| -> Vec<String> {
        ["workspace", verb]
            .iter()
            .chain(rest)
            .map(|s| (*s).to_owned())
            .collect()
    };

    let (ok, out, err) = run(cmd(
        "allow-okta-domain",
        &["--team", &team, "--domain", "https://Login.Acme.com/"],
    ))
    .await;
    assert!(ok, "{err}");
    let done: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(done["domain"], "login.acme.com");
    assert_eq!(done["changed"], true);
    assert_eq!(
        done["allowed_okta_domains"],
        serde_json::json!(["login.acme.com"])
    );
    // Idempotent: nothing changes, nothing more is audited.
    let (ok, out, _) = run(cmd(
        "allow-okta-domain",
        &["--team", &team, "--domain", "login.acme.com"],
    ))
    .await;
    assert!(ok);
    assert!(out.contains("\"changed\": false"), "{out}");

    let (ok, out, err) = run(cmd("list", &[])).await;
    assert!(ok, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        listed[0]["allowed_okta_domains"],
        serde_json::json!(["login.acme.com"])
    );

    // Mistakes are refused with a reason: Okta's own domains need no allowance, a
    // non-domain is not one, an unknown workspace does not exist here.
    for (domain, says) in [
        ("acme.okta.com", "without an allowance"),
        ("acme.okta-emea.com", "without an allowance"),
        ("10.0.0.1", "not an IP address"),
        ("127.0.0.1:8080", "without a port"),
    ] {
        let (ok, _, err) = run(cmd(
            "allow-okta-domain",
            &["--team", &team, "--domain", domain],
        ))
        .await;
        assert!(!ok, "{domain}");
        assert!(err.contains(says), "{domain}: {err}");
    }
    let unknown = uuid::Uuid::new_v4().to_string();
    let (ok, _, err) = run(cmd(
        "allow-okta-domain",
        &["--team", &unknown, "--domain", "login.acme.com"],
    ))
    .await;
    assert!(!ok);
    assert!(err.contains("does not exist"), "{err}");

    // Withdrawn with `--remove` or `disallow-okta-domain`.
    let (ok, out, err) = run(cmd(
        "allow-okta-domain",
        &["--team", &team, "--domain", "login.acme.com", "--remove"],
    ))
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("\"changed\": true"), "{out}");
    assert!(out.contains("\"allowed_okta_domains\": []"), "{out}");
    let (ok, out, _) = run(cmd(
        "disallow-okta-domain",
        &["--team", &team, "--domain", "login.acme.com"],
    ))
    .await;
    assert!(ok);
    assert!(out.contains("\"changed\": false"), "{out}");

    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    let events: Vec<(String, String, serde_json::Value)> = db
        .query(
            "SELECT action, actor, detail FROM audit_events
              WHERE action LIKE 'workspace.okta_domain.%' ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        events,
        vec![
            (
                "workspace.okta_domain.allowed".to_owned(),
                "operator".to_owned(),
                serde_json::json!({ "domain": "login.acme.com" })
            ),
            (
                "workspace.okta_domain.disallowed".to_owned(),
                "operator".to_owned(),
                serde_json::json!({ "domain": "login.acme.com" })
            ),
        ]
    );
}

/// `workspace create --admin-name` through the binary: its success, output and errors.
async fn create_args(
    stack: &TestStack,
    name: &str,
    admin_email: &str,
    admin_name: &str,
) -> (bool, String, String) {
    let args = [
        "workspace",
        "create",
        "--name",
        name,
        "--admin-email",
        admin_email,
        "--admin-name",
        admin_name,
    ];
    operator(stack, &args).await
}

/// Workspace "Acme" made through the binary with a named first admin; its JSON.
async fn create_named(stack: &TestStack, admin_email: &str, admin_name: &str) -> serde_json::Value {
    let (ok, out, err) = create_args(stack, "Acme", admin_email, admin_name).await;
    assert!(ok, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// Posts a sign-in link's code as its page's button does: the status.
async fn redeem(stack: &TestStack, sign_in_url: &str) -> (u16, String) {
    let code = sign_in_url.split("code=").nth(1).unwrap();
    let r = stack
        .request(Method::POST, US_APP, "/auth/link")
        .form(&[("code", code)])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Getting back in (issue 16): `workspace admins` lists the admins and `workspace
/// sign-in-link` gives one a new link, through the real binary: the earlier unused link
/// stops working, the new one works once, the issue is audited, and anyone but an
/// active admin of an existing workspace is refused with a reason and a failing exit.
/// The invalid-link page names the command.
#[tokio::test]
async fn an_operator_issues_an_admin_a_new_sign_in_link_and_lists_the_admins() {
    let stack = TestStack::start().await.unwrap();
    let created = create_named(&stack, "Admin@Acme.test", "Jane Doe").await;
    let team = created["team_id"].as_str().unwrap().to_owned();
    let admin_id = created["admin_user_id"].as_str().unwrap().to_owned();
    let first_link = created["sign_in_url"].as_str().unwrap().to_owned();

    // A member Okta provisioned: no link for them.
    let scim = stack.scim(Region::Us, &team, "").await;
    let (status, _) = scim
        .post(
            "/Users",
            &serde_json::json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "bob@acme.test", "externalId": "00ubob",
                "active": true
            }),
        )
        .await;
    assert_eq!(status, 201);

    let (ok, out, err) = operator(&stack, &["workspace", "admins", "--team", &team]).await;
    assert!(ok, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["team_id"], team.as_str());
    let admins = listed["admins"].as_array().unwrap();
    assert_eq!(admins.len(), 1, "{out}");
    assert_eq!(admins[0]["user_id"], admin_id.as_str());
    assert_eq!(admins[0]["user_name"], "Admin@Acme.test");
    assert_eq!(admins[0]["email"], "Admin@Acme.test");
    assert_eq!(admins[0]["name"], "Jane Doe");
    assert_eq!(admins[0]["active"], true);

    // The email is matched case-insensitively; the earlier unused link stops working.
    let (ok, out, err) = operator(
        &stack,
        &[
            "workspace",
            "sign-in-link",
            "--team",
            &team,
            "--email",
            "admin@acme.TEST",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let issued: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(issued["admin_user_id"], admin_id.as_str());
    assert_eq!(issued["admin_email"], "Admin@Acme.test");
    assert_eq!(issued["revoked_links"], 1);
    let link = issued["sign_in_url"].as_str().unwrap();
    assert!(
        link.starts_with("http://app.closedloop.localhost/auth/link?code=clk_us_otc_"),
        "{link}"
    );
    assert!(issued["sign_in_url_expires_at"].is_string());
    let (status, page) = redeem(&stack, &first_link).await;
    assert_eq!(status, 400);
    assert!(
        page.contains("region-worker workspace sign-in-link"),
        "the invalid-link page says how to get a new link: {page}"
    );
    assert_eq!(redeem(&stack, link).await.0, 303);
    assert_eq!(redeem(&stack, link).await.0, 400, "single use");

    // Refusals, each with its reason and a failing exit.
    let unknown = uuid::Uuid::new_v4().to_string();
    for (team, email, says) in [
        (team.as_str(), "bob@acme.test", "is not an admin"),
        (team.as_str(), "nobody@acme.test", "no user of workspace"),
        (unknown.as_str(), "admin@acme.test", "does not exist"),
    ] {
        let (ok, out, err) = operator(
            &stack,
            &[
                "workspace",
                "sign-in-link",
                "--team",
                team,
                "--email",
                email,
            ],
        )
        .await;
        assert!(!ok, "{email}: {out}");
        assert!(out.is_empty() && err.contains(says), "{email}: {err}");
    }
    let (ok, _, err) = operator(&stack, &["workspace", "admins", "--team", &unknown]).await;
    assert!(!ok);
    assert!(err.contains("does not exist"), "{err}");

    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    let events: Vec<(String, Option<String>, serde_json::Value)> = db
        .query(
            "SELECT actor, target, detail FROM audit_events
              WHERE action = 'workspace.sign_in_link.issued' ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(events.len(), 1, "refusals change and audit nothing");
    assert_eq!(events[0].0, "operator");
    assert_eq!(events[0].1.as_deref(), Some(admin_id.as_str()));
    assert_eq!(events[0].2["user_name"], "Admin@Acme.test");
    assert_eq!(events[0].2["revoked_links"], 1);
}

/// An admin whose link expired gets back in with a new one (issued by the worker's
/// clock, as `workspace sign-in-link` does); a deactivated admin gets none.
#[tokio::test]
async fn an_admin_whose_link_expired_gets_back_in_and_a_deactivated_one_does_not() {
    let stack = TestStack::start().await.unwrap();
    let state = &stack.worker(Region::Us).state;
    let created = region_worker::cli::workspace_create(state, "Acme", "admin@acme.test")
        .await
        .unwrap();
    let team = created.team_id.to_string();
    stack.advance_clock(Region::Us, std::time::Duration::from_secs(25 * 3600));
    assert_eq!(redeem(&stack, &created.sign_in_url).await.0, 400);
    let again = region_worker::cli::workspace_sign_in_link(state, &team, "admin@acme.test")
        .await
        .unwrap();
    assert_eq!(
        again.revoked_links, 1,
        "the expired, unused link is removed"
    );
    assert!(!format!("{again:?}").contains(&again.sign_in_url));
    assert_eq!(redeem(&stack, &again.sign_in_url).await.0, 303);

    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    db.execute(
        "UPDATE users SET active = false WHERE id = $1",
        &[&created.admin_user_id],
    )
    .await
    .unwrap();
    let refused = region_worker::cli::workspace_sign_in_link(state, &team, "admin@acme.test")
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("deactivated"), "{refused}");
}

/// `workspace create --admin-name` names the first admin, so Okta's SCIM SPEC list test
/// (`GET /Users?count=1`) finds `name.givenName` and `name.familyName` on the first user.
#[tokio::test]
async fn the_first_admin_created_with_a_name_shows_it_on_the_first_scim_user() {
    let stack = TestStack::start().await.unwrap();
    let created = create_named(&stack, "admin@acme.test", "  Mary Ann  Smith ").await;
    let team = created["team_id"].as_str().unwrap();
    let scim = stack.scim(Region::Us, team, "").await;
    let (status, list) = scim.get("/Users?count=1").await;
    assert_eq!(status, 200, "{list}");
    let first = &list["Resources"][0];
    assert_eq!(first["userName"], "admin@acme.test");
    assert_eq!(first["name"]["givenName"], "Mary Ann", "{list}");
    assert_eq!(first["name"]["familyName"], "Smith", "{list}");
    // A filter on the name finds her, as it does a user Okta provisioned.
    let (_, found) = scim
        .get("/Users?filter=name.familyName%20eq%20%22Smith%22")
        .await;
    assert_eq!(found["totalResults"], 1, "{found}");

    let (ok, _, err) = create_args(&stack, "Blank", "a@blank.test", "   ").await;
    assert!(!ok);
    assert!(err.contains("--admin-name"), "{err}");
}
