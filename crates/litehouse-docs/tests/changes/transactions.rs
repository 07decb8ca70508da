//! `Store::transaction`: its changes commit together, with its origin, or not at all.

use super::*;

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
