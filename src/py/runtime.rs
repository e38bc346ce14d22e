//! Bridges core futures to Python, on the fork-aware runtime of `core::runtime`:
//!
//! - sync face: blocking with the GIL released, or, when gevent or eventlet has
//!   monkey-patched the process, waiting cooperatively (the calling greenlet sleeps, the
//!   others run, the I/O runs on the shared runtime and wakes the hub in batches);
//! - async face: asyncio futures, or trio waiters (`flightdeck_rs._runtimes`), resolved in
//!   batches on their event loop's thread: one wake-up per burst of completions (for an
//!   asyncio loop, a byte on a socket the loop watches, so no I/O thread takes the GIL).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyo3::exceptions::PyRuntimeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString};

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
/// checked every 100 ms (or cooperatively under gevent/eventlet, see [`green`]). For work
/// whose state outlives one call (a streamed body), since the connection must keep being
/// driven whichever thread resumes it.
pub fn block_on_shared<T, F>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    if let Some(waiter) = green(py)? {
        return block_green(&waiter, fut);
    }
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

// ------------------------------------------------------------------ gevent and eventlet

/// `sys.modules`, to notice gevent or eventlet without importing anything.
static SYS_MODULES: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
/// `flightdeck_rs._runtimes.green_call_factory`'s answer once the process is found
/// monkey-patched (it stays so): a `make()` giving a `GreenCall` for the calling thread's hub.
static GREEN_CALL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static GREEN_PROBE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// When gevent or eventlet has monkey-patched this process, the factory of cooperative
/// waits (see [`block_green`]), else `None`. Without either in `sys.modules` this is two
/// dictionary look-ups and imports nothing; it is repeated per call, since patching may
/// happen after our import.
///
/// # Errors
/// Whatever the probe in `flightdeck_rs._runtimes` raises.
pub fn green(py: Python<'_>) -> PyResult<Option<Bound<'_, PyAny>>> {
    if let Some(make) = GREEN_CALL.get(py) {
        return Ok(Some(make.bind(py).clone()));
    }
    let modules = SYS_MODULES.get_or_try_init(py, || {
        py.import("sys")?
            .getattr("modules")?
            .cast_into::<PyDict>()
            .map(Bound::unbind)
            .map_err(PyErr::from)
    })?;
    let modules = modules.bind(py);
    if !modules.contains(intern!(py, "gevent"))? && !modules.contains(intern!(py, "eventlet"))? {
        return Ok(None);
    }
    let probe = GREEN_PROBE.get_or_try_init(py, || {
        py.import("flightdeck_rs._runtimes")?
            .getattr("green_call_factory")
            .map(Bound::unbind)
    })?;
    let make = probe.bind(py).call0()?;
    if make.is_none() {
        return Ok(None);
    }
    let _ = GREEN_CALL.set(py, make.clone().unbind());
    Ok(Some(make))
}

/// Aborts the I/O task of a cooperative wait that ends early (a `gevent.Timeout`, a killed
/// greenlet, Ctrl-C): its request stops and its connection is dropped, as on asyncio.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `fut` on the shared runtime while the calling greenlet waits cooperatively: `make()`
/// gives a call object whose `wait()` parks the greenlet, and whose `token.schedule(drain,
/// key)` (thread-safe) has the hub run the drain, which wakes it. Completions reach the hub
/// in batches, as they reach an asyncio loop; no file descriptor is used per call. The value
/// stays on the Rust side. If the wait raises, the task is aborted.
///
/// # Errors
/// What the wait raises, or `RuntimeError` if the runtime cannot start.
pub fn block_green<T, F>(make: &Bound<'_, PyAny>, fut: F) -> PyResult<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let py = make.py();
    let rt = ensure()?;
    let call = make.call0()?;
    let token = call.getattr(intern!(py, "token"))?;
    let key = token.as_ptr() as usize;
    let scheduler = Scheduler::Call {
        target: token.unbind(),
        method: "schedule",
    };
    let slot = Arc::new(Mutex::new(None));
    let filled = slot.clone();
    let work = async move {
        let v = fut.await;
        *filled.lock().unwrap_or_else(|p| p.into_inner()) = Some(v);
        |py: Python<'_>| Ok(py.None())
    };
    let _abort = AbortOnDrop(spawn_for(&rt, key, scheduler, call.clone().unbind(), work));
    call.call_method0(intern!(py, "wait"))?;
    let v = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    v.ok_or_else(|| PyRuntimeError::new_err("the I/O task ended without a result"))
}

/// Runs a blocking wait `f`: with the GIL released, or, under gevent/eventlet, on the
/// shared runtime's blocking pool while the calling greenlet waits cooperatively. (An
/// early end of the cooperative wait cannot stop `f`; it ends by its own deadline.)
///
/// # Errors
/// What the cooperative wait raises, or `RuntimeError` if the runtime cannot start.
pub fn wait_blocking<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let Some(make) = green(py)? else {
        return Ok(py.detach(f));
    };
    let out = block_green(
        &make,
        async move { tokio::task::spawn_blocking(f).await.ok() },
    )?;
    out.ok_or_else(|| PyRuntimeError::new_err("the waiting thread failed"))
}

// ------------------------------------------------------------------ event loops

/// What a finished future hands to the event loop's thread: it builds the result (or the
/// exception) there, with the GIL, so the I/O threads never take the GIL for a result.
pub type Deliver = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

struct Completion {
    future: Py<PyAny>,
    deliver: Deliver,
}

/// What is queued for one event loop of this process (`key`: the loop's address, or the trio
/// token's): its completions waiting for a drain ([`INBOXES`]), or its calls waiting to start
/// ([`OUTBOXES`]).
struct PerLoop<T> {
    pid: u32,
    key: usize,
    items: Vec<T>,
}

type Queues<T> = Mutex<Vec<PerLoop<T>>>;

fn lock<T>(queues: &Queues<T>) -> std::sync::MutexGuard<'_, Vec<PerLoop<T>>> {
    queues.lock().unwrap_or_else(|p| p.into_inner())
}

/// Adds `item` to loop `key`'s queue; `true` if it is the first of a batch (the queue was
/// empty), whose adder must have the batch handled.
fn push<T>(queues: &Queues<T>, key: usize, item: T) -> bool {
    let pid = crate::core::pid::current();
    let mut g = lock(queues);
    match g.iter_mut().find(|b| b.key == key && b.pid == pid) {
        Some(b) => {
            b.items.push(item);
            false
        }
        None => {
            g.push(PerLoop {
                pid,
                key,
                items: vec![item],
            });
            true
        }
    }
}

/// Takes loop `key`'s queue (of this process). Queues inherited from a parent process are
/// dropped: nothing of theirs is delivered or started here.
fn take<T>(queues: &Queues<T>, key: usize) -> Vec<T> {
    let pid = crate::core::pid::current();
    let mut g = lock(queues);
    g.retain(|b| b.pid == pid);
    match g.iter().position(|b| b.key == key) {
        Some(i) => g.swap_remove(i).items,
        None => Vec::new(),
    }
}

/// Completions waiting for their loop. At most one drain is scheduled per loop: the first
/// completion of a batch schedules it, the drain takes the whole batch, so a burst of
/// completions costs one wake-up of the loop instead of one per call.
static INBOXES: Queues<Completion> = Mutex::new(Vec::new());
static DRAIN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn take_inbox(key: usize) -> Vec<Completion> {
    take(&INBOXES, key)
}

/// A queued item's asyncio future (trio and gevent waiters are futures enough: they have no
/// `get_loop` and are skipped by [`drop_closed`]).
trait HasFuture {
    fn future(&self) -> &Py<PyAny>;
}

impl HasFuture for Completion {
    fn future(&self) -> &Py<PyAny> {
        &self.future
    }
}

impl HasFuture for Queued {
    fn future(&self) -> &Py<PyAny> {
        &self.future
    }
}

/// Drops what is queued for asyncio loops that were closed before their callback ran:
/// completions (a drain scheduled while a loop was stopped) and calls not started yet (a
/// [`start_queued`] scheduled just before). Closing a loop discards its callbacks, so without
/// this they would stay queued for good, keeping the closed loop and its futures alive.
/// Called with the GIL on a loop's thread, for the other loops (`own` is the caller's key);
/// cheap when no other loop has anything queued.
fn drop_closed_queues(py: Python<'_>, own: usize) {
    drop_closed(py, own, &INBOXES);
    drop_closed(py, own, &OUTBOXES);
}

/// [`drop_closed_queues`] for one kind of queue. The loop is found from the first queued
/// future (`get_loop()`; trio and gevent waiters have none and are skipped). Python is called
/// outside the lock: the callbacks take it while holding the GIL.
fn drop_closed<T: HasFuture>(py: Python<'_>, own: usize, queues: &Queues<T>) {
    let pid = crate::core::pid::current();
    let candidates: Vec<(usize, Py<PyAny>)> = lock(queues)
        .iter()
        .filter(|b| b.pid == pid && b.key != own)
        .filter_map(|b| b.items.first().map(|i| (b.key, i.future().clone_ref(py))))
        .collect();
    for (key, future) in candidates {
        let closed = future
            .bind(py)
            .call_method0(intern!(py, "get_loop"))
            .and_then(|l| l.call_method0(intern!(py, "is_closed")))
            .and_then(|c| c.is_truthy())
            .unwrap_or(false);
        if !closed {
            continue;
        }
        // Still the same queue (the future held here keeps its loop, hence the key, alive).
        let stale = {
            let mut g = lock(queues);
            g.iter()
                .position(|b| {
                    b.pid == pid
                        && b.key == key
                        && b.items.first().is_some_and(|i| i.future().is(&future))
                })
                .map(|i| g.swap_remove(i))
        };
        drop(stale); // outside the lock: dropping the futures may run Python code
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

/// How an I/O thread has the drain run on an event loop's thread.
enum Scheduler {
    /// A thread-safe call (with the GIL): asyncio's `loop.call_soon_threadsafe` or trio's
    /// `TrioToken.run_sync_soon`.
    Call {
        target: Py<PyAny>,
        method: &'static str,
    },
    /// A byte written to a socket the asyncio loop watches ([`LoopWaker`]): no GIL taken
    /// by the I/O thread, so the loop's thread is never asked to hand it over.
    #[cfg(unix)]
    Fd(Arc<WakeSocket>),
}

/// The write end of an asyncio loop's wake-up socket.
#[cfg(unix)]
struct WakeSocket {
    write: std::os::unix::net::UnixStream,
    /// Set if the loop could not watch the read end (its `add_reader` raised): completions
    /// then wake it with `call_soon_threadsafe`.
    unwatched: AtomicBool,
}

/// The reader callback of an asyncio loop's wake-up socket: empties the socket, then
/// resolves the loop's pending completions. Registered once per loop (`loop.add_reader`).
#[cfg(unix)]
#[pyclass(module = "flightdeck_rs._native", name = "_LoopWaker", frozen)]
struct LoopWaker {
    key: usize,
    read: std::os::unix::net::UnixStream,
    socket: Arc<WakeSocket>,
}

#[cfg(unix)]
#[pymethods]
impl LoopWaker {
    fn __call__(&self, py: Python<'_>) {
        use std::io::Read;
        let mut buf = [0u8; 256];
        // Non-blocking: stops at `WouldBlock` once the socket is empty.
        while let Ok(n) = (&self.read).read(&mut buf) {
            if n < buf.len() {
                break;
            }
        }
        drain_completions(py, self.key);
    }

    /// Called (on the loop's thread) when the loop refused to watch the socket.
    fn unwatched(&self, py: Python<'_>) {
        self.socket.unwatched.store(true, Ordering::SeqCst);
        drain_completions(py, self.key);
    }
}

/// Has an asyncio loop watch a wake-up socket. Scheduled on the loop with `call_soon` rather
/// than called from native code: watching may release the GIL (`epoll_ctl` in the selector),
/// and a daemon thread that finds the interpreter exiting when it takes the GIL back exits
/// there and then (`pthread_exit`), which only C and Python frames on its stack survive.
#[cfg(unix)]
const WATCH_CODE: &std::ffi::CStr = c"def watch(loop, fd, waker):
    try:
        loop.add_reader(fd, waker)
    except Exception:
        waker.unwatched()
";

#[cfg(unix)]
static WATCH: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The write end of each asyncio loop's wake-up socket (per process; an entry goes when its
/// loop is garbage-collected, through the weak reference kept with it).
#[cfg(unix)]
struct Registered {
    pid: u32,
    key: usize,
    socket: Arc<WakeSocket>,
    _weak: Py<PyAny>,
}

#[cfg(unix)]
static LOOP_WAKERS: Mutex<Vec<Registered>> = Mutex::new(Vec::new());

#[cfg(unix)]
fn loop_wakers() -> std::sync::MutexGuard<'static, Vec<Registered>> {
    LOOP_WAKERS.lock().unwrap_or_else(|p| p.into_inner())
}

/// The way to wake `event_loop` (its key: `key`): its wake-up socket, registered on first
/// use; `call_soon_threadsafe` where the loop cannot watch a socket (`add_reader` missing,
/// as on Windows' proactor loop) or cannot be weakly referenced.
fn loop_scheduler(event_loop: &Bound<'_, PyAny>, key: usize) -> Scheduler {
    #[cfg(unix)]
    if let Some(s) = socket_scheduler(event_loop, key) {
        return s;
    }

    Scheduler::Call {
        target: event_loop.clone().unbind(),
        method: "call_soon_threadsafe",
    }
}

#[cfg(unix)]
fn socket_scheduler(event_loop: &Bound<'_, PyAny>, key: usize) -> Option<Scheduler> {
    use std::os::fd::AsRawFd;
    let pid = crate::core::pid::current();
    if let Some(r) = loop_wakers().iter().find(|r| r.key == key && r.pid == pid) {
        return Some(Scheduler::Fd(r.socket.clone()));
    }
    let py = event_loop.py();
    if !event_loop
        .hasattr(intern!(py, "add_reader"))
        .unwrap_or(false)
    {
        return None;
    }
    let watch = WATCH
        .get_or_try_init(py, || {
            let globals = PyDict::new(py);
            py.run(WATCH_CODE, Some(&globals), None)?;
            globals
                .get_item("watch")?
                .map(Bound::unbind)
                .ok_or_else(|| PyRuntimeError::new_err("watch helper missing"))
        })
        .ok()?;
    let (read, write) = std::os::unix::net::UnixStream::pair().ok()?;
    read.set_nonblocking(true).ok()?;
    write.set_nonblocking(true).ok()?;
    let fd = read.as_raw_fd();
    let forget = pyo3::types::PyCFunction::new_closure(py, None, None, move |_args, _kw| {
        let gone: Vec<Registered> = {
            let mut g = loop_wakers();
            let (gone, kept) = std::mem::take(&mut *g)
                .into_iter()
                .partition(|r| r.key == key && r.pid == pid);
            *g = kept;
            gone
        };
        drop(gone); // outside the lock: dropping the weak reference runs Python code
    })
    .ok()?;
    let weak = py
        .import("weakref")
        .and_then(|w| w.getattr("ref"))
        .and_then(|r| r.call1((event_loop, forget)))
        .ok()?;
    let socket = Arc::new(WakeSocket {
        write,
        unwatched: AtomicBool::new(false),
    });
    let waker = Py::new(
        py,
        LoopWaker {
            key,
            read,
            socket: socket.clone(),
        },
    )
    .ok()?;
    // Before any call of this loop starts (its start is scheduled after this).
    event_loop
        .call_method1(intern!(py, "call_soon"), (watch, event_loop, fd, waker))
        .ok()?;
    loop_wakers().push(Registered {
        pid,
        key,
        socket: socket.clone(),
        _weak: weak.unbind(),
    });
    Some(Scheduler::Fd(socket))
}

/// Has `target.method(drain_completions, key)` run the drain on the loop's thread (with the
/// GIL); if it cannot (the loop is closed, or the trio run finished), nobody can await the
/// queued futures any more, and they are dropped.
fn schedule_drain(py: Python<'_>, target: &Bound<'_, PyAny>, method: &str, key: usize) {
    let scheduled = DRAIN
        .get_or_try_init(py, || {
            wrap_pyfunction!(drain_completions, py).map(|f| f.into_any().unbind())
        })
        .and_then(|drain| {
            target.call_method1(PyString::intern(py, method), (drain.clone_ref(py), key))
        });
    if scheduled.is_err() {
        drop(take_inbox(key));
    }
}

/// Queues a finished call for its loop, scheduling a drain if none is pending.
fn complete(key: usize, scheduler: &Scheduler, c: Completion) {
    if !push(&INBOXES, key, c) {
        return;
    }
    match scheduler {
        #[cfg(unix)]
        Scheduler::Fd(socket) if socket.unwatched.load(Ordering::SeqCst) => {
            // The loop of the queued futures, woken the thread-safe way.
            attach(|py| {
                let pid = crate::core::pid::current();
                let first = lock(&INBOXES)
                    .iter()
                    .find(|b| b.key == key && b.pid == pid)
                    .and_then(|b| b.items.first().map(|c| c.future.clone_ref(py)));
                let Some(future) = first else { return };
                match future.bind(py).call_method0(intern!(py, "get_loop")) {
                    Ok(l) => schedule_drain(py, &l, "call_soon_threadsafe", key),
                    Err(_) => drop(take_inbox(key)),
                }
            });
        }
        #[cfg(unix)]
        Scheduler::Fd(socket) => {
            use std::io::Write;
            match (&socket.write).write(&[1]) {
                Ok(_) => {}
                // Full: bytes are waiting, so the loop is woken already.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                // The loop is closed (its end of the socket is gone): nobody can await
                // these futures any more.
                Err(_) => {
                    attach(|_| drop(take_inbox(key)));
                }
            }
        }
        Scheduler::Call { target, method } => {
            attach(|py| schedule_drain(py, target.bind(py), method, key));
        }
    }
}

/// Where an I/O task of an awaitable stands: queued in its loop's [`OUTBOXES`] (asyncio), started
/// (its abort handle), or cancelled before it started (it never will).
enum Run {
    Queued,
    Started(tokio::task::AbortHandle),
    Cancelled,
}

type RunSlot = Arc<Mutex<Run>>;

fn run_state(run: &RunSlot) -> std::sync::MutexGuard<'_, Run> {
    run.lock().unwrap_or_else(|p| p.into_inner())
}

/// Cancels the I/O task when its asyncio future (or trio waiter) is cancelled: aborts it if
/// it has started, else keeps it from starting.
#[pyclass(module = "flightdeck_rs._native", name = "_Canceller", frozen)]
struct Canceller {
    run: RunSlot,
}

#[pymethods]
impl Canceller {
    fn __call__(&self, fut: &Bound<'_, PyAny>) -> PyResult<()> {
        if fut
            .call_method0(intern!(fut.py(), "cancelled"))?
            .is_truthy()?
        {
            let before = std::mem::replace(&mut *run_state(&self.run), Run::Cancelled);
            if let Run::Started(task) = before {
                task.abort();
            }
        }
        Ok(())
    }
}

// ------------------------------------------------------------------ starting asyncio calls

/// Starts one queued call's I/O task (called on the shared runtime).
type Start = Box<dyn FnOnce() -> tokio::task::AbortHandle + Send>;

struct Queued {
    run: RunSlot,
    start: Start,
    /// The call's asyncio future, to find its loop if that loop closes first.
    future: Py<PyAny>,
}

/// Calls asyncio loops have made since their last [`start_queued`], not started yet. The
/// first call of a batch schedules `start_queued` on its loop (`call_soon`); it hands the
/// whole batch to the I/O runtime in one task. So the loop's thread wakes an I/O thread once
/// per loop iteration, not once per call (each wake-up is a system call, and on a virtual
/// machine an interrupt to another CPU), and the calls' futures are built and spawned on the
/// I/O thread.
static OUTBOXES: Queues<Queued> = Mutex::new(Vec::new());
static START_QUEUED: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Hands `items` to the shared runtime: one task starts them all there. Those whose future
/// is cancelled by now (its done-callbacks may not have run yet) are dropped unstarted: a
/// call cancelled before its loop iteration ended never reaches the server.
fn start_all(py: Python<'_>, items: Vec<Queued>) {
    let items: Vec<(RunSlot, Start)> = items
        .into_iter()
        .filter(|q| {
            let cancelled = q
                .future
                .bind(py)
                .call_method0(intern!(py, "cancelled"))
                .and_then(|c| c.is_truthy())
                .unwrap_or(false);
            let mut state = run_state(&q.run);
            if cancelled {
                *state = Run::Cancelled;
            }
            !matches!(*state, Run::Cancelled)
        })
        .map(|q| (q.run, q.start))
        .collect();
    if items.is_empty() {
        return;
    }
    match ensure() {
        // Spawning takes no GIL release: see `WATCH_CODE` for why a loop's thread keeps it.
        Ok(rt) => {
            rt.spawn(async move {
                for (run, start) in items {
                    let mut state = run_state(&run);
                    if matches!(*state, Run::Queued) {
                        *state = Run::Started(start());
                    }
                }
            });
        }
        // The runtime was there when the calls were queued (`awaitable` needs it), so this
        // is a failure to restart it after fork: nothing can run these calls.
        Err(e) => e.write_unraisable(py, None),
    }
}

/// Scheduled on an asyncio loop by the first call of a batch: starts the batch.
#[pyfunction]
fn start_queued(py: Python<'_>, key: usize) {
    start_all(py, take(&OUTBOXES, key));
}

/// Queues a call for loop `event_loop` (key `key`), scheduling [`start_queued`] on it if this
/// is the first call of a batch. If the loop refuses the callback (closed), the call starts
/// at once.
fn queue_start(event_loop: &Bound<'_, PyAny>, key: usize, q: Queued) -> PyResult<()> {
    let py = event_loop.py();
    let first = push(&OUTBOXES, key, q);
    if first {
        let start = START_QUEUED.get_or_try_init(py, || {
            wrap_pyfunction!(start_queued, py).map(|f| f.into_any().unbind())
        })?;
        if event_loop
            .call_method1(intern!(py, "call_soon"), (start.clone_ref(py), key))
            .is_err()
        {
            start_queued(py, key);
        }
    }
    Ok(())
}

static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static FOREIGN_CALL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Spawns `fut` on the shared runtime; its output is delivered to `target` (an object with
/// asyncio's `done`/`set_result`/`set_exception`) on the loop's thread via `scheduler`.
fn spawn_for<F, D>(
    rt: &tokio::runtime::Runtime,
    key: usize,
    scheduler: Scheduler,
    target: Py<PyAny>,
    fut: F,
) -> tokio::task::AbortHandle
where
    F: Future<Output = D> + Send + 'static,
    D: FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send + 'static,
{
    rt.spawn(async move {
        let deliver = fut.await;
        complete(
            key,
            &scheduler,
            Completion {
                future: target,
                deliver: Box::new(deliver),
            },
        );
    })
    .abort_handle()
}

/// Wraps the future `make()` builds as an awaitable of the running event loop. It runs on
/// the shared I/O runtime without the GIL; its output builds the result on the loop's thread.
///
/// - asyncio (any loop implementation, uvloop included, and anyio on asyncio): an asyncio
///   future; the call is queued and starts with the rest of its loop iteration's calls (see
///   [`OUTBOXES`]; `make` runs on the I/O thread). Cancelling the future aborts the I/O task,
///   or keeps it from starting.
/// - trio (and anyio on trio): a waiter from `flightdeck_rs._runtimes`, resumed through
///   the run's `TrioToken`; a cancelled wait aborts the I/O task.
///
/// # Errors
/// `RuntimeError` (saying what is supported) when no supported event loop is running in
/// this thread, or when the I/O runtime cannot start.
pub fn awaitable<'py, M, F, D>(py: Python<'py>, make: M) -> PyResult<Bound<'py, PyAny>>
where
    M: FnOnce() -> F + Send + 'static,
    F: Future<Output = D> + Send + 'static,
    D: FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send + 'static,
{
    let rt = ensure()?;
    let get_loop = GET_RUNNING_LOOP.get_or_try_init(py, || {
        py.import("asyncio")?
            .getattr("_get_running_loop")
            .map(Bound::unbind)
    })?;
    let event_loop = get_loop.call0(py)?.into_bound(py);
    if event_loop.is_none() {
        return foreign_awaitable(py, &rt, make());
    }
    let future = event_loop.call_method0(intern!(py, "create_future"))?;
    let key = event_loop.as_ptr() as usize;
    drop_closed_queues(py, key);
    let scheduler = loop_scheduler(&event_loop, key);
    let run: RunSlot = Arc::new(Mutex::new(Run::Queued));
    let target = future.clone().unbind();
    let start: Start = Box::new(move || {
        tokio::spawn(async move {
            let deliver = make().await;
            complete(
                key,
                &scheduler,
                Completion {
                    future: target,
                    deliver: Box::new(deliver),
                },
            );
        })
        .abort_handle()
    });
    let canceller = Py::new(py, Canceller { run: run.clone() })?;
    future.call_method1(intern!(py, "add_done_callback"), (canceller,))?;
    queue_start(
        &event_loop,
        key,
        Queued {
            run,
            start,
            future: future.clone().unbind(),
        },
    )?;
    Ok(future)
}

/// The awaitable for an event loop other than asyncio's: `flightdeck_rs._runtimes.foreign_call`
/// returns a waiter for the running library (or raises, saying what is supported), whose
/// `token.run_sync_soon` runs the drain on the loop's thread.
fn foreign_awaitable<'py, F, D>(
    py: Python<'py>,
    rt: &tokio::runtime::Runtime,
    fut: F,
) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = D> + Send + 'static,
    D: FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send + 'static,
{
    let make = FOREIGN_CALL.get_or_try_init(py, || {
        py.import("flightdeck_rs._runtimes")?
            .getattr("foreign_call")
            .map(Bound::unbind)
    })?;
    let call = make.bind(py).call0()?;
    let token = call.getattr(intern!(py, "token"))?;
    let key = token.as_ptr() as usize;
    let scheduler = Scheduler::Call {
        target: token.unbind(),
        method: "run_sync_soon",
    };
    let task = spawn_for(rt, key, scheduler, call.clone().unbind(), fut);
    let run = Arc::new(Mutex::new(Run::Started(task)));
    call.setattr(intern!(py, "canceller"), Py::new(py, Canceller { run })?)?;
    Ok(call)
}
