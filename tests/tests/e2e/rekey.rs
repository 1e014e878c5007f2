//! Rotating the region encryption key: values sealed under the previous key stay
//! readable while it is listed in `previous_encryption_keys`, and `keys reencrypt`
//! moves every one (Okta client secrets and the ID tokens kept with browser sessions)
//! to the current key in one transaction.

use closedloop_tests::harness::{RegionStores, US_ENCRYPTION_KEY, worker_config};
use closedloop_tests::region::Region;
use region_worker::crypto::{Purpose, RegionKey};
use region_worker::okta::settings::{self, NewSettings};
use region_worker::session::{self, OktaSession};
use shared::ids::TeamId;

const NEW_KEY: [u8; 32] = [0x5a; 32];

/// Lower-case hex, the form a session's token hash takes in its sealing context.
fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The Okta client secret of `team_id` as `key` opens it, and the key id stored with it.
async fn secret(
    state: &region_worker::state::AppState,
    team_id: TeamId,
    key: &RegionKey,
) -> (Result<String, String>, String) {
    let client = state.pg.get().await.unwrap();
    let s = settings::get(&client, team_id).await.unwrap().unwrap();
    let row = client
        .query_one(
            "SELECT key_id FROM okta_settings WHERE team_id = $1",
            &[&team_id.as_uuid()],
        )
        .await
        .unwrap();
    (
        s.client_secret(key)
            .map(|s| s.expose().to_owned())
            .map_err(|e| e.to_string()),
        row.get(0),
    )
}

#[tokio::test]
async fn reencrypt_moves_every_secret_to_the_current_key() {
    let stores = RegionStores::fresh().await.unwrap();
    let old_config = worker_config(Region::Us, &stores);
    let old_key = old_config.encryption_key.clone();
    let old = region_worker::connect(old_config.clone()).await.unwrap();

    // Two workspaces with Okta settings sealed under the old key.
    let mut teams = Vec::new();
    for (name, secret_text) in [
        ("Acme", "acme-okta-secret"),
        ("Globex", "globex-okta-secret"),
    ] {
        let created = region_worker::cli::workspace_create(&old, name, "admin@example.test")
            .await
            .unwrap();
        let team_id = created.team_id;
        let client = old.pg.get().await.unwrap();
        let saved = settings::save(
            &client,
            &old_key,
            &NewSettings {
                team_id,
                okta_domain: "acme.okta.com",
                issuer: "https://acme.okta.com",
                // One Okta app per workspace (unique issuer and client id).
                client_id: &format!("0oa-client-{name}"),
                client_secret: Some(secret_text),
                sign_in_enabled: true,
                jit_provisioning: false,
                updated_by: "test",
            },
        )
        .await
        .unwrap();
        assert!(saved);
        teams.push((team_id, secret_text));

        // And a browser session of the admin, holding an Okta ID token sealed under it.
        let admin = created.admin_user_id;
        let epoch: i64 = client
            .query_one(
                "SELECT token_epoch FROM users WHERE team_id = $1 AND id = $2",
                &[&team_id.as_uuid(), &admin],
            )
            .await
            .unwrap()
            .get(0);
        let okta = OktaSession {
            issuer: "https://acme.okta.com".to_owned(),
            id_token: format!("id-token-of-{name}"),
        };
        session::start_with(&old, team_id, admin, epoch, "okta", Some(&okta))
            .await
            .unwrap();
    }

    // A rotation forgetting the old key refuses and changes nothing.
    let mut forgetful = old_config.clone();
    forgetful.encryption_key = RegionKey::from_bytes(&NEW_KEY).unwrap();
    let forgetful = region_worker::connect(forgetful).await.unwrap();
    let err = region_worker::rekey::reencrypt(&forgetful)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains(old_key.id()), "{err:#}");
    for (team_id, text) in &teams {
        let (opened, key_id) = secret(&old, *team_id, &old_key).await;
        assert_eq!(
            (opened.unwrap().as_str(), key_id.as_str()),
            (*text, old_key.id())
        );
    }

    // The rotation: the new key seals, the old one still opens.
    let mut rotated = old_config.clone();
    rotated.encryption_key = RegionKey::from_bytes(&NEW_KEY)
        .unwrap()
        .with_previous([RegionKey::parse(US_ENCRYPTION_KEY).unwrap()]);
    let rotated = region_worker::connect(rotated).await.unwrap();
    let ring = rotated.config.encryption_key.clone();
    assert_eq!(
        secret(&rotated, teams[0].0, &ring).await.0.unwrap(),
        teams[0].1
    );

    let report = region_worker::rekey::reencrypt(&rotated).await.unwrap();
    let new_only = RegionKey::from_bytes(&NEW_KEY).unwrap();
    assert_eq!(report["region"], "us");
    assert_eq!(report["key_id"], ring.id());
    assert_eq!(report["okta_settings"]["resealed"], 2);
    assert_eq!(report["okta_settings"]["already_current"], 0);

    // Every secret now opens under the new key alone, and a second run has nothing to do.
    for (team_id, text) in &teams {
        let (opened, key_id) = secret(&rotated, *team_id, &new_only).await;
        assert_eq!(
            (opened.unwrap().as_str(), key_id.as_str()),
            (*text, new_only.id())
        );
        assert!(secret(&rotated, *team_id, &old_key).await.0.is_err());
    }
    assert_eq!(report["browser_sessions"]["resealed"], 2);
    assert_eq!(report["browser_sessions"]["unreadable"], 0);
    let client = rotated.pg.get().await.unwrap();
    let sessions = client
        .query(
            "SELECT token_hash, id_token_sealed, key_id FROM browser_sessions ORDER BY team_id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(sessions.len(), 2);
    for row in &sessions {
        let (hash, sealed, key_id): (Vec<u8>, Vec<u8>, String) =
            (row.get(0), row.get(1), row.get(2));
        assert_eq!(key_id, new_only.id());
        let opened = new_only
            .open(&key_id, Purpose::SessionIdToken, &hex_of(&hash), &sealed)
            .unwrap();
        assert!(
            String::from_utf8(opened)
                .unwrap()
                .starts_with("id-token-of-")
        );
    }
    let again = region_worker::rekey::reencrypt(&rotated).await.unwrap();
    assert_eq!(again["okta_settings"]["resealed"], 0);
    assert_eq!(again["okta_settings"]["already_current"], 2);
}
