//! Unit tests of the tailer: its lifetime, a panic in it, and failed reads.

use super::*;

async fn store() -> Store {
    // A name of its own per test: named memory databases are shared in a process.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!("feed-unit-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let db = litehouse::Database::open_memory(&name, litehouse::Config::default())
        .expect("memory database");
    Store::from_database(db).await.expect("store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tailer_stops_when_the_last_store_and_stream_go() {
    let store = store().await;
    let mut stream = store
        .subscribe(None, ChangeFilter::default())
        .expect("subscribe");
    assert!(matches!(
        stream.next().await,
        Some(Ok(ChangeEvent::UpToDate(_)))
    ));
    let hub = Arc::downgrade(&store.feed.shared.hub);
    drop(store);
    // The stream alone keeps the tailer (and the hub it holds) alive.
    tokio::time::sleep(POLL_INTERVAL * 2).await;
    assert!(hub.upgrade().is_some());
    drop(stream);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while hub.upgrade().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the tailer outlived its feed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_tailer_resets_its_subscribers_and_restarts() {
    let store = store().await;
    store
        .create_collection("a", crate::CollectionSpec::default())
        .await
        .expect("collection");
    let mut stream = store
        .subscribe(None, ChangeFilter::default())
        .expect("subscribe");
    let Some(Ok(ChangeEvent::UpToDate(at))) = stream.next().await else {
        panic!("no up-to-date mark");
    };
    store
        .feed
        .shared
        .hub
        .panic_next
        .store(true, Ordering::SeqCst);
    store
        .create("a", serde_json::json!({"n": 1}))
        .await
        .expect("create");
    // Reset at the last delivered cursor: the change the panic swallowed is not lost.
    let next = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
    assert!(
        matches!(next, Ok(Some(Ok(ChangeEvent::Reset(cursor)))) if cursor == at),
        "{next:?} at {at}"
    );
    let mut resumed = store
        .subscribe(Some(at), ChangeFilter::default())
        .expect("subscribe");
    let first = tokio::time::timeout(Duration::from_secs(5), resumed.next()).await;
    assert!(matches!(first, Ok(Some(Ok(ChangeEvent::Change(ref change)))) if change.cursor > at));
    // The restarted tailer serves live changes again.
    let _ = resumed.next().await;
    let doc = store
        .create("a", serde_json::json!({"n": 2}))
        .await
        .expect("create");
    let live = tokio::time::timeout(Duration::from_secs(5), resumed.next()).await;
    assert!(matches!(live, Ok(Some(Ok(ChangeEvent::Change(ref change)))) if change.id == doc.id));
    assert_eq!(store.feed_stats().resets, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_tailer_reads_are_retried_then_reset_subscribers() {
    let store = store().await;
    store
        .create_collection("a", crate::CollectionSpec::default())
        .await
        .expect("collection");
    let mut stream = store
        .subscribe(None, ChangeFilter::default())
        .expect("subscribe");
    let Some(Ok(ChangeEvent::UpToDate(at))) = stream.next().await else {
        panic!("no up-to-date mark");
    };
    let hub = &store.feed.shared.hub;
    // Two failures in a row: retried, the change still arrives, nobody is reset.
    hub.fail_reads
        .store(TAIL_ATTEMPTS as usize - 1, Ordering::SeqCst);
    let first = store
        .create("a", serde_json::json!({"n": 1}))
        .await
        .expect("create");
    let next = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
    assert!(
        matches!(next, Ok(Some(Ok(ChangeEvent::Change(ref change)))) if change.id == first.id),
        "{next:?}"
    );
    assert_eq!(store.feed_stats().resets, 0);
    let delivered = match next {
        Ok(Some(Ok(ChangeEvent::Change(change)))) => change.cursor,
        _ => at,
    };
    // Three: the subscriber is reset at its last delivered cursor.
    hub.fail_reads
        .store(TAIL_ATTEMPTS as usize, Ordering::SeqCst);
    store
        .create("a", serde_json::json!({"n": 2}))
        .await
        .expect("create");
    let next = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
    assert!(
        matches!(next, Ok(Some(Ok(ChangeEvent::Reset(cursor)))) if cursor == delivered),
        "{next:?}"
    );
    assert_eq!(store.feed_stats().resets, 1);
}
