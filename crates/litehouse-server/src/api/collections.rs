//! `/api/collections`: list, create, read and drop collections; add and drop indexes.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use litehouse_docs::{CollectionInfo, CollectionSpec, IndexSpec, ReferenceSpec};
use serde::Deserialize;
use serde_json::{Value as Json_, json};

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

/// The body of `POST /api/collections`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateCollection {
    name: String,
    #[serde(default)]
    indexes: Vec<IndexSpec>,
    #[serde(default)]
    references: Vec<ReferenceSpec>,
}

/// A collection as clients see it: `{name, indexes, references}`.
pub(crate) fn collection_json(info: &CollectionInfo) -> Json_ {
    json!({
        "name": info.name,
        "indexes": info.spec.indexes,
        "references": info.spec.references,
    })
}

/// `GET /api/collections`.
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<Json_>, ApiError> {
    let collections = state.store().list_collections().await?;
    Ok(Json(json!({
        "items": collections.iter().map(collection_json).collect::<Vec<_>>(),
    })))
}

/// `POST /api/collections`: 201 with `Location`.
pub(crate) async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateCollection>,
) -> Result<Response, ApiError> {
    let CreateCollection {
        name,
        indexes,
        references,
    } = body;
    let spec = CollectionSpec {
        indexes,
        references,
    };
    state.store().create_collection(&name, spec).await?;
    let info = state.store().get_collection(&name).await?;
    let location =
        HeaderValue::from_str(&format!("/api/collections/{name}")).map_err(ApiError::internal)?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(collection_json(&info)),
    )
        .into_response())
}

/// `GET /api/collections/{collection}`.
pub(crate) async fn get(
    State(state): State<AppState>,
    ApiPath(collection): ApiPath<String>,
) -> Result<Json<Json_>, ApiError> {
    let info = state.store().get_collection(&collection).await?;
    Ok(Json(collection_json(&info)))
}

/// `DELETE /api/collections/{collection}`: 204.
pub(crate) async fn drop(
    State(state): State<AppState>,
    ApiPath(collection): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.store().drop_collection(&collection).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn not_implemented(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "not_implemented",
        format!(
            "{what} is not available yet: the store cannot change indexes of an existing collection in this build"
        ),
    )
}

/// `POST /api/collections/{collection}/indexes`: parses the index spec; answers 501 until
/// the store can add indexes.
pub(crate) async fn add_index(
    State(state): State<AppState>,
    ApiPath(collection): ApiPath<String>,
    ApiJson(index): ApiJson<IndexSpec>,
) -> Result<Response, ApiError> {
    state.store().get_collection(&collection).await?;
    // FIXME: wire to Store::add_index once merged: `state.store().add_index(&collection,
    // index).await?` and answer 201 with the collection.
    let _ = index;
    Err(not_implemented("adding an index"))
}

/// `DELETE /api/collections/{collection}/indexes/{name}`: answers 501 until the store can
/// drop indexes.
pub(crate) async fn drop_index(
    State(state): State<AppState>,
    ApiPath((collection, name)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    state.store().get_collection(&collection).await?;
    // FIXME: wire to Store::drop_index once merged: `state.store().drop_index(&collection,
    // &name).await?` and answer 204.
    let _ = name;
    Err(not_implemented("dropping an index"))
}
