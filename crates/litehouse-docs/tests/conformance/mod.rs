//! The data-driven conformance suite: every operator on every type (missing, null and mixed
//! types included), sorts with NULLs, pages and cursors, on each backend.

//!
//! - this file: the shared dataset and harness, and filters on undeclared paths;
//! - `typed.rs`: filters on declared (indexed, typed) paths;
//! - `sorts.rs`: sorts with NULLs, numbered pages and cursors;
//! - `arrays.rs`: array index paths and any-element filters.

mod arrays;
mod sorts;
mod typed;

use std::collections::BTreeMap;

use litehouse_docs::{
    CollectionSpec, FieldType, Filter, IndexSpec, Op, Page, Paging, Query, Sort, Store,
};
use serde_json::{Value as Json, json};

use crate::eval::{Types, matches, sort_docs};
use crate::util::{TestResult, note, on_each_backend};

/// The documents every case runs over; `k` labels each one.
pub(super) fn dataset() -> Vec<Json> {
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

pub(super) fn scalars() -> Vec<Json> {
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
pub(super) fn filter_cases() -> Vec<Filter> {
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

pub(super) async fn load(
    store: &Store,
    collection: &str,
    spec: CollectionSpec,
) -> Result<Vec<Json>, litehouse_docs::Error> {
    store.create_collection(collection, spec).await?;
    let created = store.create_many(collection, dataset()).await?;
    Ok(created.iter().map(|doc| doc.to_json()).collect())
}

pub(super) async fn all_ids(
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

pub(super) fn labels(docs: &[Json], ids: &[String]) -> Vec<String> {
    let by_id: BTreeMap<&str, &str> = docs
        .iter()
        .map(|doc| (doc["id"].as_str().unwrap(), doc["k"].as_str().unwrap()))
        .collect();
    ids.iter()
        .map(|id| by_id.get(id.as_str()).copied().unwrap_or("?").to_owned())
        .collect()
}

pub(super) fn expected(
    docs: &[Json],
    filter: &Filter,
    sort: &[Sort],
    types: &Types,
) -> Vec<String> {
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
pub(super) async fn check_against_evaluator(
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
