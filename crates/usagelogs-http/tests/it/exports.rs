//! Exports through the API: request, validation, the worker's file in each format, status,
//! download, audit, callbacks, expiry.

use crate::support::*;
use actix_web::http::StatusCode;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use time::{Duration, OffsetDateTime};
use usagelogs_store::Backend;

const WINDOW: &str = "starttime=03/01/2024&endtime=03/05/2024";

/// A few thousand entries in March 2024 with ties, across two repositories, plus some outside
/// the window.
fn fixture(n: usize) -> Vec<EntryBuilder> {
    let mut out = Vec::new();
    for i in 0..n {
        let t = OffsetDateTime::new_utc(
            time::Date::from_calendar_date(2024, time::Month::March, 1 + (i % 5) as u8).unwrap(),
            time::Time::from_hms(((i / 5) % 24) as u8, 0, 0).unwrap(),
        );
        let repo = if i % 3 == 0 { "api" } else { "web" };
        let who = if i % 4 == 0 { "acme+bot" } else { "alice" };
        out.push(entry("pull_repo", "acme").repo(repo).by(who).ip("203.0.113.9").meta(json!({"i": i})).at_time(t));
    }
    out.push(entry("push_repo", "acme").repo("web").at("2024-02-29T23:59:59Z"));
    out.push(entry("push_repo", "acme").repo("web").at("2024-03-06T00:00:00Z"));
    out
}

/// Runs every queued job in this thread (the worker's own code path) and returns how many ran.
fn run_jobs<S>(api: &Api<S>) -> usize {
    let exports = api.state.exports.clone().unwrap();
    std::thread::spawn(move || {
        let stop = AtomicBool::new(false);
        let mut ran = 0;
        while exports.run_next("test-worker", &stop).unwrap() {
            ran += 1;
        }
        ran
    })
    .join()
    .unwrap()
}

async fn request_export<S: AppService>(api: &Api<S>, prefix: &str, token: &str, body: Value) -> String {
    let r = api.post(&format!("{prefix}/exportlogs?{WINDOW}"), Some(token), &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let id = r.json()["export_id"].as_str().unwrap().to_owned();
    assert_eq!(r.header("location"), Some(format!("{prefix}/exportlogs/{id}").as_str()));
    id
}

fn file_id(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_owned()
}

async fn every_format_matches_the_list(backend: Backend) {
    let api = TestApp::on(backend).with_entries(fixture(2500)).start().await;
    let admin = tokens::org_admin("alice", "acme");
    for (prefix, list) in [
        ("/api/v1/organization/acme", format!("/api/v1/organization/acme/logs?{WINDOW}")),
        ("/api/v1/repository/acme/web", format!("/api/v1/repository/acme/web/logs?{WINDOW}")),
    ] {
        let (mut listed, _) = api.list_all(&list, &admin, Some(100)).await;
        listed.reverse(); // exports are oldest first
        assert!(listed.len() > 1000);
        for format in ["json", "ndjson", "csv"] {
            let id = request_export(&api, prefix, &admin, json!({"format": format})).await;
            let status = api.get_ok(&format!("{prefix}/exportlogs/{id}"), &admin).await;
            assert_eq!(status["status"], "queued");
            assert_eq!(run_jobs(&api), 1);
            let status = api.get_ok(&format!("{prefix}/exportlogs/{id}"), &admin).await;
            assert_eq!(status["status"], "success", "{status}");
            assert_eq!(status["format"], format);
            assert_eq!(status["entries"], listed.len());
            assert_eq!(status["start_time"], "Fri, 01 Mar 2024 00:00:00 -0000");
            assert_eq!(status["end_time"], "Wed, 06 Mar 2024 00:00:00 -0000");
            let url = status["exported_data_url"].as_str().unwrap();
            assert!(url.starts_with("http://localhost:8080/exportedlogs/"), "{url}");
            assert!(file_id(url).len() >= 32, "at least 128 random bits: {url}");
            let r = api.get(&format!("/exportedlogs/{}", file_id(url)), None).await;
            assert_eq!(r.status, StatusCode::OK);
            let exported: Vec<Value> = match format {
                "json" => {
                    assert_eq!(r.header("content-type"), Some("application/json"));
                    let doc = r.json();
                    assert_eq!(doc["export_id"], id);
                    let mut logs = doc["logs"].as_array().unwrap().clone();
                    assert_eq!(logs.pop(), Some(json!({"terminator": true})));
                    logs
                }
                "ndjson" => {
                    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
                    r.text().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
                }
                _ => {
                    assert!(r.header("content-type").unwrap().starts_with("text/csv"));
                    let mut reader = csv::Reader::from_reader(r.body.as_ref());
                    reader
                        .records()
                        .map(|rec| {
                            let rec = rec.unwrap();
                            // Rebuild the list shape from the columns that carry it.
                            json!({"kind": &rec[1], "metadata": serde_json::from_str::<Value>(&rec[7]).unwrap(),
                                   "ip": &rec[6], "performer": &rec[4]})
                        })
                        .collect()
                }
            };
            assert_eq!(exported.len(), listed.len(), "{format}: every entry once");
            for (e, l) in exported.iter().zip(&listed) {
                if format == "csv" {
                    assert_eq!(e["metadata"], l["metadata"]);
                    assert_eq!(e["performer"], l["performer"]["name"]);
                } else {
                    assert_eq!(e, l, "{format}");
                }
            }
        }
    }
    // Each finished export is audited in the namespace's log, by the caller; the repository
    // exports in the repository's log too.
    let audits = api.get_ok("/api/v1/organization/acme/logs?kind=export_logs_success&limit=100", &admin).await;
    assert_eq!(audits["logs"].as_array().unwrap().len(), 6, "{audits}");
    assert!(audits["logs"].as_array().unwrap().iter().all(|l| l["performer"]["name"] == "alice"));
    let repo = api.get_ok("/api/v1/repository/acme/web/logs?kind=export_logs_success&limit=100", &admin).await;
    assert_eq!(repo["logs"].as_array().unwrap().len(), 3);
    assert_eq!(repo["logs"][0]["metadata"]["repo"], "web");
}

async fn validation(backend: Backend) {
    let api = TestApp::on(backend).with_entries(fixture(10)).start().await;
    let admin = tokens::org_admin("alice", "acme");
    let path = format!("/api/v1/organization/acme/exportlogs?{WINDOW}");
    let cases: &[(Value, &str)] = &[
        (json!({"callback_url": "ftp://example.com/x"}), "Invalid URL scheme 'ftp'"),
        (json!({"callback_url": "not a url"}), "Invalid URL format"),
        (json!({"callback_url": "http://user:pw@example.com/"}), "embedded credentials"),
        (json!({"callback_url": "http://127.0.0.1:9/hook"}), "Invalid callback URL"),
        (json!({"callback_url": "http://10.0.0.1/hook"}), "Invalid callback URL"),
        (json!({"callback_url": "http://169.254.169.254/latest"}), "Invalid callback URL"),
        (json!({"callback_url": "http://localhost/hook"}), "Invalid callback URL"),
        (json!({"callback_email": "not-an-address"}), "Invalid callback e-mail"),
        (json!({"format": "xml"}), "Unknown export format 'xml'"),
        (json!({"callback_url": 5}), "is not of type 'string'"),
        (json!([1]), "is not of type 'object'"),
        (json!(null), "Missing JSON body"),
    ];
    for (body, detail) in cases {
        let r = api.post(&path, Some(&admin), body).await;
        assert_api_error(&r, 400, "invalid_request", &[detail]);
    }
    let r = api
        .post("/api/v1/organization/acme/exportlogs?starttime=03/06/2024&endtime=03/05/2024", Some(&admin), &json!({}))
        .await;
    assert_api_error(&r, 400, "invalid_request", &["Invalid time span selected"]);
    let r = api.post_raw(&path, Some(&admin), Some("text/plain"), "{}", &[]).await;
    assert_api_error(&r, 415, "unsupported_media_type", &[]);
    let r = api.post_raw(&path, Some(&admin), Some("application/json"), "{nope", &[]).await;
    assert_api_error(&r, 400, "invalid_request", &[]);
    // Refused requests by an authorized caller are audited as failures.
    let failures = api.get_ok("/api/v1/organization/acme/logs?kind=export_logs_failure&limit=100", &admin).await;
    assert!(failures["logs"].as_array().unwrap().len() >= 8, "{failures}");
    // Unknown namespace or repository: 404 for those allowed, 403 for others.
    let root = tokens::superuser("root", usagelogs_core::SuperuserLevel::Full);
    let r = api.post("/api/v1/organization/ghost/exportlogs", Some(&root), &json!({})).await;
    assert_api_error(&r, 404, "not_found", &[]);
    let r = api.post("/api/v1/organization/ghost/exportlogs", Some(&admin), &json!({})).await;
    assert_api_error(&r, 403, "insufficient_scope", &[]);
    // Nothing was queued by any of that.
    assert_eq!(run_jobs(&api), 0);
}

async fn status_is_scoped_to_its_prefix(backend: Backend) {
    let api = TestApp::on(backend).with_entries(fixture(10)).start().await;
    let admin = tokens::org_admin("alice", "acme");
    let id = request_export(&api, "/api/v1/repository/acme/web", &admin, json!({})).await;
    api.get_ok(&format!("/api/v1/repository/acme/web/exportlogs/{id}"), &admin).await;
    for other in [
        format!("/api/v1/repository/acme/api/exportlogs/{id}"),
        format!("/api/v1/organization/acme/exportlogs/{id}"),
        "/api/v1/organization/acme/exportlogs/no-such-export".to_string(),
    ] {
        let r = api.get(&other, Some(&admin)).await;
        assert_api_error(&r, 404, "not_found", &[]);
    }
    let r = api.get(&format!("/api/v1/user/exportlogs/{id}"), Some(&admin)).await;
    assert_api_error(&r, 404, "not_found", &[]);
    let r = api.get(&format!("/api/v1/repository/acme/web/exportlogs/{id}"), Some(&tokens::user("mallory"))).await;
    assert_api_error(&r, 403, "insufficient_scope", &[]);
    let r = api.get(&format!("/api/v1/repository/acme/web/exportlogs/{id}"), None).await;
    assert_api_error(&r, 401, "invalid_token", &[]);
}

async fn expired_links_answer_404_and_their_files_are_gone(backend: Backend) {
    let api = TestApp::on(backend).with_entries(fixture(50)).start().await;
    let admin = tokens::org_admin("alice", "acme");
    let id = request_export(&api, "/api/v1/organization/acme", &admin, json!({"format": "ndjson"})).await;
    run_jobs(&api);
    let status = api.get_ok(&format!("/api/v1/organization/acme/exportlogs/{id}"), &admin).await;
    let file = file_id(status["exported_data_url"].as_str().unwrap());
    let dir = api.fixture.as_ref().unwrap().export_dir.path().to_owned();
    assert!(dir.join(&file).exists());
    assert_eq!(api.get(&format!("/exportedlogs/{file}"), None).await.status, StatusCode::OK);

    let exports = api.state.exports.clone().unwrap();
    let later = OffsetDateTime::now_utc() + Duration::hours(2);
    let deleted = std::thread::spawn(move || exports.sweep(later).unwrap()).join().unwrap();
    assert_eq!(deleted, 1);
    assert!(!dir.join(&file).exists(), "the file is deleted");
    let r = api.get(&format!("/exportedlogs/{file}"), None).await;
    assert_api_error(&r, 404, "not_found", &[]);
    let status = api.get_ok(&format!("/api/v1/organization/acme/exportlogs/{id}"), &admin).await;
    assert_eq!(status["status"], "expired");
    assert!(status.get("exported_data_url").is_none());
    for bad in ["0123", "../etc/passwd", "zz"] {
        assert_eq!(api.get(&format!("/exportedlogs/{bad}"), None).await.status, StatusCode::NOT_FOUND);
    }
}

/// A loopback HTTP receiver answering the statuses in `plan` in turn (then 200), recording
/// each body.
fn receiver(plan: Vec<u16>) -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    std::thread::spawn(move || {
        for (i, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { break };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            seen.lock().unwrap().push(serde_json::from_slice(&body).unwrap_or(Value::Null));
            let status = plan.get(i).copied().unwrap_or(200);
            let _ = write!(stream, "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, bodies)
}

async fn callback_is_retried_until_delivered(backend: Backend) {
    let api = TestApp::on(backend).with_callback_allow(&["127.0.0.1"]).with_entries(fixture(30)).start().await;
    let admin = tokens::org_admin("alice", "acme");
    let (url, bodies) = receiver(vec![500, 500, 200]);
    let id = request_export(&api, "/api/v1/repository/acme/web", &admin, json!({"callback_url": url})).await;
    run_jobs(&api);
    let bodies = bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 3, "two failures, then delivered: {bodies:?}");
    assert!(bodies.iter().all(|b| b == &bodies[0]), "the same payload each time");
    let status = api.get_ok(&format!("/api/v1/repository/acme/web/exportlogs/{id}"), &admin).await;
    assert_eq!(
        bodies[0],
        json!({"export_id": id, "start_time": "03/01/2024", "end_time": "03/06/2024", "namespace": "acme",
               "repository": "web", "exported_data_url": status["exported_data_url"], "status": "success"})
    );
}

on_both_backends!(
    every_format_matches_the_list,
    validation,
    status_is_scoped_to_its_prefix,
    expired_links_answer_404_and_their_files_are_gone,
    callback_is_retried_until_delivered,
);
