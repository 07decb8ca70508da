//! Deletes and the reference rules they trigger: cascade, restrict, set null.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::catalog::list_collections;
use crate::changes::{ChangeOp, NewChange};
use crate::conn::Conn;
use crate::document::{Document, now_timestamp};
use crate::error::{Error, Result};
use crate::names::FieldPath;
use crate::ops::{check_version, get};
use crate::spec::{FieldType, OnDelete};
use crate::sql::{Extract, Param, Sql};

/// How many ids go into one `IN (...)` list.
const ID_CHUNK: usize = 500;

/// What a delete removed and changed, per collection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeleteReport {
    /// Documents deleted, per collection (the target and cascades).
    pub deleted: BTreeMap<String, u64>,
    /// Documents whose reference was set to null, per collection.
    pub nulled: BTreeMap<String, u64>,
}

/// Deletes a document and applies every reference rule, transitively, in this transaction.
///
/// First the whole cascade is collected, breadth-first over the reference graph (the
/// `deleted` set ends cycles). Only then are `restrict` references checked, so that a
/// referencing document which the cascade deletes anyway does not block, and `set null`
/// applied to referencing documents that survive.
pub(crate) async fn delete(
    c: &impl Conn,
    collection: &str,
    id: &str,
    expected_version: Option<i64>,
) -> Result<DeleteReport> {
    let catalog = list_collections(c).await?;
    if !catalog.iter().any(|info| info.name == collection) {
        return Err(Error::CollectionNotFound {
            collection: collection.to_owned(),
        });
    }
    let current = get(c, collection, id, true).await?;
    check_version(collection, &current, expected_version)?;
    let dialect = c.dialect().clone();
    let mut deleted: BTreeSet<(String, String)> =
        BTreeSet::from([(collection.to_owned(), id.to_owned())]);
    let mut queue = VecDeque::from([(collection.to_owned(), vec![id.to_owned()])]);
    // (target collection, target id, referencing collection, referencing id)
    let mut restricted: Vec<(String, String, String, String)> = Vec::new();
    let mut to_null: BTreeMap<(String, FieldPath), Vec<String>> = BTreeMap::new();
    while let Some((target, ids)) = queue.pop_front() {
        for info in &catalog {
            for reference in info
                .spec
                .references
                .iter()
                .filter(|reference| reference.collection == target)
            {
                let path = FieldPath::parse(&reference.path)?;
                let referencing = referencing(c, &info.name, &path, &ids).await?;
                match reference.on_delete {
                    OnDelete::Restrict => restricted.extend(referencing.into_iter().map(
                        |(referencing_id, target_id)| {
                            (target.clone(), target_id, info.name.clone(), referencing_id)
                        },
                    )),
                    OnDelete::SetNull => to_null
                        .entry((info.name.clone(), path))
                        .or_default()
                        .extend(
                            referencing
                                .into_iter()
                                .map(|(referencing_id, _)| referencing_id),
                        ),
                    OnDelete::Cascade => {
                        let fresh: Vec<String> = referencing
                            .into_iter()
                            .map(|(referencing_id, _)| referencing_id)
                            .filter(|referencing_id| {
                                deleted.insert((info.name.clone(), referencing_id.clone()))
                            })
                            .collect();
                        if !fresh.is_empty() {
                            queue.push_back((info.name.clone(), fresh));
                        }
                    }
                }
            }
        }
    }
    if let Some((target, target_id, referencing_collection, referencing_id)) = restricted
        .into_iter()
        .find(|(_, _, referencing_collection, referencing_id)| {
            !deleted.contains(&(referencing_collection.clone(), referencing_id.clone()))
        })
    {
        return Err(Error::Restricted {
            collection: target,
            id: target_id,
            referencing_collection,
            referencing_id,
        });
    }
    let mut report = DeleteReport::default();
    let mut by_collection: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (doomed_collection, doomed_id) in &deleted {
        by_collection
            .entry(doomed_collection)
            .or_default()
            .push(doomed_id.clone());
    }
    // Every deleted and rewritten document is a change, appended in this transaction.
    let mut changes = Vec::new();
    for (doomed_collection, ids) in by_collection {
        for chunk in ids.chunks(ID_CHUNK) {
            let mut sql = Sql::new(&dialect);
            sql.push("DELETE FROM ")
                .push(&dialect.table(doomed_collection))
                .push(" WHERE id IN ");
            sql.bind_list(chunk.iter().map(|id| Param::Text(id.clone())));
            sql.push(" RETURNING id, CAST(version AS TEXT)");
            let rows = c.texts(&sql).await?;
            *report
                .deleted
                .entry(doomed_collection.to_owned())
                .or_default() += rows.len() as u64;
            for row in rows {
                if let [Some(id), Some(version)] = row.as_slice() {
                    let version = version
                        .parse()
                        .map_err(|_| Error::corrupt("a version that is not a number"))?;
                    changes.push(NewChange::delete(doomed_collection, id.clone(), version));
                }
            }
        }
    }
    for ((referencing_collection, path), mut ids) in to_null {
        ids.retain(|referencing_id| {
            !deleted.contains(&(referencing_collection.clone(), referencing_id.clone()))
        });
        ids.sort();
        ids.dedup();
        if !ids.is_empty() {
            let rewritten = set_null(c, &referencing_collection, &path, &ids).await?;
            *report
                .nulled
                .entry(referencing_collection.clone())
                .or_default() += rewritten.len() as u64;
            for document in &rewritten {
                changes.push(NewChange::document(
                    &referencing_collection,
                    ChangeOp::Replace,
                    document,
                )?);
            }
        }
    }
    crate::changes::record(c, changes).await?;
    Ok(report)
}

/// `(referencing id, referenced id)` of every document of `collection` whose `path` names
/// one of `ids`, locked for update on PostgreSQL. Uses the reference index: the same typed
/// extraction.
async fn referencing(
    c: &impl Conn,
    collection: &str,
    path: &FieldPath,
    ids: &[String],
) -> Result<Vec<(String, String)>> {
    let dialect = c.dialect();
    let expr = dialect.extract(path, Extract::Typed(FieldType::String));
    let mut found = Vec::new();
    for chunk in ids.chunks(ID_CHUNK) {
        let mut sql = Sql::new(dialect);
        sql.push("SELECT id, ")
            .push(&expr)
            .push(" FROM ")
            .push(&dialect.table(collection))
            .push(" WHERE ")
            .push(&expr)
            .push(" IN ");
        sql.bind_list(chunk.iter().map(|id| Param::Text(id.clone())));
        // Lock every referencing row before its own referencing rows are looked up (the
        // root was locked by `get`). A concurrent insert that names one of them holds
        // `FOR KEY SHARE` on it until it commits, which `FOR UPDATE` waits for; the next
        // level's query then starts after that commit and sees the new row, and any later
        // insert waits for this transaction and finds its target gone. `ORDER BY id` takes
        // the locks in one order. (SQLite's single writer needs no locks.)
        sql.push(" ORDER BY id").push(dialect.for_update());
        for row in c.texts(&sql).await? {
            if let [Some(referencing_id), Some(target_id)] = row.as_slice() {
                found.push((referencing_id.clone(), target_id.clone()));
            }
        }
    }
    Ok(found)
}

/// Returns the rewritten documents.
async fn set_null(
    c: &impl Conn,
    collection: &str,
    path: &FieldPath,
    ids: &[String],
) -> Result<Vec<Document>> {
    let dialect = c.dialect();
    let Some(segments) = path.body() else {
        return Err(Error::corrupt("a reference on a system field"));
    };
    let mut changed = Vec::new();
    for chunk in ids.chunks(ID_CHUNK) {
        let mut sql = Sql::new(dialect);
        sql.push("UPDATE ")
            .push(&dialect.table(collection))
            .push(" SET doc = ")
            .push(&dialect.set_null(segments))
            .push(", updated_at = ")
            .bind(Param::Text(now_timestamp()))
            .push(", version = version + 1 WHERE id IN ");
        sql.bind_list(chunk.iter().map(|id| Param::Text(id.clone())));
        sql.push(" RETURNING ").push(dialect.document_columns());
        changed.extend(c.documents(&sql).await?);
    }
    Ok(changed)
}
