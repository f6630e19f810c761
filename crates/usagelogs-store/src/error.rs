/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is malformed, names a backend that is not built in, or points into a
    /// folder that does not exist.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// The database cannot be reached (connection refused, pool timed out).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// A statement failed.
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
    /// Stored data that cannot be read back (corrupt JSON, a bad timestamp).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}
