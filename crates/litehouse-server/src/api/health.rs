//! `/api/health` (the process answers) and `/api/ready` (the database answers).

use axum::Json;
use axum::extract::State;
use serde_json::{Value as Json_, json};

use crate::error::ApiError;
use crate::state::AppState;

/// `GET /api/health`: 200 while the process runs.
#[utoipa::path(
    get,
    path = "/api/health",
    operation_id = "health",
    tag = "operations",
    summary = "The process is up",
    responses(
        (status = 200, description = "Up", body = crate::openapi::StatusSchema),
        crate::openapi::OpenErrors,
    )
)]
pub(crate) async fn health() -> Json<Json_> {
    Json(json!({ "status": "ok" }))
}

/// `GET /api/ready`: 200 when the database answers a read, 503 otherwise.
#[utoipa::path(
    get,
    path = "/api/ready",
    operation_id = "ready",
    tag = "operations",
    summary = "The database answers",
    responses(
        (status = 200, description = "Ready", body = crate::openapi::StatusSchema),
        crate::openapi::OpenErrors,
    )
)]
pub(crate) async fn ready(State(state): State<AppState>) -> Result<Json<Json_>, ApiError> {
    match state.store().list_collections().await {
        Ok(_) => Ok(Json(
            json!({ "status": "ready", "engine": state.store().engine() }),
        )),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            Err(ApiError::unavailable(
                "not_ready",
                "the database does not answer",
            ))
        }
    }
}
