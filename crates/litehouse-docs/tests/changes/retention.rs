//! Retention: pruning by count, expired cursors, and a log pruned to its end.

use super::*;

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

/// Retention by age deletes the run of changes older than the age, from the oldest kept, and
/// keeps every newer one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retention_by_age_prunes_the_expired_run() {
    on_each_backend(|store| async move {
        let store = store.with_config(StoreConfig {
            change_retention_count: None,
            change_retention_ms: Some(1_000),
            ..StoreConfig::default()
        });
        store
            .create_collection("a", CollectionSpec::default())
            .await?;
        let start = store.head().await?;
        store
            .create_many("a", (0..20).map(|n| json!({"n": n})).collect())
            .await?;
        assert_eq!(
            store.prune_changes().await?,
            0,
            "nothing is a second old yet"
        );
        assert_eq!(all_since(&store, start).await?.len(), 20);
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        let middle = store.head().await?;
        let new = store
            .create_many("a", (20..25).map(|n| json!({"n": n})).collect())
            .await?;
        // The 20 old creates and the collection's own change before them.
        assert_eq!(store.prune_changes().await?, 21);
        assert_eq!(store.prune_changes().await?, 0);
        assert!(matches!(
            store
                .changes_since(Some(&start), &ChangeFilter::default(), 10)
                .await,
            Err(Error::CursorExpired { .. })
        ));
        let kept = store
            .changes_since(None, &ChangeFilter::default(), 100)
            .await?;
        let ids: Vec<&str> = kept
            .changes
            .iter()
            .map(|change| change.id.as_str())
            .collect();
        let expected: Vec<&str> = new.iter().map(|document| document.id.as_str()).collect();
        assert_eq!(ids, expected);
        assert_eq!(all_since(&store, middle).await?.len(), 5);
        Ok(())
    })
    .await;
}
