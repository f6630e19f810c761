//! `usagelogs-bench`: one command that fills a fresh database through the running server, times
//! the questions users ask (HTTP, p50/p99 under concurrency), the ingestion and export rates and
//! the server's memory, times Quay's own SQL for the same questions on a `logentry3`-shaped table
//! with the same rows, and writes one comparison table to `docs/BENCHMARKS.md`.

mod database;
mod generate;
mod load;
mod quay;
mod report;
mod server;

use clap::Parser;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time};

use database::Target;
use generate::{Census, RARE_KIND, Universe, Who};
use load::{client, send};
use quay::{Filter, Queries, Scope};
use report::{Export, MemoryReport, Question, Report};
use server::{RssSampler, Server};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Benchmark usagelogs through its HTTP API against Quay's own queries.
#[derive(Debug, Parser)]
#[command(name = "usagelogs-bench", version, about)]
struct Args {
    /// `postgres://USER@HOST:PORT/DB` (DB is dropped and re-created) or `sqlite://PATH` (the file is
    /// deleted first). The Quay comparison needs PostgreSQL.
    #[arg(long)]
    database_url: String,
    /// Entries to generate (default: 10,000,000 on PostgreSQL, 1,000,000 on SQLite).
    #[arg(long)]
    entries: Option<u64>,
    /// The `usagelogs` binary (default: next to this one, else `usagelogs` on the PATH).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Where to write the report (Markdown).
    #[arg(long, default_value = "docs/BENCHMARKS.md")]
    out: PathBuf,
    /// Concurrent HTTP clients for the timed questions.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Timed requests per question.
    #[arg(long, default_value_t = 1000)]
    requests: usize,
    /// Concurrent ingestion senders.
    #[arg(long, default_value_t = 4)]
    senders: usize,
    /// Entries per ingestion request.
    #[arg(long, default_value_t = 5000)]
    batch_size: usize,
    /// HTTP workers of the server.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Days the entries spread over (ending now).
    #[arg(long, default_value_t = 60)]
    days: u32,
    /// Seed of the generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Keep the database afterwards (it is dropped by default).
    #[arg(long)]
    keep_database: bool,
}

/// The measured window: the last 31 calendar days, today included (end exclusive at tomorrow).
#[derive(Debug, Clone, Copy)]
struct Window {
    first_day: Date,
    last_day: Date,
}

impl Window {
    fn ending(today: Date) -> Self {
        Self { first_day: today - time::Duration::days(30), last_day: today }
    }

    fn start(&self) -> PrimitiveDateTime {
        PrimitiveDateTime::new(self.first_day, Time::MIDNIGHT)
    }

    fn end(&self) -> PrimitiveDateTime {
        PrimitiveDateTime::new(self.last_day + time::Duration::days(1), Time::MIDNIGHT)
    }

    fn start_micros(&self) -> i64 {
        (self.start().assume_utc().unix_timestamp_nanos() / 1000) as i64
    }

    /// `starttime`/`endtime` query parameters (ISO dates; the end day is inclusive).
    fn params(&self) -> Vec<(&'static str, String)> {
        vec![("starttime", self.first_day.to_string()), ("endtime", self.last_day.to_string())]
    }
}

fn log(msg: impl AsRef<str>) {
    let now = OffsetDateTime::now_utc();
    eprintln!("[{:02}:{:02}:{:02}] {}", now.hour(), now.minute(), now.second(), msg.as_ref());
}

fn server_bin(args: &Args) -> Result<PathBuf, Error> {
    if let Some(b) = &args.server_bin {
        return Ok(b.clone());
    }
    let beside = std::env::current_exe()?.with_file_name("usagelogs");
    if beside.is_file() {
        return Ok(beside);
    }
    Ok(PathBuf::from("usagelogs"))
}

fn command_line() -> String {
    let mut parts = vec!["usagelogs-bench".to_owned()];
    for a in std::env::args().skip(1) {
        if a.is_empty() || a.chars().any(|c| !(c.is_ascii_alphanumeric() || "-_./:=@,+".contains(c))) {
            parts.push(format!("'{}'", a.replace('\'', r"'\''")));
        } else {
            parts.push(a);
        }
    }
    parts.join(" ")
}

fn machine(db: Option<String>) -> Vec<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_owned()))
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut lines = vec![
        format!("{cores} cores (`nproc`), {model}"),
        format!("{:.1} GiB memory", mem_kib as f64 / 1024.0 / 1024.0),
        format!("Linux {}", kernel.trim()),
    ];
    lines.extend(db);
    lines.push(
        "Server, harness and database share the machine: the HTTP clients and the server compete for the same cores."
            .into(),
    );
    lines
}

/// Pre-renders every ingestion batch as NDJSON (so the timed ingestion measures the server, not
/// the generator) and counts what was generated.
fn render_batches(universe: &Universe, window: &Window) -> (Vec<load::Batch>, Census) {
    let mut census = Census::default();
    let mut bodies = Vec::with_capacity(universe.batches());
    let mut last_report = Instant::now();
    for b in 0..universe.batches() {
        let entries = universe.batch(b);
        census.add(&entries, window.start_micros());
        let mut body = String::with_capacity(entries.len() * 480);
        for e in &entries {
            universe.ndjson_line(e, &mut body);
        }
        bodies.push((entries.len(), body.into_bytes()));
        if last_report.elapsed() > Duration::from_secs(10) {
            log(format!("generated {} of {} batches", b + 1, universe.batches()));
            last_report = Instant::now();
        }
    }
    (bodies, census)
}

fn get_json(req: reqwest::blocking::RequestBuilder) -> Result<Value, Error> {
    Ok(serde_json::from_slice(&send(req, 200)?)?)
}

/// What the questions are about: the busiest subjects of the generated data.
#[derive(Debug)]
struct Subjects {
    ns: u32,
    ns_name: String,
    repo_ns: u32,
    repo: u16,
    repo_path: String,
    performer: Who,
    performer_name: String,
}

impl Subjects {
    fn pick(census: &Census, universe: &Universe) -> Self {
        let ns = census.largest_namespace();
        let (repo_ns, repo) = census.largest_repository();
        let performer = census.top_performer(ns);
        Self {
            ns,
            ns_name: universe.namespace_name(ns).to_owned(),
            repo_ns,
            repo,
            repo_path: format!("{}/{}", universe.namespace_name(repo_ns), Universe::repo_name(repo)),
            performer,
            performer_name: universe.performer_name(ns, performer).unwrap_or_default(),
        }
    }

    fn describe(&self, census: &Census, window: &Window) -> String {
        let rare = Universe::quay_kind_id(RARE_KIND).map_or(u8::MAX, |k| (k - 1) as u8);
        format!(
            "Subjects: largest namespace `{}` ({} entries, {} in the 31-day window {} – {}); largest repository `{}` \
             ({} in the window); performer `{}` ({} in the window); rare kind `{RARE_KIND}` ({} in the window).",
            self.ns_name,
            census.namespace_total.get(&self.ns).copied().unwrap_or(0),
            census.namespace_window.get(&self.ns).copied().unwrap_or(0),
            window.first_day,
            window.last_day,
            self.repo_path,
            census.repo_window.get(&(self.repo_ns, self.repo)).copied().unwrap_or(0),
            self.performer_name,
            census.performer_window.get(&(self.ns, self.performer)).copied().unwrap_or(0),
            census.kind_window.get(&(self.ns, rare)).copied().unwrap_or(0),
        )
    }
}

/// One run's settings and data set.
#[derive(Debug)]
struct Plan<'a> {
    args: &'a Args,
    target: Target,
    universe: Universe,
    window: Window,
    census: Census,
    subjects: Subjects,
}

fn run(args: &Args) -> Result<Report, Error> {
    let started = Instant::now();
    let target = Target::parse(&args.database_url)?;
    let entries = args.entries.unwrap_or(if target.is_postgres() { 10_000_000 } else { 1_000_000 });
    let bin = server_bin(args)?;
    let secret = format!("bench-{:x}-{}", std::process::id(), OffsetDateTime::now_utc().unix_timestamp_nanos());
    let work = tempfile::Builder::new().prefix("usagelogs-bench-").tempdir()?;
    let now = OffsetDateTime::now_utc();
    let window = Window::ending(now.date());
    let universe = Universe::new(entries, args.days, args.seed, args.batch_size, now);

    let mut report = Report {
        entries,
        days: args.days,
        seed: args.seed,
        batch_size: universe.batch_size,
        senders: args.senders,
        clients: args.clients,
        requests: args.requests,
        workers: args.workers,
        date: format!("{} {:02}:{:02} UTC", now.date(), now.hour(), now.minute()),
        command: command_line(),
        ..Report::default()
    };

    log(format!("generating {entries} entries ({} batches)", universe.batches()));
    let (bodies, census) = render_batches(&universe, &window);
    let subjects = Subjects::pick(&census, &universe);
    report.subjects.push(subjects.describe(&census, &window));
    let plan = Plan { args, target, universe, window, census, subjects };

    log(format!("fresh database for {}", plan.target.url()));
    plan.target.recreate()?;
    let server = Server::start(&bin, plan.target.url(), &secret, args.workers, work.path())?;
    let token = server::mint_token(&bin, &secret)?;
    let outcome = measure_server(&plan, &server, &token, bodies, &mut report);
    let outcome = outcome.map_err(|e| -> Error { format!("{e}\nserver log:\n{}", server.log_tail()).into() });
    server.stop();
    let (pages, questions) = outcome?;
    let Plan { target, universe, window, subjects, .. } = plan;
    let Subjects { ns, repo_ns, repo, performer, .. } = subjects;
    let rare = Universe::quay_kind_id(RARE_KIND).unwrap_or(0);

    // Quay's side.
    if let Target::Postgres { url, .. } = &target {
        let mut conn = PgConnection::establish(url)?;
        report.machine = machine(Some(database::postgres_description(&mut conn)));
        report.backend =
            format!("PostgreSQL {}", database::postgres_description(&mut conn).split_whitespace().nth(1).unwrap_or(""));
        log("loading the same rows into Quay's logentry3");
        let step = (entries / 10).max(1);
        let shown = std::cell::Cell::new(0u64);
        let loaded = quay::load(&mut conn, &universe, |n| {
            if n / step > shown.get() / step || n == entries {
                log(format!("logentry3: {n} of {entries} rows"));
                shown.set(n);
            }
        })?;
        report.quay_load = Some(loaded);
        let q = Queries { start: window.start(), end: window.end() };
        let list_runs = (args.requests / 5).clamp(20, 200);
        let agg_runs = (args.requests / 50).clamp(3, 20);
        report.quay_runs = (list_runs, agg_runs);
        let account = Universe::quay_account_id(ns);
        let repo_id = universe.quay_repository_id(repo_ns, repo);
        let performer_id = universe.quay_performer_id(ns, performer).unwrap_or(0);
        log("timing Quay's queries");
        let skip = (pages as i64) * 20;
        let mut quay_of = Vec::new();
        quay_of.push(q.list(&mut conn, Scope::Account(account), Filter::None, 0, list_runs)?.0);
        let keyset = q.list_keyset(&mut conn, account, skip, list_runs)?;
        quay_of.push(keyset.map(|k| k.0).unwrap_or_default());
        quay_of.push(q.list(&mut conn, Scope::Account(account), Filter::None, skip, list_runs)?.0);
        quay_of.push(q.list(&mut conn, Scope::Account(account), Filter::Performer(performer_id), 0, list_runs)?.0);
        quay_of.push(q.list(&mut conn, Scope::Account(account), Filter::Kind(rare), 0, list_runs)?.0);
        quay_of.push(q.list(&mut conn, Scope::Repository(repo_id), Filter::None, 0, list_runs)?.0);
        quay_of.push(q.list(&mut conn, Scope::Repository(repo_id), Filter::Kind(rare), 0, list_runs)?.0);
        quay_of.push(q.aggregate(&mut conn, Scope::Account(account), Filter::None, agg_runs)?.0);
        quay_of.push(q.aggregate(&mut conn, Scope::Repository(repo_id), Filter::None, agg_runs)?.0);
        quay_of.push(q.aggregate(&mut conn, Scope::Account(account), Filter::Performer(performer_id), agg_runs)?.0);
        for (question, quay) in questions.iter().zip(quay_of) {
            report.questions.push(Question { quay: Some(quay), ..question.clone() });
        }
        if let Some((_, k)) = keyset {
            report.notes.push(format!(
                "Quay's page {pages} is its keyset token (`datetime <= boundary … OFFSET {k}`), as Quay's database \
                 backend pages (reference §4); the row below it times a plain `OFFSET {skip}` instead."
            ));
        }
    } else {
        report.machine = machine(Some("SQLite (bundled with the server; WAL, synchronous=NORMAL)".into()));
        report.backend = "SQLite".into();
        report.questions = questions;
        report.notes.push("Quay comparison: n/a on SQLite (Quay's table is measured on PostgreSQL only).".into());
    }
    if pages < 500 {
        report.notes.push(format!(
            "Only {} pages exist in the window of this small data set: the \"page 500\" rows time page {pages} (after \
             {} entries).",
            pages + 1,
            pages * 20
        ));
    }
    report.database_bytes = target.size_bytes();
    if args.keep_database {
        report.notes.push(format!("Database kept: {}", target.url()));
    } else {
        target.remove()?;
    }
    report.total = started.elapsed();
    Ok(report)
}

/// Everything measured through the server; returns the pages followed and the questions.
fn measure_server(
    plan: &Plan<'_>,
    server: &Server,
    token: &str,
    bodies: Vec<load::Batch>,
    report: &mut Report,
) -> Result<(usize, Vec<Question>), Error> {
    let Plan { args, target, universe, window, census, subjects } = plan;
    let base = server.base.clone();
    std::thread::sleep(Duration::from_secs(1));
    let mut memory = MemoryReport { idle_start: server.memory().rss_kib, ..MemoryReport::default() };
    let sampler = RssSampler::start(server.pid);

    // Ingestion.
    let total = universe.entries;
    log(format!("ingesting {total} entries with {} senders", args.senders));
    let step = (total / 10).max(1);
    let ingested = load::ingest(&format!("{base}/api/v1/logs"), token, bodies, args.senders, |done| {
        if done / step != (done - (args.batch_size as u64).min(done)) / step {
            log(format!("ingested {done} of {total}"));
        }
    })?;
    log(format!("ingestion: {:.0} entries/s", ingested.rate()));
    report.ingest = Some(ingested);
    memory.peak_ingest = sampler.take();

    if let Target::Postgres { url, .. } = target {
        log("VACUUM ANALYZE, CHECKPOINT");
        let t = Instant::now();
        // The checkpoint writes ingestion's dirty pages now rather than during the timed questions.
        let mut conn = PgConnection::establish(url)?;
        conn.batch_execute("VACUUM ANALYZE")?;
        if let Err(e) = conn.batch_execute("CHECKPOINT") {
            log(format!("CHECKPOINT refused ({e}); timing without it"));
        }
        report.vacuum = Some(t.elapsed());
    }

    // The questions.
    let ns = &subjects.ns_name;
    let repo_path = &subjects.repo_path;
    let org_logs = format!("{base}/api/v1/organization/{ns}/logs");
    let params = window.params();
    let http = client()?;

    // Check the answers are real before timing them.
    let first: Value = get_json(http.get(&org_logs).bearer_auth(token).query(&params))?;
    let n_first = first["logs"].as_array().map_or(0, Vec::len);
    if n_first == 0 {
        return Err(format!("the first page of {ns} is empty: {first}").into());
    }
    let agg: Value =
        get_json(http.get(format!("{base}/api/v1/organization/{ns}/aggregatelogs")).bearer_auth(token).query(&params))?;
    let agg_total: i64 = agg["aggregated"].as_array().map_or(0, |a| a.iter().filter_map(|c| c["count"].as_i64()).sum());
    let expected = census.namespace_window.get(&subjects.ns).copied().unwrap_or(0);
    report.notes.push(format!(
        "Check: the namespace aggregate counts {agg_total} entries; the generator made {expected} in that window{}.",
        if agg_total as u64 == expected { " (equal)" } else { " — they DIFFER" }
    ));

    // Follow the tokens to page 500 once.
    log("following next_page to page 500");
    let mut token_500 = None;
    let mut page = first;
    let mut pages = 0;
    while pages < 500 {
        let Some(next) = page["next_page"].as_str().map(str::to_owned) else { break };
        let mut q = params.clone();
        q.push(("next_page", next.clone()));
        page = get_json(http.get(&org_logs).bearer_auth(token).query(&q))?;
        pages += 1;
        token_500 = Some(next);
    }
    let mut deep_params = params.clone();
    if let Some(t) = &token_500 {
        deep_params.push(("next_page", t.clone()));
    }

    let with = |extra: (&'static str, String)| {
        let mut q = params.clone();
        q.push(extra);
        q
    };
    let repo_logs = format!("{base}/api/v1/repository/{repo_path}/logs");
    let org_agg = format!("{base}/api/v1/organization/{ns}/aggregatelogs");
    let repo_agg = format!("{base}/api/v1/repository/{repo_path}/aggregatelogs");
    let deep_name =
        if pages == 500 { "org list, page 500".to_owned() } else { format!("org list, page 500 (page {pages} here)") };
    let performer = ("performer", subjects.performer_name.clone());
    /// A question: its name, URL and query parameters.
    type Asked<'a> = (String, &'a str, Vec<(&'static str, String)>);
    let asked: Vec<Asked<'_>> = vec![
        ("org list, first page".into(), &org_logs, params.clone()),
        (deep_name, &org_logs, deep_params),
        ("org list, by performer".into(), &org_logs, with(performer.clone())),
        ("org list, by a rare kind".into(), &org_logs, with(("kind", RARE_KIND.into()))),
        ("repository list, first page".into(), &repo_logs, params.clone()),
        ("repository list, by a rare kind".into(), &repo_logs, with(("kind", RARE_KIND.into()))),
        ("org aggregate, 31 days".into(), &org_agg, params.clone()),
        ("repository aggregate, 31 days".into(), &repo_agg, params.clone()),
        ("org aggregate by performer, 31 days".into(), &org_agg, with(performer)),
    ];
    let (clients, requests) = (args.clients, args.requests);
    // One untimed pass over every question first: the first requests after ingestion meet cold
    // connections and caches, which would otherwise land on whichever question is timed first.
    log("warm-up: every question, untimed");
    for (_, url, query) in &asked {
        load::measure(clients, (requests / 10).max(clients * 4), |c| c.get(*url).bearer_auth(token).query(query))?;
    }
    let mut questions = Vec::new();
    for (name, url, query) in asked {
        log(format!("timing: {name}"));
        let ours = load::measure(clients, requests, |c| c.get(url).bearer_auth(token).query(&query))?;
        questions.push(Question { name, ours, quay: None });
        if questions.len() == 2 {
            // The same request, compared with Quay's query written as a plain OFFSET.
            let deep = questions[1].clone();
            questions
                .push(Question { name: format!("org list, page 500, Quay as plain OFFSET {}", pages * 20), ..deep });
        }
    }
    memory.peak_queries = sampler.take();
    memory.peak_overall = server.memory().peak_kib;

    // Export.
    log("timing an export of the largest namespace's window");
    let reset = server.reset_peak();
    sampler.take();
    let requested = Instant::now();
    let created = send(
        http.post(format!("{base}/api/v1/organization/{ns}/exportlogs"))
            .bearer_auth(token)
            .query(&params)
            .json(&serde_json::json!({})),
        201,
    )?;
    let created: Value = serde_json::from_slice(&created)?;
    let id = created["export_id"].as_str().ok_or("no export_id")?.to_owned();
    let status_url = format!("{base}/api/v1/organization/{ns}/exportlogs/{id}");
    let status = loop {
        let s: Value = get_json(http.get(&status_url).bearer_auth(token))?;
        match s["status"].as_str() {
            Some("success") => break s,
            Some("queued" | "running") => std::thread::sleep(Duration::from_millis(10)),
            _ => return Err(format!("the export did not succeed: {s}").into()),
        }
        if requested.elapsed() > Duration::from_secs(3600) {
            return Err("the export took over an hour".into());
        }
    };
    let elapsed = requested.elapsed();
    let sampled = sampler.take();
    let hwm = server.memory().peak_kib;
    let peak_export = if reset { hwm.max(sampled) } else { sampled };
    memory.peak_export = peak_export;
    memory.peak_overall = memory.peak_overall.max(hwm).max(memory.peak_ingest);
    report.export = Some(Export { entries: status["entries"].as_u64().unwrap_or(0), elapsed, peak_kib: peak_export });
    std::thread::sleep(Duration::from_secs(2));
    let after = server.memory();
    (memory.idle_after, memory.idle_after_anon) = (after.rss_kib, after.anon_kib);
    report.memory = memory;
    Ok((pages, questions))
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(report) => {
            let previous = std::fs::read_to_string(&args.out).ok();
            let md = report::document(&report, previous.as_deref());
            println!("{}", report.markdown());
            if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
                let _ = std::fs::create_dir_all(dir);
            }
            if let Err(e) = std::fs::write(&args.out, md) {
                eprintln!("error: cannot write {}: {e}", args.out.display());
                return ExitCode::FAILURE;
            }
            log(format!("wrote {}", args.out.display()));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
