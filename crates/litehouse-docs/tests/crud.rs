//! Documents, versions, unique indexes, references, explain, and export/import.

use litehouse_docs::{
    CollectionSpec, Error, FieldType, Filter, IndexSpec, OnDelete, Query, ReferenceSpec, Sort,
};
use serde_json::json;

use crate::util::{on_each_backend, sqlite_store};

#[tokio::test(flavor = "multi_thread")]
async fn documents_and_optimistic_concurrency() {
    on_each_backend(|store| async move {
        store
            .create_collection("notes", CollectionSpec::default())
            .await?;
        let note = store
            .create(
                "notes",
                json!({"title": "a", "tags": ["x"], "id": "ignored", "version": 7}),
            )
            .await?;
        assert_eq!(note.version, 1);
        assert_eq!(note.created_at, note.updated_at);
        assert_ne!(note.id, "ignored");
        assert!(uuid::Uuid::parse_str(&note.id).is_ok_and(|id| id.get_version_num() == 7));
        assert_eq!(
            note.body,
            json!({"title": "a", "tags": ["x"]})
                .as_object()
                .unwrap()
                .clone()
        );
        assert_eq!(store.get("notes", &note.id).await?, note);

        let replaced = store
            .replace("notes", &note.id, json!({"title": "b"}), Some(1))
            .await?;
        assert_eq!(
            (replaced.version, replaced.created_at.as_str()),
            (2, note.created_at.as_str())
        );
        let stale = store
            .replace("notes", &note.id, json!({"title": "c"}), Some(1))
            .await
            .unwrap_err();
        assert!(
            matches!(
                stale,
                Error::VersionConflict {
                    expected: 1,
                    actual: 2,
                    ..
                }
            ),
            "{stale}"
        );
        assert!(stale.is_conflict());

        let patched = store
            .patch(
                "notes",
                &note.id,
                json!({"extra": {"n": 1}, "title": null}),
                Some(2),
            )
            .await?;
        assert_eq!(
            patched.body,
            json!({"extra": {"n": 1}}).as_object().unwrap().clone()
        );
        assert_eq!(patched.version, 3);
        let patched = store
            .patch("notes", &note.id, json!({"extra": {"m": 2}}), None)
            .await?;
        assert_eq!(patched.to_json()["extra"], json!({"n": 1, "m": 2}));
        assert!(
            store
                .patch("notes", &note.id, json!([1]), None)
                .await
                .unwrap_err()
                .is_invalid_input()
        );

        assert!(matches!(
            store.delete("notes", &note.id, Some(1)).await,
            Err(Error::VersionConflict { .. })
        ));
        let report = store.delete("notes", &note.id, Some(4)).await?;
        assert_eq!(report.deleted["notes"], 1);
        assert!(
            store
                .get("notes", &note.id)
                .await
                .unwrap_err()
                .is_not_found()
        );
        assert!(
            store
                .delete("notes", &note.id, None)
                .await
                .unwrap_err()
                .is_not_found()
        );
        assert!(
            store
                .replace("notes", &note.id, json!({}), None)
                .await
                .unwrap_err()
                .is_not_found()
        );
        for missing in [
            store.get("nothing", &note.id).await.map(|_| ()),
            store.delete("nothing", &note.id, None).await.map(|_| ()),
            store
                .replace("nothing", &note.id, json!({}), None)
                .await
                .map(|_| ()),
            store.create("nothing", json!({})).await.map(|_| ()),
            store.find("nothing", &Query::default()).await.map(|_| ()),
            store.export("nothing", None, 10).await.map(|_| ()),
        ] {
            assert!(
                matches!(missing, Err(Error::CollectionNotFound { .. })),
                "{missing:?}"
            );
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn collections_and_batches() {
    on_each_backend(|store| async move {
        let spec = CollectionSpec {
            indexes: vec![IndexSpec::unique("by_code", [("code", FieldType::String)])],
            references: vec![],
        };
        store.create_collection("items", spec.clone()).await?;
        assert!(matches!(
            store.create_collection("items", spec.clone()).await,
            Err(Error::CollectionExists { .. })
        ));
        let listed = store.list_collections().await?;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].spec, spec);
        assert_eq!(store.get_collection("items").await?.spec, spec);

        let batch: Vec<_> = (0..250)
            .map(|i| json!({"code": format!("c{i}"), "i": i}))
            .collect();
        assert_eq!(store.create_many("items", batch).await?.len(), 250);
        // One bad document rolls back the whole batch.
        let clash = store
            .create_many("items", vec![json!({"code": "new"}), json!({"code": "c3"})])
            .await
            .unwrap_err();
        assert!(matches!(clash, Error::Unique { .. }), "{clash}");
        assert_eq!(store.count("items", None).await?, 250);
        let duplicate_in_batch = store
            .create_many("items", vec![json!({"code": "d"}), json!({"code": "d"})])
            .await;
        assert!(matches!(duplicate_in_batch, Err(Error::Unique { .. })));
        assert_eq!(
            store.count("items", Some(Filter::eq("code", "d"))).await?,
            0
        );

        store.drop_collection("items").await?;
        assert!(store.list_collections().await?.is_empty());
        assert!(matches!(
            store.drop_collection("items").await,
            Err(Error::CollectionNotFound { .. })
        ));
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unique_rules() {
    on_each_backend(|store| async move {
        let spec = CollectionSpec {
            indexes: vec![
                IndexSpec::unique("by_email", [("email", FieldType::String)]),
                IndexSpec::unique(
                    "by_pair",
                    [("a", FieldType::Number), ("b", FieldType::Bool)],
                ),
            ],
            references: vec![],
        };
        store.create_collection("users", spec).await?;
        let ada = store
            .create("users", json!({"email": "ada@x", "a": 1, "b": true}))
            .await?;
        let err = store
            .create("users", json!({"email": "ada@x"}))
            .await
            .unwrap_err();
        assert_eq!(err.index(), Some("by_email"));
        assert_eq!(err.conflicting_id(), Some(ada.id.as_str()));
        // Other types, case, missing and null never conflict.
        for body in [
            json!({"email": "ADA@x"}),
            json!({"email": 1}),
            json!({}),
            json!({}),
            json!({"email": null}),
            json!({"email": ["ada@x"]}),
        ] {
            store.create("users", body).await?;
        }
        // 1 and 1.0 are the same number; "1" is another type.
        let err = store
            .create("users", json!({"a": 1.0, "b": true}))
            .await
            .unwrap_err();
        assert_eq!(
            (err.index(), err.conflicting_id()),
            (Some("by_pair"), Some(ada.id.as_str()))
        );
        store.create("users", json!({"a": "1", "b": true})).await?;
        store.create("users", json!({"a": 1, "b": false})).await?;
        store.create("users", json!({"a": 1})).await?;
        // Replacing a document with its own values is no conflict; taking another's is.
        store
            .replace(
                "users",
                &ada.id,
                json!({"email": "ada@x", "a": 1, "b": true}),
                None,
            )
            .await?;
        let bob = store.create("users", json!({"email": "bob@x"})).await?;
        let err = store
            .patch("users", &bob.id, json!({"email": "ada@x"}), None)
            .await
            .unwrap_err();
        assert_eq!(err.conflicting_id(), Some(ada.id.as_str()));
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reference_rules_and_chains() {
    on_each_backend(|store| async move {
        store.create_collection("users", CollectionSpec::default()).await?;
        let refs = |rules: Vec<ReferenceSpec>| CollectionSpec { indexes: vec![], references: rules };
        store.create_collection("posts", refs(vec![ReferenceSpec::new("author", "users", OnDelete::Cascade)])).await?;
        store
            .create_collection(
                "comments",
                refs(vec![
                    ReferenceSpec::new("post", "posts", OnDelete::Cascade),
                    ReferenceSpec::new("meta.editor", "users", OnDelete::SetNull),
                    ReferenceSpec::new("parent", "comments", OnDelete::Cascade),
                ]),
            )
            .await?;
        store.create_collection("invoices", refs(vec![ReferenceSpec::new("owner", "users", OnDelete::Restrict)])).await?;
        assert!(matches!(store.drop_collection("users").await, Err(Error::CollectionInUse { .. })));
        let bad = store.create_collection("x", refs(vec![ReferenceSpec::new("y", "nowhere", OnDelete::Cascade)])).await;
        assert!(matches!(bad, Err(Error::InvalidSpec { .. })));

        let ada = store.create("users", json!({"name": "ada"})).await?;
        let bob = store.create("users", json!({"name": "bob"})).await?;
        let post = store.create("posts", json!({"author": ada.id})).await?;
        let root = store.create("comments", json!({"post": post.id, "meta": {"editor": bob.id}})).await?;
        let reply = store.create("comments", json!({"parent": root.id, "meta": {"editor": ada.id}})).await?;
        let by_bob = store.create("comments", json!({"meta": {"editor": bob.id}})).await?;
        assert!(matches!(
            store.create("posts", json!({"author": "0190-nope"})).await,
            Err(Error::ReferenceNotFound { .. })
        ));
        assert!(matches!(store.create("posts", json!({"author": 5})).await, Err(Error::InvalidValue { .. })));
        store.create("posts", json!({"author": null})).await?;

        // Restrict blocks, naming the referencing document, and rolls everything back.
        let invoice = store.create("invoices", json!({"owner": bob.id})).await?;
        let err = store.delete("users", &bob.id, None).await.unwrap_err();
        assert_eq!(err.conflicting_id(), Some(invoice.id.as_str()));
        assert!(matches!(&err, Error::Restricted { referencing_collection, .. } if referencing_collection == "invoices"));
        assert_eq!(store.get("comments", &by_bob.id).await?.version, 1);

        // Cascade through posts -> comments -> replies; set null on the editor reference.
        let report = store.delete("users", &ada.id, None).await?;
        assert_eq!(report.deleted.get("users"), Some(&1));
        assert_eq!(report.deleted.get("posts"), Some(&1));
        assert_eq!(report.deleted.get("comments"), Some(&2));
        assert!(store.get("comments", &reply.id).await.unwrap_err().is_not_found());
        assert!(report.nulled.is_empty());

        store.delete("invoices", &invoice.id, None).await?;
        let report = store.delete("users", &bob.id, None).await?;
        assert_eq!(report.nulled.get("comments"), Some(&1));
        let nulled = store.get("comments", &by_bob.id).await?;
        assert_eq!(nulled.to_json()["meta"], json!({"editor": null}));
        assert_eq!(nulled.version, 2);

        // A self-referencing cycle ends.
        let a = store.create("comments", json!({})).await?;
        let b = store.create("comments", json!({"parent": a.id})).await?;
        store.patch("comments", &a.id, json!({"parent": b.id}), None).await?;
        let report = store.delete("comments", &a.id, None).await?;
        assert_eq!(report.deleted.get("comments"), Some(&2));
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn export_and_import_preserve_everything() {
    on_each_backend(|store| async move {
        let spec = CollectionSpec {
            indexes: vec![IndexSpec::unique("by_n", [("n", FieldType::Number)])],
            references: vec![],
        };
        store.create_collection("src", spec.clone()).await?;
        store
            .create_many(
                "src",
                (0..25)
                    .map(|n| json!({"n": n, "x": [n, {"y": 1.5}]}))
                    .collect(),
            )
            .await?;
        let first = store
            .get("src", &store.export("src", None, 1).await?[0].id)
            .await?;
        store
            .patch("src", &first.id, json!({"patched": true}), None)
            .await?;

        store.create_collection("dst", spec).await?;
        let mut after: Option<String> = None;
        let mut copied = Vec::new();
        loop {
            let batch = store.export("src", after.as_deref(), 10).await?;
            let Some(last) = batch.last() else { break };
            after = Some(last.id.clone());
            store.import("dst", batch.clone()).await?;
            copied.extend(batch);
        }
        assert_eq!(copied.len(), 25);
        let again = store.export("dst", None, 100).await?;
        assert_eq!(again, copied);
        assert_eq!(again[0].version, 2);
        let clash = store
            .import("dst", vec![copied[3].clone()])
            .await
            .unwrap_err();
        assert!(matches!(clash, Error::Unique { .. }), "{clash}");
        Ok(())
    })
    .await;
}

fn indexed_people() -> CollectionSpec {
    CollectionSpec {
        indexes: vec![IndexSpec::new("by_age", [("age", FieldType::Number)])],
        references: vec![],
    }
}

fn page_of(filter: Option<Filter>, sort: Vec<Sort>, after: Option<String>) -> Query {
    Query {
        filter,
        sort,
        paging: litehouse_docs::Paging::Cursor {
            after,
            per_page: 50,
        },
        count: false,
    }
}

/// On SQLite every indexed page query reads the index in order: no full scan and no sort.
#[tokio::test(flavor = "multi_thread")]
async fn explain_reports_index_use() {
    let store = sqlite_store().await;
    store
        .create_collection("people", indexed_people())
        .await
        .unwrap();
    let people = (0..2000)
        .map(|i| json!({"age": i % 97, "name": format!("p{i}")}))
        .collect();
    store.create_many("people", people).await.unwrap();
    store.analyze().await.unwrap();
    let first = store
        .find(
            "people",
            &page_of(Some(Filter::gte("age", 10)), vec![Sort::asc("age")], None),
        )
        .await
        .unwrap();
    let indexed = [
        page_of(Some(Filter::eq("age", 30)), vec![Sort::asc("age")], None),
        page_of(Some(Filter::eq("age", 30)), vec![], None),
        page_of(
            Some(Filter::all([Filter::gte("age", 30), Filter::lt("age", 40)])),
            vec![Sort::asc("age")],
            None,
        ),
        page_of(None, vec![Sort::desc("age")], None),
        page_of(
            Some(Filter::gte("age", 10)),
            vec![Sort::asc("age")],
            first.next_cursor,
        ),
    ];
    for query in indexed {
        let explain = store.explain("people", &query).await.unwrap();
        assert!(explain.uses_index, "{explain:#?}");
        assert!(
            !explain.plan.iter().any(|line| line.contains("TEMP B-TREE")),
            "{explain:#?}"
        );
    }
    let explain = store
        .explain(
            "people",
            &page_of(Some(Filter::eq("age", 30)), vec![], None),
        )
        .await
        .unwrap();
    // The filter value, then LIMIT (per page + 1, to see whether a next page exists) and
    // OFFSET, all bound rather than formatted into the SQL.
    assert_eq!(explain.params, vec![json!(30), json!(51), json!(0)]);
    assert!(!explain.sql.contains("51"), "{}", explain.sql);
    let scan = page_of(Some(Filter::eq("name", "p3")), vec![], None);
    let explain = store.explain("people", &scan).await.unwrap();
    assert!(!explain.uses_index, "{explain:?}");
    assert!(explain.plan.iter().any(|line| line.contains("SCAN")));
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_on_postgres_shows_the_plan() {
    let Some(url) = crate::util::postgres_url() else {
        return;
    };
    let (store, schema) = crate::util::postgres_store(&url).await;
    let outcome = async {
        store
            .create_collection(
                "people",
                CollectionSpec {
                    indexes: vec![IndexSpec::new("by_age", [("age", FieldType::Number)])],
                    references: vec![],
                },
            )
            .await?;
        store
            .create_many(
                "people",
                (0..2000)
                    .map(|age| json!({"age": age, "name": format!("p{age}")}))
                    .collect(),
            )
            .await?;
        store.analyze().await?;
        let indexed = Query {
            filter: Some(Filter::eq("age", 30)),
            sort: vec![Sort::asc("age")],
            ..Query::default()
        };
        store.explain("people", &indexed).await
    }
    .await;
    crate::util::drop_schema(&url, &schema).await;
    let explain = outcome.unwrap();
    assert_eq!(explain.engine, "postgres");
    assert!(explain.uses_index, "{explain:?}");
}

/// Racing writers: one unique value wins once, one expected version wins once.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writers() {
    on_each_backend(|store| async move {
        let spec = CollectionSpec {
            indexes: vec![IndexSpec::unique("by_key", [("key", FieldType::String)])],
            references: vec![],
        };
        store.create_collection("races", spec).await?;
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(
                    async move { store.create("races", json!({"key": "same", "i": i})).await },
                )
            })
            .collect();
        let mut won = 0;
        for task in tasks {
            match task.await? {
                Ok(_) => won += 1,
                Err(err) => assert_eq!(err.index(), Some("by_key"), "{err}"),
            }
        }
        assert_eq!(won, 1);
        let doc = store.create("races", json!({"key": "counter"})).await?;
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (store, id) = (store.clone(), doc.id.clone());
                tokio::spawn(
                    async move { store.patch("races", &id, json!({"by": i}), Some(1)).await },
                )
            })
            .collect();
        let mut won = 0;
        for task in tasks {
            match task.await? {
                Ok(_) => won += 1,
                Err(err) => assert!(matches!(err, Error::VersionConflict { .. }), "{err}"),
            }
        }
        assert_eq!(won, 1);
        assert_eq!(store.get("races", &doc.id).await?.version, 2);
        Ok(())
    })
    .await;
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<litehouse_docs::Store>();
    check::<Error>();
}

/// What `litehouse migrate` will do: copy every collection (dependencies first), spec and
/// document from a SQLite store to each backend, in batches, and compare.
#[tokio::test(flavor = "multi_thread")]
async fn migrate_through_export_and_import() {
    on_each_backend(|target| async move {
        let source = sqlite_store().await;
        source
            .create_collection("users", CollectionSpec::default())
            .await?;
        let refs = CollectionSpec {
            indexes: vec![IndexSpec::unique("by_slug", [("slug", FieldType::String)])],
            references: vec![
                ReferenceSpec::new("author", "users", OnDelete::Restrict),
                ReferenceSpec::new("parent", "zposts", OnDelete::Cascade),
            ],
        };
        // Named so that sorting by name alone would put it first.
        source.create_collection("zposts", refs.clone()).await?;
        source
            .create_collection(
                "aaa",
                CollectionSpec {
                    indexes: vec![],
                    references: vec![ReferenceSpec::new("post", "zposts", OnDelete::SetNull)],
                },
            )
            .await?;
        let user = source.create("users", json!({"name": "ada"})).await?;
        let first = source
            .create("zposts", json!({"slug": "a", "author": user.id}))
            .await?;
        let second = source
            .create("zposts", json!({"slug": "b", "parent": first.id}))
            .await?;
        // The earlier document now names a later one.
        source
            .patch("zposts", &first.id, json!({"parent": second.id}), None)
            .await?;
        source.create("aaa", json!({"post": second.id})).await?;

        let collections = source.list_collections().await?;
        let names: Vec<&str> = collections.iter().map(|info| info.name.as_str()).collect();
        assert_eq!(names, ["users", "zposts", "aaa"]);
        for info in &collections {
            target
                .create_collection(&info.name, info.spec.clone())
                .await?;
            let mut after: Option<String> = None;
            loop {
                let batch = source.export(&info.name, after.as_deref(), 2).await?;
                let Some(last) = batch.last() else { break };
                after = Some(last.id.clone());
                target.import(&info.name, batch).await?;
            }
        }
        assert_eq!(target.list_collections().await?, collections);
        for info in &collections {
            let copied = target.export(&info.name, None, 1000).await?;
            assert_eq!(
                copied,
                source.export(&info.name, None, 1000).await?,
                "{}",
                info.name
            );
        }
        // Ids stay unique on the bulk import path too.
        let again = target
            .import("users", vec![user.clone()])
            .await
            .unwrap_err();
        assert_eq!(
            (again.index(), again.conflicting_id()),
            (Some("id"), Some(user.id.as_str()))
        );
        let twice = target
            .create_collection("fresh", CollectionSpec::default())
            .await;
        twice?;
        let doubled = target
            .import("fresh", vec![user.clone(), user.clone()])
            .await
            .unwrap_err();
        assert_eq!(doubled.index(), Some("id"), "{doubled}");
        // The rules came along.
        assert!(matches!(
            target.delete("users", &user.id, None).await,
            Err(Error::Restricted { .. })
        ));
        Ok(())
    })
    .await;
}

/// PostgreSQL's numeric has no negative zero, so -0.0 is stored and read back as 0.0 on both
/// engines (QUERY.md, Documents).
#[tokio::test(flavor = "multi_thread")]
async fn negative_zero_reads_back_as_zero() {
    on_each_backend(|store| async move {
        store
            .create_collection("zeros", CollectionSpec::default())
            .await?;
        let created = store
            .create(
                "zeros",
                json!({"z": -0.0, "list": [-0.0, 1.5], "n": {"z": -0.0}}),
            )
            .await?;
        let read = store.get("zeros", &created.id).await?;
        for doc in [&created, &read] {
            let json = doc.to_json();
            for value in [&json["z"], &json["list"][0], &json["n"]["z"]] {
                let float = value.as_f64().expect("a number");
                assert!(float == 0.0 && float.is_sign_positive(), "{value}");
            }
            assert_eq!(json["list"][1], json!(1.5));
        }
        let found = store.count("zeros", Some(Filter::eq("z", 0))).await?;
        assert_eq!(found, 1);
        Ok(())
    })
    .await;
}

/// Batches are checked per statement: duplicates inside a batch, across its chunks of 500,
/// and against stored documents, on one or several fields; one missing reference fails the
/// whole batch; nothing of a failed batch is written.
#[tokio::test(flavor = "multi_thread")]
async fn batch_checks_cover_the_whole_batch() {
    on_each_backend(|store| async move {
        let spec = CollectionSpec {
            indexes: vec![
                IndexSpec::unique("by_n", [("n", FieldType::Number)]),
                IndexSpec::unique(
                    "by_pair",
                    [("a", FieldType::String), ("b", FieldType::Number)],
                ),
            ],
            references: vec![ReferenceSpec::new("owner", "owners", OnDelete::Cascade)],
        };
        store
            .create_collection("owners", CollectionSpec::default())
            .await?;
        store.create_collection("batch", spec).await?;
        let owner = store.create("owners", json!({})).await?;
        let stored = store
            .create(
                "batch",
                json!({"n": 1, "a": "x", "b": 1, "owner": owner.id}),
            )
            .await?;
        let refused = |result: Result<Vec<litehouse_docs::Document>, Error>, index: &str| {
            let err = result.unwrap_err();
            assert!(matches!(err, Error::Unique { .. }), "{err}");
            assert_eq!(err.index(), Some(index), "{err}");
            err
        };
        // 1.0 equals the stored 1; the stored document is named.
        let err = refused(
            store
                .create_many("batch", vec![json!({"n": 2}), json!({"n": 1.0})])
                .await,
            "by_n",
        );
        assert_eq!(err.conflicting_id(), Some(stored.id.as_str()));
        refused(
            store
                .create_many("batch", vec![json!({"n": 5}), json!({"n": 5.0})])
                .await,
            "by_n",
        );
        refused(
            store
                .create_many(
                    "batch",
                    vec![json!({"a": "x", "b": 1.0}), json!({"a": "y", "b": 1})],
                )
                .await,
            "by_pair",
        );
        refused(
            store
                .create_many(
                    "batch",
                    vec![json!({"a": "z", "b": 2}), json!({"a": "z", "b": 2})],
                )
                .await,
            "by_pair",
        );
        // Across chunks: the 700th document repeats the 10th.
        let mut many: Vec<serde_json::Value> = (0..700).map(|n| json!({"n": 100 + n})).collect();
        many[699] = json!({"n": 109});
        refused(store.create_many("batch", many).await, "by_n");
        // Large integers that one f64 cannot tell apart are distinct values.
        let big = 9_007_199_254_740_993_i64;
        store
            .create_many("batch", vec![json!({"n": big}), json!({"n": big - 1})])
            .await?;
        // Partial or mistyped values are never in conflict.
        store
            .create_many(
                "batch",
                vec![json!({"a": "x"}), json!({"a": "x", "b": "1"})],
            )
            .await?;
        let err = store
            .create_many(
                "batch",
                vec![
                    json!({"owner": owner.id}),
                    json!({"owner": "nobody"}),
                    json!({"owner": owner.id}),
                ],
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::ReferenceNotFound { target_id, .. } if target_id == "nobody"),
            "{err}"
        );
        assert_eq!(store.count("batch", None).await?, 5);
        Ok(())
    })
    .await;
}

/// An index on an array-element path (`items.0.sku`) is an expression index that both
/// planners use for filters and sorts on that path.
#[tokio::test(flavor = "multi_thread")]
async fn array_path_indexes_are_used() {
    on_each_backend(|store| async move {
        let spec = CollectionSpec {
            indexes: vec![IndexSpec::new(
                "by_first_sku",
                [("items.0.sku", FieldType::String)],
            )],
            references: vec![],
        };
        store.create_collection("orders", spec).await?;
        let orders = (0..2000)
            .map(|i| json!({"items": [{"sku": format!("s{:04}", i % 500)}, {"sku": "other"}]}))
            .collect();
        store.create_many("orders", orders).await?;
        store.analyze().await?;
        let by_sku = page_of(Some(Filter::eq("items.0.sku", "s0042")), vec![], None);
        let explain = store.explain("orders", &by_sku).await?;
        assert!(explain.uses_index, "{explain:#?}");
        let page = store.find("orders", &by_sku).await?;
        assert_eq!(page.items.len(), 4);
        let sorted = page_of(None, vec![Sort::asc("items.0.sku")], None);
        if store.engine() == "sqlite" {
            let explain = store.explain("orders", &sorted).await?;
            assert!(explain.uses_index, "{explain:#?}");
            assert!(
                !explain.plan.iter().any(|line| line.contains("TEMP B-TREE")),
                "{explain:#?}"
            );
        }
        let first = store.find("orders", &sorted).await?;
        assert_eq!(first.items[0].body["items"][0]["sku"], "s0000");
        Ok(())
    })
    .await;
}

/// `find_json` answers what `find` answers, item for item, with the same cursors and totals,
/// for every kind of stored body: empty, escaped and non-ASCII strings, floats, nested
/// values, patched documents and bodies a set-null reference rewrote in SQL.
#[tokio::test(flavor = "multi_thread")]
async fn find_json_gives_what_find_gives() {
    on_each_backend(|store| async move {
        store
            .create_collection("owners", CollectionSpec::default())
            .await?;
        let spec = CollectionSpec {
            indexes: vec![IndexSpec::new("by_rank", [("rank", FieldType::Number)])],
            references: vec![ReferenceSpec::new("owner", "owners", OnDelete::SetNull)],
        };
        store.create_collection("things", spec).await?;
        let owner = store.create("owners", json!({"name": "o"})).await?;
        let bodies = [
            json!({}),
            json!({"rank": 1, "text": "quote \" backslash \\ control \u{1} tab \t"}),
            json!({"rank": 2.5, "text": "é 中文 🎉", "nested": {"a": [1, {"b": null}]}}),
            json!({"rank": 1e300, "tiny": 1e-300, "zero": -0.0, "big": i64::MAX, "neg": i64::MIN}),
            json!({"rank": 3, "owner": owner.id, "flag": true}),
            json!({"rank": "text sorts after numbers", "list": []}),
        ];
        for round in 0..12 {
            for body in &bodies {
                let mut body = body.clone();
                body["round"] = json!(round);
                let created = store.create("things", body).await?;
                if round % 3 == 0 {
                    store
                        .patch("things", &created.id, json!({"patched": round}), None)
                        .await?;
                }
            }
        }
        // Rewrites the referencing bodies in SQL (json_set / jsonb_set).
        store.delete("owners", &owner.id, None).await?;
        let queries = [
            Query::default(),
            Query {
                count: true,
                ..page_of(None, vec![Sort::desc("rank")], None)
            },
            Query {
                paging: litehouse_docs::Paging::Page {
                    page: 2,
                    per_page: 7,
                },
                count: true,
                ..page_of(Some(Filter::gte("rank", 1)), vec![Sort::asc("rank")], None)
            },
        ];
        for query in queries {
            let mut query = query;
            for _ in 0..20 {
                let page = store.find("things", &query).await?;
                let json = store.find_json("things", &query).await?;
                let items: Vec<serde_json::Value> = json
                    .items
                    .iter()
                    .map(|item| serde_json::from_str(item.get()))
                    .collect::<Result<_, _>>()?;
                let expected: Vec<serde_json::Value> =
                    page.items.iter().map(|doc| doc.to_json()).collect();
                assert_eq!(items, expected);
                assert_eq!(
                    (
                        json.page,
                        json.per_page,
                        json.total_items,
                        json.total_pages,
                        &json.next_cursor
                    ),
                    (
                        page.page,
                        page.per_page,
                        page.total_items,
                        page.total_pages,
                        &page.next_cursor
                    )
                );
                let litehouse_docs::Paging::Cursor { per_page, .. } = query.paging else {
                    break;
                };
                let Some(after) = page.next_cursor else { break };
                query.paging = litehouse_docs::Paging::Cursor {
                    after: Some(after),
                    per_page: per_page.min(5),
                };
            }
        }
        Ok(())
    })
    .await;
}
