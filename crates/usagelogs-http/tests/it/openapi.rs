//! The OpenAPI document: the committed snapshot, the operation ids, the served copy and the
//! Swagger UI.

use crate::support::TestApp;
use actix_web::http::StatusCode;
use serde_json::Value;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi/openapi.json");

/// `UPDATE_OPENAPI=1 cargo test -p usagelogs-http openapi` rewrites the committed file.
#[test]
fn committed_document_is_up_to_date() {
    let generated = usagelogs_http::openapi_json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(COMMITTED, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is out of date with the code: run \
         `cargo run -p usagelogs -- openapi > openapi/openapi.json` (or UPDATE_OPENAPI=1 cargo test -p usagelogs-http) \
         and commit the result"
    );
}

#[test]
fn document_has_the_quay_operations() {
    let doc: Value = serde_json::from_str(&usagelogs_http::openapi_json()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    let mut ids = std::collections::BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if let Some(id) = op.get("operationId").and_then(Value::as_str) {
                ids.insert(id.to_owned(), (method.clone(), path.clone()));
            }
        }
    }
    let expected = [
        ("listUserLogs", "get", "/api/v1/user/logs"),
        ("getAggregateUserLogs", "get", "/api/v1/user/aggregatelogs"),
        ("listOrgLogs", "get", "/api/v1/organization/{orgname}/logs"),
        ("getAggregateOrgLogs", "get", "/api/v1/organization/{orgname}/aggregatelogs"),
        ("listRepoLogs", "get", "/api/v1/repository/{repository}/logs"),
        ("getAggregateRepoLogs", "get", "/api/v1/repository/{repository}/aggregatelogs"),
    ];
    for (id, method, path) in expected {
        assert_eq!(ids.get(id), Some(&(method.to_owned(), path.to_owned())), "{id}");
    }
    // The export operations, once documented, keep Quay's ids.
    for (id, path) in [
        ("exportUserLogs", "/api/v1/user/exportlogs"),
        ("exportOrgLogs", "/api/v1/organization/{orgname}/exportlogs"),
        ("exportRepoLogs", "/api/v1/repository/{repository}/exportlogs"),
    ] {
        if doc["paths"].get(path).is_some() {
            assert_eq!(ids.get(id), Some(&("post".to_owned(), path.to_owned())), "{id}");
        }
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[actix_web::test]
async fn served_document_and_swagger_ui() {
    let api = TestApp::new().start().await;
    let r = api.get("/api/v1/openapi.json", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("content-type").is_some_and(|ct| ct.starts_with("application/json")));
    assert_eq!(r.text(), usagelogs_http::openapi_json());

    let r = api.get("/docs", None).await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(r.header("location"), Some("/docs/"));

    let r = api.get("/docs/", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("content-type").is_some_and(|ct| ct.starts_with("text/html")), "{:?}", r.headers);
    let html = r.text().to_lowercase();
    assert!(html.contains("<html") && html.contains("swagger"), "{html}");
    // The UI's assets come from the binary, not a CDN.
    assert!(!html.contains("cdn") && !html.contains("unpkg"), "{html}");
    let r = api.get("/docs/swagger-ui.css", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = api.get("/docs/swagger-initializer.js", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("/api/v1/openapi.json"));
}
