//! Durable export jobs: rows claimed by workers under a renewable lease.

use crate::StoreError;
use std::time::Duration;
use time::OffsetDateTime;
use usagelogs_core::TimeWindow;

/// An export to be queued.
#[derive(Debug, Clone, PartialEq)]
pub struct NewExportJob {
    /// The export id (a UUID string).
    pub id: String,
    /// `user`, `org` or `repo`: the endpoint level it was requested at.
    pub level: String,
    pub namespace: String,
    pub repository: Option<String>,
    /// Exactly the entries of this window are exported.
    pub window: TimeWindow,
    /// `json`, `ndjson` or `csv`.
    pub format: String,
    pub callback_url: Option<String>,
    pub callback_email: Option<String>,
    /// Who asked (the token's `sub`).
    pub requested_by: String,
    /// `scheme://host` that download links start with.
    pub link_base: String,
    pub created_at: OffsetDateTime,
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExportStatus {
    Queued,
    Running,
    Success,
    Failed,
    /// Succeeded, and its file has since expired and been deleted.
    Expired,
}

impl ExportStatus {
    /// The name stored and shown.
    pub const fn as_str(self) -> &'static str {
        match self {
            ExportStatus::Queued => "queued",
            ExportStatus::Running => "running",
            ExportStatus::Success => "success",
            ExportStatus::Failed => "failed",
            ExportStatus::Expired => "expired",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => ExportStatus::Queued,
            "running" => ExportStatus::Running,
            "success" => ExportStatus::Success,
            "failed" => ExportStatus::Failed,
            "expired" => ExportStatus::Expired,
            _ => return None,
        })
    }
}

/// A stored job.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportJob {
    pub id: String,
    pub level: String,
    pub namespace: String,
    pub repository: Option<String>,
    pub window: TimeWindow,
    pub format: String,
    pub callback_url: Option<String>,
    pub callback_email: Option<String>,
    pub requested_by: String,
    pub link_base: String,
    pub status: ExportStatus,
    /// Attempts started so far (claims).
    pub attempts: i32,
    pub lease_owner: Option<String>,
    pub lease_until: Option<OffsetDateTime>,
    /// The file's unguessable id, once written.
    pub file_id: Option<String>,
    /// Entries written, once done.
    pub entries: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    pub created_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
    /// When the file and its link expire.
    pub expires_at: Option<OffsetDateTime>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ExportOutcome {
    Success { file_id: String, entries: i64, expires_at: OffsetDateTime },
    Failed { error: String },
}

/// Storage of export jobs. Claims are atomic: two workers (or replicas on one PostgreSQL) never
/// hold the same job at once.
///
/// Instants are kept to the microsecond (finer parts are truncated; a window's bounds are
/// rounded up, as queries read them).
pub trait ExportJobStore: Send + Sync + 'static {
    /// Queues a job.
    fn create_export(&self, job: &NewExportJob) -> Result<(), StoreError>;

    /// A job by id.
    fn get_export(&self, id: &str) -> Result<Option<ExportJob>, StoreError>;

    /// The job that wrote file `file_id`.
    fn export_by_file(&self, file_id: &str) -> Result<Option<ExportJob>, StoreError>;

    /// Claims the oldest runnable job — queued, or running with a lease that lapsed before `now`
    /// — that has had fewer than `max_attempts` attempts: marks it running for `owner` until
    /// `now + lease` and counts the attempt.
    fn claim_export(
        &self,
        owner: &str,
        lease: Duration,
        max_attempts: i32,
        now: OffsetDateTime,
    ) -> Result<Option<ExportJob>, StoreError>;

    /// Extends `owner`'s lease to `until`; false when `owner` no longer holds the job (it is not
    /// running, or another owner claimed it). A lease that lapsed but that nobody else claimed
    /// is still `owner`'s and may be renewed.
    fn renew_export_lease(&self, id: &str, owner: &str, until: OffsetDateTime) -> Result<bool, StoreError>;

    /// Records the end of `owner`'s attempt and releases the lease; false (and nothing changed)
    /// when `owner` no longer holds the job.
    ///
    /// Success: `success` with its file, entry count and expiry, finished at `now`, no error.
    /// A failed attempt goes back to the queue while attempts remain (under `max_attempts`),
    /// keeping its error so that the status shows the last one, and is `failed` for good,
    /// finished at `now`, otherwise.
    fn finish_export(
        &self,
        id: &str,
        owner: &str,
        outcome: &ExportOutcome,
        max_attempts: i32,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Marks failed every running job whose lease lapsed before `now` with no attempts left
    /// (its error says it was abandoned, finished at `now`), and returns them as updated, oldest
    /// first (so their requesters can be told).
    fn fail_abandoned_exports(&self, max_attempts: i32, now: OffsetDateTime) -> Result<Vec<ExportJob>, StoreError>;

    /// Successful jobs whose link expired at or before `now`, soonest expired first.
    fn expired_exports(&self, now: OffsetDateTime) -> Result<Vec<ExportJob>, StoreError>;

    /// Marks a successful job's file as deleted: its status becomes `expired`; its `file_id`
    /// stays, so an old link still finds the job (and sees it expired). Does nothing to a job
    /// in any other state, or to an unknown id.
    fn mark_export_expired(&self, id: &str) -> Result<(), StoreError>;
}
