//! Batches are all or nothing; names are registered as they appear.

use crate::common::*;
use time::macros::datetime;
use usagelogs_store::testing::test_database;
use usagelogs_store::{Backend, KindFilter, LogQuery, LogScope, LogStore, StoreError};

both_backends!(
    failed_batch_stores_nothing,
    kinds_are_seeded_and_registered,
    existence_and_health,
    names_and_emails_across_stores
);

fn failed_batch_stores_nothing(backend: Backend) {
    let db = test_database(backend);
    let store = db.store();
    let t = datetime!(2024-03-05 13:07:09 UTC);
    store.insert_batch(&[entry(0, "acme", Some("web"), Some("alice"), "push_repo", t)]).unwrap();
    let acme = LogQuery {
        scope: LogScope::Namespace("acme".into()),
        window: everything(),
        performer: None,
        kinds: KindFilter::default(),
    };
    let counts_before = store.aggregate(&acme).unwrap();
    let kinds_before = store.kinds().unwrap();

    // New namespace, repository, performer (with e-mail) and kind, entries for an existing
    // namespace, and last one entry the database refuses: an ip longer than 255 characters
    // (the column's CHECK on both dialects).
    let mut batch = vec![
        entry(1, "fresh", Some("newrepo"), Some("carol"), "brand_new_kind", t),
        entry(2, "acme", Some("web"), Some("alice"), "push_repo", t),
        entry(3, "acme", Some("other"), None, "pull_repo", t),
    ];
    batch[0].performer_email = Some("carol@example.com".into());
    let mut bad = entry(4, "acme", None, None, "push_repo", t);
    bad.ip = Some("1".repeat(300));
    batch.push(bad);
    let err = store.insert_batch(&batch).unwrap_err();
    assert!(matches!(err, StoreError::Query(_)), "{err:?}");

    assert!(!store.namespace_exists("fresh").unwrap());
    assert!(!store.repository_exists("acme", "other").unwrap());
    assert!(!store.repository_exists("fresh", "newrepo").unwrap());
    assert_eq!(store.kinds().unwrap(), kinds_before);
    assert_eq!(store.aggregate(&acme).unwrap(), counts_before);
    assert_eq!(store.list(&acme, None, 10).unwrap().entries.len(), 1);
    let carol = LogQuery { performer: Some("carol".into()), ..acme.clone() };
    assert!(store.list(&carol, None, 10).unwrap().entries.is_empty());

    // Without the bad entry, the same batch goes in whole.
    batch.pop();
    assert_eq!(store.insert_batch(&batch).unwrap(), 3);
    assert!(store.namespace_exists("fresh").unwrap());
    assert_eq!(store.list(&acme, None, 10).unwrap().entries.len(), 3);
    assert_eq!(store.kinds().unwrap().last().map(String::as_str), Some("brand_new_kind"));
    let fresh = LogQuery { scope: LogScope::Namespace("fresh".into()), ..acme };
    let e = &store.list(&fresh, None, 10).unwrap().entries[0];
    assert_eq!(e.performer_email.as_deref(), Some("carol@example.com"));
    assert_eq!(e.kind, "brand_new_kind");
}

fn kinds_are_seeded_and_registered(backend: Backend) {
    let db = test_database(backend);
    let store = db.store();
    let kinds = store.kinds().unwrap();
    assert_eq!(kinds, usagelogs_core::KINDS.to_vec());
    let t = datetime!(2024-03-05 13:07:09 UTC);
    let batch = [
        entry(0, "acme", None, None, "zeta_kind", t),
        entry(1, "acme", None, None, "alpha_kind", t),
        entry(2, "acme", None, None, "zeta_kind", t),
    ];
    store.insert_batch(&batch).unwrap();
    let kinds = store.kinds().unwrap();
    assert_eq!(kinds.len(), 148);
    // Both registered; the second batch reuses them.
    assert!(kinds[146..].contains(&"zeta_kind".to_owned()) && kinds[146..].contains(&"alpha_kind".to_owned()));
    store.insert_batch(&batch).unwrap();
    assert_eq!(store.kinds().unwrap().len(), 148);
    let q = LogQuery {
        scope: LogScope::Namespace("acme".into()),
        window: everything(),
        performer: None,
        kinds: KindFilter { include: Some(vec!["zeta_kind".into()]), exclude: vec![] },
    };
    assert_eq!(store.list(&q, None, 10).unwrap().entries.len(), 4);
    // A second store on the same database learns kinds registered by the first.
    let other = db.store();
    assert_eq!(other.list(&q, None, 10).unwrap().entries.len(), 4);
    assert_eq!(other.aggregate(&q).unwrap()[0].count, 4);
}

fn existence_and_health(backend: Backend) {
    let db = test_database(backend);
    let store = db.store();
    assert_eq!(store.backend(), backend);
    store.ping().unwrap();
    assert!(!store.namespace_exists("acme").unwrap());
    assert_eq!(store.insert_batch(&[]).unwrap(), 0);
    store
        .insert_batch(&[entry(0, "acme", Some("team/web"), None, "push_repo", datetime!(2024-03-05 13:07:09 UTC))])
        .unwrap();
    assert!(store.namespace_exists("acme").unwrap());
    assert!(store.repository_exists("acme", "team/web").unwrap());
    assert!(!store.repository_exists("acme", "team").unwrap());
    assert!(!store.repository_exists("beta", "team/web").unwrap());
    let state = store.pool_state();
    assert_eq!(state.max_size, usagelogs_store::testing::test_options().max_connections);
    assert!(state.connections >= 1 && state.idle <= state.connections);
    let clone = store.clone();
    assert!(format!("{clone:?}").contains("DieselStore"));
}

/// Each store remembers the ids of names it has seen; two stores on one database (two servers)
/// still see each other's new names, and every change of a performer's e-mail is stored.
fn names_and_emails_across_stores(backend: Backend) {
    let db = test_database(backend);
    let (a, b) = (db.store(), db.store());
    let t = datetime!(2024-03-05 13:07:09 UTC);
    let q = |ns: &str| LogQuery {
        scope: LogScope::Namespace(ns.into()),
        window: everything(),
        performer: Some("alice".into()),
        kinds: KindFilter::default(),
    };
    let with_email = |seq: usize, ns: &str, email: Option<&str>| {
        let mut e = entry(seq, ns, Some("web"), Some("alice"), "push_repo", t);
        e.performer_email = email.map(str::to_owned);
        e
    };
    let latest_email = |store: &usagelogs_store::DieselStore, ns: &str| {
        store.list(&q(ns), None, 1).unwrap().entries[0].performer_email.clone()
    };

    // `a` learns acme, web and alice; `b` then registers beta and its repository.
    a.insert_batch(&[with_email(0, "acme", Some("a1@example.com"))]).unwrap();
    assert!(!a.namespace_exists("beta").unwrap());
    b.insert_batch(&[with_email(1, "beta", None)]).unwrap();
    assert!(a.namespace_exists("beta").unwrap());
    assert!(a.repository_exists("beta", "web").unwrap());
    assert_eq!(a.list(&q("beta"), None, 10).unwrap().entries.len(), 1);
    assert_eq!(latest_email(&a, "beta").as_deref(), Some("a1@example.com"));

    // a1 → a2 → (none given: kept) → a1 again, all through the store that cached alice.
    a.insert_batch(&[with_email(2, "acme", Some("a2@example.com"))]).unwrap();
    assert_eq!(latest_email(&b, "acme").as_deref(), Some("a2@example.com"));
    a.insert_batch(&[with_email(3, "acme", None)]).unwrap();
    assert_eq!(latest_email(&b, "acme").as_deref(), Some("a2@example.com"));
    a.insert_batch(&[with_email(4, "acme", Some("a1@example.com"))]).unwrap();
    assert_eq!(latest_email(&b, "acme").as_deref(), Some("a1@example.com"));

    // `b` knows alice only from reading her id; its first e-mail for her is still written.
    b.insert_batch(&[with_email(5, "beta", Some("b@example.com"))]).unwrap();
    assert_eq!(latest_email(&a, "acme").as_deref(), Some("b@example.com"));

    // Every entry landed under the names' real ids.
    let all = |ns: &str| LogQuery { performer: None, ..q(ns) };
    assert_eq!(a.list(&all("acme"), None, 10).unwrap().entries.len(), 4);
    assert_eq!(b.list(&all("beta"), None, 10).unwrap().entries.len(), 2);
    let counts: i64 = a.aggregate(&all("beta")).unwrap().iter().map(|c| c.count).sum();
    assert_eq!(counts, 2);
}
