//! Small JSON writing helpers that reproduce Python's `json.dumps` output byte for byte
//! (compact separators, `ensure_ascii=False`, Python float `repr`).

use std::fmt::Write as _;

/// The nesting depth pydantic's JSON parser accepts; deeper text is invalid JSON there.
pub const MAX_DEPTH: usize = 200;

/// Parses JSON text as pydantic's parser does as to nesting: up to [`MAX_DEPTH`] levels
/// (serde_json alone stops at 128). Ordinary text is parsed once; only text that reaches
/// serde_json's limit is measured, then parsed without it (never recursing deeper than
/// [`MAX_DEPTH`]).
///
/// # Errors
/// The parse error, or "recursion limit exceeded" for text nested too deep.
pub fn parse_value(text: &[u8]) -> Result<serde_json::Value, serde_json::Error> {
    match serde_json::from_slice(text) {
        Err(e) if e.to_string().starts_with("recursion limit exceeded") => parse_deep(text),
        parsed => parsed,
    }
}

fn parse_deep(text: &[u8]) -> Result<serde_json::Value, serde_json::Error> {
    if nesting_exceeds(text, MAX_DEPTH) {
        return Err(serde::de::Error::custom("recursion limit exceeded"));
    }
    let mut de = serde_json::Deserializer::from_slice(text);
    de.disable_recursion_limit();
    let v = serde::Deserialize::deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

/// Whether arrays and objects in `text` nest deeper than `max` (strings skipped).
fn nesting_exceeds(text: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    for &c in text {
        if in_str {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_str = false;
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Appends `s` as a JSON string literal, escaping exactly as Python's `json.dumps`
/// with `ensure_ascii=False` does.
pub fn write_str(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        buf.extend_from_slice(&bytes[start..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            buf.extend_from_slice(b"\\u00");
            buf.push(HEX[(b >> 4) as usize]);
            buf.push(HEX[(b & 0xf) as usize]);
        } else {
            buf.extend_from_slice(esc);
        }
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
    buf.push(b'"');
}

/// Appends an unsigned integer in decimal.
pub fn write_u64(buf: &mut Vec<u8>, v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    let mut n = v;
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// Shortest round-trip digits and decimal exponent of a finite, non-negative float:
/// `value = 0.d1d2d3... * 10^decpt`.
fn shortest_digits(v: f64) -> (String, i32) {
    // `{:e}` prints the shortest representation that round-trips, e.g. `1.2345e-7`.
    let s = format!("{:e}", v);
    let (mant, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let digits = digits.trim_end_matches('0').to_string();
    let digits = if digits.is_empty() {
        "0".to_string()
    } else {
        digits
    };
    (digits, exp + 1)
}

/// How the exponent of a float in scientific notation is written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FloatStyle {
    /// Python `repr(float)`: `1e-07`, `1e+20` (at least two exponent digits).
    Python,
    /// pydantic-core JSON: `1e-7`, `1e+20`.
    Pydantic,
}

/// Formats a finite float like Python's `repr` (or pydantic's JSON variant of it).
pub fn format_float(v: f64, style: FloatStyle) -> String {
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    let neg = v < 0.0;
    let (digits, decpt) = shortest_digits(v.abs());
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    let nd = digits.len() as i32;
    // Fixed notation from 1e-4 (Python) or 1e-5 (pydantic) up to below 1e16.
    let lowest = match style {
        FloatStyle::Python => -4,
        FloatStyle::Pydantic => -5,
    };
    if decpt > lowest && decpt <= 16 {
        if decpt <= 0 {
            out.push_str("0.");
            for _ in 0..(-decpt) {
                out.push('0');
            }
            out.push_str(&digits);
        } else if decpt >= nd {
            out.push_str(&digits);
            for _ in 0..(decpt - nd) {
                out.push('0');
            }
            out.push_str(".0");
        } else {
            out.push_str(&digits[..decpt as usize]);
            out.push('.');
            out.push_str(&digits[decpt as usize..]);
        }
    } else {
        out.push_str(&digits[..1]);
        if nd > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = decpt - 1;
        let sign = if e < 0 { '-' } else { '+' };
        match style {
            FloatStyle::Python => {
                let _ = write!(out, "e{}{:02}", sign, e.abs());
            }
            FloatStyle::Pydantic => {
                let _ = write!(out, "e{}{}", sign, e.abs());
            }
        }
    }
    out
}

/// Re-indents compact JSON text (no whitespace between tokens, as our writers produce) the
/// way pydantic's `model_dump_json(indent=n)` lays it out: one member per line, `n` spaces
/// per level, `": "` after keys, and `{}` / `[]` for empty containers. Strings are copied
/// unchanged, so numbers and escapes keep the compact text's exact form.
pub fn indent(compact: &str, width: usize) -> String {
    let bytes = compact.as_bytes();
    let mut out = String::with_capacity(compact.len() * 2);
    let mut depth = 0usize;
    let mut i = 0;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', depth * width));
    };
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(bytes.len());
                out.push_str(&compact[start..i]);
                continue;
            }
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                out.push(char::from(open));
                if bytes.get(i + 1) == Some(&close) {
                    out.push(char::from(close));
                    i += 2;
                    continue;
                }
                depth += 1;
                newline(&mut out, depth);
            }
            close @ (b'}' | b']') => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(char::from(close));
            }
            b',' => {
                out.push(',');
                newline(&mut out, depth);
            }
            b':' => out.push_str(": "),
            _ => {
                // A run of a number or literal: copied as is (ASCII up to the next token).
                let start = i;
                while i < bytes.len() && !matches!(bytes[i], b',' | b'}' | b']' | b':' | b'"') {
                    i += 1;
                }
                out.push_str(&compact[start..i]);
                continue;
            }
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_match_python_repr() {
        let cases = [
            (1.0, "1.0"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e-7, "1e-07"),
            (1e20, "1e+20"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (123.456, "123.456"),
            (-2.5, "-2.5"),
            (1.5e300, "1.5e+300"),
            (5e-324, "5e-324"),
        ];
        for (v, want) in cases {
            assert_eq!(format_float(v, FloatStyle::Python), want, "{v}");
        }
        assert_eq!(format_float(1e-7, FloatStyle::Pydantic), "1e-7");
        assert_eq!(format_float(1e-6, FloatStyle::Pydantic), "1e-6");
        assert_eq!(format_float(1e-5, FloatStyle::Pydantic), "0.00001");
        assert_eq!(format_float(9.999e-5, FloatStyle::Pydantic), "0.00009999");
        assert_eq!(format_float(1e-5, FloatStyle::Python), "1e-05");
        assert_eq!(format_float(1e20, FloatStyle::Pydantic), "1e+20");
    }

    #[test]
    fn indent_lays_out_like_pydantic() {
        let compact = r#"{"a":[1,{"b":"x,\\\":{[y"},[],{}],"c":null,"d":-1.5e-7}"#;
        assert_eq!(
            indent(compact, 2),
            "{\n  \"a\": [\n    1,\n    {\n      \"b\": \"x,\\\\\\\":{[y\"\n    },\n    [],\n    {}\n  ],\n  \"c\": null,\n  \"d\": -1.5e-7\n}"
        );
        assert_eq!(indent("{\"a\":1}", 0), "{\n\"a\": 1\n}");
        assert_eq!(indent("{}", 4), "{}");
        assert_eq!(indent(r#"{"é":"ü"}"#, 1), "{\n \"é\": \"ü\"\n}");
    }

    #[test]
    fn strings_escape_like_python() {
        let mut b = Vec::new();
        write_str(&mut b, "a\"b\\c\n\u{1}é\u{7f}");
        assert_eq!(
            String::from_utf8(b).unwrap_or_default(),
            "\"a\\\"b\\\\c\\n\\u0001é\u{7f}\""
        );
    }
}

#[cfg(test)]
mod depth_tests {
    use super::*;

    fn nested(n: usize) -> String {
        format!("{}1{}", "[".repeat(n), "]".repeat(n))
    }

    #[test]
    fn nesting_up_to_the_limit_parses_and_beyond_is_invalid() {
        assert!(parse_value(nested(100).as_bytes()).is_ok());
        assert!(parse_value(nested(150).as_bytes()).is_ok());
        assert!(parse_value(nested(MAX_DEPTH).as_bytes()).is_ok());
        assert!(parse_value(nested(MAX_DEPTH + 1).as_bytes()).is_err());
        assert!(parse_value(nested(100_000).as_bytes()).is_err());
        // Brackets inside strings do not count.
        let s = format!("{{\"a\": \"{}\\\"[\"}}", "[".repeat(1000));
        assert!(parse_value(s.as_bytes()).is_ok(), "{s}");
        assert!(parse_value(b"[1] x").is_err());
    }
}
