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
pub(crate) async fn get(
    State(state): State<AppState>,
    ApiPath((collection, id)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let document = state.store().get(&collection, &id).await?;
    Ok(document_response(StatusCode::OK, &document, None))
}

/// `PUT /api/collections/{collection}/docs/{id}`: replaces the body.
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
