//! PostgreSQL's monthly partitions: made on demand (any month from 1970 to 9998) and ahead of
//! time; reads span them. The same checks run on SQLite, which has one table.

use crate::common::*;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use usagelogs_core::TimeWindow;
use usagelogs_store::testing::test_database;
use usagelogs_store::{Backend, DieselStore, KindFilter, LogQuery, LogScope, LogStore, RetentionStore};

both_backends!(unusual_months_are_stored_and_read, late_entries_land_in_earlier_months);

fn all_time() -> TimeWindow {
    TimeWindow::new(datetime!(1970-01-01 00:00 UTC), datetime!(9999-01-01 00:00 UTC)).unwrap()
}

fn namespace_query(window: TimeWindow) -> LogQuery {
    LogQuery { scope: LogScope::Namespace("acme".into()), window, performer: None, kinds: KindFilter::default() }
}

fn unusual_months_are_stored_and_read(backend: Backend) {
    let db = test_database(backend);
    let store = db.store();
    let times = [
        datetime!(1970-01-01 00:00 UTC),
        datetime!(1975-06-15 08:00 UTC),
        datetime!(2024-01-31 23:59:59.999999 UTC),
        datetime!(2024-03-01 00:00 UTC),
        datetime!(2024-03-31 12:00 UTC),
        datetime!(2150-11-02 10:00 UTC),
        datetime!(9998-12-31 23:59:59.999999 UTC),
    ];
    let entries: Vec<_> =
        times.iter().enumerate().map(|(i, t)| entry(i, "acme", Some("web"), Some("alice"), "push_repo", *t)).collect();
    // One batch spanning six months, then one more entry of a month already made.
    store.insert_batch(&entries[..6]).unwrap();
    store.insert_batch(&entries[6..]).unwrap();

    let q = namespace_query(all_time());
    let listed = list_all(&store, &q, || 3);
    assert_eq!(listed.iter().map(seq).collect::<Vec<_>>(), expected_seqs(&q, &entries));
    let agg: i64 = store.aggregate(&q).unwrap().iter().map(|c| c.count).sum();
    assert_eq!(agg, 7);
    // A window across the month boundary reads two partitions; one inside 1975 reads one.
    let q = namespace_query(TimeWindow::new(datetime!(2024-01-31 00:00 UTC), datetime!(2024-03-02 00:00 UTC)).unwrap());
    assert_eq!(list_all(&store, &q, || 1).len(), 2);
    assert_eq!(store.aggregate(&q).unwrap().iter().map(|c| c.count).sum::<i64>(), 2);
    let q = namespace_query(TimeWindow::new(datetime!(1975-01-01 00:00 UTC), datetime!(1976-01-01 00:00 UTC)).unwrap());
    assert_eq!(export_all(&store, &q, || 10).iter().map(seq).collect::<Vec<_>>(), vec![1]);
    assert_rollup_consistent(
        &store,
        TimeWindow::new(datetime!(2024-01-30 12:00 UTC), datetime!(2024-04-01 00:00 UTC)).unwrap(),
    );

    if backend == Backend::Postgres {
        let made = pg_partitions(db.url());
        for name in [
            "log_entries_y1970m01",
            "log_entries_y1975m06",
            "log_entries_y2024m01",
            "log_entries_y2024m03",
            "log_entries_y2150m11",
            "log_entries_y9998m12",
        ] {
            assert!(made.iter().any(|m| m == name), "{name} missing from {made:?}");
            assert!(pg_relation_exists(db.url(), name));
        }
        // Only months with entries, plus the current one and the next two (made at connect).
        assert!(!pg_relation_exists(db.url(), "log_entries_y2024m02"));
        let now = OffsetDateTime::now_utc().date();
        let mut ahead = Vec::new();
        let mut day = now.replace_day(1).unwrap();
        for _ in 0..3 {
            ahead.push(format!("log_entries_y{:04}m{:02}", day.year(), u8::from(day.month())));
            day = (day + Duration::days(31)).replace_day(1).unwrap();
        }
        for name in &ahead {
            assert!(made.contains(name), "{name} not made ahead: {made:?}");
        }
        assert_eq!(store.partitions().unwrap(), made, "the store reads the same catalog");
        // Rows are where their month says.
        assert_eq!(pg_count(db.url(), "log_entries_y2024m03"), 2);
        assert_eq!(pg_count(db.url(), "log_entries_y9998m12"), 1);
        // Ahead-of-time creation is idempotent and reports nothing new.
        assert_eq!(store.ensure_partitions(now).unwrap(), Vec::<String>::new());
        // A second store on the same database knows the partitions from the catalog.
        let other = DieselStore::connect(db.url(), usagelogs_store::testing::test_options()).unwrap();
        other.insert_batch(&[entry(7, "acme", None, None, "pull_repo", datetime!(1975-06-01 00:00 UTC))]).unwrap();
        assert_eq!(pg_count(db.url(), "log_entries_y1975m06"), 2);
    } else {
        assert!(store.partitions().unwrap().is_empty());
        assert!(store.ensure_partitions(OffsetDateTime::now_utc().date()).unwrap().is_empty());
    }
}

fn late_entries_land_in_earlier_months(backend: Backend) {
    let db = test_database(backend);
    let store = db.store();
    let mut entries = Vec::new();
    let mut push = |t: OffsetDateTime, kind: &str| {
        let e = entry(entries.len(), "acme", Some("web"), Some("bob"), kind, t);
        entries.push(e.clone());
        store.insert_batch(&[e]).unwrap();
    };
    push(datetime!(2024-05-10 10:00 UTC), "push_repo");
    push(datetime!(2024-06-01 00:00 UTC), "push_repo");
    // Late: a month before every existing one, then one between, then one in an existing month.
    push(datetime!(2024-01-15 10:00 UTC), "pull_repo");
    push(datetime!(2024-04-30 23:59:59.999999 UTC), "pull_repo");
    push(datetime!(2024-05-10 09:00 UTC), "create_tag");

    let q = namespace_query(TimeWindow::new(datetime!(2024-01-01 00:00 UTC), datetime!(2024-07-01 00:00 UTC)).unwrap());
    let listed = list_all(&store, &q, || 2);
    assert_descending(&listed);
    assert_eq!(listed.iter().map(seq).collect::<Vec<_>>(), vec![1, 0, 4, 3, 2]);
    // Ids still grow in insertion order, whatever the month.
    let mut by_seq = listed.clone();
    by_seq.sort_by_key(seq);
    assert!(by_seq.windows(2).all(|w| w[0].id < w[1].id));
    assert_rollup_consistent(&store, q.window);
    if backend == Backend::Postgres {
        for name in ["log_entries_y2024m01", "log_entries_y2024m04", "log_entries_y2024m05", "log_entries_y2024m06"] {
            assert!(pg_relation_exists(db.url(), name), "{name}");
        }
        assert!(!pg_relation_exists(db.url(), "log_entries_y2024m02"));
        assert_eq!(pg_count(db.url(), "log_entries_y2024m05"), 2);
    }
}

/// A server whose cache still lists a partition that another server's retention dropped: its
/// insert fails on the missing partition, it reads the catalog again, makes it, and retries.
#[test]
fn postgres_partition_dropped_elsewhere_is_made_again() {
    let db = test_database(Backend::Postgres);
    let stale = db.store();
    let t = datetime!(2024-01-10 10:00 UTC);
    stale.insert_batch(&[entry(0, "acme", Some("web"), None, "push_repo", t)]).unwrap();
    let other = db.store();
    let removed = other.apply_retention(datetime!(2024-02-01 00:00 UTC).date(), None).unwrap();
    assert_eq!(removed.iter().map(|u| u.removed).sum::<i64>(), 1);
    assert!(!pg_relation_exists(db.url(), "log_entries_y2024m01"));

    stale.insert_batch(&[entry(1, "acme", Some("web"), None, "push_repo", t)]).unwrap();
    assert!(pg_relation_exists(db.url(), "log_entries_y2024m01"));
    let q = namespace_query(TimeWindow::new(datetime!(2024-01-01 00:00 UTC), datetime!(2024-02-01 00:00 UTC)).unwrap());
    assert_eq!(list_all(&stale, &q, || 10).iter().map(seq).collect::<Vec<_>>(), vec![1]);
    assert_rollup_consistent(&stale, q.window);
}

/// Rows already stored move into monthly partitions when the partitioning migration runs, keep
/// their ids, and new ids continue after them.
#[test]
fn postgres_migration_moves_existing_rows() {
    use diesel::Connection;
    let db = test_database(Backend::Postgres);
    let entries: Vec<_> = [
        datetime!(2023-12-31 23:59:59.999999 UTC),
        datetime!(2024-01-01 00:00 UTC),
        datetime!(2024-02-29 12:00 UTC),
        datetime!(1999-07-04 00:00 UTC),
    ]
    .iter()
    .enumerate()
    .map(|(i, t)| entry(i, "acme", Some("web"), Some("alice"), "push_repo", *t))
    .collect();
    let by_alice = LogQuery { performer: Some("alice".into()), ..namespace_query(all_time()) };
    let (before, counts_before) = {
        let store = db.store();
        store.insert_batch(&entries).unwrap();
        (list_all(&store, &namespace_query(all_time()), || 100), store.aggregate(&by_alice).unwrap())
    };
    assert_eq!(counts_before.iter().map(|c| c.count).sum::<i64>(), 4);
    // Back to the plain table (the down migration moves the rows), then forward again.
    {
        let mut c = diesel::PgConnection::establish(db.url()).unwrap();
        diesel_migrations_shim::revert_partitioning(&mut c);
        assert_eq!(diesel_migrations_shim::relkind(&mut c), "r");
        assert_eq!(pg_count(db.url(), "log_entries"), 4);
    }
    let store = db.store(); // migrates again
    let mut c = diesel::PgConnection::establish(db.url()).unwrap();
    assert_eq!(diesel_migrations_shim::relkind(&mut c), "p");
    for name in ["log_entries_y1999m07", "log_entries_y2023m12", "log_entries_y2024m01", "log_entries_y2024m02"] {
        assert!(pg_relation_exists(db.url(), name), "{name}");
    }
    assert_eq!(pg_count(db.url(), "log_entries_y2023m12"), 1);
    let after = list_all(&store, &namespace_query(all_time()), || 100);
    assert_eq!(after, before, "same entries, same ids");
    assert_eq!(store.aggregate(&by_alice).unwrap(), counts_before);
    assert_eq!(store.aggregate(&namespace_query(all_time())).unwrap(), counts_before);
    store.insert_batch(&[entry(4, "acme", None, None, "pull_repo", datetime!(2024-01-02 00:00 UTC))]).unwrap();
    let newest = list_all(&store, &namespace_query(all_time()), || 100);
    let fresh = newest.iter().find(|e| seq(e) == 4).unwrap();
    assert!(before.iter().all(|e| e.id < fresh.id), "ids continue after the moved rows");
}

/// Just enough of the migration machinery to revert the last migration from a test.
mod diesel_migrations_shim {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;

    /// Reverts the partitioning, and first the later migration that changed its indexes (the
    /// rollup's change is reverted on rows, so it is exercised with data too).
    pub fn revert_partitioning(c: &mut PgConnection) {
        let leaner = include_str!("../../migrations/postgres/2026-01-05-000000_leaner_rollup_and_indexes/down.sql");
        let down = include_str!("../../migrations/postgres/2026-01-03-000000_partition_log_entries/down.sql");
        c.batch_execute(&format!(
            "BEGIN; {leaner} DELETE FROM __diesel_schema_migrations WHERE version = '20260105000000'; \
             {down} DELETE FROM __diesel_schema_migrations WHERE version = '20260103000000'; COMMIT;"
        ))
        .unwrap();
    }

    pub fn relkind(c: &mut PgConnection) -> String {
        #[derive(QueryableByName)]
        struct Kind {
            #[diesel(sql_type = diesel::sql_types::Text)]
            kind: String,
        }
        diesel::sql_query("SELECT relkind::text AS kind FROM pg_class WHERE oid = 'log_entries'::regclass")
            .get_result::<Kind>(c)
            .unwrap()
            .kind
    }
}
