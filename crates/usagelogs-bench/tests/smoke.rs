//! The harness end to end with a tiny data set, on SQLite and on PostgreSQL, so it never rots.
//!
//! The harness drives the real `usagelogs` binary. Cargo only tells a crate's tests where that
//! crate's own binaries are, so the server binary is looked up next to this test's executable
//! (`target/<profile>/usagelogs`) and built with `cargo build -p usagelogs` when it is missing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

const BENCH: &str = env!("CARGO_BIN_EXE_usagelogs-bench");

const QUESTIONS: [&str; 8] = [
    "org list, first page",
    "org list, page 500",
    "org list, page 500, Quay as plain OFFSET",
    "org list, by performer",
    "org list, by a rare kind",
    "repository list, first page",
    "org aggregate, 31 days",
    "repository aggregate, 31 days",
];

/// `target/<profile>/usagelogs`, built if missing.
fn server_binary() -> PathBuf {
    // This test runs from target/<profile>/deps/.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
    let bin = profile_dir.join(format!("usagelogs{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev".to_owned(),
            Some(other) => other.to_owned(),
        };
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "usagelogs", "--profile", &profile])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cannot build the usagelogs binary");
    }
    assert!(bin.is_file(), "no usagelogs binary at {}", bin.display());
    bin
}

/// Runs the harness with a tiny N and returns the report it wrote.
fn smoke(database_url: &str, out_dir: &Path) -> String {
    let out = out_dir.join("BENCHMARKS.md");
    let run = Command::new(BENCH)
        .args(["--database-url", database_url, "--entries", "5000", "--requests", "50", "--clients", "4"])
        .arg("--server-bin")
        .arg(server_binary())
        .arg("--out")
        .arg(&out)
        .output()
        .expect("the harness runs");
    assert!(
        run.status.success(),
        "the harness failed:\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    std::fs::read_to_string(&out).expect("the harness wrote its report")
}

/// The table row of `question`, split into cells.
fn row<'a>(report: &'a str, question: &str) -> Vec<&'a str> {
    report
        .lines()
        .find(|l| l.starts_with(&format!("| {question}")))
        .unwrap_or_else(|| panic!("no row for {question:?} in:\n{report}"))
        .trim_matches('|')
        .split('|')
        .map(str::trim)
        .collect()
}

fn is_ms(cell: &str) -> bool {
    cell.strip_suffix(" ms").is_some_and(|n| n.parse::<f64>().is_ok_and(|v| v > 0.0))
}

fn assert_complete(report: &str, with_quay: bool) {
    for q in QUESTIONS {
        let cells = row(report, q);
        assert_eq!(cells.len(), 5, "{cells:?}");
        assert!(is_ms(cells[1]) && is_ms(cells[2]), "our p50/p99 of {q}: {cells:?}");
        if with_quay {
            assert!(is_ms(cells[3]), "Quay's time of {q}: {cells:?}");
            assert!(cells[4].ends_with('×'), "ratio of {q}: {cells:?}");
        } else {
            assert_eq!(&cells[3..], ["n/a", "n/a"], "{q}");
        }
    }
    for line in ["**Ingestion:**", "**Export:**", "**Server memory (RSS):**", "### Machine", "### Command"] {
        assert!(report.contains(line), "{line} missing from:\n{report}");
    }
    assert!(report.contains("(equal)"), "the aggregate counts what was generated:\n{report}");
}

#[test]
fn smoke_run_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let report = smoke(&url, dir.path());
    assert_complete(&report, false);
    assert!(report.contains("on SQLite"));
}

#[test]
fn smoke_run_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    let name = format!("usagelogs_bench_smoke_{}_{nanos}", std::process::id());
    let admin = usagelogs_store::testing::postgres_admin_url();
    let (base, _) = admin.rsplit_once('/').expect("the admin URL names a database");
    // The harness drops and re-creates this database itself, and drops it at the end.
    let report = smoke(&format!("{base}/{name}"), dir.path());
    assert_complete(&report, true);
    assert!(report.contains("on PostgreSQL"));
}
