//! Replays every committed seed through its target's checks, on stable Rust and
//! without libFuzzer: `cargo test --manifest-path fuzz/Cargo.toml`. A minimised crash
//! added to `seeds/<target>/` thereby becomes a regression test.

use std::fs;
use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    let mut seeds: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("readable seed directory").path())
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    for seed in seeds {
        let data = fs::read(&seed).unwrap_or_else(|e| panic!("{}: {e}", seed.display()));
        eprintln!("{}", seed.display());
        check(&data);
    }
}

#[test]
fn scim_filter_seeds() {
    replay("scim_filter", closedloop_fuzz::scim_filter::check);
}

#[test]
fn scim_patch_seeds() {
    replay("scim_patch", closedloop_fuzz::scim_patch::check);
}

#[test]
fn scim_projection_seeds() {
    replay("scim_projection", closedloop_fuzz::scim_projection::check);
}

#[test]
fn regions_toml_seeds() {
    replay("regions_toml", closedloop_fuzz::regions_toml::check);
}

#[test]
fn token_prefix_seeds() {
    replay("token_prefix", closedloop_fuzz::token_prefix::check);
}

#[test]
fn json_body_seeds() {
    replay("json_body", closedloop_fuzz::json_body::check);
}

#[test]
fn jwt_seeds() {
    replay("jwt", closedloop_fuzz::jwt::check);
}

#[test]
fn gateway_headers_seeds() {
    replay("gateway_headers", closedloop_fuzz::gateway_headers::check);
}
