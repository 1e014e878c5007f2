//! `regions_toml`: any text through `RegionMap::parse`. Errors name a line of the
//! text; an accepted map routes each region's own hosts (any case, with a port) back
//! to that region.

use shared::regions::{RegionMap, strip_port};

/// Runs every check on `data` read as UTF-8.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let map = match RegionMap::parse(text) {
        Ok(map) => map,
        Err(e) => {
            let lines = text.matches('\n').count() + 1;
            assert!(
                (1..=lines).contains(&e.line),
                "line {} of a {lines}-line file: {e}",
                e.line
            );
            return;
        }
    };
    for region in map.regions() {
        assert_eq!(
            map.region(&region.id).map(|r| &r.id),
            Some(&region.id),
            "region {} not found by id",
            region.id
        );
        for host in [region.app_host(), region.api_host()] {
            for presented in [
                host.to_owned(),
                host.to_ascii_uppercase(),
                format!("{host}:8443"),
            ] {
                let found = map.region_for_host(&presented).map(|r| &r.id);
                assert_eq!(found, Some(&region.id), "host {presented:?}");
                assert!(region.serves_host(&presented), "host {presented:?}");
            }
        }
    }
    let _ = strip_port(text);
}
