//! The change log: every committed mutation exactly once, in cursor order, on both engines.
//!
//! - `mod.rs`: the shared helpers, and delivery: every mutation path, concurrent writers,
//!   resumed and filtered subscribers, a slow subscriber's reset.
//! - `retention.rs`: pruning and expired cursors.
//! - `transactions.rs`: `Store::transaction` commits its changes together or not at all.
//! - `property.rs`: random operation sequences replay to the stored state.
//! - `engines.rs`: what each engine does its own way: two engines on one SQLite file,
//!   PostgreSQL's transaction-id cursors (an upgraded old log, an older open transaction).

use std::collections::BTreeMap;
use std::time::Duration;

use litehouse_docs::{
    Change, ChangeEvent, ChangeFilter, ChangeOp, CollectionSpec, Cursor, Error, Filter, OnDelete,
    ReferenceSpec, Store, StoreConfig,
};
use serde_json::{Value as Json, json};

use crate::util::on_each_backend;

mod engines;
mod property;
mod retention;
mod transactions;

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
