//! `usagelogs import`: NDJSON entries into the store, batched, with a progress bar and a report
//! that says where to resume.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::{BufRead, BufReader, Read};
use time::OffsetDateTime;
use usagelogs_core::NewLogEntry;
use usagelogs_core::wire::IngestEntry;
use usagelogs_store::LogStore;

/// What an import did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Entries stored.
    pub imported: u64,
    /// Entry lines consumed (stored or skipped), i.e. the `--skip` to resume after.
    pub lines_done: u64,
}

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("line {line}: {message}")]
    BadLine { line: u64, message: String },
    #[error("reading the input: {0}")]
    Io(#[from] std::io::Error),
    #[error("storing a batch: {0}")]
    Store(#[from] usagelogs_store::StoreError),
}

/// Imports NDJSON from `input` (of `total_bytes` when known) in batches of `batch_size`, skipping
/// the first `skip` entry lines. On error, the report holds what was stored before it.
pub fn import(
    store: &dyn LogStore,
    input: impl Read,
    total_bytes: Option<u64>,
    batch_size: usize,
    skip: u64,
    allow_custom_kinds: bool,
) -> (Report, Result<(), ImportError>) {
    let bar = match total_bytes {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {per_sec} eta {eta} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner(),
    };
    let mut report = Report::default();
    let mut batch: Vec<NewLogEntry> = Vec::with_capacity(batch_size);
    let mut batch_lines = 0u64;
    let mut reader = BufReader::new(input);
    let mut line = String::new();
    let mut line_no = 0u64;
    let mut entry_lines = 0u64;
    let batch_size = batch_size.max(1);
    let result = (|| {
        loop {
            line.clear();
            let read = reader.read_line(&mut line)?;
            if read == 0 {
                break;
            }
            line_no += 1;
            bar.inc(read as u64);
            if line.trim().is_empty() {
                continue;
            }
            entry_lines += 1;
            if entry_lines <= skip {
                report.lines_done = entry_lines;
                continue;
            }
            let entry: IngestEntry = serde_json::from_str(&line)
                .map_err(|e| ImportError::BadLine { line: line_no, message: e.to_string() })?;
            let entry = entry
                .validate(OffsetDateTime::now_utc(), allow_custom_kinds)
                .map_err(|e| ImportError::BadLine { line: line_no, message: e.to_string() })?;
            batch.push(entry);
            batch_lines = entry_lines;
            if batch.len() >= batch_size {
                report.imported += store.insert_batch(&batch)? as u64;
                report.lines_done = batch_lines;
                bar.set_message(format!("{} entries", report.imported));
                batch.clear();
            }
        }
        if !batch.is_empty() {
            report.imported += store.insert_batch(&batch)? as u64;
            report.lines_done = batch_lines;
        }
        Ok(())
    })();
    bar.finish_and_clear();
    (report, result)
}
