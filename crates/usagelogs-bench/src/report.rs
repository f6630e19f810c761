//! The results: one table of questions, the rates and memory, the targets, the machine.

use std::fmt::Write as _;
use std::time::Duration;

use crate::load::{Ingested, Latency};
use crate::quay::Loaded;

/// One question, asked of usagelogs over HTTP and of Quay's table in SQL.
#[derive(Debug, Clone)]
pub struct Question {
    pub name: String,
    pub ours: Latency,
    /// `None` when there is no Quay side (SQLite runs).
    pub quay: Option<Latency>,
}

/// The export measurement.
#[derive(Debug, Clone, Copy)]
pub struct Export {
    pub entries: u64,
    pub elapsed: Duration,
    pub peak_kib: u64,
}

impl Export {
    pub fn rate(&self) -> f64 {
        self.entries as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The server's memory over the run, in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryReport {
    pub idle_start: u64,
    pub peak_ingest: u64,
    pub peak_queries: u64,
    pub peak_export: u64,
    pub peak_overall: u64,
    pub idle_after: u64,
    pub idle_after_anon: u64,
}

/// Everything one run found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub backend: String,
    pub entries: u64,
    pub days: u32,
    pub seed: u64,
    pub batch_size: usize,
    pub senders: usize,
    pub clients: usize,
    pub requests: usize,
    pub workers: usize,
    pub date: String,
    pub command: String,
    pub machine: Vec<String>,
    pub subjects: Vec<String>,
    pub notes: Vec<String>,
    pub ingest: Option<Ingested>,
    pub vacuum: Option<Duration>,
    pub questions: Vec<Question>,
    pub export: Option<Export>,
    pub memory: MemoryReport,
    pub quay_load: Option<Loaded>,
    pub quay_runs: (usize, usize),
    pub database_bytes: Option<u64>,
    pub total: Duration,
}

pub fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v >= 100.0 { format!("{v:.0} ms") } else { format!("{v:.2} ms") }
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn thousands(n: f64) -> String {
    let s = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ratio(quay: Duration, ours: Duration) -> String {
    let r = quay.as_secs_f64() / ours.as_secs_f64().max(1e-9);
    if r >= 10.0 { format!("{r:.0}×") } else { format!("{r:.2}×") }
}

/// A target and whether this run meets it.
#[derive(Debug, Clone)]
pub struct Target {
    pub what: &'static str,
    pub measured: String,
    pub met: bool,
}

impl Report {
    fn question(&self, prefix: &str) -> Option<&Question> {
        self.questions.iter().find(|q| q.name.starts_with(prefix))
    }

    /// The issue's targets (set for PostgreSQL with 10 million entries), judged on this run.
    pub fn targets(&self) -> Vec<Target> {
        let mut t = Vec::new();
        if let Some(i) = &self.ingest {
            t.push(Target {
                what: "ingestion ≥ 50,000 entries/s",
                measured: format!("{} entries/s", thousands(i.rate())),
                met: i.rate() >= 50_000.0,
            });
        }
        let five = Duration::from_millis(5);
        for (what, prefix) in [
            ("list p99 ≤ 5 ms (first page)", "org list, first page"),
            ("list p99 ≤ 5 ms (page 500)", "org list, page 500"),
            ("list p99 ≤ 5 ms (by performer)", "org list, by performer"),
            ("list p99 ≤ 5 ms (by a rare kind)", "org list, by a rare kind"),
            ("list p99 ≤ 5 ms (repository)", "repository list, first page"),
            ("list p99 ≤ 5 ms (repository, by a rare kind)", "repository list, by a rare kind"),
        ] {
            if let Some(q) = self.question(prefix) {
                t.push(Target { what, measured: format!("p99 {}", ms(q.ours.p99)), met: q.ours.p99 <= five });
            }
        }
        if let (Some(first), Some(deep)) = (self.question("org list, first page"), self.question("org list, page 500"))
        {
            let bound = (first.ours.p99.mul_f64(1.25)).max(first.ours.p99 + Duration::from_micros(500));
            t.push(Target {
                what: "page 500 as fast as page 1 (p99 within 25 % or 0.5 ms)",
                measured: format!("{} vs {}", ms(deep.ours.p99), ms(first.ours.p99)),
                met: deep.ours.p99 <= bound,
            });
        }
        for (what, ratio_what, prefix) in [
            ("namespace aggregate p99 ≤ 10 ms", "namespace aggregate ≥ 50× faster than Quay's (p50)", "org aggregate"),
            (
                "repository aggregate p99 ≤ 10 ms",
                "repository aggregate ≥ 50× faster than Quay's (p50)",
                "repository aggregate",
            ),
        ] {
            if let Some(q) = self.question(prefix) {
                t.push(Target {
                    what,
                    measured: format!("p99 {}", ms(q.ours.p99)),
                    met: q.ours.p99 <= Duration::from_millis(10),
                });
                if let Some(quay) = q.quay {
                    let r = quay.p50.as_secs_f64() / q.ours.p50.as_secs_f64().max(1e-9);
                    t.push(Target { what: ratio_what, measured: ratio(quay.p50, q.ours.p50), met: r >= 50.0 });
                }
            }
        }
        if let Some(e) = &self.export {
            t.push(Target {
                what: "export ≥ 100,000 entries/s",
                measured: format!("{} entries/s", thousands(e.rate())),
                met: e.rate() >= 100_000.0,
            });
        }
        let m = &self.memory;
        let export_peak = if m.peak_export > 0 { m.peak_export } else { m.peak_overall };
        t.push(Target {
            what: "server peak memory during export ≤ 100 MiB",
            measured: mib(export_peak),
            met: export_peak <= 100 * 1024,
        });
        t.push(Target { what: "idle server ≤ 50 MiB", measured: mib(m.idle_start), met: m.idle_start <= 50 * 1024 });
        t
    }

    /// The results as Markdown (a `##` section).
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "## Results: {} entries on {}\n", thousands(self.entries as f64), self.backend);
        let _ = writeln!(
            s,
            "Run on {} · data: {} entries over {} days, seed {} · {} HTTP clients at once, {} timed requests per \
             question after a warm-up · server with {} workers{}.\n",
            self.date,
            thousands(self.entries as f64),
            self.days,
            self.seed,
            self.clients,
            self.requests,
            self.workers,
            if self.quay_load.is_some() {
                format!(
                    " · Quay SQL: one client, one warm-up run, then up to {} runs per list and {} per aggregate \
                     (a question stops after 20 s once it has 5 runs)",
                    self.quay_runs.0, self.quay_runs.1
                )
            } else {
                String::new()
            }
        );
        s.push_str("| question | usagelogs p50 | usagelogs p99 | Quay SQL p50 | ratio (Quay / ours) |\n");
        s.push_str("|---|---:|---:|---:|---:|\n");
        for q in &self.questions {
            let (quay, r) = match q.quay {
                Some(quay) => (ms(quay.p50), ratio(quay.p50, q.ours.p50)),
                None => ("n/a".into(), "n/a".into()),
            };
            let _ = writeln!(s, "| {} | {} | {} | {} | {} |", q.name, ms(q.ours.p50), ms(q.ours.p99), quay, r);
        }
        s.push('\n');
        if let Some(i) = &self.ingest {
            let _ = writeln!(
                s,
                "- **Ingestion:** {} entries/s — {} entries in {:.1} s, NDJSON batches of {} over HTTP from {} \
                 concurrent senders (batch latency p50 {}, p99 {}).",
                thousands(i.rate()),
                thousands(i.entries as f64),
                i.elapsed.as_secs_f64(),
                thousands(self.batch_size as f64),
                self.senders,
                ms(i.batch_latency.p50),
                ms(i.batch_latency.p99)
            );
        }
        if let Some(e) = &self.export {
            let _ = writeln!(
                s,
                "- **Export:** {} entries/s — {} entries of the largest namespace's 31 days in {:.2} s (requested → \
                 status `success`, polled every 10 ms); server peak RSS during the export {}.",
                thousands(e.rate()),
                thousands(e.entries as f64),
                e.elapsed.as_secs_f64(),
                mib(e.peak_kib)
            );
        }
        let m = &self.memory;
        let _ = writeln!(
            s,
            "- **Server memory (RSS):** idle after start {}; peak while ingesting {}, while answering queries {}, \
             while exporting {}; peak over the run (VmHWM) {}; idle after the run {} ({} of it anonymous: heap, \
             caches and stacks).",
            mib(m.idle_start),
            mib(m.peak_ingest),
            mib(m.peak_queries),
            mib(m.peak_export),
            mib(m.peak_overall),
            mib(m.idle_after),
            mib(m.idle_after_anon)
        );
        if let Some(v) = self.vacuum {
            let _ = writeln!(
                s,
                "- `VACUUM ANALYZE` and `CHECKPOINT` after ingestion: {:.1} s (before any query, on both sides).",
                v.as_secs_f64()
            );
        }
        if let Some(l) = &self.quay_load {
            let _ = writeln!(
                s,
                "- **Quay table load (for comparison):** {} rows by `COPY FROM` in {:.1} s ({} rows/s, generation \
                 included, no indexes yet), Quay's four indexes built in {:.1} s, `VACUUM ANALYZE` {:.1} s.",
                thousands(l.rows as f64),
                l.copy.as_secs_f64(),
                thousands(l.rows as f64 / l.copy.as_secs_f64().max(1e-9)),
                l.indexes.as_secs_f64(),
                l.analyze.as_secs_f64()
            );
        }
        if let Some(b) = self.database_bytes {
            let what = if self.quay_load.is_some() { "ours and Quay's table" } else { "ours" };
            let _ = writeln!(s, "- Database size at the end: {:.2} GB ({what}).", b as f64 / 1e9);
        }
        for line in &self.subjects {
            let _ = writeln!(s, "- {line}");
        }
        for line in &self.notes {
            let _ = writeln!(s, "- {line}");
        }
        let _ = writeln!(s, "- Whole run: {:.0} s.\n", self.total.as_secs_f64());

        let _ = writeln!(s, "### Targets\n");
        if !(self.backend.starts_with("PostgreSQL") && self.entries >= 10_000_000) {
            let _ = writeln!(
                s,
                "The targets are set for PostgreSQL with 10,000,000 entries; this run has {} entries on {}, so they \
                 are shown for orientation only.\n",
                thousands(self.entries as f64),
                self.backend
            );
        }
        s.push_str("| target | measured | met |\n|---|---:|:---:|\n");
        for t in self.targets() {
            let _ = writeln!(s, "| {} | {} | {} |", t.what, t.measured, if t.met { "yes" } else { "**no**" });
        }
        let _ = writeln!(s, "\n### Machine\n");
        for line in &self.machine {
            let _ = writeln!(s, "- {line}");
        }
        let _ = writeln!(s, "\n### Command\n\n```sh\n{}\n```", self.command);
        s
    }
}

/// Which backend a `## Results: … on BACKEND` heading names.
fn family(heading: &str) -> &str {
    if heading.contains(" on SQLite") { "SQLite" } else { "PostgreSQL" }
}

/// The `## Results` sections of an earlier document, except the one for `backend`: a PostgreSQL
/// run keeps the last SQLite results and the other way round.
fn other_results<'a>(previous: &'a str, backend: &str) -> Vec<&'a str> {
    let starts: Vec<usize> = previous.match_indices("\n## Results: ").map(|(i, _)| i + 1).collect();
    let ends = starts.iter().skip(1).copied().chain([previous.len()]);
    starts
        .iter()
        .zip(ends)
        .map(|(&start, end)| previous[start..end].trim_end())
        .filter(|section| family(section.lines().next().unwrap_or_default()) != family(&format!(" on {backend}")))
        .collect()
}

/// The whole `docs/BENCHMARKS.md`: what is measured and how, then the results of this run,
/// followed by the other backend's results kept from `previous` (PostgreSQL first).
pub fn document(report: &Report, previous: Option<&str>) -> String {
    let mut s = String::from(
        "# Benchmarks\n\n\
This page is written by the benchmark harness (`crates/usagelogs-bench`): run it again and it is\n\
replaced. It answers one question — is usagelogs fast enough for a busy registry, and how does it\n\
compare with Quay's own usage-log tables — and states plainly where a target is missed.\n\n\
## What is measured\n\n\
- **Data.** N entries generated from a seed with a registry's skew: namespaces and repositories\n\
  follow Zipf-like distributions (a few take most of the traffic), about 70 % are pulls, robots and\n\
  users repeat, the metadata carries Quay's keys (`namespace`, `repo`, `tag`, `manifest_digest`, …),\n\
  and the timestamps cover the last 60 days, nearly in time order, batch after batch.\n\
- **usagelogs, through HTTP.** The harness starts the real `usagelogs serve` binary (port 0, 2\n\
  workers, logging at `warn`), ingests every entry with `POST /api/v1/logs`, then asks each question\n\
  about the largest namespace (or repository) over the last 31 days many times from several\n\
  concurrent clients and reports p50 and p99 of the full request (sent → whole body read), after one\n\
  untimed pass over all the questions (a tenth of the requests each). Page 500\n\
  is reached by following `next_page` tokens once; then the request for that page is timed over and\n\
  over with the same token. The export is an organization export of the same 31 days, timed from the\n\
  request to the status `success`. The server's memory is read from `/proc/PID/status` (VmRSS,\n\
  VmHWM, and sampling every 20 ms).\n\
- **Quay, in SQL.** The same rows are loaded into a table shaped like Quay's `logentry3` with its\n\
  four indexes (`datetime`; `account_id, datetime`; `performer_id, datetime`; `repository_id,\n\
  datetime, kind_id`), and Quay's own queries for the same questions are timed from a Rust client\n\
  (wall clock, rows fetched): lists are `… ORDER BY datetime DESC LIMIT 21`, page 500 as Quay's\n\
  token does it (keyset on `datetime` plus an offset among equal timestamps) and also as a plain\n\
  `OFFSET`, the aggregate is Quay's `COUNT(id) … GROUP BY kind_id, day of month` (with\n\
  `performer_id = …` for the performer's aggregate). Quay has no kind filter; its rows show the query\n\
  such a filter would need with Quay's indexes.\n\
- **Fairness.** Quay's numbers are SQL alone — no HTTP, JSON, authentication or Python — while ours\n\
  are the whole HTTP request, with the clients on the same 2 cores. A ratio below 1 on a list\n\
  therefore means \"HTTP costs more than Quay's index seek\", not that Quay's API is faster. Both\n\
  tables are vacuumed and analyzed, and a checkpoint written, before they are queried.\n\n\
## How to run\n\n\
```sh\n\
cargo build --release -p usagelogs -p usagelogs-bench\n\
# PostgreSQL, 10 million entries (the database named in the URL is dropped and re-created):\n\
target/release/usagelogs-bench --database-url postgres://postgres@127.0.0.1:5432/usagelogs_bench\n\
# SQLite, smaller:\n\
target/release/usagelogs-bench --database-url sqlite:///tmp/usagelogs-bench.db --entries 1000000\n\
# or: just bench\n\
```\n\n\
A smoke run with a tiny N (`crates/usagelogs-bench/tests/smoke.rs`) runs with the test suite so the\n\
harness keeps working; the full run does not.\n\n",
    );
    let ours = report.markdown();
    let kept = previous.map(|p| other_results(p, &report.backend)).unwrap_or_default();
    let mut sections = vec![ours.trim_end()];
    sections.extend(kept);
    sections.sort_by_key(|sec| family(sec.lines().next().unwrap_or_default()) == "SQLite");
    s.push_str(&sections.join("\n\n"));
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lat(p50: u64, p99: u64) -> Latency {
        Latency { p50: Duration::from_micros(p50), p99: Duration::from_micros(p99) }
    }

    #[test]
    fn a_run_replaces_only_its_own_backends_results() {
        let run = |backend: &str, n: u64| Report { backend: backend.into(), entries: n, ..Report::default() };
        let pg = document(&run("PostgreSQL 15.20", 10_000_000), None);
        let both = document(&run("SQLite", 1_000_000), Some(&pg));
        assert!(both.contains("## Results: 10,000,000 entries on PostgreSQL 15.20"), "{both}");
        assert!(both.contains("## Results: 1,000,000 entries on SQLite"), "{both}");
        assert!(both.find("on PostgreSQL").unwrap() < both.find("entries on SQLite").unwrap());
        let again = document(&run("PostgreSQL 15.20", 2_000), Some(&both));
        assert!(!again.contains("10,000,000 entries on PostgreSQL"), "{again}");
        assert!(again.contains("## Results: 2,000 entries on PostgreSQL") && again.contains("entries on SQLite"));
        assert_eq!(again.matches("## Results: ").count(), 2);
        assert_eq!(again.matches("# Benchmarks").count(), 1);
    }

    #[test]
    fn table_has_a_row_per_question_and_judges_targets() {
        let report = Report {
            backend: "PostgreSQL 15".into(),
            entries: 10_000_000,
            questions: vec![
                Question { name: "org list, first page".into(), ours: lat(900, 2000), quay: Some(lat(100, 200)) },
                Question { name: "org list, page 500".into(), ours: lat(950, 2100), quay: Some(lat(120, 300)) },
                Question { name: "org aggregate, 31 days".into(), ours: lat(2000, 6000), quay: Some(lat(600_000, 0)) },
            ],
            memory: MemoryReport { idle_start: 20 * 1024, peak_export: 120 * 1024, ..MemoryReport::default() },
            ..Report::default()
        };
        let md = report.markdown();
        assert!(md.contains("| org list, first page | 0.90 ms | 2.00 ms | 0.10 ms | 0.11× |"), "{md}");
        assert!(md.contains("| org aggregate, 31 days | 2.00 ms | 6.00 ms | 600 ms | 300× |"), "{md}");
        let targets = report.targets();
        let met = |what: &str| targets.iter().find(|t| t.what.starts_with(what)).unwrap().met;
        assert!(met("list p99 ≤ 5 ms (first page)"));
        assert!(met("page 500 as fast"));
        assert!(met("namespace aggregate ≥ 50×"));
        assert!(!met("server peak memory"));
        assert!(met("idle server"));
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(thousands(999.0), "999");
    }
}
