//! Migrations run up, down and up again.

use crate::common::*;
use time::macros::datetime;
use usagelogs_store::testing::test_database;
use usagelogs_store::{Backend, DieselStore, LogStore, revert_all_migrations, run_migrations};

both_backends!(up_down_up);

fn up_down_up(backend: Backend) {
    let db = test_database(backend);
    let applied = run_migrations(db.url()).unwrap();
    assert!(!applied.is_empty());
    assert_eq!(run_migrations(db.url()).unwrap(), Vec::<String>::new(), "nothing left to apply");
    {
        let store = db.store();
        store
            .insert_batch(&[entry(
                0,
                "acme",
                Some("web"),
                Some("alice"),
                "push_repo",
                datetime!(2024-03-05 13:07:09 UTC),
            )])
            .unwrap();
    }
    let mut reverted = revert_all_migrations(db.url()).unwrap();
    reverted.reverse();
    assert_eq!(reverted, applied);
    assert_eq!(DieselStore::migrate(db.url()).unwrap(), applied);
    // Back to an empty, working schema.
    let store = db.store();
    assert!(!store.namespace_exists("acme").unwrap());
    assert_eq!(store.kinds().unwrap().len(), usagelogs_core::KINDS.len());
    store
        .insert_batch(&[entry(0, "acme", Some("web"), Some("alice"), "push_repo", datetime!(2024-03-05 13:07:09 UTC))])
        .unwrap();
    assert!(store.repository_exists("acme", "web").unwrap());
    assert_eq!(DieselStore::revert_all_migrations(db.url()).unwrap().len(), applied.len());
}
