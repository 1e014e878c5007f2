//! The OpenAPI document a worker serves at `/api/openapi.json` (issue 10, hostile
//! input): that it is a sound OpenAPI 3.1 document, and that it tells the truth. Every
//! documented operation is called through the gateway with valid and invalid input,
//! and every real answer must be a status documented for that operation, with the
//! documented content type and a body that validates against the documented schema.
//!
//! The schemas are checked by [`Validator`], a small JSON Schema validator for the
//! keywords the document uses; the structural test fails when the document starts
//! using one it does not know, so no part of a schema goes unchecked. (The `jsonschema`
//! crate would add a regex engine and a resolver stack to the tests for a subset this
//! small.)
//!
//! The last test drives schemathesis (PyPI) against a real stack when
//! `CLOSEDLOOP_SCHEMATHESIS` names its executable: `tests/schemathesis/run.sh` installs
//! it and runs that test. Without it, the test says so and passes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use closedloop_tests::harness::{
    EU_API, TestStack, US_API, US_APP, US_INTROSPECTION_CLIENT_ID, US_INTROSPECTION_SECRET,
    US_SCIM_CLIENT_ID, US_SCIM_CLIENT_SECRET, okta_callback,
};
use closedloop_tests::okta_sim::OktaSim;
use closedloop_tests::region::Region;
use region_worker::config::RateLimit;
use reqwest::Method;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION};
use serde_json::{Value, json};

use closedloop_tests::tokens::create_on_page;
use closedloop_tests::web::hidden;

/// JSON Schema keywords [`Validator`] checks, and annotations it may ignore.
const CHECKED: &[&str] = &[
    "$ref",
    "type",
    "const",
    "enum",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "format",
    "oneOf",
    "anyOf",
];
const ANNOTATIONS: &[&str] = &["description", "title", "default"];
/// The `format`s [`Validator`] checks.
const FORMATS: &[&str] = &["uuid", "date-time", "uri"];

/// Validates instances against the schemas of one OpenAPI document.
struct Validator<'d> {
    doc: &'d Value,
}

impl<'d> Validator<'d> {
    /// Follows a local `$ref` (`#/a/b`).
    fn resolve(&self, reference: &str) -> Option<&'d Value> {
        let pointer = reference.strip_prefix('#')?;
        self.doc.pointer(pointer)
    }

    /// Every way `instance` breaks `schema`, with JSON pointers into the instance.
    fn errors(&self, schema: &Value, instance: &Value, at: &str) -> Vec<String> {
        let mut errors = Vec::new();
        self.check(schema, instance, at, &mut errors);
        errors
    }

    fn check(&self, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
        let Some(s) = schema.as_object() else {
            errors.push(format!("{at}: schema is not an object"));
            return;
        };
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            match self.resolve(r) {
                Some(target) => self.check(target, v, at, errors),
                None => errors.push(format!("{at}: unresolved $ref {r}")),
            }
            return;
        }
        let mut fail = |what: String| errors.push(format!("{at}: {what} (got {v})"));
        if let Some(t) = s.get("type") {
            let types: Vec<&str> = match t {
                Value::String(one) => vec![one.as_str()],
                Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            if !types.iter().any(|t| type_matches(t, v)) {
                fail(format!("type is not {types:?}"));
                return;
            }
        }
        if let Some(c) = s.get("const")
            && c != v
        {
            fail(format!("is not {c}"));
        }
        if let Some(Value::Array(options)) = s.get("enum")
            && !options.contains(v)
        {
            fail(format!("is not one of {options:?}"));
        }
        if let Value::String(text) = v {
            let len = text.chars().count() as u64;
            if s.get("minLength")
                .and_then(Value::as_u64)
                .is_some_and(|m| len < m)
            {
                fail("shorter than minLength".into());
            }
            if s.get("maxLength")
                .and_then(Value::as_u64)
                .is_some_and(|m| len > m)
            {
                fail("longer than maxLength".into());
            }
            if let Some(f) = s.get("format").and_then(Value::as_str)
                && !format_matches(f, text)
            {
                fail(format!("not a {f}"));
            }
        }
        if let Some(n) = v.as_f64() {
            if s.get("minimum")
                .and_then(Value::as_f64)
                .is_some_and(|m| n < m)
            {
                fail("below minimum".into());
            }
            if s.get("maximum")
                .and_then(Value::as_f64)
                .is_some_and(|m| n > m)
            {
                fail("above maximum".into());
            }
        }
        if let Value::Object(members) = v {
            for name in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !members.contains_key(name) {
                    fail(format!("lacks required member {name:?}"));
                }
            }
            let properties = s.get("properties").and_then(Value::as_object);
            for (name, member) in members {
                let at = format!("{at}/{name}");
                match properties.and_then(|p| p.get(name)) {
                    Some(sub) => self.check(sub, member, &at, errors),
                    None => match s.get("additionalProperties") {
                        Some(Value::Bool(false)) => {
                            errors.push(format!("{at}: member not allowed"));
                        }
                        Some(sub @ Value::Object(_)) => self.check(sub, member, &at, errors),
                        _ => {}
                    },
                }
            }
        }
        if let (Value::Array(items), Some(item_schema)) = (v, s.get("items")) {
            for (i, item) in items.iter().enumerate() {
                self.check(item_schema, item, &format!("{at}/{i}"), errors);
            }
        }
        if let Some(Value::Array(options)) = s.get("oneOf") {
            let matching = options
                .iter()
                .filter(|o| self.errors(o, v, at).is_empty())
                .count();
            if matching != 1 {
                errors.push(format!("{at}: matches {matching} of oneOf, not exactly 1"));
            }
        }
        if let Some(Value::Array(options)) = s.get("anyOf")
            && !options.iter().any(|o| self.errors(o, v, at).is_empty())
        {
            errors.push(format!("{at}: matches none of anyOf"));
        }
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        _ => false,
    }
}

fn format_matches(format: &str, s: &str) -> bool {
    match format {
        "uuid" => uuid::Uuid::parse_str(s).is_ok() && s.len() == 36,
        "date-time" => {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
        }
        "uri" => url::Url::parse(s).is_ok(),
        _ => false,
    }
}

/// Every `$ref` in `v`, with where it is.
fn refs<'v>(v: &'v Value, at: String, out: &mut Vec<(String, &'v str)>) {
    match v {
        Value::Object(m) => {
            for (k, sub) in m {
                if k == "$ref"
                    && let Some(r) = sub.as_str()
                {
                    out.push((at.clone(), r));
                }
                refs(sub, format!("{at}/{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, sub) in a.iter().enumerate() {
                refs(sub, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Checks that `schema` uses only keywords [`Validator`] checks (recursively).
fn known_keywords(schema: &Value, at: &str, problems: &mut Vec<String>) {
    let Some(s) = schema.as_object() else {
        problems.push(format!("{at}: a schema that is not an object"));
        return;
    };
    for (k, v) in s {
        if !CHECKED.contains(&k.as_str()) && !ANNOTATIONS.contains(&k.as_str()) {
            problems.push(format!("{at}: keyword {k} is not checked by the tests"));
        }
        match k.as_str() {
            "properties" => {
                for (name, sub) in v.as_object().into_iter().flatten() {
                    known_keywords(sub, &format!("{at}/properties/{name}"), problems);
                }
            }
            "items" => known_keywords(v, &format!("{at}/items"), problems),
            "additionalProperties" if v.is_object() => {
                known_keywords(v, &format!("{at}/additionalProperties"), problems);
            }
            "oneOf" | "anyOf" => {
                for (i, sub) in v.as_array().into_iter().flatten().enumerate() {
                    known_keywords(sub, &format!("{at}/{k}/{i}"), problems);
                }
            }
            "format" if !FORMATS.contains(&v.as_str().unwrap_or_default()) => {
                problems.push(format!("{at}: format {v} is not checked by the tests"));
            }
            _ => {}
        }
    }
}

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The document's operations: `(path, method, operation)`.
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if METHODS.contains(&method.as_str()) {
                out.push((path.clone(), method.clone(), op));
            }
        }
    }
    out
}

/// Fetches the document a region's worker serves, through the gateway.
async fn served_document(stack: &TestStack, api_host: &str) -> Value {
    let r = stack
        .get(api_host, "/api/openapi.json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
    let cache = r.headers()[CACHE_CONTROL].to_str().unwrap().to_owned();
    assert!(
        cache.contains("public") && cache.contains("max-age="),
        "{cache}"
    );
    r.json().await.unwrap()
}

#[tokio::test]
async fn the_document_is_sound_openapi_3_1_and_names_the_serving_region() {
    let stack = TestStack::start().await.unwrap();
    let doc = served_document(&stack, US_API).await;
    let eu = served_document(&stack, EU_API).await;

    // The checked-in document, with `servers` naming the serving region only.
    assert_eq!(
        doc["servers"],
        json!([{ "url": "http://api.closedloop.localhost", "description": "The us region (the region that served this document)" }])
    );
    assert_eq!(
        eu["servers"][0]["url"], "http://eu.api.closedloop.localhost",
        "the EU worker names its own region"
    );
    let mut checked_in: Value =
        serde_json::from_str(region_worker::routes::openapi::DOCUMENT).unwrap();
    let production: Vec<&str> = checked_in["servers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["url"].as_str())
        .collect();
    assert_eq!(
        production,
        ["https://api.closedloop.sh", "https://eu.api.closedloop.sh"],
        "regions.toml's API hosts"
    );
    checked_in["servers"] = doc["servers"].clone();
    assert_eq!(checked_in, doc, "served as checked in, but for servers");

    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    // Every $ref resolves.
    let validator = Validator { doc: &doc };
    let mut all_refs = Vec::new();
    refs(&doc, String::new(), &mut all_refs);
    assert!(!all_refs.is_empty());
    for (at, r) in &all_refs {
        assert!(validator.resolve(r).is_some(), "{at}: {r} does not resolve");
    }

    // Every schema uses only keywords the tests check.
    let mut problems = Vec::new();
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        known_keywords(
            schema,
            &format!("#/components/schemas/{name}"),
            &mut problems,
        );
    }
    let mut ops = operations(&doc);
    ops.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let schemes: BTreeSet<&String> = doc["components"]["securitySchemes"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    let mut ids = BTreeSet::new();
    for (path, method, op) in &ops {
        let here = format!("{method} {path}");
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{here}: no operationId"));
        assert!(ids.insert(id), "{here}: operationId {id} is not unique");
        let responses = op["responses"].as_object().unwrap();
        assert!(!responses.is_empty(), "{here}: no responses");
        for (status, response) in responses {
            assert!(
                status.len() == 3 && status.parse::<u16>().is_ok_and(|s| (100..600).contains(&s)),
                "{here}: status {status}"
            );
            let response = match response["$ref"].as_str() {
                Some(r) => validator.resolve(r).unwrap(),
                None => response,
            };
            assert!(
                response["description"].is_string(),
                "{here} {status}: description"
            );
            for (media, content) in response["content"].as_object().into_iter().flatten() {
                known_keywords(
                    &content["schema"],
                    &format!("{here} {status} {media}"),
                    &mut problems,
                );
            }
        }
        if let Some(body) = op["requestBody"].as_object() {
            for (media, content) in body["content"].as_object().unwrap() {
                known_keywords(
                    &content["schema"],
                    &format!("{here} request {media}"),
                    &mut problems,
                );
            }
        }
        // Path templates and path parameters agree.
        let templated: BTreeSet<String> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_owned)
            .collect();
        let declared: BTreeSet<String> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .map(|p| {
                assert_eq!(p["required"], true, "{here}: path parameters are required");
                p["name"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(templated, declared, "{here}: path parameters");
        for p in op["parameters"].as_array().into_iter().flatten() {
            known_keywords(&p["schema"], &format!("{here} parameter"), &mut problems);
        }
        // Security names defined schemes.
        for requirement in op["security"].as_array().into_iter().flatten() {
            for scheme in requirement.as_object().unwrap().keys() {
                assert!(schemes.contains(scheme), "{here}: unknown scheme {scheme}");
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");

    // The document covers the JSON endpoints the brief lists.
    let covered: BTreeSet<String> = ops.iter().map(|(p, m, _)| format!("{m} {p}")).collect();
    for expected in [
        "get /api/ping",
        "get /api/openapi.json",
        "get /api/me",
        "get /api/mcp/whoami",
        "get /api/tokens",
        "post /api/tokens",
        "delete /api/tokens/{id}",
        "post /api/tokens/introspect",
        "post /api/okta/scim/oauth/token",
        "post /api/okta/universal-logout",
    ] {
        assert!(covered.contains(expected), "{expected} is not documented");
    }
}

/// Calls operations and checks every answer against the document.
struct Conformance<'s> {
    stack: &'s TestStack,
    doc: Value,
    /// Statuses seen, by operationId.
    seen: BTreeMap<String, BTreeSet<u16>>,
}

/// One real answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl<'s> Conformance<'s> {
    async fn new(stack: &'s TestStack) -> Self {
        Self {
            stack,
            doc: served_document(stack, US_API).await,
            seen: BTreeMap::new(),
        }
    }

    fn operation(&self, method: &Method, path_template: &str) -> (String, Value) {
        let op = &self.doc["paths"][path_template][method.as_str().to_lowercase()];
        assert!(op.is_object(), "{method} {path_template} is not documented");
        (op["operationId"].as_str().unwrap().to_owned(), op.clone())
    }

    /// Sends `req` (to the operation at `path_template`), checks the answer.
    async fn call(
        &mut self,
        method: Method,
        path_template: &str,
        req: reqwest::RequestBuilder,
    ) -> Answer {
        let (id, op) = self.operation(&method, path_template);
        let r = req.send().await.expect("request sent");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.expect("body read");
        let here = format!("{id} → {status}");
        let response = op["responses"][status.to_string()].clone();
        assert!(
            response.is_object(),
            "{here}: status not documented; body {}",
            String::from_utf8_lossy(&bytes)
        );
        let validator = Validator { doc: &self.doc };
        let response = match response["$ref"].as_str() {
            Some(r) => validator.resolve(r).unwrap().clone(),
            None => response,
        };
        let body = match response["content"].as_object() {
            None => {
                assert!(bytes.is_empty(), "{here}: a body where none is documented");
                Value::Null
            }
            Some(content) => {
                let media = headers
                    .get(CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                let schema = &content
                    .get(&media)
                    .unwrap_or_else(|| panic!("{here}: content type {media:?} not documented"))["schema"];
                let body: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                    panic!("{here}: not JSON: {}", String::from_utf8_lossy(&bytes))
                });
                let errors = validator.errors(schema, &body, "");
                assert!(errors.is_empty(), "{here}: {body}\n{errors:#?}");
                body
            }
        };
        self.seen.entry(id).or_default().insert(status);
        Answer {
            status,
            headers,
            body,
        }
    }

    fn api(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.stack.request(method, US_API, path)
    }

    /// Asserts that each operation answered every status of `expected`.
    fn assert_seen(&self, expected: &[(&str, &[u16])]) {
        for (id, statuses) in expected {
            let seen = self.seen.get(*id).cloned().unwrap_or_default();
            for s in *statuses {
                assert!(seen.contains(s), "{id} never answered {s} (saw {seen:?})");
            }
        }
    }
}

/// A workspace in the US with its admin signed in: `(team_id, admin id, cookie)`.
async fn admin(stack: &TestStack, email: &str) -> (String, String, String) {
    let ws = stack.workspace(Region::Us, "Acme", email).await;
    let cookie = stack.sign_in_with_link(Region::Us, &ws).await;
    (ws.team_id, ws.admin_user_id, cookie)
}

#[tokio::test]
async fn the_token_api_and_introspection_answer_as_documented() {
    let stack = TestStack::start().await.unwrap();
    let mut c = Conformance::new(&stack).await;
    let (_, _, cookie) = admin(&stack, "admin@acme.test").await;
    let api = create_on_page(&stack, Region::Us, &cookie, "CI", "api").await;
    let mcp = create_on_page(&stack, Region::Us, &cookie, "Agent", "mcp").await;
    let eu_token = api.replacen("clk_us_", "clk_eu_", 1);

    let a = c
        .call(Method::GET, "/api/ping", c.api(Method::GET, "/api/ping"))
        .await;
    assert_eq!((a.status, a.body["region"].as_str()), (200, Some("us")));
    c.call(
        Method::GET,
        "/api/openapi.json",
        c.api(Method::GET, "/api/openapi.json"),
    )
    .await;

    // The protected endpoints.
    for (path, good, wrong_kind) in [("/api/me", &api, &mcp), ("/api/mcp/whoami", &mcp, &api)] {
        let a = c
            .call(
                Method::GET,
                path,
                c.api(Method::GET, path).bearer_auth(good),
            )
            .await;
        assert_eq!(a.status, 200);
        for bad in [
            c.api(Method::GET, path),
            c.api(Method::GET, path).bearer_auth(wrong_kind),
            c.api(Method::GET, path).bearer_auth(&eu_token),
            c.api(Method::GET, path).bearer_auth("clk_us_api_nonsense"),
            c.api(Method::GET, path).basic_auth("a", Some("b")),
        ] {
            let a = c.call(Method::GET, path, bad).await;
            assert_eq!(a.status, 401);
            assert!(a.headers.contains_key("www-authenticate"));
        }
    }

    // Create: valid, invalid bodies, no token.
    let created = c
        .call(
            Method::POST,
            "/api/tokens",
            c.api(Method::POST, "/api/tokens")
                .bearer_auth(&api)
                .json(&json!({ "name": "made by the API", "kind": "mcp", "expires_in_days": 7 })),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let new_id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.headers[LOCATION].to_str().unwrap(),
        format!("/api/tokens/{new_id}")
    );
    let a = c
        .call(
            Method::POST,
            "/api/tokens",
            c.api(Method::POST, "/api/tokens")
                .bearer_auth(&api)
                .json(&json!({ "name": "defaults", "kind": "api", "expires_in_days": null })),
        )
        .await;
    assert_eq!(a.status, 201);
    for bad in [
        json!({}),
        json!([]),
        json!(null),
        json!("x"),
        json!({ "name": "", "kind": "api" }),
        json!({ "name": "   ", "kind": "api" }),
        json!({ "name": "a\u{1}b", "kind": "api" }),
        json!({ "name": "x".repeat(101), "kind": "api" }),
        json!({ "name": "n", "kind": "session" }),
        json!({ "name": "n", "kind": "api", "expires_in_days": 0 }),
        json!({ "name": "n", "kind": "api", "expires_in_days": 367 }),
        json!({ "name": "n", "kind": "api", "expires_in_days": 1.5 }),
        json!({ "name": "n", "kind": "api", "expires_in_days": "7" }),
        json!({ "name": "n", "kind": "api", "extra": true }),
        json!({ "name": 7, "kind": "api" }),
    ] {
        let a = c
            .call(
                Method::POST,
                "/api/tokens",
                c.api(Method::POST, "/api/tokens")
                    .bearer_auth(&api)
                    .json(&bad),
            )
            .await;
        assert_eq!(a.status, 400, "{bad}");
    }
    for raw in ["", "{", "name=x&kind=api", "\u{0}"] {
        let a = c
            .call(
                Method::POST,
                "/api/tokens",
                c.api(Method::POST, "/api/tokens")
                    .bearer_auth(&api)
                    .header(CONTENT_TYPE, "application/json")
                    .body(raw),
            )
            .await;
        assert_eq!(a.status, 400, "{raw:?}");
    }
    let a = c
        .call(
            Method::POST,
            "/api/tokens",
            c.api(Method::POST, "/api/tokens")
                .bearer_auth(&mcp)
                .json(&json!({ "name": "n", "kind": "api" })),
        )
        .await;
    assert_eq!(a.status, 401);

    // List: pages, bad parameters (repeated ones included), no token.
    let a = c
        .call(
            Method::GET,
            "/api/tokens",
            c.api(Method::GET, "/api/tokens").bearer_auth(&api),
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["tokens"].as_array().unwrap().len(), 4);
    let a = c
        .call(
            Method::GET,
            "/api/tokens",
            c.api(Method::GET, "/api/tokens?limit=1").bearer_auth(&api),
        )
        .await;
    assert_eq!(a.body["has_more"], true);
    let last = a.body["tokens"][0]["id"].as_str().unwrap().to_owned();
    let a = c
        .call(
            Method::GET,
            "/api/tokens",
            c.api(
                Method::GET,
                &format!("/api/tokens?limit=1000&starting_after={last}"),
            )
            .bearer_auth(&api),
        )
        .await;
    assert_eq!(
        (a.status, a.body["tokens"].as_array().unwrap().len()),
        (200, 3)
    );
    for query in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "limit=",
        "starting_after=x",
        "limit=1&limit=2",
        "starting_after=%FF",
    ] {
        let a = c
            .call(
                Method::GET,
                "/api/tokens",
                c.api(Method::GET, &format!("/api/tokens?{query}"))
                    .bearer_auth(&api),
            )
            .await;
        assert_eq!(a.status, 400, "{query}");
    }
    let a = c
        .call(
            Method::GET,
            "/api/tokens",
            c.api(Method::GET, "/api/tokens?limit=1&limit=2"),
        )
        .await;
    assert_eq!(a.status, 401, "authentication comes first");

    // Revoke: someone else's id, junk ids, no token, then the real one, twice.
    for id in [
        uuid::Uuid::new_v4().to_string(),
        "not-a-uuid".to_owned(),
        "%FF".to_owned(),
        "%00".to_owned(),
    ] {
        let a = c
            .call(
                Method::DELETE,
                "/api/tokens/{id}",
                c.api(Method::DELETE, &format!("/api/tokens/{id}"))
                    .bearer_auth(&api),
            )
            .await;
        assert_eq!(a.status, 404, "{id}");
    }
    let path = format!("/api/tokens/{new_id}");
    let a = c
        .call(
            Method::DELETE,
            "/api/tokens/{id}",
            c.api(Method::DELETE, &path),
        )
        .await;
    assert_eq!(a.status, 401);
    for expected in [204, 404] {
        let a = c
            .call(
                Method::DELETE,
                "/api/tokens/{id}",
                c.api(Method::DELETE, &path).bearer_auth(&api),
            )
            .await;
        assert_eq!(a.status, expected);
    }

    // Introspection.
    let intro = |c: &Conformance<'_>| {
        c.api(Method::POST, "/api/tokens/introspect")
            .basic_auth(US_INTROSPECTION_CLIENT_ID, Some(US_INTROSPECTION_SECRET))
    };
    for (token, active) in [
        (api.as_str(), true),
        (mcp.as_str(), true),
        (eu_token.as_str(), false),
        ("clk_us_scim_x", false),
        ("nonsense", false),
    ] {
        let a = c
            .call(
                Method::POST,
                "/api/tokens/introspect",
                intro(&c).form(&[("token", token), ("token_type_hint", "access_token")]),
            )
            .await;
        assert_eq!((a.status, &a.body["active"]), (200, &json!(active)));
    }
    for body in ["", "token=", "token=a&token=b", "token_type_hint=x", "%FF"] {
        let a = c
            .call(
                Method::POST,
                "/api/tokens/introspect",
                intro(&c)
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body),
            )
            .await;
        assert_eq!(a.status, 400, "{body:?}");
    }
    for bad in [
        c.api(Method::POST, "/api/tokens/introspect"),
        c.api(Method::POST, "/api/tokens/introspect")
            .basic_auth(US_INTROSPECTION_CLIENT_ID, Some("wrong")),
        c.api(Method::POST, "/api/tokens/introspect")
            .bearer_auth(&api),
        c.api(Method::POST, "/api/tokens/introspect")
            .header("authorization", "Basic !!!"),
    ] {
        let a = c
            .call(
                Method::POST,
                "/api/tokens/introspect",
                bad.form(&[("token", api.as_str())]),
            )
            .await;
        assert_eq!(a.status, 401);
    }

    c.assert_seen(&[
        ("ping", &[200]),
        ("getOpenApiDocument", &[200]),
        ("getMe", &[200, 401]),
        ("mcpWhoAmI", &[200, 401]),
        ("createToken", &[201, 400, 401]),
        ("listTokens", &[200, 400, 401]),
        ("revokeToken", &[204, 401, 404]),
        ("introspectToken", &[200, 400, 401]),
    ]);
}

/// An authorization code approved by the admin holding `cookie`.
async fn approved_code(stack: &TestStack, cookie: &str, redirect: &str) -> String {
    let r = stack
        .get(US_API, "/api/okta/scim/oauth/authorize")
        .query(&[
            ("response_type", "code"),
            ("client_id", US_SCIM_CLIENT_ID),
            ("redirect_uri", redirect),
            ("state", "s1"),
            ("scope", "scim.read scim.write entitlements.read"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let consent = url::Url::parse(r.headers()[LOCATION].to_str().unwrap()).unwrap();
    let path = format!("{}?{}", consent.path(), consent.query().unwrap_or_default());
    let html = stack
        .get(US_APP, &path)
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = stack
        .request(Method::POST, US_APP, "/oauth/consent")
        .header(COOKIE, cookie)
        .form(&[
            ("request", hidden(&html, "request").unwrap()),
            ("csrf", hidden(&html, "csrf").unwrap()),
            ("decision", "approve".to_owned()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let back = url::Url::parse(r.headers()[LOCATION].to_str().unwrap()).unwrap();
    back.query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code")
}

#[tokio::test]
async fn the_scim_oauth_token_endpoint_answers_as_documented() {
    const TOKEN: &str = "/api/okta/scim/oauth/token";
    let stack = TestStack::start().await.unwrap();
    let mut c = Conformance::new(&stack).await;
    let (_, _, cookie) = admin(&stack, "admin@acme.test").await;
    let redirect = okta_callback(4443, "closedloop_ai");
    let basic = |c: &Conformance<'_>| {
        c.api(Method::POST, TOKEN)
            .basic_auth(US_SCIM_CLIENT_ID, Some(US_SCIM_CLIENT_SECRET))
    };

    // The code grant with client_secret_basic, the refresh grant with client_secret_post.
    let code = approved_code(&stack, &cookie, &redirect).await;
    let a = c
        .call(
            Method::POST,
            TOKEN,
            basic(&c).form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", redirect.as_str()),
            ]),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.headers[CACHE_CONTROL], "no-store");
    let refresh = a.body["refresh_token"].as_str().unwrap().to_owned();
    let a = c
        .call(
            Method::POST,
            TOKEN,
            c.api(Method::POST, TOKEN).form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.as_str()),
                ("scope", "scim.read"),
                ("client_id", US_SCIM_CLIENT_ID),
                ("client_secret", US_SCIM_CLIENT_SECRET),
            ]),
        )
        .await;
    assert_eq!(
        (a.status, a.body["scope"].as_str()),
        (200, Some("scim.read"))
    );

    // Every kind of refusal.
    let form = "application/x-www-form-urlencoded";
    for (body, status) in [
        ("", 400),
        ("grant_type=password", 400),
        ("grant_type=client_credentials&scope=x", 400),
        ("grant_type=authorization_code", 400),
        ("grant_type=authorization_code&code=x", 400),
        ("grant_type=authorization_code&code=x&redirect_uri=y", 400),
        (
            "grant_type=authorization_code&code=clk_us_otc_x&redirect_uri=y&code_verifier=z",
            400,
        ),
        ("grant_type=refresh_token", 400),
        ("grant_type=refresh_token&refresh_token=x", 400),
        ("grant_type=refresh_token&refresh_token=clk_us_rt_x", 400),
        ("grant_type=refresh_token&refresh_token=x&scope=admin", 400),
        ("grant_type=refresh_token&grant_type=refresh_token", 400),
        ("grant_type=%FF%FE", 400),
    ] {
        let a = c
            .call(
                Method::POST,
                TOKEN,
                basic(&c).header(CONTENT_TYPE, form).body(body),
            )
            .await;
        assert_eq!(a.status, status, "{body:?}: {}", a.body);
    }
    // Reuse of the rotated refresh token revokes the grant.
    let a = c
        .call(
            Method::POST,
            TOKEN,
            basic(&c).form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)]),
        )
        .await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let a = c
        .call(
            Method::POST,
            TOKEN,
            basic(&c).json(&json!({ "grant_type": "refresh_token" })),
        )
        .await;
    assert_eq!(a.status, 400, "a JSON body is not a form");
    let refresh_form = [("grant_type", "refresh_token"), ("refresh_token", "x")];
    for bad in [
        c.api(Method::POST, TOKEN),
        c.api(Method::POST, TOKEN)
            .basic_auth(US_SCIM_CLIENT_ID, Some("wrong")),
        c.api(Method::POST, TOKEN)
            .basic_auth("someone", Some(US_SCIM_CLIENT_SECRET)),
        c.api(Method::POST, TOKEN)
            .header("authorization", "Basic !!!"),
        c.api(Method::POST, TOKEN)
            .header("authorization", "Basic bm9jb2xvbg=="),
    ] {
        let a = c.call(Method::POST, TOKEN, bad.form(&refresh_form)).await;
        assert_eq!(a.status, 401, "{}", a.body);
        assert!(a.headers.contains_key("www-authenticate"));
    }
    let a = c
        .call(
            Method::POST,
            TOKEN,
            c.api(Method::POST, TOKEN).form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", "x"),
                ("client_id", US_SCIM_CLIENT_ID),
                ("client_secret", "wrong"),
            ]),
        )
        .await;
    assert_eq!(a.status, 401);
    let a = c
        .call(
            Method::POST,
            TOKEN,
            basic(&c).form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", "x"),
                ("client_secret", US_SCIM_CLIENT_SECRET),
            ]),
        )
        .await;
    assert_eq!(a.status, 400, "two client authentication methods");

    c.assert_seen(&[("scimOAuthToken", &[200, 400, 401])]);
}

#[tokio::test]
async fn universal_logout_answers_as_documented() {
    const LOGOUT: &str = "/api/okta/universal-logout";
    let stack = TestStack::start().await.unwrap();
    let sim = OktaSim::start().await.unwrap();
    let mut c = Conformance::new(&stack).await;
    let (team_id, admin_id, _) = admin(&stack, "jane@acme.test").await;
    let app = sim.app();
    stack
        .configure_okta(
            Region::Us,
            &team_id,
            sim.base_url(),
            app.client_id(),
            &app.client_secret(),
        )
        .await;
    let endpoint = stack.universal_logout_endpoint(Region::Us);
    let jwt = || app.logout_jwt(endpoint.public_str(), None).unwrap();
    let send = |c: &Conformance<'_>, token: Option<String>, body: &str| {
        let req = c
            .api(Method::POST, LOGOUT)
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_owned());
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    };
    let by_email =
        |email: &str| json!({ "sub_id": { "format": "email", "email": email } }).to_string();

    for (body, status) in [
        (by_email("nobody@acme.test"), 404),
        (
            json!({ "subject": { "format": "opaque", "id": uuid::Uuid::new_v4() } }).to_string(),
            404,
        ),
        (
            json!({ "sub_id": { "format": "iss_sub", "iss": "https://elsewhere.okta.com", "sub": "00u1" } })
                .to_string(),
            403,
        ),
        (json!({ "sub_id": { "format": "phone_number", "phone_number": "+1" } }).to_string(), 400),
        (json!({ "sub_id": { "format": "email", "email": "jane" } }).to_string(), 400),
        ("[]".to_owned(), 400),
        ("not json".to_owned(), 400),
        ("x".repeat(20_000), 400),
        (
            json!({ "sub_id": { "format": "opaque", "id": admin_id } }).to_string(),
            204,
        ),
    ] {
        let a = c.call(Method::POST, LOGOUT, send(&c, Some(jwt()), &body)).await;
        assert_eq!(a.status, status, "{}: {}", &body[..body.len().min(80)], a.body);
    }
    for token in [
        None,
        Some("not.a.jwt".to_owned()),
        Some(jwt().replace('.', "")),
        Some(
            app.logout_jwt(
                "http://eu.api.closedloop.localhost/api/okta/universal-logout",
                None,
            )
            .unwrap(),
        ),
    ] {
        let a = c
            .call(
                Method::POST,
                LOGOUT,
                send(&c, token, &by_email("jane@acme.test")),
            )
            .await;
        assert_eq!(a.status, 401);
        assert!(a.headers.contains_key("www-authenticate"));
    }
    // A replayed JWT.
    let once = jwt();
    for status in [404, 401] {
        let a = c
            .call(
                Method::POST,
                LOGOUT,
                send(&c, Some(once.clone()), &by_email("nobody@acme.test")),
            )
            .await;
        assert_eq!(a.status, status);
    }
    c.assert_seen(&[("universalLogout", &[204, 400, 401, 403, 404])]);
}

/// How many examples schemathesis generates per operation and phase.
const SCHEMATHESIS_MAX_EXAMPLES: &str = "40";

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_that_breaks_the_document() {
    let Ok(schemathesis) = std::env::var("CLOSEDLOOP_SCHEMATHESIS") else {
        eprintln!(
            "CLOSEDLOOP_SCHEMATHESIS is not set: not running schemathesis \
             (tests/schemathesis/run.sh installs it and runs this test)"
        );
        return;
    };
    let max_examples = std::env::var("CLOSEDLOOP_SCHEMATHESIS_MAX_EXAMPLES")
        .unwrap_or_else(|_| SCHEMATHESIS_MAX_EXAMPLES.to_owned());
    // The per-client limit of the credential-checking endpoints would soon answer every
    // request `429` (documented, and tested where it lives): lifted, so that the
    // fuzzing reaches the endpoints' own checks.
    let stack = TestStack::start_configured(1, false, |c| {
        c.auth_rate_limit = RateLimit {
            per_second: 0,
            burst: 0,
        };
    })
    .await
    .unwrap();
    let sim = OktaSim::start().await.unwrap();
    let (team_id, _, cookie) = admin(&stack, "admin@acme.test").await;
    let api = create_on_page(&stack, Region::Us, &cookie, "schemathesis", "api").await;
    let mcp = create_on_page(&stack, Region::Us, &cookie, "schemathesis", "mcp").await;
    let app = sim.app();
    stack
        .configure_okta(
            Region::Us,
            &team_id,
            sim.base_url(),
            app.client_id(),
            &app.client_secret(),
        )
        .await;
    // A genuine logout JWT: its first request gets past authentication (and a replay of
    // it is refused), so the body checks are reached too.
    let logout_jwt = app
        .logout_jwt(
            stack.universal_logout_endpoint(Region::Us).public_str(),
            None,
        )
        .unwrap();

    let dir =
        std::env::temp_dir().join(format!("closedloop-schemathesis-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = format!(
        r#"# Written by tests/tests/e2e/openapi.rs for one run.
[auth.openapi.apiToken]
bearer = "${{CL_API_TOKEN}}"
[auth.openapi.mcpToken]
bearer = "${{CL_MCP_TOKEN}}"
[auth.openapi.introspectionClient]
username = "{US_INTROSPECTION_CLIENT_ID}"
password = "${{CL_INTROSPECTION_SECRET}}"
[auth.openapi.scimOAuthClient]
username = "{US_SCIM_CLIENT_ID}"
password = "${{CL_SCIM_SECRET}}"
[auth.openapi.oktaLogoutJwt]
bearer = "${{CL_LOGOUT_JWT}}"
"#
    );
    let config_path = dir.join("schemathesis.toml");
    std::fs::write(&config_path, config).unwrap();

    // The document exactly as the US worker serves it (its `servers` name the test
    // map's host, which resolves nowhere: requests go to the gateway with that `Host`).
    let served = stack
        .get(US_API, "/api/openapi.json")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let doc_path = dir.join("openapi.json");
    std::fs::write(&doc_path, &served).unwrap();
    let gateway = stack.gateway.url();
    let args: Vec<String> = vec![
        "--config-file".into(),
        config_path.display().to_string(),
        "run".into(),
        doc_path.display().to_string(),
        "--url".into(),
        gateway.clone(),
        "--header".into(),
        format!("Host: {US_API}"),
        "--checks".into(),
        "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance".into(),
        "--max-examples".into(),
        max_examples,
        "--seed".into(),
        std::env::var("CLOSEDLOOP_SCHEMATHESIS_SEED").unwrap_or_else(|_| "1".into()),
        "--workers".into(),
        "2".into(),
        "--request-timeout".into(),
        "20".into(),
        "--report".into(),
        "junit".into(),
        "--report-dir".into(),
        dir.display().to_string(),
    ];
    // schemathesis's generator (Hypothesis, on CPython 3.11) now and then dies in its
    // own code ("Runtime Error": `SystemError: AST constructor recursion depth
    // mismatch` while describing a strategy), a CPython bug unrelated to the API. Such
    // a run, with no failed check, is run again (at most twice); any failed check
    // fails at once.
    for attempt in 1..=3 {
        let started = Instant::now();
        let mut command = tokio::process::Command::new(&schemathesis);
        command
            .args(&args)
            .current_dir(&dir)
            .env("CL_API_TOKEN", &api)
            .env("CL_MCP_TOKEN", &mcp)
            .env("CL_INTROSPECTION_SECRET", US_INTROSPECTION_SECRET)
            .env("CL_SCIM_SECRET", US_SCIM_CLIENT_SECRET)
            .env("CL_LOGOUT_JWT", &logout_jwt)
            .env("NO_COLOR", "1")
            .kill_on_drop(true);
        let output = tokio::time::timeout(Duration::from_secs(900), command.output())
            .await
            .expect("schemathesis finishes within 15 minutes")
            .expect("schemathesis runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        println!("{stdout}\n{stderr}");
        println!(
            "schemathesis took {:.0} s (attempt {attempt})",
            started.elapsed().as_secs_f64()
        );
        if output.status.success() {
            break;
        }
        let generator_crash_only = stdout.contains("Runtime Error")
            && stdout.contains("AST constructor recursion depth mismatch")
            && !stdout.contains("Failures:")
            && !stdout.contains("FAILURES");
        assert!(
            generator_crash_only && attempt < 3,
            "schemathesis found problems (exit {:?}); report in {}",
            output.status.code(),
            dir.display()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
