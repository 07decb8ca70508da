//! The reference server of the HTTP workloads: what a user writes without litehouse, axum
//! over one `Mutex<rusqlite::Connection>` with the same routes, pragmas and indexes.

use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use litehouse_bench::BenchOptions;
use serde_json::{Value, json};

use super::Running;

/// Creates the reference database (`lists`: with the index H4's query needs), preloads
/// `bodies` and serves it on 127.0.0.1:0 until `stopped` fires.
pub(super) async fn start(
    options: &BenchOptions,
    id: &str,
    profile: litehouse::Profile,
    lists: bool,
    bodies: impl Iterator<Item = Value>,
    (shutdown, stopped): (
        tokio::sync::oneshot::Sender<()>,
        tokio::sync::oneshot::Receiver<()>,
    ),
) -> anyhow::Result<Running> {
    let path = options.db_path(&format!("{id}-reference"));
    let synchronous = match profile {
        litehouse::Profile::Durable => "FULL",
        _ => "NORMAL",
    };
    let conn = rusqlite::Connection::open(&path)?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous={synchronous}; PRAGMA busy_timeout=5000;
             CREATE TABLE docs(id TEXT PRIMARY KEY, version INTEGER NOT NULL,
                created_at TEXT NOT NULL, updated_at TEXT NOT NULL, body TEXT NOT NULL);
             CREATE INDEX docs_group ON docs(json_extract(body, '$.group'));
             CREATE INDEX docs_n ON docs(json_extract(body, '$.n'));"
    ))?;
    if lists {
        conn.execute_batch(
                "CREATE INDEX docs_group_n ON docs(json_extract(body, '$.group'), json_extract(body, '$.n'))",
            )?;
    }
    let mut ids = Vec::with_capacity(bodies.size_hint().0);
    {
        let tx = conn.unchecked_transaction()?;
        let mut insert = tx.prepare(
                "INSERT INTO docs(id, version, created_at, updated_at, body) VALUES (?1, 1, ?2, ?2, ?3)",
            )?;
        let now = now_text();
        for body in bodies {
            let id = uuid::Uuid::now_v7().to_string();
            insert.execute(rusqlite::params![id, now, body.to_string()])?;
            ids.push(id);
        }
        drop(insert);
        tx.commit()?;
    }
    let app = reference_app(Arc::new(Mutex::new(conn)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .map_err(anyhow::Error::from)
    });
    Ok(Running {
        addr,
        ids,
        shutdown,
        task,
        cleanup: None,
    })
}

fn now_text() -> String {
    jiff::Timestamp::now().to_string()
}

type Shared = Arc<Mutex<rusqlite::Connection>>;

fn reference_app(conn: Shared) -> Router {
    Router::new()
        .route(
            "/api/collections/{collection}/docs",
            get(reference_list).post(reference_create),
        )
        .route(
            "/api/collections/{collection}/docs/{id}",
            get(reference_get),
        )
        .with_state(conn)
}

fn internal(err: impl std::fmt::Display) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response()
}

fn document(id: String, version: i64, created: String, updated: String, body: &str) -> Value {
    let mut doc = serde_json::from_str::<Value>(body).unwrap_or(Value::Null);
    if let Value::Object(fields) = &mut doc {
        fields.insert("id".into(), Value::String(id));
        fields.insert("version".into(), version.into());
        fields.insert("createdAt".into(), Value::String(created));
        fields.insert("updatedAt".into(), Value::String(updated));
    }
    doc
}

async fn reference_create(State(conn): State<Shared>, Json(body): Json<Value>) -> Response {
    if !body.is_object() {
        return (StatusCode::BAD_REQUEST, "a document is a JSON object").into_response();
    }
    let id = uuid::Uuid::now_v7().to_string();
    let now = now_text();
    let text = body.to_string();
    let inserted = conn
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .prepare_cached(
            "INSERT INTO docs(id, version, created_at, updated_at, body) VALUES (?1, 1, ?2, ?2, ?3)",
        )
        .and_then(|mut insert| insert.execute(rusqlite::params![id, now, text]));
    match inserted {
        Ok(_) => (
            StatusCode::CREATED,
            Json(document(id, 1, now.clone(), now, &text)),
        )
            .into_response(),
        Err(err) => internal(err),
    }
}

async fn reference_get(
    State(conn): State<Shared>,
    UrlPath((_collection, id)): UrlPath<(String, String)>,
) -> Response {
    let found = conn
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .prepare_cached("SELECT version, created_at, updated_at, body FROM docs WHERE id = ?1")
        .and_then(|mut select| {
            select.query_row([&id], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get::<_, String>(3)?,
                ))
            })
        });
    match found {
        Ok((version, created, updated, body)) => {
            Json(document(id, version, created, updated, &body)).into_response()
        }
        Err(rusqlite::Error::QueryReturnedNoRows) => StatusCode::NOT_FOUND.into_response(),
        Err(err) => internal(err),
    }
}

/// Only the list shapes the workloads send: `group=eq.N` or `group=gt.N`, ordered by `n`,
/// 50 per page, with or without the total.
async fn reference_list(State(conn): State<Shared>, RawQuery(query): RawQuery) -> Response {
    let query = query.unwrap_or_default();
    let mut filter = None;
    let mut skip_total = false;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("group", value)) => {
                filter = value
                    .split_once('.')
                    .and_then(|(op, n)| Some((op.to_owned(), n.parse::<i64>().ok()?)));
            }
            Some(("skipTotal", "true")) => skip_total = true,
            _ => {}
        }
    }
    let Some((op, value)) = filter else {
        return (StatusCode::BAD_REQUEST, "group=eq.N or group=gt.N").into_response();
    };
    let comparison = match op.as_str() {
        "eq" => "=",
        "gt" => ">",
        _ => return (StatusCode::BAD_REQUEST, "eq or gt").into_response(),
    };
    let conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
    let page = conn
        .prepare_cached(&format!(
            "SELECT id, version, created_at, updated_at, body FROM docs
             WHERE json_extract(body, '$.group') {comparison} ?1
             ORDER BY json_extract(body, '$.n') LIMIT 50"
        ))
        .and_then(|mut select| {
            select
                .query_map([value], |row| {
                    Ok(document(
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        &row.get::<_, String>(4)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<Value>>>()
        });
    let total = if skip_total {
        Ok(None)
    } else {
        conn.prepare_cached(&format!(
            "SELECT count(*) FROM docs WHERE json_extract(body, '$.group') {comparison} ?1"
        ))
        .and_then(|mut count| count.query_row([value], |row| row.get::<_, i64>(0)))
        .map(Some)
    };
    drop(conn);
    match (page, total) {
        (Ok(items), Ok(total)) => Json(json!({
            "items": items,
            "page": 1,
            "perPage": 50,
            "totalItems": total,
            "totalPages": total.map(|total| (total + 49) / 50),
        }))
        .into_response(),
        (Err(err), _) | (_, Err(err)) => internal(err),
    }
}
