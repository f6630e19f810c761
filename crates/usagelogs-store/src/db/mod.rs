//! [`DieselStore`]: the [`LogStore`] and the [`ExportJobStore`](crate::ExportJobStore) on SQLite
//! or PostgreSQL through Diesel.

pub(crate) mod conn;
mod jobs;
mod migrate;
mod names;
pub(crate) mod partitions;
mod read;
mod retention;
pub(crate) mod schema;
pub(crate) mod types;
mod write;

pub use conn::Backend;

use crate::{Cursor, LogQuery, LogStore, Page, PoolState, StoreError};
use conn::{AnyConnection, Manager, Target, TracingErrors};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use read::Order;
use schema::kinds;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use usagelogs_core::{DailyCount, LogEntry, NewLogEntry};

/// How a [`DieselStore`] connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Most connections the pool opens (at least 1).
    pub max_connections: u32,
    /// How long to wait for a connection: opening one (PostgreSQL's `connect_timeout`, in whole
    /// seconds, at least 2) and taking one from the pool.
    pub connect_timeout: Duration,
}

impl Default for StoreOptions {
    /// 10 connections, 10 seconds.
    fn default() -> Self {
        Self { max_connections: 10, connect_timeout: Duration::from_secs(10) }
    }
}

/// The [`LogStore`] on SQLite or PostgreSQL. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct DieselStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: r2d2::Pool<Manager>,
    backend: Backend,
    /// Kind names by id and ids by name. Kinds are never deleted or renamed, so entries stay
    /// valid; the cache is filled only from committed rows (reads outside transactions).
    kinds: RwLock<KindNames>,
    /// Ids of namespaces, repositories and performers (also never deleted or renamed).
    names: names::NameCache,
    /// PostgreSQL: months whose `log_entries` partition is known to exist (filled from the
    /// catalog at connect, grown as partitions are made, shrunk as retention drops them).
    partitions: Mutex<BTreeSet<partitions::Month>>,
    /// SQLite: batches of this process queue here, in order, rather than in SQLite's busy
    /// handler, which retries by polling and can starve one writer past its timeout under load.
    sqlite_writer: Mutex<()>,
    /// SQLite: batches written since the planner's statistics were last refreshed.
    batches_since_optimize: std::sync::atomic::AtomicU32,
}

/// SQLite: refresh the planner's statistics (`PRAGMA optimize`) after this many batches, so it
/// keeps choosing the (scope, kind, datetime) index for rare kinds as the table grows.
const OPTIMIZE_EVERY: u32 = 200;

#[derive(Debug, Default)]
struct KindNames {
    by_name: HashMap<String, i64>,
    by_id: HashMap<i64, String>,
}

impl std::fmt::Debug for DieselStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DieselStore").field("backend", &self.inner.backend).field("pool", &self.pool_state()).finish()
    }
}

/// Maps a Diesel error: unreadable stored values are [`StoreError::Corrupt`], a lost
/// connection is [`StoreError::Unavailable`].
pub(crate) fn query_error(e: DieselError) -> StoreError {
    match e {
        DieselError::DeserializationError(inner) => StoreError::Corrupt(inner.to_string()),
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
            StoreError::Unavailable(info.message().to_owned())
        }
        // SQLite's busy timeout ran out (another process held the write lock that long):
        // transient, so the caller may retry.
        DieselError::DatabaseError(_, info)
            if info.message().contains("database is locked") || info.message().contains("database is busy") =>
        {
            StoreError::Unavailable(info.message().to_owned())
        }
        other => StoreError::Query(other),
    }
}

/// Applies pending migrations to the database at `url`; returns the versions applied.
///
/// [`DieselStore::connect`] does this too; this is for a separate `migrate` step.
pub fn run_migrations(url: &str) -> Result<Vec<String>, StoreError> {
    migrate::run_pending(&mut migrate::open(url)?)
}

/// Reverts every migration of the database at `url` (drops every table of the store); returns
/// the versions reverted, newest first.
pub fn revert_all_migrations(url: &str) -> Result<Vec<String>, StoreError> {
    migrate::revert_all(&mut migrate::open(url)?)
}

impl DieselStore {
    /// Connects to `url` (`sqlite://PATH`, `postgres://…`, `postgresql://…`), applies pending
    /// migrations, then builds the connection pool.
    ///
    /// Errors: [`StoreError::InvalidUrl`] for an unknown scheme or a SQLite path whose folder
    /// does not exist (no folder is ever created), [`StoreError::Unavailable`] with the
    /// driver's message when the database cannot be reached, [`StoreError::Migration`].
    pub fn connect(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        let target = Target::parse(url, options.connect_timeout)?;
        let backend = target.backend();
        let mut first = target.connect().map_err(|e| StoreError::Unavailable(e.0))?;
        let applied = migrate::run_pending(&mut first)?;
        if !applied.is_empty() {
            tracing::info!(%backend, migrations = ?applied, "applied database migrations");
        }
        let mut kinds = KindNames::default();
        load_kinds(&mut first, &mut kinds).map_err(query_error)?;
        let mut months = BTreeSet::new();
        if let AnyConnection::Postgres(c) = &mut first {
            months = partitions::existing(c).map_err(query_error)?;
            let today = time::OffsetDateTime::now_utc().date();
            if let Err(e) = ensure_months(c, &mut months, ahead(today)) {
                // Not fatal: inserts create a missing month's partition themselves.
                tracing::warn!(error = %e, "cannot create the log_entries partitions of the coming months");
            }
        }
        drop(first);
        let pool = r2d2::Pool::builder()
            .max_size(options.max_connections.max(1))
            .min_idle(Some(1))
            .connection_timeout(options.connect_timeout)
            .error_handler(Box::new(TracingErrors))
            .build(Manager { target })
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                backend,
                kinds: RwLock::new(kinds),
                names: names::NameCache::default(),
                partitions: Mutex::new(months),
                sqlite_writer: Mutex::new(()),
                batches_since_optimize: std::sync::atomic::AtomicU32::new(0),
            }),
        })
    }

    /// Applies pending migrations to the database at `url` (as [`run_migrations`]).
    pub fn migrate(url: &str) -> Result<Vec<String>, StoreError> {
        run_migrations(url)
    }

    /// Reverts every migration of the database at `url` (as [`revert_all_migrations`]).
    pub fn revert_all_migrations(url: &str) -> Result<Vec<String>, StoreError> {
        revert_all_migrations(url)
    }

    /// Every registered kind name, in registration order: Quay's catalog first (in Quay's
    /// order), then custom kinds as they were first stored.
    pub fn kinds(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn()?;
        kinds::table.order(kinds::id).select(kinds::name).load(&mut *conn).map_err(query_error)
    }

    /// The engine behind this store.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// PostgreSQL: the partitions of `log_entries`, oldest first, read from the catalog
    /// (partitions named otherwise than `log_entries_yYYYYmMM` are left out). SQLite: none.
    pub fn partitions(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn()?;
        match &mut *conn {
            AnyConnection::Sqlite(_) => Ok(Vec::new()),
            AnyConnection::Postgres(c) => {
                let months = partitions::existing(c).map_err(query_error)?;
                Ok(months.into_iter().map(partitions::name).collect())
            }
        }
    }

    fn partitions_lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<partitions::Month>> {
        self.inner.partitions.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// PostgreSQL: makes sure the partitions of `months` exist, creating those not known to
    /// (after reading the catalog again when `refresh`). Returns the names of those created.
    fn ensure_partitions_pg(
        &self,
        c: &mut diesel::PgConnection,
        months: impl IntoIterator<Item = partitions::Month>,
        refresh: bool,
    ) -> Result<Vec<String>, StoreError> {
        if refresh {
            let found = partitions::existing(c).map_err(query_error)?;
            *self.partitions_lock() = found;
        }
        // The lock is not held while creating: a CREATE may wait for running inserts.
        let missing: Vec<partitions::Month> = {
            let known = self.partitions_lock();
            months.into_iter().filter(|m| !known.contains(m)).collect()
        };
        if missing.is_empty() {
            return Ok(Vec::new());
        }
        let mut made = BTreeSet::new();
        let result = ensure_months(c, &mut made, missing.iter().copied());
        self.partitions_lock().extend(made);
        result.map_err(query_error)
    }

    fn conn(&self) -> Result<r2d2::PooledConnection<Manager>, StoreError> {
        self.inner.pool.get().map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    fn kinds_read(&self) -> std::sync::RwLockReadGuard<'_, KindNames> {
        self.inner.kinds.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn kinds_write(&self) -> std::sync::RwLockWriteGuard<'_, KindNames> {
        self.inner.kinds.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Ids of the known kinds among `names`, reloading the cache once if some are missing.
    fn kind_ids(&self, conn: &mut AnyConnection, names: &[&str]) -> QueryResult<Vec<(String, i64)>> {
        let lookup = |k: &KindNames| -> (Vec<(String, i64)>, bool) {
            let found: Vec<(String, i64)> =
                names.iter().filter_map(|n| k.by_name.get(*n).map(|id| ((*n).to_owned(), *id))).collect();
            let complete = found.len() == names.len();
            (found, complete)
        };
        let (found, complete) = lookup(&self.kinds_read());
        if complete {
            return Ok(found);
        }
        let mut cache = self.kinds_write();
        load_kinds(conn, &mut cache)?;
        Ok(lookup(&cache).0)
    }

    /// Names of kind ids, reloading the cache once if some are missing.
    fn kind_names(
        &self,
        conn: &mut AnyConnection,
        ids: impl Iterator<Item = i64> + Clone,
    ) -> Result<HashMap<i64, String>, StoreError> {
        {
            let cache = self.kinds_read();
            if ids.clone().all(|id| cache.by_id.contains_key(&id)) {
                return Ok(ids.filter_map(|id| cache.by_id.get(&id).map(|n| (id, n.clone()))).collect());
            }
        }
        let mut cache = self.kinds_write();
        load_kinds(conn, &mut cache).map_err(query_error)?;
        ids.map(|id| {
            cache
                .by_id
                .get(&id)
                .map(|n| (id, n.clone()))
                .ok_or_else(|| StoreError::Corrupt(format!("entry of unknown kind id {id}")))
        })
        .collect()
    }

    fn resolve(&self, conn: &mut AnyConnection, query: &LogQuery) -> Result<Option<read::Resolved>, StoreError> {
        read::resolve(conn, query, &self.inner.names, |c, names| self.kind_ids(c, names)).map_err(query_error)
    }

    fn read_entries(
        &self,
        query: &LogQuery,
        after: Option<Cursor>,
        limit: usize,
        order: Order,
    ) -> Result<Vec<LogEntry>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn()?;
        let Some(r) = self.resolve(&mut conn, query)? else {
            return Ok(Vec::new());
        };
        let rows = read::rows(&mut conn, &r, after, limit, order).map_err(query_error)?;
        let names = self.kind_names(&mut conn, rows.iter().map(|row| row.1))?;
        let repositories = read::repository_names(&mut conn, &self.inner.names, rows.iter().filter_map(|row| row.2))
            .map_err(query_error)?;
        let performers = read::performers_by_id(&mut conn, rows.iter().filter_map(|row| row.3)).map_err(query_error)?;
        let lost = |what: &str, id: i64| StoreError::Corrupt(format!("entry of unknown {what} id {id}"));
        rows.into_iter()
            .map(|(id, kind, repository, performer, ip, metadata, datetime)| {
                let repository = match repository {
                    Some(rid) => Some(repositories.get(&rid).cloned().ok_or_else(|| lost("repository", rid))?),
                    None => None,
                };
                let (performer, performer_email) = match performer {
                    Some(pid) => {
                        let (name, email) = performers.get(&pid).cloned().ok_or_else(|| lost("performer", pid))?;
                        (Some(name), email)
                    }
                    None => (None, None),
                };
                Ok(LogEntry {
                    id,
                    kind: names.get(&kind).cloned().unwrap_or_default(),
                    namespace: r.namespace.clone(),
                    repository,
                    performer,
                    performer_email,
                    ip,
                    metadata: metadata.0,
                    datetime: datetime.get(),
                })
            })
            .collect()
    }
}

/// The month of `today` and the next two.
fn ahead(today: time::Date) -> [partitions::Month; 3] {
    let m = partitions::month_of(today);
    [m, partitions::next(m), partitions::next(partitions::next(m))]
}

/// Creates the partitions of `months` missing from `known` and records them; returns their names.
fn ensure_months(
    c: &mut diesel::PgConnection,
    known: &mut BTreeSet<partitions::Month>,
    months: impl IntoIterator<Item = partitions::Month>,
) -> QueryResult<Vec<String>> {
    let mut made = Vec::new();
    for m in months {
        if known.contains(&m) {
            continue;
        }
        partitions::create(c, m)?;
        known.insert(m);
        made.push(partitions::name(m));
    }
    Ok(made)
}

fn load_kinds(conn: &mut AnyConnection, cache: &mut KindNames) -> QueryResult<()> {
    let rows: Vec<(i64, String)> = kinds::table.select((kinds::id, kinds::name)).load(conn)?;
    for (id, name) in rows {
        cache.by_id.insert(id, name.clone());
        cache.by_name.insert(name, id);
    }
    Ok(())
}

/// An idempotency key and the time its batch is written.
struct Key<'a> {
    caller: &'a str,
    key: &'a str,
    now: i64,
}

/// Keys are remembered this long.
const KEY_TTL_SECS: i64 = 24 * 3600;

#[derive(QueryableByName)]
struct AcceptedRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    accepted: i64,
}

/// What a write transaction did.
enum Written {
    Stored(write::Ids),
    Replayed(usize),
}

macro_rules! keyed_sql {
    ($c:expr, $key:expr, $n:expr, $sql:ident) => {{
        use diesel::sql_types::{BigInt, Text};
        let k: &Key<'_> = $key;
        diesel::sql_query($sql::FORGET).bind::<BigInt, _>(k.now - KEY_TTL_SECS).execute($c)?;
        match $n {
            None => diesel::sql_query($sql::LOOKUP)
                .bind::<Text, _>(k.caller)
                .bind::<Text, _>(k.key)
                .get_result::<AcceptedRow>($c)
                .optional()?
                .map(|r| r.accepted),
            Some(n) => {
                diesel::sql_query($sql::RECORD)
                    .bind::<Text, _>(k.caller)
                    .bind::<Text, _>(k.key)
                    .bind::<BigInt, _>(n)
                    .bind::<BigInt, _>(k.now)
                    .execute($c)?;
                None
            }
        }
    }};
}

mod sqlite_keys {
    pub(super) const FORGET: &str = "DELETE FROM ingest_keys WHERE created_at < ?";
    pub(super) const LOOKUP: &str = "SELECT accepted FROM ingest_keys WHERE caller = ? AND key = ?";
    pub(super) const RECORD: &str = "INSERT INTO ingest_keys (caller, key, accepted, created_at) VALUES (?, ?, ?, ?)";
}

mod pg_keys {
    pub(super) const FORGET: &str = "DELETE FROM ingest_keys WHERE created_at < $1";
    pub(super) const LOOKUP: &str = "SELECT accepted FROM ingest_keys WHERE caller = $1 AND key = $2";
    pub(super) const RECORD: &str =
        "INSERT INTO ingest_keys (caller, key, accepted, created_at) VALUES ($1, $2, $3, $4)";
}

impl DieselStore {
    /// Writes a batch in one transaction; with a key, first answers a replay from a recorded key,
    /// and records the key with the entries.
    fn write_batch(&self, entries: &[NewLogEntry], key: Option<&Key<'_>>) -> Result<Written, StoreError> {
        let plan =
            write::Plan::new(entries).map_err(|e| StoreError::Corrupt(format!("metadata is not serializable: {e}")))?;
        let known = self.kinds_read().by_name.clone();
        let count = i64::try_from(entries.len()).unwrap_or(i64::MAX);
        // Taken before a connection, so queued writers do not hold the pool's connections.
        let _writer = (self.inner.backend == Backend::Sqlite)
            .then(|| self.inner.sqlite_writer.lock().unwrap_or_else(|p| p.into_inner()));
        let mut conn = self.conn()?;
        let written = match &mut *conn {
            AnyConnection::Sqlite(c) => c.immediate_transaction(|c| {
                if let Some(k) = key
                    && let Some(n) = keyed_sql!(c, k, None::<i64>, sqlite_keys)
                {
                    return Ok(Written::Replayed(usize::try_from(n).unwrap_or(0)));
                }
                let ids = write::sqlite::write(c, &plan, &known, &self.inner.names)?;
                if let Some(k) = key {
                    keyed_sql!(c, k, Some(count), sqlite_keys);
                }
                Ok(Written::Stored(ids))
            }),
            AnyConnection::Postgres(c) => {
                let months: BTreeSet<partitions::Month> =
                    plan.rows.iter().map(|(_, day, _)| partitions::month_of(*day)).collect();
                self.ensure_partitions_pg(c, months.iter().copied(), false)?;
                let attempt = |c: &mut diesel::PgConnection| {
                    c.transaction(|c| {
                        if let Some(k) = key
                            && let Some(n) = keyed_sql!(c, k, None::<i64>, pg_keys)
                        {
                            return Ok(Written::Replayed(usize::try_from(n).unwrap_or(0)));
                        }
                        let ids = write::pg::write(c, &plan, &known, &self.inner.names)?;
                        if let Some(k) = key {
                            keyed_sql!(c, k, Some(count), pg_keys);
                        }
                        Ok(Written::Stored(ids))
                    })
                };
                match attempt(c) {
                    Err(e) if partitions::is_missing_partition(&e) => {
                        // Dropped since we looked (another server's retention): look again, retry once.
                        self.ensure_partitions_pg(c, months.iter().copied(), true)?;
                        attempt(c)
                    }
                    // The same key committed by a concurrent call first: answer as it did.
                    Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) if key.is_some() => {
                        attempt(c)
                    }
                    other => other,
                }
            }
        }
        .map_err(query_error)?;
        if let AnyConnection::Sqlite(c) = &mut *conn {
            let n = self.inner.batches_since_optimize.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if n % OPTIMIZE_EVERY == OPTIMIZE_EVERY - 1
                && let Err(e) = c.batch_execute("PRAGMA optimize;")
            {
                tracing::warn!(error = %e, "PRAGMA optimize failed");
            }
        }
        if let Written::Stored(ids) = &written {
            ids.remember(&self.inner.names);
        }
        if let Written::Stored(ids) = &written
            && ids.kinds.keys().any(|k| !known.contains_key(k))
        {
            // Committed: new kinds may enter the cache.
            let mut cache = self.kinds_write();
            for (name, id) in &ids.kinds {
                cache.by_id.insert(*id, name.clone());
                cache.by_name.insert(name.clone(), *id);
            }
        }
        Ok(written)
    }
}

impl LogStore for DieselStore {
    fn insert_batch(&self, entries: &[NewLogEntry]) -> Result<usize, StoreError> {
        if entries.is_empty() {
            return Ok(0);
        }
        self.write_batch(entries, None)?;
        Ok(entries.len())
    }

    fn insert_batch_keyed(
        &self,
        entries: &[NewLogEntry],
        caller: &str,
        key: &str,
        now: time::OffsetDateTime,
    ) -> Result<crate::KeyedInsert, StoreError> {
        let key = Key { caller, key, now: now.unix_timestamp() };
        Ok(match self.write_batch(entries, Some(&key))? {
            Written::Stored(_) => crate::KeyedInsert::Stored(entries.len()),
            Written::Replayed(n) => crate::KeyedInsert::Replayed(n),
        })
    }

    fn list(&self, query: &LogQuery, after: Option<Cursor>, limit: usize) -> Result<Page, StoreError> {
        let mut entries = self.read_entries(query, after, limit.saturating_add(1), Order::Desc)?;
        let next = if limit > 0 && entries.len() > limit {
            entries.truncate(limit);
            entries.last().map(Cursor::of)
        } else {
            entries.truncate(limit);
            None
        };
        Ok(Page { entries, next })
    }

    fn aggregate(&self, query: &LogQuery) -> Result<Vec<DailyCount>, StoreError> {
        let mut conn = self.conn()?;
        let Some(r) = self.resolve(&mut conn, query)? else {
            return Ok(Vec::new());
        };
        let counts = read::daily_counts(&mut conn, &r).map_err(query_error)?;
        let names = self.kind_names(&mut conn, counts.iter().map(|c| c.1))?;
        let mut sums: BTreeMap<(time::Date, String), i64> = BTreeMap::new();
        for (day, kind, n) in counts {
            if let Some(name) = names.get(&kind) {
                *sums.entry((day, name.clone())).or_insert(0) += n;
            }
        }
        Ok(sums
            .into_iter()
            .filter(|(_, count)| *count != 0)
            .map(|((day, kind), count)| DailyCount { day, kind, count })
            .collect())
    }

    fn export_chunk(&self, query: &LogQuery, after: Option<Cursor>, limit: usize) -> Result<Vec<LogEntry>, StoreError> {
        self.read_entries(query, after, limit, Order::Asc)
    }

    fn namespace_exists(&self, namespace: &str) -> Result<bool, StoreError> {
        if self.inner.names.namespace(namespace).is_some() {
            return Ok(true);
        }
        let mut conn = self.conn()?;
        Ok(read::namespace_id(&mut conn, &self.inner.names, namespace).map_err(query_error)?.is_some())
    }

    fn repository_exists(&self, namespace: &str, name: &str) -> Result<bool, StoreError> {
        let names = &self.inner.names;
        if let Some(ns) = names.namespace(namespace)
            && names.repository(ns, name).is_some()
        {
            return Ok(true);
        }
        let mut conn = self.conn()?;
        let Some(ns) = read::namespace_id(&mut conn, names, namespace).map_err(query_error)? else {
            return Ok(false);
        };
        Ok(read::repository_id(&mut conn, names, ns, name).map_err(query_error)?.is_some())
    }

    fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        conn.batch_execute("SELECT 1").map_err(query_error)
    }

    fn pool_state(&self) -> PoolState {
        let state = self.inner.pool.state();
        PoolState { connections: state.connections, idle: state.idle_connections, max_size: self.inner.pool.max_size() }
    }
}
