//! [`ExportJobStore`] on the `export_jobs` table.
//!
//! Instants are stored to the microsecond, as log entries are: the window as
//! [`Micros::ceil`] of both bounds (so an export reads exactly the entries a query of the same
//! window reads), every other instant truncated ([`Micros::floor`]). Comparisons with `now`
//! round it so that they mean what they say for the exact instant given.
//!
//! Claims are atomic on both dialects: PostgreSQL picks the job with
//! `FOR UPDATE SKIP LOCKED` inside the `UPDATE` that takes it; SQLite selects and updates in one
//! `BEGIN IMMEDIATE` transaction (one writer at a time). Every other transition is a single
//! `UPDATE` whose `WHERE` checks the expected state (`status = 'running' AND lease_owner = …`),
//! so a worker that lost its lease changes nothing.

use super::conn::AnyConnection;
use super::schema::export_jobs;
use super::types::Micros;
use super::{DieselStore, query_error};
use crate::StoreError;
use crate::jobs::{ExportJob, ExportJobStore, ExportOutcome, ExportStatus, NewExportJob};
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use std::time::Duration;
use time::OffsetDateTime;
use usagelogs_core::TimeWindow;

const QUEUED: &str = ExportStatus::Queued.as_str();
const RUNNING: &str = ExportStatus::Running.as_str();
const SUCCESS: &str = ExportStatus::Success.as_str();
const FAILED: &str = ExportStatus::Failed.as_str();
const EXPIRED: &str = ExportStatus::Expired.as_str();

/// A row of `export_jobs`, in column order.
#[derive(Debug, Queryable, QueryableByName)]
#[diesel(table_name = export_jobs)]
struct JobRow {
    id: String,
    level: String,
    namespace: String,
    repository: Option<String>,
    window_start: Micros,
    window_end: Micros,
    format: String,
    callback_url: Option<String>,
    callback_email: Option<String>,
    requested_by: String,
    link_base: String,
    status: String,
    attempts: i32,
    lease_owner: Option<String>,
    lease_until: Option<Micros>,
    file_id: Option<String>,
    entries: Option<i64>,
    error: Option<String>,
    created_at: Micros,
    finished_at: Option<Micros>,
    expires_at: Option<Micros>,
}

impl JobRow {
    fn into_job(self) -> Result<ExportJob, StoreError> {
        let status = ExportStatus::parse(&self.status).ok_or_else(|| {
            StoreError::Corrupt(format!("export job {} has unknown status '{}'", self.id, self.status))
        })?;
        let window = TimeWindow::new(self.window_start.get(), self.window_end.get())
            .map_err(|e| StoreError::Corrupt(format!("export job {} has an invalid window: {e}", self.id)))?;
        Ok(ExportJob {
            id: self.id,
            level: self.level,
            namespace: self.namespace,
            repository: self.repository,
            window,
            format: self.format,
            callback_url: self.callback_url,
            callback_email: self.callback_email,
            requested_by: self.requested_by,
            link_base: self.link_base,
            status,
            attempts: self.attempts,
            lease_owner: self.lease_owner,
            lease_until: self.lease_until.map(Micros::get),
            file_id: self.file_id,
            entries: self.entries,
            error: self.error,
            created_at: self.created_at.get(),
            finished_at: self.finished_at.map(Micros::get),
            expires_at: self.expires_at.map(Micros::get),
        })
    }
}

/// A job being queued.
#[derive(Debug, Insertable)]
#[diesel(table_name = export_jobs)]
#[diesel(treat_none_as_default_value = false)]
struct NewJobRow<'a> {
    id: &'a str,
    level: &'a str,
    namespace: &'a str,
    repository: Option<&'a str>,
    window_start: Micros,
    window_end: Micros,
    format: &'a str,
    callback_url: Option<&'a str>,
    callback_email: Option<&'a str>,
    requested_by: &'a str,
    link_base: &'a str,
    status: &'a str,
    attempts: i32,
    created_at: Micros,
}

/// `now + lease`, saturating at the largest representable instant.
fn lease_end(now: OffsetDateTime, lease: Duration) -> Micros {
    let lease = time::Duration::try_from(lease).unwrap_or(time::Duration::MAX);
    Micros::floor(now.checked_add(lease).unwrap_or(time::PrimitiveDateTime::MAX.assume_utc()))
}

fn into_jobs(rows: Vec<JobRow>) -> Result<Vec<ExportJob>, StoreError> {
    rows.into_iter().map(JobRow::into_job).collect()
}

/// The job `$id` while `$owner` holds it.
macro_rules! held {
    ($id:expr, $owner:expr) => {
        export_jobs::table
            .filter(export_jobs::id.eq($id))
            .filter(export_jobs::status.eq(RUNNING))
            .filter(export_jobs::lease_owner.eq($owner))
    };
}

/// Running jobs whose lease lapsed before `$now` (rounded up) with no attempts left.
macro_rules! abandoned {
    ($max:expr, $now:expr) => {
        export_jobs::table
            .filter(export_jobs::status.eq(RUNNING))
            .filter(export_jobs::lease_until.lt($now))
            .filter(export_jobs::attempts.ge($max))
    };
}

/// Takes the oldest runnable job on PostgreSQL: one statement, the candidate row locked by the
/// subquery and skipped by concurrent claimers.
const PG_CLAIM: &str = "UPDATE export_jobs
    SET status = 'running', attempts = attempts + 1, lease_owner = $1, lease_until = $2
    WHERE id = (
        SELECT id FROM export_jobs
        WHERE (status = 'queued' OR (status = 'running' AND lease_until < $3)) AND attempts < $4
        ORDER BY created_at, id
        LIMIT 1
        FOR UPDATE SKIP LOCKED)
    RETURNING *";

impl ExportJobStore for DieselStore {
    fn create_export(&self, job: &NewExportJob) -> Result<(), StoreError> {
        let row = NewJobRow {
            id: &job.id,
            level: &job.level,
            namespace: &job.namespace,
            repository: job.repository.as_deref(),
            window_start: Micros::ceil(job.window.start()),
            window_end: Micros::ceil(job.window.end()),
            format: &job.format,
            callback_url: job.callback_url.as_deref(),
            callback_email: job.callback_email.as_deref(),
            requested_by: &job.requested_by,
            link_base: &job.link_base,
            status: QUEUED,
            attempts: 0,
            created_at: Micros::floor(job.created_at),
        };
        let mut conn = self.conn()?;
        diesel::insert_into(export_jobs::table).values(&row).execute(&mut *conn).map_err(query_error)?;
        Ok(())
    }

    fn get_export(&self, id: &str) -> Result<Option<ExportJob>, StoreError> {
        let mut conn = self.conn()?;
        let row: Option<JobRow> = export_jobs::table.find(id).first(&mut *conn).optional().map_err(query_error)?;
        row.map(JobRow::into_job).transpose()
    }

    fn export_by_file(&self, file_id: &str) -> Result<Option<ExportJob>, StoreError> {
        let mut conn = self.conn()?;
        let row: Option<JobRow> = export_jobs::table
            .filter(export_jobs::file_id.eq(file_id))
            .first(&mut *conn)
            .optional()
            .map_err(query_error)?;
        row.map(JobRow::into_job).transpose()
    }

    fn claim_export(
        &self,
        owner: &str,
        lease: Duration,
        max_attempts: i32,
        now: OffsetDateTime,
    ) -> Result<Option<ExportJob>, StoreError> {
        let until = lease_end(now, lease);
        // `lease_until < now` for the exact `now`: stored instants are whole microseconds.
        let now = Micros::ceil(now);
        let mut conn = self.conn()?;
        let row = match &mut *conn {
            AnyConnection::Postgres(c) => diesel::sql_query(PG_CLAIM)
                .bind::<Text, _>(owner)
                .bind::<super::types::UtcMicros, _>(until)
                .bind::<super::types::UtcMicros, _>(now)
                .bind::<Integer, _>(max_attempts)
                .get_result::<JobRow>(c)
                .optional(),
            AnyConnection::Sqlite(c) => c.immediate_transaction(|c| {
                let candidate: Option<String> = export_jobs::table
                    .filter(
                        export_jobs::status
                            .eq(QUEUED)
                            .or(export_jobs::status.eq(RUNNING).and(export_jobs::lease_until.lt(now))),
                    )
                    .filter(export_jobs::attempts.lt(max_attempts))
                    .order((export_jobs::created_at, export_jobs::id))
                    .select(export_jobs::id)
                    .first(c)
                    .optional()?;
                let Some(id) = candidate else {
                    return Ok(None);
                };
                diesel::update(export_jobs::table.find(&id))
                    .set((
                        export_jobs::status.eq(RUNNING),
                        export_jobs::attempts.eq(export_jobs::attempts + 1),
                        export_jobs::lease_owner.eq(owner),
                        export_jobs::lease_until.eq(until),
                    ))
                    .execute(c)?;
                export_jobs::table.find(&id).first::<JobRow>(c).map(Some)
            }),
        }
        .map_err(query_error)?;
        row.map(JobRow::into_job).transpose()
    }

    fn renew_export_lease(&self, id: &str, owner: &str, until: OffsetDateTime) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        let n = diesel::update(held!(id, owner))
            .set(export_jobs::lease_until.eq(Micros::floor(until)))
            .execute(&mut *conn)
            .map_err(query_error)?;
        Ok(n == 1)
    }

    fn finish_export(
        &self,
        id: &str,
        owner: &str,
        outcome: &ExportOutcome,
        max_attempts: i32,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let now = Micros::floor(now);
        let no_lease = || (export_jobs::lease_owner.eq(None::<String>), export_jobs::lease_until.eq(None::<Micros>));
        let mut conn = self.conn()?;
        let conn = &mut *conn;
        let n = match outcome {
            ExportOutcome::Success { file_id, entries, expires_at } => diesel::update(held!(id, owner))
                .set((
                    export_jobs::status.eq(SUCCESS),
                    export_jobs::file_id.eq(file_id),
                    export_jobs::entries.eq(entries),
                    export_jobs::expires_at.eq(Micros::floor(*expires_at)),
                    export_jobs::finished_at.eq(now),
                    export_jobs::error.eq(None::<String>),
                    no_lease(),
                ))
                .execute(conn),
            ExportOutcome::Failed { error } => {
                // Each statement checks the holder itself; only the holder's own claim could
                // change `attempts`, so exactly one of the two applies while it holds the job.
                let requeued = diesel::update(held!(id, owner).filter(export_jobs::attempts.lt(max_attempts)))
                    .set((export_jobs::status.eq(QUEUED), export_jobs::error.eq(error), no_lease()))
                    .execute(conn);
                match requeued {
                    Ok(0) => diesel::update(held!(id, owner).filter(export_jobs::attempts.ge(max_attempts)))
                        .set((
                            export_jobs::status.eq(FAILED),
                            export_jobs::error.eq(error),
                            export_jobs::finished_at.eq(now),
                            no_lease(),
                        ))
                        .execute(conn),
                    other => other,
                }
            }
        }
        .map_err(query_error)?;
        Ok(n == 1)
    }

    fn fail_abandoned_exports(&self, max_attempts: i32, now: OffsetDateTime) -> Result<Vec<ExportJob>, StoreError> {
        let finished = Micros::floor(now);
        let lapsed_before = Micros::ceil(now);
        let mut conn = self.conn()?;
        let mut rows = match &mut *conn {
            AnyConnection::Postgres(c) => diesel::update(abandoned!(max_attempts, lapsed_before))
                .set((
                    export_jobs::status.eq(FAILED),
                    export_jobs::error.eq(format!("abandoned after {max_attempts} attempts")),
                    export_jobs::finished_at.eq(finished),
                    export_jobs::lease_owner.eq(None::<String>),
                    export_jobs::lease_until.eq(None::<Micros>),
                ))
                .get_results::<JobRow>(c),
            AnyConnection::Sqlite(c) => c.immediate_transaction(|c| {
                let ids: Vec<String> = abandoned!(max_attempts, lapsed_before).select(export_jobs::id).load(c)?;
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                diesel::update(export_jobs::table.filter(export_jobs::id.eq_any(&ids)))
                    .set((
                        export_jobs::status.eq(FAILED),
                        export_jobs::error.eq(format!("abandoned after {max_attempts} attempts")),
                        export_jobs::finished_at.eq(finished),
                        export_jobs::lease_owner.eq(None::<String>),
                        export_jobs::lease_until.eq(None::<Micros>),
                    ))
                    .execute(c)?;
                export_jobs::table.filter(export_jobs::id.eq_any(&ids)).load::<JobRow>(c)
            }),
        }
        .map_err(query_error)?;
        rows.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        into_jobs(rows)
    }

    fn expired_exports(&self, now: OffsetDateTime) -> Result<Vec<ExportJob>, StoreError> {
        let mut conn = self.conn()?;
        let rows: Vec<JobRow> = export_jobs::table
            .filter(export_jobs::status.eq(SUCCESS))
            .filter(export_jobs::expires_at.le(Micros::floor(now)))
            .order((export_jobs::expires_at, export_jobs::id))
            .load(&mut *conn)
            .map_err(query_error)?;
        into_jobs(rows)
    }

    fn mark_export_expired(&self, id: &str) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        diesel::update(export_jobs::table.filter(export_jobs::id.eq(id)).filter(export_jobs::status.eq(SUCCESS)))
            .set(export_jobs::status.eq(EXPIRED))
            .execute(&mut *conn)
            .map_err(query_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn leases_saturate() {
        let now = datetime!(2024-03-05 13:07:09.123456789 UTC);
        assert_eq!(lease_end(now, Duration::from_secs(60)).get(), datetime!(2024-03-05 13:08:09.123456 UTC));
        assert!(lease_end(now, Duration::MAX).get() > datetime!(9999-12-31 23:59 UTC));
    }
}
