//! Regression tests for the defects of issue 8: a deep merge patch, orphans under a
//! two-level cascade on PostgreSQL, and names read back from the catalog.

use litehouse_docs::{CollectionSpec, Error, Filter, OnDelete, Query, ReferenceSpec, Store};
use serde_json::{Value as Json, json};

use crate::util::{TestResult, drop_schema, on_each_backend, postgres_store, postgres_url};

/// A value nested `depth` objects deep, built in a loop (no parser limit applies).
fn deep_object(depth: usize) -> Json {
    let mut value = json!(1);
    for _ in 0..depth {
        // Not `json!({"a": value})`: the macro serialises an interpolated value (recursively).
        let mut object = serde_json::Map::new();
        object.insert("a".into(), value);
        value = Json::Object(object);
    }
    value
}

/// A filter nested `depth` `not`s deep.
fn deep_filter(depth: usize) -> Filter {
    let mut filter = Filter::eq("a", 1);
    for _ in 0..depth {
        filter = Filter::negate(filter);
    }
    filter
}

async fn deep_values_are_refused(store: Store) -> TestResult {
    store
        .create_collection("deep", CollectionSpec::default())
        .await?;
    let doc = store.create("deep", json!({"a": 1})).await?;
    // Every deep value below is handed to the store, which must refuse it and dispose of it
    // without recursing 10,000 levels (neither walking it nor dropping it).
    let err = store
        .patch("deep", &doc.id, deep_object(10_000), None)
        .await
        .unwrap_err();
    assert!(err.is_invalid_input(), "{err}");
    assert_eq!(err.limit(), Some("depth"), "{err}");
    let err = store.create("deep", deep_object(10_000)).await.unwrap_err();
    assert_eq!(err.limit(), Some("depth"), "{err}");
    let err = store
        .replace("deep", &doc.id, deep_object(10_000), None)
        .await
        .unwrap_err();
    assert_eq!(err.limit(), Some("depth"), "{err}");
    let query = Query {
        filter: Some(deep_filter(10_000)),
        ..Query::default()
    };
    let err = store.find("deep", &query).await.unwrap_err();
    assert_eq!(err.limit(), Some("filter depth"), "{err}");
    // Dropping the query here would recurse through 10,000 boxes on this small stack.
    std::mem::forget(query);
    // Nothing changed.
    assert_eq!(store.get("deep", &doc.id).await?.version, 1);
    assert_eq!(store.count("deep", None).await?, 1);
    Ok(())
}

/// Runs on a thread with a normal 2 MiB stack, as a tokio worker has: a recursive walk or a
/// recursive drop of the 10,000-level values overflows it and aborts the whole process.
#[test]
fn deep_json_is_refused_without_recursion() {
    let thread = std::thread::Builder::new()
        .name("deep-json".into())
        .stack_size(2 << 20)
        .spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(on_each_backend(deep_values_are_refused));
        })
        .expect("spawn");
    thread.join().expect("deep json test panicked");
}

async fn cascade_round(store: &Store) -> Result<String, Error> {
    let a = store.create("a", json!({})).await?;
    let b = store.create("b", json!({"parent": a.id})).await?;
    let mut inserters = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        let parent = b.id.clone();
        inserters.push(tokio::spawn(async move {
            for _ in 0..4 {
                match store.create("c", json!({ "parent": parent })).await {
                    Ok(_) => {}
                    Err(Error::ReferenceNotFound { .. }) => break,
                    Err(err) if err.is_busy() => {}
                    Err(err) => return Err(err),
                }
            }
            Ok(())
        }));
    }
    let deleter = {
        let store = store.clone();
        tokio::spawn(async move {
            tokio::task::yield_now().await;
            loop {
                match store.delete("a", &a.id, None).await {
                    Err(err) if err.is_busy() => continue,
                    other => return other,
                }
            }
        })
    };
    for inserter in inserters {
        inserter.await.expect("inserter")?;
    }
    deleter.await.expect("deleter")?;
    Ok(b.id)
}

/// a ← b ← c, all cascade: a delete of `a` racing inserts of `c` under its `b` must never
/// leave a `c` whose `b` is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_level_cascade_leaves_no_orphans() {
    on_each_backend(|store| async move {
        store
            .create_collection("a", CollectionSpec::default())
            .await?;
        for (name, parent) in [("b", "a"), ("c", "b")] {
            let spec = CollectionSpec {
                references: vec![ReferenceSpec::new("parent", parent, OnDelete::Cascade)],
                ..CollectionSpec::default()
            };
            store.create_collection(name, spec).await?;
        }
        for round in 0..20 {
            let b_id = cascade_round(&store).await?;
            let orphans = store.count("c", Some(Filter::eq("parent", b_id))).await?;
            assert_eq!(
                orphans, 0,
                "round {round}: children of a deleted b survived"
            );
        }
        assert_eq!(store.count("c", None).await?, 0);
        Ok(())
    })
    .await;
}

const TAMPERED_SPEC: &str =
    r#"{"indexes":[],"references":[{"path":"owner","collection":"users","onDelete":"cascade"}]}"#;

/// Two collections, `users` and `victim`; `victim` holds a document whose `owner` names a user
/// but `victim` does not reference `users`. Returns the user id.
async fn victim_setup(store: &Store) -> Result<String, Error> {
    store
        .create_collection("users", CollectionSpec::default())
        .await?;
    store
        .create_collection("victim", CollectionSpec::default())
        .await?;
    let user = store.create("users", json!({})).await?;
    store.create("victim", json!({ "owner": user.id })).await?;
    Ok(user.id)
}

async fn tampered_catalog_is_refused(store: &Store, user: &str) -> TestResult {
    let err = store.delete("users", user, None).await.unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert_eq!(store.count("victim", None).await?, 1);
    assert_eq!(store.count("users", None).await?, 1);
    assert!(store.list_collections().await.is_err());
    Ok(())
}

/// A catalog row whose name is not a valid collection name (on SQLite `Victim` would be the
/// table of `victim`, as table names fold case) must not reach SQL.
#[tokio::test]
async fn catalog_names_are_validated() -> TestResult {
    let db = litehouse::Database::open_memory("tampered-catalog", litehouse::Config::default())?;
    let store = Store::from_database(db.clone()).await?;
    let user = victim_setup(&store).await?;
    db.execute(
        "INSERT INTO _litehouse_collections (name, spec) VALUES (?1, ?2)",
        ("Victim", TAMPERED_SPEC),
    )
    .await?;
    tampered_catalog_is_refused(&store, &user).await?;

    let Some(url) = postgres_url() else {
        return Ok(());
    };
    let (store, schema) = postgres_store(&url).await;
    let outcome = async {
        let user = victim_setup(&store).await?;
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        let task = tokio::spawn(connection);
        client
            .execute(
                &format!(
                    "INSERT INTO \"{schema}\"._litehouse_collections (name, spec) VALUES ($1, $2)"
                ),
                &[&"victim\" WHERE true; --", &TAMPERED_SPEC],
            )
            .await?;
        drop(client);
        let _ = task.await;
        tampered_catalog_is_refused(&store, &user).await
    }
    .await;
    drop_schema(&url, &schema).await;
    outcome
}
