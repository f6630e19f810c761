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
//! # Which PostgreSQL server
//!
//! PostgreSQL databases are created on the server named by `USAGELOGS_TEST_POSTGRES_URL`
//! ([`POSTGRES_URL_VAR`]); its role needs `CREATEDB`. When that variable is unset:
//!
//! 1. the default server [`DEFAULT_POSTGRES_URL`] (127.0.0.1:5432) is used if it answers;
//! 2. otherwise a throwaway cluster is started from the installed PostgreSQL binaries and used:
//!    `initdb` and `pg_ctl` from the newest `/usr/lib/postgresql/*/bin`, else `pg_config
//!    --bindir`, else `PATH`. Its data and log live in `<temp>/usagelogs-test-pg` (`<temp>` is
//!    [`std::env::temp_dir`]); it listens on 127.0.0.1 port [`LOCAL_CLUSTER_PORT`] and on a
//!    socket in that folder, trusts local connections as role `postgres`, and runs with
//!    `fsync=off`. It is started once per machine: test processes take an exclusive lock on
//!    `<temp>/usagelogs-test-pg.lock` while they look for it or start it, so concurrent
//!    processes share one cluster, and it keeps running after the tests (later runs reuse it;
//!    stop it with `pg_ctl -D <temp>/usagelogs-test-pg/data stop`). As root, `initdb` and
//!    `pg_ctl` run as user `postgres` through `runuser` (PostgreSQL refuses to run as root).
//!
//! The choice is made once per process. When no server can be had — the named server does not
//! answer, or no binaries are installed to start one — the helpers panic with instructions:
//! PostgreSQL tests fail, they never skip.

use crate::{Backend, DieselStore, StoreOptions};
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tempfile::TempDir;

/// The environment variable naming the PostgreSQL server for tests (an admin URL: its role
/// creates and drops databases).
pub const POSTGRES_URL_VAR: &str = "USAGELOGS_TEST_POSTGRES_URL";

/// The server tests use when [`POSTGRES_URL_VAR`] is unset, if it answers.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Internal, for testing the fallback: replaces [`DEFAULT_POSTGRES_URL`] (e.g. with a closed
/// port, to make the helpers start their own cluster while a server runs on 5432).
#[doc(hidden)]
pub const DEFAULT_POSTGRES_URL_VAR: &str = "USAGELOGS_TEST_POSTGRES_DEFAULT_URL";

/// The TCP port of the throwaway cluster the helpers start when no server answers.
pub const LOCAL_CLUSTER_PORT: u16 = 54329;

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

    /// PostgreSQL only: makes the database unreachable, as an outage would — ends every
    /// connection to it and refuses new ones — until [`TestDatabase::end_outage`].
    ///
    /// # Panics
    /// On SQLite, or when the server refuses.
    pub fn begin_outage(&self) {
        self.admin(|name| {
            format!(
                "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false; \
                 SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}';"
            )
        });
    }

    /// PostgreSQL only: accepts connections again after [`TestDatabase::begin_outage`].
    ///
    /// # Panics
    /// On SQLite, or when the server refuses.
    pub fn end_outage(&self) {
        self.admin(|name| format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true;"));
    }

    fn admin(&self, sql: impl FnOnce(&str) -> String) {
        let Cleanup::Postgres { admin_url, name } = &self.cleanup else {
            panic!("outages are simulated on PostgreSQL only");
        };
        let mut admin = PgConnection::establish(admin_url).unwrap_or_else(|e| panic!("admin connection: {e}"));
        admin.batch_execute(&sql(name)).unwrap_or_else(|e| panic!("admin statement: {e}"));
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

/// The admin URL of the PostgreSQL server for tests: [`POSTGRES_URL_VAR`] when set, else the
/// default server when it answers, else a throwaway local cluster, started if needed (see the
/// [module documentation](self)). Decided once per process.
///
/// # Panics
/// When the variable is unset, the default server does not answer and no cluster can be
/// started (no PostgreSQL binaries installed, or they fail).
pub fn postgres_admin_url() -> String {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    match URL.get_or_init(choose_admin_url) {
        Ok(url) => url.clone(),
        Err(why) => panic!("{why}"),
    }
}

fn choose_admin_url() -> Result<String, String> {
    if let Some(url) = std::env::var(POSTGRES_URL_VAR).ok().filter(|u| !u.is_empty()) {
        return Ok(url);
    }
    let default =
        std::env::var(DEFAULT_POSTGRES_URL_VAR).ok().filter(|u| !u.is_empty()).unwrap_or(DEFAULT_POSTGRES_URL.into());
    match answers(&default) {
        Ok(()) => Ok(default),
        Err(why) => cluster::url().map_err(|e| {
            format!(
                "PostgreSQL tests need a server. {POSTGRES_URL_VAR} is unset, {default} does not answer \
                 ({why}), and no throwaway cluster could be started: {e}"
            )
        }),
    }
}

/// Whether a connection to `url` opens (within a few seconds).
fn answers(url: &str) -> Result<(), String> {
    let url = crate::db::conn::with_connect_timeout(url, Duration::from_secs(3));
    PgConnection::establish(&url).map(drop).map_err(|e| e.to_string().trim_end().to_owned())
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
             Start it, point {POSTGRES_URL_VAR} at a server whose role may create databases, or \
             unset {POSTGRES_URL_VAR} to let the tests start their own from the installed \
             PostgreSQL binaries.",
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

/// The throwaway local cluster (see the module documentation).
mod cluster {
    use super::{LOCAL_CLUSTER_PORT, answers};
    use std::ffi::OsString;
    use std::fs::{self, OpenOptions};
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    /// The cluster's admin URL, after starting the cluster if it does not answer.
    pub(super) fn url() -> Result<String, String> {
        let url = format!("postgres://postgres@127.0.0.1:{LOCAL_CLUSTER_PORT}/postgres");
        let base = std::env::temp_dir().join("usagelogs-test-pg");
        let lock_path = std::env::temp_dir().join("usagelogs-test-pg.lock");
        // One process at a time looks for the cluster and starts it; the others wait here,
        // then find it answering. The lock is released when `lock` is dropped.
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
        lock.lock().map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
        if answers(&url).is_ok() {
            return Ok(url);
        }
        start(&base)?;
        answers(&url).map_err(|e| {
            format!("the cluster in {} was started but {url} does not answer: {e}{}", base.display(), log_tail(&base))
        })?;
        drop(lock);
        Ok(url)
    }

    /// Creates the cluster in `base/data` unless it exists, then starts it.
    fn start(base: &Path) -> Result<(), String> {
        let bin = bin_dir().ok_or_else(|| {
            "no PostgreSQL binaries (initdb and pg_ctl) were found in /usr/lib/postgresql/*/bin, \
             `pg_config --bindir` or PATH. Install PostgreSQL (Debian/Ubuntu: `apt-get install \
             postgresql`), or set USAGELOGS_TEST_POSTGRES_URL to a server whose role may create \
             databases."
                .to_owned()
        })?;
        fs::create_dir_all(base).map_err(|e| format!("cannot create {}: {e}", base.display()))?;
        let as_postgres = is_root();
        if as_postgres {
            // PostgreSQL refuses to run as root: the cluster belongs to user postgres.
            let status = Command::new("chown")
                .arg("-R")
                .arg("postgres")
                .arg(base)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run chown: {e}"))?;
            if !status.status.success() {
                return Err(format!(
                    "running as root, and `chown -R postgres {}` failed (is there a user postgres?): {}",
                    base.display(),
                    String::from_utf8_lossy(&status.stderr).trim_end()
                ));
            }
        }
        let data = base.join("data");
        if !data.join("PG_VERSION").is_file() {
            if data.exists() {
                // Left over by an initdb that did not finish.
                fs::remove_dir_all(&data).map_err(|e| format!("cannot remove {}: {e}", data.display()))?;
            }
            run(
                &bin.join("initdb"),
                &["-D".into(), data.clone().into(), "-A".into(), "trust".into(), "-U".into(), "postgres".into()],
                &["-E", "UTF8", "--no-locale", "--no-sync"],
                base,
                as_postgres,
            )?;
        }
        let options =
            format!("-p {LOCAL_CLUSTER_PORT} -k '{}' -c listen_addresses=127.0.0.1 -c fsync=off", base.display());
        run(
            &bin.join("pg_ctl"),
            &["-D".into(), data.into(), "-o".into(), options.into(), "-l".into(), base.join("log").into()],
            &["-w", "start"],
            base,
            as_postgres,
        )
        .map_err(|e| format!("{e}{}", log_tail(base)))
    }

    /// Runs a PostgreSQL program (as user postgres through `runuser` when `as_postgres`).
    fn run(program: &Path, args: &[OsString], flags: &[&str], cwd: &Path, as_postgres: bool) -> Result<(), String> {
        let mut command = if as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        command.args(args).args(flags).current_dir(cwd).stdin(Stdio::null());
        let out = command.output().map_err(|e| format!("cannot run {command:?}: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        Err(format!(
            "{command:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim_end(),
            String::from_utf8_lossy(&out.stderr).trim_end()
        ))
    }

    /// The last lines of the cluster's log, for error messages.
    fn log_tail(base: &Path) -> String {
        let log = fs::read_to_string(base.join("log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n");
        if tail.is_empty() { String::new() } else { format!("\nlast lines of {}:\n{tail}", base.join("log").display()) }
    }

    /// Whether this process runs as root (`id -u` prints 0).
    fn is_root() -> bool {
        Command::new("id")
            .arg("-u")
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|out| out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "0")
    }

    fn has_programs(dir: &Path) -> bool {
        dir.join("initdb").is_file() && dir.join("pg_ctl").is_file()
    }

    /// The folder holding `initdb` and `pg_ctl`: the newest `/usr/lib/postgresql/*/bin`
    /// (Debian, Ubuntu), else `pg_config --bindir`, else the first on `PATH`.
    fn bin_dir() -> Option<PathBuf> {
        newest_versioned(Path::new("/usr/lib/postgresql"))
            .or_else(|| {
                let out = Command::new("pg_config").arg("--bindir").stdin(Stdio::null()).output().ok()?;
                let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
                (out.status.success() && has_programs(&dir)).then_some(dir)
            })
            .or_else(|| std::env::split_paths(&std::env::var_os("PATH")?).find(|d| has_programs(d)))
    }

    /// `root/<version>/bin` of the highest version (`15`, `9.6`) that has the programs.
    pub(super) fn newest_versioned(root: &Path) -> Option<PathBuf> {
        let mut found: Vec<(Vec<u32>, PathBuf)> = fs::read_dir(root)
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let version = name.split('.').map(|p| p.parse::<u32>().ok()).collect::<Option<Vec<u32>>>()?;
                let bin = entry.path().join("bin");
                has_programs(&bin).then_some((version, bin))
            })
            .collect();
        found.sort();
        found.pop().map(|(_, bin)| bin)
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
    use super::cluster::newest_versioned;
    use super::with_database;
    use std::fs;

    #[test]
    fn newest_postgresql_with_programs_is_chosen() {
        let root = tempfile::tempdir().unwrap();
        for (version, programs) in [("9.6", true), ("13", true), ("15", true), ("16", false), ("notes", true)] {
            let bin = root.path().join(version).join("bin");
            fs::create_dir_all(&bin).unwrap();
            if programs {
                fs::write(bin.join("initdb"), "").unwrap();
                fs::write(bin.join("pg_ctl"), "").unwrap();
            }
        }
        assert_eq!(newest_versioned(root.path()), Some(root.path().join("15").join("bin")));
        assert_eq!(newest_versioned(&root.path().join("missing")), None);
    }

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

/// Python test tools (an S3-compatible server, an SMTP sink) that the suites run on loopback.
///
/// [`python_tool`] finds a tool's executable on `PATH`; when it is missing it installs the tool
/// with `pip` into one virtual environment under the system's temporary folder
/// (`usagelogs-test-tools`), once per machine (a file lock keeps concurrent test processes from
/// installing twice), so `cargo test --workspace` needs only `python3` and the package index.
/// When that fails too the test fails with the reason: tests never skip.
pub mod tools {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    fn on_path(name: &str) -> Option<PathBuf> {
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    }

    fn venv() -> PathBuf {
        std::env::temp_dir().join("usagelogs-test-tools")
    }

    fn run(cmd: &mut Command) -> Result<(), String> {
        let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim()))
        }
    }

    /// Installs `packages` into the shared virtual environment (under a lock) unless `ready`
    /// already holds there.
    fn install(packages: &[&str], ready: impl Fn(&Path) -> bool) -> Result<PathBuf, String> {
        let dir = venv();
        let lock_path = dir.with_extension("lock");
        let lock = std::fs::File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
        lock.lock().map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
        if !ready(&dir) {
            if !dir.join("bin/python").is_file() {
                run(Command::new("python3").arg("-m").arg("venv").arg(&dir))?;
            }
            run(Command::new(dir.join("bin/python")).args(["-m", "pip", "install", "-q"]).args(packages))?;
        }
        Ok(dir)
    }

    /// The executable `name`, installing the pip `package` that provides it when it is not on
    /// `PATH`.
    ///
    /// # Panics
    /// When it is neither on `PATH` nor installable.
    pub fn python_tool(name: &str, package: &str) -> PathBuf {
        if let Some(p) = on_path(name) {
            return p;
        }
        install(&[package], |dir| dir.join("bin").join(name).is_file())
            .map(|dir| dir.join("bin").join(name))
            .unwrap_or_else(|e| panic!("the tests need `{name}` (pip package {package}); installing it failed: {e}"))
    }

    /// A Python interpreter that can import `module`: the system's, or the shared virtual
    /// environment's after installing the pip `package`.
    ///
    /// # Panics
    /// When no interpreter has it and it cannot be installed.
    pub fn python_with(module: &str, package: &str) -> PathBuf {
        let imports = |python: &Path| {
            Command::new(python).args(["-c", &format!("import {module}")]).output().is_ok_and(|o| o.status.success())
        };
        for python in ["/usr/bin/python3", "python3"] {
            if imports(Path::new(python)) {
                return PathBuf::from(python);
            }
        }
        install(&[package], |dir| imports(&dir.join("bin/python")))
            .map(|dir| dir.join("bin/python"))
            .unwrap_or_else(|e| panic!("the tests need the Python module {module}; installing {package} failed: {e}"))
    }
}
