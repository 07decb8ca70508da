//! Extractors whose rejections are [`ApiError`]s, so malformed input gets the one error
//! shape: malformed JSON is 400, a wrong content type 415, an oversized body 413.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

/// `axum::Json` with [`ApiError`] rejections. The body must arrive within the server's
/// request timeout (503 `timeout` otherwise), so a slow client cannot hold a slot forever.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let timeout = AppState::from_ref(state).config().request_timeout;
        match tokio::time::timeout(timeout, axum::Json::<T>::from_request(request, state)).await {
            Err(_elapsed) => Err(ApiError::unavailable(
                "timeout",
                "the request body did not arrive within the server's time limit",
            )),
            Ok(Ok(axum::Json(value))) => Ok(ApiJson(value)),
            Ok(Err(rejection)) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the request body is larger than the server's limit",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected a JSON body with Content-Type: application/json",
        ),
        _ => ApiError::bad_request("invalid_body", "the request body is not valid JSON")
            .with_details(json!({ "reason": rejection.body_text() })),
    }
}

/// The raw query string (empty when absent); parse it with
/// [`parse_list_query`](crate::parse_list_query) so repeated keys keep their order.
#[derive(Debug, Clone, Default)]
pub struct RawQuery(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RawQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Ok(RawQuery(parts.uri.query().unwrap_or_default().to_owned()))
    }
}

/// `axum::extract::Path` with [`ApiError`] rejections.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(ApiError::bad_request(
                "invalid_path_parameter",
                rejection.body_text(),
            )),
        }
    }
}
