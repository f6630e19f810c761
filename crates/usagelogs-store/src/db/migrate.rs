//! The embedded migrations of both dialects.

use super::conn::{AnyConnection, Target};
use crate::StoreError;
use diesel::connection::SimpleConnection;
use diesel::migration::MigrationVersion;
use diesel::{PgConnection, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Key of the PostgreSQL advisory lock held while migrating, so that several servers starting
/// at once do not race ("usagelogs" in ASCII).
const PG_MIGRATION_LOCK: i64 = 0x7573_6167_656c_6f67;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn versions(applied: Vec<MigrationVersion<'_>>) -> Vec<String> {
    applied.into_iter().map(|v| v.to_string()).collect()
}

fn migration_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Migration(e.to_string())
}

/// Runs `f` with the migration lock held: `BEGIN IMMEDIATE` on SQLite, an advisory lock on
/// PostgreSQL.
fn locked<T>(
    conn: &mut AnyConnection,
    sqlite: impl FnOnce(&mut SqliteConnection) -> Result<T, BoxError>,
    pg: impl FnOnce(&mut PgConnection) -> Result<T, BoxError>,
) -> Result<T, StoreError> {
    match conn {
        AnyConnection::Sqlite(c) => c.immediate_transaction::<_, BoxError, _>(|c| sqlite(c)).map_err(migration_error),
        AnyConnection::Postgres(c) => {
            c.batch_execute(&format!("SELECT pg_advisory_lock({PG_MIGRATION_LOCK})")).map_err(migration_error)?;
            let result = pg(c);
            let unlock = c.batch_execute(&format!("SELECT pg_advisory_unlock({PG_MIGRATION_LOCK})"));
            let value = result.map_err(migration_error)?;
            unlock.map_err(migration_error)?;
            Ok(value)
        }
    }
}

/// Applies pending migrations on an open connection; returns the versions applied.
pub(crate) fn run_pending(conn: &mut AnyConnection) -> Result<Vec<String>, StoreError> {
    locked(
        conn,
        |c| Ok(versions(c.run_pending_migrations(SQLITE)?)),
        |c| Ok(versions(c.run_pending_migrations(POSTGRES)?)),
    )
}

/// Reverts every applied migration on an open connection; returns the versions reverted.
pub(crate) fn revert_all(conn: &mut AnyConnection) -> Result<Vec<String>, StoreError> {
    locked(
        conn,
        |c| Ok(versions(c.revert_all_migrations(SQLITE)?)),
        |c| Ok(versions(c.revert_all_migrations(POSTGRES)?)),
    )
}

/// Opens one connection to `url` (no pool), mapping failures as `connect` does.
pub(crate) fn open(url: &str) -> Result<AnyConnection, StoreError> {
    let target = Target::parse(url, super::StoreOptions::default().connect_timeout)?;
    target.connect().map_err(|e| StoreError::Unavailable(e.0))
}
