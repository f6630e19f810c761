//! Exports: durable jobs requested through the API, run by workers inside the server, written to
//! an export storage, announced by callback and e-mail, audited in the namespace's log.

pub mod callback;
pub mod format;
pub mod notify;
mod s3;
pub mod storage;
mod worker;

pub use callback::CallbackPolicy;
pub use format::ExportFormat;
pub use notify::{CallbackPayload, Notifier, NotifyConfig};
pub use storage::{ExportStorage, LocalExportStorage};
pub use worker::WorkerHandle;

use crate::error::ServiceError;
use crate::service::{Target, authorize_target};
use rand::RngCore;
use serde_json::{Map, Value, json};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use usagelogs_core::wire::ExportStatusView;
use usagelogs_core::{
    Claims, DateParamError, KindName, Level, Namespace, NewLogEntry, Performer, TimeWindow, format_rfc2822,
    names::RepoName,
};
use usagelogs_store::{ExportJob, ExportJobStore, ExportStatus, LogStore, NewExportJob};

/// Settings of exports.
#[derive(Debug, Clone)]
pub struct ExportConfig {
    /// How long a finished file and its link last.
    pub ttl: Duration,
    /// How long a worker's claim lasts without renewal.
    pub lease: Duration,
    /// Attempts before a job fails for good.
    pub max_attempts: i32,
    /// Entries read per query while writing.
    pub chunk_size: usize,
    /// How often idle workers look for work (new requests wake them at once).
    pub poll_interval: Duration,
    /// Jobs run at once by this server.
    pub concurrency: usize,
}

impl Default for ExportConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(3600),
            lease: Duration::from_secs(60),
            max_attempts: 3,
            chunk_size: 5000,
            poll_interval: Duration::from_secs(5),
            concurrency: 2,
        }
    }
}

/// A file ready for download.
#[derive(Debug)]
pub struct Download {
    pub file: std::fs::File,
    pub content_type: &'static str,
    pub filename: String,
}

/// Wakes idle workers when a job is queued.
#[derive(Debug, Default)]
pub(crate) struct Wake {
    generation: Mutex<u64>,
    cvar: Condvar,
}

impl Wake {
    pub(crate) fn notify(&self) {
        let mut g = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        *g += 1;
        self.cvar.notify_all();
    }

    /// Waits for a notification or `timeout`.
    pub(crate) fn wait(&self, timeout: Duration) {
        let g = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        let seen = *g;
        let _unused = self.cvar.wait_timeout_while(g, timeout, |g| *g == seen);
    }
}

/// The export use cases.
pub struct ExportService {
    pub(crate) logs: Arc<dyn LogStore>,
    pub(crate) jobs: Arc<dyn ExportJobStore>,
    pub(crate) storage: Arc<dyn ExportStorage>,
    pub(crate) notifier: Notifier,
    policy: CallbackPolicy,
    pub(crate) config: ExportConfig,
    pub(crate) wake: Arc<Wake>,
}

impl std::fmt::Debug for ExportService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportService").field("config", &self.config).finish_non_exhaustive()
    }
}

fn string_field(body: &Map<String, Value>, key: &str) -> Result<Option<String>, ServiceError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(other) => Err(ServiceError::BadRequest(format!("{other} is not of type 'string' ({key})"))),
    }
}

/// 128 bits and more of randomness, as hex.
pub(crate) fn random_id() -> String {
    let mut buf = [0u8; 20];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

impl ExportService {
    /// The export use cases over the log store, the job store and the file storage.
    pub fn new(
        logs: Arc<dyn LogStore>,
        jobs: Arc<dyn ExportJobStore>,
        storage: Arc<dyn ExportStorage>,
        notifier: Notifier,
        policy: CallbackPolicy,
        config: ExportConfig,
    ) -> Self {
        Self { logs, jobs, storage, notifier, policy, config, wake: Arc::new(Wake::default()) }
    }

    /// The settings.
    pub fn config(&self) -> &ExportConfig {
        &self.config
    }

    /// Namespace and repository of a target, checking they exist (user namespaces always do).
    fn locate(&self, caller: &Claims, target: &Target) -> Result<(&'static str, String, Option<String>), ServiceError> {
        Ok(match target {
            Target::User => ("user", caller.sub.clone(), None),
            Target::Org(ns) => {
                if !self.logs.namespace_exists(ns.as_str())? {
                    return Err(ServiceError::NotFound);
                }
                ("org", ns.to_string(), None)
            }
            Target::Repo(r) => {
                if !self.logs.repository_exists(r.namespace().as_str(), r.name().as_str())? {
                    return Err(ServiceError::NotFound);
                }
                ("repo", r.namespace().to_string(), Some(r.name().to_string()))
            }
        })
    }

    /// Queues an export: permission, body, existence, then the checks whose failures are
    /// audited. Returns the export id.
    #[allow(clippy::too_many_arguments)]
    pub fn request(
        &self,
        caller: &Claims,
        target: &Target,
        starttime: Option<&str>,
        endtime: Option<&str>,
        body: &Value,
        link_base: &str,
        now: OffsetDateTime,
    ) -> Result<String, ServiceError> {
        authorize_target(caller, target, Level::Export)?;
        let body = match body {
            Value::Null => return Err(ServiceError::BadRequest("Missing JSON body".into())),
            Value::Object(m) => m,
            other => return Err(ServiceError::BadRequest(format!("{other} is not of type 'object'"))),
        };
        let callback_url = string_field(body, "callback_url")?;
        let callback_email = string_field(body, "callback_email")?;
        let format = string_field(body, "format")?;
        let (level, namespace, repository) = self.locate(caller, target)?;

        let checked = (|| {
            if let Some(url) = &callback_url {
                self.policy.check(url).map_err(ServiceError::BadRequest)?;
            }
            if callback_email.as_deref().is_some_and(|e| !notify::is_valid_email(e)) {
                return Err(ServiceError::BadRequest("Invalid callback e-mail".into()));
            }
            let format = match format.as_deref() {
                None => ExportFormat::Json,
                Some(f) => ExportFormat::parse(f).ok_or_else(|| {
                    ServiceError::BadRequest(format!("Unknown export format '{f}': use json, ndjson or csv"))
                })?,
            };
            let window = TimeWindow::from_params(starttime, endtime, now).map_err(|e| match e {
                DateParamError::InvalidSpan => ServiceError::BadRequest("Invalid time span selected".into()),
                other => ServiceError::from(other),
            })?;
            Ok((format, window))
        })();
        let (format, window) = match checked {
            Ok(v) => v,
            Err(e) => {
                let mut meta = Map::new();
                meta.insert("error".into(), json!(e.to_string()));
                meta.insert("url".into(), json!(callback_url));
                meta.insert("email".into(), json!(callback_email));
                self.audit("export_logs_failure", &namespace, repository.as_deref(), &caller.sub, meta, now);
                return Err(e);
            }
        };
        let id = uuid::Uuid::new_v4().to_string();
        self.jobs.create_export(&NewExportJob {
            id: id.clone(),
            level: level.into(),
            namespace,
            repository,
            window,
            format: format.as_str().into(),
            callback_url,
            callback_email,
            requested_by: caller.sub.clone(),
            link_base: link_base.trim_end_matches('/').to_owned(),
            created_at: now,
        })?;
        self.wake.notify();
        Ok(id)
    }

    /// The status of an export, under the same permission as its request.
    pub fn status(&self, caller: &Claims, target: &Target, export_id: &str) -> Result<ExportStatusView, ServiceError> {
        authorize_target(caller, target, Level::Export)?;
        let job = self.jobs.get_export(export_id)?.ok_or(ServiceError::NotFound)?;
        let belongs = match target {
            Target::User => job.level == "user" && job.namespace == caller.sub,
            Target::Org(ns) => job.level == "org" && job.namespace == ns.as_str(),
            Target::Repo(r) => {
                job.level == "repo"
                    && job.namespace == r.namespace().as_str()
                    && job.repository.as_deref() == Some(r.name().as_str())
            }
        };
        if !belongs {
            return Err(ServiceError::NotFound);
        }
        Ok(self.view(&job))
    }

    /// The download link of a finished job.
    pub(crate) fn link(&self, job: &ExportJob) -> Option<String> {
        let file = job.file_id.as_deref()?;
        // A signed link lives only as long as the file: until `expires_at`, not a full TTL from now.
        let left = job.expires_at.map_or(self.config.ttl, |at| {
            Duration::try_from(at - OffsetDateTime::now_utc())
                .unwrap_or(Duration::from_secs(1))
                .max(Duration::from_secs(1))
        });
        Some(self.storage.direct_url(file, left).unwrap_or_else(|| format!("{}/exportedlogs/{file}", job.link_base)))
    }

    fn view(&self, job: &ExportJob) -> ExportStatusView {
        let live = job.status == ExportStatus::Success;
        ExportStatusView {
            export_id: job.id.clone(),
            status: job.status.as_str().into(),
            format: job.format.clone(),
            start_time: format_rfc2822(job.window.start()),
            end_time: format_rfc2822(job.window.end()),
            namespace: job.namespace.clone(),
            repository: job.repository.clone(),
            entries: job.entries,
            exported_data_url: if live { self.link(job) } else { None },
            expires_at: if live { job.expires_at.map(format_rfc2822) } else { None },
            error: job.error.clone(),
        }
    }

    /// The file of `file_id`, while its link lasts.
    pub fn download(&self, file_id: &str, now: OffsetDateTime) -> Result<Download, ServiceError> {
        if file_id.len() > 128 || !file_id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(ServiceError::NotFound);
        }
        let job = self.jobs.export_by_file(file_id)?.ok_or(ServiceError::NotFound)?;
        if job.status != ExportStatus::Success || job.expires_at.is_none_or(|t| t <= now) {
            return Err(ServiceError::NotFound);
        }
        let format = ExportFormat::parse(&job.format).unwrap_or(ExportFormat::Json);
        let file = self
            .storage
            .open(file_id)
            .map_err(|e| ServiceError::Internal(usagelogs_store::StoreError::Corrupt(format!("export file: {e}"))))?
            .ok_or(ServiceError::NotFound)?;
        Ok(Download {
            file,
            content_type: format.content_type(),
            filename: format!("{}.{}", job.id, format.extension()),
        })
    }

    /// Writes an audit entry into the namespace's log; a failure to do so is logged.
    pub(crate) fn audit(
        &self,
        kind: &str,
        namespace: &str,
        repository: Option<&str>,
        performer: &str,
        mut metadata: Map<String, Value>,
        now: OffsetDateTime,
    ) {
        if let Some(r) = repository {
            metadata.insert("repo".into(), json!(r));
        }
        metadata.insert("date/time".into(), json!(now.unix_timestamp()));
        let entry = (|| {
            Some(NewLogEntry {
                kind: KindName::new(kind).ok()?,
                namespace: Namespace::new(namespace).ok()?,
                repository: repository.and_then(|r| RepoName::new(r).ok()),
                performer: Performer::new(performer).ok(),
                performer_email: None,
                ip: None,
                metadata,
                datetime: now,
            })
        })();
        let result = match entry {
            Some(e) => self.logs.insert_batch(&[e]).map(|_| ()),
            None => Ok(()),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, kind, namespace, "cannot write the export audit entry");
        }
    }
}
