//! `GET /api/realtime`: the store's change feed as Server-Sent Events.
//!
//! Each event's `id:` is the change's cursor, so a browser's `EventSource` resumes exactly
//! with `Last-Event-ID`. Events: `change` (the change as JSON), `upToDate` once catch-up is
//! done, `reset` (the subscriber fell behind its bounded queue: the stream ends, resume from
//! its id), `error` (then the stream ends). Filters use the list endpoint's syntax, are
//! parsed once at subscribe time and evaluated in memory by the store's feed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_core::Stream;
use litehouse_docs::{ChangeEvent, ChangeFilter, ChangeStream, Cursor, Paging, Query};
use serde_json::json;
use tokio::sync::watch;

use crate::error::ApiError;
use crate::extract::RawQuery;
use crate::metrics::Metrics;
use crate::query_params::{parse_list_query, path_types};
use crate::state::AppState;

/// Most collections one subscription may name.
pub(crate) const MAX_COLLECTIONS: usize = 16;

/// Events queued per subscriber before it is reset.
pub(crate) const QUEUE: usize = 1024;

/// Seconds between keep-alive comments.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The open subscriptions of one server: their count against the cap, and the signal that
/// ends them at shutdown.
#[derive(Debug, Clone)]
pub(crate) struct Hub {
    inner: Arc<HubInner>,
}

#[derive(Debug)]
struct HubInner {
    open: AtomicUsize,
    max: usize,
    closed: watch::Sender<bool>,
}

impl Hub {
    pub(crate) fn new(max: usize) -> Hub {
        Hub {
            inner: Arc::new(HubInner {
                open: AtomicUsize::new(0),
                max,
                closed: watch::Sender::new(false),
            }),
        }
    }

    /// Ends every open stream (server shutdown).
    pub(crate) fn close(&self) {
        self.inner.closed.send_replace(true);
    }

    /// A slot for one more subscriber, or `None` at the cap.
    fn admit(&self) -> Option<Slot> {
        let admitted = self
            .inner
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.inner.max).then_some(open + 1)
            })
            .is_ok();
        admitted.then(|| Slot { hub: self.clone() })
    }

    /// Open streams (reported as `litehouse_realtime_subscribers`).
    pub(crate) fn open(&self) -> usize {
        self.inner.open.load(Ordering::Acquire)
    }
}

/// Holds one subscriber's place under the cap until dropped.
#[derive(Debug)]
struct Slot {
    hub: Hub,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.hub.inner.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What the query string asks for.
struct Request {
    collections: Vec<String>,
    cursor: Option<Cursor>,
    filter_query: String,
}

fn split_query(raw: &str, headers: &HeaderMap) -> Result<Request, ApiError> {
    let mut collections = None;
    let mut cursor = None;
    let mut rest = Vec::new();
    for pair in raw.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "collections" => collections = Some(value.to_owned()),
            "cursor" => cursor = Some(value.to_owned()),
            "order" | "page" | "perPage" | "skipTotal" => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("{key} has no meaning for a realtime subscription"),
                )
                .with_details(json!({ "param": key })));
            }
            _ => rest.push(pair),
        }
    }
    let collections: Vec<String> = collections
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                "collections=a,b is required: the collections to follow",
            )
            .with_details(json!({ "param": "collections" }))
        })?
        .split(',')
        .map(str::to_owned)
        .collect();
    if collections.is_empty() || collections.len() > MAX_COLLECTIONS {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("a subscription follows 1 to {MAX_COLLECTIONS} collections"),
        )
        .with_details(json!({ "param": "collections" })));
    }
    // A browser resuming sends Last-Event-ID, which wins over the URL's cursor.
    let last_event_id = headers
        .get("last-event-id")
        .map(|value| {
            value.to_str().map(str::to_owned).map_err(|_| {
                ApiError::bad_request("invalid_cursor", "Last-Event-ID is not a cursor")
                    .with_details(json!({ "header": "Last-Event-ID" }))
            })
        })
        .transpose()?;
    let cursor = match last_event_id.or(cursor).filter(|cursor| !cursor.is_empty()) {
        Some(text) => Some(text.parse::<Cursor>()?),
        None => None,
    };
    Ok(Request {
        collections,
        cursor,
        filter_query: rest.join("&"),
    })
}

/// `GET /api/realtime?collections=a,b&<filters>&cursor=...`.
#[utoipa::path(
    get,
    path = "/api/realtime",
    operation_id = "realtime",
    tag = "documents",
    summary = "Follow changes as Server-Sent Events: event change (id = cursor), upToDate after catch-up, reset (fell behind: resume from its id), error. Filters as on the list endpoint; Last-Event-ID or cursor resumes",
    params(
        ("collections" = String, Query, pattern = "^[a-z][a-z0-9_]{0,31}(,[a-z][a-z0-9_]{0,31}){0,15}$", description = "Comma-separated collections to follow (at most 16)"),
        ("cursor" = Option<String>, Query, pattern = "^[0-9]{0,39}$", description = "Resume after this cursor (an event id); without it, only new changes"),
        ("Last-Event-ID" = Option<String>, Header, pattern = "^[0-9]{0,39}$", description = "Resume after this cursor; wins over cursor"),
        ("filters" = Option<std::collections::BTreeMap<String, String>>, Query, style = Form, explode, description = "Filters on documents, as on the list endpoint: PATH=[not.]OP.VALUE"),
    ),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The event stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "Invalid collections, filter or cursor", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such collection", body = crate::openapi::ErrorBody),
        (status = 410, description = "The cursor is older than the change log keeps: read the collections again and subscribe without a cursor", body = crate::openapi::ErrorBody),
        (status = 503, description = "Too many subscribers", body = crate::openapi::ErrorBody),
        crate::openapi::DataErrors,
    )
)]
pub(crate) async fn subscribe(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let request = split_query(&raw, &headers)?;
    // One filter for every collection: it must mean the same under each one's types.
    let mut filter = None;
    for (position, collection) in request.collections.iter().enumerate() {
        let info = state.store().get_collection(collection).await?;
        let query: Query = parse_list_query(
            &request.filter_query,
            &path_types(&info.spec),
            state.list_limits(),
        )?;
        if position == 0 {
            filter = query.filter;
        } else if query.filter != filter {
            return Err(ApiError::bad_request(
                "invalid_filter",
                "the filter types its values differently in these collections; subscribe to them separately",
            )
            .with_details(json!({ "collections": request.collections })));
        }
        debug_assert!(matches!(query.paging, Paging::Page { .. }));
    }
    let filter = ChangeFilter {
        collections: Some(request.collections),
        filter,
    };
    // A cursor past retention is refused now, as 410, before the stream starts.
    if let Some(cursor) = &request.cursor {
        state
            .store()
            .changes_since(Some(cursor), &filter, 1)
            .await?;
    }
    let slot = state.realtime().admit().ok_or_else(|| {
        ApiError::unavailable(
            "too_many_subscribers",
            "this server has its maximum of realtime subscribers; retry later",
        )
        .with_retry_after(5)
    })?;
    let changes = state
        .store()
        .subscribe_with_queue(request.cursor, filter, QUEUE)?;
    let mut closed = state.realtime().inner.closed.subscribe();
    let closing = Box::pin(async move {
        // Also ends when the hub is gone (the sender dropped).
        while !*closed.borrow_and_update() {
            if closed.changed().await.is_err() {
                break;
            }
        }
    });
    let events = Events {
        metrics: state.metrics().clone(),
        changes,
        closing,
        _slot: slot,
        done: false,
    };
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

/// The SSE events of one subscription.
struct Events {
    metrics: Metrics,
    changes: ChangeStream,
    /// Completes when the server shuts down.
    closing: Pin<Box<dyn Future<Output = ()> + Send>>,
    _slot: Slot,
    done: bool,
}

fn event(name: &str, id: Option<Cursor>, data: &serde_json::Value) -> Event {
    let event = Event::default().event(name).data(data.to_string());
    match id {
        Some(cursor) => event.id(cursor.to_string()),
        None => event,
    }
}

impl Stream for Events {
    type Item = Result<Event, std::convert::Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done || this.closing.as_mut().poll(cx).is_ready() {
            this.done = true;
            return Poll::Ready(None);
        }
        let next = Pin::new(&mut this.changes).poll_next(cx);
        if next.is_ready() {
            // The queue's depth as each event leaves it: how far this client lags.
            let depth = this.changes.queued();
            this.metrics.realtime_event(depth);
        }
        Poll::Ready(match next {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => None,
            Poll::Ready(Some(Ok(ChangeEvent::Change(change)))) => {
                // Straight to text: no intermediate JSON tree (a deep copy of the document).
                let data = serde_json::to_string(&change).unwrap_or_default();
                Some(Ok(Event::default()
                    .event("change")
                    .data(data)
                    .id(change.cursor.to_string())))
            }
            Poll::Ready(Some(Ok(ChangeEvent::UpToDate(cursor)))) => Some(Ok(event(
                "upToDate",
                Some(cursor),
                &json!({ "cursor": cursor }),
            ))),
            Poll::Ready(Some(Ok(ChangeEvent::Reset(cursor)))) => {
                this.done = true;
                Some(Ok(event(
                    "reset",
                    Some(cursor),
                    &json!({ "cursor": cursor, "message": "this subscriber fell behind; reconnect to resume from this cursor" }),
                )))
            }
            Poll::Ready(Some(Err(err))) => {
                this.done = true;
                let api = ApiError::from(err);
                Some(Ok(event(
                    "error",
                    None,
                    &json!({ "status": api.status().as_u16(), "code": api.code(), "message": api.message() }),
                )))
            }
        })
    }
}
