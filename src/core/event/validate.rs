//! Lax validation with pydantic's rules, written once over an abstract [`Source`] so that
//! Python objects (in the binding) and JSON values (here) are validated identically.

use std::borrow::Cow;

use chrono::{NaiveDate, NaiveTime};

use super::timestamp::{self, Timestamp};
pub use super::Instance;
use super::{ApiVersion, EventType, FieldsSet, Model, RunEvent, Text, API_VERSION};

/// What a value looks like to the validator.
#[derive(Debug)]
pub enum Scalar<'a> {
    Null,
    Bool(bool),
    /// An integer within `i64` or `u64`.
    Int(i128),
    /// An integer outside `i64` and `u64`; the flag says whether it is negative.
    BigInt(bool),
    Float(f64),
    Str(Cow<'a, str>),
    /// Raw bytes (validated as UTF-8 text where a string is expected).
    Bytes(Cow<'a, [u8]>),
    /// A `bytearray`: text where a string is expected, like bytes; unlike bytes, never a
    /// number, a boolean or a timestamp (pydantic's lax rules).
    ByteArray(Cow<'a, [u8]>),
    DateTime(Timestamp),
    Date(NaiveDate),
    Mapping,
    Sequence,
    Other,
}

/// A key of a mapping entry: text, or a value that is not a string.
pub enum Key<'k, S> {
    Str(&'k str),
    Other(S),
}

/// Input that can be validated into events.
pub trait Source: Sized {
    /// A handle on the original input value, kept in error reports.
    type Input;

    /// Classifies the value.
    fn scalar(&self) -> Scalar<'_>;
    /// An instance of one of our model classes, if this is one.
    fn instance(&self) -> Option<Instance> {
        None
    }
    /// Visits every entry of a mapping (only called when `scalar()` is `Mapping`).
    fn for_each_entry(&self, f: &mut dyn FnMut(Key<'_, Self>, Self));
    /// The elements of a sequence (only called when `scalar()` is `Sequence`).
    fn elements(&self) -> Vec<Self>;
    /// The original value, for error reports.
    fn input(&self) -> Self::Input;
    /// `(repr, type name)` of the value, for error messages.
    fn describe(&self) -> (String, String);
}

/// One element of an error location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loc {
    Key(String),
    /// A field name known at compile time (no allocation on the hot path).
    Field(&'static str),
    Index(usize),
}

/// A value in an error's context.
#[derive(Debug, Clone, PartialEq)]
pub enum CtxValue {
    Int(i64),
    Float(f64),
    Str(String),
}

/// One validation failure: where, what kind, and the offending input.
#[derive(Debug, Clone)]
pub struct LineError<I> {
    pub loc: Vec<Loc>,
    pub kind: &'static str,
    pub msg: String,
    pub input: I,
    pub input_repr: String,
    pub input_type: String,
    pub ctx: Option<(&'static str, CtxValue)>,
}

impl<I> LineError<I> {
    /// The dotted location, e.g. `usage.model.input_tokens` or `usage.tools.0.tool_name`.
    pub fn loc_string(&self) -> String {
        let parts: Vec<String> = self
            .loc
            .iter()
            .map(|l| match l {
                Loc::Key(k) => k.clone(),
                Loc::Field(k) => (*k).to_string(),
                Loc::Index(i) => i.to_string(),
            })
            .collect();
        parts.join(".")
    }
}

/// Shortens a repr the way pydantic does (first 25 and last 24 characters).
pub fn truncate_repr(s: &str) -> String {
    let n = s.chars().count();
    if n <= 50 {
        return s.to_string();
    }
    let head: String = s.chars().take(25).collect();
    let tail: String = s.chars().skip(n - 24).collect();
    format!("{head}...{tail}")
}

/// Renders the error list like pydantic's `ValidationError.__str__` (without doc links).
pub fn render_errors<I>(title: &str, errors: &[LineError<I>]) -> String {
    let n = errors.len();
    let mut out = format!(
        "{} validation error{} for {}",
        n,
        if n == 1 { "" } else { "s" },
        title
    );
    for e in errors {
        out.push('\n');
        out.push_str(&e.loc_string());
        out.push_str("\n  ");
        out.push_str(&e.msg);
        out.push_str(&format!(
            " [type={}, input_value={}, input_type={}]",
            e.kind,
            truncate_repr(&e.input_repr),
            e.input_type
        ));
    }
    out
}

/// Collects errors while walking nested input.
pub struct Ctx<I> {
    path: Vec<Loc>,
    pub errors: Vec<LineError<I>>,
}

impl<I> Default for Ctx<I> {
    fn default() -> Self {
        Self {
            path: Vec::new(),
            errors: Vec::new(),
        }
    }
}

impl<I> Ctx<I> {
    fn push_err<S: Source<Input = I>>(
        &mut self,
        field: Option<Loc>,
        v: &S,
        kind: &'static str,
        msg: impl Into<String>,
        ctx: Option<(&'static str, CtxValue)>,
    ) {
        let mut loc = self.path.clone();
        if let Some(f) = field {
            loc.push(f);
        }
        let (input_repr, input_type) = v.describe();
        self.errors.push(LineError {
            loc,
            kind,
            msg: msg.into(),
            input: v.input(),
            input_repr,
            input_type,
            ctx,
        });
    }

    /// Reports the required field `field` of `parent` as missing.
    pub(crate) fn missing<S: Source<Input = I>>(&mut self, parent: &S, field: &str) {
        self.push_err(
            Some(Loc::Key(field.into())),
            parent,
            "missing",
            "Field required",
            None,
        );
    }
}

fn key(name: &str) -> Option<Loc> {
    Some(Loc::Key(name.to_string()))
}

fn string<S: Source>(ctx: &mut Ctx<S::Input>, name: &str, v: &S) -> Option<Text> {
    match v.scalar() {
        Scalar::Str(s) => Some(Text::from(s.as_ref())),
        Scalar::Bytes(b) | Scalar::ByteArray(b) => match std::str::from_utf8(&b) {
            Ok(s) => Some(Text::from(s)),
            Err(_) => {
                ctx.push_err(
                    key(name),
                    v,
                    "string_unicode",
                    "Input should be a valid string, unable to parse raw data as a unicode string",
                    None,
                );
                None
            }
        },
        _ => {
            ctx.push_err(
                key(name),
                v,
                "string_type",
                "Input should be a valid string",
                None,
            );
            None
        }
    }
}

fn ge0_error<S: Source>(ctx: &mut Ctx<S::Input>, name: &str, v: &S) {
    ctx.push_err(
        key(name),
        v,
        "greater_than_equal",
        "Input should be greater than or equal to 0",
        Some(("ge", CtxValue::Int(0))),
    );
}

fn parse_int_str(s: &str) -> Option<i128> {
    let t = s.trim();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    // "15.0" and "15.00" are integral and accepted; any other fraction is not.
    let digits = match digits.split_once('.') {
        Some((a, b)) if !b.is_empty() && b.bytes().all(|c| c == b'0') => a,
        Some(_) => return None,
        None => digits,
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.bytes().all(|c| c.is_ascii_digit() || c == b'_')
    {
        return None;
    }
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    let v: i128 = clean.parse().ok()?;
    Some(if neg { -v } else { v })
}

const INT_PARSING: (&str, &str) = (
    "int_parsing",
    "Input should be a valid integer, unable to parse string as an integer",
);
const FLOAT_PARSING: (&str, &str) = (
    "float_parsing",
    "Input should be a valid number, unable to parse string as a number",
);

/// A number parsed from text (`None` when the bytes were not UTF-8), or the `error`
/// (kind, message) reported.
fn parse_text_or<S: Source, T>(
    ctx: &mut Ctx<S::Input>,
    name: &str,
    v: &S,
    text: Option<&str>,
    parse: fn(&str) -> Option<T>,
    error: (&'static str, &'static str),
) -> Option<T> {
    let parsed = text.and_then(parse);
    if parsed.is_none() {
        ctx.push_err(key(name), v, error.0, error.1, None);
    }
    parsed
}

/// A non-negative integer (`Field(ge=0)`), coerced like pydantic's lax `int`.
fn uint<S: Source>(ctx: &mut Ctx<S::Input>, name: &str, v: &S) -> Option<u64> {
    let int_type = |ctx: &mut Ctx<S::Input>| {
        ctx.push_err(
            key(name),
            v,
            "int_type",
            "Input should be a valid integer",
            None,
        );
    };
    let wide: i128 = match v.scalar() {
        Scalar::Bool(b) => i128::from(b),
        Scalar::Int(i) => i,
        Scalar::BigInt(neg) => {
            if neg {
                ge0_error(ctx, name, v);
            } else {
                ctx.push_err(
                    key(name),
                    v,
                    "int_too_large",
                    "Input integer too large to convert to 64-bit integer",
                    None,
                );
            }
            return None;
        }
        Scalar::Float(f) => {
            if !f.is_finite() {
                ctx.push_err(
                    key(name),
                    v,
                    "finite_number",
                    "Input should be a finite number",
                    None,
                );
                return None;
            }
            if f.fract() != 0.0 {
                ctx.push_err(
                    key(name),
                    v,
                    "int_from_float",
                    "Input should be a valid integer, got a number with a fractional part",
                    None,
                );
                return None;
            }
            if f < 0.0 {
                ge0_error(ctx, name, v);
                return None;
            }
            if f >= 1.8e19 {
                ctx.push_err(
                    key(name),
                    v,
                    "int_parsing_size",
                    "Unable to parse input string as an integer, exceeded maximum size",
                    None,
                );
                return None;
            }
            f as i128
        }
        Scalar::Str(s) => parse_text_or(ctx, name, v, Some(&s), parse_int_str, INT_PARSING)?,
        Scalar::Bytes(b) => {
            let text = std::str::from_utf8(&b).ok();
            parse_text_or(ctx, name, v, text, parse_int_str, INT_PARSING)?
        }
        _ => {
            int_type(ctx);
            return None;
        }
    };
    if wide < 0 {
        ge0_error(ctx, name, v);
        return None;
    }
    match u64::try_from(wide) {
        Ok(u) => Some(u),
        Err(_) => {
            ctx.push_err(
                key(name),
                v,
                "int_too_large",
                "Input integer too large to convert to 64-bit integer",
                None,
            );
            None
        }
    }
}

fn bool_from_str(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "0" | "off" | "f" | "false" | "n" | "no" => Some(false),
        "1" | "on" | "t" | "true" | "y" | "yes" => Some(true),
        _ => None,
    }
}

fn boolean<S: Source>(ctx: &mut Ctx<S::Input>, name: &str, v: &S) -> Option<bool> {
    let parsed = match v.scalar() {
        Scalar::Bool(b) => return Some(b),
        Scalar::Int(0) => Some(false),
        Scalar::Int(1) => Some(true),
        Scalar::Float(0.0) => Some(false),
        Scalar::Float(1.0) => Some(true),
        Scalar::Int(_) | Scalar::BigInt(_) => None,
        Scalar::Float(_) => {
            ctx.push_err(
                key(name),
                v,
                "bool_type",
                "Input should be a valid boolean",
                None,
            );
            return None;
        }
        Scalar::Str(s) => bool_from_str(&s),
        Scalar::Bytes(b) => std::str::from_utf8(&b).ok().and_then(bool_from_str),
        _ => {
            ctx.push_err(
                key(name),
                v,
                "bool_type",
                "Input should be a valid boolean",
                None,
            );
            return None;
        }
    };
    if parsed.is_none() {
        ctx.push_err(
            key(name),
            v,
            "bool_parsing",
            "Input should be a valid boolean, unable to interpret input",
            None,
        );
    }
    parsed
}

fn parse_float_str(s: &str) -> Option<f64> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    if matches!(body, "nan" | "inf" | "infinity") {
        let neg = lower.starts_with('-');
        let v = if body == "nan" {
            f64::NAN
        } else {
            f64::INFINITY
        };
        return Some(if neg { -v } else { v });
    }
    if t.is_empty() || t.contains("__") || t.starts_with('_') || t.ends_with('_') {
        return None;
    }
    let clean: String = t.chars().filter(|c| *c != '_').collect();
    if !clean
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    clean.parse::<f64>().ok()
}

/// A non-negative float (`Field(ge=0)`); `inf` passes, `NaN` fails the bound like pydantic.
fn float_ge0<S: Source>(ctx: &mut Ctx<S::Input>, name: &str, v: &S) -> Option<f64> {
    let f = match v.scalar() {
        Scalar::Bool(b) => f64::from(u8::from(b)),
        Scalar::Int(i) => i as f64,
        Scalar::Float(f) => f,
        Scalar::Str(s) => parse_text_or(ctx, name, v, Some(&s), parse_float_str, FLOAT_PARSING)?,
        Scalar::Bytes(b) => {
            let text = std::str::from_utf8(&b).ok();
            parse_text_or(ctx, name, v, text, parse_float_str, FLOAT_PARSING)?
        }
        _ => {
            ctx.push_err(
                key(name),
                v,
                "float_type",
                "Input should be a valid number",
                None,
            );
            return None;
        }
    };
    if f.is_nan() || f < 0.0 {
        ctx.push_err(
            key(name),
            v,
            "greater_than_equal",
            "Input should be greater than or equal to 0",
            Some(("ge", CtxValue::Float(0.0))),
        );
        return None;
    }
    Some(f)
}

fn datetime<S: Source>(ctx: &mut Ctx<S::Input>, name: &str, v: &S) -> Option<Timestamp> {
    let text_err = |ctx: &mut Ctx<S::Input>, why: &'static str| {
        ctx.push_err(
            key(name),
            v,
            "datetime_from_date_parsing",
            format!("Input should be a valid datetime or date, {why}"),
            Some(("error", CtxValue::Str(why.to_string()))),
        );
    };
    let epoch = |ctx: &mut Ctx<S::Input>, r: Result<Timestamp, &'static str>| match r {
        Ok(t) => Some(t),
        Err(why) => {
            ctx.push_err(
                key(name),
                v,
                "datetime_parsing",
                format!("Input should be a valid datetime, {why}"),
                Some(("error", CtxValue::Str(why.to_string()))),
            );
            None
        }
    };
    let parsed = match v.scalar() {
        Scalar::DateTime(t) => Some(t),
        Scalar::Date(d) => Some(Timestamp {
            naive: d.and_time(NaiveTime::MIN),
            offset: None,
        }),
        Scalar::Int(i) => epoch(
            ctx,
            i64::try_from(i).map_or(Err(timestamp::EPOCH_AFTER), Timestamp::from_epoch_int),
        ),
        Scalar::BigInt(negative) => epoch(
            ctx,
            Err(if negative {
                timestamp::EPOCH_BEFORE
            } else {
                timestamp::EPOCH_AFTER
            }),
        ),
        Scalar::Float(f) => epoch(ctx, Timestamp::from_epoch(f)),
        Scalar::Str(s) => match timestamp::parse(&s) {
            Ok(t) => Some(t),
            Err(e) => {
                text_err(ctx, e.0);
                None
            }
        },
        Scalar::Bytes(b) => match std::str::from_utf8(&b) {
            Ok(s) => match timestamp::parse(s) {
                Ok(t) => Some(t),
                Err(e) => {
                    text_err(ctx, e.0);
                    None
                }
            },
            Err(_) => {
                text_err(ctx, "invalid UTF-8");
                None
            }
        },
        _ => {
            ctx.push_err(
                key(name),
                v,
                "datetime_type",
                "Input should be a valid datetime",
                None,
            );
            None
        }
    };
    match parsed {
        // Text and Unix times can reach year 0, which Python's datetime cannot hold.
        Some(t) if !t.year_in_range() => epoch(ctx, Err(timestamp::YEAR_ZERO)),
        other => other,
    }
}

fn literal<S: Source>(
    ctx: &mut Ctx<S::Input>,
    name: &str,
    v: &S,
    allowed: &[&'static str],
) -> Option<&'static str> {
    if let Scalar::Str(s) = v.scalar() {
        if let Some(hit) = allowed.iter().find(|a| **a == s.as_ref()) {
            return Some(hit);
        }
    }
    let expected: Vec<String> = allowed.iter().map(|a| format!("'{a}'")).collect();
    let expected = match expected.len() {
        0 | 1 => expected.join(""),
        n => format!("{} or {}", expected[..n - 1].join(", "), expected[n - 1]),
    };
    ctx.push_err(
        key(name),
        v,
        "literal_error",
        format!("Input should be {expected}"),
        Some(("expected", CtxValue::Str(expected.clone()))),
    );
    None
}

/// Runs `f` with `name` appended to the error path.
fn nested<I, R>(ctx: &mut Ctx<I>, name: Loc, f: impl FnOnce(&mut Ctx<I>) -> R) -> R {
    ctx.path.push(name);
    let r = f(ctx);
    ctx.path.pop();
    r
}

fn model_type_err<S: Source>(ctx: &mut Ctx<S::Input>, field: Option<Loc>, v: &S, class: &str) {
    ctx.push_err(
        field,
        v,
        "model_type",
        format!("Input should be a valid dictionary or instance of {class}"),
        Some(("class_name", CtxValue::Str(class.to_string()))),
    );
}

/// Collects the entries of a mapping that match `names`, in the order of `names`.
/// Also returns which of them are present (the record's [`FieldsSet`]).
pub(crate) fn pick<S: Source, const N: usize>(
    v: &S,
    names: [&str; N],
) -> ([Option<S>; N], FieldsSet) {
    let mut out: [Option<S>; N] = std::array::from_fn(|_| None);
    let mut set = FieldsSet::default();
    v.for_each_entry(&mut |k, val| {
        if let Key::Str(k) = k {
            if let Some(i) = names.iter().position(|n| *n == k) {
                out[i] = Some(val);
                set.add(i);
            }
        }
    });
    (out, set)
}

/// Validation of a field's value, by the field's type (pydantic's lax rules).
pub trait FieldValue: Sized {
    /// Validates `v` for the field `name`; `None` after pushing the errors to `ctx`.
    /// `name` is also the error location of a nested record's own errors.
    fn validate<S: Source>(ctx: &mut Ctx<S::Input>, name: &'static str, v: &S) -> Option<Self>;
}

/// `impl FieldValue for $t` by the validator function of its kind.
macro_rules! field_value_by {
    ($($t:ty => $validator:ident),* $(,)?) => {
        $(impl FieldValue for $t {
            fn validate<S: Source>(ctx: &mut Ctx<S::Input>, name: &'static str, v: &S) -> Option<Self> {
                $validator(ctx, name, v)
            }
        })*
    };
}

// `u64` and `f64` fields are `Field(ge=0)`.
field_value_by!(Text => string, u64 => uint, bool => boolean, f64 => float_ge0, Timestamp => datetime);

impl FieldValue for EventType {
    fn validate<S: Source>(ctx: &mut Ctx<S::Input>, name: &'static str, v: &S) -> Option<Self> {
        literal(ctx, name, v, &["run_start", "run_end"]).map(|s| match s {
            "run_start" => EventType::RunStart,
            _ => EventType::RunEnd,
        })
    }
}

impl FieldValue for ApiVersion {
    fn validate<S: Source>(ctx: &mut Ctx<S::Input>, name: &'static str, v: &S) -> Option<Self> {
        literal(ctx, name, v, &[API_VERSION]).map(|_| ApiVersion)
    }
}

/// `None` (Python's, JSON's `null`) or a value.
impl<T: FieldValue> FieldValue for Option<T> {
    fn validate<S: Source>(ctx: &mut Ctx<S::Input>, name: &'static str, v: &S) -> Option<Self> {
        if matches!(v.scalar(), Scalar::Null) {
            return Some(None);
        }
        T::validate(ctx, name, v).map(Some)
    }
}

/// A nested record: an instance of its class, or a mapping.
impl<M: Model> FieldValue for M {
    fn validate<S: Source>(ctx: &mut Ctx<S::Input>, name: &'static str, v: &S) -> Option<Self> {
        if let Some(m) = v.instance().and_then(M::from_instance) {
            return Some(m);
        }
        if matches!(v.scalar(), Scalar::Mapping) {
            return nested(ctx, Loc::Field(name), |ctx| M::from_map(ctx, v));
        }
        model_type_err(ctx, key(name), v, M::NAME);
        None
    }
}

/// A list of records (any iterable pydantic's lax `list` takes).
impl<M: Model> FieldValue for Vec<M> {
    fn validate<S: Source>(ctx: &mut Ctx<S::Input>, name: &'static str, v: &S) -> Option<Self> {
        if !matches!(v.scalar(), Scalar::Sequence) {
            ctx.push_err(
                key(name),
                v,
                "list_type",
                "Input should be a valid list",
                None,
            );
            return None;
        }
        let n = ctx.errors.len();
        let mut out = Vec::new();
        nested(ctx, Loc::Field(name), |ctx| {
            for (i, el) in v.elements().iter().enumerate() {
                if let Some(t) = el.instance().and_then(M::from_instance) {
                    out.push(t);
                } else if matches!(el.scalar(), Scalar::Mapping) {
                    if let Some(t) = nested(ctx, Loc::Index(i), |ctx| M::from_map(ctx, el)) {
                        out.push(t);
                    }
                } else {
                    model_type_err(ctx, Some(Loc::Index(i)), el, M::NAME);
                }
            }
        });
        (ctx.errors.len() == n).then_some(out)
    }
}

/// Labels: a dict of strings (insertion order kept, a repeated key keeps its place and
/// takes the last value).
impl FieldValue for Vec<(Text, Text)> {
    fn validate<S: Source>(ctx: &mut Ctx<S::Input>, name: &'static str, v: &S) -> Option<Self> {
        if !matches!(v.scalar(), Scalar::Mapping) {
            ctx.push_err(
                key(name),
                v,
                "dict_type",
                "Input should be a valid dictionary",
                None,
            );
            return None;
        }
        let n = ctx.errors.len();
        let mut out: Vec<(Text, Text)> = Vec::new();
        nested(ctx, Loc::Field(name), |ctx| {
            v.for_each_entry(&mut |k, val| {
                let k = match k {
                    Key::Str(s) => Text::from(s),
                    Key::Other(kv) => {
                        let (r, _) = kv.describe();
                        ctx.path.push(Loc::Key(r));
                        ctx.push_err(
                            Some(Loc::Key("[key]".into())),
                            &kv,
                            "string_type",
                            "Input should be a valid string",
                            None,
                        );
                        ctx.path.pop();
                        return;
                    }
                };
                if let Some(s) = string(ctx, &k, &val) {
                    if let Some(slot) = out.iter_mut().find(|(ek, _)| *ek == k) {
                        slot.1 = s;
                    } else {
                        out.push((k, s));
                    }
                }
            });
        });
        (ctx.errors.len() == n).then_some(out)
    }
}

/// The fields of a `RunEvent`, in the order pydantic dumps them (and the wire carries them).
pub const EVENT_FIELDS: &[&str] = RunEvent::FIELDS;

/// Validates a whole `RunEvent` mapping; on failure every problem is in `ctx.errors`.
pub fn event_from_map<S: Source>(ctx: &mut Ctx<S::Input>, v: &S) -> Option<RunEvent> {
    RunEvent::from_map(ctx, v)
}

/// Validates any value as a `RunEvent`: a mapping or an existing instance.
pub fn event<S: Source>(ctx: &mut Ctx<S::Input>, v: &S) -> Option<RunEvent> {
    if let Some(e) = v.instance().and_then(RunEvent::from_instance) {
        return Some(e);
    }
    if matches!(v.scalar(), Scalar::Mapping) {
        return event_from_map(ctx, v);
    }
    model_type_err(ctx, None, v, "RunEvent");
    None
}
