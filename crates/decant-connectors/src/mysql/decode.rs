//! Decoding of MySQL's text-protocol values into Arrow builders, without a copy where the
//! builder takes bytes, and with zero dates reported to the caller rather than guessed.

use chrono::NaiveDate;

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
    let bad = || format!("`{}` is not a valid date", String::from_utf8_lossy(v));
    if v.len() < 10 || v[4] != b'-' || v[7] != b'-' {
        return Err(bad());
    }
    let (y, m, d) = (
        digits(v, 0, 4).ok_or_else(bad)?,
        digits(v, 5, 2).ok_or_else(bad)?,
        digits(v, 8, 2).ok_or_else(bad)?,
    );
    if m == 0 || d == 0 {
        let all_zero =
            y == 0 && m == 0 && d == 0 && v[10..].iter().all(|c| !c.is_ascii_digit() || *c == b'0');
        return Ok(if all_zero {
            Decoded::ZeroDate
        } else {
            Decoded::InvalidDate
        });
    }
    let date = NaiveDate::from_ymd_opt(y as i32, m, d).ok_or_else(bad)?;
    let days = days_from_date(date);
    let micros_of_day = if v.len() > 10 {
        if v.len() < 19 || v[10] != b' ' || v[13] != b':' || v[16] != b':' {
            return Err(bad());
        }
        let (h, mi, s) = (
            digits(v, 11, 2).ok_or_else(bad)?,
            digits(v, 14, 2).ok_or_else(bad)?,
            digits(v, 17, 2).ok_or_else(bad)?,
        );
        if h > 23 || mi > 59 || s > 59 {
            return Err(bad());
        }
        (h as i64 * 3600 + mi as i64 * 60 + s as i64) * 1_000_000
            + fraction(v, 19).ok_or_else(bad)?
    } else {
        0
    };
    match b {
        ColumnBuilder::Date(db) if micros_of_day == 0 => db.append_value(days),
        ColumnBuilder::Date(_) => {
            return Err(format!(
                "`{}` has a time of day; a date cannot hold it",
                String::from_utf8_lossy(v)
            ));
        }
        ColumnBuilder::Timestamp { builder, .. } => {
            builder.append_value(days as i64 * 86_400_000_000 + micros_of_day)
        }
        other => other.append_bytes(v)?,
    }
    Ok(Decoded::Value)
}

/// `HH:MM:SS[.ffffff]` within one day; MySQL's `time` also holds durations (-838:59:59 to
/// 838:59:59), which a time of day cannot: those fail with a message saying so.
fn parse_time_of_day(v: &[u8]) -> Result<i64, String> {
    let text = String::from_utf8_lossy(v);
    let bad = || format!("`{text}` is not a valid time");
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
    if m > 59 || s > 59 {
        return Err(bad());
    }
    if neg || hours > 23 {
        return Err(format!(
            "`{text}` is a duration outside 00:00:00–23:59:59, which a time of day cannot hold; \
             cast the column to a text type to keep it"
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
    use arrow_array::types::{Time64MicrosecondType, TimestampMicrosecondType};
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
