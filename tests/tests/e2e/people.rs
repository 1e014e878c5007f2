//! The People and Groups pages (`/people`, `/groups`), through the gateway with real
//! workers: users provisioned over SCIM appear with their source, roles, groups and
//! status; search, filters and keyset paging; a user's page with their groups,
//! sessions, token counts and activity; members refused, other workspaces' ids not
//! found and their users never listed; hostile names escaped.

use closedloop_tests::harness::{Scim, TestStack, Workspace, pg_connect};
use closedloop_tests::region::Region;
use closedloop_tests::session::{Reply, get_page};
use closedloop_tests::tokens::create_on_page;
use serde_json::{Value, json};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A workspace with its first admin signed in: the admin's session cookie.
async fn admin_of(stack: &TestStack, name: &str, email: &str) -> (Workspace, String) {
    let ws = stack.workspace(Region::Us, name, email).await;
    let cookie = stack.sign_in_with_link(Region::Us, &ws).await;
    (ws, cookie)
}

/// Provisions a user as Okta does; returns their id.
async fn provision(scim: &Scim, email: &str, given: &str, family: &str, extra: Value) -> String {
    let mut body = json!({
        "schemas": [USER], "userName": email, "externalId": format!("00u-{email}"),
        "name": { "givenName": given, "familyName": family },
        "emails": [{ "value": email, "primary": true, "type": "work" }],
        "active": true
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let (status, user) = scim.post("/Users", &body).await;
    assert_eq!(status, 201, "{user}");
    user["id"].as_str().unwrap().to_owned()
}

/// The id of the workspace's role named `display` (Admin, Member, Viewer).
async fn role(scim: &Scim, display: &str) -> String {
    let (_, roles) = scim.get("/Roles").await;
    roles["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["displayName"] == display)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn set_active(scim: &Scim, id: &str, active: bool) {
    let (status, body) = scim
        .patch(
            &format!("/Users/{id}"),
            &json!({ "schemas": [PATCH],
                     "Operations": [{ "op": "replace", "value": { "active": active } }] }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn deactivate(scim: &Scim, id: &str) {
    set_active(scim, id, false).await;
}

/// Whether the user's row, as it stands, is a heap-only tuple: the version an in-place
/// update wrote, with no new entry in any index (read from the page with pageinspect).
async fn updated_in_place(db: &tokio_postgres::Client, id: &str) -> bool {
    db.batch_execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
        .await
        .unwrap();
    db.query_one(
        "SELECT (i.t_infomask2 & 32768) <> 0 -- HEAP_ONLY_TUPLE
           FROM users u,
                heap_page_items(get_raw_page('users', (u.ctid::text::point)[0]::int)) i
          WHERE u.id = $1 AND i.lp = (u.ctid::text::point)[1]::int",
        &[&uuid::Uuid::parse_str(id).unwrap()],
    )
    .await
    .unwrap()
    .get(0)
}

async fn group(scim: &Scim, name: &str, members: &[&str]) -> String {
    let members: Vec<Value> = members.iter().map(|m| json!({ "value": m })).collect();
    let (status, g) = scim
        .post(
            "/Groups",
            &json!({ "schemas": [GROUP], "displayName": name,
                     "externalId": format!("00g-{name}"), "members": members }),
        )
        .await;
    assert_eq!(status, 201, "{g}");
    g["id"].as_str().unwrap().to_owned()
}

/// An admin page that must answer `200`.
async fn page(stack: &TestStack, cookie: &str, path: &str) -> String {
    let reply = get_page(stack, Region::Us, cookie, path).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    reply.body
}

/// The table row of the person or group whose link text is `name`.
fn row<'a>(body: &'a str, name: &str) -> &'a str {
    body.split("<tr>")
        .find(|r| r.contains(&format!(">{name}</a>")))
        .unwrap_or_else(|| panic!("no row for {name} in {body}"))
}

/// The people (or groups, or members) a list page links to, in its order.
fn listed(body: &str, prefix: &str) -> Vec<String> {
    body.split("<th scope=\"row\"><a href=\"")
        .skip(1)
        .filter_map(|s| s.strip_prefix(prefix))
        .map(|s| s.split('"').next().unwrap_or_default().to_owned())
        .collect()
}

/// The `href` of the page's "Next page" link, unescaped.
fn next_link(body: &str) -> Option<String> {
    let (before, _) = body.split_once("\" rel=\"next\"")?;
    let href = before.rsplit("href=\"").next()?;
    Some(href.replace("&amp;", "&"))
}

#[tokio::test]
async fn provisioned_users_show_their_source_roles_groups_status_and_access() {
    let stack = TestStack::start().await.unwrap();
    let (ws, admin) = admin_of(&stack, "Acme", "admin@acme.test").await;
    let scim = stack.scim(Region::Us, &ws.team_id, "").await;
    let viewer = role(&scim, "Viewer").await;
    let ann = provision(&scim, "ann@acme.test", "Ann", "Lee", json!({})).await;
    let bob = provision(
        &scim,
        "bob@acme.test",
        "Bob",
        "Stone",
        json!({ "roles": [{ "value": viewer }] }),
    )
    .await;
    deactivate(&scim, &bob).await;
    let eng = group(&scim, "Engineering", &[&ann]).await;
    group(&scim, "Design", &[&ann, &bob]).await;

    let body = page(&stack, &admin, "/people").await;
    assert!(body.contains("<h1>People</h1>"), "{body}");
    assert!(body.contains("3 people in Acme"), "{body}");
    let ann_row = row(&body, "Ann Lee");
    assert!(
        ann_row.contains(&format!("href=\"/people/{ann}\"")),
        "{ann_row}"
    );
    assert!(
        ann_row.contains("<small>ann@acme.test</small>"),
        "{ann_row}"
    );
    assert!(
        ann_row.contains("<td>Active</td><td>SCIM</td><td>Member</td>"),
        "{ann_row}"
    );
    assert!(
        ann_row.contains("<td>Design, Engineering</td>"),
        "{ann_row}"
    );
    assert!(
        ann_row.contains("<code>00u-ann@acme.test</code>"),
        "{ann_row}"
    );
    assert!(ann_row.contains("<td>Never</td>"), "{ann_row}");
    let bob_row = row(&body, "Bob Stone");
    assert!(
        bob_row.contains("<td>Deactivated</td><td>SCIM</td><td>Viewer</td>"),
        "{bob_row}"
    );
    // The first admin: made by the operator, signed in with the link just now.
    let admin_row = row(&body, "admin@acme.test");
    assert!(
        admin_row.contains("<td>Active</td><td>Operator</td><td>Admin</td>"),
        "{admin_row}"
    );
    assert!(!admin_row.contains("<td>Never</td>"), "{admin_row}");
    // Newest first.
    assert_eq!(
        listed(&body, "/people/"),
        [bob.clone(), ann.clone(), ws.admin_user_id.clone()]
    );

    // Ann signs in, holds two API tokens and one MCP token; one API token is revoked.
    let ann_cookie = stack.session_cookie(Region::Us, &ws.team_id, &ann).await;
    let secret = create_on_page(&stack, Region::Us, &ann_cookie, "laptop", "api").await;
    create_on_page(&stack, Region::Us, &ann_cookie, "ci", "api").await;
    create_on_page(&stack, Region::Us, &ann_cookie, "agent", "mcp").await;
    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    db.execute(
        "UPDATE tokens SET revoked_at = now() WHERE name = 'ci' AND kind = 'api'",
        &[],
    )
    .await
    .unwrap();

    let body = page(&stack, &admin, &format!("/people/{ann}")).await;
    assert!(body.contains("<h1>Ann Lee</h1>"), "{body}");
    assert!(
        body.contains("Okta is the source of truth for this user."),
        "{body}"
    );
    assert!(body.contains("<dt>Given name</dt><dd>Ann</dd>"), "{body}");
    assert!(
        body.contains("<dd><code>00u-ann@acme.test</code></dd>"),
        "{body}"
    );
    assert!(
        body.contains(&format!("<a href=\"/groups/{eng}\">Engineering</a>")),
        "{body}"
    );
    assert!(body.contains("Member of 2 groups."), "{body}");
    assert!(
        body.contains("<dt>Live browser sessions</dt><dd>1</dd>"),
        "{body}"
    );
    assert!(
        body.contains("<dt>Active API tokens</dt><dd>1</dd>"),
        "{body}"
    );
    assert!(
        body.contains("<dt>Active MCP tokens</dt><dd>1</dd>"),
        "{body}"
    );
    assert!(
        !body.contains("<dd>Never</dd>"),
        "the session start is her last sign-in"
    );
    assert!(
        !body.contains(&secret) && !body.contains("clk_us_api_"),
        "{body}"
    );
    // Her activity, readable: provisioned over SCIM, then the tokens she made.
    assert!(body.contains("User provisioned"), "{body}");
    assert!(body.contains("<code>scim.user.created</code>"), "{body}");
    assert!(body.contains("Okta provisioning (SCIM)"), "{body}");
    // Forms: none (read-only).
    assert!(!body.contains("<form"), "{body}");

    // Bob's page: deactivated, and so his sessions are gone.
    let body = page(&stack, &admin, &format!("/people/{bob}")).await;
    assert!(
        body.contains("<dt>Status</dt><dd>Deactivated</dd>"),
        "{body}"
    );
    assert!(body.contains("User deactivated"), "{body}");

    // Groups: the list, then a group's members linking to People.
    let body = page(&stack, &admin, "/groups").await;
    assert!(body.contains("2 groups in Acme"), "{body}");
    let eng_row = row(&body, "Engineering");
    assert!(
        eng_row.contains("<code>00g-Engineering</code></td><td>1</td>"),
        "{eng_row}"
    );
    assert!(
        row(&body, "Design").contains("</code></td><td>2</td>"),
        "{body}"
    );
    let body = page(&stack, &admin, &format!("/groups/{eng}")).await;
    assert!(body.contains("<h1>Engineering</h1>"), "{body}");
    assert!(body.contains("<dt>Members</dt><dd>1</dd>"), "{body}");
    assert_eq!(listed(&body, "/people/"), [ann.as_str()]);

    // The home and workspace pages lead an admin there.
    for path in ["/", "/workspace"] {
        let body = page(&stack, &admin, path).await;
        assert!(
            body.contains("href=\"/people\"") && body.contains("href=\"/groups\""),
            "{path}: {body}"
        );
    }
    let body = page(&stack, &ann_cookie, "/").await;
    assert!(
        !body.contains("href=\"/people\""),
        "not for members: {body}"
    );
}

#[tokio::test]
async fn search_filters_and_keyset_pages() {
    let stack = TestStack::start().await.unwrap();
    let (ws, admin) = admin_of(&stack, "Acme", "admin@acme.test").await;
    let scim = stack.scim(Region::Us, &ws.team_id, "").await;
    let viewer = role(&scim, "Viewer").await;
    let mut ids = Vec::new();
    for n in 0..55 {
        let extra = if n % 10 == 3 {
            json!({ "roles": [{ "value": viewer }] })
        } else {
            json!({})
        };
        let email = format!("user{n:02}@acme.test");
        ids.push(provision(&scim, &email, "Person", &format!("Number{n:02}"), extra).await);
    }
    let zed = provision(&scim, "zed.o_neil@globex.test", "Zed", "O'Neil", json!({})).await;
    deactivate(&scim, &ids[7]).await;
    deactivate(&scim, &ids[8]).await;
    // A just-in-time user (as the Okta sign-in creates them).
    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    db.execute(
        "UPDATE users SET source = 'jit' WHERE id = $1",
        &[&uuid::Uuid::parse_str(&ids[20]).unwrap()],
    )
    .await
    .unwrap();

    // Paging: 50, then the remaining 7; together everyone, once, newest first.
    let first = page(&stack, &admin, "/people").await;
    let mut seen = listed(&first, "/people/");
    assert_eq!(seen.len(), 50);
    assert!(!first.contains("First page"));
    let next = next_link(&first).expect("a next page");
    assert!(next.starts_with("/people?cursor="), "{next}");
    let second = page(&stack, &admin, &next).await;
    assert!(second.contains("First page"), "{second}");
    assert_eq!(next_link(&second), None);
    seen.extend(listed(&second, "/people/"));
    let mut expected: Vec<String> = ids.iter().rev().cloned().collect();
    expected.insert(0, zed.clone());
    expected.push(ws.admin_user_id.clone());
    assert_eq!(seen, expected);

    // Search: email or name, any case, a substring; LIKE's wildcards match literally.
    let found = |body: &str| listed(body, "/people/");
    let body = page(&stack, &admin, "/people?q=USER4").await;
    assert_eq!(
        found(&body),
        ids[40..50].iter().rev().cloned().collect::<Vec<_>>()
    );
    assert!(body.contains("value=\"USER4\""), "{body}");
    let body = page(&stack, &admin, "/people?q=number07").await;
    assert_eq!(found(&body), [ids[7].as_str()]);
    let body = page(&stack, &admin, "/people?q=o%27neil").await;
    assert_eq!(found(&body), [zed.as_str()]);
    assert!(body.contains("value=\"o&#39;neil\""), "{body}");
    let body = page(&stack, &admin, "/people?q=o_neil%40globex").await;
    assert_eq!(found(&body), [zed.as_str()]);
    let body = page(&stack, &admin, "/people?q=zed%25neil").await;
    assert!(
        found(&body).is_empty() && body.contains("No one matches."),
        "{body}"
    );
    // A search with more matches than a page pages like the list.
    let body = page(&stack, &admin, "/people?q=acme.test").await;
    assert_eq!(found(&body).len(), 50);
    let next = next_link(&body).expect("a next page");
    assert!(next.starts_with("/people?q=acme.test&cursor="), "{next}");
    let body = page(&stack, &admin, &next).await;
    assert_eq!(found(&body).len(), 6, "55 users and the admin");

    // Filters, alone and together.
    let body = page(&stack, &admin, "/people?status=deactivated").await;
    assert_eq!(found(&body), [ids[8].clone(), ids[7].clone()]);
    assert!(
        body.contains("<option value=\"deactivated\" selected>"),
        "{body}"
    );
    let body = page(&stack, &admin, "/people?status=active").await;
    assert!(!found(&body).contains(&ids[8]) && found(&body).len() == 50);
    let body = page(&stack, &admin, "/people?role=viewer").await;
    let viewers: Vec<String> = [53, 43, 33, 23, 13, 3]
        .iter()
        .map(|&n| ids[n].clone())
        .collect();
    assert_eq!(found(&body), viewers);
    let body = page(&stack, &admin, "/people?role=admin").await;
    assert_eq!(found(&body), [ws.admin_user_id.as_str()]);
    let body = page(&stack, &admin, "/people?source=jit").await;
    assert_eq!(found(&body), [ids[20].as_str()]);
    let body = page(&stack, &admin, "/people?source=admin").await;
    assert_eq!(found(&body), [ws.admin_user_id.as_str()]);
    let body = page(&stack, &admin, "/people?source=scim&role=viewer&q=number1").await;
    assert_eq!(found(&body), [ids[13].as_str()]);
    let body = page(&stack, &admin, "/people?status=deactivated&role=viewer").await;
    assert!(found(&body).is_empty(), "{body}");

    // A change of status rewrites the user's row in place, touching no index (V16):
    // `active` must stay out of every index of `users` for deactivations to be cheap.
    assert!(updated_in_place(&db, &ids[7]).await);
    // Reactivated, a user leaves the deactivated list; deleted, too.
    set_active(&scim, &ids[8], true).await;
    let body = page(&stack, &admin, "/people?status=deactivated").await;
    assert_eq!(found(&body), [ids[7].clone()]);
    assert!(found(&page(&stack, &admin, "/people?status=active").await).contains(&ids[8]));
    let gone = provision(&scim, "gone@acme.test", "Gone", "Soon", json!({})).await;
    deactivate(&scim, &gone).await;
    let (status, body) = scim.delete(&format!("/Users/{gone}")).await;
    assert_eq!(status, 204, "{body}");
    let body = page(&stack, &admin, "/people?status=deactivated").await;
    assert_eq!(found(&body), [ids[7].clone()]);
    let stray: i64 = db
        .query_one(
            "SELECT count(*) FROM deactivated_users d
              WHERE NOT EXISTS (SELECT 1 FROM users u
                                 WHERE u.team_id = d.team_id AND u.seq = d.seq AND NOT u.active)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        stray, 0,
        "every row of deactivated_users is a deactivated user"
    );
    set_active(&scim, &ids[8], false).await;

    // Values that cannot be used are named and left out, never a failure.
    for (query, notice) in [
        ("status=gone", "Unknown status"),
        ("role=owner", "Unknown role"),
        ("source=ldap", "Unknown source"),
        ("cursor=abc", "The page link is not valid"),
        ("cursor=-1", "The page link is not valid"),
        ("q=ab", "at least three letters or digits"),
        ("q=%25%25%25", "at least three letters or digits"),
    ] {
        let body = page(&stack, &admin, &format!("/people?{query}")).await;
        assert!(body.contains(notice), "{query}: {body}");
        assert_eq!(found(&body).len(), 50, "{query}: the unfiltered list");
    }
    let long = "a".repeat(101);
    let body = page(&stack, &admin, &format!("/people?q={long}")).await;
    assert!(body.contains("limited to 100 characters"), "{body}");
    assert!(!body.contains(&long), "not echoed");
    // Not UTF-8, repeated names, a cursor past the end.
    let body = page(&stack, &admin, "/people?q=%FF%FEuser0&q=x").await;
    assert!(found(&body).is_empty(), "{body}");
    let body = page(&stack, &admin, "/people?cursor=1").await;
    assert!(body.contains("No one matches.") || body.contains("No one here yet."));

    // Groups page by keyset too, and a group's members.
    for n in 0..52 {
        group(&scim, &format!("Team {n:02}"), &[]).await;
    }
    let members: Vec<&str> = ids.iter().map(String::as_str).collect();
    let all = group(&scim, "Everyone", &members).await;
    let body = page(&stack, &admin, "/groups").await;
    let groups = listed(&body, "/groups/");
    assert_eq!(groups.len(), 50);
    assert_eq!(groups[0], all);
    let body = page(&stack, &admin, &next_link(&body).unwrap()).await;
    assert_eq!(listed(&body, "/groups/").len(), 3);
    let body = page(&stack, &admin, &format!("/groups/{all}")).await;
    assert!(body.contains("<dt>Members</dt><dd>55</dd>"), "{body}");
    let mut shown = listed(&body, "/people/");
    assert_eq!(shown.len(), 50);
    let next = next_link(&body).unwrap();
    assert!(
        next.starts_with(&format!("/groups/{all}?cursor=")),
        "{next}"
    );
    shown.extend(listed(&page(&stack, &admin, &next).await, "/people/"));
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(shown, sorted, "every member once, in id order");
    let body = page(&stack, &admin, &format!("/groups/{all}?cursor=nope")).await;
    assert!(body.contains("The page link is not valid"), "{body}");
}

#[tokio::test]
async fn members_are_refused_and_other_workspaces_stay_out_of_sight() {
    let stack = TestStack::start().await.unwrap();
    let (a, _) = admin_of(&stack, "Acme", "admin@acme.test").await;
    let (b, b_admin) = admin_of(&stack, "Globex", "admin@globex.test").await;
    let a_scim = stack.scim(Region::Us, &a.team_id, "").await;
    let ann = provision(&a_scim, "ann@acme.test", "Ann", "Secret", json!({})).await;
    let a_group = group(&a_scim, "Acme Insiders", &[&ann]).await;
    // A deactivated user of A: the Deactivated filter reads its own table (V16).
    let dee = provision(&a_scim, "dee@acme.test", "Dee", "Hidden", json!({})).await;
    deactivate(&a_scim, &dee).await;
    let b_scim = stack.scim(Region::Us, &b.team_id, "").await;
    let bea = provision(&b_scim, "bea@globex.test", "Bea", "Globex", json!({})).await;

    // B's lists never show A's users or groups, whatever the search or filter.
    for path in [
        "/people",
        "/people?q=Secret",
        "/people?q=acme.test",
        "/people?source=scim",
        "/people?role=member",
        "/people?status=active",
        "/people?status=deactivated",
        "/groups",
    ] {
        let body = page(&stack, &b_admin, path).await;
        assert!(
            !body.contains(&ann)
                && !body.contains("Ann Secret")
                && !body.contains("ann@acme.test")
                && !body.contains(&dee)
                && !body.contains("dee@acme.test")
                && !body.contains("Insiders"),
            "{path}: {body}"
        );
    }
    let body = page(&stack, &b_admin, "/people").await;
    assert_eq!(listed(&body, "/people/"), [bea, b.admin_user_id.clone()]);

    // A's ids, unknown ids and malformed ones: the same 404 page.
    let unknown = uuid::Uuid::new_v4();
    let mut answers = Vec::new();
    for path in [
        format!("/people/{ann}"),
        format!("/people/{}", a.admin_user_id),
        format!("/people/{unknown}"),
        "/people/not-a-uuid".to_owned(),
        "/people/%FF".to_owned(),
    ] {
        let reply = get_page(&stack, Region::Us, &b_admin, &path).await;
        assert_eq!(reply.status, 404, "{path}: {}", reply.body);
        assert!(reply.body.contains("No such person"), "{}", reply.body);
        answers.push(reply.body);
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]));
    let mut answers = Vec::new();
    for path in [
        format!("/groups/{a_group}"),
        format!("/groups/{a_group}?cursor={ann}"),
        format!("/groups/{unknown}"),
        "/groups/42".to_owned(),
    ] {
        let reply = get_page(&stack, Region::Us, &b_admin, &path).await;
        assert_eq!(reply.status, 404, "{path}: {}", reply.body);
        assert!(!reply.body.contains("Insiders"), "{}", reply.body);
        answers.push(reply.body);
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]));

    // A member of A gets the admins-only refusal on every page; a stranger signs in.
    let member = stack.session_cookie(Region::Us, &a.team_id, &ann).await;
    for path in [
        "/people".to_owned(),
        format!("/people/{ann}"),
        "/groups".to_owned(),
        format!("/groups/{a_group}"),
    ] {
        let reply: Reply = get_page(&stack, Region::Us, &member, &path).await;
        assert_eq!(reply.status, 403, "{path}: {}", reply.body);
        assert!(
            reply.body.contains("Only workspace admins"),
            "{}",
            reply.body
        );
        assert!(!reply.body.contains("Insiders"), "{}", reply.body);
        let stranger = get_page(&stack, Region::Us, "", &path).await;
        assert_eq!(stranger.status, 303, "{path}");
        assert!(stranger.location.starts_with("/auth?return_to="), "{path}");
    }
}

#[tokio::test]
async fn hostile_names_are_shown_as_text() {
    let stack = TestStack::start().await.unwrap();
    let (ws, admin) = admin_of(&stack, "Acme", "admin@acme.test").await;
    let scim = stack.scim(Region::Us, &ws.team_id, "").await;
    let (status, user) = scim
        .post(
            "/Users",
            &json!({
                "schemas": [USER], "userName": "eve@acme.test",
                "externalId": "\"><img src=x onerror=alert(2)>",
                "displayName": "<script>alert(1)</script>",
                "emails": [{ "value": "eve@acme.test", "primary": true }],
                "active": true
            }),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    let eve = user["id"].as_str().unwrap().to_owned();
    let g = group(&scim, "<b>Owners</b>", &[&eve]).await;

    for path in [
        "/people".to_owned(),
        "/people?q=script".to_owned(),
        format!("/people/{eve}"),
        "/groups".to_owned(),
        format!("/groups/{g}"),
    ] {
        let body = page(&stack, &admin, &path).await;
        assert!(
            !body.contains("<script>") && !body.contains("<img") && !body.contains("<b>"),
            "{path}: {body}"
        );
    }
    let body = page(&stack, &admin, "/people").await;
    assert!(
        body.contains("&lt;script&gt;alert(1)&lt;/script&gt;</a>"),
        "{body}"
    );
    assert!(body.contains("&lt;b&gt;Owners&lt;/b&gt;"), "{body}");
    let body = page(&stack, &admin, &format!("/people/{eve}")).await;
    assert!(
        body.contains("<h1>&lt;script&gt;alert(1)&lt;/script&gt;</h1>"),
        "{body}"
    );
    assert!(
        body.contains("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"),
        "{body}"
    );
    let body = page(&stack, &admin, &format!("/groups/{g}")).await;
    assert!(
        body.contains("<h1>&lt;b&gt;Owners&lt;/b&gt;</h1>"),
        "{body}"
    );
}
