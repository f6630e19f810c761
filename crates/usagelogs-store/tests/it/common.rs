//! Entry generators and a reference model of the store's answers.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use time::{Date, Duration, OffsetDateTime};
use usagelogs_core::names::RepoName;
use usagelogs_core::{KindName, LogEntry, Namespace, NewLogEntry, Performer, TimeWindow};
use usagelogs_store::{Cursor, KindFilter, LogQuery, LogScope, LogStore};

/// An entry with the given parts; `metadata` records `seq` so each entry can be told apart.
pub fn entry(
    seq: usize,
    ns: &str,
    repo: Option<&str>,
    performer: Option<&str>,
    kind: &str,
    datetime: OffsetDateTime,
) -> NewLogEntry {
    let mut metadata = Map::new();
    metadata.insert("seq".into(), json!(seq));
    NewLogEntry {
        kind: KindName::new(kind).unwrap(),
        namespace: Namespace::new(ns).unwrap(),
        repository: repo.map(|r| RepoName::new(r).unwrap()),
        performer: performer.map(|p| Performer::new(p).unwrap()),
        performer_email: None,
        ip: Some("203.0.113.7".into()),
        metadata,
        datetime,
    }
}

/// The `seq` recorded in an entry's metadata.
pub fn seq(e: &LogEntry) -> usize {
    e.metadata["seq"].as_u64().unwrap() as usize
}

pub const NAMESPACES: [&str; 2] = ["acme", "beta"];
pub const REPOS: [Option<&str>; 4] = [None, Some("web"), Some("api"), Some("team/db")];
pub const PERFORMERS: [Option<&str>; 4] = [None, Some("alice"), Some("bob"), Some("acme+deployer")];
pub const KINDS: [&str; 5] = ["push_repo", "pull_repo", "create_tag", "delete_tag", "custom_audit"];

/// `n` entries with heavy timestamp ties: times are drawn from `instants` distinct microseconds
/// spread over three days around a month and year boundary.
pub fn random_entries(rng: &mut StdRng, n: usize, instants: usize) -> Vec<NewLogEntry> {
    let base = time::macros::datetime!(2023-12-30 22:00:00 UTC);
    let times: Vec<OffsetDateTime> = (0..instants)
        .map(|_| base + Duration::microseconds(rng.random_range(0..3 * 86_400_000_000i64)))
        .chain([
            time::macros::datetime!(2023-12-31 23:59:59.999999 UTC),
            time::macros::datetime!(2024-01-01 00:00:00 UTC),
        ])
        .collect();
    (0..n)
        .map(|i| {
            let ns = NAMESPACES[rng.random_range(0..NAMESPACES.len())];
            let repo = REPOS[rng.random_range(0..REPOS.len())];
            let performer = PERFORMERS[rng.random_range(0..PERFORMERS.len())];
            let kind = KINDS[rng.random_range(0..KINDS.len())];
            let t = times[rng.random_range(0..times.len())];
            entry(i, ns, repo, performer, kind, t)
        })
        .collect()
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Inserts in batches of `batch`, in order (so ids ascend with `seq`).
pub fn insert_all(store: &impl LogStore, entries: &[NewLogEntry], batch: usize) {
    for chunk in entries.chunks(batch) {
        assert_eq!(store.insert_batch(chunk).unwrap(), chunk.len());
    }
}

/// Whether the reference model says `e` matches `q`.
pub fn matches(q: &LogQuery, e: &NewLogEntry) -> bool {
    let scope = match &q.scope {
        LogScope::Namespace(ns) => e.namespace.as_str() == ns,
        LogScope::Repository { namespace, name } => {
            e.namespace.as_str() == namespace && e.repository.as_ref().is_some_and(|r| r.as_str() == name)
        }
    };
    let performer = q.performer.as_ref().is_none_or(|p| e.performer.as_ref().is_some_and(|ep| ep.as_str() == p));
    scope && performer && q.kinds.admits(e.kind.as_str()) && q.window.contains(e.datetime)
}

/// The expected listing: `seq`s of matching entries by (datetime desc, seq desc).
pub fn expected_seqs(q: &LogQuery, entries: &[NewLogEntry]) -> Vec<usize> {
    let mut m: Vec<(OffsetDateTime, usize)> =
        entries.iter().enumerate().filter(|(_, e)| matches(q, e)).map(|(i, e)| (e.datetime, i)).collect();
    m.sort_by(|a, b| b.cmp(a));
    m.into_iter().map(|(_, i)| i).collect()
}

/// The expected aggregate: counts per (UTC day, kind).
pub fn expected_counts(q: &LogQuery, entries: &[NewLogEntry]) -> BTreeMap<(Date, String), i64> {
    let mut out = BTreeMap::new();
    for e in entries.iter().filter(|e| matches(q, e)) {
        *out.entry((e.datetime.date(), e.kind.as_str().to_owned())).or_insert(0) += 1;
    }
    out
}

/// Every page of `q`, checking the paging contract on the way: pages are full when `next` is
/// set, `next` is the last entry's cursor, and no empty page follows.
pub fn list_all(store: &impl LogStore, q: &LogQuery, mut size: impl FnMut() -> usize) -> Vec<LogEntry> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let limit = size();
        let page = store.list(q, after, limit).unwrap();
        assert!(page.entries.len() <= limit);
        match page.next {
            Some(c) => {
                assert_eq!(page.entries.len(), limit, "a page with a next cursor must be full");
                assert_eq!(Some(c), page.entries.last().map(Cursor::of));
                after = Some(c);
                out.extend(page.entries);
            }
            None => {
                out.extend(page.entries);
                return out;
            }
        }
    }
}

/// Every export chunk of `q`, oldest first.
pub fn export_all(store: &impl LogStore, q: &LogQuery, mut size: impl FnMut() -> usize) -> Vec<LogEntry> {
    let mut out: Vec<LogEntry> = Vec::new();
    loop {
        let limit = size();
        let chunk = store.export_chunk(q, out.last().map(Cursor::of), limit).unwrap();
        assert!(chunk.len() <= limit);
        let done = chunk.len() < limit;
        out.extend(chunk);
        if done {
            return out;
        }
    }
}

/// Asserts strictly decreasing (datetime, id).
pub fn assert_descending(entries: &[LogEntry]) {
    for w in entries.windows(2) {
        assert!((w[0].datetime, w[0].id) > (w[1].datetime, w[1].id), "order broken at {:?} / {:?}", w[0], w[1]);
    }
}

/// Every filter combination over `acme` and `acme/web`.
pub fn all_queries(window: TimeWindow) -> Vec<LogQuery> {
    let scopes =
        [LogScope::Namespace("acme".into()), LogScope::Repository { namespace: "acme".into(), name: "web".into() }];
    let performers = [None, Some("alice"), Some("acme+deployer"), Some("nobody")];
    let kinds = [
        KindFilter::default(),
        KindFilter { include: Some(vec!["push_repo".into(), "custom_audit".into()]), exclude: vec![] },
        KindFilter { include: None, exclude: vec!["push_repo".into(), "no_such_kind".into()] },
        KindFilter { include: Some(vec!["push_repo".into(), "pull_repo".into()]), exclude: vec!["pull_repo".into()] },
        KindFilter { include: Some(vec!["no_such_kind".into()]), exclude: vec![] },
    ];
    let mut out = Vec::new();
    for scope in &scopes {
        for performer in performers {
            for k in &kinds {
                out.push(LogQuery {
                    scope: scope.clone(),
                    window,
                    performer: performer.map(str::to_owned),
                    kinds: k.clone(),
                });
            }
        }
    }
    out
}

/// The window covering every generated entry.
pub fn everything() -> TimeWindow {
    TimeWindow::new(time::macros::datetime!(2023-01-01 00:00 UTC), time::macros::datetime!(2025-01-01 00:00 UTC))
        .unwrap()
}

pub fn metadata_value(e: &LogEntry, key: &str) -> Option<Value> {
    e.metadata.get(key).cloned()
}

/// Asserts, for every filter combination of [`all_queries`] over `window`, that the aggregate
/// equals the listed entries counted per (UTC day, kind): the rollup agrees with the entries.
pub fn assert_rollup_consistent(store: &impl LogStore, window: TimeWindow) {
    for q in all_queries(window) {
        let listed = list_all(store, &q, || 1000);
        let mut counted: BTreeMap<(Date, String), i64> = BTreeMap::new();
        for e in &listed {
            *counted.entry((e.datetime.date(), e.kind.clone())).or_insert(0) += 1;
        }
        let aggregated: BTreeMap<(Date, String), i64> =
            store.aggregate(&q).unwrap().into_iter().map(|c| ((c.day, c.kind), c.count)).collect();
        assert_eq!(aggregated, counted, "aggregate differs from the listed entries for {q:?}");
    }
}

/// PostgreSQL: whether the relation `name` exists (`to_regclass`).
pub fn pg_relation_exists(url: &str, name: &str) -> bool {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        found: bool,
    }
    let mut c = diesel::PgConnection::establish(url).unwrap();
    diesel::sql_query("SELECT to_regclass($1) IS NOT NULL AS found")
        .bind::<diesel::sql_types::Text, _>(name)
        .get_result::<Found>(&mut c)
        .unwrap()
        .found
}

/// PostgreSQL: the partitions of `log_entries` (`pg_inherits`), sorted by name.
pub fn pg_partitions(url: &str) -> Vec<String> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let mut c = diesel::PgConnection::establish(url).unwrap();
    diesel::sql_query(
        "SELECT c.relname::text AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'log_entries'::regclass ORDER BY 1",
    )
    .load::<Name>(&mut c)
    .unwrap()
    .into_iter()
    .map(|n| n.name)
    .collect()
}

/// PostgreSQL: rows of one table, counted directly.
pub fn pg_count(url: &str, table: &str) -> i64 {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut c = diesel::PgConnection::establish(url).unwrap();
    diesel::sql_query(format!("SELECT count(*) AS n FROM {table}")).get_result::<N>(&mut c).unwrap().n
}
