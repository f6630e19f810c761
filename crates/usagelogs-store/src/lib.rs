#![doc = include_str!("../README.md")]

mod db;
mod error;
mod jobs;
mod retention;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use db::{Backend, DieselStore, StoreOptions, revert_all_migrations, run_migrations};
pub use error::StoreError;
pub use jobs::{ExportJob, ExportJobStore, ExportOutcome, ExportStatus, NewExportJob};
pub use retention::{
    ArchiveError, ArchivePiece, RetentionAction, RetentionArchive, RetentionError, RetentionPlan, RetentionStore,
    RetentionUnit, UnitOutcome,
};

use time::OffsetDateTime;
use usagelogs_core::{DailyCount, LogEntry, NewLogEntry, TimeWindow};

/// Where entries are looked up: a whole namespace, or one repository in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LogScope {
    /// Every entry whose namespace is this one (with or without a repository).
    Namespace(String),
    /// Every entry of repository `name` in namespace `namespace`.
    Repository { namespace: String, name: String },
}

/// Which kinds a query keeps.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct KindFilter {
    /// Keep only these kinds (`None`: all kinds).
    pub include: Option<Vec<String>>,
    /// Then drop these kinds.
    pub exclude: Vec<String>,
}

impl KindFilter {
    /// Whether `kind` passes the filter.
    pub fn admits(&self, kind: &str) -> bool {
        self.include.as_ref().is_none_or(|inc| inc.iter().any(|k| k == kind)) && !self.exclude.iter().any(|k| k == kind)
    }
}

/// A query: scope, window, optional performer, kinds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogQuery {
    pub scope: LogScope,
    pub window: TimeWindow,
    /// Keep only entries by this performer; an unknown performer matches nothing.
    pub performer: Option<String>,
    pub kinds: KindFilter,
}

/// A position in the (datetime, id) order of entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cursor {
    pub datetime: OffsetDateTime,
    pub id: i64,
}

impl Cursor {
    /// The position of an entry.
    pub fn of(entry: &LogEntry) -> Self {
        Self { datetime: entry.datetime, id: entry.id }
    }
}

/// A page of entries, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub entries: Vec<LogEntry>,
    /// Where the next page starts (exclusive), when more entries exist.
    pub next: Option<Cursor>,
}

/// The seam between the use cases and the database.
///
/// Every method is blocking; async callers run them on a blocking thread pool.
pub trait LogStore: Send + Sync + 'static {
    /// Stores a batch atomically (all or nothing), registering namespaces, repositories,
    /// performers and kinds as they appear and updating the daily rollups in the same
    /// transaction. Returns the number of entries stored.
    fn insert_batch(&self, entries: &[NewLogEntry]) -> Result<usize, StoreError>;

    /// Stores a batch like [`LogStore::insert_batch`], once per (`caller`, `key`): the key is
    /// recorded in the same transaction, and a batch whose key was recorded within the last day
    /// is not stored again — the first answer is returned as [`KeyedInsert::Replayed`].
    fn insert_batch_keyed(
        &self,
        entries: &[NewLogEntry],
        caller: &str,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<KeyedInsert, StoreError>;

    /// Up to `limit` entries matching `query`, newest first by (datetime, id), strictly after
    /// `after` in that order when given. `next` is set only when more entries exist.
    fn list(&self, query: &LogQuery, after: Option<Cursor>, limit: usize) -> Result<Page, StoreError>;

    /// Entry counts per (UTC day, kind) for `query`, sorted by day then kind, zero counts left
    /// out. Whole days inside the window come from the daily rollup; only partial days at the
    /// window's edges are counted from entries.
    fn aggregate(&self, query: &LogQuery) -> Result<Vec<DailyCount>, StoreError>;

    /// Up to `limit` entries matching `query`, oldest first by (datetime, id), strictly after
    /// `after` when given: the chunks an export streams.
    fn export_chunk(&self, query: &LogQuery, after: Option<Cursor>, limit: usize) -> Result<Vec<LogEntry>, StoreError>;

    /// Whether an entry ever named this namespace.
    fn namespace_exists(&self, namespace: &str) -> Result<bool, StoreError>;

    /// Whether an entry ever named this repository.
    fn repository_exists(&self, namespace: &str, name: &str) -> Result<bool, StoreError>;

    /// Checks that the database answers.
    fn ping(&self) -> Result<(), StoreError>;

    /// Pool statistics, for metrics.
    fn pool_state(&self) -> PoolState;
}

/// The outcome of [`LogStore::insert_batch_keyed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyedInsert {
    /// Stored now: this many entries.
    Stored(usize),
    /// Stored by an earlier call with the same key, which accepted this many.
    Replayed(usize),
}

/// Connections of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolState {
    pub connections: u32,
    pub idle: u32,
    pub max_size: u32,
}
