//! A workspace connected to the simulated Okta org, as the sign-in e2e modules (`oidc`,
//! `signin_binding`, `mixup`, `security`) set it up and read it back: org users assigned
//! to the app, users provisioned with SCIM as Okta would, the workspace's audit trail
//! and the browser-session count. One copy here so that a change to how Okta
//! provisions or how the audit is stored is made once for every module.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::{TestStack, Workspace, pg_connect};
use crate::okta_sim::OktaSim;
use crate::okta_sim::directory::{NewUser, UserId};
use crate::region::Region;

/// An audit event as the tests read it: `(action, target, detail)`.
pub type AuditEvent = (String, Option<String>, Value);

/// Connects the US workspace `team_id` to the simulated org's app (sign-in on), as the
/// Integrations > Okta page would.
pub async fn connect(stack: &TestStack, team_id: &str, sim: &OktaSim) {
    let app = sim.app();
    stack
        .configure_okta(
            Region::Us,
            team_id,
            sim.base_url(),
            app.client_id(),
            &app.client_secret(),
        )
        .await;
}

/// An org user named `given family`, assigned to the app (not signed in at Okta, not
/// provisioned).
pub async fn assigned_user(sim: &OktaSim, email: &str, given: &str, family: &str) -> UserId {
    let id = sim.add_user(NewUser::new(email, given, family)).unwrap();
    sim.app().assign(&id).await.unwrap();
    id
}

/// An org user Jane Doe assigned to the app and signed in at Okta, so that authorize
/// answers silently.
pub async fn okta_user(sim: &OktaSim, email: &str) -> UserId {
    let id = assigned_user(sim, email, "Jane", "Doe").await;
    sim.set_auto_sign_in(Some(&id));
    id
}

/// Provisions `email` (Jane Doe) into `ws` with SCIM as Okta would; returns its SCIM id.
pub async fn provision(
    stack: &TestStack,
    ws: &Workspace,
    email: &str,
    external_id: &str,
) -> String {
    provision_named(stack, &ws.team_id, email, external_id, "Jane", "Doe").await
}

/// Provisions `email`, named `given family`, into the US workspace `team_id` with SCIM
/// as Okta would; returns its SCIM id.
pub async fn provision_named(
    stack: &TestStack,
    team_id: &str,
    email: &str,
    external_id: &str,
    given: &str,
    family: &str,
) -> String {
    let scim = stack.scim(Region::Us, team_id, "").await;
    let (status, user) = scim
        .post(
            "/Users",
            &json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": email, "externalId": external_id,
                "name": { "givenName": given, "familyName": family },
                "emails": [{ "value": email, "primary": true, "type": "work" }],
                "active": true
            }),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    user["id"].as_str().unwrap().to_owned()
}

/// The US audit events of `team` (or, with `None`, those of no workspace), oldest first.
pub async fn audit(stack: &TestStack, team: Option<&str>) -> Vec<AuditEvent> {
    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    let rows = match team {
        Some(t) => {
            let t = Uuid::parse_str(t).unwrap();
            db.query(
                "SELECT action, target, detail FROM audit_events WHERE team_id = $1 ORDER BY id",
                &[&t],
            )
            .await
        }
        None => {
            db.query(
                "SELECT action, target, detail FROM audit_events WHERE team_id IS NULL ORDER BY id",
                &[],
            )
            .await
        }
    }
    .unwrap();
    rows.iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// How many audit events of the region at `pg_url` have the code `action`.
pub async fn audit_count(pg_url: &str, action: &str) -> i64 {
    pg_connect(pg_url)
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM audit_events WHERE action = $1",
            &[&action],
        )
        .await
        .unwrap()
        .get(0)
}

/// The codes of the region's audit events that start with `prefix` (`mcp.`), oldest
/// first.
pub async fn audit_actions(pg_url: &str, prefix: &str) -> Vec<String> {
    pg_connect(pg_url)
        .await
        .unwrap()
        .query(
            "SELECT action FROM audit_events WHERE starts_with(action, $1) ORDER BY id",
            &[&prefix],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The details of `team_id`'s `oidc.sign_in.failed` events, oldest first.
pub async fn sign_in_failures(stack: &TestStack, team_id: &str) -> Vec<Value> {
    audit(stack, Some(team_id))
        .await
        .into_iter()
        .filter(|(a, _, _)| a == "oidc.sign_in.failed")
        .map(|(_, _, d)| d)
        .collect()
}

/// The `reason[:check]` of every `oidc.sign_in.failed` event in `events`.
pub fn failure_reasons(events: &[AuditEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|(a, _, _)| a == "oidc.sign_in.failed")
        .map(|(_, _, d)| {
            let check = d["check"]
                .as_str()
                .map(|c| format!(":{c}"))
                .unwrap_or_default();
            format!("{}{check}", d["reason"].as_str().unwrap_or_default())
        })
        .collect()
}

/// Every US browser session, of any workspace.
pub async fn session_count(stack: &TestStack) -> i64 {
    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    db.query_one("SELECT count(*) FROM browser_sessions", &[])
        .await
        .unwrap()
        .get(0)
}
