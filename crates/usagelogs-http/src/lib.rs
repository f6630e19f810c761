#![doc = include_str!("../README.md")]

pub mod auth;
mod edge;
pub mod error;
mod exports;
pub mod metrics;
pub mod openapi;
mod routes;
pub mod state;

pub use auth::{Caller, JwtKey, JwtVerifier, TokenSigner, parse_algorithm};
pub use error::ApiError;
pub use openapi::{ApiDoc, openapi_json};
pub use state::{AppState, HttpLimits};

use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, web};
use utoipa_swagger_ui::{Config, SwaggerUi};

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

async fn openapi_document() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(openapi_json())
}

async fn docs_redirect() -> HttpResponse {
    HttpResponse::Found().insert_header(("Location", "/docs/")).finish()
}

fn resource<F, Args>(path: &str, method: actix_web::Route, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path).route(method.to(handler)).default_service(web::to(method_not_allowed))
}

/// Mounts the whole API: `App::new().configure(usagelogs_http::configure(state))`.
pub fn configure(state: web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(state)
            .app_data(
                web::QueryConfig::default()
                    .error_handler(|e, _| ApiError::BadRequest(format!("Invalid query string: {e}")).into()),
            )
            .app_data(
                web::PathConfig::default()
                    .error_handler(|e, _| ApiError::BadRequest(format!("Invalid path: {e}")).into()),
            )
            .app_data(web::JsonConfig::default().error_handler(|e, _| match e {
                actix_web::error::JsonPayloadError::ContentType => {
                    ApiError::UnsupportedMediaType("The request body must be JSON (application/json)".into()).into()
                }
                actix_web::error::JsonPayloadError::Overflow { limit }
                | actix_web::error::JsonPayloadError::OverflowKnownLength { limit, .. } => {
                    ApiError::PayloadTooLarge(format!("The request body is larger than {limit} bytes")).into()
                }
                other => ApiError::BadRequest(format!("Invalid JSON body: {other}")).into(),
            }))
            .service(
                web::scope("")
                    .wrap(from_fn(edge::edge))
                    .service(resource("/api/v1/user/logs", web::get(), routes::list_user_logs))
                    .service(resource("/api/v1/user/aggregatelogs", web::get(), routes::aggregate_user_logs))
                    .service(resource("/api/v1/organization/{orgname}/logs", web::get(), routes::list_org_logs))
                    .service(resource(
                        "/api/v1/organization/{orgname}/aggregatelogs",
                        web::get(),
                        routes::aggregate_org_logs,
                    ))
                    .service(resource("/api/v1/repository/{repository:.+}/logs", web::get(), routes::list_repo_logs))
                    .service(resource(
                        "/api/v1/repository/{repository:.+}/aggregatelogs",
                        web::get(),
                        routes::aggregate_repo_logs,
                    ))
                    .service(resource("/api/v1/user/exportlogs", web::post(), exports::export_user_logs))
                    .service(resource("/api/v1/user/exportlogs/{export_id}", web::get(), exports::user_export_status))
                    .service(resource(
                        "/api/v1/organization/{orgname}/exportlogs",
                        web::post(),
                        exports::export_org_logs,
                    ))
                    .service(resource(
                        "/api/v1/organization/{orgname}/exportlogs/{export_id}",
                        web::get(),
                        exports::org_export_status,
                    ))
                    .service(resource(
                        "/api/v1/repository/{repository:.+}/exportlogs",
                        web::post(),
                        exports::export_repo_logs,
                    ))
                    .service(resource(
                        "/api/v1/repository/{repository:.+}/exportlogs/{export_id}",
                        web::get(),
                        exports::repo_export_status,
                    ))
                    .service(resource("/exportedlogs/{file_id}", web::get(), exports::download))
                    .service(resource("/api/v1/logs", web::post(), routes::ingest))
                    .service(resource("/api/v1/logs/kinds", web::get(), routes::kinds))
                    .service(resource("/api/v1/openapi.json", web::get(), openapi_document))
                    .service(resource("/healthz", web::get(), routes::healthz))
                    .service(resource("/readyz", web::get(), routes::readyz))
                    .service(resource("/metrics", web::get(), routes::metrics))
                    .service(resource("/docs", web::get(), docs_redirect))
                    .service(SwaggerUi::new("/docs/{_:.*}").config(Config::from("/api/v1/openapi.json")))
                    .default_service(web::to(not_found)),
            );
    }
}
