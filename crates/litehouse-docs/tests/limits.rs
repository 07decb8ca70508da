//! `StoreConfig` limits: each is refused with `Error::LimitExceeded` naming it, on both
//! engines, and nothing is written.

use litehouse_docs::{
    CollectionSpec, Document, Error, Filter, Paging, Query, Sort, Store, StoreConfig,
};
use serde_json::{Value as Json, json};

use crate::util::on_each_backend;

fn small() -> StoreConfig {
    StoreConfig {
        max_document_bytes: 200,
        max_depth: 4,
        max_object_keys: 5,
        max_array_len: 5,
        max_filter_nodes: 4,
        max_filter_depth: 2,
        max_sort_keys: 2,
        max_page_size: 10,
        ..StoreConfig::default()
    }
}

fn expect_limit<T: std::fmt::Debug>(result: Result<T, Error>, limit: &str) {
    let err = result.unwrap_err();
    assert_eq!(err.limit(), Some(limit), "{err}");
    assert!(err.is_invalid_input(), "{err}");
}

fn keys(count: usize) -> Json {
    Json::Object(
        (0..count)
            .map(|key| (format!("k{key}"), json!(key)))
            .collect(),
    )
}

fn query(filter: Option<Filter>, sort: Vec<Sort>, per_page: u64) -> Query {
    Query {
        filter,
        sort,
        paging: Paging::Cursor {
            after: None,
            per_page,
        },
        ..Query::default()
    }
}

async fn document_limits(store: &Store) -> Result<Document, Error> {
    store
        .create_collection("lim", CollectionSpec::default())
        .await?;
    let doc = store.create("lim", json!({"a": 1})).await?;
    // At the limits: accepted.
    store
        .create("lim", json!({"a": {"b": {"c": [1, 2, 3, 4, 5]}}}))
        .await?;
    store.create("lim", keys(5)).await?;
    // One past each: refused.
    expect_limit(
        store.create("lim", json!({"a": "x".repeat(300)})).await,
        "document size",
    );
    expect_limit(
        store
            .create("lim", json!({"a": {"b": {"c": {"d": {}}}}}))
            .await,
        "depth",
    );
    expect_limit(store.create("lim", keys(6)).await, "object keys");
    expect_limit(
        store.create("lim", json!({"a": [1, 2, 3, 4, 5, 6]})).await,
        "array length",
    );
    expect_limit(
        store
            .create_many(
                "lim",
                vec![json!({"ok": 1}), json!({"a": [{"b": {"c": {}}}]})],
            )
            .await,
        "depth",
    );
    expect_limit(
        store
            .patch("lim", &doc.id, json!({"a": [0, 1, 2, 3, 4, 5, 6]}), None)
            .await,
        "array length",
    );
    expect_limit(
        store.replace("lim", &doc.id, keys(7), None).await,
        "object keys",
    );
    let mut body = serde_json::Map::new();
    body.insert("a".into(), json!("x".repeat(500)));
    let imported = Document::from_parts(
        "0190a5a0-0000-7000-8000-000000000001",
        "2026-01-02T03:04:05.000000Z",
        "2026-01-02T03:04:05.000000Z",
        1,
        body,
    );
    expect_limit(store.import("lim", vec![imported]).await, "document size");
    Ok(doc)
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_are_refused_before_sql() {
    on_each_backend(|store| async move {
        let store = store.with_config(small());
        let doc = document_limits(&store).await?;
        let three = Filter::all([Filter::eq("a", 1), Filter::eq("b", 2), Filter::eq("c", 3)]);
        store
            .find("lim", &query(Some(three.clone()), vec![], 10))
            .await?;
        let five = Filter::all([three, Filter::eq("d", 4)]);
        expect_limit(
            store
                .find("lim", &query(Some(five.clone()), vec![], 10))
                .await,
            "filter nodes",
        );
        expect_limit(store.count("lim", Some(five)).await, "filter nodes");
        let deep = Filter::negate(Filter::negate(Filter::negate(Filter::eq("a", 1))));
        expect_limit(
            store
                .find("lim", &query(Some(deep.clone()), vec![], 10))
                .await,
            "filter depth",
        );
        expect_limit(
            store.explain("lim", &query(Some(deep), vec![], 10)).await,
            "filter depth",
        );
        let sorts = vec![Sort::asc("a"), Sort::asc("b"), Sort::desc("c")];
        expect_limit(
            store.find("lim", &query(None, sorts, 10)).await,
            "sort keys",
        );
        expect_limit(
            store.find("lim", &query(None, vec![], 11)).await,
            "page size",
        );
        // Only the three accepted documents exist, and the first is unchanged.
        assert_eq!(store.count("lim", None).await?, 3);
        assert_eq!(store.get("lim", &doc.id).await?.version, 1);
        assert_eq!(StoreConfig::default().max_document_bytes, 1 << 20);
        Ok(())
    })
    .await;
}
