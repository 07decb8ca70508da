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

/// `xmin` of the current snapshot: every transaction with a smaller id has finished.
pub(super) const XMIN: &str =
    "CAST(CAST(pg_snapshot_xmin(pg_current_snapshot()) AS TEXT) AS bigint)";

/// The current transaction's id (assigning one), the default of the log's `xid` column.
const CURRENT_XID: &str = "CAST(CAST(pg_current_xact_id() AS TEXT) AS bigint)";

/// Most held-back changes [`bounds`] counts: the count is a range scan of the log's key on
/// every tailer read, so a long hold must not make each read longer.
const HELD_BACK_COUNTED: u64 = 100_000;

/// The advisory lock key [`ensure`] takes on PostgreSQL ("lhchange" in ASCII).
const ENSURE_LOCK: i64 = 0x6c68_6368_616e_6765;

async fn execute_all(c: &impl Conn, statements: impl IntoIterator<Item = String>) -> Result<()> {
    for statement in statements {
        c.execute(&Sql::plain(c.dialect(), statement)).await?;
    }
    Ok(())
}

/// Creates the log tables if missing (and, on PostgreSQL, brings a log from before
/// transaction-id cursors up to date).
pub(crate) async fn ensure(c: &impl Conn) -> Result<()> {
    let dialect = c.dialect();
    let feed = dialect.qualify(FEED_TABLE);
    let changes = dialect.qualify(CHANGES_TABLE);
    let meta = dialect.qualify(META_TABLE);
    if dialect.engine == Engine::Sqlite {
        return execute_all(
            c,
            [
                format!(
                    "CREATE TABLE IF NOT EXISTS {feed} (k INTEGER NOT NULL PRIMARY KEY, \
                     head INTEGER NOT NULL, pruned INTEGER NOT NULL) STRICT"
                ),
                format!(
                    "INSERT INTO {feed} (k, head, pruned) VALUES (1, 0, 0) ON CONFLICT DO NOTHING"
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {changes} (seq INTEGER NOT NULL PRIMARY KEY, \
                     collection TEXT NOT NULL, id TEXT NOT NULL, op TEXT NOT NULL, \
                     version INTEGER NOT NULL, document TEXT, at INTEGER NOT NULL, origin TEXT) \
                     STRICT"
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {meta} (ns TEXT NOT NULL, key TEXT NOT NULL, \
                     value TEXT NOT NULL, PRIMARY KEY (ns, key)) STRICT"
                ),
            ],
        )
        .await;
    }
    let text = "text COLLATE \"C\"";
    execute_all(
        c,
        [
            // Opens in several processes at once take turns here (`IF NOT EXISTS` is not
            // safe against a concurrent CREATE, and the upgrade below must run once).
            format!("SELECT pg_advisory_xact_lock({ENSURE_LOCK})"),
            format!(
                "CREATE TABLE IF NOT EXISTS {feed} (k bigint NOT NULL PRIMARY KEY, \
                 head bigint NOT NULL, pruned bigint NOT NULL, \
                 pruned_xid bigint NOT NULL DEFAULT 0)"
            ),
            format!(
                "ALTER TABLE {feed} ADD COLUMN IF NOT EXISTS pruned_xid bigint NOT NULL DEFAULT 0"
            ),
            format!("INSERT INTO {feed} (k, head, pruned) VALUES (1, 0, 0) ON CONFLICT DO NOTHING"),
        ],
    )
    .await?;
    // A log without `xid` is one from before transaction-id cursors.
    let mut probe = Sql::new(dialect);
    probe
        .push("SELECT string_agg(attname, ',' ORDER BY attname) FROM pg_attribute WHERE attrelid = to_regclass(")
        .bind(Param::Text(changes.clone()))
        .push(") AND attname IN ('seq', 'xid')");
    if c.text(&probe).await?.as_deref() == Some("seq") {
        upgrade_postgres(c).await?;
    }
    execute_all(
        c,
        [
            format!(
                "CREATE TABLE IF NOT EXISTS {changes} (xid bigint NOT NULL DEFAULT {CURRENT_XID}, \
                 seq bigint GENERATED BY DEFAULT AS IDENTITY, \
                 collection {text} NOT NULL, id {text} NOT NULL, op {text} NOT NULL, \
                 version bigint NOT NULL, document {text}, at bigint NOT NULL, origin {text}, \
                 PRIMARY KEY (xid, seq))"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {meta} (ns {text} NOT NULL, key {text} NOT NULL, \
                 value {text} NOT NULL, PRIMARY KEY (ns, key))"
            ),
        ],
    )
    .await
}

/// Brings a PostgreSQL log from before transaction-id cursors up to date: its changes keep
/// `xid` 0, so their cursors stay what they were (a cursor a client holds still resumes at
/// the same place) and sort before every new change; new changes number on from the old
/// counter.
async fn upgrade_postgres(c: &impl Conn) -> Result<()> {
    let dialect = c.dialect();
    let feed = dialect.qualify(FEED_TABLE);
    let changes = dialect.qualify(CHANGES_TABLE);
    execute_all(
        c,
        [
            format!("ALTER TABLE {changes} ADD COLUMN xid bigint NOT NULL DEFAULT 0"),
            format!("ALTER TABLE {changes} ALTER COLUMN xid SET DEFAULT {CURRENT_XID}"),
            format!("ALTER TABLE {changes} ALTER COLUMN seq ADD GENERATED BY DEFAULT AS IDENTITY"),
            // An index name is not schema-qualified; it lands in the table's schema.
            format!("CREATE UNIQUE INDEX \"{CHANGES_TABLE}_order\" ON {changes} (xid, seq)"),
        ],
    )
    .await?;
    let mut restart = Sql::new(dialect);
    restart
        .push("SELECT CAST(setval(pg_get_serial_sequence(")
        .bind(Param::Text(changes.clone()))
        .push(&format!(
            ", 'seq'), greatest(1, (SELECT max(seq) FROM {changes}), \
             (SELECT max(head) FROM {feed}))) AS TEXT)"
        ));
    c.texts(&restart).await?;
    Ok(())
}

/// Appends `changes` to the log in this transaction, taking the next cursors.
pub(crate) async fn record(c: &impl Conn, changes: Vec<NewChange>) -> Result<()> {
    if changes.is_empty() || !c.record_changes() {
        return Ok(());
    }
    let dialect = c.dialect();
    let sqlite = dialect.engine == Engine::Sqlite;
    // SQLite: one write transaction at a time holds the file (this process's writer, or
    // another process's write lock), and this runs after the write's own statements took it:
    // the log's end, read here, is the last cursor handed out. No counter row is written, so
    // a commit carries one page fewer. A single change (one `create`, the common write) reads
    // the end inside its INSERT, which saves a statement per write; several take consecutive
    // numbers after one read. PostgreSQL: `xid` and `seq` are the columns' defaults (see the
    // module documentation).
    let single = changes.len() == 1;
    let mut seq = if sqlite && !single {
        bounds(c).await?.head.seq()
    } else {
        0
    };
    let at = now_ms();
    let origin = c.origin().map(str::to_owned);
    let mut changes = changes.into_iter().peekable();
    while changes.peek().is_some() {
        let mut sql = Sql::new(dialect);
        sql.push("INSERT INTO ")
            .push(&dialect.qualify(CHANGES_TABLE))
            .push(if sqlite {
                " (seq, collection, id, op, version, document, at, origin) VALUES "
            } else {
                " (collection, id, op, version, document, at, origin) VALUES "
            });
        // Rows in this statement, and how many carry a document (a NULL is written into
        // the text, so the text depends on which rows have one).
        let (mut rows, mut documents) = (0, 0);
        for (position, change) in changes.by_ref().take(ROWS_PER_INSERT).enumerate() {
            rows += 1;
            documents += usize::from(change.document.is_some());
            if position > 0 {
                sql.push(", ");
            }
            sql.push("(");
            if sqlite && single {
                sql.push("(SELECT ")
                    .push(&sqlite_end(dialect))
                    .push(" + 1 FROM ")
                    .push(&dialect.qualify(FEED_TABLE))
                    .push(" WHERE k = 1), ");
            } else if sqlite {
                seq += 1;
                let seq = i64::try_from(seq).map_err(|_| Error::corrupt("change log full"))?;
                sql.bind(Param::Int(seq)).push(", ");
            }
            sql.bind(Param::Text(change.collection))
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
        // A single change (most writes) and a full statement of a big batch, each with
        // every document present or every one absent: a fixed set of texts, so PostgreSQL
        // may keep them prepared instead of parsing and planning each one again.
        if (rows == 1 || rows == ROWS_PER_INSERT) && (documents == 0 || documents == rows) {
            sql.keep_prepared();
        }
        if !sqlite && c.noted_xid() == 0 {
            // The transaction's id, for `Feed::committed_xid` (no extra round trip).
            sql.push(" RETURNING CAST(xid AS TEXT)");
            let xid = c.text(&sql).await?;
            c.note_xid(unsigned(Some(&xid), "xid")?);
        } else {
            c.execute(&sql).await?;
        }
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

/// [`record_documents`] for documents whose body texts (as
/// [`check_body_text`](crate::document::check_body_text) wrote them) the write holds: each
/// change's text is the body's text with the system fields appended, not a second
/// serialisation.
pub(crate) async fn record_written(
    c: &impl Conn,
    collection: &str,
    op: ChangeOp,
    documents: &[Document],
    body_texts: &[String],
) -> Result<()> {
    if !c.record_changes() {
        return Ok(());
    }
    if body_texts.len() != documents.len() {
        return Err(Error::corrupt("a document without its text"));
    }
    let changes = documents
        .iter()
        .zip(body_texts)
        .map(|(document, text)| {
            Ok(NewChange {
                collection: collection.to_owned(),
                id: document.id.clone(),
                op,
                version: document.version,
                document: Some(document.json_text_over(text)?),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    record(c, changes).await
}

/// Where the log stands, read in the caller's transaction.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bounds {
    /// The last change a reader may read now: on SQLite the log's last change; on
    /// PostgreSQL the last one whose transaction is older than every running one.
    pub(super) head: Cursor,
    /// The newest change pruned (every cursor before it has expired).
    pub(super) pruned: Cursor,
    /// Committed changes readers may not read yet because an older transaction is still
    /// running, counted up to [`HELD_BACK_COUNTED`] (PostgreSQL; always 0 on SQLite).
    pub(super) held_back: u64,
    /// PostgreSQL: every transaction with a smaller id had finished (0 on SQLite).
    pub(super) xmin: u64,
}

/// Where the log stands now. On SQLite the counter row's `head` and `pruned` are floors
/// under the log's last `seq` (for a log that is empty or was pruned to its end).
pub(super) async fn bounds(c: &impl Conn) -> Result<Bounds> {
    let dialect = c.dialect();
    let feed = dialect.qualify(FEED_TABLE);
    let changes = dialect.qualify(CHANGES_TABLE);
    if dialect.engine == Engine::Sqlite {
        let sql = Sql::plain(
            dialect,
            format!(
                "SELECT CAST({} AS TEXT), CAST(pruned AS TEXT) FROM {feed} WHERE k = 1",
                sqlite_end(dialect)
            ),
        );
        let rows = c.texts(&sql).await?;
        let row = rows
            .first()
            .ok_or_else(|| Error::corrupt("change log: counter row missing"))?;
        return Ok(Bounds {
            head: Cursor::at(0, unsigned(row.first(), "head")?),
            pruned: Cursor::at(0, unsigned(row.get(1), "pruned")?),
            held_back: 0,
            xmin: 0,
        });
    }
    let sql = Sql::plain(
        dialect,
        format!(
            "SELECT CAST(h.xid AS TEXT), CAST(h.seq AS TEXT), CAST(f.pruned_xid AS TEXT), \
             CAST(f.pruned AS TEXT), \
             (SELECT CAST(count(*) AS TEXT) FROM (SELECT 1 FROM {changes} \
             WHERE xid >= {XMIN} LIMIT {HELD_BACK_COUNTED}) held), \
             CAST({XMIN} AS TEXT) \
             FROM {feed} f LEFT JOIN LATERAL (SELECT xid, seq FROM {changes} \
             WHERE xid < {XMIN} ORDER BY xid DESC, seq DESC LIMIT 1) h ON true WHERE f.k = 1"
        ),
    );
    let rows = c.texts(&sql).await?;
    let row = rows
        .first()
        .ok_or_else(|| Error::corrupt("change log: counter row missing"))?;
    let pruned = Cursor::at(
        unsigned(row.get(2), "pruned")?,
        unsigned(row.get(3), "pruned")?,
    );
    let head = match row.first().cloned().flatten() {
        Some(_) => Cursor::at(unsigned(row.first(), "xid")?, unsigned(row.get(1), "seq")?),
        None => Cursor::START,
    };
    Ok(Bounds {
        head: head.max(pruned),
        pruned,
        held_back: unsigned(row.get(4), "held back")?,
        xmin: unsigned(row.get(5), "xmin")?,
    })
}

/// SQLite: the last `seq` handed out, as an expression over the counter row (`FROM` it,
/// `WHERE k = 1`): the log's last change, floored by the row's `head` and `pruned` for a log
/// that is empty or was pruned to its end.
fn sqlite_end(dialect: &crate::sql::Dialect) -> String {
    format!(
        "max(head, pruned, coalesce((SELECT max(seq) FROM {}), 0))",
        dialect.qualify(CHANGES_TABLE)
    )
}

fn unsigned(text: Option<&Option<String>>, what: &str) -> Result<u64> {
    Ok(int(text, what)?.max(0) as u64)
}

/// Binds a cursor part (a `bigint` column; both parts are below 2^63 for any cursor that
/// passed [`read_log`]'s bounds check).
fn part(value: u64) -> Param {
    Param::Int(i64::try_from(value).unwrap_or(i64::MAX))
}

/// One bounded prune step under `retention`, in this write's transaction.
pub(crate) async fn prune(c: &impl Conn, retention: Retention) -> Result<u64> {
    if c.dialect().engine == Engine::Postgres {
        return prune_postgres(c, retention).await;
    }
    let dialect = c.dialect();
    let Bounds { head, pruned, .. } = bounds(c).await?;
    let (head, pruned) = (head.seq() as i64, pruned.seq() as i64);
    let mut horizon = pruned;
    if let Some(count) = retention.count {
        horizon = horizon.max(head - i64::try_from(count).unwrap_or(i64::MAX));
    }
    let step_end = pruned.saturating_add(PRUNE_STEP as i64);
    if let Some(age_ms) = retention.age_ms {
        let cutoff = now_ms().saturating_sub(i64::try_from(age_ms).unwrap_or(i64::MAX));
        // The longest expired run from the oldest kept change (as on PostgreSQL): the scan
        // stops at the first change still kept, which is the first one it reads whenever
        // nothing has expired, the common case.
        let mut sql = Sql::new(dialect);
        sql.push("SELECT CAST(seq AS TEXT) FROM ")
            .push(&dialect.qualify(CHANGES_TABLE))
            .push(" WHERE seq > ")
            .bind(Param::Int(pruned))
            .push(" AND seq <= ")
            .bind(Param::Int(step_end))
            .push(" AND at >= ")
            .bind(Param::Int(cutoff))
            .push(" ORDER BY seq LIMIT 1");
        let expired_to = match c.text(&sql).await? {
            Some(kept) => kept.parse::<i64>().map_or(pruned, |kept| kept - 1),
            None => step_end,
        };
        horizon = horizon.max(expired_to);
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

/// [`prune`] on PostgreSQL: deletes the longest run of expired changes, in cursor order,
/// from the oldest kept (at most [`PRUNE_STEP`], and only changes readers may already
/// read). By count, a change has expired when `count` newer numbers were taken from the
/// log's sequence after it. The counter row is locked for the step, and a process that finds
/// it locked skips its step, so pruners never wait and `pruned` never moves back.
async fn prune_postgres(c: &impl Conn, retention: Retention) -> Result<u64> {
    let dialect = c.dialect();
    let feed = dialect.qualify(FEED_TABLE);
    let changes = dialect.qualify(CHANGES_TABLE);
    let locked = c
        .texts(&Sql::plain(
            dialect,
            format!("SELECT CAST(k AS TEXT) FROM {feed} WHERE k = 1 FOR UPDATE SKIP LOCKED"),
        ))
        .await?;
    if locked.is_empty() {
        return Ok(0);
    }
    let Bounds { head, pruned, .. } = bounds(c).await?;
    // The condition for "expired", with its parameters bound per statement.
    let expired = |sql: &mut Sql| -> bool {
        let mut any = false;
        if let Some(count) = retention.count {
            let limit = head.seq().saturating_sub(count);
            sql.push(if any { " OR " } else { "(" })
                .push("seq <= ")
                .bind(part(limit));
            any = true;
        }
        if let Some(age_ms) = retention.age_ms {
            let cutoff = now_ms().saturating_sub(i64::try_from(age_ms).unwrap_or(i64::MAX));
            sql.push(if any { " OR " } else { "(" })
                .push("at < ")
                .bind(Param::Int(cutoff));
            any = true;
        }
        if any {
            sql.push(")");
        }
        any
    };
    let after_pruned = |sql: &mut Sql| {
        sql.push(" WHERE (xid, seq) > (")
            .bind(part(pruned.xid()))
            .push(", ")
            .bind(part(pruned.seq()))
            .push(") AND xid < ")
            .push(XMIN);
    };
    // The oldest kept change first: in the usual case it has not expired, and the step
    // ends after one index probe.
    let mut first = Sql::new(dialect);
    first.push("SELECT CAST(");
    if !expired(&mut first) {
        return Ok(0);
    }
    first.push(" AS TEXT) FROM ").push(&changes);
    after_pruned(&mut first);
    first.push(" ORDER BY xid, seq LIMIT 1");
    if c.text(&first).await?.as_deref() != Some("true") {
        return Ok(0);
    }
    let mut run = Sql::new(dialect);
    // Aliased: ORDER BY would otherwise sort by the text output columns.
    run.push(
        "SELECT CAST(xid AS TEXT) AS xid_text, CAST(seq AS TEXT) AS seq_text \
         FROM (SELECT xid, seq, bool_and(",
    );
    expired(&mut run);
    run.push(") OVER (ORDER BY xid, seq) AS gone FROM (SELECT xid, seq, at FROM ")
        .push(&changes);
    after_pruned(&mut run);
    run.push(" ORDER BY xid, seq LIMIT ")
        .bind_count(PRUNE_STEP as i64)
        .push(") oldest) run WHERE gone ORDER BY xid DESC, seq DESC LIMIT 1");
    let rows = c.texts(&run).await?;
    let Some(row) = rows.first() else {
        return Ok(0);
    };
    let horizon = Cursor::at(unsigned(row.first(), "xid")?, unsigned(row.get(1), "seq")?);
    let mut delete = Sql::new(dialect);
    delete
        .push("DELETE FROM ")
        .push(&changes)
        .push(" WHERE (xid, seq) > (")
        .bind(part(pruned.xid()))
        .push(", ")
        .bind(part(pruned.seq()))
        .push(") AND (xid, seq) <= (")
        .bind(part(horizon.xid()))
        .push(", ")
        .bind(part(horizon.seq()))
        .push(")");
    let deleted = c.execute(&delete).await?;
    let mut update = Sql::new(dialect);
    update
        .push("UPDATE ")
        .push(&feed)
        .push(" SET pruned_xid = ")
        .bind(part(horizon.xid()))
        .push(", pruned = ")
        .bind(part(horizon.seq()))
        .push(" WHERE k = 1");
    c.execute(&update).await?;
    Ok(deleted)
}

/// A page of the log read by [`read_log`].
pub(super) struct LogPage {
    /// Every change read (matching a filter or not), in cursor order.
    pub(super) changes: Vec<Change>,
    /// The position the page was read after.
    pub(super) start: Cursor,
    /// Where the log stood.
    pub(super) bounds: Bounds,
}

/// Reads up to `limit` changes after `after` (all of them, matching or not).
pub(super) async fn read_log(
    c: &impl Conn,
    after: Option<Cursor>,
    limit: usize,
) -> Result<LogPage> {
    let dialect = c.dialect();
    let bounds = bounds(c).await?;
    let start = match after {
        None => bounds.pruned,
        Some(cursor) => {
            if cursor < bounds.pruned {
                return Err(Error::CursorExpired {
                    cursor: cursor.to_string(),
                    oldest: bounds.pruned.to_string(),
                });
            }
            if cursor > bounds.head {
                return Err(Error::InvalidCursor {
                    reason: format!(
                        "change cursor {cursor} is past the end of this store's log ({})",
                        bounds.head
                    ),
                });
            }
            cursor
        }
    };
    let sqlite = dialect.engine == Engine::Sqlite;
    let mut sql = Sql::new(dialect);
    // Aliased: PostgreSQL's ORDER BY would otherwise sort by the text output columns.
    sql.push(if sqlite {
        "SELECT '0' AS xid_text, "
    } else {
        "SELECT CAST(xid AS TEXT) AS xid_text, "
    })
    .push(
        "CAST(seq AS TEXT) AS seq_text, collection, id, op, \
         CAST(version AS TEXT) AS version_text, document, CAST(at AS TEXT) AS at_text, origin FROM ",
    )
    .push(&dialect.qualify(CHANGES_TABLE));
    if sqlite {
        sql.push(" WHERE seq > ")
            .bind(part(start.seq()))
            .push(" ORDER BY seq LIMIT ");
    } else {
        // Only what no running transaction can still add to (see the module documentation);
        // `head` was read on this snapshot, so the page ends at or before it.
        sql.push(" WHERE (xid, seq) > (")
            .bind(part(start.xid()))
            .push(", ")
            .bind(part(start.seq()))
            .push(") AND xid < ")
            .push(XMIN)
            .push(" ORDER BY xid, seq LIMIT ");
    }
    sql.bind_count(limit as i64);
    let mut changes = Vec::new();
    for row in c.texts(&sql).await? {
        let text = |index: usize| row.get(index).cloned().flatten();
        let document = match text(6) {
            Some(document) => Some(
                serde_json::from_str(&document)
                    .map_err(|err| Error::corrupt(format!("change log document: {err}")))?,
            ),
            None => None,
        };
        changes.push(Change {
            cursor: Cursor::at(unsigned(row.first(), "xid")?, unsigned(row.get(1), "seq")?),
            collection: text(2).unwrap_or_default(),
            id: text(3).unwrap_or_default(),
            op: ChangeOp::parse(&text(4).unwrap_or_default())?,
            version: unsigned(row.get(5), "version")?,
            document,
            at: int(row.get(7), "at")?,
            origin: text(8),
        });
    }
    Ok(LogPage {
        changes,
        start,
        bounds,
    })
}
