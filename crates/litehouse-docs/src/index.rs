//! Adding and dropping indexes of an existing collection.

use crate::catalog::{load_spec_for_update, store_spec};
use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::names::{self, FieldPath};
use crate::spec::{CollectionSpec, FieldType, IndexSpec};
use crate::sql::{Engine, Extract, Sql};
use crate::store::{Store, checked_collection, in_transaction};

/// Most ids an [`Error::IndexConflict`] lists.
const MAX_CONFLICT_IDS: usize = 100;

impl Store {
    /// Adds an index to an existing collection, building it over the documents already there,
    /// and records it in the collection's spec, in one transaction.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::InvalidPath`], [`Error::InvalidSpec`] (a bad index,
    /// a name already used, a path already declared with another type, too many indexes)
    /// before any SQL; [`Error::CollectionNotFound`]; [`Error::IndexConflict`] with the ids
    /// of documents sharing a value when a unique index does not hold for the data (nothing
    /// is changed).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use litehouse_docs::{CollectionSpec, FieldType, IndexSpec, Store};
    /// use serde_json::json;
    ///
    /// let store = Store::from_database(litehouse::Database::open_memory("doc-add-index", litehouse::Config::default())?).await?;
    /// store.create_collection("users", CollectionSpec::default()).await?;
    /// let ada = store.create("users", json!({"email": "ada@example.com"})).await?;
    /// let copy = store.create("users", json!({"email": "ada@example.com"})).await?;
    /// let by_email = IndexSpec::unique("by_email", [("email", FieldType::String)]);
    /// let err = store.add_index("users", by_email.clone()).await.unwrap_err();
    /// assert_eq!(err.conflicting_id(), Some(ada.id.as_str()));
    /// store.delete("users", &copy.id, None).await?;
    /// store.add_index("users", by_email).await?;
    /// store.drop_index("users", "by_email").await?;
    /// # Ok::<(), litehouse_docs::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn add_index(&self, collection: &str, index: IndexSpec) -> Result<()> {
        let collection = checked_collection(collection)?;
        CollectionSpec {
            indexes: vec![index.clone()],
            references: vec![],
        }
        .validate()?;
        in_transaction!(self, transaction, |c| add_index(c, &collection, &index))
    }

    /// Drops an index of a collection and removes it from the spec. Reference indexes are
    /// part of their reference and cannot be dropped alone.
    ///
    /// # Errors
    /// [`Error::InvalidName`] before any SQL; [`Error::CollectionNotFound`];
    /// [`Error::IndexNotFound`].
    pub async fn drop_index(&self, collection: &str, name: &str) -> Result<()> {
        let collection = checked_collection(collection)?;
        let name = names::index_name(name)?.to_owned();
        in_transaction!(self, transaction, |c| drop_index(c, &collection, &name))
    }
}

async fn add_index(c: &impl Conn, collection: &str, index: &IndexSpec) -> Result<()> {
    let mut spec = load_spec_for_update(c, collection).await?;
    if spec
        .indexes
        .iter()
        .any(|existing| existing.name == index.name)
    {
        return Err(Error::InvalidSpec {
            reason: format!("index {:?} already exists", index.name),
        });
    }
    spec.indexes.push(index.clone());
    // Counts, and one type per path across the whole collection.
    spec.validate()?;
    let dialect = c.dialect().clone();
    let fields = index
        .fields
        .iter()
        .map(|field| Ok((FieldPath::parse(&field.path)?, field.field_type)))
        .collect::<Result<Vec<_>>>()?;
    if dialect.engine == Engine::Postgres {
        // Writers wait for this transaction, so no duplicate can appear between the check
        // and the index (CREATE INDEX takes this lock anyway).
        c.execute(&Sql::plain(
            &dialect,
            format!("LOCK TABLE {} IN SHARE MODE", dialect.table(collection)),
        ))
        .await?;
    }
    if index.unique {
        let conflicting_ids = duplicates(c, collection, &fields).await?;
        if !conflicting_ids.is_empty() {
            return Err(Error::IndexConflict {
                collection: collection.to_owned(),
                index: index.name.clone(),
                conflicting_ids,
            });
        }
    }
    let ident = names::index_ident(collection, &index.name);
    c.execute(&Sql::plain(
        &dialect,
        dialect.create_index(collection, &ident, &fields, index.unique),
    ))
    .await?;
    store_spec(c, collection, &spec).await
}

/// The ids of one group of documents whose typed values at `fields` are all present and
/// equal (the group with the smallest id), in id order; empty when the index would hold.
async fn duplicates(
    c: &impl Conn,
    collection: &str,
    fields: &[(FieldPath, FieldType)],
) -> Result<Vec<String>> {
    let dialect = c.dialect();
    let exprs: Vec<String> = fields
        .iter()
        .map(|(path, field_type)| dialect.extract(path, Extract::Typed(*field_type)))
        .collect();
    let columns = exprs.join(", ");
    let present = exprs
        .iter()
        .map(|expr| format!("{expr} IS NOT NULL"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let table = dialect.table(collection);
    let sql = Sql::plain(
        dialect,
        format!(
            "SELECT id FROM {table} WHERE ({columns}) IN (SELECT {columns} FROM {table} \
             WHERE {present} GROUP BY {columns} HAVING count(*) > 1 ORDER BY min(id) LIMIT 1) \
             ORDER BY id LIMIT {MAX_CONFLICT_IDS}"
        ),
    );
    Ok(c.texts(&sql)
        .await?
        .into_iter()
        .filter_map(|row| row.into_iter().next().flatten())
        .collect())
}

async fn drop_index(c: &impl Conn, collection: &str, name: &str) -> Result<()> {
    let mut spec = load_spec_for_update(c, collection).await?;
    let Some(position) = spec.indexes.iter().position(|index| index.name == name) else {
        return Err(Error::IndexNotFound {
            collection: collection.to_owned(),
            index: name.to_owned(),
        });
    };
    spec.indexes.remove(position);
    let dialect = c.dialect();
    let ident = names::index_ident(collection, name);
    c.execute(&Sql::plain(
        dialect,
        format!("DROP INDEX {}", dialect.qualify(&ident)),
    ))
    .await?;
    store_spec(c, collection, &spec).await
}
