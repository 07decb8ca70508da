//! A property test: random operation sequences, on both engines, replay to the stored state.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::*;
use crate::util::{drop_schema, postgres_store, postgres_url, sqlite_store};

#[derive(Debug, Clone)]
enum Step {
    Parent(u8),
    Kid(usize, u8),
    Tag(usize),
    Patch(usize, u8),
    Replace(usize, u8),
    DeleteParent(usize),
    DeleteKid(usize),
    RolledBack(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        any::<u8>().prop_map(Step::Parent),
        (any::<usize>(), any::<u8>()).prop_map(|(at, n)| Step::Kid(at, n)),
        any::<usize>().prop_map(Step::Tag),
        (any::<usize>(), any::<u8>()).prop_map(|(at, n)| Step::Patch(at, n)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, n)| Step::Replace(at, n)),
        any::<usize>().prop_map(Step::DeleteParent),
        any::<usize>().prop_map(Step::DeleteKid),
        any::<u8>().prop_map(Step::RolledBack),
    ]
}

fn pick(ids: &[String], at: usize) -> Option<String> {
    (!ids.is_empty()).then(|| ids[at % ids.len()].clone())
}

async fn check(store: &Store, case: u32, steps: &[Step]) -> Result<(), String> {
    let fail = |err: Error| err.to_string();
    let (parents, kids, tags) = (format!("p{case}"), format!("k{case}"), format!("t{case}"));
    let start = store.head().await.map_err(fail)?;
    let mut live = store
        .subscribe_with_queue(Some(start), ChangeFilter::default(), 100_000)
        .map_err(fail)?;
    store
        .create_collection(&parents, CollectionSpec::default())
        .await
        .map_err(fail)?;
    for (name, rule) in [(&kids, OnDelete::Cascade), (&tags, OnDelete::SetNull)] {
        store
            .create_collection(
                name,
                CollectionSpec {
                    references: vec![ReferenceSpec::new("parent", &parents, rule)],
                    ..CollectionSpec::default()
                },
            )
            .await
            .map_err(fail)?;
    }
    let mut parent_ids: Vec<String> = Vec::new();
    let mut kid_ids: Vec<String> = Vec::new();
    for step in steps {
        match step {
            Step::Parent(n) => {
                let made = store
                    .create(&parents, json!({"n": n}))
                    .await
                    .map_err(fail)?;
                parent_ids.push(made.id);
            }
            Step::Kid(at, n) => {
                if let Some(parent) = pick(&parent_ids, *at) {
                    let made = store
                        .create(&kids, json!({"parent": parent, "n": n}))
                        .await
                        .map_err(fail)?;
                    kid_ids.push(made.id);
                }
            }
            Step::Tag(at) => {
                if let Some(parent) = pick(&parent_ids, *at) {
                    store
                        .create(&tags, json!({"parent": parent}))
                        .await
                        .map_err(fail)?;
                }
            }
            Step::Patch(at, n) => {
                if let Some(id) = pick(&parent_ids, *at) {
                    store
                        .patch(&parents, &id, json!({"m": n}), None)
                        .await
                        .map_err(fail)?;
                }
            }
            Step::Replace(at, n) => {
                if let Some(id) = pick(&kid_ids, *at) {
                    // The kid may have gone with its parent: NotFound is fine.
                    match store.replace(&kids, &id, json!({"n": n}), None).await {
                        Ok(_) | Err(Error::NotFound { .. }) => {}
                        Err(err) => return Err(err.to_string()),
                    }
                }
            }
            Step::DeleteParent(at) => {
                if let Some(id) = pick(&parent_ids, *at) {
                    parent_ids.retain(|other| *other != id);
                    store.delete(&parents, &id, None).await.map_err(fail)?;
                }
            }
            Step::DeleteKid(at) => {
                if let Some(id) = pick(&kid_ids, *at) {
                    kid_ids.retain(|other| *other != id);
                    match store.delete(&kids, &id, None).await {
                        Ok(_) | Err(Error::NotFound { .. }) => {}
                        Err(err) => return Err(err.to_string()),
                    }
                }
            }
            Step::RolledBack(n) => {
                let name = parents.clone();
                let n = *n;
                let outcome = store
                    .transaction(move |tx| async move {
                        tx.create(&name, json!({"ghost": n})).await?;
                        Err::<(), Error>(Error::InvalidDocument {
                            reason: "roll back".into(),
                        })
                    })
                    .await;
                if outcome.is_ok() {
                    return Err("a failing transaction committed".into());
                }
            }
        }
    }
    let head = store.head().await.map_err(fail)?;
    let logged = all_since(store, start).await.map_err(fail)?;
    let mut seen = Vec::new();
    while seen.last().map(|change: &Change| change.cursor) != Some(head) {
        match tokio::time::timeout(Duration::from_secs(10), live.next()).await {
            Ok(Some(Ok(ChangeEvent::Change(change)))) => seen.push(change),
            Ok(Some(Ok(ChangeEvent::UpToDate(_)))) => {}
            other => return Err(format!("subscriber: {other:?}")),
        }
    }
    if seen != logged {
        return Err("the live sequence differs from the log".into());
    }
    if logged
        .windows(2)
        .any(|pair| pair[0].cursor >= pair[1].cursor)
    {
        return Err("cursors out of order".into());
    }
    if logged.iter().any(|change| {
        change
            .document
            .as_ref()
            .is_some_and(|doc| doc.get("ghost").is_some())
    }) {
        return Err("a rolled-back write was logged".into());
    }
    let stored = stored(store, &[&parents, &kids, &tags]).await;
    if replay(&logged) != stored {
        return Err("replaying the feed does not give the stored state".into());
    }
    Ok(())
}

fn run(store: &Store, runtime: &tokio::runtime::Runtime, cases: u32) {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let counter = std::cell::Cell::new(0u32);
    let result = runner.run(&proptest::collection::vec(step(), 1..40), |steps| {
        counter.set(counter.get() + 1);
        runtime
            .block_on(check(store, counter.get(), &steps))
            .map_err(TestCaseError::fail)
    });
    if let Err(err) = result {
        panic!("{}: {err}", store.engine());
    }
}

#[test]
fn feed_replays_to_the_stored_state() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store = runtime.block_on(sqlite_store());
    run(&store, &runtime, 48);
    if let Some(url) = postgres_url() {
        let (store, schema) = runtime.block_on(postgres_store(&url));
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&store, &runtime, 16)));
        runtime.block_on(drop_schema(&url, &schema));
        if let Err(payload) = outcome {
            std::panic::resume_unwind(payload);
        }
    }
}
