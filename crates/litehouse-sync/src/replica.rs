//! [`StoreReplica`]: the device's local side over a litehouse document store, as the
//! [`SyncDriver`](crate::SyncDriver) needs it ([`Replica`]).
//!
//! Everything the device keeps about sync lives in the store's bookkeeping KV, next to the
//! documents, so that one [`Store::transaction`] covers a document change and its sync
//! state:
//!
//! | namespace | key | value |
//! |---|---|---|
//! | `sync.device` | `identity` | `{device_id, epoch, created_at}` (written once per file) |
//! | `sync.device` | `clock` | `{next_seq, last_hlc}`: the next outbox sequence, the last HLC |
//! | `sync.device` | `cursor`, `acked`, `log_next` | pull cursor, highest acked seq, next log key |
//! | `sync.config` | `config` | the [`DeviceConfig`](crate::DeviceConfig) the device runs with, without its token |
//! | `sync.outbox` | seq, 20 digits | an [`OutboxEntry`] not yet acknowledged |
//! | `sync.hlc` | `collection/id` | `{hlc, device, deleted}` of the write the document shows |
//! | `sync.log` | n, 20 digits | a [`SyncLogEntry`](crate::SyncLogEntry) (the last N kept) |

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use litehouse_docs::{Error as DocError, MAX_TX_BATCH, Paging, Query, Store, Tx};
use serde_json::{Value as Json, json};

use crate::driver::Replica;
use crate::machine::LogRecord;
use crate::protocol::{Hlc, Op, OutboxEntry, PulledChange, Rejection, lww_wins};

pub(crate) const NS_DEVICE: &str = "sync.device";
pub(crate) const NS_CONFIG: &str = "sync.config";
pub(crate) const NS_OUTBOX: &str = "sync.outbox";
pub(crate) const NS_MARK: &str = "sync.hlc";
pub(crate) const NS_LOG: &str = "sync.log";
/// Documents read per statement when a full re-read walks a local collection.
const FULL_READ_PAGE: u64 = 1_000;
/// Outbox keys read per statement.
const OUTBOX_PAGE: usize = 1_000;

/// The outbox key of `seq`: fixed width, so key order is sequence order.
pub(crate) fn seq_key(seq: u64) -> String {
    format!("{seq:020}")
}

/// What the device knows about the write a local document shows.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Mark {
    pub(crate) hlc: Hlc,
    pub(crate) device: String,
    #[serde(default)]
    pub(crate) deleted: bool,
}

pub(crate) fn mark_key(collection: &str, id: &str) -> String {
    format!("{collection}/{id}")
}

pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> DocError {
    DocError::InvalidDocument {
        reason: format!("unreadable sync bookkeeping ({what}): {e}"),
    }
}

/// The device's local side: applies pulled changes, marks entries synced and keeps the sync
/// log, each in one store transaction.
pub(crate) struct StoreReplica {
    pub(crate) store: Store,
    pub(crate) collections: Arc<HashSet<String>>,
    pub(crate) hlc: Arc<uhlc::HLC>,
    pub(crate) log_retention: u64,
}

impl std::fmt::Debug for StoreReplica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreReplica")
            .field("store", &self.store)
            .field("collections", &self.collections)
            .finish_non_exhaustive()
    }
}

/// What one apply did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Applied {
    pub(crate) applied: u64,
    pub(crate) skipped: u64,
    pub(crate) removed: u64,
    pub(crate) invalid: Vec<String>,
}

impl StoreReplica {
    /// Applies `changes` with last-writer-wins on `(HLC, device)` and stores `cursor`, in one
    /// transaction. A change whose mark is not older than the local one is applied (an equal
    /// mark is the device's own write coming back as the server applied it, which may differ
    /// from the local result of a patch). With `full`, `changes` are the server's whole state:
    /// documents without pending local writes take the server's version whatever their mark,
    /// and local documents absent from it are removed unless they have pending writes.
    ///
    /// Batched: only the last change of each document counts (the server's order per document
    /// is its last-writer-wins order), marks are read and written with one statement per few
    /// hundred, and new documents are inserted with multi-row inserts.
    pub(crate) async fn apply_changes(
        &self,
        changes: Vec<PulledChange>,
        cursor: Option<String>,
        full: bool,
    ) -> litehouse_docs::Result<Applied> {
        // Local writes after this apply must order after what it brings, so the clock moves
        // first (a local write takes its timestamp inside its own transaction, which runs
        // before or after this one). A timestamp too far in the future is refused by the
        // clock; the change is still applied.
        if let Some(newest) = changes.iter().map(|c| c.hlc).max() {
            let _ = self.hlc.update_with_timestamp(&newest.0);
        }
        let collections = Arc::clone(&self.collections);
        let applied = self
            .store
            .transaction(move |tx| async move {
                let mut out = Applied::default();
                let pending = if full {
                    pending_docs(&tx).await?
                } else {
                    HashSet::new()
                };
                if full {
                    let server: HashSet<(&str, &str)> = changes
                        .iter()
                        .map(|c| (c.collection.as_str(), c.doc_id.as_str()))
                        .collect();
                    for collection in collections.iter() {
                        out.removed += remove_absent(&tx, collection, &server, &pending).await?;
                    }
                }
                let total = changes.len() as u64;
                let changes = last_per_document(changes, &collections);
                out.skipped = total - changes.len() as u64;
                for chunk in changes.chunks(MAX_TX_BATCH) {
                    apply_chunk(&tx, chunk.to_vec(), full, &pending, &mut out).await?;
                }
                if let Some(cursor) = cursor {
                    tx.meta_put(NS_DEVICE, "cursor", Json::String(cursor))
                        .await?;
                }
                Ok(out)
            })
            .await?;
        Ok(applied)
    }

    /// Deletes the acknowledged outbox entries (every seq up to `up_to_seq`) and records the
    /// new acknowledged sequence, in one transaction.
    pub(crate) async fn mark_acked(&self, up_to_seq: u64) -> litehouse_docs::Result<u64> {
        self.store
            .transaction(move |tx| async move {
                let acked = tx
                    .meta_get(NS_DEVICE, "acked")
                    .await?
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0);
                // Entries up to `acked` are gone already: read only as many as this ack
                // removes (not a whole page of the entries still pending behind them).
                let page = usize::try_from(up_to_seq.saturating_sub(acked))
                    .unwrap_or(OUTBOX_PAGE)
                    .clamp(1, OUTBOX_PAGE);
                let mut removed = 0;
                loop {
                    let entries = tx.meta_scan(NS_OUTBOX, None, page).await?;
                    let full_page = entries.len() == page;
                    let mut reached = false;
                    for (key, _) in entries {
                        let seq: u64 = key.parse().map_err(|e| corrupt("outbox key", e))?;
                        if seq > up_to_seq {
                            reached = true;
                            break;
                        }
                        tx.meta_delete(NS_OUTBOX, &key).await?;
                        removed += 1;
                    }
                    if reached || !full_page {
                        break;
                    }
                }
                tx.meta_put(NS_DEVICE, "acked", json!(acked.max(up_to_seq)))
                    .await?;
                Ok(removed)
            })
            .await
    }

    /// Appends a record to the sync log and drops the one that falls out of retention.
    pub(crate) async fn append_log(&self, kind: &str, message: &str) -> litehouse_docs::Result<()> {
        let record = json!({ "at_ms": unix_ms(), "kind": kind, "message": message });
        let retention = self.log_retention.max(1);
        self.store
            .transaction(move |tx| async move {
                let n = tx
                    .meta_get(NS_DEVICE, "log_next")
                    .await?
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0);
                tx.meta_put(NS_LOG, &seq_key(n), record).await?;
                tx.meta_put(NS_DEVICE, "log_next", json!(n + 1)).await?;
                if n >= retention {
                    tx.meta_delete(NS_LOG, &seq_key(n - retention)).await?;
                }
                Ok(())
            })
            .await
    }
}

pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `(collection, id)` of every document with a pending outbox entry.
async fn pending_docs(tx: &Tx) -> litehouse_docs::Result<HashSet<(String, String)>> {
    let mut pending = HashSet::new();
    let mut after: Option<String> = None;
    loop {
        let entries = tx
            .meta_scan(NS_OUTBOX, after.as_deref(), OUTBOX_PAGE)
            .await?;
        let done = entries.len() < OUTBOX_PAGE;
        for (key, value) in entries {
            let entry: OutboxEntry =
                serde_json::from_value(value).map_err(|e| corrupt("outbox entry", e))?;
            pending.insert((entry.collection, entry.doc_id));
            after = Some(key);
        }
        if done {
            return Ok(pending);
        }
    }
}

/// Deletes the local documents of `collection` that the server does not have and that no
/// pending write touches; returns how many.
async fn remove_absent(
    tx: &Tx,
    collection: &str,
    server: &HashSet<(&str, &str)>,
    pending: &HashSet<(String, String)>,
) -> litehouse_docs::Result<u64> {
    let mut doomed = Vec::new();
    let mut after = None;
    loop {
        let query = Query {
            filter: None,
            sort: Vec::new(),
            paging: Paging::Cursor {
                after,
                per_page: FULL_READ_PAGE,
            },
            count: false,
        };
        let page = tx.find(collection, &query).await?;
        for doc in page.items {
            let key = (collection.to_owned(), doc.id);
            if !server.contains(&(key.0.as_str(), key.1.as_str())) && !pending.contains(&key) {
                doomed.push(key.1);
            }
        }
        match page.next_cursor {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    for id in &doomed {
        match tx.delete(collection, id, None).await {
            Ok(_) | Err(DocError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        tx.meta_delete(NS_MARK, &mark_key(collection, id)).await?;
    }
    Ok(doomed.len() as u64)
}

/// The last change of each document of a synced collection, in the order of those last
/// changes.
fn last_per_document(
    changes: Vec<PulledChange>,
    collections: &HashSet<String>,
) -> Vec<PulledChange> {
    let keep: HashSet<usize> = {
        let mut last: HashMap<(&str, &str), usize> = HashMap::with_capacity(changes.len());
        for (i, c) in changes.iter().enumerate() {
            if collections.contains(&c.collection) {
                last.insert((c.collection.as_str(), c.doc_id.as_str()), i);
            }
        }
        last.into_values().collect()
    };
    if keep.len() == changes.len() {
        return changes;
    }
    changes
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep.contains(i))
        .map(|(_, c)| c)
        .collect()
}

/// Applies changes to distinct documents: marks read in one batch, the winning puts
/// inserted or replaced in batches per collection, the rest (deletes, patches, a batch that
/// failed) one by one, the new marks written in one batch.
async fn apply_chunk(
    tx: &Tx,
    changes: Vec<PulledChange>,
    full: bool,
    pending: &HashSet<(String, String)>,
    out: &mut Applied,
) -> litehouse_docs::Result<()> {
    let keys: Vec<String> = changes
        .iter()
        .map(|c| mark_key(&c.collection, &c.doc_id))
        .collect();
    let mut marks = tx.meta_get_many(NS_MARK, keys.clone()).await?;
    let mut creates: HashMap<String, Vec<PulledChange>> = HashMap::new();
    let mut replaces: HashMap<String, Vec<PulledChange>> = HashMap::new();
    let mut others = Vec::new();
    for (change, key) in changes.into_iter().zip(keys) {
        let mark = match marks.remove(&key) {
            Some(v) => {
                Some(serde_json::from_value::<Mark>(v).map_err(|e| corrupt("document mark", e))?)
            }
            None => None,
        };
        let authoritative =
            full && !pending.contains(&(change.collection.clone(), change.doc_id.clone()));
        if let Some(m) = &mark
            && !authoritative
            && lww_wins((&m.hlc, &m.device), (&change.hlc, &change.device))
        {
            out.skipped += 1;
            continue;
        }
        // No mark: the document was never written through the device (or was removed by a
        // full re-read), so it is new; a pre-existing one makes the batch fail and is then
        // handled one by one below.
        let new = mark.as_ref().is_none_or(|m| m.deleted);
        match (change.op, new) {
            (Op::Put, true) => creates.entry(change.collection.clone()).or_default(),
            (Op::Put, false) => replaces.entry(change.collection.clone()).or_default(),
            _ => {
                others.push((change, mark));
                continue;
            }
        }
        .push(change);
    }
    let mut new_marks = Vec::new();
    for (replace, batches) in [(false, creates), (true, replaces)] {
        for (collection, batch) in batches {
            let documents = batch
                .iter()
                .map(|c| (c.doc_id.clone(), c.document.clone()))
                .collect();
            let result = if replace {
                tx.replace_many(&collection, documents).await
            } else {
                tx.create_many_with_ids(&collection, documents).await
            };
            match result {
                Ok(n) => {
                    out.applied += n;
                    new_marks.extend(batch.into_iter().map(|c| mark_entry(c, false)));
                }
                Err(e) if e.is_invalid_input() || e.is_conflict() || e.is_not_found() => {
                    // Find the culprits one by one, checking existence. A replace batch may
                    // have updated some documents before failing; they are written again
                    // with the same body (one more version and change, same content).
                    others.extend(batch.into_iter().map(|c| (c, None)));
                }
                Err(e) => return Err(e),
            }
        }
    }
    for (change, mark) in others {
        match apply_one(tx, change, mark).await? {
            Ok(entry) => {
                out.applied += 1;
                new_marks.push(entry);
            }
            Err(reason) => out.invalid.push(reason),
        }
    }
    let mut values = Vec::with_capacity(new_marks.len());
    for (key, mark) in new_marks {
        values.push((
            key,
            serde_json::to_value(&mark).map_err(|e| corrupt("document mark", e))?,
        ));
    }
    tx.meta_put_many(NS_MARK, values).await
}

fn mark_entry(change: PulledChange, deleted: bool) -> (String, Mark) {
    (
        mark_key(&change.collection, &change.doc_id),
        Mark {
            hlc: change.hlc,
            device: change.device,
            deleted,
        },
    )
}

/// Applies one pulled change that won against `mark` (the local mark, `None` when unknown or
/// none). `Ok(Ok(new mark))`, or `Ok(Err(reason))` when the local store refuses it (the
/// change is skipped and reported, so one bad change cannot wedge the pull).
async fn apply_one(
    tx: &Tx,
    change: PulledChange,
    mark: Option<Mark>,
) -> litehouse_docs::Result<Result<(String, Mark), String>> {
    let exists = match &mark {
        Some(m) => !m.deleted,
        None => match tx.get(&change.collection, &change.doc_id).await {
            Ok(_) => true,
            Err(DocError::NotFound { .. }) => false,
            Err(e) => return Err(e),
        },
    };
    let (collection, doc_id) = (change.collection.as_str(), change.doc_id.as_str());
    let document = change.document.clone();
    let result = match change.op {
        Op::Put if exists => match tx.replace(collection, doc_id, document.clone(), None).await {
            Err(DocError::NotFound { .. }) => tx
                .create_with_id(collection, doc_id, document)
                .await
                .map(drop),
            other => other.map(drop),
        },
        Op::Put => tx
            .create_with_id(collection, doc_id, document)
            .await
            .map(drop),
        Op::Patch => tx.patch(collection, doc_id, document, None).await.map(drop),
        Op::Delete if exists => match tx.delete(collection, doc_id, None).await {
            Ok(_) | Err(DocError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        },
        Op::Delete => Ok(()),
    };
    match result {
        Ok(()) => {
            let deleted = change.op == Op::Delete;
            Ok(Ok(mark_entry(change, deleted)))
        }
        Err(e) if e.is_invalid_input() || e.is_conflict() || e.is_not_found() => {
            Ok(Err(format!("{collection}/{doc_id}: {e}")))
        }
        Err(e) => Err(e),
    }
}

impl Replica for StoreReplica {
    async fn apply(
        &self,
        changes: Vec<PulledChange>,
        cursor: Option<String>,
        full: bool,
    ) -> Result<(), String> {
        let applied = self
            .apply_changes(changes, cursor, full)
            .await
            .map_err(|e| e.to_string())?;
        if !applied.invalid.is_empty() {
            let message = format!(
                "{} pulled changes refused by the local store: {}",
                applied.invalid.len(),
                applied.invalid.join("; ")
            );
            self.append_log("apply-refused", &message)
                .await
                .map_err(|e| e.to_string())?;
        }
        if applied.removed > 0 {
            let message = format!(
                "full re-read removed {} local documents the server no longer has",
                applied.removed
            );
            self.append_log("resync", &message)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    async fn mark_synced(&self, up_to_seq: u64, rejected: Vec<Rejection>) -> Result<(), String> {
        // Rejections are already in the sync log (the machine logs each one) and in the
        // status; the entries leave the outbox like the applied ones.
        drop(rejected);
        self.mark_acked(up_to_seq)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    async fn log(&self, record: LogRecord) -> Result<(), String> {
        self.append_log(record.kind, &record.message)
            .await
            .map_err(|e| e.to_string())
    }
}
