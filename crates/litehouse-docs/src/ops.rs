//! The store's document logic, written once over [`Conn`] for both engines. Every function
//! here runs inside one transaction; an error rolls all of it back.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value as Json};

use crate::catalog::{SpecGuard, load_spec};
use crate::conn::Conn;
use crate::document::{Document, DocumentText, now_timestamp};
use crate::error::{Error, Result};
use crate::names::{self, FieldPath};
use crate::query::{Page, Plan};
use crate::spec::{CollectionSpec, FieldType};
use crate::sql::{Extract, Param, Sql};

/// A new document for `body`, which [`check_body`](crate::document::check_body) passed.
pub(crate) fn new_document(body: Map<String, Json>) -> Document {
    let now = now_timestamp();
    Document::from_parts(uuid::Uuid::now_v7().to_string(), now.clone(), now, 1, body)
}

pub(crate) async fn get(c: &impl Conn, collection: &str, id: &str, lock: bool) -> Result<Document> {
    get_guarded(c, collection, id, lock, None).await
}

/// [`get`], matching only while `guard` holds (see [`SpecGuard`]).
pub(crate) async fn get_guarded(
    c: &impl Conn,
    collection: &str,
    id: &str,
    lock: bool,
    guard: Option<&SpecGuard>,
) -> Result<Document> {
    let dialect = c.dialect();
    let mut sql = Sql::new(dialect);
    sql.push("SELECT ")
        .push(dialect.document_columns())
        .push(" FROM ")
        .push(&dialect.table(collection))
        .push(" WHERE id = ")
        .bind(Param::Text(id.to_owned()));
    if let Some(guard) = guard {
        sql.push(" AND ");
        guard.push(&mut sql, dialect);
    }
    if lock {
        sql.push(dialect.for_update());
    }
    c.documents(&sql)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| Error::NotFound {
            collection: collection.to_owned(),
            id: id.to_owned(),
        })
}

/// Where inserted documents come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Made here with fresh UUIDv7 ids, which cannot clash.
    New,
    /// Imported with their own ids, which may.
    Imported,
}

/// Inserts documents (new or imported) after the unique and reference checks.
///
/// Batched per chunk of [`ROWS_PER_INSERT`]: one query per unique index (plus a check inside
/// the chunk in memory), one query per reference, and one multi-row `INSERT`, so the number
/// of statements does not grow with the number of documents.
pub(crate) async fn insert(
    c: &impl Conn,
    collection: &str,
    documents: Vec<Document>,
    texts: &[String],
    origin: Origin,
) -> Result<Vec<Document>> {
    let spec = load_spec(c, collection).await?;
    insert_with_spec(c, collection, &spec, documents, texts, origin).await
}

/// [`insert`] with the collection's current spec already read.
pub(crate) async fn insert_with_spec(
    c: &impl Conn,
    collection: &str,
    spec: &CollectionSpec,
    documents: Vec<Document>,
    texts: &[String],
    origin: Origin,
) -> Result<Vec<Document>> {
    if texts.len() != documents.len() {
        return Err(Error::corrupt("a document without its text"));
    }
    let unique: Vec<UniqueIndex> = spec
        .indexes
        .iter()
        .filter(|index| index.unique)
        .map(UniqueIndex::new)
        .collect::<Result<_>>()?;
    // Values already taken by earlier chunks of this call, per unique index.
    let mut taken: Vec<HashMap<String, String>> = vec![HashMap::new(); unique.len()];
    let chunks = documents.len().div_ceil(ROWS_PER_INSERT);
    for (number, (chunk, chunk_texts)) in documents
        .chunks(ROWS_PER_INSERT)
        .zip(texts.chunks(ROWS_PER_INSERT))
        .enumerate()
    {
        if origin == Origin::Imported {
            check_new_ids(c, collection, chunk).await?;
        }
        for (index, taken) in unique.iter().zip(&mut taken) {
            check_unique_batch(c, collection, index, chunk, taken).await?;
        }
        if origin == Origin::New {
            check_references_batch(c, collection, spec, chunk).await?;
        }
        let insert = async {
            insert_rows(c, collection, chunk, chunk_texts)
                .await
                .map_err(|err| engine_unique(err, collection, spec))
        };
        if number + 1 < chunks {
            insert.await?;
            continue;
        }
        // The log's INSERT goes out beside the last rows' INSERT: on PostgreSQL one round
        // trip instead of two. `biased`: the rows are sent first, so when they fail (and
        // abort the transaction, failing the log's INSERT too) theirs is the error returned.
        let (inserted, recorded) = tokio::join!(
            biased;
            insert,
            crate::changes::record_written(
                c,
                collection,
                crate::changes::ChangeOp::Create,
                &documents,
                texts
            )
        );
        inserted?;
        recorded?;
    }
    Ok(documents)
}

/// Rows per multi-row INSERT: 5 parameters each stays far below both engines' limits.
const ROWS_PER_INSERT: usize = 500;

/// A unique index with its paths parsed once per call.
struct UniqueIndex {
    name: String,
    fields: Vec<(FieldPath, FieldType)>,
}

impl UniqueIndex {
    fn new(index: &crate::spec::IndexSpec) -> Result<UniqueIndex> {
        Ok(UniqueIndex {
            name: index.name.clone(),
            fields: index
                .fields
                .iter()
                .map(|field| Ok((FieldPath::parse(&field.path)?, field.field_type)))
                .collect::<Result<_>>()?,
        })
    }

    /// The typed values of `document`, or `None` when one is missing or mistyped (NULL in
    /// the index, so never in conflict).
    fn values(&self, document: &Document) -> Option<Vec<Param>> {
        self.fields
            .iter()
            .map(|(path, field_type)| typed_value(document, path, *field_type))
            .collect()
    }
}

/// A key under which equal index values (as the engines compare them) are equal: numbers
/// compare by value, so `1` and `1.0` share a key.
fn value_key(values: &[Param]) -> String {
    let parts: Vec<Json> = values
        .iter()
        .map(|param| match param {
            Param::Num(number) => match (number.as_i64(), number.as_f64()) {
                (Some(int), _) => Json::from(int),
                // An integral float is keyed as the integer it equals (exactly, in range).
                (None, Some(float))
                    if float.fract() == 0.0 && float.abs() < 9_007_199_254_740_992.0 =>
                {
                    Json::from(float as i64)
                }
                (None, float) => Json::from(float.unwrap_or(f64::NAN)),
            },
            other => other.to_json(),
        })
        .collect();
    Json::Array(parts).to_string()
}

/// Checks one unique index for a chunk: against earlier documents of the same call and of
/// the chunk in memory, then against stored documents in one query.
async fn check_unique_batch(
    c: &impl Conn,
    collection: &str,
    index: &UniqueIndex,
    chunk: &[Document],
    taken: &mut HashMap<String, String>,
) -> Result<()> {
    let conflict = |conflicting_id: Option<String>| Error::Unique {
        collection: collection.to_owned(),
        index: index.name.clone(),
        conflicting_id,
    };
    let mut rows: Vec<Vec<Param>> = Vec::new();
    for document in chunk {
        let Some(values) = index.values(document) else {
            continue;
        };
        if let Some(earlier) = taken.insert(value_key(&values), document.id.clone()) {
            return Err(conflict(Some(earlier)));
        }
        rows.push(values);
    }
    if rows.is_empty() {
        return Ok(());
    }
    let dialect = c.dialect();
    let exprs: Vec<String> = index
        .fields
        .iter()
        .map(|(path, field_type)| dialect.extract(path, Extract::Typed(*field_type)))
        .collect();
    let mut sql = Sql::new(dialect);
    sql.push("SELECT id FROM ")
        .push(&dialect.table(collection))
        .push(" WHERE ");
    if let [expr] = exprs.as_slice() {
        // One field: `expr IN (...)`, which both planners answer from the index.
        sql.push(expr).push(" IN ");
        sql.bind_list(rows.into_iter().flatten());
    } else {
        sql.push("(").push(&exprs.join(", ")).push(") IN (VALUES ");
        for (position, row) in rows.into_iter().enumerate() {
            if position > 0 {
                sql.push(", ");
            }
            sql.bind_list(row);
        }
        sql.push(")");
    }
    sql.push(" ORDER BY id LIMIT 1");
    match c.texts(&sql).await?.into_iter().next() {
        Some(row) => Err(conflict(row.into_iter().next().flatten())),
        None => Ok(()),
    }
}

/// Checks every reference of a chunk with one query per reference, locking the targets
/// (`FOR KEY SHARE` on PostgreSQL, in id order) so that a concurrent cascade waits for
/// this transaction or is waited for.
async fn check_references_batch(
    c: &impl Conn,
    collection: &str,
    spec: &CollectionSpec,
    chunk: &[Document],
) -> Result<()> {
    let dialect = c.dialect();
    for reference in &spec.references {
        let path = FieldPath::parse(&reference.path)?;
        // (referencing path value, in document order), skipping self-references.
        let mut targets: Vec<String> = Vec::new();
        for document in chunk {
            let target_id = match document.value_at(&path) {
                None | Some(Json::Null) => continue,
                Some(Json::String(target_id)) => target_id,
                Some(other) => {
                    return Err(Error::InvalidValue {
                        path: reference.path.clone(),
                        expected: FieldType::String,
                        found: other.to_string().chars().take(80).collect(),
                    });
                }
            };
            if reference.collection == collection && target_id == document.id {
                continue;
            }
            targets.push(target_id);
        }
        if targets.is_empty() {
            continue;
        }
        let mut unique_targets: Vec<&String> = targets.iter().collect();
        unique_targets.sort();
        unique_targets.dedup();
        let mut sql = Sql::new(dialect);
        sql.push("SELECT id FROM ")
            .push(&dialect.table(&reference.collection))
            .push(" WHERE id IN ");
        sql.bind_list(
            unique_targets
                .iter()
                .map(|target_id| Param::Text((*target_id).clone())),
        );
        sql.push(" ORDER BY id").push(dialect.for_key_share());
        let found: HashSet<String> = c
            .texts(&sql)
            .await?
            .into_iter()
            .filter_map(|row| row.into_iter().next().flatten())
            .collect();
        if let Some(missing) = targets
            .into_iter()
            .find(|target_id| !found.contains(target_id))
        {
            return Err(Error::ReferenceNotFound {
                path: reference.path.clone(),
                target_collection: reference.collection.clone(),
                target_id: missing,
            });
        }
    }
    Ok(())
}

/// Imported ids must not exist yet.
pub(crate) async fn check_new_ids(
    c: &impl Conn,
    collection: &str,
    documents: &[Document],
) -> Result<()> {
    let dialect = c.dialect();
    let mut sql = Sql::new(dialect);
    sql.push("SELECT id FROM ")
        .push(&dialect.table(collection))
        .push(" WHERE id IN ");
    sql.bind_list(
        documents
            .iter()
            .map(|document| Param::Text(document.id.clone())),
    );
    sql.push(" ORDER BY id LIMIT 1");
    match c.texts(&sql).await?.into_iter().next() {
        Some(row) => Err(Error::Unique {
            collection: collection.to_owned(),
            index: "id".into(),
            conflicting_id: row.into_iter().next().flatten(),
        }),
        None => Ok(()),
    }
}

/// `texts[i]` is the body of `documents[i]` as serialised by the body check.
async fn insert_rows(
    c: &impl Conn,
    collection: &str,
    documents: &[Document],
    texts: &[String],
) -> Result<()> {
    let dialect = c.dialect();
    let mut sql = Sql::new(dialect);
    sql.push("INSERT INTO ")
        .push(&dialect.table(collection))
        .push(" (id, doc, created_at, updated_at, version) VALUES ");
    for (position, (document, text)) in documents.iter().zip(texts).enumerate() {
        if position > 0 {
            sql.push(", ");
        }
        sql.bind_list([
            Param::Text(document.id.clone()),
            Param::Json(text.clone()),
            Param::Text(document.created_at.clone()),
            Param::Text(document.updated_at.clone()),
            Param::Int(document.version),
        ]);
    }
    c.execute(&sql).await?;
    Ok(())
}

fn body_text(body: &Map<String, Json>) -> Result<String> {
    serde_json::to_string(body).map_err(|err| Error::corrupt(err.to_string()))
}

/// A unique violation that the checks before the write could not see (a concurrent writer
/// on PostgreSQL) still becomes [`Error::Unique`], naming the index from the engine's message.
fn engine_unique(err: Error, collection: &str, spec: &CollectionSpec) -> Error {
    let message = match &err {
        Error::Sqlite(inner)
            if matches!(
                inner.constraint_kind(),
                Some(litehouse::ConstraintKind::Unique | litehouse::ConstraintKind::PrimaryKey)
            ) =>
        {
            inner.to_string()
        }
        Error::Postgres { code, message } if code.as_deref() == Some("23505") => message.clone(),
        _ => return err,
    };
    let index = spec
        .indexes
        .iter()
        .find(|index| message.contains(&names::index_ident(collection, &index.name)))
        .map_or_else(|| "id".to_owned(), |index| index.name.clone());
    Error::Unique {
        collection: collection.to_owned(),
        index,
        conflicting_id: None,
    }
}

/// Replaces a document's body through `change`, checking the expected version first.
pub(crate) async fn update(
    c: &impl Conn,
    collection: &str,
    id: &str,
    expected_version: Option<i64>,
    change: impl FnOnce(&Document) -> Result<Map<String, Json>>,
) -> Result<Document> {
    let spec = load_spec(c, collection).await?;
    let current = get(c, collection, id, true).await?;
    check_version(collection, &current, expected_version)?;
    let body = change(&current)?;
    let document = Document::from_parts(
        current.id.clone(),
        current.created_at.clone(),
        now_timestamp(),
        current.version + 1,
        body,
    );
    write_row(c, collection, &spec, &document).await?;
    Ok(document)
}

/// Writes `document` over its row after the unique and reference checks.
async fn write_row(
    c: &impl Conn,
    collection: &str,
    spec: &CollectionSpec,
    document: &Document,
) -> Result<()> {
    check_constraints(c, collection, spec, document, Origin::New).await?;
    let dialect = c.dialect();
    let mut sql = Sql::new(dialect);
    sql.push("UPDATE ")
        .push(&dialect.table(collection))
        .push(" SET doc = ")
        .bind(Param::Json(body_text(&document.body)?))
        .push(", updated_at = ")
        .bind(Param::Text(document.updated_at.clone()))
        .push(", version = ")
        .bind(Param::Int(document.version))
        .push(" WHERE id = ")
        .bind(Param::Text(document.id.clone()));
    c.execute(&sql)
        .await
        .map_err(|err| engine_unique(err, collection, spec))?;
    Ok(())
}

/// Replaces the bodies of existing documents (distinct ids) in one go: the spec read once,
/// the current rows read (and locked on PostgreSQL) a few hundred per statement, one
/// `UPDATE` each after the same checks as [`update`], and their changes recorded together.
pub(crate) async fn replace_many(
    c: &impl Conn,
    collection: &str,
    bodies: Vec<(String, Map<String, Json>)>,
) -> Result<Vec<Document>> {
    let spec = load_spec(c, collection).await?;
    let dialect = c.dialect();
    // Only what the new row needs from the old one: parsing the old bodies would cost more
    // than the update itself.
    let mut current: HashMap<String, (String, i64)> = HashMap::with_capacity(bodies.len());
    for chunk in bodies.chunks(300) {
        let mut sql = Sql::new(dialect);
        sql.push("SELECT id, created_at, CAST(version AS TEXT) FROM ")
            .push(&dialect.table(collection))
            .push(" WHERE id IN ")
            .bind_list(chunk.iter().map(|(id, _)| Param::Text(id.clone())));
        sql.push(dialect.for_update());
        for row in c.texts(&sql).await? {
            if let [Some(id), Some(created_at), Some(version)] = row.as_slice() {
                let version = version
                    .parse()
                    .map_err(|_| Error::corrupt(format!("version {version:?} of {id:?}")))?;
                current.insert(id.clone(), (created_at.clone(), version));
            }
        }
    }
    let now = now_timestamp();
    let mut replaced = Vec::with_capacity(bodies.len());
    for (id, body) in bodies {
        let Some((created_at, version)) = current.remove(&id) else {
            return Err(Error::NotFound {
                collection: collection.to_owned(),
                id,
            });
        };
        let document = Document::from_parts(id, created_at, now.clone(), version + 1, body);
        write_row(c, collection, &spec, &document).await?;
        replaced.push(document);
    }
    crate::changes::record_documents(c, collection, crate::changes::ChangeOp::Replace, &replaced)
        .await?;
    Ok(replaced)
}

pub(crate) fn check_version(
    collection: &str,
    current: &Document,
    expected_version: Option<i64>,
) -> Result<()> {
    match expected_version {
        Some(expected) if expected != current.version => Err(Error::VersionConflict {
            collection: collection.to_owned(),
            id: current.id.clone(),
            expected,
            actual: current.version,
        }),
        _ => Ok(()),
    }
}

/// Unique indexes and references, checked before the write so that errors can name the
/// conflicting document; the unique indexes themselves remain the final guard. Imported
/// documents skip the reference check: they come from a consistent store, and a document
/// may name one that comes later in the same import (a self-reference).
async fn check_constraints(
    c: &impl Conn,
    collection: &str,
    spec: &CollectionSpec,
    document: &Document,
    origin: Origin,
) -> Result<()> {
    let dialect = c.dialect();
    for index in spec.indexes.iter().filter(|index| index.unique) {
        let mut sql = Sql::new(dialect);
        sql.push("SELECT id FROM ")
            .push(&dialect.table(collection))
            .push(" WHERE ");
        let mut complete = true;
        for field in &index.fields {
            let path = FieldPath::parse(&field.path)?;
            let Some(value) = typed_value(document, &path, field.field_type) else {
                // A missing or mistyped value is NULL in the index and never conflicts.
                complete = false;
                break;
            };
            sql.push(&dialect.extract(&path, Extract::Typed(field.field_type)))
                .push(" = ")
                .bind(value)
                .push(" AND ");
        }
        if !complete {
            continue;
        }
        sql.push("id <> ")
            .bind(Param::Text(document.id.clone()))
            .push(" LIMIT 1");
        if let Some(row) = c.texts(&sql).await?.into_iter().next() {
            return Err(Error::Unique {
                collection: collection.to_owned(),
                index: index.name.clone(),
                conflicting_id: row.into_iter().next().flatten(),
            });
        }
    }
    let references = match origin {
        Origin::New => spec.references.as_slice(),
        Origin::Imported => &[],
    };
    for reference in references {
        let path = FieldPath::parse(&reference.path)?;
        let target_id = match document.value_at(&path) {
            None | Some(Json::Null) => continue,
            Some(Json::String(target_id)) => target_id,
            Some(other) => {
                return Err(Error::InvalidValue {
                    path: reference.path.clone(),
                    expected: FieldType::String,
                    found: other.to_string().chars().take(80).collect(),
                });
            }
        };
        if reference.collection == collection && target_id == document.id {
            continue;
        }
        let mut sql = Sql::new(dialect);
        sql.push("SELECT id FROM ")
            .push(&dialect.table(&reference.collection))
            .push(" WHERE id = ");
        sql.bind(Param::Text(target_id.clone()));
        sql.push(dialect.for_key_share());
        if c.texts(&sql).await?.is_empty() {
            return Err(Error::ReferenceNotFound {
                path: reference.path.clone(),
                target_collection: reference.collection.clone(),
                target_id,
            });
        }
    }
    Ok(())
}

/// The Rust twin of [`Dialect::extract`](crate::sql::Dialect::extract) for a typed path.
pub(crate) fn typed_value(
    document: &Document,
    path: &FieldPath,
    field_type: FieldType,
) -> Option<Param> {
    match (field_type, document.value_at(path)?) {
        (FieldType::String | FieldType::Datetime, Json::String(text)) => Some(Param::Text(text)),
        (FieldType::Number, Json::Number(number)) => Some(Param::Num(number)),
        (FieldType::Bool, Json::Bool(flag)) => Some(Param::Bool(flag)),
        _ => None,
    }
}

/// What a page is made of: parsed documents, or their stored text.
pub(crate) trait Row: Sized + Send + 'static {
    /// The rows of `sql`, a select of [`crate::sql::Dialect::document_columns`].
    async fn read(c: &impl Conn, sql: &Sql) -> Result<Vec<Self>>;
    /// The row as a document (to encode a cursor from).
    fn document(&self) -> Result<Cow<'_, Document>>;
}

impl Row for Document {
    async fn read(c: &impl Conn, sql: &Sql) -> Result<Vec<Document>> {
        c.documents(sql).await
    }
    fn document(&self) -> Result<Cow<'_, Document>> {
        Ok(Cow::Borrowed(self))
    }
}

impl Row for DocumentText {
    async fn read(c: &impl Conn, sql: &Sql) -> Result<Vec<DocumentText>> {
        c.document_texts(sql).await
    }
    fn document(&self) -> Result<Cow<'_, Document>> {
        self.to_document().map(Cow::Owned)
    }
}

pub(crate) async fn find<T: Row>(c: &impl Conn, collection: &str, plan: &Plan) -> Result<Page<T>> {
    let dialect = c.dialect();
    let items = T::read(c, &plan.select_sql(dialect, collection)).await?;
    let total = if plan.count {
        Some(c.count(&plan.count_sql(dialect, collection)).await?)
    } else {
        None
    };
    plan.page(items, total)
}

/// Documents ordered by id, after `after`, at most `limit`.
pub(crate) async fn export(
    c: &impl Conn,
    collection: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<Document>> {
    let dialect = c.dialect();
    let mut sql = Sql::new(dialect);
    sql.push("SELECT ")
        .push(dialect.document_columns())
        .push(" FROM ")
        .push(&dialect.table(collection));
    if let Some(after) = after {
        sql.push(" WHERE id > ").bind(Param::Text(after.to_owned()));
    }
    sql.push(" ORDER BY id LIMIT ")
        .bind_count(crate::query::to_i64(limit));
    c.documents(&sql).await
}
