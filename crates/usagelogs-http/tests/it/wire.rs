//! The wire format of the list and aggregate endpoints (contract §1.2, §1.3) against fixed data:
//! exact bodies, byte for byte.

use crate::support::{Api, AppService, TestApp, assert_api_error, entry, performer_json, tokens};
use actix_web::http::StatusCode;
use serde_json::json;
use usagelogs_core::SuperuserLevel::Full;
use usagelogs_store::Backend;

const WINDOW: &str = "starttime=03/01/2024&endtime=03/05/2024";
const START: &str = "Fri, 01 Mar 2024 00:00:00 -0000";
const END: &str = "Wed, 06 Mar 2024 00:00:00 -0000";

/// Fixed entries. In the window 2024-03-01..=2024-03-05 of namespace `acme`, newest first:
/// e9, e1, e0, e10, e2, e4, e3, e6.
async fn app(backend: Backend) -> Api<impl AppService> {
    TestApp::on(backend)
        .with_entries([
            // e0
            entry("push_repo", "acme")
                .repo("web")
                .by("alice")
                .ip("203.0.113.7")
                .meta(json!({"tag": "v1"}))
                .at("2024-03-05T13:07:09Z"),
            // e1: a robot; an offset and a fraction (shown truncated, in UTC)
            entry("pull_repo", "acme")
                .repo("web")
                .by("acme+deployer")
                .ip("198.51.100.23")
                .meta(json!({"tag": "v1"}))
                .at("2024-03-05T14:30:00.750+01:00"),
            // e2: anonymous, no ip, no metadata
            entry("pull_repo", "acme").repo("web").at("2024-03-04T23:59:59Z"),
            // e3: a service key kind, no repository, a system action
            entry("service_key_create", "acme").meta(json!({"kid": "k1"})).at("2024-03-04T08:00:00Z"),
            // e4: a performer with an e-mail and upper case letters
            entry("org_create_team", "acme")
                .by("Bob")
                .email(" Bob@Example.COM ")
                .ip("2001:db8::1")
                .meta(json!({"team": "owners"}))
                .at("2024-03-04T09:15:00Z"),
            // e5: another namespace
            entry("push_repo", "beta").repo("web").by("alice").at("2024-03-05T12:00:00Z"),
            // e6: another repository of acme
            entry("push_repo", "acme").repo("api").by("alice").at("2024-03-03T10:00:00Z"),
            // e7: before the window
            entry("delete_tag", "acme").repo("web").by("alice").at("2024-02-29T23:59:59.999999Z"),
            // e8: exactly at the window's exclusive end
            entry("create_tag", "acme").repo("web").by("alice").at("2024-03-06T00:00:00Z"),
            // e9: the last microsecond of the window
            entry("create_tag", "acme").repo("web").ip("192.0.2.1").at("2024-03-05T23:59:59.999999Z"),
            // e10
            entry("pull_repo", "acme").repo("web").by("alice").ip("203.0.113.7").at("2024-03-05T08:00:00Z"),
        ])
        .start()
        .await
}

fn log(kind: &str, metadata: &str, ip: Option<&str>, datetime: &str, performer: Option<String>) -> String {
    let ip = ip.map_or("null".to_owned(), |ip| format!("\"{ip}\""));
    let performer = performer.map_or(String::new(), |p| format!(r#","performer":{p}"#));
    format!(r#"{{"kind":"{kind}","metadata":{metadata},"ip":{ip},"datetime":"{datetime}"{performer}}}"#)
}

/// The exact JSON of each fixed entry (by its number).
fn logs(numbers: &[usize]) -> String {
    let alice = || Some(performer_json("alice", None));
    let all = |n: usize| match n {
        0 => log("push_repo", r#"{"tag":"v1"}"#, Some("203.0.113.7"), "Tue, 05 Mar 2024 13:07:09 -0000", alice()),
        1 => log(
            "pull_repo",
            r#"{"tag":"v1"}"#,
            Some("198.51.100.23"),
            "Tue, 05 Mar 2024 13:30:00 -0000",
            Some(performer_json("acme+deployer", None)),
        ),
        2 => log("pull_repo", "{}", None, "Mon, 04 Mar 2024 23:59:59 -0000", None),
        3 => log("service_key_create", r#"{"kid":"k1"}"#, None, "Mon, 04 Mar 2024 08:00:00 -0000", None),
        4 => log(
            "org_create_team",
            r#"{"team":"owners"}"#,
            Some("2001:db8::1"),
            "Mon, 04 Mar 2024 09:15:00 -0000",
            Some(performer_json("Bob", Some("bob@example.com"))),
        ),
        6 => log("push_repo", "{}", None, "Sun, 03 Mar 2024 10:00:00 -0000", alice()),
        9 => log("create_tag", "{}", Some("192.0.2.1"), "Tue, 05 Mar 2024 23:59:59 -0000", None),
        10 => log("pull_repo", "{}", Some("203.0.113.7"), "Tue, 05 Mar 2024 08:00:00 -0000", alice()),
        other => unreachable!("entry {other} is never listed"),
    };
    numbers.iter().map(|n| all(*n)).collect::<Vec<_>>().join(",")
}

fn page(numbers: &[usize]) -> String {
    format!(r#"{{"start_time":"{START}","end_time":"{END}","logs":[{}]}}"#, logs(numbers))
}

fn agg(rows: &[(&str, i64, &str)]) -> String {
    let rows: Vec<String> = rows
        .iter()
        .map(|(kind, count, day)| format!(r#"{{"kind":"{kind}","count":{count},"datetime":"{day}"}}"#))
        .collect();
    format!(r#"{{"aggregated":[{}]}}"#, rows.join(","))
}

const SUN: &str = "Sun, 03 Mar 2024 00:00:00 -0000";
const MON: &str = "Mon, 04 Mar 2024 00:00:00 -0000";
const TUE: &str = "Tue, 05 Mar 2024 00:00:00 -0000";

async fn exact_text<S: AppService>(api: &Api<S>, path: &str, token: &str) -> String {
    let r = api.get(path, Some(token)).await;
    assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
    assert!(r.header("content-type").is_some_and(|ct| ct.starts_with("application/json")));
    r.text()
}

async fn lists_are_exact(backend: Backend) {
    let api = app(backend).await;
    let acme = tokens::user("acme");
    // Organization: everything of acme, service keys included, newest first.
    let org = exact_text(&api, &format!("/api/v1/organization/acme/logs?{WINDOW}"), &acme).await;
    assert_eq!(org, page(&[9, 1, 0, 10, 2, 4, 3, 6]));
    // User: the caller's namespace without the service key kinds.
    let user = exact_text(&api, &format!("/api/v1/user/logs?{WINDOW}"), &acme).await;
    assert_eq!(user, page(&[9, 1, 0, 10, 2, 4, 6]));
    // Repository: that repository only.
    let repo = exact_text(&api, &format!("/api/v1/repository/acme/web/logs?{WINDOW}"), &acme).await;
    assert_eq!(repo, page(&[9, 1, 0, 10, 2]));
    let api_repo = exact_text(&api, &format!("/api/v1/repository/acme/api/logs?{WINDOW}"), &acme).await;
    assert_eq!(api_repo, page(&[6]));
}

async fn aggregates_are_exact(backend: Backend) {
    let api = app(backend).await;
    let acme = tokens::user("acme");
    let org = exact_text(&api, &format!("/api/v1/organization/acme/aggregatelogs?{WINDOW}"), &acme).await;
    assert_eq!(
        org,
        agg(&[
            ("push_repo", 1, SUN),
            ("org_create_team", 1, MON),
            ("pull_repo", 1, MON),
            ("service_key_create", 1, MON),
            ("create_tag", 1, TUE),
            ("pull_repo", 2, TUE),
            ("push_repo", 1, TUE),
        ])
    );
    let user = exact_text(&api, &format!("/api/v1/user/aggregatelogs?{WINDOW}"), &acme).await;
    assert_eq!(
        user,
        agg(&[
            ("push_repo", 1, SUN),
            ("org_create_team", 1, MON),
            ("pull_repo", 1, MON),
            ("create_tag", 1, TUE),
            ("pull_repo", 2, TUE),
            ("push_repo", 1, TUE),
        ])
    );
    let repo = exact_text(&api, &format!("/api/v1/repository/acme/web/aggregatelogs?{WINDOW}"), &acme).await;
    assert_eq!(
        repo,
        agg(&[("pull_repo", 1, MON), ("create_tag", 1, TUE), ("pull_repo", 2, TUE), ("push_repo", 1, TUE)])
    );
    // The window's edges are honoured: the first day alone.
    let one_day =
        exact_text(&api, "/api/v1/organization/acme/aggregatelogs?starttime=03/04/2024&endtime=03/04/2024", &acme)
            .await;
    assert_eq!(one_day, agg(&[("org_create_team", 1, MON), ("pull_repo", 1, MON), ("service_key_create", 1, MON)]));
}

async fn performer_and_kind_filters(backend: Backend) {
    let api = app(backend).await;
    let acme = tokens::user("acme");
    let org = format!("/api/v1/organization/acme/logs?{WINDOW}");
    assert_eq!(exact_text(&api, &format!("{org}&performer=alice"), &acme).await, page(&[0, 10, 6]));
    assert_eq!(exact_text(&api, &format!("{org}&performer=acme%2Bdeployer"), &acme).await, page(&[1]));
    assert_eq!(exact_text(&api, &format!("/api/v1/user/logs?{WINDOW}&performer=Bob"), &acme).await, page(&[4]));
    // Unknown performer: empty, 200.
    assert_eq!(exact_text(&api, &format!("{org}&performer=ghost"), &acme).await, page(&[]));
    assert_eq!(
        exact_text(&api, &format!("/api/v1/organization/acme/aggregatelogs?{WINDOW}&performer=ghost"), &acme).await,
        r#"{"aggregated":[]}"#
    );
    // An empty performer is no filter.
    assert_eq!(exact_text(&api, &format!("{org}&performer="), &acme).await, page(&[9, 1, 0, 10, 2, 4, 3, 6]));
    // Repository endpoints ignore performer.
    let repo = format!("/api/v1/repository/acme/web/logs?{WINDOW}");
    assert_eq!(exact_text(&api, &format!("{repo}&performer=ghost"), &acme).await, page(&[9, 1, 0, 10, 2]));
    assert_eq!(
        exact_text(&api, &format!("/api/v1/repository/acme/web/aggregatelogs?{WINDOW}&performer=alice"), &acme).await,
        agg(&[("pull_repo", 1, MON), ("create_tag", 1, TUE), ("pull_repo", 2, TUE), ("push_repo", 1, TUE)])
    );
    // Aggregates by performer.
    assert_eq!(
        exact_text(&api, &format!("/api/v1/organization/acme/aggregatelogs?{WINDOW}&performer=alice"), &acme).await,
        agg(&[("push_repo", 1, SUN), ("pull_repo", 1, TUE), ("push_repo", 1, TUE)])
    );

    // kind: comma-separated and repeated mean the same.
    let both = page(&[1, 0, 10, 2, 6]);
    assert_eq!(exact_text(&api, &format!("{org}&kind=push_repo,pull_repo"), &acme).await, both);
    assert_eq!(exact_text(&api, &format!("{org}&kind=push_repo&kind=pull_repo"), &acme).await, both);
    assert_eq!(exact_text(&api, &format!("{org}&kind=push_repo%2Cpull_repo"), &acme).await, both);
    assert_eq!(exact_text(&api, &format!("{org}&kind=pull_repo&performer=alice"), &acme).await, page(&[10]));
    assert_eq!(
        exact_text(&api, &format!("/api/v1/organization/acme/aggregatelogs?{WINDOW}&kind=pull_repo"), &acme).await,
        agg(&[("pull_repo", 1, MON), ("pull_repo", 2, TUE)])
    );
    // Asking the user endpoints for a service key kind does not bring it back.
    assert_eq!(
        exact_text(&api, &format!("/api/v1/user/logs?{WINDOW}&kind=service_key_create"), &acme).await,
        page(&[])
    );
    assert_eq!(
        exact_text(&api, &format!("/api/v1/user/aggregatelogs?{WINDOW}&kind=service_key_create"), &acme).await,
        r#"{"aggregated":[]}"#
    );
    assert_eq!(exact_text(&api, &format!("{org}&kind=service_key_create"), &acme).await, page(&[3]));

    // An unknown kind is a 400 naming it, on lists and aggregates.
    for path in [
        format!("{org}&kind=push_repo,bogus_kind"),
        format!("/api/v1/user/logs?{WINDOW}&kind=bogus_kind"),
        format!("/api/v1/repository/acme/web/aggregatelogs?{WINDOW}&kind=push_repo&kind=bogus_kind"),
    ] {
        let r = api.get(&path, Some(&acme)).await;
        assert_api_error(&r, 400, "invalid_request", &["bogus_kind"]);
    }
}

on_both_backends!(lists_are_exact, aggregates_are_exact, performer_and_kind_filters);

/// Metadata comes back as the stored object, nested values and all.
async fn metadata_round_trips(backend: Backend) {
    let metadata = json!({
        "tag": "v1",
        "labels": {"b": [1, 2.5, null, "x"], "a": true, "unicode": "é✓"},
        "n": 12_345_678_901_i64,
        "empty": {},
    });
    let api = TestApp::on(backend)
        .with_entries([entry("push_repo", "acme").meta(metadata.clone()).at("2024-03-05T00:00:00Z")])
        .start()
        .await;
    let body = api
        .get_ok("/api/v1/organization/acme/logs?starttime=2024-03-05&endtime=2024-03-05", &tokens::user("acme"))
        .await;
    assert_eq!(body["logs"][0]["metadata"], metadata);
    // No `namespace` key, no `performer` for an anonymous entry.
    let keys: Vec<&String> = body["logs"][0].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
}

on_both_backends!(metadata_round_trips);

/// The avatar block follows Quay's rules: SHA-256 of the lower-cased name (here a known value)
/// and the palette colour of its first two hex digits.
#[actix_web::test]
async fn avatar_of_a_known_name() {
    let api =
        TestApp::new().with_entries([entry("push_repo", "acme").by("Alice").at("2024-03-05T00:00:00Z")]).start().await;
    let body = api
        .get_ok(
            "/api/v1/organization/acme/logs?starttime=2024-03-05&endtime=2024-03-05",
            &tokens::superuser("root", Full),
        )
        .await;
    assert_eq!(
        body["logs"][0]["performer"],
        json!({"kind": "user", "name": "Alice", "is_robot": false, "avatar": {
            "name": "Alice",
            "hash": "2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90",
            "color": "#c49c94",
            "kind": "user"
        }})
    );
}
