//! [`RetentionStore`] for [`DieselStore`].
//!
//! - Plans come from the daily rollup: its `(namespace, 0, 0, day, kind)` rows count every entry
//!   once, so summing them per day gives the entries of each day without reading the entries.
//! - PostgreSQL drops a partition lying wholly before the cutoff in one transaction that also
//!   deletes the rollup rows of its days. The transaction first takes `SHARE` on the parent table
//!   (no batch can be mid-insert, readers go on), then `ACCESS EXCLUSIVE` on the parent only for
//!   the `DROP` itself, always parent before partition, as every reader and writer does, so
//!   nothing deadlocks; an advisory lock keeps two servers' drops apart.
//! - Everything else (SQLite; the partition straddling the cutoff) is deleted in batches. Each
//!   batch deletes entries by id with `RETURNING`, and in the same transaction subtracts exactly
//!   those entries from their rollup rows (locked in key order, as writers lock them) and deletes
//!   the rows that reach zero. Aggregates therefore equal list counts after every batch, and a
//!   late entry written into the range meanwhile keeps its rollup row.
//! - With an archive, a piece's entries are read and handed to it first; only the entries it took
//!   are deleted, and only after it returned. A partition is dropped only if its rollup still
//!   counts exactly the entries archived (checked under the `SHARE` lock); otherwise it is
//!   archived again.

use super::conn::AnyConnection;
use super::partitions::{self, Month};
use super::schema::{kinds, log_entries, namespaces, performers, repositories};
use super::types::{Json, Micros, UtcMicros};
use super::{DieselStore, ahead, query_error};
use crate::StoreError;
use crate::retention::{
    ArchivePiece, RetentionAction, RetentionArchive, RetentionError, RetentionPlan, RetentionStore, RetentionUnit,
    UnitOutcome,
};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable};
use std::collections::BTreeMap;
use time::{Date, Time};
use usagelogs_core::LogEntry;

/// Entries deleted per transaction.
pub(crate) const DELETE_BATCH: usize = 5000;
/// Entries read per query while archiving.
const ARCHIVE_CHUNK: usize = 5000;
/// Rollup keys per statement.
const KEY_CHUNK: usize = 500;
/// Attempts at archiving and dropping a partition that keeps receiving entries.
const DROP_ATTEMPTS: usize = 3;
/// Advisory lock held by a partition drop ("usagelogh": next to the migration lock).
const PG_RETENTION_LOCK: i64 = 0x7573_6167_656c_6f68;

/// 00:00 UTC of `d`, to the microsecond.
fn midnight(d: Date) -> Micros {
    Micros::floor(d.with_time(Time::MIDNIGHT).assume_utc())
}

#[derive(QueryableByName)]
struct DaySum {
    #[diesel(sql_type = diesel::sql_types::Date)]
    day: Date,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// An entry deleted, as `RETURNING` gives it: what its rollup rows are keyed by.
#[derive(QueryableByName)]
struct Deleted {
    #[diesel(sql_type = BigInt)]
    namespace_id: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    repository_id: Option<i64>,
    #[diesel(sql_type = BigInt)]
    kind_id: i64,
    #[diesel(sql_type = UtcMicros)]
    datetime: Micros,
}

/// The rollup decrements of deleted entries, in key order (the order writers lock rows in).
fn decrements(rows: &[Deleted]) -> BTreeMap<super::write::RollupKey, i64> {
    let mut counts = BTreeMap::new();
    for r in rows {
        let day = r.datetime.get().date();
        *counts.entry((r.namespace_id, 0, day, r.kind_id)).or_insert(0) += 1;
        if let Some(repo) = r.repository_id {
            *counts.entry((r.namespace_id, repo, day, r.kind_id)).or_insert(0) += 1;
        }
    }
    counts
}

fn sqlite_time(d: Date) -> String {
    midnight(d).unix_micros().to_string()
}

fn sqlite_date(d: Date) -> String {
    format!("'{d}'")
}

fn pg_date(d: Date) -> String {
    format!("'{d}'::date")
}

/// Statements that differ only in literals and a few words between the dialects. All values are
/// integers and dates the store made itself, written as literals.
macro_rules! dialect {
    ($module:ident, $conn:ty, $tx:ident, time = $time:path, date = $date:path, greatest = $greatest:literal, lock_rows = $lock:literal) => {
        pub(crate) mod $module {
            use super::*;

            type Conn = $conn;

            /// Entries per day (`from <= day < to`) according to the rollup, days with none left out.
            pub(crate) fn day_sums(c: &mut Conn, from: Option<Date>, to: Date) -> QueryResult<Vec<(Date, i64)>> {
                let lower = from.map(|f| format!(" AND day >= {}", $date(f))).unwrap_or_default();
                let rows: Vec<DaySum> = diesel::sql_query(format!(
                    "SELECT day, CAST(SUM(count) AS BIGINT) AS n FROM daily_counts \
                     WHERE repository_id = 0 AND day < {}{lower} \
                     GROUP BY day HAVING SUM(count) > 0 ORDER BY day",
                    $date(to)
                ))
                .load(c)?;
                Ok(rows.into_iter().map(|r| (r.day, r.n)).collect())
            }

            /// One transaction: deletes the entries of `from <= datetime < to` with the given ids
            /// (or up to `limit` of them) and subtracts them from the rollup. Returns how many.
            pub(crate) fn delete_batch(
                c: &mut Conn,
                from: Date,
                to: Date,
                ids: Option<&[i64]>,
                limit: usize,
            ) -> QueryResult<usize> {
                let (lo, hi) = ($time(from), $time(to));
                c.$tx(|c| {
                    let ids: Vec<i64> = match ids {
                        Some(ids) => ids.to_vec(),
                        None => diesel::sql_query(format!(
                            "SELECT id FROM log_entries WHERE datetime >= {lo} AND datetime < {hi} LIMIT {limit}"
                        ))
                        .load::<Id>(c)?
                        .into_iter()
                        .map(|r| r.id)
                        .collect(),
                    };
                    if ids.is_empty() {
                        return Ok(0);
                    }
                    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
                    let rows: Vec<Deleted> = diesel::sql_query(format!(
                        "DELETE FROM log_entries WHERE datetime >= {lo} AND datetime < {hi} AND id IN ({list}) \
                         RETURNING namespace_id, repository_id, kind_id, datetime"
                    ))
                    .load(c)?;
                    decrement(c, &rows)?;
                    Ok(rows.len())
                })
            }

            fn decrement(c: &mut Conn, rows: &[Deleted]) -> QueryResult<()> {
                let counts: Vec<_> = decrements(rows).into_iter().collect();
                for chunk in counts.chunks(KEY_CHUNK) {
                    let keys = chunk
                        .iter()
                        .map(|((ns, r, day, k), _)| format!("({ns}, {r}, {}, {k})", $date(*day)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let values = chunk
                        .iter()
                        .map(|((ns, r, day, k), n)| format!("({ns}, {r}, {}, {k}, {n})", $date(*day)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    const KEY: &str = "(namespace_id, repository_id, day, kind_id)";
                    if $lock {
                        diesel::sql_query(format!(
                            "SELECT 1 FROM daily_counts WHERE {KEY} IN (VALUES {keys}) \
                             ORDER BY namespace_id, repository_id, day, kind_id FOR UPDATE"
                        ))
                        .execute(c)?;
                    }
                    diesel::sql_query(format!(
                        "UPDATE daily_counts AS d SET count = {}(d.count - v.column5, 0) FROM (VALUES {values}) AS v \
                         WHERE d.namespace_id = v.column1 AND d.repository_id = v.column2 \
                         AND d.day = v.column3 AND d.kind_id = v.column4",
                        $greatest
                    ))
                    .execute(c)?;
                    diesel::sql_query(format!("DELETE FROM daily_counts WHERE count = 0 AND {KEY} IN (VALUES {keys})"))
                        .execute(c)?;
                }
                Ok(())
            }
        }
    };
}

dialect!(
    sqlite,
    diesel::SqliteConnection,
    immediate_transaction,
    time = sqlite_time,
    date = sqlite_date,
    greatest = "MAX",
    lock_rows = false
);
dialect!(
    pg,
    diesel::PgConnection,
    transaction,
    time = partitions::midnight_literal,
    date = pg_date,
    greatest = "GREATEST",
    lock_rows = true
);

/// Drops a partition and the rollup rows of its days in one transaction; with `expected`, only
/// if the rollup still counts that many entries in it (`None` otherwise). Returns the entries
/// dropped.
fn drop_partition(
    c: &mut diesel::PgConnection,
    partition: &str,
    from: Date,
    to: Date,
    expected: Option<i64>,
) -> QueryResult<Option<i64>> {
    c.transaction(|c| {
        c.batch_execute(&format!(
            "SELECT pg_advisory_xact_lock({PG_RETENTION_LOCK}); LOCK TABLE ONLY log_entries IN SHARE MODE"
        ))?;
        let entries: i64 = pg::day_sums(c, Some(from), to)?.iter().map(|(_, n)| n).sum();
        if expected.is_some_and(|e| e != entries) {
            return Ok(None);
        }
        c.batch_execute(&format!(
            "DELETE FROM daily_counts WHERE day >= {} AND day < {}; \
             LOCK TABLE ONLY log_entries IN ACCESS EXCLUSIVE MODE; \
             DROP TABLE IF EXISTS {partition}",
            pg_date(from),
            pg_date(to)
        ))?;
        Ok(Some(entries))
    })
}

/// The entries of a range, ascending id, read in chunks; records what it yielded.
struct RangeEntries<'a> {
    store: &'a DieselStore,
    from: Micros,
    to: Micros,
    after: i64,
    buf: std::vec::IntoIter<LogEntry>,
    done: bool,
    error: Option<String>,
    yielded: i64,
    ids: Option<Vec<i64>>,
}

impl Iterator for RangeEntries<'_> {
    type Item = Result<LogEntry, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.buf.next() {
                self.yielded += 1;
                if let Some(ids) = &mut self.ids {
                    ids.push(e.id);
                }
                return Some(Ok(e));
            }
            if self.done || self.error.is_some() {
                return None;
            }
            match self.store.read_range(self.from, self.to, self.after, ARCHIVE_CHUNK) {
                Ok(chunk) => {
                    self.done = chunk.len() < ARCHIVE_CHUNK;
                    if let Some(last) = chunk.last() {
                        self.after = last.id;
                    }
                    self.buf = chunk.into_iter();
                }
                Err(e) => {
                    self.error = Some(e.to_string());
                    return Some(Err(e));
                }
            }
        }
    }
}

type RangeRow = (i64, String, String, Option<String>, Option<String>, Option<String>, Option<String>, Json, Micros);

impl DieselStore {
    /// Up to `limit` entries of `from <= datetime < to` with ids above `after`, ascending id.
    fn read_range(&self, from: Micros, to: Micros, after: i64, limit: usize) -> Result<Vec<LogEntry>, StoreError> {
        let mut conn = self.conn()?;
        let rows: Vec<RangeRow> = log_entries::table
            .inner_join(namespaces::table)
            .inner_join(kinds::table)
            .left_join(repositories::table)
            .left_join(performers::table)
            .filter(log_entries::datetime.ge(from))
            .filter(log_entries::datetime.lt(to))
            .filter(log_entries::id.gt(after))
            .order(log_entries::id.asc())
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .select((
                log_entries::id,
                kinds::name,
                namespaces::name,
                repositories::name.nullable(),
                performers::name.nullable(),
                performers::email.nullable(),
                log_entries::ip,
                log_entries::metadata,
                log_entries::datetime,
            ))
            .load(&mut *conn)
            .map_err(query_error)?;
        Ok(rows
            .into_iter()
            .map(|(id, kind, namespace, repository, performer, performer_email, ip, metadata, datetime)| LogEntry {
                id,
                kind,
                namespace,
                repository,
                performer,
                performer_email,
                ip,
                metadata: metadata.0,
                datetime: datetime.get(),
            })
            .collect())
    }

    fn day_sums(&self, from: Option<Date>, to: Date) -> Result<Vec<(Date, i64)>, StoreError> {
        let mut conn = self.conn()?;
        match &mut *conn {
            AnyConnection::Sqlite(c) => sqlite::day_sums(c, from, to),
            AnyConnection::Postgres(c) => pg::day_sums(c, from, to),
        }
        .map_err(query_error)
    }

    fn delete_batch(&self, from: Date, to: Date, ids: Option<&[i64]>, limit: usize) -> Result<usize, StoreError> {
        let mut conn = self.conn()?;
        match &mut *conn {
            AnyConnection::Sqlite(c) => sqlite::delete_batch(c, from, to, ids, limit),
            AnyConnection::Postgres(c) => pg::delete_batch(c, from, to, ids, limit),
        }
        .map_err(query_error)
    }

    /// Hands the entries of `piece` to `archive`; returns how many it took and (with
    /// `collect_ids`) their ids.
    fn archive_piece(
        &self,
        piece: &ArchivePiece,
        archive: &mut dyn RetentionArchive,
        collect_ids: bool,
    ) -> Result<(i64, Vec<i64>), RetentionError> {
        let mut entries = RangeEntries {
            store: self,
            from: midnight(piece.from),
            to: midnight(piece.to),
            after: i64::MIN,
            buf: Vec::new().into_iter(),
            done: false,
            error: None,
            yielded: 0,
            ids: collect_ids.then(Vec::new),
        };
        let result = archive.archive(piece, &mut entries);
        if let Some(e) = entries.error {
            return Err(RetentionError::Archive { piece: piece.label.clone(), source: e.into() });
        }
        result.map_err(|source| RetentionError::Archive { piece: piece.label.clone(), source })?;
        Ok((entries.yielded, entries.ids.unwrap_or_default()))
    }

    fn drop_unit(
        &self,
        unit: &RetentionUnit,
        partition: &str,
        mut archive: Option<&mut dyn RetentionArchive>,
    ) -> Result<UnitOutcome, RetentionError> {
        let month: Month = partitions::parse_name(partition)
            .ok_or_else(|| StoreError::Corrupt(format!("'{partition}' is not a partition of log_entries")))?;
        let label = partitions::label(month);
        for attempt in 1..=DROP_ATTEMPTS {
            let expected = match archive.as_mut().map(|a| &mut **a as &mut dyn RetentionArchive) {
                Some(a) => {
                    let piece = ArchivePiece { label: label.clone(), from: unit.from, to: unit.to };
                    Some(self.archive_piece(&piece, a, false)?.0)
                }
                None => None,
            };
            let mut conn = self.conn()?;
            let AnyConnection::Postgres(c) = &mut *conn else {
                return Err(StoreError::Corrupt("partitions exist on PostgreSQL only".into()).into());
            };
            match drop_partition(c, partition, unit.from, unit.to, expected).map_err(query_error)? {
                Some(removed) => {
                    self.partitions_lock().remove(&month);
                    tracing::info!(partition, removed, archived = expected.is_some(), "dropped log_entries partition");
                    let archived = if expected.is_some() { vec![label] } else { Vec::new() };
                    return Ok(UnitOutcome { unit: unit.clone(), removed, archived });
                }
                None => tracing::warn!(partition, attempt, "entries arrived in the partition while it was archived"),
            }
        }
        Err(RetentionError::Changed { partition: partition.to_owned() })
    }

    fn delete_unit(
        &self,
        unit: &RetentionUnit,
        archive: Option<&mut dyn RetentionArchive>,
    ) -> Result<UnitOutcome, RetentionError> {
        let mut removed = 0usize;
        let mut archived = Vec::new();
        match archive {
            Some(a) => {
                for (day, _) in self.day_sums(Some(unit.from), unit.to)? {
                    let Some(next) = day.next_day() else { continue };
                    let piece = ArchivePiece { label: day.to_string(), from: day, to: next };
                    let (_, ids) = self.archive_piece(&piece, a, true)?;
                    if ids.is_empty() {
                        continue;
                    }
                    archived.push(piece.label);
                    for chunk in ids.chunks(DELETE_BATCH) {
                        removed += self.delete_batch(day, next, Some(chunk), chunk.len())?;
                    }
                }
            }
            None => loop {
                let n = self.delete_batch(unit.from, unit.to, None, DELETE_BATCH)?;
                removed += n;
                if n < DELETE_BATCH {
                    break;
                }
            },
        }
        let removed = i64::try_from(removed).unwrap_or(i64::MAX);
        tracing::info!(from = %unit.from, to = %unit.to, removed, "deleted log entries before the retention cutoff");
        Ok(UnitOutcome { unit: unit.clone(), removed, archived })
    }
}

/// Sums the day counts of `days` with `from <= day < to`.
fn sum_between(days: &[(Date, i64)], from: Date, to: Date) -> i64 {
    days.iter().filter(|(d, _)| *d >= from && *d < to).map(|(_, n)| n).sum()
}

impl RetentionStore for DieselStore {
    fn retention_plan(&self, cutoff: Date) -> Result<RetentionPlan, StoreError> {
        let days = self.day_sums(None, cutoff)?;
        let mut units = Vec::new();
        let mut conn = self.conn()?;
        match &mut *conn {
            AnyConnection::Sqlite(_) => {
                let mut months: Vec<Month> = days.iter().map(|(d, _)| partitions::month_of(*d)).collect();
                months.dedup();
                for m in months {
                    let Some(from) = partitions::first_day(m) else { continue };
                    let to = partitions::first_day(partitions::next(m)).map_or(cutoff, |end| end.min(cutoff));
                    let entries = sum_between(&days, from, to);
                    units.push(RetentionUnit { action: RetentionAction::Delete, from, to, entries });
                }
            }
            AnyConnection::Postgres(c) => {
                let months = partitions::existing(c).map_err(query_error)?;
                for m in months.iter().copied() {
                    let Some(from) = partitions::first_day(m) else { continue };
                    if from >= cutoff {
                        break;
                    }
                    match partitions::first_day(partitions::next(m)) {
                        Some(end) if end <= cutoff => units.push(RetentionUnit {
                            action: RetentionAction::DropPartition { partition: partitions::name(m) },
                            from,
                            to: end,
                            entries: sum_between(&days, from, end),
                        }),
                        _ => {
                            let entries = sum_between(&days, from, cutoff);
                            if entries > 0 {
                                units.push(RetentionUnit {
                                    action: RetentionAction::Delete,
                                    from,
                                    to: cutoff,
                                    entries,
                                });
                            }
                        }
                    }
                }
                *self.partitions_lock() = months;
            }
        }
        Ok(RetentionPlan { cutoff, units })
    }

    fn apply_unit(
        &self,
        unit: &RetentionUnit,
        archive: Option<&mut dyn RetentionArchive>,
    ) -> Result<UnitOutcome, RetentionError> {
        match &unit.action {
            RetentionAction::DropPartition { partition } => self.drop_unit(unit, partition, archive),
            RetentionAction::Delete => self.delete_unit(unit, archive),
        }
    }

    fn ensure_partitions(&self, today: Date) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn()?;
        match &mut *conn {
            AnyConnection::Sqlite(_) => Ok(Vec::new()),
            AnyConnection::Postgres(c) => self.ensure_partitions_pg(c, ahead(today), true),
        }
    }
}
