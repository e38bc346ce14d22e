//! The sender thread: takes batches from the queue, posts them, and resolves every event
//! exactly once (acknowledged or dropped with a reason). It never calls into Python.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};

use super::backoff::retry_after;
use super::spool::{AppendError, Mode};
use super::{lock, Item, Level, Shared, State};

pub(crate) fn spawn(shared: Arc<Shared>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("flightdeck-rs-emitter".into())
        .spawn(move || supervise(shared))
}

struct Io {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    url: String,
    auth: Option<HeaderValue>,
}

fn supervise(s: Arc<Shared>) {
    match build_io(&s) {
        Ok(io) => loop {
            match catch_unwind(AssertUnwindSafe(|| run(&s, &io))) {
                Ok(()) => break,
                Err(_) => {
                    s.counters.worker_restarts.fetch_add(1, Ordering::AcqRel);
                    s.notice(
                        Level::Error,
                        "emitter sender crashed and was restarted".into(),
                    );
                }
            }
        },
        Err(e) => {
            s.set_error(e.clone());
            s.notice(
                Level::Error,
                format!("emitter cannot start its sender: {e}"),
            );
            drop_everything(&s);
        }
    }
    if let Some(sp) = s.spool.as_ref() {
        sp.seal();
    }
    s.set_state(State::Closed);
    let mut f = lock(&s.finished);
    *f = true;
    s.finished_cv.notify_all();
}

fn build_io(s: &Shared) -> Result<Io, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("flightdeck-rs-emitter/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(s.cfg.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(4))
        .http1_only()
        .tcp_nodelay(true)
        .build()
        .map_err(|e| e.to_string())?;
    let auth = match s.cfg.api_token.as_deref() {
        Some(t) if !t.is_empty() => {
            let mut v = HeaderValue::from_str(&format!("Bearer {t}"))
                .map_err(|_| "api_token is not a valid header value".to_string())?;
            v.set_sensitive(true);
            Some(v)
        }
        _ => None,
    };
    Ok(Io {
        rt,
        client,
        url: format!("{}/v1/events", s.cfg.base_url),
        auth,
    })
}

/// Ends delivery: every queued and pending event is either kept in the spool for the next
/// start (`left_in_spool`) or dropped as `dropped_at_shutdown`.
fn drop_everything(s: &Shared) {
    let mut items: Vec<Item> = Vec::new();
    {
        let mut p = lock(&s.pending);
        for b in p.drain(..) {
            items.extend(b);
        }
        s.in_flight.store(0, Ordering::Release);
    }
    {
        let mut q = lock(&s.queue);
        items.extend(q.items.drain(..));
        q.bytes = 0;
        s.queue_events.store(0, Ordering::Release);
        s.queue_bytes.store(0, Ordering::Release);
    }
    let mut kept = 0u64;
    let mut lost = 0u64;
    for mut item in items {
        if item.pos.is_none() {
            if let Some(sp) = s.spool.as_ref() {
                match sp.append(&item.bytes) {
                    Ok(p) => item.pos = Some(p),
                    Err(AppendError::Full) => {}
                    Err(AppendError::Io(e)) => s.spool_io_error(&e),
                }
            }
        }
        if item.pos.is_some() {
            kept += 1;
        } else {
            lost += 1;
        }
    }
    let c = &s.counters;
    if kept > 0 {
        c.left_in_spool.fetch_add(kept, Ordering::AcqRel);
        s.notice(
            Level::Warning,
            format!("emitter closed with {kept} undelivered event(s) kept in the spool"),
        );
    }
    if lost > 0 {
        c.dropped_at_shutdown.fetch_add(lost, Ordering::AcqRel);
        c.dropped_after_accept.fetch_add(lost, Ordering::AcqRel);
        s.notice(
            Level::Warning,
            format!(
                "flightdeck_rs emitter closed: {lost} event(s) were not delivered (at_shutdown={lost})"
            ),
        );
    }
    if kept + lost > 0 {
        s.resolve(kept + lost);
    }
}

fn past_deadline(s: &Shared) -> bool {
    s.deadline().is_some_and(|d| Instant::now() >= d)
}

fn run(s: &Shared, io: &Io) {
    let mut last_send = Instant::now();
    loop {
        deliver_pending(s, io);
        if past_deadline(s) {
            drop_everything(s);
            return;
        }
        match next_batch(s, last_send) {
            Some(batch) => {
                last_send = Instant::now();
                s.in_flight.fetch_add(batch.len(), Ordering::AcqRel);
                lock(&s.pending).push_back(batch);
            }
            None => {
                if lock(&s.pending).is_empty() {
                    return;
                }
            }
        }
    }
}

/// Waits until a batch is due and takes it; `None` when closing with nothing queued.
fn next_batch(s: &Shared, last_send: Instant) -> Option<Vec<Item>> {
    let cfg = &s.cfg;
    let mut q = lock(&s.queue);
    loop {
        let closing = s.closing.load(Ordering::Acquire);
        if closing && past_deadline(s) {
            return None;
        }
        let flushing =
            s.flush_target.load(Ordering::Acquire) > s.counters.resolved.load(Ordering::Acquire);
        let elapsed = last_send.elapsed();
        let due = !q.items.is_empty()
            && (q.items.len() >= cfg.max_batch_events
                || closing
                || flushing
                || elapsed >= cfg.flush_interval);
        if due {
            let mut batch = Vec::new();
            let mut bytes = 0usize;
            while let Some(front) = q.items.front() {
                if !batch.is_empty()
                    && (batch.len() >= cfg.max_batch_events
                        || bytes + front.bytes.len() > cfg.max_batch_bytes)
                {
                    break;
                }
                let Some(item) = q.items.pop_front() else {
                    break;
                };
                bytes += item.bytes.len();
                q.bytes -= item.bytes.len();
                batch.push(item);
            }
            s.queue_events.store(q.items.len(), Ordering::Release);
            s.queue_bytes.store(q.bytes, Ordering::Release);
            drop(q);
            spool_async(s, &mut batch);
            return Some(batch);
        }
        if q.items.is_empty() && closing {
            return None;
        }
        let wait = if q.items.is_empty() {
            cfg.flush_interval
        } else {
            cfg.flush_interval.saturating_sub(elapsed)
        };
        let wait = match s.deadline() {
            Some(d) => wait.min(d.saturating_duration_since(Instant::now())),
            None => wait,
        }
        .max(Duration::from_millis(1));
        let seen = (q.items.len(), s.flush_gen.load(Ordering::Acquire));
        q = spool_queue(s, q);
        if seen != (q.items.len(), s.flush_gen.load(Ordering::Acquire))
            || s.closing.load(Ordering::Acquire) != closing
        {
            continue; // something arrived while the lock was released: look again
        }
        q = match s.wake.wait_timeout(q, tick(s, wait)) {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        };
    }
}

/// In `async` spool mode, the sender writes each batch to the spool as it drains the queue.
fn spool_async(s: &Shared, batch: &mut [Item]) {
    let Some(sp) = s.spool.as_ref().filter(|sp| sp.cfg.mode == Mode::Async) else {
        return;
    };
    for item in batch.iter_mut().filter(|i| i.pos.is_none()) {
        match sp.append(&item.bytes) {
            Ok(p) => item.pos = Some(p),
            Err(AppendError::Full) => {
                if s.counters.dropped_spool_full.fetch_add(1, Ordering::AcqRel) == 0 {
                    s.notice(
                        Level::Warning,
                        "emitter spool is full; new events are kept in memory only".into(),
                    );
                }
            }
            Err(AppendError::Io(e)) => s.spool_io_error(&e),
        }
    }
}

/// In `async` spool mode, writes every queued event not yet in the spool (called at least
/// every [`SPOOL_TICK`] while the sender waits, so a kill -9 loses at most one tick).
///
/// Called by the sender with the queue locked; the lock is released for the disk write so
/// that `emit()` never waits on the disk. That is safe because only the sender removes
/// items from the queue (producers only append), so the items copied out are still at the
/// same indices when their positions are recorded.
fn spool_queue<'a>(
    s: &'a Shared,
    q: std::sync::MutexGuard<'a, super::Queue>,
) -> std::sync::MutexGuard<'a, super::Queue> {
    let Some(sp) = s.spool.as_ref().filter(|sp| sp.cfg.mode == Mode::Async) else {
        return q;
    };
    // Events reach the spool in queue order, so the unspooled ones are a suffix.
    let unspooled = q.items.iter().rev().take_while(|i| i.pos.is_none()).count();
    if unspooled == 0 {
        return q;
    }
    let start = q.items.len() - unspooled;
    let copies: Vec<Vec<u8>> = q.items.range(start..).map(|i| i.bytes.clone()).collect();
    drop(q);
    let lines: Vec<&[u8]> = copies.iter().map(Vec::as_slice).collect();
    let (positions, err) = sp.append_many(&lines);
    match err {
        None | Some(AppendError::Full) => {}
        Some(AppendError::Io(e)) => s.spool_io_error(&e),
    }
    let mut q = lock(&s.queue);
    for (item, pos) in q.items.range_mut(start..).zip(positions) {
        item.pos = Some(pos);
    }
    q
}

/// Longest wait between two async-mode spool writes.
const SPOOL_TICK: Duration = Duration::from_millis(100);

fn tick(s: &Shared, d: Duration) -> Duration {
    if s.spool
        .as_ref()
        .is_some_and(|sp| sp.cfg.mode == Mode::Async)
    {
        d.min(SPOOL_TICK)
    } else {
        d
    }
}

/// Sleeps up to `d`, waking early on close or on a new flush request.
fn pause(s: &Shared, d: Duration) {
    let gen = s.flush_gen.load(Ordering::Acquire);
    let end = Instant::now() + d;
    let end = match s.deadline() {
        Some(dl) => end.min(dl),
        None => end,
    };
    let mut q = lock(&s.queue);
    loop {
        let seen = q.items.len();
        q = spool_queue(s, q);
        let now = Instant::now();
        if now >= end || s.flush_gen.load(Ordering::Acquire) != gen {
            return;
        }
        if q.items.len() != seen {
            continue; // events arrived while the lock was released: spool them too
        }
        q = match s.wake.wait_timeout(q, tick(s, end - now)) {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        };
    }
}

enum Outcome {
    Ok(u64),
    Retry(Option<Duration>, String),
    Split(&'static str, String),
    Misconfigured(String),
}

fn post(s: &Shared, io: &Io, body: Vec<u8>) -> Outcome {
    let mut timeout = s.cfg.request_timeout;
    if let Some(d) = s.deadline() {
        timeout = timeout.min(d.saturating_duration_since(Instant::now()));
    }
    if timeout.is_zero() {
        return Outcome::Retry(None, "close deadline reached".into());
    }
    let mut rb = io
        .client
        .post(&io.url)
        .header(CONTENT_TYPE, "application/json")
        .timeout(timeout)
        .body(body);
    if let Some(a) = &io.auth {
        rb = rb.header(AUTHORIZATION, a.clone());
    }
    s.counters.requests.fetch_add(1, Ordering::AcqRel);
    let result = io.rt.block_on(async {
        let exchange = async {
            let resp = rb.send().await?;
            let status = resp.status().as_u16();
            let ra = resp
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after(v, SystemTime::now(), s.cfg.retry_cap));
            let bytes = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, ra, bytes))
        };
        // A close() that starts while the request is in flight cuts it at its deadline.
        let watch = async {
            let mut ticks = 0u32;
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if past_deadline(s) {
                    return;
                }
                ticks += 1;
                if ticks.is_multiple_of(5) {
                    drop(spool_queue(s, lock(&s.queue)));
                }
            }
        };
        tokio::select! {
            r = exchange => Some(r),
            () = watch => None,
        }
    });
    let (status, ra, bytes) = match result {
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            return Outcome::Retry(
                None,
                crate::core::error::Error::from_reqwest(&e).to_string(),
            )
        }
        None => return Outcome::Retry(None, "request cut at the close deadline".into()),
    };
    let detail = || {
        let text = String::from_utf8_lossy(&bytes);
        let text: String = text.chars().take(2000).collect();
        format!("HTTP {status}: {text}")
    };
    match status {
        200..=299 => {
            let inserted = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("inserted").and_then(serde_json::Value::as_u64));
            Outcome::Ok(inserted.unwrap_or(u64::MAX))
        }
        401 | 403 | 404 | 501 => Outcome::Misconfigured(detail()),
        408 | 425 | 429 | 500..=599 => Outcome::Retry(ra, detail()),
        413 => Outcome::Split("too_large", detail()),
        400..=499 => Outcome::Split("invalid", detail()),
        _ => Outcome::Misconfigured(detail()),
    }
}

fn join(batch: &[Item]) -> Vec<u8> {
    let size: usize = batch.iter().map(|i| i.bytes.len()).sum::<usize>() + batch.len() + 16;
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(b"{\"events\":[");
    for (i, e) in batch.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&e.bytes);
    }
    body.extend_from_slice(b"]}");
    body
}

fn finish(s: &Shared, items: &[Item]) {
    if let Some(sp) = s.spool.as_ref() {
        sp.acknowledge(items.iter().filter_map(|i| i.pos.as_ref()));
    }
    s.in_flight.fetch_sub(items.len(), Ordering::AcqRel);
    s.resolve(items.len() as u64);
}

/// Delivers every pending sub-batch, oldest first, until done or past the close deadline.
fn deliver_pending(s: &Shared, io: &Io) {
    let mut attempt: u32 = 0;
    loop {
        let Some(batch) = lock(&s.pending).front().cloned() else {
            return;
        };
        if past_deadline(s) {
            drop_everything(s);
            return;
        }
        let n = batch.len();
        match post(s, io, join(&batch)) {
            Outcome::Ok(inserted) => {
                lock(&s.pending).pop_front();
                let inserted = inserted.min(n as u64);
                let c = &s.counters;
                c.acked.fetch_add(n as u64, Ordering::AcqRel);
                c.server_inserted.fetch_add(inserted, Ordering::AcqRel);
                c.server_duplicates
                    .fetch_add(n as u64 - inserted, Ordering::AcqRel);
                s.set_state(State::Running);
                attempt = 0;
                finish(s, &batch);
            }
            Outcome::Split(reason, detail) => {
                let mut p = lock(&s.pending);
                p.pop_front();
                if n == 1 {
                    drop(p);
                    let c = &s.counters;
                    let counter = if reason == "too_large" {
                        &c.dropped_too_large
                    } else {
                        &c.dropped_invalid
                    };
                    if counter.fetch_add(1, Ordering::AcqRel) == 0 {
                        s.notice(
                            Level::Warning,
                            format!(
                                "emitter dropped an event the server rejected ({reason}): {detail}"
                            ),
                        );
                    }
                    c.dropped_after_accept.fetch_add(1, Ordering::AcqRel);
                    s.set_error(detail);
                    finish(s, &batch);
                } else {
                    let mut first = batch;
                    let second = first.split_off(n / 2);
                    p.push_front(second);
                    p.push_front(first);
                }
            }
            Outcome::Retry(hint, detail) => {
                s.counters.retries.fetch_add(1, Ordering::AcqRel);
                s.set_state(State::Retrying);
                s.set_error(detail);
                let backoff = s.cfg.backoff.delay(attempt, fastrand::f64());
                attempt = attempt.saturating_add(1);
                pause(s, hint.map_or(backoff, |h| h.max(backoff.min(h + backoff))));
            }
            Outcome::Misconfigured(detail) => {
                s.counters.retries.fetch_add(1, Ordering::AcqRel);
                s.set_state(State::Misconfigured);
                if !s.warned_misconfigured.swap(true, Ordering::AcqRel) {
                    s.notice(
                        Level::Error,
                        format!(
                            "emitter cannot deliver to {}: {detail}; events are kept and retried every {:?}",
                            io.url, s.cfg.retry_cap
                        ),
                    );
                }
                s.set_error(detail);
                pause(s, s.cfg.retry_cap);
            }
        }
    }
}
