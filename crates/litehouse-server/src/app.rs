//! [`app`]: the router with every route, the token check and the limits.

use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::api::{collections, docs, health};
use crate::auth::Scope;
use crate::error::ApiError;
use crate::metrics;
use crate::state::AppState;

/// Every route of the API, with the token check, body limit, concurrency limit, timeout and
/// CORS (when origins are configured) applied.
pub fn app(state: AppState) -> Router {
    let config = state.config();
    let (body_limit, timeout, concurrency) = (
        config.body_limit,
        config.request_timeout,
        config.max_concurrent_requests.max(1),
    );
    let cors = cors_layer(&config.cors_origins);
    let router = Router::new()
        .route("/api/health", get(health::health))
        .route("/api/ready", get(health::ready))
        .route("/metrics", get(metrics::scrape))
        .route(
            "/api/collections",
            get(collections::list).post(collections::create),
        )
        .route(
            "/api/collections/{collection}",
            get(collections::get).delete(collections::drop),
        )
        .route(
            "/api/collections/{collection}/indexes",
            post(collections::add_index),
        )
        .route(
            "/api/collections/{collection}/indexes/{name}",
            axum::routing::delete(collections::drop_index),
        )
        .route(
            "/api/collections/{collection}/docs",
            get(docs::list).post(docs::create),
        )
        .route(
            "/api/collections/{collection}/docs/{id}",
            get(docs::get)
                .put(docs::replace)
                .patch(docs::patch)
                .delete(docs::delete),
        )
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(overloaded))
                .load_shed()
                // Global: `Router::layer` wraps each route separately, and the limit is for
                // the whole server.
                .layer(tower::limit::GlobalConcurrencyLimitLayer::new(concurrency))
                .timeout(timeout),
        );
    let router = match cors {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router.with_state(state)
}

/// The scope a request needs, from its path and method; `None` for open routes.
fn needed_scope(method: &Method, path: &str) -> Option<Scope> {
    if path.starts_with("/api/debug") {
        Some(Scope::Admin)
    } else if path == "/metrics" {
        // Open on loopback like the data routes; needs a token with --require-token.
        Some(Scope::Read)
    } else if path.starts_with("/api/collections") {
        let reads = [Method::GET, Method::HEAD, Method::OPTIONS];
        Some(if reads.contains(method) {
            Scope::Read
        } else {
            Scope::Write
        })
    } else {
        None
    }
}

async fn authorize(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(needed) = needed_scope(request.method(), request.uri().path())
        && let Err(err) = state.auth().check(request.headers(), needed).await
    {
        return err.into_response();
    }
    next.run(request).await
}

async fn no_route(request: Request) -> ApiError {
    ApiError::no_route(request.uri().path())
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}

/// Answers for the load-shed and timeout layers: a full server and a slow request are both
/// 503 with `Retry-After`.
async fn overloaded(err: tower::BoxError) -> ApiError {
    if err.is::<tower::timeout::error::Elapsed>() {
        ApiError::unavailable("timeout", "the request took longer than the server's limit")
    } else if err.is::<tower::load_shed::error::Overloaded>() {
        ApiError::unavailable("overloaded", "the server is at its concurrency limit")
    } else {
        ApiError::internal(err)
    }
}

fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                axum::http::header::AUTHORIZATION,
                axum::http::header::CONTENT_TYPE,
                axum::http::header::IF_MATCH,
            ])
            .expose_headers([axum::http::header::ETAG, axum::http::header::LOCATION])
            .max_age(Duration::from_secs(600)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_follow_path_and_method() {
        let check = |method: Method, path: &str, expected: Option<Scope>| {
            assert_eq!(needed_scope(&method, path), expected, "{method} {path}");
        };
        check(Method::GET, "/api/health", None);
        check(Method::GET, "/api/collections", Some(Scope::Read));
        check(Method::GET, "/api/collections/a/docs/b", Some(Scope::Read));
        check(Method::POST, "/api/collections", Some(Scope::Write));
        check(
            Method::PATCH,
            "/api/collections/a/docs/b",
            Some(Scope::Write),
        );
        check(Method::DELETE, "/api/collections/a", Some(Scope::Write));
        check(Method::GET, "/api/debug/db/stats", Some(Scope::Admin));
        check(Method::GET, "/metrics", Some(Scope::Read));
        check(Method::GET, "/api/ready", None);
    }
}
