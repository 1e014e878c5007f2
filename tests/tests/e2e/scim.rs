//! SCIM 2.0 as Okta (OKTA.md §1–5) and Entra drive it, through the gateway.

use closedloop_tests::harness::{Scim, TestStack, US_API, US_APP, send};
use closedloop_tests::region::Region;
use reqwest::Method;
use serde_json::{Value, json};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

async fn setup() -> (TestStack, Scim) {
    let stack = TestStack::start().await.unwrap();
    let ws = stack.workspace(Region::Us, "Acme", "admin@acme.test").await;
    let scim = stack.scim(Region::Us, &ws.team_id, "").await;
    (stack, scim)
}

/// What Okta POSTs to create a user (OKTA.md §1).
fn okta_user(email: &str, given: &str, family: &str) -> Value {
    json!({
        "schemas": [USER],
        "userName": email,
        "name": { "givenName": given, "familyName": family },
        "emails": [{ "primary": true, "value": email, "type": "work" }],
        "displayName": format!("{given} {family}"),
        "locale": "en-US",
        "externalId": format!("00u{}", email.len()),
        "groups": [],
        "password": "1mz050nq",
        "active": true
    })
}

fn assert_error(body: &Value, status: &str) {
    assert_eq!(body["schemas"][0], ERROR, "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn okta_user_lifecycle() {
    let (_stack, scim) = setup().await;
    // Existence check before create: an empty list, never 404.
    let (s, list) = scim
        .get("/Users?filter=userName%20eq%20%22jane%40acme.test%22&startIndex=1&count=100")
        .await;
    assert_eq!(s, 200);
    assert_eq!(list["totalResults"], 0);
    assert_eq!(list["Resources"], json!([]));

    let (s, user) = scim
        .post("/Users", &okta_user("jane@acme.test", "Jane", "Doe"))
        .await;
    assert_eq!(s, 201, "{user}");
    let id = user["id"].as_str().unwrap().to_owned();
    assert_eq!(user["active"], true);
    assert_eq!(user["userName"], "jane@acme.test");
    assert_eq!(user["schemas"][0], USER);
    assert!(user.get("password").is_none(), "password is never returned");
    assert_eq!(
        user["roles"][0]["display"], "Member",
        "new users are Members"
    );
    assert!(
        user["meta"]["location"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/Users/{id}"))
    );

    // Location header equals meta.location.
    let r = scim
        .request(Method::GET, &format!("/Users/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/scim+json");
    assert!(r.headers().contains_key("etag"));

    // userName is case-insensitive: the upper-cased name finds the user and conflicts.
    let (_, found) = scim
        .get("/Users?filter=userName%20eq%20%22JANE%40ACME.TEST%22")
        .await;
    assert_eq!(found["totalResults"], 1);
    assert_eq!(found["Resources"][0]["id"], id.as_str());
    let (s, dup) = scim
        .post("/Users", &okta_user("JANE@acme.test", "J", "D"))
        .await;
    assert_eq!(s, 409);
    assert_eq!(dup["scimType"], "uniqueness");
    assert_error(&dup, "409");

    // Profile update: GET then PUT the whole object, changed.
    let (_, mut current) = scim.get(&format!("/Users/{id}")).await;
    current["name"]["familyName"] = json!("Smith");
    let (s, updated) = scim.put(&format!("/Users/{id}"), &current).await;
    assert_eq!(s, 200, "{updated}");
    assert_eq!(updated["name"]["familyName"], "Smith");
    assert_eq!(
        updated["roles"][0]["display"], "Member",
        "PUT keeps roles it carried"
    );

    // Deactivate as Okta does: no path, value object.
    let deactivate = json!({ "schemas": [PATCH], "Operations": [{ "op": "replace", "value": { "active": false } }] });
    let (s, patched) = scim.patch(&format!("/Users/{id}"), &deactivate).await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(patched["active"], false);
    let (s, read) = scim.get(&format!("/Users/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(read["active"], false);

    // Reactivate as other IdPs do: "Replace", a path, a string boolean.
    let reactivate = json!({ "schemas": [PATCH], "Operations": [{ "op": "Replace", "path": "active", "value": "True" }] });
    let (s, patched) = scim.patch(&format!("/Users/{id}"), &reactivate).await;
    assert_eq!(s, 200, "{patched}");
    assert_eq!(patched["active"], true);

    // DELETE works for other clients: 204, then 404.
    assert_eq!(scim.delete(&format!("/Users/{id}")).await.0, 204);
    let (s, gone) = scim.get(&format!("/Users/{id}")).await;
    assert_eq!(s, 404);
    assert_error(&gone, "404");
}

#[tokio::test]
async fn okta_conformance_assertions() {
    let (_stack, scim) = setup().await;
    scim.post("/Users", &okta_user("a@acme.test", "Ann", "Ames"))
        .await;
    // 1. A page of one, with the ListResponse shape and integer paging fields.
    let (s, page) = scim.get("/Users?count=1&startIndex=1").await;
    assert_eq!(s, 200);
    assert_eq!(
        page["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:ListResponse"
    );
    assert!(
        page["totalResults"].is_u64()
            && page["startIndex"].is_u64()
            && page["itemsPerPage"].is_u64()
    );
    assert_eq!(page["itemsPerPage"], 1);
    let first = &page["Resources"][0];
    for field in ["id", "userName", "active"] {
        assert!(!first[field].is_null(), "{field} in {first}");
    }
    // 2. The same user by id.
    let (_, by_id) = scim
        .get(&format!("/Users/{}", first["id"].as_str().unwrap()))
        .await;
    assert_eq!(by_id["id"], first["id"]);
    // The Ann user: name and email fields present.
    let (_, ann) = scim
        .get("/Users?filter=userName%20eq%20%22a%40acme.test%22")
        .await;
    let ann = &ann["Resources"][0];
    assert_eq!(ann["name"]["familyName"], "Ames");
    assert_eq!(ann["name"]["givenName"], "Ann");
    assert_eq!(ann["emails"][0]["value"], "a@acme.test");
    // 3. Unknown userName or email: empty.
    let (_, none) = scim
        .get("/Users?filter=emails%20eq%20%22nobody%40acme.test%22")
        .await;
    assert_eq!(none["totalResults"], 0);
    // 4. Unknown ids.
    for id in [
        "010101001010101011001010101011",
        "00000000-0000-0000-0000-000000000000",
    ] {
        let (s, e) = scim.get(&format!("/Users/{id}")).await;
        assert_eq!(s, 404);
        assert_error(&e, "404");
    }
    // 6. Groups.
    assert_eq!(scim.get("/Groups").await.0, 200);
    // 7. A non-token.
    let no_token = Scim {
        token: String::new(),
        ..scim.clone()
    };
    let (s, e) = send(
        no_token
            .request(Method::GET, "/Users")
            .header("authorization", "non-token"),
    )
    .await;
    assert_eq!(s, 401);
    assert_error(&e, "401");
    // Two Authorization headers are not a credential.
    let (s, e) = send(
        scim.request(Method::GET, "/Users")
            .header("authorization", "non-token"),
    )
    .await;
    assert_eq!(s, 401);
    assert_error(&e, "401");
    // 8. Roles, one per page.
    let (s, roles) = scim.get("/Roles?count=1&startIndex=1").await;
    assert_eq!(s, 200);
    assert_eq!(roles["itemsPerPage"], 1);
    assert_eq!(roles["totalResults"], 3);
    assert_eq!(
        roles["Resources"][0]["schemas"][0],
        "urn:okta:scim:schemas:core:1.0:Role"
    );
}

#[tokio::test]
async fn entitlement_discovery_and_role_assignment() {
    let (stack, scim) = setup().await;
    let (s, types) = scim.get("/ResourceTypes").await;
    assert_eq!(s, 200);
    let role = types["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "Role")
        .cloned()
        .expect("Role resource type");
    assert_eq!(role["endpoint"], "/Roles");
    assert_eq!(role["schema"], "urn:okta:scim:schemas:core:1.0:Role");
    let (_, roles) = scim.get("/Roles").await;
    let admin = roles["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["displayName"] == "Admin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, by_id) = scim.get(&format!("/Roles/{admin}")).await;
    assert_eq!(
        by_id["description"].as_str().map(str::is_empty),
        Some(false)
    );

    let mut body = okta_user("boss@acme.test", "Bo", "Ss");
    body["roles"] = json!([{ "value": admin }]);
    let (s, boss) = scim.post("/Users", &body).await;
    assert_eq!(s, 201, "{boss}");
    assert_eq!(
        boss["roles"],
        json!([{ "value": admin, "display": "Admin" }])
    );
    let boss_id = boss["id"].as_str().unwrap().to_owned();

    // Okta's unconfirmed role PATCH forms: replace roles, remove by value filter.
    let (_, member) = scim
        .get("/Roles?filter=displayName%20eq%20%22Member%22")
        .await;
    let member = member["Resources"][0]["id"].as_str().unwrap().to_owned();
    let add = json!({ "schemas": [PATCH], "Operations": [{ "op": "add", "path": "roles", "value": [{ "value": member }] }] });
    let (_, u) = scim.patch(&format!("/Users/{boss_id}"), &add).await;
    assert_eq!(u["roles"].as_array().unwrap().len(), 2, "{u}");
    let remove = json!({ "schemas": [PATCH], "Operations": [{ "op": "remove", "path": format!("roles[value eq \"{admin}\"]") }] });
    let (_, u) = scim.patch(&format!("/Users/{boss_id}"), &remove).await;
    assert_eq!(
        u["roles"],
        json!([{ "value": member, "display": "Member" }])
    );

    // The role decides what the user may do.
    let team = shared::ids::TeamId::parse(&scim.team_id).unwrap();
    let uid = uuid::Uuid::parse_str(&boss_id).unwrap();
    let client = stack.worker(Region::Us).state.pg.get().await.unwrap();
    assert!(
        !region_worker::store::roles::user_has(&client, team, uid, "admin")
            .await
            .unwrap()
    );

    let unknown = json!({ "schemas": [PATCH], "Operations": [{ "op": "add", "path": "roles", "value": [{ "value": "superuser" }] }] });
    let (s, e) = scim.patch(&format!("/Users/{boss_id}"), &unknown).await;
    assert_eq!(s, 400);
    assert_eq!(e["scimType"], "invalidValue");
}

#[tokio::test]
async fn group_push_with_membership_changes() {
    let (_stack, scim) = setup().await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let (_, u) = scim
            .post(
                "/Users",
                &okta_user(&format!("u{i}@acme.test"), "U", &i.to_string()),
            )
            .await;
        ids.push(u["id"].as_str().unwrap().to_owned());
    }
    let (s, g) = scim
        .post(
            "/Groups",
            &json!({ "schemas": [GROUP], "displayName": "Engineering", "members": [] }),
        )
        .await;
    assert_eq!(s, 201, "{g}");
    let gid = g["id"].as_str().unwrap().to_owned();
    let (_, found) = scim
        .get("/Groups?filter=displayName%20eq%20%22Engineering%22&startIndex=1&count=100")
        .await;
    assert_eq!(found["totalResults"], 1);

    // Rename carrying the unchanged id (sent on every push).
    let rename = json!({ "schemas": [PATCH], "Operations": [{ "op": "replace", "value": { "id": gid, "displayName": "Eng" } }] });
    assert_eq!(scim.patch(&format!("/Groups/{gid}"), &rename).await.0, 204);
    // Add members, then remove one by value filter.
    let add = json!({ "schemas": [PATCH], "Operations": [{ "op": "add", "path": "members",
        "value": [{ "value": ids[0], "display": "u0" }, { "value": ids[1] }, { "value": ids[2] }] }] });
    assert_eq!(scim.patch(&format!("/Groups/{gid}"), &add).await.0, 204);
    let remove = json!({ "schemas": [PATCH], "Operations": [{ "op": "remove", "path": format!("members[value eq \"{}\"]", ids[0]) }] });
    assert_eq!(scim.patch(&format!("/Groups/{gid}"), &remove).await.0, 204);
    // Entra's removal by value array.
    let entra = json!({ "schemas": [PATCH], "Operations": [{ "op": "Remove", "path": "members", "value": [{ "value": ids[1] }] }] });
    assert_eq!(scim.patch(&format!("/Groups/{gid}"), &entra).await.0, 204);
    let (_, g) = scim.get(&format!("/Groups/{gid}")).await;
    assert_eq!(g["displayName"], "Eng");
    let members: Vec<&str> = g["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    assert_eq!(members, vec![ids[2].as_str()]);
    // The user shows the group.
    let (_, u2) = scim.get(&format!("/Users/{}", ids[2])).await;
    assert_eq!(u2["groups"][0]["value"], gid.as_str());

    // Full push replaces the set.
    let full = json!({ "schemas": [PATCH], "Operations": [{ "op": "replace", "path": "members", "value": [{ "value": ids[3] }, { "value": ids[0] }] }] });
    assert_eq!(scim.patch(&format!("/Groups/{gid}"), &full).await.0, 204);
    let (_, g) = scim.get(&format!("/Groups/{gid}")).await;
    assert_eq!(g["members"].as_array().unwrap().len(), 2);
    // Listing without members.
    let (_, listed) = scim.get("/Groups?excludedAttributes=members").await;
    assert!(listed["Resources"][0].get("members").is_none());
    assert_eq!(listed["Resources"][0]["displayName"], "Eng");
    // An unknown member is refused, and nothing of the request applies.
    let bad = json!({ "schemas": [PATCH], "Operations": [
        { "op": "replace", "value": { "displayName": "Renamed" } },
        { "op": "add", "path": "members", "value": [{ "value": "9c0c0b7e-0000-4000-8000-000000000000" }] }] });
    let (s, e) = scim.patch(&format!("/Groups/{gid}"), &bad).await;
    assert_eq!(s, 400, "{e}");
    let (_, g) = scim
        .get(&format!("/Groups/{gid}?attributes=displayName"))
        .await;
    assert_eq!(g["displayName"], "Eng");
    assert!(g.get("members").is_none());

    assert_eq!(scim.delete(&format!("/Groups/{gid}")).await.0, 204);
    assert_eq!(scim.get(&format!("/Groups/{gid}")).await.0, 404);
}

#[tokio::test]
async fn patch_is_atomic_and_bad_input_is_a_scim_400() {
    let (_stack, scim) = setup().await;
    let (_, u) = scim
        .post("/Users", &okta_user("x@acme.test", "X", "Y"))
        .await;
    let id = u["id"].as_str().unwrap().to_owned();
    let mixed = json!({ "schemas": [PATCH], "Operations": [
        { "op": "replace", "path": "displayName", "value": "Changed" },
        { "op": "replace", "path": "id", "value": "other" }] });
    let (s, e) = scim.patch(&format!("/Users/{id}"), &mixed).await;
    assert_eq!(s, 400);
    assert_eq!(e["scimType"], "mutability");
    let (_, now) = scim.get(&format!("/Users/{id}")).await;
    assert_eq!(
        now["displayName"], "X Y",
        "nothing of a failed PATCH applies"
    );

    let no_target = json!({ "schemas": [PATCH], "Operations": [{ "op": "remove" }] });
    assert_eq!(
        scim.patch(&format!("/Users/{id}"), &no_target).await.1["scimType"],
        "noTarget"
    );
    let work_email = json!({ "schemas": [PATCH], "Operations": [{ "op": "replace", "path": "emails[type eq \"work\"].value", "value": "x2@acme.test" }] });
    let (s, u) = scim.patch(&format!("/Users/{id}"), &work_email).await;
    assert_eq!(s, 200, "{u}");
    assert_eq!(u["emails"][0]["value"], "x2@acme.test");

    // Malformed JSON, wrong schemas, wrong types, bad filters: 400 with a scimType.
    let raw = send(
        scim.request(Method::POST, "/Users")
            .header("content-type", "application/scim+json")
            .body("{\"userName\": "),
    )
    .await;
    assert_eq!(raw.0, 400);
    assert_eq!(raw.1["scimType"], "invalidSyntax");
    let (s, e) = scim
        .post("/Users", &json!({ "userName": "no-schemas@acme.test" }))
        .await;
    assert_eq!((s, e["scimType"].as_str()), (400, Some("invalidSyntax")));
    let (s, e) = scim
        .post("/Users", &json!({ "schemas": [USER], "userName": 42 }))
        .await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (400, Some("invalidValue")),
        "{e}"
    );
    let (s, e) = scim
        .post(
            "/Users",
            &json!({ "schemas": [USER], "userName": "a@b.co", "active": "maybe" }),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    let (s, e) = scim.get("/Users?filter=userName%20eq").await;
    assert_eq!((s, e["scimType"].as_str()), (400, Some("invalidFilter")));
    let deep = format!("/Users?filter={}", "(".repeat(200));
    assert_eq!(scim.get(&deep).await.0, 400);
    let big = "x".repeat(9 * 1024 * 1024);
    let (s, e) = scim
        .post("/Users", &json!({ "schemas": [USER], "userName": big }))
        .await;
    assert_eq!(s, 413, "{e}");
    let (s, _) = scim.get("/Users?count=abc").await;
    assert_eq!(s, 400);
    // None of it wrote anything.
    let (_, all) = scim.get("/Users").await;
    assert_eq!(all["totalResults"], 2, "the admin and x@acme.test only");
}

#[tokio::test]
async fn etags_paging_and_projection() {
    let (_stack, scim) = setup().await;
    for i in 0..5 {
        scim.post(
            "/Users",
            &okta_user(&format!("p{i}@acme.test"), "P", &i.to_string()),
        )
        .await;
    }
    // Stable paging with exact totals (the admin is user 1).
    let (_, p1) = scim.get("/Users?startIndex=1&count=4").await;
    let (_, p2) = scim.get("/Users?startIndex=5&count=4").await;
    assert_eq!(p1["totalResults"], 6);
    assert_eq!(p1["itemsPerPage"], 4);
    assert_eq!(p2["itemsPerPage"], 2);
    assert_eq!(p2["startIndex"], 5);
    let mut seen: Vec<String> = p1["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .chain(p2["Resources"].as_array().unwrap())
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 6);
    // A filtered list's total is exact on every page: counted when the page is full
    // or past the end, read off the page when it is not full.
    let sw = "/Users?filter=userName%20sw%20%22p%22&attributes=userName";
    for (paging, total, shown) in [
        ("startIndex=1&count=2", 5, 2),
        ("startIndex=4&count=2", 5, 2),
        ("startIndex=5&count=2", 5, 1),
        ("startIndex=1&count=10", 5, 5),
        ("startIndex=9&count=2", 5, 0),
        ("count=0", 5, 0),
    ] {
        let (status, page) = scim.get(&format!("{sw}&{paging}")).await;
        assert_eq!(status, 200, "{paging}: {page}");
        assert_eq!(page["totalResults"], total, "{paging}: {page}");
        assert_eq!(page["itemsPerPage"], shown, "{paging}: {page}");
    }
    let (_, zero) = scim.get("/Users?count=-3&startIndex=-1").await;
    assert_eq!(
        (zero["itemsPerPage"].as_u64(), zero["startIndex"].as_u64()),
        (Some(0), Some(1))
    );
    let (_, capped) = scim.get("/Users?count=100000").await;
    assert_eq!(capped["itemsPerPage"], 6);

    // attributes / excludedAttributes.
    let (_, slim) = scim.get("/Users?attributes=userName&count=1").await;
    let u = &slim["Resources"][0];
    assert!(u["id"].is_string() && u["userName"].is_string());
    assert!(u.get("name").is_none() && u.get("emails").is_none());
    let (_, no_name) = scim
        .get("/Users?excludedAttributes=name,emails&count=1")
        .await;
    assert!(no_name["Resources"][0].get("name").is_none());
    assert!(no_name["Resources"][0]["userName"].is_string());

    // ETags.
    let id = p2["Resources"][0]["id"].as_str().unwrap().to_owned();
    let r = scim
        .request(Method::GET, &format!("/Users/{id}"))
        .send()
        .await
        .unwrap();
    let tag = r.headers()["etag"].to_str().unwrap().to_owned();
    let r = scim
        .request(Method::GET, &format!("/Users/{id}"))
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let stale = send(
        scim.request(Method::PATCH, &format!("/Users/{id}"))
            .header("if-match", "W/\"999\"")
            .json(&json!({ "schemas": [PATCH], "Operations": [{ "op": "replace", "path": "displayName", "value": "Z" }] })),
    )
    .await;
    assert_eq!(stale.0, 412);
    let fresh = send(
        scim.request(Method::PATCH, &format!("/Users/{id}"))
            .header("if-match", &tag)
            .json(&json!({ "schemas": [PATCH], "Operations": [{ "op": "replace", "path": "displayName", "value": "Z" }] })),
    )
    .await;
    assert_eq!(fresh.0, 200);
    assert_ne!(fresh.1["meta"]["version"], json!(tag));
}

#[tokio::test]
async fn scopes_and_discovery() {
    let (stack, scim) = setup().await;
    let read_only = stack.scim(Region::Us, &scim.team_id, "scim.read").await;
    let (s, e) = read_only
        .post("/Users", &okta_user("r@acme.test", "R", "O"))
        .await;
    assert_eq!(s, 403);
    assert_error(&e, "403");
    assert_eq!(read_only.get("/Users").await.0, 200);
    assert_eq!(read_only.get("/Roles").await.0, 403);
    let entitlements = stack
        .scim(Region::Us, &scim.team_id, "entitlements.read")
        .await;
    assert_eq!(entitlements.get("/Roles").await.0, 200);
    assert_eq!(entitlements.get("/ResourceTypes").await.0, 200);
    assert_eq!(entitlements.get("/Users").await.0, 403);

    let (s, spc) = scim.get("/ServiceProviderConfig").await;
    assert_eq!(s, 200);
    assert_eq!(spc["patch"]["supported"], true);
    assert_eq!(spc["bulk"]["supported"], false);
    assert_eq!(spc["filter"]["maxResults"], 200);
    let (_, schemas) = scim.get("/Schemas").await;
    let ids: Vec<&str> = schemas["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&USER) && ids.contains(&GROUP), "{ids:?}");
    let (s, _) = scim.get(&format!("/Schemas/{USER}")).await;
    assert_eq!(s, 200);
    assert_eq!(scim.get("/Schemas?filter=id%20eq%20%22x%22").await.0, 403);
    assert_eq!(scim.get("/Bulk").await.0, 501);
}

#[tokio::test]
async fn a_method_an_endpoint_does_not_answer_is_a_scim_405_with_allow() {
    let (stack, scim) = setup().await;
    for (method, path, allow) in [
        (Method::POST, "/Roles", "GET,HEAD"),
        (Method::DELETE, "/ServiceProviderConfig", "GET,HEAD"),
        (Method::DELETE, "/Users", "GET,HEAD,POST"),
    ] {
        let r = scim.request(method.clone(), path).send().await.unwrap();
        assert_eq!(r.status(), 405, "{method} {path}");
        let header = |name| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(header("allow").as_deref(), Some(allow), "{method} {path}");
        assert_eq!(
            header("content-type").as_deref(),
            Some("application/scim+json"),
            "{method} {path}"
        );
        assert_error(&r.json::<Value>().await.unwrap(), "405");
    }
    // Authentication still answers first: no token is a 401, not a 405.
    let anonymous = scim.with_token("");
    let (s, e) = send(anonymous.request(Method::POST, "/Roles")).await;
    assert_eq!(s, 401, "{e}");
    // Other routes of the API host keep the framework's 405.
    let r = stack
        .get(US_API, "/api/okta/scim/oauth/token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert!(r.headers().get("allow").is_some());
    assert!(r.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn deactivation_ends_the_users_sessions_at_once() {
    let stack = TestStack::start().await.unwrap();
    let ws = stack.workspace(Region::Us, "Acme", "admin@acme.test").await;
    let cookie = stack.sign_in_with_link(Region::Us, &ws).await;
    let home = stack
        .get(US_APP, "/")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), 200);

    let scim = stack.scim(Region::Us, &ws.team_id, "").await;
    // Okta provisions the admin's email: linked to the existing user, no conflict.
    // Without `roles` the admin stays Admin (as a `PUT` without `roles` keeps them).
    let (s, linked) = scim
        .post("/Users", &okta_user("admin@acme.test", "Ad", "Min"))
        .await;
    assert_eq!(s, 201, "{linked}");
    assert_eq!(linked["id"], ws.admin_user_id.as_str());
    assert_eq!(
        linked["roles"],
        json!([{ "value": linked["roles"][0]["value"], "display": "Admin" }]),
        "linking without roles keeps the user's roles"
    );
    let (_, read) = scim.get(&format!("/Users/{}", ws.admin_user_id)).await;
    assert_eq!(read["roles"], linked["roles"], "{read}");

    let off = json!({ "schemas": [PATCH], "Operations": [{ "op": "replace", "value": { "active": false } }] });
    assert_eq!(
        scim.patch(&format!("/Users/{}", ws.admin_user_id), &off)
            .await
            .0,
        200
    );
    let home = stack
        .get(US_APP, "/")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), 303, "the very next request is refused");
}

#[tokio::test]
async fn racing_clients_lose_no_member_and_create_no_duplicate() {
    let (_stack, scim) = setup().await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let (_, u) = scim
            .post(
                "/Users",
                &okta_user(&format!("m{i}@acme.test"), "M", &i.to_string()),
            )
            .await;
        ids.push(u["id"].as_str().unwrap().to_owned());
    }
    let (_, g) = scim
        .post(
            "/Groups",
            &json!({ "schemas": [GROUP], "displayName": "Race" }),
        )
        .await;
    let gid = g["id"].as_str().unwrap().to_owned();
    let adds = ids.iter().map(|id| {
        let scim = scim.clone();
        let gid = gid.clone();
        let body = json!({ "schemas": [PATCH], "Operations": [{ "op": "add", "path": "members", "value": [{ "value": id }] }] });
        tokio::spawn(async move { scim.patch(&format!("/Groups/{gid}"), &body).await.0 })
    });
    for h in adds.collect::<Vec<_>>() {
        assert_eq!(h.await.unwrap(), 204);
    }
    let (_, g) = scim.get(&format!("/Groups/{gid}")).await;
    assert_eq!(g["members"].as_array().unwrap().len(), 20, "no member lost");

    let creates = (0..8).map(|_| {
        let scim = scim.clone();
        tokio::spawn(async move {
            scim.post("/Users", &okta_user("same@acme.test", "S", "Ame"))
                .await
                .0
        })
    });
    let mut statuses = Vec::new();
    for h in creates.collect::<Vec<_>>() {
        statuses.push(h.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, vec![201, 409, 409, 409, 409, 409, 409, 409]);
}

#[tokio::test]
async fn rate_limit_answers_429_with_an_integer_retry_after() {
    use closedloop_tests::harness::{RegionStores, TestWorker, US_API, client, worker_config};
    let stores = RegionStores::fresh().await.unwrap();
    let mut config = worker_config(Region::Us, &stores);
    config.scim_rate_limit = region_worker::config::RateLimit {
        per_second: 1,
        burst: 3,
    };
    let worker = TestWorker::start(config).await.unwrap();
    let ws = region_worker::cli::workspace_create(&worker.state, "Acme", "a@acme.test")
        .await
        .unwrap();
    let team = &ws.team_id.to_string();
    let token = region_worker::cli::token_issue(&worker.state, team, "scim", "", 1)
        .await
        .unwrap()
        .token;
    let http = client();
    let mut limited = None;
    for _ in 0..10 {
        let r = http
            .get(format!("{}/api/scim/v2/{team}/Users", worker.url()))
            .header("host", US_API)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("the burst of 3 is exceeded within 10 requests");
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    let body: Value = r.json().await.unwrap();
    assert_error(&body, "429");
}

/// Pages read in order use keyset cursors; a deletion invalidates them, and every
/// page still matches what OFFSET paging returns.
#[tokio::test]
async fn sequential_paging_matches_offset_paging_across_deletes() {
    let (_stack, scim) = setup().await;
    let mut ids = Vec::new();
    for i in 0..9 {
        let (_, u) = scim
            .post(
                "/Users",
                &okta_user(&format!("s{i}@acme.test"), "S", &i.to_string()),
            )
            .await;
        ids.push(u["id"].as_str().unwrap().to_owned());
    }
    async fn walk(scim: &Scim, count: usize) -> Vec<String> {
        let mut seen = Vec::new();
        let mut start = 1;
        loop {
            let (_, page) = scim
                .get(&format!(
                    "/Users?startIndex={start}&count={count}&attributes=id"
                ))
                .await;
            let items = page["Resources"].as_array().unwrap().clone();
            assert!(page["totalResults"].as_u64().unwrap() as usize >= seen.len() + items.len());
            if items.is_empty() {
                return seen;
            }
            seen.extend(items.iter().map(|u| u["id"].as_str().unwrap().to_owned()));
            start += items.len();
        }
    }
    let first = walk(&scim, 3).await;
    assert_eq!(first.len(), 10, "admin + 9");
    // Again: now every page after the first is read by cursor.
    assert_eq!(walk(&scim, 3).await, first);
    // Pages out of order (no cursor for them) agree too.
    let (_, p3) = scim.get("/Users?startIndex=7&count=3&attributes=id").await;
    let p3: Vec<String> = p3["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(p3, first[6..9].to_vec());
    // Between two known positions: start from the nearer one and skip the rest.
    let (_, p8) = scim.get("/Users?startIndex=8&count=2&attributes=id").await;
    let p8: Vec<String> = p8["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(p8, first[7..9].to_vec());
    // A deletion shifts every later position: the cursors must not be trusted.
    assert_eq!(scim.delete(&format!("/Users/{}", ids[1])).await.0, 204);
    let after: Vec<String> = first.iter().filter(|id| **id != ids[1]).cloned().collect();
    let (_, p2) = scim.get("/Users?startIndex=4&count=3&attributes=id").await;
    let p2: Vec<String> = p2["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(p2, after[3..6].to_vec());
    assert_eq!(walk(&scim, 3).await, after);
    let (_, total) = scim.get("/Users?count=0").await;
    assert_eq!(total["totalResults"], 9);
}
