//! The database goes away and comes back: 503 ApiError meanwhile, then service resumes by itself.

use crate::support::*;
use actix_web::http::StatusCode;
use usagelogs_store::Backend;

#[actix_web::test]
async fn database_outage_is_503_and_the_server_recovers_by_itself_on_postgres() {
    let api = TestApp::on(Backend::Postgres)
        .with_entries([entry("push_repo", "acme").at("2024-03-05T00:00:00Z")])
        .start()
        .await;
    let admin = tokens::org_admin("alice", "acme");
    let path = "/api/v1/organization/acme/logs?starttime=03/05/2024&endtime=03/05/2024";
    assert_eq!(api.get(path, Some(&admin)).await.status, StatusCode::OK);
    assert_eq!(api.get("/readyz", None).await.status, StatusCode::OK);

    let db = api.fixture.as_ref().unwrap().database();
    db.begin_outage();
    let r = api.get(path, Some(&admin)).await;
    let body = assert_api_error(&r, 503, "service_unavailable", &[]);
    assert!(!body.contains("ALLOW_CONNECTIONS") && !body.contains("FATAL"), "no cause shown: {body}");
    let r = api.get("/readyz", None).await;
    assert_api_error(&r, 503, "service_unavailable", &[]);
    assert_eq!(api.get("/healthz", None).await.status, StatusCode::OK, "the process is still up");

    db.end_outage();
    let page = api.get_ok(path, &admin).await;
    assert_eq!(page["logs"].as_array().unwrap().len(), 1);
    assert_eq!(api.get("/readyz", None).await.status, StatusCode::OK);
}
