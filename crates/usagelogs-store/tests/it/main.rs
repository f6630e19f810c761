//! The store test suite. Every test in the modules below runs twice, on SQLite and on
//! PostgreSQL (a fresh database each), through `both_backends!`.

/// Generates `mod sqlite` and `mod postgres`, each with one `#[test]` per named function of the
/// enclosing module (`fn name(backend: Backend)`); attributes
/// such as `#[ignore]` may precede a name.
macro_rules! both_backends {
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] $(#[$attr])* fn $name() { super::$name(usagelogs_store::Backend::Sqlite) })*
        }
        mod postgres {
            $(#[test] $(#[$attr])* fn $name() { super::$name(usagelogs_store::Backend::Postgres) })*
        }
    };
}

mod aggregate;
mod batches;
mod common;
mod concurrency;
mod connect;
mod idempotency;
mod jobs;
mod migrations;
mod paging;
mod partitions;
mod retention;
mod throughput;
