//! The `/api/debug` routes: engine statistics, forced buffer flush, maintenance and logs.
//!
//! [`debug_router`] builds them over any [`Database`], with an optional [`WriteBuffer`] and
//! [`LogDatabase`], so an axum application embedding litehouse can nest the same routes over
//! its own handles; the router checks the admin token itself. `litehouse serve` mounts them
//! behind its own token check, plus `explain`, which needs the document store.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use litehouse::{Database, LogDatabase, LogLevel, LogQuery, WriteBuffer};
use serde::Deserialize;
use serde_json::{Value as Json_, json};

use crate::auth::{Auth, Scope};
use crate::error::ApiError;
use crate::extract::ApiPath;

/// The handles the debug routes work on.
///
/// ```
/// # let db = litehouse::Database::open_memory("debug-doc", litehouse::Config::default())?;
/// use litehouse_server::{DebugHandles, debug_router};
/// let debug = DebugHandles { database: Some(db), ..DebugHandles::default() };
/// let router: axum::Router = axum::Router::new().nest("/debug", debug_router(debug, "admin-secret"));
/// # let _ = router;
/// # Ok::<(), litehouse::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct DebugHandles {
    /// The engine whose stats and maintenance the routes expose; `None` (PostgreSQL) makes
    /// the database routes answer 404 `no_database`.
    pub database: Option<Database>,
    /// A write buffer to flush and report on.
    pub buffer: Option<WriteBuffer>,
    /// The log database `/logs` reads.
    pub logs: Option<LogDatabase>,
    /// Where `backup` writes its copies; `None` refuses backups.
    pub backup_dir: Option<PathBuf>,
}

/// The debug routes (`/db/stats`, `/db/buffer/flush`, `/db/{vacuum|analyze|optimize|check|backup}`,
/// `/logs`), each needing `Authorization: Bearer ADMIN_TOKEN`. Nest it where you like.
pub fn debug_router<S: Clone + Send + Sync + 'static>(
    handles: DebugHandles,
    admin_token: &str,
) -> Router<S> {
    let auth = Arc::new(Auth::new(admin_token, None, true));
    routes(handles).layer(middleware::from_fn(move |request: Request, next: Next| {
        let auth = Arc::clone(&auth);
        async move {
            match auth.check(request.headers(), Scope::Admin, false).await {
                Ok(_) => next.run(request).await,
                Err(err) => err.into_response(),
            }
        }
    }))
}

/// The routes without a token check, for a caller that checks tokens itself.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>(handles: DebugHandles) -> Router<S> {
    Router::new()
        .route("/db/stats", get(stats))
        .route("/db/buffer/flush", post(flush))
        .route("/db/{action}", post(maintenance))
        .route("/logs", get(logs))
        .with_state(Arc::new(handles))
}

type Handles = State<Arc<DebugHandles>>;

fn no_database() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_database",
        "this server has no SQLite engine to inspect (PostgreSQL backend)",
    )
}

/// An engine error as the API answers it: busy is 503 with `Retry-After`, anything else 500.
pub(crate) fn engine_error(err: litehouse::Error) -> ApiError {
    if err.is_busy() {
        let seconds = err.retry_after().map_or(1, |after| after.as_secs().max(1));
        return ApiError::unavailable("busy", "the database is busy; retry later")
            .with_retry_after(seconds);
    }
    ApiError::internal(err)
}

#[utoipa::path(
    get,
    path = "/api/debug/db/stats",
    operation_id = "debugStats",
    tag = "debug",
    summary = "Engine, write buffer and log database statistics",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "{engine, buffer, logs}", body = Object),
        crate::openapi::AdminErrors,
    )
)]
pub(crate) async fn stats(State(handles): Handles) -> Result<Json<Json_>, ApiError> {
    let engine = handles
        .database
        .as_ref()
        .map(|database| serde_json::to_value(database.stats()).unwrap_or_default());
    let buffer = handles
        .buffer
        .as_ref()
        .map(|buffer| serde_json::to_value(buffer.stats()).unwrap_or_default());
    let logs = match &handles.logs {
        Some(logs) => Some(
            serde_json::to_value(logs.stats().await.map_err(engine_error)?).unwrap_or_default(),
        ),
        None => None,
    };
    Ok(Json(
        json!({ "engine": engine, "buffer": buffer, "logs": logs }),
    ))
}

#[utoipa::path(
    post,
    path = "/api/debug/db/buffer/flush",
    operation_id = "debugFlushBuffer",
    tag = "debug",
    summary = "Flush the write buffer now",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "{flushed}", body = Object),
        (status = 404, description = "No write buffer", body = crate::openapi::ErrorBody),
        crate::openapi::AdminErrors,
    )
)]
pub(crate) async fn flush(State(handles): Handles) -> Result<Json<Json_>, ApiError> {
    let buffer = handles.buffer.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_buffer",
            "no write buffer is configured",
        )
    })?;
    let flushed = buffer.force_flush().await.map_err(engine_error)?;
    Ok(Json(json!({ "flushed": flushed })))
}

#[utoipa::path(
    post,
    path = "/api/debug/db/{action}",
    operation_id = "debugMaintenance",
    tag = "debug",
    summary = "Run vacuum, analyze, optimize, check (integrity) or backup",
    params(("action" = String, Path, pattern = "^(vacuum|analyze|optimize|check|backup)$", description = "vacuum, analyze, optimize, check or backup")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "{action, ok, result}", body = Object),
        (status = 404, description = "Unknown action or no SQLite engine or no backup directory", body = crate::openapi::ErrorBody),
        crate::openapi::AdminErrors,
    )
)]
pub(crate) async fn maintenance(
    State(handles): Handles,
    ApiPath(action): ApiPath<String>,
) -> Result<Json<Json_>, ApiError> {
    let database = handles.database.as_ref().ok_or_else(no_database)?;
    let result = match action.as_str() {
        "vacuum" => database.vacuum().await.map(|()| json!(null)),
        "analyze" => database.analyze().await.map(|()| json!(null)),
        "optimize" => database.optimize().await.map(|()| json!(null)),
        "check" => database
            .integrity_check()
            .await
            .map(|problems| json!({ "ok": problems.is_empty(), "problems": problems })),
        "backup" => {
            let dir = handles.backup_dir.as_ref().ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "no_backup_dir",
                    "backups are not configured",
                )
            })?;
            let stamp = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |since| since.as_micros());
            let path = dir.join(format!("litehouse-backup-{stamp}.db"));
            database.backup(path.clone(), |_| {}).await.map(
                |done| json!({ "path": path.display().to_string(), "pages": done.pages_total }),
            )
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "route_not_found",
                "maintenance actions: vacuum, analyze, optimize, check, backup",
            )
            .with_details(json!({ "action": action })));
        }
    };
    let result = result.map_err(engine_error)?;
    Ok(Json(
        json!({ "action": action, "ok": true, "result": result }),
    ))
}

/// The largest `sinceSeconds` of `/logs`: about 31 years.
const MAX_SINCE_SECONDS: u64 = 1_000_000_000;

/// `GET /logs?level=warn&sinceSeconds=300&text=timeout&limit=100`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct LogParams {
    level: Option<String>,
    since_seconds: Option<u64>,
    text: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/debug/explain/{collection}?<list params>`: the SQL, parameters and plan of a
/// list query (needs the document store, so it lives beside the debug router).
#[utoipa::path(
    get,
    path = "/api/debug/explain/{collection}",
    operation_id = "debugExplain",
    tag = "debug",
    summary = "Explain a list query: SQL, parameters, plan and whether an index is used",
    params(crate::openapi::CollectionPath),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "{engine, sql, params, plan, usesIndex}", body = Object),
        (status = 400, description = "Invalid list parameters", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such collection", body = crate::openapi::ErrorBody),
        crate::openapi::AdminErrors,
    )
)]
pub(crate) async fn explain(
    State(state): State<crate::state::AppState>,
    ApiPath(collection): ApiPath<String>,
    crate::extract::RawQuery(raw): crate::extract::RawQuery,
) -> Result<Json<Json_>, ApiError> {
    let info = state.store().get_collection(&collection).await?;
    let query = crate::query_params::parse_list_query(
        &raw,
        &crate::query_params::path_types(&info.spec),
        state.list_limits(),
    )?;
    let explain = state.store().explain(&collection, &query).await?;
    Ok(Json(json!({
        "engine": explain.engine,
        "sql": explain.sql,
        "params": explain.params,
        "plan": explain.plan,
        "usesIndex": explain.uses_index,
    })))
}

#[utoipa::path(
    get,
    path = "/api/debug/logs",
    operation_id = "debugLogs",
    tag = "debug",
    summary = "Recent server log entries, newest first",
    params(("level" = Option<String>, Query, pattern = "^(error|warn|info|debug|trace)$", description = "error, warn, info, debug or trace: at least this severe"), ("sinceSeconds" = Option<u64>, Query, maximum = 1000000000, description = "Only the last N seconds (at most 1e9, about 31 years)"), ("text" = Option<String>, Query, description = "Message or fields contain this text"), ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "Most entries (default 100)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "{items}", body = Object),
        (status = 400, description = "Invalid level, sinceSeconds or limit", body = crate::openapi::ErrorBody),
        (status = 404, description = "No log database", body = crate::openapi::ErrorBody),
        crate::openapi::AdminErrors,
    )
)]
pub(crate) async fn logs(
    State(handles): Handles,
    params: Result<Query<LogParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Json_>, ApiError> {
    let Query(params) = params
        .map_err(|rejection| ApiError::bad_request("invalid_query", rejection.body_text()))?;
    let logs = handles.logs.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_log_database",
            "no log database is configured",
        )
    })?;
    let min_level = match params.level.as_deref() {
        Some(level) => Some(level.parse::<LogLevel>().map_err(|err| {
            ApiError::bad_request("invalid_query", err.to_string())
                .with_details(json!({ "param": "level" }))
        })?),
        None => None,
    };
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("invalid_query", "limit is 1 to 1000")
            .with_details(json!({ "param": "limit" })));
    }
    if params
        .since_seconds
        .is_some_and(|seconds| seconds > MAX_SINCE_SECONDS)
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("sinceSeconds is at most {MAX_SINCE_SECONDS}"),
        )
        .with_details(json!({ "param": "sinceSeconds" })));
    }
    let since = params
        .since_seconds
        .and_then(|seconds| SystemTime::now().checked_sub(Duration::from_secs(seconds)));
    let query = LogQuery {
        min_level,
        since,
        contains: params.text,
        limit,
        ..LogQuery::default()
    };
    let entries = logs.query(&query).await.map_err(engine_error)?;
    Ok(Json(json!({ "items": entries })))
}
