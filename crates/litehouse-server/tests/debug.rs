//! `/api/debug`: stats, maintenance, flush, logs, explain; and `debug_router` nested in
//! another application.

use litehouse_server::{DebugHandles, Server, ServerConfig, debug_router};
use reqwest::Method;
use serde_json::json;
use tracing_subscriber::layer::SubscriberExt;

use crate::util::{
    ADMIN, Backend, TestServer, create_collection, expect_error, expect_ok, on_each_backend,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_and_stats_on_sqlite() {
    let server = TestServer::start(&Backend::Sqlite, ServerConfig::default()).await;
    create_collection(&server, json!({"name": "c"}))
        .await
        .expect("collection");
    let admin = |method: Method, path: &str| server.request(method, path).bearer_auth(ADMIN);
    let stats = expect_ok(
        admin(Method::GET, "/api/debug/db/stats")
            .send()
            .await
            .expect("send"),
        200,
    )
    .await;
    assert!(
        stats["engine"]["groups"]
            .as_u64()
            .is_some_and(|groups| groups > 0),
        "{stats}"
    );
    // The server's write buffer is the one sync heartbeats go through; nothing pending yet.
    assert_eq!(stats["buffer"]["pending"], json!(0), "{stats}");
    assert_eq!(stats["buffer"]["stopped"], json!(false), "{stats}");
    for action in ["vacuum", "analyze", "optimize"] {
        let done = expect_ok(
            admin(Method::POST, &format!("/api/debug/db/{action}"))
                .send()
                .await
                .expect("send"),
            200,
        )
        .await;
        assert_eq!(done["ok"], true, "{action}");
    }
    let check = expect_ok(
        admin(Method::POST, "/api/debug/db/check")
            .send()
            .await
            .expect("send"),
        200,
    )
    .await;
    assert_eq!(check["result"]["ok"], true);
    let backup = admin(Method::POST, "/api/debug/db/backup")
        .send()
        .await
        .expect("send");
    expect_error(backup, 404, "no_backup_dir").await;
    let unknown = admin(Method::POST, "/api/debug/db/drop")
        .send()
        .await
        .expect("send");
    expect_error(unknown, 404, "route_not_found").await;
    let flush = admin(Method::POST, "/api/debug/db/buffer/flush")
        .send()
        .await
        .expect("send");
    assert_eq!(expect_ok(flush, 200).await["flushed"], json!(0));
    let logs = admin(Method::GET, "/api/debug/logs")
        .send()
        .await
        .expect("send");
    expect_error(logs, 404, "no_log_database").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_go_to_the_configured_directory() {
    let backups = tempfile::tempdir().expect("dir");
    let config = ServerConfig {
        backup_dir: Some(backups.path().to_owned()),
        ..ServerConfig::default()
    };
    let server = TestServer::start(&Backend::Sqlite, config).await;
    let done = expect_ok(
        server
            .request(Method::POST, "/api/debug/db/backup")
            .bearer_auth(ADMIN)
            .send()
            .await
            .expect("send"),
        200,
    )
    .await;
    let path = done["result"]["path"].as_str().expect("path");
    assert!(path.starts_with(&backups.path().display().to_string()));
    assert!(std::path::Path::new(path).exists());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_the_plan_of_a_list_query() {
    on_each_backend(|backend| async move {
        let server = TestServer::start(&backend, ServerConfig::default()).await;
        create_collection(
            &server,
            json!({"name": "p", "indexes": [{"name": "by_age", "fields": [{"path": "age", "type": "number"}]}]}),
        )
        .await?;
        let explain = expect_ok(
            server
                .get("/api/debug/explain/p?age=gt.30&order=age.desc")
                .bearer_auth(ADMIN)
                .send()
                .await?,
            200,
        )
        .await;
        assert_eq!(explain["engine"], backend.name());
        assert!(explain["sql"].as_str().is_some_and(|sql| !sql.is_empty()));
        assert_eq!(explain["params"][0], 30);
        let bad = server
            .get("/api/debug/explain/p?age=drop.1")
            .bearer_auth(ADMIN)
            .send()
            .await?;
        expect_error(bad, 400, "invalid_filter").await;
        let anonymous = server.get("/api/debug/explain/p").send().await?;
        expect_error(anonymous, 401, "unauthorized").await;
        if matches!(backend, Backend::Postgres { .. }) {
            let stats = expect_ok(
                server.get("/api/debug/db/stats").bearer_auth(ADMIN).send().await?,
                200,
            )
            .await;
            assert_eq!(stats["engine"], json!(null));
            let vacuum = server
                .request(Method::POST, "/api/debug/db/vacuum")
                .bearer_auth(ADMIN)
                .send()
                .await?;
            expect_error(vacuum, 404, "no_database").await;
        }
        server.stop().await;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_read_from_the_log_database() {
    let dir = tempfile::tempdir().expect("dir");
    let logs =
        litehouse::LogDatabase::open(dir.path().join("logs.db"), litehouse::LogConfig::default())
            .expect("log database");
    let subscriber = tracing_subscriber::registry().with(logs.layer());
    tracing::subscriber::with_default(subscriber, || {
        tracing::warn!(target: "test", "disk nearly full");
        tracing::info!(target: "test", "routine note");
    });
    logs.flush().await.expect("flush");
    let store = litehouse_docs::Store::open_sqlite(dir.path().join("a.db"))
        .await
        .expect("store");
    let config = ServerConfig {
        bind: "127.0.0.1:0".parse().expect("address"),
        admin_token: ADMIN.into(),
        ..ServerConfig::default()
    };
    let server = Server::bind(config, store, None)
        .await
        .expect("bind")
        .with_logs(logs);
    let base = format!("http://{}", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let get = |query: &str| {
        client
            .get(format!("{base}/api/debug/logs{query}"))
            .bearer_auth(ADMIN)
            .send()
    };
    let warnings = expect_ok(get("?level=warn").await.expect("send"), 200).await;
    let messages: Vec<&str> = warnings["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|entry| entry["message"].as_str())
        .collect();
    assert_eq!(messages, ["disk nearly full"]);
    let text = expect_ok(
        get("?text=ROUTINE&sinceSeconds=3600").await.expect("send"),
        200,
    )
    .await;
    assert_eq!(text["items"][0]["message"], "routine note");
    expect_error(
        get("?level=loud").await.expect("send"),
        400,
        "invalid_query",
    )
    .await;
    expect_error(get("?limit=0").await.expect("send"), 400, "invalid_query").await;
    expect_error(
        get("?surprise=1").await.expect("send"),
        400,
        "invalid_query",
    )
    .await;
    let _ = stop.send(());
    task.await.expect("task").expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_router_nests_in_another_application() {
    let database = litehouse::Database::open_memory("nested-debug", litehouse::Config::default())
        .expect("database");
    database
        .execute("CREATE TABLE t(x)", ())
        .await
        .expect("create");
    let handles = DebugHandles {
        database: Some(database),
        ..DebugHandles::default()
    };
    let app = axum::Router::new().nest("/ops", debug_router(handles, "embedded-secret"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();
    let anonymous = client
        .get(format!("{base}/ops/db/stats"))
        .send()
        .await
        .expect("send");
    expect_error(anonymous, 401, "unauthorized").await;
    let stats = expect_ok(
        client
            .get(format!("{base}/ops/db/stats"))
            .bearer_auth("embedded-secret")
            .send()
            .await
            .expect("send"),
        200,
    )
    .await;
    assert_eq!(stats["engine"]["execute"]["count"], 1);
    assert_eq!(stats["buffer"], json!(null));
    let flush = client
        .post(format!("{base}/ops/db/buffer/flush"))
        .bearer_auth("embedded-secret")
        .send()
        .await
        .expect("send");
    expect_error(flush, 404, "no_buffer").await;
    task.abort();
}
