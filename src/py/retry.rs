//! The retry rules of `core::retry`, for the Python paths (the injected-`httpx` loops of the
//! clients and `ingest_jsonl`), so that they decide exactly as the native paths do.

use std::time::SystemTime;

use pyo3::prelude::*;

use crate::core::retry::{ClientRule, Decision, DeliveryRule, Failure, Transport};

fn count(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

/// The client rule: the seconds to sleep before retrying after attempt `attempt` (0-based)
/// failed with the `httpx` exception class `failure` (its most derived `httpx` class name,
/// `None` when it is not an `httpx` exception), or `None` to raise.
#[pyfunction]
#[pyo3(signature = (failure, *, idempotent, attempt, max_retries, backoff_s))]
pub fn client_retry_delay(
    failure: Option<&str>,
    idempotent: bool,
    attempt: i64,
    max_retries: i64,
    backoff_s: f64,
) -> Option<f64> {
    let rule = ClientRule {
        max_retries: count(max_retries),
        backoff_s,
    };
    let attempt = count(attempt);
    match rule.decide(failure.and_then(Transport::of_httpx), idempotent, attempt) {
        Decision::Retry(_) => Some(rule.delay_s(attempt)),
        _ => None,
    }
}

/// The delivery rule: `(action, delay_s)` after attempt `attempt` (0-based) of a batch
/// failed with HTTP `status` (and its `Retry-After` value) or with the `httpx` exception
/// class `failure`. `action` is `"retry"` (after `delay_s`), `"split"` or `"give_up"`.
/// `max_retries` is the budget (`None`: unlimited); `unit` the jitter draw in `[0, 1)`
/// (random when `None`); `now_s` the Unix time an HTTP-date `Retry-After` is read against
/// (the clock when `None`).
#[pyfunction]
#[pyo3(signature = (*, status = None, failure = None, retry_after = None, attempt, max_retries = None, base_s = 0.5, cap_s = 30.0, unit = None, now_s = None))]
#[allow(clippy::too_many_arguments)]
pub fn delivery_decision(
    status: Option<u16>,
    failure: Option<&str>,
    retry_after: Option<&str>,
    attempt: i64,
    max_retries: Option<i64>,
    base_s: f64,
    cap_s: f64,
    unit: Option<f64>,
    now_s: Option<f64>,
) -> (&'static str, f64) {
    let secs = |s: f64| {
        std::time::Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(std::time::Duration::MAX)
    };
    let rule = DeliveryRule {
        base: secs(base_s),
        cap: secs(cap_s),
    };
    let failure = match (status, failure) {
        (Some(code), _) => Failure::Status { code, retry_after },
        (None, Some(name)) => Transport::of_httpx(name).map_or(Failure::Other, Failure::Transport),
        (None, None) => Failure::Other,
    };
    let now = match now_s {
        Some(t) => SystemTime::UNIX_EPOCH + secs(t),
        None => SystemTime::now(),
    };
    let unit = unit.unwrap_or_else(fastrand::f64);
    match rule.decide(failure, count(attempt), max_retries.map(count), unit, now) {
        Decision::Retry(d) => ("retry", d.as_secs_f64()),
        Decision::Split(_) => ("split", 0.0),
        Decision::GiveUp => ("give_up", 0.0),
    }
}
