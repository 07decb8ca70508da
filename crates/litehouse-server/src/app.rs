//! [`app`]: the router with every route, the token check and the limits.

use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::{collections, docs, health};
use crate::auth::Scope;
use crate::config::ServerConfig;
use crate::dashboard;
use crate::error::ApiError;
use crate::metrics;
use crate::openapi::ApiDoc;
use crate::state::AppState;

/// Every route of the API, with the token check, body limit, concurrency limit, timeout and
/// CORS (when origins are configured) applied.
pub fn app(state: AppState) -> Router {
    let config = state.config();
    let (body_limit, concurrency) = (config.body_limit, config.max_concurrent_requests.max(1));
    let cors = cors_layer(&config.cors_origins);
    let (router, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(dashboard::index))
        .routes(routes!(dashboard::script))
        .routes(routes!(dashboard::style))
        .routes(routes!(health::health))
        .routes(routes!(health::ready))
        .routes(routes!(metrics::scrape))
        .routes(routes!(collections::list, collections::create))
        .routes(routes!(collections::get, collections::drop))
        .routes(routes!(collections::add_index))
        .routes(routes!(collections::drop_index))
        .routes(routes!(docs::list, docs::create))
        .routes(routes!(docs::get, docs::replace, docs::patch, docs::delete))
        .routes(routes!(crate::realtime::subscribe))
        .routes(routes!(crate::devices::list))
        .split_for_parts();
    let openapi = Arc::new(openapi_json(openapi, config));
    let debug_routes = crate::debug::routes(state.debug_handles().clone());
    // Offline-first sync (litehouse-sync): push with producer id, epoch and sequence; pull
    // over the change feed.
    // Device-token requests leave a heartbeat (and a push its rejections) on the way in.
    let sync = litehouse_sync::router(state.store().clone()).layer(middleware::from_fn_with_state(
        state.clone(),
        crate::devices::track,
    ));
    let router = router
        .route_service("/api/sync/push", sync.clone())
        .route_service("/api/sync/pull", sync)
        .nest("/api/debug", debug_routes)
        .route(
            "/api/debug/explain/{collection}",
            get(crate::debug::explain),
        )
        .route(
            "/api/openapi.json",
            get(move || {
                let openapi = Arc::clone(&openapi);
                async move { axum::Json(openapi.as_ref().clone()) }
            }),
        )
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .layer(middleware::from_fn_with_state(state.clone(), read_timeout))
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
                .layer(tower::limit::GlobalConcurrencyLimitLayer::new(concurrency)),
        );
    let router = match cors {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router.with_state(state)
}

/// The OpenAPI document as JSON, with `/api/openapi.json` itself added and this server's
/// limits stated.
fn openapi_json(openapi: utoipa::openapi::OpenApi, config: &ServerConfig) -> serde_json::Value {
    let mut json = serde_json::to_value(&openapi).unwrap_or_default();
    crate::openapi::finish(&mut json, config);
    json["paths"]["/api/openapi.json"] = serde_json::json!({
        "get": {
            "tags": ["operations"],
            "operationId": "openapi",
            "summary": "This OpenAPI 3.1 document",
            "responses": {
                "200": {"description": "The document", "content": {"application/json": {"schema": {"type": "object"}}}},
                "503": {"description": "Concurrency limit or timeout", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
            }
        }
    });
    add_sync_paths(&mut json);
    json
}

/// `/api/sync/push` and `/api/sync/pull` (served by litehouse-sync's router).
fn add_sync_paths(json: &mut serde_json::Value) {
    let error = serde_json::json!({"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}});
    let object = serde_json::json!({"application/json": {"schema": {"type": "object"}}});
    let bearer = serde_json::json!([{}, {"bearer": []}]);
    json["paths"]["/api/sync/push"] = serde_json::json!({
        "post": {
            "tags": ["sync"],
            "operationId": "syncPush",
            "summary": "Push a device's outbox entries: producer id (device), epoch and gapless sequence; a duplicate is acknowledged without applying again",
            "security": bearer,
            "requestBody": {"required": true, "content": {"application/json": {"schema": {
                "type": "object",
                "required": ["device", "epoch", "first_seq", "last_seq", "entries"],
                "properties": {
                    "device": {"type": "string"},
                    "epoch": {"type": "integer", "minimum": 0},
                    "first_seq": {"type": "integer", "minimum": 1},
                    "last_seq": {"type": "integer", "minimum": 0},
                    "entries": {"type": "array", "items": {"type": "object", "required": ["seq", "op_id", "hlc", "collection", "doc_id", "op", "body"]}}
                }
            }}}},
            "responses": {
                "200": {"description": "Acknowledged: {acked_seq, rejected}", "content": object},
                "400": {"description": "Not a push request", "content": error},
                "401": {"description": "Missing or invalid token", "content": error},
                "403": {"description": "A stale epoch ({current_epoch, ...}) or a device token of another device", "content": object},
                "409": {"description": "A gap: {expected_seq, received_seq}", "content": object},
                "413": {"description": "Body too large", "content": error},
                "503": {"description": "Concurrency limit or timeout", "content": error}
            }
        }
    });
    json["paths"]["/api/sync/pull"] = serde_json::json!({
        "get": {
            "tags": ["sync"],
            "operationId": "syncPull",
            "summary": "Changes after a cursor from the change feed, or (full=true) the whole state page by page",
            "security": bearer,
            "parameters": [
                {"name": "cursor", "in": "query", "required": false, "schema": {"type": "string"}, "description": "The `next` of the previous pull; none for the start"},
                {"name": "full", "in": "query", "required": false, "schema": {"type": "boolean"}, "description": "Read everything (after a 410)"},
                {"name": "after", "in": "query", "required": false, "schema": {"type": "string"}, "description": "With full=true: the `resume` of the previous page"},
                {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}
            ],
            "responses": {
                "200": {"description": "{changes, next, up_to_date, resume?}", "content": object},
                "400": {"description": "Invalid cursor or parameter", "content": error},
                "401": {"description": "Missing or invalid token", "content": error},
                "403": {"description": "The token may not read", "content": error},
                "410": {"description": "The cursor is older than the change log keeps: pull again with full=true", "content": error},
                "503": {"description": "Concurrency limit or timeout", "content": error}
            }
        }
    });
}

/// The scope a request needs, from its path and method; `None` for open routes.
fn needed_scope(method: &Method, path: &str) -> Option<Scope> {
    if path.starts_with("/api/debug") {
        Some(Scope::Admin)
    } else if path == "/metrics" {
        // Open on loopback like the data routes; needs a token with --require-token.
        Some(Scope::Read)
    } else if path == "/api/realtime" || path == "/api/sync/pull" {
        Some(Scope::Read)
    } else if path == "/api/sync/push" {
        Some(Scope::Write)
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
    let mut request = request;
    let path = request.uri().path();
    if let Some(needed) = needed_scope(request.method(), path) {
        let sync = path.starts_with("/api/sync/");
        match state.auth().check(request.headers(), needed, sync).await {
            Ok(Some(device)) => {
                request
                    .extensions_mut()
                    .insert(litehouse_sync::DeviceIdentity(device));
            }
            Ok(None) => {}
            Err(err) => return err.into_response(),
        }
    }
    next.run(request).await
}

/// Times out reads (dropping a read changes nothing). Writes are not cut off once handed to
/// the store, since a dropped write may still commit; their bodies are timed out by
/// [`ApiJson`](crate::ApiJson), and a busy engine gives up after its busy budget.
async fn read_timeout(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if ![Method::GET, Method::HEAD].contains(request.method()) {
        return next.run(request).await;
    }
    let timeout = state.config().request_timeout;
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_elapsed) => {
            ApiError::unavailable("timeout", "the request took longer than the server's limit")
                .into_response()
        }
    }
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

/// Answers for the load-shed layer: a full server is 503 with `Retry-After`.
async fn overloaded(err: tower::BoxError) -> ApiError {
    if err.is::<tower::load_shed::error::Overloaded>() {
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
        check(Method::GET, "/api/debug/sync/devices", Some(Scope::Admin));
        check(Method::GET, "/metrics", Some(Scope::Read));
        check(Method::GET, "/api/ready", None);
        check(Method::POST, "/api/sync/push", Some(Scope::Write));
        check(Method::GET, "/api/sync/pull", Some(Scope::Read));
    }
}
