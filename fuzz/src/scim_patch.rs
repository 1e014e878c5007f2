//! `scim_patch`: any bytes read as JSON, taken both as a PATCH body and as a POST/PUT
//! body. For PATCH, for Users and Groups:
//! - parsing never panics; a parsed request applies to the sample all or nothing
//!   (on error the resource is untouched) and reports a change exactly when the
//!   resource changed;
//! - a Group request splits into a plan whose resource part applies the same way.
//!
//! For POST/PUT, `canonicalize_resource` never panics and its output is a fixed
//! point: canonicalising the stored form again changes nothing (a client that PUTs
//! back what it read stores the same thing).

use serde_json::Value;
use shared::scim::definitions::{GROUP, USER};
use shared::scim::patch::PatchRequest;
use shared::scim::schema::ResourceType;
use shared::scim::value::canonicalize_resource;

use crate::samples;

/// Runs every check on `data` read as JSON (other bytes are not a body).
pub fn check(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Ok(req) = PatchRequest::parse(&body, &USER) {
        applies_atomically(&req, samples::user(), samples::USER_ID);
    }
    if let Ok(req) = PatchRequest::parse(&body, &GROUP) {
        applies_atomically(&req, samples::group(), samples::GROUP_ID);
        if let Ok(plan) = req.into_group_plan() {
            let mut without_members = samples::group();
            if let Some(obj) = without_members.as_object_mut() {
                obj.remove("members");
            }
            applies_atomically(&plan.resource_ops, without_members, samples::GROUP_ID);
        }
    }
    canonical_is_fixed_point(&body, &USER);
    canonical_is_fixed_point(&body, &GROUP);
}

fn applies_atomically(req: &PatchRequest, original: Value, id: &str) {
    let mut resource = original.clone();
    match req.apply(&mut resource, id) {
        Ok(changed) => assert_eq!(
            changed,
            resource != original,
            "apply reported changed={changed} for {req:?}"
        ),
        Err(_) => assert_eq!(resource, original, "a failed PATCH changed the resource"),
    }
}

fn canonical_is_fixed_point(body: &Value, rt: &ResourceType) {
    let Ok(stored) = canonicalize_resource(body, rt) else {
        return;
    };
    match canonicalize_resource(&stored, rt) {
        Ok(again) => assert_eq!(
            again, stored,
            "canonicalising the canonical {} changed it",
            rt.id
        ),
        Err(e) => panic!("the canonical {} {stored} is refused: {e:?}", rt.id),
    }
}
