//! The catalog: one row per collection with its spec, and the DDL that goes with it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::names::{self, FieldPath};
use crate::spec::{CollectionInfo, CollectionSpec, FieldType};
use crate::sql::{Dialect, Engine, Param, Sql};

pub(crate) async fn ensure_catalog(c: &impl Conn) -> Result<()> {
    c.execute(&Sql::plain(c.dialect(), c.dialect().create_catalog()))
        .await?;
    crate::changes::ensure(c).await?;
    Ok(())
}

/// Every collection, referenced collections before those that reference them (then by
/// name), so that recreating them in this order, as a migration does, always works.
pub(crate) async fn list_collections(c: &impl Conn) -> Result<Vec<CollectionInfo>> {
    let sql = Sql::plain(
        c.dialect(),
        format!(
            "SELECT name, spec FROM {} ORDER BY name",
            c.dialect().catalog()
        ),
    );
    c.texts(&sql)
        .await?
        .into_iter()
        .map(|row| {
            let (Some(Some(name)), Some(Some(spec))) = (row.first(), row.get(1)) else {
                return Err(Error::corrupt("catalog row without name or spec"));
            };
            Ok(CollectionInfo {
                name: catalog_name(name)?,
                spec: catalog_spec(name, spec)?,
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(dependencies_first)
}

/// A name read back from the catalog passes the same check as a caller's, so a tampered or
/// foreign row never reaches SQL.
fn catalog_name(name: &str) -> Result<String> {
    names::collection_name(name)
        .map(str::to_owned)
        .map_err(|err| Error::corrupt(format!("catalog row {:?}: {err}", shown(name))))
}

/// A spec read back from the catalog is validated as a caller's spec is: index names,
/// referenced collection names and paths all go through `names.rs`.
fn catalog_spec(name: &str, text: &str) -> Result<CollectionSpec> {
    let spec: CollectionSpec = serde_json::from_str(text)
        .map_err(|err| Error::corrupt(format!("spec of {:?}: {err}", shown(name))))?;
    spec.validate()
        .map_err(|err| Error::corrupt(format!("spec of {:?}: {err}", shown(name))))?;
    Ok(spec)
}

fn shown(name: &str) -> String {
    name.chars().take(80).collect()
}

/// A stable topological order. A reference target must exist when a collection is created,
/// so the only cycles are self-references, which are ignored here.
fn dependencies_first(mut pending: Vec<CollectionInfo>) -> Vec<CollectionInfo> {
    let mut ordered: Vec<CollectionInfo> = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .position(|info| {
                info.spec.references.iter().all(|reference| {
                    reference.collection == info.name
                        || ordered.iter().any(|done| done.name == reference.collection)
                        || !pending
                            .iter()
                            .any(|other| other.name == reference.collection)
                })
            })
            // Unreachable with a consistent catalog; keep every collection regardless.
            .unwrap_or(0);
        ordered.push(pending.remove(ready));
    }
    ordered
}

pub(crate) async fn load_spec(c: &impl Conn, collection: &str) -> Result<CollectionSpec> {
    load_spec_with(c, collection, false).await
}

/// The spec of `collection`, its catalog row locked until commit on PostgreSQL, for a change
/// to the spec (two concurrent index changes must not lose one another).
pub(crate) async fn load_spec_for_update(
    c: &impl Conn,
    collection: &str,
) -> Result<CollectionSpec> {
    load_spec_with(c, collection, true).await
}

async fn load_spec_with(c: &impl Conn, collection: &str, lock: bool) -> Result<CollectionSpec> {
    let mut sql = Sql::new(c.dialect());
    sql.push("SELECT spec FROM ")
        .push(&c.dialect().catalog())
        .push(" WHERE name = ");
    sql.bind(Param::Text(collection.to_owned()));
    if lock {
        sql.push(c.dialect().for_update());
    }
    let Some(spec) = c.text(&sql).await? else {
        return Err(Error::CollectionNotFound {
            collection: collection.to_owned(),
        });
    };
    catalog_spec(collection, &spec)
}

pub(crate) async fn create_collection(
    c: &impl Conn,
    collection: &str,
    spec: &CollectionSpec,
) -> Result<()> {
    let dialect = c.dialect().clone();
    let catalog = list_collections(c).await?;
    if catalog.iter().any(|info| info.name == collection) {
        return Err(Error::CollectionExists {
            collection: collection.to_owned(),
        });
    }
    for reference in &spec.references {
        if reference.collection != collection
            && !catalog.iter().any(|info| info.name == reference.collection)
        {
            return Err(Error::InvalidSpec {
                reason: format!(
                    "reference {:?} names collection {:?}, which does not exist",
                    reference.path, reference.collection
                ),
            });
        }
    }
    c.execute(&Sql::plain(&dialect, dialect.create_table(collection)))
        .await?;
    for index in &spec.indexes {
        let fields = index
            .fields
            .iter()
            .map(|field| Ok((FieldPath::parse(&field.path)?, field.field_type)))
            .collect::<Result<Vec<_>>>()?;
        let ident = names::index_ident(collection, &index.name);
        c.execute(&Sql::plain(
            &dialect,
            dialect.create_index(collection, &ident, &fields, index.unique),
        ))
        .await?;
    }
    for (position, reference) in spec.references.iter().enumerate() {
        let fields = [(FieldPath::parse(&reference.path)?, FieldType::String)];
        let ident = names::reference_index_ident(collection, position);
        c.execute(&Sql::plain(
            &dialect,
            dialect.create_index(collection, &ident, &fields, false),
        ))
        .await?;
    }
    let spec_text = serde_json::to_string(spec).map_err(|err| Error::corrupt(err.to_string()))?;
    let mut insert = Sql::new(&dialect);
    insert
        .push("INSERT INTO ")
        .push(&dialect.catalog())
        .push(" (name, spec) VALUES (");
    insert
        .bind(Param::Text(collection.to_owned()))
        .push(", ")
        .bind(Param::Text(spec_text))
        .push(")");
    c.execute(&insert).await?;
    crate::changes::record(
        c,
        vec![crate::changes::NewChange::collection(
            collection,
            crate::changes::ChangeOp::CollectionCreate,
        )],
    )
    .await?;
    Ok(())
}

/// Stores a changed spec of an existing collection.
pub(crate) async fn store_spec(
    c: &impl Conn,
    collection: &str,
    spec: &CollectionSpec,
) -> Result<()> {
    let dialect = c.dialect();
    let spec_text = serde_json::to_string(spec).map_err(|err| Error::corrupt(err.to_string()))?;
    let mut update = Sql::new(dialect);
    update
        .push("UPDATE ")
        .push(&dialect.catalog())
        .push(" SET spec = ")
        .bind(Param::Text(spec_text))
        .push(" WHERE name = ")
        .bind(Param::Text(collection.to_owned()));
    c.execute(&update).await?;
    Ok(())
}

pub(crate) async fn drop_collection(c: &impl Conn, collection: &str) -> Result<()> {
    let dialect = c.dialect().clone();
    let catalog = list_collections(c).await?;
    if !catalog.iter().any(|info| info.name == collection) {
        return Err(Error::CollectionNotFound {
            collection: collection.to_owned(),
        });
    }
    if let Some(other) = catalog.iter().find(|info| {
        info.name != collection
            && info
                .spec
                .references
                .iter()
                .any(|reference| reference.collection == collection)
    }) {
        return Err(Error::CollectionInUse {
            collection: collection.to_owned(),
            referenced_by: other.name.clone(),
        });
    }
    c.execute(&Sql::plain(
        &dialect,
        format!("DROP TABLE {}", dialect.table(collection)),
    ))
    .await?;
    let mut delete = Sql::new(&dialect);
    delete
        .push("DELETE FROM ")
        .push(&dialect.catalog())
        .push(" WHERE name = ");
    delete.bind(Param::Text(collection.to_owned()));
    c.execute(&delete).await?;
    crate::changes::record(
        c,
        vec![crate::changes::NewChange::collection(
            collection,
            crate::changes::ChangeOp::CollectionDrop,
        )],
    )
    .await?;
    Ok(())
}

/// A spec as stored in the catalog, with what every call derives from it.
#[derive(Debug)]
pub(crate) struct CachedSpec {
    /// The catalog text it was read from: the cache entry is fresh while the row still
    /// holds exactly this text.
    text: String,
    pub(crate) spec: CollectionSpec,
    pub(crate) types: BTreeMap<FieldPath, FieldType>,
}

/// Most collections whose specs a store keeps; past it the cache starts over.
const MAX_CACHED_SPECS: usize = 1024;

/// The specs a store has read, by collection. An entry is only a guess: every call checks
/// the catalog row again in its own transaction (or, for SQLite reads, in its own statement:
/// [`SpecGuard`]) and acts only if the row's text is still the cached text, so another process or server that drops, recreates or re-indexes a
/// collection is seen at once. What the cache saves is parsing and validating the spec
/// (both engines) and, on PostgreSQL, the round trip: the catalog read is pipelined with
/// the call's first statement ([`SpecCheck::Pipelined`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct SpecCache(Arc<Mutex<HashMap<String, Arc<CachedSpec>>>>);

impl SpecCache {
    fn get(&self, collection: &str) -> Option<Arc<CachedSpec>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(collection)
            .cloned()
    }

    fn put(&self, collection: &str, cached: Arc<CachedSpec>) {
        let mut specs = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if specs.len() >= MAX_CACHED_SPECS && !specs.contains_key(collection) {
            specs.clear();
        }
        specs.insert(collection.to_owned(), cached);
    }

    fn forget(&self, collection: &str) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(collection);
    }
}

/// How a call confirms that the spec it uses is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpecCheck {
    /// Read the catalog row first, then work with the spec it holds.
    First,
    /// PostgreSQL with a cached spec: send the catalog read and the work together (one
    /// round trip saved). When the row turns out to have changed, the call fails with
    /// [`Error::SpecChanged`], rolling the transaction back, and the caller runs it again.
    Pipelined,
}

/// The spec text of `collection`, or `None` when there is no such collection.
async fn load_spec_text(c: &impl Conn, collection: &str) -> Result<Option<String>> {
    let mut sql = Sql::new(c.dialect());
    sql.push("SELECT spec FROM ")
        .push(&c.dialect().catalog())
        .push(" WHERE name = ");
    sql.bind(Param::Text(collection.to_owned()));
    c.text(&sql).await
}

/// Runs `work` with the current spec of `collection`, read through `cache` (see
/// [`SpecCache`]). With [`SpecCheck::Pipelined`] and a cached spec, `work` runs beside the
/// catalog read and its outcome counts only if the spec was current.
pub(crate) async fn with_spec<T, F, Fut>(
    c: &impl Conn,
    cache: &SpecCache,
    collection: &str,
    check: SpecCheck,
    work: F,
) -> Result<T>
where
    F: FnOnce(Arc<CachedSpec>) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let cached = cache.get(collection);
    // SQLite statements are in-process calls: nothing to save by pipelining.
    let pipelined = check == SpecCheck::Pipelined && c.dialect().engine == Engine::Postgres;
    if let (true, Some(cached)) = (pipelined, &cached) {
        // `biased`: the catalog read is sent first, so it runs before the work's first
        // statement even when that one fails and aborts the transaction.
        let (text, outcome) = tokio::join!(
            biased;
            load_spec_text(c, collection),
            work(Arc::clone(cached))
        );
        return confirmed(cache, collection, cached, text?, outcome);
    }
    let Some(text) = load_spec_text(c, collection).await? else {
        cache.forget(collection);
        return Err(Error::CollectionNotFound {
            collection: collection.to_owned(),
        });
    };
    let current = match cached {
        Some(cached) if cached.text == text => cached,
        _ => {
            let spec = catalog_spec(collection, &text)?;
            let types = spec.path_types()?;
            let fresh = Arc::new(CachedSpec { text, spec, types });
            cache.put(collection, Arc::clone(&fresh));
            fresh
        }
    };
    work(current).await
}

/// A spec check folded into a read's own statement (SQLite): the statement matches rows only
/// while the catalog row of the collection still holds the cached text.
#[derive(Debug, Clone)]
pub(crate) struct SpecGuard {
    collection: String,
    text: String,
}

impl SpecGuard {
    /// Appends `(SELECT spec FROM catalog WHERE name = ?) = ?`: a constant condition, which
    /// SQLite evaluates once per statement, before its loop.
    pub(crate) fn push(&self, sql: &mut Sql, dialect: &Dialect) {
        sql.push("(SELECT spec FROM ")
            .push(&dialect.catalog())
            .push(" WHERE name = ")
            .bind(Param::Text(self.collection.clone()))
            .push(") = ")
            .bind(Param::Text(self.text.clone()));
    }
}

/// [`with_spec`] for reads. On SQLite with a cached spec and a [`SpecCheck::Pipelined`]
/// attempt, the check rides in the read's own statement as a [`SpecGuard`] instead of a
/// statement of its own; only when the read finds nothing (`found` says no) or fails is the
/// catalog row read, in the same snapshot, to tell "nothing there" from "the spec changed".
/// Elsewhere it is [`with_spec`].
pub(crate) async fn read_with_spec<T, F, Fut>(
    c: &impl Conn,
    cache: &SpecCache,
    collection: &str,
    check: SpecCheck,
    found: impl FnOnce(&Result<T>) -> bool,
    work: F,
) -> Result<T>
where
    F: FnOnce(Arc<CachedSpec>, Option<SpecGuard>) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let guarded = match cache.get(collection) {
        Some(cached) if check == SpecCheck::Pipelined && c.dialect().engine == Engine::Sqlite => {
            cached
        }
        _ => return with_spec(c, cache, collection, check, |cached| work(cached, None)).await,
    };
    let guard = SpecGuard {
        collection: collection.to_owned(),
        text: guarded.text.clone(),
    };
    let outcome = work(Arc::clone(&guarded), Some(guard)).await;
    if found(&outcome) {
        return outcome;
    }
    let text = load_spec_text(c, collection).await?;
    confirmed(cache, collection, &guarded, text, outcome)
}

/// The outcome of work done with `cached`, given the catalog row's `text` read in the same
/// transaction: kept while the row still holds the cached text, otherwise the entry is
/// forgotten and the call fails with [`Error::SpecChanged`] or [`Error::CollectionNotFound`].
fn confirmed<T>(
    cache: &SpecCache,
    collection: &str,
    cached: &CachedSpec,
    text: Option<String>,
    outcome: Result<T>,
) -> Result<T> {
    if text.as_deref() == Some(cached.text.as_str()) {
        return outcome;
    }
    cache.forget(collection);
    let collection = collection.to_owned();
    Err(match text {
        Some(_) => Error::SpecChanged { collection },
        None => Error::CollectionNotFound { collection },
    })
}

/// Runs `attempt` again, up to [`SPEC_ATTEMPTS`] times in all, while it fails with
/// [`Error::SpecChanged`]; the last attempt checks the spec first, so it cannot.
pub(crate) async fn retry_on_spec_change<T, F, Fut>(mut attempt: F) -> Result<T>
where
    F: FnMut(SpecCheck) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    for _ in 1..SPEC_ATTEMPTS {
        match attempt(SpecCheck::Pipelined).await {
            Err(Error::SpecChanged { .. }) => continue,
            outcome => return outcome,
        }
    }
    attempt(SpecCheck::First).await
}

/// Attempts of a pipelined call whose spec keeps changing under it.
const SPEC_ATTEMPTS: usize = 3;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{OnDelete, ReferenceSpec};

    #[test]
    fn referenced_collections_come_first() {
        let info = |name: &str, targets: &[&str]| CollectionInfo {
            name: name.into(),
            spec: CollectionSpec {
                indexes: vec![],
                references: targets
                    .iter()
                    .map(|target| ReferenceSpec::new("r", *target, OnDelete::Cascade))
                    .collect(),
            },
        };
        let ordered = dependencies_first(vec![
            info("a", &["c"]),
            info("b", &[]),
            info("c", &["b", "c"]),
        ]);
        let names: Vec<&str> = ordered.iter().map(|info| info.name.as_str()).collect();
        assert_eq!(names, ["b", "c", "a"]);
    }
}
