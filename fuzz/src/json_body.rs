//! `json_body`: any bytes as the body of a SCIM request, through the steps the worker
//! takes (`region-worker/src/routes/scim/io.rs` reads the body, the `users.rs` and
//! `groups.rs` handlers then call `shared`): JSON parsing with serde_json's nesting
//! limit, then for Users and Groups both `canonicalize_resource` (POST, PUT) and
//! `PatchRequest::parse`, `apply` and, for Groups, `into_group_plan` (PATCH). The same
//! bytes also go through `Jwks::parse`, the one other JSON document `shared` parses
//! (the Okta org's key set). Checks:
//! - nothing panics, and bodies nested up to serde_json's limit are handled on a
//!   2 MiB stack, the stack of the worker's tokio threads, without overflowing;
//! - every refusal is a SCIM error the client caused: a `4xx`, with a `scimType` only
//!   on a `400`, rendered as an RFC 7644 error body;
//! - a canonical resource lists its core schema first and never holds read-only
//!   (`id`, `meta`, a User's `groups`) or write-only (`password`) attributes; nor does
//!   a patched sample ever gain a `password`.
//!
//! The worker's own steps around these (empty-body and non-object refusals,
//! `require_schema`) live in the worker and are not fuzzed here.

use serde_json::Value;
use shared::jwt::Jwks;
use shared::scim::definitions::{GROUP, USER};
use shared::scim::error::ScimError;
use shared::scim::patch::PatchRequest;
use shared::scim::schema::ResourceType;
use shared::scim::value::canonicalize_resource;

use crate::samples;

/// The stack of a tokio worker thread, which is where the worker handles a request.
const WORKER_STACK: usize = 2 * 1024 * 1024;

/// Nesting beyond which a body is checked on a [`WORKER_STACK`]-sized thread (fuzzing
/// runs on the main thread, whose stack is much larger).
const DEEP: usize = 32;

/// Runs every check on `data`.
pub fn check(data: &[u8]) {
    if nesting(data) > DEEP {
        let data = data.to_vec();
        let handle = std::thread::Builder::new()
            .stack_size(WORKER_STACK)
            .spawn(move || check_body(&data))
            .expect("a thread for a deep body");
        if let Err(panic) = handle.join() {
            std::panic::resume_unwind(panic);
        }
    } else {
        check_body(data);
    }
}

/// The deepest bracket nesting of `data`, outside JSON strings.
fn nesting(data: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0, false, false);
    for &b in data {
        match (in_string, escaped, b) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') => in_string = false,
            (true, false, _) => {}
            (false, _, b'"') => in_string = true,
            (false, _, b'[' | b'{') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (false, _, b']' | b'}') => depth = depth.saturating_sub(1),
            (false, _, _) => {}
        }
    }
    deepest
}

fn check_body(data: &[u8]) {
    if let Ok(keys) = Jwks::parse(data) {
        assert_eq!(keys.kids().len(), keys.len());
    }
    // serde_json refuses nesting beyond 128 levels: the worker answers 400 then.
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for rt in [&USER, &GROUP] {
        post_or_put(&body, rt);
        patch(&body, rt);
    }
}

/// A SCIM error caused by the request.
fn client_error(e: &ScimError, what: &str) {
    assert!(
        (400..500).contains(&e.status),
        "{what} answered {e:?}: a body never causes a server error"
    );
    assert!(
        e.scim_type.is_none() || e.status == 400,
        "{what}: a scimType on a {}",
        e.status
    );
    let rendered = e.to_json();
    assert_eq!(rendered["status"], Value::String(e.status.to_string()));
    let text = rendered.to_string();
    assert_eq!(
        serde_json::from_str::<Value>(&text).ok().as_ref(),
        Some(&rendered),
        "{what}: the error body does not re-parse"
    );
}

fn post_or_put(body: &Value, rt: &'static ResourceType) {
    let stored = match canonicalize_resource(body, rt) {
        Ok(stored) => stored,
        Err(e) => return client_error(&e, "canonicalize_resource"),
    };
    let obj = stored
        .as_object()
        .expect("a canonical resource is an object");
    let schemas = obj.get("schemas").and_then(Value::as_array);
    assert_eq!(
        schemas.and_then(|s| s.first()).and_then(Value::as_str),
        Some(rt.schema.id),
        "the canonical {} does not list its schema first: {stored}",
        rt.id
    );
    let mut never = vec!["id", "meta", "password"];
    if rt.id == USER.id {
        never.push("groups");
    }
    for key in never {
        assert!(
            !obj.keys().any(|k| k.eq_ignore_ascii_case(key)),
            "the canonical {} keeps {key}: {stored}",
            rt.id
        );
    }
}

fn patch(body: &Value, rt: &'static ResourceType) {
    let request = match PatchRequest::parse(body, rt) {
        Ok(request) => request,
        Err(e) => return client_error(&e, "PatchRequest::parse"),
    };
    let (mut resource, id) = if rt.id == USER.id {
        (samples::user(), samples::USER_ID)
    } else {
        (samples::group(), samples::GROUP_ID)
    };
    let had_password = resource.get("password").is_some();
    match request.apply(&mut resource, id) {
        Ok(_) => assert!(
            had_password || resource.get("password").is_none(),
            "PATCH stored a password: {resource}"
        ),
        Err(e) => client_error(&e, "PatchRequest::apply"),
    }
    if rt.id == GROUP.id
        && let Err(e) = request.into_group_plan()
    {
        client_error(&e, "into_group_plan");
    }
}
