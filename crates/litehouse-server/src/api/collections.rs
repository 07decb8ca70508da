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
    operation_id = "listCollections",
    tag = "collections",
    summary = "List collections",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Every collection", body = crate::openapi::CollectionList),
        crate::openapi::DataErrors,
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
    operation_id = "createCollection",
    tag = "collections",
    summary = "Create a collection",
    request_body = crate::openapi::CreateCollectionSchema,
    security((), ("bearer" = [])),
    responses(
        (status = 201, description = "Created, with Location", body = crate::openapi::CollectionSchema),
        (status = 400, description = "Invalid JSON, name, path or spec", body = crate::openapi::ErrorBody),
        (status = 404, description = "A reference names a collection that does not exist", body = crate::openapi::ErrorBody),
        (status = 409, description = "The collection exists", body = crate::openapi::ErrorBody),
        (status = 413, description = "Body too large", body = crate::openapi::ErrorBody),
        (status = 415, description = "Not application/json", body = crate::openapi::ErrorBody),
        crate::openapi::DataErrors,
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
    // A reference to a collection that does not exist (other than this one) is 404 with the
    // missing collection, as a read of it would be; the store checks again in its transaction.
    for reference in &references {
        if reference.collection != name {
            state
                .store()
                .get_collection(&reference.collection)
                .await
                .map_err(|err| referenced(err, &reference.path))?;
        }
    }
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
    operation_id = "getCollection",
    tag = "collections",
    summary = "Read a collection",
    params(crate::openapi::CollectionPath),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The collection", body = crate::openapi::CollectionSchema),
        (status = 400, description = "Invalid name", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such collection", body = crate::openapi::ErrorBody),
        crate::openapi::DataErrors,
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
    operation_id = "dropCollection",
    tag = "collections",
    summary = "Drop a collection and its documents",
    params(crate::openapi::CollectionPath),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "Dropped"),
        (status = 400, description = "Invalid name", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such collection", body = crate::openapi::ErrorBody),
        (status = 409, description = "Another collection references it", body = crate::openapi::ErrorBody),
        crate::openapi::DataErrors,
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
    operation_id = "addIndex",
    tag = "collections",
    summary = "Add an index",
    request_body = crate::openapi::IndexSchema,
    params(crate::openapi::CollectionPath),
    security((), ("bearer" = [])),
    responses(
        (status = 400, description = "Invalid JSON or index spec", body = crate::openapi::ErrorBody),
        (status = 201, description = "Index added; the collection with its spec", body = crate::openapi::CollectionSchema),
        (status = 404, description = "No such collection", body = crate::openapi::ErrorBody),
        (status = 409, description = "An index of that name exists, a field is already declared with another type, or the data violates the unique index (details.conflictingIds)", body = crate::openapi::ErrorBody),
        (status = 413, description = "Body too large", body = crate::openapi::ErrorBody),
        (status = 415, description = "Not application/json", body = crate::openapi::ErrorBody),
        crate::openapi::DataErrors,
    )
)]
pub(crate) async fn add_index(
    State(state): State<AppState>,
    ApiPath(collection): ApiPath<String>,
    ApiJson(index): ApiJson<IndexSpec>,
) -> Result<Response, ApiError> {
    // An existing name is a conflict (409), like an existing collection; the store checks
    // again when it adds the index.
    let current = state.store().get_collection(&collection).await?;
    if current
        .spec
        .indexes
        .iter()
        .any(|existing| existing.name == index.name)
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "index_exists",
            format!(
                "collection {collection:?} already has an index {:?}",
                index.name
            ),
        )
        .with_details(json!({ "collection": collection, "index": index.name })));
    }
    // So is a path the collection already declares with another type.
    let declared = crate::query_params::path_types(&current.spec);
    for field in &index.fields {
        if let Some(existing) = declared
            .get(&field.path)
            .filter(|t| **t != field.field_type)
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "type_conflict",
                format!(
                    "{:?} is already declared as {existing}, not {}",
                    field.path, field.field_type
                ),
            )
            .with_details(json!({
                "collection": collection,
                "path": field.path,
                "declared": existing.to_string(),
            })));
        }
    }
    state.store().add_index(&collection, index).await?;
    let info = state.store().get_collection(&collection).await?;
    Ok((StatusCode::CREATED, Json(collection_json(&info))).into_response())
}

/// `DELETE /api/collections/{collection}/indexes/{name}`: drops an index.
#[utoipa::path(
    delete,
    path = "/api/collections/{collection}/indexes/{name}",
    operation_id = "dropIndex",
    tag = "collections",
    summary = "Drop an index",
    params(crate::openapi::IndexPath),
    security((), ("bearer" = [])),
    responses(
        (status = 400, description = "Invalid name", body = crate::openapi::ErrorBody),
        (status = 204, description = "Index dropped"),
        (status = 404, description = "No such collection or index", body = crate::openapi::ErrorBody),
        crate::openapi::DataErrors,
    )
)]
pub(crate) async fn drop_index(
    State(state): State<AppState>,
    ApiPath((collection, name)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    state.store().drop_index(&collection, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A referenced collection that is missing is 404 naming it and the referencing path.
fn referenced(err: litehouse_docs::Error, path: &str) -> ApiError {
    match err {
        litehouse_docs::Error::CollectionNotFound { collection } => ApiError::new(
            StatusCode::NOT_FOUND,
            "collection_not_found",
            format!("reference {path:?} names collection {collection:?}, which does not exist"),
        )
        .with_details(json!({ "collection": collection, "path": path })),
        other => ApiError::from(other),
    }
}
