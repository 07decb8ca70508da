//! `/api/sync/push` and `/api/sync/pull` mounted in the server: statuses, bodies and the
//! device-token rules, on both backends.

use litehouse_server::{Scope, ServerConfig, TokenFile};
use litehouse_sync::{Hlc, Op, OutboxEntry, PullResponse, PushRequest, PushResponse};
use serde_json::{Value as Json, json};

use crate::util::{TestServer, create_collection, expect_error, expect_ok, on_each_backend};

fn doc_id(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

fn push(device: &str, epoch: u64, entries: Vec<(u64, Op, Json)>) -> Json {
    let clock = uhlc::HLC::default();
    let first_seq = entries.first().map_or(1, |entry| entry.0);
    let last_seq = entries.last().map_or(0, |entry| entry.0);
    let request = PushRequest {
        device: device.into(),
        epoch,
        first_seq,
        last_seq,
        entries: entries
            .into_iter()
            .map(|(seq, op, body)| OutboxEntry {
                seq,
                op_id: format!("{device}-{seq}"),
                hlc: Hlc(clock.new_timestamp()),
                collection: "notes".into(),
                doc_id: doc_id(1),
                op,
                body,
            })
            .collect(),
    };
    serde_json::to_value(request).expect("push json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_pull_through_the_server() {
    on_each_backend(|backend| async move {
        let server = TestServer::start(&backend, ServerConfig::default()).await;
        create_collection(&server, json!({"name": "notes"})).await?;

        let batch = push(
            "till-1",
            1,
            vec![
                (1, Op::Put, json!({"text": "a"})),
                (2, Op::Patch, json!({"done": true})),
            ],
        );
        let sent = server.post("/api/sync/push", &batch).send().await?;
        let acked: PushResponse = serde_json::from_value(expect_ok(sent, 200).await)?;
        assert_eq!(acked.acked_seq, 2);
        assert!(acked.rejected.is_empty());
        let stored = server
            .get(&format!("/api/collections/notes/docs/{}", doc_id(1)))
            .send()
            .await?;
        let stored = expect_ok(stored, 200).await;
        assert_eq!(
            (stored["text"].clone(), stored["done"].clone()),
            (json!("a"), json!(true))
        );

        // The same batch again: acknowledged, not applied again.
        let again = server.post("/api/sync/push", &batch).send().await?;
        let again: PushResponse = serde_json::from_value(expect_ok(again, 200).await)?;
        assert_eq!(again.acked_seq, 2);
        let unchanged = server
            .get(&format!("/api/collections/notes/docs/{}", doc_id(1)))
            .send()
            .await?;
        assert_eq!(
            expect_ok(unchanged, 200).await["version"],
            stored["version"]
        );

        // A gap names the sequence expected; a stale epoch is refused.
        let gap = push("till-1", 1, vec![(5, Op::Patch, json!({"x": 1}))]);
        let gap = server.post("/api/sync/push", &gap).send().await?;
        assert_eq!(gap.status(), 409);
        assert_eq!(gap.json::<Json>().await?["expected_seq"], 3);
        let stale = push("till-1", 0, vec![(1, Op::Patch, json!({"x": 1}))]);
        let stale = server.post("/api/sync/push", &stale).send().await?;
        assert_eq!(stale.status(), 403);

        // Bad input gets the server's error shape and changes nothing.
        let malformed = server
            .request(reqwest::Method::POST, "/api/sync/push")
            .header("content-type", "application/json")
            .body("{\"device\": ")
            .send()
            .await?;
        expect_error(malformed, 400, "invalid_request").await;
        let cursor = server.get("/api/sync/pull?cursor=nope").send().await?;
        expect_error(cursor, 400, "invalid_request").await;

        // The pull sees the pushed document's changes.
        let pulled = server.get("/api/sync/pull").send().await?;
        let pulled: PullResponse = serde_json::from_value(expect_ok(pulled, 200).await)?;
        assert!(
            pulled
                .changes
                .iter()
                .any(|change| change.doc_id == doc_id(1)),
            "{pulled:?}"
        );
        assert!(pulled.up_to_date);
        server.stop().await;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_tokens_sync_only_as_their_device() {
    on_each_backend(|backend| async move {
        let config = ServerConfig {
            require_token: true,
            ..ServerConfig::default()
        };
        let server = TestServer::start(&backend, config).await;
        let file = TokenFile::new(server.dir.path().join("tokens.json"));
        let (_, admin) = file.create("a", Scope::Admin)?;
        let (_, reader) = file.create("r", Scope::Read)?;
        let (record, device) = file.create_device("till", "till-2")?;
        assert!(file.create_device("bad", "no spaces").is_err());
        let created = server
            .post("/api/collections", &json!({"name": "notes"}))
            .bearer_auth(&admin)
            .send()
            .await?;
        expect_ok(created, 201).await;

        let own = push("till-2", 1, vec![(1, Op::Put, json!({"text": "b"}))]);
        let none = server.post("/api/sync/push", &own).send().await?;
        expect_error(none, 401, "unauthorized").await;
        let read_only = server
            .post("/api/sync/push", &own)
            .bearer_auth(&reader)
            .send()
            .await?;
        expect_error(read_only, 403, "forbidden").await;
        let other = push("till-9", 1, vec![(1, Op::Put, json!({"text": "c"}))]);
        let other = server
            .post("/api/sync/push", &other)
            .bearer_auth(&device)
            .send()
            .await?;
        expect_error(other, 403, "forbidden").await;
        let ok = server
            .post("/api/sync/push", &own)
            .bearer_auth(&device)
            .send()
            .await?;
        expect_ok(ok, 200).await;
        let pulled = server
            .get("/api/sync/pull")
            .bearer_auth(&device)
            .send()
            .await?;
        expect_ok(pulled, 200).await;
        // A device token may do nothing but sync.
        let list = server
            .get("/api/collections/notes/docs")
            .bearer_auth(&device)
            .send()
            .await?;
        expect_error(list, 403, "forbidden").await;
        // Revoked: refused from the next request.
        assert!(file.revoke(&record.id)?);
        let revoked = server
            .post("/api/sync/push", &own)
            .bearer_auth(&device)
            .send()
            .await?;
        expect_error(revoked, 401, "unauthorized").await;
        server.stop().await;
        Ok(())
    })
    .await;
}
