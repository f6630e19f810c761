//! The edge middleware: Quay's ApiError body on every error response (ours and actix's own),
//! with the absolute `type` URL, and request metrics.

use crate::error::{ErrorInfo, fallback_info, render};
use crate::state::AppState;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use std::time::Instant;

pub(crate) async fn edge(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    // The state is always mounted with the routes (`configure`).
    let base = state.as_ref().map(|s| s.base_url(req.request())).unwrap_or_default();
    let method = req.method().as_str().to_owned();

    // Handlers and extractors turn their errors into responses before this point; an `Err`
    // here could only come from an inner middleware, and there is none.
    let res = next.call(req).await?.map_into_boxed_body();

    let status = res.status();
    let res = if status.is_client_error() || status.is_server_error() {
        let info = match res.response().extensions().get::<ErrorInfo>().cloned() {
            Some(info) => info,
            None => {
                let mut info = fallback_info(status);
                // actix's own client errors say what was wrong; server errors say nothing.
                if status.is_client_error() {
                    if let Some(e) = res.response().error() {
                        info.detail = e.to_string();
                    }
                } else if let Some(e) = res.response().error() {
                    tracing::error!(error = %e, "request failed");
                }
                info
            }
        };
        let (req, _) = res.into_parts();
        ServiceResponse::new(req, render(status, &info, &base))
    } else {
        res
    };

    if let Some(state) = &state {
        let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
        state.metrics.observe(&route, &method, res.status().as_u16(), started.elapsed().as_secs_f64());
    }
    Ok(res)
}
