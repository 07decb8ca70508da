//! Explain, statistics, and export/import for migrations: the store's maintenance side.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::catalog;
use crate::conn::Conn;
use crate::document::{Document, check_body_text, is_rfc3339_utc};
use crate::error::{Error, Result};
use crate::limits::{StoreConfig, dispose};
use crate::ops;
use crate::query::{Query, plan};
use crate::sql::{Engine, Sql};
use crate::store::{Backend, MAX_BATCH, Store, check_batch, checked_collection, in_transaction};

/// The plan of a query, from [`Store::explain`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Explain {
    /// The engine: `sqlite` or `postgres`.
    pub engine: String,
    /// The page query's SQL.
    pub sql: String,
    /// Its parameters, in order.
    pub params: Vec<Json>,
    /// The engine's plan, one line per entry.
    pub plan: Vec<String>,
    /// Whether the plan reads through an index.
    pub uses_index: bool,
}

impl Store {
    /// The SQL, parameters and engine plan of the page query of `query`.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use litehouse_docs::{CollectionSpec, FieldType, Filter, IndexSpec, Query, Store};
    /// # let store = Store::from_database(litehouse::Database::open_memory("doc-explain", litehouse::Config::default())?).await?;
    /// let spec = CollectionSpec { indexes: vec![IndexSpec::new("by_age", [("age", FieldType::Number)])], references: vec![] };
    /// store.create_collection("people", spec).await?;
    /// let query = Query { filter: Some(Filter::eq("age", 30)), ..Query::default() };
    /// let explain = store.explain("people", &query).await?;
    /// assert!(explain.uses_index, "{:?}", explain.plan);
    /// // The filter value, then LIMIT and OFFSET: every value is bound.
    /// assert_eq!(explain.params[0], serde_json::json!(30));
    /// # Ok::<(), litehouse_docs::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn explain(&self, collection: &str, query: &Query) -> Result<Explain> {
        let collection = checked_collection(collection)?;
        self.check_query(query)?;
        let query = query.clone();
        let config = self.config;
        in_transaction!(self, read, |c| async {
            let spec = catalog::load_spec(c, &collection).await?;
            let plan = plan(&query, &spec.path_types()?, &config)?;
            let sql = plan.select_sql(c.dialect(), &collection);
            let lines = c.plan(&sql).await?;
            let uses_index = lines.iter().any(|line| reads_through_index(line));
            Ok(Explain {
                engine: match c.dialect().engine {
                    Engine::Sqlite => "sqlite".into(),
                    Engine::Postgres => "postgres".into(),
                },
                params: sql.params.iter().map(|param| param.to_json()).collect(),
                sql: sql.text,
                plan: lines,
                uses_index,
            })
        })
    }

    /// Refreshes the planner's statistics for every collection (`ANALYZE`), so that it knows
    /// how selective each typed index is. Run it after a bulk load; SQLite's and
    /// PostgreSQL's autovacuum keep it current afterwards only slowly.
    pub async fn analyze(&self) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(db) => Ok(db.analyze().await?),
            Backend::Postgres { .. } => {
                in_transaction!(self, transaction, |c| async {
                    for info in catalog::list_collections(c).await? {
                        let table = c.dialect().table(&info.name);
                        c.execute(&Sql::plain(c.dialect(), format!("ANALYZE {table}")))
                            .await?;
                    }
                    Ok(())
                })
            }
        }
    }

    /// Up to `limit` documents ordered by id, after the id `after`: a migrate tool streams a
    /// collection with this, passing the last id of each batch.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use litehouse_docs::{CollectionSpec, Store};
    /// # use serde_json::json;
    /// # let open = |name: &'static str| async move { Store::from_database(litehouse::Database::open_memory(name, litehouse::Config::default())?).await };
    /// let (from, to) = (open("doc-export-from").await?, open("doc-export-to").await?);
    /// # from.create_collection("items", CollectionSpec::default()).await?;
    /// # from.create_many("items", (0..25).map(|i| json!({"i": i})).collect()).await?;
    /// for info in from.list_collections().await? {
    ///     to.create_collection(&info.name, info.spec).await?;
    ///     let mut after = None;
    ///     loop {
    ///         let batch = from.export(&info.name, after.as_deref(), 10).await?;
    ///         let Some(last) = batch.last() else { break };
    ///         after = Some(last.id.clone());
    ///         to.import(&info.name, batch).await?;
    ///     }
    /// }
    /// assert_eq!(to.export("items", None, 100).await?, from.export("items", None, 100).await?);
    /// # Ok::<(), litehouse_docs::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn export(
        &self,
        collection: &str,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<Document>> {
        let collection = checked_collection(collection)?;
        let limit = limit.clamp(1, MAX_BATCH as u64);
        let after = after.map(str::to_owned);
        in_transaction!(self, read, |c| async {
            catalog::load_spec(c, &collection).await?;
            ops::export(c, &collection, after.as_deref(), limit).await
        })
    }

    /// Inserts documents as they are, keeping ids, timestamps and versions (the other half of
    /// [`Store::export`]). Unique indexes are checked as on create; references are not, since
    /// the documents come from a consistent store and may name documents imported later.
    /// Create the collections in the order of [`Store::list_collections`].
    ///
    /// # Errors
    /// [`Error::InvalidDocument`] for a bad body, id, timestamp or version;
    /// [`Error::Unique`] (index `id` for a clashing id).
    pub async fn import(&self, collection: &str, documents: Vec<Document>) -> Result<u64> {
        let checked = checked_collection(collection)
            .and_then(|name| Ok((name, check_batch(documents.len())?)));
        let collection = match checked {
            Ok((name, ())) => name,
            Err(err) => {
                dispose_documents(documents);
                return Err(err);
            }
        };
        let mut checked = Vec::with_capacity(documents.len());
        let mut documents = documents.into_iter();
        for document in documents.by_ref() {
            match check_imported(document, &self.config) {
                Ok(document) => checked.push(document),
                Err(err) => {
                    // Bodies may be of any depth: never drop them recursively.
                    dispose_documents(documents.collect());
                    return Err(err);
                }
            }
        }
        let (documents, texts): (Vec<Document>, Vec<String>) = checked.into_iter().unzip();
        let count = documents.len() as u64;
        in_transaction!(self, transaction, |c| ops::insert(
            c,
            &collection,
            documents,
            &texts,
            ops::Origin::Imported
        ))?;
        Ok(count)
    }
}

/// Whether a plan line searches an index, or reads one of the collection's own indexes
/// (`ix...`/`rx...`, see `names.rs`); a full scan in primary-key order does not count.
fn reads_through_index(line: &str) -> bool {
    let own_index = [
        "INDEX ix",
        "INDEX rx",
        " on ix",
        " using ix",
        " on rx",
        " using rx",
    ]
    .iter()
    .any(|marker| line.contains(marker));
    own_index || line.trim_start().starts_with("SEARCH") || line.contains("Index Cond")
}

fn dispose_documents(documents: Vec<Document>) {
    for document in documents {
        dispose(Json::Object(document.body));
    }
}

/// Checks an imported document; a refused one is disposed of without recursion.
fn check_imported(mut document: Document, config: &StoreConfig) -> Result<(Document, String)> {
    let (body, text) = check_body_text(Json::Object(std::mem::take(&mut document.body)), config)?;
    let document = Document { body, ..document };
    if let Err(err) = check_imported_fields(&document) {
        dispose_documents(vec![document]);
        return Err(err);
    }
    Ok((document, text))
}

fn check_imported_fields(document: &Document) -> Result<()> {
    let bad = |reason: String| Error::InvalidDocument { reason };
    if uuid::Uuid::try_parse(&document.id)
        .map(|id| id.to_string() != document.id)
        .unwrap_or(true)
    {
        return Err(bad(format!(
            "id {:?} is not a lowercase hyphenated UUID",
            document.id.chars().take(80).collect::<String>()
        )));
    }
    if !is_rfc3339_utc(&document.created_at) || !is_rfc3339_utc(&document.updated_at) {
        return Err(bad(format!(
            "document {} has a timestamp that is not RFC 3339 UTC",
            document.id
        )));
    }
    if document.version < 1 {
        return Err(bad(format!(
            "document {} has version {}",
            document.id, document.version
        )));
    }
    Ok(())
}
