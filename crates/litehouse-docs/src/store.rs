//! `Store`: opening a backend and the public operations, each dispatched to one engine.

use std::path::Path;

use serde_json::Value as Json;

use crate::cascade::{self, DeleteReport};
use crate::catalog::{self, SpecCache, SpecCheck, read_with_spec, retry_on_spec_change, with_spec};
use crate::changes::{self, ChangeOp};
use crate::document::{Document, DocumentText, check_bodies, check_body, merge_patch};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::limits::{StoreConfig, dispose, dispose_filter};
use crate::names;
use crate::ops::{self, Row};
use crate::query::{Page, Paging, Query, plan};
use crate::spec::{CollectionInfo, CollectionSpec};
use crate::sql::Dialect;

/// Most documents in one batch insert or import.
pub const MAX_BATCH: usize = 10_000;

/// Settings for [`Store::open_postgres_with`].
///
/// Each pooled connection keeps a few prepared statements (the change log's inserts, at most
/// 16 texts); everything else goes out unnamed. Behind PgBouncer in transaction mode, turn on
/// its prepared-statement support (`max_prepared_statements`, PgBouncer 1.21 or later).
///
/// ```
/// use litehouse_docs::PostgresConfig;
/// let config = PostgresConfig { url: "postgres://postgres@127.0.0.1/app".into(), ..PostgresConfig::default() };
/// # let _ = config;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// A `postgres://` URL.
    pub url: String,
    /// The schema holding the catalog and collection tables; created if missing.
    pub schema: String,
    /// Most pooled connections.
    pub pool_size: usize,
}

impl Default for PostgresConfig {
    fn default() -> PostgresConfig {
        PostgresConfig {
            url: String::new(),
            schema: "public".into(),
            pool_size: 16,
        }
    }
}

/// A JSON document store on SQLite (litehouse) or PostgreSQL, with the same behaviour on
/// both. Cheap to clone.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use litehouse_docs::{CollectionSpec, Filter, Query, Store};
/// use serde_json::json;
///
/// let db = litehouse::Database::open_memory("doc-store", litehouse::Config::default())?;
/// let store = Store::from_database(db).await?;
/// store.create_collection("people", CollectionSpec::default()).await?;
/// let ada = store.create("people", json!({"name": "Ada", "age": 36})).await?;
/// assert_eq!(ada.version, 1);
/// let query = Query { filter: Some(Filter::gt("age", 30)), ..Query::default() };
/// let page = store.find("people", &query).await?;
/// assert_eq!(page.items[0].id, ada.id);
/// # Ok::<(), litehouse_docs::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) backend: Backend,
    pub(crate) config: StoreConfig,
    /// Specs read so far; always re-checked against the catalog (see [`SpecCache`]).
    pub(crate) specs: SpecCache,
    /// The change feed's wake-ups and pruning pace, shared by clones.
    pub(crate) feed: crate::changes::Feed,
}

#[derive(Clone)]
pub(crate) enum Backend {
    Sqlite(litehouse::Database),
    Postgres {
        pool: deadpool_postgres::Pool,
        dialect: Dialect,
    },
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Sqlite(db) => f.debug_tuple("Sqlite").field(db.location()).finish(),
            Backend::Postgres { dialect, .. } => f.debug_tuple("Postgres").field(dialect).finish(),
        }
    }
}

/// Runs `$body` (an `async` expression over `$c: &impl Conn`) in one transaction of the
/// store's engine: on SQLite inside a litehouse write or read closure, on PostgreSQL in a
/// pooled transaction. An error rolls everything back.
macro_rules! in_transaction {
    ($store:expr, $mode:ident, |$c:ident| $body:expr) => {{
        // `read` runs on a read-only snapshot; everything else writes. A write may carry one
        // bounded prune step of the change log, and wakes the feed's subscribers after COMMIT.
        let read_only = stringify!($mode) == "read";
        let record_changes = $store.config.record_changes;
        let prune = if read_only {
            None
        } else {
            $store.feed.prune_ticket(&$store.config)
        };
        let result = match &$store.backend {
            $crate::store::Backend::Sqlite(db) => db
                .$mode(move |conn| {
                    let $c = &$crate::conn::SqliteConn::new(conn, $crate::sql::Dialect::sqlite())
                        .recording(record_changes);
                    // A read's statements share one snapshot (and one WAL read lock); the
                    // engine rolls back whatever a failed read leaves open.
                    if read_only {
                        conn.prepare_cached("BEGIN")?.execute([])?;
                    }
                    let value = $crate::conn::run_ready(async {
                        let value: $crate::error::Result<_> = $body.await;
                        let value = value?;
                        if let Some(retention) = prune {
                            $crate::changes::prune($c, retention).await?;
                        }
                        Ok(value)
                    })
                    .map_err(litehouse::Error::user)?;
                    if read_only {
                        conn.prepare_cached("COMMIT")?.execute([])?;
                    }
                    Ok(value)
                })
                .await
                .map_err($crate::error::Error::from),
            $crate::store::Backend::Postgres { pool, dialect } => {
                let mut client = pool.get().await?;
                let transaction = $crate::store::begin_postgres(&mut client, read_only).await?;
                let (result, xid) = {
                    let $c = &$crate::pg::PgConn::new(&transaction, dialect.clone())
                        .recording(record_changes);
                    let body: $crate::error::Result<_> = $body.await;
                    let result = match body {
                        Ok(value) => match prune {
                            Some(retention) => {
                                $crate::changes::prune($c, retention).await.map(|_| value)
                            }
                            None => Ok(value),
                        },
                        Err(err) => Err(err),
                    };
                    (result, $crate::conn::Conn::noted_xid($c))
                };
                // Dropping an uncommitted transaction rolls it back.
                match result {
                    Ok(value) => {
                        transaction.commit().await?;
                        $store.feed.committed_xid(xid);
                        Ok(value)
                    }
                    Err(err) => Err(err),
                }
            }
        };
        if !read_only && result.is_ok() {
            $store.feed.committed();
        }
        result
    }};
}
pub(crate) use in_transaction;

/// Reads run in a read-only REPEATABLE READ transaction, so a page and its count come from
/// one snapshot; writes in the default READ COMMITTED, serialised by row locks.
pub(crate) async fn begin_postgres(
    client: &mut deadpool_postgres::Client,
    read_only: bool,
) -> Result<deadpool_postgres::Transaction<'_>> {
    let builder = client.build_transaction();
    let builder = if read_only {
        builder
            .read_only(true)
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
    } else {
        builder
    };
    Ok(builder.start().await?)
}

pub(crate) fn checked_collection(collection: &str) -> Result<String> {
    names::collection_name(collection).map(str::to_owned)
}

impl Store {
    /// Opens (creating if needed) a SQLite file with the default litehouse config.
    ///
    /// Opening blocks (it sets pragmas and may wait for another process's lock), so on a
    /// tokio runtime it runs on a blocking thread, never on the executor.
    ///
    /// # Errors
    /// [`Error::Sqlite`] when the file cannot be opened.
    pub async fn open_sqlite(path: impl AsRef<Path>) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        let open = move || litehouse::Database::open(path, litehouse::Config::default());
        let db = match tokio::runtime::Handle::try_current() {
            Ok(handle) => match handle.spawn_blocking(open).await {
                Ok(opened) => opened?,
                Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
                Err(join) => {
                    return Err(Error::corrupt(format!(
                        "opening the database was cancelled: {join}"
                    )));
                }
            },
            // Not on a tokio runtime: there is no executor to keep free.
            Err(_) => open()?,
        };
        Store::from_database(db).await
    }

    /// Uses an open litehouse database, creating the catalog table if missing.
    pub async fn from_database(db: litehouse::Database) -> Result<Store> {
        let store = Store {
            backend: Backend::Sqlite(db),
            config: StoreConfig::default(),
            specs: SpecCache::default(),
            feed: crate::changes::Feed::default(),
        };
        in_transaction!(store, transaction, |c| catalog::ensure_catalog(c))?;
        Ok(store)
    }

    /// Connects to PostgreSQL at `url` and uses the `public` schema.
    pub async fn open_postgres(url: &str) -> Result<Store> {
        Store::open_postgres_with(PostgresConfig {
            url: url.to_owned(),
            ..PostgresConfig::default()
        })
        .await
    }

    /// Connects to PostgreSQL with `config`, creating the schema and catalog if missing.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a bad schema name, [`Error::Postgres`] when the server
    /// cannot be reached.
    pub async fn open_postgres_with(config: PostgresConfig) -> Result<Store> {
        let PostgresConfig {
            url,
            schema,
            pool_size,
        } = config;
        litehouse::validate_identifier(&schema).map_err(|err| Error::InvalidName {
            name: schema.clone(),
            reason: err.to_string(),
        })?;
        let mut pool_config = deadpool_postgres::Config::new();
        pool_config.url = Some(url);
        pool_config.pool = Some(deadpool_postgres::PoolConfig::new(pool_size.max(1)));
        let pool = pool_config
            .create_pool(
                Some(deadpool_postgres::Runtime::Tokio1),
                tokio_postgres::NoTls,
            )
            .map_err(|err| Error::Postgres {
                code: None,
                message: format!("cannot create the pool: {err}"),
            })?;
        let client = pool.get().await?;
        client
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .await?;
        drop(client);
        let store = Store {
            backend: Backend::Postgres {
                pool,
                dialect: Dialect::postgres(schema),
            },
            config: StoreConfig::default(),
            specs: SpecCache::default(),
            feed: crate::changes::Feed::default(),
        };
        in_transaction!(store, transaction, |c| catalog::ensure_catalog(c))?;
        Ok(store)
    }

    /// This store with other limits; every constructor starts from [`StoreConfig::default`].
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use litehouse_docs::{CollectionSpec, Store, StoreConfig};
    /// use serde_json::json;
    ///
    /// let db = litehouse::Database::open_memory("doc-limits", litehouse::Config::default())?;
    /// let config = StoreConfig { max_document_bytes: 100, ..StoreConfig::default() };
    /// let store = Store::from_database(db).await?.with_config(config);
    /// store.create_collection("notes", CollectionSpec::default()).await?;
    /// let err = store.create("notes", json!({"text": "x".repeat(200)})).await.unwrap_err();
    /// assert_eq!(err.limit(), Some("document size"));
    /// # Ok::<(), litehouse_docs::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn with_config(mut self, config: StoreConfig) -> Store {
        self.config = config;
        self
    }

    /// The limits in force.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// `sqlite` or `postgres`.
    pub fn engine(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }

    /// Creates a collection with its indexes and references.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::InvalidPath`], [`Error::InvalidSpec`] before any SQL;
    /// [`Error::CollectionExists`].
    pub async fn create_collection(&self, collection: &str, spec: CollectionSpec) -> Result<()> {
        let collection = checked_collection(collection)?;
        spec.validate()?;
        in_transaction!(self, transaction, |c| catalog::create_collection(
            c,
            &collection,
            &spec
        ))
    }

    /// Every collection with its spec, referenced collections first (then by name), so that a
    /// migrate tool can create them in this order on another store.
    pub async fn list_collections(&self) -> Result<Vec<CollectionInfo>> {
        in_transaction!(self, read, |c| catalog::list_collections(c))
    }

    /// One collection's spec.
    ///
    /// # Errors
    /// [`Error::CollectionNotFound`].
    pub async fn get_collection(&self, collection: &str) -> Result<CollectionInfo> {
        let collection = checked_collection(collection)?;
        let name = collection.clone();
        let spec = in_transaction!(self, read, |c| catalog::load_spec(c, &name))?;
        Ok(CollectionInfo {
            name: collection,
            spec,
        })
    }

    /// Drops a collection and its documents.
    ///
    /// # Errors
    /// [`Error::CollectionNotFound`]; [`Error::CollectionInUse`] when another collection's
    /// spec references it.
    pub async fn drop_collection(&self, collection: &str) -> Result<()> {
        let collection = checked_collection(collection)?;
        in_transaction!(self, transaction, |c| catalog::drop_collection(
            c,
            &collection
        ))
    }

    /// Creates a document: a new UUIDv7 id, `createdAt = updatedAt = now`, version 1.
    /// Top-level `id`, `createdAt`, `updatedAt` and `version` in `body` are ignored.
    ///
    /// # Errors
    /// [`Error::InvalidDocument`], [`Error::LimitExceeded`] (see [`StoreConfig`]),
    /// [`Error::Unique`], [`Error::ReferenceNotFound`], [`Error::InvalidValue`] for a
    /// reference that is not a string.
    pub async fn create(&self, collection: &str, body: Json) -> Result<Document> {
        let mut created = self.create_many(collection, vec![body]).await?;
        created
            .pop()
            .ok_or_else(|| Error::corrupt("insert returned nothing"))
    }

    /// Creates many documents in one transaction: all or none.
    ///
    /// # Errors
    /// As [`Store::create`]; [`Error::LimitExceeded`] for a body over the
    /// [`StoreConfig`] limits, before any SQL runs.
    pub async fn create_many(&self, collection: &str, bodies: Vec<Json>) -> Result<Vec<Document>> {
        let collection = match checked_collection(collection)
            .and_then(|name| Ok((name, check_batch(bodies.len())?)))
        {
            Ok((name, ())) => name,
            Err(err) => {
                // Bodies may be of any depth: never drop them recursively.
                bodies.into_iter().for_each(dispose);
                return Err(err);
            }
        };
        let (documents, texts): (Vec<Document>, Vec<String>) = check_bodies(bodies, &self.config)?
            .into_iter()
            .map(|(body, text)| (ops::new_document(body), text))
            .unzip();
        if self.pipelines_spec_checks() && documents.len() <= PIPELINED_BATCH {
            // Small batches (single creates) on PostgreSQL: the spec check rides along with
            // the first statement, and a batch whose spec changed meanwhile runs again.
            return retry_on_spec_change(|check| {
                let (documents, texts) = (documents.clone(), texts.clone());
                let (specs, collection) = (self.specs.clone(), collection.clone());
                async move {
                    in_transaction!(self, transaction, |c| {
                        let name: &str = &collection;
                        with_spec(c, &specs, name, check, move |cached| async move {
                            ops::insert_with_spec(
                                c,
                                name,
                                &cached.spec,
                                documents,
                                &texts,
                                ops::Origin::New,
                            )
                            .await
                        })
                    })
                }
            })
            .await;
        }
        let specs = self.specs.clone();
        in_transaction!(self, transaction, |c| {
            let name: &str = &collection;
            with_spec(
                c,
                &specs,
                name,
                SpecCheck::First,
                move |cached| async move {
                    ops::insert_with_spec(
                        c,
                        name,
                        &cached.spec,
                        documents,
                        &texts,
                        ops::Origin::New,
                    )
                    .await
                },
            )
        })
    }

    /// Reads one document.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::CollectionNotFound`].
    pub async fn get(&self, collection: &str, id: &str) -> Result<Document> {
        let collection = checked_collection(collection)?;
        let id = id.to_owned();
        let specs = self.specs.clone();
        // A get needs no spec, only to know the collection exists: on PostgreSQL the catalog
        // read and the get go together (a missing table fails the get, and the catalog says
        // why).
        retry_on_spec_change(|check| {
            let (specs, collection, id) = (specs.clone(), collection.clone(), id.clone());
            async move {
                in_transaction!(self, read, |c| read_with_spec(
                    c,
                    &specs,
                    &collection,
                    check,
                    Result::is_ok,
                    |_, guard| {
                        let (collection, id) = (&collection, &id);
                        async move { ops::get_guarded(c, collection, id, false, guard.as_ref()).await }
                    }
                ))
            }
        })
        .await
    }

    /// Replaces a document's body; with `expected_version`, only if it is at that version.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::VersionConflict`], [`Error::Unique`], ...
    pub async fn replace(
        &self,
        collection: &str,
        id: &str,
        body: Json,
        expected_version: Option<i64>,
    ) -> Result<Document> {
        let collection = match checked_collection(collection) {
            Ok(name) => name,
            Err(err) => {
                dispose(body);
                return Err(err);
            }
        };
        let body = check_body(body, &self.config)?;
        let id = id.to_owned();
        in_transaction!(self, transaction, |c| async {
            let document = ops::update(c, &collection, &id, expected_version, |_| Ok(body)).await?;
            changes::record_documents(
                c,
                &collection,
                ChangeOp::Replace,
                std::slice::from_ref(&document),
            )
            .await?;
            Ok(document)
        })
    }

    /// Applies an RFC 7386 JSON merge patch (an object; `null` removes a key).
    ///
    /// # Errors
    /// As [`Store::replace`].
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use litehouse_docs::{CollectionSpec, Error, Store};
    /// # use serde_json::json;
    /// # let store = Store::from_database(litehouse::Database::open_memory("doc-patch", litehouse::Config::default())?).await?;
    /// # store.create_collection("notes", CollectionSpec::default()).await?;
    /// let note = store.create("notes", json!({"title": "draft", "tags": ["a"]})).await?;
    /// let note = store.patch("notes", &note.id, json!({"title": null, "done": true}), Some(1)).await?;
    /// assert_eq!(note.to_json()["done"], true);
    /// assert!(note.body.get("title").is_none());
    /// // Someone else's write moved the version on: the stale patch is refused.
    /// let stale = store.patch("notes", &note.id, json!({"done": false}), Some(1)).await;
    /// assert!(matches!(stale, Err(Error::VersionConflict { actual: 2, .. })));
    /// # Ok::<(), litehouse_docs::Error>(())
    /// # }).unwrap();
    /// ```
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
            // The patch is bounded before the recursive merge walks it.
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
        let config = self.config;
        let id = id.to_owned();
        in_transaction!(self, transaction, |c| async {
            let document = ops::update(c, &collection, &id, expected_version, |current| {
                let mut body = Json::Object(current.body.clone());
                merge_patch(&mut body, &patch);
                check_body(body, &config)
            })
            .await?;
            changes::record_documents(
                c,
                &collection,
                ChangeOp::Patch,
                std::slice::from_ref(&document),
            )
            .await?;
            Ok(document)
        })
    }

    /// Deletes a document, applying reference rules (cascade, restrict, set null) through
    /// every chain, in one transaction.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::VersionConflict`], [`Error::Restricted`] naming a
    /// referencing document.
    pub async fn delete(
        &self,
        collection: &str,
        id: &str,
        expected_version: Option<i64>,
    ) -> Result<DeleteReport> {
        let collection = checked_collection(collection)?;
        let id = id.to_owned();
        in_transaction!(self, transaction, |c| cascade::delete(
            c,
            &collection,
            &id,
            expected_version
        ))
    }

    /// Runs a query: filter, sort (NULLs last, `id` tie-breaker), page or cursor, count.
    ///
    /// # Errors
    /// [`Error::InvalidFilter`], [`Error::InvalidPath`], [`Error::InvalidValue`],
    /// [`Error::InvalidQuery`], [`Error::InvalidCursor`] before any query SQL is built.
    pub async fn find(&self, collection: &str, query: &Query) -> Result<Page> {
        self.find_rows(collection, query).await
    }

    /// [`Store::find`] with each document as the JSON text [`Document::to_json`] gives,
    /// for an answer that is sent on as it is: a server's list. On SQLite the stored bodies
    /// are not parsed, which makes a page several times cheaper to produce.
    ///
    /// # Errors
    /// As [`Store::find`].
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use litehouse_docs::{CollectionSpec, Query, Store};
    /// use serde_json::json;
    ///
    /// let store = Store::from_database(litehouse::Database::open_memory("doc-find-json", litehouse::Config::default())?).await?;
    /// store.create_collection("notes", CollectionSpec::default()).await?;
    /// let note = store.create("notes", json!({"text": "hi"})).await?;
    /// let page = store.find_json("notes", &Query::default()).await?;
    /// let first: serde_json::Value = serde_json::from_str(page.items[0].get()).unwrap();
    /// assert_eq!(first, note.to_json());
    /// # Ok::<(), litehouse_docs::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn find_json(
        &self,
        collection: &str,
        query: &Query,
    ) -> Result<Page<Box<serde_json::value::RawValue>>> {
        self.find_rows::<DocumentText>(collection, query)
            .await?
            .try_map(DocumentText::into_json)
    }

    async fn find_rows<T: Row>(&self, collection: &str, query: &Query) -> Result<Page<T>> {
        let collection = checked_collection(collection)?;
        self.check_query(query)?;
        let config = self.config;
        let specs = self.specs.clone();
        retry_on_spec_change(|check| {
            let (specs, collection, query) = (specs.clone(), collection.clone(), query.clone());
            async move {
                in_transaction!(self, read, |c| {
                    let (name, query): (&str, &Query) = (&collection, &query);
                    let found = |page: &Result<Page<T>>| {
                        page.as_ref().is_ok_and(|page| !page.items.is_empty())
                    };
                    read_with_spec(
                        c,
                        &specs,
                        name,
                        check,
                        found,
                        move |cached, guard| async move {
                            let mut plan = plan(query, &cached.types, &config)?;
                            plan.guard = guard;
                            ops::find(c, name, &plan).await
                        },
                    )
                })
            }
        })
        .await
    }

    /// Counts the documents matching `filter` (all when `None`).
    pub async fn count(&self, collection: &str, filter: Option<Filter>) -> Result<u64> {
        let checked = match &filter {
            Some(filter) => self.config.check_filter(filter),
            None => Ok(()),
        };
        if let Err(err) = checked {
            // A filter of any depth: never drop it recursively.
            filter.into_iter().for_each(dispose_filter);
            return Err(err);
        }
        let query = Query {
            filter,
            paging: Paging::Cursor {
                after: None,
                per_page: 1,
            },
            ..Query::default()
        };
        let page = self.find(collection, &query).await?;
        page.total_items
            .ok_or_else(|| Error::corrupt("count missing"))
    }
}

/// Batches up to this size pipeline their spec check on PostgreSQL (and are cloned for a
/// possible second attempt); larger ones read the spec first.
const PIPELINED_BATCH: usize = 16;

impl Store {
    /// Whether calls send the catalog read with their work (PostgreSQL, where it saves a
    /// round trip). On SQLite every statement is in-process, so the spec is read first.
    fn pipelines_spec_checks(&self) -> bool {
        matches!(self.backend, Backend::Postgres { .. })
    }

    /// The checks a query must pass before it is cloned or compiled (both recursive).
    pub(crate) fn check_query(&self, query: &Query) -> Result<()> {
        if let Some(filter) = &query.filter {
            self.config.check_filter(filter)?;
        }
        Ok(())
    }
}

pub(crate) fn check_batch(len: usize) -> Result<()> {
    if len > MAX_BATCH {
        return Err(Error::InvalidDocument {
            reason: format!("at most {MAX_BATCH} documents per batch"),
        });
    }
    Ok(())
}
