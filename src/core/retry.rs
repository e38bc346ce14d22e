//! The retry policy, in one place: for a failed attempt (an HTTP status or a transport
//! failure) it decides whether to try again, after how long, whether to split the batch,
//! or to give up, and whether a request may be repeated at all.
//!
//! There are two rules, each named for who follows it:
//!
//! * [`ClientRule`], the drop-in rule of the sixteen client methods (native transport and
//!   injected `httpx` client alike), as `flightdeck.sdk` 1.3.0 retries: transport failures
//!   only (an HTTP status is the caller's answer and raises at once, a 503 too), up to
//!   `max_retries` times, sleeping `retry_backoff_s * 2**n` before retry `n` (no cap, no
//!   jitter). One deliberate difference: a request that is not idempotent (an audit action)
//!   is repeated only when it never reached the server.
//! * [`DeliveryRule`], the rule of the two bulk paths that post `/v1/events` (the background
//!   emitter and `ingest_jsonl`), where a repeat is harmless because the server ignores a
//!   `run_id` it already holds: statuses 408, 425, 429 and 5xx other than 501 and transport
//!   failures that a new attempt can cure are retried; 413 and any other 4xx but 401, 403
//!   and 404 split the batch; anything else gives up. The delay is exponential with "equal
//!   jitter", capped, and never shorter than the server's `Retry-After` (seconds or an HTTP
//!   date, clamped to the cap).
//!
//! Failures are classified here too, from the core's [`Error`] ([`Transport::of_error`]) or
//! from the name of the `httpx` exception class an injected client raised
//! ([`Transport::of_httpx`]), so both faces of a client see one classification.

use std::time::{Duration, SystemTime};

use crate::core::error::Error;

/// A transport failure (an `httpx.RequestError`), by what a retry can do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// The request never reached the server and a new attempt may get through: connection
    /// refused, DNS or TLS failure, connect or pool timeout.
    NotConnected,
    /// The request never left because it cannot be sent as it is (no `http(s)://` scheme, an
    /// illegal header): repeating it cannot record anything twice, nor can it help.
    Unsendable,
    /// The request may have reached the server: the connection broke or timed out after it
    /// began (read/write errors and timeouts, a reset, a broken response).
    Interrupted,
    /// Any other `httpx.RequestError` (the answer could not be decoded, too many redirects).
    Other,
}

impl Transport {
    /// Whether the request certainly never reached the server.
    pub fn never_sent(self) -> bool {
        matches!(self, Self::NotConnected | Self::Unsendable)
    }

    /// The class of a core error; `None` for what is not a transport failure (an invalid
    /// URL, a closed client, a float JSON cannot hold).
    pub fn of_error(e: &Error) -> Option<Self> {
        Some(match e {
            Error::Connect(_) | Error::ConnectTimeout(_) => Self::NotConnected,
            Error::UnsupportedProtocol(_) | Error::LocalProtocol(_) => Self::Unsendable,
            Error::ReadTimeout(_)
            | Error::WriteTimeout(_)
            | Error::Read(_)
            | Error::Write(_)
            | Error::UploadReset(_)
            | Error::RemoteProtocol(_) => Self::Interrupted,
            Error::InvalidUrl(_) | Error::Closed | Error::NonFinite => return None,
        })
    }

    /// The class of an `httpx` exception, by the name of its most derived `httpx` class;
    /// `None` for a name that is not an `httpx.RequestError`.
    pub fn of_httpx(class_name: &str) -> Option<Self> {
        Some(match class_name {
            "ConnectError" | "ConnectTimeout" | "PoolTimeout" => Self::NotConnected,
            "UnsupportedProtocol" | "LocalProtocolError" => Self::Unsendable,
            "ReadTimeout"
            | "WriteTimeout"
            | "ReadError"
            | "WriteError"
            | "CloseError"
            | "RemoteProtocolError"
            | "ProxyError"
            | "ProtocolError"
            | "NetworkError"
            | "TimeoutException"
            | "TransportError" => Self::Interrupted,
            "DecodingError" | "TooManyRedirects" | "RequestError" => Self::Other,
            _ => return None,
        })
    }
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decision {
    /// Send the same request again after this delay.
    Retry(Duration),
    /// The server refused the data: send each half of the batch on its own (a batch of one
    /// is dropped with the server's detail).
    Split(Refusal),
    /// Stop: the client raises, the emitter keeps the events and waits as misconfigured.
    GiveUp,
}

/// Why the server refused a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 413: the body is too large.
    TooLarge,
    /// 400 or 422: an event is invalid.
    Invalid,
}

impl Refusal {
    /// The reason's name in the emitter's counters and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::Invalid => "invalid",
        }
    }
}

/// Converts seconds to a duration, saturating (an infinite or huge delay is `Duration::MAX`,
/// a negative or NaN one zero).
fn secs(s: f64) -> Duration {
    if s.is_nan() || s <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX)
}

/// The drop-in rule of the client methods (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClientRule {
    /// Extra attempts after a transport failure.
    pub max_retries: u32,
    /// Sleep before retry `n` (0-based) is `backoff_s * 2^n`.
    pub backoff_s: f64,
}

impl ClientRule {
    /// The sleep before retry `attempt` (0-based), in seconds: `backoff_s * 2^attempt`,
    /// uncapped as in the reference (it saturates rather than overflows).
    pub fn delay_s(&self, attempt: u32) -> f64 {
        let b = self.backoff_s;
        if b.is_nan() || b <= 0.0 {
            return 0.0;
        }
        (b * 2f64.powi(attempt.min(2000) as i32)).min(f64::MAX)
    }

    /// The decision after attempt `attempt` (0-based) of a request failed with `failure`.
    /// `failure` is `None` for what is not a transport failure: that, like any HTTP status,
    /// is never retried.
    pub fn decide(&self, failure: Option<Transport>, idempotent: bool, attempt: u32) -> Decision {
        match failure {
            Some(t) if attempt < self.max_retries && (idempotent || t.never_sent()) => {
                Decision::Retry(secs(self.delay_s(attempt)))
            }
            _ => Decision::GiveUp,
        }
    }
}

/// A failed delivery attempt as the [`DeliveryRule`] sees it.
#[derive(Clone, Copy, Debug)]
pub enum Failure<'a> {
    /// The server answered with a status outside 2xx; `retry_after` is the raw header value.
    Status {
        code: u16,
        retry_after: Option<&'a str>,
    },
    /// No usable answer.
    Transport(Transport),
    /// Something else (not a transport failure): never retried.
    Other,
}

/// The delivery rule of the emitter and `ingest_jsonl` (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeliveryRule {
    /// The first retry's delay before jitter; each further one doubles it.
    pub base: Duration,
    /// The longest delay, and the largest `Retry-After` honoured.
    pub cap: Duration,
}

impl Default for DeliveryRule {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl DeliveryRule {
    /// 0.5 s doubling up to 30 s: the emitter's defaults and `ingest_jsonl`'s timing.
    pub const DEFAULT: Self = Self {
        base: Duration::from_millis(500),
        cap: Duration::from_secs(30),
    };

    /// Whether a status is worth another attempt: the server (or a proxy) is overloaded,
    /// restarting or timed out. 501 (not implemented) will not change.
    pub fn retries_status(code: u16) -> bool {
        matches!(code, 408 | 425 | 429) || ((500..=599).contains(&code) && code != 501)
    }

    /// Whether a status refuses the data, so that the batch is split to isolate it: 413 (too
    /// large), and 400, 422 or any other 4xx that neither asks to retry (408, 425, 429) nor
    /// says the emitter is misconfigured (401, 403, 404: splitting cannot cure those).
    pub fn refusal(code: u16) -> Option<Refusal> {
        match code {
            413 => Some(Refusal::TooLarge),
            401 | 403 | 404 | 408 | 425 | 429 => None,
            400..=499 => Some(Refusal::Invalid),
            _ => None,
        }
    }

    /// The un-jittered delay before retry `attempt` (0-based): `min(cap, base * 2^attempt)`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let d = self.base.as_secs_f64() * 2f64.powi(attempt.min(62) as i32);
        secs(d).min(self.cap)
    }

    /// The backoff before retry `attempt`, drawn in `[ceiling/2, ceiling]` by `unit` (a
    /// random number in `[0, 1)`).
    pub fn backoff(&self, attempt: u32, unit: f64) -> Duration {
        let d = self.ceiling(attempt).as_secs_f64();
        let unit = if unit.is_nan() {
            0.0
        } else {
            unit.clamp(0.0, 1.0)
        };
        secs(d / 2.0 + d / 2.0 * unit)
    }

    /// A `Retry-After` value (delay seconds or an HTTP date, read against `now`) clamped to
    /// the cap; `None` when it is neither.
    pub fn retry_after(&self, value: &str, now: SystemTime) -> Option<Duration> {
        let v = value.trim();
        let d = if let Ok(s) = v.parse::<u64>() {
            Duration::from_secs(s)
        } else if let Ok(s) = v.parse::<f64>() {
            if !s.is_finite() || s < 0.0 {
                return None;
            }
            secs(s)
        } else {
            let when = httpdate::parse_http_date(v).ok()?;
            when.duration_since(now).unwrap_or(Duration::ZERO)
        };
        Some(d.min(self.cap))
    }

    /// The decision after attempt `attempt` (0-based) failed with `failure`. `max_retries`
    /// is the caller's budget of retries (`None`: no limit, the emitter's case); `unit` is
    /// the jitter draw in `[0, 1)` and `now` the clock an HTTP-date `Retry-After` is read
    /// against.
    pub fn decide(
        &self,
        failure: Failure<'_>,
        attempt: u32,
        max_retries: Option<u32>,
        unit: f64,
        now: SystemTime,
    ) -> Decision {
        let hint = match failure {
            Failure::Status { code, retry_after } => {
                if let Some(r) = Self::refusal(code) {
                    return Decision::Split(r);
                }
                if !Self::retries_status(code) {
                    return Decision::GiveUp;
                }
                retry_after.and_then(|v| self.retry_after(v, now))
            }
            Failure::Transport(Transport::NotConnected | Transport::Interrupted) => None,
            Failure::Transport(Transport::Unsendable | Transport::Other) | Failure::Other => {
                return Decision::GiveUp
            }
        };
        if max_retries.is_some_and(|m| attempt >= m) {
            return Decision::GiveUp;
        }
        let backoff = self.backoff(attempt, unit);
        Decision::Retry(hint.map_or(backoff, |h| h.max(backoff)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000_000_000;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// One row per case: what failed, and the decision of each rule.
    #[test]
    fn the_rules_table() {
        use Decision::{GiveUp, Retry, Split};
        let date_in_5s = httpdate::fmt_http_date(now() + Duration::from_secs(5));
        let date_past = httpdate::fmt_http_date(now() - Duration::from_secs(5));
        let client = ClientRule {
            max_retries: 2,
            backoff_s: 0.25,
        };
        let delivery = DeliveryRule::DEFAULT;
        let st = |code, ra| Failure::Status {
            code,
            retry_after: ra,
        };
        let t = Failure::Transport;
        // (failure, delivery decision at attempt 1 with jitter draw 0.5)
        // attempt 1: ceiling 1 s, drawn 0.75 s
        let rows: Vec<(Failure<'_>, Decision)> = vec![
            (st(400, None), Split(Refusal::Invalid)),
            (st(422, None), Split(Refusal::Invalid)),
            (st(413, Some("5")), Split(Refusal::TooLarge)),
            (st(401, None), GiveUp),
            (st(403, None), GiveUp),
            (st(404, None), GiveUp),
            (st(409, None), Split(Refusal::Invalid)),
            (st(410, None), Split(Refusal::Invalid)),
            (st(301, None), GiveUp),
            (st(501, None), GiveUp),
            (st(408, None), Retry(ms(750))),
            (st(425, None), Retry(ms(750))),
            (st(429, None), Retry(ms(750))),
            (st(429, Some("2")), Retry(ms(2000))),
            (st(429, Some(" 0.2 ")), Retry(ms(750))),
            (st(429, Some(&date_in_5s)), Retry(ms(5000))),
            (st(429, Some(&date_past)), Retry(ms(750))),
            (st(429, Some("3600")), Retry(ms(30_000))),
            (st(429, Some("soon")), Retry(ms(750))),
            (st(429, Some("-3")), Retry(ms(750))),
            (st(500, None), Retry(ms(750))),
            (st(502, None), Retry(ms(750))),
            (st(503, Some("1")), Retry(ms(1000))),
            (st(504, None), Retry(ms(750))),
            (st(599, None), Retry(ms(750))),
            (t(Transport::NotConnected), Retry(ms(750))),
            (t(Transport::Interrupted), Retry(ms(750))),
            (t(Transport::Unsendable), GiveUp),
            (t(Transport::Other), GiveUp),
            (Failure::Other, GiveUp),
        ];
        for (failure, want) in rows {
            assert_eq!(
                delivery.decide(failure, 1, None, 0.5, now()),
                want,
                "{failure:?}"
            );
            // Out of budget: retries become give-ups, splits stay.
            let spent = delivery.decide(failure, 2, Some(2), 0.5, now());
            let want_spent = if matches!(want, Split(_)) {
                want
            } else {
                GiveUp
            };
            assert_eq!(spent, want_spent, "{failure:?} past the budget");
        }
        // (transport class, idempotent, client decision at attempt 1)
        let client_rows = [
            (Transport::NotConnected, false, Retry(ms(500))),
            (Transport::Unsendable, false, Retry(ms(500))),
            (Transport::Interrupted, false, GiveUp),
            (Transport::Other, false, GiveUp),
            (Transport::NotConnected, true, Retry(ms(500))),
            (Transport::Unsendable, true, Retry(ms(500))),
            (Transport::Interrupted, true, Retry(ms(500))),
            (Transport::Other, true, Retry(ms(500))),
        ];
        for (tr, idempotent, want) in client_rows {
            assert_eq!(client.decide(Some(tr), idempotent, 1), want, "{tr:?}");
            assert_eq!(client.decide(Some(tr), idempotent, 2), GiveUp, "{tr:?}");
        }
        // Not a transport failure (and never an HTTP status): raised at once.
        assert_eq!(client.decide(None, true, 0), GiveUp);
    }

    #[test]
    fn client_backoff_doubles_without_cap_and_saturates() {
        let rule = ClientRule {
            max_retries: u32::MAX,
            backoff_s: 0.1,
        };
        assert_eq!(rule.delay_s(0), 0.1);
        assert_eq!(rule.delay_s(3), 0.8);
        // 0.1 * 2^20 s is about 29 hours: the reference does not cap it, neither do we.
        assert!((rule.delay_s(20) - 104_857.6).abs() < 1e-6);
        assert_eq!(rule.delay_s(u32::MAX), f64::MAX);
        assert_eq!(
            rule.decide(Some(Transport::NotConnected), true, 5000),
            Decision::Retry(Duration::MAX)
        );
        let zero = ClientRule {
            max_retries: 3,
            backoff_s: 0.0,
        };
        assert_eq!(zero.delay_s(u32::MAX), 0.0);
        let nan = ClientRule {
            max_retries: 3,
            backoff_s: f64::NAN,
        };
        assert_eq!(nan.delay_s(1), 0.0);
    }

    #[test]
    fn delivery_backoff_is_capped_with_equal_jitter() {
        let rule = DeliveryRule {
            base: ms(500),
            cap: Duration::from_secs(30),
        };
        for attempt in 0..80 {
            let ceil = rule.ceiling(attempt);
            assert!(ceil <= rule.cap);
            for unit in [0.0, 0.3, 0.999, 7.0, -1.0, f64::NAN] {
                let d = rule.backoff(attempt, unit);
                assert!(d <= ceil && d >= ceil / 2, "{attempt} {unit} {d:?}");
            }
        }
        assert_eq!(rule.ceiling(0), ms(500));
        assert_eq!(rule.ceiling(3), Duration::from_secs(4));
        assert_eq!(rule.ceiling(10), rule.cap);
        // Retry-After is a floor, the cap a ceiling.
        let d = rule.decide(
            Failure::Status {
                code: 503,
                retry_after: Some("10"),
            },
            0,
            None,
            0.0,
            now(),
        );
        assert_eq!(d, Decision::Retry(Duration::from_secs(10)));
    }

    #[test]
    fn every_core_error_is_classified_as_its_httpx_class() {
        let errors = [
            Error::Connect(String::new()),
            Error::ConnectTimeout(String::new()),
            Error::ReadTimeout(String::new()),
            Error::WriteTimeout(String::new()),
            Error::Read(String::new()),
            Error::Write(String::new()),
            Error::UploadReset(String::new()),
            Error::RemoteProtocol(String::new()),
            Error::LocalProtocol(String::new()),
            Error::UnsupportedProtocol(String::new()),
            Error::InvalidUrl(String::new()),
            Error::Closed,
            Error::NonFinite,
        ];
        for e in &errors {
            assert_eq!(
                Transport::of_error(e),
                Transport::of_httpx(e.class_name()),
                "{e:?}"
            );
        }
        assert_eq!(Transport::of_httpx("HTTPStatusError"), None);
        assert_eq!(
            Transport::of_httpx("PoolTimeout"),
            Some(Transport::NotConnected)
        );
    }
}
