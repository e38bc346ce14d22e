//! One tokio runtime per process, rebuilt after `fork()` (a runtime's worker threads do
//! not exist in a forked child).

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
    let pid = std::process::id();
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
