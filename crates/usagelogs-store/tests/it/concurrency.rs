//! Concurrent writers lose nothing and keep the rollup exact.

use crate::common::*;
use std::collections::BTreeMap;
use time::macros::datetime;
use time::{Date, Duration};
use usagelogs_core::TimeWindow;
use usagelogs_store::testing::test_database;
use usagelogs_store::{Backend, KindFilter, LogQuery, LogScope, LogStore};

both_backends!(eight_writers_lose_nothing);

const THREADS: usize = 8;
const BATCHES: usize = 50;
const BATCH: usize = 100;

fn eight_writers_lose_nothing(backend: Backend) {
    let db = test_database(backend);
    let store = db.store();
    let day0 = datetime!(2024-02-28 00:00 UTC);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let store = store.clone();
            s.spawn(move || {
                let mut r = rng(t as u64);
                for b in 0..BATCHES {
                    // The same namespaces, repositories, performers, kinds and days in every
                    // thread: the writers contend for the same rows. New names appear too.
                    let mut batch = random_entries(&mut r, BATCH, 50);
                    for (i, e) in batch.iter_mut().enumerate() {
                        let n = (t * BATCHES + b) * BATCH + i;
                        e.metadata.insert("seq".into(), serde_json::json!(n));
                        e.datetime = day0 + Duration::microseconds((n as i64 * 7_919_000_003) % (3 * 86_400_000_000));
                        e.performer_email = Some(format!("{t}-{b}@example.com"));
                    }
                    batch[0].repository = Some(usagelogs_core::names::RepoName::new(format!("r{}", b % 7)).unwrap());
                    store.insert_batch(&batch).unwrap();
                }
            });
        }
    });

    let window = TimeWindow::new(day0, day0 + Duration::days(3)).unwrap();
    let mut total = 0;
    let mut seqs = Vec::new();
    for ns in NAMESPACES {
        let q =
            LogQuery { scope: LogScope::Namespace(ns.into()), window, performer: None, kinds: KindFilter::default() };
        let listed = export_all(&store, &q, || 5000);
        seqs.extend(listed.iter().map(seq));
        let mut from_list: BTreeMap<(Date, String), i64> = BTreeMap::new();
        for e in &listed {
            *from_list.entry((e.datetime.date(), e.kind.clone())).or_insert(0) += 1;
        }
        let agg: BTreeMap<(Date, String), i64> =
            store.aggregate(&q).unwrap().into_iter().map(|c| ((c.day, c.kind), c.count)).collect();
        assert_eq!(agg, from_list, "rollup of {ns}");
        total += agg.values().sum::<i64>();

        // Performer and repository rollups too.
        for (performer, repo) in [(Some("alice"), None), (None, Some("web")), (None, Some("r3"))] {
            let q = LogQuery {
                scope: match repo {
                    Some(r) => LogScope::Repository { namespace: ns.into(), name: r.into() },
                    None => LogScope::Namespace(ns.into()),
                },
                performer: performer.map(str::to_owned),
                ..q.clone()
            };
            let n = export_all(&store, &q, || 5000).len() as i64;
            let agg: i64 = store.aggregate(&q).unwrap().iter().map(|c| c.count).sum();
            assert_eq!(agg, n, "{q:?}");
        }
    }
    assert_eq!(total, (THREADS * BATCHES * BATCH) as i64);
    seqs.sort_unstable();
    assert_eq!(seqs, (0..THREADS * BATCHES * BATCH).collect::<Vec<_>>());
}
