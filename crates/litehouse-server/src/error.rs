//! The one error shape of the HTTP API: `{status, code, message, details}`.
//!
//! Every store error is mapped arm by arm in [`From<litehouse_docs::Error>`], so a new
//! variant is a decision, not an accident. Internal failures keep their detail in the
//! server's log and show clients only a generic message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

/// An error answered to an HTTP client.
///
/// Renders as `{"status": 404, "code": "not_found", "message": "...", "details": {...}}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Json,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with an explicit status, machine-readable code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: json!({}),
            retry_after: None,
        }
    }

    /// Replaces the details object.
    pub fn with_details(mut self, details: Json) -> ApiError {
        self.details = details;
        self
    }

    /// Adds a `Retry-After` header (seconds).
    pub fn with_retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// 400 with a code and the offending parameter in `details`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: no credentials, or credentials that match no token.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: a valid token whose scope does not allow the request.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 for a route that does not exist.
    pub fn no_route(path: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "no such route")
            .with_details(json!({ "path": path }))
    }

    /// 503: the server is at its concurrency limit or the request took too long.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message).with_retry_after(1)
    }

    /// 500 without internal detail; the detail goes to the server log.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal server error",
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable code, e.g. `invalid_filter`.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "status": self.status.as_u16(),
            "code": self.code,
            "message": self.message,
            "details": self.details,
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<litehouse_docs::Error> for ApiError {
    fn from(err: litehouse_docs::Error) -> ApiError {
        use litehouse_docs::Error as E;
        let message = err.to_string();
        let bad = |code| ApiError::bad_request(code, message.clone());
        let conflict = |code| ApiError::new(StatusCode::CONFLICT, code, message.clone());
        match &err {
            E::InvalidName { name, reason } => {
                bad("invalid_name").with_details(json!({ "name": name, "reason": reason }))
            }
            E::InvalidPath { path, reason } => {
                bad("invalid_path").with_details(json!({ "path": path, "reason": reason }))
            }
            E::InvalidFilter { reason } => {
                bad("invalid_filter").with_details(json!({ "reason": reason }))
            }
            E::InvalidValue {
                path,
                expected,
                found,
            } => bad("invalid_value").with_details(json!({
                "path": path, "expected": expected.to_string(), "found": found,
            })),
            E::InvalidDocument { reason } => {
                bad("invalid_document").with_details(json!({ "reason": reason }))
            }
            E::InvalidSpec { reason } => {
                bad("invalid_spec").with_details(json!({ "reason": reason }))
            }
            E::InvalidQuery { reason } => {
                bad("invalid_query").with_details(json!({ "reason": reason }))
            }
            E::InvalidCursor { reason } => {
                bad("invalid_cursor").with_details(json!({ "reason": reason }))
            }
            E::CursorExpired { cursor, oldest } => ApiError::new(
                StatusCode::GONE,
                "cursor_expired",
                format!("{message}; read the collections again (GET .../docs) and subscribe without a cursor"),
            )
            .with_details(json!({ "cursor": cursor, "oldest": oldest })),
            E::CollectionNotFound { collection } => ApiError::new(
                StatusCode::NOT_FOUND,
                "collection_not_found",
                message.clone(),
            )
            .with_details(json!({ "collection": collection })),
            E::NotFound { collection, id } => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", message.clone())
                    .with_details(json!({ "collection": collection, "id": id }))
            }
            E::CollectionExists { collection } => {
                conflict("collection_exists").with_details(json!({ "collection": collection }))
            }
            E::CollectionInUse {
                collection,
                referenced_by,
            } => conflict("collection_in_use").with_details(json!({
                "collection": collection, "referencedBy": referenced_by,
            })),
            // Version conflicts only happen when the client sent `If-Match`.
            E::VersionConflict {
                collection,
                id,
                expected,
                actual,
            } => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "version_conflict",
                message.clone(),
            )
            .with_details(json!({
                "collection": collection, "id": id, "expected": expected, "actual": actual,
            })),
            E::Unique {
                collection,
                index,
                conflicting_id,
            } => conflict("unique_violation").with_details(json!({
                "collection": collection, "index": index, "conflictingId": conflicting_id,
            })),
            E::Restricted {
                collection,
                id,
                referencing_collection,
                referencing_id,
            } => conflict("restricted").with_details(json!({
                "collection": collection,
                "id": id,
                "referencingCollection": referencing_collection,
                "conflictingId": referencing_id,
            })),
            // A reference to a missing document is bad input in the body.
            E::ReferenceNotFound {
                path,
                target_collection,
                target_id,
            } => bad("reference_not_found").with_details(json!({
                "path": path, "targetCollection": target_collection, "targetId": target_id,
            })),
            E::LimitExceeded { limit, value, max } => {
                let api = if *limit == "document size" {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "limit_exceeded",
                        message.clone(),
                    )
                } else {
                    bad("limit_exceeded")
                };
                api.with_details(json!({ "limit": limit, "value": value, "max": max }))
            }
            E::IndexConflict {
                collection,
                index,
                conflicting_ids,
            } => conflict("index_conflict").with_details(json!({
                "collection": collection,
                "index": index,
                "conflictingId": conflicting_ids.first(),
                "conflictingIds": conflicting_ids,
            })),
            E::IndexNotFound { collection, index } => {
                ApiError::new(StatusCode::NOT_FOUND, "index_not_found", message.clone())
                    .with_details(json!({ "collection": collection, "index": index }))
            }
            E::Sqlite(inner) if inner.is_busy() => {
                let seconds = inner
                    .retry_after()
                    .map_or(1, |after| after.as_secs().max(1));
                ApiError::unavailable("busy", "the database is busy; retry later")
                    .with_retry_after(seconds)
            }
            E::Sqlite(inner) if inner.is_closed() => {
                ApiError::unavailable("closed", "the database is shutting down")
            }
            E::Sqlite(inner) => ApiError::internal(inner),
            E::Postgres { .. } if err.is_busy() => {
                ApiError::unavailable("busy", "the database is busy; retry later")
            }
            E::Postgres { .. } => ApiError::internal(&err),
            E::Corrupt { .. } => ApiError::internal(&err),
            // `litehouse_docs::Error` is non-exhaustive: a new variant is internal until it
            // gets its own arm here.
            _ => ApiError::internal(&err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use litehouse_docs::Error as E;

    fn check(err: E, status: u16, code: &str) {
        let api = ApiError::from(err);
        assert_eq!(api.status().as_u16(), status, "{api}");
        assert_eq!(api.code(), code);
    }

    #[test]
    fn store_errors_map_to_statuses() {
        let s = String::from;
        check(
            E::InvalidName {
                name: s("x"),
                reason: s("r"),
            },
            400,
            "invalid_name",
        );
        check(E::InvalidFilter { reason: s("r") }, 400, "invalid_filter");
        check(E::InvalidCursor { reason: s("r") }, 400, "invalid_cursor");
        check(
            E::CollectionNotFound { collection: s("c") },
            404,
            "collection_not_found",
        );
        check(
            E::NotFound {
                collection: s("c"),
                id: s("i"),
            },
            404,
            "not_found",
        );
        check(
            E::CollectionExists { collection: s("c") },
            409,
            "collection_exists",
        );
        check(
            E::VersionConflict {
                collection: s("c"),
                id: s("i"),
                expected: 1,
                actual: 2,
            },
            412,
            "version_conflict",
        );
        check(
            E::Unique {
                collection: s("c"),
                index: s("i"),
                conflicting_id: Some(s("x")),
            },
            409,
            "unique_violation",
        );
        check(E::Corrupt { reason: s("r") }, 500, "internal");
        check(
            E::Postgres {
                code: Some(s("40001")),
                message: s("m"),
            },
            503,
            "busy",
        );
        check(E::Sqlite(litehouse::Error::Closed), 503, "closed");
    }
}
