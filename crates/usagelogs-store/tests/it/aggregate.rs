//! Aggregates: sums equal list counts for any window and filter; days are true UTC days.

use crate::common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::collections::BTreeMap;
use time::macros::{date, datetime};
use time::{Date, Duration};
use usagelogs_core::TimeWindow;
use usagelogs_store::testing::test_database;
use usagelogs_store::{Backend, DieselStore, KindFilter, LogQuery, LogScope, LogStore};

both_backends!(sums_equal_list_counts, days_are_utc_calendar_days, unknown_names_are_empty);

fn as_map(store: &DieselStore, q: &LogQuery) -> BTreeMap<(Date, String), i64> {
    let got = store.aggregate(q).unwrap();
    let mut sorted = got.clone();
    sorted.sort_by(|a, b| (a.day, &a.kind).cmp(&(b.day, &b.kind)));
    assert_eq!(got, sorted, "sorted by day then kind");
    assert!(got.iter().all(|c| c.count > 0), "no zero counts");
    got.into_iter().map(|c| ((c.day, c.kind), c.count)).collect()
}

fn sums_equal_list_counts(backend: Backend) {
    let db = test_database(backend);
    let store = db.store();
    let entries = random_entries(&mut rng(3), 2000, 300);
    insert_all(&store, &entries, 500);
    let mut runner = TestRunner::new(Config { cases: 24, failure_persistence: None, ..Config::default() });
    // Start anywhere in the data's three days, aligned to the day or not; 1 µs to 4 days long.
    let strategy =
        (0i64..4, prop_oneof![Just(0i64), 0i64..86_400_000_000], prop_oneof![Just(1i64), 1i64..4 * 86_400_000_000]);
    runner
        .run(&strategy, |(day, offset, len)| {
            let start = datetime!(2023-12-29 00:00 UTC) + Duration::days(day) + Duration::microseconds(offset);
            // Lengths in whole days half the time, so both edges may be aligned.
            let len = if len % 2 == 0 { Duration::days(len % 4 + 1) } else { Duration::microseconds(len) };
            let w = TimeWindow::new(start, start + len).unwrap();
            for q in all_queries(w) {
                let got = as_map(&store, &q);
                prop_assert_eq!(&got, &expected_counts(&q, &entries), "{:?}", q);
                let listed = list_all(&store, &q, || 1000).len() as i64;
                prop_assert_eq!(got.values().sum::<i64>(), listed);
            }
            Ok(())
        })
        .unwrap();
}

fn days_are_utc_calendar_days(backend: Backend) {
    let db = test_database(backend);
    let store = db.store();
    let times = [
        datetime!(2024-01-31 23:59:59.999999 UTC),
        datetime!(2024-02-01 00:00:00 UTC),
        datetime!(2024-02-28 23:59:59.999999 UTC),
        datetime!(2024-02-29 00:00:00 UTC),
        datetime!(2024-02-29 23:59:59.999999 UTC),
        datetime!(2024-03-01 00:00:00 UTC),
        datetime!(2023-12-31 23:59:59.999999 UTC),
        datetime!(2024-01-01 00:00:00 UTC),
        // Not UTC on input: 2024-03-01 01:30 +02:00 is 2024-02-29 23:30 UTC.
        datetime!(2024-03-01 01:30 +02:00),
    ];
    let entries: Vec<_> =
        times.iter().enumerate().map(|(i, t)| entry(i, "acme", Some("web"), Some("alice"), "push_repo", *t)).collect();
    store.insert_batch(&entries).unwrap();

    let q = |start, end| LogQuery {
        scope: LogScope::Namespace("acme".into()),
        window: TimeWindow::new(start, end).unwrap(),
        performer: None,
        kinds: KindFilter::default(),
    };
    let days = |q: &LogQuery| -> Vec<(Date, i64)> {
        store.aggregate(q).unwrap().into_iter().map(|c| (c.day, c.count)).collect()
    };
    let whole = q(datetime!(2023-12-01 00:00 UTC), datetime!(2024-04-01 00:00 UTC));
    assert_eq!(
        days(&whole),
        vec![
            (date!(2023 - 12 - 31), 1),
            (date!(2024 - 01 - 01), 1),
            (date!(2024 - 01 - 31), 1),
            (date!(2024 - 02 - 01), 1),
            (date!(2024 - 02 - 28), 1),
            (date!(2024 - 02 - 29), 3),
            (date!(2024 - 03 - 01), 1),
        ]
    );
    // The same through partial days only: a window from 1 µs after midnight.
    let shifted = q(datetime!(2023-12-31 00:00:00.000001 UTC), datetime!(2024-03-01 00:00:00.000001 UTC));
    assert_eq!(days(&shifted), days(&whole));
    // Edges are exclusive at the end, inclusive at the start, to the microsecond.
    assert_eq!(
        days(&q(datetime!(2024-02-29 00:00 UTC), datetime!(2024-02-29 23:59:59.999999 UTC))),
        vec![(date!(2024 - 02 - 29), 2)]
    );
    assert_eq!(
        days(&q(datetime!(2024-02-28 23:59:59.999999 UTC), datetime!(2024-02-29 00:00 UTC))),
        vec![(date!(2024 - 02 - 28), 1)]
    );
    assert_eq!(days(&q(datetime!(2024-01-01 00:00 UTC), datetime!(2024-01-01 00:00 UTC))), vec![]);
    // Repository and performer scopes agree with the namespace here (one repository, one performer).
    let mut repo = whole.clone();
    repo.scope = LogScope::Repository { namespace: "acme".into(), name: "web".into() };
    assert_eq!(days(&repo), days(&whole));
    let mut by_alice = whole.clone();
    by_alice.performer = Some("alice".into());
    assert_eq!(days(&by_alice), days(&whole));
    // A repository scope with a performer (counted from entries) too.
    repo.performer = Some("alice".into());
    assert_eq!(days(&repo), days(&whole));
}

fn unknown_names_are_empty(backend: Backend) {
    let db = test_database(backend);
    let store = db.store();
    store
        .insert_batch(&[entry(0, "acme", Some("web"), Some("alice"), "push_repo", datetime!(2024-01-01 12:00 UTC))])
        .unwrap();
    let base = LogQuery {
        scope: LogScope::Namespace("acme".into()),
        window: everything(),
        performer: None,
        kinds: KindFilter::default(),
    };
    assert_eq!(store.aggregate(&base).unwrap().len(), 1);
    let variants = [
        LogQuery { scope: LogScope::Namespace("nobody".into()), ..base.clone() },
        LogQuery { scope: LogScope::Repository { namespace: "acme".into(), name: "nope".into() }, ..base.clone() },
        LogQuery { scope: LogScope::Repository { namespace: "nobody".into(), name: "web".into() }, ..base.clone() },
        LogQuery { performer: Some("mallory".into()), ..base.clone() },
        LogQuery { kinds: KindFilter { include: Some(vec!["no_such_kind".into()]), exclude: vec![] }, ..base.clone() },
    ];
    for q in &variants {
        assert_eq!(store.aggregate(q).unwrap(), vec![], "{q:?}");
        let page = store.list(q, None, 10).unwrap();
        assert!(page.entries.is_empty() && page.next.is_none(), "{q:?}");
        assert!(store.export_chunk(q, None, 10).unwrap().is_empty(), "{q:?}");
    }
    // An unknown excluded kind excludes nothing.
    let q = LogQuery { kinds: KindFilter { include: None, exclude: vec!["no_such_kind".into()] }, ..base };
    assert_eq!(store.list(&q, None, 10).unwrap().entries.len(), 1);
}
