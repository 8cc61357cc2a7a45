//! The OpenAPI document (`GET /v1/openapi.json`) is generated from the handlers; these tests
//! keep it and the router's route list (`ROUTES`) the same set, and check it is well formed.

use std::collections::BTreeSet;

use axum::response::IntoResponse;
use leadscaller::control::api::openapi::document;
use leadscaller::control::api::{ApiError, ROUTES};
use serde_json::Value;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every `(METHOD, path)` of the document.
fn documented() -> BTreeSet<(String, String)> {
    let paths = document()["paths"].as_object().expect("paths is an object");
    let mut out = BTreeSet::new();
    for (path, item) in paths {
        for m in METHODS {
            if item.get(m).is_some() {
                out.insert((m.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn document_is_openapi_3_1_json() {
    let doc = document();
    let version = doc["openapi"].as_str().expect("openapi field");
    assert!(version.starts_with("3.1."), "{version}");
    // It is what the route serves: serialisable and parseable again.
    let text = serde_json::to_string(doc).unwrap();
    let back: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(&back, doc);
    assert_eq!(doc["info"]["title"], "LeadsCaller API");
}

#[test]
fn every_route_is_documented() {
    let documented = documented();
    let missing: Vec<_> = ROUTES
        .iter()
        .filter(|(m, p)| !documented.contains(&(m.to_string(), p.to_string())))
        .collect();
    assert!(
        missing.is_empty(),
        "routes without #[utoipa::path]: {missing:?}"
    );
}

#[test]
fn nothing_documented_is_stale() {
    let routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let stale: Vec<_> = documented().difference(&routes).cloned().collect();
    assert!(stale.is_empty(), "documented but not in ROUTES: {stale:?}");
    assert!(
        !documented().iter().any(|(_, p)| p == "/v1/openapi.json"),
        "the document itself is not an authenticated route"
    );
}

#[test]
fn every_operation_has_a_tag_a_success_and_the_error_body() {
    let doc = document();
    assert_eq!(doc["security"][0]["bearer"], serde_json::json!([]));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in METHODS {
            let Some(op) = item.get(m) else { continue };
            let at = format!("{m} {path}");
            assert!(op["tags"][0].is_string(), "{at}: no tag");
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|k| k.starts_with('2')),
                "{at}: no success response"
            );
            for status in ["401", "403", "default"] {
                assert_eq!(
                    responses[status]["$ref"], "#/components/responses/Error",
                    "{at}: {status}"
                );
            }
            for (status, r) in responses {
                if (status.starts_with('4') || status.starts_with('5')) && r.get("$ref").is_none() {
                    assert_eq!(
                        r["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{at}: {status} has the error body"
                    );
                }
            }
            let id = op["operationId"].as_str().expect("operationId").to_owned();
            assert!(
                ids.insert(id.clone()),
                "{at}: operationId {id} is not unique"
            );
            if path.contains("{id}") {
                let params = op["parameters"].as_array().expect("parameters");
                assert!(
                    params
                        .iter()
                        .any(|p| p["name"] == "id" && p["in"] == "path"),
                    "{at}: id path parameter"
                );
            }
        }
    }
}

/// Collects every `$ref` in `v`.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|v| refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_reference_resolves() {
    let doc = document();
    let mut all = Vec::new();
    refs(doc, &mut all);
    assert!(all.len() > 40, "{}", all.len());
    for r in all {
        let pointer = r.strip_prefix('#').expect("local reference");
        assert!(doc.pointer(pointer).is_some(), "dangling {r}");
    }
}

#[test]
fn list_routes_document_paging() {
    let doc = document();
    let get = &doc["paths"]["/v1/leads"]["get"];
    let names: Vec<&str> = get["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for n in ["limit", "cursor", "since", "until", "status", "campaign_id"] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    let page = &doc["components"]["schemas"]["LeadPage"]["properties"];
    assert!(page["data"].is_object() && page["next_cursor"].is_object());
    let import = &doc["paths"]["/v1/leads/import"]["post"];
    assert!(import["requestBody"]["content"]["text/csv"].is_object());
    let audio = &doc["paths"]["/v1/recordings/{id}/audio"]["get"]["responses"]["200"];
    assert_eq!(
        audio["content"]["audio/wav"]["schema"]["$ref"],
        "#/components/schemas/Binary"
    );
    assert_eq!(doc["components"]["schemas"]["Binary"]["format"], "binary");
}

#[tokio::test]
async fn the_error_body_sent_matches_its_schema() {
    let resp = ApiError::invalid("phone", "bad").into_response();
    let bytes = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["error"]["code"], "invalid_field");
    assert_eq!(body["error"]["field"], "phone");
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    let detail = &schemas["ErrorDetail"]["properties"];
    let sent: BTreeSet<&String> = body["error"].as_object().unwrap().keys().collect();
    let described: BTreeSet<&String> = detail.as_object().unwrap().keys().collect();
    assert_eq!(sent, described);
    assert!(schemas["ErrorBody"]["properties"]["error"].is_object());
}
