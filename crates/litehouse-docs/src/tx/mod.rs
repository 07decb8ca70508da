//! [`Store::transaction`]: document operations, a bookkeeping key-value table and the change
//! log, committed together.
//!
//! The caller's future runs inside the engine's transaction (on SQLite on the writer, like
//! every store write). It talks to the transaction through [`Tx`]: each method leaves its
//! request in a slot and waits; the driver ([`drive`]) polls the caller's future, runs the
//! request it left, and polls again. A future that waits for anything else leaves no
//! request, which the driver reports as [`Error::Misuse`] (and rolls back) instead of
//! hanging the writer.
//!
//! This file is the caller's side ([`Tx`] and its requests); `run.rs` is the transaction's
//! side: the driver and the execution of each request.

mod run;

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use serde_json::{Map, Value as Json};

use crate::cascade::{self, DeleteReport};
use crate::catalog::load_spec;
use crate::changes::{self, ChangeOp, META_TABLE};
use crate::conn::Conn;
use crate::document::{Document, DocumentText, check_body, merge_patch, now_timestamp};
use crate::error::{Error, Result};
use crate::limits::{StoreConfig, dispose};
use crate::ops;
use crate::query::{Page, Query, plan};
use crate::sql::{Dialect, Param, Sql};
use crate::store::{Store, checked_collection, in_transaction};

/// Most entries one [`Tx::meta_scan`] returns.
pub const MAX_META_SCAN: usize = 10_000;

/// Most items in one batch call ([`Tx::create_many_with_ids`], [`Tx::replace_many`],
/// [`Tx::meta_get_many`], [`Tx::meta_put_many`]).
pub const MAX_TX_BATCH: usize = 10_000;

/// Keys per `IN (...)` list and rows per multi-row `INSERT` of the batch calls.
const META_ROWS_PER_STATEMENT: usize = 300;

const MISUSE: &str = "inside Store::transaction only the Tx's own methods may be awaited \
     (one at a time); do other waiting before or after the transaction";

/// What a [`Tx`] method asks the driver to run.
enum Request {
    Create {
        collection: String,
        id: Option<String>,
        body: Map<String, Json>,
        text: String,
    },
    Get {
        collection: String,
        id: String,
    },
    Update {
        collection: String,
        id: String,
        expected_version: Option<i64>,
        change: Update,
    },
    Delete {
        collection: String,
        id: String,
        expected_version: Option<i64>,
    },
    Find {
        collection: String,
        query: Query,
    },
    MetaGet {
        ns: String,
        key: String,
    },
    MetaPut {
        ns: String,
        key: String,
        value: String,
    },
    MetaDelete {
        ns: String,
        key: String,
    },
    MetaScan {
        ns: String,
        after: Option<String>,
        limit: usize,
    },
    CreateMany {
        collection: String,
        documents: Vec<Document>,
        texts: Vec<String>,
    },
    ReplaceMany {
        collection: String,
        bodies: Vec<(String, Map<String, Json>)>,
    },
    MetaGetMany {
        ns: String,
        keys: Vec<String>,
    },
    MetaPutMany {
        ns: String,
        entries: Vec<(String, String)>,
    },
}

enum Update {
    Replace(Map<String, Json>),
    Patch(Json),
}

enum Response {
    Document(Document),
    Report(DeleteReport),
    Page(Page),
    Meta(Option<Json>),
    Deleted(bool),
    Entries(Vec<(String, Json)>),
    Count(u64),
}

#[derive(Default)]
enum Slot {
    #[default]
    Empty,
    Request(Request),
    Response(Result<Response>),
}

#[derive(Default)]
struct Shared {
    slot: Mutex<Slot>,
    origin: Mutex<Option<String>>,
    /// Set once the transaction is over: a `Tx` kept past it gets [`Error::Misuse`].
    finished: std::sync::atomic::AtomicBool,
}

/// The handle of one [`Store::transaction`]. Its methods run in the transaction; their
/// errors are returned to the caller, who may handle them or return them to roll back.
pub struct Tx {
    shared: Arc<Shared>,
    config: StoreConfig,
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx").finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn misuse() -> Error {
    Error::Misuse {
        reason: MISUSE.into(),
    }
}

fn ended() -> Error {
    Error::Misuse {
        reason: "this Tx belongs to a transaction that has ended".into(),
    }
}

fn unexpected() -> Error {
    Error::corrupt("a transaction request got another kind of answer")
}

impl Tx {
    async fn call(&self, request: Request) -> Result<Response> {
        if self
            .shared
            .finished
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return Err(ended());
        }
        {
            let mut slot = lock(&self.shared.slot);
            if !matches!(*slot, Slot::Empty) {
                return Err(misuse());
            }
            *slot = Slot::Request(request);
        }
        std::future::poll_fn(|_| {
            if self
                .shared
                .finished
                .load(std::sync::atomic::Ordering::Acquire)
            {
                return Poll::Ready(Err(ended()));
            }
            let mut slot = lock(&self.shared.slot);
            match std::mem::take(&mut *slot) {
                Slot::Response(response) => Poll::Ready(response),
                other => {
                    *slot = other;
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Records `origin` on every change this transaction appends from now on (for example
    /// the device a sync push came from).
    pub fn set_origin(&self, origin: &str) {
        *lock(&self.shared.origin) = Some(origin.to_owned());
    }

    /// As [`Store::create`].
    pub async fn create(&self, collection: &str, body: Json) -> Result<Document> {
        let mut held = Some(body);
        let collection = checked(collection, &mut held)?;
        let (body, text) = check_body_text(held.take().unwrap_or_default(), &self.config)?;
        self.created(collection, None, body, text).await
    }

    /// As [`Store::create_with_id`].
    pub async fn create_with_id(&self, collection: &str, id: &str, body: Json) -> Result<Document> {
        let mut held = Some(body);
        let collection = checked(collection, &mut held)?;
        if let Err(err) = check_id(id) {
            held.into_iter().for_each(dispose);
            return Err(err);
        }
        let (body, text) = check_body_text(held.take().unwrap_or_default(), &self.config)?;
        self.created(collection, Some(id.to_owned()), body, text)
            .await
    }

    async fn created(
        &self,
        collection: String,
        id: Option<String>,
        body: Map<String, Json>,
        text: String,
    ) -> Result<Document> {
        match self
            .call(Request::Create {
                collection,
                id,
                body,
                text,
            })
            .await?
        {
            Response::Document(document) => Ok(document),
            _ => Err(unexpected()),
        }
    }

    /// As [`Store::get`].
    pub async fn get(&self, collection: &str, id: &str) -> Result<Document> {
        let collection = checked_collection(collection)?;
        match self
            .call(Request::Get {
                collection,
                id: id.to_owned(),
            })
            .await?
        {
            Response::Document(document) => Ok(document),
            _ => Err(unexpected()),
        }
    }

    /// As [`Store::replace`].
    pub async fn replace(
        &self,
        collection: &str,
        id: &str,
        body: Json,
        expected_version: Option<i64>,
    ) -> Result<Document> {
        let mut held = Some(body);
        let collection = checked(collection, &mut held)?;
        let body = check_body(held.take().unwrap_or_default(), &self.config)?;
        self.updated(collection, id, expected_version, Update::Replace(body))
            .await
    }

    /// As [`Store::patch`].
    pub async fn patch(
        &self,
        collection: &str,
        id: &str,
        patch: Json,
        expected_version: Option<i64>,
    ) -> Result<Document> {
        let checked = checked_collection(collection).and_then(|name| {
            if !patch.is_object() {
                return Err(Error::InvalidDocument {
                    reason: "a merge patch for a document must be an object".into(),
                });
            }
            self.config.check_json(&patch)?;
            Ok(name)
        });
        let collection = match checked {
            Ok(name) => name,
            Err(err) => {
                dispose(patch);
                return Err(err);
            }
        };
        self.updated(collection, id, expected_version, Update::Patch(patch))
            .await
    }

    async fn updated(
        &self,
        collection: String,
        id: &str,
        expected_version: Option<i64>,
        change: Update,
    ) -> Result<Document> {
        match self
            .call(Request::Update {
                collection,
                id: id.to_owned(),
                expected_version,
                change,
            })
            .await?
        {
            Response::Document(document) => Ok(document),
            _ => Err(unexpected()),
        }
    }

    /// As [`Store::delete`].
    pub async fn delete(
        &self,
        collection: &str,
        id: &str,
        expected_version: Option<i64>,
    ) -> Result<DeleteReport> {
        let collection = checked_collection(collection)?;
        match self
            .call(Request::Delete {
                collection,
                id: id.to_owned(),
                expected_version,
            })
            .await?
        {
            Response::Report(report) => Ok(report),
            _ => Err(unexpected()),
        }
    }

    /// As [`Store::find`].
    pub async fn find(&self, collection: &str, query: &Query) -> Result<Page> {
        let collection = checked_collection(collection)?;
        if let Some(filter) = &query.filter {
            self.config.check_filter(filter)?;
        }
        match self
            .call(Request::Find {
                collection,
                query: query.clone(),
            })
            .await?
        {
            Response::Page(page) => Ok(page),
            _ => Err(unexpected()),
        }
    }

    /// The bookkeeping value under `(ns, key)`; bookkeeping emits no changes.
    pub async fn meta_get(&self, ns: &str, key: &str) -> Result<Option<Json>> {
        match self
            .call(Request::MetaGet {
                ns: ns.to_owned(),
                key: key.to_owned(),
            })
            .await?
        {
            Response::Meta(value) => Ok(value),
            _ => Err(unexpected()),
        }
    }

    /// Sets the bookkeeping value under `(ns, key)`.
    pub async fn meta_put(&self, ns: &str, key: &str, value: Json) -> Result<()> {
        self.config.check_json(&value)?;
        let value = serde_json::to_string(&value).map_err(|err| Error::InvalidDocument {
            reason: err.to_string(),
        })?;
        match self
            .call(Request::MetaPut {
                ns: ns.to_owned(),
                key: key.to_owned(),
                value,
            })
            .await?
        {
            Response::Deleted(_) => Ok(()),
            _ => Err(unexpected()),
        }
    }

    /// Removes `(ns, key)`; whether it existed.
    pub async fn meta_delete(&self, ns: &str, key: &str) -> Result<bool> {
        match self
            .call(Request::MetaDelete {
                ns: ns.to_owned(),
                key: key.to_owned(),
            })
            .await?
        {
            Response::Deleted(existed) => Ok(existed),
            _ => Err(unexpected()),
        }
    }

    /// Up to `limit` (at most [`MAX_META_SCAN`]) entries of `ns` with keys after
    /// `after_key`, ordered by key (byte order).
    pub async fn meta_scan(
        &self,
        ns: &str,
        after_key: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Json)>> {
        match self
            .call(Request::MetaScan {
                ns: ns.to_owned(),
                after: after_key.map(str::to_owned),
                limit: limit.clamp(1, MAX_META_SCAN),
            })
            .await?
        {
            Response::Entries(entries) => Ok(entries),
            _ => Err(unexpected()),
        }
    }
}

impl Tx {
    /// Creates documents with caller-chosen ids (lowercase hyphenated UUIDs) as one batch:
    /// version 1, `createdAt = updatedAt = now`, a multi-row insert per few hundred documents
    /// and one change each. Unique indexes are checked as on create; references are not
    /// (this is for copying documents from a consistent store, as a sync pull does).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use litehouse_docs::{CollectionSpec, Store};
    /// # let store = Store::from_database(litehouse::Database::open_memory("tx-many", litehouse::Config::default())?).await?;
    /// # store.create_collection("notes", CollectionSpec::default()).await?;
    /// let ids = ["00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"];
    /// let docs = ids.iter().map(|id| (id.to_string(), serde_json::json!({"n": 1}))).collect();
    /// let n = store.transaction(|tx| async move { tx.create_many_with_ids("notes", docs).await }).await?;
    /// assert_eq!(n, 2);
    /// assert_eq!(store.get("notes", ids[1]).await?.version, 1);
    /// # Ok::<(), litehouse_docs::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// As [`Tx::create_with_id`] for any document (nothing is created then);
    /// [`Error::LimitExceeded`] for more than [`MAX_TX_BATCH`] documents.
    pub async fn create_many_with_ids(
        &self,
        collection: &str,
        documents: Vec<(String, Json)>,
    ) -> Result<u64> {
        let dispose_all = |documents: Vec<(String, Json)>| {
            documents.into_iter().for_each(|(_, body)| dispose(body));
        };
        let collection = match checked_collection(collection) {
            Ok(name) if documents.len() <= MAX_TX_BATCH => name,
            Ok(_) => {
                let n = documents.len();
                dispose_all(documents);
                return Err(Error::limit_exceeded("batch size", n, MAX_TX_BATCH));
            }
            Err(err) => {
                dispose_all(documents);
                return Err(err);
            }
        };
        let now = now_timestamp();
        let mut checked = Vec::with_capacity(documents.len());
        let mut texts = Vec::with_capacity(documents.len());
        let mut documents = documents.into_iter();
        while let Some((id, body)) = documents.next() {
            let result = check_id(&id).and_then(|()| {
                let (body, text) = check_body_text(body, &self.config)?;
                Ok((
                    Document::from_parts(id, now.clone(), now.clone(), 1, body),
                    text,
                ))
            });
            match result {
                Ok((document, text)) => {
                    checked.push(document);
                    texts.push(text);
                }
                Err(err) => {
                    dispose_all(documents.collect());
                    return Err(err);
                }
            }
        }
        match self
            .call(Request::CreateMany {
                collection,
                documents: checked,
                texts,
            })
            .await?
        {
            Response::Count(n) => Ok(n),
            _ => Err(unexpected()),
        }
    }

    /// Replaces the bodies of existing documents (distinct ids) as one batch: each gets
    /// version + 1 and `updatedAt = now`, after the same checks as [`Tx::replace`]; their
    /// changes are recorded together.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use litehouse_docs::{CollectionSpec, Store};
    /// # let store = Store::from_database(litehouse::Database::open_memory("tx-replace-many", litehouse::Config::default())?).await?;
    /// # store.create_collection("notes", CollectionSpec::default()).await?;
    /// let a = store.create("notes", serde_json::json!({"n": 1})).await?.id;
    /// let b = store.create("notes", serde_json::json!({"n": 2})).await?.id;
    /// let bodies = vec![(a.clone(), serde_json::json!({"n": 10})), (b, serde_json::json!({"n": 20}))];
    /// let n = store.transaction(|tx| async move { tx.replace_many("notes", bodies).await }).await?;
    /// assert_eq!(n, 2);
    /// let doc = store.get("notes", &a).await?;
    /// assert_eq!((doc.version, &doc.body["n"]), (2, &10.into()));
    /// # Ok::<(), litehouse_docs::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// As [`Tx::replace`] for any document (then nothing of the batch applies if the error
    /// is returned from the transaction); [`Error::InvalidDocument`] for an id given twice;
    /// [`Error::LimitExceeded`] for more than [`MAX_TX_BATCH`] documents.
    pub async fn replace_many(&self, collection: &str, bodies: Vec<(String, Json)>) -> Result<u64> {
        let dispose_all = |bodies: Vec<(String, Json)>| {
            bodies.into_iter().for_each(|(_, body)| dispose(body));
        };
        let collection = match checked_collection(collection) {
            Ok(name) if bodies.len() <= MAX_TX_BATCH => name,
            Ok(_) => {
                let n = bodies.len();
                dispose_all(bodies);
                return Err(Error::limit_exceeded("batch size", n, MAX_TX_BATCH));
            }
            Err(err) => {
                dispose_all(bodies);
                return Err(err);
            }
        };
        let mut seen = std::collections::HashSet::with_capacity(bodies.len());
        let mut checked = Vec::with_capacity(bodies.len());
        let mut bodies = bodies.into_iter();
        while let Some((id, body)) = bodies.next() {
            let result = if seen.insert(id.clone()) {
                check_body(body, &self.config)
            } else {
                dispose(body);
                Err(Error::InvalidDocument {
                    reason: format!("id {id:?} given twice in one batch"),
                })
            };
            match result {
                Ok(body) => checked.push((id, body)),
                Err(err) => {
                    dispose_all(bodies.collect());
                    return Err(err);
                }
            }
        }
        match self
            .call(Request::ReplaceMany {
                collection,
                bodies: checked,
            })
            .await?
        {
            Response::Count(n) => Ok(n),
            _ => Err(unexpected()),
        }
    }

    /// The bookkeeping values under `(ns, key)` for each of `keys` that has one.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use litehouse_docs::Store;
    /// # let store = Store::from_database(litehouse::Database::open_memory("tx-meta-many", litehouse::Config::default())?).await?;
    /// let found = store
    ///     .transaction(|tx| async move {
    ///         let entries = vec![("a".into(), 1.into()), ("b".into(), 2.into()), ("a".into(), 3.into())];
    ///         tx.meta_put_many("demo", entries).await?;
    ///         tx.meta_get_many("demo", vec!["a".into(), "b".into(), "zz".into()]).await
    ///     })
    ///     .await?;
    /// assert_eq!((found.len(), &found["a"], &found["b"]), (2, &3.into(), &2.into()));
    /// # Ok::<(), litehouse_docs::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] for more than [`MAX_TX_BATCH`] keys.
    pub async fn meta_get_many(
        &self,
        ns: &str,
        keys: Vec<String>,
    ) -> Result<std::collections::HashMap<String, Json>> {
        if keys.len() > MAX_TX_BATCH {
            return Err(Error::limit_exceeded(
                "batch size",
                keys.len(),
                MAX_TX_BATCH,
            ));
        }
        match self
            .call(Request::MetaGetMany {
                ns: ns.to_owned(),
                keys,
            })
            .await?
        {
            Response::Entries(entries) => Ok(entries.into_iter().collect()),
            _ => Err(unexpected()),
        }
    }

    /// Sets many bookkeeping values of `ns` (a later entry for the same key wins).
    ///
    /// # Errors
    /// As [`Tx::meta_put`]; [`Error::LimitExceeded`] for more than [`MAX_TX_BATCH`] entries.
    pub async fn meta_put_many(&self, ns: &str, entries: Vec<(String, Json)>) -> Result<()> {
        if entries.len() > MAX_TX_BATCH {
            return Err(Error::limit_exceeded(
                "batch size",
                entries.len(),
                MAX_TX_BATCH,
            ));
        }
        // One row per key: PostgreSQL refuses to upsert the same row twice in one statement.
        let mut position = std::collections::HashMap::with_capacity(entries.len());
        let mut texts: Vec<(String, String)> = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            self.config.check_json(&value)?;
            let text = serde_json::to_string(&value).map_err(|err| Error::InvalidDocument {
                reason: err.to_string(),
            })?;
            match position.get(&key) {
                Some(&i) => texts[i] = (key, text),
                None => {
                    position.insert(key.clone(), texts.len());
                    texts.push((key, text));
                }
            }
        }
        match self
            .call(Request::MetaPutMany {
                ns: ns.to_owned(),
                entries: texts,
            })
            .await?
        {
            Response::Deleted(_) => Ok(()),
            _ => Err(unexpected()),
        }
    }
}

/// The checked collection name, or the error with `body` taken apart safely.
fn checked(collection: &str, body: &mut Option<Json>) -> Result<String> {
    checked_collection(collection).inspect_err(|_| {
        if let Some(body) = body.take() {
            dispose(body);
        }
    })
}

fn check_body_text(body: Json, config: &StoreConfig) -> Result<(Map<String, Json>, String)> {
    let body = check_body(body, config)?;
    let text = serde_json::to_string(&body).map_err(|err| Error::corrupt(err.to_string()))?;
    Ok((body, text))
}

/// A caller-chosen id must look like the store's own: a lowercase hyphenated UUID.
pub(crate) fn check_id(id: &str) -> Result<()> {
    if uuid::Uuid::try_parse(id)
        .map(|parsed| parsed.to_string() != id)
        .unwrap_or(true)
    {
        return Err(Error::InvalidDocument {
            reason: format!(
                "id {:?} is not a lowercase hyphenated UUID",
                id.chars().take(80).collect::<String>()
            ),
        });
    }
    Ok(())
}

impl Store {
    /// Up to `limit` (at most [`MAX_META_SCAN`]) bookkeeping entries of `ns` with keys after
    /// `after_key`, ordered by key (byte order), read on a snapshot outside any write: on
    /// SQLite on a reader connection, never on the writer, so a dashboard polling it does not
    /// queue behind (or hold up) writes. [`Tx::meta_scan`] reads the same inside a
    /// transaction.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use litehouse_docs::Store;
    /// use serde_json::json;
    ///
    /// let store = Store::from_database(litehouse::Database::open_memory("doc-meta-scan", litehouse::Config::default())?).await?;
    /// store
    ///     .transaction(|tx| async move {
    ///         tx.meta_put("sync", "b", json!(2)).await?;
    ///         tx.meta_put("sync", "a", json!(1)).await
    ///     })
    ///     .await?;
    /// let entries = store.meta_scan("sync", None, 10).await?;
    /// assert_eq!(entries, [("a".to_owned(), json!(1)), ("b".to_owned(), json!(2))]);
    /// assert_eq!(store.meta_scan("sync", Some("a"), 10).await?.len(), 1);
    /// # Ok::<(), litehouse_docs::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// The engine's error; [`Error::Corrupt`] for a stored value that is not JSON.
    pub async fn meta_scan(
        &self,
        ns: &str,
        after_key: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Json)>> {
        let ns = ns.to_owned();
        let after = after_key.map(str::to_owned);
        let limit = limit.clamp(1, MAX_META_SCAN);
        in_transaction!(self, read, |c| run::meta_scan(c, ns, after, limit))
    }

    /// Runs `work` in one transaction with document operations, bookkeeping and their
    /// changes committed together: all or nothing. `work` returning an error rolls back.
    ///
    /// Inside, only [`Tx`] methods may be awaited, one at a time (on SQLite the work runs on
    /// the writer thread, like every write); awaiting anything else is [`Error::Misuse`] and
    /// rolls back, on both engines.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use litehouse_docs::{CollectionSpec, Store};
    /// use serde_json::json;
    ///
    /// let store = Store::from_database(litehouse::Database::open_memory("doc-tx", litehouse::Config::default())?).await?;
    /// store.create_collection("notes", CollectionSpec::default()).await?;
    /// let id = store
    ///     .transaction(|tx| async move {
    ///         tx.set_origin("device-1");
    ///         let note = tx.create("notes", json!({"text": "hi"})).await?;
    ///         tx.meta_put("sync", "device-1", json!({"last": note.id})).await?;
    ///         Ok(note.id)
    ///     })
    ///     .await?;
    /// assert_eq!(store.get("notes", &id).await?.version, 1);
    /// # Ok::<(), litehouse_docs::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn transaction<T, F, Fut>(&self, work: F) -> Result<T>
    where
        F: FnOnce(Tx) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + Send,
        T: Send + 'static,
    {
        let shared = Arc::new(Shared::default());
        let tx = Tx {
            shared: Arc::clone(&shared),
            config: self.config,
        };
        let config = self.config;
        let finished = Arc::clone(&shared);
        let result = in_transaction!(self, transaction, |c| run::drive(
            c,
            &shared,
            &config,
            work(tx)
        ));
        finished
            .finished
            .store(true, std::sync::atomic::Ordering::Release);
        result
    }

    /// Creates a document with a caller-chosen id (a lowercase hyphenated UUID, for example
    /// made offline by a client): version 1, `createdAt = updatedAt = now`.
    ///
    /// # Errors
    /// As [`Store::create`]; [`Error::InvalidDocument`] for an id that is not such a UUID;
    /// [`Error::Unique`] on index `id` when it exists.
    pub async fn create_with_id(&self, collection: &str, id: &str, body: Json) -> Result<Document> {
        let mut held = Some(body);
        let checked_name = checked(collection, &mut held)?;
        if let Err(err) = check_id(id) {
            held.into_iter().for_each(dispose);
            return Err(err);
        }
        let (body, text) = check_body_text(held.take().unwrap_or_default(), &self.config)?;
        let id = id.to_owned();
        in_transaction!(self, transaction, |c| run::create(
            c,
            &checked_name,
            Some(id),
            body,
            text
        ))
    }
}
