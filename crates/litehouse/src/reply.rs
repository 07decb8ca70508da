//! One reply channel type for both blocking and async callers.

use crate::error::{Error, Result};

/// Where a result goes. Blocking callers wait on a std channel (safe to use anywhere), async
/// callers on a tokio oneshot; the worker threads do not care which.
#[derive(Debug)]
pub(crate) enum Reply<T> {
    Blocking(std::sync::mpsc::SyncSender<Result<T>>),
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

/// The receiving half, for a blocking caller.
pub(crate) fn blocking<T>() -> (Reply<T>, impl FnOnce() -> Result<T>) {
    let (sender, receiver) = std::sync::mpsc::sync_channel(1);
    let wait = move || receiver.recv().unwrap_or(Err(Error::Closed));
    (Reply::Blocking(sender), wait)
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
