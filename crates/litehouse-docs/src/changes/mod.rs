//! The change log: every committed mutation, in commit order, resumable from a [`Cursor`].
//!
//! Every write path appends its changes to `_litehouse_changes` in the same transaction as
//! the mutation ([`record`]).
//!
//! - **SQLite**: a write's cursors follow the log's last `seq`, read inside the write
//!   transaction. One write transaction holds the file at a time, so cursor order is commit
//!   order, and no counter row is written.
//! - **PostgreSQL**: sequences hand out numbers in the order transactions ask, not the order
//!   they commit, so a plain sequence would let a slow transaction commit a change *behind* a
//!   cursor a reader already passed. Each change instead records its transaction id
//!   (`pg_current_xact_id()`) and a number from the log's sequence, and the cursor is the pair
//!   `(xid, seq)`. Readers only read changes whose transaction is older than the oldest one
//!   still running (`xid < pg_snapshot_xmin(pg_current_snapshot())`): every such transaction
//!   has finished, so nothing can ever appear behind what they read. Writers never wait for
//!   each other (an earlier design serialised them on a counter row until COMMIT). The cost
//!   is latency, not throughput: a change becomes readable only once every transaction that
//!   started writing before it has finished, so a long write transaction anywhere in the
//!   cluster (another database's too) holds the feed back while it runs.
//!   [`FeedStats::held_back`] counts the committed changes waiting on one.
//!
//! Readers read the table, which is the truth. Subscribers share one **tailer** per store
//! (per process): after each wake-up (a local COMMIT returned, or every [`POLL_INTERVAL`]
//! for other processes' commits) it reads the log once from where it stopped, keeps the
//! last changes in a bounded ring and hands each change to every live subscriber whose
//! compiled [`ChangeFilter`] passes it, in memory: the number of log queries does not grow
//! with subscribers. A new subscriber catches up on its own in bounded pages, then joins the
//! live set under the hub's lock at an exact cursor (see `Hub::join`).
//!
//! - `log.rs`: the table side: appending changes in a write's transaction, pruning, reading.
//! - `feed/`: the in-process side: the shared tailer, the hub of live subscribers and
//!   [`ChangeStream`].

mod feed;
mod log;

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use tokio::sync::{mpsc, watch};

use crate::conn::Conn;
use crate::document::Document;
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::limits::StoreConfig;
use crate::sql::{Param, Sql};
use crate::store::{Backend, Store, in_transaction};

pub(crate) use feed::Feed;
pub use feed::{ChangeStream, FeedStats};
use log::{LogPage, bounds, read_log};
pub(crate) use log::{
    NewChange, Retention, ensure, prune, record, record_documents, record_written,
};

/// The change log table.
pub(crate) const CHANGES_TABLE: &str = "_litehouse_changes";
/// The one-row counter table: `head` (last cursor handed out; on SQLite only a floor under the
/// log's last `seq`, see `log::bounds`) and `pruned` (newest cursor pruned).
pub(crate) const FEED_TABLE: &str = "_litehouse_feed";
/// The bookkeeping key-value table of [`Tx::meta_put`](crate::Tx::meta_put).
pub(crate) const META_TABLE: &str = "_litehouse_meta";

/// How often a live subscriber re-reads the log when nothing in this process woke it (to
/// see other processes' commits).
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Events a subscriber's queue holds by default ([`Store::subscribe`]).
pub const DEFAULT_QUEUE: usize = 1024;

/// Changes read per step of a subscription.
const SUBSCRIBE_BATCH: usize = 500;

/// Most changes in one [`Store::changes_since`] page.
pub const MAX_CHANGES_PAGE: usize = 10_000;

/// Rows per multi-row insert into the log (8 parameters each).
const ROWS_PER_INSERT: usize = 500;

/// A prune step runs once per this many committed writes of one process.
const PRUNE_EVERY: u64 = 256;

/// Most changes one prune step deletes.
const PRUNE_STEP: u64 = 10_000;

/// A position in the change log: every change after it is still to come. Opaque; its text
/// form (decimal digits) is safe as an SSE `id:` and in a URL query.
///
/// On SQLite a cursor is the change's place in the log. On PostgreSQL it is the pair
/// (transaction id, sequence number), packed so that its order is the pair's order. Either
/// way no change ever appears before a cursor a reader already passed.
///
/// ```
/// use litehouse_docs::Cursor;
/// let cursor: Cursor = "42".parse()?;
/// assert_eq!(cursor.to_string(), "42");
/// assert!("x1".parse::<Cursor>().is_err());
/// # Ok::<(), litehouse_docs::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cursor(u128);

impl Cursor {
    /// The position before the first change ever made.
    pub const START: Cursor = Cursor(0);

    /// The cursor of the change numbered `seq` in transaction `xid` (always 0 on SQLite).
    pub(crate) fn at(xid: u64, seq: u64) -> Cursor {
        Cursor((u128::from(xid) << 64) | u128::from(seq))
    }

    /// The transaction part (0 on SQLite, and for changes recorded before PostgreSQL
    /// cursors carried it).
    pub(crate) fn xid(self) -> u64 {
        (self.0 >> 64) as u64
    }

    /// The sequence part: on SQLite the change's place in the log; on PostgreSQL its number
    /// from the log's sequence, which grows by one per change recorded (in the order they
    /// were recorded, not committed).
    pub(crate) fn seq(self) -> u64 {
        self.0 as u64
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Cursor {
    type Err = Error;

    fn from_str(text: &str) -> Result<Cursor> {
        let invalid = || Error::InvalidCursor {
            reason: format!(
                "a change cursor is a decimal number, got {:?}",
                text.chars().take(40).collect::<String>()
            ),
        };
        if text.is_empty() || text.len() > 39 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(invalid());
        }
        text.parse().map(Cursor).map_err(|_| invalid())
    }
}

impl Serialize for Cursor {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Cursor, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ChangeOp {
    /// A document was created (or imported).
    Create,
    /// A document's body was replaced (also a `set null` rewrite by a delete's reference rule).
    Replace,
    /// A document was merge-patched.
    Patch,
    /// A document was deleted (directly or by a cascade).
    Delete,
    /// A collection was created; `id` is empty.
    CollectionCreate,
    /// A collection and all its documents were dropped; `id` is empty.
    CollectionDrop,
}

impl ChangeOp {
    fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Create => "create",
            ChangeOp::Replace => "replace",
            ChangeOp::Patch => "patch",
            ChangeOp::Delete => "delete",
            ChangeOp::CollectionCreate => "collectionCreate",
            ChangeOp::CollectionDrop => "collectionDrop",
        }
    }

    fn parse(text: &str) -> Result<ChangeOp> {
        Ok(match text {
            "create" => ChangeOp::Create,
            "replace" => ChangeOp::Replace,
            "patch" => ChangeOp::Patch,
            "delete" => ChangeOp::Delete,
            "collectionCreate" => ChangeOp::CollectionCreate,
            "collectionDrop" => ChangeOp::CollectionDrop,
            other => return Err(Error::corrupt(format!("unknown change op {other:?}"))),
        })
    }
}

/// One committed change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// Its position in the log; resume after it with this cursor.
    pub cursor: Cursor,
    /// The collection.
    pub collection: String,
    /// The document id (empty for collection changes).
    pub id: String,
    /// What happened.
    pub op: ChangeOp,
    /// The document's version after the change (for a delete: the version deleted; 0 for
    /// collection changes).
    pub version: u64,
    /// The whole document after the change ([`Document::to_json`]); `None` for deletes and
    /// collection changes.
    pub document: Option<Json>,
    /// When it was recorded, Unix milliseconds.
    pub at: i64,
    /// The origin set with [`Tx::set_origin`](crate::Tx::set_origin), if any.
    pub origin: Option<String>,
}

/// Which changes a reader wants. Evaluated in memory, never as SQL per subscriber.
///
/// A `filter` applies to changes that carry a document (create, replace, patch); deletes
/// and collection changes pass when their collection does, so that a reader learns that a
/// document it holds is gone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChangeFilter {
    /// Only these collections (`None`: all).
    pub collections: Option<Vec<String>>,
    /// Only documents matching this filter ([`Filter::matches`]).
    pub filter: Option<Filter>,
}

impl ChangeFilter {
    /// Whether `change` passes.
    pub fn matches(&self, change: &Change) -> bool {
        if let Some(collections) = &self.collections
            && !collections.contains(&change.collection)
        {
            return false;
        }
        match (&self.filter, &change.document) {
            (Some(filter), Some(document)) => filter.matches(document),
            _ => true,
        }
    }
}

/// One page of [`Store::changes_since`].
#[derive(Debug, Clone, PartialEq)]
pub struct ChangePage {
    /// Matching changes, in cursor order.
    pub changes: Vec<Change>,
    /// Where the next page starts (past the changes read, matching or not).
    pub next: Cursor,
    /// Whether `next` was the end of the log when read.
    pub up_to_date: bool,
}

/// What a [`ChangeStream`] yields.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeEvent {
    /// A committed change.
    Change(Change),
    /// Catch-up is done: everything up to this cursor was delivered. Sent once.
    UpToDate(Cursor),
    /// The subscriber fell behind its bounded queue (or the shared tailer failed to read):
    /// everything up to this cursor was delivered, nothing after it; the stream ends.
    /// Resume with this cursor.
    Reset(Cursor),
}

impl Store {
    /// The cursor of the last committed change a reader may read ([`Cursor::START`] when
    /// there is none). On PostgreSQL, changes of transactions that committed while an older
    /// transaction is still running come after it ([`FeedStats::held_back`]).
    pub async fn head(&self) -> Result<Cursor> {
        self.settle_feed().await;
        let bounds = in_transaction!(self, read, |c| bounds(c))?;
        self.feed.saw_xmin(bounds.xmin);
        Ok(bounds.head)
    }

    /// Up to `limit` (1 to [`MAX_CHANGES_PAGE`]) log entries after `after` (from the oldest
    /// kept change when `None`), of which those passing `filter` are returned.
    ///
    /// # Errors
    /// [`Error::CursorExpired`] for a cursor older than the retention keeps;
    /// [`Error::InvalidCursor`] for one past the end of the log.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use litehouse_docs::{ChangeFilter, ChangeOp, CollectionSpec, Store};
    /// use serde_json::json;
    ///
    /// let store = Store::from_database(litehouse::Database::open_memory("doc-feed", litehouse::Config::default())?).await?;
    /// let start = store.head().await?;
    /// store.create_collection("notes", CollectionSpec::default()).await?;
    /// let note = store.create("notes", json!({"text": "hi"})).await?;
    /// let page = store.changes_since(Some(&start), &ChangeFilter::default(), 100).await?;
    /// assert_eq!(page.changes[0].op, ChangeOp::CollectionCreate);
    /// assert_eq!(page.changes[1].id, note.id);
    /// assert!(page.up_to_date);
    /// # Ok::<(), litehouse_docs::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn changes_since(
        &self,
        after: Option<&Cursor>,
        filter: &ChangeFilter,
        limit: usize,
    ) -> Result<ChangePage> {
        if let Some(filter) = &filter.filter {
            self.config.check_filter(filter)?;
        }
        let limit = limit.clamp(1, MAX_CHANGES_PAGE);
        let after = after.copied();
        self.settle_feed().await;
        self.feed.count_read();
        let LogPage {
            changes,
            start,
            bounds,
        } = in_transaction!(self, read, |c| read_log(c, after, limit))?;
        self.feed.saw_xmin(bounds.xmin);
        let next = changes.last().map_or(start, |change| change.cursor);
        let up_to_date = next >= bounds.head;
        Ok(ChangePage {
            changes: changes
                .into_iter()
                .filter(|change| filter.matches(change))
                .collect(),
            next,
            up_to_date,
        })
    }

    /// Runs one bounded prune step of the change log under this store's retention
    /// ([`StoreConfig::change_retention_count`], [`StoreConfig::change_retention_ms`]);
    /// returns how many changes it removed. Writes also run one every few hundred commits.
    pub async fn prune_changes(&self) -> Result<u64> {
        let retention = Retention::of(&self.config);
        self.settle_feed().await;
        in_transaction!(self, transaction, |c| prune(c, retention))
    }
}
