//! Server-side views over HTTP (the feed counted per origin, the full document set) and a
//! device's documents, for the checks.

use super::*;

pub(crate) async fn pull_page(
    http: &reqwest::Client,
    base: &str,
    query: &[(&str, &str)],
) -> PullResponse {
    let response = http
        .get(format!("{base}/api/sync/pull"))
        .bearer_auth(ADMIN)
        .query(query)
        .send()
        .await
        .expect("pull from the server");
    assert_eq!(response.status(), 200);
    response.json().await.expect("a pull response")
}

/// The server's whole change feed: the head cursor and every applied change counted per
/// origin `sync:<device>:<hlc>`.
pub(crate) async fn server_feed(
    http: &reqwest::Client,
    base: &str,
) -> (String, HashMap<String, u64>) {
    let mut per_origin = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("limit", "1000")];
        if let Some(c) = &cursor {
            query.push(("cursor", c));
        }
        let page = pull_page(http, base, &query).await;
        for change in &page.changes {
            let origin = litehouse_sync::sync_origin(&change.device, &change.hlc);
            *per_origin.entry(origin).or_default() += 1;
        }
        cursor = page.next.clone();
        if page.up_to_date {
            return (cursor.expect("a head cursor"), per_origin);
        }
    }
}

/// The server's documents (id → body) from a full re-read, as a device would apply it.
pub(crate) async fn server_documents(http: &reqwest::Client, base: &str) -> BTreeMap<String, Json> {
    let mut docs = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let mut query = vec![("full", "true")];
        if let Some(a) = &after {
            query.push(("after", a));
        }
        let page = pull_page(http, base, &query).await;
        for change in page.changes {
            assert_eq!(change.op, Op::Put, "a full re-read has only live documents");
            if change.collection == COLLECTION {
                docs.insert(change.doc_id, change.document);
            }
        }
        match page.resume {
            Some(token) => after = Some(token),
            None => return docs,
        }
    }
}

/// Every document of a device's synced collection, id → body.
pub(crate) async fn device_documents(store: &Store) -> BTreeMap<String, Json> {
    let mut docs = BTreeMap::new();
    loop {
        // Pages in id order: the next starts after the greatest id so far.
        let after = docs.keys().next_back().cloned();
        let page = store
            .export(COLLECTION, after.as_deref(), 1_000)
            .await
            .unwrap();
        if page.is_empty() {
            return docs;
        }
        docs.extend(page.into_iter().map(|doc| (doc.id, Json::Object(doc.body))));
    }
}
