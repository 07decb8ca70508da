//! Queuing outbox entries inside a local write's transaction, and adopting the documents a
//! file held before it became a device's.
//!
//! A file that already holds documents when [`Device::open`](crate::Device::open) first
//! gives it a device identity has no outbox entries for them: without adoption they would
//! never reach the server, and nothing would say so (the failure other sync engines' users
//! report for pre-existing databases). At that first open the identity's transaction writes
//! an adoption marker naming the synced collections; [`adopt_pending`] then queues every
//! document in them as a put, a page per transaction that also moves the marker on, so a
//! crash part-way continues at the next open and no document is queued twice.

use std::sync::Arc;

use litehouse_docs::{Paging, Query, Sort, Tx};
use serde_json::Value as Json;

use crate::device::DeviceError;
use crate::identity::Clock;
use crate::protocol::{Hlc, Op, OutboxEntry};
use crate::replica::{Mark, NS_DEVICE, NS_MARK, NS_OUTBOX, corrupt, mark_key, seq_key};

/// The key of the adoption marker in [`NS_DEVICE`].
pub(crate) const ADOPT_KEY: &str = "adopt";

/// Documents adopted per transaction.
const ADOPT_PAGE: u64 = 256;

/// Who queues: the device and its clock.
#[derive(Clone)]
pub(crate) struct Producer {
    pub(crate) device: String,
    pub(crate) epoch: u64,
    pub(crate) hlc: Arc<uhlc::HLC>,
}

impl Producer {
    /// Queues one entry in `tx`: the outbox row, the document's last-writer mark and the
    /// advanced clock `stored` (the clock as read in this transaction, updated in place).
    pub(crate) async fn queue(
        &self,
        tx: &Tx,
        stored: &mut Clock,
        collection: &str,
        doc_id: &str,
        op: Op,
        body: Json,
    ) -> litehouse_docs::Result<OutboxEntry> {
        let seq = stored.next_seq;
        // Taken inside the transaction: after every apply that committed before it.
        let hlc = Hlc(self.hlc.new_timestamp());
        let mark = Mark {
            hlc,
            device: self.device.clone(),
            deleted: op == Op::Delete,
        };
        let entry = OutboxEntry {
            seq,
            op_id: format!("{}:{}:{seq}", self.device, self.epoch),
            hlc,
            collection: collection.to_owned(),
            doc_id: doc_id.to_owned(),
            op,
            body,
        };
        tx.meta_put(NS_MARK, &mark_key(collection, doc_id), to_json(&mark)?)
            .await?;
        tx.meta_put(NS_OUTBOX, &seq_key(seq), to_json(&entry)?)
            .await?;
        *stored = Clock {
            next_seq: seq + 1,
            last_hlc: Some(hlc),
        };
        tx.meta_put(NS_DEVICE, "clock", to_json(&*stored)?).await?;
        Ok(entry)
    }
}

/// Reads the outbox clock in `tx`.
pub(crate) async fn read_clock(tx: &Tx) -> litehouse_docs::Result<Clock> {
    match tx.meta_get(NS_DEVICE, "clock").await? {
        Some(v) => serde_json::from_value(v).map_err(|e| corrupt("clock", e)),
        None => Err(corrupt("clock", "missing")),
    }
}

/// What is still to adopt: collections in order, and the last id done in the first one.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Adoption {
    pub(crate) collections: Vec<String>,
    pub(crate) after: Option<String>,
}

impl Adoption {
    /// The marker a new identity writes: every synced collection, from its start.
    pub(crate) fn of(collections: Vec<String>) -> Adoption {
        Adoption {
            collections,
            after: None,
        }
    }
}

/// Queues every document the adoption marker still names (see the module docs); returns
/// how many were queued. Does nothing when there is no marker.
pub(crate) async fn adopt_pending(
    store: &litehouse_docs::Store,
    producer: &Producer,
) -> Result<u64, DeviceError> {
    let mut adopted = 0;
    loop {
        let producer = producer.clone();
        let (queued, done) = store
            .transaction(move |tx| async move {
                let Some(marker) = tx.meta_get(NS_DEVICE, ADOPT_KEY).await? else {
                    return Ok((0, true));
                };
                let mut adoption: Adoption =
                    serde_json::from_value(marker).map_err(|e| corrupt("adoption", e))?;
                let Some(collection) = adoption.collections.first().cloned() else {
                    tx.meta_delete(NS_DEVICE, ADOPT_KEY).await?;
                    return Ok((0, true));
                };
                let query = Query {
                    sort: vec![Sort::asc("id")],
                    paging: Paging::Cursor {
                        after: None,
                        per_page: ADOPT_PAGE,
                    },
                    ..Query::default()
                };
                // Ids sort as text: an id filter continues after the last one done.
                let query = Query {
                    filter: adoption
                        .after
                        .as_deref()
                        .map(|after| litehouse_docs::Filter::gt("id", after)),
                    ..query
                };
                let page = match tx.find(&collection, &query).await {
                    Ok(page) => page.items,
                    // Dropped since the marker was written: nothing left to adopt there.
                    Err(litehouse_docs::Error::CollectionNotFound { .. }) => Vec::new(),
                    Err(err) => return Err(err),
                };
                let full = page.len() as u64 == ADOPT_PAGE;
                let mut clock = read_clock(&tx).await?;
                let queued = page.len() as u64;
                for document in &page {
                    let body = Json::Object(document.body.clone());
                    producer
                        .queue(&tx, &mut clock, &collection, &document.id, Op::Put, body)
                        .await?;
                }
                match page.last() {
                    Some(last) if full => adoption.after = Some(last.id.clone()),
                    _ => {
                        adoption.collections.remove(0);
                        adoption.after = None;
                    }
                }
                tx.meta_put(NS_DEVICE, ADOPT_KEY, to_json(&adoption)?)
                    .await?;
                Ok((queued, false))
            })
            .await?;
        adopted += queued;
        if done {
            return Ok(adopted);
        }
    }
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> litehouse_docs::Result<Json> {
    serde_json::to_value(value).map_err(|e| corrupt("serialise", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use litehouse_docs::{CollectionSpec, Store};
    use serde_json::json;

    /// An adoption cut short (a crash after some pages committed) continues after the last
    /// id its marker names: the rest is queued once, in id order, from the stored clock on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_interrupted_adoption_continues_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path().join("d.db")).await.unwrap();
        store
            .create_collection("c", CollectionSpec::default())
            .await
            .unwrap();
        let bodies = (0..600u64).map(|n| json!({ "n": n })).collect();
        let mut ids: Vec<String> = store
            .create_many("c", bodies)
            .await
            .unwrap()
            .into_iter()
            .map(|doc| doc.id)
            .collect();
        ids.sort();
        let after = ids[299].clone();
        store
            .transaction(move |tx| async move {
                tx.meta_put(
                    NS_DEVICE,
                    "clock",
                    json!({"next_seq": 301, "last_hlc": null}),
                )
                .await?;
                let marker = json!({"collections": ["c", "missing"], "after": after});
                tx.meta_put(NS_DEVICE, ADOPT_KEY, marker).await
            })
            .await
            .unwrap();
        let producer = Producer {
            device: "d".into(),
            epoch: 1,
            hlc: Arc::new(uhlc::HLC::default()),
        };
        assert_eq!(adopt_pending(&store, &producer).await.unwrap(), 300);
        let (outbox, marker) = store
            .transaction(|tx| async move {
                let outbox = tx.meta_scan(NS_OUTBOX, None, 1_000).await?;
                Ok((outbox, tx.meta_get(NS_DEVICE, ADOPT_KEY).await?))
            })
            .await
            .unwrap();
        let queued: Vec<OutboxEntry> = outbox
            .into_iter()
            .map(|(_, v)| serde_json::from_value(v).unwrap())
            .collect();
        assert_eq!(
            queued.iter().map(|e| e.doc_id.clone()).collect::<Vec<_>>(),
            ids[300..].to_vec()
        );
        assert!(
            queued
                .iter()
                .zip(301..)
                .all(|(e, seq)| e.seq == seq && e.op == Op::Put)
        );
        assert_eq!(marker, None, "finished, the missing collection skipped");
        // Finished: a second call queues nothing.
        assert_eq!(adopt_pending(&store, &producer).await.unwrap(), 0);
    }
}
