//! `litehouse migrate`: SQLite to SQLite always, and SQLite to PostgreSQL and back when
//! `LITEHOUSE_TEST_PG` is set.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

use litehouse_docs::{
    CollectionInfo, CollectionSpec, Document, FieldType, IndexSpec, OnDelete, ReferenceSpec, Store,
};
use serde_json::json;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn litehouse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_litehouse"))
        .args(args)
        .output()
        .expect("the litehouse binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts the exit code, showing the output when it is not the one expected.
fn expect_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

fn block_on<T>(future: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

fn sqlite(path: &Path) -> String {
    format!("sqlite:{}", path.display())
}

/// Three collections in a reference chain, documents of every JSON shape, some patched
/// (version above 1), and more documents than one batch.
async fn seed(store: &Store) -> litehouse_docs::Result<()> {
    store
        .create_collection(
            "users",
            CollectionSpec {
                indexes: vec![
                    IndexSpec::unique("by_email", [("email", FieldType::String)]),
                    IndexSpec::new("by_age", [("age", FieldType::Number)]),
                ],
                references: vec![],
            },
        )
        .await?;
    store
        .create_collection(
            "posts",
            CollectionSpec {
                indexes: vec![IndexSpec::new("by_score", [("score", FieldType::Number)])],
                references: vec![ReferenceSpec::new("author", "users", OnDelete::Cascade)],
            },
        )
        .await?;
    store
        .create_collection(
            "comments",
            CollectionSpec {
                indexes: vec![],
                references: vec![ReferenceSpec::new("post", "posts", OnDelete::SetNull)],
            },
        )
        .await?;
    let users = store
        .create_many(
            "users",
            (0..30)
                .map(|i| {
                    json!({
                        "email": format!("user{i}@example.com"),
                        "age": 20 + i,
                        "ratio": i as f64 / 7.0,
                        "name": format!("Ünïcødé \"{i}\" \u{1F600}"),
                        "address": {"city": "Zürich", "zip": null, "lines": ["a", 1, true]},
                    })
                })
                .collect(),
        )
        .await?;
    store
        .patch(
            "users",
            &users[3].id,
            json!({"age": null, "extra": 1.5}),
            Some(1),
        )
        .await?;
    let posts = store
        .create_many(
            "posts",
            (0..1200)
                .map(|i| json!({"author": users[i % 30].id, "score": i % 97, "title": format!("post {i}")}))
                .collect(),
        )
        .await?;
    store
        .create_many(
            "comments",
            (0..5)
                .map(|i| json!({"post": posts[i].id, "text": "nice"}))
                .collect(),
        )
        .await?;
    Ok(())
}

async fn contents(store: &Store) -> litehouse_docs::Result<Vec<(CollectionInfo, Vec<Document>)>> {
    let mut all = Vec::new();
    for info in store.list_collections().await? {
        let mut documents = Vec::new();
        loop {
            let after = documents.last().map(|last: &Document| last.id.clone());
            let batch = store.export(&info.name, after.as_deref(), 500).await?;
            if batch.is_empty() {
                break;
            }
            documents.extend(batch);
        }
        all.push((info, documents));
    }
    Ok(all)
}

/// Whether two SQLite files hold the same collections and documents.
fn same_sqlite(left: &Path, right: &Path) -> Result<bool, litehouse_docs::Error> {
    block_on(async {
        let left = contents(&Store::open_sqlite(left).await?).await?;
        let right = contents(&Store::open_sqlite(right).await?).await?;
        Ok(left == right)
    })
}

fn seeded_file(dir: &Path) -> Result<std::path::PathBuf, litehouse_docs::Error> {
    let path = dir.join("source.db");
    block_on(async { seed(&Store::open_sqlite(&path).await?).await })?;
    Ok(path)
}

#[test]
fn sqlite_to_sqlite_copies_everything_and_verifies() -> TestResult {
    let dir = tempfile::tempdir()?;
    let source = seeded_file(dir.path())?;
    let target = dir.path().join("target.db");
    let (from, to) = (sqlite(&source), sqlite(&target));
    let args = [
        "migrate",
        "--from",
        &from,
        "--to",
        &to,
        "--batch-size",
        "100",
    ];

    let output = litehouse(&args);
    expect_exit(&output, 0);
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("posts: copied 1200 document(s)"),
        "{stdout}"
    );
    assert_eq!(stdout.matches(": ok: documents").count(), 3, "{stdout}");
    assert!(same_sqlite(&source, &target)?);

    // A second run refuses to touch the existing collections, and says what to pass.
    let output = litehouse(&args);
    expect_exit(&output, 2);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("already has collection(s) users, posts, comments")
            && stderr.contains("--if-exists replace"),
        "{stderr}"
    );

    // Resume copies only what is new in the source.
    block_on(async {
        let store = Store::open_sqlite(&source).await?;
        store
            .create_many("posts", (0..7).map(|i| json!({"late": i})).collect())
            .await
    })?;
    let output = litehouse(&[&args[..], &["--if-exists", "resume"]].concat());
    expect_exit(&output, 0);
    let stdout = text(&output.stdout);
    assert!(stdout.contains("posts: copied 7 document(s)"), "{stdout}");
    assert!(stdout.contains("after 1200 already there"), "{stdout}");
    assert!(same_sqlite(&source, &target)?);

    // Replace drops and copies again.
    let output = litehouse(&[&args[..], &["--if-exists", "replace"]].concat());
    expect_exit(&output, 0);
    assert!(text(&output.stdout).contains("posts: copied 1207 document(s)"));
    assert!(same_sqlite(&source, &target)?);
    Ok(())
}

#[test]
fn a_target_that_differs_fails_the_check() -> TestResult {
    let dir = tempfile::tempdir()?;
    let source = seeded_file(dir.path())?;
    let target = dir.path().join("target.db");
    let (from, to) = (sqlite(&source), sqlite(&target));
    expect_exit(&litehouse(&["migrate", "--from", &from, "--to", &to]), 0);
    // The source loses a comment after the copy: resuming copies nothing, and the check
    // finds the target's extra document.
    block_on(async {
        let store = Store::open_sqlite(&source).await?;
        let first = store.export("comments", None, 1).await?;
        store.delete("comments", &first[0].id, None).await
    })?;
    let output = litehouse(&[
        "migrate",
        "--from",
        &from,
        "--to",
        &to,
        "--if-exists",
        "resume",
    ]);
    expect_exit(&output, 1);
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("check comments: MISMATCH: documents 4 / 5"),
        "{stdout}"
    );
    assert!(stdout.contains("check posts: ok"), "{stdout}");
    assert!(text(&output.stderr).contains("differs from the source in comments"));
    Ok(())
}

#[test]
fn bad_stores_are_refused_with_what_to_write() -> TestResult {
    let dir = tempfile::tempdir()?;
    let missing = sqlite(&dir.path().join("missing.db"));
    let target = sqlite(&dir.path().join("target.db"));

    let output = litehouse(&["migrate", "--from", "app.db", "--to", &target]);
    expect_exit(&output, 2);
    assert!(text(&output.stderr).contains("write sqlite:FILE or postgres://"));

    let output = litehouse(&["migrate", "--from", &missing, "--to", &target]);
    expect_exit(&output, 2);
    assert!(text(&output.stderr).contains("does not exist"));

    let output = litehouse(&["migrate", "--from", &target, "--to", &target]);
    expect_exit(&output, 2);
    assert!(text(&output.stderr).contains("are the same store"));
    let source = seeded_file(dir.path())?;
    let same = format!("sqlite:{}/./source.db", dir.path().display());
    let output = litehouse(&["migrate", "--from", &sqlite(&source), "--to", &same]);
    expect_exit(&output, 2);
    assert!(text(&output.stderr).contains("are the same store"));
    // None of these created the target file.
    assert!(!dir.path().join("target.db").exists());
    Ok(())
}

#[test]
fn sqlite_to_postgres_and_back() -> TestResult {
    let Some(url) = std::env::var("LITEHOUSE_TEST_PG")
        .ok()
        .filter(|url| !url.is_empty())
    else {
        let _ = writeln!(
            std::io::stderr(),
            "note: LITEHOUSE_TEST_PG is not set; the SQLite -> PostgreSQL -> SQLite migrate test was skipped"
        );
        return Ok(());
    };
    let schema = format!("lh_migrate_test_{}", std::process::id());
    let separator = if url.contains('?') { '&' } else { '?' };
    let postgres = format!("{url}{separator}schema={schema}");
    let dir = tempfile::tempdir()?;
    let source = seeded_file(dir.path())?;
    let back = dir.path().join("back.db");

    let there = litehouse(&["migrate", "--from", &sqlite(&source), "--to", &postgres]);
    let back_again = litehouse(&["migrate", "--from", &postgres, "--to", &sqlite(&back)]);
    let same = same_sqlite(&source, &back);
    block_on(drop_schema(&url, &schema))?;

    expect_exit(&there, 0);
    expect_exit(&back_again, 0);
    assert_eq!(
        text(&back_again.stdout).matches(": ok: documents").count(),
        3
    );
    assert!(same?, "the round trip through PostgreSQL changed the store");
    Ok(())
}

async fn drop_schema(url: &str, schema: &str) -> Result<(), tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let task = tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await?;
    drop(client);
    let _ = task.await;
    Ok(())
}
