//! The shared fan-out: one tailer per store serves every live subscriber, each subscriber
//! gets every committed change exactly once in cursor order, joining during heavy writes
//! leaves no gap and no duplicate, and the log is not read once per subscriber.

use std::time::{Duration, Instant};

use litehouse_docs::{
    Change, ChangeEvent, ChangeFilter, ChangeStream, CollectionSpec, Cursor, Error, Filter,
    POLL_INTERVAL, Store,
};
use serde_json::json;

use crate::util::on_each_backend;

/// Every change after `after`, paging through the log.
async fn all_since(store: &Store, after: Cursor) -> Result<Vec<Change>, Error> {
    let mut out = Vec::new();
    let mut cursor = after;
    loop {
        let page = store
            .changes_since(Some(&cursor), &ChangeFilter::default(), 1000)
            .await?;
        out.extend(page.changes);
        cursor = page.next;
        if page.up_to_date {
            return Ok(out);
        }
    }
}

/// Reads `stream` until a change at or past `until`; returns the changes and the
/// up-to-date cursor (if one came).
async fn collect_until(
    stream: &mut ChangeStream,
    until: Cursor,
) -> Result<(Vec<Change>, Option<Cursor>), Error> {
    let mut changes: Vec<Change> = Vec::new();
    let mut up_to_date = None;
    if until == Cursor::START {
        return Ok((changes, up_to_date));
    }
    loop {
        match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
            Ok(Some(Ok(ChangeEvent::Change(change)))) => {
                let done = change.cursor >= until;
                changes.push(change);
                if done {
                    return Ok((changes, up_to_date));
                }
            }
            Ok(Some(Ok(ChangeEvent::UpToDate(cursor)))) => {
                assert!(up_to_date.is_none(), "a second up-to-date mark");
                up_to_date = Some(cursor);
                if cursor >= until {
                    return Ok((changes, up_to_date));
                }
            }
            other => panic!(
                "unexpected {other:?} after {:?}",
                changes.last().map(|change| change.cursor)
            ),
        }
    }
}

fn cursors(changes: &[Change]) -> Vec<Cursor> {
    changes.iter().map(|change| change.cursor).collect()
}

/// Writers: `tasks` tasks each creating `per_task` documents (every third also patched).
fn spawn_writers(
    store: &Store,
    tasks: usize,
    per_task: usize,
) -> Vec<tokio::task::JoinHandle<Result<(), Error>>> {
    (0..tasks)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                for n in 0..per_task {
                    let doc = store.create("items", json!({"task": task, "n": n})).await?;
                    if n % 3 == 0 {
                        store
                            .patch("items", &doc.id, json!({"p": true}), None)
                            .await?;
                    }
                }
                Ok(())
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_subscribers_each_get_every_change_once_in_order() {
    on_each_backend(|store| async move {
        store
            .create_collection("items", CollectionSpec::default())
            .await?;
        let start = store.head().await?;
        // Half follow from the start before the writers begin.
        let mut streams = Vec::new();
        for _ in 0..100 {
            streams.push(store.subscribe_with_queue(
                Some(start),
                ChangeFilter::default(),
                10_000,
            )?);
        }
        let writers = spawn_writers(&store, 8, 25);
        // The other half join while the writers run, from the start (catch up, then splice
        // into the live set) or from the current head.
        let mut late = Vec::new();
        for n in 0..100 {
            if n % 2 == 0 {
                streams.push(store.subscribe_with_queue(
                    Some(start),
                    ChangeFilter::default(),
                    10_000,
                )?);
            } else {
                late.push(store.subscribe_with_queue(None, ChangeFilter::default(), 10_000)?);
            }
            if n % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        }
        for writer in writers {
            writer.await??;
        }
        let end = store.head().await?;
        let expected = all_since(&store, start).await?;
        assert_eq!(expected.len(), 8 * (25 + 9));
        assert_eq!(expected.last().map(|change| change.cursor), Some(end));
        for stream in &mut streams {
            let (changes, _) = collect_until(stream, end).await?;
            assert_eq!(cursors(&changes), cursors(&expected));
            assert_eq!(changes, expected);
        }
        for stream in &mut late {
            let (changes, up_to_date) = collect_until(stream, end).await?;
            // From now on: everything after its up-to-date mark, nothing before it.
            let from = up_to_date.expect("an up-to-date mark before any change");
            let tail: Vec<Change> = expected
                .iter()
                .filter(|change| change.cursor > from)
                .cloned()
                .collect();
            assert_eq!(cursors(&changes), cursors(&tail));
        }
        let stats = store.feed_stats();
        assert_eq!(stats.subscribers, 200);
        assert_eq!(stats.resets, 0);
        drop(streams);
        drop(late);
        assert_eq!(store.feed_stats().subscribers, 0);
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn joining_during_heavy_writes_has_no_gap_or_duplicate() {
    on_each_backend(|store| async move {
        store
            .create_collection("items", CollectionSpec::default())
            .await?;
        let origin = store.head().await?;
        // One subscriber keeps the tailer and its ring busy throughout.
        let mut anchor =
            store.subscribe_with_queue(Some(origin), ChangeFilter::default(), 100_000)?;
        let writers = spawn_writers(&store, 6, 60);
        let mut joined = Vec::new();
        let mut step = 0u64;
        while joined.len() < 24 {
            // Join at pseudo-random points, from now or from a cursor somewhere behind.
            let head = store.head().await?;
            let after = match step % 3 {
                0 => None,
                1 => Some(head),
                _ => {
                    // A real cursor up to 400 changes behind the head (cursors are opaque:
                    // on PostgreSQL they are not consecutive numbers).
                    let back = ((step * 37) % 400) as usize;
                    let seen = all_since(&store, origin).await?;
                    Some(
                        seen.len()
                            .checked_sub(back + 1)
                            .map_or(origin, |at| seen[at].cursor),
                    )
                }
            };
            joined.push((
                after,
                store.subscribe_with_queue(after, ChangeFilter::default(), 100_000)?,
            ));
            tokio::time::sleep(Duration::from_millis(step * 7 % 11)).await;
            step += 1;
        }
        for writer in writers {
            writer.await??;
        }
        let end = store.head().await?;
        let everything = all_since(&store, origin).await?;
        for (after, stream) in &mut joined {
            let (changes, up_to_date) = collect_until(stream, end).await?;
            let from = match after {
                Some(cursor) => *cursor,
                // From "now": the position is the head read when subscribing, which the
                // test does not see; the tailer may have read past it by the join, and the
                // changes in between come before the up-to-date mark. So: a suffix of
                // everything, holding every change after the mark.
                None => {
                    let mark = up_to_date.expect("an up-to-date mark");
                    changes.first().map_or(mark, |first| {
                        everything
                            .iter()
                            .map(|change| change.cursor)
                            .take_while(|cursor| cursor < &first.cursor)
                            .last()
                            .unwrap_or(origin)
                            .min(mark)
                    })
                }
            };
            let expected: Vec<Cursor> = everything
                .iter()
                .map(|change| change.cursor)
                .filter(|cursor| *cursor > from)
                .collect();
            assert_eq!(cursors(&changes), expected, "subscriber after {after:?}");
        }
        let (changes, _) = collect_until(&mut anchor, end).await?;
        assert_eq!(cursors(&changes), cursors(&everything));
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn log_reads_do_not_grow_with_subscribers() {
    on_each_backend(|store| async move {
        store
            .create_collection("items", CollectionSpec::default())
            .await?;
        // 150 live subscribers, a third of them filtered out of every change.
        let mut streams = Vec::new();
        for n in 0..150 {
            let filter = ChangeFilter {
                collections: Some(vec!["items".into()]),
                filter: (n % 3 == 0).then(|| Filter::eq("k", -1)),
            };
            streams.push((n % 3 != 0, store.subscribe(None, filter)?));
        }
        for (_, stream) in &mut streams {
            match tokio::time::timeout(Duration::from_secs(30), stream.next()).await? {
                Some(Ok(ChangeEvent::UpToDate(_))) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        let before = store.feed_stats();
        assert_eq!(before.live, 150);
        let began = Instant::now();
        let commits = 20;
        for k in 0..commits {
            let doc = store.create("items", json!({"k": k})).await?;
            // Wait until every matching subscriber has it: each commit is its own wake-up.
            for (matching, stream) in &mut streams {
                if !*matching {
                    continue;
                }
                match tokio::time::timeout(Duration::from_secs(30), stream.next()).await? {
                    Some(Ok(ChangeEvent::Change(change))) => assert_eq!(change.id, doc.id),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        let after = store.feed_stats();
        let reads = after.log_reads - before.log_reads;
        let polls = (began.elapsed().as_millis() / POLL_INTERVAL.as_millis()) as u64 + 2;
        // One read per commit plus the idle polls (on PostgreSQL up to 7 quick looks more
        // per commit while another transaction holds it back); per-subscriber reading would
        // be 100 matching subscribers x 20 commits.
        assert!(
            reads <= 8 * commits + polls,
            "{reads} log reads for {commits} commits ({polls} polls) and 150 subscribers"
        );
        assert_eq!(reads, after.tailer_reads - before.tailer_reads);
        assert_eq!(after.delivered - before.delivered, 100 * commits);
        assert!(after.max_queue_depth <= 1);
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscribers_sharing_equal_filters_each_get_only_their_matches() {
    on_each_backend(|store| async move {
        store
            .create_collection("items", CollectionSpec::default())
            .await?;
        // 30 subscribers, 3 distinct filters: the tailer evaluates each filter once per
        // change and must still route every verdict to the right subscribers.
        let mut streams = Vec::new();
        for n in 0..30 {
            let filter = ChangeFilter {
                collections: Some(vec!["items".into()]),
                filter: Some(Filter::eq("k", n % 3)),
            };
            let mut stream = store.subscribe(None, filter)?;
            match tokio::time::timeout(Duration::from_secs(30), stream.next()).await? {
                Some(Ok(ChangeEvent::UpToDate(_))) => {}
                other => panic!("unexpected {other:?}"),
            }
            streams.push((n % 3, stream));
        }
        for i in 0..30 {
            store.create("items", json!({"k": i % 3, "i": i})).await?;
        }
        for (k, stream) in &mut streams {
            for expected in (0..30).filter(|i| i % 3 == *k) {
                match tokio::time::timeout(Duration::from_secs(30), stream.next()).await? {
                    Some(Ok(ChangeEvent::Change(change))) => {
                        let document = change.document.expect("document");
                        assert_eq!(
                            (document["k"].clone(), document["i"].clone()),
                            (json!(*k), json!(expected))
                        );
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            assert!(stream.queued() == 0, "more than its matches for k={k}");
        }
        Ok(())
    })
    .await;
}

/// Two stores on one PostgreSQL schema stand for two processes: a subscriber of one receives
/// the other's commits (no local wake-up: the tailer's poll finds them), exactly once and in
/// order, and the tailer's lag drops back to 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_subscriber_sees_another_stores_commits() {
    let Some(url) = crate::util::postgres_url() else {
        return;
    };
    let (store, schema) = crate::util::postgres_store(&url).await;
    let (other_url, other_schema) = (url.clone(), schema.clone());
    let outcome = tokio::spawn(async move {
        let other = Store::open_postgres_with(litehouse_docs::PostgresConfig {
            url: other_url,
            schema: other_schema,
            pool_size: 2,
        })
        .await?;
        store
            .create_collection("items", CollectionSpec::default())
            .await?;
        let start = store.head().await?;
        let mut stream = store.subscribe(Some(start), ChangeFilter::default())?;
        match tokio::time::timeout(Duration::from_secs(10), stream.next()).await? {
            Some(Ok(ChangeEvent::UpToDate(_))) => {}
            other => panic!("unexpected {other:?}"),
        }
        let mut written = Vec::new();
        for n in 0..20 {
            written.push(other.create("items", json!({"n": n})).await?.id);
        }
        let mut seen = Vec::new();
        while seen.len() < written.len() {
            match tokio::time::timeout(Duration::from_secs(10), stream.next()).await? {
                Some(Ok(ChangeEvent::Change(change))) => seen.push(change),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(
            seen.iter()
                .map(|change| change.id.clone())
                .collect::<Vec<_>>(),
            written
        );
        assert_eq!(cursors(&seen), cursors(&all_since(&store, start).await?));
        assert_eq!(store.feed_stats().lag_behind(store.head().await?), 0);
        Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    })
    .await;
    crate::util::drop_schema(&url, &schema).await;
    outcome.expect("no panic").expect("no error");
}
