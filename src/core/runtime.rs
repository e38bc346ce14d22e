//! Tokio runtimes, rebuilt after `fork()` (a runtime's worker threads and its I/O driver
//! do not survive into a forked child).
//!
//! - One shared multi-thread runtime per process ([`get`]) runs the async face.
//! - Every thread that makes blocking calls drives its own current-thread runtime
//!   ([`block_on_local`]): the request and hyper's connection task then run on the calling
//!   thread, with no cross-thread wakeups per call.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::runtime::Runtime;

struct Slot {
    pid: u32,
    rt: Arc<Runtime>,
}

static RUNTIME: Mutex<Option<Slot>> = Mutex::new(None);

/// The process-wide runtime, created on first use and re-created in a forked child.
///
/// # Errors
/// Returns the I/O error if the runtime's threads cannot be started.
pub fn get() -> std::io::Result<Arc<Runtime>> {
    let pid = crate::core::pid::current();
    let mut guard = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(slot) = guard.as_ref() {
        if slot.pid == pid {
            return Ok(slot.rt.clone());
        }
    }
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("flightdeck-rs-io")
            .enable_all()
            .build()?,
    );
    if let Some(old) = guard.take() {
        // Inherited from the parent: its threads are gone, so dropping it would wait
        // for workers that will never answer. Leak it instead.
        std::mem::forget(old);
    }
    *guard = Some(Slot {
        pid,
        rt: rt.clone(),
    });
    Ok(rt)
}

/// A thread's own current-thread runtime.
struct Local {
    pid: u32,
    /// Unique per runtime ever built, so that state tied to one runtime (connection pools)
    /// is never used with another.
    generation: u64,
    rt: Runtime,
}

static GENERATIONS: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static LOCAL: RefCell<Option<Rc<Local>>> = const { RefCell::new(None) };
    /// The generation of the local runtime this thread is driving right now (0: none).
    static DRIVING: Cell<u64> = const { Cell::new(0) };
}

fn local() -> std::io::Result<Rc<Local>> {
    let pid = crate::core::pid::current();
    LOCAL.with(|cell| {
        let mut slot = cell.borrow_mut();
        if let Some(l) = slot.as_ref() {
            if l.pid == pid {
                return Ok(l.clone());
            }
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        if let Some(old) = slot.take() {
            // Inherited from the parent (we are a forked child): its I/O driver shares
            // file descriptors with the parent's. Leak it rather than shut it down.
            std::mem::forget(old);
        }
        let l = Rc::new(Local {
            pid,
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
            rt,
        });
        *slot = Some(l.clone());
        Ok(l)
    })
}

struct Driving(u64);

impl Drop for Driving {
    fn drop(&mut self) {
        DRIVING.with(|d| d.set(self.0));
    }
}

/// Runs `fut` to completion on the calling thread's own current-thread runtime.
///
/// # Errors
/// The I/O error if the runtime cannot be built, or [`std::io::ErrorKind::WouldBlock`]
/// when called from inside a running runtime (blocking there would deadlock it).
pub fn block_on_local<F: Future>(fut: F) -> std::io::Result<F::Output> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::WouldBlock,
            "a blocking call cannot be made from inside a running async runtime",
        ));
    }
    let l = local()?;
    let _restore = Driving(DRIVING.with(|d| d.replace(l.generation)));
    Ok(l.rt.block_on(fut))
}

/// The generation of this thread's local runtime, if it has one (built in this process).
pub fn thread_generation() -> Option<u64> {
    let pid = crate::core::pid::current();
    LOCAL
        .try_with(|cell| {
            cell.try_borrow()
                .ok()
                .and_then(|s| s.as_ref().filter(|l| l.pid == pid).map(|l| l.generation))
        })
        .ok()
        .flatten()
}

/// The generation of the thread-local runtime being driven by this thread, if any: code
/// running inside [`block_on_local`] sees `Some`, code on the shared runtime sees `None`.
pub fn local_generation() -> Option<u64> {
    match DRIVING.with(Cell::get) {
        0 => None,
        g => Some(g),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_runtime_is_reused_and_marks_driving() {
        assert_eq!(local_generation(), None);
        let a = block_on_local(async { local_generation() }).unwrap();
        let b = block_on_local(async { local_generation() }).unwrap();
        assert!(a.is_some());
        assert_eq!(a, b);
        assert_eq!(local_generation(), None);
    }

    #[test]
    fn refuses_to_block_inside_a_runtime() {
        let rt = get().unwrap();
        let r = rt.block_on(async { block_on_local(async { 1 }) });
        assert!(r.is_err());
    }
}
