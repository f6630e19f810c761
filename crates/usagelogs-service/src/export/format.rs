//! Export file formats, written entry by entry in bounded memory.

use std::collections::HashMap;
use std::io::{self, Write};
use time::format_description::well_known::Rfc3339;
use usagelogs_core::wire::PerformerView;
use usagelogs_core::{LogEntry, format_rfc2822};

/// The formats an export can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// Quay's layout: an object with `export_id`, `details` and `logs`, closed by a
    /// `{"terminator": true}` element.
    Json,
    /// One log entry (list shape) per line.
    Ndjson,
    /// A header row, then one row per entry; metadata as a JSON column.
    Csv,
}

impl ExportFormat {
    /// Parses `json`, `ndjson` or `csv`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "json" => Some(Self::Json),
            "ndjson" => Some(Self::Ndjson),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Ndjson => "ndjson",
            Self::Csv => "csv",
        }
    }

    /// The content type of the file.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Ndjson => "application/x-ndjson",
            Self::Csv => "text/csv; charset=utf-8",
        }
    }

    /// The usual file name extension.
    pub fn extension(self) -> &'static str {
        self.as_str()
    }
}

/// The `details` block of a JSON export.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportDetails<'a> {
    pub start_time: String,
    pub end_time: String,
    pub namespace: &'a str,
    pub repository: Option<&'a str>,
}

/// The CSV header.
pub const CSV_HEADER: [&str; 8] =
    ["datetime", "kind", "namespace", "repository", "performer", "is_robot", "ip", "metadata"];

/// An entry in the list shape (`LogView`'s fields, in its order), borrowing from the entry so
/// that writing it copies no metadata.
#[derive(serde::Serialize)]
struct EntryView<'a> {
    kind: &'a str,
    metadata: &'a serde_json::Map<String, serde_json::Value>,
    ip: Option<&'a str>,
    datetime: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    performer: Option<&'a PerformerView>,
}

/// Writes one export file.
pub struct FileWriter<W: Write> {
    format: ExportFormat,
    out: Option<W>,
    csv: Option<csv::Writer<W>>,
    entries: u64,
    /// Performer blocks by (name, e-mail): their avatar hash is computed once per file.
    performers: HashMap<(String, Option<String>), PerformerView>,
}

impl<W: Write> std::fmt::Debug for FileWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWriter").field("format", &self.format).field("entries", &self.entries).finish()
    }
}

impl<W: Write> FileWriter<W> {
    /// Starts a file: writes the JSON prefix or the CSV header.
    pub fn begin(format: ExportFormat, mut out: W, export_id: &str, details: &ExportDetails<'_>) -> io::Result<Self> {
        match format {
            ExportFormat::Json => {
                let id = serde_json::to_string(export_id)?;
                let details = serde_json::to_string(details)?;
                write!(out, "{{\n      \"export_id\": {id},\n      \"details\": {details},\n      \"logs\": [\n    ")?;
                Ok(Self { format, out: Some(out), csv: None, entries: 0, performers: HashMap::new() })
            }
            ExportFormat::Ndjson => {
                Ok(Self { format, out: Some(out), csv: None, entries: 0, performers: HashMap::new() })
            }
            ExportFormat::Csv => {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(CSV_HEADER).map_err(io::Error::other)?;
                Ok(Self { format, out: None, csv: Some(w), entries: 0, performers: HashMap::new() })
            }
        }
    }

    /// Appends one entry.
    pub fn write(&mut self, entry: &LogEntry) -> io::Result<()> {
        self.entries += 1;
        if let Some(w) = self.csv.as_mut() {
            let datetime = entry.datetime.format(&Rfc3339).map_err(io::Error::other)?;
            let metadata = serde_json::to_string(&entry.metadata)?;
            let is_robot = entry.performer.as_deref().map(|p| p.contains('+').to_string());
            w.write_record([
                datetime.as_str(),
                entry.kind.as_str(),
                entry.namespace.as_str(),
                entry.repository.as_deref().unwrap_or(""),
                entry.performer.as_deref().unwrap_or(""),
                is_robot.as_deref().unwrap_or(""),
                entry.ip.as_deref().unwrap_or(""),
                metadata.as_str(),
            ])
            .map_err(io::Error::other)?;
            return Ok(());
        }
        let performer = match &entry.performer {
            None => None,
            Some(name) => {
                let key = (name.clone(), entry.performer_email.clone());
                Some(
                    &*self
                        .performers
                        .entry(key)
                        .or_insert_with(|| PerformerView::new(name, entry.performer_email.as_deref())),
                )
            }
        };
        let view = EntryView {
            kind: &entry.kind,
            metadata: &entry.metadata,
            ip: entry.ip.as_deref(),
            datetime: format_rfc2822(entry.datetime),
            performer,
        };
        let out = self.out.as_mut().ok_or_else(|| io::Error::other("writer already finished"))?;
        serde_json::to_writer(&mut *out, &view)?;
        match self.format {
            ExportFormat::Json => out.write_all(b","),
            _ => out.write_all(b"\n"),
        }
    }

    /// Entries written so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Writes the closing part and hands back the output.
    pub fn finish(mut self) -> io::Result<W> {
        if let Some(w) = self.csv.take() {
            return w.into_inner().map_err(|e| io::Error::other(e.to_string()));
        }
        let mut out = self.out.take().ok_or_else(|| io::Error::other("writer already finished"))?;
        if self.format == ExportFormat::Json {
            out.write_all(b"\n        {\"terminator\": true}]\n      }")?;
        }
        out.flush()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use time::macros::datetime;

    fn entry(i: i64) -> LogEntry {
        LogEntry {
            id: i,
            kind: "pull_repo".into(),
            namespace: "acme".into(),
            repository: Some("web".into()),
            performer: (i % 2 == 0).then(|| "acme+bot".into()),
            performer_email: None,
            ip: Some("203.0.113.7".into()),
            metadata: json!({"tag": format!("v{i}"), "quote": "a,\"b\""}).as_object().unwrap().clone(),
            datetime: datetime!(2024-03-05 13:07:09.5 UTC),
        }
    }

    fn details() -> ExportDetails<'static> {
        ExportDetails {
            start_time: "Fri, 01 Mar 2024 00:00:00 -0000".into(),
            end_time: "Wed, 06 Mar 2024 00:00:00 -0000".into(),
            namespace: "acme",
            repository: Some("web"),
        }
    }

    fn write(format: ExportFormat, n: i64) -> Vec<u8> {
        let mut w = FileWriter::begin(format, Vec::new(), "id-1", &details()).unwrap();
        for i in 0..n {
            w.write(&entry(i)).unwrap();
        }
        assert_eq!(w.entries(), n as u64);
        w.finish().unwrap()
    }

    #[test]
    fn json_has_quays_layout_and_parses() {
        for n in [0, 1, 3] {
            let v: Value = serde_json::from_slice(&write(ExportFormat::Json, n)).unwrap();
            assert_eq!(v["export_id"], "id-1");
            assert_eq!(v["details"]["namespace"], "acme");
            assert_eq!(v["details"]["repository"], "web");
            let logs = v["logs"].as_array().unwrap();
            assert_eq!(logs.len() as i64, n + 1);
            assert_eq!(logs.last().unwrap(), &json!({"terminator": true}));
            if n > 0 {
                assert_eq!(logs[0]["datetime"], "Tue, 05 Mar 2024 13:07:09 -0000");
                assert!(logs[0].get("namespace").is_none());
            }
        }
        let empty = String::from_utf8(write(ExportFormat::Json, 0)).unwrap();
        assert!(empty.contains("\"logs\": [\n    \n        {\"terminator\": true}]"), "{empty}");
    }

    #[test]
    fn entries_have_exactly_the_list_shape() {
        let mut with_email = entry(2);
        with_email.performer_email = Some("Bot@Example.com".into());
        let anonymous = LogEntry { performer: None, ip: None, ..entry(1) };
        let entries = [entry(0), with_email, anonymous];
        let mut w = FileWriter::begin(ExportFormat::Ndjson, Vec::new(), "id", &details()).unwrap();
        for e in &entries {
            w.write(e).unwrap();
        }
        let out = String::from_utf8(w.finish().unwrap()).unwrap();
        for (line, e) in out.lines().zip(&entries) {
            let list_shape = serde_json::to_string(&usagelogs_core::wire::LogView::from(e)).unwrap();
            assert_eq!(line, list_shape);
        }
    }

    #[test]
    fn ndjson_is_one_entry_per_line() {
        let out = String::from_utf8(write(ExportFormat::Ndjson, 3)).unwrap();
        let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1]["metadata"]["tag"], "v1");
    }

    #[test]
    fn csv_has_a_header_and_quotes_metadata() {
        let out = write(ExportFormat::Csv, 2);
        let mut r = csv::Reader::from_reader(out.as_slice());
        assert_eq!(r.headers().unwrap().iter().collect::<Vec<_>>(), CSV_HEADER);
        let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(&rows[0][0], "2024-03-05T13:07:09.5Z");
        assert_eq!(&rows[0][4], "acme+bot");
        assert_eq!(&rows[0][5], "true");
        assert_eq!(&rows[1][4], "");
        let meta: Value = serde_json::from_str(&rows[1][7]).unwrap();
        assert_eq!(meta["quote"], "a,\"b\"");
    }
}
