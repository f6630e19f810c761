//! The OpenAPI document.

use crate::{exports, routes};
use usagelogs_core::wire::{
    AggregatedLogView, AggregatedLogs, ApiErrorBody, Avatar, ExportCreated, ExportRequestBody, ExportStatusView,
    IngestAccepted, IngestEntry, KindInfo, KindList, LogView, LogsPage, PerformerView,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT with `sub`, `exp`, `scope` (Quay's `user:admin`, `org:admin`, `repo:admin`; \
                         `logs:write` for ingestion), optional `access` grants and `superuser`.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document of the whole API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "usagelogs",
        description = "Usage logs of a container registry, served through Red Hat Quay's logs API, \
                       with ingestion and durable exports.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        routes::list_user_logs,
        routes::list_org_logs,
        routes::list_repo_logs,
        routes::aggregate_user_logs,
        routes::aggregate_org_logs,
        routes::aggregate_repo_logs,
        exports::export_user_logs,
        exports::export_org_logs,
        exports::export_repo_logs,
        exports::user_export_status,
        exports::org_export_status,
        exports::repo_export_status,
        exports::download,
        routes::ingest,
        routes::kinds,
        routes::healthz,
        routes::readyz,
        routes::metrics,
    ),
    components(schemas(
        LogsPage, LogView, PerformerView, Avatar, AggregatedLogs, AggregatedLogView, ApiErrorBody,
        IngestEntry, IngestAccepted, KindList, KindInfo, ExportCreated, ExportRequestBody, ExportStatusView,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "logs", description = "Quay's usage-logs endpoints"),
        (name = "export", description = "Durable exports of logs to files"),
        (name = "ingestion", description = "Writing log entries"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
#[derive(Debug)]
pub struct ApiDoc;

/// The document as pretty JSON, exactly as served and committed.
pub fn openapi_json() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let mut s = doc.to_pretty_json().unwrap_or_else(|e| unreachable!("the document serialises: {e}"));
    s.push('\n');
    s
}
