//! The in-process side of the change feed: one tailer per store reads the log and fans each
//! change out to the live subscribers; a new subscriber catches up alone, then joins.
//!
//! - `mod.rs`: the feed's shared state (the [`Hub`] of live subscribers and its ring), the
//!   counters, and how readers wait for this process's own writes.
//! - `tailer.rs`: the shared tailer task: reads the log after each wake-up and fans out.
//! - `subscribe.rs`: [`Store::subscribe`], a subscriber's catch-up, joining the live set
//!   without gap or duplicate, and [`ChangeStream`].

mod subscribe;
mod tailer;
#[cfg(test)]
mod tests;

use super::*;

pub use subscribe::ChangeStream;
use tailer::supervise;

/// Process-wide state of the feed, shared by clones of a [`Store`] and by its streams.
#[derive(Debug, Clone)]
pub(crate) struct Feed {
    shared: Arc<FeedShared>,
}

#[derive(Debug)]
struct FeedShared {
    /// Bumped after every committed write; the tailer watches it. Dropping it (the last
    /// store clone and stream gone) ends the tailer.
    wake: watch::Sender<u64>,
    /// Committed writes, to pace pruning.
    writes: AtomicU64,
    /// The live subscribers, the ring of recent changes and the counters.
    hub: Arc<Hub>,
    /// The tailer task (its supervisor), started by the first subscription; aborted on drop.
    tailer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for FeedShared {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.tailer).take() {
            task.abort();
        }
    }
}

impl Default for Feed {
    fn default() -> Feed {
        Feed {
            shared: Arc::new(FeedShared {
                wake: watch::Sender::new(0),
                writes: AtomicU64::new(0),
                hub: Arc::new(Hub::default()),
                tailer: Mutex::new(None),
            }),
        }
    }
}

impl Feed {
    /// Called after a write transaction's COMMIT returned.
    pub(crate) fn committed(&self) {
        self.shared
            .wake
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    /// Called after a PostgreSQL write transaction's COMMIT returned, with the transaction's
    /// id (0 when it recorded no change).
    pub(crate) fn committed_xid(&self, xid: u64) {
        self.shared.hub.local_xid.fetch_max(xid, Ordering::Relaxed);
    }

    /// Notes the `xmin` a read of the log saw ([`Bounds::xmin`]).
    pub(super) fn saw_xmin(&self, xmin: u64) {
        self.shared.hub.saw_xmin(xmin);
    }

    /// The retention to enforce in this write's transaction, once per [`PRUNE_EVERY`] writes.
    pub(crate) fn prune_ticket(&self, config: &StoreConfig) -> Option<Retention> {
        let writes = self.shared.writes.fetch_add(1, Ordering::Relaxed);
        if writes % PRUNE_EVERY == PRUNE_EVERY - 1 {
            Some(Retention::of(config))
        } else {
            None
        }
    }

    /// Counts one read of the log table (any reader).
    pub(super) fn count_read(&self) {
        self.shared.hub.log_reads.fetch_add(1, Ordering::Relaxed);
    }

    /// Starts the tailer unless it is running. The tailer reads with `store`'s backend but
    /// holds no [`Feed`] of its own, so it never keeps the feed alive.
    fn ensure_tailer(&self, store: &Store, handle: &tokio::runtime::Handle) {
        let mut slot = lock(&self.shared.tailer);
        if slot.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        let reader = Store {
            backend: store.backend.clone(),
            config: store.config,
            specs: store.specs.clone(),
            feed: Feed {
                shared: Arc::new(FeedShared {
                    wake: watch::Sender::new(0),
                    writes: AtomicU64::new(0),
                    hub: Arc::new(Hub::default()),
                    tailer: Mutex::new(None),
                }),
            },
        };
        let hub = Arc::clone(&self.shared.hub);
        let wake = self.shared.wake.subscribe();
        *slot = Some(handle.spawn(supervise(reader, hub, wake)));
    }
}

/// Locks `mutex`, recovering from a panic in another holder (the state it guards stays
/// consistent at every unlock point, and a panicked tailer resets its subscribers).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Hub {
    fn saw_xmin(&self, xmin: u64) {
        self.readable_below.fetch_max(xmin, Ordering::Relaxed);
    }

    /// Whether a change this process committed is not readable yet (PostgreSQL).
    fn waiting_on_local(&self) -> bool {
        let local = self.local_xid.load(Ordering::Relaxed);
        local > 0 && local >= self.readable_below.load(Ordering::Relaxed)
    }
}

/// Longest [`Store::settle_feed`] waits.
const SETTLE_LIMIT: Duration = Duration::from_secs(5);

/// Changes the ring keeps for joining subscribers.
const RING: usize = 4096;

/// Changes the tailer reads per query.
const TAIL_BATCH: usize = 1000;

/// The tailer's first quick look while a local commit is not readable yet.
const SOON: Duration = Duration::from_millis(2);

/// Failed reads in a row after which the tailer resets its subscribers.
const TAIL_ATTEMPTS: u32 = 3;

/// The fan-out: what the tailer has read, and who receives it.
///
/// Invariant (whenever `position` is `Some(p)`): `ring` holds exactly the changes with
/// cursors in `(ring_base, p]`, in cursor order, and every live subscriber has been sent
/// (or deliberately filtered out) every change up to its own `seen`, with `seen <= p` or
/// the tailer skipping changes at or below `seen`.
#[derive(Debug, Default)]
struct Hub {
    state: Mutex<HubState>,
    /// Wakes the tailer when the first subscriber positions the hub.
    nudge: tokio::sync::Notify,
    /// Reads of the change log table by every reader of this store.
    log_reads: AtomicU64,
    /// Reads by the tailer alone.
    tailer_reads: AtomicU64,
    /// Open [`ChangeStream`]s.
    subscribers: AtomicUsize,
    /// Events handed to subscribers' queues.
    delivered: AtomicU64,
    /// Subscribers reset (queue overflow or a failed tailer read).
    resets: AtomicU64,
    /// The fullest live subscriber queue at the last fan-out.
    max_queue_depth: AtomicUsize,
    /// [`FeedStats::held_back`] at the tailer's last read.
    held_back: AtomicU64,
    /// PostgreSQL: the newest transaction id among this process's committed writes that
    /// recorded changes.
    local_xid: AtomicU64,
    /// PostgreSQL: the newest `xmin` a read of this process saw (every transaction below it
    /// had finished then, so their changes are readable).
    readable_below: AtomicU64,
    /// Test hook: the tailer's next fan-out panics.
    #[cfg(test)]
    panic_next: std::sync::atomic::AtomicBool,
    /// Test hook: this many of the tailer's next reads fail.
    #[cfg(test)]
    fail_reads: AtomicUsize,
}

#[derive(Debug, Default)]
struct HubState {
    /// The last cursor the tailer read up to (`None`: not following; nobody is live).
    position: Option<Cursor>,
    /// The cursor before the ring's first change.
    ring_base: Cursor,
    ring: VecDeque<Arc<Change>>,
    live: Vec<Arc<Live>>,
    /// The log's head when the tailer last read.
    head: Cursor,
}

/// One live subscriber.
#[derive(Debug)]
struct Live {
    filter: Arc<ChangeFilter>,
    state: Mutex<LiveState>,
}

#[derive(Debug)]
struct LiveState {
    /// `None` once ended.
    sender: Option<mpsc::Sender<Result<ChangeEvent>>>,
    /// Every change up to this cursor was considered (sent or filtered out).
    seen: Cursor,
    /// The last cursor actually delivered (a change or the up-to-date mark).
    delivered: Cursor,
    reset: Arc<Mutex<Option<Cursor>>>,
}

impl LiveState {
    /// Ends this subscriber with a reset at its last delivered cursor.
    fn reset(&mut self, hub: &Hub) {
        if self.sender.is_some() {
            // The slot first: the stream reads it once its queue is closed.
            *lock(&self.reset) = Some(self.delivered);
            hub.resets.fetch_add(1, Ordering::Relaxed);
            self.sender = None;
        }
    }
}

/// Counters of a store's change feed in this process ([`Store::feed_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FeedStats {
    /// Open subscriptions (catching up or live).
    pub subscribers: usize,
    /// Subscribers served by the shared tailer.
    pub live: usize,
    /// Queries that read the change log table, by every reader ([`Store::changes_since`],
    /// catch-up pages, the tailer).
    pub log_reads: u64,
    /// Of those, the shared tailer's reads: one per wake-up (and page), however many
    /// subscribers there are.
    pub tailer_reads: u64,
    /// Events (changes and up-to-date marks) put in subscribers' queues.
    pub delivered: u64,
    /// Subscribers ended with [`ChangeEvent::Reset`].
    pub resets: u64,
    /// The fullest live subscriber queue at the last fan-out.
    pub max_queue_depth: usize,
    /// Where the tailer has read up to (`None` when nobody is live).
    pub tailer_position: Option<Cursor>,
    /// The log's head when the tailer last read.
    pub tailer_head: Cursor,
    /// PostgreSQL: committed changes the tailer could not read yet at its last read, because
    /// a transaction that began writing before them was still running (0 on SQLite). Their
    /// subscribers get them once it ends; a value that stays up means a long write
    /// transaction somewhere on the server. Counted up to 100,000 (each tailer read counts
    /// them, and a long hold must not make every read longer): 100,000 means at least that.
    pub held_back: u64,
}

impl FeedStats {
    /// How many changes the tailer had not read yet when it last read
    /// (`tailer_head - tailer_position`); compare with [`Store::head`] for the lag now. On
    /// PostgreSQL this counts numbers taken from the log's sequence in between, which
    /// (rolled-back writes aside) is the number of changes.
    pub fn lag(&self) -> u64 {
        self.lag_behind(self.tailer_head)
    }

    /// How many changes the tailer has not read yet of a log whose head is `head` (from
    /// [`Store::head`]); 0 while it follows nothing.
    ///
    /// ```
    /// use litehouse_docs::{Cursor, FeedStats};
    /// let stats = FeedStats { tailer_position: Some("40".parse()?), ..FeedStats::default() };
    /// assert_eq!(stats.lag_behind("42".parse()?), 2);
    /// assert_eq!(FeedStats::default().lag_behind("42".parse()?), 0);
    /// # Ok::<(), litehouse_docs::Error>(())
    /// ```
    pub fn lag_behind(&self, head: Cursor) -> u64 {
        self.tailer_position
            .map_or(0, |position| head.seq().saturating_sub(position.seq()))
    }
}

impl Store {
    /// PostgreSQL: waits until every change this process's returned writes recorded is
    /// readable, that is until every transaction that began writing before the newest of
    /// them has finished (usually at once, or within the time concurrent writes take to
    /// commit), for at most [`SETTLE_LIMIT`]. Readers call it first so that a change whose
    /// write returned is in what they read next. A write transaction that stays open longer
    /// holds the change back ([`FeedStats::held_back`]); the read then returns without it, and
    /// a later read has it. Errors are left to the read that follows.
    pub(super) async fn settle_feed(&self) {
        let Backend::Postgres { pool, .. } = &self.backend else {
            return;
        };
        let hub = &self.feed.shared.hub;
        let started = tokio::time::Instant::now();
        let mut pause = SOON;
        while hub.waiting_on_local() && started.elapsed() < SETTLE_LIMIT {
            let Ok(client) = pool.get().await else {
                return;
            };
            let Ok(row) = client
                .query_one(&format!("SELECT CAST({} AS TEXT)", super::log::XMIN), &[])
                .await
            else {
                return;
            };
            drop(client);
            let Ok(xmin) = row.get::<_, String>(0).parse::<u64>() else {
                return;
            };
            hub.saw_xmin(xmin);
            if hub.waiting_on_local() {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(POLL_INTERVAL);
            }
        }
    }
}
