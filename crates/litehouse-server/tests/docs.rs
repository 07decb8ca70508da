//! `/api/collections/{c}/docs/{id}`: create, read, replace, patch, delete, ETag/If-Match,
//! batches, conflicts.

use litehouse_server::ServerConfig;
use reqwest::Method;
use serde_json::json;

use crate::util::{
    TestResult, TestServer, create_collection, expect_error, expect_ok, on_each_backend,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_round_trip_with_etags() {
    on_each_backend(|backend| async move {
        let server = TestServer::start(&backend, ServerConfig::default()).await;
        create_collection(&server, json!({"name": "notes"})).await?;
        let response = server
            .post(
                "/api/collections/notes/docs",
                &json!({"title": "draft", "tags": ["a"]}),
            )
            .send()
            .await?;
        assert_eq!(response.headers()["etag"], "\"1\"");
        let location = response.headers()["location"].to_str()?.to_owned();
        let created = expect_ok(response, 201).await;
        let id = created["id"].as_str().expect("id").to_owned();
        assert_eq!(location, format!("/api/collections/notes/docs/{id}"));
        assert_eq!(created["version"], 1);
        assert_eq!(created["title"], "draft");

        let read = server.get(&location).send().await?;
        assert_eq!(read.headers()["etag"], "\"1\"");
        assert_eq!(expect_ok(read, 200).await, created);

        let replaced = server
            .request(Method::PUT, &location)
            .header("if-match", "\"1\"")
            .json(&json!({"title": "final"}))
            .send()
            .await?;
        assert_eq!(replaced.headers()["etag"], "\"2\"");
        let replaced = expect_ok(replaced, 200).await;
        assert_eq!(replaced["title"], "final");
        assert!(replaced.get("tags").is_none());

        // A stale If-Match is 412 and changes nothing.
        let stale = server
            .request(Method::PUT, &location)
            .header("if-match", "\"1\"")
            .json(&json!({"title": "lost update"}))
            .send()
            .await?;
        let err = expect_error(stale, 412, "version_conflict").await;
        assert_eq!(err["details"]["actual"], 2);

        let patched = server
            .request(Method::PATCH, &location)
            .header("if-match", "W/\"2\"")
            .header("content-type", "application/merge-patch+json")
            .body(r#"{"title": null, "done": true}"#)
            .send()
            .await?;
        let patched = expect_ok(patched, 200).await;
        assert_eq!(patched["done"], true);
        assert!(patched.get("title").is_none());
        assert_eq!(patched["version"], 3);

        let bad_header = server
            .request(Method::PATCH, &location)
            .header("if-match", "three")
            .json(&json!({"x": 1}))
            .send()
            .await?;
        expect_error(bad_header, 400, "invalid_if_match").await;
        let not_object = server
            .request(Method::PATCH, &location)
            .json(&json!([1]))
            .send()
            .await?;
        expect_error(not_object, 400, "invalid_document").await;

        let stale_delete = server
            .request(Method::DELETE, &location)
            .header("if-match", "\"2\"")
            .send()
            .await?;
        expect_error(stale_delete, 412, "version_conflict").await;
        let deleted = server
            .request(Method::DELETE, &location)
            .header("if-match", "\"3\"")
            .send()
            .await?;
        assert_eq!(expect_ok(deleted, 200).await["deleted"]["notes"], 1);
        let gone = server.get(&location).send().await?;
        let err = expect_error(gone, 404, "not_found").await;
        assert_eq!(err["details"]["id"], id.as_str());
        let nowhere = server.get("/api/collections/nowhere/docs/x").send().await?;
        expect_error(nowhere, 404, "collection_not_found").await;
        server.stop().await;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_all_or_nothing() {
    on_each_backend(|backend| async move {
        let config = ServerConfig {
            max_batch: 3,
            ..ServerConfig::default()
        };
        let server = TestServer::start(&backend, config).await;
        create_collection(&server, json!({"name": "items"})).await?;
        let batch = json!([{"n": 1}, {"n": 2}]);
        let created = expect_ok(
            server
                .post("/api/collections/items/docs", &batch)
                .send()
                .await?,
            201,
        )
        .await;
        assert_eq!(created["items"].as_array().map(Vec::len), Some(2));
        // The third document is not an object: nothing of the batch is written.
        let bad = json!([{"n": 3}, {"n": 4}, 5]);
        let response = server
            .post("/api/collections/items/docs", &bad)
            .send()
            .await?;
        expect_error(response, 400, "invalid_document").await;
        let too_many = json!([{}, {}, {}, {}]);
        let response = server
            .post("/api/collections/items/docs", &too_many)
            .send()
            .await?;
        let err = expect_error(response, 413, "batch_too_large").await;
        assert_eq!(err["details"]["max"], 3);
        let list = expect_ok(server.get("/api/collections/items/docs").send().await?, 200).await;
        assert_eq!(list["totalItems"], 2);
        server.stop().await;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_and_restrict_conflicts_name_the_other_document() {
    on_each_backend(|backend| async move {
        let server = TestServer::start(&backend, ServerConfig::default()).await;
        create_collection(
            &server,
            json!({"name": "users", "indexes": [{"name": "by_email", "fields": [{"path": "email", "type": "string"}], "unique": true}]}),
        )
        .await?;
        create_collection(
            &server,
            json!({"name": "posts", "references": [{"path": "author", "collection": "users", "onDelete": "restrict"}]}),
        )
        .await?;
        let ada = expect_ok(
            server
                .post("/api/collections/users/docs", &json!({"email": "ada@example.com"}))
                .send()
                .await?,
            201,
        )
        .await;
        let ada_id = ada["id"].as_str().expect("id");
        let clash = server
            .post("/api/collections/users/docs", &json!({"email": "ada@example.com"}))
            .send()
            .await?;
        let err = expect_error(clash, 409, "unique_violation").await;
        assert_eq!(err["details"]["conflictingId"], ada_id);
        assert_eq!(err["details"]["index"], "by_email");

        let post = expect_ok(
            server
                .post("/api/collections/posts/docs", &json!({"author": ada_id}))
                .send()
                .await?,
            201,
        )
        .await;
        let dangling = server
            .post("/api/collections/posts/docs", &json!({"author": "no-such-user"}))
            .send()
            .await?;
        expect_error(dangling, 400, "reference_not_found").await;
        let wrong_type = server
            .post("/api/collections/posts/docs", &json!({"author": 7}))
            .send()
            .await?;
        expect_error(wrong_type, 400, "invalid_value").await;
        let restricted = server
            .request(Method::DELETE, &format!("/api/collections/users/docs/{ada_id}"))
            .send()
            .await?;
        let err = expect_error(restricted, 409, "restricted").await;
        assert_eq!(err["details"]["conflictingId"], post["id"]);
        let still_there = server
            .get(&format!("/api/collections/users/docs/{ada_id}"))
            .send()
            .await?;
        expect_ok(still_there, 200).await;
        server.stop().await;
        TestResult::Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_get_the_error_shape() {
    on_each_backend(|backend| async move {
        let config = ServerConfig {
            body_limit: 1024,
            ..ServerConfig::default()
        };
        let server = TestServer::start(&backend, config).await;
        create_collection(&server, json!({"name": "items"})).await?;
        let path = "/api/collections/items/docs";
        let syntax = server
            .request(Method::POST, path)
            .header("content-type", "application/json")
            .body("{\"n\": ")
            .send()
            .await?;
        expect_error(syntax, 400, "invalid_body").await;
        let no_type = server.request(Method::POST, path).body("{}").send().await?;
        expect_error(no_type, 415, "unsupported_media_type").await;
        let text = server
            .request(Method::POST, path)
            .header("content-type", "text/plain")
            .body("{}")
            .send()
            .await?;
        expect_error(text, 415, "unsupported_media_type").await;
        let big = json!({"blob": "x".repeat(2000)});
        let oversized = server.post(path, &big).send().await?;
        expect_error(oversized, 413, "body_too_large").await;
        let nul = server.post(path, &json!({"a": "\u{0}"})).send().await?;
        expect_error(nul, 400, "invalid_document").await;
        let list = expect_ok(server.get(path).send().await?, 200).await;
        assert_eq!(list["totalItems"], 0);
        server.stop().await;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_none_match_answers_304_with_the_etag() {
    on_each_backend(|backend| async move {
        let server = TestServer::start(&backend, ServerConfig::default()).await;
        create_collection(&server, json!({"name": "notes"})).await?;
        let created = expect_ok(
            server
                .post("/api/collections/notes/docs", &json!({"n": 1}))
                .send()
                .await?,
            201,
        )
        .await;
        let path = format!(
            "/api/collections/notes/docs/{}",
            created["id"].as_str().expect("id")
        );
        let conditional = |tag: &'static str| server.get(&path).header("if-none-match", tag).send();
        for tag in ["\"1\"", "W/\"1\"", "\"7\", \"1\"", "*"] {
            let response = conditional(tag).await?;
            assert_eq!(response.status(), 304, "{tag}");
            assert_eq!(response.headers()["etag"], "\"1\"");
            assert!(response.text().await?.is_empty());
        }
        // Another version, or a tag this server never sends, reads the document.
        for tag in ["\"2\"", "\"x\"", ""] {
            let response = conditional(tag).await?;
            assert_eq!(response.headers()["etag"], "\"1\"");
            assert_eq!(expect_ok(response, 200).await, created, "{tag}");
        }
        // After a write the old tag no longer matches.
        let patched = server
            .request(Method::PATCH, &path)
            .json(&json!({"n": 2}))
            .send()
            .await?;
        expect_ok(patched, 200).await;
        let response = conditional("\"1\"").await?;
        assert_eq!(response.headers()["etag"], "\"2\"");
        assert_eq!(expect_ok(response, 200).await["n"], 2);
        // An empty If-Match states no condition.
        let response = server
            .request(Method::PATCH, &path)
            .header("if-match", "")
            .json(&json!({"n": 3}))
            .send()
            .await?;
        assert_eq!(expect_ok(response, 200).await["version"], 3);
        // Anything else that is not one of our ETags is 400 and changes nothing.
        let odd = [
            reqwest::header::HeaderValue::from_bytes(b"\xc2\x84")?,
            reqwest::header::HeaderValue::from_static("\"-3\""),
            reqwest::header::HeaderValue::from_static("\"+3\""),
            reqwest::header::HeaderValue::from_static("3"),
        ];
        for value in odd {
            let response = server
                .request(Method::PATCH, &path)
                .header("if-match", value.clone())
                .json(&json!({"n": 4}))
                .send()
                .await?;
            expect_error(response, 400, "invalid_if_match").await;
        }
        let unchanged = expect_ok(server.get(&path).send().await?, 200).await;
        assert_eq!(
            (&unchanged["n"], &unchanged["version"]),
            (&json!(3), &json!(3))
        );
        server.stop().await;
        Ok(())
    })
    .await;
}

/// The extremes of f64 come back as sent on both engines (PostgreSQL renders them as long
/// decimals, which the reader must parse exactly; found by schemathesis).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_numbers_round_trip() {
    on_each_backend(|backend| async move {
        let server = TestServer::start(&backend, ServerConfig::default()).await;
        create_collection(&server, json!({"name": "nums"})).await?;
        let body = json!({
            "max": f64::MAX, "min": f64::MIN, "tiny": 5e-324, "small": f64::MIN_POSITIVE,
            "big": i64::MAX, "neg": i64::MIN,
        });
        let created = expect_ok(
            server
                .post("/api/collections/nums/docs", &body)
                .send()
                .await?,
            201,
        )
        .await;
        let path = format!(
            "/api/collections/nums/docs/{}",
            created["id"].as_str().expect("id")
        );
        let read = expect_ok(server.get(&path).send().await?, 200).await;
        for (key, value) in body.as_object().expect("object") {
            assert_eq!(&read[key], value, "{key} on {}", backend.name());
        }
        let page = expect_ok(server.get("/api/collections/nums/docs").send().await?, 200).await;
        assert_eq!(page["items"][0]["max"], f64::MAX);
        server.stop().await;
        Ok(())
    })
    .await;
}
