//! Hostile input is refused with a typed error before any SQL is built.

use litehouse_docs::{
    CollectionSpec, Error, FieldType, Filter, IndexSpec, OnDelete, Op, Paging, Query,
    ReferenceSpec, Sort,
};
use serde_json::json;

use crate::util::{note, on_each_backend};

#[tokio::test(flavor = "multi_thread")]
async fn hostile_input_is_refused() {
    on_each_backend(|store| async move {
        store
            .create_collection(
                "safe",
                CollectionSpec {
                    indexes: vec![
                        IndexSpec::new("by_age", [("age", FieldType::Number)]),
                        IndexSpec::new("by_at", [("at", FieldType::Datetime)]),
                        IndexSpec::new("by_on", [("on", FieldType::Bool)]),
                    ],
                    references: vec![],
                },
            )
            .await?;
        store.create("safe", json!({"age": 1})).await?;
        let long = "a".repeat(300);
        let deep = ["a"; 9].join(".");
        let mut cases = 0;
        let names = [
            "",
            "x\"; DROP TABLE safe; --",
            "a.b",
            "$x",
            "_catalog",
            "9a",
            "sqlite_master",
            "c_safe'",
            &long,
            "tëst",
            "Safe",
        ];
        for name in names {
            let err = store
                .create_collection(name, CollectionSpec::default())
                .await
                .unwrap_err();
            assert!(matches!(err, Error::InvalidName { .. }), "{name:?}: {err}");
            let err = store.find(name, &Query::default()).await.unwrap_err();
            assert!(matches!(err, Error::InvalidName { .. }), "{name:?}: {err}");
            cases += 2;
        }
        let paths = [
            "",
            ".",
            "a.",
            ".a",
            "a..b",
            "$",
            "$.a",
            "a'b",
            "a\"b",
            "a b",
            "a[0]",
            "a;b",
            "a-b",
            &long,
            &deep,
            "é",
            "0",
            "0.a",
            "a.01",
            "a.-1",
            "a.1e3",
            "a.1234567890",
            "a.0x",
            "a.[0]",
        ];
        for path in paths {
            let err = store
                .find(
                    "safe",
                    &Query {
                        filter: Some(Filter::eq(path, 1)),
                        ..Query::default()
                    },
                )
                .await
                .unwrap_err();
            assert!(matches!(err, Error::InvalidPath { .. }), "{path:?}: {err}");
            let err = store
                .find(
                    "safe",
                    &Query {
                        sort: vec![Sort::asc(path)],
                        ..Query::default()
                    },
                )
                .await
                .unwrap_err();
            assert!(matches!(err, Error::InvalidPath { .. }), "{path:?}: {err}");
            let spec = CollectionSpec {
                indexes: vec![IndexSpec::new("i", [(path, FieldType::String)])],
                references: vec![],
            };
            assert!(
                store
                    .create_collection("other", spec)
                    .await
                    .unwrap_err()
                    .is_invalid_input(),
                "{path:?}"
            );
            cases += 3;
        }
        for op in ["drop", "EQ", "=", "", "eq;", "$eq"] {
            assert!(
                matches!(op.parse::<Op>(), Err(Error::InvalidFilter { .. })),
                "{op:?}"
            );
            cases += 1;
        }
        let wrong_types = [
            Filter::eq("age", "1"),
            Filter::gt("age", true),
            Filter::is_in("age", [json!(1), json!("2")]),
            Filter::eq("at", "tomorrow"),
            Filter::eq("at", 5),
            Filter::eq("on", 1),
            Filter::eq("id", 5),
            Filter::gt("version", "1"),
            Filter::like("age", "1%"),
        ];
        for filter in wrong_types {
            let err = store
                .find(
                    "safe",
                    &Query {
                        filter: Some(filter.clone()),
                        ..Query::default()
                    },
                )
                .await
                .unwrap_err();
            assert!(err.is_invalid_input(), "{filter:?}: {err}");
            cases += 1;
        }
        let malformed = [
            Filter::gt("a", json!(null)),
            Filter::eq("a", json!({"$gt": 1})),
            Filter::eq("a", json!([1])),
            Filter::field("a", Op::In, json!(1)),
            Filter::field("a", Op::Exists, json!(1)),
            Filter::like("a", json!(1)),
            Filter::like("a", "trailing\\"),
            Filter::contains("a", json!([1])),
            Filter::contains("id", "x"),
            Filter::eq("a", "x".repeat(5000)),
            Filter::all((0..201).map(|i| Filter::eq("a", i))),
            Filter::any_element("a", Filter::any_element("b", Filter::eq("", 1))),
            Filter::any_element("id", Filter::eq("", 1)),
            Filter::any_element("age", Filter::eq("", 1)),
            Filter::any_element("a", Filter::gt("", json!(null))),
        ];
        for filter in malformed {
            let err = store
                .find(
                    "safe",
                    &Query {
                        filter: Some(filter.clone()),
                        ..Query::default()
                    },
                )
                .await
                .unwrap_err();
            assert!(matches!(err, Error::InvalidFilter { .. }), "{err}");
            cases += 1;
        }
        let bad_queries = [
            Query {
                paging: Paging::Page {
                    page: 0,
                    per_page: 10,
                },
                ..Query::default()
            },
            Query {
                paging: Paging::Page {
                    page: 1,
                    per_page: 0,
                },
                ..Query::default()
            },
            Query {
                paging: Paging::Cursor {
                    after: None,
                    per_page: 1001,
                },
                ..Query::default()
            },
            Query {
                paging: Paging::Cursor {
                    after: Some("zz".into()),
                    per_page: 1,
                },
                ..Query::default()
            },
            Query {
                sort: (0..9).map(|_| Sort::asc("a")).collect(),
                ..Query::default()
            },
        ];
        for query in bad_queries {
            assert!(
                store
                    .find("safe", &query)
                    .await
                    .unwrap_err()
                    .is_invalid_input(),
                "{query:?}"
            );
            cases += 1;
        }
        let bad_documents = [
            json!([1]),
            json!("x"),
            json!({"a": "nul\u{0}"}),
            json!({"k\u{0}": 1}),
            json!({"a": u64::MAX}),
        ];
        for body in bad_documents {
            assert!(matches!(
                store.create("safe", body).await,
                Err(Error::InvalidDocument { .. })
            ));
            cases += 1;
        }
        let bad_specs = [
            CollectionSpec {
                indexes: vec![IndexSpec::new("x y", [("a", FieldType::String)])],
                references: vec![],
            },
            CollectionSpec {
                indexes: vec![IndexSpec::new("i", Vec::<(String, FieldType)>::new())],
                references: vec![],
            },
            CollectionSpec {
                indexes: vec![],
                references: vec![ReferenceSpec::new("id", "safe", OnDelete::Cascade)],
            },
            CollectionSpec {
                indexes: vec![],
                references: vec![ReferenceSpec::new("a", "bad name", OnDelete::Cascade)],
            },
            CollectionSpec {
                indexes: vec![],
                references: vec![ReferenceSpec::new("a.0", "safe", OnDelete::Cascade)],
            },
        ];
        for spec in bad_specs {
            assert!(
                store
                    .create_collection("other", spec)
                    .await
                    .unwrap_err()
                    .is_invalid_input()
            );
            cases += 1;
        }
        // The data is untouched.
        assert_eq!(store.count("safe", None).await?, 1);
        note(&format!(
            "conformance[{}]: hostile input {cases} cases, all refused",
            store.engine()
        ));
        Ok(())
    })
    .await;
}
