//! The S3 export storage against a real S3-compatible server (`moto_server`) on loopback.

use crate::moto::Moto;
use serde_json::{Value, json};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use time::OffsetDateTime;
use usagelogs_core::Claims;
use usagelogs_core::wire::IngestEntry;
use usagelogs_service::export::storage::{S3Config, S3ExportStorage};
use usagelogs_service::export::{CallbackPolicy, ExportStorage, Notifier, NotifyConfig};
use usagelogs_service::{ExportConfig, ExportService, Target};
use usagelogs_store::LogStore;
use usagelogs_store::testing::sqlite_test_database;

const TTL: Duration = Duration::from_secs(600);

fn get(moto: &Moto, url: &str) -> reqwest::blocking::Response {
    moto.http().get(url).send().unwrap()
}

/// Bytes that are not all alike, so a misplaced part shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ (i / 4096) as u8).collect()
}

#[test]
fn s3_committed_files_download_through_pre_signed_urls_until_deleted() {
    let moto = Moto::start();
    let s = moto.storage("usagelogs-roundtrip", Some("exports/v1"));

    let mut f = s.create_typed("0123abcd", "application/json").unwrap();
    f.write_all(br#"{"logs": []}"#).unwrap();
    let url = s.direct_url("0123abcd", TTL).unwrap();
    assert!(url.starts_with(&format!("{}/usagelogs-roundtrip/exports/v1/0123abcd?", moto.endpoint)), "{url}");
    assert_eq!(get(&moto, &url).status(), 404, "visible before commit");
    f.commit().unwrap();

    let resp = get(&moto, &url);
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.bytes().unwrap().as_ref(), br#"{"logs": []}"#);
    assert!(s.open("0123abcd").unwrap().is_none(), "downloads go through the URL");

    s.delete("0123abcd").unwrap();
    let gone = get(&moto, &url).status().as_u16();
    assert!(gone == 404 || gone == 403, "deleted object answered {gone}");
    s.delete("0123abcd").unwrap();
}

#[test]
fn s3_large_files_stream_as_multipart_uploads() {
    let moto = Moto::start();
    moto.create_bucket("usagelogs-multipart");
    let s = S3ExportStorage::new(&S3Config { part_size: 5 * 1024 * 1024, ..moto.config("usagelogs-multipart", None) })
        .unwrap();
    let data = pattern(12 * 1024 * 1024 + 12_345);
    let mut f = s.create("big").unwrap();
    for chunk in data.chunks(64 * 1024 + 7) {
        f.write_all(chunk).unwrap();
    }
    // Two parts are out, the upload is open, the object is not there yet.
    assert!(moto.uploads_in_progress("usagelogs-multipart").contains("<Key>big</Key>"));
    let url = s.direct_url("big", TTL).unwrap();
    assert_eq!(get(&moto, &url).status(), 404);
    f.commit().unwrap();

    let body = get(&moto, &url).bytes().unwrap();
    assert_eq!(body.len(), data.len());
    assert!(body.as_ref() == data.as_slice(), "the downloaded bytes differ");
    assert!(!moto.uploads_in_progress("usagelogs-multipart").contains("<Key>big</Key>"));
}

#[test]
fn s3_uncommitted_files_never_appear() {
    let moto = Moto::start();
    moto.create_bucket("usagelogs-dropped");
    let s = S3ExportStorage::new(&S3Config { part_size: 5 * 1024 * 1024, ..moto.config("usagelogs-dropped", None) })
        .unwrap();

    let mut small = s.create("small").unwrap();
    small.write_all(b"partial").unwrap();
    drop(small);
    assert_eq!(get(&moto, &s.direct_url("small", TTL).unwrap()).status(), 404);

    // Past one part: the multipart upload has begun and is aborted on drop.
    let mut large = s.create("large").unwrap();
    large.write_all(&pattern(6 * 1024 * 1024)).unwrap();
    assert!(moto.uploads_in_progress("usagelogs-dropped").contains("<Key>large</Key>"));
    drop(large);
    assert_eq!(get(&moto, &s.direct_url("large", TTL).unwrap()).status(), 404);
    assert!(!moto.uploads_in_progress("usagelogs-dropped").contains("<Key>large</Key>"));
}

#[test]
fn s3_errors_surface_on_commit_and_bad_names_are_refused() {
    let moto = Moto::start();
    let s = S3ExportStorage::new(&moto.config("usagelogs-no-such-bucket", None)).unwrap();
    let mut f = s.create("x1").unwrap();
    f.write_all(b"data").unwrap();
    assert!(f.commit().is_err(), "a missing bucket must fail the commit");
    assert!(s.create("../x").is_err());
    assert!(s.delete("a/b").is_err());
}

fn alice() -> Claims {
    Claims {
        sub: "alice".into(),
        exp: OffsetDateTime::now_utc().unix_timestamp() + 3600,
        nbf: None,
        iat: None,
        iss: None,
        aud: None,
        scope: "user:admin".into(),
        access: Vec::new(),
        superuser: None,
    }
}

#[test]
fn s3_exports_end_with_a_pre_signed_link_to_a_parseable_file() {
    let moto = Moto::start();
    let storage = moto.storage("usagelogs-e2e", Some("exports"));
    let db = sqlite_test_database();
    let store = Arc::new(db.store());
    let now = OffsetDateTime::now_utc();
    let entries: Vec<_> = (0..250)
        .map(|i| {
            let e: IngestEntry = serde_json::from_value(json!({
                "kind": "push_repo", "namespace": "alice", "repository": "web", "performer": "alice",
                "metadata": {"tag": format!("v{i}")},
            }))
            .unwrap();
            e.validate(now, false).unwrap()
        })
        .collect();
    store.insert_batch(&entries).unwrap();

    let policy = CallbackPolicy::new(&[]).unwrap();
    let exports = ExportService::new(
        store.clone(),
        store,
        Arc::new(storage),
        Notifier::new(NotifyConfig::default(), policy.clone()),
        policy,
        ExportConfig { chunk_size: 100, ttl: TTL, ..ExportConfig::default() },
    );
    let id = exports
        .request(&alice(), &Target::User, None, None, &json!({"format": "json"}), "http://usagelogs.test", now)
        .unwrap();
    assert!(exports.run_next("test-worker", &AtomicBool::new(false)).unwrap());

    let view = exports.status(&alice(), &Target::User, &id).unwrap();
    assert_eq!(view.status, "success", "{view:?}");
    assert_eq!(view.entries, Some(250));
    let url = view.exported_data_url.clone().unwrap();
    assert!(url.starts_with(&format!("{}/usagelogs-e2e/exports/", moto.endpoint)), "{url}");
    // Signed for what is left of the file's life (the TTL is 600 s), not a fresh TTL.
    let expires: u64 = url.split("X-Amz-Expires=").nth(1).and_then(|v| v.split('&').next()).unwrap().parse().unwrap();
    assert!(url.contains("X-Amz-Signature=") && (590..=600).contains(&expires), "{url}");

    let resp = get(&moto, &url);
    assert_eq!(resp.status(), 200);
    let file: Value = serde_json::from_slice(&resp.bytes().unwrap()).unwrap();
    assert_eq!(file["export_id"], json!(id));
    let logs = file["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 251, "250 entries and Quay's terminator");
    assert_eq!(logs[250], json!({"terminator": true}));
    assert_eq!(logs[0]["kind"], "push_repo");

    // The server itself serves nothing: the link is the pre-signed URL.
    let file_id = url.split('?').next().unwrap().rsplit('/').next().unwrap();
    assert!(exports.download(file_id, OffsetDateTime::now_utc()).is_err());

    // Once the link expires, the sweeper deletes the object.
    assert_eq!(exports.sweep(OffsetDateTime::now_utc() + TTL + Duration::from_secs(1)).unwrap(), 1);
    let gone = get(&moto, &url).status().as_u16();
    assert!(gone == 404 || gone == 403, "expired object answered {gone}");
}
