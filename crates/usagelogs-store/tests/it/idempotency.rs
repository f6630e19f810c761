//! Keyed batches are stored once per (caller, key), across stores on one database, concurrent
//! calls and restarts, and keys are forgotten after a day.

use crate::common::*;
use std::sync::{Arc, Barrier};
use time::Duration;
use time::macros::datetime;
use usagelogs_store::testing::test_database;
use usagelogs_store::{Backend, DieselStore, KeyedInsert, KindFilter, LogQuery, LogScope, LogStore};

both_backends!(a_key_stores_its_batch_once, concurrent_calls_with_one_key_store_once);

fn count(store: &DieselStore) -> usize {
    let q = LogQuery {
        scope: LogScope::Namespace("acme".into()),
        window: everything(),
        performer: None,
        kinds: KindFilter::default(),
    };
    store.list(&q, None, 1000).unwrap().entries.len()
}

fn a_key_stores_its_batch_once(backend: Backend) {
    let db = test_database(backend);
    let store = db.store();
    let t = datetime!(2024-03-05 13:07:09 UTC);
    let now = datetime!(2026-11-24 12:00 UTC);
    let batch: Vec<_> = (0..3).map(|i| entry(i, "acme", Some("web"), Some("alice"), "push_repo", t)).collect();
    assert_eq!(store.insert_batch_keyed(&batch, "ingester", "k1", now).unwrap(), KeyedInsert::Stored(3));
    assert_eq!(store.insert_batch_keyed(&batch, "ingester", "k1", now).unwrap(), KeyedInsert::Replayed(3));
    // Another store on the same database (a replica, or the server after a restart).
    let replica = db.store();
    assert_eq!(replica.insert_batch_keyed(&batch[..1], "ingester", "k1", now).unwrap(), KeyedInsert::Replayed(3));
    assert_eq!(count(&store), 3);
    // Keys belong to their caller.
    assert_eq!(store.insert_batch_keyed(&batch[..1], "other", "k1", now).unwrap(), KeyedInsert::Stored(1));
    assert_eq!(count(&store), 4);
    // After a day the key is forgotten.
    let later = now + Duration::hours(25);
    assert_eq!(store.insert_batch_keyed(&batch[..2], "ingester", "k1", later).unwrap(), KeyedInsert::Stored(2));
    assert_eq!(count(&store), 6);
    // A refused batch records no key.
    let mut bad = entry(9, "acme", None, None, "push_repo", t);
    bad.ip = Some("1".repeat(300));
    assert!(store.insert_batch_keyed(&[bad], "ingester", "k2", now).is_err());
    assert_eq!(store.insert_batch_keyed(&batch[..1], "ingester", "k2", now).unwrap(), KeyedInsert::Stored(1));
    assert_eq!(count(&store), 7);
}

fn concurrent_calls_with_one_key_store_once(backend: Backend) {
    let db = test_database(backend);
    let stores: Vec<DieselStore> = (0..2).map(|_| db.store()).collect();
    let t = datetime!(2024-03-05 13:07:09 UTC);
    let now = datetime!(2026-11-24 12:00 UTC);
    let batch: Arc<Vec<_>> = Arc::new((0..50).map(|i| entry(i, "acme", Some("web"), None, "pull_repo", t)).collect());
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let (store, batch, barrier) = (stores[i % 2].clone(), batch.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                store.insert_batch_keyed(&batch, "ingester", "same", now).unwrap()
            })
        })
        .collect();
    let outcomes: Vec<KeyedInsert> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(outcomes.iter().filter(|o| matches!(o, KeyedInsert::Stored(50))).count(), 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| matches!(o, KeyedInsert::Stored(50) | KeyedInsert::Replayed(50))));
    assert_eq!(count(&stores[0]), 50);
}
