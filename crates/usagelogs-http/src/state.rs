//! What every handler shares.

use crate::auth::JwtVerifier;
use crate::metrics::Metrics;
use std::sync::Arc;
use usagelogs_service::{ExportService, LogService};

/// Limits of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Largest request body accepted by ingestion, in bytes.
    pub max_body_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self { max_body_bytes: 16 * 1024 * 1024 }
    }
}

/// The application state behind `web::Data`.
#[derive(Debug)]
pub struct AppState {
    pub service: LogService,
    pub jwt: JwtVerifier,
    pub metrics: Metrics,
    /// `scheme://host` used in error `type` URLs and links instead of the request's own.
    pub public_url: Option<String>,
    pub limits: HttpLimits,
    /// The export use cases; without them the export endpoints answer 500.
    pub exports: Option<Arc<ExportService>>,
}

impl AppState {
    /// `scheme://host` of this server as clients reach it: `--public-url` when set, else the
    /// request's own scheme and host.
    pub fn base_url(&self, req: &actix_web::HttpRequest) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => {
                let info = req.connection_info();
                format!("{}://{}", info.scheme(), info.host())
            }
        }
    }

    /// State with a fresh metrics registry and default limits.
    pub fn new(service: LogService, jwt: JwtVerifier) -> Self {
        Self { service, jwt, metrics: Metrics::new(), public_url: None, limits: HttpLimits::default(), exports: None }
    }
}
