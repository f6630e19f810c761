use usagelogs_core::DateParamError;
use usagelogs_store::StoreError;

/// Errors of the use cases; the transport maps each to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The caller may not do this (403).
    #[error("Unauthorized")]
    Forbidden,
    /// The namespace or repository was never seen (404).
    #[error("Not Found")]
    NotFound,
    /// Bad input (400), with a message for the caller.
    #[error("{0}")]
    BadRequest(String),
    /// A batch over the configured limits (413).
    #[error("{0}")]
    TooLarge(String),
    /// The database cannot be reached (503).
    #[error("database unavailable")]
    Unavailable(#[source] StoreError),
    /// Anything else (500); the cause is logged, never shown.
    #[error("internal error")]
    Internal(#[source] StoreError),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => ServiceError::Unavailable(e),
            other => ServiceError::Internal(other),
        }
    }
}

impl From<DateParamError> for ServiceError {
    fn from(e: DateParamError) -> Self {
        ServiceError::BadRequest(e.to_string())
    }
}
