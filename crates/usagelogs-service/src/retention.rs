//! Retention: log entries older than N days are removed, whole PostgreSQL partitions at a time
//! where possible, optionally after being archived as NDJSON files in the export storage.
//!
//! - [`cutoff`]: entries before 00:00 UTC of (today − N days) go.
//! - [`plan`] says what would go; [`apply`] removes it, unit by unit, and reports what it did
//!   even when it stops early.
//! - [`NdjsonArchive`] writes each piece to `retention-YYYY-MM.ndjson` (a whole partition) or
//!   `retention-YYYY-MM-DD.ndjson` (a day) in the ingestion shape, so `usagelogs import` can load
//!   it back; the store deletes a piece only after its file is committed.
//! - [`start`] runs a [`RetentionSettings`] schedule in a background thread: at start and every
//!   interval, it makes the coming months' partitions (PostgreSQL) and applies retention.

use crate::export::storage::ExportStorage;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, UtcOffset};
use usagelogs_core::LogEntry;
use usagelogs_core::wire::IngestEntry;
use usagelogs_store::{
    ArchiveError, ArchivePiece, RetentionArchive, RetentionError, RetentionPlan, RetentionStore, StoreError,
    UnitOutcome,
};

/// The first day kept when keeping `days` days: entries before 00:00 UTC of it are removed.
/// `0` keeps today only.
pub fn cutoff(days: u32, now: OffsetDateTime) -> Date {
    let today = now.to_offset(UtcOffset::UTC).date();
    today.checked_sub(time::Duration::days(i64::from(days))).unwrap_or(Date::MIN)
}

/// What retention would remove when keeping `days` days.
pub fn plan<S: RetentionStore + ?Sized>(
    store: &S,
    days: u32,
    now: OffsetDateTime,
) -> Result<RetentionPlan, StoreError> {
    store.retention_plan(cutoff(days, now))
}

/// What a retention run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionReport {
    pub cutoff: Date,
    /// The units removed, oldest first.
    pub units: Vec<UnitOutcome>,
    /// Archive files written (committed) before their entries were removed.
    pub files: Vec<String>,
}

impl RetentionReport {
    /// Entries removed.
    pub fn removed(&self) -> i64 {
        self.units.iter().map(|u| u.removed).sum()
    }
}

/// Removes the entries older than `days` days, unit by unit, archiving each piece first to
/// `archive` when given. Returns what was done, and the error that stopped it, if any (units
/// before it are removed; the one that failed is left whole or partly removed, consistently).
pub fn apply<S: RetentionStore + ?Sized>(
    store: &S,
    days: u32,
    now: OffsetDateTime,
    archive: Option<&dyn ExportStorage>,
) -> (RetentionReport, Result<(), RetentionError>) {
    let cutoff = cutoff(days, now);
    let mut report = RetentionReport { cutoff, units: Vec::new(), files: Vec::new() };
    let plan = match store.retention_plan(cutoff) {
        Ok(plan) => plan,
        Err(e) => return (report, Err(e.into())),
    };
    let mut archive = archive.map(NdjsonArchive::new);
    let mut result = Ok(());
    for unit in &plan.units {
        let outcome = store.apply_unit(unit, archive.as_mut().map(|a| a as &mut dyn RetentionArchive));
        if let Some(a) = archive.as_mut() {
            report.files.append(&mut a.files);
        }
        match outcome {
            Ok(done) => report.units.push(done),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    (report, result)
}

/// The archive file of a piece.
pub fn archive_file_name(piece: &ArchivePiece) -> String {
    format!("retention-{}.ndjson", piece.label)
}

/// Writes each piece to one NDJSON file of an [`ExportStorage`], one entry per line in the
/// ingestion shape ([`IngestEntry`]), and commits it before returning.
pub struct NdjsonArchive<'a> {
    storage: &'a dyn ExportStorage,
    /// Files committed so far.
    pub files: Vec<String>,
}

impl std::fmt::Debug for NdjsonArchive<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NdjsonArchive").field("files", &self.files).finish()
    }
}

impl<'a> NdjsonArchive<'a> {
    pub fn new(storage: &'a dyn ExportStorage) -> Self {
        Self { storage, files: Vec::new() }
    }
}

/// An entry as archived: what `usagelogs import` reads.
pub fn archive_record(e: &LogEntry) -> Result<IngestEntry, time::error::Format> {
    Ok(IngestEntry {
        kind: e.kind.clone(),
        namespace: e.namespace.clone(),
        repository: e.repository.clone(),
        performer: e.performer.clone(),
        performer_email: e.performer_email.clone(),
        ip: e.ip.clone(),
        metadata: Some(serde_json::Value::Object(e.metadata.clone())),
        datetime: Some(e.datetime.format(&Rfc3339)?),
    })
}

impl RetentionArchive for NdjsonArchive<'_> {
    fn archive(
        &mut self,
        piece: &ArchivePiece,
        entries: &mut dyn Iterator<Item = Result<LogEntry, StoreError>>,
    ) -> Result<(), ArchiveError> {
        let name = archive_file_name(piece);
        // Dropped uncommitted on any error: no half file appears.
        let mut file = self.storage.create(&name)?;
        let mut n = 0u64;
        for entry in entries {
            serde_json::to_writer(&mut file, &archive_record(&entry?)?)?;
            file.write_all(b"\n")?;
            n += 1;
        }
        file.commit()?;
        tracing::info!(file = %name, entries = n, "archived log entries before retention");
        self.files.push(name);
        Ok(())
    }
}

/// The retention schedule of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Days of entries kept; `None`: retention is off (partitions are still made ahead).
    pub days: Option<u32>,
    /// How often it runs (and once at start).
    pub interval: Duration,
    /// Archive to the export storage before removing.
    pub archive: bool,
}

impl Default for RetentionSettings {
    /// Off; hourly; no archive.
    fn default() -> Self {
        Self { days: None, interval: Duration::from_secs(3600), archive: false }
    }
}

/// One scheduled pass: the coming months' partitions, then retention when on. Logs its outcome.
pub fn run_once<S: RetentionStore + ?Sized>(
    store: &S,
    settings: &RetentionSettings,
    storage: Option<&dyn ExportStorage>,
    now: OffsetDateTime,
) -> Option<(RetentionReport, Result<(), RetentionError>)> {
    match store.ensure_partitions(now.to_offset(UtcOffset::UTC).date()) {
        Ok(made) if !made.is_empty() => tracing::info!(partitions = ?made, "made log_entries partitions ahead"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot make the log_entries partitions of the coming months"),
    }
    let days = settings.days?;
    let storage = if settings.archive { storage } else { None };
    let (report, result) = apply(store, days, now, storage);
    match &result {
        Ok(()) if report.units.is_empty() => tracing::debug!(cutoff = %report.cutoff, "retention: nothing to remove"),
        Ok(()) => tracing::info!(
            cutoff = %report.cutoff,
            removed = report.removed(),
            files = ?report.files,
            "retention removed old log entries"
        ),
        Err(e) => tracing::error!(
            cutoff = %report.cutoff,
            removed = report.removed(),
            error = %e,
            "retention stopped; the next run continues"
        ),
    }
    Some((report, result))
}

#[derive(Debug, Default)]
struct Shared {
    stop: bool,
    runs: u64,
}

/// The background retention thread; [`RetentionHandle::stop`] ends it.
#[derive(Debug)]
pub struct RetentionHandle {
    shared: Arc<(Mutex<Shared>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl RetentionHandle {
    /// Blocks until at least `n` passes have finished.
    pub fn wait_for_runs(&self, n: u64) {
        let (lock, cvar) = &*self.shared;
        let guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let _done = cvar.wait_while(guard, |s| s.runs < n && !s.stop).unwrap_or_else(|p| p.into_inner());
    }

    /// Stops the thread (a pass in progress finishes its current unit's statements first) and
    /// waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let (lock, cvar) = &*self.shared;
        lock.lock().unwrap_or_else(|p| p.into_inner()).stop = true;
        cvar.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RetentionHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Starts the schedule: a pass now, then one every `settings.interval`, until stopped.
/// `storage` receives the archives when `settings.archive` is set.
pub fn start<S: RetentionStore>(
    store: Arc<S>,
    settings: RetentionSettings,
    storage: Option<Arc<dyn ExportStorage>>,
) -> RetentionHandle {
    let shared = Arc::new((Mutex::new(Shared::default()), Condvar::new()));
    let thread_shared = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("retention".into())
        .spawn(move || {
            let (lock, cvar) = &*thread_shared;
            loop {
                run_once(&*store, &settings, storage.as_deref(), OffsetDateTime::now_utc());
                let mut s = lock.lock().unwrap_or_else(|p| p.into_inner());
                s.runs += 1;
                cvar.notify_all();
                let (s, _) =
                    cvar.wait_timeout_while(s, settings.interval, |s| !s.stop).unwrap_or_else(|p| p.into_inner());
                if s.stop {
                    return;
                }
            }
        })
        .ok();
    if thread.is_none() {
        tracing::error!("cannot start the retention thread");
    }
    RetentionHandle { shared, thread }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::storage::LocalExportStorage;
    use serde_json::json;
    use std::collections::BTreeSet;
    use time::macros::{date, datetime};
    use usagelogs_core::names::RepoName;
    use usagelogs_core::{KindName, Namespace, NewLogEntry, Performer, TimeWindow};
    use usagelogs_store::{DieselStore, KindFilter, LogQuery, LogScope, LogStore, StoreOptions};

    fn entry(seq: usize, ns: &str, t: OffsetDateTime) -> NewLogEntry {
        let mut metadata = serde_json::Map::new();
        metadata.insert("seq".into(), json!(seq));
        NewLogEntry {
            kind: KindName::new(if seq.is_multiple_of(3) { "pull_repo" } else { "push_repo" }).unwrap(),
            namespace: Namespace::new(ns).unwrap(),
            repository: seq.is_multiple_of(2).then(|| RepoName::new("web").unwrap()),
            performer: (seq % 4 == 1).then(|| Performer::new("alice").unwrap()),
            performer_email: (seq % 4 == 1).then(|| "alice@example.com".to_owned()),
            ip: Some("203.0.113.7".into()),
            metadata,
            datetime: t,
        }
    }

    /// A SQLite store in `dir` with 400 entries, 2024-01-20 to 2024-03-09, every 3 hours.
    fn store_with_entries(dir: &std::path::Path) -> (DieselStore, Vec<NewLogEntry>) {
        let url = format!("sqlite://{}", dir.join("logs.db").display());
        let store = DieselStore::connect(&url, StoreOptions::default()).unwrap();
        let entries: Vec<_> = (0..400)
            .map(|i| {
                let ns = if i % 5 == 0 { "beta" } else { "acme" };
                entry(i, ns, datetime!(2024-01-20 00:30 UTC) + time::Duration::hours(3 * i as i64))
            })
            .collect();
        store.insert_batch(&entries).unwrap();
        (store, entries)
    }

    fn remaining(store: &DieselStore) -> BTreeSet<u64> {
        let mut out = BTreeSet::new();
        for ns in ["acme", "beta"] {
            let q = LogQuery {
                scope: LogScope::Namespace(ns.into()),
                window: TimeWindow::new(datetime!(2024-01-01 00:00 UTC), datetime!(2025-01-01 00:00 UTC)).unwrap(),
                performer: None,
                kinds: KindFilter::default(),
            };
            out.extend(
                store.export_chunk(&q, None, 10_000).unwrap().iter().map(|e| e.metadata["seq"].as_u64().unwrap()),
            );
        }
        out
    }

    #[test]
    fn cutoffs_are_utc_midnights() {
        assert_eq!(cutoff(30, datetime!(2024-03-31 23:59 UTC)), date!(2024 - 03 - 01));
        assert_eq!(cutoff(0, datetime!(2024-03-31 01:00 +02:00)), date!(2024 - 03 - 30));
        assert_eq!(cutoff(u32::MAX, datetime!(2024-03-31 00:00 UTC)), Date::MIN);
    }

    #[test]
    fn archive_files_hold_exactly_the_removed_entries() {
        let dir = tempfile::tempdir().unwrap();
        let (store, entries) = store_with_entries(dir.path());
        let storage = LocalExportStorage::new(dir.path().join("exports")).unwrap();
        let now = datetime!(2024-03-15 12:00 UTC);
        // Keep 30 days: the cutoff is 2024-02-14.
        let dry = plan(&store, 30, now).unwrap();
        assert_eq!(dry.cutoff, date!(2024 - 02 - 14));
        let gone: BTreeSet<u64> = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.datetime < datetime!(2024-02-14 00:00 UTC))
            .map(|(i, _)| i as u64)
            .collect();
        assert_eq!(dry.entries(), gone.len() as i64);
        assert_eq!(remaining(&store).len(), entries.len(), "planning removes nothing");

        let (report, result) = apply(&store, 30, now, Some(&storage));
        result.unwrap();
        assert_eq!(report.removed(), gone.len() as i64);
        let all: BTreeSet<u64> = (0..entries.len() as u64).collect();
        assert_eq!(remaining(&store), all.difference(&gone).copied().collect());

        // One file per day removed, named after it, holding exactly that day's entries.
        assert_eq!(report.files.first().map(String::as_str), Some("retention-2024-01-20.ndjson"));
        assert_eq!(report.files.last().map(String::as_str), Some("retention-2024-02-13.ndjson"));
        assert_eq!(report.files.len(), 25);
        let mut archived = Vec::new();
        for name in &report.files {
            let day = name.trim_start_matches("retention-").trim_end_matches(".ndjson");
            let mut text = String::new();
            std::io::Read::read_to_string(&mut storage.open(name).unwrap().unwrap(), &mut text).unwrap();
            for line in text.lines() {
                let record: IngestEntry = serde_json::from_str(line).unwrap();
                let seq = record.metadata.as_ref().unwrap()["seq"].as_u64().unwrap();
                let original = &entries[seq as usize];
                // Loads back as the entry it was.
                let back = record.clone().validate(now, false).unwrap();
                assert_eq!(&back, original);
                assert!(record.datetime.as_deref().unwrap().starts_with(day), "{line} in {name}");
                archived.push(seq);
            }
        }
        let archived_set: BTreeSet<u64> = archived.iter().copied().collect();
        assert_eq!(archived.len(), archived_set.len(), "each entry archived once");
        assert_eq!(archived_set, gone);
        // No staging files left behind.
        let names: Vec<String> = std::fs::read_dir(dir.path().join("exports"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), report.files.len(), "{names:?}");

        // Again: nothing left to remove.
        let (again, result) = apply(&store, 30, now, Some(&storage));
        result.unwrap();
        assert_eq!(again.removed(), 0);
        assert!(again.files.is_empty());
    }

    /// A storage whose files cannot be committed.
    struct Broken;

    impl ExportStorage for Broken {
        fn create(&self, _name: &str) -> std::io::Result<Box<dyn crate::export::storage::StagedFile>> {
            Err(std::io::Error::other("bucket unreachable"))
        }
        fn open(&self, _name: &str) -> std::io::Result<Option<std::fs::File>> {
            Ok(None)
        }
        fn delete(&self, _name: &str) -> std::io::Result<()> {
            Ok(())
        }
        fn direct_url(&self, _name: &str, _ttl: Duration) -> Option<String> {
            None
        }
    }

    #[test]
    fn nothing_is_removed_when_the_archive_fails() {
        let dir = tempfile::tempdir().unwrap();
        let (store, entries) = store_with_entries(dir.path());
        let (report, result) = apply(&store, 30, datetime!(2024-03-15 12:00 UTC), Some(&Broken));
        let err = result.unwrap_err();
        assert!(err.to_string().contains("bucket unreachable"), "{err}");
        assert_eq!(report.removed(), 0);
        assert_eq!(remaining(&store).len(), entries.len());
    }

    #[test]
    fn the_schedule_runs_at_start_and_stops_promptly() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = store_with_entries(dir.path());
        let store = Arc::new(store);
        // Keep 1 day: everything (all in early 2024) goes at the first pass.
        let settings = RetentionSettings { days: Some(1), interval: Duration::from_secs(3600), archive: false };
        let handle = start(Arc::clone(&store), settings, None);
        handle.wait_for_runs(1);
        assert!(remaining(&store).is_empty());
        // Stopping does not wait for the hour to pass.
        handle.stop();

        // Off: the pass only makes partitions (none on SQLite) and removes nothing.
        let other = tempfile::tempdir().unwrap();
        let (store, entries) = store_with_entries(other.path());
        assert!(run_once(&store, &RetentionSettings::default(), None, OffsetDateTime::now_utc()).is_none());
        assert_eq!(remaining(&store).len(), entries.len());
    }
}
