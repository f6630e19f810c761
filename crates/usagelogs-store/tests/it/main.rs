//! The store test suite. Every test in the modules below runs twice, on SQLite and on
//! PostgreSQL (a fresh database each), through `both_backends!`.

/// Generates `mod sqlite` and `mod postgres`, each with one `#[test]` per named function of the
/// enclosing module (`fn name(backend: Backend)`).
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(usagelogs_store::Backend::Sqlite) })*
        }
        mod postgres {
            $(#[test] fn $name() { super::$name(usagelogs_store::Backend::Postgres) })*
        }
    };
}

mod aggregate;
mod batches;
mod common;
mod concurrency;
mod connect;
mod migrations;
mod paging;
