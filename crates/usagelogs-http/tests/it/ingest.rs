//! Ingestion, `POST /api/v1/logs` (contract §3).

use crate::support::{Api, AppService, TestApp, assert_api_error, entry, tokens};
use actix_web::http::StatusCode;
use serde_json::{Value, json};
use usagelogs_store::Backend;

const PATH: &str = "/api/v1/logs";
const JSON: Option<&str> = Some("application/json");
const NDJSON: Option<&str> = Some("application/x-ndjson");

fn writer() -> String {
    tokens::with_scope("ingester", "logs:write")
}

fn valid(n: usize, namespace: &str) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({"kind": "push_repo", "namespace": namespace, "repository": "web", "performer": "alice",
                   "performer_email": null, "ip": "203.0.113.7", "metadata": {"i": i},
                   "datetime": format!("2024-03-05T13:07:{:02}Z", i % 60)})
        })
        .collect()
}

fn ndjson(values: &[Value]) -> String {
    values.iter().map(|v| format!("{v}\n")).collect()
}

/// How many entries `namespace` holds on 2024-03-05 (`None`: the namespace is unknown).
async fn stored<S: AppService>(api: &Api<S>, namespace: &str) -> Option<usize> {
    let r = api
        .get(
            &format!("/api/v1/organization/{namespace}/logs?starttime=2024-03-05&endtime=2024-03-05&limit=100"),
            Some(&tokens::user(namespace)),
        )
        .await;
    match r.status {
        StatusCode::NOT_FOUND => None,
        StatusCode::OK => Some(r.json()["logs"].as_array().unwrap().len()),
        other => panic!("unexpected {other}: {}", r.text()),
    }
}

async fn json_array_and_ndjson_are_stored(backend: Backend) {
    let api = TestApp::on(backend).start().await;
    let r = api.post_raw(PATH, Some(&writer()), JSON, serde_json::to_vec(&valid(3, "newco")).unwrap(), &[]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.text(), r#"{"accepted":3}"#);
    assert_eq!(stored(&api, "newco").await, Some(3));

    // NDJSON, with blank lines and a charset parameter.
    let body = format!("{}\n   \n{}", ndjson(&valid(2, "newco")), ndjson(&valid(1, "newco")));
    for ct in ["application/x-ndjson", "application/x-ndjson; charset=utf-8"] {
        let r = api.post_raw(PATH, Some(&writer()), Some(ct), body.clone(), &[]).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        assert_eq!(r.json(), json!({"accepted": 3}));
    }
    assert_eq!(stored(&api, "newco").await, Some(9));

    // What was stored is what was sent.
    let body = api
        .get_ok(
            "/api/v1/repository/newco/web/logs?starttime=2024-03-05&endtime=2024-03-05&limit=1",
            &tokens::user("newco"),
        )
        .await;
    let log = &body["logs"][0];
    assert_eq!(log["kind"], "push_repo");
    assert_eq!(log["ip"], "203.0.113.7");
    assert_eq!(log["performer"]["name"], "alice");
    assert_eq!(log["datetime"], "Tue, 05 Mar 2024 13:07:02 -0000");
    assert_eq!(log["metadata"], json!({"i": 2}));
}

async fn one_bad_entry_stores_nothing(backend: Backend) {
    let api = TestApp::on(backend).with_entries([entry("push_repo", "acme").at("2024-03-05T00:00:00Z")]).start().await;
    let with_bad = |index: usize, bad: Value| {
        let mut batch = valid(4, "acme");
        batch[index] = bad;
        batch
    };
    let cases = [
        (with_bad(2, json!({"kind": "not_a_kind", "namespace": "acme"})), "index 2", "kind"),
        (with_bad(0, json!({"kind": "push_repo", "namespace": "bad ns"})), "index 0", "namespace"),
        (with_bad(3, json!({"kind": "push_repo", "namespace": "acme", "repository": "a//b"})), "index 3", "repository"),
        (with_bad(1, json!({"kind": "push_repo", "namespace": "acme", "performer": "a+b+c"})), "index 1", "performer"),
        (with_bad(1, json!({"kind": "push_repo", "namespace": "acme", "metadata": [1]})), "index 1", "metadata"),
        (
            with_bad(2, json!({"kind": "push_repo", "namespace": "acme", "datetime": "yesterday"})),
            "index 2",
            "datetime",
        ),
        (
            with_bad(2, json!({"kind": "push_repo", "namespace": "acme", "datetime": "1969-12-31T23:59:59Z"})),
            "index 2",
            "datetime",
        ),
        (
            with_bad(3, json!({"kind": "push_repo", "namespace": "acme", "performer_email": "x"})),
            "index 3",
            "performer_email",
        ),
        (with_bad(1, json!({"kind": "push_repo"})), "index 1", "namespace"),
        (with_bad(0, json!({"namespace": "acme"})), "index 0", "kind"),
        // Wrong JSON types name their field too.
        (with_bad(0, json!({"kind": "push_repo", "namespace": 5})), "index 0", "namespace"),
        (with_bad(2, json!({"kind": ["push_repo"], "namespace": "acme"})), "index 2", "kind"),
        (with_bad(1, json!({"kind": "push_repo", "namespace": "acme", "ip": 7})), "index 1", "ip"),
        (with_bad(3, json!({"kind": "push_repo", "namespace": "acme", "datetime": 1709643000})), "index 3", "datetime"),
    ];
    for (batch, index, field) in cases {
        let r = api.post(PATH, Some(&writer()), &json!(batch)).await;
        assert_api_error(&r, 400, "invalid_request", &[index, field]);
        let r = api.post_raw(PATH, Some(&writer()), NDJSON, ndjson(&batch), &[]).await;
        assert_api_error(&r, 400, "invalid_request", &[index, field]);
    }
    // A line that is not JSON at all.
    let r = api.post_raw(PATH, Some(&writer()), NDJSON, format!("{}{{nope\n", ndjson(&valid(2, "acme"))), &[]).await;
    assert_api_error(&r, 400, "invalid_request", &["index 2"]);
    // Not an array, not JSON.
    for body in [r#"{"kind": "push_repo", "namespace": "acme"}"#, "[1, 2", "", "null"] {
        let r = api.post_raw(PATH, Some(&writer()), JSON, body, &[]).await;
        assert_api_error(&r, 400, "invalid_request", &[]);
    }
    assert_eq!(stored(&api, "acme").await, Some(1), "nothing of the refused batches was stored");
    // A refused batch does not make its new namespace known.
    let mut batch = valid(2, "ghostco");
    batch.push(json!({"kind": "nope", "namespace": "ghostco"}));
    let r = api.post(PATH, Some(&writer()), &json!(batch)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(stored(&api, "ghostco").await, None);
    assert!(!api.state.service.store().namespace_exists("ghostco").unwrap());
}

on_both_backends!(json_array_and_ndjson_are_stored, one_bad_entry_stores_nothing);

#[actix_web::test]
async fn batch_limit_is_413() {
    let api = TestApp::new().with_config(|c| c.max_batch_entries = 3).start().await;
    let r = api.post(PATH, Some(&writer()), &json!(valid(4, "acme"))).await;
    assert_api_error(&r, 413, "payload_too_large", &["3"]);
    let r = api.post_raw(PATH, Some(&writer()), NDJSON, ndjson(&valid(4, "acme")), &[]).await;
    assert_api_error(&r, 413, "payload_too_large", &["3"]);
    assert_eq!(stored(&api, "acme").await, None);
    let r = api.post(PATH, Some(&writer()), &json!(valid(3, "acme"))).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(stored(&api, "acme").await, Some(3));
}

#[actix_web::test]
async fn body_limit_is_413() {
    let small = serde_json::to_vec(&valid(1, "acme")).unwrap();
    let api = TestApp::new().with_limits(|l| l.max_body_bytes = small.len() + 10).start().await;
    let big = serde_json::to_vec(&valid(3, "acme")).unwrap();
    assert!(big.len() > small.len() + 10);
    let r = api.post_raw(PATH, Some(&writer()), JSON, big.clone(), &[]).await;
    assert_api_error(&r, 413, "payload_too_large", &[]);
    let r = api.post_raw(PATH, Some(&writer()), NDJSON, ndjson(&valid(3, "acme")), &[]).await;
    assert_api_error(&r, 413, "payload_too_large", &[]);
    assert_eq!(stored(&api, "acme").await, None);
    let r = api.post_raw(PATH, Some(&writer()), JSON, small, &[]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
}

#[actix_web::test]
async fn other_content_types_are_415() {
    let api = TestApp::new().start().await;
    let body = serde_json::to_vec(&valid(1, "acme")).unwrap();
    for ct in ["text/plain", "application/xml", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
    {
        let r = api.post_raw(PATH, Some(&writer()), Some(ct), body.clone(), &[]).await;
        assert_api_error(&r, 415, "unsupported_media_type", &[]);
    }
    assert_eq!(stored(&api, "acme").await, None);
    let r = api.post_raw(PATH, Some(&writer()), Some("application/json; charset=utf-8"), body, &[]).await;
    assert_eq!(r.status, StatusCode::CREATED);
}

#[actix_web::test]
async fn idempotency_key_makes_a_retry_a_no_op() {
    let api = TestApp::new().start().await;
    let body = serde_json::to_vec(&valid(2, "acme")).unwrap();
    let key = [("Idempotency-Key", "batch-0001")];
    for _ in 0..3 {
        let r = api.post_raw(PATH, Some(&writer()), JSON, body.clone(), &key).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        assert_eq!(r.text(), r#"{"accepted":2}"#);
    }
    assert_eq!(stored(&api, "acme").await, Some(2));
    // The same batch as NDJSON under the same key: still the first answer.
    let r = api.post_raw(PATH, Some(&writer()), NDJSON, ndjson(&valid(2, "acme")), &key).await;
    assert_eq!((r.status, r.json()), (StatusCode::CREATED, json!({"accepted": 2})));
    assert_eq!(stored(&api, "acme").await, Some(2));
    // Another key is another batch; no key at all stores every time.
    let r = api.post_raw(PATH, Some(&writer()), JSON, body.clone(), &[("Idempotency-Key", "batch-0002")]).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(stored(&api, "acme").await, Some(4));
    api.post_raw(PATH, Some(&writer()), JSON, body.clone(), &[]).await;
    api.post_raw(PATH, Some(&writer()), JSON, body, &[]).await;
    assert_eq!(stored(&api, "acme").await, Some(8));
}

#[actix_web::test]
async fn ingestion_needs_logs_write() {
    let api = TestApp::new().start().await;
    let body = serde_json::to_vec(&valid(1, "acme")).unwrap();
    let r = api.post_raw(PATH, None, JSON, body.clone(), &[]).await;
    assert_api_error(&r, 401, "invalid_token", &["Requires authentication"]);
    let r = api
        .post_raw(PATH, Some(&tokens::with_scope("acme", "user:admin org:admin repo:admin")), JSON, body.clone(), &[])
        .await;
    assert_api_error(&r, 403, "insufficient_scope", &["Unauthorized"]);
    let r = api.post_raw(PATH, Some(&tokens::expired("acme")), JSON, body, &[]).await;
    assert_api_error(&r, 401, "invalid_token", &[]);
    assert_eq!(stored(&api, "acme").await, None);
}

#[actix_web::test]
async fn custom_kinds_only_when_allowed() {
    let batch = json!([{"kind": "my_custom_audit", "namespace": "acme", "datetime": "2024-03-05T01:00:00Z"}]);
    let strict = TestApp::new().start().await;
    let r = strict.post(PATH, Some(&writer()), &batch).await;
    assert_api_error(&r, 400, "invalid_request", &["index 0", "kind", "my_custom_audit"]);

    let lenient = TestApp::new().with_config(|c| c.allow_custom_kinds = true).start().await;
    let r = lenient.post(PATH, Some(&writer()), &batch).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let body = lenient
        .get_ok(
            "/api/v1/organization/acme/logs?starttime=2024-03-05&endtime=2024-03-05&kind=my_custom_audit",
            &tokens::user("acme"),
        )
        .await;
    assert_eq!(body["logs"][0]["kind"], "my_custom_audit");
    let agg = lenient
        .get_ok(
            "/api/v1/organization/acme/aggregatelogs?starttime=2024-03-05&endtime=2024-03-05",
            &tokens::user("acme"),
        )
        .await;
    assert_eq!(
        agg,
        json!({"aggregated": [{"kind": "my_custom_audit", "count": 1, "datetime": "Tue, 05 Mar 2024 00:00:00 -0000"}]})
    );
}
