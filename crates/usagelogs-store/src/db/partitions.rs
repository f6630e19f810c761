//! PostgreSQL: the monthly partitions of `log_entries`.
//!
//! A partition covers one UTC calendar month, `[first of the month, first of the next month)`,
//! and is named `log_entries_yYYYYmMM`. There is no default partition, so a month's partition
//! must exist before an entry of that month is inserted: the store keeps the set of months known
//! to exist (read from the catalog at connect) and creates missing ones, each in its own short
//! transaction, before the insert transaction.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::Text;
use std::collections::BTreeSet;
use time::{Date, Month as CalendarMonth};

/// A calendar month: (year, month 1–12).
pub(crate) type Month = (i32, u8);

/// Prefix of every partition's name.
const PREFIX: &str = "log_entries_y";

pub(crate) fn month_of(d: Date) -> Month {
    (d.year(), u8::from(d.month()))
}

pub(crate) fn next(m: Month) -> Month {
    if m.1 >= 12 { (m.0 + 1, 1) } else { (m.0, m.1 + 1) }
}

/// The first day of `m`, when representable.
pub(crate) fn first_day(m: Month) -> Option<Date> {
    Date::from_calendar_date(m.0, CalendarMonth::try_from(m.1).ok()?, 1).ok()
}

/// `log_entries_y2024m03`.
pub(crate) fn name(m: Month) -> String {
    format!("{PREFIX}{:04}m{:02}", m.0, m.1)
}

/// The month of a partition named by [`name`].
pub(crate) fn parse_name(s: &str) -> Option<Month> {
    let rest = s.strip_prefix(PREFIX)?;
    let (year, month) = rest.split_once('m')?;
    if year.len() != 4 || month.len() != 2 {
        return None;
    }
    let (year, month): (i32, u8) = (year.parse().ok()?, month.parse().ok()?);
    (1..=12).contains(&month).then_some((year, month))
}

/// `YYYY-MM`.
pub(crate) fn label(m: Month) -> String {
    format!("{:04}-{:02}", m.0, m.1)
}

/// A `timestamptz` literal for 00:00 UTC on the first day of `m`.
fn bound(m: Month) -> String {
    format!("'{:04}-{:02}-01 00:00:00+00'", m.0, m.1)
}

/// A `timestamptz` literal for 00:00 UTC of `d`.
pub(crate) fn midnight_literal(d: Date) -> String {
    format!("'{d} 00:00:00+00'")
}

/// Whether a partition can be made for `m` (names and literals assume 4-digit years).
fn supported(m: Month) -> bool {
    (1..=9999).contains(&m.0)
}

#[derive(QueryableByName)]
struct Relname {
    #[diesel(sql_type = Text)]
    relname: String,
}

/// The months whose partitions exist, from the catalog (partitions named otherwise are left out).
pub(crate) fn existing(c: &mut PgConnection) -> QueryResult<BTreeSet<Month>> {
    let rows: Vec<Relname> = diesel::sql_query(
        "SELECT c.relname::text AS relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'log_entries'::regclass",
    )
    .load(c)?;
    Ok(rows.iter().filter_map(|r| parse_name(&r.relname)).collect())
}

/// Creates the partition of `m` unless it exists, in its own transaction. Another server creating
/// it at the same moment is not an error.
pub(crate) fn create(c: &mut PgConnection, m: Month) -> QueryResult<()> {
    if !supported(m) {
        // The insert then fails with PostgreSQL's "no partition of relation" error.
        return Ok(());
    }
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS {} PARTITION OF log_entries FOR VALUES FROM ({}) TO ({})",
        name(m),
        bound(m),
        bound(next(m))
    );
    match c.transaction(|c| c.batch_execute(&sql)) {
        Ok(()) => {
            tracing::info!(partition = %name(m), "created log_entries partition");
            Ok(())
        }
        Err(e) if already_there(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Errors that mean the partition (or one covering its range) exists: a concurrent `CREATE`
/// that won the race on the catalog.
fn already_there(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(kind, info) => {
            matches!(kind, DatabaseErrorKind::UniqueViolation)
                || info.message().contains("already exists")
                || info.message().contains("would overlap")
        }
        _ => false,
    }
}

/// Whether an insert failed because the partition of some row is missing (dropped since the
/// cache was filled, e.g. by another server's retention).
pub(crate) fn is_missing_partition(e: &DieselError) -> bool {
    matches!(e, DieselError::DatabaseError(_, info) if info.message().contains("no partition of relation"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn names_and_months() {
        assert_eq!(name((2024, 3)), "log_entries_y2024m03");
        assert_eq!(parse_name("log_entries_y2024m03"), Some((2024, 3)));
        assert_eq!(parse_name("log_entries_y1975m12"), Some((1975, 12)));
        assert_eq!(parse_name("log_entries_y2024m13"), None);
        assert_eq!(parse_name("log_entries_unpartitioned"), None);
        assert_eq!(parse_name("log_entries_y2024m03_old"), None);
        assert_eq!(next((2024, 12)), (2025, 1));
        assert_eq!(next((2024, 3)), (2024, 4));
        assert_eq!(month_of(date!(2024 - 02 - 29)), (2024, 2));
        assert_eq!(first_day((2024, 2)), Some(date!(2024 - 02 - 01)));
        assert_eq!(bound((9998, 12)), "'9998-12-01 00:00:00+00'");
        assert_eq!(bound(next((9998, 12))), "'9999-01-01 00:00:00+00'");
        assert_eq!(label((1975, 1)), "1975-01");
        assert_eq!(midnight_literal(date!(2024 - 03 - 05)), "'2024-03-05 00:00:00+00'");
    }
}
