//! Bad URLs and unreachable servers are clear errors.

use std::process::Command;
use usagelogs_store::testing::{DEFAULT_POSTGRES_URL_VAR, POSTGRES_URL_VAR, sqlite_url, test_options};
use usagelogs_store::{DieselStore, StoreError};

#[test]
fn unknown_scheme_is_invalid() {
    for url in ["mysql://root@localhost/logs", "logs.db", "sqlite:", "http://example.com"] {
        match DieselStore::connect(url, test_options()) {
            Err(StoreError::InvalidUrl(msg)) => {
                assert!(msg.contains("sqlite://") || msg.contains("scheme"), "{msg}")
            }
            other => panic!("{url}: {other:?}"),
        }
    }
}

#[test]
fn missing_sqlite_folder_is_invalid_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no").join("such");
    let url = sqlite_url(&missing);
    match DieselStore::connect(&url, test_options()) {
        Err(StoreError::InvalidUrl(msg)) => {
            assert!(msg.contains("does not exist"), "{msg}");
            assert!(msg.contains(&missing.display().to_string()), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!dir.path().join("no").exists(), "no folder may be created");
}

#[test]
fn relative_sqlite_path_in_existing_folder_works() {
    let dir = tempfile::tempdir().unwrap();
    // The temporary folder, spelled relative to the current folder.
    let cwd = std::env::current_dir().unwrap();
    let up = "../".repeat(cwd.components().count().saturating_sub(1));
    let relative = format!("{up}{}", dir.path().display().to_string().trim_start_matches('/'));
    assert!(!relative.starts_with('/'));
    let store = DieselStore::connect(&format!("sqlite://{relative}/logs.db"), test_options()).unwrap();
    usagelogs_store::LogStore::ping(&store).unwrap();
    assert!(dir.path().join("logs.db").exists());
}

#[test]
fn unreachable_postgres_is_unavailable_with_the_real_message() {
    match DieselStore::connect("postgres://postgres@127.0.0.1:1/postgres", test_options()) {
        Err(StoreError::Unavailable(msg)) => {
            assert!(msg.contains("127.0.0.1") && msg.to_lowercase().contains("refused"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
}

/// With no server named and none answering at the default address, the PostgreSQL tests still
/// run: on the throwaway cluster the helpers start from the installed binaries. Runs two
/// PostgreSQL tests of this binary in a child process whose default address is a closed port.
/// Ignored by default because it starts (or reuses) a cluster on port 54329 that keeps running.
#[test]
#[ignore = "starts a throwaway PostgreSQL cluster on port 54329 that keeps running"]
fn fallback_cluster_serves_the_tests_when_no_server_answers() {
    let tests = ["jobs::postgres::claim_is_exclusive", "migrations::postgres::up_down_up"];
    let out = Command::new(std::env::current_exe().unwrap())
        .args(tests)
        .args(["--exact", "--test-threads", "2"])
        .env_remove(POSTGRES_URL_VAR)
        .env(DEFAULT_POSTGRES_URL_VAR, "postgres://postgres@127.0.0.1:1/postgres")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("test result: ok. 2 passed"), "{stdout}");
}
