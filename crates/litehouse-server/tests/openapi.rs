//! `/api/openapi.json` documents every route, and every documented route is served.

use litehouse_server::ServerConfig;
use reqwest::Method;
use serde_json::json;

use crate::util::{ADMIN, Backend, TestServer, create_collection, expect_ok};

/// The routes of the issue built so far, as (method, path template).
const ROUTES: &[(&str, &str)] = &[
    ("get", "/"),
    ("get", "/dashboard/app.js"),
    ("get", "/dashboard/style.css"),
    ("get", "/api/health"),
    ("get", "/api/ready"),
    ("get", "/api/openapi.json"),
    ("get", "/metrics"),
    ("get", "/api/collections"),
    ("post", "/api/collections"),
    ("get", "/api/collections/{collection}"),
    ("delete", "/api/collections/{collection}"),
    ("post", "/api/collections/{collection}/indexes"),
    ("delete", "/api/collections/{collection}/indexes/{name}"),
    ("get", "/api/collections/{collection}/docs"),
    ("post", "/api/collections/{collection}/docs"),
    ("get", "/api/collections/{collection}/docs/{id}"),
    ("put", "/api/collections/{collection}/docs/{id}"),
    ("patch", "/api/collections/{collection}/docs/{id}"),
    ("delete", "/api/collections/{collection}/docs/{id}"),
    ("get", "/api/debug/db/stats"),
    ("post", "/api/debug/db/buffer/flush"),
    ("post", "/api/debug/db/{action}"),
    ("get", "/api/debug/logs"),
    ("get", "/api/debug/explain/{collection}"),
    ("get", "/api/debug/sync/devices"),
    ("get", "/api/realtime"),
    ("post", "/api/sync/push"),
    ("get", "/api/sync/pull"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_lists_every_route_and_every_route_answers() {
    let server = TestServer::start(&Backend::Sqlite, ServerConfig::default()).await;
    let document = expect_ok(
        server.get("/api/openapi.json").send().await.expect("send"),
        200,
    )
    .await;
    assert_eq!(document["openapi"], "3.1.0");
    let description = document["info"]["description"].as_str().unwrap_or_default();
    let limits = ServerConfig::default();
    for limit in [
        limits.body_limit,
        limits.max_batch,
        limits.max_concurrent_requests,
    ] {
        assert!(
            description.contains(&limit.to_string()),
            "{limit}: {description}"
        );
    }
    // Operation ids are unique (links refer to them).
    let mut ids: Vec<&str> = document["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|item| item.as_object().expect("path item").values())
        .filter_map(|operation| operation["operationId"].as_str())
        .collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "{ids:?}");
    assert_eq!(count, ROUTES.len());
    let links = &document["paths"]["/api/collections/{collection}/docs"]["post"]["responses"]["201"]
        ["links"];
    assert_eq!(
        links["GetDocument"]["operationId"], "getDocument",
        "{links}"
    );
    let mut documented = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            documented.push((method.clone(), path.clone()));
            let responses = operation["responses"].as_object().expect("responses");
            assert!(
                responses.contains_key("200")
                    || responses.contains_key("201")
                    || responses.contains_key("204"),
                "{method} {path}"
            );
            assert!(
                responses.contains_key("503"),
                "{method} {path} documents 503"
            );
        }
    }
    let mut expected: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    documented.sort();
    expected.sort();
    assert_eq!(documented, expected);

    create_collection(&server, json!({"name": "c"}))
        .await
        .expect("collection");
    for (method, path) in ROUTES {
        let concrete = path
            .replace("{collection}", "c")
            .replace("{id}", "x")
            .replace("{name}", "i")
            .replace("{action}", "optimize");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let response = server
            .request(method.clone(), &concrete)
            .bearer_auth(ADMIN)
            .json(&json!({}))
            .send()
            .await
            .expect("send");
        let status = response.status().as_u16();
        let body = response.text().await.expect("body");
        assert!(
            !body.contains("\"route_not_found\"") && status != 405,
            "{method} {concrete}: {status} {body}"
        );
    }
    server.stop().await;
}
