//! Every operator on declared (indexed, typed) paths, mistyped documents included.

use super::*;

pub(super) fn typed_spec() -> CollectionSpec {
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

pub(super) fn typed_types() -> Types {
    Types::from([
        ("num".to_owned(), FieldType::Number),
        ("str".to_owned(), FieldType::String),
        ("flag".to_owned(), FieldType::Bool),
        ("at".to_owned(), FieldType::Datetime),
    ])
}

/// Adds the declared fields, mistyped in some documents, to the dataset.
pub(super) fn typed_dataset() -> Vec<Json> {
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

/// Every operator on each declared type, through the typed indexes.
pub(super) fn typed_filter_cases() -> Vec<Filter> {
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
