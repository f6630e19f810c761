//! The one mapping from errors to Quay's ApiError body.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use usagelogs_core::wire::ApiErrorBody;
use usagelogs_service::ServiceError;

/// Every error the API answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No, or a bad, bearer token (401).
    #[error("Requires authentication")]
    Unauthenticated,
    /// Not allowed (403).
    #[error("Unauthorized")]
    Forbidden,
    /// Unknown namespace, repository, route or file (404).
    #[error("Not Found")]
    NotFound,
    /// Bad input (400).
    #[error("{0}")]
    BadRequest(String),
    /// Route exists, method does not (405).
    #[error("Method Not Allowed")]
    MethodNotAllowed,
    /// Body or batch over the limits (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Wrong content type (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The database is unreachable (503).
    #[error("Service unavailable: the database cannot be reached")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Anything else (500); the cause goes to the log only.
    #[error("Internal server error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// The machine code of the body's `title` and `error_type`.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated => "invalid_token",
            ApiError::Forbidden => "insufficient_scope",
            ApiError::NotFound => "not_found",
            ApiError::BadRequest(_) => "invalid_request",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Unavailable(_) => "service_unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }

    /// An internal error from any cause.
    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        ApiError::Internal(Box::new(e))
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Forbidden => ApiError::Forbidden,
            ServiceError::NotFound => ApiError::NotFound,
            ServiceError::BadRequest(m) => ApiError::BadRequest(m),
            ServiceError::TooLarge(m) => ApiError::PayloadTooLarge(m),
            ServiceError::Unavailable(src) => ApiError::Unavailable(Box::new(src)),
            ServiceError::Internal(src) => ApiError::Internal(Box::new(src)),
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        ApiError::internal(e)
    }
}

/// What an error response carries until the edge middleware writes the absolute `type` URL.
#[derive(Debug, Clone)]
pub(crate) struct ErrorInfo {
    pub code: &'static str,
    pub detail: String,
}

/// The standard code and message for a status that no [`ApiError`] produced (actix's own).
pub(crate) fn fallback_info(status: StatusCode) -> ErrorInfo {
    let (code, detail) = match status.as_u16() {
        400 => ("invalid_request", "Bad request"),
        401 => ("invalid_token", "Requires authentication"),
        403 => ("insufficient_scope", "Unauthorized"),
        404 => ("not_found", "Not Found"),
        405 => ("method_not_allowed", "Method Not Allowed"),
        408 => ("request_timeout", "Request Timeout"),
        413 => ("payload_too_large", "Payload Too Large"),
        415 => ("unsupported_media_type", "Unsupported Media Type"),
        429 => ("too_many_requests", "Too Many Requests"),
        503 => ("service_unavailable", "Service Unavailable"),
        s if s >= 500 => ("internal_error", "Internal server error"),
        _ => ("invalid_request", "Bad request"),
    };
    ErrorInfo { code, detail: detail.to_owned() }
}

/// Renders the body; `base_url` is `scheme://host` of the request.
pub(crate) fn render(status: StatusCode, info: &ErrorInfo, base_url: &str) -> HttpResponse {
    let body = ApiErrorBody::new(status.as_u16(), info.code, info.detail.clone(), base_url);
    let mut resp = HttpResponse::build(status).json(body);
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp.extensions_mut().insert(info.clone());
    resp
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(cause) | ApiError::Unavailable(cause) = self {
            let mut chain = cause.to_string();
            let mut source = cause.source();
            while let Some(s) = source {
                chain.push_str(": ");
                chain.push_str(&s.to_string());
                source = s.source();
            }
            tracing::error!(error = %chain, status = self.status_code().as_u16(), "request failed");
        }
        // The edge middleware replaces the relative `type` with the absolute one.
        render(self.status_code(), &ErrorInfo { code: self.code(), detail: self.to_string() }, "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    #[actix_web::test]
    async fn every_variant_renders_an_api_error_body() {
        let io = || Box::new(std::io::Error::other("secret cause")) as Box<dyn std::error::Error + Send + Sync>;
        let cases = [
            (ApiError::Unauthenticated, 401, "invalid_token", "Requires authentication"),
            (ApiError::Forbidden, 403, "insufficient_scope", "Unauthorized"),
            (ApiError::NotFound, 404, "not_found", "Not Found"),
            (ApiError::BadRequest("Invalid page token".into()), 400, "invalid_request", "Invalid page token"),
            (ApiError::MethodNotAllowed, 405, "method_not_allowed", "Method Not Allowed"),
            (ApiError::PayloadTooLarge("too big".into()), 413, "payload_too_large", "too big"),
            (ApiError::UnsupportedMediaType("json only".into()), 415, "unsupported_media_type", "json only"),
            (
                ApiError::Unavailable(io()),
                503,
                "service_unavailable",
                "Service unavailable: the database cannot be reached",
            ),
            (ApiError::Internal(io()), 500, "internal_error", "Internal server error"),
        ];
        for (err, status, code, detail) in cases {
            let resp = err.error_response();
            assert_eq!(resp.status().as_u16(), status);
            assert_eq!(resp.headers().contains_key(header::WWW_AUTHENTICATE), status == 401);
            let body = to_bytes(resp.into_body()).await.unwrap();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["status"], status);
            assert_eq!(v["title"], code);
            assert_eq!(v["error_type"], code);
            assert_eq!(v["detail"], detail);
            assert_eq!(v["error_message"], detail);
            assert!(!String::from_utf8_lossy(&body).contains("secret cause"));
        }
    }
}
