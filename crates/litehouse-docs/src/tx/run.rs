//! The transaction's side of [`Store::transaction`]: the driver that polls the caller's
//! future and runs each request it leaves, on the transaction's connection.

use super::*;

/// A [`Conn`] that records `origin` on the changes appended through it.
struct WithOrigin<'a, C> {
    inner: &'a C,
    origin: Option<String>,
}

impl<C: Conn> Conn for WithOrigin<'_, C> {
    fn dialect(&self) -> &Dialect {
        self.inner.dialect()
    }
    async fn documents(&self, sql: &Sql) -> Result<Vec<Document>> {
        self.inner.documents(sql).await
    }
    async fn document_texts(&self, sql: &Sql) -> Result<Vec<DocumentText>> {
        self.inner.document_texts(sql).await
    }
    async fn texts(&self, sql: &Sql) -> Result<Vec<Vec<Option<String>>>> {
        self.inner.texts(sql).await
    }
    async fn count(&self, sql: &Sql) -> Result<i64> {
        self.inner.count(sql).await
    }
    async fn execute(&self, sql: &Sql) -> Result<u64> {
        self.inner.execute(sql).await
    }
    async fn plan(&self, sql: &Sql) -> Result<Vec<String>> {
        self.inner.plan(sql).await
    }
    fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }
    fn record_changes(&self) -> bool {
        self.inner.record_changes()
    }
    fn note_xid(&self, xid: u64) {
        self.inner.note_xid(xid);
    }
    fn noted_xid(&self) -> u64 {
        self.inner.noted_xid()
    }
}

/// Inserts one document (fresh id, or the caller's, checked not to exist) and records it.
pub(super) async fn create(
    c: &impl Conn,
    collection: &str,
    id: Option<String>,
    body: Map<String, Json>,
    text: String,
) -> Result<Document> {
    let document = match id {
        None => ops::new_document(body),
        Some(id) => {
            let now = now_timestamp();
            let document = Document::from_parts(id, now.clone(), now, 1, body);
            ops::check_new_ids(c, collection, std::slice::from_ref(&document)).await?;
            document
        }
    };
    let mut created = ops::insert(c, collection, vec![document], &[text], ops::Origin::New).await?;
    created
        .pop()
        .ok_or_else(|| Error::corrupt("insert returned nothing"))
}

async fn execute(c: &impl Conn, config: &StoreConfig, request: Request) -> Result<Response> {
    let dialect = c.dialect();
    let meta = dialect.qualify(META_TABLE);
    Ok(match request {
        Request::Create {
            collection,
            id,
            body,
            text,
        } => Response::Document(create(c, &collection, id, body, text).await?),
        Request::Get { collection, id } => {
            load_spec(c, &collection).await?;
            Response::Document(ops::get(c, &collection, &id, false).await?)
        }
        Request::Update {
            collection,
            id,
            expected_version,
            change,
        } => {
            let (op, document) = match change {
                Update::Replace(body) => (
                    ChangeOp::Replace,
                    ops::update(c, &collection, &id, expected_version, |_| Ok(body)).await?,
                ),
                Update::Patch(patch) => (
                    ChangeOp::Patch,
                    ops::update(c, &collection, &id, expected_version, |current| {
                        let mut body = Json::Object(current.body.clone());
                        merge_patch(&mut body, &patch);
                        check_body(body, config)
                    })
                    .await?,
                ),
            };
            changes::record_documents(c, &collection, op, std::slice::from_ref(&document)).await?;
            Response::Document(document)
        }
        Request::Delete {
            collection,
            id,
            expected_version,
        } => Response::Report(cascade::delete(c, &collection, &id, expected_version).await?),
        Request::Find { collection, query } => {
            let spec = load_spec(c, &collection).await?;
            let plan = plan(&query, &spec.path_types()?, config)?;
            Response::Page(ops::find(c, &collection, &plan).await?)
        }
        Request::MetaGet { ns, key } => {
            let mut sql = Sql::new(dialect);
            sql.push("SELECT value FROM ")
                .push(&meta)
                .push(" WHERE ns = ")
                .bind(Param::Text(ns))
                .push(" AND key = ")
                .bind(Param::Text(key));
            let rows = c.texts(&sql).await?;
            Response::Meta(
                match rows
                    .into_iter()
                    .next()
                    .and_then(|row| row.into_iter().next().flatten())
                {
                    Some(text) => Some(parse_meta(&text)?),
                    None => None,
                },
            )
        }
        Request::MetaPut { ns, key, value } => {
            let mut sql = Sql::new(dialect);
            sql.push("INSERT INTO ")
                .push(&meta)
                .push(" (ns, key, value) VALUES (")
                .bind(Param::Text(ns))
                .push(", ")
                .bind(Param::Text(key))
                .push(", ")
                .bind(Param::Text(value))
                .push(") ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value");
            c.execute(&sql).await?;
            Response::Deleted(true)
        }
        Request::MetaDelete { ns, key } => {
            let mut sql = Sql::new(dialect);
            sql.push("DELETE FROM ")
                .push(&meta)
                .push(" WHERE ns = ")
                .bind(Param::Text(ns))
                .push(" AND key = ")
                .bind(Param::Text(key));
            Response::Deleted(c.execute(&sql).await? > 0)
        }
        Request::CreateMany {
            collection,
            documents,
            texts,
        } => {
            let n = documents.len() as u64;
            if n > 0 {
                ops::insert(c, &collection, documents, &texts, ops::Origin::Imported).await?;
            }
            Response::Count(n)
        }
        Request::ReplaceMany { collection, bodies } => {
            if bodies.is_empty() {
                Response::Count(0)
            } else {
                Response::Count(ops::replace_many(c, &collection, bodies).await?.len() as u64)
            }
        }
        Request::MetaGetMany { ns, keys } => {
            let mut entries = Vec::with_capacity(keys.len());
            for chunk in keys.chunks(META_ROWS_PER_STATEMENT) {
                let mut sql = Sql::new(dialect);
                sql.push("SELECT key, value FROM ")
                    .push(&meta)
                    .push(" WHERE ns = ")
                    .bind(Param::Text(ns.clone()))
                    .push(" AND key IN ")
                    .bind_list(chunk.iter().map(|k| Param::Text(k.clone())));
                for row in c.texts(&sql).await? {
                    if let [Some(key), Some(value)] = row.as_slice() {
                        entries.push((key.clone(), parse_meta(value)?));
                    }
                }
            }
            Response::Entries(entries)
        }
        Request::MetaPutMany { ns, entries } => {
            for chunk in entries.chunks(META_ROWS_PER_STATEMENT) {
                let mut sql = Sql::new(dialect);
                sql.push("INSERT INTO ")
                    .push(&meta)
                    .push(" (ns, key, value) VALUES ");
                for (position, (key, value)) in chunk.iter().enumerate() {
                    if position > 0 {
                        sql.push(", ");
                    }
                    sql.push("(")
                        .bind(Param::Text(ns.clone()))
                        .push(", ")
                        .bind(Param::Text(key.clone()))
                        .push(", ")
                        .bind(Param::Text(value.clone()))
                        .push(")");
                }
                sql.push(" ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value");
                c.execute(&sql).await?;
            }
            Response::Deleted(true)
        }
        Request::MetaScan { ns, after, limit } => {
            Response::Entries(meta_scan(c, ns, after, limit).await?)
        }
    })
}

/// Up to `limit` entries of `ns` with keys after `after`, by key: a [`Tx::meta_scan`] in a
/// transaction, [`Store::meta_scan`] on a read snapshot.
pub(super) async fn meta_scan(
    c: &impl Conn,
    ns: String,
    after: Option<String>,
    limit: usize,
) -> Result<Vec<(String, Json)>> {
    let dialect = c.dialect();
    let meta = dialect.qualify(META_TABLE);
    let mut sql = Sql::new(dialect);
    sql.push("SELECT key, value FROM ")
        .push(&meta)
        .push(" WHERE ns = ")
        .bind(Param::Text(ns));
    if let Some(after) = after {
        sql.push(" AND key > ").bind(Param::Text(after));
    }
    sql.push(" ORDER BY key LIMIT ")
        .bind_count(i64::try_from(limit).unwrap_or(i64::MAX));
    let mut entries = Vec::new();
    for row in c.texts(&sql).await? {
        if let [Some(key), Some(value)] = row.as_slice() {
            entries.push((key.clone(), parse_meta(value)?));
        }
    }
    Ok(entries)
}

fn parse_meta(text: &str) -> Result<Json> {
    serde_json::from_str(text).map_err(|err| Error::corrupt(format!("bookkeeping value: {err}")))
}

/// Polls the caller's future, running each request it leaves, until it finishes.
pub(super) async fn drive<T>(
    c: &impl Conn,
    shared: &Shared,
    config: &StoreConfig,
    future: impl Future<Output = Result<T>>,
) -> Result<T> {
    let mut future = pin!(future);
    // A statement that failed on PostgreSQL aborted the transaction: it must not commit
    // even if the caller went on.
    let mut engine_error = false;
    loop {
        if let Poll::Ready(result) = future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            return match result {
                Ok(_) if engine_error => Err(Error::Misuse {
                    reason: "a statement failed inside this transaction, which the engine \
                             aborted; return that error instead of continuing"
                        .into(),
                }),
                other => other,
            };
        }
        let taken = std::mem::take(&mut *lock(&shared.slot));
        let Slot::Request(request) = taken else {
            return Err(misuse());
        };
        let origin = lock(&shared.origin).clone();
        let conn = WithOrigin { inner: c, origin };
        let response = execute(&conn, config, request).await;
        if matches!(response, Err(Error::Postgres { .. } | Error::Sqlite(_))) {
            engine_error = true;
        }
        *lock(&shared.slot) = Slot::Response(response);
    }
}
