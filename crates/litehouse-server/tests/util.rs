//! A test server on 127.0.0.1:0 and helpers to check the error shape.

use std::future::Future;
use std::io::Write;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

use litehouse_server::{DbTarget, ServeError, Server, ServerConfig};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value as Json;

pub(crate) type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

pub(crate) const ADMIN: &str = "test-admin-token";

static COUNTER: AtomicU64 = AtomicU64::new(0);
static SKIPPED: Once = Once::new();

pub(crate) fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub(crate) fn postgres_url() -> Option<String> {
    std::env::var("LITEHOUSE_TEST_PG")
        .ok()
        .filter(|url| !url.is_empty())
}

/// Which database a test server uses.
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Sqlite,
    Postgres { url: String, schema: String },
}

impl Backend {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }
}

/// A running server; stop it with [`TestServer::stop`] to check it shuts down cleanly.
pub(crate) struct TestServer {
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
    pub(crate) dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), ServeError>>>,
}

impl TestServer {
    pub(crate) async fn start(backend: &Backend, config: ServerConfig) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let target = match backend {
            Backend::Sqlite => DbTarget::Sqlite(dir.path().join("app.db")),
            Backend::Postgres { url, schema } => DbTarget::Postgres {
                url: url.clone(),
                schema: schema.clone(),
            },
        };
        let (store, database) = target.open().await.expect("open the database");
        let config = ServerConfig {
            bind: "127.0.0.1:0".parse().expect("address"),
            admin_token: ADMIN.into(),
            token_file: Some(dir.path().join("tokens.json")),
            ..config
        };
        let server = Server::bind(config, store, database).await.expect("bind");
        let base = format!("http://{}", server.local_addr());
        let (sender, receiver) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = receiver.await;
        }));
        TestServer {
            base,
            client: reqwest::Client::new(),
            dir,
            shutdown: Some(sender),
            task: Some(task),
        }
    }

    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    pub(crate) fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    pub(crate) fn post(&self, path: &str, body: &Json) -> RequestBuilder {
        self.request(Method::POST, path).json(body)
    }

    /// Stops the server and checks that it closed cleanly.
    pub(crate) async fn stop(mut self) {
        if let Some(sender) = self.shutdown.take() {
            let _ = sender.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("clean shutdown");
        }
    }
}

/// Creates a collection and asserts 201.
pub(crate) async fn create_collection(server: &TestServer, body: Json) -> TestResult {
    let response = server.post("/api/collections", &body).send().await?;
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "{:?}",
        response.text().await?
    );
    Ok(())
}

/// Asserts the status and the error shape; returns the body.
pub(crate) async fn expect_error(response: Response, status: u16, code: &str) -> Json {
    let actual = response.status().as_u16();
    let body: Json = response.json().await.expect("a JSON error body");
    assert_eq!(actual, status, "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body["details"].is_object(), "{body}");
    body
}

/// Asserts a success status; returns the body.
pub(crate) async fn expect_ok(response: Response, status: u16) -> Json {
    let actual = response.status().as_u16();
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "{text}");
    if text.is_empty() {
        Json::Null
    } else {
        serde_json::from_str(&text).expect("a JSON body")
    }
}

/// Writes past libtest's output capture.
pub(crate) fn note(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

async fn drop_schema(url: &str, schema: &str) {
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

/// Runs `body` against SQLite, then PostgreSQL (in a fresh schema, dropped afterwards) when
/// `LITEHOUSE_TEST_PG` is set.
pub(crate) async fn on_each_backend<F, Fut>(body: F)
where
    F: Fn(Backend) -> Fut,
    Fut: Future<Output = TestResult> + Send + 'static,
{
    let outcome = tokio::spawn(body(Backend::Sqlite)).await;
    finish("sqlite", outcome);
    let Some(url) = postgres_url() else {
        SKIPPED.call_once(|| {
            note("note: LITEHOUSE_TEST_PG is not set; the PostgreSQL half of the suite was skipped")
        });
        return;
    };
    let schema = unique("lh_srv");
    let outcome = tokio::spawn(body(Backend::Postgres {
        url: url.clone(),
        schema: schema.clone(),
    }))
    .await;
    drop_schema(&url, &schema).await;
    finish("postgres", outcome);
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
