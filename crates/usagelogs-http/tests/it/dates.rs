//! `starttime` / `endtime` over HTTP (contract §1.1).

use crate::support::{Api, AppService, TestApp, assert_api_error, entry, tokens};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

async fn app() -> Api<impl AppService> {
    let now = OffsetDateTime::now_utc();
    TestApp::new()
        .with_entries([
            entry("push_repo", "acme").meta(json!({"n": "d0"})).at("2024-02-29T23:59:59Z"),
            entry("push_repo", "acme").repo("web").meta(json!({"n": "d1"})).at("2024-03-01T00:00:00Z"),
            entry("push_repo", "acme").meta(json!({"n": "d2"})).at("2024-03-05T23:59:59Z"),
            entry("push_repo", "acme").meta(json!({"n": "d3"})).at("2024-03-06T00:00:00Z"),
            entry("push_repo", "acme").meta(json!({"n": "d4"})).at("2024-01-15T12:00:00Z"),
            entry("pull_repo", "acme").meta(json!({"n": "recent-1h"})).at_time(now - Duration::hours(1)),
            entry("pull_repo", "acme").meta(json!({"n": "recent-23h"})).at_time(now - Duration::hours(23)),
            entry("pull_repo", "acme").meta(json!({"n": "old-30h"})).at_time(now - Duration::hours(30)),
        ])
        .start()
        .await
}

fn names(body: &Value) -> Vec<String> {
    body["logs"].as_array().unwrap().iter().map(|l| l["metadata"]["n"].as_str().unwrap().to_owned()).collect()
}

const LIST: &str = "/api/v1/organization/acme/logs";
const AGG: &str = "/api/v1/organization/acme/aggregatelogs";

#[actix_web::test]
async fn both_formats_and_every_spelling_mean_the_same_days() {
    let api = app().await;
    let token = tokens::user("acme");
    for query in [
        // Quay's web UI sends the slashes unencoded.
        "starttime=03/01/2024&endtime=03/05/2024",
        "starttime=03%2F01%2F2024&endtime=03%2F05%2F2024",
        "starttime=03%2f01%2f2024&endtime=03%2f05%2f2024",
        "starttime=3/1/2024&endtime=3/5/2024",
        "starttime=2024-03-01&endtime=2024-03-05",
        "starttime=3/1/2024&endtime=2024-03-05",
        "starttime=03/01/2024&endtime=03/05/2024&next_page=",
        "starttime=03/01/2024&endtime=03/05/2024&unknown=1&foo=bar",
        "endtime=03/05/2024&starttime=03/01/2024",
    ] {
        let body = api.get_ok(&format!("{LIST}?{query}"), &token).await;
        assert_eq!(body["start_time"], "Fri, 01 Mar 2024 00:00:00 -0000", "{query}");
        assert_eq!(body["end_time"], "Wed, 06 Mar 2024 00:00:00 -0000", "{query}");
        assert_eq!(names(&body), ["d2", "d1"], "{query}");
        assert!(body.get("next_page").is_none());
        let agg = api.get_ok(&format!("{AGG}?{query}"), &token).await;
        assert_eq!(
            agg,
            json!({"aggregated": [
                {"kind": "push_repo", "count": 1, "datetime": "Fri, 01 Mar 2024 00:00:00 -0000"},
                {"kind": "push_repo", "count": 1, "datetime": "Tue, 05 Mar 2024 00:00:00 -0000"},
            ]}),
            "{query}"
        );
    }
}

#[actix_web::test]
async fn end_day_is_inclusive_and_shown_exclusive() {
    let api = app().await;
    let token = tokens::user("acme");
    let body = api.get_ok(&format!("{LIST}?starttime=03/05/2024&endtime=03/05/2024"), &token).await;
    assert_eq!(body["start_time"], "Tue, 05 Mar 2024 00:00:00 -0000");
    assert_eq!(body["end_time"], "Wed, 06 Mar 2024 00:00:00 -0000");
    assert_eq!(names(&body), ["d2"]);
    let body = api.get_ok(&format!("{LIST}?starttime=02/29/2024&endtime=02/29/2024"), &token).await;
    assert_eq!(body["start_time"], "Thu, 29 Feb 2024 00:00:00 -0000");
    assert_eq!(body["end_time"], "Fri, 01 Mar 2024 00:00:00 -0000");
    assert_eq!(names(&body), ["d0"]);
    // Across a year's end.
    let body = api.get_ok(&format!("{LIST}?starttime=12/31/2023&endtime=12/31/2023"), &token).await;
    assert_eq!(body["end_time"], "Mon, 01 Jan 2024 00:00:00 -0000");
}

#[actix_web::test]
async fn bad_dates_are_400_naming_the_parameter() {
    let api = app().await;
    let token = tokens::user("acme");
    let cases = [
        ("starttime", "02/30/2024"),
        ("starttime", "02/29/2023"),
        ("endtime", "13/01/2024"),
        ("endtime", "2024/03/05"),
        ("starttime", "03-01-2024"),
        ("endtime", "2024-3-5"),
        ("starttime", "12/31/1969"),
        ("endtime", "01/01/9999"),
        ("starttime", "1969-12-31"),
        ("endtime", "tomorrow"),
        ("starttime", "03/01/24"),
        ("endtime", "2024-03-05T00:00:00Z"),
        ("starttime", "%ZZ"),
    ];
    for (param, value) in cases {
        let other = if param == "starttime" { "endtime=03/05/2024" } else { "starttime=03/01/2024" };
        for base in [LIST, AGG, "/api/v1/user/logs", "/api/v1/repository/acme/web/aggregatelogs"] {
            let r = api.get(&format!("{base}?{param}={value}&{other}"), Some(&token)).await;
            let detail = assert_api_error(&r, 400, "invalid_request", &[param, "MM/DD/YYYY", "YYYY-MM-DD"]);
            let named_other = if param == "starttime" { "endtime" } else { "starttime" };
            assert!(!detail.contains(named_other), "{detail}");
        }
    }
}

#[actix_web::test]
async fn the_whole_year_range_is_accepted() {
    let api = app().await;
    let token = tokens::user("acme");
    let body = api.get_ok(&format!("{LIST}?starttime=01/01/1970&endtime=12/31/9998&limit=100"), &token).await;
    assert_eq!(body["start_time"], "Thu, 01 Jan 1970 00:00:00 -0000");
    assert!(body["end_time"].as_str().unwrap().ends_with(", 01 Jan 9999 00:00:00 -0000"), "{body}");
    let mut got = names(&body);
    got.sort();
    assert_eq!(got, ["d0", "d1", "d2", "d3", "d4", "old-30h", "recent-1h", "recent-23h"]);
}

#[actix_web::test]
async fn start_after_end_is_an_invalid_time_span() {
    let api = app().await;
    let token = tokens::user("acme");
    for query in
        ["starttime=03/06/2024&endtime=03/05/2024", "starttime=2024-03-06&endtime=2024-03-05", "starttime=01/01/2099"]
    {
        for base in [LIST, AGG, "/api/v1/user/aggregatelogs", "/api/v1/repository/acme/web/logs"] {
            let r = api.get(&format!("{base}?{query}"), Some(&token)).await;
            let detail = assert_api_error(&r, 400, "invalid_request", &[]);
            assert_eq!(detail, "Invalid time span selected", "{base}?{query}");
        }
    }
}

#[actix_web::test]
async fn aggregates_are_limited_to_31_days() {
    let api = app().await;
    let token = tokens::user("acme");
    // Exactly 31 days is fine.
    let ok = api.get_ok(&format!("{AGG}?starttime=03/01/2024&endtime=03/31/2024"), &token).await;
    assert_eq!(ok["aggregated"].as_array().unwrap().len(), 3);
    for query in [
        "starttime=03/01/2024&endtime=04/01/2024",
        "starttime=2024-01-01&endtime=2024-12-31",
        // The default end (today) is far from 2024.
        "starttime=01/01/2024",
    ] {
        for base in [AGG, "/api/v1/user/aggregatelogs", "/api/v1/repository/acme/web/aggregatelogs"] {
            let r = api.get(&format!("{base}?{query}"), Some(&token)).await;
            let detail = assert_api_error(&r, 400, "invalid_request", &[]);
            assert_eq!(detail, "Invalid date range for logs", "{base}?{query}");
        }
    }
    // Lists have no such limit.
    let long = api.get_ok(&format!("{LIST}?starttime=01/01/2024&endtime=12/31/2024"), &token).await;
    assert_eq!(names(&long), ["d3", "d2", "d1", "d0", "d4"]);
}

#[actix_web::test]
async fn the_aggregate_limit_is_configurable() {
    let api = TestApp::new()
        .with_entries([entry("push_repo", "acme").at("2024-03-01T00:00:00Z")])
        .with_config(|c| c.max_aggregate_days = 7)
        .start()
        .await;
    let token = tokens::user("acme");
    api.get_ok(&format!("{AGG}?starttime=03/01/2024&endtime=03/07/2024"), &token).await;
    let r = api.get(&format!("{AGG}?starttime=03/01/2024&endtime=03/08/2024"), Some(&token)).await;
    assert_api_error(&r, 400, "invalid_request", &["Invalid date range for logs"]);
}

#[actix_web::test]
async fn missing_dates_mean_the_last_24_hours() {
    let api = app().await;
    let token = tokens::user("acme");
    let body = api.get_ok(LIST, &token).await;
    assert_eq!(names(&body), ["recent-1h", "recent-23h"]);
    let agg = api.get_ok(AGG, &token).await;
    let total: i64 = agg["aggregated"].as_array().unwrap().iter().map(|r| r["count"].as_i64().unwrap()).sum();
    assert_eq!(total, 2, "{agg}");
    // Empty values are missing values.
    let body = api.get_ok(&format!("{LIST}?starttime=&endtime=&next_page="), &token).await;
    assert_eq!(names(&body), ["recent-1h", "recent-23h"]);
    // A start alone runs to the end of today.
    let body = api.get_ok(&format!("{LIST}?starttime=03/05/2024&limit=100"), &token).await;
    assert_eq!(names(&body), ["recent-1h", "recent-23h", "old-30h", "d3", "d2"]);
    // Ingested entries without a datetime are stamped now.
    api.ingest(vec![entry("create_tag", "acme").meta(json!({"n": "now"})).into()]).await;
    let body = api.get_ok(LIST, &token).await;
    assert_eq!(names(&body), ["now", "recent-1h", "recent-23h"]);
}
