//! The sender thread: takes batches from the queue, posts them, and resolves every event
//! exactly once (acknowledged or dropped with a reason). It never calls into Python.
//!
//! Requests are built as the client's are (`api::ingest`, [`transport::http_client`],
//! [`transport::Target`]); what follows a failure is the
//! [`DeliveryRule`](crate::core::retry::DeliveryRule)'s decision.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::RETRY_AFTER;

use super::spool::AppendError;
use super::{lock, Item, Level, Shared, State};
use crate::core::api;
use crate::core::retry::{Decision, Failure, Refusal, Transport};
use crate::core::transport::{self, HttpOptions, Target};

pub(crate) fn spawn(shared: Arc<Shared>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("flightdeck-rs-emitter".into())
        .spawn(move || supervise(shared))
}

struct Io {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    target: Target,
    /// Where events go, for messages.
    url: String,
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
        // Releases the reader's hold on the segments (their locks) for the next start.
        let left = sp.stop_reading();
        if left > 0 {
            s.counters.left_in_spool.fetch_add(left, Ordering::AcqRel);
            s.resolve(left);
        }
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
    // One request at a time: one idle connection is all it can reuse. The whole-request
    // timeout is set per request (it shrinks to the close deadline).
    let http = transport::http_client(&HttpOptions {
        user_agent: concat!("flightdeck-rs-emitter/", env!("CARGO_PKG_VERSION")),
        connect_timeout: Some(s.cfg.connect_timeout),
        read_timeout: None,
        max_idle_per_host: 1,
    })
    .map_err(|e| e.to_string())?;
    let target =
        Target::new(&s.cfg.base_url, s.cfg.api_token.as_deref()).map_err(|e| e.to_string())?;
    let url = target.url_for(&api::ingest(Vec::new()));
    Ok(Io {
        rt,
        http,
        target,
        url,
    })
}

/// Ends delivery: every queued and pending event is either kept in the spool for the next
/// start (`left_in_spool`) or dropped as `dropped_at_shutdown`.
fn drop_everything(s: &Shared) {
    let _d = lock(&s.drain_lock);
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
    for item in items {
        if item.pos.is_some() {
            kept += 1; // read back from the spool: still there
            continue;
        }
        match s.spool.as_ref().map(|sp| sp.append(&item.bytes)) {
            Some(Ok(_)) => {} // counted with the unread events below
            Some(Err(AppendError::Io(e))) => {
                s.spool_io_error(&e);
                lost += 1;
            }
            Some(Err(AppendError::Full)) | None => lost += 1,
        }
    }
    if let Some(sp) = s.spool.as_ref() {
        kept += sp.stop_reading();
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
                    // Nothing is left unless the deadline passed meanwhile.
                    drop_everything(s);
                    return;
                }
            }
        }
    }
}

/// With a spool, moves what memory holds to it (async mode each tick; sync mode after a
/// write error).
fn drain(s: &Shared) {
    if s.spool.is_some() && s.queue_events.load(Ordering::Acquire) > 0 {
        s.drain_to_spool();
    }
}

/// Reads the next batch back from the spool. `None` when nothing could be read.
fn read_spool(s: &Shared) -> Option<Vec<Item>> {
    let sp = s.spool.as_ref()?;
    let got = sp.read(s.cfg.max_batch_events, s.cfg.max_batch_bytes);
    if got.unreadable > 0 {
        let c = &s.counters;
        c.dropped_spool_unreadable
            .fetch_add(got.unreadable, Ordering::AcqRel);
        c.dropped_after_accept
            .fetch_add(got.unreadable, Ordering::AcqRel);
        s.notice(
            Level::Error,
            format!(
                "emitter spool: a segment could not be read back; {} event(s) lost",
                got.unreadable
            ),
        );
        s.resolve(got.unreadable);
    }
    if got.events.is_empty() {
        return None;
    }
    Some(
        got.events
            .into_iter()
            .map(|(bytes, pos)| Item {
                at: pos.seg.born(),
                bytes,
                pos: Some(pos),
            })
            .collect(),
    )
}

/// Waits until a batch is due and takes it; `None` when closing with nothing waiting.
/// Batches come from the spool first (older), then from memory (what the spool could not
/// take).
fn next_batch(s: &Shared, last_send: Instant) -> Option<Vec<Item>> {
    let cfg = &s.cfg;
    loop {
        let closing = s.closing.load(Ordering::Acquire);
        if closing && past_deadline(s) {
            return None;
        }
        drain(s);
        let gen = s.flush_gen.load(Ordering::Acquire);
        let unread = s.spool.as_ref().map_or(0, |sp| sp.unread());
        let d = lock(&s.drain_lock);
        let mut q = lock(&s.queue);
        let flushing =
            s.flush_target.load(Ordering::Acquire) > s.counters.resolved.load(Ordering::Acquire);
        let elapsed = last_send.elapsed();
        let waiting = unread as usize + q.items.len();
        let due = waiting > 0
            && (waiting >= cfg.max_batch_events
                || closing
                || flushing
                || elapsed >= cfg.flush_interval);
        if due && unread > 0 {
            drop(q);
            drop(d);
            if let Some(batch) = read_spool(s) {
                return Some(batch);
            }
            // Counted but not yet readable (a write being published): look again shortly.
            let q = lock(&s.queue);
            let _ = s.wake.wait_timeout(q, Duration::from_millis(2));
            continue;
        }
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
            return Some(batch);
        }
        drop(d);
        if waiting == 0 && closing {
            return None;
        }
        let wait = if waiting == 0 {
            cfg.flush_interval
        } else {
            cfg.flush_interval.saturating_sub(elapsed)
        };
        let wait = match s.deadline() {
            Some(d) => wait.min(d.saturating_duration_since(Instant::now())),
            None => wait,
        }
        .max(Duration::from_millis(1));
        if s.flush_gen.load(Ordering::Acquire) != gen
            || s.closing.load(Ordering::Acquire) != closing
            || (s.spool.as_ref().map_or(0, |sp| sp.unread()) as usize + q.items.len()
                >= cfg.max_batch_events)
                != (waiting >= cfg.max_batch_events)
        {
            continue; // something changed meanwhile: look again
        }
        let _ = s.wake.wait_timeout(q, tick(s, wait));
    }
}

/// Longest wait between two moves of queued events to the spool (async mode): a kill -9
/// loses at most about this much.
const SPOOL_TICK: Duration = Duration::from_millis(100);

fn tick(s: &Shared, d: Duration) -> Duration {
    if s.spool.is_some() {
        d.min(SPOOL_TICK)
    } else {
        d
    }
}

/// Sleeps up to `d`, waking early on close or on a new flush request; keeps moving queued
/// events to the spool meanwhile.
fn pause(s: &Shared, d: Duration) {
    let gen = s.flush_gen.load(Ordering::Acquire);
    let end = Instant::now() + d;
    let end = match s.deadline() {
        Some(dl) => end.min(dl),
        None => end,
    };
    loop {
        drain(s);
        let q = lock(&s.queue);
        let now = Instant::now();
        if now >= end || s.flush_gen.load(Ordering::Acquire) != gen {
            return;
        }
        let _ = s.wake.wait_timeout(q, tick(s, end - now));
    }
}

enum Outcome {
    Ok(u64),
    /// The delivery rule's decision, and what went wrong.
    Failed(Decision, String),
}

/// Posts one batch; `attempt` (0-based) counts the failed attempts of this batch before.
fn post(s: &Shared, io: &Io, body: Vec<u8>, attempt: u32) -> Outcome {
    let rule = &s.cfg.retry;
    let decide = |failure: Failure<'_>| {
        rule.decide(failure, attempt, None, fastrand::f64(), SystemTime::now())
    };
    let mut timeout = s.cfg.request_timeout;
    if let Some(d) = s.deadline() {
        timeout = timeout.min(d.saturating_duration_since(Instant::now()));
    }
    if timeout.is_zero() {
        let wait = rule.backoff(attempt, fastrand::f64());
        return Outcome::Failed(Decision::Retry(wait), "close deadline reached".into());
    }
    let req = api::ingest(body);
    let url = match io.target.url(&req) {
        Ok(u) => u,
        Err(e) => {
            let failure = Transport::of_error(&e).map_or(Failure::Other, Failure::Transport);
            return Outcome::Failed(decide(failure), e.to_string());
        }
    };
    let mut rb = io.target.request(&io.http, url, &req).timeout(timeout);
    if let Some(body) = req.body {
        rb = rb.body(body);
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
                .map(str::to_owned);
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
                if ticks.is_multiple_of(5)
                    || s.queue_events.load(Ordering::Acquire) >= s.cfg.max_batch_events
                {
                    drain(s);
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
            let e = crate::core::error::Error::from_reqwest(&e);
            let failure = Transport::of_error(&e).map_or(Failure::Other, Failure::Transport);
            return Outcome::Failed(decide(failure), e.to_string());
        }
        None => {
            let wait = rule.backoff(attempt, fastrand::f64());
            return Outcome::Failed(
                Decision::Retry(wait),
                "request cut at the close deadline".into(),
            );
        }
    };
    let detail = || {
        let text = String::from_utf8_lossy(&bytes);
        let text: String = text.chars().take(2000).collect();
        format!("HTTP {status}: {text}")
    };
    if (200..=299).contains(&status) {
        let inserted = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("inserted").and_then(serde_json::Value::as_u64));
        return Outcome::Ok(inserted.unwrap_or(u64::MAX));
    }
    let failure = Failure::Status {
        code: status,
        retry_after: ra.as_deref(),
    };
    Outcome::Failed(decide(failure), detail())
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
        match post(s, io, join(&batch), attempt) {
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
            Outcome::Failed(Decision::Split(reason), detail) => {
                let mut p = lock(&s.pending);
                p.pop_front();
                if n == 1 {
                    drop(p);
                    let c = &s.counters;
                    let counter = if reason == Refusal::TooLarge {
                        &c.dropped_too_large
                    } else {
                        &c.dropped_invalid
                    };
                    if counter.fetch_add(1, Ordering::AcqRel) == 0 {
                        s.notice(
                            Level::Warning,
                            format!(
                                "emitter dropped an event the server rejected ({}): {detail}",
                                reason.as_str()
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
            Outcome::Failed(Decision::Retry(wait), detail) => {
                s.counters.retries.fetch_add(1, Ordering::AcqRel);
                s.set_state(State::Retrying);
                s.set_error(detail);
                attempt = attempt.saturating_add(1);
                pause(s, wait);
            }
            // A background sender cannot raise: it keeps the events and tries again slowly.
            Outcome::Failed(Decision::GiveUp, detail) => {
                s.counters.retries.fetch_add(1, Ordering::AcqRel);
                s.set_state(State::Misconfigured);
                if !s.warned_misconfigured.swap(true, Ordering::AcqRel) {
                    s.notice(
                        Level::Error,
                        format!(
                            "emitter cannot deliver to {}: {detail}; events are kept and retried every {:?}",
                            io.url, s.cfg.retry.cap
                        ),
                    );
                }
                s.set_error(detail);
                pause(s, s.cfg.retry.cap);
            }
        }
    }
}
