//! `/api/collections`, health and readiness, routing errors.

use litehouse_server::ServerConfig;
use reqwest::Method;
use serde_json::json;

use crate::util::{
    TestResult, TestServer, create_collection, expect_error, expect_ok, on_each_backend,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_are_created_listed_read_and_dropped() {
    on_each_backend(|backend| async move {
        let server = TestServer::start(&backend, ServerConfig::default()).await;
        let body = json!({
            "name": "users",
            "indexes": [{"name": "by_email", "fields": [{"path": "email", "type": "string"}], "unique": true}],
        });
        let response = server.post("/api/collections", &body).send().await?;
        assert_eq!(
            response.headers()["location"].to_str()?,
            "/api/collections/users"
        );
        let created = expect_ok(response, 201).await;
        assert_eq!(created["name"], "users");
        assert_eq!(created["indexes"][0]["name"], "by_email");
        assert_eq!(created["references"], json!([]));

        let again = server.post("/api/collections", &body).send().await?;
        let err = expect_error(again, 409, "collection_exists").await;
        assert_eq!(err["details"]["collection"], "users");

        create_collection(
            &server,
            json!({"name": "posts", "references": [{"path": "author", "collection": "users", "onDelete": "restrict"}]}),
        )
        .await?;
        let list = expect_ok(server.get("/api/collections").send().await?, 200).await;
        let mut names: Vec<&str> = list["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|item| item["name"].as_str())
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["posts", "users"]);
        let one = expect_ok(server.get("/api/collections/posts").send().await?, 200).await;
        assert_eq!(one["references"][0]["onDelete"], "restrict");

        // Referenced by posts: refused, nothing changes.
        let refused = server
            .request(Method::DELETE, "/api/collections/users")
            .send()
            .await?;
        expect_error(refused, 409, "collection_in_use").await;
        let dropped = server
            .request(Method::DELETE, "/api/collections/posts")
            .send()
            .await?;
        expect_ok(dropped, 204).await;
        let gone = server.get("/api/collections/posts").send().await?;
        let err = expect_error(gone, 404, "collection_not_found").await;
        assert_eq!(err["details"]["collection"], "posts");
        server.stop().await;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_collection_bodies_are_400_and_change_nothing() {
    on_each_backend(|backend| async move {
        let server = TestServer::start(&backend, ServerConfig::default()).await;
        let check = |body: serde_json::Value, code: &'static str| {
            let request = server.post("/api/collections", &body);
            async move {
                expect_error(request.send().await?, 400, code).await;
                TestResult::Ok(())
            }
        };
        check(json!({"name": "bad name; drop"}), "invalid_name").await?;
        check(json!({"name": ""}), "invalid_name").await?;
        check(json!({"name": "x", "surprise": 1}), "invalid_body").await?;
        check(json!({"indexes": []}), "invalid_body").await?;
        check(json!({"name": "x", "indexes": [{"name": "i", "fields": []}]}), "invalid_spec").await?;
        check(
            json!({"name": "x", "indexes": [{"name": "i", "fields": [{"path": "a..b", "type": "string"}]}]}),
            "invalid_path",
        )
        .await?;
        check(
            json!({"name": "x", "indexes": [{"name": "i", "fields": [{"path": "a", "type": "money"}]}]}),
            "invalid_body",
        )
        .await?;
        // A reference to a collection that does not exist: 404 naming it.
        let dangling = json!({"name": "x", "references": [{"path": "owner", "collection": "nobody", "onDelete": "cascade"}]});
        let response = server.post("/api/collections", &dangling).send().await?;
        let err = expect_error(response, 404, "collection_not_found").await;
        assert_eq!(err["details"]["collection"], "nobody", "{err}");
        assert_eq!(err["details"]["path"], "owner", "{err}");
        let list = expect_ok(server.get("/api/collections").send().await?, 200).await;
        assert_eq!(list["items"], json!([]));
        server.stop().await;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_are_added_over_existing_documents_and_dropped() {
    on_each_backend(|backend| async move {
        let server = TestServer::start(&backend, ServerConfig::default()).await;
        create_collection(&server, json!({"name": "things"})).await?;
        let batch = json!([{"a": 1, "code": "x"}, {"a": 2, "code": "x"}, {"a": 3, "code": "y"}]);
        expect_ok(server.post("/api/collections/things/docs", &batch).send().await?, 201).await;
        let index = json!({"name": "by_a", "fields": [{"path": "a", "type": "number"}]});
        let added = expect_ok(
            server.post("/api/collections/things/indexes", &index).send().await?,
            201,
        )
        .await;
        assert_eq!(added["indexes"][0]["name"], "by_a", "{added}");
        assert_eq!(added["name"], "things", "{added}");
        // The same name again, or the same path with another type: 409, nothing changes.
        let again = server.post("/api/collections/things/indexes", &index).send().await?;
        expect_error(again, 409, "index_exists").await;
        let retyped = json!({"name": "by_a_text", "fields": [{"path": "a", "type": "string"}]});
        let retyped = server.post("/api/collections/things/indexes", &retyped).send().await?;
        let err = expect_error(retyped, 409, "type_conflict").await;
        assert_eq!(err["details"]["declared"], "number", "{err}");
        // Lists over the new index see the documents written before it existed.
        let listed = expect_ok(
            server
                .get("/api/collections/things/docs?a=gte.2&order=a.desc")
                .send()
                .await?,
            200,
        )
        .await;
        let values: Vec<i64> = listed["items"]
            .as_array()
            .map(|items| items.iter().filter_map(|doc| doc["a"].as_i64()).collect())
            .unwrap_or_default();
        assert_eq!(values, [3, 2], "{listed}");
        // A unique index the data violates: 409 with the conflicting ids, nothing added.
        let unique = json!({"name": "by_code", "fields": [{"path": "code", "type": "string"}], "unique": true});
        let err = expect_error(
            server.post("/api/collections/things/indexes", &unique).send().await?,
            409,
            "index_conflict",
        )
        .await;
        assert_eq!(err["details"]["conflictingIds"].as_array().map(Vec::len), Some(2), "{err}");
        let response = server
            .post("/api/collections/nothing/indexes", &index)
            .send()
            .await?;
        expect_error(response, 404, "collection_not_found").await;
        let bad = json!({"name": "bad name", "fields": [{"path": "a", "type": "number"}]});
        let response = server.post("/api/collections/things/indexes", &bad).send().await?;
        assert_eq!(response.status(), 400);
        let dropped = server
            .request(Method::DELETE, "/api/collections/things/indexes/by_a")
            .send()
            .await?;
        assert_eq!(dropped.status(), 204);
        let again = server
            .request(Method::DELETE, "/api/collections/things/indexes/by_a")
            .send()
            .await?;
        expect_error(again, 404, "index_not_found").await;
        let info = expect_ok(server.get("/api/collections/things").send().await?, 200).await;
        assert_eq!(info["indexes"], json!([]), "{info}");
        server.stop().await;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_and_routing_errors() {
    on_each_backend(|backend| async move {
        let server = TestServer::start(&backend, ServerConfig::default()).await;
        let health = expect_ok(server.get("/api/health").send().await?, 200).await;
        assert_eq!(health["status"], "ok");
        let ready = expect_ok(server.get("/api/ready").send().await?, 200).await;
        assert_eq!(ready["engine"], backend.name());
        let missing = server.get("/api/nothing").send().await?;
        let err = expect_error(missing, 404, "route_not_found").await;
        assert_eq!(err["details"]["path"], "/api/nothing");
        let wrong = server
            .request(Method::PUT, "/api/collections")
            .send()
            .await?;
        expect_error(wrong, 405, "method_not_allowed").await;
        server.stop().await;
        Ok(())
    })
    .await;
}

/// Two servers on one PostgreSQL schema serve the same collections and see each other's
/// writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_one_postgres() {
    on_each_backend(|backend| async move {
        if matches!(backend, crate::util::Backend::Sqlite) {
            return Ok(());
        }
        let first = TestServer::start(&backend, ServerConfig::default()).await;
        let second = TestServer::start(&backend, ServerConfig::default()).await;
        create_collection(&first, json!({"name": "shared"})).await?;
        let created = expect_ok(
            second
                .post("/api/collections/shared/docs", &json!({"from": "second"}))
                .send()
                .await?,
            201,
        )
        .await;
        let id = created["id"].as_str().expect("id");
        let read = expect_ok(
            first
                .get(&format!("/api/collections/shared/docs/{id}"))
                .send()
                .await?,
            200,
        )
        .await;
        assert_eq!(read["from"], "second");
        first.stop().await;
        second.stop().await;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_route_and_show_engine_stats() {
    on_each_backend(|backend| async move {
        let server = TestServer::start(&backend, ServerConfig::default()).await;
        create_collection(&server, json!({"name": "m"})).await?;
        let missing = server.get("/api/collections/m/docs/nope").send().await?;
        expect_error(missing, 404, "not_found").await;
        // Document-store operations: 3 created (one plus a batch of two), 1 read, 2 updated,
        // 1 deleted, 1 listed.
        let one = expect_ok(
            server
                .post("/api/collections/m/docs", &json!({"n": 1}))
                .send()
                .await?,
            201,
        )
        .await;
        let batch = server.post("/api/collections/m/docs", &json!([{"n": 2}, {"n": 3}]));
        expect_ok(batch.send().await?, 201).await;
        let path = format!(
            "/api/collections/m/docs/{}",
            one["id"].as_str().expect("id")
        );
        expect_ok(server.get(&path).send().await?, 200).await;
        for method in [reqwest::Method::PUT, reqwest::Method::PATCH] {
            let write = server.request(method, &path).json(&json!({"n": 9}));
            expect_ok(write.send().await?, 200).await;
        }
        expect_ok(
            server
                .request(reqwest::Method::DELETE, &path)
                .send()
                .await?,
            200,
        )
        .await;
        expect_ok(server.get("/api/collections/m/docs").send().await?, 200).await;
        // Made-up methods share one label value, however many a client invents.
        for invented in ["BREW", "WHEN"] {
            let method = reqwest::Method::from_bytes(invented.as_bytes())?;
            let answer = server.request(method, "/api/collections/m/docs").send().await?;
            assert_eq!(answer.status(), 405);
        }
        let response = server.get("/metrics").send().await?;
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()?
                .starts_with("text/plain")
        );
        let text = response.text().await?;
        let has = |needle: &str| text.lines().any(|line| line.contains(needle));
        assert!(
            has(r#"http_requests_total{method="POST",route="/api/collections",status="201"} 1"#),
            "{text}"
        );
        assert!(
            has(r#"route="/api/collections/{collection}/docs/{id}",status="404""#),
            "{text}"
        );
        assert!(has("http_request_duration_seconds_bucket{"), "{text}");
        assert!(
            has(r#"http_requests_total{method="other",route="/api/collections/{collection}/docs",status="405"} 2"#),
            "{text}"
        );
        assert!(!text.contains("BREW") && !text.contains("WHEN"), "{text}");
        for (op, count) in [
            ("create", 3),
            ("read", 1),
            ("update", 2),
            ("delete", 1),
            ("list", 1),
        ] {
            let line =
                format!(r#"litehouse_docs_operations_total{{op="{op}",collection="m"}} {count}"#);
            let alternative =
                format!(r#"litehouse_docs_operations_total{{collection="m",op="{op}"}} {count}"#);
            assert!(has(&line) || has(&alternative), "{op}: {text}");
        }
        if matches!(backend, crate::util::Backend::Sqlite) {
            assert!(has("litehouse_commits_total"), "{text}");
            assert!(has("litehouse_queue_depth"), "{text}");
        }
        server.stop().await;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_served_without_a_token() -> TestResult {
    let config = ServerConfig {
        require_token: true,
        ..ServerConfig::default()
    };
    let server = TestServer::start(&crate::util::Backend::Sqlite, config).await;
    for (path, content_type, needle) in [
        ("/", "text/html", "/dashboard/app.js"),
        (
            "/dashboard/app.js",
            "text/javascript",
            "/api/debug/db/stats",
        ),
        ("/dashboard/style.css", "text/css", "tabular-nums"),
    ] {
        let response = server.get(path).send().await?;
        assert_eq!(response.status(), 200, "{path}");
        assert!(
            response.headers()["content-type"]
                .to_str()?
                .starts_with(content_type),
            "{path}"
        );
        assert!(response.text().await?.contains(needle), "{path}");
    }
    server.stop().await;
    Ok(())
}
