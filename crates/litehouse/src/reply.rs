//! One reply channel type for both blocking and async callers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, TryRecvError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Where a result goes. Blocking callers wait on a std channel (safe to use anywhere), async
/// callers on a tokio oneshot; the worker threads do not care which.
#[derive(Debug)]
pub(crate) enum Reply<T> {
    Blocking(mpsc::SyncSender<Result<T>>),
    Async(tokio::sync::oneshot::Sender<Result<T>>),
}

impl<T> Reply<T> {
    pub(crate) fn send(self, result: Result<T>) {
        // A caller that stopped waiting (a dropped future) no longer wants the result; the
        // work itself has been done or rolled back either way. The undelivered value is
        // dropped here, on a litehouse thread, so a `Drop` of user code that panics must not
        // take the thread with it.
        let undelivered = match self {
            Reply::Blocking(sender) => sender.send(result).err().map(|failed| failed.0),
            Reply::Async(sender) => sender.send(result).err(),
        };
        if let Some(result) = undelivered {
            crate::worker::contain_drop(result);
        }
    }
}

/// The receiving half, for a blocking caller that sleeps until the result comes.
pub(crate) fn blocking<T>() -> (Reply<T>, impl FnOnce() -> Result<T>) {
    blocking_polling(Duration::ZERO)
}

/// The receiving half, for a blocking caller that first polls for the result for up to
/// `poll` (see [`BlockingWait`](crate::BlockingWait)), then sleeps.
pub(crate) fn blocking_polling<T>(poll: Duration) -> (Reply<T>, impl FnOnce() -> Result<T>) {
    let (sender, receiver) = mpsc::sync_channel(1);
    let wait = move || {
        poll_for(&receiver, poll, &POLLING)
            .unwrap_or_else(|| receiver.recv().unwrap_or(Err(Error::Closed)))
    };
    (Reply::Blocking(sender), wait)
}

/// Whether a thread of this process is polling for its result. One at a time: a second
/// poller would take CPU from the writer and from callers that have work to do, and one is
/// enough to keep a CPU awake through a commit.
static POLLING: AtomicBool = AtomicBool::new(false);

/// Polls `receiver`, yielding the CPU between polls, for up to `budget` while this thread
/// holds the process's polling turn. `None`: no result yet (or another thread has the turn,
/// or `budget` is zero); the caller then sleeps on the channel.
fn poll_for<T>(
    receiver: &mpsc::Receiver<Result<T>>,
    budget: Duration,
    polling: &AtomicBool,
) -> Option<Result<T>> {
    if budget.is_zero() {
        return None;
    }
    let _turn = PollingTurn::take(polling)?;
    // `Config::validate` bounds the budget; a budget past the clock's end polls until the
    // answer comes.
    let deadline = Instant::now().checked_add(budget);
    loop {
        match receiver.try_recv() {
            Ok(result) => return Some(result),
            Err(TryRecvError::Disconnected) => return Some(Err(Error::Closed)),
            Err(TryRecvError::Empty) if deadline.is_some_and(|end| Instant::now() >= end) => {
                return None;
            }
            Err(TryRecvError::Empty) => std::thread::yield_now(),
        }
    }
}

/// The polling turn; given back on drop.
struct PollingTurn<'a>(&'a AtomicBool);

impl<'a> PollingTurn<'a> {
    fn take(polling: &'a AtomicBool) -> Option<PollingTurn<'a>> {
        polling
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| PollingTurn(polling))
    }
}

impl Drop for PollingTurn<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The receiving half, for an async caller.
pub(crate) fn asynchronous<T>() -> (Reply<T>, tokio::sync::oneshot::Receiver<Result<T>>) {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    (Reply::Async(sender), receiver)
}

/// Waits for an async reply; a dropped sender means the database went away.
pub(crate) async fn wait<T>(receiver: tokio::sync::oneshot::Receiver<Result<T>>) -> Result<T> {
    receiver.await.unwrap_or(Err(Error::Closed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_already_sent_is_taken_by_polling_and_the_turn_is_given_back() {
        let polling = AtomicBool::new(false);
        let (sender, receiver) = mpsc::sync_channel(1);
        sender.send(Ok(7)).unwrap();
        let got = poll_for(&receiver, Duration::from_secs(10), &polling);
        assert_eq!(got.unwrap().unwrap(), 7);
        assert!(!polling.load(Ordering::Relaxed));
    }

    #[test]
    fn polling_gives_up_after_its_budget_and_the_wait_then_sleeps_for_the_result() {
        let polling = AtomicBool::new(false);
        let (sender, receiver) = mpsc::sync_channel::<Result<i32>>(1);
        let started = Instant::now();
        assert!(poll_for(&receiver, Duration::from_millis(2), &polling).is_none());
        assert!(started.elapsed() >= Duration::from_millis(2));
        assert!(!polling.load(Ordering::Relaxed));
        // The whole wait: a result that comes long after the budget still arrives.
        let (reply, wait) = blocking_polling::<i32>(Duration::from_micros(100));
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            reply.send(Ok(9));
        });
        assert_eq!(wait().unwrap(), 9);
        late.join().unwrap();
        drop(sender);
    }

    #[test]
    fn a_dropped_sender_is_closed_whether_polling_or_sleeping() {
        let polling = AtomicBool::new(false);
        let (sender, receiver) = mpsc::sync_channel::<Result<i32>>(1);
        drop(sender);
        let got = poll_for(&receiver, Duration::from_secs(10), &polling);
        assert!(matches!(got, Some(Err(Error::Closed))));
        for poll in [Duration::ZERO, Duration::from_micros(100)] {
            let (reply, wait) = blocking_polling::<i32>(poll);
            drop(reply);
            assert!(matches!(wait(), Err(Error::Closed)));
        }
    }

    #[test]
    fn only_one_thread_polls_at_a_time() {
        let polling = AtomicBool::new(false);
        let turn = PollingTurn::take(&polling).unwrap();
        assert!(PollingTurn::take(&polling).is_none());
        // Nothing sent and a long budget: without the turn it returns at once, to sleep.
        let (_sender, receiver) = mpsc::sync_channel::<Result<i32>>(1);
        let started = Instant::now();
        assert!(poll_for(&receiver, Duration::from_secs(10), &polling).is_none());
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(turn);
        assert!(PollingTurn::take(&polling).is_some());
    }

    #[test]
    fn a_zero_budget_never_takes_the_turn() {
        let polling = AtomicBool::new(false);
        let (sender, receiver) = mpsc::sync_channel(1);
        sender.send(Ok(1)).unwrap();
        assert!(poll_for(&receiver, Duration::ZERO, &polling).is_none());
        assert!(!polling.load(Ordering::Relaxed));
    }
}
