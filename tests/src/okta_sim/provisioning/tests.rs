//! The provisioning engine against the real SCIM API (a two-region stack through the
//! gateway), and against a recording server for headers and `429` handling.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::{
    OKTA_USER_AGENT, PATCH_URN, Provisioned, ProvisioningError, RoleChange, ScimAuth, ScimExchange,
    ScimSettings, Sleeper, USER_URN,
};
use crate::harness::{RegionStores, TestWorker, US_API, worker_config};
use crate::okta_sim::directory::{NewUser, UserId};
use crate::okta_sim::testkit::{Capture, ScimSetup};
use crate::okta_sim::upstream::Upstream;
use crate::okta_sim::{AppHandle, OktaSim, lock};
use crate::region::Region;

/// `(method, path)` of each exchange.
fn calls(log: &[ScimExchange]) -> Vec<(String, String)> {
    log.iter()
        .map(|e| (e.method.clone(), e.path.clone()))
        .collect()
}

fn call(method: &str, path: &str) -> (String, String) {
    (method.to_owned(), path.to_owned())
}

async fn connected(setup: &ScimSetup) -> (OktaSim, AppHandle) {
    let sim = OktaSim::start().await.unwrap();
    let app = sim.app();
    app.connect_scim(setup.settings()).unwrap();
    (sim, app)
}

fn deactivate(active: bool) -> Value {
    json!({ "schemas": [PATCH_URN], "Operations": [{ "op": "replace", "value": { "active": active } }] })
}

#[tokio::test]
async fn user_lifecycle_as_okta_drives_it() {
    let setup = ScimSetup::start().await;
    let (sim, app) = connected(&setup).await;
    let jane = sim
        .add_user(NewUser::new("jane@acme.test", "Jane", "Doe"))
        .unwrap();

    // Assign: existence check, then POST.
    let Provisioned::Created(id) = app.assign(&jane).await.unwrap() else {
        panic!("created")
    };
    let log = app.scim_log();
    assert_eq!(
        calls(&log),
        [
            call(
                "GET",
                "/Users?filter=userName%20eq%20%22jane%40acme.test%22&startIndex=1&count=100"
            ),
            call("POST", "/Users"),
        ]
    );
    assert_eq!((log[0].status, log[1].status), (200, 201));
    let posted = log[1].request.as_ref().unwrap();
    assert_eq!(posted["schemas"], json!([USER_URN]));
    assert_eq!(posted["externalId"], jane.as_str());
    assert_eq!(posted["active"], true);
    assert_eq!(posted["groups"], json!([]));
    assert!(posted["password"].is_string());
    let (_, user) = setup.scim.get(&format!("/Users/{id}")).await;
    assert_eq!(user["userName"], "jane@acme.test");
    assert_eq!(user["name"]["givenName"], "Jane");
    assert_eq!(
        user["roles"][0]["display"], "Member",
        "new users are Members"
    );
    assert_eq!(app.scim_id(&jane), Some(id.clone()));

    // Profile change: GET then PUT of the whole object.
    app.clear_scim_log();
    sim.update_profile(&jane, |p| p.family_name = "Smith".into())
        .await
        .unwrap();
    let log = app.scim_log();
    let path = format!("/Users/{id}");
    assert_eq!(calls(&log), [call("GET", &path), call("PUT", &path)]);
    let put = log[1].request.as_ref().unwrap();
    assert_eq!(put["id"], id.as_str(), "the object read, changed");
    assert_eq!(put["name"]["familyName"], "Smith");
    let (_, user) = setup.scim.get(&path).await;
    assert_eq!(user["displayName"], "Jane Smith");

    // Unassign: active false, never DELETE; the user is still readable.
    app.clear_scim_log();
    app.unassign(&jane).await.unwrap();
    let log = app.scim_log();
    assert_eq!(calls(&log), [call("PATCH", &path)]);
    assert_eq!(log[0].request, Some(deactivate(false)));
    let (s, user) = setup.scim.get(&path).await;
    assert_eq!((s, user["active"].as_bool()), (200, Some(false)));
    // Profile changes of an unassigned user are not pushed.
    app.clear_scim_log();
    sim.update_profile(&jane, |p| p.given_name = "Janet".into())
        .await
        .unwrap();
    assert!(app.scim_log().is_empty());

    // Reassign: the link is kept, active true again.
    assert_eq!(
        app.assign(&jane).await.unwrap(),
        Provisioned::Reactivated(id.clone())
    );
    assert_eq!(app.scim_log()[0].request, Some(deactivate(true)));
    assert_eq!(setup.scim.get(&path).await.1["active"], true);

    // Org deactivation and reactivation.
    sim.deactivate_user(&jane).await.unwrap();
    assert_eq!(setup.scim.get(&path).await.1["active"], false);
    assert!(matches!(
        app.assign(&jane).await,
        Err(ProvisioningError::UserInactive(_))
    ));
    sim.reactivate_user(&jane).await.unwrap();
    assert_eq!(setup.scim.get(&path).await.1["active"], true);

    // A user who already exists on our side (the workspace admin) is linked, not created.
    app.clear_scim_log();
    let admin = sim
        .add_user(NewUser::new(&setup.admin_email.to_uppercase(), "Ad", "Min"))
        .unwrap();
    let linked = app.assign(&admin).await.unwrap();
    assert!(matches!(linked, Provisioned::Linked(_)), "{linked:?}");
    assert_eq!(app.scim_log().len(), 1, "the existence check only");
}

#[tokio::test]
async fn requests_carry_oktas_headers_and_encoding() {
    let capture = Capture::start(|c, _| {
        let body = if c.method == "GET" {
            json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 0, "Resources": [] })
        } else {
            json!({ "id": "u-1" })
        };
        (if c.method == "POST" { 201 } else { 200 }, vec![], body.to_string())
    })
    .await;
    let sim = OktaSim::start().await.unwrap();
    let app = sim.app();
    let base = Upstream::via("https://api.closedloop.sh/api/scim/v2/t-1", &capture.url).unwrap();
    app.connect_scim(ScimSettings::new(base, ScimAuth::bearer("tok-1")))
        .unwrap();
    let u = sim
        .add_user(NewUser::new("o'neil+x@acme.test", "O", "N"))
        .unwrap();
    assert_eq!(
        app.assign(&u).await.unwrap(),
        Provisioned::Created(crate::okta_sim::directory::ScimId::new("u-1"))
    );
    let reqs = capture.requests();
    assert_eq!(
        reqs[0].uri,
        "/api/scim/v2/t-1/Users?filter=userName%20eq%20%22o%27neil%2Bx%40acme.test%22&startIndex=1&count=100"
    );
    for r in &reqs {
        assert_eq!(r.headers["user-agent"], OKTA_USER_AGENT);
        assert_eq!(r.headers["authorization"], "Bearer tok-1");
        assert_eq!(r.headers["host"], "api.closedloop.sh");
        assert_eq!(r.headers["accept"], "application/scim+json");
    }
    assert_eq!(
        reqs[1].headers["content-type"],
        "application/json; charset=utf-8"
    );
    assert!(reqs[0].headers.get("content-type").is_none());
}

#[tokio::test]
async fn group_push_renames_membership_and_delete() {
    let setup = ScimSetup::start().await;
    let (sim, app) = connected(&setup).await;
    let mut users: Vec<UserId> = Vec::new();
    let mut ids = Vec::new();
    for i in 0..4 {
        let u = sim
            .add_user(NewUser::new(
                &format!("u{i}@acme.test"),
                "U",
                &i.to_string(),
            ))
            .unwrap();
        if i < 3 {
            ids.push(app.assign(&u).await.unwrap().scim_id().unwrap().clone());
        }
        users.push(u);
    }
    let eng = sim.add_group("Engineering");
    sim.add_to_group(&eng, &users[0]).await.unwrap();
    sim.add_to_group(&eng, &users[1]).await.unwrap();
    // u3 is a member but not assigned: never pushed.
    sim.add_to_group(&eng, &users[3]).await.unwrap();

    app.clear_scim_log();
    let gid = app.push_group(&eng).await.unwrap();
    let log = app.scim_log();
    let gpath = format!("/Groups/{gid}");
    assert_eq!(
        calls(&log),
        [
            call(
                "GET",
                "/Groups?filter=displayName%20eq%20%22Engineering%22&startIndex=1&count=100"
            ),
            call("POST", "/Groups"),
            call("PATCH", &gpath),
        ]
    );
    assert_eq!(
        log[1].request,
        Some(
            json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Engineering", "members": [] })
        )
    );
    let members = |g: &Value| -> Vec<String> {
        let mut m: Vec<String> = g["members"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| m["value"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        m.sort();
        m
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let (_, g) = setup.scim.get(&gpath).await;
    assert_eq!(
        members(&g),
        sorted(vec![ids[0].to_string(), ids[1].to_string()])
    );

    // Rename: the PATCH carries the group's own id.
    app.clear_scim_log();
    sim.rename_group(&eng, "Eng").await.unwrap();
    assert_eq!(
        app.scim_log()[0].request,
        Some(
            json!({ "schemas": [PATCH_URN], "Operations": [{ "op": "replace", "value": { "id": gid.as_str(), "displayName": "Eng" } }] })
        )
    );
    // Membership: add one, remove one by value filter.
    sim.add_to_group(&eng, &users[2]).await.unwrap();
    sim.remove_from_group(&eng, &users[0]).await.unwrap();
    let log = app.scim_log();
    assert_eq!(log.len(), 3);
    assert_eq!(
        log[1].request.as_ref().unwrap()["Operations"][0]["op"],
        "add"
    );
    assert_eq!(
        log[2].request.as_ref().unwrap()["Operations"][0]["path"],
        format!("members[value eq \"{}\"]", ids[0])
    );
    let (_, g) = setup.scim.get(&gpath).await;
    assert_eq!(g["displayName"], "Eng");
    assert_eq!(
        members(&g),
        sorted(vec![ids[1].to_string(), ids[2].to_string()])
    );

    // A later push: rename and a full replace of members.
    app.clear_scim_log();
    assert_eq!(app.push_group(&eng).await.unwrap(), gid);
    let log = app.scim_log();
    assert_eq!(calls(&log), [call("PATCH", &gpath), call("PATCH", &gpath)]);
    assert_eq!(
        log[1].request.as_ref().unwrap()["Operations"][0]["op"],
        "replace"
    );
    assert_eq!(
        log[1].request.as_ref().unwrap()["Operations"][0]["path"],
        "members"
    );

    // A group that already exists on our side is linked by name.
    let (_, ops) = setup
        .scim
        .post("/Groups", &json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Ops" }))
        .await;
    let ops_group = sim.add_group("Ops");
    app.clear_scim_log();
    let linked = app.push_group(&ops_group).await.unwrap();
    assert_eq!(linked.as_str(), ops["id"].as_str().unwrap());
    assert!(app.scim_log().iter().all(|e| e.method != "POST"));

    // Unpush without delete sends nothing; deleting the group deletes it remotely.
    app.clear_scim_log();
    app.unpush_group(&ops_group, false).await.unwrap();
    assert!(app.scim_log().is_empty());
    sim.delete_group(&eng).await.unwrap();
    assert_eq!(calls(&app.scim_log()), [call("DELETE", &gpath)]);
    assert_eq!(setup.scim.get(&gpath).await.0, 404);
    assert!(app.group_scim_id(&eng).is_none());
}

#[tokio::test]
async fn import_pages_through_every_user_and_group() {
    let setup = ScimSetup::start().await;
    let sim = OktaSim::start().await.unwrap();
    let app = sim.app();
    let mut settings = setup.settings();
    settings.page_size = 2;
    app.connect_scim(settings).unwrap();
    for i in 0..4 {
        let u = sim
            .add_user(NewUser::new(
                &format!("p{i}@acme.test"),
                "P",
                &i.to_string(),
            ))
            .unwrap();
        app.assign(&u).await.unwrap();
    }
    app.clear_scim_log();
    let users = app.import_users().await.unwrap();
    assert_eq!(users.len(), 5, "four and the admin");
    let mut ids: Vec<&str> = users.iter().map(|u| u["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 5, "no user twice across pages");
    assert_eq!(
        calls(&app.scim_log()),
        [
            call("GET", "/Users?startIndex=1&count=2"),
            call("GET", "/Users?startIndex=3&count=2"),
            call("GET", "/Users?startIndex=5&count=2"),
        ]
    );
    let g = sim.add_group("G");
    app.push_group(&g).await.unwrap();
    assert_eq!(app.import_groups().await.unwrap().len(), 1);
}

#[tokio::test]
async fn entitlement_discovery_and_role_changes() {
    let setup = ScimSetup::start().await;
    let (sim, app) = connected(&setup).await;
    let found = app.discover_entitlements().await.unwrap();
    let log = app.scim_log();
    assert_eq!(log[0].path, "/ResourceTypes");
    assert_eq!(log[1].path, "/Roles?startIndex=1&count=100");
    assert_eq!(found.resource_types.len(), 1);
    assert_eq!(found.resource_types[0]["endpoint"], "/Roles");
    let roles = &found.values["Role"];
    assert_eq!(roles.len(), 3);
    let role = |name: &str| -> String {
        roles
            .iter()
            .find(|r| r["displayName"] == name)
            .unwrap_or_else(|| panic!("role {name}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (admin, member) = (role("Admin"), role("Member"));

    let jane = sim
        .add_user(NewUser::new("jane@acme.test", "Jane", "Doe"))
        .unwrap();
    assert!(matches!(
        app.change_roles(&jane, &RoleChange::Grant(admin.clone()))
            .await,
        Err(ProvisioningError::NotProvisioned(_))
    ));
    app.assign(&jane).await.unwrap();
    let values = |u: &Value| -> Vec<String> {
        let mut v: Vec<String> = u["roles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["value"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    let u = app
        .change_roles(&jane, &RoleChange::Grant(admin.clone()))
        .await
        .unwrap();
    let mut both = vec![admin.clone(), member.clone()];
    both.sort();
    assert_eq!(values(&u), both);
    let u = app
        .change_roles(&jane, &RoleChange::Revoke(member.clone()))
        .await
        .unwrap();
    assert_eq!(values(&u), std::slice::from_ref(&admin));
    let u = app
        .change_roles(&jane, &RoleChange::Set(vec![member.clone()]))
        .await
        .unwrap();
    assert_eq!(values(&u), [member]);
    // An unknown role is the server's 400, reported with its body.
    match app
        .change_roles(&jane, &RoleChange::Grant("superuser".into()))
        .await
    {
        Err(ProvisioningError::Status { status, body, .. }) => {
            assert_eq!(
                (status, body["scimType"].as_str()),
                (400, Some("invalidValue"))
            );
        }
        other => panic!("{other:?}"),
    }
}

/// A sleeper that records each wait and really waits `scale` of it.
fn recording(scale: f64) -> (Sleeper, Arc<Mutex<Vec<Duration>>>) {
    let waits: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let log = waits.clone();
    let sleeper = Sleeper::new(move |d: Duration| {
        lock(&log).push(d);
        tokio::time::sleep(d.mul_f64(scale))
    });
    (sleeper, waits)
}

#[tokio::test]
async fn a_429_is_retried_after_retry_after() {
    let stores = RegionStores::fresh().await.unwrap();
    let mut config = worker_config(Region::Us, &stores);
    config.scim_rate_limit = region_worker::config::RateLimit {
        per_second: 2,
        burst: 2,
    };
    let worker = TestWorker::start(config).await.unwrap();
    let ws = region_worker::cli::workspace_create(&worker.state, "Acme", "a@acme.test")
        .await
        .unwrap();
    let ws = crate::harness::json_of(ws);
    let team = ws["team_id"].as_str().unwrap();
    let token = crate::harness::operator_token(&worker.state, team).await;
    let sim = OktaSim::start().await.unwrap();
    let app = sim.app();
    let base = Upstream::via(
        &format!("http://{US_API}/api/scim/v2/{team}"),
        &worker.url(),
    )
    .unwrap();
    // The server's bucket refills in real time, so the waits are real.
    let (sleeper, waits) = recording(1.0);
    let mut settings = ScimSettings::new(base, ScimAuth::bearer(token));
    settings.sleeper = sleeper;
    app.connect_scim(settings).unwrap();
    for i in 0..3 {
        let u = sim
            .add_user(NewUser::new(&format!("r{i}@acme.test"), "R", "L"))
            .unwrap();
        assert!(matches!(
            app.assign(&u).await.unwrap(),
            Provisioned::Created(_)
        ));
    }
    let waits = lock(&waits).clone();
    assert!(
        !waits.is_empty(),
        "the burst of 2 was exceeded by 6 requests"
    );
    assert!(
        waits
            .iter()
            .all(|w| w.as_secs() >= 1 && w.subsec_nanos() == 0),
        "whole seconds as told: {waits:?}"
    );
    assert!(app.scim_log().iter().any(|e| e.attempts > 1));
    assert!(app.scim_log().iter().all(|e| e.status != 429));
}

#[tokio::test]
async fn gives_up_after_ten_tries_doubling_its_wait() {
    let capture = Capture::start(|_, _| {
        (
            429,
            vec![("retry-after", "3".to_owned())],
            json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "429", "detail": "slow down" }).to_string(),
        )
    })
    .await;
    let sim = OktaSim::start().await.unwrap();
    let app = sim.app();
    let (sleeper, waits) = recording(0.0);
    let mut settings = ScimSettings::new(
        Upstream::via(
            "http://api.closedloop.localhost/api/scim/v2/t",
            &capture.url,
        )
        .unwrap(),
        ScimAuth::bearer("t"),
    );
    settings.sleeper = sleeper;
    app.connect_scim(settings).unwrap();
    let u = sim.add_user(NewUser::new("x@acme.test", "X", "Y")).unwrap();
    match app.assign(&u).await {
        Err(ProvisioningError::RateLimited { attempts, .. }) => assert_eq!(attempts, 10),
        other => panic!("{other:?}"),
    }
    assert_eq!(capture.requests().len(), 10);
    let secs: Vec<u64> = lock(&waits).iter().map(Duration::as_secs).collect();
    assert_eq!(secs, [3, 6, 12, 24, 48, 96, 192, 384, 768]);
    assert_eq!(app.scim_log().last().unwrap().status, 429);
}
