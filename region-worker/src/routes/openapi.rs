//! `GET /api/openapi.json`: the OpenAPI 3.1 document of the API host's JSON endpoints
//! (`region-worker/openapi.json`, compiled in).
//!
//! The checked-in document names both regions' API hosts in `servers`; a worker serves
//! it with `servers` naming its own region's API base URL only, so that a client (or a
//! fuzzer) reading it from a region talks to that region. The document is rewritten
//! once, when the router is built, and every request gets the same bytes.

use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use serde_json::{Value, json};

use crate::state::AppState;

/// The document as checked in.
pub const DOCUMENT: &str = include_str!("../../openapi.json");

/// How long clients and caches may keep it: it changes only with a deployment.
const CACHE_CONTROL: &str = "public, max-age=3600";

/// The document with `servers` naming only `api_base`, the serving region's.
pub fn for_region(region: &str, api_base: &str) -> Bytes {
    let mut doc: Value =
        serde_json::from_str(DOCUMENT).expect("openapi.json is valid JSON (unit-tested)");
    doc["servers"] = json!([{
        "url": api_base,
        "description": format!("The {region} region (the region that served this document)"),
    }]);
    Bytes::from(serde_json::to_vec_pretty(&doc).expect("a JSON value serializes"))
}

/// The route, with the region's document prepared now rather than per request.
pub fn route(state: &AppState) -> MethodRouter<AppState> {
    let body = for_region(
        state.config.region_id().as_str(),
        state.config.region.api_base(),
    );
    get(move || {
        let body = body.clone();
        async move { serve(body) }
    })
}

fn serve(body: Bytes) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_served_document_names_only_its_region() {
        let doc: Value =
            serde_json::from_slice(&for_region("eu", "https://eu.api.closedloop.sh")).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(
            doc["servers"],
            json!([{ "url": "https://eu.api.closedloop.sh", "description": "The eu region (the region that served this document)" }])
        );
        assert!(doc["paths"][crate::paths::api::OPENAPI]["get"].is_object());
    }

    #[test]
    fn the_checked_in_document_names_the_production_api_hosts() {
        let doc: Value = serde_json::from_str(DOCUMENT).unwrap();
        let urls: Vec<&str> = doc["servers"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["url"].as_str())
            .collect();
        assert_eq!(
            urls,
            ["https://api.closedloop.sh", "https://eu.api.closedloop.sh"]
        );
    }
}
