//! What each engine does its own way: two engines sharing one SQLite file, and
//! PostgreSQL's transaction-id cursors.

use super::*;
use crate::util::{drop_schema, note, postgres_url, unique};

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
