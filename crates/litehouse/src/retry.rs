//! Retrying when another process holds SQLite's lock: exponential backoff with jitter.

use std::time::{Duration, Instant};

use backon::{BlockingRetryable, ExponentialBuilder};

use crate::error::{Error, Result};
use crate::stats::StatsCollector;

/// Backoff policy for lock contention with other processes.
///
/// Inside one process the writer thread is the only writer, so SQLITE_BUSY can only come from
/// another process (a CLI, a backup tool, a second program). SQLite's own busy handler waits a
/// short slice; past that, litehouse backs off with jitter until `budget` is spent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BusyRetry {
    pub(crate) budget: Duration,
}

impl BusyRetry {
    fn backoff(self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(1))
            .with_max_delay(Duration::from_millis(100))
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(usize::MAX)
            .with_total_delay(Some(self.budget))
    }

    /// The delay a caller who got [`Error::Busy`] should wait before trying again.
    pub(crate) fn retry_after(self) -> Duration {
        (self.budget / 10).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    /// Runs `operation`, retrying while it reports lock contention. Past the budget the
    /// contention becomes [`Error::Busy`]; other errors return at once.
    pub(crate) fn run<T>(
        self,
        stats: &StatsCollector,
        operation: impl FnMut() -> Result<T>,
    ) -> Result<T> {
        let started = Instant::now();
        let result = operation
            .retry(self.backoff())
            .sleep(std::thread::sleep)
            .when(Error::is_lock_contention)
            .notify(|_, delay| stats.busy_retry(delay))
            .call();
        match result {
            // Not counted in `busy_errors` here: that counts requests, and one failed BEGIN
            // fails a whole group of them; the writer counts each request it answers `Busy`.
            Err(err) if err.is_lock_contention() => Err(Error::Busy {
                waited: started.elapsed(),
                retry_after: self.retry_after(),
            }),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy() -> Error {
        Error::from(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        ))
    }

    #[test]
    fn retries_contention_then_succeeds() {
        let stats = StatsCollector::new(1);
        let mut attempts = 0;
        let retry = BusyRetry {
            budget: Duration::from_secs(1),
        };
        let result = retry.run(&stats, || {
            attempts += 1;
            if attempts < 4 {
                Err(busy())
            } else {
                Ok(attempts)
            }
        });
        assert_eq!(result.unwrap(), 4);
        assert_eq!(stats.snapshot(0).locks.busy_retries, 3);
    }

    #[test]
    fn gives_up_with_busy_after_budget() {
        let stats = StatsCollector::new(1);
        let retry = BusyRetry {
            budget: Duration::from_millis(30),
        };
        let err = retry
            .run(&stats, || -> Result<()> { Err(busy()) })
            .unwrap_err();
        assert!(err.is_busy(), "{err}");
        assert!(err.retry_after().is_some());
        assert_eq!(
            stats.snapshot(0).locks.busy_errors,
            0,
            "counted per request by callers"
        );
    }

    #[test]
    fn other_errors_are_not_retried() {
        let stats = StatsCollector::new(1);
        let mut attempts = 0;
        let retry = BusyRetry {
            budget: Duration::from_secs(1),
        };
        let err = retry
            .run(&stats, || -> Result<()> {
                attempts += 1;
                Err(Error::NoRows)
            })
            .unwrap_err();
        assert!(matches!(err, Error::NoRows));
        assert_eq!(attempts, 1);
    }
}
