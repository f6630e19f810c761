//! Retention: removing every entry older than a cutoff, keeping the daily rollup equal to the
//! entries it counts, optionally after handing the entries to an archive.

use crate::StoreError;
use time::Date;
use usagelogs_core::LogEntry;

/// How retention removes the entries of one [`RetentionUnit`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RetentionAction {
    /// PostgreSQL: the whole monthly partition lies before the cutoff and is dropped, with its
    /// rollup days, in one transaction.
    DropPartition {
        /// The partition table, e.g. `log_entries_y2024m03`.
        partition: String,
    },
    /// The entries of the range are deleted in batches; each batch decrements the rollup rows
    /// of the entries it deletes in the same transaction.
    Delete,
}

/// A piece of the entries retention removes: a PostgreSQL partition, or (SQLite, or the
/// partition that straddles the cutoff) a range of whole UTC days inside one calendar month.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RetentionUnit {
    pub action: RetentionAction,
    /// The entries concerned: `from <= datetime < to`, both at 00:00 UTC.
    pub from: Date,
    pub to: Date,
    /// Entries in the range, as counted by the daily rollup (which counts every entry).
    pub entries: i64,
}

/// What retention would remove for a cutoff, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPlan {
    /// Entries before 00:00 UTC of this day go.
    pub cutoff: Date,
    pub units: Vec<RetentionUnit>,
}

impl RetentionPlan {
    /// Entries of every unit.
    pub fn entries(&self) -> i64 {
        self.units.iter().map(|u| u.entries).sum()
    }
}

/// What retention did to one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitOutcome {
    pub unit: RetentionUnit,
    /// Entries removed.
    pub removed: i64,
    /// Labels of the archive pieces written before the entries were removed (see
    /// [`ArchivePiece::label`]).
    pub archived: Vec<String>,
}

/// A set of entries offered to the archive before they are removed: a whole partition (label
/// `YYYY-MM`) or one UTC day (label `YYYY-MM-DD`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ArchivePiece {
    /// `YYYY-MM` for a partition, `YYYY-MM-DD` for a day: usable in a file name.
    pub label: String,
    /// The entries: `from <= datetime < to`.
    pub from: Date,
    pub to: Date,
}

/// An error of an archive: anything it cannot write or commit.
pub type ArchiveError = Box<dyn std::error::Error + Send + Sync>;

/// Where entries go before retention removes them.
///
/// The store calls [`RetentionArchive::archive`] with an iterator over every entry of a piece
/// (ascending id) and removes exactly the entries the iterator yielded, and only after `archive`
/// returned `Ok`: an implementation returns once what it wrote is durable (e.g. a committed
/// file). A partition is dropped only when the archive took all of its entries.
pub trait RetentionArchive {
    fn archive(
        &mut self,
        piece: &ArchivePiece,
        entries: &mut dyn Iterator<Item = Result<LogEntry, StoreError>>,
    ) -> Result<(), ArchiveError>;
}

/// Why retention stopped.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The archive failed: nothing of this piece was removed.
    #[error("archiving {piece}: {source}")]
    Archive { piece: String, source: ArchiveError },
    /// Entries kept arriving in a partition while it was archived (a late writer): nothing of it
    /// was dropped; the next run tries again.
    #[error("partition {partition} kept changing while it was archived; left for the next run")]
    Changed { partition: String },
}

/// Retention and partition maintenance, beside [`LogStore`](crate::LogStore).
///
/// Every method is blocking. The cutoff is 00:00 UTC of a day: entries with `datetime < cutoff`
/// go; rollup rows of days before it go with the entries they count, in the same transactions,
/// so an aggregate equals the listed entries at every moment. Namespaces, repositories and
/// performers stay ("ever seen").
pub trait RetentionStore: Send + Sync + 'static {
    /// What [`RetentionStore::apply_unit`] would remove for `cutoff`, oldest first.
    fn retention_plan(&self, cutoff: Date) -> Result<RetentionPlan, StoreError>;

    /// Removes the entries of one unit of a plan (archiving them first with `archive`, when
    /// given). Entries that arrived in the range since the plan are removed too when no archive
    /// is given; with an archive, only the archived ones are.
    fn apply_unit(
        &self,
        unit: &RetentionUnit,
        archive: Option<&mut dyn RetentionArchive>,
    ) -> Result<UnitOutcome, RetentionError>;

    /// Plans and applies every unit for `cutoff`.
    fn apply_retention(
        &self,
        cutoff: Date,
        mut archive: Option<&mut dyn RetentionArchive>,
    ) -> Result<Vec<UnitOutcome>, RetentionError> {
        let plan = self.retention_plan(cutoff)?;
        let mut out = Vec::with_capacity(plan.units.len());
        for unit in &plan.units {
            let archive = archive.as_mut().map(|a| &mut **a as &mut dyn RetentionArchive);
            out.push(self.apply_unit(unit, archive)?);
        }
        Ok(out)
    }

    /// PostgreSQL: creates the partitions of `today`'s month and the next two months when
    /// missing; returns the ones created. SQLite: nothing to do.
    fn ensure_partitions(&self, today: Date) -> Result<Vec<String>, StoreError>;
}
