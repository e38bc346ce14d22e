//! Bridges core futures to Python: blocking with the GIL released (sync face), and asyncio
//! futures resolved in batches on their loop's thread (async face), on the fork-aware
//! runtime of `core::runtime`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyo3::exceptions::PyRuntimeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::core::runtime;

fn ensure() -> PyResult<std::sync::Arc<tokio::runtime::Runtime>> {
    runtime::get().map_err(|e| PyRuntimeError::new_err(format!("cannot start I/O runtime: {e}")))
}

/// Set at interpreter exit (an `atexit` hook, while Python is still whole): from then on
/// no thread of ours takes the GIL. A thread that tries to once finalization has begun is
/// ended by the interpreter in the middle of Rust code, which aborts the process.
static EXITING: AtomicBool = AtomicBool::new(false);
/// Threads inside [`attach`] right now.
static ATTACHED: AtomicUsize = AtomicUsize::new(0);

struct Attached;

impl Drop for Attached {
    fn drop(&mut self) {
        ATTACHED.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs `f` with the GIL from a thread that holds no Python state (an I/O thread, or a
/// caller whose GIL is released), unless the interpreter is exiting: `None` then.
pub fn attach<R>(f: impl FnOnce(Python<'_>) -> R) -> Option<R> {
    ATTACHED.fetch_add(1, Ordering::SeqCst);
    let _attached = Attached;
    if EXITING.load(Ordering::SeqCst) {
        return None;
    }
    Some(Python::attach(f))
}

/// Registered with `atexit`: stops our threads from taking the GIL and waits (GIL
/// released, at most `timeout_s`) for those that hold or wait for it. Futures still running
/// are dropped unresolved: their event loops are gone.
#[pyfunction]
#[pyo3(signature = (timeout_s = 2.0))]
pub fn prepare_exit(py: Python<'_>, timeout_s: f64) {
    EXITING.store(true, Ordering::SeqCst);
    let limit = Duration::try_from_secs_f64(timeout_s).unwrap_or(Duration::ZERO);
    py.detach(|| {
        let start = Instant::now();
        while ATTACHED.load(Ordering::SeqCst) > 0 && start.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

/// Checks for signals (Ctrl-C) from a thread blocked in a call; nothing at exit.
fn check_signals() -> PyResult<()> {
    attach(|py| py.check_signals()).unwrap_or(Ok(()))
}

/// Runs `fut` to completion on the calling thread's own current-thread runtime, with the
/// GIL released: the request and its connection are driven by this thread, so a call costs
/// no cross-thread wakeups. Signals are checked every 100 ms, so Ctrl-C interrupts a long
/// call.
pub fn block_on<T, F>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = T> + Send,
    T: Send,
{
    py.detach(|| {
        runtime::block_on_local(async {
            tokio::pin!(fut);
            loop {
                tokio::select! {
                    biased;
                    v = &mut fut => return Ok(v),
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {
                        check_signals()?;
                    }
                }
            }
        })
        .map_err(|e| PyRuntimeError::new_err(format!("cannot run I/O: {e}")))?
    })
}

/// Runs `fut` to completion on the shared runtime, with the GIL released and signals
/// checked every 100 ms. For work whose state outlives one call (a streamed body), since
/// the connection must keep being driven whichever thread resumes it.
pub fn block_on_shared<T, F>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = T> + Send,
    T: Send,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(PyRuntimeError::new_err(
            "a blocking call cannot be made from inside a running async runtime",
        ));
    }
    let rt = ensure()?;
    py.detach(|| {
        rt.block_on(async {
            tokio::pin!(fut);
            loop {
                tokio::select! {
                    biased;
                    v = &mut fut => return Ok(v),
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {
                        check_signals()?;
                    }
                }
            }
        })
    })
}

/// What a finished future hands to the event loop's thread: it builds the result (or the
/// exception) there, with the GIL, so the I/O threads never take the GIL for a result.
pub type Deliver = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

struct Completion {
    future: Py<PyAny>,
    deliver: Deliver,
}

/// Completions waiting for one event loop, and that loop. At most one drain call is
/// scheduled per inbox: the first completion of a batch schedules it, the drain takes the
/// whole batch, so a burst of completions costs one `call_soon_threadsafe` and one GIL
/// acquisition by an I/O thread instead of one per call.
struct Inbox {
    pid: u32,
    key: usize,
    items: Vec<Completion>,
}

static INBOXES: Mutex<Vec<Inbox>> = Mutex::new(Vec::new());
static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static DRAIN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn inboxes() -> std::sync::MutexGuard<'static, Vec<Inbox>> {
    INBOXES.lock().unwrap_or_else(|p| p.into_inner())
}

/// Takes the pending completions of loop `key` (of this process).
fn take_inbox(key: usize) -> Vec<Completion> {
    let pid = std::process::id();
    let mut g = inboxes();
    // Inboxes inherited from a parent process are never delivered here.
    g.retain(|b| b.pid == pid);
    match g.iter().position(|b| b.key == key) {
        Some(i) => g.swap_remove(i).items,
        None => Vec::new(),
    }
}

/// Called on the event loop's thread: resolves every pending future of that loop.
#[pyfunction]
fn drain_completions(py: Python<'_>, key: usize) {
    for c in take_inbox(key) {
        let fut = c.future.bind(py);
        if fut
            .call_method0(intern!(py, "done"))
            .and_then(|d| d.is_truthy())
            .unwrap_or(true)
        {
            continue; // cancelled meanwhile
        }
        let outcome = match (c.deliver)(py) {
            Ok(v) => fut.call_method1(intern!(py, "set_result"), (v,)),
            Err(e) => fut.call_method1(intern!(py, "set_exception"), (e.into_value(py),)),
        };
        if let Err(e) = outcome {
            e.write_unraisable(py, Some(fut));
        }
    }
}

/// Queues a finished call for its loop, scheduling a drain if none is pending.
fn complete(key: usize, event_loop: &Arc<Py<PyAny>>, c: Completion) {
    let pid = std::process::id();
    let first = {
        let mut g = inboxes();
        match g.iter_mut().find(|b| b.key == key && b.pid == pid) {
            Some(b) => {
                b.items.push(c);
                false
            }
            None => {
                g.push(Inbox {
                    pid,
                    key,
                    items: vec![c],
                });
                true
            }
        }
    };
    if first {
        attach(|py| {
            let scheduled = DRAIN
                .get_or_try_init(py, || {
                    wrap_pyfunction!(drain_completions, py).map(|f| f.into_any().unbind())
                })
                .and_then(|drain| {
                    event_loop.call_method1(
                        py,
                        intern!(py, "call_soon_threadsafe"),
                        (drain.clone_ref(py), key),
                    )
                });
            if scheduled.is_err() {
                // The loop is closed: nobody can await these futures any more.
                drop(take_inbox(key));
            }
        });
    }
}

/// Cancels the I/O task when its asyncio future is cancelled.
#[pyclass(module = "flightdeck_rs._native", name = "_Canceller", frozen)]
struct Canceller {
    task: tokio::task::AbortHandle,
}

#[pymethods]
impl Canceller {
    fn __call__(&self, fut: &Bound<'_, PyAny>) -> PyResult<()> {
        if fut
            .call_method0(intern!(fut.py(), "cancelled"))?
            .is_truthy()?
        {
            self.task.abort();
        }
        Ok(())
    }
}

/// Wraps `fut` as an asyncio future of the running loop. `fut` runs on the shared I/O
/// runtime without the GIL; its output builds the result on the loop's thread. Cancelling
/// the asyncio future aborts the I/O task.
///
/// # Errors
/// `RuntimeError` when no event loop is running in this thread, or the I/O runtime cannot
/// start.
pub fn awaitable<'py, F, D>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = D> + Send + 'static,
    D: FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send + 'static,
{
    let rt = ensure()?;
    let get_loop = GET_RUNNING_LOOP.get_or_try_init(py, || {
        py.import("asyncio")?
            .getattr("get_running_loop")
            .map(Bound::unbind)
    })?;
    let event_loop = get_loop.call0(py)?.into_bound(py);
    let future = event_loop.call_method0(intern!(py, "create_future"))?;
    let key = event_loop.as_ptr() as usize;
    let loop_ref = Arc::new(event_loop.unbind());
    let fut_ref = future.clone().unbind();
    let task = rt.spawn(async move {
        let deliver = fut.await;
        complete(
            key,
            &loop_ref,
            Completion {
                future: fut_ref,
                deliver: Box::new(deliver),
            },
        );
    });
    let canceller = Py::new(
        py,
        Canceller {
            task: task.abort_handle(),
        },
    )?;
    future.call_method1(intern!(py, "add_done_callback"), (canceller,))?;
    Ok(future)
}
