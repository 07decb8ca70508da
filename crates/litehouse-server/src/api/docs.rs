//! `/api/collections/{collection}/docs`: list, create (one or a batch), read, replace,
//! merge-patch and delete documents, with `ETag` and `If-Match`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use litehouse_docs::{Document, Page};
use serde_json::value::RawValue;
use serde_json::{Value as Json_, json};

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, RawQuery};
use crate::query_params::{parse_list_query, path_types};
use crate::state::AppState;

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
    let invalid = || {
        ApiError::bad_request(
            "invalid_if_match",
            "If-Match must be an ETag this server sent, e.g. \"3\"",
        )
        .with_details(json!({ "header": "If-Match" }))
    };
    // Bytes outside visible ASCII are never an ETag of ours.
    let text = value.to_str().map_err(|_| invalid())?.trim();
    // An empty header (curl -H 'If-Match;') states no condition.
    if text == "*" || text.is_empty() {
        return Ok(None);
    }
    text.strip_prefix("W/")
        .unwrap_or(text)
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        // Our ETags are 1 to 18 digits; no sign, no spaces.
        .filter(|version| {
            (1..=18).contains(&version.len()) && version.bytes().all(|b| b.is_ascii_digit())
        })
        .and_then(|version| version.parse::<i64>().ok())
        .map(Some)
        .ok_or_else(invalid)
}

fn document_response(status: StatusCode, document: Document, location: Option<&str>) -> Response {
    let etag = etag(&document);
    let mut response = (status, Json(document.into_json())).into_response();
    response.headers_mut().insert(header::ETAG, etag);
    if let Some(location) = location.and_then(|location| HeaderValue::from_str(location).ok()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// `GET /api/collections/{collection}/docs?<list params>`.
#[utoipa::path(
    get,
    path = "/api/collections/{collection}/docs",
    operation_id = "listDocuments",
    tag = "documents",
    summary = "List documents. Filters are PATH=OP.VALUE query parameters (eq, neq, gt, gte, lt, lte, in, nin, like, ilike, exists, contains; not. negates), repeatable",
    params(crate::openapi::CollectionPath, ("order" = Option<String>, Query, pattern = "^[A-Za-z_][A-Za-z0-9_]{0,63}(\\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,7}(\\.(asc|desc))?(,[A-Za-z_][A-Za-z0-9_]{0,63}(\\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,7}(\\.(asc|desc))?){0,7}$", description = "Sort keys: path[.asc|.desc], comma-separated (at most 8)"), ("page" = Option<u64>, Query, minimum = 1, description = "Page number from 1"), ("perPage" = Option<u64>, Query, minimum = 1, maximum = 1000, description = "Items per page (default 30, at most the server's --max-per-page, 1000)"), ("cursor" = Option<String>, Query, description = "Cursor paging: empty for the first page, then nextCursor"), ("skipTotal" = Option<bool>, Query, description = "Skip counting every match"), ("or" = Option<String>, Query, pattern = "^\\(([A-Za-z_][A-Za-z0-9_]{0,63}(\\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,7}\\.(not\\.)?(eq|neq|gt|gte|lt|lte|like|ilike)\\.[A-Za-z0-9_ -]*)(,([A-Za-z_][A-Za-z0-9_]{0,63}(\\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,7}\\.(not\\.)?(eq|neq|gt|gte|lt|lte|like|ilike)\\.[A-Za-z0-9_ -]*)){0,9}\\)$", description = "Any of: (path.op.value,and(...),not.or(...),...); the pattern shows the flat form"), ("and" = Option<String>, Query, pattern = "^\\(([A-Za-z_][A-Za-z0-9_]{0,63}(\\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,7}\\.(not\\.)?(eq|neq|gt|gte|lt|lte|like|ilike)\\.[A-Za-z0-9_ -]*)(,([A-Za-z_][A-Za-z0-9_]{0,63}(\\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,7}\\.(not\\.)?(eq|neq|gt|gte|lt|lte|like|ilike)\\.[A-Za-z0-9_ -]*)){0,9}\\)$", description = "All of: (path.op.value,or(...),...); the pattern shows the flat form"), ("filters" = Option<std::collections::BTreeMap<String, String>>, Query, style = Form, explode, description = "Filters, one query parameter each: PATH=[not.]OP.VALUE, e.g. age=gte.18, tags=in.(a,b), email=exists.true")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "One page", body = crate::openapi::ListEnvelope),
        (status = 400, description = "Invalid filter, path, value, order, page or cursor", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such collection", body = crate::openapi::ErrorBody),
        crate::openapi::DataErrors,
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiPath(collection): ApiPath<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<Box<RawValue>>>, ApiError> {
    let info = state.store().get_collection(&collection).await?;
    let query = parse_list_query(&raw, &path_types(&info.spec), state.list_limits())?;
    // The PocketBase envelope, `{items, page, perPage, totalItems, totalPages, nextCursor}`,
    // is the page's own shape; its items are sent as the store gives their text.
    let page = state.store().find_json(&collection, &query).await?;
    state.metrics().store_op("list", &collection, 1);
    Ok(Json(page))
}

/// `POST /api/collections/{collection}/docs`: one object (201, `Location`, `ETag`) or an
/// array created all or none (201 with `{items}`).
#[utoipa::path(
    post,
    path = "/api/collections/{collection}/docs",
    operation_id = "createDocuments",
    tag = "documents",
    summary = "Create one document (an object) or a batch (an array, all or none)",
    request_body(content = crate::openapi::CreateBody, content_type = "application/json"),
    params(crate::openapi::CollectionPath),
    security((), ("bearer" = [])),
    responses(
        (status = 201, description = "Created: the document (with Location and ETag) or {items} for a batch", body = crate::openapi::Created),
        (status = 400, description = "Invalid JSON or document", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such collection", body = crate::openapi::ErrorBody),
        (status = 409, description = "A unique index already holds a value (details.conflictingId)", body = crate::openapi::ErrorBody),
        (status = 413, description = "Body or batch too large", body = crate::openapi::ErrorBody),
        (status = 415, description = "Not application/json", body = crate::openapi::ErrorBody),
        crate::openapi::DataErrors,
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
            state
                .metrics()
                .store_op("create", &collection, documents.len() as u64);
            let items: Vec<Json_> = documents.into_iter().map(Document::into_json).collect();
            Ok((StatusCode::CREATED, Json(json!({ "items": items }))).into_response())
        }
        body => {
            let document = state.store().create(&collection, body).await?;
            state.metrics().store_op("create", &collection, 1);
            let location = format!("/api/collections/{collection}/docs/{}", document.id);
            Ok(document_response(
                StatusCode::CREATED,
                document,
                Some(&location),
            ))
        }
    }
}

/// `GET /api/collections/{collection}/docs/{id}`.
#[utoipa::path(
    get,
    path = "/api/collections/{collection}/docs/{id}",
    operation_id = "getDocument",
    tag = "documents",
    summary = "Read a document",
    params(crate::openapi::DocumentPath, crate::openapi::IfNoneMatchHeader),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The document", body = crate::openapi::DocumentSchema, headers(("ETag" = String, description = "The document's version, e.g. \"3\""))),
        (status = 304, description = "Not modified: If-None-Match names the document's version", headers(("ETag" = String, description = "The document's version"))),
        (status = 400, description = "Invalid collection name", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such collection or document", body = crate::openapi::ErrorBody),
        crate::openapi::DataErrors,
    )
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    ApiPath((collection, id)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let document = state.store().get(&collection, &id).await?;
    state.metrics().store_op("read", &collection, 1);
    if none_match_fails(&headers, document.version) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        response.headers_mut().insert(header::ETAG, etag(&document));
        return Ok(response);
    }
    Ok(document_response(StatusCode::OK, document, None))
}

/// Whether `If-None-Match` names `version` (or is `*`), so a GET answers 304. Entries are
/// compared weakly (`W/"3"` matches `"3"`); entries this server never sends match nothing.
fn none_match_fails(headers: &HeaderMap, version: i64) -> bool {
    let current = version.to_string();
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|tag| {
            tag == "*"
                || tag
                    .strip_prefix("W/")
                    .unwrap_or(tag)
                    .strip_prefix('"')
                    .and_then(|rest| rest.strip_suffix('"'))
                    == Some(current.as_str())
        })
}

/// `PUT /api/collections/{collection}/docs/{id}`: replaces the body.
#[utoipa::path(
    put,
    path = "/api/collections/{collection}/docs/{id}",
    operation_id = "replaceDocument",
    tag = "documents",
    summary = "Replace a document's body",
    request_body(content = Object, content_type = "application/json"),
    params(crate::openapi::DocumentPath, crate::openapi::IfMatchHeader),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The new version, with ETag", body = crate::openapi::DocumentSchema),
        (status = 400, description = "Invalid JSON, document or If-Match", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such collection or document", body = crate::openapi::ErrorBody),
        (status = 409, description = "Unique conflict", body = crate::openapi::ErrorBody),
        (status = 412, description = "If-Match does not match the version", body = crate::openapi::ErrorBody),
        (status = 413, description = "Body too large", body = crate::openapi::ErrorBody),
        (status = 415, description = "Not application/json", body = crate::openapi::ErrorBody),
        crate::openapi::DataErrors,
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
    state.metrics().store_op("update", &collection, 1);
    Ok(document_response(StatusCode::OK, document, None))
}

/// `PATCH /api/collections/{collection}/docs/{id}`: an RFC 7386 merge patch.
#[utoipa::path(
    patch,
    path = "/api/collections/{collection}/docs/{id}",
    operation_id = "patchDocument",
    tag = "documents",
    summary = "Apply an RFC 7386 merge patch (null removes a key)",
    request_body(content = Object, content_type = "application/merge-patch+json"),
    params(crate::openapi::DocumentPath, crate::openapi::IfMatchHeader),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The new version, with ETag", body = crate::openapi::DocumentSchema),
        (status = 400, description = "Invalid JSON, patch or If-Match", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such collection or document", body = crate::openapi::ErrorBody),
        (status = 409, description = "Unique conflict", body = crate::openapi::ErrorBody),
        (status = 412, description = "If-Match does not match the version", body = crate::openapi::ErrorBody),
        (status = 413, description = "Body too large", body = crate::openapi::ErrorBody),
        (status = 415, description = "Not a JSON content type", body = crate::openapi::ErrorBody),
        crate::openapi::DataErrors,
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
    state.metrics().store_op("update", &collection, 1);
    Ok(document_response(StatusCode::OK, document, None))
}

/// `DELETE /api/collections/{collection}/docs/{id}`: 200 with what was deleted or nulled by
/// reference rules.
#[utoipa::path(
    delete,
    path = "/api/collections/{collection}/docs/{id}",
    operation_id = "deleteDocument",
    tag = "documents",
    summary = "Delete a document, applying reference rules",
    params(crate::openapi::DocumentPath, crate::openapi::IfMatchHeader),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "What was deleted or nulled", body = crate::openapi::DeleteReportSchema),
        (status = 400, description = "Invalid If-Match", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such collection or document", body = crate::openapi::ErrorBody),
        (status = 409, description = "A restrict reference points at it (details.conflictingId)", body = crate::openapi::ErrorBody),
        (status = 412, description = "If-Match does not match the version", body = crate::openapi::ErrorBody),
        crate::openapi::DataErrors,
    )
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    ApiPath((collection, id)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Json_>, ApiError> {
    let expected = if_match(&headers)?;
    let report = state.store().delete(&collection, &id, expected).await?;
    state.metrics().store_op("delete", &collection, 1);
    Ok(Json(
        json!({ "deleted": report.deleted, "nulled": report.nulled }),
    ))
}
