//! Text values of files: inferring a column's type from a sample (widening on conflict), and
//! parsing a field into the column's type. A field that does not parse is the caller's reject.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use decant_core::LogicalType;

use crate::batch::{ColumnBuilder, days_from_date, parse_decimal};

/// How dates, timestamps and numbers are written in the files.
#[derive(Debug, Clone, Default)]
pub struct ValueFormats {
    pub date_formats: Vec<String>,
    pub timestamp_formats: Vec<String>,
    pub decimal_comma: bool,
}

/// What a sample says about a column, from narrowest to widest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only NULLs so far.
    Unknown,
    Bool,
    Int32,
    Int64,
    Numeric,
    Date,
    Timestamp,
    TimestampTz,
    Text,
    /// Objects or arrays (JSON sources only); holds any other kind as JSON text too.
    Json,
}

impl Kind {
    /// The kind of one non-null value.
    pub fn of(s: &str, f: &ValueFormats) -> Kind {
        let t = s.trim();
        if t.is_empty() {
            return Kind::Text;
        }
        if ["true", "false", "t", "f"]
            .iter()
            .any(|b| t.eq_ignore_ascii_case(b))
        {
            return Kind::Bool;
        }
        let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            // `007` is a code, not a number: its zeros would be lost.
            if digits.len() > 1 && digits.starts_with('0') {
                return Kind::Text;
            }
            return match t.parse::<i64>() {
                Ok(v) if i32::try_from(v).is_ok() => Kind::Int32,
                Ok(_) => Kind::Int64,
                Err(_) => Kind::Numeric,
            };
        }
        if is_decimal(&normalize_number(t, f)) {
            return Kind::Numeric;
        }
        if parse_date_with(t, f).is_some() {
            return Kind::Date;
        }
        match parse_timestamp_with(t, f) {
            Some((_, true)) => Kind::TimestampTz,
            Some((_, false)) => Kind::Timestamp,
            None => Kind::Text,
        }
    }

    /// The narrowest kind that holds values of both.
    pub fn widen(self, other: Kind) -> Kind {
        use Kind::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Unknown, x) | (x, Unknown) => x,
            (Json, _) | (_, Json) => Json,
            (Int32, Int64) | (Int64, Int32) => Int64,
            (Int32 | Int64 | Numeric, Int32 | Int64 | Numeric) => Numeric,
            (Date, Timestamp) | (Timestamp, Date) => Timestamp,
            _ => Text,
        }
    }

    pub fn logical(self) -> LogicalType {
        match self {
            Kind::Bool => LogicalType::Bool,
            Kind::Int32 => LogicalType::Int32,
            Kind::Int64 => LogicalType::Int64,
            Kind::Numeric => LogicalType::BigDecimal,
            Kind::Date => LogicalType::Date,
            Kind::Timestamp => LogicalType::Timestamp { precision: 6 },
            Kind::TimestampTz => LogicalType::TimestampTz { precision: 6 },
            Kind::Json => LogicalType::Json,
            Kind::Unknown | Kind::Text => LogicalType::Text,
        }
    }
}

/// Whether a column of this logical type can be read from text here.
pub fn supported(t: &LogicalType) -> bool {
    use LogicalType as L;
    matches!(
        t,
        L::Bool
            | L::Int8
            | L::Int16
            | L::Int32
            | L::Int64
            | L::UInt8
            | L::UInt16
            | L::UInt32
            | L::UInt64
            | L::Float32
            | L::Float64
            | L::Decimal { .. }
            | L::BigDecimal
            | L::Char { .. }
            | L::Varchar { .. }
            | L::Text
            | L::Json
            | L::Date
            | L::Time { .. }
            | L::Timestamp { .. }
            | L::TimestampTz { .. }
            | L::Uuid
            | L::Binary { .. }
    )
}

/// Decimal comma to point; other text as it is.
fn normalize_number<'a>(t: &'a str, f: &ValueFormats) -> Cow<'a, str> {
    if f.decimal_comma && t.contains(',') {
        Cow::Owned(t.replace(',', "."))
    } else {
        Cow::Borrowed(t)
    }
}

/// `[+-]digits[.digits][e[+-]digits]`, with digits on at least one side of the point.
pub fn is_decimal(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    !(int.is_empty() && frac.is_empty()) && digits(int) && digits(frac) && exp_ok
}

fn parse_date_with(t: &str, f: &ValueFormats) -> Option<i32> {
    if f.date_formats.is_empty() {
        return (t.len() == 10)
            .then(|| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok())
            .flatten()
            .map(days_from_date);
    }
    f.date_formats
        .iter()
        .find_map(|fmt| NaiveDate::parse_from_str(t, fmt).ok())
        .map(days_from_date)
}

/// `YYYY-MM-DD[ T]HH:MM:SS[.f{1,9}]` without chrono's format machinery (the common case).
fn fast_iso(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b' ' | b'T') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as u32)
        })
    };
    let date = NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
    let mut micros = 0u32;
    if b.len() > 19 {
        if b[19] != b'.' || b.len() == 20 || b.len() > 29 {
            return None;
        }
        let frac = &b[20..];
        let mut scale = 1_000_000u32;
        for &c in frac {
            if !c.is_ascii_digit() {
                return None;
            }
            scale /= 10;
            micros += (c - b'0') as u32 * scale;
        }
        if frac.len() > 6 && frac[6..].iter().any(|&c| c != b'0') {
            return None; // finer than a microsecond: let chrono refuse or keep it exact
        }
    }
    let time = NaiveTime::from_hms_micro_opt(num(11..13)?, num(14..16)?, num(17..19)?, micros)?;
    Some(NaiveDateTime::new(date, time).and_utc().timestamp_micros())
}

/// Microseconds since the epoch, and whether the text carried an offset (then it is UTC).
fn parse_timestamp_with(t: &str, f: &ValueFormats) -> Option<(i64, bool)> {
    if f.timestamp_formats.is_empty() {
        if let Some(v) = fast_iso(t) {
            return Some((v, false));
        }
        for fmt in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
            if let Ok(dt) = DateTime::parse_from_str(t, fmt) {
                return Some((dt.timestamp_micros(), true));
            }
        }
        if let Some(rest) = t.strip_suffix(['Z', 'z'])
            && let Some(v) = fast_iso(rest)
        {
            return Some((v, true));
        }
        return None;
    }
    for fmt in &f.timestamp_formats {
        if let Ok(dt) = DateTime::parse_from_str(t, fmt) {
            return Some((dt.timestamp_micros(), true));
        }
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, fmt) {
            return Some((dt.and_utc().timestamp_micros(), false));
        }
    }
    None
}

/// One parsed field, held until every field of the record parsed (a record becomes a row
/// whole, or a reject whole).
#[derive(Debug)]
pub enum Cell<'a> {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Decimal(i128),
    Text(Cow<'a, str>),
    Days(i32),
    Micros(i64),
    Bytes([u8; 16]),
    /// A byte string (`\x` hex in the file).
    Blob(Vec<u8>),
}

/// Parses `text` (not a NULL marker) as a value of `t`.
pub fn parse_cell<'a>(
    text: Cow<'a, str>,
    t: &LogicalType,
    f: &ValueFormats,
) -> Result<Cell<'a>, String> {
    use LogicalType as L;
    let bad = |what: &str| format!("`{}` is not {what}", preview(&text));
    let trimmed = text.trim();
    Ok(match t {
        L::Char { .. } | L::Varchar { .. } | L::Text => Cell::Text(text),
        L::Json => {
            serde_json::from_str::<serde::de::IgnoredAny>(&text)
                .map_err(|e| format!("not valid JSON: {e}"))?;
            Cell::Text(text)
        }
        L::Bool => match trimmed.to_ascii_lowercase().as_str() {
            "1" | "t" | "true" | "y" | "yes" | "on" => Cell::Bool(true),
            "0" | "f" | "false" | "n" | "no" | "off" => Cell::Bool(false),
            _ => return Err(bad("a boolean")),
        },
        L::Int8 | L::Int16 | L::Int32 | L::Int64 | L::UInt8 | L::UInt16 | L::UInt32 | L::UInt64 => {
            let v: i128 = trimmed
                .strip_prefix('+')
                .unwrap_or(trimmed)
                .parse()
                .map_err(|_| bad("an integer"))?;
            let (lo, hi): (i128, i128) = match t {
                L::Int8 => (i8::MIN as i128, i8::MAX as i128),
                L::Int16 => (i16::MIN as i128, i16::MAX as i128),
                L::Int32 => (i32::MIN as i128, i32::MAX as i128),
                L::Int64 => (i64::MIN as i128, i64::MAX as i128),
                L::UInt8 => (0, u8::MAX as i128),
                L::UInt16 => (0, u16::MAX as i128),
                L::UInt32 => (0, u32::MAX as i128),
                _ => (0, u64::MAX as i128),
            };
            if !(lo..=hi).contains(&v) {
                return Err(format!("{v} is out of range for {t}"));
            }
            Cell::Int(v)
        }
        L::Float32 | L::Float64 => {
            let n = normalize_number(trimmed, f);
            Cell::Float(n.parse().map_err(|_| bad("a number"))?)
        }
        L::Decimal { precision, scale } => {
            let n = normalize_number(trimmed, f);
            Cell::Decimal(parse_decimal(&n, *precision, *scale)?)
        }
        L::BigDecimal => {
            let n = normalize_number(trimmed, f);
            if !is_decimal(&n) {
                return Err(bad("a decimal number"));
            }
            Cell::Text(Cow::Owned(n.into_owned()))
        }
        L::Date => Cell::Days(parse_date_with(trimmed, f).ok_or_else(|| bad("a date"))?),
        L::Time { .. } => {
            let tm = NaiveTime::parse_from_str(trimmed, "%H:%M:%S%.f")
                .map_err(|_| bad("a time of day"))?;
            Cell::Micros(
                tm.num_seconds_from_midnight() as i64 * 1_000_000 + (tm.nanosecond() / 1000) as i64,
            )
        }
        L::Timestamp { .. } | L::TimestampTz { .. } => {
            let (v, _) = parse_timestamp_with(trimmed, f)
                .or_else(|| parse_date_with(trimmed, f).map(|d| (d as i64 * 86_400_000_000, false)))
                .ok_or_else(|| bad("a timestamp"))?;
            Cell::Micros(v)
        }
        L::Uuid => Cell::Bytes(
            *uuid::Uuid::parse_str(trimmed)
                .map_err(|_| bad("a uuid"))?
                .as_bytes(),
        ),
        L::Binary { .. } => {
            Cell::Blob(parse_hex(trimmed).ok_or_else(|| bad("\\x followed by hex digits"))?)
        }
        other => return Err(format!("{other} columns cannot be read from text files")),
    })
}

/// The quarantine's rule and reason for a text value that holds a NUL byte, when the target
/// cannot hold one (`Policies::reject_nul`); `None` when the value loads. A JSON column is
/// refused for an escaped `\u0000` too: PostgreSQL's `jsonb` cannot hold that either.
pub fn nul_byte_reject(column: &str, cell: &Cell<'_>, t: &LogicalType) -> Option<(String, String)> {
    let Cell::Text(text) = cell else {
        return None;
    };
    let at = match text.find('\0') {
        Some(at) => at,
        None if *t == LogicalType::Json => json_nul_escape(text)?,
        None => return None,
    };
    Some((
        format!("nul_byte({column})"),
        format!(
            "{column}: a NUL byte (0x00) at byte {at} of the value, which PostgreSQL text and jsonb cannot hold; set policies.nul_byte = \"coerce\" (remove it) or \"null\" to load the record"
        ),
    ))
}

/// The byte offset of a `\u0000` escape in JSON text (outside another escape).
fn json_nul_escape(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b'\\' {
            if b[i + 1] == b'u' && b.get(i + 2..i + 6) == Some(&b"0000"[..]) {
                return Some(i);
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    None
}

/// Appends a parsed cell; the cell was parsed for this column's type, so this cannot fail
/// but for an internal mismatch.
pub fn append(builder: &mut ColumnBuilder, cell: Cell<'_>) -> Result<(), String> {
    match (builder, cell) {
        (b, Cell::Null) => b.append_null(),
        (ColumnBuilder::Bool(b), Cell::Bool(v)) => b.append_value(v),
        (b, Cell::Int(v)) => b.append_i128(v)?,
        (b, Cell::Float(v)) => b.append_f64(v)?,
        (ColumnBuilder::Decimal { builder, .. }, Cell::Decimal(v)) => builder.append_value(v),
        (ColumnBuilder::Utf8(b), Cell::Text(v)) => b.append_value(v),
        (ColumnBuilder::Date(b), Cell::Days(v)) => b.append_value(v),
        (ColumnBuilder::Time(b), Cell::Micros(v)) => b.append_value(v),
        (ColumnBuilder::Timestamp { builder, .. }, Cell::Micros(v)) => builder.append_value(v),
        (ColumnBuilder::Binary(b), Cell::Blob(v)) => b.append_value(v),
        (ColumnBuilder::FixedBinary(b), Cell::Bytes(v)) => {
            b.append_value(v).map_err(|e| e.to_string())?
        }
        (_, cell) => return Err(format!("internal: {cell:?} does not fit its column")),
    }
    Ok(())
}

/// `\xDEADbeef` (PostgreSQL's bytea text form, as decant's file targets write it) as bytes.
fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let hex = text.strip_prefix("\\x")?.as_bytes();
    if hex.len() % 2 != 0 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    hex.chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

fn preview(s: &str) -> String {
    let p: String = s.chars().take(64).collect();
    if p.len() < s.len() {
        format!("{p}...")
    } else {
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_widen_int_bigint_numeric_text() {
        let f = ValueFormats::default();
        let kind = |vals: &[&str]| {
            vals.iter()
                .fold(Kind::Unknown, |k, v| k.widen(Kind::of(v, &f)))
        };
        assert_eq!(kind(&["1", "-2"]), Kind::Int32);
        assert_eq!(kind(&["1", "3000000000"]), Kind::Int64);
        assert_eq!(kind(&["1", "3000000000", "2.5"]), Kind::Numeric);
        assert_eq!(kind(&["1", "99999999999999999999999"]), Kind::Numeric);
        assert_eq!(kind(&["1", "x"]), Kind::Text);
        assert_eq!(kind(&["007"]), Kind::Text);
        assert_eq!(kind(&["t", "FALSE"]), Kind::Bool);
        assert_eq!(
            kind(&["2024-01-31", "2024-02-01 10:00:00"]),
            Kind::Timestamp
        );
        assert_eq!(kind(&["2024-02-01T10:00:00.5Z"]), Kind::TimestampTz);
        assert_eq!(kind(&[]), Kind::Unknown);
        let comma = ValueFormats {
            decimal_comma: true,
            ..Default::default()
        };
        assert_eq!(Kind::of("12,50", &comma), Kind::Numeric);
        assert_eq!(Kind::of("12,50", &f), Kind::Text);
    }

    #[test]
    fn nul_bytes_are_found_in_text_and_escaped_in_json() {
        let text = |s: &'static str| Cell::Text(Cow::Borrowed(s));
        let (rule, reason) = nul_byte_reject("note", &text("ab\0c"), &LogicalType::Text).unwrap();
        assert_eq!(rule, "nul_byte(note)");
        assert!(reason.contains("at byte 2"), "{reason}");
        assert!(nul_byte_reject("note", &text("abc"), &LogicalType::Text).is_none());
        assert!(nul_byte_reject("n", &Cell::Int(0), &LogicalType::Int32).is_none());
        let json = LogicalType::Json;
        assert!(nul_byte_reject("doc", &text(r#"{"a":"x\u0000"}"#), &json).is_some());
        // An escaped backslash before `u0000` is text, not a NUL.
        assert!(nul_byte_reject("doc", &text(r#"{"a":"x\\u0000"}"#), &json).is_none());
        // In a text column the six characters are just text.
        assert!(nul_byte_reject("t", &text(r#"x\u0000"#), &LogicalType::Text).is_none());
    }

    #[test]
    fn cells_parse_or_say_why() {
        let f = ValueFormats::default();
        let p = |s: &'static str, t: &LogicalType| parse_cell(Cow::Borrowed(s), t, &f);
        assert!(matches!(p("42", &LogicalType::Int32), Ok(Cell::Int(42))));
        assert!(
            p("3000000000", &LogicalType::Int32)
                .unwrap_err()
                .contains("out of range")
        );
        assert!(p("4x", &LogicalType::Int64).is_err());
        assert!(matches!(
            p(
                "2020-01-01 00:00:01.5",
                &LogicalType::Timestamp { precision: 6 }
            ),
            Ok(Cell::Micros(1_577_836_801_500_000))
        ));
        assert!(p("2020-02-30", &LogicalType::Date).is_err());
        assert!(p("1e3", &LogicalType::BigDecimal).is_ok());
        assert!(p("1.2.3", &LogicalType::BigDecimal).is_err());
        let bytes = LogicalType::Binary {
            length: None,
            fixed: false,
        };
        assert!(matches!(p("\\x00fF", &bytes), Ok(Cell::Blob(v)) if v == [0, 255]));
        assert!(p("\\x0", &bytes).is_err());
        assert!(p("00ff", &bytes).is_err());
        let dmy = ValueFormats {
            date_formats: vec!["%d/%m/%Y".into()],
            decimal_comma: true,
            ..Default::default()
        };
        assert!(matches!(
            parse_cell(Cow::Borrowed("02/01/1970"), &LogicalType::Date, &dmy),
            Ok(Cell::Days(1))
        ));
        assert!(matches!(
            parse_cell(
                Cow::Borrowed("-1,25"),
                &LogicalType::Decimal {
                    precision: 5,
                    scale: 2
                },
                &dmy
            ),
            Ok(Cell::Decimal(-125))
        ));
    }
}
