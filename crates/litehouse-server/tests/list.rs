//! Lists: PostgREST filters, order, pages, cursors and the envelope.

use litehouse_server::ServerConfig;
use serde_json::{Value as Json, json};

use crate::util::{
    TestResult, TestServer, create_collection, expect_error, expect_ok, on_each_backend,
};

async fn names(
    server: &TestServer,
    query: &str,
) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>> {
    let page = expect_ok(
        server
            .get(&format!("/api/collections/people/docs?{query}"))
            .send()
            .await?,
        200,
    )
    .await;
    Ok(page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["name"].as_str().unwrap_or_default().to_owned())
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_sort_and_page() {
    on_each_backend(|backend| async move {
        let server = TestServer::start(&backend, ServerConfig::default()).await;
        create_collection(
            &server,
            json!({"name": "people", "indexes": [{"name": "by_zip", "fields": [{"path": "zip", "type": "string"}]}]}),
        )
        .await?;
        let people = json!([
            {"name": "ada", "age": 36, "zip": "01234", "tags": ["math"], "addr": {"city": "London"}},
            {"name": "bob", "age": 17, "zip": "99999", "tags": ["art", "math"]},
            {"name": "cy", "age": 70, "zip": "01234", "gone": null},
            {"name": "dee", "age": 36, "zip": "55555", "addr": {"city": "Paris"}},
        ]);
        expect_ok(server.post("/api/collections/people/docs", &people).send().await?, 201).await;

        let check = |query: &'static str, expected: &'static [&'static str]| {
            let server = &server;
            async move {
                let mut found = names(server, query).await?;
                if !query.contains("order=") {
                    found.sort();
                }
                assert_eq!(found, expected, "{query}");
                TestResult::Ok(())
            }
        };
        check("age=gte.36", &["ada", "cy", "dee"]).await?;
        check("age=eq.36&name=neq.dee", &["ada"]).await?;
        check("age=lt.18", &["bob"]).await?;
        check("age=lte.17", &["bob"]).await?;
        check("age=gt.36", &["cy"]).await?;
        check("age=in.(17,70)", &["bob", "cy"]).await?;
        check("age=nin.(17,70)", &["ada", "dee"]).await?;
        check("name=like.%25e%25", &["dee"]).await?;
        check("name=ilike.A%25", &["ada"]).await?;
        check("gone=exists.true", &["cy"]).await?;
        check("addr=exists.false", &["bob", "cy"]).await?;
        check("tags=contains.math", &["ada", "bob"]).await?;
        check("addr.city=eq.Paris", &["dee"]).await?;
        // zip is declared string: 01234 stays a string, not the number 1234.
        check("zip=eq.01234", &["ada", "cy"]).await?;
        check("age=not.eq.36", &["bob", "cy"]).await?;
        check("or=(age.lt.18,age.gt.65)", &["bob", "cy"]).await?;
        check("or=(name.eq.ada,and(age.eq.36,zip.eq.55555))", &["ada", "dee"]).await?;
        check("not.or=(age.lt.18,age.gt.65)", &["ada", "dee"]).await?;
        check("order=age.desc,name.asc", &["cy", "ada", "dee", "bob"]).await?;
        check("order=name.desc&perPage=2&page=2", &["bob", "ada"]).await?;

        let page: Json = expect_ok(
            server
                .get("/api/collections/people/docs?perPage=3&order=name")
                .send()
                .await?,
            200,
        )
        .await;
        assert_eq!(page["page"], 1);
        assert_eq!(page["perPage"], 3);
        assert_eq!(page["totalItems"], 4);
        assert_eq!(page["totalPages"], 2);
        let skipped = expect_ok(
            server
                .get("/api/collections/people/docs?skipTotal=true")
                .send()
                .await?,
            200,
        )
        .await;
        assert_eq!(skipped["totalItems"], Json::Null);

        // Cursor paging walks every document once.
        let mut seen = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = expect_ok(
                server
                    .get(&format!(
                        "/api/collections/people/docs?order=name&perPage=3&cursor={cursor}"
                    ))
                    .send()
                    .await?,
                200,
            )
            .await;
            seen.extend(
                page["items"]
                    .as_array()
                    .expect("items")
                    .iter()
                    .map(|item| item["name"].clone()),
            );
            match page["nextCursor"].as_str() {
                Some(next) => cursor = next.to_owned(),
                None => break,
            }
        }
        assert_eq!(seen, [json!("ada"), json!("bob"), json!("cy"), json!("dee")]);
        server.stop().await;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_list_queries_are_400_with_the_parameter() {
    on_each_backend(|backend| async move {
        let config = ServerConfig {
            max_filter_clauses: 3,
            ..ServerConfig::default()
        };
        let server = TestServer::start(&backend, config).await;
        create_collection(
            &server,
            json!({"name": "people", "indexes": [{"name": "by_age", "fields": [{"path": "age", "type": "number"}]}]}),
        )
        .await?;
        let check = |query: &'static str, code: &'static str, param: &'static str| {
            let request = server.get(&format!("/api/collections/people/docs?{query}"));
            async move {
                let err = expect_error(request.send().await?, 400, code).await;
                if !param.is_empty() {
                    assert_eq!(err["details"]["param"], param, "{query}: {err}");
                }
                TestResult::Ok(())
            }
        };
        check("age=drop.1", "invalid_filter", "age").await?;
        check("age=gte", "invalid_filter", "age").await?;
        check("or=(a.eq.1", "invalid_filter", "or").await?;
        check("a=eq.1&b=eq.2&c=eq.3&d=eq.4", "invalid_filter", "d").await?;
        check("perPage=100000", "invalid_query", "perPage").await?;
        check("page=0", "invalid_query", "page").await?;
        check("page=1&cursor=x", "invalid_query", "cursor").await?;
        // Typed by the index: a string where a number is declared.
        check("age=gt.old", "invalid_value", "").await?;
        check("cursor=garbage", "invalid_cursor", "").await?;
        check("a%27%3B--=eq.1", "invalid_path", "").await?;
        check("order=a..b", "invalid_query", "order").await?;
        check("order=a%27", "invalid_path", "").await?;
        let missing = server.get("/api/collections/nobody/docs?age=eq.1").send().await?;
        expect_error(missing, 404, "collection_not_found").await;
        server.stop().await;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn array_paths_and_any_element() {
    on_each_backend(|backend| async move {
        let server = TestServer::start(&backend, ServerConfig::default()).await;
        create_collection(
            &server,
            json!({"name": "people", "indexes": [{"name": "by_first_sku", "fields": [{"path": "items.0.sku", "type": "string"}]}]}),
        )
        .await?;
        let people = json!([
            {"name": "ada", "tags": ["math", "red"], "items": [{"sku": "A1", "qty": 1}, {"sku": "B2", "qty": 5}]},
            {"name": "bob", "tags": ["art"], "items": [{"sku": "B2", "qty": 1}]},
            {"name": "cy", "tags": "red", "items": []},
            {"name": "dee"},
        ]);
        expect_ok(server.post("/api/collections/people/docs", &people).send().await?, 201).await;
        let check = |query: &'static str, expected: &'static [&'static str]| {
            let server = &server;
            async move {
                let mut found = names(server, query).await?;
                if !query.contains("order=") {
                    found.sort();
                }
                assert_eq!(found, expected, "{query}");
                TestResult::Ok(())
            }
        };
        check("items.0.sku=eq.A1", &["ada"]).await?;
        check("items.1.qty=gt.2", &["ada"]).await?;
        // `cy`'s tags is a string, not an array: no element matches.
        check("tags=any.eq.red", &["ada"]).await?;
        check("tags=not.any.eq.red", &["bob", "cy", "dee"]).await?;
        // One element must match every condition.
        check("items=any(sku.eq.B2,qty.gt.2)", &["ada"]).await?;
        check("items=any(sku.eq.B2,qty.lt.2)", &["bob"]).await?;
        check("or=(tags.any.eq.art,items.0.sku.eq.A1)", &["ada", "bob"]).await?;
        check("items.0.sku=exists.true&order=items.0.sku.desc", &["bob", "ada"]).await?;
        expect_error(
            server
                .get("/api/collections/people/docs?tags=any(x.any.eq.1)")
                .send()
                .await?,
            400,
            "invalid_filter",
        )
        .await;
        TestResult::Ok(())
    })
    .await;
}
