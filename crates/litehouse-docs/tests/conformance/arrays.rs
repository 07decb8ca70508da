//! Array index paths (`items.0.sku`) and any-element filters, against the evaluator and by hand.

use super::*;

/// Documents with arrays of objects, of scalars and of arrays, and look-alikes (an object
/// with a key `"0"`, scalars, empty arrays) that array paths must not confuse with them.
pub(super) fn array_dataset() -> Vec<Json> {
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

pub(super) fn array_filter_cases() -> Vec<Filter> {
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

pub(super) async fn load_docs(
    store: &Store,
    collection: &str,
    spec: CollectionSpec,
    docs: Vec<Json>,
) -> Result<Vec<Json>, litehouse_docs::Error> {
    store.create_collection(collection, spec).await?;
    let created = store.create_many(collection, docs).await?;
    Ok(created.iter().map(|doc| doc.to_json()).collect())
}

pub(super) fn array_sorts() -> Vec<Vec<Sort>> {
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
