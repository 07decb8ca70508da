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
#[utoipa::path(
    get,
    path = "/api/collections",
    tag = "collections",
    summary = "List collections",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Every collection", body = crate::openapi::CollectionList),
        (status = 401, description = "No token, or a token that is not valid (data routes: only with --require-token)", body = crate::openapi::ErrorBody),
        (status = 403, description = "The token's scope does not allow this", body = crate::openapi::ErrorBody),
        (status = 503, description = "Busy database, concurrency limit or request timeout; see Retry-After", body = crate::openapi::ErrorBody),
    )
)]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<Json_>, ApiError> {
    let collections = state.store().list_collections().await?;
    Ok(Json(json!({
        "items": collections.iter().map(collection_json).collect::<Vec<_>>(),
    })))
}

/// `POST /api/collections`: 201 with `Location`.
#[utoipa::path(
    post,
    path = "/api/collections",
    tag = "collections",
    summary = "Create a collection",
    request_body = crate::openapi::CreateCollectionSchema,
    security((), ("bearer" = [])),
    responses(
        (status = 201, description = "Created, with Location", body = crate::openapi::CollectionSchema),
        (status = 400, description = "Invalid JSON, name, path or spec", body = crate::openapi::ErrorBody),
        (status = 409, description = "The collection exists", body = crate::openapi::ErrorBody),
        (status = 413, description = "Body too large", body = crate::openapi::ErrorBody),
        (status = 415, description = "Not application/json", body = crate::openapi::ErrorBody),
        (status = 401, description = "No token, or a token that is not valid (data routes: only with --require-token)", body = crate::openapi::ErrorBody),
        (status = 403, description = "The token's scope does not allow this", body = crate::openapi::ErrorBody),
        (status = 503, description = "Busy database, concurrency limit or request timeout; see Retry-After", body = crate::openapi::ErrorBody),
    )
)]
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
#[utoipa::path(
    get,
    path = "/api/collections/{collection}",
    tag = "collections",
    summary = "Read a collection",
    params(("collection" = String, Path, description = "Collection name")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The collection", body = crate::openapi::CollectionSchema),
        (status = 400, description = "Invalid name", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such collection", body = crate::openapi::ErrorBody),
        (status = 401, description = "No token, or a token that is not valid (data routes: only with --require-token)", body = crate::openapi::ErrorBody),
        (status = 403, description = "The token's scope does not allow this", body = crate::openapi::ErrorBody),
        (status = 503, description = "Busy database, concurrency limit or request timeout; see Retry-After", body = crate::openapi::ErrorBody),
    )
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    ApiPath(collection): ApiPath<String>,
) -> Result<Json<Json_>, ApiError> {
    let info = state.store().get_collection(&collection).await?;
    Ok(Json(collection_json(&info)))
}

/// `DELETE /api/collections/{collection}`: 204.
#[utoipa::path(
    delete,
    path = "/api/collections/{collection}",
    tag = "collections",
    summary = "Drop a collection and its documents",
    params(("collection" = String, Path, description = "Collection name")),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "Dropped"),
        (status = 400, description = "Invalid name", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such collection", body = crate::openapi::ErrorBody),
        (status = 409, description = "Another collection references it", body = crate::openapi::ErrorBody),
        (status = 401, description = "No token, or a token that is not valid (data routes: only with --require-token)", body = crate::openapi::ErrorBody),
        (status = 403, description = "The token's scope does not allow this", body = crate::openapi::ErrorBody),
        (status = 503, description = "Busy database, concurrency limit or request timeout; see Retry-After", body = crate::openapi::ErrorBody),
    )
)]
pub(crate) async fn drop(
    State(state): State<AppState>,
    ApiPath(collection): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.store().drop_collection(&collection).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/collections/{collection}/indexes`: adds an index, built over the documents
/// already there; a unique index the data violates is 409 with the conflicting ids.
#[utoipa::path(
    post,
    path = "/api/collections/{collection}/indexes",
    tag = "collections",
    summary = "Add an index",
    request_body = crate::openapi::IndexSchema,
    params(("collection" = String, Path, description = "Collection name")),
    security((), ("bearer" = [])),
    responses(
        (status = 400, description = "Invalid JSON or index spec", body = crate::openapi::ErrorBody),
        (status = 201, description = "Index added; the collection with its spec", body = crate::openapi::CollectionSchema),
        (status = 404, description = "No such collection", body = crate::openapi::ErrorBody),
        (status = 409, description = "An index of that name exists, or the data violates the unique index (details.conflictingIds)", body = crate::openapi::ErrorBody),
        (status = 413, description = "Body too large", body = crate::openapi::ErrorBody),
        (status = 415, description = "Not application/json", body = crate::openapi::ErrorBody),
        (status = 401, description = "No token, or a token that is not valid (data routes: only with --require-token)", body = crate::openapi::ErrorBody),
        (status = 403, description = "The token's scope does not allow this", body = crate::openapi::ErrorBody),
        (status = 503, description = "Busy database, concurrency limit or request timeout; see Retry-After", body = crate::openapi::ErrorBody),
    )
)]
pub(crate) async fn add_index(
    State(state): State<AppState>,
    ApiPath(collection): ApiPath<String>,
    ApiJson(index): ApiJson<IndexSpec>,
) -> Result<Response, ApiError> {
    state.store().add_index(&collection, index).await?;
    let info = state.store().get_collection(&collection).await?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

/// `DELETE /api/collections/{collection}/indexes/{name}`: drops an index.
#[utoipa::path(
    delete,
    path = "/api/collections/{collection}/indexes/{name}",
    tag = "collections",
    summary = "Drop an index",
    params(("collection" = String, Path, description = "Collection name"), ("name" = String, Path, description = "Index name")),
    security((), ("bearer" = [])),
    responses(
        (status = 400, description = "Invalid name", body = crate::openapi::ErrorBody),
        (status = 204, description = "Index dropped"),
        (status = 404, description = "No such collection or index", body = crate::openapi::ErrorBody),
        (status = 401, description = "No token, or a token that is not valid (data routes: only with --require-token)", body = crate::openapi::ErrorBody),
        (status = 403, description = "The token's scope does not allow this", body = crate::openapi::ErrorBody),
        (status = 503, description = "Busy database, concurrency limit or request timeout; see Retry-After", body = crate::openapi::ErrorBody),
    )
)]
pub(crate) async fn drop_index(
    State(state): State<AppState>,
    ApiPath((collection, name)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    state.store().drop_index(&collection, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
