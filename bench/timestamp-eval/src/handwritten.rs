// The hand-written parser that src/core/event/timestamp.rs held before it switched to speedate
// (git history: the file as of commit a9a40d4), kept here only so that
// the comparison that decided the switch can be re-run. Not part of the crate.

//! Event timestamps: parsing with pydantic's lax rules and the two output formats
//! (pydantic's `model_dump(mode="json")` and the UTC wire form).

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

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

    /// Builds an aware UTC timestamp from a Unix time given as a float, the way pydantic
    /// does: the whole part counts seconds, or milliseconds when its magnitude exceeds
    /// 2e10; the fraction is rounded to the microsecond (of that unit).
    ///
    /// # Errors
    /// Returns pydantic's message when the value is not finite or out of range.
    pub fn from_epoch(v: f64) -> Result<Self, &'static str> {
        if !v.is_finite() {
            return Err("invalid datetime format, expected a finite number");
        }
        let whole = v.trunc();
        if whole.abs() >= 9.0e18 {
            return Err(if v < 0.0 { EPOCH_BEFORE } else { EPOCH_AFTER });
        }
        let millis = v.abs() > 2e10;
        // The fraction in microseconds, rounded half up (pydantic's rounding, also below 0).
        let scale = if millis { 1e3 } else { 1e6 };
        let frac_micros = ((v - whole) * scale + 0.5).floor() as i64;
        Self::from_epoch_parts(whole as i64, frac_micros, millis)
    }

    /// [`Timestamp::from_epoch`] for an integer.
    ///
    /// # Errors
    /// Returns pydantic's message when the value is out of range.
    pub fn from_epoch_int(v: i64) -> Result<Self, &'static str> {
        Self::from_epoch_parts(v, 0, v.unsigned_abs() > 20_000_000_000)
    }

    /// `whole` seconds (or milliseconds when `millis`), plus `frac_micros` microseconds
    /// (signed like the value).
    fn from_epoch_parts(whole: i64, frac_micros: i64, millis: bool) -> Result<Self, &'static str> {
        let micros: i128 = if millis {
            if whole > MAX_EPOCH_MS {
                return Err(EPOCH_AFTER);
            }
            if whole < MIN_EPOCH_MS {
                return Err(EPOCH_BEFORE);
            }
            i128::from(whole) * 1000 + i128::from(frac_micros)
        } else {
            i128::from(whole) * 1_000_000 + i128::from(frac_micros)
        };
        let secs = i64::try_from(micros.div_euclid(1_000_000)).map_err(|_| EPOCH_AFTER)?;
        let sub = u32::try_from(micros.rem_euclid(1_000_000)).map_err(|_| EPOCH_AFTER)?;
        let dt = DateTime::from_timestamp(secs, sub * 1000).ok_or(EPOCH_AFTER)?;
        Ok(Self {
            naive: dt.naive_utc(),
            offset: Some(0),
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
/// 9999-12-31T23:59:59.999 and 0000-01-01T00:00:00 in Unix milliseconds.
const MAX_EPOCH_MS: i64 = 253_402_300_799_999;
const MIN_EPOCH_MS: i64 = -62_167_219_200_000;

/// The Unix time a string spells, if it is a number the way pydantic reads one: an
/// optional sign, then digits (an integer that fits in 64 bits), or digits with a decimal
/// point and an optional exponent after the fraction.
fn epoch_text(t: &str) -> Option<Result<Timestamp, ParseError>> {
    let b = t.as_bytes();
    let body = match b.first() {
        Some(b'+' | b'-') => &b[1..],
        _ => b,
    };
    let int_len = body.iter().take_while(|c| c.is_ascii_digit()).count();
    let rest = &body[int_len..];
    if rest.is_empty() {
        if int_len == 0 {
            return None;
        }
        let v = t.parse::<i64>().ok()?;
        return Some(Timestamp::from_epoch_int(v).map_err(ParseError));
    }
    if rest[0] != b'.' {
        return None;
    }
    let frac_len = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
    if int_len + frac_len == 0 {
        return None;
    }
    let exp = &rest[1 + frac_len..];
    if !exp.is_empty() {
        let digits = match exp.get(1) {
            Some(b'+' | b'-') => &exp[2..],
            _ => &exp[1..],
        };
        if !matches!(exp[0], b'e' | b'E')
            || digits.is_empty()
            || !digits.iter().all(u8::is_ascii_digit)
        {
            return None;
        }
    }
    let v = t.parse::<f64>().ok()?;
    Some(Timestamp::from_epoch(v).map_err(ParseError))
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

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn digits(&mut self, n: usize, what: &'static str) -> Result<u32, ParseError> {
        if self.b.len() < self.i + n {
            return Err(ParseError("input is too short"));
        }
        let mut v = 0u32;
        for k in 0..n {
            let c = self.b[self.i + k];
            if !c.is_ascii_digit() {
                return Err(ParseError(what));
            }
            v = v * 10 + u32::from(c - b'0');
        }
        self.i += n;
        Ok(v)
    }
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn expect(&mut self, c: u8, what: &'static str) -> Result<(), ParseError> {
        match self.peek() {
            Some(x) if x == c => {
                self.i += 1;
                Ok(())
            }
            None => Err(ParseError("input is too short")),
            Some(_) => Err(ParseError(what)),
        }
    }
}

/// Parses an ISO-8601 date or date-time string the way pydantic's lax `datetime` does.
/// A bare date yields naive midnight; a string of digits is taken as a Unix epoch.
///
/// # Errors
/// Returns the reason, worded like pydantic's `datetime_from_date_parsing` errors.
pub fn parse(s: &str) -> Result<Timestamp, ParseError> {
    parse_inner(s, false)
}

/// Parses the output of Python's `datetime.isoformat()`, which may carry seconds in the
/// UTC offset (kept to the second here; JSON output cuts them to minutes like pydantic).
///
/// # Errors
/// Returns the reason when the text is not an isoformat string.
pub fn parse_isoformat(s: &str) -> Result<Timestamp, ParseError> {
    parse_inner(s, true)
}

fn parse_inner(s: &str, offset_seconds: bool) -> Result<Timestamp, ParseError> {
    let t = s.as_bytes();
    if !offset_seconds {
        if let Some(r) = epoch_text(s) {
            return r;
        }
    }
    let mut c = Cursor { b: t, i: 0 };
    let year = c.digits(4, "invalid character in year")?;
    c.expect(b'-', "invalid date separator, expected `-`")?;
    let month = c.digits(2, "invalid character in month")?;
    c.expect(b'-', "invalid date separator, expected `-`")?;
    let day = c.digits(2, "invalid character in day")?;
    if !(1..=12).contains(&month) {
        return Err(ParseError("month value is outside expected range of 1-12"));
    }
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)
        .ok_or(ParseError("day value is outside expected range"))?;
    match c.peek() {
        None => {
            return Ok(Timestamp {
                naive: date.and_time(NaiveTime::MIN),
                offset: None,
            });
        }
        Some(b'T' | b't' | b' ' | b'_') => c.i += 1,
        Some(_) => {
            return Err(ParseError(
                "unexpected extra characters at the end of the input",
            ))
        }
    }
    let hour = c.digits(2, "invalid character in hour")?;
    c.expect(b':', "invalid time separator, expected `:`")?;
    let minute = c.digits(2, "invalid character in minute")?;
    let mut second = 0;
    let mut micros = 0u32;
    if c.peek() == Some(b':') {
        c.i += 1;
        second = c.digits(2, "invalid character in second")?;
        if matches!(c.peek(), Some(b'.' | b',')) {
            c.i += 1;
            let start = c.i;
            while let Some(d) = c.peek() {
                if !d.is_ascii_digit() {
                    break;
                }
                c.i += 1;
            }
            let frac = &t[start..c.i];
            if frac.is_empty() {
                return Err(ParseError("second fraction value is missing"));
            }
            for k in 0..6 {
                micros = micros * 10 + frac.get(k).map_or(0, |d| u32::from(d - b'0'));
            }
        }
    }
    if hour > 23 {
        return Err(ParseError("hour value is outside expected range of 0-23"));
    }
    if minute > 59 {
        return Err(ParseError("minute value is outside expected range of 0-59"));
    }
    if second > 59 {
        return Err(ParseError(
            "unexpected extra characters at the end of the input",
        ));
    }
    let time = NaiveTime::from_hms_micro_opt(hour, minute, second, micros)
        .ok_or(ParseError("invalid time"))?;
    let offset = match c.peek() {
        None => None,
        Some(b'Z' | b'z') => {
            c.i += 1;
            Some(0)
        }
        Some(sign @ (b'+' | b'-')) => {
            c.i += 1;
            let h = c.digits(2, "invalid timezone hour")?;
            if c.peek() == Some(b':') {
                c.i += 1;
            }
            let m = c
                .digits(2, "unexpected extra characters at the end of the input")
                .map_err(|_| ParseError("unexpected extra characters at the end of the input"))?;
            if h > 23 || m > 59 {
                return Err(ParseError("timezone offset must be less than 24 hours"));
            }
            let mut secs = 0;
            if offset_seconds && c.peek() == Some(b':') {
                c.i += 1;
                secs = c.digits(2, "invalid timezone second")?;
                if c.peek() == Some(b'.') {
                    c.i += 1;
                    while matches!(c.peek(), Some(d) if d.is_ascii_digit()) {
                        c.i += 1;
                    }
                }
            }
            let v = (h * 3600 + m * 60 + secs) as i32;
            Some(if sign == b'-' { -v } else { v })
        }
        Some(_) => {
            return Err(ParseError(
                "unexpected extra characters at the end of the input",
            ))
        }
    };
    if c.i != t.len() {
        return Err(ParseError(
            "unexpected extra characters at the end of the input",
        ));
    }
    Ok(Timestamp {
        naive: date.and_time(time),
        offset,
    })
}
