//! The change log: every committed mutation, in commit order, resumable from a [`Cursor`].
//!
//! Every write path appends its changes to `_litehouse_changes` in the same transaction as
//! the mutation ([`record`]). Cursors come from one counter row (`_litehouse_feed.head`),
//! advanced with `UPDATE ... SET head = head + n RETURNING head` inside the transaction:
//! on SQLite the single writer makes that commit order; on PostgreSQL the row lock on the
//! counter is held until COMMIT, so a later transaction gets its cursors only after every
//! earlier one committed and became visible, and no commit can land behind a cursor a reader
//! has already passed. The cost is that PostgreSQL document writes serialise on that row
//! from their first change to their commit (see ARCHITECTURE.md).
//!
//! Readers ([`Store::changes_since`], [`Store::subscribe`]) read the table, which is the
//! truth; in-process commits wake subscribers at once (after COMMIT returned), other
//! processes' commits are seen by polling every [`POLL_INTERVAL`].

use std::fmt;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
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
use crate::store::{Store, in_transaction};

/// The change log table.
pub(crate) const CHANGES_TABLE: &str = "_litehouse_changes";
/// The one-row counter table: `head` (last cursor handed out) and `pruned` (oldest kept).
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
/// ```
/// use litehouse_docs::Cursor;
/// let cursor: Cursor = "42".parse()?;
/// assert_eq!(cursor.to_string(), "42");
/// assert!("x1".parse::<Cursor>().is_err());
/// # Ok::<(), litehouse_docs::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cursor(u64);

impl Cursor {
    /// The position before the first change ever made.
    pub const START: Cursor = Cursor(0);
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
        if text.is_empty() || text.len() > 20 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
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
    /// The subscriber fell behind its bounded queue: everything up to this cursor was
    /// delivered, nothing after it; the stream ends. Resume with this cursor.
    Reset(Cursor),
}

/// Process-wide state of the feed, shared by clones of a [`Store`].
#[derive(Debug, Clone)]
pub(crate) struct Feed {
    shared: Arc<FeedShared>,
}

#[derive(Debug)]
struct FeedShared {
    /// Bumped after every committed write; subscribers watch it.
    wake: watch::Sender<u64>,
    /// Committed writes, to pace pruning.
    writes: AtomicU64,
}

impl Default for Feed {
    fn default() -> Feed {
        Feed {
            shared: Arc::new(FeedShared {
                wake: watch::Sender::new(0),
                writes: AtomicU64::new(0),
            }),
        }
    }
}

impl Feed {
    /// Called after a write transaction's COMMIT returned.
    pub(crate) fn committed(&self) {
        self.shared
            .wake
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    /// The retention to enforce in this write's transaction, once per [`PRUNE_EVERY`] writes.
    pub(crate) fn prune_ticket(&self, config: &StoreConfig) -> Option<Retention> {
        let writes = self.shared.writes.fetch_add(1, Ordering::Relaxed);
        if writes % PRUNE_EVERY == PRUNE_EVERY - 1 {
            Some(Retention::of(config))
        } else {
            None
        }
    }
}

/// The retention settings of a [`StoreConfig`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retention {
    count: Option<u64>,
    age_ms: Option<u64>,
}

impl Retention {
    fn of(config: &StoreConfig) -> Retention {
        Retention {
            count: config.change_retention_count,
            age_ms: config.change_retention_ms,
        }
    }
}

/// A change to append, before its cursor is known.
pub(crate) struct NewChange {
    collection: String,
    id: String,
    op: ChangeOp,
    version: i64,
    document: Option<String>,
}

impl NewChange {
    /// A change carrying `document`.
    pub(crate) fn document(
        collection: &str,
        op: ChangeOp,
        document: &Document,
    ) -> Result<NewChange> {
        Ok(NewChange {
            collection: collection.to_owned(),
            id: document.id.clone(),
            op,
            version: document.version,
            document: Some(
                serde_json::to_string(&document.to_json())
                    .map_err(|err| Error::corrupt(err.to_string()))?,
            ),
        })
    }

    /// A delete of `id` at `version`.
    pub(crate) fn delete(collection: &str, id: String, version: i64) -> NewChange {
        NewChange {
            collection: collection.to_owned(),
            id,
            op: ChangeOp::Delete,
            version,
            document: None,
        }
    }

    /// A collection created or dropped.
    pub(crate) fn collection(collection: &str, op: ChangeOp) -> NewChange {
        NewChange {
            collection: collection.to_owned(),
            id: String::new(),
            op,
            version: 0,
            document: None,
        }
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn int(text: Option<&Option<String>>, what: &str) -> Result<i64> {
    text.and_then(Option::as_deref)
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| Error::corrupt(format!("change log: bad {what}")))
}

/// Creates the log tables if missing.
pub(crate) async fn ensure(c: &impl Conn) -> Result<()> {
    let dialect = c.dialect();
    let (big, text, strict) = if dialect.engine == crate::sql::Engine::Postgres {
        ("bigint", "text COLLATE \"C\"", "")
    } else {
        ("INTEGER", "TEXT", " STRICT")
    };
    let feed = dialect.qualify(FEED_TABLE);
    let changes = dialect.qualify(CHANGES_TABLE);
    let meta = dialect.qualify(META_TABLE);
    for statement in [
        format!(
            "CREATE TABLE IF NOT EXISTS {feed} (k {big} NOT NULL PRIMARY KEY, head {big} NOT NULL, \
             pruned {big} NOT NULL){strict}"
        ),
        format!("INSERT INTO {feed} (k, head, pruned) VALUES (1, 0, 0) ON CONFLICT DO NOTHING"),
        format!(
            "CREATE TABLE IF NOT EXISTS {changes} (seq {big} NOT NULL PRIMARY KEY, \
             collection {text} NOT NULL, id {text} NOT NULL, op {text} NOT NULL, \
             version {big} NOT NULL, document {text}, at {big} NOT NULL, origin {text}){strict}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {meta} (ns {text} NOT NULL, key {text} NOT NULL, \
             value {text} NOT NULL, PRIMARY KEY (ns, key)){strict}"
        ),
    ] {
        c.execute(&Sql::plain(dialect, statement)).await?;
    }
    Ok(())
}

/// Appends `changes` to the log in this transaction, taking the next cursors.
pub(crate) async fn record(c: &impl Conn, changes: Vec<NewChange>) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let dialect = c.dialect();
    let count = i64::try_from(changes.len()).map_err(|_| Error::corrupt("too many changes"))?;
    let mut advance = Sql::new(dialect);
    advance
        .push("UPDATE ")
        .push(&dialect.qualify(FEED_TABLE))
        .push(" SET head = head + ")
        .bind(Param::Int(count))
        .push(" WHERE k = 1 RETURNING CAST(head AS TEXT)");
    let rows = c.texts(&advance).await?;
    let head = int(rows.first().and_then(|row| row.first()), "head")?;
    let mut seq = head - count;
    let at = now_ms();
    let origin = c.origin().map(str::to_owned);
    let mut changes = changes.into_iter().peekable();
    while changes.peek().is_some() {
        let mut sql = Sql::new(dialect);
        sql.push("INSERT INTO ")
            .push(&dialect.qualify(CHANGES_TABLE))
            .push(" (seq, collection, id, op, version, document, at, origin) VALUES ");
        for (position, change) in changes.by_ref().take(ROWS_PER_INSERT).enumerate() {
            if position > 0 {
                sql.push(", ");
            }
            seq += 1;
            sql.push("(")
                .bind(Param::Int(seq))
                .push(", ")
                .bind(Param::Text(change.collection))
                .push(", ")
                .bind(Param::Text(change.id))
                .push(", ")
                .bind(Param::Text(change.op.as_str().into()))
                .push(", ")
                .bind(Param::Int(change.version))
                .push(", ");
            match change.document {
                Some(text) => sql.bind(Param::Text(text)),
                None => sql.push("NULL"),
            };
            sql.push(", ").bind(Param::Int(at)).push(", ");
            match &origin {
                Some(origin) => sql.bind(Param::Text(origin.clone())),
                None => sql.push("NULL"),
            };
            sql.push(")");
        }
        c.execute(&sql).await?;
    }
    Ok(())
}

/// Records documents written by one statement path.
pub(crate) async fn record_documents(
    c: &impl Conn,
    collection: &str,
    op: ChangeOp,
    documents: &[Document],
) -> Result<()> {
    let changes = documents
        .iter()
        .map(|document| NewChange::document(collection, op, document))
        .collect::<Result<Vec<_>>>()?;
    record(c, changes).await
}

/// `(head, pruned)` from the counter row.
async fn bounds(c: &impl Conn) -> Result<(i64, i64)> {
    let dialect = c.dialect();
    let sql = Sql::plain(
        dialect,
        format!(
            "SELECT CAST(head AS TEXT), CAST(pruned AS TEXT) FROM {} WHERE k = 1",
            dialect.qualify(FEED_TABLE)
        ),
    );
    let rows = c.texts(&sql).await?;
    let row = rows
        .first()
        .ok_or_else(|| Error::corrupt("change log: counter row missing"))?;
    Ok((int(row.first(), "head")?, int(row.get(1), "pruned")?))
}

/// One bounded prune step under `retention`, in this write's transaction.
pub(crate) async fn prune(c: &impl Conn, retention: Retention) -> Result<u64> {
    let dialect = c.dialect();
    let (head, pruned) = bounds(c).await?;
    let mut horizon = pruned;
    if let Some(count) = retention.count {
        horizon = horizon.max(head - i64::try_from(count).unwrap_or(i64::MAX));
    }
    let step_end = pruned.saturating_add(PRUNE_STEP as i64);
    if let Some(age_ms) = retention.age_ms {
        let cutoff = now_ms().saturating_sub(i64::try_from(age_ms).unwrap_or(i64::MAX));
        let mut sql = Sql::new(dialect);
        sql.push("SELECT CAST(max(seq) AS TEXT) FROM ")
            .push(&dialect.qualify(CHANGES_TABLE))
            .push(" WHERE seq <= ")
            .bind(Param::Int(step_end))
            .push(" AND at < ")
            .bind(Param::Int(cutoff));
        let rows = c.texts(&sql).await?;
        if let Some(Some(Some(max))) = rows.first().map(|row| row.first()) {
            horizon = horizon.max(max.parse().unwrap_or(pruned));
        }
    }
    let horizon = horizon.min(step_end).min(head);
    if horizon <= pruned {
        return Ok(0);
    }
    let mut delete = Sql::new(dialect);
    delete
        .push("DELETE FROM ")
        .push(&dialect.qualify(CHANGES_TABLE))
        .push(" WHERE seq <= ")
        .bind(Param::Int(horizon));
    let deleted = c.execute(&delete).await?;
    let mut update = Sql::new(dialect);
    update
        .push("UPDATE ")
        .push(&dialect.qualify(FEED_TABLE))
        .push(" SET pruned = ")
        .bind(Param::Int(horizon))
        .push(" WHERE k = 1");
    c.execute(&update).await?;
    Ok(deleted)
}

/// Reads up to `limit` changes after `after` (all of them, matching or not).
async fn read_log(
    c: &impl Conn,
    after: Option<Cursor>,
    limit: usize,
) -> Result<(Vec<Change>, i64, i64)> {
    let dialect = c.dialect();
    let (head, pruned) = bounds(c).await?;
    let start = match after {
        None => pruned,
        Some(cursor) => {
            let position = i64::try_from(cursor.0).unwrap_or(i64::MAX);
            if position < pruned {
                return Err(Error::CursorExpired {
                    cursor: cursor.to_string(),
                    oldest: pruned.to_string(),
                });
            }
            if position > head {
                return Err(Error::InvalidCursor {
                    reason: format!(
                        "change cursor {cursor} is past the end of this store's log ({head})"
                    ),
                });
            }
            position
        }
    };
    let mut sql = Sql::new(dialect);
    sql.push(
        // Aliased: PostgreSQL's ORDER BY would otherwise sort by the text output column.
        "SELECT CAST(seq AS TEXT) AS seq_text, collection, id, op, \
         CAST(version AS TEXT) AS version_text, document, CAST(at AS TEXT) AS at_text, origin FROM ",
    )
    .push(&dialect.qualify(CHANGES_TABLE))
    .push(" WHERE seq > ")
    .bind(Param::Int(start))
    .push(" ORDER BY seq LIMIT ")
    .bind_count(limit as i64);
    let mut changes = Vec::new();
    for row in c.texts(&sql).await? {
        let text = |index: usize| row.get(index).cloned().flatten();
        let document = match text(5) {
            Some(document) => Some(
                serde_json::from_str(&document)
                    .map_err(|err| Error::corrupt(format!("change log document: {err}")))?,
            ),
            None => None,
        };
        changes.push(Change {
            cursor: Cursor(int(row.first(), "seq")? as u64),
            collection: text(1).unwrap_or_default(),
            id: text(2).unwrap_or_default(),
            op: ChangeOp::parse(&text(3).unwrap_or_default())?,
            version: int(row.get(4), "version")?.max(0) as u64,
            document,
            at: int(row.get(6), "at")?,
            origin: text(7),
        });
    }
    Ok((changes, start, head))
}

impl Store {
    /// The cursor of the last committed change ([`Cursor::START`] when there is none).
    pub async fn head(&self) -> Result<Cursor> {
        let (head, _) = in_transaction!(self, read, |c| bounds(c))?;
        Ok(Cursor(head.max(0) as u64))
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
        let (changes, start, head) = in_transaction!(self, read, |c| read_log(c, after, limit))?;
        let next = changes
            .last()
            .map_or(Cursor(start.max(0) as u64), |change| change.cursor);
        let up_to_date = next.0 >= head.max(0) as u64;
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
        in_transaction!(self, transaction, |c| prune(c, retention))
    }

    /// Follows the change log: first every change after `after` (or, when `None`, only
    /// changes committed from now on), then [`ChangeEvent::UpToDate`], then live changes,
    /// with no gap and no duplicate at the switch (the log table is read from the last
    /// position in both phases). The queue holds [`DEFAULT_QUEUE`] events; a subscriber
    /// that lets it fill gets [`ChangeEvent::Reset`] with the last cursor it received and the
    /// stream ends. An error (such as [`Error::CursorExpired`]) is yielded once, then the
    /// stream ends. Must be called on a tokio runtime; dropping the stream stops its task.
    pub fn subscribe(&self, after: Option<Cursor>, filter: ChangeFilter) -> Result<ChangeStream> {
        self.subscribe_with_queue(after, filter, DEFAULT_QUEUE)
    }

    /// [`Store::subscribe`] with a queue of `queue` events instead of [`DEFAULT_QUEUE`].
    pub fn subscribe_with_queue(
        &self,
        after: Option<Cursor>,
        filter: ChangeFilter,
        queue: usize,
    ) -> Result<ChangeStream> {
        if let Some(check) = &filter.filter {
            self.config.check_filter(check)?;
        }
        let handle = tokio::runtime::Handle::try_current().map_err(|_| Error::Misuse {
            reason: "Store::subscribe must be called on a tokio runtime".into(),
        })?;
        let (sender, receiver) = mpsc::channel(queue.max(1));
        let reset = Arc::new(Mutex::new(None));
        let task = handle.spawn(follow(
            self.clone(),
            after,
            filter,
            sender,
            Arc::clone(&reset),
        ));
        Ok(ChangeStream {
            receiver,
            reset,
            task,
            finished: false,
        })
    }
}

/// The producer of a [`ChangeStream`].
async fn follow(
    store: Store,
    after: Option<Cursor>,
    filter: ChangeFilter,
    sender: mpsc::Sender<Result<ChangeEvent>>,
    reset: Arc<Mutex<Option<Cursor>>>,
) {
    let mut wake = store.feed.shared.wake.subscribe();
    let start = match after {
        Some(cursor) => Ok(cursor),
        None => store.head().await,
    };
    let mut position = match start {
        Ok(cursor) => cursor,
        Err(err) => {
            let _ = sender.send(Err(err)).await;
            return;
        }
    };
    let mut delivered = position;
    let mut announced = false;
    let overflow = |delivered: Cursor| {
        if let Ok(mut slot) = reset.lock() {
            *slot = Some(delivered);
        }
    };
    loop {
        wake.borrow_and_update();
        let page = match store
            .changes_since(Some(&position), &filter, SUBSCRIBE_BATCH)
            .await
        {
            Ok(page) => page,
            Err(err) => {
                let _ = sender.send(Err(err)).await;
                return;
            }
        };
        for change in page.changes {
            let cursor = change.cursor;
            match sender.try_send(Ok(ChangeEvent::Change(change))) {
                Ok(()) => delivered = cursor,
                Err(mpsc::error::TrySendError::Full(_)) => return overflow(delivered),
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
        position = page.next;
        if !page.up_to_date {
            continue;
        }
        if !announced {
            match sender.try_send(Ok(ChangeEvent::UpToDate(position))) {
                Ok(()) => {
                    delivered = position;
                    announced = true;
                }
                Err(mpsc::error::TrySendError::Full(_)) => return overflow(delivered),
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
        tokio::select! {
            _ = wake.changed() => {}
            () = tokio::time::sleep(POLL_INTERVAL) => {}
            () = sender.closed() => return,
        }
    }
}

/// The stream of [`Store::subscribe`]: yields `Result<ChangeEvent>` (a
/// [`futures_core::Stream`]); also [`ChangeStream::next`] without a stream library.
#[derive(Debug)]
pub struct ChangeStream {
    receiver: mpsc::Receiver<Result<ChangeEvent>>,
    reset: Arc<Mutex<Option<Cursor>>>,
    task: tokio::task::JoinHandle<()>,
    finished: bool,
}

impl ChangeStream {
    /// The next event; `None` once the stream ended.
    pub async fn next(&mut self) -> Option<Result<ChangeEvent>> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    /// Events waiting in the queue.
    pub fn queued(&self) -> usize {
        self.receiver.len()
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<ChangeEvent>>> {
        if self.finished {
            return Poll::Ready(None);
        }
        match self.receiver.poll_recv(cx) {
            Poll::Ready(Some(event)) => Poll::Ready(Some(event)),
            Poll::Ready(None) => {
                self.finished = true;
                let reset = self.reset.lock().ok().and_then(|mut slot| slot.take());
                Poll::Ready(reset.map(|cursor| Ok(ChangeEvent::Reset(cursor))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl futures_core::Stream for ChangeStream {
    type Item = Result<ChangeEvent>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_event(cx)
    }
}

impl Drop for ChangeStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}
