//! The one way litehouse runs a background thread, and the panic containment its threads use.
//!
//! Every thread (writer, readers, buffer flusher, log writer) is a [`Worker`]: named with a
//! short `lh-` name that survives the operating system's 15-byte limit, serving one bounded
//! channel, joined when its owner drops it, and answering every message that still arrives
//! after its loop has ended, so no caller ever waits for a thread that is gone.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::thread::{JoinHandle, ThreadId};

use crate::error::{Error, Result};

/// A named background thread that is joined when dropped.
#[derive(Debug)]
pub(crate) struct Worker {
    handle: Option<JoinHandle<()>>,
    thread_id: ThreadId,
}

impl Worker {
    /// Starts thread `name` running `serve` over `receiver`. When `serve` returns (or panics,
    /// which is litehouse's bug, not the caller's: it is logged), every message still sent is
    /// handed to `refuse` until the last sender is gone, so each gets an answer.
    ///
    /// The thread ends only once every sender is dropped: the owner must drop its senders
    /// before it drops (joins) the worker.
    pub(crate) fn spawn<M: Send + 'static>(
        name: &str,
        receiver: flume::Receiver<M>,
        serve: impl FnOnce(&flume::Receiver<M>) + Send + 'static,
        mut refuse: impl FnMut(M) + Send + 'static,
    ) -> Result<Worker> {
        debug_assert!(name.len() <= 15, "thread names are cut to 15 bytes: {name}");
        let handle = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| serve(&receiver))) {
                    let message = panic_message(payload.as_ref());
                    contain_drop(payload);
                    tracing::error!(%message, "a litehouse thread panicked; it now refuses work");
                }
                for message in receiver.iter() {
                    contain(|| refuse(message));
                }
            })?;
        Ok(Worker {
            thread_id: handle.thread().id(),
            handle: Some(handle),
        })
    }

    /// True when called from this worker's own thread.
    pub(crate) fn is_current(&self) -> bool {
        std::thread::current().id() == self.thread_id
    }

    /// Waits for the thread to end. Never from the thread itself (a closure running on it may
    /// drop the last handle of its owner), which would wait forever.
    pub(crate) fn join(&mut self) {
        if let Some(handle) = self.handle.take()
            && !self.is_current()
        {
            // The thread catches every panic itself; an error here cannot carry news.
            let _ = handle.join();
        }
    }

    /// Lets the thread finish on its own without waiting for it (used when the owner is
    /// dropped somewhere that must not block, such as an async executor thread).
    pub(crate) fn detach(&mut self) {
        self.handle = None;
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.join();
    }
}

/// Runs `wait` if this thread may block: a plain thread, or a multi-threaded tokio runtime
/// (inside `block_in_place`, so the runtime moves its other tasks to another worker). Returns
/// false without running it where blocking would stall an executor: a current-thread runtime,
/// a `LocalSet`, or while this thread unwinds from a panic. Owners then hand the work to their
/// threads and let them finish on their own.
pub(crate) fn wait_if_allowed(wait: impl FnOnce()) -> bool {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        wait();
        return true;
    };
    if runtime.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread
        || std::thread::panicking()
    {
        return false;
    }
    block_in_place_if_allowed(wait)
}

/// `block_in_place` refuses inside a `LocalSet` by panicking before it runs anything, and tokio
/// offers no way to ask first. With `panic = "unwind"` that refusal is caught (the panic hook
/// still prints it); with `panic = "abort"` it would end the process, so then nothing blocks.
#[cfg(panic = "unwind")]
fn block_in_place_if_allowed(wait: impl FnOnce()) -> bool {
    let mut ran = false;
    let _ = catch_unwind(AssertUnwindSafe(|| {
        tokio::task::block_in_place(|| {
            ran = true;
            wait();
        });
    }));
    ran
}

#[cfg(not(panic = "unwind"))]
fn block_in_place_if_allowed(_wait: impl FnOnce()) -> bool {
    false
}

/// Runs `work`, turning a panic into [`Error::Panic`].
pub(crate) fn catch<T>(work: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|payload| Err(Error::panic(payload)))
}

/// Runs `work`, swallowing a panic (after logging it). For code that must go on whatever user
/// code does, such as a writer thread delivering replies.
pub(crate) fn contain(work: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(work)) {
        let message = panic_message(payload.as_ref());
        contain_drop(payload);
        tracing::warn!(%message, "contained a panic from user code (a Drop implementation?)");
    }
}

/// Drops `value` on this thread even if its `Drop` panics. A panic payload whose own `Drop`
/// panics again is leaked rather than dropped, so this never unwinds.
pub(crate) fn contain_drop<T>(value: T) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(value))) {
        std::mem::forget(payload);
    }
}

/// The text of a panic payload, when it is a string.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("drop panicked");
        }
    }

    #[test]
    fn contain_drop_survives_a_panicking_drop_and_a_panicking_payload() {
        contain_drop(PanicOnDrop);
        contain_drop(std::panic::catch_unwind(|| {
            std::panic::panic_any(PanicOnDrop)
        }));
        let err = catch(|| -> Result<()> { std::panic::panic_any(PanicOnDrop) }).unwrap_err();
        assert!(matches!(err, Error::Panic { .. }), "{err}");
    }

    #[test]
    fn refuses_messages_after_the_loop_ends_even_if_it_panicked() {
        let (sender, receiver) = flume::bounded::<std::sync::mpsc::Sender<&str>>(4);
        let mut worker = Worker::spawn(
            "lh-test",
            receiver,
            |_| panic!("bug"),
            |reply| {
                let _ = reply.send("refused");
            },
        )
        .unwrap();
        let (reply, answer) = std::sync::mpsc::channel();
        sender.send(reply).unwrap();
        assert_eq!(answer.recv().unwrap(), "refused");
        drop(sender);
        worker.join();
    }
}
