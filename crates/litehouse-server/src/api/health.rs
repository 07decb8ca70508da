//! `/api/health` (the process answers) and `/api/ready` (the database answers).

use axum::Json;
use axum::extract::State;
use serde_json::{Value as Json_, json};

use crate::error::ApiError;
use crate::state::AppState;

/// `GET /api/health`: 200 while the process runs.
pub(crate) async fn health() -> Json<Json_> {
    Json(json!({ "status": "ok" }))
}

/// `GET /api/ready`: 200 when the database answers a read, 503 otherwise.
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
