//! HTTP-level tests of usagelogs: the whole API in-process (`actix_web::test`) over a real
//! store, SQLite by default and PostgreSQL for the core (`…::postgres` tests).

/// Runs `async fn $name(backend: Backend)` once per backend: tests `$name::sqlite` and
/// `$name::postgres`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[actix_web::test]
                async fn sqlite() {
                    super::$name(usagelogs_store::Backend::Sqlite).await;
                }

                #[actix_web::test]
                async fn postgres() {
                    super::$name(usagelogs_store::Backend::Postgres).await;
                }
            }
        )*
    };
}

mod support;

mod asymmetric;
mod auth;
mod dates;
mod errors;
mod exports;
mod ingest;
mod openapi;
mod operations;
mod outage;
mod paging;
mod wire;
