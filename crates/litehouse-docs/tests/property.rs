//! Property test: random documents, filters and sorts give the in-memory evaluator's answer
//! on each backend.

use litehouse_docs::{CollectionSpec, Filter, Op, Paging, Query, Sort, Store};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value as Json, json};

use crate::eval::{Types, matches, sort_docs};
use crate::util::{drop_schema, postgres_store, postgres_url, sqlite_store};

fn scalar() -> impl Strategy<Value = Json> {
    prop_oneof![
        Just(Json::Null),
        (-3i64..4).prop_map(Json::from),
        prop_oneof![Just(0.5), Just(-1.5), Just(2.0)].prop_map(Json::from),
        prop_oneof![
            Just("a"),
            Just("B"),
            Just("ab"),
            Just("1"),
            Just(""),
            Just("é")
        ]
        .prop_map(Json::from),
        any::<bool>().prop_map(Json::from),
    ]
}

fn field_value() -> impl Strategy<Value = Option<Json>> {
    prop_oneof![
        3 => scalar().prop_map(Some),
        1 => Just(None),
        1 => prop::collection::vec(scalar(), 0..3).prop_map(|items| Some(Json::Array(items))),
        1 => scalar().prop_map(|inner| Some(json!({"c": inner}))),
        1 => prop::collection::vec(scalar().prop_map(|inner| json!({"c": inner})), 0..3)
            .prop_map(|items| Some(Json::Array(items))),
    ]
}

fn document() -> impl Strategy<Value = Json> {
    (field_value(), field_value()).prop_map(|(a, b)| {
        let mut object = serde_json::Map::new();
        if let Some(a) = a {
            object.insert("a".into(), a);
        }
        if let Some(b) = b {
            object.insert("b".into(), b);
        }
        Json::Object(object)
    })
}

/// Paths into documents: keys, nested keys and array elements.
const PATHS: [&str; 6] = ["a", "b", "b.c", "a.0", "a.1", "b.0.c"];
/// Paths relative to an array element.
const ELEMENT_PATHS: [&str; 3] = ["", "c", "0"];

fn leaf() -> impl Strategy<Value = Filter> {
    prop_oneof![
        6 => comparison(&PATHS),
        1 => (prop_oneof![Just("a"), Just("b")], comparison(&ELEMENT_PATHS))
            .prop_map(|(path, inner)| Filter::any_element(path, inner)),
    ]
}

fn comparison(paths: &'static [&'static str]) -> impl Strategy<Value = Filter> {
    let path = prop::sample::select(paths);
    let op = prop_oneof![
        Just(Op::Eq),
        Just(Op::Neq),
        Just(Op::Gt),
        Just(Op::Gte),
        Just(Op::Lt),
        Just(Op::Lte),
        Just(Op::Contains)
    ];
    prop_oneof![
        4 => (path.clone(), op, scalar()).prop_filter_map("null only with eq/neq/contains", |(path, op, value)| {
            let ordered = matches!(op, Op::Gt | Op::Gte | Op::Lt | Op::Lte);
            (!(ordered && value.is_null())).then(|| Filter::field(path, op, value))
        }),
        1 => (path.clone(), prop::collection::vec(scalar(), 0..3), any::<bool>())
            .prop_map(|(path, values, negated)| Filter::field(path, if negated { Op::Nin } else { Op::In }, Json::Array(values))),
        1 => (path.clone(), any::<bool>()).prop_map(|(path, present)| Filter::exists(path, present)),
        1 => (path, prop_oneof![Just("a%"), Just("%b"), Just("_"), Just("A%")], any::<bool>())
            .prop_map(|(path, pattern, fold)| Filter::field(path, if fold { Op::Ilike } else { Op::Like }, pattern)),
    ]
}

fn filter() -> impl Strategy<Value = Filter> {
    leaf().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Filter::And),
            prop::collection::vec(inner.clone(), 0..3).prop_map(Filter::Or),
            inner.prop_map(Filter::negate),
        ]
    })
}

fn sort() -> impl Strategy<Value = Vec<Sort>> {
    prop::collection::vec(
        (prop::sample::select(&PATHS[..]), any::<bool>()).prop_map(|(path, descending)| {
            if descending {
                Sort::desc(path)
            } else {
                Sort::asc(path)
            }
        }),
        0..3,
    )
}

fn case() -> impl Strategy<Value = (Vec<Json>, Vec<(Filter, Vec<Sort>)>)> {
    (
        prop::collection::vec(document(), 0..16),
        prop::collection::vec((filter(), sort()), 1..6),
    )
}

async fn check_case(
    store: &Store,
    collection: &str,
    docs: &[Json],
    queries: &[(Filter, Vec<Sort>)],
) -> Result<(), String> {
    let fail = |err: litehouse_docs::Error| err.to_string();
    store
        .create_collection(collection, CollectionSpec::default())
        .await
        .map_err(fail)?;
    let stored: Vec<Json> = store
        .create_many(collection, docs.to_vec())
        .await
        .map_err(fail)?
        .iter()
        .map(|doc| doc.to_json())
        .collect();
    let mut outcome = Ok(());
    for (filter, sort) in queries {
        let query = Query {
            filter: Some(filter.clone()),
            sort: sort.clone(),
            paging: Paging::Cursor {
                after: None,
                per_page: 1000,
            },
            count: true,
        };
        let page = store.find(collection, &query).await.map_err(fail)?;
        let got: Vec<String> = page.items.iter().map(|doc| doc.id.clone()).collect();
        let mut want: Vec<Json> = stored
            .iter()
            .filter(|doc| matches(doc, filter))
            .cloned()
            .collect();
        sort_docs(&mut want, sort, &Types::new());
        let want: Vec<String> = want
            .iter()
            .map(|doc| doc["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        if got != want || page.total_items != Some(want.len() as u64) {
            outcome = Err(format!(
                "{}: filter {filter:?} sort {sort:?}\n got {got:?}\nwant {want:?}\ndocs {stored:#?}",
                store.engine()
            ));
            break;
        }
    }
    store.drop_collection(collection).await.map_err(fail)?;
    outcome
}

fn run_property(store: &Store, runtime: &tokio::runtime::Runtime, cases: u32) {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let counter = std::cell::Cell::new(0u32);
    let result = runner.run(&case(), |(docs, queries)| {
        counter.set(counter.get() + 1);
        let collection = format!("prop{}", counter.get());
        runtime
            .block_on(check_case(store, &collection, &docs, &queries))
            .map_err(TestCaseError::fail)
    });
    if let Err(err) = result {
        panic!("{}: {err}", store.engine());
    }
}

#[test]
fn backends_agree_with_the_evaluator() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store = runtime.block_on(sqlite_store());
    run_property(&store, &runtime, 96);
    if let Some(url) = postgres_url() {
        let (store, schema) = runtime.block_on(postgres_store(&url));
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_property(&store, &runtime, 48)
        }));
        runtime.block_on(drop_schema(&url, &schema));
        if let Err(payload) = outcome {
            std::panic::resume_unwind(payload);
        }
    }
}
