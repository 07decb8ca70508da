//! The server side over a [`litehouse_docs::Store`]: `POST /api/sync/push` and
//! `GET /api/sync/pull` as an axum [`Router`] that litehouse-server can nest.
//!
//! Push: one [`Store::transaction`] reads the device's [`ProducerState`] from the bookkeeping
//! KV (namespace `sync.producer`), decides with [`admit`], applies the new entries with
//! last-writer-wins against the `(HLC, device)` kept per document (namespace `sync.hlc`),
//! records each change with origin `sync:<device>:<hlc>` and stores the new state: all or
//! nothing. An entry the store refuses (invalid body, missing collection, ...) must not block
//! the device: the transaction is rolled back and run again with that entry recorded as
//! rejected (acknowledged, not applied), so a batch with k bad entries runs k+1 times. This
//! works on both engines (a failed statement aborts a PostgreSQL transaction).
//!
//! The rejections are remembered per device (namespace `sync.rejected`, the newest
//! [`MAX_REMEMBERED_REJECTIONS`](crate::MAX_REMEMBERED_REJECTIONS) of its epoch), so that the same batch sent again (the device
//! never got the answer: its request timed out while the push went on) is acknowledged with
//! the same rejections rather than none.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use litehouse_docs::{
    ChangeFilter, ChangeOp, Cursor, Error as DocError, MAX_TX_BATCH, Paging, Query as DocQuery,
    Store,
};
use tokio::sync::Semaphore;

use crate::producer::{AdmitError, ProducerState, admit};
use crate::protocol::{Hlc, Op, PullResponse, PulledChange, PushRequest, PushResponse, Rejection};
use crate::rejections::{MAX_REASON_CHARS, remember, remembered};

const NS_PRODUCER: &str = "sync.producer";
const NS_HLC: &str = "sync.hlc";
const NS_LOCK: &str = "sync.lock";
const SYSTEM_FIELDS: [&str; 4] = ["id", "version", "createdAt", "updatedAt"];
/// Most pushes applied at once by one [`router`] (including those whose device stopped
/// waiting); more are answered 503. The default of [`RouterConfig::max_pushes`].
pub const MAX_PUSHES: usize = 64;
/// Most changes in one pull page.
pub const MAX_PULL_PAGE: usize = 1_000;

/// Limits of the sync routes ([`router_with`]).
///
/// ```
/// let config = litehouse_sync::RouterConfig::default();
/// assert_eq!(config.max_pushes, litehouse_sync::MAX_PUSHES);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterConfig {
    /// Most pushes applied at once, counting those whose device stopped waiting; one more is
    /// answered 503 `overloaded` with `Retry-After`. At least 1.
    pub max_pushes: usize,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            max_pushes: MAX_PUSHES,
        }
    }
}

/// The sync routes over `store`, with the default [`RouterConfig`].
pub fn router(store: Store) -> Router {
    router_with(store, RouterConfig::default())
}

/// The sync routes over `store`, with `config`'s limits.
pub fn router_with(store: Store, config: RouterConfig) -> Router {
    let RouterConfig { max_pushes } = config;
    let max_pushes = max_pushes.max(1);
    let pushes = Arc::new(Semaphore::new(max_pushes));
    Router::new()
        .route(
            "/api/sync/push",
            post(move |state, identity, body| {
                push_to_the_end(pushes, max_pushes, state, identity, body)
            }),
        )
        .route("/api/sync/pull", get(pull))
        .with_state(store)
}

/// Runs [`push`] in a task of its own, so that a device that stops waiting (its request
/// timeout, a dropped connection) does not cancel a push half way: the push commits, and the
/// device's retry of the same batch is a cheap duplicate. Cancelled with the connection
/// instead, a batch that takes longer than the device waits would roll back and be sent
/// again, unchanged, forever. A panic in the push is answered 500 and logged.
///
/// At most [`RouterConfig::max_pushes`] run at once, counting those whose device has gone:
/// one more is answered 503 with `Retry-After` (the device backs off, halves its batch and
/// sends it again), so devices that give up and retry cannot pile up tasks.
async fn push_to_the_end(
    pushes: Arc<Semaphore>,
    max_pushes: usize,
    state: State<Store>,
    identity: Option<axum::Extension<DeviceIdentity>>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(permit) = pushes.try_acquire_owned() else {
        let mut response = error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{} running; try again shortly",
                crate::machine::counted(max_pushes, "push is", "pushes are")
            ),
        );
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, 1.into());
        return response;
    };
    let running = async move {
        let response = push(state, identity, body).await;
        drop(permit);
        response
    };
    match tokio::spawn(running).await {
        Ok(response) => response,
        Err(err) => {
            tracing::error!(error = %err, "a sync push task failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the push failed on the server; it is retried".into(),
            )
        }
    }
}

/// The answer to an acknowledged push, in its response's extensions, so that a layer of the
/// embedding server can see what was rejected without parsing the body again.
#[derive(Debug, Clone, PartialEq)]
pub struct PushAcknowledged(pub PushResponse);

/// The device a server authenticated the request as (a per-device token), put into the
/// request's extensions by the embedding server's auth layer. A push with another producer
/// id is refused with 403.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIdentity(pub String);

/// An error in litehouse-server's one shape: `{status, code, message, details}`.
fn error(status: StatusCode, message: String) -> Response {
    let code = match status {
        StatusCode::BAD_REQUEST => "invalid_request",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::GONE => "cursor_expired",
        StatusCode::SERVICE_UNAVAILABLE => "overloaded",
        _ => "internal",
    };
    let body = serde_json::json!({
        "status": status.as_u16(),
        "code": code,
        "message": message,
        "details": {},
    });
    (status, Json(body)).into_response()
}

/// Whether the store refused the entry itself (recorded as a rejection) rather than failed.
fn is_rejection(e: &DocError) -> bool {
    matches!(
        e,
        DocError::InvalidName { .. }
            | DocError::InvalidPath { .. }
            | DocError::InvalidValue { .. }
            | DocError::InvalidDocument { .. }
            | DocError::LimitExceeded { .. }
            | DocError::CollectionNotFound { .. }
            | DocError::VersionConflict { .. }
            | DocError::Unique { .. }
            | DocError::Restricted { .. }
            | DocError::ReferenceNotFound { .. }
    )
}

/// The origin recorded on changes applied from a device.
pub fn sync_origin(device: &str, hlc: &Hlc) -> String {
    format!("sync:{device}:{}", hlc.0)
}

fn parse_origin(origin: &str) -> Option<(String, Hlc)> {
    let rest = origin.strip_prefix("sync:")?;
    let (device, hlc) = rest.rsplit_once(':')?;
    Some((device.to_owned(), Hlc(hlc.parse().ok()?)))
}

enum Outcome {
    Done(PushResponse),
    Refused(AdmitError),
    /// Entry `seq` failed with a rejection-class error: run again with it rejected.
    Reject(u64, String),
    /// Bookkeeping the server wrote cannot be read back.
    Corrupt(String),
}

async fn push(
    State(store): State<Store>,
    identity: Option<axum::Extension<DeviceIdentity>>,
    body: axum::body::Bytes,
) -> Response {
    let req: PushRequest = match serde_json::from_slice(&body) {
        Ok(req) => req,
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not a push request: {err}"),
            );
        }
    };
    if let Some(axum::Extension(DeviceIdentity(device))) = identity
        && device != req.device
    {
        return error(
            StatusCode::FORBIDDEN,
            format!(
                "this token belongs to device {device:?}; it cannot push as {:?}",
                req.device
            ),
        );
    }
    let mut rejected: BTreeMap<u64, String> = BTreeMap::new();
    // SQLite runs one write transaction at a time; PostgreSQL runs them concurrently in READ
    // COMMITTED, where two pushes could both read the same producer state or document mark
    // and both act on it (a duplicate applied twice, an older write winning).
    let lock_rows = store.engine() == "postgres";
    loop {
        let req2 = req.clone();
        let known = rejected.clone();
        let result = store
            .transaction(move |tx| async move {
                if lock_rows {
                    lock(&tx, &req2).await?;
                }
                let state = match tx.meta_get(NS_PRODUCER, &req2.device).await? {
                    None => None,
                    Some(v) => match serde_json::from_value::<ProducerState>(v) {
                        Ok(st) => Some(st),
                        Err(e) => {
                            return Ok(Outcome::Corrupt(format!(
                                "stored producer state of {:?} is unreadable: {e}",
                                req2.device
                            )));
                        }
                    },
                };
                let admission = match admit(state, &req2) {
                    Ok(a) => a,
                    Err(e) => return Ok(Outcome::Refused(e)),
                };
                let (duplicates, entries) = req2.entries.split_at(admission.skip);
                // Sent again: the rejections those entries had the first time.
                let mut answered = remembered(&tx, &req2.device, req2.epoch, duplicates).await?;
                // The marks of every target document, read in batches; kept up to date as
                // entries apply (a batch may write a document more than once) and written
                // back in batches at the end.
                let mut marks: HashMap<String, Option<(Hlc, String)>> = HashMap::new();
                let keys: Vec<String> = entries
                    .iter()
                    .map(|e| mark_key(&e.collection, &e.doc_id))
                    .collect();
                for chunk in keys.chunks(MAX_TX_BATCH) {
                    for (key, v) in tx.meta_get_many(NS_HLC, chunk.to_vec()).await? {
                        let hlc: Option<Hlc> = serde_json::from_value(v["hlc"].clone()).ok();
                        let dev = v["device"].as_str().unwrap_or("").to_owned();
                        marks.insert(key, hlc.map(|h| (h, dev)));
                    }
                }
                let mut new_marks: Vec<(String, serde_json::Value)> = Vec::new();
                let mut checked: HashSet<String> = HashSet::new();
                let mut rejections = Vec::new();
                for (e, key) in entries.iter().zip(keys) {
                    if let Some(reason) = known.get(&e.seq) {
                        rejections.push(Rejection {
                            seq: e.seq,
                            op_id: e.op_id.clone(),
                            reason: reason.clone(),
                        });
                        continue;
                    }
                    // A mark that cannot be read loses (as before: any write wins over it).
                    let known_mark = marks.get(&key);
                    let wins = match known_mark {
                        Some(Some((h, dev))) => {
                            crate::lww_wins((&e.hlc, &req2.device), (h, dev.as_str()))
                        }
                        Some(None) | None => true,
                    };
                    if !wins {
                        continue; // older than what the server has: acknowledged, no effect
                    }
                    // A document with a mark was written through sync before: most likely it
                    // exists, so a put tries the replace first.
                    let mut likely_exists = known_mark.is_some();
                    // The first entry of each collection reads its document: a missing
                    // collection is then a typed error (a rejection), not a failed statement.
                    if !checked.contains(&e.collection) {
                        match tx.get(&e.collection, &e.doc_id).await {
                            Ok(_) => likely_exists = true,
                            Err(DocError::NotFound { .. }) => likely_exists = false,
                            Err(err) if is_rejection(&err) => {
                                return Ok(Outcome::Reject(e.seq, err.to_string()));
                            }
                            Err(err) => return Err(err),
                        }
                        checked.insert(e.collection.clone());
                    }
                    tx.set_origin(&sync_origin(&req2.device, &e.hlc));
                    let applied = match e.op {
                        Op::Put => put(&tx, &e.collection, &e.doc_id, &e.body, likely_exists).await,
                        // A patch newer than a delete (made by a device that had not seen
                        // the delete yet) recreates the document from the patch alone: the
                        // newest write wins, and a NotFound here would fail the push forever.
                        Op::Patch => match tx
                            .patch(&e.collection, &e.doc_id, e.body.clone(), None)
                            .await
                        {
                            Err(DocError::NotFound { .. }) => tx
                                .create_with_id(&e.collection, &e.doc_id, e.body.clone())
                                .await
                                .map(drop),
                            other => other.map(drop),
                        },
                        // A winning delete of a document that is already gone must still
                        // reach the change feed: a device may hold an older write of it that
                        // the server dropped (it lost to this delete), and only a delete
                        // change tells that device. So it is recorded as a create and a
                        // delete of an empty body (a tombstone in the feed).
                        Op::Delete => match tx.delete(&e.collection, &e.doc_id, None).await {
                            Ok(_) => Ok(()),
                            Err(DocError::NotFound { .. }) => {
                                match tx
                                    .create_with_id(&e.collection, &e.doc_id, serde_json::json!({}))
                                    .await
                                {
                                    Ok(_) => {
                                        tx.delete(&e.collection, &e.doc_id, None).await.map(drop)
                                    }
                                    Err(other) => Err(other),
                                }
                            }
                            Err(other) => Err(other),
                        },
                    };
                    match applied {
                        Ok(()) => {
                            let mark = serde_json::json!({"hlc": e.hlc, "device": req2.device});
                            new_marks.push((key.clone(), mark));
                            marks.insert(key, Some((e.hlc, req2.device.clone())));
                        }
                        Err(err) if is_rejection(&err) => {
                            return Ok(Outcome::Reject(e.seq, err.to_string()));
                        }
                        Err(err) => return Err(err),
                    }
                }
                while !new_marks.is_empty() {
                    let rest = new_marks.split_off(new_marks.len().min(MAX_TX_BATCH));
                    tx.meta_put_many(NS_HLC, std::mem::replace(&mut new_marks, rest))
                        .await?;
                }
                if !rejections.is_empty() {
                    remember(&tx, &req2.device, req2.epoch, &rejections).await?;
                }
                answered.extend(rejections);
                let next = serde_json::to_value(admission.next).unwrap_or_default();
                tx.meta_put(NS_PRODUCER, &req2.device, next).await?;
                Ok(Outcome::Done(PushResponse {
                    acked_seq: admission.next.last_seq,
                    rejected: answered,
                }))
            })
            .await;
        match result {
            Ok(Outcome::Done(resp)) => {
                let mut response = Json(&resp).into_response();
                response.extensions_mut().insert(PushAcknowledged(resp));
                return response;
            }
            Ok(Outcome::Refused(AdmitError::Gap(g))) => {
                return (StatusCode::CONFLICT, Json(g)).into_response();
            }
            Ok(Outcome::Refused(AdmitError::StaleEpoch(s))) => {
                return (StatusCode::FORBIDDEN, Json(s)).into_response();
            }
            Ok(Outcome::Refused(e @ AdmitError::Invalid(_))) => {
                return error(StatusCode::BAD_REQUEST, e.to_string());
            }
            // The transaction rolled back; run it again with this entry rejected. Bounded:
            // each round adds one entry of the batch.
            Ok(Outcome::Reject(seq, reason)) => {
                rejected.insert(seq, reason.chars().take(MAX_REASON_CHARS).collect());
            }
            Ok(Outcome::Corrupt(msg)) => return error(StatusCode::INTERNAL_SERVER_ERROR, msg),
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

/// The key of a document's mark in namespace `sync.hlc`.
fn mark_key(collection: &str, id: &str) -> String {
    format!("{collection}/{id}")
}

/// Writes a full body as document `id`: created when missing, replaced when it exists.
/// `likely_exists` picks which statement to try first; the other runs only when the first
/// finds the opposite (a typed NotFound or an id conflict, neither of which aborts a
/// PostgreSQL transaction: both are found by a read before anything is written).
async fn put(
    tx: &litehouse_docs::Tx,
    collection: &str,
    id: &str,
    body: &serde_json::Value,
    likely_exists: bool,
) -> litehouse_docs::Result<()> {
    if likely_exists {
        match tx.replace(collection, id, body.clone(), None).await {
            Err(DocError::NotFound { .. }) => tx
                .create_with_id(collection, id, body.clone())
                .await
                .map(drop),
            other => other.map(drop),
        }
    } else {
        match tx.create_with_id(collection, id, body.clone()).await {
            // The id itself is taken (not a unique index of the collection): it exists.
            Err(DocError::Unique {
                conflicting_id: Some(taken),
                ..
            }) if taken == id => tx
                .replace(collection, id, body.clone(), None)
                .await
                .map(drop),
            other => other.map(drop),
        }
    }
}

/// Takes the row locks of a push on PostgreSQL before anything is read: the device's
/// producer row and each target document's row in namespace `sync.lock`, upserted in one
/// global order (sorted keys) so two pushes never wait on each other in a cycle. A second
/// push on the same rows waits for the first to commit; under READ COMMITTED its later reads
/// then see what the first one wrote.
async fn lock(tx: &litehouse_docs::Tx, req: &PushRequest) -> litehouse_docs::Result<()> {
    let mut keys: Vec<String> = req
        .entries
        .iter()
        .map(|e| format!("doc/{}/{}", e.collection, e.doc_id))
        .collect();
    keys.push(format!("producer/{}", req.device));
    keys.sort();
    keys.dedup();
    // In batches, in key order (a multi-row upsert takes its row locks in row order).
    for chunk in keys.chunks(MAX_TX_BATCH) {
        let entries = chunk
            .iter()
            .map(|key| (key.clone(), serde_json::Value::Bool(true)))
            .collect();
        tx.meta_put_many(NS_LOCK, entries).await?;
    }
    Ok(())
}

#[derive(serde::Deserialize)]
struct PullQuery {
    cursor: Option<String>,
    #[serde(default)]
    full: bool,
    /// The `resume` token of the previous page of a full re-read.
    after: Option<String>,
    limit: Option<usize>,
}

fn server_hlc(at_ms: i64) -> Hlc {
    let time = uhlc::NTP64::from(Duration::from_millis(at_ms.max(0) as u64));
    Hlc(uhlc::Timestamp::new(
        time,
        uhlc::ID::from(std::num::NonZeroU8::MIN),
    ))
}

async fn pull(
    State(store): State<Store>,
    query: Result<Query<PullQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(err) => return error(StatusCode::BAD_REQUEST, err.body_text()),
    };
    let limit = q.limit.unwrap_or(MAX_PULL_PAGE).clamp(1, MAX_PULL_PAGE);
    if q.full {
        return match read_all_page(&store, q.after.as_deref(), limit).await {
            Ok(page) => Json(page).into_response(),
            Err(FullError::BadToken(e)) => error(StatusCode::BAD_REQUEST, e),
            Err(FullError::Store(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
    }
    let cursor = match q.cursor.as_deref().map(str::parse::<Cursor>) {
        None => None,
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let page = match store
        .changes_since(cursor.as_ref(), &ChangeFilter::default(), limit)
        .await
    {
        Ok(p) => p,
        Err(DocError::CursorExpired { .. }) => {
            return error(
                StatusCode::GONE,
                "cursor expired: read everything again".into(),
            );
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let changes = page
        .changes
        .into_iter()
        .filter_map(|c| {
            let op = match c.op {
                ChangeOp::Create | ChangeOp::Replace | ChangeOp::Patch => Op::Put,
                ChangeOp::Delete => Op::Delete,
                ChangeOp::CollectionCreate | ChangeOp::CollectionDrop => return None,
            };
            let (device, hlc) = c
                .origin
                .as_deref()
                .and_then(parse_origin)
                .unwrap_or_else(|| ("server".to_owned(), server_hlc(c.at)));
            let mut document = c.document.unwrap_or(serde_json::Value::Null);
            if let Some(obj) = document.as_object_mut() {
                for f in SYSTEM_FIELDS {
                    obj.remove(f);
                }
            }
            Some(PulledChange {
                collection: c.collection,
                doc_id: c.id,
                op,
                document,
                hlc,
                device,
            })
        })
        .collect();
    Json(PullResponse {
        changes,
        next: Some(page.next.to_string()),
        up_to_date: page.up_to_date,
        resume: None,
    })
    .into_response()
}

/// Where a full re-read stands: the head taken before its first page, the collection being
/// read and the keyset cursor inside it. Sent to the device as the opaque `resume` token.
#[derive(serde::Serialize, serde::Deserialize)]
struct FullToken {
    head: String,
    collection: String,
    after: Option<String>,
}

enum FullError {
    BadToken(String),
    Store(DocError),
}

impl From<DocError> for FullError {
    fn from(e: DocError) -> Self {
        FullError::Store(e)
    }
}

/// One page of `GET /api/sync/pull?full=true[&after=TOKEN]`: every live document of every
/// collection as a `Put` with the `(HLC, device)` of the write that produced it, collection
/// by collection in name order, documents by id. `next` is the head of the change feed taken
/// before the first page, so changes made while the pages are read are pulled again after
/// (re-applying them is harmless under last-writer-wins). `up_to_date` is always false: the
/// device pulls from `next` afterwards. `resume` is the token of the next page, `None` on
/// the last.
async fn read_all_page(
    store: &Store,
    after: Option<&str>,
    limit: usize,
) -> Result<PullResponse, FullError> {
    let token = match after {
        Some(text) => serde_json::from_str::<FullToken>(text)
            .map_err(|e| FullError::BadToken(format!("invalid full re-read token: {e}")))?,
        None => FullToken {
            head: store.head().await?.to_string(),
            collection: String::new(),
            after: None,
        },
    };
    let mut names: Vec<String> = store
        .list_collections()
        .await?
        .into_iter()
        .map(|c| c.name)
        .collect();
    names.sort();
    // The token's collection, or the first one after it (it may have been dropped since).
    let Some(collection) = names.iter().find(|n| **n >= token.collection).cloned() else {
        return Ok(full_page(Vec::new(), token.head, None));
    };
    let cursor = if collection == token.collection {
        token.after
    } else {
        None
    };
    let name = collection.clone();
    let (changes, next_cursor) = store
        .transaction(move |tx| async move {
            let query = DocQuery {
                filter: None,
                sort: Vec::new(),
                paging: Paging::Cursor {
                    after: cursor,
                    per_page: limit as u64,
                },
                count: false,
            };
            let page = tx.find(&name, &query).await?;
            let mut changes = Vec::with_capacity(page.items.len());
            for doc in page.items {
                let mark = tx.meta_get(NS_HLC, &mark_key(&name, &doc.id)).await?;
                let (hlc, device) = mark
                    .and_then(|m| {
                        let hlc = serde_json::from_value::<Hlc>(m["hlc"].clone()).ok()?;
                        Some((hlc, m["device"].as_str()?.to_owned()))
                    })
                    .unwrap_or_else(|| (server_hlc(0), "server".to_owned()));
                changes.push(PulledChange {
                    collection: name.clone(),
                    doc_id: doc.id,
                    op: Op::Put,
                    document: serde_json::Value::Object(doc.body),
                    hlc,
                    device,
                });
            }
            Ok((changes, page.next_cursor))
        })
        .await?;
    let resume = match next_cursor {
        Some(after) => Some(FullToken {
            head: token.head.clone(),
            collection,
            after: Some(after),
        }),
        None => names
            .iter()
            .find(|n| **n > collection)
            .map(|next| FullToken {
                head: token.head.clone(),
                collection: next.clone(),
                after: None,
            }),
    };
    let resume = resume.map(|t| serde_json::to_string(&t).unwrap_or_default());
    Ok(full_page(changes, token.head, resume))
}

fn full_page(changes: Vec<PulledChange>, head: String, resume: Option<String>) -> PullResponse {
    PullResponse {
        changes,
        next: Some(head),
        up_to_date: false,
        resume,
    }
}
