//! The data-driven conformance suite: every operator on every type (missing, null and mixed
//! types included), sorts with NULLs, pages and cursors, on each backend.

use std::collections::BTreeMap;

use litehouse_docs::{
    CollectionSpec, FieldType, Filter, IndexSpec, Op, Page, Paging, Query, Sort, Store,
};
use serde_json::{Value as Json, json};

use crate::eval::{Types, matches, sort_docs};
use crate::util::{TestResult, note, on_each_backend};

/// The documents every case runs over; `k` labels each one.
fn dataset() -> Vec<Json> {
    vec![
        json!({"k": "missing"}),
        json!({"k": "null", "v": null, "n": null}),
        json!({"k": "zero", "v": 0, "n": {"m": 0}}),
        json!({"k": "one", "v": 1, "n": {"m": 1}}),
        json!({"k": "one_f", "v": 1.0, "n": {"m": "1"}}),
        json!({"k": "neg", "v": -2.5, "n": {"m": -3}}),
        json!({"k": "ten", "v": 10, "n": {"m": 10}}),
        json!({"k": "big", "v": 12345678901.5_f64}),
        json!({"k": "s_1", "v": "1", "n": {"m": true}}),
        json!({"k": "s_10", "v": "10", "n": {"m": "x"}}),
        json!({"k": "s_abc", "v": "abc", "n": 5}),
        json!({"k": "s_Abc", "v": "Abc", "n": {"m": null}}),
        json!({"k": "s_empty", "v": ""}),
        json!({"k": "s_pct", "v": "50%_off"}),
        json!({"k": "s_utf", "v": "été", "n": {"m": "Été"}}),
        json!({"k": "s_star", "v": "a*c?[x]"}),
        json!({"k": "t", "v": true, "n": {"m": false}}),
        json!({"k": "f", "v": false, "n": {"m": [1]}}),
        json!({"k": "arr", "v": [1, "a", true, null], "n": {"m": {"deep": 1}}}),
        json!({"k": "arr2", "v": [2, 3, [1]]}),
        json!({"k": "arr_empty", "v": []}),
        json!({"k": "obj", "v": {"m": 1}}),
    ]
}

fn scalars() -> Vec<Json> {
    vec![
        json!(0),
        json!(1),
        json!(1.0),
        json!(-2.5),
        json!(10),
        json!(2),
        json!("1"),
        json!("10"),
        json!("abc"),
        json!("Abc"),
        json!(""),
        json!("été"),
        json!(true),
        json!(false),
    ]
}

/// Every generated filter case.
fn filter_cases() -> Vec<Filter> {
    let mut cases = Vec::new();
    for path in ["v", "n.m", "absent"] {
        for op in [Op::Eq, Op::Neq, Op::Gt, Op::Gte, Op::Lt, Op::Lte] {
            for value in scalars() {
                cases.push(Filter::field(path, op, value));
            }
        }
        cases.push(Filter::eq(path, Json::Null));
        cases.push(Filter::neq(path, Json::Null));
        for present in [true, false] {
            cases.push(Filter::exists(path, present));
        }
        for list in [
            json!([1, "1"]),
            json!([0, true, null]),
            json!([]),
            json!(["abc", "Abc", 10.0]),
            json!([null]),
        ] {
            cases.push(Filter::field(path, Op::In, list.clone()));
            cases.push(Filter::field(path, Op::Nin, list));
        }
        for pattern in [
            "a%", "A%", "%b%", "_bc", "", "%", "1%", "%\\%%", "\\_%", "a*c?[x]", "a\\*%", "_t_",
            "ÉTÉ", "%É",
        ] {
            cases.push(Filter::like(path, pattern));
            cases.push(Filter::ilike(path, pattern));
        }
    }
    for element in [
        json!(1),
        json!("a"),
        json!(true),
        json!(false),
        json!(null),
        json!(2),
        json!("1"),
        json!(1.0),
    ] {
        cases.push(Filter::contains("v", element.clone()));
        cases.push(Filter::negate(Filter::contains("v", element)));
    }
    cases.extend([
        Filter::all([]),
        Filter::any([]),
        Filter::negate(Filter::all([])),
        Filter::negate(Filter::any([])),
        Filter::all([Filter::gte("v", 0), Filter::lt("v", 10)]),
        Filter::any([
            Filter::eq("v", "abc"),
            Filter::eq("v", true),
            Filter::exists("v", false),
        ]),
        Filter::negate(Filter::any([Filter::gt("v", 1), Filter::like("v", "a%")])),
        Filter::negate(Filter::all([Filter::gt("v", 0), Filter::eq("n.m", 1)])),
        Filter::negate(Filter::negate(Filter::eq("v", 1))),
        Filter::all([
            Filter::neq("v", 1),
            Filter::neq("n.m", 1),
            Filter::exists("n", true),
        ]),
        Filter::eq("k", "ten"),
        Filter::gt("version", 0),
        Filter::lt("version", 1),
        Filter::like("id", "%-%"),
        Filter::gte("createdAt", "2000-01-01T00:00:00Z"),
        Filter::exists("id", false),
        Filter::eq("id", "no-such-id"),
        Filter::neq("n", 5),
        Filter::eq("n", 5),
    ]);
    cases
}

async fn load(
    store: &Store,
    collection: &str,
    spec: CollectionSpec,
) -> Result<Vec<Json>, litehouse_docs::Error> {
    store.create_collection(collection, spec).await?;
    let created = store.create_many(collection, dataset()).await?;
    Ok(created.iter().map(|doc| doc.to_json()).collect())
}

async fn all_ids(
    store: &Store,
    collection: &str,
    filter: Option<Filter>,
    sort: Vec<Sort>,
) -> Result<Vec<String>, litehouse_docs::Error> {
    let query = Query {
        filter,
        sort,
        paging: Paging::Page {
            page: 1,
            per_page: 1000,
        },
        count: true,
    };
    let page = store.find(collection, &query).await?;
    assert_eq!(
        page.total_items,
        Some(page.items.len() as u64),
        "count agrees with items"
    );
    Ok(page.items.into_iter().map(|doc| doc.id).collect())
}

fn labels(docs: &[Json], ids: &[String]) -> Vec<String> {
    let by_id: BTreeMap<&str, &str> = docs
        .iter()
        .map(|doc| (doc["id"].as_str().unwrap(), doc["k"].as_str().unwrap()))
        .collect();
    ids.iter()
        .map(|id| by_id.get(id.as_str()).copied().unwrap_or("?").to_owned())
        .collect()
}

fn expected(docs: &[Json], filter: &Filter, sort: &[Sort], types: &Types) -> Vec<String> {
    let mut hits: Vec<Json> = docs
        .iter()
        .filter(|doc| matches(doc, filter))
        .cloned()
        .collect();
    sort_docs(&mut hits, sort, types);
    hits.iter()
        .map(|doc| doc["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Runs every filter of `cases` (with `sort`) on the backend and through the in-memory
/// evaluator, and fails listing every case where the two disagree.
async fn check_against_evaluator(
    store: &Store,
    collection: &str,
    docs: &[Json],
    cases: &[Filter],
    sort: &[Sort],
    types: &Types,
    what: &str,
) -> TestResult {
    let mut failures = Vec::new();
    for filter in cases {
        let got = all_ids(store, collection, Some(filter.clone()), sort.to_vec()).await?;
        let want = expected(docs, filter, sort, types);
        if got != want {
            failures.push(format!(
                "{filter:?}\n   got  {:?}\n   want {:?}",
                labels(docs, &got),
                labels(docs, &want)
            ));
        }
    }
    note(&format!(
        "conformance[{}]: {what} {} cases, {} passed",
        store.engine(),
        cases.len(),
        cases.len() - failures.len()
    ));
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_operator_on_every_type() {
    on_each_backend(|store| async move {
        let docs = load(&store, "things", CollectionSpec::default()).await?;
        let cases = filter_cases();
        check_against_evaluator(
            &store,
            "things",
            &docs,
            &cases,
            &[],
            &Types::new(),
            "filters",
        )
        .await
    })
    .await;
}

/// Hand-written expectations, which also keep the evaluator honest.
#[tokio::test(flavor = "multi_thread")]
async fn explicit_expectations() {
    on_each_backend(|store| async move {
        let docs = load(&store, "things", CollectionSpec::default()).await?;
        let check_cases: Vec<(Filter, &[&str])> = vec![
            (Filter::eq("v", 1), &["one", "one_f"]),
            (Filter::eq("v", "1"), &["s_1"]),
            (Filter::eq("v", true), &["t"]),
            (Filter::eq("v", Json::Null), &["null"]),
            (Filter::gt("v", 1), &["ten", "big"]),
            (Filter::lte("v", 0), &["zero", "neg"]),
            (
                Filter::gt("v", "1"),
                &["s_10", "s_abc", "s_Abc", "s_pct", "s_utf", "s_star"],
            ),
            (Filter::lt("v", "A"), &["s_1", "s_10", "s_empty", "s_pct"]),
            (Filter::gt("v", false), &["t"]),
            (Filter::exists("v", false), &["missing"]),
            (Filter::like("v", "a%"), &["s_abc", "s_star"]),
            (Filter::ilike("v", "a%"), &["s_abc", "s_Abc", "s_star"]),
            (Filter::like("v", "%\\%\\_%"), &["s_pct"]),
            (Filter::like("v", "a*c?[x]"), &["s_star"]),
            (Filter::ilike("v", "ÉTÉ"), &[]),
            (Filter::like("v", "_t_"), &["s_utf"]),
            (Filter::contains("v", 1), &["arr"]),
            (Filter::contains("v", Json::Null), &["arr"]),
            (Filter::contains("v", 3), &["arr2"]),
            (
                Filter::is_in("v", [json!(1), json!("abc")]),
                &["one", "one_f", "s_abc"],
            ),
            (Filter::eq("n.m", 1), &["one"]),
            (Filter::eq("n.m", Json::Null), &["s_Abc"]),
            (
                Filter::exists("n.m", true),
                &[
                    "zero", "one", "one_f", "neg", "ten", "s_1", "s_10", "s_Abc", "s_utf", "t",
                    "f", "arr",
                ],
            ),
        ];
        for (filter, want) in &check_cases {
            let got = all_ids(&store, "things", Some(filter.clone()), vec![]).await?;
            let mut got = labels(&docs, &got);
            let mut want: Vec<String> = want.iter().map(|label| (*label).to_owned()).collect();
            got.sort();
            want.sort();
            assert_eq!(got, want, "{filter:?}");
            // neq / not is the exact complement.
            let complement = all_ids(
                &store,
                "things",
                Some(Filter::negate(filter.clone())),
                vec![],
            )
            .await?;
            assert_eq!(complement.len() + got.len(), docs.len(), "not {filter:?}");
        }
        note(&format!(
            "conformance[{}]: explicit {} cases (x2 with negation), all passed",
            store.engine(),
            check_cases.len()
        ));
        Ok(())
    })
    .await;
}

fn sort_cases() -> Vec<Vec<Sort>> {
    vec![
        vec![],
        vec![Sort::asc("v")],
        vec![Sort::desc("v")],
        vec![Sort::asc("n.m"), Sort::desc("v")],
        vec![Sort::desc("n.m"), Sort::asc("k")],
        vec![Sort::asc("absent")],
        vec![Sort::desc("id")],
        vec![Sort::asc("version"), Sort::desc("k")],
        vec![Sort::asc("num")],
        vec![Sort::desc("num")],
        vec![Sort::asc("str"), Sort::desc("num")],
        vec![Sort::desc("flag"), Sort::asc("str")],
        vec![Sort::asc("at")],
    ]
}

fn typed_spec() -> CollectionSpec {
    CollectionSpec {
        indexes: vec![
            IndexSpec::new("by_num", [("num", FieldType::Number)]),
            IndexSpec::new(
                "by_str",
                [("str", FieldType::String), ("flag", FieldType::Bool)],
            ),
            IndexSpec::new("by_at", [("at", FieldType::Datetime)]),
        ],
        references: vec![],
    }
}

fn typed_types() -> Types {
    Types::from([
        ("num".to_owned(), FieldType::Number),
        ("str".to_owned(), FieldType::String),
        ("flag".to_owned(), FieldType::Bool),
        ("at".to_owned(), FieldType::Datetime),
    ])
}

/// Adds the declared fields, mistyped in some documents, to the dataset.
fn typed_dataset() -> Vec<Json> {
    dataset()
        .into_iter()
        .enumerate()
        .map(|(i, mut doc)| {
            let object = doc.as_object_mut().unwrap();
            let values = [
                json!(i % 4),
                json!(format!("s{}", i % 3)),
                json!("7"),
                json!(null),
            ];
            object.insert("num".into(), values[i % 4].clone());
            if i % 5 != 0 {
                object.insert("str".into(), json!(["b", "a", "B", "ä", "A"][i % 5]));
            }
            object.insert(
                "flag".into(),
                if i % 3 == 0 {
                    json!(1)
                } else {
                    json!(i % 2 == 0)
                },
            );
            if i % 2 == 0 {
                object.insert(
                    "at".into(),
                    json!(format!("2026-01-{:02}T00:00:00Z", 28 - i)),
                );
            }
            doc
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sorts_pages_and_cursors() {
    on_each_backend(|store| async move {
        store.create_collection("typed", typed_spec()).await?;
        let docs: Vec<Json> = store
            .create_many("typed", typed_dataset())
            .await?
            .iter()
            .map(|doc| doc.to_json())
            .collect();
        let types = typed_types();
        let mut cases = 0;
        for sort in sort_cases() {
            let want = expected(&docs, &Filter::all([]), &sort, &types);
            let got = all_ids(&store, "typed", None, sort.clone()).await?;
            assert_eq!(labels(&docs, &got), labels(&docs, &want), "sort {sort:?}");
            for per_page in [1, 3, 7] {
                assert_eq!(
                    paged(&store, "typed", &sort, per_page).await?,
                    want,
                    "pages of {per_page}, {sort:?}"
                );
                assert_eq!(
                    cursored(&store, "typed", &sort, per_page).await?,
                    want,
                    "cursor of {per_page}, {sort:?}"
                );
                cases += 2;
            }
            cases += 1;
        }
        // Typed filters on declared paths use the declared type.
        let typed_filters = [
            Filter::gte("num", 2),
            Filter::is_in("num", [0, 3]),
            Filter::eq("flag", true),
            Filter::neq("flag", true),
            Filter::gt("str", "a"),
            Filter::like("str", "%"),
            Filter::lt("at", "2026-01-20T00:00:00Z"),
            Filter::all([
                Filter::gte("at", "2026-01-10T00:00:00Z"),
                Filter::eq("str", "a"),
            ]),
        ];
        for filter in &typed_filters {
            let want = expected(&docs, filter, &[Sort::asc("num")], &types);
            let got = all_ids(
                &store,
                "typed",
                Some(filter.clone()),
                vec![Sort::asc("num")],
            )
            .await?;
            assert_eq!(labels(&docs, &got), labels(&docs, &want), "{filter:?}");
            cases += 1;
        }
        note(&format!(
            "conformance[{}]: sorts, pages and typed filters {cases} cases, all passed",
            store.engine()
        ));
        Ok(())
    })
    .await;
}

async fn paged(
    store: &Store,
    collection: &str,
    sort: &[Sort],
    per_page: u64,
) -> Result<Vec<String>, litehouse_docs::Error> {
    let mut ids = Vec::new();
    for page in 1.. {
        let query = Query {
            filter: None,
            sort: sort.to_vec(),
            paging: Paging::Page { page, per_page },
            count: page == 1,
        };
        let result: Page = store.find(collection, &query).await?;
        if page == 1 {
            let total = result.total_items.unwrap();
            assert_eq!(result.total_pages, Some(total.div_ceil(per_page)));
        }
        let done = result.items.is_empty();
        ids.extend(result.items.into_iter().map(|doc| doc.id));
        if done {
            break;
        }
    }
    Ok(ids)
}

async fn cursored(
    store: &Store,
    collection: &str,
    sort: &[Sort],
    per_page: u64,
) -> Result<Vec<String>, litehouse_docs::Error> {
    let mut ids = Vec::new();
    let mut after = None;
    loop {
        let query = Query {
            filter: None,
            sort: sort.to_vec(),
            paging: Paging::Cursor { after, per_page },
            count: false,
        };
        let page = store.find(collection, &query).await?;
        assert!(page.total_items.is_none());
        ids.extend(page.items.into_iter().map(|doc| doc.id));
        match page.next_cursor {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    Ok(ids)
}

#[tokio::test(flavor = "multi_thread")]
async fn cursors_are_stable_across_inserts() {
    on_each_backend(|store| async move {
        store.create_collection("typed", typed_spec()).await?;
        store.create_many("typed", typed_dataset()).await?;
        let types = typed_types();
        for sort in [
            vec![Sort::asc("num")],
            vec![Sort::desc("v")],
            vec![Sort::asc("str"), Sort::desc("at")],
        ] {
            let first = store
                .find(
                    "typed",
                    &Query {
                        sort: sort.clone(),
                        paging: Paging::Cursor {
                            after: None,
                            per_page: 5,
                        },
                        count: false,
                        filter: None,
                    },
                )
                .await?;
            let cursor = first.next_cursor.clone().expect("more pages");
            // New documents land before and after the cursor position.
            store
                .create_many(
                    "typed",
                    vec![
                        json!({"num": -1, "v": -100, "str": "0"}),
                        json!({"num": 99, "v": "zzz", "str": "zz"}),
                        json!({"k": "bare"}),
                    ],
                )
                .await?;
            let everything: Vec<Json> = store
                .find(
                    "typed",
                    &Query {
                        sort: sort.clone(),
                        paging: Paging::Page {
                            page: 1,
                            per_page: 1000,
                        },
                        count: false,
                        filter: None,
                    },
                )
                .await?
                .items
                .iter()
                .map(|doc| doc.to_json())
                .collect();
            let mut want: Vec<Json> = everything.clone();
            sort_docs(&mut want, &sort, &types);
            let want_ids: Vec<String> = want
                .iter()
                .map(|doc| doc["id"].as_str().unwrap().to_owned())
                .collect();
            let last_seen = first.items.last().unwrap().id.clone();
            let position = want_ids.iter().position(|id| *id == last_seen).unwrap();
            let mut rest = Vec::new();
            let mut after = Some(cursor);
            while let Some(cursor) = after {
                let page = store
                    .find(
                        "typed",
                        &Query {
                            sort: sort.clone(),
                            paging: Paging::Cursor {
                                after: Some(cursor),
                                per_page: 4,
                            },
                            count: false,
                            filter: None,
                        },
                    )
                    .await?;
                rest.extend(page.items.into_iter().map(|doc| doc.id));
                after = page.next_cursor;
            }
            assert_eq!(rest, want_ids[position + 1..].to_vec(), "{sort:?}");
        }
        // A cursor belongs to its sort order.
        let page = store
            .find(
                "typed",
                &Query {
                    sort: vec![Sort::asc("num")],
                    paging: Paging::Cursor {
                        after: None,
                        per_page: 2,
                    },
                    ..Query::default()
                },
            )
            .await?;
        let wrong = Query {
            sort: vec![Sort::desc("num")],
            paging: Paging::Cursor {
                after: page.next_cursor,
                per_page: 2,
            },
            ..Query::default()
        };
        assert!(matches!(
            store.find("typed", &wrong).await,
            Err(litehouse_docs::Error::InvalidCursor { .. })
        ));
        let forged = Query {
            paging: Paging::Cursor {
                after: Some("7b7d".into()),
                per_page: 2,
            },
            ..Query::default()
        };
        assert!(matches!(
            store.find("typed", &forged).await,
            Err(litehouse_docs::Error::InvalidCursor { .. })
        ));
        Ok(())
    })
    .await;
}

/// Every operator on each declared type, through the typed indexes.
fn typed_filter_cases() -> Vec<Filter> {
    let values: [(&str, Vec<Json>); 4] = [
        (
            "num",
            vec![
                json!(0),
                json!(1),
                json!(2.5),
                json!(3),
                json!(-1),
                json!(7),
            ],
        ),
        (
            "str",
            vec![
                json!("a"),
                json!("b"),
                json!("B"),
                json!("ä"),
                json!(""),
                json!("7"),
            ],
        ),
        ("flag", vec![json!(true), json!(false)]),
        (
            "at",
            vec![
                json!("2026-01-10T00:00:00Z"),
                json!("2026-01-20T00:00:00Z"),
                json!("2026-01-28T00:00:00Z"),
                json!("2025-12-31T23:59:59.999Z"),
            ],
        ),
    ];
    let mut cases = Vec::new();
    for (path, values) in values {
        for op in [Op::Eq, Op::Neq, Op::Gt, Op::Gte, Op::Lt, Op::Lte] {
            for value in &values {
                cases.push(Filter::field(path, op, value.clone()));
            }
        }
        cases.push(Filter::is_in(path, values.iter().take(2).cloned()));
        cases.push(Filter::not_in(path, values.iter().take(2).cloned()));
        cases.push(Filter::is_in(path, [Json::Null]));
        cases.push(Filter::eq(path, Json::Null));
        cases.push(Filter::neq(path, Json::Null));
        cases.push(Filter::exists(path, true));
        cases.push(Filter::exists(path, false));
    }
    for pattern in ["a%", "A%", "_", "%"] {
        cases.push(Filter::like("str", pattern));
        cases.push(Filter::ilike("str", pattern));
    }
    cases.push(Filter::like("at", "2026-01-2%"));
    cases
}

#[tokio::test(flavor = "multi_thread")]
async fn every_operator_on_declared_types() {
    on_each_backend(|store| async move {
        store.create_collection("typed", typed_spec()).await?;
        let docs: Vec<Json> = store
            .create_many("typed", typed_dataset())
            .await?
            .iter()
            .map(|doc| doc.to_json())
            .collect();
        let cases = typed_filter_cases();
        let sort = [Sort::desc("str"), Sort::asc("num")];
        let types = typed_types();
        check_against_evaluator(
            &store,
            "typed",
            &docs,
            &cases,
            &sort,
            &types,
            "declared types",
        )
        .await
    })
    .await;
}

/// Documents with arrays of objects, of scalars and of arrays, and look-alikes (an object
/// with a key `"0"`, scalars, empty arrays) that array paths must not confuse with them.
fn array_dataset() -> Vec<Json> {
    vec![
        json!({"k": "none"}),
        json!({"k": "two_items", "items": [{"sku": "a1", "qty": 2}, {"sku": "b2", "qty": 5, "id": "x"}],
               "tags": ["red", "blue"], "matrix": [[1, 2], [3, 4]]}),
        json!({"k": "one_item", "items": [{"sku": "b2", "qty": 1}], "tags": ["blue"], "matrix": [[5]]}),
        json!({"k": "mixed", "items": [{"sku": 7}, "a1", null, {"sku": null}, [{"sku": "a1"}]],
               "tags": [1, "1", true, null, "Red"], "matrix": [[], [1, "2"], 3]}),
        json!({"k": "empty", "items": [], "tags": [], "matrix": []}),
        json!({"k": "key_zero", "items": {"0": {"sku": "a1"}}, "tags": {"0": "red"}, "matrix": {"0": [1]}}),
        json!({"k": "scalar", "items": "a1", "tags": "red", "matrix": 1}),
        json!({"k": "nulls", "items": null, "tags": [null], "matrix": [null, [null]]}),
        json!({"k": "deep", "items": [{"sku": "c3", "qty": 10, "sub": [{"n": 1}, {"n": 2}]}],
               "tags": ["green", "red", "red"], "matrix": [[1], [2, [3]]]}),
    ]
}

fn array_filter_cases() -> Vec<Filter> {
    let element = |path: &str, filter: Filter| Filter::any_element(path, filter);
    let mut cases = Vec::new();
    for path in [
        "items.0.sku",
        "items.1.sku",
        "items.4.0.sku",
        "tags.0",
        "tags.4",
        "matrix.0.1",
        "matrix.1.1",
    ] {
        for value in [
            json!("a1"),
            json!("b2"),
            json!("red"),
            json!(1),
            json!(2),
            json!("2"),
        ] {
            cases.push(Filter::eq(path, value.clone()));
            cases.push(Filter::neq(path, value.clone()));
            cases.push(Filter::gt(path, value));
        }
        cases.push(Filter::eq(path, json!(null)));
        cases.push(Filter::exists(path, true));
        cases.push(Filter::exists(path, false));
        cases.push(Filter::like(path, "%1"));
        cases.push(Filter::is_in(path, [json!("a1"), json!(1), json!(null)]));
    }
    cases.extend([
        Filter::gte("items.0.qty", 2),
        Filter::lt("items.1.qty", 10),
        Filter::eq("items.1.id", "x"),
        Filter::eq("items.0.sub.1.n", 2),
        Filter::contains("matrix.0", 1),
        Filter::contains("matrix.1", "2"),
        element("items", Filter::eq("sku", "a1")),
        element("items", Filter::eq("sku", "b2")),
        element("items", Filter::eq("", "a1")),
        element("items", Filter::eq("sku", json!(null))),
        element("items", Filter::eq("", json!(null))),
        element("items", Filter::exists("sku", true)),
        element("items", Filter::exists("sku", false)),
        element("items", Filter::neq("sku", "a1")),
        element("items", Filter::negate(Filter::eq("sku", "a1"))),
        element(
            "items",
            Filter::all([Filter::eq("sku", "b2"), Filter::gte("qty", 5)]),
        ),
        element(
            "items",
            Filter::all([Filter::eq("sku", "b2"), Filter::lt("qty", 2)]),
        ),
        element(
            "items",
            Filter::any([Filter::eq("sku", 7), Filter::gt("qty", 9)]),
        ),
        element("items", Filter::eq("id", "x")),
        element("items", Filter::eq("0.sku", "a1")),
        element("items", Filter::eq("sub.1.n", 2)),
        element("items", Filter::all([])),
        element("items", Filter::any([])),
        element("tags", Filter::eq("", "red")),
        element("tags", Filter::eq("", 1)),
        element("tags", Filter::eq("", true)),
        element("tags", Filter::eq("", json!(null))),
        element("tags", Filter::neq("", "red")),
        element("tags", Filter::like("", "r%")),
        element("tags", Filter::ilike("", "r%")),
        element("tags", Filter::gt("", "green")),
        element("tags", Filter::is_in("", [json!("blue"), json!(1)])),
        element("tags", Filter::not_in("", [json!("blue"), json!("red")])),
        element("tags", Filter::exists("", true)),
        element("matrix", Filter::contains("", 1)),
        element("matrix", Filter::contains("", json!(null))),
        element("matrix", Filter::eq("0", 3)),
        element("matrix", Filter::eq("1", "2")),
        element("matrix", Filter::exists("0", false)),
        element("matrix", Filter::eq("", 3)),
        element("matrix", Filter::gte("1.0", 3)),
        element("none", Filter::all([])),
        element("k", Filter::all([])),
    ]);
    let negated: Vec<Filter> = cases.iter().cloned().map(Filter::negate).collect();
    cases.extend(negated);
    cases
}

async fn load_docs(
    store: &Store,
    collection: &str,
    spec: CollectionSpec,
    docs: Vec<Json>,
) -> Result<Vec<Json>, litehouse_docs::Error> {
    store.create_collection(collection, spec).await?;
    let created = store.create_many(collection, docs).await?;
    Ok(created.iter().map(|doc| doc.to_json()).collect())
}

fn array_sorts() -> Vec<Vec<Sort>> {
    vec![
        vec![Sort::asc("items.0.sku")],
        vec![Sort::desc("items.0.sku")],
        vec![Sort::asc("tags.0"), Sort::desc("matrix.0.0")],
        vec![Sort::desc("tags.1"), Sort::asc("items.0.qty")],
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn array_paths_and_any_element() {
    on_each_backend(|store| async move {
        let docs = load_docs(&store, "orders", CollectionSpec::default(), array_dataset()).await?;
        let cases = array_filter_cases();
        check_against_evaluator(
            &store,
            "orders",
            &docs,
            &cases,
            &[],
            &Types::new(),
            "array filters",
        )
        .await?;
        for sort in array_sorts() {
            let filters = [Filter::all([]), Filter::exists("items", true)];
            check_against_evaluator(
                &store,
                "orders",
                &docs,
                &filters,
                &sort,
                &Types::new(),
                "array sorts",
            )
            .await?;
        }
        Ok(())
    })
    .await;
}

/// Hand-written answers for array paths, which keep the evaluator honest too.
#[tokio::test(flavor = "multi_thread")]
async fn array_paths_explicit() {
    on_each_backend(|store| async move {
        let docs = load_docs(&store, "orders", CollectionSpec::default(), array_dataset()).await?;
        let element = |path: &str, filter: Filter| Filter::any_element(path, filter);
        let cases: Vec<(Filter, &[&str])> = vec![
            (Filter::eq("items.0.sku", "a1"), &["two_items"]),
            (Filter::eq("items.1.sku", "b2"), &["two_items"]),
            (Filter::eq("tags.0", "red"), &["two_items"]),
            (Filter::eq("matrix.1.1", 4), &["two_items"]),
            (
                element("items", Filter::eq("sku", "b2")),
                &["two_items", "one_item"],
            ),
            (element("items", Filter::eq("", "a1")), &["mixed"]),
            (
                element("tags", Filter::eq("", "red")),
                &["two_items", "deep"],
            ),
            (
                element("tags", Filter::eq("", json!(null))),
                &["mixed", "nulls"],
            ),
            (
                element("matrix", Filter::contains("", 1)),
                &["two_items", "mixed", "deep"],
            ),
            (element("items", Filter::eq("id", "x")), &["two_items"]),
            (element("items", Filter::eq("sub.1.n", 2)), &["deep"]),
        ];
        for (filter, want) in cases {
            let got = all_ids(&store, "orders", Some(filter.clone()), vec![Sort::asc("k")]).await?;
            let got = labels(&docs, &got);
            let mut want: Vec<String> = want.iter().map(|k| (*k).to_owned()).collect();
            want.sort();
            assert_eq!(got, want, "{filter:?} on {}", store.engine());
            let in_memory: Vec<&str> = docs
                .iter()
                .filter(|doc| filter.matches(doc))
                .map(|doc| doc["k"].as_str().unwrap())
                .collect();
            assert_eq!(in_memory.len(), want.len(), "{filter:?} in memory");
        }
        Ok(())
    })
    .await;
}

/// A declared index on an array path: typed filters and sorts, identical answers.
#[tokio::test(flavor = "multi_thread")]
async fn declared_array_paths() {
    on_each_backend(|store| async move {
        let spec = CollectionSpec {
            indexes: vec![
                IndexSpec::new("by_first_sku", [("items.0.sku", FieldType::String)]),
                IndexSpec::new("by_first_cell", [("matrix.0.0", FieldType::Number)]),
            ],
            ..CollectionSpec::default()
        };
        let docs = load_docs(&store, "orders", spec, array_dataset()).await?;
        let types = Types::from([
            ("items.0.sku".to_owned(), FieldType::String),
            ("matrix.0.0".to_owned(), FieldType::Number),
        ]);
        let cases = vec![
            Filter::eq("items.0.sku", "a1"),
            Filter::gte("items.0.sku", "b"),
            Filter::neq("items.0.sku", "a1"),
            Filter::eq("items.0.sku", json!(null)),
            Filter::lt("matrix.0.0", 5),
            Filter::is_in("matrix.0.0", [1, 5]),
        ];
        for sort in [
            vec![Sort::asc("items.0.sku")],
            vec![Sort::desc("matrix.0.0")],
        ] {
            check_against_evaluator(
                &store,
                "orders",
                &docs,
                &cases,
                &sort,
                &types,
                "declared array paths",
            )
            .await?;
        }
        let refused = store
            .find(
                "orders",
                &Query {
                    filter: Some(Filter::eq("items.0.sku", 1)),
                    ..Query::default()
                },
            )
            .await
            .unwrap_err();
        assert!(refused.is_invalid_input(), "{refused}");
        Ok(())
    })
    .await;
}
