//! Background event emitter: `emit()` enqueues pre-encoded events without waiting; one
//! sender thread per emitter batches them to `POST /v1/events` with retries, bounded
//! memory, flush/close deadlines and fork safety. The sender never touches Python.

mod sender;
pub mod spool;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::core::retry::DeliveryRule;

/// Emitter settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Server base URL; events go to `base_url + "/v1/events"`.
    pub base_url: String,
    pub api_token: Option<String>,
    pub max_queue_events: usize,
    pub max_queue_bytes: usize,
    pub max_batch_events: usize,
    pub max_batch_bytes: usize,
    pub max_event_bytes: usize,
    pub flush_interval: Duration,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Retry timing (base and cap of the backoff, also the bound of `Retry-After` and the
    /// pause between attempts while misconfigured); the decisions are the delivery rule's.
    pub retry: DeliveryRule,
    /// Durable spool, off by default.
    pub spool: Option<spool::SpoolConfig>,
}

impl Config {
    /// Defaults from the design notes for `base_url`.
    pub fn new(base_url: &str) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            api_token: None,
            max_queue_events: 10_000,
            max_queue_bytes: 16 * 1024 * 1024,
            max_batch_events: 100,
            max_batch_bytes: 1024 * 1024,
            max_event_bytes: 256 * 1024,
            flush_interval: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
            retry: DeliveryRule::DEFAULT,
            spool: None,
        }
    }
}

/// Why `emit()` did not accept an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// No usable spool and the in-memory queue is full.
    QueueFull,
    TooLarge,
    AfterClose,
    /// The spool reached `spool_max_bytes` (and, in async mode, the in-memory queue that
    /// holds what the spool cannot take is full too).
    SpoolFull,
}

/// One event held in memory: its wire bytes, when it was accepted (or, read back from the
/// spool, about when its segment began) and, when spooled, where it sits in the spool.
#[derive(Clone, Debug)]
pub struct Item {
    pub bytes: Vec<u8>,
    pub pos: Option<spool::Pos>,
    pub at: Instant,
}

/// Events moved from memory to the spool per write (bounds the copy made for it).
const DRAIN_CHUNK_BYTES: usize = 256 * 1024;

/// Sender state, as reported by `stats()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    Running = 0,
    Retrying = 1,
    Misconfigured = 2,
    Closed = 3,
}

impl State {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Retrying,
            2 => Self::Misconfigured,
            3 => Self::Closed,
            _ => Self::Running,
        }
    }

    /// The name shown in `stats()`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Retrying => "retrying",
            Self::Misconfigured => "misconfigured",
            Self::Closed => "closed",
        }
    }
}

/// Counters shared between `emit()` callers and the sender.
#[derive(Default, Debug)]
pub struct Counters {
    pub accepted: AtomicU64,
    pub acked: AtomicU64,
    pub server_inserted: AtomicU64,
    pub server_duplicates: AtomicU64,
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub dropped_queue_full: AtomicU64,
    pub dropped_invalid: AtomicU64,
    pub dropped_too_large: AtomicU64,
    pub dropped_at_shutdown: AtomicU64,
    pub dropped_after_close: AtomicU64,
    /// Accepted events later dropped (invalid, too large for the server, at shutdown).
    pub dropped_after_accept: AtomicU64,
    /// Accepted events that are acknowledged or dropped, in acceptance order.
    pub resolved: AtomicU64,
    pub worker_restarts: AtomicU64,
    pub discarded_on_fork: AtomicU64,
    pub spool_replayed: AtomicU64,
    pub spool_corrupt_lines: AtomicU64,
    pub dropped_spool_full: AtomicU64,
    pub dropped_spool_expired: AtomicU64,
    /// Accepted events lost because their spool segment could not be read back.
    pub dropped_spool_unreadable: AtomicU64,
    /// Accepted events still undelivered at close, kept in the spool for the next start.
    pub left_in_spool: AtomicU64,
}

/// The queue proper: pre-encoded events, oldest first.
#[derive(Default)]
pub(crate) struct Queue {
    pub items: VecDeque<Item>,
    pub bytes: usize,
}

/// State shared by the emitter handle and its sender thread.
pub struct Shared {
    pub cfg: Config,
    pub(crate) queue: Mutex<Queue>,
    /// Wakes the sender (new batch ready, flush, close).
    pub(crate) wake: Condvar,
    /// Signals progress of `resolved` to flush waiters.
    pub(crate) progress: Mutex<()>,
    pub(crate) progressed: Condvar,
    pub counters: Counters,
    pub(crate) queue_events: AtomicUsize,
    pub(crate) queue_bytes: AtomicUsize,
    pub(crate) in_flight: AtomicUsize,
    /// Send at once until `resolved` reaches this sequence number.
    pub(crate) flush_target: AtomicU64,
    /// Bumped by every flush/close request; interrupts a retry sleep once.
    pub(crate) flush_gen: AtomicU64,
    pub(crate) closing: AtomicBool,
    /// Deadline for delivery after close, as nanoseconds since `epoch`.
    pub(crate) close_deadline_ns: AtomicU64,
    pub(crate) epoch: Instant,
    pub(crate) state: AtomicU8,
    pub(crate) last_error: Mutex<Option<String>>,
    /// Messages for the host's logger, drained on the caller's thread.
    pub(crate) notices: Mutex<Vec<(Level, String)>>,
    pub(crate) has_notices: AtomicBool,
    pub(crate) warned_misconfigured: AtomicBool,
    pub(crate) warned_spool_io: AtomicBool,
    pub(crate) warned_spool_full: AtomicBool,
    /// Held while queued events move to the spool, so that they move once and in order.
    pub(crate) drain_lock: Mutex<()>,
    pub(crate) finished: Mutex<bool>,
    pub(crate) finished_cv: Condvar,
    /// Sub-batches taken from the queue and not yet resolved (survives a worker restart).
    pub(crate) pending: Mutex<VecDeque<Vec<Item>>>,
    pub(crate) spool: Option<spool::Spool>,
}

/// Severity of a notice for the host's logger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Warning,
    Error,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Builds the shared state, opening the spool (and queueing its replay) when enabled.
    fn build(cfg: Config) -> Self {
        let spool_cfg = cfg.spool.clone();
        let mut s = Self::new(cfg);
        if let Some(sc) = spool_cfg {
            match spool::Spool::open(sc) {
                Ok((sp, replay)) => {
                    let c = &s.counters;
                    c.spool_corrupt_lines
                        .fetch_add(replay.corrupt_lines, Ordering::Relaxed);
                    c.dropped_spool_expired
                        .fetch_add(replay.expired_events, Ordering::Relaxed);
                    // Replayed events stay on disk; the sender reads them back first.
                    c.spool_replayed.fetch_add(replay.events, Ordering::Relaxed);
                    c.accepted.fetch_add(replay.events, Ordering::Relaxed);
                    if replay.corrupt_lines > 0 || replay.corrupt_segments > 0 {
                        s.notice(
                            Level::Warning,
                            format!(
                                "emitter spool: skipped {} unreadable line(s) and {} unreadable segment(s)",
                                replay.corrupt_lines, replay.corrupt_segments
                            ),
                        );
                    }
                    s.spool = Some(sp);
                }
                Err(e) => s.notice(
                    Level::Warning,
                    format!("emitter spool disabled, keeping events in memory only: {e}"),
                ),
            }
        }
        s
    }

    fn new(cfg: Config) -> Self {
        Self {
            cfg,
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            progress: Mutex::new(()),
            progressed: Condvar::new(),
            counters: Counters::default(),
            queue_events: AtomicUsize::new(0),
            queue_bytes: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            flush_target: AtomicU64::new(0),
            flush_gen: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            close_deadline_ns: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
            state: AtomicU8::new(State::Running as u8),
            last_error: Mutex::new(None),
            notices: Mutex::new(Vec::new()),
            has_notices: AtomicBool::new(false),
            warned_misconfigured: AtomicBool::new(false),
            warned_spool_io: AtomicBool::new(false),
            warned_spool_full: AtomicBool::new(false),
            drain_lock: Mutex::new(()),
            finished: Mutex::new(false),
            finished_cv: Condvar::new(),
            pending: Mutex::new(VecDeque::new()),
            spool: None,
        }
    }

    pub(crate) fn notice(&self, level: Level, msg: String) {
        lock(&self.notices).push((level, msg));
        self.has_notices.store(true, Ordering::Release);
    }

    pub(crate) fn spool_io_error(&self, e: &std::io::Error) {
        if !self.warned_spool_io.swap(true, Ordering::AcqRel) {
            self.notice(
                Level::Warning,
                format!("emitter spool write failed, keeping events in memory only: {e}"),
            );
        }
    }

    pub(crate) fn spool_full(&self, msg: &str) {
        if !self.warned_spool_full.swap(true, Ordering::AcqRel) {
            self.notice(Level::Warning, msg.into());
        }
    }

    /// Moves the events queued in memory to the spool, oldest first, in chunks; those that
    /// do not fit stay queued. Returns why it stopped early, if it did.
    pub(crate) fn drain_to_spool(&self) -> Option<spool::AppendError> {
        let sp = self.spool.as_ref()?;
        let _d = lock(&self.drain_lock);
        loop {
            // Only drain_to_spool (under drain_lock) and the sender remove queued events,
            // and the sender takes them under drain_lock too: the prefix copied here is
            // still the queue's prefix when it is removed below.
            let copies: Vec<Vec<u8>> = {
                let q = lock(&self.queue);
                let mut bytes = 0usize;
                q.items
                    .iter()
                    .take_while(|i| {
                        let fits = bytes == 0 || bytes + i.bytes.len() <= DRAIN_CHUNK_BYTES;
                        bytes += i.bytes.len();
                        fits
                    })
                    .map(|i| i.bytes.clone())
                    .collect()
            };
            if copies.is_empty() {
                return None;
            }
            let lines: Vec<&[u8]> = copies.iter().map(Vec::as_slice).collect();
            let (n, err) = sp.append_many(&lines);
            if n > 0 {
                let mut q = lock(&self.queue);
                for _ in 0..n {
                    if let Some(item) = q.items.pop_front() {
                        q.bytes -= item.bytes.len();
                    }
                }
                self.queue_events.store(q.items.len(), Ordering::Release);
                self.queue_bytes.store(q.bytes, Ordering::Release);
            }
            match err {
                None => {}
                Some(spool::AppendError::Full) => {
                    self.spool_full(
                        "emitter spool is full; new events are kept in memory (max_queue_*) and refused once that is full too",
                    );
                    return Some(spool::AppendError::Full);
                }
                Some(spool::AppendError::Io(e)) => {
                    self.spool_io_error(&e);
                    return Some(spool::AppendError::Io(e));
                }
            }
        }
    }

    /// Age of the oldest accepted event not yet acknowledged or dropped.
    pub(crate) fn oldest_unsent(&self) -> Option<Instant> {
        let pending = lock(&self.pending)
            .front()
            .and_then(|b| b.first())
            .map(|i| i.at);
        let spooled = self.spool.as_ref().and_then(spool::Spool::oldest_unread);
        let queued = lock(&self.queue).items.front().map(|i| i.at);
        [pending, spooled, queued].into_iter().flatten().min()
    }

    /// Events accepted and waiting to be taken into a batch: in memory or in the spool.
    pub(crate) fn waiting(&self) -> u64 {
        self.queue_events.load(Ordering::Acquire) as u64
            + self.spool.as_ref().map_or(0, spool::Spool::unread)
    }

    pub(crate) fn set_error(&self, msg: String) {
        *lock(&self.last_error) = Some(msg);
    }

    pub(crate) fn set_state(&self, s: State) {
        self.state.store(s as u8, Ordering::Release);
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self.close_deadline_ns.load(Ordering::Acquire) {
            u64::MAX => None,
            ns => Some(self.epoch + Duration::from_nanos(ns)),
        }
    }

    /// Waits up to `timeout` for every event up to `target` to be resolved.
    pub fn wait_resolved(&self, target: u64, timeout: Duration) -> bool {
        let s = self;
        let end = Instant::now() + timeout;
        let mut g = lock(&s.progress);
        loop {
            if s.counters.resolved.load(Ordering::Acquire) >= target {
                return true;
            }
            let now = Instant::now();
            if now >= end {
                return false;
            }
            g = match s.progressed.wait_timeout(g, end - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// Waits up to `timeout` for the sender thread to finish.
    pub fn wait_finished(&self, timeout: Duration) -> bool {
        let s = self;
        let end = Instant::now() + timeout;
        let mut g = lock(&s.finished);
        while !*g {
            let now = Instant::now();
            if now >= end {
                return false;
            }
            g = match s.finished_cv.wait_timeout(g, end - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }

    pub(crate) fn resolve(&self, n: u64) {
        self.counters.resolved.fetch_add(n, Ordering::AcqRel);
        let _g = lock(&self.progress);
        self.progressed.notify_all();
    }
}

/// A snapshot of an emitter's counters and gauges.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub accepted: u64,
    pub acked: u64,
    pub server_inserted: u64,
    pub server_duplicates: u64,
    pub requests: u64,
    pub retries: u64,
    pub dropped_queue_full: u64,
    pub dropped_invalid: u64,
    pub dropped_too_large: u64,
    pub dropped_at_shutdown: u64,
    pub dropped_after_close: u64,
    pub dropped_after_accept: u64,
    pub worker_restarts: u64,
    pub discarded_on_fork: u64,
    pub spool_replayed: u64,
    pub spool_corrupt_lines: u64,
    pub dropped_spool_full: u64,
    pub dropped_spool_expired: u64,
    pub dropped_spool_unreadable: u64,
    pub left_in_spool: u64,
    pub spool_bytes: u64,
    /// Events in the spool not yet acknowledged.
    pub spool_events: u64,
    /// Seconds since the oldest accepted event still waiting or in flight was accepted
    /// (for spooled events: since its segment began); 0 when nothing is waiting.
    pub oldest_unsent_age_s: f64,
    pub queue_events: u64,
    pub queue_bytes: u64,
    pub in_flight: u64,
    pub state: &'static str,
    pub last_error: Option<String>,
}

impl Drop for Emitter {
    fn drop(&mut self) {
        // An emitter dropped without close(): stop accepting and let the sender deliver what
        // it holds (bounded by the request timeout), then exit. Never waits here.
        if self.pid == crate::core::pid::current() && !self.is_closing() {
            self.begin_close(self.shared.cfg.request_timeout);
        }
    }
}

/// The emitter handle held by the host.
pub struct Emitter {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    pid: u32,
}

impl Emitter {
    /// Starts an emitter and its sender thread.
    ///
    /// # Errors
    /// The I/O error when the thread cannot be spawned.
    pub fn start(cfg: Config) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::build(cfg));
        let thread = sender::spawn(shared.clone())?;
        Ok(Self {
            shared,
            thread: Some(thread),
            pid: crate::core::pid::current(),
        })
    }

    /// The process this emitter's sender belongs to.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Settings in use.
    pub fn config(&self) -> &Config {
        &self.shared.cfg
    }

    /// Enqueues one encoded event. Never blocks on the network.
    ///
    /// # Errors
    /// Why the event was not accepted (it is counted under that reason).
    pub fn emit(&self, event: Vec<u8>) -> Result<(), Rejected> {
        let s = &self.shared;
        let c = &s.counters;
        if s.closing.load(Ordering::Acquire) {
            c.dropped_after_close.fetch_add(1, Ordering::Relaxed);
            return Err(Rejected::AfterClose);
        }
        if event.len() > s.cfg.max_event_bytes {
            c.dropped_too_large.fetch_add(1, Ordering::Relaxed);
            return Err(Rejected::TooLarge);
        }
        let Some(sp) = s.spool.as_ref() else {
            return self.enqueue(event, None);
        };
        // With a spool, memory only buffers: sync mode writes here (unless older events
        // wait in memory after a write error: order first), async mode leaves it to the
        // sender. When the memory queue is full, it moves to the spool on this thread.
        let mut tried = None;
        for _ in 0..3 {
            let q = lock(&s.queue);
            if sp.cfg.mode == spool::Mode::Sync && q.items.is_empty() {
                match sp.append(&event) {
                    Ok(_) => {
                        drop(q);
                        c.accepted.fetch_add(1, Ordering::AcqRel);
                        if sp.unread().is_multiple_of(s.cfg.max_batch_events as u64) {
                            s.wake.notify_one();
                        }
                        return Ok(());
                    }
                    Err(spool::AppendError::Full) => {
                        drop(q);
                        return Err(self.refuse_spool_full());
                    }
                    Err(spool::AppendError::Io(e)) => s.spool_io_error(&e),
                }
            }
            if q.items.len() < s.cfg.max_queue_events
                && q.bytes + event.len() <= s.cfg.max_queue_bytes
            {
                return self.push(q, event, None);
            }
            drop(q);
            if tried.is_some() {
                break;
            }
            tried = Some(s.drain_to_spool());
        }
        match tried.flatten() {
            Some(spool::AppendError::Full) => Err(self.refuse_spool_full()),
            _ => {
                c.dropped_queue_full.fetch_add(1, Ordering::Relaxed);
                Err(Rejected::QueueFull)
            }
        }
    }

    fn refuse_spool_full(&self) -> Rejected {
        let s = &self.shared;
        s.counters
            .dropped_spool_full
            .fetch_add(1, Ordering::Relaxed);
        s.spool_full("emitter spool is full; dropping new events");
        Rejected::SpoolFull
    }

    /// Without a spool: the bounded in-memory queue.
    fn enqueue(&self, event: Vec<u8>, pos: Option<spool::Pos>) -> Result<(), Rejected> {
        let s = &self.shared;
        let q = lock(&s.queue);
        if q.items.len() >= s.cfg.max_queue_events || q.bytes + event.len() > s.cfg.max_queue_bytes
        {
            drop(q);
            s.counters
                .dropped_queue_full
                .fetch_add(1, Ordering::Relaxed);
            return Err(Rejected::QueueFull);
        }
        self.push(q, event, pos)
    }

    fn push(
        &self,
        mut q: MutexGuard<'_, Queue>,
        event: Vec<u8>,
        pos: Option<spool::Pos>,
    ) -> Result<(), Rejected> {
        let s = &self.shared;
        q.bytes += event.len();
        q.items.push_back(Item {
            bytes: event,
            pos,
            at: Instant::now(),
        });
        s.counters.accepted.fetch_add(1, Ordering::AcqRel);
        s.queue_events.store(q.items.len(), Ordering::Relaxed);
        s.queue_bytes.store(q.bytes, Ordering::Relaxed);
        let ready = q.items.len().is_multiple_of(s.cfg.max_batch_events);
        drop(q);
        if ready {
            s.wake.notify_one();
        }
        Ok(())
    }

    /// Asks the sender to deliver everything accepted so far without waiting for the
    /// interval; returns the sequence number to wait for.
    pub fn request_flush(&self) -> u64 {
        let s = &self.shared;
        let target = s.counters.accepted.load(Ordering::Acquire);
        s.flush_target.fetch_max(target, Ordering::AcqRel);
        s.flush_gen.fetch_add(1, Ordering::AcqRel);
        let _q = lock(&s.queue);
        s.wake.notify_all();
        target
    }

    /// Waits up to `timeout` for every event up to `target` to be resolved.
    pub fn wait_resolved(&self, target: u64, timeout: Duration) -> bool {
        self.shared.wait_resolved(target, timeout)
    }

    /// A handle on the shared state, for waiting without holding the emitter.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Starts closing: no new events are accepted; the sender delivers until `deadline`,
    /// then drops what is left as `dropped_at_shutdown`.
    pub fn begin_close(&self, timeout: Duration) {
        let s = &self.shared;
        let ns = (Instant::now() + timeout)
            .duration_since(s.epoch)
            .as_nanos();
        let ns = u64::try_from(ns).unwrap_or(u64::MAX - 1);
        s.close_deadline_ns.fetch_min(ns, Ordering::AcqRel);
        s.closing.store(true, Ordering::Release);
        let target = s.counters.accepted.load(Ordering::Acquire);
        s.flush_target.fetch_max(target, Ordering::AcqRel);
        s.flush_gen.fetch_add(1, Ordering::AcqRel);
        let _q = lock(&s.queue);
        s.wake.notify_all();
    }

    /// Waits up to `timeout` for the sender thread to finish.
    pub fn wait_finished(&self, timeout: Duration) -> bool {
        self.shared.wait_finished(timeout)
    }

    /// Joins the sender thread if it has finished.
    pub fn reap(&mut self) {
        if *lock(&self.shared.finished) {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    /// Whether `close` was started.
    pub fn is_closing(&self) -> bool {
        self.shared.closing.load(Ordering::Acquire)
    }

    /// In a forked child: forget the parent's queue and thread (never locking anything the
    /// parent's threads may have held) and start afresh. Returns how many inherited events
    /// were discarded (the parent still owns and sends them).
    ///
    /// # Errors
    /// The I/O error when the new sender thread cannot be spawned.
    pub fn reset_after_fork(&mut self) -> std::io::Result<u64> {
        if let Some(sp) = self.shared.spool.as_ref() {
            sp.close_inherited_descriptors();
        }
        let fresh = Arc::new(Shared::build(self.shared.cfg.clone()));
        let old = std::mem::replace(&mut self.shared, fresh);
        let inherited = old.waiting() + old.in_flight.load(Ordering::Relaxed) as u64;
        self.shared
            .counters
            .discarded_on_fork
            .store(inherited, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            std::mem::forget(t);
        }
        // Leaked on purpose: its locks may be held by threads that do not exist here, and its
        // segment descriptors were closed above.
        std::mem::forget(old);
        self.thread = Some(sender::spawn(self.shared.clone())?);
        self.pid = crate::core::pid::current();
        Ok(inherited)
    }

    /// Takes the notices queued for the host's logger.
    pub fn take_notices(&self) -> Vec<(Level, String)> {
        let s = &self.shared;
        if !s.has_notices.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        std::mem::take(&mut *lock(&s.notices))
    }

    /// Whether notices are waiting.
    pub fn has_notices(&self) -> bool {
        self.shared.has_notices.load(Ordering::Acquire)
    }

    /// A snapshot of the counters and gauges.
    pub fn stats(&self) -> Stats {
        let s = &self.shared;
        let c = &s.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Acquire);
        Stats {
            accepted: l(&c.accepted),
            acked: l(&c.acked),
            server_inserted: l(&c.server_inserted),
            server_duplicates: l(&c.server_duplicates),
            requests: l(&c.requests),
            retries: l(&c.retries),
            dropped_queue_full: l(&c.dropped_queue_full),
            dropped_invalid: l(&c.dropped_invalid),
            dropped_too_large: l(&c.dropped_too_large),
            dropped_at_shutdown: l(&c.dropped_at_shutdown),
            dropped_after_close: l(&c.dropped_after_close),
            dropped_after_accept: l(&c.dropped_after_accept),
            worker_restarts: l(&c.worker_restarts),
            discarded_on_fork: l(&c.discarded_on_fork),
            spool_replayed: l(&c.spool_replayed),
            spool_corrupt_lines: l(&c.spool_corrupt_lines),
            dropped_spool_full: l(&c.dropped_spool_full),
            dropped_spool_expired: l(&c.dropped_spool_expired),
            dropped_spool_unreadable: l(&c.dropped_spool_unreadable),
            left_in_spool: l(&c.left_in_spool),
            spool_bytes: s.spool.as_ref().map_or(0, spool::Spool::bytes),
            spool_events: s.spool.as_ref().map_or(0, spool::Spool::events),
            oldest_unsent_age_s: s.oldest_unsent().map_or(0.0, |t| t.elapsed().as_secs_f64()),
            queue_events: s.waiting(),
            queue_bytes: s.queue_bytes.load(Ordering::Acquire) as u64,
            in_flight: s.in_flight.load(Ordering::Acquire) as u64,
            state: State::from_u8(s.state.load(Ordering::Acquire)).as_str(),
            last_error: lock(&s.last_error).clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::AtomicUsize;

    /// A loopback HTTP/1.1 server: a batch containing `"poison` answers 400, others 200
    /// with `{"inserted": n}`. Counts requests.
    fn server() -> (String, Arc<AtomicUsize>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut s) = conn else { return };
                let h = h.clone();
                std::thread::spawn(move || loop {
                    let mut buf = Vec::new();
                    let mut tmp = [0u8; 65536];
                    let (head_end, len) = loop {
                        let Ok(n) = s.read(&mut tmp) else { return };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&tmp[..n]);
                        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..p]).to_ascii_lowercase();
                            let len = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (p + 4, len);
                        }
                    };
                    while buf.len() < head_end + len {
                        let Ok(n) = s.read(&mut tmp) else { return };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&tmp[..n]);
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string();
                    let n = body.matches("\"run_id\"").count();
                    let (status, reply) = if body.contains("poison") {
                        (
                            "400 Bad Request",
                            "{\"detail\":\"Invalid RunEvent\"}".to_string(),
                        )
                    } else {
                        ("200 OK", format!("{{\"inserted\":{n}}}"))
                    };
                    let resp = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{reply}",
                        reply.len()
                    );
                    if s.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                });
            }
        });
        (url, hits)
    }

    fn event(id: &str) -> Vec<u8> {
        format!("{{\"run_id\":\"{id}\"}}").into_bytes()
    }

    fn identity_holds(s: &Stats) -> bool {
        s.accepted
            == s.acked + s.dropped_after_accept + s.left_in_spool + s.queue_events + s.in_flight
    }

    #[test]
    fn poison_event_is_isolated_by_bisection() {
        let (url, hits) = server();
        let mut cfg = Config::new(&url);
        cfg.flush_interval = Duration::from_millis(10);
        let e = Emitter::start(cfg).unwrap();
        for i in 0..100 {
            let id = if i == 37 {
                "poison-37".to_string()
            } else {
                format!("ok-{i}")
            };
            assert_eq!(e.emit(event(&id)), Ok(()));
        }
        let target = e.request_flush();
        assert!(e.wait_resolved(target, Duration::from_secs(10)));
        let s = e.stats();
        assert_eq!(s.acked, 99);
        assert_eq!(s.dropped_invalid, 1);
        assert!(identity_holds(&s), "{s:?}");
        assert!(
            hits.load(Ordering::SeqCst) <= 15,
            "{} requests",
            hits.load(Ordering::SeqCst)
        );
        assert!(s
            .last_error
            .unwrap_or_default()
            .contains("Invalid RunEvent"));
        e.begin_close(Duration::from_secs(2));
        assert!(e.wait_finished(Duration::from_secs(5)));
    }

    #[test]
    fn full_queue_drops_newest_and_close_counts_leftovers() {
        // Nothing listens on this port: every attempt fails to connect.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cfg = Config::new(&format!("http://127.0.0.1:{port}"));
        cfg.max_queue_events = 10;
        cfg.max_batch_events = 5;
        cfg.retry = DeliveryRule {
            base: Duration::from_millis(5),
            cap: Duration::from_millis(20),
        };
        let e = Emitter::start(cfg).unwrap();
        let results: Vec<_> = (0..30).map(|i| e.emit(event(&format!("x-{i}")))).collect();
        let accepted = results.iter().filter(|r| r.is_ok()).count() as u64;
        assert!((10..30).contains(&accepted));
        assert!(results.contains(&Err(Rejected::QueueFull)));
        e.begin_close(Duration::from_millis(200));
        assert!(e.wait_finished(Duration::from_secs(5)));
        let s = e.stats();
        assert_eq!(s.accepted, accepted);
        assert_eq!(s.dropped_at_shutdown, accepted);
        assert_eq!(s.dropped_queue_full, 30 - accepted);
        assert!(identity_holds(&s), "{s:?}");
        assert_eq!(e.emit(event("late")), Err(Rejected::AfterClose));
    }

    #[test]
    fn with_a_spool_the_disk_not_the_memory_queue_bounds_acceptance() {
        for mode in [spool::Mode::Sync, spool::Mode::Async] {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let dir = std::env::temp_dir().join(format!(
                "fdrs-emitter-bound-{}-{}",
                crate::core::pid::current(),
                fastrand::u64(..)
            ));
            let mut cfg = Config::new(&format!("http://127.0.0.1:{port}"));
            cfg.max_queue_events = 10;
            cfg.max_batch_events = 5;
            cfg.retry = DeliveryRule {
                base: Duration::from_millis(5),
                cap: Duration::from_millis(20),
            };
            let mut sc = spool::SpoolConfig::new(dir.clone(), mode);
            sc.max_bytes = 1000 * 20; // room for 1,000 of these events
            cfg.spool = Some(sc);
            let e = Emitter::start(cfg).unwrap();
            let mut results = Vec::new();
            for i in 0..1100 {
                results.push(e.emit(event(&format!("e{i:04}"))));
            }
            let ok = results.iter().filter(|r| r.is_ok()).count();
            // 100x the memory queue is accepted; the rest is refused as spool_full only.
            assert!(ok >= 1000 - 20, "{mode:?}: {ok}");
            assert!(
                results[..ok].iter().all(Result::is_ok),
                "{mode:?}: drop newest"
            );
            assert!(results[ok..].iter().all(|r| *r == Err(Rejected::SpoolFull)));
            let s = e.stats();
            assert_eq!(s.dropped_queue_full, 0, "{s:?}");
            assert_eq!(s.dropped_spool_full, 1100 - ok as u64, "{s:?}");
            e.begin_close(Duration::from_millis(100));
            assert!(e.wait_finished(Duration::from_secs(5)));
            let s = e.stats();
            // Async mode also held up to a memory queue's worth that the full spool could
            // not take: dropped at close (still down), counted.
            let in_memory = if mode == spool::Mode::Sync { 0 } else { 10 };
            assert_eq!(s.dropped_at_shutdown, in_memory, "{s:?}");
            assert_eq!(s.left_in_spool, ok as u64 - in_memory, "{s:?}");
            assert_eq!(s.spool_events, s.left_in_spool, "{s:?}");
            assert!(identity_holds(&s), "{s:?}");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
