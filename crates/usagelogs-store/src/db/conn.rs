//! Connections: the URL, the [`AnyConnection`] enum over both dialects, and the r2d2 manager
//! that opens them (keeping the driver's own error message) with SQLite's pragmas.

use crate::StoreError;
use diesel::connection::SimpleConnection;
use diesel::r2d2::R2D2Connection;
use diesel::{Connection, PgConnection, SqliteConnection};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One database connection, to either dialect. Portable queries go through it directly;
/// dialect-specific statements match on the variant and run on the concrete connection.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    /// A SQLite database file.
    Sqlite(SqliteConnection),
    /// A PostgreSQL database.
    Postgres(PgConnection),
}

/// The database engine behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// SQLite, one file (`sqlite://PATH`).
    Sqlite,
    /// PostgreSQL (`postgres://…` or `postgresql://…`).
    Postgres,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        })
    }
}

/// SQLite settings applied to every connection. `busy_timeout` comes first: switching to WAL
/// needs a lock that another connection may hold for a moment.
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 15000;
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;
PRAGMA temp_store = MEMORY;
PRAGMA cache_size = -4000;
PRAGMA analysis_limit = 1000;
PRAGMA optimize = 0x10002;";

/// Where to connect, parsed from the database URL.
#[derive(Clone)]
pub(crate) enum Target {
    Sqlite(PathBuf),
    /// The libpq connection URL (with a `connect_timeout` added when it had none).
    Postgres(String),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a PostgreSQL URL: it may carry a password.
        match self {
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Self::Postgres(_) => f.write_str("Postgres(..)"),
        }
    }
}

impl Target {
    /// Parses a database URL: `sqlite://PATH`, `postgres://…` or `postgresql://…`.
    pub(crate) fn parse(url: &str, connect_timeout: Duration) -> Result<Self, StoreError> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(StoreError::InvalidUrl(
                "expected sqlite://PATH or postgres://USER@HOST/DATABASE (no scheme found)".into(),
            ));
        };
        match scheme {
            "sqlite" => Self::sqlite(rest),
            "postgres" | "postgresql" => Ok(Self::Postgres(with_connect_timeout(url, connect_timeout))),
            other => Err(StoreError::InvalidUrl(format!(
                "unsupported scheme '{}': expected sqlite:// or postgres://",
                other.chars().take(32).collect::<String>()
            ))),
        }
    }

    fn sqlite(path: &str) -> Result<Self, StoreError> {
        if path.is_empty() {
            return Err(StoreError::InvalidUrl("sqlite:// needs a file path, as in sqlite://data/logs.db".into()));
        }
        if path == ":memory:" || path.starts_with("file:") {
            return Err(StoreError::InvalidUrl(format!(
                "sqlite://{path} is not supported: give the path of a database file"
            )));
        }
        let path = PathBuf::from(path);
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if !folder.is_dir() {
            return Err(StoreError::InvalidUrl(format!(
                "the folder '{}' of SQLite database '{}' does not exist (create it first)",
                folder.display(),
                path.display()
            )));
        }
        if path.is_dir() {
            return Err(StoreError::InvalidUrl(format!(
                "'{}' is a folder, not a SQLite database file",
                path.display()
            )));
        }
        Ok(Self::Sqlite(path))
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// Opens one connection, ready to use.
    pub(crate) fn connect(&self) -> Result<AnyConnection, ConnectError> {
        match self {
            Self::Sqlite(path) => {
                let path = path.to_str().ok_or_else(|| ConnectError("the SQLite path is not valid UTF-8".into()))?;
                let mut conn = SqliteConnection::establish(path).map_err(|e| ConnectError(e.to_string()))?;
                conn.batch_execute(SQLITE_PRAGMAS)
                    .map_err(|e| ConnectError(format!("setting SQLite pragmas on '{path}': {e}")))?;
                Ok(AnyConnection::Sqlite(conn))
            }
            Self::Postgres(url) => {
                let conn =
                    PgConnection::establish(url).map_err(|e| ConnectError(e.to_string().trim_end().to_owned()))?;
                Ok(AnyConnection::Postgres(conn))
            }
        }
    }
}

/// Adds libpq's `connect_timeout` (whole seconds, at least 2) unless the URL sets one.
pub(crate) fn with_connect_timeout(url: &str, timeout: Duration) -> String {
    if url.contains("connect_timeout=") {
        return url.to_owned();
    }
    let secs = timeout.as_secs().max(2);
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}connect_timeout={secs}")
}

/// Why a connection could not be opened: the driver's message, unchanged.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ConnectError(pub(crate) String);

/// The r2d2 manager of [`AnyConnection`]s.
#[derive(Debug)]
pub(crate) struct Manager {
    pub(crate) target: Target,
}

impl r2d2::ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = ConnectError;

    fn connect(&self) -> Result<AnyConnection, ConnectError> {
        self.target.connect()
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), ConnectError> {
        let result = match conn {
            AnyConnection::Sqlite(c) => c.ping(),
            AnyConnection::Postgres(c) => c.ping(),
        };
        result.map_err(|e| ConnectError(e.to_string()))
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        std::thread::panicking()
            || match conn {
                AnyConnection::Sqlite(c) => c.is_broken(),
                AnyConnection::Postgres(c) => c.is_broken(),
            }
    }
}

/// Sends the pool's connection errors to the log (r2d2 would use the `log` crate).
#[derive(Debug)]
pub(crate) struct TracingErrors;

impl r2d2::HandleError<ConnectError> for TracingErrors {
    fn handle_error(&self, error: ConnectError) {
        tracing::warn!(error = %error, "database connection failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_timeout_is_added_once() {
        let t = Duration::from_secs(5);
        assert_eq!(with_connect_timeout("postgres://h/db", t), "postgres://h/db?connect_timeout=5");
        assert_eq!(
            with_connect_timeout("postgres://h/db?sslmode=disable", t),
            "postgres://h/db?sslmode=disable&connect_timeout=5"
        );
        assert_eq!(with_connect_timeout("postgres://h/db?connect_timeout=9", t), "postgres://h/db?connect_timeout=9");
        assert_eq!(
            with_connect_timeout("postgres://h/db", Duration::from_millis(10)),
            "postgres://h/db?connect_timeout=2"
        );
    }

    #[test]
    fn targets() {
        let t = Duration::from_secs(5);
        assert!(matches!(Target::parse("sqlite://logs.db", t), Ok(Target::Sqlite(_))));
        assert!(matches!(Target::parse("postgresql://h/db", t), Ok(Target::Postgres(_))));
        assert!(matches!(Target::parse("mysql://h/db", t), Err(StoreError::InvalidUrl(m)) if m.contains("mysql")));
        assert!(matches!(Target::parse("logs.db", t), Err(StoreError::InvalidUrl(_))));
        assert!(matches!(Target::parse("sqlite://", t), Err(StoreError::InvalidUrl(_))));
        assert!(matches!(Target::parse("sqlite://:memory:", t), Err(StoreError::InvalidUrl(_))));
        assert_eq!(format!("{:?}", Target::parse("postgres://u:secret@h/db", t).unwrap()), "Postgres(..)");
    }
}
