//! Reads: lists, export chunks, aggregates, existence checks.

use super::conn::{AnyConnection, MultiBackend};
use super::names::NameCache;
use super::schema::{daily_counts, log_entries, namespaces, performers, repositories};
use super::types::{Json, Micros};
use super::write::NAME_CHUNK;
use crate::{Cursor, LogQuery, LogScope};
use diesel::dsl::count_star;
use diesel::prelude::*;
use std::collections::HashMap;
use time::{Date, Duration, OffsetDateTime, Time};

/// Which kinds a resolved query keeps, by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KindIds {
    All,
    Only(Vec<i64>),
    Except(Vec<i64>),
}

/// A query with its names replaced by ids. Absent when some name is unknown (the query
/// matches nothing).
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) namespace: String,
    pub(crate) namespace_id: i64,
    pub(crate) repository_id: Option<i64>,
    pub(crate) performer_id: Option<i64>,
    pub(crate) kinds: KindIds,
    /// The window, `lo <= datetime < hi`, to the microsecond.
    pub(crate) lo: Micros,
    pub(crate) hi: Micros,
}

/// Looks up the ids of a query's namespace, repository and performer. `kind_ids` maps kind
/// names to ids (unknown names are left out of its answer).
pub(crate) fn resolve(
    conn: &mut AnyConnection,
    query: &LogQuery,
    names: &NameCache,
    kind_ids: impl FnOnce(&mut AnyConnection, &[&str]) -> QueryResult<Vec<(String, i64)>>,
) -> QueryResult<Option<Resolved>> {
    let namespace = match &query.scope {
        LogScope::Namespace(ns) => ns,
        LogScope::Repository { namespace, .. } => namespace,
    };
    let Some(namespace_id) = namespace_id(conn, names, namespace)? else {
        return Ok(None);
    };
    let repository_id = match &query.scope {
        LogScope::Namespace(_) => None,
        LogScope::Repository { name, .. } => match repository_id(conn, names, namespace_id, name)? {
            Some(id) => Some(id),
            None => return Ok(None),
        },
    };
    let performer_id = match &query.performer {
        None => None,
        Some(p) => match performer_id(conn, names, p)? {
            Some(id) => Some(id),
            None => return Ok(None),
        },
    };
    let filter = &query.kinds;
    let mut names: Vec<&str> = filter.exclude.iter().map(String::as_str).collect();
    if let Some(include) = &filter.include {
        names.extend(include.iter().map(String::as_str));
    }
    let kinds = if names.is_empty() && filter.include.is_none() {
        KindIds::All
    } else {
        let known = kind_ids(conn, &names)?;
        match &filter.include {
            Some(_) => {
                let ids: Vec<i64> = known.iter().filter(|(n, _)| filter.admits(n)).map(|(_, id)| *id).collect();
                if ids.is_empty() {
                    return Ok(None);
                }
                KindIds::Only(ids)
            }
            None if known.is_empty() => KindIds::All,
            None => KindIds::Except(known.iter().map(|(_, id)| *id).collect()),
        }
    };
    Ok(Some(Resolved {
        namespace: namespace.clone(),
        namespace_id,
        repository_id,
        performer_id,
        kinds,
        lo: Micros::ceil(query.window.start()),
        hi: Micros::ceil(query.window.end()),
    }))
}

/// The id of a namespace, from `names` or else the database (and then remembered).
pub(crate) fn namespace_id(conn: &mut AnyConnection, names: &NameCache, name: &str) -> QueryResult<Option<i64>> {
    if let Some(id) = names.namespace(name) {
        return Ok(Some(id));
    }
    let id = namespaces::table.filter(namespaces::name.eq(name)).select(namespaces::id).first(conn).optional()?;
    if let Some(id) = id {
        names.remember_namespaces([(name, id)]);
    }
    Ok(id)
}

/// The id of a repository, from `names` or else the database (and then remembered).
pub(crate) fn repository_id(
    conn: &mut AnyConnection,
    names: &NameCache,
    namespace_id: i64,
    name: &str,
) -> QueryResult<Option<i64>> {
    if let Some(id) = names.repository(namespace_id, name) {
        return Ok(Some(id));
    }
    let id = repositories::table
        .filter(repositories::namespace_id.eq(namespace_id))
        .filter(repositories::name.eq(name))
        .select(repositories::id)
        .first(conn)
        .optional()?;
    if let Some(id) = id {
        names.remember_repositories(namespace_id, [(name, id)]);
    }
    Ok(id)
}

/// The id of a performer, from `names` or else the database (and then remembered).
fn performer_id(conn: &mut AnyConnection, names: &NameCache, name: &str) -> QueryResult<Option<i64>> {
    if let Some(row) = names.performer(name) {
        return Ok(Some(row.id));
    }
    let id = performers::table.filter(performers::name.eq(name)).select(performers::id).first(conn).optional()?;
    if let Some(id) = id {
        names.remember_performer_id(name, id);
    }
    Ok(id)
}

/// Adds the scope, performer and kind conditions of `r` to a boxed query over `log_entries`.
macro_rules! scoped {
    ($query:expr, $r:expr) => {{
        let r: &Resolved = $r;
        // The namespace always, also under a repository (which implies it): a repository's
        // list filtered by kind or performer may then use the namespace's (…, kind | performer,
        // datetime, id) index with the repository as a filter, when the planner finds it narrower.
        let mut q = $query.filter(log_entries::namespace_id.eq(r.namespace_id));
        if let Some(id) = r.repository_id {
            q = q.filter(log_entries::repository_id.eq(id));
        }
        if let Some(p) = r.performer_id {
            q = q.filter(log_entries::performer_id.eq(p));
        }
        match &r.kinds {
            KindIds::All => {}
            // One kind: a plain `=` lets the (namespace, kind, datetime, id) index give the order.
            KindIds::Only(ids) if ids.len() == 1 => q = q.filter(log_entries::kind_id.eq(ids[0])),
            KindIds::Only(ids) => q = q.filter(log_entries::kind_id.eq_any(ids.clone())),
            KindIds::Except(ids) => q = q.filter(log_entries::kind_id.ne_all(ids.clone())),
        }
        q
    }};
}

/// The direction of a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// Newest first: lists.
    Desc,
    /// Oldest first: exports.
    Asc,
}

/// A row read back: id, kind id, repository id, performer id, ip, metadata, time. Names are
/// resolved afterwards ([`repository_names`], [`performers_by_id`]): the entries' query stays on
/// one table, which PostgreSQL plans in a fraction of the time a join over the partitions takes.
pub(crate) type Row = (i64, i64, Option<i64>, Option<i64>, Option<String>, Json, Micros);

/// Up to `limit` rows of `r` strictly after `after` in `order`.
pub(crate) fn rows(
    conn: &mut AnyConnection,
    r: &Resolved,
    after: Option<Cursor>,
    limit: usize,
    order: Order,
) -> QueryResult<Vec<Row>> {
    let query = log_entries::table
        .select((
            log_entries::id,
            log_entries::kind_id,
            log_entries::repository_id,
            log_entries::performer_id,
            log_entries::ip,
            log_entries::metadata,
            log_entries::datetime,
        ))
        .into_boxed::<MultiBackend>();
    let mut q = scoped!(query, r);
    q = q.filter(log_entries::datetime.ge(r.lo)).filter(log_entries::datetime.lt(r.hi));
    if let Some(c) = after {
        // A cursor finer than a microsecond (not from a stored entry) still means "strictly
        // after this instant": no stored time equals it.
        let (t, id) = match (Micros::is_exact(c.datetime), order) {
            (true, _) => (Micros::floor(c.datetime), c.id),
            (false, Order::Desc) => (Micros::ceil(c.datetime), i64::MIN),
            (false, Order::Asc) => (Micros::floor(c.datetime), i64::MAX),
        };
        // `datetime <= t AND (datetime < t OR id < cursor)`: the first term bounds the index
        // range, the second settles ties on `t`.
        q = match order {
            Order::Desc => {
                q.filter(log_entries::datetime.le(t).and(log_entries::datetime.lt(t).or(log_entries::id.lt(id))))
            }
            Order::Asc => {
                q.filter(log_entries::datetime.ge(t).and(log_entries::datetime.gt(t).or(log_entries::id.gt(id))))
            }
        };
    }
    q = match order {
        Order::Desc => q.order((log_entries::datetime.desc(), log_entries::id.desc())),
        Order::Asc => q.order((log_entries::datetime.asc(), log_entries::id.asc())),
    };
    q.limit(i64::try_from(limit).unwrap_or(i64::MAX)).load(conn)
}

/// Names of repository ids, from `names` or else the database (and then remembered). Repository
/// names never change, so the cache answers exactly.
pub(crate) fn repository_names(
    conn: &mut AnyConnection,
    names: &NameCache,
    ids: impl IntoIterator<Item = i64>,
) -> QueryResult<HashMap<i64, String>> {
    let (mut found, missing) = names.repository_names(ids);
    for chunk in missing.chunks(NAME_CHUNK) {
        let rows: Vec<(i64, i64, String)> = repositories::table
            .filter(repositories::id.eq_any(chunk))
            .select((repositories::id, repositories::namespace_id, repositories::name))
            .load(conn)?;
        for (id, ns, name) in rows {
            names.remember_repositories(ns, [(name.as_str(), id)]);
            found.insert(id, name);
        }
    }
    Ok(found)
}

/// Names and e-mails of performer ids, from the database (an e-mail may have changed through
/// another server, so it is read each time; one primary-key lookup per page).
pub(crate) fn performers_by_id(
    conn: &mut AnyConnection,
    ids: impl IntoIterator<Item = i64>,
) -> QueryResult<HashMap<i64, (String, Option<String>)>> {
    let ids: Vec<i64> = ids.into_iter().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let mut found = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(NAME_CHUNK) {
        let rows: Vec<(i64, String, Option<String>)> = performers::table
            .filter(performers::id.eq_any(chunk))
            .select((performers::id, performers::name, performers::email))
            .load(conn)?;
        found.extend(rows.into_iter().map(|(id, name, email)| (id, (name, email))));
    }
    Ok(found)
}

/// Counts per kind id of the entries of `r` with `from <= datetime < to`.
fn count_entries(conn: &mut AnyConnection, r: &Resolved, from: Micros, to: Micros) -> QueryResult<Vec<(i64, i64)>> {
    let query = log_entries::table
        .group_by(log_entries::kind_id)
        .select((log_entries::kind_id, count_star()))
        .into_boxed::<MultiBackend>();
    let q = scoped!(query, r);
    q.filter(log_entries::datetime.ge(from)).filter(log_entries::datetime.lt(to)).load(conn)
}

/// Counts per (UTC day, kind id) of the entries of `r` with `from <= datetime < to`, in one
/// grouped query.
fn count_entries_by_day(
    conn: &mut AnyConnection,
    r: &Resolved,
    from: Micros,
    to: Micros,
) -> QueryResult<Vec<(Date, i64, i64)>> {
    use diesel::dsl::sql;
    use diesel::sql_types::{BigInt, Date as SqlDate};
    let day = match conn {
        AnyConnection::Postgres(_) => "(log_entries.datetime AT TIME ZONE 'UTC')::date",
        AnyConnection::Sqlite(_) => "date(log_entries.datetime / 1000000, 'unixepoch')",
    };
    // Literals: Diesel's typed GROUP BY cannot mix an SQL expression with a column.
    let query = log_entries::table
        .group_by(sql::<SqlDate>(&format!("{day}, log_entries.kind_id")))
        .select((sql::<SqlDate>(day), sql::<BigInt>("log_entries.kind_id"), count_star()))
        .into_boxed::<MultiBackend>();
    let q = scoped!(query, r);
    q.filter(log_entries::datetime.ge(from)).filter(log_entries::datetime.lt(to)).load(conn)
}

/// Rollup rows of `r` for the days `from <= day < to`: (day, kind id, count).
fn rollup_counts(conn: &mut AnyConnection, r: &Resolved, from: Date, to: Date) -> QueryResult<Vec<(Date, i64, i64)>> {
    let mut q = daily_counts::table
        .filter(daily_counts::namespace_id.eq(r.namespace_id))
        .filter(daily_counts::repository_id.eq(r.repository_id.unwrap_or(0)))
        .filter(daily_counts::day.ge(from))
        .filter(daily_counts::day.lt(to))
        .select((daily_counts::day, daily_counts::kind_id, daily_counts::count))
        .into_boxed::<MultiBackend>();
    match &r.kinds {
        KindIds::All => {}
        KindIds::Only(ids) if ids.len() == 1 => q = q.filter(daily_counts::kind_id.eq(ids[0])),
        KindIds::Only(ids) => q = q.filter(daily_counts::kind_id.eq_any(ids.clone())),
        KindIds::Except(ids) => q = q.filter(daily_counts::kind_id.ne_all(ids.clone())),
    }
    q.load(conn)
}

fn midnight(d: Date) -> OffsetDateTime {
    d.with_time(Time::MIDNIGHT).assume_utc()
}

/// A partial day: the day, and the part `[from, to)` of it inside the window.
pub(crate) type Piece = (Date, OffsetDateTime, OffsetDateTime);

/// Splits `[lo, hi)` into the whole UTC days inside it and the partial days at its edges.
/// Returns the partial pieces and the whole days `[first, end)`.
pub(crate) fn split_days(lo: OffsetDateTime, hi: OffsetDateTime) -> (Vec<Piece>, Option<(Date, Date)>) {
    let mut pieces = Vec::new();
    if lo >= hi {
        return (pieces, None);
    }
    let head_end = if lo == midnight(lo.date()) { lo } else { hi.min(midnight(lo.date()) + Duration::DAY) };
    if lo < head_end {
        pieces.push((lo.date(), lo, head_end));
    }
    let tail_start = head_end.max(midnight(hi.date()));
    if tail_start < hi {
        pieces.push((tail_start.date(), tail_start, hi));
    }
    let whole = (head_end < tail_start).then(|| (head_end.date(), tail_start.date()));
    (pieces, whole)
}

/// Counts per (day, kind id) of `r`: whole days from the rollup, partial days from entries.
/// The rollup has no performer rows: a performer's counts come from its entries, through the
/// (namespace, performer, datetime) index that carries the kind.
pub(crate) fn daily_counts(conn: &mut AnyConnection, r: &Resolved) -> QueryResult<Vec<(Date, i64, i64)>> {
    if r.performer_id.is_some() {
        return count_entries_by_day(conn, r, r.lo, r.hi);
    }
    let (pieces, whole) = split_days(r.lo.get(), r.hi.get());
    let mut out = Vec::new();
    if let Some((first, end)) = whole {
        out.extend(rollup_counts(conn, r, first, end)?);
    }
    for (day, from, to) in pieces {
        let counts = count_entries(conn, r, Micros::floor(from), Micros::floor(to))?;
        out.extend(counts.into_iter().map(|(kind, n)| (day, kind, n)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn day_splits() {
        let d1 = date!(2024 - 02 - 28);
        // Inside one day.
        let (p, w) = split_days(datetime!(2024-02-28 10:00 UTC), datetime!(2024-02-28 15:00 UTC));
        assert_eq!(p, vec![(d1, datetime!(2024-02-28 10:00 UTC), datetime!(2024-02-28 15:00 UTC))]);
        assert_eq!(w, None);
        // Across one midnight.
        let (p, w) = split_days(datetime!(2024-02-28 10:00 UTC), datetime!(2024-02-29 05:00 UTC));
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].0, date!(2024 - 02 - 29));
        assert_eq!(w, None);
        // Aligned.
        let (p, w) = split_days(datetime!(2024-02-28 00:00 UTC), datetime!(2024-03-01 00:00 UTC));
        assert!(p.is_empty());
        assert_eq!(w, Some((d1, date!(2024 - 03 - 01))));
        // Both edges partial, whole days between.
        let (p, w) = split_days(datetime!(2023-12-30 12:00 UTC), datetime!(2024-01-02 00:00:00.000001 UTC));
        assert_eq!(p.len(), 2);
        assert_eq!(w, Some((date!(2023 - 12 - 31), date!(2024 - 01 - 02))));
        // Empty.
        assert_eq!(split_days(datetime!(2024-02-28 10:00 UTC), datetime!(2024-02-28 10:00 UTC)), (vec![], None));
        // Start partial, end at midnight.
        let (p, w) = split_days(datetime!(2024-02-28 10:00 UTC), datetime!(2024-02-29 00:00 UTC));
        assert_eq!(p.len(), 1);
        assert_eq!(w, None);
    }
}
