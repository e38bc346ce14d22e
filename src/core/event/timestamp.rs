//! Event timestamps: parsing with pydantic's lax rules and the two output formats
//! (pydantic's `model_dump(mode="json")` and the UTC wire form).
//!
//! Parsing is speedate's, the parser pydantic-core itself calls, with pydantic-core's
//! configuration; this file converts its result to a chrono value and writes the output
//! forms.
//!
//! Decision (issue 13): speedate 0.18 replaced the hand-written parser (this file was 512
//! lines) after `bench/timestamp_eval.py` compared both with pydantic 2.14.4 (pydantic-core
//! 2.50.5) on 6,139 inputs (edge cases, the fuzz seeds, the property tests' grammar, Unix
//! times as text and as numbers): speedate gives pydantic's value or pydantic's error reason
//! on all 6,139. The hand-written parser gave the same value or rejection on 6,138 (not the
//! U+2212 minus sign in offsets, which pydantic accepts) but worded 610 rejections
//! differently (e.g. "hour value is outside expected range" where pydantic, after retrying
//! the text as a bare date, says "unexpected extra characters at the end of the input"),
//! and NaN/infinite floats. speedate 0.17, the version pydantic-core 2.41 pins, agrees on
//! only 5,769 (it misreads long numeric text and negative fractional Unix times), hence the
//! exact 0.18 pin. Speed (`bench/timestamp-eval`, release build, a mix of 8 event timestamp
//! forms): about 27 ns per parse including the conversion to chrono, against about 39 ns
//! for the hand-written parser (slower only on a bare date, 20 ns against 11 ns).

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use speedate::{
    Date, DateConfig, DateTime, DateTimeConfig, MicrosecondsPrecisionOverflowBehavior, TimeConfig,
};
use strum::EnumMessage;

/// A point in time as the user gave it: wall-clock time plus an optional UTC offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timestamp {
    /// Local wall-clock time (microsecond precision).
    pub naive: NaiveDateTime,
    /// Offset east of UTC in seconds; `None` for a naive timestamp.
    pub offset: Option<i32>,
}

impl Timestamp {
    /// The instant in UTC; naive timestamps are taken as UTC.
    pub fn utc_naive(&self) -> NaiveDateTime {
        match self.offset {
            Some(off) => self
                .naive
                .checked_sub_signed(Duration::seconds(i64::from(off)))
                .unwrap_or(self.naive),
            None => self.naive,
        }
    }

    /// pydantic's JSON form: wall time, `Z` for a zero offset, `±HH:MM` otherwise, nothing
    /// for naive values; microseconds only when non-zero.
    pub fn write_pydantic(&self, out: &mut Vec<u8>) {
        write_naive(out, &self.naive);
        match self.offset {
            None => {}
            Some(0) => out.push(b'Z'),
            Some(off) => {
                let sign = if off < 0 { b'-' } else { b'+' };
                let a = off.unsigned_abs();
                out.push(sign);
                push2(out, a / 3600);
                out.push(b':');
                push2(out, (a % 3600) / 60);
            }
        }
    }

    /// The wire form: the instant converted to UTC, with `Z`. An instant whose UTC date
    /// falls outside years 1 to 9999 (a wall time at the edge of the range with a large
    /// offset) keeps its offset instead, since no four-digit UTC date can express it.
    pub fn write_utc(&self, out: &mut Vec<u8>) {
        let utc = self.utc_naive();
        if (1..=9999).contains(&utc.year()) {
            write_naive(out, &utc);
            out.push(b'Z');
        } else {
            self.write_pydantic(out);
        }
    }

    /// The wire form as a `String`.
    pub fn to_utc_string(&self) -> String {
        let mut v = Vec::with_capacity(32);
        self.write_utc(&mut v);
        String::from_utf8(v).unwrap_or_default()
    }

    /// The pydantic JSON form as a `String`.
    pub fn to_pydantic_string(&self) -> String {
        let mut v = Vec::with_capacity(32);
        self.write_pydantic(&mut v);
        String::from_utf8(v).unwrap_or_default()
    }

    /// Builds an aware UTC timestamp from a Unix time given as a float, as pydantic does
    /// (`float_as_datetime`): the whole part counts seconds, or milliseconds when its
    /// magnitude exceeds 2e10; the fraction is rounded to the microsecond (of that unit).
    ///
    /// # Errors
    /// Returns pydantic's message when the value is NaN or out of range.
    pub fn from_epoch(v: f64) -> Result<Self, &'static str> {
        if v.is_nan() {
            return Err("NaN values not permitted");
        }
        let dt = DateTime::from_float_with_config(v, &config()).map_err(reason)?;
        Self::from_speedate(&dt).ok_or(EPOCH_AFTER)
    }

    /// [`Timestamp::from_epoch`] for an integer (pydantic's `int_as_datetime`).
    ///
    /// # Errors
    /// Returns pydantic's message when the value is out of range.
    pub fn from_epoch_int(v: i64) -> Result<Self, &'static str> {
        let dt = DateTime::from_timestamp_with_config(v, 0, &config()).map_err(reason)?;
        Self::from_speedate(&dt).ok_or(EPOCH_AFTER)
    }

    /// speedate's value as chrono's; `None` only for values speedate never yields.
    fn from_speedate(dt: &DateTime) -> Option<Self> {
        let time = NaiveTime::from_hms_micro_opt(
            u32::from(dt.time.hour),
            u32::from(dt.time.minute),
            u32::from(dt.time.second),
            dt.time.microsecond,
        )?;
        Some(Self {
            naive: naive_date(&dt.date)?.and_time(time),
            offset: dt.time.tz_offset,
        })
    }

    /// Whether the wall-clock year is one Python's `datetime` can hold (1 to 9999).
    pub fn year_in_range(&self) -> bool {
        (1..=9999).contains(&self.naive.year())
    }
}

/// pydantic's messages for Unix times out of range, and for year 0 (which ISO text and
/// Unix times can reach but Python's `datetime` cannot hold).
pub const EPOCH_AFTER: &str = "dates after 9999 are not supported as unix timestamps";
pub const EPOCH_BEFORE: &str = "dates before 0000 are not supported as unix timestamps";
pub const YEAR_ZERO: &str = "year 0 is out of range";

/// pydantic-core's speedate configuration for a lax `datetime` (`input/datetime.rs`):
/// Unix times are UTC, fraction digits past the sixth are truncated, the unit (seconds or
/// milliseconds) is inferred from the magnitude.
fn config() -> DateTimeConfig {
    DateTimeConfig {
        time_config: TimeConfig {
            microseconds_precision_overflow_behavior:
                MicrosecondsPrecisionOverflowBehavior::Truncate,
            unix_timestamp_offset: Some(0),
        },
        ..DateTimeConfig::default()
    }
}

/// speedate's wording of an error, which pydantic puts in its message.
fn reason(e: speedate::ParseError) -> &'static str {
    e.get_documentation().unwrap_or("invalid datetime")
}

fn naive_date(d: &Date) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))
}

fn push2(out: &mut Vec<u8>, v: u32) {
    out.push(b'0' + (v / 10 % 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

fn write_naive(out: &mut Vec<u8>, n: &NaiveDateTime) {
    let y = n.year();
    if (0..=9999).contains(&y) {
        let y = y as u32;
        push2(out, y / 100);
        push2(out, y % 100);
    } else {
        out.extend_from_slice(format!("{y:+05}").as_bytes());
    }
    out.push(b'-');
    push2(out, n.month());
    out.push(b'-');
    push2(out, n.day());
    out.push(b'T');
    push2(out, n.hour());
    out.push(b':');
    push2(out, n.minute());
    out.push(b':');
    push2(out, n.second());
    let micros = n.nanosecond() / 1000;
    if micros != 0 {
        out.push(b'.');
        let s = format!("{micros:06}");
        out.extend_from_slice(s.as_bytes());
    }
}

/// Why a timestamp string was rejected; the text follows pydantic's wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub &'static str);

/// Parses a timestamp string the way pydantic's lax `datetime` does: an ISO 8601 / RFC 3339
/// date-time, or a Unix time spelled as a number; failing that, a bare date (naive
/// midnight), whose parse error is the one reported, as pydantic's `datetime_from_date`
/// reports it.
///
/// # Errors
/// Returns the reason, worded like pydantic's `datetime_from_date_parsing` errors.
pub fn parse(s: &str) -> Result<Timestamp, ParseError> {
    if let Ok(dt) = DateTime::parse_bytes_with_config(s.as_bytes(), &config()) {
        return Timestamp::from_speedate(&dt).ok_or(ParseError("invalid datetime"));
    }
    let d = Date::parse_bytes_with_config(s.as_bytes(), &DateConfig::default())
        .map_err(|e| ParseError(reason(e)))?;
    let date = naive_date(&d).ok_or(ParseError("invalid date"))?;
    Ok(Timestamp {
        naive: date.and_time(NaiveTime::MIN),
        offset: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        parse(s)
            .map(|t| t.to_pydantic_string())
            .unwrap_or_else(|e| format!("ERR {}", e.0))
    }

    #[test]
    fn parses_like_pydantic() {
        assert_eq!(p("2026-05-01T12:34:56Z"), "2026-05-01T12:34:56Z");
        assert_eq!(p("2026-05-01 12:34:56+0200"), "2026-05-01T12:34:56+02:00");
        assert_eq!(p("2026-05-01T12:34"), "2026-05-01T12:34:00");
        assert_eq!(p("2026-05-01"), "2026-05-01T00:00:00");
        assert_eq!(p("2026-05-01T12:34:56,5Z"), "2026-05-01T12:34:56.500000Z");
        assert_eq!(
            p("2026-05-01T12:34:56.1234567Z"),
            "2026-05-01T12:34:56.123456Z"
        );
        assert_eq!(p("2026-05-01t12:34:56z"), "2026-05-01T12:34:56Z");
        assert_eq!(p("2026-05-01T12:34:56+23:59"), "2026-05-01T12:34:56+23:59");
        assert_eq!(p("1700000000"), "2023-11-14T22:13:20Z");
        assert!(p("2026-05-01T12:34:60Z").starts_with("ERR"));
        assert!(p("2026-05-01T12:34:56+02").starts_with("ERR"));
        assert_eq!(
            p("20260115T120000Z"),
            "ERR invalid date separator, expected `-`"
        );
        assert_eq!(p("x"), "ERR input is too short");
        assert_eq!(p("  2026-05-01T12:34:56Z"), "ERR invalid character in year");
        // ISO 8601's minus sign (U+2212) in an offset, as pydantic accepts it.
        assert_eq!(
            p("2026-05-01T12:34:56\u{2212}05:00"),
            "2026-05-01T12:34:56-05:00"
        );
        // A failed date-time is retried as a bare date, whose error is the one reported.
        assert_eq!(
            p("2026-05-01T24:00:00"),
            "ERR unexpected extra characters at the end of the input"
        );
        assert_eq!(
            p("2026-05-01T12:34:56."),
            "ERR unexpected extra characters at the end of the input"
        );
        assert_eq!(p("1e400"), "ERR input is too short");
        assert_eq!(
            p("2016-12-31T23:59:60Z"),
            "ERR unexpected extra characters at the end of the input"
        );
    }

    #[test]
    fn utc_wire_form_converts_offsets() {
        let t = parse("2026-05-01T14:34:56+02:00").unwrap_or_else(|_| unreachable!());
        assert_eq!(t.to_utc_string(), "2026-05-01T12:34:56Z");
        let n = parse("2026-05-01T12:34:56.5").unwrap_or_else(|_| unreachable!());
        assert_eq!(n.to_utc_string(), "2026-05-01T12:34:56.500000Z");
    }

    #[test]
    fn epoch_numbers() {
        assert_eq!(
            Timestamp::from_epoch(1.5).map(|t| t.to_pydantic_string()),
            Ok("1970-01-01T00:00:01.500000Z".to_string())
        );
        assert_eq!(
            Timestamp::from_epoch(1e11).map(|t| t.to_pydantic_string()),
            Ok("1973-03-03T09:46:40Z".to_string())
        );
        assert_eq!(
            Timestamp::from_epoch(-1.0).map(|t| t.to_pydantic_string()),
            Ok("1969-12-31T23:59:59Z".to_string())
        );
        let f = |v: f64| Timestamp::from_epoch(v).map(|t| t.to_pydantic_string());
        // Milliseconds keep their exact value; fractions round to the microsecond.
        assert_eq!(
            f(9_999_999_999_998.0),
            Ok("2286-11-20T17:46:39.998000Z".into())
        );
        assert_eq!(
            f(9_999_999_999_998.25),
            Ok("2286-11-20T17:46:39.998250Z".into())
        );
        assert_eq!(f(1.000_000_5), Ok("1970-01-01T00:00:01.000001Z".into()));
        assert_eq!(f(-1.000_000_5), Ok("1969-12-31T23:59:58.999999Z".into()));
        assert_eq!(
            f(-20_000_000_001.5),
            Ok("1969-05-14T12:26:39.998500Z".into())
        );
        assert_eq!(f(2e10), Ok("2603-10-11T11:33:20Z".into()));
        // The unit follows the whole value: just above 2e10 is milliseconds.
        assert_eq!(f(2e10 + 0.5), Ok("1970-08-20T11:33:20.000500Z".into()));
        assert_eq!(f(-2e10 - 0.5), Ok("1969-05-14T12:26:39.999500Z".into()));
        assert_eq!(
            f(20_000_000_000.312_5),
            Ok("1970-08-20T11:33:20.000313Z".into())
        );
        // The range of Python's datetime.
        assert_eq!(
            f(253_402_300_799_999.0),
            Ok("9999-12-31T23:59:59.999000Z".into())
        );
        assert_eq!(f(253_402_300_800_000.0), Err(EPOCH_AFTER));
        assert_eq!(f(3e14), Err(EPOCH_AFTER));
        assert_eq!(f(-6.3e13), Err(EPOCH_BEFORE));
        assert_eq!(f(8e30), Err(EPOCH_AFTER));
        // pydantic's wording for the non-finite floats.
        assert_eq!(f(f64::NAN), Err("NaN values not permitted"));
        assert_eq!(f(f64::INFINITY), Err(EPOCH_AFTER));
        assert_eq!(f(f64::NEG_INFINITY), Err(EPOCH_BEFORE));
        let year0 =
            Timestamp::from_epoch_int(-62_135_596_801_000).unwrap_or_else(|_| unreachable!());
        assert!(!year0.year_in_range());
    }

    #[test]
    fn numeric_text_is_a_unix_time() {
        assert_eq!(p("00000000000000000001"), "1970-01-01T00:00:01Z");
        assert_eq!(p("1.5e3"), "1970-01-01T00:25:00Z");
        assert_eq!(p("+.5e1"), "1970-01-01T00:00:05Z");
        assert_eq!(p("-.5"), "1969-12-31T23:59:59.500000Z");
        assert_eq!(p("1."), "1970-01-01T00:00:01Z");
        assert_eq!(p("1700000000.000000000"), "2023-11-14T22:13:20Z");
        assert_eq!(p("9999999999998"), "2286-11-20T17:46:39.998000Z");
        assert_eq!(p("5045022524244243"), format!("ERR {EPOCH_AFTER}"));
        // Not numbers: an exponent without a fraction, an integer beyond 64 bits.
        assert!(p("1e3").starts_with("ERR"));
        assert_eq!(
            p("99999999999999999999"),
            "ERR invalid date separator, expected `-`"
        );
    }

    #[test]
    fn the_wire_form_keeps_the_offset_when_utc_leaves_the_four_digit_years() {
        let t = parse("9999-12-31T23:59:59-23:59").unwrap_or_else(|_| unreachable!());
        assert_eq!(t.to_utc_string(), "9999-12-31T23:59:59-23:59");
        let t = parse("0001-01-01T00:00:00+23:59").unwrap_or_else(|_| unreachable!());
        assert_eq!(t.to_utc_string(), "0001-01-01T00:00:00+23:59");
        let t = parse("9999-12-31T00:00:00-23:59").unwrap_or_else(|_| unreachable!());
        assert_eq!(t.to_utc_string(), "9999-12-31T23:59:00Z");
    }
}
