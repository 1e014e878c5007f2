//! Activity (`/activity`, `/activity/export`): a workspace's audit trail as its admins
//! read it. What Okta provisions and what SCIM requests are refused appear in order
//! with Okta's request id; a flood of bad tokens is recorded once a minute and never
//! for a blocked client; refused sign-ins show the Troubleshooting table's reason and
//! fix; Universal Logout accepted and refused appear; filters, keyset paging and the
//! JSON Lines and CSV exports agree with the database; another workspace's admin sees
//! and exports nothing of it; retention prunes by the worker's clock, in batches, one
//! worker at a time.

use std::time::Duration;

use closedloop_tests::harness::{Scim, TestStack, US_APP, eventually, pg_connect};
use closedloop_tests::okta_sim::OktaSim;
use closedloop_tests::okta_sim::directory::NewUser;
use closedloop_tests::okta_sim::logout::Subject;
use closedloop_tests::okta_sim::upstream::Upstream;
use closedloop_tests::region::Region;
use closedloop_tests::story::{StoryTarget, configure};
use region_worker::audit_retention::{self, Pruned};
use region_worker::config::RateLimit;
use reqwest::Method;
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_TYPE, COOKIE};
use serde_json::{Value, json};

/// `GET` on the app host with a session cookie: status and body.
async fn page(stack: &TestStack, cookie: &str, path: &str) -> (u16, String) {
    let r = stack
        .get(US_APP, path)
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The action codes of the page's rows, top to bottom.
fn actions(body: &str) -> Vec<String> {
    body.split("<br><code>")
        .skip(1)
        .map(|rest| rest.split("</code>").next().unwrap().to_owned())
        .collect()
}

/// The `href` of the link whose text is `text`, `&amp;` decoded.
fn link(body: &str, text: &str) -> Option<String> {
    let end = body.find(&format!("\">{text}</a>"))?;
    let start = body[..end].rfind("href=\"")? + "href=\"".len();
    Some(body[start..end].replace("&amp;", "&"))
}

/// A SCIM request with Okta's request id.
fn with_id(req: reqwest::RequestBuilder, id: &str) -> reqwest::RequestBuilder {
    req.header("X-Okta-Request-Id", id)
}

fn user(name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": name,
        "name": { "givenName": "Alice", "familyName": "Doe" },
        "emails": [{ "value": name, "primary": true }],
        "active": true,
    })
}

/// Creates a user over SCIM; returns their id.
async fn create_user(scim: &Scim, name: &str) -> String {
    let (s, u) = scim.post("/Users", &user(name)).await;
    assert_eq!(s, 201, "{u}");
    u["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn scim_changes_and_refused_requests_appear_newest_first_with_okta_s_request_id() {
    let stack = TestStack::start().await.unwrap();
    let ws = stack.workspace(Region::Us, "Acme", "admin@acme.test").await;
    let cookie = stack.sign_in_with_link(Region::Us, &ws).await;
    let scim = stack.scim(Region::Us, &ws.team_id, "").await;

    let send = |method: Method, path: &str, id: &str, body: Option<Value>| {
        let mut req = with_id(scim.request(method, path), id);
        if let Some(body) = body {
            req = req.json(&body);
        }
        closedloop_tests::harness::send(req)
    };
    let (s, alice) = send(
        Method::POST,
        "/Users",
        "okta-1",
        Some(user("alice@acme.test")),
    )
    .await;
    assert_eq!(s, 201, "{alice}");
    let alice_id = alice["id"].as_str().unwrap().to_owned();
    let patch = |ops: Value| json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops });
    let (s, _) = send(
        Method::PATCH,
        &format!("/Users/{alice_id}"),
        "okta-2",
        Some(patch(
            json!([{ "op": "replace", "path": "name.givenName", "value": "Alicia" }]),
        )),
    )
    .await;
    assert_eq!(s, 200);
    let (s, group) = send(
        Method::POST,
        "/Groups",
        "okta-3",
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Engineering",
            "members": [{ "value": alice_id }],
        })),
    )
    .await;
    assert_eq!(s, 201, "{group}");
    let (s, _) = send(
        Method::PATCH,
        &format!("/Users/{alice_id}"),
        "okta-4",
        Some(patch(
            json!([{ "op": "replace", "value": { "active": false } }]),
        )),
    )
    .await;
    assert_eq!(s, 200);
    // Refused: a duplicate userName, a filter that does not parse, a method /Roles
    // does not answer.
    let (s, e) = send(
        Method::POST,
        "/Users",
        "okta-5",
        Some(user("alice@acme.test")),
    )
    .await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (409, Some("uniqueness")),
        "{e}"
    );
    let (s, e) = send(
        Method::GET,
        "/Users?filter=userName%20zz%20%22x%22",
        "okta-6",
        None,
    )
    .await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (400, Some("invalidFilter")),
        "{e}"
    );
    let (s, _) = send(Method::POST, "/Roles", "okta-7", Some(json!({}))).await;
    assert_eq!(s, 405);
    // Without Okta's header, the gateway's X-Request-Id is kept.
    let (s, _) = closedloop_tests::harness::send(
        scim.request(Method::GET, "/Users/00000000-0000-4000-8000-000000000000")
            .header("X-Request-Id", "gw-req-8"),
    )
    .await;
    assert_eq!(s, 404);

    let (status, body) = page(&stack, &cookie, "/activity").await;
    assert_eq!(status, 200, "{body}");
    let codes = actions(&body);
    assert_eq!(
        codes[..8],
        [
            "scim.request.refused",
            "scim.request.refused",
            "scim.request.refused",
            "scim.request.refused",
            "scim.user.deactivated",
            "scim.group.created",
            "scim.user.patched",
            "scim.user.created",
        ],
        "{codes:?}"
    );
    // Each with its request id, newest first.
    let mut at = 0;
    for id in [
        "gw-req-8", "okta-7", "okta-6", "okta-5", "okta-4", "okta-3", "okta-2", "okta-1",
    ] {
        let found = body[at..]
            .find(&format!("<code>{id}</code>"))
            .unwrap_or_else(|| panic!("{id} after {at}: {body}"));
        at += found;
    }
    // The refusals say their status, scimType and detail; the target links to People.
    for shown in [
        "<dd>409</dd>",
        "<dd>uniqueness</dd>",
        "is already taken in this workspace",
        "<dd>invalidFilter</dd>",
        "<dd>405</dd>",
        "<dd>404</dd>",
        "User deactivated",
        "Okta (SCIM)",
        "givenName",
    ] {
        assert!(body.contains(shown), "{shown}: {body}");
    }
    assert!(
        body.contains(&format!(
            "<a href=\"/people/{alice_id}\">alice@acme.test</a>"
        )),
        "{body}"
    );
    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    let ids: Vec<Option<String>> = db
        .query(
            "SELECT request_id FROM audit_events WHERE action LIKE 'scim.%' ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        ids.iter().flatten().collect::<Vec<_>>(),
        [
            "okta-1", "okta-2", "okta-3", "okta-4", "okta-5", "okta-6", "okta-7", "gw-req-8"
        ]
    );
}

#[tokio::test]
async fn a_flood_of_bad_tokens_is_one_event_a_minute_and_nothing_once_the_client_is_blocked() {
    let stack = TestStack::start_configured(1, false, |c| {
        c.auth_rate_limit = RateLimit {
            per_second: 1,
            burst: 40,
        };
        c.failed_auth_hold = Duration::ZERO;
    })
    .await
    .unwrap();
    let ws = stack.workspace(Region::Us, "Acme", "admin@acme.test").await;
    let scim = stack.scim(Region::Us, &ws.team_id, "").await;
    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    let refusals = || async {
        db.query(
            "SELECT actor, detail::text FROM audit_events WHERE action = 'scim.request.refused' ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect::<Vec<_>>()
    };
    // Tokens that are not ours (never looked up) and no token at all.
    for i in 0..30 {
        let client = if i % 2 == 0 {
            scim.with_token(&format!("made-up-{i}"))
        } else {
            scim.with_token("")
        };
        assert_eq!(client.get("/Users").await.0, 401);
    }
    let events = refusals().await;
    assert_eq!(events.len(), 1, "{events:?}");
    let detail: Value = serde_json::from_str(&events[0].1).unwrap();
    assert_eq!(events[0].0, "anonymous");
    assert_eq!(
        (detail["status"].as_u64(), detail["more"].as_u64()),
        (Some(401), Some(0))
    );
    assert_eq!(detail["reason"], "invalid_token");

    // The minute is over (its Redis gate expired): the next refusal is recorded and
    // counts the 29 left out.
    let gate = format!(
        "{}audit-throttle:{{scim:{}:401}}",
        stack.us_stores.redis_prefix, ws.team_id
    );
    let redis = redis::Client::open(stack.us_stores.redis_url.as_str()).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let deleted: i64 = redis::cmd("DEL")
        .arg(&gate)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(deleted, 1, "the gate is the workspace's key");
    assert_eq!(scim.with_token("").get("/Users").await.0, 401);
    let events = refusals().await;
    assert_eq!(events.len(), 2, "{events:?}");
    let detail: Value = serde_json::from_str(&events[1].1).unwrap();
    assert_eq!(detail["more"], 29);
    assert_eq!(detail["reason"], "missing_token");

    // Made-up tokens of ours cost lookups until the failed-authentication gate blocks
    // the client: from then on nothing is recorded, even once the minute is over.
    let mut blocked = false;
    for i in 0..200 {
        let token = format!("clk_us_scim_{i:043}");
        let (s, _) = scim.with_token(&token).get("/Users").await;
        if s == 429 {
            blocked = true;
            break;
        }
        assert_eq!(s, 401);
    }
    assert!(blocked, "the client is blocked");
    let before = refusals().await.len();
    let _: i64 = redis::cmd("DEL")
        .arg(&gate)
        .query_async(&mut conn)
        .await
        .unwrap();
    let (s, _) = scim
        .with_token(&format!("clk_us_scim_{}", "z".repeat(43)))
        .get("/Users")
        .await;
    assert_eq!(s, 429);
    assert_eq!(
        refusals().await.len(),
        before,
        "a blocked client is not recorded"
    );
    // No token reaches the audit trail.
    let all: Vec<String> = db
        .query("SELECT detail::text || actor FROM audit_events", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        all.iter()
            .all(|t| !t.contains("made-up") && !t.contains("clk_us_scim_")),
        "{all:?}"
    );
}

#[tokio::test]
async fn refused_sign_ins_and_universal_logout_show_their_reasons_and_the_fix() {
    const JANE: &str = "jane@acme.test";
    let stack = TestStack::start().await.unwrap();
    let target = StoryTarget::InProcess(&stack);
    let sim = OktaSim::start().await.unwrap();
    let mut c = configure(&target, &sim, Region::Us, false).await.unwrap();
    // Jane signs in at Okta but is neither provisioned nor created just in time.
    let jane = sim.add_user(NewUser::new(JANE, "Jane", "Doe")).unwrap();
    c.app.assign(&jane).await.unwrap();
    sim.set_auto_sign_in(Some(&jane));
    let mut web = closedloop_tests::web::Web::new(&stack.gateway.url());
    let refused = web.go(&c.values.initiate_login_uri).await.unwrap();
    assert_eq!(refused.status, 403, "{}", refused.body);
    // Universal Logout for a user the workspace does not have: refused (404).
    let own = Upstream::via(&c.values.gtr_endpoint, &stack.gateway.url()).unwrap();
    let subject = Subject::Email(JANE.into());
    assert_eq!(
        c.app.universal_logout(&own, &subject).await.unwrap().status,
        404
    );
    // Provisioned now: the next logout is accepted.
    let scim = stack.scim(Region::Us, &c.team_id, "").await;
    let jane_id = create_user(&scim, JANE).await;
    assert_eq!(
        c.app.universal_logout(&own, &subject).await.unwrap().status,
        204
    );

    let activity = "http://app.closedloop.localhost/activity";
    let shown = c.admin.get(activity).await.unwrap();
    assert_eq!(shown.status, 200, "{}", shown.body);
    let body = &shown.body;
    for text in [
        "Sign-in refused",
        "oidc.sign_in.failed",
        "<dd>not_provisioned</dd>",
        "the user is not provisioned and just-in-time provisioning is off",
        "Confirm the user is assigned to the Okta app and is provisioned or Just-in-time \
         provisioning is enabled in ClosedLoop AI.",
        "Universal Logout refused",
        "<dd>unknown_user</dd>",
        "Universal Logout accepted",
    ] {
        assert!(body.contains(text), "{text}: {body}");
    }
    assert!(
        body.contains(&format!("<a href=\"/people/{jane_id}\">{JANE}</a>")),
        "{body}"
    );
    // By kind: the sign-in group has the refusal and not the logouts; the logout group
    // the reverse.
    let sign_ins = c
        .admin
        .get(&format!("{activity}?kind=sign_in"))
        .await
        .unwrap();
    let codes = actions(&sign_ins.body);
    assert!(
        codes.contains(&"oidc.sign_in.failed".to_owned()),
        "{codes:?}"
    );
    assert!(
        codes
            .iter()
            .all(|c| c.starts_with("oidc.") || c.starts_with("session.signed_in"))
    );
    let logouts = c
        .admin
        .get(&format!("{activity}?kind=logout"))
        .await
        .unwrap();
    assert_eq!(
        actions(&logouts.body),
        ["okta.universal_logout", "okta.universal_logout.refused"]
    );
    // The user filter by email finds Jane's logout (she is its target).
    let hers = c
        .admin
        .get(&format!("{activity}?user=JANE%40acme.test"))
        .await
        .unwrap();
    assert_eq!(
        actions(&hers.body),
        ["okta.universal_logout", "scim.user.created"]
    );
}

/// Events straight into the database: many, at chosen times, with values a spreadsheet
/// would take for formulas.
async fn seed_events(db: &tokio_postgres::Client, team_id: &str, n: i64, hostile_target: &str) {
    db.execute(
        "INSERT INTO audit_events (team_id, at, actor, action, target, detail)
         SELECT $1::text::uuid, now() - make_interval(hours => ($2 - i)::int),
                'scim:0123456789ab',
                CASE WHEN i % 3 = 0 THEN 'scim.group.patched' ELSE 'token.created' END,
                CASE WHEN i % 10 = 0 THEN $3 ELSE 'grp-' || i END,
                jsonb_build_object('n', i, 'userName', '=HYPERLINK(\"http://evil\",\"x\")', 'note', 'a,b \"c\"')
           FROM generate_series(1, $2::int) AS i",
        &[&team_id, &(n as i32), &hostile_target],
    )
    .await
    .unwrap();
}

/// A minimal RFC 4180 reader: rows of cells, quotes and line breaks inside quotes.
fn read_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        match (quoted, ch) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    assert!(
        cell.is_empty() && row.is_empty(),
        "the file ends with a line break"
    );
    rows
}

#[tokio::test]
async fn filters_keyset_pages_and_both_exports_agree_with_the_database() {
    let stack = TestStack::start().await.unwrap();
    let ws = stack.workspace(Region::Us, "Acme", "admin@acme.test").await;
    let cookie = stack.sign_in_with_link(Region::Us, &ws).await;
    let scim = stack.scim(Region::Us, &ws.team_id, "").await;
    let alice = create_user(&scim, "alice@acme.test").await;
    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    seed_events(&db, &ws.team_id, 120, "=cmd|' /C calc'!A0").await;
    let everything: Vec<i64> = db
        .query(
            "SELECT id FROM audit_events WHERE team_id = $1::text::uuid ORDER BY at DESC, id DESC",
            &[&ws.team_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(everything.len() > 120);

    // Keyset pages of 50 down to the oldest, then back up.
    let mut seen = Vec::new();
    let mut path = "/activity".to_owned();
    let mut pages = Vec::new();
    loop {
        let (s, body) = page(&stack, &cookie, &path).await;
        assert_eq!(s, 200, "{body}");
        let rows = actions(&body).len();
        assert!(rows <= 50);
        seen.extend(body.match_indices("<tr><td><time").map(|_| ()));
        pages.push((path.clone(), body.clone()));
        match link(&body, "Older events") {
            Some(next) => path = next,
            None => break,
        }
    }
    assert_eq!(seen.len(), everything.len());
    assert_eq!(pages.len(), everything.len().div_ceil(50));
    assert!(
        pages[1].0.starts_with("/activity?before="),
        "{}",
        pages[1].0
    );
    let back = link(&pages[2].1, "Newer events").unwrap();
    let (_, body) = page(&stack, &cookie, &back).await;
    assert_eq!(actions(&body), actions(&pages[1].1), "{back}");
    assert!(link(&pages[0].1, "Newer events").is_none());

    // Filters: one code, a group, a user (by id and email), a time range.
    let (_, body) = page(&stack, &cookie, "/activity?kind=scim.group.patched").await;
    assert!(actions(&body).iter().all(|c| c == "scim.group.patched"));
    assert_eq!(actions(&body).len(), 40);
    let (_, body) = page(&stack, &cookie, "/activity?kind=tokens").await;
    assert!(actions(&body).iter().all(|c| c == "token.created"));
    for user in [alice.clone(), "Alice%40ACME.test".to_owned()] {
        let (_, body) = page(&stack, &cookie, &format!("/activity?user={user}")).await;
        assert_eq!(actions(&body), ["scim.user.created"], "{user}");
    }
    let (_, body) = page(&stack, &cookie, "/activity?user=nobody%40acme.test").await;
    assert!(body.contains("No events match."), "{body}");
    let minute = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let bound = |hours: i64| {
        let text = (time::OffsetDateTime::now_utc() - time::Duration::hours(hours))
            .format(minute)
            .unwrap();
        let at = time::PrimitiveDateTime::parse(&text, minute)
            .unwrap()
            .assume_utc();
        (text, at)
    };
    let ((from, from_at), (until, until_at)) = (bound(30), bound(10));
    let ranged = format!("kind=token.created&from={from}&to={until}");
    let (_, body) = page(&stack, &cookie, &format!("/activity?{ranged}")).await;
    let expected: Vec<i64> = db
        .query(
            "SELECT id FROM audit_events WHERE team_id = $1::text::uuid
                AND action = 'token.created' AND at >= $2 AND at < $3 ORDER BY at DESC, id DESC",
            &[&ws.team_id, &from_at, &until_at],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(expected.len() > 5, "{expected:?}");
    assert_eq!(actions(&body).len(), expected.len(), "{body}");
    assert!(
        body.contains(&format!("value=\"{from}\"")),
        "the form keeps the filter"
    );
    // A value that cannot be used is named, and left out.
    let (s, body) = page(&stack, &cookie, "/activity?from=soon&kind=nope").await;
    assert_eq!(s, 200);
    assert!(
        body.contains("role=\"alert\"") && body.contains("The From time"),
        "{body}"
    );

    // JSON Lines: every event of the filter, newest first, exactly the database's.
    let export = |query: String| {
        let r = stack
            .get(US_APP, &format!("/activity/export?{query}"))
            .header(COOKIE, &cookie)
            .send();
        async move { r.await.unwrap() }
    };
    let r = export("format=jsonl".into()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()[CONTENT_TYPE], "application/x-ndjson");
    let disposition = r.headers()[CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\"activity-")
            && disposition.ends_with(".jsonl\""),
        "{disposition}"
    );
    let text = r.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<i64> = lines.iter().map(|l| l["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, everything);
    // The export is itself on the trail, after the events it contains.
    let exported = db
        .query(
            "SELECT id, actor, detail FROM audit_events WHERE team_id = $1::text::uuid
                AND action = 'workspace.activity.exported' ORDER BY id",
            &[&ws.team_id],
        )
        .await
        .unwrap();
    assert_eq!(exported.len(), 1);
    let export_event: i64 = exported[0].get(0);
    assert!(export_event > everything[0]);
    assert!(exported[0].get::<_, String>(1).starts_with("user:"));
    assert_eq!(exported[0].get::<_, Value>(2)["format"], "jsonl");
    let created = lines
        .iter()
        .find(|l| l["action"] == "scim.user.created")
        .unwrap();
    assert_eq!(created["target"], alice.as_str());
    assert_eq!(created["label"], "User provisioned");
    let r = export(format!("format=jsonl&{ranged}")).await;
    let ids: Vec<i64> = r
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(ids, expected);

    // CSV: the same events, every cell a spreadsheet would run defused.
    let r = export("format=csv".into()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()[CONTENT_TYPE], "text/csv; charset=utf-8");
    let rows = read_csv(&r.text().await.unwrap());
    assert_eq!(
        rows[0],
        [
            "id",
            "at",
            "actor",
            "action",
            "label",
            "target",
            "request_id",
            "detail"
        ]
    );
    let ids: Vec<i64> = rows[1..].iter().map(|r| r[0].parse().unwrap()).collect();
    // Newest first: the earlier exports (the whole JSON Lines one, the ranged one), then
    // everything that was there before.
    assert_eq!(rows[1][3], "workspace.activity.exported");
    assert_eq!(ids[2..], everything[..]);
    assert!(ids[0] > ids[1] && ids[1] == export_event);
    let hostile: Vec<&Vec<String>> = rows.iter().filter(|r| r[5].contains("cmd|")).collect();
    assert_eq!(hostile.len(), 12);
    for row in &rows[1..] {
        for cell in row {
            assert!(
                !cell.starts_with(['=', '+', '-', '@']),
                "{cell:?} in {row:?}"
            );
        }
    }
    assert_eq!(hostile[0][5], "'=cmd|' /C calc'!A0");
    // The newest event from before the exports.
    let detail: Value = serde_json::from_str(&rows[3][7]).unwrap();
    assert_eq!(detail["note"], "a,b \"c\"");

    // Refusals: an unknown format, a filter that cannot be read.
    for bad in ["format=xml", "format=csv&from=soon", "format=csv&kind=nope"] {
        let r = export(bad.into()).await;
        assert_eq!(r.status(), 400, "{bad}");
        assert!(
            r.headers()[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
}

#[tokio::test]
async fn only_the_workspace_s_admins_see_and_export_its_activity() {
    let stack = TestStack::start().await.unwrap();
    let a = stack.workspace(Region::Us, "Acme", "admin@acme.test").await;
    let b = stack.workspace(Region::Us, "Beta", "admin@beta.test").await;
    let a_admin = stack.sign_in_with_link(Region::Us, &a).await;
    let b_admin = stack.sign_in_with_link(Region::Us, &b).await;
    let scim = stack.scim(Region::Us, &a.team_id, "").await;
    let alice = create_user(&scim, "alice@acme.test").await;

    let (_, body) = page(&stack, &a_admin, "/activity").await;
    assert!(body.contains(&alice), "A's admin sees A's events: {body}");
    assert!(
        body.contains(&format!(
            "user <a href=\"/people/{}\">admin@acme.test</a>",
            a.admin_user_id
        )),
        "the link sign-in's actor is the admin: {body}"
    );
    let (_, body) = page(
        &stack,
        &a_admin,
        &format!("/activity?user={}", a.admin_user_id),
    )
    .await;
    assert_eq!(actions(&body), ["session.signed_in.link"], "{body}");
    // B's admin: none of A's events, by any filter, on the page or exported.
    for path in [
        "/activity".to_owned(),
        format!("/activity?user={alice}"),
        "/activity?user=alice%40acme.test".to_owned(),
        format!("/activity?user={}", a.admin_user_id),
        "/activity?kind=scim".to_owned(),
    ] {
        let (s, body) = page(&stack, &b_admin, &path).await;
        assert_eq!(s, 200, "{path}");
        // The filter's own value is echoed in the form; the table must not name A.
        let table = body.split("</form>").nth(1).unwrap_or_default();
        let table = table.split("</p>").skip(1).collect::<String>();
        assert!(
            !table.contains(&alice)
                && !table.contains("alice@acme.test")
                && !table.contains(&a.admin_user_id)
                && !table.contains(&a.team_id),
            "{path}: {table}"
        );
        let codes = actions(&body);
        assert!(
            !codes.contains(&"scim.user.created".to_owned()),
            "{path}: {codes:?}"
        );
    }
    for query in [
        "format=jsonl".to_owned(),
        format!("format=jsonl&user={alice}"),
        "format=csv&kind=scim".to_owned(),
    ] {
        let r = stack
            .get(US_APP, &format!("/activity/export?{query}"))
            .header(COOKIE, &b_admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        assert!(
            !text.contains(&alice) && !text.contains(&a.team_id),
            "{query}: {text}"
        );
        assert!(!text.contains("scim.user.created"), "{query}: {text}");
    }
    // A member of A (not an admin) is refused; a signed-out browser is sent to sign in.
    let member = stack.session_cookie(Region::Us, &a.team_id, &alice).await;
    for path in ["/activity", "/activity/export?format=jsonl"] {
        let (s, body) = page(&stack, &member, path).await;
        assert_eq!(s, 403, "{path}");
        assert!(body.contains("Only workspace admins"), "{body}");
        assert!(actions(&body).is_empty());
    }
    let r = stack.get(US_APP, "/activity").send().await.unwrap();
    assert_eq!(r.status(), 303);
    // The pages link to Activity.
    for (path, cookie) in [("/workspace", &a_admin), ("/", &a_admin)] {
        let (_, body) = page(&stack, cookie, path).await;
        assert!(body.contains("href=\"/activity\""), "{path}: {body}");
    }
}

#[tokio::test]
async fn retention_prunes_old_events_by_the_workers_clock_and_keeps_recent_ones() {
    let stack = TestStack::start_configured(2, false, |c| {
        c.audit_retention = time::Duration::days(90);
        c.audit_prune_every = Duration::from_millis(100);
    })
    .await
    .unwrap();
    let ws = stack.workspace(Region::Us, "Acme", "admin@acme.test").await;
    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    db.execute(
        "INSERT INTO audit_events (team_id, at, actor, action, detail)
         SELECT $1::text::uuid, now() - make_interval(days => d), 'operator', 'token.created', jsonb_build_object('age', d)
           FROM unnest(ARRAY[100, 30, 10, 1]) AS d",
        &[&ws.team_id],
    )
    .await
    .unwrap();
    let ages = || async {
        db.query(
            "SELECT coalesce((detail->>'age')::int, 0) FROM audit_events ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, i32>(0))
        .collect::<Vec<i32>>()
    };
    // 100 days old is past the 90 days already.
    eventually("the 100-day-old event is pruned", || async {
        !ages().await.contains(&100)
    })
    .await;
    let kept = ages().await;
    assert!(
        kept.contains(&30) && kept.contains(&10) && kept.contains(&1),
        "{kept:?}"
    );
    // 85 days on: 30 and 10 days become 115 and 95; 1 day becomes 86 and stays, as do
    // the workspace's own events of today.
    stack.advance_clock(Region::Us, Duration::from_secs(85 * 86_400));
    eventually("the events past 90 days are pruned", || async {
        let ages = ages().await;
        !ages.contains(&30) && !ages.contains(&10)
    })
    .await;
    let kept = ages().await;
    assert!(kept.contains(&1), "{kept:?}");
    assert!(kept.contains(&0), "today's events are kept: {kept:?}");
}

#[tokio::test]
async fn the_pruner_deletes_in_batches_and_only_one_worker_prunes_at_a_time() {
    let stack = TestStack::start().await.unwrap();
    let ws = stack.workspace(Region::Us, "Acme", "admin@acme.test").await;
    let pool = &stack.worker(Region::Us).state.pg;
    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    db.execute(
        "INSERT INTO audit_events (team_id, at, actor, action)
         SELECT $1::text::uuid, now() - interval '200 days', 'operator', 'token.created'
           FROM generate_series(1, 12)",
        &[&ws.team_id],
    )
    .await
    .unwrap();
    let count = || async {
        db.query_one("SELECT count(*) FROM audit_events", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    let total = count().await;
    let cutoff = time::OffsetDateTime::now_utc() - time::Duration::days(90);
    // Another worker holds the lock: this one skips its turn.
    let other = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    other
        .execute("SELECT pg_advisory_lock($1)", &[&audit_retention::LOCK_KEY])
        .await
        .unwrap();
    let r = audit_retention::prune(pool, cutoff, 5, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(r, Pruned::Busy);
    assert_eq!(count().await, total);
    other
        .execute(
            "SELECT pg_advisory_unlock($1)",
            &[&audit_retention::LOCK_KEY],
        )
        .await
        .unwrap();
    // Batches of 5: 5, 5, 2.
    let r = audit_retention::prune(pool, cutoff, 5, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(r, Pruned::Deleted(12));
    assert_eq!(count().await, total - 12);
    // The lock was released: the next run (nothing to do) takes it again.
    let r = audit_retention::prune(pool, cutoff, 5, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(r, Pruned::Deleted(0));
    let held: i64 = db
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(held, 0, "the pooled connection gave the lock back");
    // The batch statement itself, on its own.
    let client = pool.get().await.unwrap();
    db.execute(
        "INSERT INTO audit_events (team_id, at, actor, action)
         SELECT $1::text::uuid, now() - interval '200 days', 'operator', 'token.created'
           FROM generate_series(1, 3)",
        &[&ws.team_id],
    )
    .await
    .unwrap();
    let n = region_worker::store::audit::prune_batch(&client, cutoff, 2)
        .await
        .unwrap();
    assert_eq!(n, 2);
    let n = region_worker::store::audit::prune_batch(&client, cutoff, 2)
        .await
        .unwrap();
    assert_eq!(n, 1);
}
