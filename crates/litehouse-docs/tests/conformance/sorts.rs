//! Sorts with NULLs and mixed types, numbered pages and cursors, on each backend.

use super::typed::{typed_dataset, typed_spec, typed_types};
use super::*;

pub(super) fn sort_cases() -> Vec<Vec<Sort>> {
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

pub(super) async fn paged(
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

pub(super) async fn cursored(
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
