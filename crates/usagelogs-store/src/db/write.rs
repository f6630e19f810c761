//! `insert_batch`: one transaction that registers the batch's names, inserts its entries and
//! bumps the daily rollup.
//!
//! Lock order is the same in every transaction (namespaces, repositories, performers, kinds,
//! entries, rollup; each in sorted key order), so concurrent writers on PostgreSQL wait for each
//! other instead of deadlocking.

use super::names::{NameCache, PerformerRow};
use super::types::{JsonText, Micros};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use time::Date;
use usagelogs_core::NewLogEntry;

/// Entries per multi-row `INSERT`: 7 parameters a row stays far below SQLite's limit of 32,766
/// bound parameters (and PostgreSQL's 65,535).
pub(crate) const ENTRY_CHUNK: usize = 1000;
/// Rollup rows per multi-row `INSERT … ON CONFLICT` (6 parameters a row).
pub(crate) const ROLLUP_CHUNK: usize = 1000;
/// Names per `IN (…)` list.
pub(crate) const NAME_CHUNK: usize = 500;

/// A batch prepared for writing: everything computed before the transaction opens.
#[derive(Debug)]
pub(crate) struct Plan<'a> {
    pub(crate) entries: &'a [NewLogEntry],
    /// Per entry: its time to the microsecond, its UTC day, its metadata as JSON text.
    pub(crate) rows: Vec<(Micros, Date, JsonText)>,
    pub(crate) namespaces: BTreeSet<&'a str>,
    pub(crate) repositories: BTreeSet<(&'a str, &'a str)>,
    /// Performer → the last e-mail given for it in the batch.
    pub(crate) performers: BTreeMap<&'a str, Option<&'a str>>,
    pub(crate) kinds: BTreeSet<&'a str>,
}

impl<'a> Plan<'a> {
    pub(crate) fn new(entries: &'a [NewLogEntry]) -> Result<Self, serde_json::Error> {
        let mut plan = Plan {
            entries,
            rows: Vec::with_capacity(entries.len()),
            namespaces: BTreeSet::new(),
            repositories: BTreeSet::new(),
            performers: BTreeMap::new(),
            kinds: BTreeSet::new(),
        };
        for e in entries {
            let t = Micros::floor(e.datetime);
            plan.rows.push((t, t.get().date(), JsonText(serde_json::to_string(&e.metadata)?)));
            plan.namespaces.insert(e.namespace.as_str());
            if let Some(repo) = &e.repository {
                plan.repositories.insert((e.namespace.as_str(), repo.as_str()));
            }
            if let Some(p) = &e.performer {
                let email = plan.performers.entry(p.as_str()).or_default();
                if let Some(new) = e.performer_email.as_deref() {
                    *email = Some(new);
                }
            }
            plan.kinds.insert(e.kind.as_str());
        }
        Ok(plan)
    }
}

/// Ids of the batch's names, once registered.
#[derive(Debug, Default)]
pub(crate) struct Ids {
    pub(crate) namespaces: HashMap<String, i64>,
    /// Namespace id → repository name → id.
    pub(crate) repositories: HashMap<i64, HashMap<String, i64>>,
    /// Performer → its id and the e-mail stored for it once the batch commits.
    pub(crate) performers: HashMap<String, PerformerRow>,
    pub(crate) kinds: HashMap<String, i64>,
}

impl Ids {
    fn repository(&self, namespace_id: i64, name: &str) -> Option<i64> {
        self.repositories.get(&namespace_id)?.get(name).copied()
    }

    /// Records the batch's names in `cache`; call only once the batch has committed.
    pub(crate) fn remember(&self, cache: &NameCache) {
        cache.remember_namespaces(self.namespaces.iter().map(|(n, id)| (n.as_str(), *id)));
        for (ns, repos) in &self.repositories {
            cache.remember_repositories(*ns, repos.iter().map(|(n, id)| (n.as_str(), *id)));
        }
        cache.remember_performers(self.performers.iter().map(|(n, row)| (n.as_str(), row)));
    }
}

/// Key of a rollup row, in primary-key order: namespace, repository (0 for the whole
/// namespace), UTC day, kind.
pub(crate) type RollupKey = (i64, i64, Date, i64);

/// The rollup increments of a batch, sorted by key.
pub(crate) fn rollup(plan: &Plan<'_>, ids: &Ids) -> Option<BTreeMap<RollupKey, i64>> {
    let mut counts = BTreeMap::new();
    for (e, (_, day, _)) in plan.entries.iter().zip(&plan.rows) {
        let ns = *ids.namespaces.get(e.namespace.as_str())?;
        let kind = *ids.kinds.get(e.kind.as_str())?;
        *counts.entry((ns, 0, *day, kind)).or_insert(0) += 1;
        if let Some(r) = &e.repository {
            let r = ids.repository(ns, r.as_str())?;
            *counts.entry((ns, r, *day, kind)).or_insert(0) += 1;
        }
    }
    Some(counts)
}

/// Defines `write(conn, plan, known_kinds)` for one concrete connection type. The body is the
/// same for both dialects; only the connection type differs, so statements Diesel cannot run
/// through [`AnyConnection`](super::conn::AnyConnection) (multi-row inserts, `ON CONFLICT`)
/// type-check against each dialect.
/// An entry row to insert.
#[derive(Debug, diesel::Insertable)]
#[diesel(table_name = crate::db::schema::log_entries)]
#[diesel(treat_none_as_default_value = false)]
pub(crate) struct NewRow<'a> {
    namespace_id: i64,
    repository_id: Option<i64>,
    performer_id: Option<i64>,
    kind_id: i64,
    datetime: Micros,
    ip: Option<&'a str>,
    metadata: &'a JsonText,
}

/// SQLite: multi-row `INSERT`s.
fn insert_entries_sqlite(c: &mut diesel::SqliteConnection, rows: &[NewRow<'_>]) -> diesel::QueryResult<()> {
    use diesel::RunQueryDsl;
    for chunk in rows.chunks(ENTRY_CHUNK) {
        diesel::insert_into(crate::db::schema::log_entries::table).values(chunk).execute(c)?;
    }
    Ok(())
}

/// PostgreSQL: one binary `COPY … FROM STDIN`, the fastest way in.
fn insert_entries_pg(c: &mut diesel::PgConnection, rows: &[NewRow<'_>]) -> diesel::QueryResult<()> {
    use diesel::ExecuteCopyFromDsl;
    diesel::copy_from(crate::db::schema::log_entries::table).from_insertable(rows).execute(c)?;
    Ok(())
}

macro_rules! writer {
    ($module:ident, $conn:ty, $insert_entries:ident) => {
        pub(crate) mod $module {
            use super::*;
            use crate::db::schema::{daily_counts, kinds, namespaces, performers, repositories};
            use diesel::prelude::*;
            use diesel::upsert::excluded;

            type Conn = $conn;
            use super::$insert_entries as insert_entries;

            fn namespace_ids(
                c: &mut Conn,
                names: &BTreeSet<&str>,
                cache: &NameCache,
            ) -> QueryResult<HashMap<String, i64>> {
                let (mut found, missing) = cache.namespaces(names.iter().copied());
                for chunk in missing.chunks(NAME_CHUNK) {
                    let select = |c: &mut Conn| -> QueryResult<Vec<(i64, String)>> {
                        namespaces::table
                            .filter(namespaces::name.eq_any(chunk))
                            .select((namespaces::id, namespaces::name))
                            .load(c)
                    };
                    let mut rows = select(c)?;
                    if rows.len() < chunk.len() {
                        let present: BTreeSet<&str> = rows.iter().map(|(_, n)| n.as_str()).collect();
                        let values: Vec<_> =
                            chunk.iter().filter(|n| !present.contains(**n)).map(|n| namespaces::name.eq(*n)).collect();
                        diesel::insert_into(namespaces::table).values(&values).on_conflict_do_nothing().execute(c)?;
                        rows = select(c)?;
                    }
                    found.extend(rows.into_iter().map(|(id, name)| (name, id)));
                }
                Ok(found)
            }

            fn kind_ids(
                c: &mut Conn,
                names: &BTreeSet<&str>,
                known: &HashMap<String, i64>,
            ) -> QueryResult<HashMap<String, i64>> {
                let mut found: HashMap<String, i64> =
                    names.iter().filter_map(|n| known.get(*n).map(|id| ((*n).to_owned(), *id))).collect();
                let missing: Vec<&str> = names.iter().copied().filter(|n| !found.contains_key(*n)).collect();
                for chunk in missing.chunks(NAME_CHUNK) {
                    let values: Vec<_> = chunk.iter().map(|n| kinds::name.eq(*n)).collect();
                    diesel::insert_into(kinds::table).values(&values).on_conflict_do_nothing().execute(c)?;
                    let rows: Vec<(i64, String)> =
                        kinds::table.filter(kinds::name.eq_any(chunk)).select((kinds::id, kinds::name)).load(c)?;
                    found.extend(rows.into_iter().map(|(id, name)| (name, id)));
                }
                Ok(found)
            }

            fn repository_ids(
                c: &mut Conn,
                wanted: &BTreeSet<(&str, &str)>,
                ns_ids: &HashMap<String, i64>,
                cache: &NameCache,
            ) -> QueryResult<HashMap<i64, HashMap<String, i64>>> {
                let mut by_ns: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
                for (ns, name) in wanted {
                    if let Some(id) = ns_ids.get(*ns) {
                        by_ns.entry(*id).or_default().push(name);
                    }
                }
                let mut all = HashMap::with_capacity(by_ns.len());
                for (ns, names) in &by_ns {
                    let (mut found, missing) = cache.repositories(*ns, names.iter().copied());
                    for chunk in missing.chunks(NAME_CHUNK) {
                        let select = |c: &mut Conn| -> QueryResult<Vec<(i64, String)>> {
                            repositories::table
                                .filter(repositories::namespace_id.eq(ns))
                                .filter(repositories::name.eq_any(chunk))
                                .select((repositories::id, repositories::name))
                                .load(c)
                        };
                        let rows = select(c)?;
                        let fresh = rows.len() < chunk.len();
                        found.extend(rows.into_iter().map(|(id, name)| (name, id)));
                        if fresh {
                            let values: Vec<_> = chunk
                                .iter()
                                .filter(|n| !found.contains_key(**n))
                                .map(|n| (repositories::namespace_id.eq(*ns), repositories::name.eq(*n)))
                                .collect();
                            diesel::insert_into(repositories::table)
                                .values(&values)
                                .on_conflict_do_nothing()
                                .execute(c)?;
                            found.extend(select(c)?.into_iter().map(|(id, name)| (name, id)));
                        }
                    }
                    all.insert(*ns, found);
                }
                Ok(all)
            }

            fn performer_ids(
                c: &mut Conn,
                wanted: &BTreeMap<&str, Option<&str>>,
                cache: &NameCache,
            ) -> QueryResult<HashMap<String, PerformerRow>> {
                let (mut found, missing) = cache.performers(wanted.keys().copied());
                for chunk in missing.chunks(NAME_CHUNK) {
                    let select = |c: &mut Conn| -> QueryResult<Vec<(i64, String, Option<String>)>> {
                        performers::table
                            .filter(performers::name.eq_any(chunk))
                            .select((performers::id, performers::name, performers::email))
                            .load(c)
                    };
                    let mut rows = select(c)?;
                    if rows.len() < chunk.len() {
                        let present: BTreeSet<&str> = rows.iter().map(|(_, n, _)| n.as_str()).collect();
                        let values: Vec<_> =
                            chunk.iter().filter(|n| !present.contains(**n)).map(|n| performers::name.eq(*n)).collect();
                        diesel::insert_into(performers::table).values(&values).on_conflict_do_nothing().execute(c)?;
                        rows = select(c)?;
                    }
                    found.extend(rows.into_iter().map(|(id, name, email)| (name, PerformerRow { id, email })));
                }
                // The latest e-mail wins; ids ascending, as every writer locks them.
                let mut emails: BTreeMap<i64, &str> = BTreeMap::new();
                for (name, row) in &mut found {
                    if let Some(Some(email)) = wanted.get(name.as_str())
                        && row.email.as_deref() != Some(*email)
                    {
                        emails.insert(row.id, email);
                        row.email = Some((*email).to_owned());
                    }
                }
                for (id, email) in emails {
                    diesel::update(performers::table.find(id)).set(performers::email.eq(email)).execute(c)?;
                }
                Ok(found)
            }

            #[derive(Insertable)]
            #[diesel(table_name = daily_counts)]
            #[diesel(treat_none_as_default_value = false)]
            struct RollupRow {
                namespace_id: i64,
                repository_id: i64,
                day: Date,
                kind_id: i64,
                count: i64,
            }

            /// Writes the batch; the caller holds the transaction. Returns the ids of the kinds.
            pub(crate) fn write(
                c: &mut Conn,
                plan: &Plan<'_>,
                known_kinds: &HashMap<String, i64>,
                names: &NameCache,
            ) -> QueryResult<Ids> {
                let mut ids = Ids::default();
                ids.namespaces = namespace_ids(c, &plan.namespaces, names)?;
                ids.repositories = repository_ids(c, &plan.repositories, &ids.namespaces, names)?;
                ids.performers = performer_ids(c, &plan.performers, names)?;
                ids.kinds = kind_ids(c, &plan.kinds, known_kinds)?;

                let missing = || diesel::result::Error::NotFound;
                let mut rows = Vec::with_capacity(plan.entries.len());
                for (e, (t, _, json)) in plan.entries.iter().zip(&plan.rows) {
                    let ns = *ids.namespaces.get(e.namespace.as_str()).ok_or_else(missing)?;
                    rows.push(NewRow {
                        namespace_id: ns,
                        repository_id: match &e.repository {
                            Some(r) => Some(ids.repository(ns, r.as_str()).ok_or_else(missing)?),
                            None => None,
                        },
                        performer_id: match &e.performer {
                            Some(p) => Some(ids.performers.get(p.as_str()).ok_or_else(missing)?.id),
                            None => None,
                        },
                        kind_id: *ids.kinds.get(e.kind.as_str()).ok_or_else(missing)?,
                        datetime: *t,
                        ip: e.ip.as_deref(),
                        metadata: json,
                    });
                }
                insert_entries(c, &rows)?;

                let counts = rollup(plan, &ids).ok_or_else(missing)?;
                let counts: Vec<RollupRow> = counts
                    .into_iter()
                    .map(|((namespace_id, repository_id, day, kind_id), count)| RollupRow {
                        namespace_id,
                        repository_id,
                        day,
                        kind_id,
                        count,
                    })
                    .collect();
                for chunk in counts.chunks(ROLLUP_CHUNK) {
                    diesel::insert_into(daily_counts::table)
                        .values(chunk)
                        .on_conflict((
                            daily_counts::namespace_id,
                            daily_counts::repository_id,
                            daily_counts::day,
                            daily_counts::kind_id,
                        ))
                        .do_update()
                        .set(daily_counts::count.eq(daily_counts::count + excluded(daily_counts::count)))
                        .execute(c)?;
                }
                Ok(ids)
            }
        }
    };
}

writer!(sqlite, diesel::SqliteConnection, insert_entries_sqlite);
writer!(pg, diesel::PgConnection, insert_entries_pg);
