//! Retry timing: exponential backoff with "equal jitter" and `Retry-After` parsing.

use std::time::{Duration, SystemTime};

/// Backoff schedule: `d = min(cap, base * 2^attempt)`, slept as a random value in `[d/2, d]`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// The un-jittered delay for a 0-based attempt.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 2f64.powi(attempt.min(62) as i32);
        let d = self.base.as_secs_f64() * factor;
        Duration::from_secs_f64(d.min(self.cap.as_secs_f64()))
    }

    /// The jittered delay for a 0-based attempt, using `unit` in `[0, 1)` as the random draw.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let d = self.ceiling(attempt).as_secs_f64();
        Duration::from_secs_f64(d / 2.0 + d / 2.0 * unit.clamp(0.0, 1.0))
    }
}

/// Parses a `Retry-After` value (delta seconds or an HTTP date), clamped to `cap`.
pub fn retry_after(value: &str, now: SystemTime, cap: Duration) -> Option<Duration> {
    let v = value.trim();
    let d = if let Ok(secs) = v.parse::<u64>() {
        Duration::from_secs(secs)
    } else if let Ok(secs) = v.parse::<f64>() {
        if !secs.is_finite() || secs < 0.0 {
            return None;
        }
        Duration::from_secs_f64(secs.min(cap.as_secs_f64()))
    } else {
        let when = httpdate::parse_http_date(v).ok()?;
        when.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(d.min(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_never_exceeds_cap_nor_drops_below_half() {
        let b = Backoff {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
        };
        for attempt in 0..80 {
            let ceil = b.ceiling(attempt);
            assert!(ceil <= Duration::from_secs(30));
            for unit in [0.0, 0.3, 0.999] {
                let d = b.delay(attempt, unit);
                assert!(d <= ceil && d >= ceil / 2, "{attempt} {unit} {d:?}");
            }
        }
        assert_eq!(b.ceiling(0), Duration::from_millis(500));
        assert_eq!(b.ceiling(3), Duration::from_secs(4));
    }

    #[test]
    fn retry_after_forms() {
        let cap = Duration::from_secs(30);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(retry_after("2", now, cap), Some(Duration::from_secs(2)));
        assert_eq!(retry_after("3600", now, cap), Some(cap));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(5));
        assert_eq!(retry_after(&date, now, cap), Some(Duration::from_secs(5)));
        assert_eq!(retry_after("soon", now, cap), None);
    }
}
