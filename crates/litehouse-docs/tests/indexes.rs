//! `Store::add_index` and `Store::drop_index` on both engines, and `Store::open_sqlite`.

use litehouse_docs::{
    CollectionSpec, Error, FieldType, Filter, IndexSpec, Paging, Query, Sort, Store,
};
use serde_json::json;

use crate::util::on_each_backend;

fn by_sku(filter: Option<Filter>) -> Query {
    Query {
        filter,
        sort: vec![Sort::asc("sku")],
        paging: Paging::Cursor {
            after: None,
            per_page: 10,
        },
        count: false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn indexes_are_added_and_dropped() {
    on_each_backend(|store| async move {
        store
            .create_collection("items", CollectionSpec::default())
            .await?;
        let a = store.create("items", json!({"sku": "a", "n": 1})).await?;
        let a2 = store.create("items", json!({"sku": "a", "n": 2})).await?;
        store.create("items", json!({"sku": 7, "n": 3})).await?;
        store.create("items", json!({"n": 4})).await?;

        // A unique index the data violates is refused with the ids, and nothing changes.
        let unique = IndexSpec::unique("by_sku", [("sku", FieldType::String)]);
        let err = store.add_index("items", unique.clone()).await.unwrap_err();
        match &err {
            Error::IndexConflict {
                index,
                conflicting_ids,
                ..
            } => {
                assert_eq!(index, "by_sku");
                let mut expected = vec![a.id.clone(), a2.id.clone()];
                expected.sort();
                assert_eq!(conflicting_ids, &expected);
            }
            other => panic!("expected IndexConflict, got {other}"),
        }
        assert!(err.is_conflict());
        assert!(store.get_collection("items").await?.spec.indexes.is_empty());
        store.create("items", json!({"sku": "a"})).await?;

        // A non-unique index over the existing documents is used by queries.
        let plain = IndexSpec::new("by_n", [("n", FieldType::Number)]);
        store.add_index("items", plain.clone()).await?;
        let explain = store
            .explain("items", &by_sku(Some(Filter::eq("n", 2))))
            .await?;
        // PostgreSQL's planner scans a five-row table whatever its indexes; SQLite's uses them.
        let indexed = store.engine() == "sqlite";
        assert_eq!(explain.uses_index, indexed, "{explain:?}");
        assert_eq!(store.count("items", Some(Filter::gte("n", 2))).await?, 3);

        // Refused before any SQL: a taken name, a path declared with another type.
        let err = store.add_index("items", plain).await.unwrap_err();
        assert!(matches!(err, Error::InvalidSpec { .. }), "{err}");
        let clash = IndexSpec::new("by_n_text", [("n", FieldType::String)]);
        let err = store.add_index("items", clash).await.unwrap_err();
        assert!(matches!(err, Error::InvalidSpec { .. }), "{err}");
        let err = store.add_index("nope", unique.clone()).await.unwrap_err();
        assert!(matches!(err, Error::CollectionNotFound { .. }), "{err}");

        // Once the duplicates are gone, the unique index is built and enforced.
        for doc in store
            .find("items", &by_sku(Some(Filter::eq("sku", "a"))))
            .await?
            .items
        {
            if doc.id != a.id {
                store.delete("items", &doc.id, None).await?;
            }
        }
        store.add_index("items", unique).await?;
        let err = store
            .create("items", json!({"sku": "a"}))
            .await
            .unwrap_err();
        assert_eq!(err.index(), Some("by_sku"));
        assert_eq!(err.conflicting_id(), Some(a.id.as_str()));
        let spec = store.get_collection("items").await?.spec;
        let names: Vec<&str> = spec
            .indexes
            .iter()
            .map(|index| index.name.as_str())
            .collect();
        assert_eq!(names, ["by_n", "by_sku"]);

        // Dropping removes the index and its constraint.
        store.drop_index("items", "by_sku").await?;
        store.create("items", json!({"sku": "a"})).await?;
        let err = store.drop_index("items", "by_sku").await.unwrap_err();
        assert!(matches!(err, Error::IndexNotFound { .. }), "{err}");
        assert!(err.is_not_found());
        let err = store.drop_index("items", "Bad-Name").await.unwrap_err();
        assert!(err.is_invalid_input(), "{err}");
        store.drop_index("items", "by_n").await?;
        assert!(store.get_collection("items").await?.spec.indexes.is_empty());
        let explain = store
            .explain("items", &by_sku(Some(Filter::eq("n", 2))))
            .await?;
        assert!(!explain.uses_index, "{explain:?}");
        Ok(())
    })
    .await;
}

/// `open_sqlite` opens the file off the executor, even on a single-threaded runtime.
#[tokio::test]
async fn open_sqlite_opens_a_file() -> crate::util::TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("docs.db");
    let store = Store::open_sqlite(&path).await?;
    store
        .create_collection("notes", CollectionSpec::default())
        .await?;
    store.create("notes", json!({"a": 1})).await?;
    drop(store);
    let again = Store::open_sqlite(&path).await?;
    assert_eq!(again.count("notes", None).await?, 1);
    Ok(())
}

/// Two stores on one database (as two processes would be) never act on a stale spec: an
/// index added or dropped through one is enforced or lifted at once through the other.
async fn second_store_sees_spec_changes(first: Store, second: Store) -> crate::util::TestResult {
    first
        .create_collection("shared", CollectionSpec::default())
        .await?;
    // The second store has already used the collection with its old spec.
    second.create("shared", json!({"code": "a"})).await?;
    first
        .add_index(
            "shared",
            IndexSpec::unique("by_code", [("code", FieldType::String)]),
        )
        .await?;
    let err = second
        .create("shared", json!({"code": "a"}))
        .await
        .unwrap_err();
    assert_eq!(err.index(), Some("by_code"), "{err}");
    first.drop_index("shared", "by_code").await?;
    second.create("shared", json!({"code": "a"})).await?;
    first.drop_collection("shared").await?;
    let err = second
        .create("shared", json!({"code": "b"}))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CollectionNotFound { .. }), "{err}");
    let err = second.get("shared", "some-id").await.unwrap_err();
    assert!(matches!(err, Error::CollectionNotFound { .. }), "{err}");
    spec_cache_follows_recreation(&first, &second).await
}

/// The second store caches a spec, then the first drops and recreates the collection with
/// another one: every kind of call through the second store acts on the new spec.
async fn spec_cache_follows_recreation(first: &Store, second: &Store) -> crate::util::TestResult {
    let by_code = |code: &str| Query {
        filter: Some(Filter::eq("code", code)),
        ..Query::default()
    };
    first
        .create_collection("shared", CollectionSpec::default())
        .await?;
    let old = second.create("shared", json!({"code": "a"})).await?;
    assert_eq!(second.find("shared", &by_code("a")).await?.items.len(), 1);
    assert_eq!(second.get("shared", &old.id).await?.id, old.id);
    first.drop_collection("shared").await?;
    let spec = CollectionSpec {
        indexes: vec![
            IndexSpec::new("by_code", [("code", FieldType::Number)]),
            IndexSpec::unique("by_key", [("key", FieldType::String)]),
        ],
        references: vec![],
    };
    first.create_collection("shared", spec).await?;
    // The new spec declares `code` a number: a string operand is refused.
    let err = second.find("shared", &by_code("a")).await.unwrap_err();
    assert!(matches!(err, Error::InvalidValue { .. }), "{err}");
    let err = second.get("shared", &old.id).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    second
        .create("shared", json!({"key": "k", "code": 1}))
        .await?;
    let err = second
        .create("shared", json!({"key": "k"}))
        .await
        .unwrap_err();
    assert_eq!(err.index(), Some("by_key"), "{err}");
    let found = second
        .find(
            "shared",
            &Query {
                filter: Some(Filter::eq("code", 1)),
                ..Query::default()
            },
        )
        .await?;
    assert_eq!(found.items.len(), 1);
    // Back to the old spec, under the same name, once more.
    first.drop_collection("shared").await?;
    first
        .create_collection("shared", CollectionSpec::default())
        .await?;
    second.create("shared", json!({"key": "k"})).await?;
    second.create("shared", json!({"key": "k"})).await?;
    assert_eq!(second.find("shared", &by_code("a")).await?.items.len(), 0);
    first.drop_collection("shared").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn two_stores_never_use_a_stale_spec() -> crate::util::TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("shared.db");
    let first = Store::open_sqlite(&path).await?;
    let second = Store::open_sqlite(&path).await?;
    second_store_sees_spec_changes(first, second).await?;
    let Some(url) = crate::util::postgres_url() else {
        return Ok(());
    };
    let (first, schema) = crate::util::postgres_store(&url).await;
    let second = Store::open_postgres_with(litehouse_docs::PostgresConfig {
        url: url.clone(),
        schema: schema.clone(),
        pool_size: 2,
    })
    .await?;
    let outcome = second_store_sees_spec_changes(first, second).await;
    crate::util::drop_schema(&url, &schema).await;
    outcome
}
