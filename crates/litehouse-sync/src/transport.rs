//! The HTTP transport: runs the machine's requests with reqwest, each under its deadline.
//!
//! Endpoints (relative to the server's base URL):
//! - `POST /api/sync/push` with a [`PushRequest`]: 200 [`PushResponse`], 409 [`GapResponse`],
//!   403 [`StaleEpochResponse`];
//! - `GET /api/sync/pull?cursor=C` (no `cursor`: from the start): 200 [`PullResponse`],
//!   410 when the cursor is past retention;
//! - `GET /api/sync/pull?full=true[&after=TOKEN]`: the full current state as `Put` changes
//!   plus the head cursor (the re-read after a 410), in pages chained by `resume` tokens.

use std::time::Duration;

use crate::machine::{PullFailure, PushFailure};
use crate::protocol::{GapResponse, PullResponse, PushRequest, PushResponse, StaleEpochResponse};

/// An HTTP client for one server.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl HttpTransport {
    /// A transport for the server at `base` (e.g. `http://127.0.0.1:8080`). `connect_timeout`
    /// bounds connection set-up; every request also gets its own overall timeout.
    pub fn new(base: impl Into<String>, connect_timeout: Duration) -> reqwest::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .build()?;
        Ok(HttpTransport {
            client,
            base: base.into().trim_end_matches('/').to_owned(),
            token: None,
        })
    }

    /// As [`HttpTransport::new`], but every request opens a new connection (no keep-alive
    /// pool): for tests that switch faults per connection, and for networks where idle
    /// connections die silently.
    pub fn without_pooling(
        base: impl Into<String>,
        connect_timeout: Duration,
    ) -> reqwest::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .pool_max_idle_per_host(0)
            .build()?;
        Ok(HttpTransport {
            client,
            base: base.into().trim_end_matches('/').to_owned(),
            token: None,
        })
    }

    /// Send `Authorization: Bearer <token>` with every request.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    fn auth(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// Push one batch; the whole exchange is bounded by `timeout`.
    pub async fn push(
        &self,
        request: &PushRequest,
        timeout: Duration,
    ) -> Result<PushResponse, PushFailure> {
        let rb = self
            .client
            .post(format!("{}/api/sync/push", self.base))
            .timeout(timeout)
            .json(request);
        let resp = self.auth(rb).send().await.map_err(push_failure)?;
        let status = resp.status().as_u16();
        let retry_after = retry_after(&resp);
        let body = resp.bytes().await.map_err(push_failure)?;
        let parse_err = |e: serde_json::Error| {
            PushFailure::Transport(format!("unreadable {status} response: {e}"))
        };
        match status {
            200 => serde_json::from_slice(&body).map_err(parse_err),
            409 => Err(PushFailure::Gap(
                serde_json::from_slice::<GapResponse>(&body).map_err(parse_err)?,
            )),
            403 => Err(PushFailure::StaleEpoch(
                serde_json::from_slice::<StaleEpochResponse>(&body).map_err(parse_err)?,
            )),
            _ => Err(PushFailure::Server {
                status,
                message: String::from_utf8_lossy(&body).into_owned(),
                retry_after,
            }),
        }
    }

    /// Fetch changes after `cursor`, or the full state with `full`; bounded by `timeout`.
    ///
    /// A full re-read is served in pages (`resume` tokens); this fetches every page and
    /// returns them as one response whose `next` is the head taken before the first page.
    /// Each page gets `timeout`; the caller bounds the whole exchange.
    pub async fn pull(
        &self,
        cursor: Option<&str>,
        full: bool,
        timeout: Duration,
    ) -> Result<PullResponse, PullFailure> {
        if !full {
            let query: Vec<(&str, &str)> = cursor.map(|c| ("cursor", c)).into_iter().collect();
            return self.pull_page(&query, timeout).await;
        }
        let mut all = self.pull_page(&[("full", "true")], timeout).await?;
        while let Some(token) = all.resume.take() {
            let page = self
                .pull_page(&[("full", "true"), ("after", &token)], timeout)
                .await?;
            all.changes.extend(page.changes);
            all.resume = page.resume;
        }
        Ok(all)
    }

    async fn pull_page(
        &self,
        query: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<PullResponse, PullFailure> {
        let rb = self
            .client
            .get(format!("{}/api/sync/pull", self.base))
            .timeout(timeout)
            .query(query);
        let resp = self
            .auth(rb)
            .send()
            .await
            .map_err(|e| PullFailure::Transport(describe(&e)))?;
        let status = resp.status().as_u16();
        let retry_after = retry_after(&resp);
        let body = resp
            .bytes()
            .await
            .map_err(|e| PullFailure::Transport(describe(&e)))?;
        match status {
            200 => serde_json::from_slice(&body)
                .map_err(|e| PullFailure::Transport(format!("unreadable pull response: {e}"))),
            410 => Err(PullFailure::Expired),
            _ => Err(PullFailure::Server {
                status,
                message: String::from_utf8_lossy(&body).into_owned(),
                retry_after,
            }),
        }
    }
}

/// A failed exchange: [`PushFailure::TimedOut`] when it ran out of time (so the machine
/// shrinks the batch), otherwise the transport error.
fn push_failure(e: reqwest::Error) -> PushFailure {
    if e.is_timeout() {
        PushFailure::TimedOut
    } else {
        PushFailure::Transport(describe(&e))
    }
}

/// Most seconds of a `Retry-After` taken as they are (the machine caps the wait anyway).
const MAX_RETRY_AFTER_SECS: u64 = 3_600;

/// A `Retry-After` in whole seconds, in milliseconds. The HTTP-date form and anything
/// unreadable count as absent (the machine's own backoff applies).
fn retry_after(resp: &reqwest::Response) -> Option<u64> {
    let text = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    let seconds: u64 = text.trim().parse().ok()?;
    Some(seconds.min(MAX_RETRY_AFTER_SECS) * 1_000)
}

fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut msg = if e.is_timeout() {
        "request timed out".to_owned()
    } else {
        e.to_string()
    };
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}
