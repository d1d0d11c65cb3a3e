//! Decoding of MySQL's values into Arrow builders: the text protocol's bytes, without a copy
//! where the builder takes bytes, and the binary protocol's numbers, dates and times, without
//! formatting them as text on the server and parsing them again here. Zero dates are reported
//! to the caller rather than guessed.

use chrono::NaiveDate;
use mysql_async::Value;

use super::types::NativeType;
use crate::batch::{ColumnBuilder, days_from_date};

/// How one column's raw text is decoded, chosen once per read from its native type.
#[derive(Debug, Clone, Copy)]
pub enum Decoder {
    /// Integers, years: parsed straight from the ASCII digits.
    Int,
    /// `tinyint(1)` and the like: `0` or `1`, anything else is an error.
    Bool,
    /// Floating point (single-precision columns are selected as `col + 0e0`, exact as double).
    Float,
    /// `date`, `datetime`, `timestamp` into a date or timestamp builder.
    Temporal,
    /// `time` into a time-of-day builder.
    Time,
    /// `bit(n)`: big-endian bytes.
    Bit { length: u32 },
    /// Anything else: the builder's own parsing of bytes (strings, decimals, binary, JSON...).
    Generic,
}

/// The result of decoding one value that did not fail.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    Value,
    /// A zero date (`0000-00-00`, `0000-00-00 00:00:00`): the caller applies the policy.
    ZeroDate,
    /// A partial-zero date (`2020-00-15`, `2020-01-00`): the caller applies the policy.
    InvalidDate,
}

impl Decoder {
    pub fn for_column(native: &NativeType, builder: &ColumnBuilder) -> Decoder {
        use ColumnBuilder as B;
        let numeric_builder = matches!(
            builder,
            B::Bool(_)
                | B::Int8(_)
                | B::Int16(_)
                | B::Int32(_)
                | B::Int64(_)
                | B::UInt8(_)
                | B::UInt16(_)
                | B::UInt32(_)
                | B::UInt64(_)
        );
        match native.base.as_str() {
            "bit" => Decoder::Bit {
                length: native.nums().first().copied().unwrap_or(1),
            },
            "date" | "datetime" | "timestamp"
                if matches!(builder, B::Date(_) | B::Timestamp { .. }) =>
            {
                Decoder::Temporal
            }
            "time" if matches!(builder, B::Time(_)) => Decoder::Time,
            _ if matches!(builder, B::Float32(_) | B::Float64(_)) => Decoder::Float,
            _ if matches!(builder, B::Bool(_)) => Decoder::Bool,
            _ if numeric_builder => Decoder::Int,
            _ => Decoder::Generic,
        }
    }

    /// Appends `v` (the text form MySQL sent) to `b`; an error says why the value does not fit.
    pub fn decode(self, b: &mut ColumnBuilder, v: &[u8]) -> Result<Decoded, String> {
        match self {
            Decoder::Int => match parse_int(v) {
                Some(i) => b.append_i128(i)?,
                None => b.append_bytes(v)?,
            },
            Decoder::Bool => match (v, b) {
                (b"0", ColumnBuilder::Bool(bb)) => bb.append_value(false),
                (b"1", ColumnBuilder::Bool(bb)) => bb.append_value(true),
                (_, b) => b.append_bytes(v)?,
            },
            Decoder::Float => {
                let f: f64 = ascii(v)?
                    .parse()
                    .map_err(|_| format!("`{}` is not a number", ascii(v).unwrap_or("")))?;
                b.append_f64(f)?;
            }
            Decoder::Temporal => return decode_temporal(b, v),
            Decoder::Time => {
                let us = parse_time_of_day(v)?;
                match b {
                    ColumnBuilder::Time(t) => t.append_value(us),
                    _ => b.append_bytes(v)?,
                }
            }
            Decoder::Bit { length } => decode_bit(b, v, length)?,
            Decoder::Generic => b.append_bytes(v)?,
        }
        Ok(Decoded::Value)
    }
}

impl Decoder {
    /// Whether this column reads exactly alike through the binary protocol (prepared
    /// statements). It sends integers, floats, dates and times in binary, and every other type
    /// as the very text the text protocol sends; so a numeric or temporal column reads alike
    /// when its decoder takes that binary value as it is, and any other column always does.
    /// `native` is the column's type as the server reports it (`int(5) unsigned zerofill`).
    pub fn reads_binary(self, native: &str) -> bool {
        let t = NativeType::parse(native);
        match t.base.as_str() {
            "tinyint" | "int1" | "smallint" | "int2" | "mediumint" | "int3" | "middleint"
            | "int" | "integer" | "int4" | "bigint" | "int8" | "serial" | "year" | "bool"
            | "boolean" => {
                // An integer's text is its digits, unless ZEROFILL pads them for a decoder
                // that keeps the text.
                matches!(self, Decoder::Int | Decoder::Bool)
                    || !native.to_ascii_lowercase().contains("zerofill")
            }
            "float" | "float4" | "double" | "double precision" | "real" | "float8" => {
                matches!(self, Decoder::Float)
            }
            "date" | "datetime" | "timestamp" => matches!(self, Decoder::Temporal),
            "time" => matches!(self, Decoder::Time),
            _ => true,
        }
    }

    /// Appends `v`, a value as either protocol sent it, to `b`.
    pub fn decode_value(self, b: &mut ColumnBuilder, v: &Value) -> Result<Decoded, String> {
        match (self, v) {
            (_, Value::Bytes(bytes)) => return self.decode(b, bytes),
            (Decoder::Int, Value::Int(i)) => b.append_i128(i128::from(*i))?,
            (Decoder::Int, Value::UInt(u)) => b.append_i128(i128::from(*u))?,
            (Decoder::Bool, Value::Int(i @ (0 | 1))) => match b {
                ColumnBuilder::Bool(bb) => bb.append_value(*i == 1),
                other => other.append_i128(i128::from(*i))?,
            },
            (Decoder::Float, Value::Double(f)) => b.append_f64(*f)?,
            (Decoder::Float, Value::Float(f)) => b.append_f64(f64::from(*f))?,
            (Decoder::Temporal, &Value::Date(y, m, d, h, mi, s, us)) => {
                return temporal(
                    b,
                    [y.into(), m.into(), d.into(), h.into(), mi.into(), s.into()],
                    us.into(),
                    || text_form(v),
                );
            }
            (Decoder::Time, &Value::Time(neg, days, h, m, s, us)) => {
                let hours = days.saturating_mul(24).saturating_add(h.into());
                let us = time_of_day(neg, hours, m.into(), s.into(), us.into(), || text_form(v))?;
                match b {
                    ColumnBuilder::Time(t) => t.append_value(us),
                    other => other.append_bytes(text_form(v).as_bytes())?,
                }
            }
            // Not a pair `reads_binary` lets through; decoded from its text form.
            (_, other) => return self.decode(b, text_form(other).as_bytes()),
        }
        Ok(Decoded::Value)
    }
}

/// A value in the text form the text protocol would have sent (exact for integers, the
/// shortest exact form for floats), for error messages and the rare decoder without a binary
/// path.
pub fn text_form(v: &Value) -> String {
    match *v {
        Value::NULL => "NULL".into(),
        Value::Bytes(ref b) => String::from_utf8_lossy(b).into_owned(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Double(f) => f.to_string(),
        Value::Date(y, m, d, 0, 0, 0, 0) => format!("{y:04}-{m:02}-{d:02}"),
        Value::Date(y, m, d, h, mi, s, 0) => {
            format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}")
        }
        Value::Date(y, m, d, h, mi, s, us) => {
            format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}")
        }
        Value::Time(neg, days, h, m, s, us) => {
            let sign = if neg { "-" } else { "" };
            let hours = u64::from(days) * 24 + u64::from(h);
            match us {
                0 => format!("{sign}{hours:02}:{m:02}:{s:02}"),
                _ => format!("{sign}{hours:02}:{m:02}:{s:02}.{us:06}"),
            }
        }
    }
}

fn ascii(v: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(v).map_err(|_| "the server sent a value that is not text".to_string())
}

/// Parses `-?[0-9]+` exactly; `None` for anything else (left to the builder's parser).
fn parse_int(v: &[u8]) -> Option<i128> {
    let (neg, digits) = match v.first()? {
        b'-' => (true, &v[1..]),
        _ => (false, v),
    };
    if digits.is_empty() || digits.len() > 38 {
        return None;
    }
    let mut n: i128 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + (d - b'0') as i128;
    }
    Some(if neg { -n } else { n })
}

/// Reads `len` ASCII digits at `at`.
fn digits(v: &[u8], at: usize, len: usize) -> Option<u32> {
    let s = v.get(at..at + len)?;
    s.iter().try_fold(0u32, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + (d - b'0') as u32)
    })
}

/// `.ffffff` (1 to 6 digits) at `at` as microseconds; `Some(0)` when there is none.
fn fraction(v: &[u8], at: usize) -> Option<i64> {
    match v.get(at) {
        None => Some(0),
        Some(b'.') => {
            let f = &v[at + 1..];
            if f.is_empty() || f.len() > 6 || !f.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let n = digits(f, 0, f.len())? as i64;
            Some(n * 10i64.pow(6 - f.len() as u32))
        }
        Some(_) => None,
    }
}

fn decode_temporal(b: &mut ColumnBuilder, v: &[u8]) -> Result<Decoded, String> {
    let text = || String::from_utf8_lossy(v).into_owned();
    let bad = || format!("`{}` is not a valid date", text());
    if v.len() < 10 || v[4] != b'-' || v[7] != b'-' {
        return Err(bad());
    }
    let (y, m, d) = (
        digits(v, 0, 4).ok_or_else(bad)?,
        digits(v, 5, 2).ok_or_else(bad)?,
        digits(v, 8, 2).ok_or_else(bad)?,
    );
    let (mut h, mut mi, mut s, mut us) = (0, 0, 0, 0);
    if v.len() > 10 {
        if v.len() < 19 || v[10] != b' ' || v[13] != b':' || v[16] != b':' {
            return Err(bad());
        }
        h = digits(v, 11, 2).ok_or_else(bad)?;
        mi = digits(v, 14, 2).ok_or_else(bad)?;
        s = digits(v, 17, 2).ok_or_else(bad)?;
        us = fraction(v, 19).ok_or_else(bad)?;
    }
    temporal(b, [y, m, d, h, mi, s], us, text)
}

/// Appends a date or timestamp given as its parts (`[year, month, day, hour, minute, second]`
/// and microseconds); `text` is its text form, for messages.
fn temporal(
    b: &mut ColumnBuilder,
    [y, m, d, h, mi, s]: [u32; 6],
    us: i64,
    text: impl Fn() -> String,
) -> Result<Decoded, String> {
    let bad = || format!("`{}` is not a valid date", text());
    if m == 0 || d == 0 {
        let all_zero = y == 0 && m == 0 && d == 0 && h == 0 && mi == 0 && s == 0 && us == 0;
        return Ok(if all_zero {
            Decoded::ZeroDate
        } else {
            Decoded::InvalidDate
        });
    }
    let date = NaiveDate::from_ymd_opt(y as i32, m, d).ok_or_else(bad)?;
    let days = days_from_date(date);
    if h > 23 || mi > 59 || s > 59 {
        return Err(bad());
    }
    let micros_of_day = (h as i64 * 3600 + mi as i64 * 60 + s as i64) * 1_000_000 + us;
    match b {
        ColumnBuilder::Date(db) if micros_of_day == 0 => db.append_value(days),
        ColumnBuilder::Date(_) => {
            return Err(format!(
                "`{}` has a time of day; a date cannot hold it",
                text()
            ));
        }
        ColumnBuilder::Timestamp { builder, .. } => {
            builder.append_value(days as i64 * 86_400_000_000 + micros_of_day)
        }
        other => other.append_bytes(text().as_bytes())?,
    }
    Ok(Decoded::Value)
}

/// `HH:MM:SS[.ffffff]` within one day; MySQL's `time` also holds durations (-838:59:59 to
/// 838:59:59), which a time of day cannot: those fail with a message saying so.
fn parse_time_of_day(v: &[u8]) -> Result<i64, String> {
    let text = || String::from_utf8_lossy(v).into_owned();
    let bad = || format!("`{}` is not a valid time", text());
    let colon = v.iter().position(|&c| c == b':').ok_or_else(bad)?;
    let neg = v.first() == Some(&b'-');
    let hours = digits(v, neg as usize, colon - neg as usize).ok_or_else(bad)?;
    if v.len() < colon + 6 || v[colon + 3] != b':' {
        return Err(bad());
    }
    let (m, s) = (
        digits(v, colon + 1, 2).ok_or_else(bad)?,
        digits(v, colon + 4, 2).ok_or_else(bad)?,
    );
    let frac = fraction(v, colon + 6).ok_or_else(bad)?;
    time_of_day(neg, hours, m, s, frac, text)
}

/// Microseconds since midnight of a `time` given as its parts; `text` is its text form.
fn time_of_day(
    neg: bool,
    hours: u32,
    m: u32,
    s: u32,
    frac: i64,
    text: impl Fn() -> String,
) -> Result<i64, String> {
    if m > 59 || s > 59 {
        return Err(format!("`{}` is not a valid time", text()));
    }
    if neg || hours > 23 {
        return Err(format!(
            "`{}` is a duration outside 00:00:00–23:59:59, which a time of day cannot hold; \
             cast the column to a text type to keep it",
            text()
        ));
    }
    Ok((hours as i64 * 3600 + m as i64 * 60 + s as i64) * 1_000_000 + frac)
}

fn decode_bit(b: &mut ColumnBuilder, v: &[u8], length: u32) -> Result<(), String> {
    if v.len() > 16 {
        return Err(format!("bit value of {} bytes is too long", v.len()));
    }
    let n = v.iter().fold(0u128, |n, &byte| (n << 8) | byte as u128);
    match b {
        ColumnBuilder::Bool(bb) => match n {
            0 => bb.append_value(false),
            1 => bb.append_value(true),
            _ => return Err(format!("bit value {n:b} is not a boolean")),
        },
        ColumnBuilder::Utf8(sb) => {
            let width = length.clamp(1, 128) as usize;
            sb.append_value(format!("{n:0width$b}"));
        }
        other => other.append_i128(n as i128)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Time64MicrosecondType, TimestampMicrosecondType};
    use arrow_schema::{DataType, TimeUnit};

    #[test]
    fn temporal_values() {
        let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
        let mut b = ColumnBuilder::new(&ts, 4).unwrap();
        let d = Decoder::Temporal;
        assert_eq!(
            d.decode(&mut b, b"1969-12-31 23:59:59.5").unwrap(),
            Decoded::Value
        );
        assert_eq!(
            d.decode(&mut b, b"0000-00-00 00:00:00").unwrap(),
            Decoded::ZeroDate
        );
        assert_eq!(
            d.decode(&mut b, b"2020-00-15").unwrap(),
            Decoded::InvalidDate
        );
        assert_eq!(
            d.decode(&mut b, b"0000-00-00 00:00:01").unwrap(),
            Decoded::InvalidDate
        );
        assert!(d.decode(&mut b, b"2020-02-30").is_err());
        let a = b.finish();
        assert_eq!(
            a.as_primitive::<TimestampMicrosecondType>().value(0),
            -500_000
        );

        let mut t = ColumnBuilder::new(&DataType::Time64(TimeUnit::Microsecond), 4).unwrap();
        Decoder::Time.decode(&mut t, b"23:59:59.000001").unwrap();
        assert!(Decoder::Time.decode(&mut t, b"-01:00:00").is_err());
        assert!(Decoder::Time.decode(&mut t, b"838:59:59").is_err());
        let a = t.finish();
        assert_eq!(a.len(), 1);
        assert_eq!(
            a.as_primitive::<Time64MicrosecondType>().value(0),
            86_399_000_001
        );
    }

    #[test]
    fn binary_protocol_values_decode_as_their_text_does() {
        let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
        let mut b = ColumnBuilder::new(&ts, 4).unwrap();
        let d = Decoder::Temporal;
        let v = Value::Date(1969, 12, 31, 23, 59, 59, 500_000);
        assert_eq!(d.decode_value(&mut b, &v).unwrap(), Decoded::Value);
        let zero = Value::Date(0, 0, 0, 0, 0, 0, 0);
        assert_eq!(d.decode_value(&mut b, &zero).unwrap(), Decoded::ZeroDate);
        let partial = Value::Date(2020, 0, 15, 0, 0, 0, 0);
        assert_eq!(
            d.decode_value(&mut b, &partial).unwrap(),
            Decoded::InvalidDate
        );
        let zero_with_time = Value::Date(0, 0, 0, 0, 0, 1, 0);
        assert_eq!(
            d.decode_value(&mut b, &zero_with_time).unwrap(),
            Decoded::InvalidDate
        );
        let feb30 = Value::Date(2020, 2, 30, 0, 0, 0, 0);
        assert!(d.decode_value(&mut b, &feb30).is_err());
        assert_eq!(
            b.finish()
                .as_primitive::<TimestampMicrosecondType>()
                .value(0),
            -500_000
        );

        let mut dates = ColumnBuilder::new(&DataType::Date32, 2).unwrap();
        let with_time = Value::Date(2020, 1, 2, 3, 0, 0, 0);
        let e = d.decode_value(&mut dates, &with_time).unwrap_err();
        assert!(e.contains("`2020-01-02 03:00:00` has a time of day"), "{e}");

        let mut t = ColumnBuilder::new(&DataType::Time64(TimeUnit::Microsecond), 4).unwrap();
        let time = Value::Time(false, 0, 23, 59, 59, 1);
        Decoder::Time.decode_value(&mut t, &time).unwrap();
        let e = Decoder::Time
            .decode_value(&mut t, &Value::Time(true, 0, 1, 0, 0, 0))
            .unwrap_err();
        assert!(e.contains("`-01:00:00` is a duration"), "{e}");
        let e = Decoder::Time
            .decode_value(&mut t, &Value::Time(false, 34, 22, 59, 59, 0))
            .unwrap_err();
        assert!(e.contains("`838:59:59` is a duration"), "{e}");
        assert_eq!(
            t.finish().as_primitive::<Time64MicrosecondType>().value(0),
            86_399_000_001
        );

        let mut flags = ColumnBuilder::new(&DataType::Boolean, 2).unwrap();
        Decoder::Bool
            .decode_value(&mut flags, &Value::Int(1))
            .unwrap();
        assert!(
            Decoder::Bool
                .decode_value(&mut flags, &Value::Int(2))
                .is_err()
        );
        let mut u = ColumnBuilder::new(&DataType::UInt64, 2).unwrap();
        Decoder::Int
            .decode_value(&mut u, &Value::UInt(u64::MAX))
            .unwrap();
        assert!(Decoder::Int.decode_value(&mut u, &Value::Int(-1)).is_err());
        let mut f = ColumnBuilder::new(&DataType::Float64, 2).unwrap();
        Decoder::Float
            .decode_value(&mut f, &Value::Double(0.1))
            .unwrap();
        assert_eq!(f.finish().as_primitive::<Float64Type>().value(0), 0.1);
    }

    #[test]
    fn only_columns_read_alike_take_the_binary_protocol() {
        assert!(Decoder::Int.reads_binary("bigint(20) unsigned"));
        assert!(Decoder::Bool.reads_binary("tinyint(1)"));
        assert!(Decoder::Generic.reads_binary("int(11)"));
        assert!(!Decoder::Generic.reads_binary("int(5) unsigned zerofill"));
        assert!(Decoder::Int.reads_binary("int(5) unsigned zerofill"));
        assert!(Decoder::Float.reads_binary("double"));
        assert!(!Decoder::Generic.reads_binary("double"));
        assert!(Decoder::Temporal.reads_binary("datetime(6)"));
        assert!(!Decoder::Generic.reads_binary("datetime(6)"));
        assert!(!Decoder::Generic.reads_binary("time"));
        assert!(Decoder::Generic.reads_binary("decimal(65,30)"));
        assert!(Decoder::Int.reads_binary("decimal(10,0)"));
        assert!(Decoder::Generic.reads_binary("varchar(16)"));
        assert!(Decoder::Bit { length: 3 }.reads_binary("bit(3)"));
    }

    #[test]
    fn bits_and_ints() {
        let mut s = ColumnBuilder::new(&DataType::Utf8, 2).unwrap();
        Decoder::Bit { length: 10 }
            .decode(&mut s, &[0x02, 0x05])
            .unwrap();
        assert_eq!(s.finish().as_string::<i32>().value(0), "1000000101");
        let mut u = ColumnBuilder::new(&DataType::UInt64, 2).unwrap();
        Decoder::Int
            .decode(&mut u, b"18446744073709551615")
            .unwrap();
        assert!(Decoder::Int.decode(&mut u, b"-1").is_err());
    }
}
