//! Awaitables for asyncio with one event-loop wake-up per batch of completions.
//!
//! `pyo3_async_runtimes::future_into_py` schedules two callbacks on the event loop for every
//! finished future, each through `call_soon_threadsafe` (a lock, a self-pipe write and a loop
//! iteration). With group commit, dozens of writes finish at the same instant, so that cost
//! dominated: 64 asyncio tasks inserting were slower than a locked `sqlite3` connection behind
//! `asyncio.to_thread`.
//!
//! A [`Port`] belongs to one event loop. The engine's future runs on the tokio runtime; when it
//! finishes, its outcome (still a Rust value) is queued on the port, and only the completion that
//! finds the queue empty asks the loop to call [`Drain`]. The drain runs on the loop's thread
//! with the GIL, converts every queued outcome to Python and resolves its `asyncio.Future`.
//!
//! Cancelling the awaiting task cancels only the wait: a statement already handed to the engine
//! still runs (as with a thread that stops waiting), and its result is dropped.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyCFunction;
use pyo3::{IntoPyObjectExt, intern};

/// Turns a finished outcome into the future's result, on the loop's thread.
type Outcome = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

struct Done {
    future: Py<PyAny>,
    outcome: Outcome,
}

/// The completions waiting for one event loop.
pub(crate) struct Port {
    event_loop: Py<PyAny>,
    queue: Mutex<Vec<Done>>,
    drain: PyOnceLock<Py<PyAny>>,
}

/// One port per live event loop (usually one), found by identity.
static PORTS: Mutex<Vec<Arc<Port>>> = Mutex::new(Vec::new());

fn port_for_running_loop(py: Python<'_>) -> PyResult<Arc<Port>> {
    static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let get_running_loop = GET_RUNNING_LOOP.get_or_try_init(py, || {
        py.import("asyncio")?
            .getattr("get_running_loop")
            .map(Bound::unbind)
    })?;
    let event_loop = get_running_loop.call0(py)?;
    let mut ports = PORTS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(port) = ports.iter().find(|port| port.event_loop.is(&event_loop)) {
        return Ok(Arc::clone(port));
    }
    // A new loop: forget the ports of loops that have closed since (asyncio.run makes one per
    // call), so neither they nor their loops are kept alive.
    ports.retain(|port| {
        !port
            .event_loop
            .call_method0(py, intern!(py, "is_closed"))
            .and_then(|closed| closed.is_truthy(py))
            .unwrap_or(true)
    });
    let port = Arc::new(Port {
        event_loop,
        queue: Mutex::new(Vec::new()),
        drain: PyOnceLock::new(),
    });
    ports.push(Arc::clone(&port));
    Ok(port)
}

impl Port {
    /// The callable the loop runs to resolve everything queued.
    fn drain<'py>(self: &Arc<Self>, py: Python<'py>) -> PyResult<&Bound<'py, PyAny>> {
        // Weak: the port holds the drain, so a strong reference would keep both (and the
        // closed loop) alive after the port is forgotten.
        let port = Arc::downgrade(self);
        self.drain
            .get_or_try_init(py, || {
                let drain =
                    PyCFunction::new_closure(py, None, None, move |args, _kwargs| {
                        match port.upgrade() {
                            Some(port) => port.resolve_queued(args.py()),
                            None => Ok(()),
                        }
                    })?;
                Ok::<_, PyErr>(drain.into_any().unbind())
            })
            .map(|drain| drain.bind(py))
    }

    fn complete(self: &Arc<Self>, done: Done) {
        let first = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.push(done);
            queue.len() == 1
        };
        if first {
            Python::attach(|py| {
                let scheduled = self.drain(py).and_then(|drain| {
                    self.event_loop
                        .call_method1(py, intern!(py, "call_soon_threadsafe"), (drain,))
                });
                if scheduled.is_err() {
                    // The loop has closed: nobody can await these futures any more.
                    self.queue
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clear();
                }
            });
        }
    }

    fn resolve_queued(&self, py: Python<'_>) -> PyResult<()> {
        let done = std::mem::take(&mut *self.queue.lock().unwrap_or_else(PoisonError::into_inner));
        for Done { future, outcome } in done {
            let future = future.bind(py);
            // A cancelled wait: the result has nobody to go to.
            if future.call_method0(intern!(py, "done"))?.is_truthy()? {
                continue;
            }
            match outcome(py) {
                Ok(value) => future.call_method1(intern!(py, "set_result"), (value,))?,
                Err(err) => {
                    future.call_method1(intern!(py, "set_exception"), (err.into_value(py),))?
                }
            };
        }
        Ok(())
    }
}

/// An `asyncio.Future` of the running loop that resolves to `work`'s result; `work` runs on the
/// binding's tokio runtime, never on the event loop.
///
/// # Errors
/// `RuntimeError` when no event loop is running in this thread.
pub(crate) fn awaitable<'py, F, T>(py: Python<'py>, work: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let port = port_for_running_loop(py)?;
    let future = port
        .event_loop
        .bind(py)
        .call_method0(intern!(py, "create_future"))?;
    let mut pending = Pending {
        port,
        future: Some(future.clone().unbind()),
    };
    pyo3_async_runtimes::tokio::get_runtime().spawn(async move {
        let result = work.await;
        pending.complete(Box::new(move |py| {
            result.and_then(|value| value.into_py_any(py))
        }));
    });
    Ok(future)
}

/// A future not yet resolved. If the work panics, dropping this (as the task unwinds) resolves
/// the future with an error instead of leaving its awaiter waiting forever.
struct Pending {
    port: Arc<Port>,
    future: Option<Py<PyAny>>,
}

impl Pending {
    fn complete(&mut self, outcome: Outcome) {
        if let Some(future) = self.future.take() {
            self.port.complete(Done { future, outcome });
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.complete(Box::new(|_py| {
            Err(pyo3::exceptions::PyRuntimeError::new_err(
                "litehouse bug: the work behind this awaitable panicked; please report it",
            ))
        }));
    }
}
