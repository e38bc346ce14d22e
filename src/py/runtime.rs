//! Bridges core futures to Python: blocking with the GIL released (sync face) and asyncio
//! awaitables through `pyo3-async-runtimes` on our fork-aware runtime (async face).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3_async_runtimes::generic::{ContextExt, JoinError, Runtime};
use pyo3_async_runtimes::TaskLocals;
use std::sync::OnceLock as OnceCell;

use crate::core::runtime;

tokio::task_local! {
    static TASK_LOCALS: OnceCell<TaskLocals>;
}

/// The process-wide tokio runtime of [`crate::core::runtime`], as seen by
/// `pyo3-async-runtimes`.
pub struct ForkSafeRuntime;

/// Join error of a spawned task.
#[derive(Debug)]
pub struct TaskJoinError(tokio::task::JoinError);

impl JoinError for TaskJoinError {
    fn is_panic(&self) -> bool {
        self.0.is_panic()
    }
    fn into_panic(self) -> Box<dyn std::any::Any + Send + 'static> {
        match self.0.try_into_panic() {
            Ok(p) => p,
            Err(e) => Box::new(e.to_string()),
        }
    }
}

/// A spawned task's handle.
pub struct Handle(tokio::task::JoinHandle<()>);

impl Future for Handle {
    type Output = Result<(), TaskJoinError>;
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.map_err(TaskJoinError))
    }
}

impl Runtime for ForkSafeRuntime {
    type JoinError = TaskJoinError;
    type JoinHandle = Handle;

    fn spawn<F>(fut: F) -> Self::JoinHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match runtime::get() {
            Ok(rt) => Handle(rt.spawn(fut)),
            // Only reachable if thread creation fails after `ensure()` succeeded.
            Err(_) => Handle(tokio::spawn(fut)),
        }
    }

    fn spawn_blocking<F>(f: F) -> Self::JoinHandle
    where
        F: FnOnce() + Send + 'static,
    {
        match runtime::get() {
            Ok(rt) => Handle(rt.spawn_blocking(f)),
            Err(_) => Handle(tokio::task::spawn_blocking(f)),
        }
    }
}

impl ContextExt for ForkSafeRuntime {
    fn scope<F, R>(locals: TaskLocals, fut: F) -> Pin<Box<dyn Future<Output = R> + Send>>
    where
        F: Future<Output = R> + Send + 'static,
    {
        let cell = OnceCell::new();
        let _ = cell.set(locals);
        Box::pin(TASK_LOCALS.scope(cell, fut))
    }

    fn get_task_locals() -> Option<TaskLocals> {
        TASK_LOCALS
            .try_with(|c| c.get().cloned())
            .unwrap_or_default()
    }
}

fn ensure() -> PyResult<std::sync::Arc<tokio::runtime::Runtime>> {
    runtime::get().map_err(|e| PyRuntimeError::new_err(format!("cannot start I/O runtime: {e}")))
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
                        Python::attach(|py| py.check_signals())?;
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
                        Python::attach(|py| py.check_signals())?;
                    }
                }
            }
        })
    })
}

/// Wraps `fut` as an asyncio awaitable on the running loop.
pub fn awaitable<'py, F, T>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    ensure()?;
    pyo3_async_runtimes::generic::future_into_py::<ForkSafeRuntime, F, T>(py, fut)
}
