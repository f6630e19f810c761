//! Every error is Quay's ApiError JSON (contract §5), actix's own included.

use crate::support::{TestApp, assert_api_error, entry, tokens};
use actix_web::test::TestRequest;
use usagelogs_core::SuperuserLevel::Full;

#[actix_web::test]
async fn unknown_routes_are_404() {
    let api = TestApp::new().start().await;
    let token = tokens::superuser("root", Full);
    for path in
        ["/api/v1/nope", "/nope", "/", "/api/v1/user/logs/extra", "/api/v1/organization/acme", "/api/v2/user/logs"]
    {
        let r = api.get(path, Some(&token)).await;
        assert_api_error(&r, 404, "not_found", &[]);
        // Without a token too: a missing route is not an authentication question.
        let r = api.get(path, None).await;
        assert_api_error(&r, 404, "not_found", &[]);
    }
}

#[actix_web::test]
async fn wrong_methods_are_405() {
    let api = TestApp::new().start().await;
    let token = tokens::superuser("root", Full);
    let cases = [
        TestRequest::delete().uri("/api/v1/user/logs"),
        TestRequest::post().uri("/api/v1/organization/acme/logs"),
        TestRequest::put().uri("/api/v1/repository/acme/web/aggregatelogs"),
        TestRequest::get().uri("/api/v1/logs"),
        TestRequest::post().uri("/healthz"),
        TestRequest::delete().uri("/metrics"),
        TestRequest::post().uri("/api/v1/openapi.json"),
    ];
    for req in cases {
        let r = api.send(req.insert_header(("Authorization", format!("Bearer {token}")))).await;
        assert_api_error(&r, 405, "method_not_allowed", &[]);
    }
}

#[actix_web::test]
async fn bad_query_strings_and_paths_are_400() {
    let api = TestApp::new().with_entries([entry("push_repo", "acme").repo("web")]).start().await;
    let token = tokens::superuser("root", Full);
    for path in [
        "/api/v1/user/logs?starttime=%ZZ",
        "/api/v1/organization/acme/logs?endtime=%ZZ%ZZ",
        "/api/v1/organization/acme/aggregatelogs?starttime=%FF%FE",
        "/api/v1/organization/bad%20name/logs",
        "/api/v1/organization/-acme/logs",
        // A repository path needs a namespace and a name.
        "/api/v1/repository/acme/logs",
        "/api/v1/repository/acme//web/logs",
    ] {
        let r = api.get(path, Some(&token)).await;
        assert_api_error(&r, 400, "invalid_request", &[]);
    }
}

#[actix_web::test]
async fn type_url_uses_the_request_host_or_the_public_url() {
    let api = TestApp::new().start().await;
    let r = api.send(TestRequest::get().uri("/api/v1/nope").insert_header(("Host", "logs.example.com:8443"))).await;
    assert_api_error(&r, 404, "not_found", &[]);
    assert_eq!(r.json()["type"], "http://logs.example.com:8443/api/v1/error/not_found");
    let r = api.get("/api/v1/user/logs", None).await;
    assert_eq!(r.json()["type"], "http://localhost:8080/api/v1/error/invalid_token");

    let public = TestApp::new().with_public_url("https://quay.example.com/").start().await;
    let r = public.send(TestRequest::get().uri("/api/v1/user/logs").insert_header(("Host", "internal:8080"))).await;
    assert_api_error(&r, 401, "invalid_token", &[]);
    assert_eq!(r.json()["type"], "https://quay.example.com/api/v1/error/invalid_token");
}

/// Byte for byte, the body of a 403 is Quay's (key order included).
#[actix_web::test]
async fn error_body_is_exact() {
    let api = TestApp::new().with_entries([entry("push_repo", "acme")]).start().await;
    let r = api.get("/api/v1/organization/acme/logs", Some(&tokens::user("mallory"))).await;
    assert_eq!(r.status.as_u16(), 403);
    assert_eq!(
        r.text(),
        r#"{"detail":"Unauthorized","error_message":"Unauthorized","error_type":"insufficient_scope","title":"insufficient_scope","type":"http://localhost:8080/api/v1/error/insufficient_scope","status":403}"#
    );
}
