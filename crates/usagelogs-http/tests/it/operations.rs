//! Health, readiness, metrics and the kind catalog (contract §6).

use crate::support::{TestApp, assert_api_error, entry, tokens};
use actix_web::http::StatusCode;
use serde_json::json;

#[actix_web::test]
async fn health_and_readiness() {
    let api = TestApp::new().start().await;
    let r = api.get("/healthz", None).await;
    assert_eq!((r.status, r.json()), (StatusCode::OK, json!({"status": "ok"})));
    let r = api.get("/readyz", None).await;
    assert_eq!((r.status, r.json()), (StatusCode::OK, json!({"status": "ready"})));
}

#[actix_web::test]
async fn readiness_on_postgres() {
    let api = TestApp::on(usagelogs_store::Backend::Postgres).start().await;
    let r = api.get("/readyz", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

#[actix_web::test]
async fn metrics_count_requests_by_route_and_ingested_entries() {
    let api = TestApp::new().with_entries([entry("push_repo", "acme")]).start().await;
    let token = tokens::user("acme");
    api.get_ok("/api/v1/organization/acme/logs", &token).await;
    api.get_ok("/api/v1/organization/acme/logs", &token).await;
    api.get("/api/v1/organization/acme/logs", None).await;
    api.get("/definitely/not/here", None).await;
    let batch = json!([{"kind": "pull_repo", "namespace": "acme"}, {"kind": "pull_repo", "namespace": "acme"}]);
    let r = api.post("/api/v1/logs", Some(&tokens::with_scope("w", "logs:write")), &batch).await;
    assert_eq!(r.status, StatusCode::CREATED);

    let r = api.get("/metrics", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("content-type").is_some_and(|ct| ct.starts_with("text/plain")));
    let text = r.text();
    let line = |needle: &[&str]| {
        text.lines()
            .find(|l| l.starts_with("usagelogs_http_requests_total{") && needle.iter().all(|n| l.contains(n)))
            .unwrap_or_else(|| panic!("no requests line with {needle:?} in:\n{text}"))
            .to_owned()
    };
    let route = r#"route="/api/v1/organization/{orgname}/logs""#;
    assert!(line(&[route, r#"status="200""#, r#"method="GET""#]).ends_with(" 2"), "{text}");
    assert!(line(&[route, r#"status="401""#]).ends_with(" 1"), "{text}");
    assert!(line(&[r#"route="/api/v1/logs""#, r#"status="201""#, r#"method="POST""#]).ends_with(" 1"), "{text}");
    // Unmatched paths do not each get a label of their own.
    assert!(!text.contains("/definitely/not/here"), "{text}");
    assert!(text.lines().any(|l| l == "usagelogs_ingested_entries_total 2"), "{text}");
    assert!(text.contains("usagelogs_http_request_duration_seconds"), "{text}");
}

#[actix_web::test]
async fn the_kind_catalog_needs_a_token() {
    let api = TestApp::new().start().await;
    let r = api.get("/api/v1/logs/kinds", None).await;
    assert_api_error(&r, 401, "invalid_token", &["Requires authentication"]);
    let r = api.get("/api/v1/logs/kinds", Some(&tokens::bad_signature("acme"))).await;
    assert_api_error(&r, 401, "invalid_token", &[]);
    // Any valid token, whatever its scope.
    let body = api.get_ok("/api/v1/logs/kinds", &tokens::with_scope("acme", "")).await;
    let kinds = body["kinds"].as_array().unwrap();
    assert_eq!(kinds.len(), 146);
    let names: std::collections::BTreeSet<&str> = kinds.iter().map(|k| k["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 146, "names are unique");
    for name in
        ["push_repo", "pull_repo", "create_tag", "org_create_team", "export_logs_success", "export_logs_failure"]
    {
        assert!(names.contains(name), "{name}");
    }
    let service_keys: Vec<&str> =
        kinds.iter().filter(|k| k["service_key"] == true).map(|k| k["name"].as_str().unwrap()).collect();
    assert_eq!(
        service_keys.iter().copied().collect::<std::collections::BTreeSet<_>>(),
        [
            "service_key_approve",
            "service_key_create",
            "service_key_delete",
            "service_key_extend",
            "service_key_modify",
            "service_key_rotate"
        ]
        .into_iter()
        .collect()
    );
}
