//! MCP clients connecting with OAuth (issue 17), through the gateway: discovery from the
//! MCP endpoint's `401`, a Client ID Metadata Document served on loopback and, for older
//! clients, dynamic registration; sign-in through the simulated Okta org on the app
//! host, consent, the code with `iss`, tokens, `whoami` over JSON-RPC, refresh; then
//! Universal Logout and SCIM deactivation cutting them off. And the attacks the issue
//! names: codes across clients, wrong `resource`, unlisted redirect URIs, private
//! document addresses, PKCE missing or `plain`, replayed refresh tokens, consent without
//! CSRF, a token of the other region.

use closedloop_tests::harness::{TestStack, pg_connect};
use closedloop_tests::mcp_client::{
    McpClient, challenge, document, param, post_form, register, resource, rpc, serve_document,
    whoami_tool,
};
use closedloop_tests::okta_sim::directory::NewUser;
use closedloop_tests::okta_sim::logout::Subject;
use closedloop_tests::okta_sim::seed::SeedApp;
use closedloop_tests::okta_sim::{AppHandle, OktaSim};
use closedloop_tests::okta_world::{audit_actions, audit_count};
use closedloop_tests::region::Region;
use closedloop_tests::session::get_page;
use closedloop_tests::tokens::{create_on_page, introspect, whoami};
use closedloop_tests::web::Web;
use region_worker::okta::http::Resolver;
use serde_json::{Value, json};

const JANE: &str = "jane@acme.test";
const BOB: &str = "bob@acme.test";
const CALLBACK: &str = "http://127.0.0.1:33418/callback";

/// The org's EU app instance (one Okta app per region).
fn eu_app(sim: &OktaSim) -> AppHandle {
    sim.add_app(SeedApp {
        name: "closedloop-eu".into(),
        client_id: None,
        client_secret: None,
        redirect_uris: vec!["http://eu.api.closedloop.localhost/api/okta/oidc/callback".into()],
        post_logout_redirect_uris: vec!["http://eu.app.closedloop.localhost/auth".into()],
    })
    .expect("app added")
}

/// A workspace "Acme" in `region` whose first admin is `admin`, connected to `app`.
async fn tenant(stack: &TestStack, sim: &OktaSim, region: Region, app: &AppHandle) -> String {
    let ws = stack.workspace(region, "Acme", JANE).await;
    stack
        .configure_okta(
            region,
            &ws.team_id,
            sim.base_url(),
            app.client_id(),
            &app.client_secret(),
        )
        .await;
    ws.team_id
}

/// A browser whose workspace admin signed in with the one-time link.
async fn admin_browser(stack: &TestStack, region: Region, email: &str) -> (Web, String) {
    let ws = stack.workspace(region, "Acme", email).await;
    let mut web = Web::new(&stack.gateway.url());
    let home = web.sign_in_with_link(&ws.sign_in_url).await.unwrap();
    assert_eq!(home.status, 200, "{}", home.body);
    (web, ws.team_id)
}

fn initialize() -> Value {
    json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": { "name": "e2e", "version": "1" } } })
}

/// The discovery a client does from nothing: the `401`, the resource's metadata, the
/// authorization server's; returns the authorization server metadata.
async fn discover(stack: &TestStack, region: Region) -> Value {
    let (status, headers, body) = rpc(stack, region, None, &initialize()).await;
    assert_eq!(status, 401, "{body}");
    let prm_url = format!(
        "{}/.well-known/oauth-protected-resource/api/mcp",
        region.api_url()
    );
    let www = challenge(&headers);
    assert!(
        www.starts_with(&format!("Bearer resource_metadata=\"{prm_url}\"")),
        "{www}"
    );
    assert!(!www.contains("invalid_token"), "no token, no error: {www}");
    let prm: Value = stack
        .get(
            region.api(),
            "/.well-known/oauth-protected-resource/api/mcp",
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(prm["resource"], resource(region));
    assert_eq!(prm["authorization_servers"], json!([region.api_url()]));
    assert_eq!(prm["scopes_supported"], json!(["mcp"]));
    let asm: Value = stack
        .get(region.api(), "/.well-known/oauth-authorization-server")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let base = region.api_url();
    assert_eq!(asm["issuer"], base);
    for (key, path) in [
        ("authorization_endpoint", "/api/mcp/oauth/authorize"),
        ("token_endpoint", "/api/mcp/oauth/token"),
        ("registration_endpoint", "/api/mcp/oauth/register"),
        ("revocation_endpoint", "/api/mcp/oauth/revoke"),
    ] {
        assert_eq!(asm[key], format!("{base}{path}"), "{key}");
    }
    assert_eq!(asm["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(asm["response_types_supported"], json!(["code"]));
    assert_eq!(
        asm["token_endpoint_auth_methods_supported"],
        json!(["none"])
    );
    assert_eq!(asm["client_id_metadata_document_supported"], true);
    assert_eq!(asm["authorization_response_iss_parameter_supported"], true);
    // Not an OpenID Provider.
    let oidc = stack
        .get(region.api(), "/.well-known/openid-configuration")
        .send()
        .await
        .unwrap();
    assert_eq!(oidc.status(), 404);
    asm
}

/// The whoami tool's text for `token`, asserting success.
async fn whoami_text(stack: &TestStack, region: Region, token: &str) -> String {
    let (status, result) = whoami_tool(stack, region, token).await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["isError"], false, "{result}");
    result["content"][0]["text"].as_str().unwrap().to_owned()
}

/// The MCP endpoint refuses `token` as a token of no use here.
async fn refused(stack: &TestStack, region: Region, token: &str) {
    let (status, headers, body) = rpc(stack, region, Some(token), &initialize()).await;
    assert_eq!(status, 401, "{body}");
    let www = challenge(&headers);
    assert!(www.contains("resource_metadata="), "{www}");
    assert!(www.contains("error=\"invalid_token\""), "{www}");
}

#[tokio::test]
async fn a_client_with_a_metadata_document_connects_through_okta_in_both_regions_until_universal_logout()
 {
    let stack = TestStack::start().await.unwrap();
    let sim = OktaSim::start().await.unwrap();
    let jane = sim.add_user(NewUser::new(JANE, "Jane", "Doe")).unwrap();
    let us_app = sim.app();
    let eu_app = eu_app(&sim);
    for app in [&us_app, &eu_app] {
        app.assign(&jane).await.unwrap();
    }
    sim.set_auto_sign_in(Some(&jane));
    let doc = serve_document(|url| document(url, "Claude Desktop", CALLBACK)).await;

    let mut held = Vec::new();
    for (region, app) in [(Region::Us, &us_app), (Region::Eu, &eu_app)] {
        let team_id = tenant(&stack, &sim, region, app).await;
        discover(&stack, region).await;
        let client = McpClient::new(region, &doc.url, "http://127.0.0.1:50999/callback");

        // A browser with no session: authorize leads to the app host's sign-in, through
        // Okta, and back to the consent page.
        let mut web = Web::new(&stack.gateway.url());
        let first = client.start(&mut web, "st-1").await.unwrap();
        assert_eq!(first.status, 200, "{}", first.body);
        assert!(
            first.url.contains("/auth?return_to="),
            "sign-in first: {}",
            first.url
        );
        // The sign-in form carries return_to through Okta and back to the consent page.
        let return_to = closedloop_tests::web::hidden(&first.body, "return_to").unwrap();
        assert!(
            return_to.starts_with("/mcp/consent?request="),
            "{return_to}"
        );
        let p = web
            .post(
                &format!("{}/auth", region.app_url()),
                &[("email", JANE), ("return_to", return_to.as_str())],
            )
            .await
            .unwrap();
        let consent = web.follow(p).await.unwrap();
        assert!(
            consent.url.contains("/mcp/consent?request="),
            "{}",
            consent.url
        );
        assert_eq!(consent.status, 200, "{}", consent.body);
        for text in [
            "Claude Desktop",
            "unverified",
            "127.0.0.1",
            "Acme",
            JANE,
            &region.as_str().to_ascii_uppercase(),
        ] {
            assert!(consent.body.contains(text), "{text}: {}", consent.body);
        }
        let code = client.approve(&mut web, &consent, "st-1").await.unwrap();
        let (status, tokens) = client.exchange(&stack, &code).await;
        assert_eq!(status, 200, "{tokens}");
        let access = tokens["access_token"].as_str().unwrap().to_owned();
        let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
        assert!(
            access.starts_with(&format!("clk_{}_mcp_", region.as_str())),
            "{access}"
        );
        assert_eq!(tokens["token_type"], "Bearer");
        assert_eq!(tokens["expires_in"], 3600);
        assert_eq!(tokens["scope"], "mcp");

        // The MCP conversation.
        let (status, _, init) = rpc(&stack, region, Some(&access), &initialize()).await;
        assert_eq!(status, 200, "{init}");
        assert_eq!(init["result"]["protocolVersion"], "2025-06-18");
        assert_eq!(init["result"]["capabilities"], json!({ "tools": {} }));
        assert_eq!(init["result"]["serverInfo"]["name"], "closedloop");
        let (status, _, none) = rpc(
            &stack,
            region,
            Some(&access),
            &json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }),
        )
        .await;
        assert_eq!((status, none), (202, Value::Null));
        let (_, _, tools) = rpc(
            &stack,
            region,
            Some(&access),
            &json!({ "jsonrpc": "2.0", "id": "t", "method": "tools/list" }),
        )
        .await;
        assert_eq!(tools["id"], "t");
        assert_eq!(tools["result"]["tools"][0]["name"], "whoami");
        let text = whoami_text(&stack, region, &access).await;
        for part in [
            JANE,
            "Acme",
            &team_id,
            &region.as_str().to_ascii_uppercase(),
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
        // The older endpoint and introspection take it too.
        assert_eq!(whoami(&stack, region, &access).await, 200);
        assert_eq!(introspect(&stack, region, &access).await["active"], true);

        // It appears under Connected apps.
        let cookie = format!(
            "clk_session={}",
            web.cookie(region.app(), "clk_session").unwrap()
        );
        let page = get_page(&stack, region, &cookie, "/tokens").await;
        assert!(page.body.contains("Connected apps"), "{}", page.body);
        assert!(page.body.contains("Claude Desktop"), "{}", page.body);

        // Refresh rotates.
        let (status, rotated) = client.refresh(&stack, &refresh).await;
        assert_eq!(status, 200, "{rotated}");
        assert_ne!(rotated["refresh_token"], refresh.as_str());
        let access2 = rotated["access_token"].as_str().unwrap().to_owned();
        assert!(whoami_text(&stack, region, &access2).await.contains(JANE));
        held.push((
            region,
            client,
            access2,
            rotated["refresh_token"].as_str().unwrap().to_owned(),
        ));
    }

    // Okta logs Jane out of the US: the US client is cut off on its next call and
    // cannot refresh; the EU one works on.
    let sent = us_app
        .universal_logout(
            &stack.universal_logout_endpoint(Region::Us),
            &Subject::Email(JANE.into()),
        )
        .await
        .unwrap();
    assert_eq!(sent.status, 204, "{}", sent.body);
    let (_, us_client, us_access, us_refresh) = &held[0];
    refused(&stack, Region::Us, us_access).await;
    let (status, body) = us_client.refresh(&stack, us_refresh).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (_, _, eu_access, _) = &held[1];
    assert!(
        whoami_text(&stack, Region::Eu, eu_access)
            .await
            .contains(JANE)
    );

    // And out of the EU.
    let sent = eu_app
        .universal_logout(
            &stack.universal_logout_endpoint(Region::Eu),
            &Subject::Email(JANE.into()),
        )
        .await
        .unwrap();
    assert_eq!(sent.status, 204, "{}", sent.body);
    refused(&stack, Region::Eu, eu_access).await;
    let (_, eu_client, _, eu_refresh) = &held[1];
    let (status, _) = eu_client.refresh(&stack, eu_refresh).await;
    assert_eq!(status, 400);

    // An EU token is refused at the US endpoint (and the other way round).
    refused(&stack, Region::Us, eu_access).await;

    // Audited.
    assert_connection_audited(&stack.us_stores.pg_url).await;
}

/// The region's audit trail holds an approval, an issue and a refresh of an MCP grant.
async fn assert_connection_audited(pg_url: &str) {
    let actions = audit_actions(pg_url, "mcp.").await;
    for a in [
        "mcp.grant.approved",
        "mcp.token.issued",
        "mcp.token.refreshed",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a}: {actions:?}");
    }
}

/// Anyone may register a client, so registrations nobody used for 30 days are deleted:
/// an unused one goes, one used since (an authorization, a refresh) stays.
#[tokio::test]
async fn registrations_unused_for_thirty_days_are_pruned() {
    let stack = TestStack::start().await.unwrap();
    let mut ids = Vec::new();
    for name in ["Forgotten", "Daily"] {
        let (status, reg) = register(
            &stack,
            Region::Us,
            &json!({ "client_name": name, "redirect_uris": ["http://127.0.0.1/callback"] }),
        )
        .await;
        assert_eq!(status, 201, "{reg}");
        ids.push(reg["client_id"].as_str().unwrap().to_owned());
    }
    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    db.execute(
        "UPDATE mcp_clients SET last_used_at = now() - interval '31 days'",
        &[],
    )
    .await
    .unwrap();
    // The daily client starts an authorization: its registration is in use again.
    let daily = McpClient::new(Region::Us, &ids[1], "http://127.0.0.1:50000/callback");
    let r = stack
        .get(
            Region::Us.api(),
            &daily
                .authorize_url("s", &[])
                .replacen(&Region::Us.api_url(), "", 1),
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());

    let pool = region_worker::store::pg::pool(
        &stack.us_stores.pg_url,
        2,
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    let cutoff = time::OffsetDateTime::now_utc() - time::Duration::days(30);
    let pruned = region_worker::store::mcp::prune_clients(&pool, cutoff)
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    let left: Vec<String> = db
        .query("SELECT client_id FROM mcp_clients", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, [ids[1].clone()]);
    // The pruned client is unknown from then on: an error page, never a redirect.
    let forgotten = McpClient::new(Region::Us, &ids[0], "http://127.0.0.1:50000/callback");
    let r = stack
        .get(
            Region::Us.api(),
            &forgotten
                .authorize_url("s", &[])
                .replacen(&Region::Us.api_url(), "", 1),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn a_dynamically_registered_client_connects_and_scim_deactivation_cuts_it_off() {
    let stack = TestStack::start().await.unwrap();
    let sim = OktaSim::start().await.unwrap();
    let bob = sim.add_user(NewUser::new(BOB, "Bob", "Doe")).unwrap();
    let app = sim.app();
    app.assign(&bob).await.unwrap();
    sim.set_auto_sign_in(Some(&bob));
    let team_id = tenant(&stack, &sim, Region::Us, &app).await;
    let scim = stack.scim(Region::Us, &team_id, "").await;
    let (status, user) = scim
        .post(
            "/Users",
            &json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": BOB, "externalId": bob.as_str(),
                "name": { "givenName": "Bob", "familyName": "Doe" },
                "emails": [{ "value": BOB, "primary": true, "type": "work" }],
                "active": true
            }),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    let bob_id = user["id"].as_str().unwrap().to_owned();

    // Registration: a loopback redirect URI without a port; the client then uses
    // whatever port it listens on (RFC 8252 §7.3).
    let (status, reg) = register(
        &stack,
        Region::Us,
        &json!({
            "client_name": "Cursor",
            "redirect_uris": ["http://127.0.0.1/callback"],
            "token_endpoint_auth_method": "client_secret_post",
            "grant_types": ["authorization_code", "refresh_token"],
        }),
    )
    .await;
    assert_eq!(status, 201, "{reg}");
    assert_eq!(reg["token_endpoint_auth_method"], "none");
    assert!(reg.get("client_secret").is_none());
    let client_id = reg["client_id"].as_str().unwrap();
    let client = McpClient::new(Region::Us, client_id, "http://127.0.0.1:61234/callback");

    let mut web = Web::new(&stack.gateway.url());
    let home = web
        .sign_in_with_email(&Region::Us.app_url(), BOB)
        .await
        .unwrap();
    assert_eq!(home.status, 200, "{}", home.body);
    let tokens = client.connect(&stack, &mut web).await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert!(whoami_text(&stack, Region::Us, access).await.contains(BOB));

    // Bad registrations.
    for (body, error) in [
        (json!({ "client_name": "x" }), "invalid_redirect_uri"),
        (
            json!({ "redirect_uris": ["http://client.example/cb"] }),
            "invalid_redirect_uri",
        ),
        (
            json!({ "redirect_uris": ["https://c.example/cb"], "grant_types": ["client_credentials"] }),
            "invalid_client_metadata",
        ),
        (json!(["not an object"]), "invalid_client_metadata"),
    ] {
        let (status, answer) = register(&stack, Region::Us, &body).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some(error)),
            "{body}"
        );
    }

    // Okta deactivates Bob: the next call is refused and the refresh fails.
    let (status, body) = scim
        .patch(
            &format!("/Users/{bob_id}"),
            &json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{ "op": "replace", "value": { "active": false } }]
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    refused(&stack, Region::Us, access).await;
    let (status, body) = client.refresh(&stack, refresh).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    assert_eq!(
        audit_count(&stack.us_stores.pg_url, "mcp.client.registered").await,
        1
    );
}

#[tokio::test]
async fn the_mcp_endpoint_speaks_json_rpc_and_refuses_other_credentials() {
    let stack = TestStack::start().await.unwrap();
    let (web, _) = admin_browser(&stack, Region::Us, JANE).await;
    let cookie = format!(
        "clk_session={}",
        web.cookie(Region::Us.app(), "clk_session").unwrap()
    );
    // A pasted MCP token works; an API token is for another audience.
    let pasted = create_on_page(&stack, Region::Us, &cookie, "pasted", "mcp").await;
    let api = create_on_page(&stack, Region::Us, &cookie, "api", "api").await;
    assert!(
        whoami_text(&stack, Region::Us, &pasted)
            .await
            .contains(JANE)
    );
    refused(&stack, Region::Us, &api).await;
    refused(&stack, Region::Us, "clk_us_mcp_notatoken").await;

    // GET has no stream: 405 with Allow.
    let r = stack
        .get(Region::Us.api(), "/api/mcp")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");

    // JSON-RPC errors in JSON-RPC's format.
    for (message, code) in [
        (
            json!({ "jsonrpc": "2.0", "id": 3, "method": "nope" }),
            -32601,
        ),
        (
            json!({ "jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": { "name": "rm" } }),
            -32602,
        ),
        (
            json!([{ "jsonrpc": "2.0", "id": 5, "method": "ping" }]),
            -32600,
        ),
        (
            json!({ "jsonrpc": "1.0", "id": 6, "method": "ping" }),
            -32600,
        ),
    ] {
        let (_, _, body) = rpc(&stack, Region::Us, Some(&pasted), &message).await;
        assert_eq!(body["error"]["code"], code, "{message}: {body}");
        assert_eq!(body["jsonrpc"], "2.0");
    }
    let (status, _, body) = rpc(
        &stack,
        Region::Us,
        Some(&pasted),
        &json!({ "jsonrpc": "2.0", "id": 9, "method": "ping" }),
    )
    .await;
    assert_eq!((status, &body["result"]), (200, &json!({})));
    let r = stack
        .request(reqwest::Method::POST, Region::Us.api(), "/api/mcp")
        .bearer_auth(&pasted)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32700);

    // A foreign Origin (DNS rebinding) is refused; the region's own is fine.
    for (origin, status) in [
        ("http://evil.example", 403),
        ("http://api.closedloop.localhost", 200),
    ] {
        let r = stack
            .request(reqwest::Method::POST, Region::Us.api(), "/api/mcp")
            .bearer_auth(&pasted)
            .header("origin", origin)
            .json(&json!({ "jsonrpc": "2.0", "id": 1, "method": "ping" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{origin}");
    }
    // An unsupported protocol version header.
    let r = stack
        .request(reqwest::Method::POST, Region::Us.api(), "/api/mcp")
        .bearer_auth(&pasted)
        .header("mcp-protocol-version", "1999-01-01")
        .header("mcp-session-id", "whatever")
        .json(&json!({ "jsonrpc": "2.0", "id": 1, "method": "ping" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn attacks_on_the_authorization_flow_fail() {
    let stack = TestStack::start().await.unwrap();
    let (mut web, _) = admin_browser(&stack, Region::Us, JANE).await;
    let doc_a = serve_document(|url| document(url, "App A", CALLBACK)).await;
    let doc_b = serve_document(|url| document(url, "App B", CALLBACK)).await;
    let a = McpClient::new(Region::Us, &doc_a.url, CALLBACK);
    let b = McpClient::new(Region::Us, &doc_b.url, CALLBACK);

    // A code issued for A, redeemed by B (with A's verifier, even): refused.
    let consent = a.start(&mut web, "s").await.unwrap();
    let code = a.approve(&mut web, &consent, "s").await.unwrap();
    let mut thief = b.clone();
    thief.verifier = a.verifier.clone();
    let (status, body) = thief.exchange(&stack, &code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );

    // Redirect URI not in the client's metadata: a page, never a redirect.
    let p = web
        .get(&a.authorize_url("s", &[("redirect_uri", "https://evil.example/cb")]))
        .await
        .unwrap();
    assert_eq!(p.status, 400, "{}", p.body);
    assert!(p.location.is_none());
    assert!(p.body.contains("Invalid redirect address"), "{}", p.body);
    // An unknown client id: a page too.
    let p = web
        .get(&a.authorize_url("s", &[("client_id", "mcp_nosuchclient")]))
        .await
        .unwrap();
    assert_eq!((p.status, p.location.is_none()), (400, true));

    // Errors after the redirect URI is trusted go back with error, state and iss.
    let errors = [
        (
            vec![("resource", "http://api.closedloop.localhost/api/other")],
            "invalid_target",
        ),
        (
            vec![("resource", "http://eu.api.closedloop.localhost/api/mcp")],
            "invalid_target",
        ),
        (vec![("resource", "")], "invalid_request"),
        (
            vec![("code_challenge", ""), ("code_challenge_method", "")],
            "invalid_request",
        ),
        (vec![("code_challenge_method", "plain")], "invalid_request"),
        (vec![("code_challenge_method", "")], "invalid_request"),
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (vec![("scope", "mcp admin")], "invalid_scope"),
    ];
    for (over, error) in errors {
        let p = web.get(&a.authorize_url("s2", &over)).await.unwrap();
        assert_eq!(p.status, 303, "{over:?}: {}", p.body);
        let loc = p.location.unwrap();
        assert!(loc.starts_with(CALLBACK), "{loc}");
        assert_eq!(
            param(&loc, "error").as_deref(),
            Some(error),
            "{over:?}: {loc}"
        );
        assert_eq!(param(&loc, "state").as_deref(), Some("s2"));
        assert_eq!(param(&loc, "iss"), Some(Region::Us.api_url()));
    }

    // Consent without the CSRF token: refused, and the request stays answerable.
    let consent = a.start(&mut web, "s3").await.unwrap();
    let request = closedloop_tests::web::hidden(&consent.body, "request").unwrap();
    let p = web
        .post(
            &format!("{}/mcp/consent", Region::Us.app_url()),
            &[("request", request.as_str()), ("decision", "approve")],
        )
        .await
        .unwrap();
    assert_eq!(p.status, 403, "{}", p.body);
    assert!(p.location.is_none());
    // Deny: access_denied with iss.
    let p = a.decide(&mut web, &consent, "deny").await.unwrap();
    let loc = p.location.unwrap();
    assert_eq!(param(&loc, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&loc, "iss"), Some(Region::Us.api_url()));

    // Wrong resource or verifier at the token endpoint.
    let consent = a.start(&mut web, "s4").await.unwrap();
    let code = a.approve(&mut web, &consent, "s4").await.unwrap();
    let (status, body) = a
        .token_request(
            &stack,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", CALLBACK),
                ("code_verifier", &a.verifier),
                ("client_id", &a.client_id),
                ("resource", "http://api.closedloop.localhost/api/other"),
            ],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_target"))
    );

    // A code redeemed twice ends the grant it connected.
    let consent = a.start(&mut web, "s5").await.unwrap();
    let code = a.approve(&mut web, &consent, "s5").await.unwrap();
    let (status, first) = a.exchange(&stack, &code).await;
    assert_eq!(status, 200, "{first}");
    let access = first["access_token"].as_str().unwrap();
    assert!(whoami_text(&stack, Region::Us, access).await.contains(JANE));
    let (status, _) = a.exchange(&stack, &code).await;
    assert_eq!(status, 400);
    refused(&stack, Region::Us, access).await;
    let (status, _) = a
        .refresh(&stack, first["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, 400);

    // A refresh token replayed after rotation ends the whole grant.
    let tokens = a.connect(&stack, &mut web).await.unwrap();
    let old = tokens["refresh_token"].as_str().unwrap();
    let (status, rotated) = a.refresh(&stack, old).await;
    assert_eq!(status, 200);
    let new_access = rotated["access_token"].as_str().unwrap();
    let new_refresh = rotated["refresh_token"].as_str().unwrap();
    let (status, body) = a.refresh(&stack, old).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    refused(&stack, Region::Us, new_access).await;
    let (status, _) = a.refresh(&stack, new_refresh).await;
    assert_eq!(status, 400, "the rotated refresh token died with its grant");
    // A refresh token presented by another client is refused.
    let tokens = a.connect(&stack, &mut web).await.unwrap();
    let (status, _) = b
        .refresh(&stack, tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, 400);

    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    let reasons: Vec<Value> = db
        .query(
            "SELECT detail FROM audit_events WHERE action = 'mcp.grant.revoked' ORDER BY at",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, Value>(0)["reason"].clone())
        .collect();
    assert_eq!(reasons, [json!("code_reuse"), json!("refresh_token_reuse")]);
}

#[tokio::test]
async fn disconnect_and_revocation_end_a_grant_and_only_the_owner_can_disconnect() {
    let stack = TestStack::start().await.unwrap();
    let (mut jane, _) = admin_browser(&stack, Region::Us, JANE).await;
    let (bob, _) = admin_browser(&stack, Region::Us, BOB).await;
    let doc = serve_document(|url| document(url, "Zed", CALLBACK)).await;
    let client = McpClient::new(Region::Us, &doc.url, CALLBACK);
    let tokens = client.connect(&stack, &mut jane).await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let jane_cookie = format!(
        "clk_session={}",
        jane.cookie(Region::Us.app(), "clk_session").unwrap()
    );
    let bob_cookie = format!(
        "clk_session={}",
        bob.cookie(Region::Us.app(), "clk_session").unwrap()
    );
    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    let grant: uuid::Uuid = db
        .query_one("SELECT id FROM mcp_grants WHERE revoked_at IS NULL", &[])
        .await
        .unwrap()
        .get(0);

    // Bob (another workspace's admin) sees nothing of it and cannot disconnect it.
    let page = get_page(&stack, Region::Us, &bob_cookie, "/tokens").await;
    assert!(!page.body.contains("Zed"), "{}", page.body);
    let csrf = closedloop_tests::web::hidden(&page.body, "csrf").unwrap();
    let r = closedloop_tests::session::post_form(
        &stack,
        Region::Us,
        &bob_cookie,
        "/tokens/connected-apps/disconnect",
        &[("id", &grant.to_string()), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(whoami_text(&stack, Region::Us, access).await.contains(JANE));

    // Jane's Disconnect without CSRF is refused; with it, the grant ends at once.
    let r = closedloop_tests::session::post_form(
        &stack,
        Region::Us,
        &jane_cookie,
        "/tokens/connected-apps/disconnect",
        &[("id", &grant.to_string())],
    )
    .await;
    assert_eq!(r.status, 403);
    let page = get_page(&stack, Region::Us, &jane_cookie, "/tokens").await;
    assert!(page.body.contains("Zed"), "{}", page.body);
    let csrf = closedloop_tests::web::hidden(&page.body, "csrf").unwrap();
    let r = closedloop_tests::session::post_form(
        &stack,
        Region::Us,
        &jane_cookie,
        "/tokens/connected-apps/disconnect",
        &[("id", &grant.to_string()), ("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    refused(&stack, Region::Us, access).await;
    let (status, _) = client
        .refresh(&stack, tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, 400);
    let page = get_page(&stack, Region::Us, &jane_cookie, "/tokens").await;
    assert!(!page.body.contains("Zed"), "{}", page.body);

    // RFC 7009: the client revokes its refresh token, ending the grant.
    let tokens = client.connect(&stack, &mut jane).await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let (status, _) = post_form(
        &stack,
        Region::Us,
        "/api/mcp/oauth/revoke",
        &[
            ("token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", &client.client_id),
        ],
    )
    .await;
    assert_eq!(status, 200);
    refused(&stack, Region::Us, access).await;
}

#[tokio::test]
async fn outside_development_a_client_document_on_a_private_address_is_refused() {
    let stack = TestStack::start_configured(1, false, |c| {
        c.development = false;
        c.sign_in.okta_resolver = Resolver::fixed([
            ("client.private.test", "10.0.0.7".parse().unwrap()),
            ("client.meta.test", "169.254.169.254".parse().unwrap()),
        ]);
    })
    .await
    .unwrap();
    let (mut web, _) = admin_browser(&stack, Region::Us, JANE).await;
    for client_id in [
        "https://client.private.test/oauth/client.json",
        "https://client.meta.test/latest/meta-data",
    ] {
        let client = McpClient::new(Region::Us, client_id, CALLBACK);
        let p = web.get(&client.authorize_url("s", &[])).await.unwrap();
        assert_eq!(p.status, 400, "{}", p.body);
        assert!(p.location.is_none());
        assert!(p.body.contains("private or local network"), "{}", p.body);
    }
    // A plain-HTTP document (even on loopback) is not fetched outside development.
    let doc = serve_document(|url| document(url, "Local", CALLBACK)).await;
    let client = McpClient::new(Region::Us, &doc.url, CALLBACK);
    let p = web.get(&client.authorize_url("s", &[])).await.unwrap();
    assert_eq!((p.status, p.location.is_none()), (400, true), "{}", p.body);
}

/// What one official SDK's script reported, run against a fresh stack (region URLs
/// with the gateway's port, as a real client needs them) in `region`: a signed-in admin
/// consents in the test's browser when the script's redirect handler asks, and Okta
/// logs her out when the script asks. `None` when the SDK is not installed.
async fn run_sdk(sdk: &str, region: Region, mode: &str) -> Option<(Value, TestStack)> {
    use closedloop_tests::mcp_client::{BridgeRequest, bridge, consent_in_browser, sdk_command};
    let (program, script) = sdk_command(sdk)?;
    let stack = TestStack::start_configured(1, true, |_| {}).await.unwrap();
    let sim = OktaSim::start().await.unwrap();
    let app = match region {
        Region::Us => sim.app(),
        Region::Eu => eu_app(&sim),
    };
    let ws = stack.workspace(region, "Acme", JANE).await;
    stack
        .configure_okta(
            region,
            &ws.team_id,
            sim.base_url(),
            app.client_id(),
            &app.client_secret(),
        )
        .await;
    let mut web = Web::new(&stack.gateway.url());
    let home = web.sign_in_with_link(&ws.sign_in_url).await.unwrap();
    assert_eq!(home.status, 200, "{}", home.body);
    let port = url::Url::parse(&stack.gateway.url())
        .unwrap()
        .port()
        .unwrap();
    let api = format!("http://{}:{port}", region.api());
    let redirect_uri = "http://127.0.0.1:47123/callback";
    let doc = serve_document(|url| document(url, &format!("{sdk} SDK e2e"), redirect_uri)).await;
    let mut bridge = bridge().await;
    // The endpoint as Okta is configured with it: the region's URL, with its port.
    let logout = closedloop_tests::okta_sim::upstream::Upstream::via(
        &format!("{api}/api/okta/universal-logout"),
        &stack.gateway.url(),
    )
    .unwrap();
    let child = tokio::process::Command::new(&program)
        .arg(&script)
        .env("MCP_URL", format!("{api}/api/mcp"))
        .env("BRIDGE_URL", &bridge.url)
        .env("MODE", mode)
        .env("REDIRECT_URI", redirect_uri)
        .env("DOCUMENT_URL", &doc.url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{} runs: {e}", program.display()));
    let mut output = tokio::spawn(child.wait_with_output());
    let run = async {
        loop {
            tokio::select! {
                done = &mut output => break done.unwrap().unwrap(),
                Some((request, reply)) = bridge.calls.recv() => {
                    let answer = match request {
                        BridgeRequest::Authorize(url) => {
                            consent_in_browser(&mut web, region, redirect_uri, &url).await
                        }
                        BridgeRequest::Step(s) if s == "universal-logout" => {
                            let sent = app
                                .universal_logout(&logout, &Subject::Email(JANE.into()))
                                .await
                                .unwrap();
                            assert_eq!(sent.status, 204, "{}", sent.body);
                            Ok(String::new())
                        }
                        BridgeRequest::Step(other) => Err(format!("no step {other}")),
                    };
                    let _ = reply.send(answer);
                }
            }
        }
    };
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), run)
        .await
        .unwrap_or_else(|_| panic!("the {sdk} SDK's script finishes within 2 minutes"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{sdk} ({mode}): {stderr}\n{stdout}");
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{sdk}: no report ({e}): {stdout}\n{stderr}"));
    drop(doc);
    Some((report, stack))
}

/// What every SDK run must show: connected with its own OAuth client, `whoami` as the
/// admin, a refresh, and after Universal Logout a refusal that sends it back to
/// authorize (which the logged-out browser cannot complete).
async fn assert_sdk_run(sdk: &str, region: Region, mode: &str) {
    let Some((report, stack)) = run_sdk(sdk, region, mode).await else {
        return;
    };
    let first = report["first"].as_str().unwrap_or_default();
    assert!(first.contains(JANE), "{sdk} {mode}: {report}");
    assert!(
        first.contains(&format!("region {}", region.as_str().to_ascii_uppercase())),
        "{report}"
    );
    assert_eq!(report["refreshed"], true, "{sdk} {mode}: {report}");
    assert_eq!(report["authorizations"], 1, "{report}");
    assert!(report.get("after_logout").is_none(), "{report}");
    assert_eq!(
        report["authorizations_after_logout"], 2,
        "refused after the logout, the client authorizes again: {report}"
    );
    let client_id = report["client_id"].as_str().unwrap();
    if mode == "document" {
        assert!(client_id.starts_with("http://127.0.0.1:"), "{report}");
    } else {
        assert!(client_id.starts_with("mcp_"), "{report}");
    }
    let pg = match region {
        Region::Us => &stack.us_stores.pg_url,
        Region::Eu => &stack.eu_stores.pg_url,
    };
    assert_connection_audited(pg).await;
}

#[tokio::test]
async fn the_official_python_sdk_connects_with_a_metadata_document_in_both_regions() {
    assert_sdk_run("python", Region::Us, "document").await;
    assert_sdk_run("python", Region::Eu, "document").await;
}

#[tokio::test]
async fn the_official_python_sdk_connects_with_dynamic_registration() {
    assert_sdk_run("python", Region::Us, "dcr").await;
}

#[tokio::test]
async fn the_official_typescript_sdk_connects_with_a_metadata_document_in_both_regions() {
    assert_sdk_run("typescript", Region::Us, "document").await;
    assert_sdk_run("typescript", Region::Eu, "document").await;
}

#[tokio::test]
async fn the_official_typescript_sdk_connects_with_dynamic_registration() {
    assert_sdk_run("typescript", Region::Us, "dcr").await;
}
