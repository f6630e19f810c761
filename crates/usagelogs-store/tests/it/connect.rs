//! Bad URLs and unreachable servers are clear errors.

use usagelogs_store::testing::{sqlite_url, test_options};
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
