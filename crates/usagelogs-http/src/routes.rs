//! The handlers: parse the request, call the service, render its answer. No SQL here.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use time::OffsetDateTime;
use usagelogs_core::wire::{AggregatedLogs, ApiErrorBody, IngestAccepted, IngestEntry, KindInfo, KindList, LogsPage};
use usagelogs_core::{KINDS, Namespace, RepoPath, is_service_key_kind};
use usagelogs_service::{ListParams, Target};
use utoipa::IntoParams;

pub(crate) type Query = web::Query<Vec<(String, String)>>;

/// Query parameters of the list endpoints.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct ListQueryDoc {
    /// First day, `MM/DD/YYYY` or `YYYY-MM-DD` (UTC). Default: now − 24 h.
    starttime: Option<String>,
    /// Last day, inclusive, `MM/DD/YYYY` or `YYYY-MM-DD` (UTC). Default: now.
    endtime: Option<String>,
    /// Only entries by this user or robot (ignored by the repository endpoints).
    performer: Option<String>,
    /// The `next_page` of the previous page; empty or absent for the first page.
    next_page: Option<String>,
    /// Only these kinds: comma-separated or repeated.
    kind: Option<Vec<String>>,
    /// Page size, 1–100 (default 20).
    limit: Option<u32>,
}

/// Query parameters of the aggregate endpoints.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct AggregateQueryDoc {
    /// First day, `MM/DD/YYYY` or `YYYY-MM-DD` (UTC). Default: now − 24 h.
    starttime: Option<String>,
    /// Last day, inclusive, `MM/DD/YYYY` or `YYYY-MM-DD` (UTC). Default: now.
    endtime: Option<String>,
    /// Only entries by this user or robot (ignored by the repository endpoint).
    performer: Option<String>,
    /// Only these kinds: comma-separated or repeated.
    kind: Option<Vec<String>>,
}

pub(crate) fn params(query: &[(String, String)]) -> ListParams {
    let first = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    ListParams {
        starttime: first("starttime"),
        endtime: first("endtime"),
        performer: first("performer"),
        next_page: first("next_page"),
        kinds: query.iter().filter(|(k, _)| k == "kind").map(|(_, v)| v.clone()).collect(),
        limit: first("limit"),
    }
}

pub(crate) fn org_target(orgname: &str) -> Result<Target, ApiError> {
    Namespace::new(orgname).map(Target::Org).map_err(|e| ApiError::BadRequest(e.to_string()))
}

pub(crate) fn repo_target(repository: &str) -> Result<Target, ApiError> {
    RepoPath::parse(repository).map(Target::Repo).map_err(|e| ApiError::BadRequest(e.to_string()))
}

async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    target: Target,
    query: Query,
) -> Result<HttpResponse, ApiError> {
    let params = params(&query);
    let page = web::block(move || state.service.list(&caller.0, &target, &params, OffsetDateTime::now_utc())).await??;
    Ok(HttpResponse::Ok().json(page))
}

async fn aggregate(
    state: web::Data<AppState>,
    caller: Caller,
    target: Target,
    query: Query,
) -> Result<HttpResponse, ApiError> {
    let params = params(&query);
    let body =
        web::block(move || state.service.aggregate(&caller.0, &target, &params, OffsetDateTime::now_utc())).await??;
    Ok(HttpResponse::Ok().json(body))
}

/// List the logs of the caller's own namespace.
#[utoipa::path(
    get, path = "/api/v1/user/logs", operation_id = "listUserLogs", tag = "logs",
    params(ListQueryDoc),
    responses(
        (status = 200, description = "A page of logs, newest first", body = LogsPage),
        (status = 400, description = "Bad parameter", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Token lacks user:admin", body = ApiErrorBody),
    ),
    security(("bearer" = ["user:admin"]))
)]
pub(crate) async fn list_user_logs(
    state: web::Data<AppState>,
    caller: Caller,
    query: Query,
) -> Result<HttpResponse, ApiError> {
    list(state, caller, Target::User, query).await
}

/// List the logs of an organization (or user) namespace.
#[utoipa::path(
    get, path = "/api/v1/organization/{orgname}/logs", operation_id = "listOrgLogs", tag = "logs",
    params(("orgname" = String, Path, description = "The namespace"), ListQueryDoc),
    responses(
        (status = 200, description = "A page of logs, newest first", body = LogsPage),
        (status = 400, description = "Bad parameter", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an administrator of the namespace", body = ApiErrorBody),
        (status = 404, description = "Unknown namespace", body = ApiErrorBody),
    ),
    security(("bearer" = ["org:admin"]))
)]
pub(crate) async fn list_org_logs(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: Query,
) -> Result<HttpResponse, ApiError> {
    list(state, caller, org_target(&path)?, query).await
}

/// List the logs of a repository.
#[utoipa::path(
    get, path = "/api/v1/repository/{repository}/logs", operation_id = "listRepoLogs", tag = "logs",
    params(("repository" = String, Path, description = "The full path of the repository, e.g. namespace/name"), ListQueryDoc),
    responses(
        (status = 200, description = "A page of logs, newest first", body = LogsPage),
        (status = 400, description = "Bad parameter", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an administrator of the repository", body = ApiErrorBody),
        (status = 404, description = "Unknown repository", body = ApiErrorBody),
    ),
    security(("bearer" = ["repo:admin"]))
)]
pub(crate) async fn list_repo_logs(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: Query,
) -> Result<HttpResponse, ApiError> {
    list(state, caller, repo_target(&path)?, query).await
}

/// Daily counts per kind for the caller's own namespace.
#[utoipa::path(
    get, path = "/api/v1/user/aggregatelogs", operation_id = "getAggregateUserLogs", tag = "logs",
    params(AggregateQueryDoc),
    responses(
        (status = 200, description = "Counts per kind and UTC day", body = AggregatedLogs),
        (status = 400, description = "Bad parameter or a window over the maximum", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Token lacks user:admin", body = ApiErrorBody),
    ),
    security(("bearer" = ["user:admin"]))
)]
pub(crate) async fn aggregate_user_logs(
    state: web::Data<AppState>,
    caller: Caller,
    query: Query,
) -> Result<HttpResponse, ApiError> {
    aggregate(state, caller, Target::User, query).await
}

/// Daily counts per kind for an organization (or user) namespace.
#[utoipa::path(
    get, path = "/api/v1/organization/{orgname}/aggregatelogs", operation_id = "getAggregateOrgLogs", tag = "logs",
    params(("orgname" = String, Path, description = "The namespace"), AggregateQueryDoc),
    responses(
        (status = 200, description = "Counts per kind and UTC day", body = AggregatedLogs),
        (status = 400, description = "Bad parameter or a window over the maximum", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an administrator of the namespace", body = ApiErrorBody),
        (status = 404, description = "Unknown namespace", body = ApiErrorBody),
    ),
    security(("bearer" = ["org:admin"]))
)]
pub(crate) async fn aggregate_org_logs(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: Query,
) -> Result<HttpResponse, ApiError> {
    aggregate(state, caller, org_target(&path)?, query).await
}

/// Daily counts per kind for a repository.
#[utoipa::path(
    get, path = "/api/v1/repository/{repository}/aggregatelogs", operation_id = "getAggregateRepoLogs", tag = "logs",
    params(("repository" = String, Path, description = "The full path of the repository, e.g. namespace/name"), AggregateQueryDoc),
    responses(
        (status = 200, description = "Counts per kind and UTC day", body = AggregatedLogs),
        (status = 400, description = "Bad parameter or a window over the maximum", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an administrator of the repository", body = ApiErrorBody),
        (status = 404, description = "Unknown repository", body = ApiErrorBody),
    ),
    security(("bearer" = ["repo:admin"]))
)]
pub(crate) async fn aggregate_repo_logs(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: Query,
) -> Result<HttpResponse, ApiError> {
    aggregate(state, caller, repo_target(&path)?, query).await
}

const NDJSON: &str = "application/x-ndjson";

/// Reads the body up to the limit: 413 past it.
async fn read_body(mut payload: web::Payload, limit: usize) -> Result<web::BytesMut, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("Cannot read the request body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(format!("The request body is larger than {limit} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Where a deserialisation error points: the entry's index (when inside one) and its field.
fn located(path: &str) -> (Option<usize>, Option<&str>) {
    let path = path.trim_start_matches('.');
    let Some(rest) = path.strip_prefix('[') else {
        return (None, (!path.is_empty()).then_some(path));
    };
    let (index, field) = rest.split_once(']').unwrap_or((rest, ""));
    let field = field.trim_start_matches('.');
    (index.parse().ok(), (!field.is_empty() && field != "?").then_some(field))
}

/// Parses the entries straight into their type (no intermediate JSON tree), naming the index and
/// field of the first bad one.
fn parse_entries(body: &[u8], ndjson: bool, max_entries: usize) -> Result<Vec<IngestEntry>, ApiError> {
    let bad = |i: usize, field: Option<&str>, e: &dyn std::fmt::Display| {
        ApiError::BadRequest(match field {
            Some(f) => format!("Invalid entry at index {i}: {f}: {e}"),
            None => format!("Invalid entry at index {i}: {e}"),
        })
    };
    let too_many =
        |n: usize| ApiError::PayloadTooLarge(format!("A batch holds at most {max_entries} entries; this one has {n}"));
    let entries: Vec<IngestEntry> = if ndjson {
        let lines: Vec<&[u8]> =
            body.split(|b| *b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)).collect();
        if lines.len() > max_entries {
            return Err(too_many(lines.len()));
        }
        lines
            .into_iter()
            .enumerate()
            .map(|(i, line)| {
                let mut de = serde_json::Deserializer::from_slice(line);
                let entry: IngestEntry = serde_path_to_error::deserialize(&mut de).map_err(|e| {
                    let path = e.path().to_string();
                    bad(i, located(&path).1, e.inner())
                })?;
                de.end().map_err(|e| bad(i, None, &e))?;
                Ok(entry)
            })
            .collect::<Result<_, ApiError>>()?
    } else {
        let mut de = serde_json::Deserializer::from_slice(body);
        let entries: Vec<IngestEntry> = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            match located(&path) {
                (Some(i), field) => bad(i, field, e.inner()),
                _ if e.inner().is_data() => ApiError::BadRequest("The body must be a JSON array of log entries".into()),
                _ => ApiError::BadRequest(format!("Invalid JSON body: {}", e.inner())),
            }
        })?;
        de.end().map_err(|e| ApiError::BadRequest(format!("Invalid JSON body: {e}")))?;
        entries
    };
    if entries.len() > max_entries {
        return Err(too_many(entries.len()));
    }
    Ok(entries)
}

/// Store a batch of log entries, all or nothing.
#[utoipa::path(
    post, path = "/api/v1/logs", operation_id = "ingestLogs", tag = "ingestion",
    request_body(
        description = "A JSON array of entries (`application/json`), or one entry per line (`application/x-ndjson`)",
        content(
            (Vec<IngestEntry> = "application/json"),
            (IngestEntry = "application/x-ndjson"),
        ),
    ),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried batch a no-op that answers like the first call")),
    responses(
        (status = 201, description = "Every entry is durably stored", body = IngestAccepted),
        (status = 400, description = "A bad entry (its index and field are named); nothing stored", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Token lacks logs:write", body = ApiErrorBody),
        (status = 413, description = "Body or batch over the limits", body = ApiErrorBody),
        (status = 415, description = "Neither JSON nor NDJSON", body = ApiErrorBody),
    ),
    security(("bearer" = ["logs:write"]))
)]
pub(crate) async fn ingest(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    state.service.authorize_ingest(&caller.0)?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    let ndjson = match content_type.as_deref() {
        None | Some("application/json") => false,
        Some(NDJSON) | Some("application/jsonlines") | Some("application/jsonl") => true,
        Some(other) => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "Unsupported content type '{other}': send application/json or {NDJSON}"
            )));
        }
    };
    let key = match req.headers().get("idempotency-key") {
        None => None,
        Some(v) => match v.to_str() {
            Ok(k) if !k.is_empty() && k.len() <= 255 => Some(k.to_owned()),
            _ => return Err(ApiError::BadRequest("Idempotency-Key must be 1-255 visible ASCII characters".into())),
        },
    };
    let body = read_body(payload, state.limits.max_body_bytes).await?;
    let entries = parse_entries(&body, ndjson, state.service.config().max_batch_entries)?;
    // The parsed entries are all that is needed from here on: free the body before writing.
    drop(body);
    let st = state.clone();
    let accepted =
        web::block(move || st.service.ingest(&caller.0, entries, key.as_deref(), OffsetDateTime::now_utc())).await??;
    state.metrics.add_ingested(accepted);
    Ok(HttpResponse::Created().json(IngestAccepted { accepted }))
}

/// The catalog of log kinds.
#[utoipa::path(
    get, path = "/api/v1/logs/kinds", operation_id = "listLogKinds", tag = "ingestion",
    responses(
        (status = 200, description = "Every kind the server accepts from the catalog", body = KindList),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn kinds(_caller: Caller) -> HttpResponse {
    let kinds = KINDS.iter().map(|k| KindInfo { name: (*k).to_owned(), service_key: is_service_key_kind(k) }).collect();
    HttpResponse::Ok().json(KindList { kinds })
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "operations",
    responses((status = 200, description = "Up", body = Object, example = json!({"status": "ok"}))))]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// The database answers.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Object, example = json!({"status": "ready"})),
        (status = 503, description = "The database cannot be reached", body = ApiErrorBody),
    ))]
pub(crate) async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    web::block(move || state.service.store().ping()).await?.map_err(|e| ApiError::Unavailable(Box::new(e)))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ready"})))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain")))]
pub(crate) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let pool = state.service.store().pool_state();
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(state.metrics.render(pool))
}
