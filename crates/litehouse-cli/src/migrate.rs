//! `litehouse migrate`: copies a document store (collections, specs, documents) from one
//! backend to another, then checks that both sides hold the same documents.
//!
//! The check compares, per collection, the document count and a checksum that both sides
//! compute the same way from what [`Store::export`] returns: the sum, modulo 2^128, of the
//! first 16 bytes of the SHA-256 of each document's canonical JSON (system fields included,
//! object keys sorted, no whitespace). A sum does not depend on the order of the documents,
//! so the two engines need not agree on one, and it is computed here in the CLI, never by the
//! engines, so their JSON rendering cannot differ.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
// Where a store lives: the same `sqlite:FILE` / `postgres://...?schema=` forms `serve` takes.
use litehouse_docs::{
    CollectionInfo, Document, MAX_BATCH, Paging, PostgresConfig, Query, Sort, Store,
};
use litehouse_server::DbTarget as Location;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

/// Arguments of `litehouse migrate` (its `--help` text is on `Command::Migrate`).
///
/// A PostgreSQL store may name a schema with `?schema=NAME` (default `public`); it is taken
/// out of the URL before the driver sees it.
#[derive(clap::Args, Debug)]
pub(crate) struct MigrateArgs {
    /// The store to copy from: `sqlite:FILE` or `postgres://...[?schema=NAME]`.
    #[arg(long)]
    from: Location,
    /// The store to copy into; created if missing (file, schema).
    #[arg(long)]
    to: Location,
    /// What to do when the target already has a collection of the same name: `refuse`
    /// (nothing is copied), `replace` (drop it with its documents, then copy it again), or
    /// `resume` (continue an interrupted migrate: the spec must be the same, and documents
    /// after the target's greatest id are copied; the check then covers the whole collection).
    #[arg(long, value_enum, default_value_t = IfExists::Refuse)]
    if_exists: IfExists,
    /// Documents per batch: one export and one import transaction each.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=MAX_BATCH as u64))]
    batch_size: u64,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum IfExists {
    Refuse,
    Replace,
    Resume,
}

pub(crate) fn run(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    runtime.block_on(migrate(args))
}

async fn migrate(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let MigrateArgs {
        from,
        to,
        if_exists,
        batch_size,
    } = args;
    anyhow::ensure!(
        !same_store(&from, &to),
        "--from and --to are the same store ({from}): name another target"
    );
    if let Location::Sqlite(path) = &from {
        // Opening a missing file would create an empty store and "migrate" nothing.
        anyhow::ensure!(
            path.exists(),
            "the source {} does not exist: check the path after sqlite:",
            path.display()
        );
    }
    let source = open(&from).await?;
    let collections = source
        .list_collections()
        .await
        .with_context(|| format!("could not list the collections of {from}"))?;
    if collections.is_empty() {
        println!("{from} has no collections: nothing to copy");
        return Ok(ExitCode::SUCCESS);
    }
    let target = open(&to).await?;
    let starts = prepare_target(&target, &collections, if_exists)
        .await
        .with_context(|| format!("could not prepare {to}"))?;
    println!(
        "copying {} collection(s) from {from} to {to}",
        collections.len()
    );
    for (info, start) in collections.iter().zip(starts) {
        copy(&source, &target, &info.name, start, batch_size)
            .await
            .with_context(|| {
                format!(
                    "copying collection {} failed; run again with --if-exists resume to continue, \
                     or --if-exists replace to start it over",
                    info.name
                )
            })?;
    }
    verify(&source, &target, &collections, batch_size).await
}

/// Whether two locations name one store: equal, or the same existing file by another path.
fn same_store(from: &Location, to: &Location) -> bool {
    match (from, to) {
        (Location::Sqlite(from), Location::Sqlite(to)) => {
            from == to
                || matches!(
                    (from.canonicalize(), to.canonicalize()),
                    (Ok(from), Ok(to)) if from == to
                )
        }
        _ => from == to,
    }
}

async fn open(location: &Location) -> anyhow::Result<Store> {
    match location {
        Location::Sqlite(path) => Store::open_sqlite(path)
            .await
            .with_context(|| format!("could not open {location}")),
        Location::Postgres { url, schema } => Store::open_postgres_with(PostgresConfig {
            url: url.clone(),
            schema: schema.clone(),
            pool_size: 4,
        })
        .await
        .with_context(|| {
            format!("could not open {location}: is the server running, and are the URL and schema right?")
        }),
    }
}

/// Where copying a collection starts: after this id (resume), or from the first document.
type Start = Option<String>;

/// Applies `if_exists` to the collections the target already has, creates the missing ones
/// in dependency order, and says where each copy starts.
async fn prepare_target(
    target: &Store,
    collections: &[CollectionInfo],
    if_exists: IfExists,
) -> anyhow::Result<Vec<Start>> {
    let existing = target.list_collections().await?;
    let clashing: Vec<&CollectionInfo> = existing
        .iter()
        .filter(|info| collections.iter().any(|wanted| wanted.name == info.name))
        .collect();
    if if_exists == IfExists::Refuse && !clashing.is_empty() {
        let names: Vec<&str> = clashing.iter().map(|info| info.name.as_str()).collect();
        anyhow::bail!(
            "the target already has collection(s) {}: pass --if-exists replace to drop and copy \
             them again, or --if-exists resume to continue an interrupted migrate",
            names.join(", ")
        );
    }
    if if_exists == IfExists::Replace {
        // The target lists referenced collections first: drop in reverse, dependents first.
        for info in clashing.iter().rev() {
            target.drop_collection(&info.name).await.with_context(|| {
                format!(
                    "could not drop {} on the target (drop what references it first)",
                    info.name
                )
            })?;
        }
    }
    let mut starts = Vec::new();
    for info in collections {
        let found = existing.iter().find(|other| other.name == info.name);
        match found {
            Some(other) if if_exists == IfExists::Resume => {
                anyhow::ensure!(
                    other.spec == info.spec,
                    "collection {} has another spec on the target: use --if-exists replace",
                    info.name
                );
                starts.push(last_id(target, &info.name).await?);
            }
            _ => {
                target
                    .create_collection(&info.name, info.spec.clone())
                    .await
                    .with_context(|| format!("could not create collection {}", info.name))?;
                starts.push(None);
            }
        }
    }
    Ok(starts)
}

/// The greatest id in a collection, if any.
async fn last_id(store: &Store, collection: &str) -> anyhow::Result<Option<String>> {
    let query = Query {
        sort: vec![Sort::desc("id")],
        paging: Paging::Page {
            page: 1,
            per_page: 1,
        },
        count: false,
        ..Query::default()
    };
    let page = store.find(collection, &query).await?;
    Ok(page.items.into_iter().next().map(|document| document.id))
}

/// Copies the documents of one collection after `start`, reading the next batch from the
/// source while the target writes the current one.
async fn copy(
    source: &Store,
    target: &Store,
    collection: &str,
    start: Start,
    batch_size: u64,
) -> anyhow::Result<()> {
    let total = source.count(collection, None).await?;
    let already = match start {
        Some(_) => target.count(collection, None).await?,
        None => 0,
    };
    let bar = ProgressBar::new(total).with_prefix(collection.to_owned());
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>16} [{elapsed_precise}] {bar:30} {human_pos}/{human_len} documents, eta {eta}",
        )
        .expect("valid progress template"),
    );
    bar.set_position(already);
    let (reader, mut receiver) = spawn_reader(source, collection, start, batch_size);
    let started = Instant::now();
    let mut copied = 0;
    while let Some(batch) = receiver.recv().await {
        let batch = batch.context("could not read from the source")?;
        if batch.is_empty() {
            break;
        }
        copied += target
            .import(collection, batch)
            .await
            .context("could not write to the target")?;
        bar.set_position(already + copied);
    }
    reader.await.context("the source reader stopped")?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{collection}: copied {copied} document(s) in {seconds:.1} s ({:.0} documents/s){}",
        copied as f64 / seconds.max(1e-9),
        if already > 0 {
            format!(", after {already} already there")
        } else {
            String::new()
        }
    );
    Ok(())
}

type Batch = litehouse_docs::Result<Vec<Document>>;

/// Exports `collection` after `start` in a task of its own, sending each batch (the last one
/// empty, or an error) on a channel.
fn spawn_reader(
    source: &Store,
    collection: &str,
    start: Start,
    batch_size: u64,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::mpsc::Receiver<Batch>,
) {
    // Two batches in flight at most: enough to overlap reading and writing.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Batch>(2);
    let (source, collection) = (source.clone(), collection.to_owned());
    let reader = tokio::spawn(async move {
        let mut after = start;
        loop {
            let batch = source
                .export(&collection, after.as_deref(), batch_size)
                .await;
            let next = match &batch {
                Ok(documents) => documents.last().map(|last| last.id.clone()),
                Err(_) => None,
            };
            let stop = next.is_none();
            // A closed channel means the writer gave up; its error is reported there.
            if sender.send(batch).await.is_err() || stop {
                return;
            }
            after = next;
        }
    });
    (reader, receiver)
}

/// What the check compares for one collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Summary {
    documents: u64,
    checksum: u128,
}

/// Compares every collection on both sides, prints one line each, and returns exit code 1
/// when any differs.
async fn verify(
    source: &Store,
    target: &Store,
    collections: &[CollectionInfo],
    batch_size: u64,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let mut mismatched = Vec::new();
    for info in collections {
        let (ours, theirs) = tokio::try_join!(
            summarize(source, &info.name, batch_size),
            summarize(target, &info.name, batch_size)
        )
        .with_context(|| format!("could not check collection {}", info.name))?;
        let verdict = if ours == theirs {
            "ok"
        } else {
            mismatched.push(info.name.as_str());
            "MISMATCH"
        };
        println!(
            "check {}: {verdict}: documents {} / {}, checksum {:032x} / {:032x} (source / target)",
            info.name, ours.documents, theirs.documents, ours.checksum, theirs.checksum
        );
    }
    println!(
        "checked {} collection(s) in {:.1} s",
        collections.len(),
        started.elapsed().as_secs_f64()
    );
    if mismatched.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "litehouse: the target differs from the source in {}: was the source written during the \
         migrate? Run again with --if-exists replace to copy afresh",
        mismatched.join(", ")
    );
    Ok(ExitCode::FAILURE)
}

/// Streams a collection in id order and sums the document hashes.
async fn summarize(store: &Store, collection: &str, batch_size: u64) -> anyhow::Result<Summary> {
    let mut summary = Summary {
        documents: 0,
        checksum: 0,
    };
    let mut after: Option<String> = None;
    loop {
        let batch = store
            .export(collection, after.as_deref(), batch_size)
            .await?;
        let Some(last) = batch.last() else {
            return Ok(summary);
        };
        after = Some(last.id.clone());
        for document in &batch {
            summary.documents += 1;
            summary.checksum = summary.checksum.wrapping_add(document_hash(document));
        }
    }
}

/// The first 16 bytes (little-endian) of the SHA-256 of the document's canonical JSON.
fn document_hash(document: &Document) -> u128 {
    let mut text = Vec::new();
    write_canonical(&mut text, &document.to_json());
    let digest = Sha256::digest(&text);
    let mut first = [0_u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_le_bytes(first)
}

/// JSON with object keys sorted by code point and no whitespace; strings and numbers as
/// serde_json writes them.
fn write_canonical(out: &mut Vec<u8>, value: &Json) {
    match value {
        Json::Object(object) => {
            let mut keys: Vec<&String> = object.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(out, &Json::String(key.clone()));
                out.push(b':');
                write_canonical(out, &object[key]);
            }
            out.push(b'}');
        }
        Json::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(out, item);
            }
            out.push(b']');
        }
        scalar => write_scalar(out, scalar),
    }
}

fn write_scalar(out: &mut Vec<u8>, scalar: &Json) {
    // Writing into a Vec cannot fail, and a scalar always serializes.
    serde_json::to_writer(out, scalar).expect("a JSON scalar serializes");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        assert_eq!(
            "sqlite:a/b.db".parse::<Location>(),
            Ok(Location::Sqlite("a/b.db".into()))
        );
        assert_eq!(
            "sqlite:///tmp/x.db".parse::<Location>(),
            Ok(Location::Sqlite("/tmp/x.db".into()))
        );
        assert_eq!(
            "postgres://u:pw@h/db?sslmode=disable&schema=mig".parse::<Location>(),
            Ok(Location::Postgres {
                url: "postgres://u:pw@h/db?sslmode=disable".into(),
                schema: "mig".into()
            })
        );
        assert!("app.db".parse::<Location>().is_err());
        let shown = "postgres://u:pw@h/db"
            .parse::<Location>()
            .map(|l| l.to_string());
        assert_eq!(
            shown.as_deref(),
            Ok("postgres://u:***@h/db (schema public)")
        );
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let value = serde_json::json!({"b": [1, {"d": 1.5, "c": "x\"y"}], "a": null});
        let mut out = Vec::new();
        write_canonical(&mut out, &value);
        assert_eq!(
            String::from_utf8(out).as_deref(),
            Ok(r#"{"a":null,"b":[1,{"c":"x\"y","d":1.5}]}"#)
        );
    }
}
