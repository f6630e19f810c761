//! Paging: every entry exactly once, in (datetime desc, id desc) order, for every filter, with
//! heavy timestamp ties; exports ascending, also exactly once.

use crate::common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rand::Rng;
use std::time::Instant;
use time::Duration;
use usagelogs_core::TimeWindow;
use usagelogs_store::testing::test_database;
use usagelogs_store::{Backend, Cursor, LogStore};

both_backends!(every_entry_exactly_once, property_every_entry_exactly_once, round_trip_is_exact);

/// Lists (random page sizes) and exports every query; compares with the model.
fn check_all_queries(store: &impl LogStore, entries: &[usagelogs_core::NewLogEntry], window: TimeWindow, seed: u64) {
    let mut r = rng(seed);
    for q in all_queries(window) {
        let want = expected_seqs(&q, entries);
        let got = list_all(store, &q, || r.random_range(1..=120));
        assert_descending(&got);
        let got_seqs: Vec<usize> = got.iter().map(seq).collect();
        assert_eq!(got_seqs, want, "list of {q:?}");

        let exported = export_all(store, &q, || r.random_range(1..=500));
        let mut exported_seqs: Vec<usize> = exported.iter().map(seq).collect();
        exported_seqs.reverse();
        assert_eq!(exported_seqs, want, "export of {q:?}");
    }
}

fn every_entry_exactly_once(backend: Backend) {
    let db = test_database(backend);
    let store = db.store();
    // 10,000 entries on 100 distinct microseconds: about 100 entries share each timestamp.
    let entries = random_entries(&mut rng(7), 10_000, 100);
    let started = Instant::now();
    insert_all(&store, &entries, 1000);
    let inserted = started.elapsed();
    check_all_queries(&store, &entries, everything(), 11);
    // A window that is not day-aligned cuts through the ties' days.
    let w = TimeWindow::new(
        time::macros::datetime!(2023-12-31 07:13:00.5 UTC),
        time::macros::datetime!(2024-01-01 19:00:00.000001 UTC),
    )
    .unwrap();
    check_all_queries(&store, &entries, w, 12);
    eprintln!(
        "{backend}: paging over {} entries, {} queries x 2 windows: insert {:?}, total {:?}",
        entries.len(),
        all_queries(w).len(),
        inserted,
        started.elapsed()
    );
}

fn property_every_entry_exactly_once(backend: Backend) {
    let mut runner = TestRunner::new(Config { cases: 8, failure_persistence: None, ..Config::default() });
    let strategy = (any::<u64>(), 200usize..1500, 1usize..80, 0i64..72, 1i64..60);
    runner
        .run(&strategy, |(seed, n, instants, start_h, len_h)| {
            let db = test_database(backend);
            let store = db.store();
            let entries = random_entries(&mut rng(seed), n, instants);
            insert_all(&store, &entries, 400);
            let start = time::macros::datetime!(2023-12-30 20:00 UTC)
                + Duration::hours(start_h)
                + Duration::microseconds(seed as i64 % 1000);
            let w = TimeWindow::new(start, start + Duration::hours(len_h)).unwrap();
            check_all_queries(&store, &entries, w, seed);
            Ok(())
        })
        .unwrap();
}

fn round_trip_is_exact(backend: Backend) {
    let db = test_database(backend);
    let store = db.store();
    let t = time::macros::datetime!(2024-02-29 13:07:09.123456 UTC);
    let mut e = entry(1, "acme", Some("team/web"), Some("acme+deployer"), "push_repo", t);
    e.performer_email = Some("deploy@example.com".into());
    e.ip = None;
    e.metadata.insert("nested".into(), serde_json::json!({"a": [1, 2.5, null, "ü"], "b": true}));
    // Nanoseconds below the microsecond are dropped when stored.
    let mut later = entry(2, "acme", None, Some("acme+deployer"), "custom_audit", t + Duration::nanoseconds(1_999));
    later.performer_email = None;
    store.insert_batch(&[e.clone(), later]).unwrap();

    let q = usagelogs_store::LogQuery {
        scope: usagelogs_store::LogScope::Namespace("acme".into()),
        window: everything(),
        performer: None,
        kinds: Default::default(),
    };
    let page = store.list(&q, None, 10).unwrap();
    assert_eq!(page.next, None);
    assert_eq!(page.entries.len(), 2);
    let (second, first) = (&page.entries[0], &page.entries[1]);
    assert_eq!(first.datetime, t);
    assert_eq!(second.datetime, t + Duration::microseconds(1));
    assert!(second.id > first.id);
    assert_eq!(first.kind, "push_repo");
    assert_eq!(second.kind, "custom_audit");
    assert_eq!(first.namespace, "acme");
    assert_eq!(first.repository.as_deref(), Some("team/web"));
    assert_eq!(second.repository, None);
    assert_eq!(first.performer.as_deref(), Some("acme+deployer"));
    // The performer's e-mail is the latest one given, whatever entry is read.
    assert_eq!(first.performer_email.as_deref(), Some("deploy@example.com"));
    assert_eq!(second.performer_email.as_deref(), Some("deploy@example.com"));
    assert_eq!(first.ip, None);
    assert_eq!(second.ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(first.metadata, e.metadata);
    assert_eq!(metadata_value(second, "seq"), Some(serde_json::json!(2)));

    // A new e-mail replaces the old one; no e-mail leaves it.
    let mut newer = entry(3, "acme", None, Some("acme+deployer"), "push_repo", t);
    newer.performer_email = Some("robots@example.com".into());
    store.insert_batch(&[newer]).unwrap();
    let page = store.list(&q, None, 10).unwrap();
    assert!(page.entries.iter().all(|e| e.performer_email.as_deref() == Some("robots@example.com")));

    // Cursors: strictly after, in both directions.
    let all = store.list(&q, None, 10).unwrap().entries;
    let after_first = store.list(&q, Some(Cursor::of(&all[0])), 10).unwrap();
    assert_eq!(after_first.entries, all[1..].to_vec());
    let asc = store.export_chunk(&q, Some(Cursor::of(&all[2])), 10).unwrap();
    assert_eq!(asc, vec![all[1].clone(), all[0].clone()]);
    // A cursor between microseconds (not from an entry) still means "strictly after".
    let between = Cursor { datetime: t + Duration::nanoseconds(500), id: i64::MAX };
    assert_eq!(store.list(&q, Some(between), 10).unwrap().entries, all[1..].to_vec());
    assert_eq!(store.export_chunk(&q, Some(between), 10).unwrap(), vec![all[0].clone()]);
    // limit 0: nothing, no cursor.
    let empty = store.list(&q, None, 0).unwrap();
    assert!(empty.entries.is_empty() && empty.next.is_none());
}
