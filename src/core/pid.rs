//! This process's id, read once and kept: `std::process::id()` is a system call on every
//! use, and the hot paths (each awaited call, each emitted event) check it to notice a
//! `fork()`. On Unix a `pthread_atfork` child handler forgets the kept id, so a forked child
//! reads its own; where the handler cannot be registered, every call asks the system.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// The kept id; 0 when not read yet (or forgotten in a forked child).
static PID: AtomicU32 = AtomicU32::new(0);
/// Whether the fork handler is registered (only then is the id kept).
static HOOKED: OnceLock<bool> = OnceLock::new();

/// The id of the calling process.
pub fn current() -> u32 {
    let kept = PID.load(Ordering::Acquire);
    if kept != 0 {
        return kept;
    }
    let pid = std::process::id();
    if *HOOKED.get_or_init(register) {
        PID.store(pid, Ordering::Release);
    }
    pid
}

#[cfg(unix)]
extern "C" fn forget_in_child() {
    // Runs in the child right after fork(), before it returns there: only an atomic store.
    PID.store(0, Ordering::Release);
}

#[cfg(unix)]
#[allow(unsafe_code)]
fn register() -> bool {
    // SAFETY: pthread_atfork only records the three handler pointers; the one given is a
    // plain `extern "C"` function that lives for the whole process and does no more than an
    // atomic store, which is async-signal-safe, as a handler run after fork() must be.
    unsafe { libc::pthread_atfork(None, None, Some(forget_in_child)) == 0 }
}

#[cfg(not(unix))]
fn register() -> bool {
    // No fork(): the id never changes.
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_is_the_process_id_and_is_kept() {
        assert_eq!(current(), std::process::id());
        assert_eq!(current(), std::process::id());
        assert_eq!(PID.load(Ordering::Acquire), std::process::id());
    }
}
