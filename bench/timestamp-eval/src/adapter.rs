// pydantic-core's calls into speedate, with the result converted to our `Timestamp` (what
// a switch would have to do on every parse). Included once per speedate version by
// main.rs, with `sd` naming that version's crate.

use chrono::{NaiveDate, NaiveTime};
use sd::{
    Date, DateConfig, DateTime, DateTimeConfig, MicrosecondsPrecisionOverflowBehavior, TimeConfig,
};
use sd_strum::EnumMessage;

use crate::timestamp::Timestamp;

/// pydantic-core's configuration for a lax `datetime` (`input/datetime.rs`): Unix times
/// are UTC, fraction digits past 6 are truncated, the unit is inferred.
pub fn config() -> DateTimeConfig {
    DateTimeConfig {
        time_config: TimeConfig {
            microseconds_precision_overflow_behavior:
                MicrosecondsPrecisionOverflowBehavior::Truncate,
            unix_timestamp_offset: Some(0),
        },
        ..Default::default()
    }
}

fn why(e: sd::ParseError) -> String {
    e.get_documentation().unwrap_or_default().to_string()
}

fn convert(dt: DateTime) -> Result<Timestamp, String> {
    let date = NaiveDate::from_ymd_opt(
        i32::from(dt.date.year),
        u32::from(dt.date.month),
        u32::from(dt.date.day),
    )
    .ok_or("date out of chrono's range")?;
    let time = NaiveTime::from_hms_micro_opt(
        u32::from(dt.time.hour),
        u32::from(dt.time.minute),
        u32::from(dt.time.second),
        dt.time.microsecond,
    )
    .ok_or("time out of chrono's range")?;
    Ok(Timestamp {
        naive: date.and_time(time),
        offset: dt.time.tz_offset,
    })
}

/// pydantic-core's lax `datetime` from text: the datetime parser, and when that fails the
/// date parser (midnight, naive), whose error is the one reported
/// (`datetime_from_date_parsing`).
pub fn parse(s: &str, cfg: &DateTimeConfig) -> Result<Timestamp, String> {
    match DateTime::parse_bytes_with_config(s.as_bytes(), cfg) {
        Ok(dt) => convert(dt),
        Err(_) => {
            let d = Date::parse_bytes_with_config(s.as_bytes(), &DateConfig::default()).map_err(why)?;
            let date =
                NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))
                    .ok_or("date out of chrono's range")?;
            Ok(Timestamp {
                naive: date.and_time(NaiveTime::MIN),
                offset: None,
            })
        }
    }
}

/// Whether the text parses, without the conversion to `Timestamp`.
pub fn parses(s: &str, cfg: &DateTimeConfig) -> bool {
    DateTime::parse_bytes_with_config(s.as_bytes(), cfg).is_ok()
        || Date::parse_bytes_with_config(s.as_bytes(), &DateConfig::default()).is_ok()
}

/// A number given as a number: pydantic-core's `int_as_datetime` / `float_as_datetime`.
pub fn number(v: &serde_json::Value, cfg: &DateTimeConfig) -> Result<Timestamp, String> {
    if let Some(i) = v.as_i64() {
        return DateTime::from_timestamp_with_config(i, 0, cfg).map_err(why).and_then(convert);
    }
    let f = v.as_f64().unwrap_or(f64::NAN);
    if f.is_nan() {
        return Err("NaN values not permitted".to_string());
    }
    DateTime::from_float_with_config(f, cfg).map_err(why).and_then(convert)
}
