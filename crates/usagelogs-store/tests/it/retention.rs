//! Retention: the plan counts what goes; applying removes exactly the entries before the cutoff,
//! keeps the rollup equal to the entries at every step, drops whole PostgreSQL partitions, and
//! hands the entries to an archive before removing them.

use crate::common::*;
use rand::Rng;
use std::collections::BTreeSet;
use time::macros::{date, datetime};
use time::{Date, Duration, OffsetDateTime};
use usagelogs_core::{LogEntry, NewLogEntry, TimeWindow};
use usagelogs_store::testing::test_database;
use usagelogs_store::{
    ArchiveError, ArchivePiece, Backend, DieselStore, KindFilter, LogQuery, LogScope, LogStore, RetentionAction,
    RetentionArchive, RetentionError, RetentionStore, RetentionUnit, StoreError,
};

both_backends!(
    plan_counts_each_unit,
    apply_removes_exactly_the_entries_before_the_cutoff,
    archive_takes_what_is_removed
);

const CUTOFF: Date = date!(2024 - 01 - 17);

fn at(d: Date) -> OffsetDateTime {
    d.midnight().assume_utc()
}

/// 16,000 entries from 2023-12-01 to 2024-03-01, half of them packed into 2024-01-01..17 (so the
/// range that straddles the cutoff takes several delete batches), plus entries at the edges.
fn data() -> Vec<NewLogEntry> {
    let mut rng = rng(11);
    let span = |rng: &mut rand::rngs::StdRng, from: Date, to: Date| {
        at(from) + Duration::microseconds(rng.random_range(0..(at(to) - at(from)).whole_microseconds() as i64))
    };
    let mut times: Vec<OffsetDateTime> =
        (0..8000).map(|_| span(&mut rng, date!(2023 - 12 - 01), date!(2024 - 03 - 01))).collect();
    times.extend((0..8000).map(|_| span(&mut rng, date!(2024 - 01 - 01), CUTOFF)));
    times.extend([
        at(CUTOFF) - Duration::microseconds(1),
        at(CUTOFF),
        datetime!(2023-12-31 23:59:59.999999 UTC),
        datetime!(2024-01-01 00:00 UTC),
    ]);
    times
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let ns = NAMESPACES[rng.random_range(0..NAMESPACES.len())];
            let repo = REPOS[rng.random_range(0..REPOS.len())];
            let performer = PERFORMERS[rng.random_range(0..PERFORMERS.len())];
            let kind = KINDS[rng.random_range(0..KINDS.len())];
            entry(i, ns, repo, performer, kind, t)
        })
        .collect()
}

fn before_cutoff(entries: &[NewLogEntry]) -> BTreeSet<usize> {
    entries.iter().enumerate().filter(|(_, e)| e.datetime < at(CUTOFF)).map(|(i, _)| i).collect()
}

/// `seq`s of every stored entry.
fn stored(store: &DieselStore) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    for ns in NAMESPACES {
        let q = LogQuery {
            scope: LogScope::Namespace(ns.into()),
            window: everything(),
            performer: None,
            kinds: KindFilter::default(),
        };
        out.extend(export_all(store, &q, || 5000).iter().map(seq));
    }
    out
}

/// Windows across the cutoff and the month boundary, aligned to days or not.
fn windows() -> Vec<TimeWindow> {
    vec![
        TimeWindow::new(datetime!(2023-12-30 00:00 UTC), datetime!(2024-01-20 00:00 UTC)).unwrap(),
        TimeWindow::new(datetime!(2024-01-16 12:00 UTC), datetime!(2024-01-17 12:00 UTC)).unwrap(),
        TimeWindow::new(datetime!(2023-11-01 00:00 UTC), datetime!(2024-03-01 00:00 UTC)).unwrap(),
    ]
}

fn check_consistent(store: &DieselStore) {
    for w in windows() {
        assert_rollup_consistent(store, w);
    }
}

fn plan_counts_each_unit(backend: Backend) {
    let db = test_database(backend);
    let store = db.store();
    let entries = data();
    insert_all(&store, &entries, 4000);
    let count =
        |from: Date, to: Date| entries.iter().filter(|e| e.datetime >= at(from) && e.datetime < at(to)).count() as i64;
    let plan = store.retention_plan(CUTOFF).unwrap();
    assert_eq!(plan.cutoff, CUTOFF);
    let december = match backend {
        Backend::Postgres => RetentionAction::DropPartition { partition: "log_entries_y2023m12".into() },
        Backend::Sqlite => RetentionAction::Delete,
    };
    assert_eq!(
        plan.units,
        vec![
            RetentionUnit {
                action: december,
                from: date!(2023 - 12 - 01),
                to: date!(2024 - 01 - 01),
                entries: count(date!(2023 - 12 - 01), date!(2024 - 01 - 01)),
            },
            RetentionUnit {
                action: RetentionAction::Delete,
                from: date!(2024 - 01 - 01),
                to: CUTOFF,
                entries: count(date!(2024 - 01 - 01), CUTOFF),
            },
        ]
    );
    assert_eq!(plan.entries(), before_cutoff(&entries).len() as i64);
    // Planning changes nothing; a cutoff before every entry plans nothing to delete.
    assert_eq!(stored(&store).len(), entries.len());
    let early = store.retention_plan(date!(2023 - 12 - 01)).unwrap();
    assert_eq!(early.entries(), 0);
    assert!(early.units.is_empty(), "{early:?}");
    // A cutoff on a month boundary drops (or empties) whole months only.
    let plan = store.retention_plan(date!(2024 - 02 - 01)).unwrap();
    assert_eq!(plan.units.len(), 2);
    if backend == Backend::Postgres {
        assert!(plan.units.iter().all(|u| matches!(u.action, RetentionAction::DropPartition { .. })));
    }
    assert_eq!(plan.entries(), count(date!(2023 - 12 - 01), date!(2024 - 02 - 01)));
}

fn apply_removes_exactly_the_entries_before_the_cutoff(backend: Backend) {
    let db = test_database(backend);
    let store = db.store();
    let entries = data();
    insert_all(&store, &entries, 4000);
    let gone = before_cutoff(&entries);
    let plan = store.retention_plan(CUTOFF).unwrap();

    let outcome = store.apply_retention(CUTOFF, None).unwrap();
    assert_eq!(outcome.iter().map(|o| o.unit.clone()).collect::<Vec<_>>(), plan.units);
    for o in &outcome {
        assert_eq!(o.removed, o.unit.entries, "{:?}", o.unit);
        assert!(o.archived.is_empty());
    }
    let all: BTreeSet<usize> = (0..entries.len()).collect();
    assert_eq!(stored(&store), all.difference(&gone).copied().collect::<BTreeSet<_>>());
    check_consistent(&store);
    // Nothing left to do; the rollup has no day before the cutoff.
    assert!(store.retention_plan(CUTOFF).unwrap().units.is_empty());
    let before = LogQuery {
        scope: LogScope::Namespace("acme".into()),
        window: TimeWindow::new(datetime!(2023-12-01 00:00 UTC), at(CUTOFF)).unwrap(),
        performer: None,
        kinds: KindFilter::default(),
    };
    assert!(store.aggregate(&before).unwrap().is_empty());
    assert!(store.apply_retention(CUTOFF, None).unwrap().is_empty());
    // Names stay: "ever seen".
    for ns in NAMESPACES {
        assert!(store.namespace_exists(ns).unwrap());
    }

    if backend == Backend::Postgres {
        assert!(!pg_relation_exists(db.url(), "log_entries_y2023m12"), "the December partition is dropped");
        assert!(pg_relation_exists(db.url(), "log_entries_y2024m01"), "the straddling partition stays");
        let january_kept =
            entries.iter().filter(|e| e.datetime >= at(CUTOFF) && e.datetime.month() == time::Month::January).count();
        assert_eq!(pg_count(db.url(), "log_entries_y2024m01"), january_kept as i64);
        assert_eq!(pg_count(db.url(), &format!("daily_counts WHERE day < '{CUTOFF}'")), 0);
        assert!(!store.partitions().unwrap().contains(&"log_entries_y2023m12".to_owned()));
        // A late entry for the dropped month is still accepted: its partition is made again.
        let late = entry(entries.len(), "acme", None, None, "push_repo", datetime!(2023-12-24 18:00 UTC));
        store.insert_batch(&[late]).unwrap();
        assert!(pg_relation_exists(db.url(), "log_entries_y2023m12"));
        check_consistent(&store);
    }
}

/// Keeps what it is given; can fail at a chosen piece; checks the store between pieces.
struct Collect<'a> {
    pieces: Vec<(ArchivePiece, Vec<LogEntry>)>,
    fail_at: Option<usize>,
    /// Called with the piece's index before it is taken.
    between: &'a dyn Fn(usize),
}

impl RetentionArchive for Collect<'_> {
    fn archive(
        &mut self,
        piece: &ArchivePiece,
        entries: &mut dyn Iterator<Item = Result<LogEntry, StoreError>>,
    ) -> Result<(), ArchiveError> {
        (self.between)(self.pieces.len());
        let got = entries.collect::<Result<Vec<_>, _>>()?;
        if self.fail_at == Some(self.pieces.len()) {
            return Err("the archive is full".into());
        }
        self.pieces.push((piece.clone(), got));
        Ok(())
    }
}

fn archive_takes_what_is_removed(backend: Backend) {
    let db = test_database(backend);
    let store = db.store();
    let entries = data();
    insert_all(&store, &entries, 4000);
    let gone = before_cutoff(&entries);
    let all: BTreeSet<usize> = (0..entries.len()).collect();
    // Between pieces: after the first removals, and every few pieces (each check lists everything).
    let check = |piece: usize| {
        if piece % 8 == 1 {
            check_consistent(&store)
        }
    };

    // An archive that fails at its third piece: what it took before is removed, nothing after.
    let mut failing = Collect { pieces: Vec::new(), fail_at: Some(2), between: &|_| {} };
    let err = store.apply_retention(CUTOFF, Some(&mut failing)).unwrap_err();
    assert!(matches!(&err, RetentionError::Archive { source, .. } if source.to_string().contains("full")), "{err}");
    let taken: BTreeSet<usize> = failing.pieces.iter().flat_map(|(_, es)| es.iter().map(seq)).collect();
    assert!(!taken.is_empty());
    assert_eq!(stored(&store), all.difference(&taken).copied().collect::<BTreeSet<_>>());
    check_consistent(&store);

    // Then a working archive, checking the rollup against the entries before every piece.
    let mut archive = Collect { pieces: Vec::new(), fail_at: None, between: &check };
    let outcome = store.apply_retention(CUTOFF, Some(&mut archive)).unwrap();
    assert_eq!(stored(&store), all.difference(&gone).copied().collect::<BTreeSet<_>>());
    check_consistent(&store);
    let archived: Vec<usize> = archive.pieces.iter().flat_map(|(_, es)| es.iter().map(seq)).collect();
    let archived_set: BTreeSet<usize> = archived.iter().copied().collect();
    assert_eq!(archived.len(), archived_set.len(), "no entry archived twice");
    assert_eq!(archived_set, gone.difference(&taken).copied().collect::<BTreeSet<_>>());
    // Each piece holds entries of its range only, complete with names.
    for (piece, es) in &archive.pieces {
        for e in es {
            assert!(e.datetime >= at(piece.from) && e.datetime < at(piece.to), "{piece:?} {e:?}");
            let original = &entries[seq(e)];
            assert_eq!(e.namespace, original.namespace.as_str());
            assert_eq!(e.kind, original.kind.as_str());
            assert_eq!(e.repository.as_deref(), original.repository.as_ref().map(|r| r.as_str()));
            assert_eq!(e.performer.as_deref(), original.performer.as_ref().map(|p| p.as_str()));
            assert_eq!(e.metadata, original.metadata);
        }
        assert!(es.windows(2).all(|w| w[0].id < w[1].id), "ascending ids");
    }
    let removed: i64 = outcome.iter().map(|o| o.removed).sum();
    assert_eq!(removed as usize, archived_set.len());
    let labels: Vec<&str> = outcome.iter().flat_map(|o| o.archived.iter().map(String::as_str)).collect();
    assert_eq!(labels, archive.pieces.iter().map(|(p, _)| p.label.as_str()).collect::<Vec<_>>());
    if backend == Backend::Postgres {
        // The failing run archived and dropped December whole, then took one January day.
        assert_eq!(failing.pieces[0].0.label, "2023-12");
        assert_eq!(failing.pieces[1].0.label, "2024-01-01");
        assert!(!pg_relation_exists(db.url(), "log_entries_y2023m12"));
        assert_eq!(labels.first().copied(), Some("2024-01-02"));
    } else {
        assert_eq!(failing.pieces[0].0.label, "2023-12-01");
    }
    assert_eq!(labels.last().copied(), Some("2024-01-16"));
}
