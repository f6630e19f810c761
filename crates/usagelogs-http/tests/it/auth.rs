//! Authentication and authorization (contract §2): the endpoint × caller matrix, scopes, and
//! permission before existence.

use crate::support::{Api, AppService, TestApp, assert_api_error, entry, tokens};
use actix_web::http::StatusCode;
use serde_json::json;
use usagelogs_core::SuperuserLevel::{Full, Readonly};
use usagelogs_core::{AccessGrant, Claims};
use usagelogs_store::Backend;

/// The callers of the matrix, in column order.
#[derive(Debug, Clone, Copy)]
enum Who {
    NoToken,
    BadSignature,
    Expired,
    AlgNone,
    OtherAlgorithm,
    /// Own namespace, grants and superuser, but no scope at all.
    MissingScope,
    /// Administers `other`, not `acme`.
    OtherOrgAdmin,
    /// Organization admin grant over `acme`.
    OrgAdmin,
    /// Repository admin grant over `acme/web`.
    RepoAdmin,
    /// `sub` = `acme`.
    OwnNamespace,
    SuperuserFull,
    SuperuserReadonly,
}

const WHO: [Who; 12] = [
    Who::NoToken,
    Who::BadSignature,
    Who::Expired,
    Who::AlgNone,
    Who::OtherAlgorithm,
    Who::MissingScope,
    Who::OtherOrgAdmin,
    Who::OrgAdmin,
    Who::RepoAdmin,
    Who::OwnNamespace,
    Who::SuperuserFull,
    Who::SuperuserReadonly,
];

fn token(who: Who) -> Option<String> {
    Some(match who {
        Who::NoToken => return None,
        Who::BadSignature => tokens::bad_signature("acme"),
        Who::Expired => tokens::expired("acme"),
        Who::AlgNone => tokens::alg_none("acme"),
        Who::OtherAlgorithm => tokens::other_algorithm("acme"),
        Who::MissingScope => tokens::sign(&Claims {
            scope: String::new(),
            access: vec![tokens::grant("organization", "acme"), tokens::grant("repository", "acme/web")],
            superuser: Some(Full),
            ..tokens::claims("acme")
        }),
        Who::OtherOrgAdmin => tokens::org_admin("mallory", "other"),
        Who::OrgAdmin => tokens::org_admin("alice", "acme"),
        Who::RepoAdmin => tokens::repo_admin("carol", "acme/web"),
        Who::OwnNamespace => tokens::user("acme"),
        Who::SuperuserFull => tokens::superuser("root", Full),
        Who::SuperuserReadonly => tokens::superuser("auditor", Readonly),
    })
}

/// One row: a request and the expected status per caller, in [`WHO`] order.
struct Row {
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    expect: [u16; 12],
}

const INGEST_BODY: &str =
    r#"[{"kind": "pull_repo", "namespace": "acme", "repository": "web", "datetime": "2024-03-05T12:00:00Z"}]"#;

/// Contract §2. The export endpoints get their rows here once they are routed (POST, body `{}`,
/// 201; the repository export refuses the read-only superuser).
#[rustfmt::skip]
const MATRIX: &[Row] = &[
    //                                                                                 none  sig  exp none 384 scope other  org repo  own su-f su-ro
    Row { method: "GET",  path: "/api/v1/user/logs?starttime=03/01/2024&endtime=03/05/2024",                          body: None, expect: [401, 401, 401, 401, 401, 403, 200, 200, 200, 200, 200, 200] },
    Row { method: "GET",  path: "/api/v1/user/aggregatelogs?starttime=03/01/2024&endtime=03/05/2024",                 body: None, expect: [401, 401, 401, 401, 401, 403, 200, 200, 200, 200, 200, 200] },
    Row { method: "GET",  path: "/api/v1/organization/acme/logs?starttime=03/01/2024&endtime=03/05/2024",             body: None, expect: [401, 401, 401, 401, 401, 403, 403, 200, 403, 200, 200, 200] },
    Row { method: "GET",  path: "/api/v1/organization/acme/aggregatelogs?starttime=03/01/2024&endtime=03/05/2024",    body: None, expect: [401, 401, 401, 401, 401, 403, 403, 200, 403, 200, 200, 200] },
    Row { method: "GET",  path: "/api/v1/repository/acme/web/logs?starttime=03/01/2024&endtime=03/05/2024",           body: None, expect: [401, 401, 401, 401, 401, 403, 403, 200, 200, 200, 200, 200] },
    Row { method: "GET",  path: "/api/v1/repository/acme/web/aggregatelogs?starttime=03/01/2024&endtime=03/05/2024",  body: None, expect: [401, 401, 401, 401, 401, 403, 403, 200, 200, 200, 200, 200] },
    Row { method: "POST", path: "/api/v1/user/exportlogs?starttime=03/01/2024&endtime=03/05/2024",                  body: Some("{}"), expect: [401, 401, 401, 401, 401, 403, 201, 201, 201, 201, 201, 201] },
    Row { method: "POST", path: "/api/v1/organization/acme/exportlogs?starttime=03/01/2024&endtime=03/05/2024",     body: Some("{}"), expect: [401, 401, 401, 401, 401, 403, 403, 201, 403, 201, 201, 201] },
    Row { method: "POST", path: "/api/v1/repository/acme/web/exportlogs?starttime=03/01/2024&endtime=03/05/2024",   body: Some("{}"), expect: [401, 401, 401, 401, 401, 403, 403, 201, 201, 201, 201, 403] },
    Row { method: "POST", path: "/api/v1/logs",                                                                       body: Some(INGEST_BODY), expect: [401, 401, 401, 401, 401, 403, 201, 201, 201, 201, 201, 201] },
];

async fn app(backend: Backend) -> Api<impl AppService> {
    TestApp::on(backend)
        .with_entries([
            entry("push_repo", "acme").repo("web").by("alice").at("2024-03-05T13:07:09Z"),
            entry("push_repo", "acme").repo("api").by("alice").at("2024-03-05T13:07:10Z"),
            entry("org_create_team", "acme").by("alice").at("2024-03-04T10:00:00Z"),
            entry("push_repo", "other").repo("web").by("mallory").at("2024-03-05T13:07:09Z"),
        ])
        .start()
        .await
}

async fn matrix(backend: Backend) {
    let api = app(backend).await;
    let mut failures = Vec::new();
    for row in MATRIX {
        for (who, expected) in WHO.into_iter().zip(row.expect) {
            let token = token(who);
            let resp = match row.method {
                "GET" => api.get(row.path, token.as_deref()).await,
                "POST" => {
                    api.post_raw(row.path, token.as_deref(), Some("application/json"), row.body.unwrap_or(""), &[])
                        .await
                }
                other => unreachable!("method {other}"),
            };
            if resp.status.as_u16() != expected {
                failures.push(format!(
                    "{} {} as {who:?}: expected {expected}, got {} {}",
                    row.method,
                    row.path,
                    resp.status,
                    resp.text()
                ));
                continue;
            }
            match expected {
                401 => {
                    assert_api_error(&resp, 401, "invalid_token", &[]);
                    assert_eq!(resp.json()["detail"], "Requires authentication");
                }
                403 => {
                    assert_api_error(&resp, 403, "insufficient_scope", &[]);
                    assert_eq!(resp.json()["detail"], "Unauthorized");
                }
                200 => {
                    let body = resp.json();
                    assert!(body.get("logs").is_some() || body.get("aggregated").is_some(), "{body}");
                }
                201 if row.path.contains("/exportlogs") => {
                    let id = resp.json()["export_id"].as_str().unwrap().to_owned();
                    let location = resp.header("location").unwrap();
                    assert!(location.ends_with(&format!("/exportlogs/{id}")), "{location}");
                }
                201 => assert_eq!(resp.json(), json!({"accepted": 1})),
                _ => {}
            }
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

/// What the org admin of `acme`, the repository admin and the others see is really theirs: the
/// org list of `acme` holds `acme`'s entries only, whoever asks.
async fn callers_see_the_same_entries(backend: Backend) {
    let api = app(backend).await;
    let path = "/api/v1/organization/acme/logs?starttime=03/01/2024&endtime=03/05/2024";
    let reference = api.get_ok(path, &tokens::user("acme")).await;
    assert_eq!(reference["logs"].as_array().unwrap().len(), 3);
    for who in [Who::OrgAdmin, Who::SuperuserFull, Who::SuperuserReadonly] {
        assert_eq!(api.get_ok(path, &token(who).unwrap()).await, reference, "{who:?}");
    }
    let repo = "/api/v1/repository/acme/web/logs?starttime=03/01/2024&endtime=03/05/2024";
    let repo_logs = api.get_ok(repo, &token(Who::RepoAdmin).unwrap()).await;
    assert_eq!(repo_logs["logs"].as_array().unwrap().len(), 1);
    // The other org's admin sees their own namespace through the user endpoints.
    let own = api.get_ok("/api/v1/user/logs?starttime=03/01/2024&endtime=03/05/2024", &tokens::user("other")).await;
    assert_eq!(own["logs"].as_array().unwrap().len(), 1);
    assert_eq!(own["logs"][0]["performer"]["name"], "mallory");
}

on_both_backends!(matrix, callers_see_the_same_entries);

/// Each endpoint needs its own scope: every other scope, own namespace and superuser do not help.
#[actix_web::test]
async fn each_endpoint_needs_its_own_scope() {
    let api = app(Backend::Sqlite).await;
    let q = "?starttime=03/01/2024&endtime=03/05/2024";
    let cases = [
        ("user:admin", format!("/api/v1/user/logs{q}")),
        ("user:admin", format!("/api/v1/user/aggregatelogs{q}")),
        ("org:admin", format!("/api/v1/organization/acme/logs{q}")),
        ("org:admin", format!("/api/v1/organization/acme/aggregatelogs{q}")),
        ("repo:admin", format!("/api/v1/repository/acme/web/logs{q}")),
        ("repo:admin", format!("/api/v1/repository/acme/web/aggregatelogs{q}")),
    ];
    for (needed, path) in &cases {
        let others: Vec<&str> = crate::support::ALL_SCOPES.split(' ').filter(|s| s != needed).collect();
        let without =
            tokens::sign(&Claims { scope: others.join(" "), superuser: Some(Full), ..tokens::claims("acme") });
        let r = api.get(path, Some(&without)).await;
        assert_api_error(&r, 403, "insufficient_scope", &["Unauthorized"]);
        let only = tokens::with_scope("acme", needed);
        assert_eq!(api.get(path, Some(&only)).await.status, StatusCode::OK, "{path} with only {needed}");
    }
    // Ingestion needs logs:write and nothing else.
    let r = api
        .post_raw(
            "/api/v1/logs",
            Some(&tokens::with_scope("acme", "user:admin org:admin repo:admin")),
            Some("application/json"),
            INGEST_BODY,
            &[],
        )
        .await;
    assert_api_error(&r, 403, "insufficient_scope", &[]);
    let r = api
        .post_raw(
            "/api/v1/logs",
            Some(&tokens::with_scope("x", "logs:write")),
            Some("application/json"),
            INGEST_BODY,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

/// Grants: only `admin` counts; a repository grant covers that repository only; an
/// organization grant covers all its repositories.
#[actix_web::test]
async fn grants_are_precise() {
    let api = app(Backend::Sqlite).await;
    let q = "?starttime=03/01/2024&endtime=03/05/2024";
    let pull_only = tokens::sign(&Claims {
        access: vec![AccessGrant {
            actions: vec!["pull".into(), "push".into()],
            ..tokens::grant("organization", "acme")
        }],
        ..tokens::claims("dave")
    });
    assert_eq!(
        api.get(&format!("/api/v1/organization/acme/logs{q}"), Some(&pull_only)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.get(&format!("/api/v1/repository/acme/web/logs{q}"), Some(&pull_only)).await.status,
        StatusCode::FORBIDDEN
    );

    let repo_admin = tokens::repo_admin("carol", "acme/web");
    assert_eq!(
        api.get(&format!("/api/v1/repository/acme/web/logs{q}"), Some(&repo_admin)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        api.get(&format!("/api/v1/repository/acme/api/logs{q}"), Some(&repo_admin)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.get(&format!("/api/v1/repository/acme/api/aggregatelogs{q}"), Some(&repo_admin)).await.status,
        StatusCode::FORBIDDEN
    );

    // A repository grant named like an organization does not open the organization.
    let misnamed = tokens::repo_admin("carol", "acme");
    assert_eq!(
        api.get(&format!("/api/v1/organization/acme/logs{q}"), Some(&misnamed)).await.status,
        StatusCode::FORBIDDEN
    );

    let org_admin = tokens::org_admin("alice", "acme");
    assert_eq!(api.get(&format!("/api/v1/repository/acme/api/logs{q}"), Some(&org_admin)).await.status, StatusCode::OK);
    assert_eq!(
        api.get(&format!("/api/v1/organization/other/logs{q}"), Some(&org_admin)).await.status,
        StatusCode::FORBIDDEN
    );
}

/// The bearer header itself: scheme case, other schemes, empty tokens, garbage.
#[actix_web::test]
async fn bearer_header_forms() {
    use actix_web::test::TestRequest;
    let api = app(Backend::Sqlite).await;
    let path = "/api/v1/user/logs?starttime=03/01/2024&endtime=03/05/2024";
    let good = tokens::user("acme");
    let send = |value: String| TestRequest::get().uri(path).insert_header(("Authorization", value));
    assert_eq!(api.send(send(format!("bearer {good}"))).await.status, StatusCode::OK);
    for value in [
        format!("Basic {good}"),
        good.clone(),
        "Bearer ".to_owned(),
        "Bearer not.a.jwt".to_owned(),
        "Bearer a.b.c".to_owned(),
        format!("Bearer {}x", good),
    ] {
        let r = api.send(send(value.clone())).await;
        assert_api_error(&r, 401, "invalid_token", &["Requires authentication"]);
    }
}

/// Permission is checked before existence: unknown namespaces and repositories answer 403 to
/// callers who could not see them anyway, 404 to those who could.
async fn permission_before_existence(backend: Backend) {
    let api = app(backend).await;
    let q = "?starttime=03/01/2024&endtime=03/05/2024";
    let cases: [(&str, String, u16); 14] = [
        ("/api/v1/organization/ghost/logs", tokens::org_admin("alice", "acme"), 403),
        ("/api/v1/organization/ghost/aggregatelogs", tokens::org_admin("alice", "acme"), 403),
        ("/api/v1/organization/ghost/logs", tokens::superuser("root", Full), 404),
        ("/api/v1/organization/ghost/aggregatelogs", tokens::superuser("auditor", Readonly), 404),
        ("/api/v1/organization/ghost/logs", tokens::user("ghost"), 404),
        ("/api/v1/organization/ghost/logs", tokens::org_admin("alice", "ghost"), 404),
        ("/api/v1/repository/acme/nope/logs", tokens::repo_admin("carol", "acme/web"), 403),
        ("/api/v1/repository/acme/nope/aggregatelogs", tokens::repo_admin("carol", "acme/web"), 403),
        ("/api/v1/repository/acme/nope/logs", tokens::org_admin("alice", "acme"), 404),
        ("/api/v1/repository/acme/nope/aggregatelogs", tokens::user("acme"), 404),
        ("/api/v1/repository/acme/nope/logs", tokens::repo_admin("carol", "acme/nope"), 404),
        ("/api/v1/repository/ghost/web/logs", tokens::org_admin("alice", "acme"), 403),
        ("/api/v1/repository/ghost/web/logs", tokens::superuser("root", Full), 404),
        // Without the scope, even the owner of an unknown namespace gets 403.
        ("/api/v1/organization/ghost/logs", tokens::with_scope("ghost", "user:admin"), 403),
    ];
    for (path, token, expected) in cases {
        let r = api.get(&format!("{path}{q}"), Some(&token)).await;
        match expected {
            403 => assert_api_error(&r, 403, "insufficient_scope", &["Unauthorized"]),
            _ => assert_api_error(&r, 404, "not_found", &["Not Found"]),
        };
    }
}

/// A namespace that only repositories' entries named is known to the organization endpoints.
#[actix_web::test]
async fn namespaces_become_known_through_any_entry() {
    let api = app(Backend::Sqlite).await;
    let token = tokens::user("newco");
    let q = "?starttime=03/01/2024&endtime=03/05/2024";
    assert_eq!(
        api.get(&format!("/api/v1/organization/newco/logs{q}"), Some(&token)).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.get(&format!("/api/v1/repository/newco/app/logs{q}"), Some(&token)).await.status,
        StatusCode::NOT_FOUND
    );
    api.ingest(vec![entry("push_repo", "newco").repo("app").at("2024-03-02T00:00:00Z").into()]).await;
    let org = api.get_ok(&format!("/api/v1/organization/newco/logs{q}"), &token).await;
    assert_eq!(org["logs"].as_array().unwrap().len(), 1);
    let repo = api.get_ok(&format!("/api/v1/repository/newco/app/logs{q}"), &token).await;
    assert_eq!(repo["logs"].as_array().unwrap().len(), 1);
}

/// The user endpoints never answer 404: a caller whose namespace has no entries gets empty
/// results.
async fn user_endpoints_never_404(backend: Backend) {
    let api = app(backend).await;
    let token = tokens::user("nobody");
    let list = api.get_ok("/api/v1/user/logs?starttime=03/01/2024&endtime=03/05/2024", &token).await;
    assert_eq!(
        list,
        json!({"start_time": "Fri, 01 Mar 2024 00:00:00 -0000", "end_time": "Wed, 06 Mar 2024 00:00:00 -0000", "logs": []})
    );
    let agg = api.get_ok("/api/v1/user/aggregatelogs?starttime=03/01/2024&endtime=03/05/2024", &token).await;
    assert_eq!(agg, json!({"aggregated": []}));
    let (status, _) = api.get_json("/api/v1/user/logs", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
}

on_both_backends!(permission_before_existence, user_endpoints_never_404);
