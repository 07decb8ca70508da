//! The dashboard: static HTML, CSS and JavaScript embedded in the binary (no build step).
//! The page asks for the admin token (or takes it from `#token=` in the URL), polls the
//! `/api/debug` routes and follows `/api/realtime` for its live changes; serving it needs no
//! token, since it holds no data.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("app.js");
const STYLE: &str = include_str!("style.css");

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /`: the dashboard page.
#[utoipa::path(
    get,
    path = "/",
    operation_id = "dashboard",
    tag = "dashboard",
    summary = "The dashboard page (HTML)",
    responses(
        (status = 200, description = "HTML", body = String, content_type = "text/html"),
        crate::openapi::OpenErrors,
    )
)]
pub(crate) async fn index() -> Response {
    asset(INDEX, "text/html; charset=utf-8")
}

/// `GET /dashboard/app.js`.
#[utoipa::path(
    get,
    path = "/dashboard/app.js",
    operation_id = "dashboardScript",
    tag = "dashboard",
    summary = "The dashboard script",
    responses(
        (status = 200, description = "JavaScript", body = String, content_type = "text/javascript"),
        crate::openapi::OpenErrors,
    )
)]
pub(crate) async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

/// `GET /dashboard/style.css`.
#[utoipa::path(
    get,
    path = "/dashboard/style.css",
    operation_id = "dashboardStyle",
    tag = "dashboard",
    summary = "The dashboard style sheet",
    responses(
        (status = 200, description = "CSS", body = String, content_type = "text/css"),
        crate::openapi::OpenErrors,
    )
)]
pub(crate) async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}
