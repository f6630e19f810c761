//! The workers that run export jobs, and the sweeper that expires files and gives up on
//! abandoned jobs.

use super::format::{ExportDetails, ExportFormat, FileWriter};
use super::notify::CallbackPayload;
use super::{ExportService, random_id};
use serde_json::{Map, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;
use time::OffsetDateTime;
use usagelogs_core::format_rfc2822;
use usagelogs_store::{Cursor, ExportJob, ExportOutcome, ExportStatus, LogQuery, LogScope, StoreError};

/// Why an attempt stopped.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("writing the export file: {0}")]
    Io(#[from] std::io::Error),
    #[error("the lease on the job was lost")]
    LeaseLost,
    #[error("the server is stopping")]
    Stopping,
}

/// Running workers; [`WorkerHandle::stop`] ends them.
#[derive(Debug)]
pub struct WorkerHandle {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    service: Arc<ExportService>,
}

impl WorkerHandle {
    /// Asks the workers to stop and waits for them. A job interrupted here is resumed by the
    /// next server once its lease lapses.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.service.wake.notify();
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn mmddyyyy(t: OffsetDateTime) -> String {
    format!("{:02}/{:02}/{:04}", u8::from(t.month()), t.day(), t.year())
}

impl ExportService {
    /// Starts `concurrency` worker threads and a sweeper, named after `owner` (unique per
    /// process, e.g. host and pid).
    pub fn start_workers(self: &Arc<Self>, owner: &str) -> WorkerHandle {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for i in 0..self.config.concurrency.max(1) {
            let (svc, stop) = (Arc::clone(self), Arc::clone(&stop));
            let name = format!("{owner}/{i}");
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match svc.run_next(&name, &stop) {
                        Ok(true) => {}
                        Ok(false) => svc.wake.wait(svc.config.poll_interval),
                        Err(e) => {
                            tracing::warn!(error = %e, "export worker cannot claim jobs");
                            svc.wake.wait(svc.config.poll_interval);
                        }
                    }
                }
            }));
        }
        let (svc, stop2) = (Arc::clone(self), Arc::clone(&stop));
        threads.push(std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                if let Err(e) = svc.sweep(OffsetDateTime::now_utc()) {
                    tracing::warn!(error = %e, "export sweeper failed");
                }
                svc.wake.wait(svc.config.poll_interval);
            }
        }));
        WorkerHandle { stop, threads, service: Arc::clone(self) }
    }

    /// Claims and runs one job as `owner`; false when there was none.
    pub fn run_next(&self, owner: &str, stop: &AtomicBool) -> Result<bool, StoreError> {
        let now = OffsetDateTime::now_utc();
        let Some(job) = self.jobs.claim_export(owner, self.config.lease, self.config.max_attempts, now)? else {
            return Ok(false);
        };
        tracing::info!(export_id = %job.id, attempt = job.attempts, "export started");
        match self.attempt(&job, owner, stop) {
            Ok(entries) => {
                tracing::info!(export_id = %job.id, entries, "export written");
                let done = self.jobs.get_export(&job.id)?.unwrap_or(job);
                self.conclude(&done, true);
            }
            Err(AttemptError::LeaseLost) => {
                tracing::warn!(export_id = %job.id, "export lease lost; left to its holder")
            }
            Err(AttemptError::Stopping) => tracing::info!(export_id = %job.id, "export interrupted by shutdown"),
            Err(e) => {
                tracing::warn!(export_id = %job.id, error = %e, "export attempt failed");
                let failed = ExportOutcome::Failed { error: e.to_string() };
                let now = OffsetDateTime::now_utc();
                // Announced only once the job failed for good, not for an attempt that will be retried.
                if self.jobs.finish_export(&job.id, owner, &failed, self.config.max_attempts, now)?
                    && let Some(done) = self.jobs.get_export(&job.id)?
                    && done.status == ExportStatus::Failed
                {
                    self.conclude(&done, false);
                }
            }
        }
        Ok(true)
    }

    fn attempt(&self, job: &ExportJob, owner: &str, stop: &AtomicBool) -> Result<i64, AttemptError> {
        let format = ExportFormat::parse(&job.format).unwrap_or(ExportFormat::Json);
        let file_id = random_id();
        let staged = self.storage.create_typed(&file_id, format.content_type())?;
        let details = ExportDetails {
            start_time: format_rfc2822(job.window.start()),
            end_time: format_rfc2822(job.window.end()),
            namespace: &job.namespace,
            repository: job.repository.as_deref(),
        };
        let mut writer = FileWriter::begin(format, staged, &job.id, &details)?;
        let scope = match &job.repository {
            Some(name) => LogScope::Repository { namespace: job.namespace.clone(), name: name.clone() },
            None => LogScope::Namespace(job.namespace.clone()),
        };
        let query = LogQuery { scope, window: job.window, performer: None, kinds: Default::default() };
        let mut after: Option<Cursor> = None;
        let mut renewed = Instant::now();
        loop {
            if stop.load(Ordering::SeqCst) {
                return Err(AttemptError::Stopping);
            }
            let chunk = self.logs.export_chunk(&query, after, self.config.chunk_size)?;
            for entry in &chunk {
                writer.write(entry)?;
            }
            after = chunk.last().map(Cursor::of);
            if chunk.len() < self.config.chunk_size {
                break;
            }
            if renewed.elapsed() >= self.config.lease / 3 {
                let until = OffsetDateTime::now_utc() + self.config.lease;
                if !self.jobs.renew_export_lease(&job.id, owner, until)? {
                    return Err(AttemptError::LeaseLost);
                }
                renewed = Instant::now();
            }
        }
        let entries = i64::try_from(writer.entries()).unwrap_or(i64::MAX);
        writer.finish()?.commit()?;
        let now = OffsetDateTime::now_utc();
        let outcome = ExportOutcome::Success { file_id: file_id.clone(), entries, expires_at: now + self.config.ttl };
        if !self.jobs.finish_export(&job.id, owner, &outcome, self.config.max_attempts, now)? {
            let _ = self.storage.delete(&file_id);
            return Err(AttemptError::LeaseLost);
        }
        Ok(entries)
    }

    /// Audits and announces a job that ended for good.
    fn conclude(&self, job: &ExportJob, success: bool) {
        let now = OffsetDateTime::now_utc();
        let link = if success { self.link(job) } else { None };
        let mut meta = Map::new();
        meta.insert("export_id".into(), json!(job.id));
        meta.insert("url".into(), json!(job.callback_url));
        meta.insert("email".into(), json!(job.callback_email));
        meta.insert("format".into(), json!(job.format));
        if success {
            meta.insert("entries".into(), json!(job.entries));
            meta.insert("message".into(), json!("exported"));
        } else {
            meta.insert("error".into(), json!(job.error));
        }
        let kind = if success { "export_logs_success" } else { "export_logs_failure" };
        self.audit(kind, &job.namespace, job.repository.as_deref(), &job.requested_by, meta, now);

        let payload = CallbackPayload {
            export_id: job.id.clone(),
            start_time: mmddyyyy(job.window.start()),
            end_time: mmddyyyy(job.window.end()),
            namespace: job.namespace.clone(),
            repository: job.repository.clone(),
            exported_data_url: link,
            status: if success { "success" } else { "failed" }.into(),
        };
        if let Some(url) = &job.callback_url
            && let Err(e) = self.notifier.callback(url, &payload)
        {
            tracing::warn!(export_id = %job.id, error = %e, "export callback not delivered");
        }
        if let Some(to) = &job.callback_email
            && let Err(e) = self.notifier.mail(to, &payload, self.config.ttl)
        {
            tracing::warn!(export_id = %job.id, error = %e, "export e-mail not sent");
        }
    }

    /// Deletes expired files and fails jobs abandoned with no attempts left. Returns how many
    /// files were deleted.
    pub fn sweep(&self, now: OffsetDateTime) -> Result<usize, StoreError> {
        let expired = self.jobs.expired_exports(now)?;
        let mut deleted = 0;
        for job in &expired {
            if let Some(file) = &job.file_id
                && let Err(e) = self.storage.delete(file)
            {
                tracing::warn!(export_id = %job.id, error = %e, "cannot delete an expired export file");
                continue;
            }
            self.jobs.mark_export_expired(&job.id)?;
            deleted += 1;
        }
        for job in self.jobs.fail_abandoned_exports(self.config.max_attempts, now)? {
            self.conclude(&job, false);
        }
        Ok(deleted)
    }
}
