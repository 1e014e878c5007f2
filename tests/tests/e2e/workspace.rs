//! The Workspace page (`/workspace`): an admin-only page built on the web layer's
//! extractors alone. An admin sees the workspace's team_id, region and admins; a
//! Member gets the Forbidden page; a signed-out browser is sent to sign in and back.

use closedloop_tests::harness::{TestStack, US_APP, pg_connect};
use closedloop_tests::region::Region;
use reqwest::header::{COOKIE, LOCATION};

#[tokio::test]
async fn admins_see_the_workspace_members_are_forbidden_and_strangers_sign_in() {
    let stack = TestStack::start().await.unwrap();
    let ws = stack
        .workspace(Region::Us, "Acme <Labs>", "admin@acme.test")
        .await;
    let cookie = stack.sign_in_with_link(Region::Us, &ws).await;

    let r = stack.get(US_APP, "/workspace").send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], "/auth?return_to=%2Fworkspace");

    let r = stack
        .get(US_APP, "/workspace")
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("<h1>Acme &lt;Labs&gt;</h1>"), "{body}");
    assert!(
        body.contains(&format!("<code>{}</code>", ws.team_id)),
        "{body}"
    );
    assert!(body.contains("<dd>US</dd>"), "{body}");
    assert!(body.contains("<li>admin@acme.test</li>"), "{body}");

    // The admin loses the Admin role: the same session now gets the Forbidden page.
    let db = pg_connect(&stack.us_stores.pg_url).await.unwrap();
    db.execute(
        "DELETE FROM user_roles ur USING roles r
          WHERE r.team_id = ur.team_id AND r.id = ur.role_id AND r.key = 'admin'",
        &[],
    )
    .await
    .unwrap();
    let r = stack
        .get(US_APP, "/workspace")
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body = r.text().await.unwrap();
    assert!(body.contains("Only workspace admins"), "{body}");
    assert!(!body.contains("admin@acme.test"), "{body}");
}
