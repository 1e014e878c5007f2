//! `scim_projection`: the text up to the first newline is `attributes`, the rest
//! (when there is a newline) `excludedAttributes`. For every pair that parses, for
//! Users and Groups, projecting the sample and the malformed resources never panics
//! and:
//! - keeps only keys the resource had, and always `schemas` and `id`;
//! - never returns a User's `password`;
//! - returns a top-level attribute only if `returns` said it might, since the worker
//!   skips loading `groups`, `roles` and `members` when `returns` says no.

use serde_json::Value;
use shared::scim::definitions::{GROUP, USER};
use shared::scim::projection::Projection;
use shared::scim::schema::ResourceType;

use crate::samples;

/// Runs every check on `data` read as UTF-8.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (attributes, excluded) = match text.split_once('\n') {
        Some((a, e)) => (Some(a), Some(e)),
        None => (Some(text), None),
    };
    check_for(attributes, excluded, &USER, samples::user());
    check_for(attributes, excluded, &GROUP, samples::group());
}

fn check_for(
    attributes: Option<&str>,
    excluded: Option<&str>,
    rt: &'static ResourceType,
    sample: Value,
) {
    let Ok(projection) = Projection::parse(attributes, excluded, rt) else {
        return;
    };
    // Only Users define `password` (returned: never); for a Group it is an unknown
    // key, returned by default like any extra key.
    let mut with_password = sample.clone();
    if let Some(obj) = with_password.as_object_mut().filter(|_| rt.id == USER.id) {
        obj.insert("password".into(), "hunter2".into());
    }
    for resource in [sample, with_password]
        .into_iter()
        .chain(samples::malformed())
    {
        let out = projection.apply(&resource);
        let (Some(input), Some(output)) = (resource.as_object(), out.as_object()) else {
            assert_eq!(out, resource, "a non-object must be returned as is");
            continue;
        };
        for key in ["schemas", "id"] {
            assert_eq!(
                input.contains_key(key),
                output.contains_key(key),
                "{key} dropped by {projection:?}"
            );
        }
        assert!(
            rt.id != USER.id || !output.contains_key("password"),
            "password returned by {projection:?}"
        );
        for key in output.keys() {
            assert!(input.contains_key(key), "{key} invented by {projection:?}");
            let top_level = rt
                .resolve_path(key)
                .is_some_and(|a| a.extension.is_none() && a.sub.is_none());
            if top_level {
                assert!(
                    projection.returns(key),
                    "{key} returned though returns() says no: {projection:?}"
                );
            }
        }
    }
}
