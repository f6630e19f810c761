//! Black-box tests: the real `usagelogs` binary on a real socket, driven as a client would, on
//! SQLite and on PostgreSQL.

mod exports;
mod server;

use serde_json::{Value, json};
use server::{Server, cli};
use usagelogs_store::Backend;
use usagelogs_store::testing::test_database;

pub(crate) const SECRET: &str = "blackbox-test-secret-0123456789";

pub(crate) fn token(dir: &std::path::Path, args: &[&str]) -> String {
    let mut all = vec!["--jwt-secret", SECRET, "token"];
    all.extend_from_slice(args);
    let out = cli(dir, &all);
    assert!(out.status.success(), "token: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn ingest_list_aggregate(backend: Backend) {
    let db = test_database(backend);
    let server = Server::start(&["--database-url", db.url(), "--jwt-secret", SECRET]);
    let dir = server.dir();
    let writer = token(dir, &["--sub", "ingester", "--scope", "logs:write"]);
    let admin = token(dir, &["--sub", "alice", "--org-admin", "acme", "--scope", "org:admin repo:admin"]);
    let outsider = token(dir, &["--sub", "mallory"]);

    let batch = json!([
        {"kind": "push_repo", "namespace": "acme", "repository": "web", "performer": "alice",
         "ip": "203.0.113.7", "metadata": {"tag": "v1"}, "datetime": "2024-03-05T13:07:09Z"},
        {"kind": "pull_repo", "namespace": "acme", "repository": "web", "performer": "acme+deployer",
         "datetime": "2024-03-05T14:00:00Z"},
        {"kind": "org_create_team", "namespace": "acme", "performer": "alice", "metadata": {"team": "owners"},
         "datetime": "2024-03-06T09:30:00Z"}
    ]);
    let (status, body) = server.post_json("/api/v1/logs", &writer, &batch);
    assert_eq!(status, 201, "{body}");
    assert_eq!(body, json!({"accepted": 3}));

    let (status, page) = server.get("/api/v1/organization/acme/logs?starttime=03/01/2024&endtime=03/06/2024", &admin);
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["start_time"], "Fri, 01 Mar 2024 00:00:00 -0000");
    assert_eq!(page["end_time"], "Thu, 07 Mar 2024 00:00:00 -0000");
    let kinds: Vec<&str> = page["logs"].as_array().unwrap().iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["org_create_team", "pull_repo", "push_repo"]);
    assert!(page.get("next_page").is_none());
    assert_eq!(page["logs"][1]["performer"]["is_robot"], true);
    assert_eq!(page["logs"][2]["datetime"], "Tue, 05 Mar 2024 13:07:09 -0000");

    let (status, repo) = server.get("/api/v1/repository/acme/web/logs?starttime=2024-03-01&endtime=2024-03-06", &admin);
    assert_eq!(status, 200, "{repo}");
    assert_eq!(repo["logs"].as_array().unwrap().len(), 2);

    let (status, agg) =
        server.get("/api/v1/organization/acme/aggregatelogs?starttime=03/01/2024&endtime=03/06/2024", &admin);
    assert_eq!(status, 200, "{agg}");
    assert_eq!(
        agg,
        json!({"aggregated": [
            {"kind": "pull_repo", "count": 1, "datetime": "Tue, 05 Mar 2024 00:00:00 -0000"},
            {"kind": "push_repo", "count": 1, "datetime": "Tue, 05 Mar 2024 00:00:00 -0000"},
            {"kind": "org_create_team", "count": 1, "datetime": "Wed, 06 Mar 2024 00:00:00 -0000"}
        ]})
    );

    let (status, err) = server.get("/api/v1/organization/acme/logs", &outsider);
    assert_eq!(status, 403);
    assert_eq!(err["error_type"], "insufficient_scope");
    let (status, err) = server.get("/api/v1/organization/unknown/logs", &admin);
    assert_eq!(status, 403, "no grant over an unknown namespace: {err}");
    let (status, _) = server.get("/api/v1/repository/acme/nope/logs", &admin);
    assert_eq!(status, 404);
    let (status, err) = server.get("/api/v1/organization/acme/logs", "not-a-jwt");
    assert_eq!(status, 401);
    assert_eq!(err["error_message"], "Requires authentication");
}

#[test]
fn ingest_then_query_on_sqlite() {
    ingest_list_aggregate(Backend::Sqlite);
}

#[test]
fn ingest_then_query_on_postgres() {
    ingest_list_aggregate(Backend::Postgres);
}

#[test]
fn a_new_user_runs_serve_demo_and_the_printed_curl_line_returns_logs() {
    let server = Server::start(&["--demo"]);
    let curl = server.stdout_line_starting("curl ");
    // curl -s -H "Authorization: Bearer TOKEN" 'URL'
    let token = curl.split("Bearer ").nth(1).and_then(|s| s.split('"').next()).unwrap();
    let url = curl.rsplit('\'').nth(1).unwrap();
    let path = url.strip_prefix(&server.base_url()).unwrap_or_else(|| panic!("{url} is not on {}", server.base_url()));
    let (status, page) = server.get(path, token);
    assert_eq!(status, 200, "{page}");
    assert!(!page["logs"].as_array().unwrap().is_empty(), "demo logs in the last day: {page}");
    // The web page's requests: empty next_page, unencoded MM/DD/YYYY dates, then the next page.
    let today = time::OffsetDateTime::now_utc().date();
    let month_ago = today - time::Duration::days(30);
    let us = |d: time::Date| format!("{:02}/{:02}/{}", u8::from(d.month()), d.day(), d.year());
    let q = format!("starttime={}&endtime={}", us(month_ago), us(today));
    let (status, first) = server.get(&format!("/api/v1/organization/acme/logs?{q}&next_page="), token);
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["logs"].as_array().unwrap().len(), 20);
    let next = first["next_page"].as_str().expect("a busy month has a second page");
    let (status, second) = server.get(&format!("/api/v1/organization/acme/logs?{q}&next_page={next}"), token);
    assert_eq!(status, 200, "{second}");
    assert_ne!(first["logs"][0], second["logs"][0]);
    let (status, agg) = server.get(&format!("/api/v1/organization/acme/aggregatelogs?{q}"), token);
    assert_eq!(status, 200, "{agg}");
    let counted: i64 = agg["aggregated"].as_array().unwrap().iter().map(|a| a["count"].as_i64().unwrap()).sum();
    assert!(counted > 20, "{counted}");
}

#[test]
fn sigterm_shuts_the_server_down_cleanly() {
    let mut server = Server::start(&["--jwt-secret", SECRET]);
    let (status, _) = server.get_raw("/healthz");
    assert_eq!(status, 200);
    let code = server.terminate();
    assert!(code.success(), "exit status after SIGTERM: {code}");
}

#[test]
fn import_reports_where_to_resume_after_a_bad_line() {
    let db = test_database(Backend::Sqlite);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("logs.ndjson");
    let good = |i: u32| {
        json!({"kind": "pull_repo", "namespace": "acme", "repository": "web",
        "datetime": format!("2024-03-05T10:00:{:02}Z", i % 60)})
        .to_string()
    };
    let mut lines: Vec<String> = (0..5).map(good).collect();
    lines.push(r#"{"kind": "no_such_kind", "namespace": "acme"}"#.into());
    lines.extend((5..8).map(good));
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let path = file.to_str().unwrap();

    let out = cli(dir.path(), &["--database-url", db.url(), "import", path, "--batch-size", "2"]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Imported 4 entries"), "{stdout}");
    assert!(stdout.contains("--skip 4"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 6"), "{}", String::from_utf8_lossy(&out.stderr));

    // Fix the line and resume.
    lines[5] = good(99);
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = cli(dir.path(), &["--database-url", db.url(), "import", path, "--skip", "4"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Imported 5 entries"));

    let server = Server::start(&["--database-url", db.url(), "--jwt-secret", SECRET]);
    let admin = token(server.dir(), &["--sub", "acme"]);
    let (status, page) =
        server.get("/api/v1/repository/acme/web/logs?starttime=2024-03-05&endtime=2024-03-05&limit=100", &admin);
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["logs"].as_array().unwrap().len(), 9, "every line once: {page}");
}

#[test]
fn openapi_command_prints_the_committed_document() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli(dir.path(), &["openapi"]);
    assert!(out.status.success());
    let committed = include_str!("../../openapi/openapi.json");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), committed);
    let doc: Value = serde_json::from_str(committed).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
}
