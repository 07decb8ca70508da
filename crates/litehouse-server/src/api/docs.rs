//! `/api/collections/{collection}/docs`: list, create (one or a batch), read, replace,
//! merge-patch and delete documents, with `ETag` and `If-Match`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use litehouse_docs::{Document, Page};
use serde_json::{Value as Json_, json};

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, RawQuery};
use crate::query_params::{parse_list_query, path_types};
use crate::state::AppState;

/// The PocketBase envelope: `{items, page, perPage, totalItems, totalPages, nextCursor}`.
pub(crate) fn envelope(page: &Page) -> Json_ {
    json!({
        "items": page.items.iter().map(Document::to_json).collect::<Vec<_>>(),
        "page": page.page,
        "perPage": page.per_page,
        "totalItems": page.total_items,
        "totalPages": page.total_pages,
        "nextCursor": page.next_cursor,
    })
}

/// `"3"` for version 3.
fn etag(document: &Document) -> HeaderValue {
    // Digits and quotes are always a valid header value.
    HeaderValue::from_str(&format!("\"{}\"", document.version))
        .unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

/// The version an `If-Match` header asks for: `"3"` or `W/"3"`; `*` or no header means
/// any version.
pub(crate) fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text == "*" {
        return Ok(None);
    }
    text.strip_prefix("W/")
        .unwrap_or(text)
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .and_then(|version| version.parse::<i64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_if_match",
                "If-Match must be an ETag this server sent, e.g. \"3\"",
            )
            .with_details(json!({ "header": "If-Match" }))
        })
}

fn document_response(status: StatusCode, document: &Document, location: Option<&str>) -> Response {
    let mut response = (status, Json(document.to_json())).into_response();
    response.headers_mut().insert(header::ETAG, etag(document));
    if let Some(location) = location.and_then(|location| HeaderValue::from_str(location).ok()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// `GET /api/collections/{collection}/docs?<list params>`.
#[utoipa::path(
    get,
    path = "/api/collections/{collection}/docs",
    tag = "documents",
    summary = "List documents. Filters are PATH=OP.VALUE query parameters (eq, neq, gt, gte, lt, lte, in, nin, like, ilike, exists, contains; not. negates), repeatable",
    params(("collection" = String, Path, description = "Collection name"), ("order" = Option<String>, Query, description = "Sort keys: path[.asc|.desc], comma-separated"), ("page" = Option<u64>, Query, minimum = 1, description = "Page number from 1"), ("perPage" = Option<u64>, Query, minimum = 1, maximum = 1000, description = "Items per page (default 30, at most the server's --max-per-page, 1000)"), ("cursor" = Option<String>, Query, description = "Cursor paging: empty for the first page, then nextCursor"), ("skipTotal" = Option<bool>, Query, description = "Skip counting every match"), ("or" = Option<String>, Query, description = "Any of: (path.op.value,and(...),...)"), ("and" = Option<String>, Query, description = "All of: (path.op.value,...)")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "One page", body = crate::openapi::ListEnvelope),
        (status = 400, description = "Invalid filter, path, value, order, page or cursor", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such collection", body = crate::openapi::ErrorBody),
        (status = 401, description = "No token, or a token that is not valid (data routes: only with --require-token)", body = crate::openapi::ErrorBody),
        (status = 403, description = "The token's scope does not allow this", body = crate::openapi::ErrorBody),
        (status = 503, description = "Busy database, concurrency limit or request timeout; see Retry-After", body = crate::openapi::ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiPath(collection): ApiPath<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Json_>, ApiError> {
    let info = state.store().get_collection(&collection).await?;
    let query = parse_list_query(&raw, &path_types(&info.spec), state.list_limits())?;
    let page = state.store().find(&collection, &query).await?;
    Ok(Json(envelope(&page)))
}

/// `POST /api/collections/{collection}/docs`: one object (201, `Location`, `ETag`) or an
/// array created all or none (201 with `{items}`).
#[utoipa::path(
    post,
    path = "/api/collections/{collection}/docs",
    tag = "documents",
    summary = "Create one document (an object) or a batch (an array, all or none)",
    request_body(content = Object, content_type = "application/json", description = "A JSON object, or an array of objects"),
    params(("collection" = String, Path, description = "Collection name")),
    security((), ("bearer" = [])),
    responses(
        (status = 201, description = "Created: the document (with Location and ETag) or {items} for a batch", body = crate::openapi::DocumentSchema),
        (status = 400, description = "Invalid JSON or document", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such collection", body = crate::openapi::ErrorBody),
        (status = 409, description = "A unique index already holds a value (details.conflictingId)", body = crate::openapi::ErrorBody),
        (status = 413, description = "Body or batch too large", body = crate::openapi::ErrorBody),
        (status = 415, description = "Not application/json", body = crate::openapi::ErrorBody),
        (status = 401, description = "No token, or a token that is not valid (data routes: only with --require-token)", body = crate::openapi::ErrorBody),
        (status = 403, description = "The token's scope does not allow this", body = crate::openapi::ErrorBody),
        (status = 503, description = "Busy database, concurrency limit or request timeout; see Retry-After", body = crate::openapi::ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    ApiPath(collection): ApiPath<String>,
    ApiJson(body): ApiJson<Json_>,
) -> Result<Response, ApiError> {
    match body {
        Json_::Array(bodies) => {
            let max_batch = state.config().max_batch;
            if bodies.len() > max_batch {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "batch_too_large",
                    format!("at most {max_batch} documents per batch"),
                )
                .with_details(json!({ "max": max_batch, "found": bodies.len() })));
            }
            let documents = state.store().create_many(&collection, bodies).await?;
            let items: Vec<Json_> = documents.iter().map(Document::to_json).collect();
            Ok((StatusCode::CREATED, Json(json!({ "items": items }))).into_response())
        }
        body => {
            let document = state.store().create(&collection, body).await?;
            let location = format!("/api/collections/{collection}/docs/{}", document.id);
            Ok(document_response(
                StatusCode::CREATED,
                &document,
                Some(&location),
            ))
        }
    }
}

/// `GET /api/collections/{collection}/docs/{id}`.
#[utoipa::path(
    get,
    path = "/api/collections/{collection}/docs/{id}",
    tag = "documents",
    summary = "Read a document",
    params(("collection" = String, Path, description = "Collection name"), ("id" = String, Path, description = "Document id")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The document, with ETag", body = crate::openapi::DocumentSchema),
        (status = 400, description = "Invalid collection name", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such collection or document", body = crate::openapi::ErrorBody),
        (status = 401, description = "No token, or a token that is not valid (data routes: only with --require-token)", body = crate::openapi::ErrorBody),
        (status = 403, description = "The token's scope does not allow this", body = crate::openapi::ErrorBody),
        (status = 503, description = "Busy database, concurrency limit or request timeout; see Retry-After", body = crate::openapi::ErrorBody),
    )
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    ApiPath((collection, id)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let document = state.store().get(&collection, &id).await?;
    Ok(document_response(StatusCode::OK, &document, None))
}

/// `PUT /api/collections/{collection}/docs/{id}`: replaces the body.
#[utoipa::path(
    put,
    path = "/api/collections/{collection}/docs/{id}",
    tag = "documents",
    summary = "Replace a document's body",
    request_body(content = Object, content_type = "application/json"),
    params(("collection" = String, Path, description = "Collection name"), ("id" = String, Path, description = "Document id"), ("If-Match" = Option<String>, Header, description = "ETag from a previous answer, e.g. \"3\"; 412 when the document moved on")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The new version, with ETag", body = crate::openapi::DocumentSchema),
        (status = 400, description = "Invalid JSON, document or If-Match", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such collection or document", body = crate::openapi::ErrorBody),
        (status = 409, description = "Unique conflict", body = crate::openapi::ErrorBody),
        (status = 412, description = "If-Match does not match the version", body = crate::openapi::ErrorBody),
        (status = 413, description = "Body too large", body = crate::openapi::ErrorBody),
        (status = 415, description = "Not application/json", body = crate::openapi::ErrorBody),
        (status = 401, description = "No token, or a token that is not valid (data routes: only with --require-token)", body = crate::openapi::ErrorBody),
        (status = 403, description = "The token's scope does not allow this", body = crate::openapi::ErrorBody),
        (status = 503, description = "Busy database, concurrency limit or request timeout; see Retry-After", body = crate::openapi::ErrorBody),
    )
)]
pub(crate) async fn replace(
    State(state): State<AppState>,
    ApiPath((collection, id)): ApiPath<(String, String)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Json_>,
) -> Result<Response, ApiError> {
    let expected = if_match(&headers)?;
    let document = state
        .store()
        .replace(&collection, &id, body, expected)
        .await?;
    Ok(document_response(StatusCode::OK, &document, None))
}

/// `PATCH /api/collections/{collection}/docs/{id}`: an RFC 7386 merge patch.
#[utoipa::path(
    patch,
    path = "/api/collections/{collection}/docs/{id}",
    tag = "documents",
    summary = "Apply an RFC 7386 merge patch (null removes a key)",
    request_body(content = Object, content_type = "application/merge-patch+json"),
    params(("collection" = String, Path, description = "Collection name"), ("id" = String, Path, description = "Document id"), ("If-Match" = Option<String>, Header, description = "ETag from a previous answer, e.g. \"3\"; 412 when the document moved on")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The new version, with ETag", body = crate::openapi::DocumentSchema),
        (status = 400, description = "Invalid JSON, patch or If-Match", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such collection or document", body = crate::openapi::ErrorBody),
        (status = 409, description = "Unique conflict", body = crate::openapi::ErrorBody),
        (status = 412, description = "If-Match does not match the version", body = crate::openapi::ErrorBody),
        (status = 413, description = "Body too large", body = crate::openapi::ErrorBody),
        (status = 415, description = "Not a JSON content type", body = crate::openapi::ErrorBody),
        (status = 401, description = "No token, or a token that is not valid (data routes: only with --require-token)", body = crate::openapi::ErrorBody),
        (status = 403, description = "The token's scope does not allow this", body = crate::openapi::ErrorBody),
        (status = 503, description = "Busy database, concurrency limit or request timeout; see Retry-After", body = crate::openapi::ErrorBody),
    )
)]
pub(crate) async fn patch(
    State(state): State<AppState>,
    ApiPath((collection, id)): ApiPath<(String, String)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Json_>,
) -> Result<Response, ApiError> {
    let expected = if_match(&headers)?;
    let document = state
        .store()
        .patch(&collection, &id, body, expected)
        .await?;
    Ok(document_response(StatusCode::OK, &document, None))
}

/// `DELETE /api/collections/{collection}/docs/{id}`: 200 with what was deleted or nulled by
/// reference rules.
#[utoipa::path(
    delete,
    path = "/api/collections/{collection}/docs/{id}",
    tag = "documents",
    summary = "Delete a document, applying reference rules",
    params(("collection" = String, Path, description = "Collection name"), ("id" = String, Path, description = "Document id"), ("If-Match" = Option<String>, Header, description = "ETag from a previous answer, e.g. \"3\"; 412 when the document moved on")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "What was deleted or nulled", body = crate::openapi::DeleteReportSchema),
        (status = 400, description = "Invalid If-Match", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such collection or document", body = crate::openapi::ErrorBody),
        (status = 409, description = "A restrict reference points at it (details.conflictingId)", body = crate::openapi::ErrorBody),
        (status = 412, description = "If-Match does not match the version", body = crate::openapi::ErrorBody),
        (status = 401, description = "No token, or a token that is not valid (data routes: only with --require-token)", body = crate::openapi::ErrorBody),
        (status = 403, description = "The token's scope does not allow this", body = crate::openapi::ErrorBody),
        (status = 503, description = "Busy database, concurrency limit or request timeout; see Retry-After", body = crate::openapi::ErrorBody),
    )
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    ApiPath((collection, id)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Json_>, ApiError> {
    let expected = if_match(&headers)?;
    let report = state.store().delete(&collection, &id, expected).await?;
    Ok(Json(
        json!({ "deleted": report.deleted, "nulled": report.nulled }),
    ))
}
