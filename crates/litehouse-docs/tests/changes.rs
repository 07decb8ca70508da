//! The change log: every committed mutation exactly once, in cursor order, on both engines.

use std::collections::BTreeMap;
use std::time::Duration;

use litehouse_docs::{
    Change, ChangeEvent, ChangeFilter, ChangeOp, CollectionSpec, Cursor, Error, Filter, OnDelete,
    ReferenceSpec, Store, StoreConfig,
};
use serde_json::{Value as Json, json};

use crate::util::{drop_schema, note, on_each_backend, postgres_url, unique};

/// Every change after `after`, paging through the log.
async fn all_since(store: &Store, after: Cursor) -> Result<Vec<Change>, Error> {
    let mut out = Vec::new();
    let mut cursor = after;
    loop {
        let page = store
            .changes_since(Some(&cursor), &ChangeFilter::default(), 7)
            .await?;
        out.extend(page.changes);
        cursor = page.next;
        if page.up_to_date {
            return Ok(out);
        }
    }
}

/// Rebuilds collections' documents by replaying changes.
fn replay(changes: &[Change]) -> BTreeMap<(String, String), Json> {
    let mut state = BTreeMap::new();
    for change in changes {
        match change.op {
            ChangeOp::Create | ChangeOp::Replace | ChangeOp::Patch => {
                state.insert(
                    (change.collection.clone(), change.id.clone()),
                    change.document.clone().expect("document"),
                );
            }
            ChangeOp::Delete => {
                state.remove(&(change.collection.clone(), change.id.clone()));
            }
            ChangeOp::CollectionDrop => {
                state.retain(|(collection, _), _| *collection != change.collection);
            }
            ChangeOp::CollectionCreate => {}
        }
    }
    state
}

async fn stored(store: &Store, collections: &[&str]) -> BTreeMap<(String, String), Json> {
    let mut state = BTreeMap::new();
    for collection in collections {
        let documents = store
            .export(collection, None, 10_000)
            .await
            .expect("export");
        for document in documents {
            state.insert(
                ((*collection).to_owned(), document.id.clone()),
                document.to_json(),
            );
        }
    }
    state
}

fn assert_ordered(changes: &[Change]) {
    for pair in changes.windows(2) {
        assert!(
            pair[0].cursor < pair[1].cursor,
            "out of order: {:?}",
            changes
                .iter()
                .map(|change| (change.cursor, change.op, &change.collection))
                .collect::<Vec<_>>()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_mutation_path_appends_a_change() {
    on_each_backend(|store| async move {
        let start = store.head().await?;
        store
            .create_collection("users", CollectionSpec::default())
            .await?;
        store
            .create_collection(
                "posts",
                CollectionSpec {
                    references: vec![ReferenceSpec::new("author", "users", OnDelete::Cascade)],
                    ..CollectionSpec::default()
                },
            )
            .await?;
        store
            .create_collection(
                "likes",
                CollectionSpec {
                    references: vec![ReferenceSpec::new("user", "users", OnDelete::SetNull)],
                    ..CollectionSpec::default()
                },
            )
            .await?;
        let ada = store.create("users", json!({"name": "Ada"})).await?;
        let posts = store
            .create_many(
                "posts",
                vec![json!({"author": ada.id}), json!({"author": ada.id})],
            )
            .await?;
        let like = store.create("likes", json!({"user": ada.id})).await?;
        store
            .replace("users", &ada.id, json!({"name": "Ada L"}), Some(1))
            .await?;
        store
            .patch("users", &ada.id, json!({"born": 1815}), Some(2))
            .await?;
        // A failing write leaves no change behind.
        assert!(
            store
                .patch("users", &ada.id, json!({}), Some(1))
                .await
                .is_err()
        );
        let report = store.delete("users", &ada.id, Some(3)).await?;
        assert_eq!(report.deleted["posts"], 2);
        store.import("users", vec![ada.clone()]).await?;
        let changes = all_since(&store, start).await?;
        assert_ordered(&changes);
        let ops: Vec<(ChangeOp, &str, u64)> = changes
            .iter()
            .map(|change| (change.op, change.collection.as_str(), change.version))
            .collect();
        assert_eq!(
            &ops[..10],
            &[
                (ChangeOp::CollectionCreate, "users", 0),
                (ChangeOp::CollectionCreate, "posts", 0),
                (ChangeOp::CollectionCreate, "likes", 0),
                (ChangeOp::Create, "users", 1),
                (ChangeOp::Create, "posts", 1),
                (ChangeOp::Create, "posts", 1),
                (ChangeOp::Create, "likes", 1),
                (ChangeOp::Replace, "users", 2),
                (ChangeOp::Patch, "users", 3),
                // The delete, its cascades and its set-null rewrite, in one transaction.
                (ChangeOp::Delete, "posts", 1),
            ]
        );
        let tail: Vec<(ChangeOp, String)> = changes[10..]
            .iter()
            .map(|change| (change.op, change.id.clone()))
            .collect();
        assert!(tail.contains(&(ChangeOp::Delete, posts[1].id.clone())));
        assert!(tail.contains(&(ChangeOp::Delete, ada.id.clone())));
        assert!(tail.contains(&(ChangeOp::Replace, like.id.clone())));
        assert_eq!(tail.last(), Some(&(ChangeOp::Create, ada.id.clone())));
        let nulled = changes
            .iter()
            .find(|change| change.id == like.id && change.op == ChangeOp::Replace)
            .expect("set null change");
        assert_eq!(nulled.version, 2);
        assert_eq!(nulled.document.as_ref().expect("doc")["user"], Json::Null);
        assert_eq!(
            replay(&changes),
            stored(&store, &["users", "posts", "likes"]).await
        );
        store.drop_collection("likes").await?;
        let page = store
            .changes_since(
                changes.last().map(|change| &change.cursor),
                &ChangeFilter::default(),
                10,
            )
            .await?;
        assert_eq!(page.changes.len(), 1);
        assert_eq!(page.changes[0].op, ChangeOp::CollectionDrop);
        assert_eq!(store.head().await?, page.next);
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_are_delivered_once_in_order() {
    on_each_backend(|store| async move {
        store
            .create_collection("items", CollectionSpec::default())
            .await?;
        let start = store.head().await?;
        let mut live = store.subscribe_with_queue(Some(start), ChangeFilter::default(), 100_000)?;
        let mut tasks = Vec::new();
        for task in 0..16 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..20 {
                    let doc = store.create("items", json!({"task": task, "n": n})).await?;
                    if n % 3 == 0 {
                        store
                            .patch("items", &doc.id, json!({"p": true}), None)
                            .await?;
                    }
                    if n % 5 == 0 {
                        store.delete("items", &doc.id, None).await?;
                    }
                }
                Ok::<(), Error>(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        let changes = all_since(&store, start).await?;
        assert_ordered(&changes);
        assert_eq!(changes.len(), 16 * (20 + 7 + 4));
        assert_eq!(replay(&changes), stored(&store, &["items"]).await);
        // The live subscriber saw the same sequence, then caught up.
        let mut seen = Vec::new();
        while seen.len() < changes.len() {
            match tokio::time::timeout(Duration::from_secs(10), live.next()).await? {
                Some(Ok(ChangeEvent::Change(change))) => seen.push(change),
                Some(Ok(ChangeEvent::UpToDate(_))) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(seen, changes);
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resumed_subscriber_equals_uninterrupted() {
    on_each_backend(|store| async move {
        store
            .create_collection("notes", CollectionSpec::default())
            .await?;
        let start = store.head().await?;
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                for n in 0..150 {
                    store.create("notes", json!({"n": n})).await?;
                    if n % 10 == 0 {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
                Ok::<(), Error>(())
            })
        };
        let mut resumed = Vec::new();
        let mut cursor = start;
        let mut step = 1usize;
        while resumed.len() < 150 {
            // Disconnect after a varying number of events and resume from the last cursor.
            let mut stream = store.subscribe(Some(cursor), ChangeFilter::default())?;
            let mut taken = 0;
            while taken < step.min(150 - resumed.len() + taken) {
                match tokio::time::timeout(Duration::from_secs(10), stream.next()).await? {
                    Some(Ok(ChangeEvent::Change(change))) => {
                        cursor = change.cursor;
                        resumed.push(change);
                        taken += 1;
                    }
                    Some(Ok(ChangeEvent::UpToDate(_))) => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
            drop(stream);
            step = step * 7 % 23 + 1;
        }
        writer.await??;
        resumed.truncate(150);
        let uninterrupted = all_since(&store, start).await?;
        assert_eq!(resumed, uninterrupted);
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn filters_and_catch_up_then_live() {
    on_each_backend(|store| async move {
        store
            .create_collection("a", CollectionSpec::default())
            .await?;
        store
            .create_collection("b", CollectionSpec::default())
            .await?;
        let start = store.head().await?;
        store.create("a", json!({"k": 1})).await?;
        store.create("a", json!({"k": 2})).await?;
        store.create("b", json!({"k": 2})).await?;
        let filter = ChangeFilter {
            collections: Some(vec!["a".into()]),
            filter: Some(Filter::eq("k", 2)),
        };
        let page = store.changes_since(Some(&start), &filter, 100).await?;
        assert_eq!(page.changes.len(), 1);
        assert_eq!(page.changes[0].document.as_ref().expect("doc")["k"], 2);
        let mut stream = store.subscribe(Some(start), filter)?;
        let first = stream.next().await.expect("event")?;
        assert!(matches!(first, ChangeEvent::Change(ref change) if change.collection == "a"));
        let head = store.head().await?;
        assert_eq!(
            stream.next().await.expect("event")?,
            ChangeEvent::UpToDate(head)
        );
        let late = store.create("a", json!({"k": 2})).await?;
        store.create("a", json!({"k": 3})).await?;
        match tokio::time::timeout(Duration::from_secs(5), stream.next()).await? {
            Some(Ok(ChangeEvent::Change(change))) => assert_eq!(change.id, late.id),
            other => panic!("unexpected {other:?}"),
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_subscriber_gets_reset_with_last_delivered() {
    on_each_backend(|store| async move {
        store
            .create_collection("a", CollectionSpec::default())
            .await?;
        let start = store.head().await?;
        store
            .create_many("a", (0..20).map(|n| json!({"n": n})).collect())
            .await?;
        let mut stream = store.subscribe_with_queue(Some(start), ChangeFilter::default(), 4)?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut delivered = Vec::new();
        let reset = loop {
            match stream.next().await {
                Some(Ok(ChangeEvent::Change(change))) => delivered.push(change.cursor),
                Some(Ok(ChangeEvent::Reset(cursor))) => break cursor,
                other => panic!("unexpected {other:?}"),
            }
        };
        // At least the queue's worth arrived (more if this side read while it filled).
        assert!((4..20).contains(&delivered.len()), "{delivered:?}");
        assert_eq!(Some(&reset), delivered.last());
        assert!(stream.next().await.is_none());
        // Resuming from the reset cursor continues exactly.
        let rest = all_since(&store, reset).await?;
        assert_eq!(rest.len(), 20 - delivered.len());
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retention_expires_old_cursors() {
    on_each_backend(|store| async move {
        let store = store.with_config(StoreConfig {
            change_retention_count: Some(10),
            ..StoreConfig::default()
        });
        store
            .create_collection("a", CollectionSpec::default())
            .await?;
        let start = store.head().await?;
        store
            .create_many("a", (0..30).map(|n| json!({"n": n})).collect())
            .await?;
        assert_eq!(store.prune_changes().await?, 21);
        let err = store
            .changes_since(Some(&start), &ChangeFilter::default(), 10)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::CursorExpired { .. }), "{err}");
        let mut stream = store.subscribe(Some(start), ChangeFilter::default())?;
        assert!(matches!(
            stream.next().await,
            Some(Err(Error::CursorExpired { .. }))
        ));
        let kept = store
            .changes_since(None, &ChangeFilter::default(), 100)
            .await?;
        assert_eq!(kept.changes.len(), 10);
        let future: Cursor = (store.head().await?.to_string() + "0").parse()?;
        assert!(matches!(
            store
                .changes_since(Some(&future), &ChangeFilter::default(), 1)
                .await,
            Err(Error::InvalidCursor { .. })
        ));
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transactions_commit_together_or_not_at_all() {
    on_each_backend(|store| async move {
        store
            .create_collection("notes", CollectionSpec::default())
            .await?;
        let start = store.head().await?;
        let chosen = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
        let (made, kept) = store
            .transaction(move |tx| async move {
                tx.set_origin("device-7");
                let made = tx.create_with_id("notes", chosen, json!({"n": 1})).await?;
                let kept = tx.create("notes", json!({"n": 2})).await?;
                tx.patch("notes", &made.id, json!({"m": true}), Some(1))
                    .await?;
                // An error handled inside goes on; the state is unchanged by it.
                let clash = tx
                    .create_with_id("notes", chosen, json!({}))
                    .await
                    .unwrap_err();
                assert_eq!(clash.conflicting_id(), Some(chosen));
                tx.delete("notes", &kept.id, None).await?;
                tx.meta_put("sync", "b", json!({"seen": 2})).await?;
                tx.meta_put("sync", "a", json!(1)).await?;
                tx.meta_put("other", "a", json!(0)).await?;
                assert_eq!(tx.meta_get("sync", "b").await?, Some(json!({"seen": 2})));
                assert_eq!(tx.get("notes", &made.id).await?.version, 2);
                Ok((made, kept))
            })
            .await?;
        assert_eq!(made.id, chosen);
        let changes = all_since(&store, start).await?;
        let ops: Vec<ChangeOp> = changes.iter().map(|change| change.op).collect();
        assert_eq!(
            ops,
            [
                ChangeOp::Create,
                ChangeOp::Create,
                ChangeOp::Patch,
                ChangeOp::Delete
            ]
        );
        assert!(
            changes
                .iter()
                .all(|change| change.origin.as_deref() == Some("device-7"))
        );
        assert_eq!(changes[3].id, kept.id);
        let scanned = store
            .transaction(|tx| async move {
                let all = tx.meta_scan("sync", None, 10).await?;
                let after = tx.meta_scan("sync", Some("a"), 10).await?;
                assert!(tx.meta_delete("sync", "a").await?);
                assert!(!tx.meta_delete("sync", "zz").await?);
                Ok((all, after))
            })
            .await?;
        assert_eq!(
            scanned.0,
            vec![
                ("a".to_owned(), json!(1)),
                ("b".to_owned(), json!({"seen": 2}))
            ]
        );
        assert_eq!(scanned.1, vec![("b".to_owned(), json!({"seen": 2}))]);
        // Bookkeeping emits no changes.
        assert_eq!(store.head().await?, changes[3].cursor);

        // A transaction that returns an error leaves nothing, and no subscriber sees it.
        let before = store.head().await?;
        let mut live = store.subscribe(Some(before), ChangeFilter::default())?;
        let failed = store
            .transaction(|tx| async move {
                tx.create("notes", json!({"ghost": true})).await?;
                tx.meta_put("sync", "ghost", json!(true)).await?;
                Err::<(), Error>(Error::InvalidDocument {
                    reason: "changed my mind".into(),
                })
            })
            .await;
        assert!(failed.is_err());
        // Awaiting something else inside is refused, not a hang, and rolls back too.
        let misuse = store
            .transaction(|tx| async move {
                tx.create("notes", json!({"ghost": 2})).await?;
                let (_sender, never) = tokio::sync::oneshot::channel::<()>();
                let _ = never.await;
                Ok(())
            })
            .await
            .unwrap_err();
        assert!(matches!(misuse, Error::Misuse { .. }), "{misuse}");
        assert!(misuse.to_string().contains("only the Tx's own methods"));
        let real = store.create("notes", json!({"real": true})).await?;
        // The first change the subscriber sees (before or after its upToDate, depending on
        // when its task ran) is the committed one.
        let first = loop {
            match tokio::time::timeout(Duration::from_secs(5), live.next()).await? {
                Some(Ok(ChangeEvent::UpToDate(_))) => {}
                Some(Ok(ChangeEvent::Change(change))) => break change,
                other => panic!("unexpected {other:?}"),
            }
        };
        assert_eq!(first.id, real.id);
        assert_eq!(store.count("notes", None).await?, 2);
        let ghost = store
            .transaction(|tx| async move { tx.meta_get("sync", "ghost").await })
            .await?;
        assert_eq!(ghost, None);
        // A Tx kept past its transaction is refused, not left waiting.
        let kept = store.transaction(|tx| async move { Ok(tx) }).await?;
        assert!(matches!(
            kept.get("notes", &real.id).await,
            Err(Error::Misuse { .. })
        ));
        Ok(())
    })
    .await;
}

mod property {
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
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run(&store, &runtime, 16)
            }));
            runtime.block_on(drop_schema(&url, &schema));
            if let Err(payload) = outcome {
                std::panic::resume_unwind(payload);
            }
        }
    }
}

/// A log pruned to its very end still counts on from where it was: no cursor is handed out
/// twice and a subscriber at the old head gets exactly the next change.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_log_pruned_to_its_end_counts_on() {
    on_each_backend(|store| async move {
        let store = store.with_config(StoreConfig {
            change_retention_count: Some(0),
            ..StoreConfig::default()
        });
        store
            .create_collection("a", CollectionSpec::default())
            .await?;
        store
            .create_many("a", (0..5).map(|n| json!({"n": n})).collect())
            .await?;
        store.prune_changes().await?;
        let head = store.head().await?;
        assert!(
            store
                .changes_since(None, &ChangeFilter::default(), 10)
                .await?
                .changes
                .is_empty()
        );
        let doc = store.create("a", json!({"n": 5})).await?;
        let next = all_since(&store, head).await?;
        assert_eq!(next.len(), 1, "{next:?}");
        assert_eq!(next[0].id, doc.id);
        assert!(next[0].cursor > head);
        assert_eq!(store.head().await?, next[0].cursor);
        Ok(())
    })
    .await;
}

/// A SQLite cursor's place in the log.
fn pos(cursor: &Cursor) -> u64 {
    cursor
        .to_string()
        .parse()
        .expect("a SQLite cursor is a u64")
}

/// Two engines on one SQLite file (as two processes would be): each write takes the file's
/// write lock, so cursors are unique and in commit order across both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_engines_on_one_sqlite_file_share_one_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let open = || async {
        let db = litehouse::Database::open(&path, litehouse::Config::default()).unwrap();
        Store::from_database(db).await.unwrap()
    };
    let (one, two) = (open().await, open().await);
    one.create_collection("a", CollectionSpec::default())
        .await
        .unwrap();
    let start = one.head().await.unwrap();
    let mut tasks = Vec::new();
    for (n, store) in [one.clone(), two.clone(), one.clone(), two.clone()]
        .into_iter()
        .enumerate()
    {
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                store.create("a", json!({"w": n, "i": i})).await?;
            }
            Ok::<_, Error>(())
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    for store in [&one, &two] {
        let changes = all_since(store, start).await.unwrap();
        assert_eq!(changes.len(), 200);
        assert_ordered(&changes);
        let cursors: Vec<u64> = changes.iter().map(|c| pos(&c.cursor)).collect();
        assert_eq!(
            cursors,
            (pos(&start) + 1..=pos(&start) + 200).collect::<Vec<_>>()
        );
    }
}

/// A PostgreSQL log written before cursors carried transaction ids is upgraded in place when
/// a store opens it: its changes keep their cursors (so a cursor a client holds resumes at
/// the same place), an expired one stays expired, and new changes come after all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_old_postgres_log_keeps_its_cursors() {
    let Some(url) = postgres_url() else {
        note("an_old_postgres_log_keeps_its_cursors: skipped (set LITEHOUSE_TEST_PG)");
        return;
    };
    let schema = unique("lh_test_upgrade");
    let outcome = async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        let task = tokio::spawn(connection);
        // The layout an earlier release created: a counter row and a log keyed by `seq`.
        client
            .batch_execute(&format!(
                "CREATE SCHEMA \"{schema}\";
                 CREATE TABLE \"{schema}\"._litehouse_feed (k bigint NOT NULL PRIMARY KEY,
                   head bigint NOT NULL, pruned bigint NOT NULL);
                 INSERT INTO \"{schema}\"._litehouse_feed VALUES (1, 7, 2);
                 CREATE TABLE \"{schema}\"._litehouse_changes (seq bigint NOT NULL PRIMARY KEY,
                   collection text COLLATE \"C\" NOT NULL, id text COLLATE \"C\" NOT NULL,
                   op text COLLATE \"C\" NOT NULL, version bigint NOT NULL,
                   document text COLLATE \"C\", at bigint NOT NULL, origin text COLLATE \"C\");
                 INSERT INTO \"{schema}\"._litehouse_changes
                   SELECT n, 'a', 'd' || n, 'delete', 1, NULL, 0, NULL FROM generate_series(3, 7) n;"
            ))
            .await?;
        drop(client);
        let _ = task.await;
        let store = Store::open_postgres_with(litehouse_docs::PostgresConfig {
            url: url.clone(),
            schema: schema.clone(),
            pool_size: 4,
        })
        .await?;
        let old = all_since(&store, "4".parse()?).await?;
        let cursors: Vec<String> = old.iter().map(|c| c.cursor.to_string()).collect();
        assert_eq!(cursors, ["5", "6", "7"]);
        assert_eq!(old[0].id, "d5");
        assert_eq!(store.head().await?.to_string(), "7");
        assert!(matches!(
            store
                .changes_since(Some(&"1".parse()?), &ChangeFilter::default(), 10)
                .await,
            Err(Error::CursorExpired { .. })
        ));
        store
            .create_collection("a", CollectionSpec::default())
            .await?;
        let doc = store.create("a", json!({"n": 1})).await?;
        let new = all_since(&store, "7".parse()?).await?;
        assert_eq!(new.len(), 2, "{new:?}");
        assert_eq!(new[1].id, doc.id);
        assert!(new[0].cursor > "7".parse()?);
        // Opening it again changes nothing.
        let again = Store::open_postgres_with(litehouse_docs::PostgresConfig {
            url: url.clone(),
            schema: schema.clone(),
            pool_size: 2,
        })
        .await?;
        assert!(matches!(
            all_since(&again, Cursor::START).await,
            Err(Error::CursorExpired { .. })
        ));
        assert_eq!(all_since(&again, "2".parse()?).await?.len(), 7);
        Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    }
    .await;
    drop_schema(&url, &schema).await;
    outcome.expect("upgrade");
}

/// PostgreSQL: a transaction that began writing to the log first but commits last must not
/// land behind a cursor a reader already passed. While it is open, the later transaction's
/// change is held back; once it commits, both changes are read in cursor order, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_older_open_transaction_holds_later_commits_back() {
    let Some(url) = postgres_url() else {
        note("an_older_open_transaction_holds_later_commits_back: skipped (set LITEHOUSE_TEST_PG)");
        return;
    };
    let (store, schema) = crate::util::postgres_store(&url).await;
    let outcome = async {
        store
            .create_collection("a", CollectionSpec::default())
            .await?;
        let start = store.head().await?;
        let mut subscriber = store.subscribe(Some(start), ChangeFilter::default())?;
        assert!(matches!(
            subscriber.next().await,
            Some(Ok(ChangeEvent::UpToDate(_)))
        ));
        // Another session starts writing a change first, and stays open.
        let (mut client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        let task = tokio::spawn(connection);
        let older = client.transaction().await?;
        older
            .batch_execute(&format!(
                "INSERT INTO \"{schema}\"._litehouse_changes (collection, id, op, version, at) \
                 VALUES ('a', 'older', 'delete', 1, 0)"
            ))
            .await?;
        // A later write commits first. A reader in another process (a store of its own,
        // which wrote nothing, so it does not wait for its own writes) does not see it yet.
        // (This test holds every PostgreSQL test's feed back while it runs: keep it short.)
        let later = store.create("a", json!({"n": 1})).await?;
        let elsewhere = Store::open_postgres_with(litehouse_docs::PostgresConfig {
            url: url.clone(),
            schema: schema.clone(),
            pool_size: 2,
        })
        .await?;
        let page = elsewhere
            .changes_since(Some(&start), &ChangeFilter::default(), 10)
            .await?;
        assert!(page.changes.is_empty(), "{:?}", page.changes);
        assert_eq!(elsewhere.head().await?, start);
        let held = tokio::time::timeout(Duration::from_millis(300), subscriber.next()).await;
        assert!(held.is_err(), "delivered while held back: {held:?}");
        assert!(store.feed_stats().held_back >= 1);
        older.commit().await?;
        drop(client);
        let _ = task.await;
        let read = all_since(&store, start).await?;
        let ids: Vec<&str> = read.iter().map(|change| change.id.as_str()).collect();
        assert_eq!(ids, ["older", later.id.as_str()]);
        assert_ordered(&read);
        for expected in ["older", later.id.as_str()] {
            match tokio::time::timeout(Duration::from_secs(5), subscriber.next()).await {
                Ok(Some(Ok(ChangeEvent::Change(change)))) => assert_eq!(change.id, expected),
                other => panic!("expected {expected}, got {other:?}"),
            }
        }
        Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    }
    .await;
    drop_schema(&url, &schema).await;
    outcome.expect("held back");
}
