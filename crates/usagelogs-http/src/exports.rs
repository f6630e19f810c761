//! The export handlers: request, status, download.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::routes::{Query, org_target, params, repo_target};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value;
use std::sync::Arc;
use time::OffsetDateTime;
use usagelogs_core::wire::{ApiErrorBody, ExportCreated, ExportRequestBody, ExportStatusView};
use usagelogs_service::{ExportService, Target};

fn exports(state: &AppState) -> Result<Arc<ExportService>, ApiError> {
    state.exports.clone().ok_or_else(|| ApiError::internal(std::io::Error::other("exports are not configured")))
}

async fn request(
    state: web::Data<AppState>,
    caller: Caller,
    target: Target,
    req: HttpRequest,
    query: Query,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let exports = exports(&state)?;
    let p = params(&query);
    let base = state.base_url(&req);
    let id = web::block(move || {
        exports.request(
            &caller.0,
            &target,
            p.starttime.as_deref(),
            p.endtime.as_deref(),
            &body,
            &base,
            OffsetDateTime::now_utc(),
        )
    })
    .await??;
    let location = format!("{}/{id}", req.path().trim_end_matches('/'));
    Ok(HttpResponse::Created().insert_header((header::LOCATION, location)).json(ExportCreated { export_id: id }))
}

async fn status(
    state: web::Data<AppState>,
    caller: Caller,
    target: Target,
    id: String,
) -> Result<HttpResponse, ApiError> {
    let exports = exports(&state)?;
    let view = web::block(move || exports.status(&caller.0, &target, &id)).await??;
    Ok(HttpResponse::Ok().json(view))
}

/// Export the logs of the caller's own namespace.
#[utoipa::path(
    post, path = "/api/v1/user/exportlogs", operation_id = "exportUserLogs", tag = "export",
    params(
        ("starttime" = Option<String>, Query, description = "First day, MM/DD/YYYY or YYYY-MM-DD (UTC)"),
        ("endtime" = Option<String>, Query, description = "Last day, inclusive, MM/DD/YYYY or YYYY-MM-DD (UTC)"),
    ),
    request_body = ExportRequestBody,
    responses(
        (status = 201, description = "Queued; `Location` points at its status", body = ExportCreated,
            headers(("Location" = String, description = "The export's status resource"))),
        (status = 400, description = "Bad callback, e-mail, format or time span", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Token lacks user:admin", body = ApiErrorBody),
        (status = 415, description = "The body is not JSON", body = ApiErrorBody),
    ),
    security(("bearer" = ["user:admin"]))
)]
pub(crate) async fn export_user_logs(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    query: Query,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    request(state, caller, Target::User, req, query, body).await
}

/// Export the logs of an organization (or user) namespace.
#[utoipa::path(
    post, path = "/api/v1/organization/{orgname}/exportlogs", operation_id = "exportOrgLogs", tag = "export",
    params(
        ("orgname" = String, Path, description = "The namespace"),
        ("starttime" = Option<String>, Query, description = "First day, MM/DD/YYYY or YYYY-MM-DD (UTC)"),
        ("endtime" = Option<String>, Query, description = "Last day, inclusive, MM/DD/YYYY or YYYY-MM-DD (UTC)"),
    ),
    request_body = ExportRequestBody,
    responses(
        (status = 201, description = "Queued; `Location` points at its status", body = ExportCreated,
            headers(("Location" = String, description = "The export's status resource"))),
        (status = 400, description = "Bad callback, e-mail, format or time span", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an administrator of the namespace", body = ApiErrorBody),
        (status = 404, description = "Unknown namespace", body = ApiErrorBody),
        (status = 415, description = "The body is not JSON", body = ApiErrorBody),
    ),
    security(("bearer" = ["org:admin"]))
)]
pub(crate) async fn export_org_logs(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    req: HttpRequest,
    query: Query,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    request(state, caller, org_target(&path)?, req, query, body).await
}

/// Export the logs of a repository.
#[utoipa::path(
    post, path = "/api/v1/repository/{repository}/exportlogs", operation_id = "exportRepoLogs", tag = "export",
    params(
        ("repository" = String, Path, description = "The full path of the repository, e.g. namespace/name"),
        ("starttime" = Option<String>, Query, description = "First day, MM/DD/YYYY or YYYY-MM-DD (UTC)"),
        ("endtime" = Option<String>, Query, description = "Last day, inclusive, MM/DD/YYYY or YYYY-MM-DD (UTC)"),
    ),
    request_body = ExportRequestBody,
    responses(
        (status = 201, description = "Queued; `Location` points at its status", body = ExportCreated,
            headers(("Location" = String, description = "The export's status resource"))),
        (status = 400, description = "Bad callback, e-mail, format or time span", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an administrator of the repository", body = ApiErrorBody),
        (status = 404, description = "Unknown repository", body = ApiErrorBody),
        (status = 415, description = "The body is not JSON", body = ApiErrorBody),
    ),
    security(("bearer" = ["repo:admin"]))
)]
pub(crate) async fn export_repo_logs(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    req: HttpRequest,
    query: Query,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    request(state, caller, repo_target(&path)?, req, query, body).await
}

/// The status of an export of the caller's own namespace.
#[utoipa::path(
    get, path = "/api/v1/user/exportlogs/{export_id}", operation_id = "getUserExportStatus", tag = "export",
    params(("export_id" = String, Path, description = "The id the export request returned")),
    responses(
        (status = 200, description = "Where the export stands", body = ExportStatusView),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Token lacks user:admin", body = ApiErrorBody),
        (status = 404, description = "No such export here", body = ApiErrorBody),
    ),
    security(("bearer" = ["user:admin"]))
)]
pub(crate) async fn user_export_status(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    status(state, caller, Target::User, path.into_inner()).await
}

/// The status of an export of an organization (or user) namespace.
#[utoipa::path(
    get, path = "/api/v1/organization/{orgname}/exportlogs/{export_id}", operation_id = "getOrgExportStatus", tag = "export",
    params(
        ("orgname" = String, Path, description = "The namespace"),
        ("export_id" = String, Path, description = "The id the export request returned"),
    ),
    responses(
        (status = 200, description = "Where the export stands", body = ExportStatusView),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an administrator of the namespace", body = ApiErrorBody),
        (status = 404, description = "No such export here", body = ApiErrorBody),
    ),
    security(("bearer" = ["org:admin"]))
)]
pub(crate) async fn org_export_status(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (org, id) = path.into_inner();
    status(state, caller, org_target(&org)?, id).await
}

/// The status of an export of a repository.
#[utoipa::path(
    get, path = "/api/v1/repository/{repository}/exportlogs/{export_id}", operation_id = "getRepoExportStatus", tag = "export",
    params(
        ("repository" = String, Path, description = "The full path of the repository, e.g. namespace/name"),
        ("export_id" = String, Path, description = "The id the export request returned"),
    ),
    responses(
        (status = 200, description = "Where the export stands", body = ExportStatusView),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an administrator of the repository", body = ApiErrorBody),
        (status = 404, description = "No such export here", body = ApiErrorBody),
    ),
    security(("bearer" = ["repo:admin"]))
)]
pub(crate) async fn repo_export_status(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (repo, id) = path.into_inner();
    status(state, caller, repo_target(&repo)?, id).await
}

/// Download an exported file (no token: the unguessable link is the key, until it expires).
#[utoipa::path(
    get, path = "/exportedlogs/{file_id}", operation_id = "downloadExportedLogs", tag = "export",
    params(("file_id" = String, Path, description = "The file id of the `exported_data_url`")),
    responses(
        (status = 200, description = "The file: JSON, NDJSON or CSV", content(
            (String = "application/json"), (String = "application/x-ndjson"), (String = "text/csv"))),
        (status = 404, description = "Unknown or expired link", body = ApiErrorBody),
    )
)]
pub(crate) async fn download(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let exports = exports(&state)?;
    let file_id = path.into_inner();
    let d = web::block(move || exports.download(&file_id, OffsetDateTime::now_utc())).await??;
    let mime: actix_web::mime::Mime = d.content_type.parse().unwrap_or(actix_web::mime::APPLICATION_OCTET_STREAM);
    let file = actix_files::NamedFile::from_file(d.file, &d.filename).map_err(ApiError::internal)?;
    Ok(file
        .set_content_type(mime)
        .set_content_disposition(header::ContentDisposition {
            disposition: header::DispositionType::Attachment,
            parameters: vec![header::DispositionParam::Filename(d.filename.clone())],
        })
        .into_response(&req))
}
