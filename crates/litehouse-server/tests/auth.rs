//! Tokens: admin routes, --require-token, scopes, revocation, non-loopback refusal.

use litehouse_server::{Scope, ServeError, Server, ServerConfig, TokenFile};
use reqwest::Method;
use serde_json::json;

use crate::util::{ADMIN, Backend, TestServer, expect_error, expect_ok, on_each_backend};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_routes_need_the_admin_token() {
    let server = TestServer::start(&Backend::Sqlite, ServerConfig::default()).await;
    let none = server
        .get("/api/debug/db/stats")
        .send()
        .await
        .expect("send");
    expect_error(none, 401, "unauthorized").await;
    let wrong = server
        .get("/api/debug/db/stats")
        .bearer_auth("not-the-token")
        .send()
        .await
        .expect("send");
    expect_error(wrong, 401, "unauthorized").await;
    let file = TokenFile::new(server.dir.path().join("tokens.json"));
    let (_, writer) = file.create("w", Scope::Write).expect("token");
    let forbidden = server
        .get("/api/debug/db/stats")
        .bearer_auth(&writer)
        .send()
        .await
        .expect("send");
    expect_error(forbidden, 403, "forbidden").await;
    let (_, admin_scoped) = file.create("a", Scope::Admin).expect("token");
    let allowed = server
        .get("/api/debug/db/stats")
        .bearer_auth(&admin_scoped)
        .send()
        .await
        .expect("send");
    expect_ok(allowed, 200).await;
    let admin = server
        .get("/api/debug/db/stats")
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("send");
    expect_ok(admin, 200).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_gate_data_routes_when_tokens_are_required() {
    on_each_backend(|backend| async move {
        let config = ServerConfig {
            require_token: true,
            ..ServerConfig::default()
        };
        let server = TestServer::start(&backend, config).await;
        let file = TokenFile::new(server.dir.path().join("tokens.json"));
        let (_, reader) = file.create("r", Scope::Read)?;
        let (writer_record, writer) = file.create("w", Scope::Write)?;
        let body = json!({"name": "guarded"});

        let anonymous = server.get("/api/collections").send().await?;
        expect_error(anonymous, 401, "unauthorized").await;
        let malformed = server
            .get("/api/collections")
            .header("authorization", "Basic abc")
            .send()
            .await?;
        expect_error(malformed, 401, "unauthorized").await;
        let read_only = server
            .post("/api/collections", &body)
            .bearer_auth(&reader)
            .send()
            .await?;
        expect_error(read_only, 403, "forbidden").await;
        let created = server
            .post("/api/collections", &body)
            .bearer_auth(&writer)
            .send()
            .await?;
        expect_ok(created, 201).await;
        let listed = server
            .get("/api/collections")
            .bearer_auth(&reader)
            .send()
            .await?;
        assert_eq!(expect_ok(listed, 200).await["items"][0]["name"], "guarded");
        let admin = server
            .request(Method::DELETE, "/api/collections/guarded")
            .bearer_auth(ADMIN)
            .send()
            .await?;
        expect_ok(admin, 204).await;
        // Health stays open for probes.
        expect_ok(server.get("/api/health").send().await?, 200).await;

        assert!(file.revoke(&writer_record.id)?);
        let revoked = server
            .post("/api/collections", &body)
            .bearer_auth(&writer)
            .send()
            .await?;
        expect_error(revoked, 401, "unauthorized").await;
        server.stop().await;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loopback_server_still_refuses_bad_tokens() {
    let server = TestServer::start(&Backend::Sqlite, ServerConfig::default()).await;
    expect_ok(
        server.get("/api/collections").send().await.expect("send"),
        200,
    )
    .await;
    let bad = server
        .get("/api/collections")
        .bearer_auth("lh_forged")
        .send()
        .await
        .expect("send");
    expect_error(bad, 401, "unauthorized").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_loopback_bind_needs_require_token() {
    let dir = tempfile::tempdir().expect("dir");
    let store = litehouse_docs::Store::open_sqlite(dir.path().join("a.db"))
        .await
        .expect("store");
    let config = ServerConfig {
        bind: "0.0.0.0:0".parse().expect("address"),
        admin_token: ADMIN.into(),
        ..ServerConfig::default()
    };
    let err = Server::bind(config, store.clone(), None)
        .await
        .expect_err("refused");
    assert!(matches!(err, ServeError::InsecureBind { .. }), "{err}");
    assert!(err.to_string().contains("--require-token"), "{err}");
    let config = ServerConfig {
        admin_token: "  ".into(),
        bind: "127.0.0.1:0".parse().expect("address"),
        ..ServerConfig::default()
    };
    let err = Server::bind(config, store, None)
        .await
        .expect_err("refused");
    assert!(matches!(err, ServeError::EmptyAdminToken), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_off_unless_an_origin_is_configured() {
    let preflight = |server: &TestServer| {
        server
            .request(Method::OPTIONS, "/api/collections")
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST")
            .send()
    };
    let closed = TestServer::start(&Backend::Sqlite, ServerConfig::default()).await;
    let response = preflight(&closed).await.expect("send");
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );
    closed.stop().await;
    let config = ServerConfig {
        cors_origins: vec!["https://app.example".into()],
        ..ServerConfig::default()
    };
    let open = TestServer::start(&Backend::Sqlite, config).await;
    let response = preflight(&open).await.expect("send");
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let other = open
        .request(Method::OPTIONS, "/api/collections")
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("send");
    assert!(!other.headers().contains_key("access-control-allow-origin"));
    open.stop().await;
}
