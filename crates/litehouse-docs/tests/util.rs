//! Backends for tests: a fresh SQLite memory database, and (with `LITEHOUSE_TEST_PG`) a fresh
//! PostgreSQL schema that is dropped afterwards.

use std::future::Future;
use std::io::Write;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

use litehouse_docs::{PostgresConfig, Store};

pub(crate) type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

static COUNTER: AtomicU64 = AtomicU64::new(0);
static SKIPPED: Once = Once::new();

pub(crate) fn unique(prefix: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis())
        .unwrap_or_default();
    format!(
        "{prefix}_{}_{now}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Writes past libtest's output capture, which only catches the print macros.
pub(crate) fn note(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

pub(crate) fn postgres_url() -> Option<String> {
    std::env::var("LITEHOUSE_TEST_PG")
        .ok()
        .filter(|url| !url.is_empty())
}

pub(crate) async fn sqlite_store() -> Store {
    let db = litehouse::Database::open_memory(&unique("docs"), litehouse::Config::default())
        .expect("memory database");
    Store::from_database(db).await.expect("sqlite store")
}

/// A store in a new schema, and the schema name to drop.
pub(crate) async fn postgres_store(url: &str) -> (Store, String) {
    let schema = unique("lh_test");
    let store = Store::open_postgres_with(PostgresConfig {
        url: url.to_owned(),
        schema: schema.clone(),
        pool_size: 4,
    })
    .await
    .expect("postgres store (is the server running?)");
    (store, schema)
}

pub(crate) async fn drop_schema(url: &str, schema: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    let task = tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .expect("drop schema");
    drop(client);
    let _ = task.await;
}

/// Runs `body` against SQLite, then PostgreSQL when configured; a panic or error on either
/// fails the test after the PostgreSQL schema has been dropped.
pub(crate) async fn on_each_backend<F, Fut>(body: F)
where
    F: Fn(Store) -> Fut,
    Fut: Future<Output = TestResult> + Send + 'static,
{
    let sqlite = tokio::spawn(body(sqlite_store().await)).await;
    finish("sqlite", sqlite);
    let Some(url) = postgres_url() else {
        SKIPPED.call_once(|| {
            note("note: LITEHOUSE_TEST_PG is not set; the PostgreSQL half of the suite was skipped")
        });
        return;
    };
    let (store, schema) = postgres_store(&url).await;
    let postgres = tokio::spawn(body(store)).await;
    drop_schema(&url, &schema).await;
    finish("postgres", postgres);
}

fn finish(engine: &str, outcome: Result<TestResult, tokio::task::JoinError>) {
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(err)) => panic!("{engine}: {err}"),
        Err(join) => match join.try_into_panic() {
            Ok(payload) => std::panic::resume_unwind(payload),
            Err(err) => panic!("{engine}: {err}"),
        },
    }
}
