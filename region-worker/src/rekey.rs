//! `keys reencrypt`: the last step of rotating the region encryption key. Re-seals every
//! value sealed under a previous key (`previous_encryption_keys`) under the current
//! `encryption_key` and records the current key's id beside it, so that the previous
//! keys can then be dropped from the configuration.
//!
//! Okta client secrets are re-sealed all or nothing, in one transaction: one that no
//! configured key opens aborts the command, as dropping it would break that workspace's
//! sign-in. The ID tokens kept with browser sessions only serve Okta's logout
//! `id_token_hint` and expire with their session (12 hours at most), so one that does
//! not open is counted and left alone rather than blocking the rotation.

use anyhow::Context;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::crypto::Purpose;
use crate::state::AppState;

/// Re-seals the region's sealed values under the current key and prints what it did:
/// per table, how many values were re-sealed and how many were already current.
pub async fn reencrypt(state: &AppState) -> anyhow::Result<Value> {
    let key = &state.config.encryption_key;
    let mut client = state.pg.get().await.context("connecting to Postgres")?;
    let tx = client.transaction().await?;

    // Rows are locked so that a concurrent save (sealed under the current key by a
    // running worker) waits for this transaction rather than being overwritten by it.
    let settings = tx
        .query(
            "SELECT team_id, client_secret_sealed, key_id FROM okta_settings
             ORDER BY team_id FOR UPDATE",
            &[],
        )
        .await?;
    let (mut resealed, mut current) = (0u64, 0u64);
    for row in &settings {
        let team_id: Uuid = row.get(0);
        let sealed: Vec<u8> = row.get(1);
        let key_id: String = row.get(2);
        if key_id == key.id() {
            current += 1;
            continue;
        }
        let context = team_id.to_string();
        let plain = key
            .open(&key_id, Purpose::OktaClientSecret, &context, &sealed)
            .with_context(|| {
                format!(
                    "workspace {team_id}: its Okta client secret (key {key_id}) does not open; \
                     add that key to previous_encryption_keys and run again"
                )
            })?;
        let resealed_value = key.seal(Purpose::OktaClientSecret, &context, &plain);
        tx.execute(
            "UPDATE okta_settings SET client_secret_sealed = $2, key_id = $3 WHERE team_id = $1",
            &[&team_id, &resealed_value, &key.id()],
        )
        .await?;
        resealed += 1;
    }

    let sessions = tx
        .query(
            "SELECT token_hash, id_token_sealed, key_id FROM browser_sessions
             WHERE key_id IS NOT NULL AND key_id <> $1 FOR UPDATE",
            &[&key.id()],
        )
        .await?;
    let (mut sessions_resealed, mut unreadable) = (0u64, 0u64);
    for row in &sessions {
        let hash: Vec<u8> = row.get(0);
        let sealed: Vec<u8> = row.get(1);
        let key_id: String = row.get(2);
        // Bound to the session's token hash, as `session::start` sealed it.
        let context = hex::encode(&hash);
        let Ok(plain) = key.open(&key_id, Purpose::SessionIdToken, &context, &sealed) else {
            unreadable += 1;
            continue;
        };
        let resealed_value = key.seal(Purpose::SessionIdToken, &context, &plain);
        tx.execute(
            "UPDATE browser_sessions SET id_token_sealed = $2, key_id = $3 WHERE token_hash = $1",
            &[&hash, &resealed_value, &key.id()],
        )
        .await?;
        sessions_resealed += 1;
    }
    tx.commit().await?;

    Ok(json!({
        "region": state.config.region_id(),
        "key_id": key.id(),
        "okta_settings": { "resealed": resealed, "already_current": current },
        "browser_sessions": { "resealed": sessions_resealed, "unreadable": unreadable },
    }))
}
