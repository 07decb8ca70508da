//! The table side of the change log: appending a write's changes in its transaction, the
//! bounded prune step, and reading pages back.

use super::*;
use crate::sql::Engine;

/// The retention settings of a [`StoreConfig`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retention {
    count: Option<u64>,
    age_ms: Option<u64>,
}

impl Retention {
    pub(super) fn of(config: &StoreConfig) -> Retention {
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
            document: Some(document.json_text()?),
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
    if changes.is_empty() || !c.record_changes() {
        return Ok(());
    }
    let dialect = c.dialect();
    let count = i64::try_from(changes.len()).map_err(|_| Error::corrupt("too many changes"))?;
    let mut seq = if dialect.engine == Engine::Sqlite {
        // One write transaction at a time holds a SQLite file (this process's writer, or
        // another process's write lock), and this runs after the write's own statements took
        // it: the log's end, read here, is the last cursor handed out. No counter row is
        // written, so a commit carries one page fewer.
        bounds(c).await?.0
    } else {
        let mut advance = Sql::new(dialect);
        advance
            .push("UPDATE ")
            .push(&dialect.qualify(FEED_TABLE))
            .push(" SET head = head + ")
            .bind(Param::Int(count))
            .push(" WHERE k = 1 RETURNING CAST(head AS TEXT)");
        let rows = c.texts(&advance).await?;
        int(rows.first().and_then(|row| row.first()), "head")? - count
    };
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
    if !c.record_changes() {
        return Ok(());
    }
    let changes = documents
        .iter()
        .map(|document| NewChange::document(collection, op, document))
        .collect::<Result<Vec<_>>>()?;
    record(c, changes).await
}

/// `(head, pruned)`: the last cursor handed out and the newest one pruned. On PostgreSQL the
/// counter row holds both; on SQLite `head` is the log's last `seq` (the counter row's `head`
/// and `pruned` are floors, for a log that is empty or was pruned to its end).
pub(super) async fn bounds(c: &impl Conn) -> Result<(i64, i64)> {
    let dialect = c.dialect();
    let feed = dialect.qualify(FEED_TABLE);
    let sql = if dialect.engine == Engine::Sqlite {
        Sql::plain(
            dialect,
            format!(
                "SELECT CAST(max(head, pruned, coalesce((SELECT max(seq) FROM {}), 0)) AS TEXT), \
                 CAST(pruned AS TEXT) FROM {feed} WHERE k = 1",
                dialect.qualify(CHANGES_TABLE)
            ),
        )
    } else {
        Sql::plain(
            dialect,
            format!("SELECT CAST(head AS TEXT), CAST(pruned AS TEXT) FROM {feed} WHERE k = 1"),
        )
    };
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
pub(super) async fn read_log(
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
