//! Test helpers, for this crate's tests and for other crates' (enable the `testing` feature):
//! a fresh database per test, on either backend.
//!
//! ```no_run
//! use usagelogs_store::testing::{self, TestDatabase};
//! use usagelogs_store::{Backend, LogStore};
//!
//! let db: TestDatabase = testing::test_database(Backend::Postgres); // or Backend::Sqlite
//! let store = db.store(); // a DieselStore on that database, migrated
//! assert!(store.ping().is_ok());
//! // Dropping `db` deletes the database (PostgreSQL) or its folder (SQLite).
//! ```
//!
//! PostgreSQL databases are created on the server named by `USAGELOGS_TEST_POSTGRES_URL`
//! (default [`DEFAULT_POSTGRES_URL`]); the role needs `CREATEDB`. When that server cannot be
//! reached the helper panics with instructions: tests fail, they never skip.

use crate::{Backend, DieselStore, StoreOptions};
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tempfile::TempDir;

/// The environment variable naming the PostgreSQL server for tests (an admin URL: its role
/// creates and drops databases).
pub const POSTGRES_URL_VAR: &str = "USAGELOGS_TEST_POSTGRES_URL";

/// The server tests use when [`POSTGRES_URL_VAR`] is unset.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Options for test stores: a small pool, short timeouts.
pub fn test_options() -> StoreOptions {
    StoreOptions { max_connections: 8, connect_timeout: Duration::from_secs(5) }
}

/// The `sqlite://` URL of a database file named `logs.db` in `dir`.
pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("logs.db").display())
}

/// A database that exists for one test: a SQLite file in a temporary folder, or a PostgreSQL
/// database with a unique name. Dropping it deletes it.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    backend: Backend,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    /// Deleted with the folder.
    Sqlite(#[allow(dead_code)] TempDir),
    /// `DROP DATABASE name` on the admin URL.
    Postgres { admin_url: String, name: String },
}

impl TestDatabase {
    /// The database URL, for [`DieselStore::connect`] or a server's configuration.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The backend of this database.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A store on this database (migrated), with [`test_options`].
    ///
    /// # Panics
    /// When the store cannot connect.
    pub fn store(&self) -> DieselStore {
        DieselStore::connect(&self.url, test_options())
            .unwrap_or_else(|e| panic!("cannot open the {} test database: {e}", self.backend))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup {
            // FORCE (PostgreSQL 13+) ends connections still open, such as a pool's.
            let result = PgConnection::establish(admin_url).map_err(|e| e.to_string()).and_then(|mut c| {
                c.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).map_err(|e| e.to_string())
            });
            if let Err(e) = result {
                eprintln!("warning: could not drop test database {name}: {e}");
            }
        }
    }
}

/// A fresh database on `backend`.
pub fn test_database(backend: Backend) -> TestDatabase {
    match backend {
        Backend::Sqlite => sqlite_test_database(),
        Backend::Postgres => postgres_test_database(),
    }
}

/// A fresh SQLite database file in a new temporary folder.
///
/// # Panics
/// When no temporary folder can be created.
pub fn sqlite_test_database() -> TestDatabase {
    let dir = tempfile::Builder::new()
        .prefix("usagelogs-test-")
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create a temporary folder: {e}"));
    TestDatabase { url: sqlite_url(dir.path()), backend: Backend::Sqlite, cleanup: Cleanup::Sqlite(dir) }
}

/// The admin URL of the PostgreSQL server for tests.
pub fn postgres_admin_url() -> String {
    std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// A fresh, uniquely named PostgreSQL database on the test server, dropped with the returned
/// value. Nothing is migrated yet ([`TestDatabase::store`] migrates).
///
/// # Panics
/// When the server cannot be reached or refuses to create the database: PostgreSQL tests fail
/// rather than skip.
pub fn postgres_test_database() -> TestDatabase {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let admin_url = postgres_admin_url();
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let name = format!("usagelogs_test_{}_{}_{nanos:09}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    let mut admin = PgConnection::establish(&admin_url).unwrap_or_else(|e| {
        panic!(
            "PostgreSQL tests need a server, and {admin_url} cannot be reached: {}\n\
             Start one (e.g. `pg_ctlcluster 15 main start`, or `docker run -d -p 5432:5432 \
             -e POSTGRES_HOST_AUTH_METHOD=trust postgres:15`) or point {POSTGRES_URL_VAR} at \
             a server whose role may create databases.",
            e.to_string().trim_end()
        )
    });
    admin
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .unwrap_or_else(|e| panic!("cannot create test database {name} on {admin_url}: {e}"));
    TestDatabase {
        url: with_database(&admin_url, &name),
        backend: Backend::Postgres,
        cleanup: Cleanup::Postgres { admin_url, name },
    }
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..].find('/').map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(with_database("postgres://u:p@h/db?sslmode=disable", "t1"), "postgres://u:p@h/t1?sslmode=disable");
        assert_eq!(with_database("postgres://h", "t1"), "postgres://h/t1");
    }
}
