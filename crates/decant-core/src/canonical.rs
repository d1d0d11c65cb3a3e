//! The canonical value encoding behind validation digests: bytes that are equal exactly when two
//! values are equal, whatever system, driver or Arrow width carried them.
//!
//! Every value is a tag byte followed by a fixed or length-prefixed payload, so a row's encoding
//! (its values concatenated) is unambiguous: `("ab", "c")` and `("a", "bc")` differ, and NULL
//! (a lone tag) differs from the empty string and from empty bytes.
//!
//! | values                    | canonical form                                                  |
//! |---------------------------|-----------------------------------------------------------------|
//! | integers of any width     | the value (`INT` i64, or `BIGINT` i128 past i64)                |
//! | decimals                  | trailing zeros of the scale stripped; scale 0 is an integer     |
//! | decimal text (bigdecimal) | parsed and normalized as above; past 38 digits, normalized text |
//! | floats                    | the value as f64 (f32 widens exactly); -0 = 0, one NaN          |
//! | text, enum, set, inet...  | the UTF-8 bytes as they are (trailing spaces count)             |
//! | `char(n)`                 | trailing blanks stripped (blank-padded semantics)               |
//! | JSON                      | parsed and re-serialized with sorted keys, no whitespace        |
//! | bytes                     | the bytes                                                       |
//! | dates, times              | days since 1970-01-01; microseconds since midnight              |
//! | timestamps                | microseconds since the epoch, naive and UTC-instant tagged apart|
//! | intervals                 | months, days, microseconds                                      |
//! | UUIDs                     | the 16 bytes                                                    |

use std::fmt::Write as _;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef, BinaryArray, BooleanArray, PrimitiveArray, StringArray};
use arrow_schema::{DataType, Field, IntervalUnit, TimeUnit};

use crate::error::CoreError;
use crate::types::{LogicalType, META_LOGICAL_TYPE};

/// The tag bytes that open each canonical value.
pub mod tag {
    pub const NULL: u8 = 0;
    pub const BOOL: u8 = 1;
    pub const INT: u8 = 2;
    pub const BIGINT: u8 = 3;
    pub const DECIMAL: u8 = 4;
    pub const DECIMAL_TEXT: u8 = 5;
    pub const FLOAT: u8 = 6;
    pub const TEXT: u8 = 7;
    pub const BYTES: u8 = 8;
    pub const DATE: u8 = 9;
    pub const TIME: u8 = 10;
    pub const TIMESTAMP: u8 = 11;
    pub const TIMESTAMP_TZ: u8 = 12;
    pub const INTERVAL: u8 = 13;
    pub const UUID: u8 = 14;
    pub const JSON: u8 = 15;
}

/// How the values of one column are made canonical; chosen once per column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canonical {
    /// Booleans, integers, floats, decimals, binary, dates, times, timestamps, intervals:
    /// the Arrow type says it all.
    Native,
    /// Text compared byte for byte.
    Text,
    /// `char(n)`: trailing blanks are padding, not data.
    PaddedText,
    /// Decimal text of any size (PostgreSQL `numeric`, MySQL `decimal(65,30)`).
    DecimalText,
    /// A JSON document: key order and whitespace do not count.
    Json,
    /// A 16-byte UUID (other fixed-size binary values are bytes).
    Uuid,
}

impl Canonical {
    /// The encoding of a column of `data_type` whose logical types on the two sides are
    /// `logical`. Text columns take the most specific meaning either side declares, so a JSON
    /// column read back as plain text on the other system still compares as JSON.
    pub fn for_column(
        data_type: &DataType,
        logical: &[Option<&LogicalType>],
    ) -> Result<Canonical, CoreError> {
        let any = |f: fn(&LogicalType) -> bool| logical.iter().flatten().any(|l| f(l));
        Ok(match data_type {
            DataType::Utf8 | DataType::LargeUtf8 => {
                if any(|l| matches!(l, LogicalType::Json)) {
                    Canonical::Json
                } else if any(|l| matches!(l, LogicalType::BigDecimal)) {
                    Canonical::DecimalText
                } else if any(|l| matches!(l, LogicalType::Char { .. })) {
                    Canonical::PaddedText
                } else {
                    Canonical::Text
                }
            }
            DataType::FixedSizeBinary(16)
                if any(|l| matches!(l, LogicalType::Uuid)) || logical.is_empty() =>
            {
                Canonical::Uuid
            }
            DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal128(_, _)
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::FixedSizeBinary(_)
            | DataType::Date32
            | DataType::Date64
            | DataType::Time32(_)
            | DataType::Time64(_)
            | DataType::Timestamp(_, _)
            | DataType::Interval(IntervalUnit::MonthDayNano) => Canonical::Native,
            other => {
                return Err(CoreError::UnknownType(format!(
                    "{other} (no canonical encoding for validation)"
                )));
            }
        })
    }

    /// The encoding of a field, reading its logical type from the field's metadata.
    pub fn for_field(field: &Field) -> Result<Canonical, CoreError> {
        let logical: Option<LogicalType> = field
            .metadata()
            .get(META_LOGICAL_TYPE)
            .and_then(|t| t.parse().ok());
        Canonical::for_column(field.data_type(), &[logical.as_ref()])
    }
}

/// Appends the canonical encoding of `array[row]` to `out`.
pub fn encode_value(array: &dyn Array, kind: Canonical, row: usize, out: &mut Vec<u8>) {
    if array.is_null(row) {
        out.push(tag::NULL);
        return;
    }
    match array.data_type() {
        DataType::Utf8 => encode_str(array.as_string::<i32>().value(row), kind, out),
        DataType::LargeUtf8 => encode_str(array.as_string::<i64>().value(row), kind, out),
        DataType::Boolean => {
            out.push(tag::BOOL);
            out.push(array.as_boolean().value(row) as u8);
        }
        DataType::Int8 => encode_int(array.as_primitive::<Int8Type>().value(row).into(), out),
        DataType::Int16 => encode_int(array.as_primitive::<Int16Type>().value(row).into(), out),
        DataType::Int32 => encode_int(array.as_primitive::<Int32Type>().value(row).into(), out),
        DataType::Int64 => encode_int(array.as_primitive::<Int64Type>().value(row).into(), out),
        DataType::UInt8 => encode_int(array.as_primitive::<UInt8Type>().value(row).into(), out),
        DataType::UInt16 => encode_int(array.as_primitive::<UInt16Type>().value(row).into(), out),
        DataType::UInt32 => encode_int(array.as_primitive::<UInt32Type>().value(row).into(), out),
        DataType::UInt64 => encode_int(array.as_primitive::<UInt64Type>().value(row).into(), out),
        DataType::Float16 => {
            encode_float(array.as_primitive::<Float16Type>().value(row).to_f64(), out)
        }
        DataType::Float32 => {
            encode_float(array.as_primitive::<Float32Type>().value(row).into(), out)
        }
        DataType::Float64 => encode_float(array.as_primitive::<Float64Type>().value(row), out),
        DataType::Decimal128(_, scale) => encode_decimal(
            array.as_primitive::<Decimal128Type>().value(row),
            *scale as i32,
            out,
        ),
        DataType::Binary => encode_bytes(tag::BYTES, array.as_binary::<i32>().value(row), out),
        DataType::LargeBinary => encode_bytes(tag::BYTES, array.as_binary::<i64>().value(row), out),
        DataType::FixedSizeBinary(16) if kind == Canonical::Uuid => {
            out.push(tag::UUID);
            out.extend_from_slice(array.as_fixed_size_binary().value(row));
        }
        DataType::FixedSizeBinary(_) => {
            encode_bytes(tag::BYTES, array.as_fixed_size_binary().value(row), out)
        }
        DataType::Date32 => {
            out.push(tag::DATE);
            let days = array.as_primitive::<Date32Type>().value(row);
            out.extend_from_slice(&days.to_le_bytes());
        }
        DataType::Date64 => {
            out.push(tag::DATE);
            let ms = array.as_primitive::<Date64Type>().value(row);
            out.extend_from_slice(&(ms.div_euclid(86_400_000) as i32).to_le_bytes());
        }
        DataType::Time32(unit) => {
            let v = match unit {
                TimeUnit::Second => array.as_primitive::<Time32SecondType>().value(row) as i64,
                _ => array.as_primitive::<Time32MillisecondType>().value(row) as i64,
            };
            encode_i64(tag::TIME, to_micros(v, unit), out);
        }
        DataType::Time64(unit) => {
            let v = match unit {
                TimeUnit::Nanosecond => array.as_primitive::<Time64NanosecondType>().value(row),
                _ => array.as_primitive::<Time64MicrosecondType>().value(row),
            };
            encode_i64(tag::TIME, to_micros(v, unit), out);
        }
        DataType::Timestamp(unit, tz) => {
            let v = match unit {
                TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row),
                TimeUnit::Millisecond => {
                    array.as_primitive::<TimestampMillisecondType>().value(row)
                }
                TimeUnit::Microsecond => {
                    array.as_primitive::<TimestampMicrosecondType>().value(row)
                }
                TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(row),
            };
            // Arrow keeps zoned timestamps as UTC instants: the zone is display only.
            let t = if tz.is_some() {
                tag::TIMESTAMP_TZ
            } else {
                tag::TIMESTAMP
            };
            encode_i64(t, to_micros(v, unit), out);
        }
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let v = array.as_primitive::<IntervalMonthDayNanoType>().value(row);
            out.push(tag::INTERVAL);
            out.extend_from_slice(&v.months.to_le_bytes());
            out.extend_from_slice(&v.days.to_le_bytes());
            out.extend_from_slice(&v.nanoseconds.div_euclid(1000).to_le_bytes());
        }
        // `Canonical::for_column` refuses every other type before rows are encoded.
        other => encode_bytes(tag::TEXT, other.to_string().as_bytes(), out),
    }
}

fn to_micros(v: i64, unit: &TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => v.saturating_mul(1_000_000),
        TimeUnit::Millisecond => v.saturating_mul(1000),
        TimeUnit::Microsecond => v,
        TimeUnit::Nanosecond => v.div_euclid(1000),
    }
}

fn encode_i64(t: u8, v: i64, out: &mut Vec<u8>) {
    out.push(t);
    out.extend_from_slice(&v.to_le_bytes());
}

fn encode_bytes(t: u8, v: &[u8], out: &mut Vec<u8>) {
    out.push(t);
    out.extend_from_slice(&(v.len() as u64).to_le_bytes());
    out.extend_from_slice(v);
}

/// Integers by value: the same bytes for an `int2` 7 and a `uint64` 7.
pub fn encode_int(v: i128, out: &mut Vec<u8>) {
    match i64::try_from(v) {
        Ok(small) => encode_i64(tag::INT, small, out),
        Err(_) => {
            out.push(tag::BIGINT);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// Floats by value: f32 widens to f64 exactly, `-0.0` is `0.0`, every NaN is one NaN.
pub fn encode_float(v: f64, out: &mut Vec<u8>) {
    let v = if v.is_nan() {
        f64::NAN
    } else if v == 0.0 {
        0.0
    } else {
        v
    };
    out.push(tag::FLOAT);
    out.extend_from_slice(&v.to_bits().to_le_bytes());
}

/// The f64 of an encoded float value, for comparisons with a tolerance.
pub fn decode_float(encoded: &[u8]) -> Option<f64> {
    match encoded {
        [tag::FLOAT, bits @ ..] => Some(f64::from_bits(u64::from_le_bytes(bits.try_into().ok()?))),
        _ => None,
    }
}

/// Decimals by value: `1.50` (scale 2) and `1.5` (scale 1) are the same; a decimal without
/// fraction is an integer.
pub fn encode_decimal(mut unscaled: i128, mut scale: i32, out: &mut Vec<u8>) {
    // i64 division is several times faster than i128's: most decimals fit.
    if let Ok(mut small) = i64::try_from(unscaled) {
        while scale > 0 && small % 10 == 0 {
            small /= 10;
            scale -= 1;
        }
        unscaled = small as i128;
    } else {
        while scale > 0 && unscaled % 10 == 0 {
            unscaled /= 10;
            scale -= 1;
        }
    }
    while scale < 0 {
        match unscaled.checked_mul(10) {
            Some(v) => {
                unscaled = v;
                scale += 1;
            }
            None => {
                let digits = unscaled.unsigned_abs().to_string();
                return encode_decimal_digits(unscaled < 0, &digits, scale, out);
            }
        }
    }
    if scale == 0 {
        return encode_int(unscaled, out);
    }
    out.push(tag::DECIMAL);
    out.extend_from_slice(&scale.to_le_bytes());
    out.extend_from_slice(&unscaled.to_le_bytes());
}

/// A decimal too wide for i128: sign, normalized digits and scale.
fn encode_decimal_digits(negative: bool, digits: &str, scale: i32, out: &mut Vec<u8>) {
    out.push(tag::DECIMAL_TEXT);
    out.push(negative as u8);
    out.extend_from_slice(&scale.to_le_bytes());
    encode_bytes(tag::TEXT, digits.as_bytes(), out);
}

fn encode_str(s: &str, kind: Canonical, out: &mut Vec<u8>) {
    match kind {
        Canonical::PaddedText => encode_bytes(tag::TEXT, s.trim_end_matches(' ').as_bytes(), out),
        Canonical::DecimalText => match normalize_decimal_text(s) {
            Some(d) => d.encode(out),
            // NaN, infinities, or text that is no number: compared as they are spelled.
            None => encode_bytes(tag::DECIMAL_TEXT, s.trim().as_bytes(), out),
        },
        Canonical::Json => match serde_json::from_str::<serde_json::Value>(s) {
            Ok(v) => {
                let mut text = String::with_capacity(s.len());
                write_sorted_json(&v, &mut text);
                encode_bytes(tag::JSON, text.as_bytes(), out);
            }
            Err(_) => encode_bytes(tag::TEXT, s.as_bytes(), out),
        },
        _ => encode_bytes(tag::TEXT, s.as_bytes(), out),
    }
}

/// A decimal parsed from text: sign, digits without leading zeros, scale (fraction digits).
struct DecimalDigits {
    negative: bool,
    digits: String,
    scale: i64,
}

impl DecimalDigits {
    fn encode(&self, out: &mut Vec<u8>) {
        if self.digits.len() <= 38 && self.scale.unsigned_abs() <= 76 {
            let mut v: i128 = self.digits.parse().unwrap_or(0);
            if self.negative {
                v = -v;
            }
            return encode_decimal(v, self.scale as i32, out);
        }
        let scale = self.scale.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
        encode_decimal_digits(self.negative, &self.digits, scale, out);
    }
}

/// Parses `-0012.3400`, `1e3`, `+.5` into normalized digits: no leading zeros, no trailing
/// zeros in the fraction. `None` for anything that is not a finite decimal number.
fn normalize_decimal_text(text: &str) -> Option<DecimalDigits> {
    let s = text.trim();
    let (negative, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i64>().ok()?),
        None => (body, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part
            .bytes()
            .chain(frac_part.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut digits: String = int_part.chars().chain(frac_part.chars()).collect();
    let mut scale = frac_part.len() as i64 - exp;
    let trailing = digits.len() - digits.trim_end_matches('0').len();
    let strip = (trailing as i64).min(scale.max(0)) as usize;
    digits.truncate(digits.len() - strip);
    scale -= strip as i64;
    let digits = digits.trim_start_matches('0').to_string();
    if digits.is_empty() {
        return Some(DecimalDigits {
            negative: false,
            digits: "0".into(),
            scale: 0,
        });
    }
    Some(DecimalDigits {
        negative,
        digits,
        scale,
    })
}

/// JSON with object keys sorted and no insignificant whitespace.
pub fn write_sorted_json(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{}", Value::String(k.clone()));
                out.push(':');
                write_sorted_json(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_sorted_json(item, out);
            }
            out.push(']');
        }
        scalar => {
            let _ = write!(out, "{scalar}");
        }
    }
}

/// One column of a batch, downcast once so that encoding a row does not dispatch on types.
enum Typed<'a> {
    Bool(&'a BooleanArray),
    Int16(&'a PrimitiveArray<Int16Type>),
    Int32(&'a PrimitiveArray<Int32Type>),
    Int64(&'a PrimitiveArray<Int64Type>),
    Float32(&'a PrimitiveArray<Float32Type>),
    Float64(&'a PrimitiveArray<Float64Type>),
    Decimal(&'a PrimitiveArray<Decimal128Type>, i32),
    Utf8(&'a StringArray, Canonical),
    Binary(&'a BinaryArray),
    Date(&'a PrimitiveArray<Date32Type>),
    Time(&'a PrimitiveArray<Time64MicrosecondType>),
    Timestamp(&'a PrimitiveArray<TimestampMicrosecondType>, u8),
    Other(&'a dyn Array, Canonical),
}

/// The columns of one batch with their encodings, ready to encode row after row.
pub struct RowEncoder<'a> {
    columns: Vec<Typed<'a>>,
}

impl<'a> RowEncoder<'a> {
    pub fn new(columns: &'a [ArrayRef], kinds: &[Canonical]) -> RowEncoder<'a> {
        let typed = columns.iter().zip(kinds).map(|(a, k)| {
            let a = a.as_ref();
            match a.data_type() {
                DataType::Boolean => Typed::Bool(a.as_boolean()),
                DataType::Int16 => Typed::Int16(a.as_primitive()),
                DataType::Int32 => Typed::Int32(a.as_primitive()),
                DataType::Int64 => Typed::Int64(a.as_primitive()),
                DataType::Float32 => Typed::Float32(a.as_primitive()),
                DataType::Float64 => Typed::Float64(a.as_primitive()),
                DataType::Decimal128(_, s) => Typed::Decimal(a.as_primitive(), *s as i32),
                DataType::Utf8 => Typed::Utf8(a.as_string(), *k),
                DataType::Binary => Typed::Binary(a.as_binary()),
                DataType::Date32 => Typed::Date(a.as_primitive()),
                DataType::Time64(TimeUnit::Microsecond) => Typed::Time(a.as_primitive()),
                DataType::Timestamp(TimeUnit::Microsecond, tz) => Typed::Timestamp(
                    a.as_primitive(),
                    if tz.is_some() {
                        tag::TIMESTAMP_TZ
                    } else {
                        tag::TIMESTAMP
                    },
                ),
                _ => Typed::Other(a, *k),
            }
        });
        RowEncoder {
            columns: typed.collect(),
        }
    }

    /// Appends the canonical encoding of column `col` at `row`.
    pub fn encode(&self, col: usize, row: usize, out: &mut Vec<u8>) {
        let typed = &self.columns[col];
        if let Typed::Other(a, k) = typed {
            return encode_value(*a, *k, row, out);
        }
        let null = match typed {
            Typed::Bool(a) => a.is_null(row),
            Typed::Int16(a) => a.is_null(row),
            Typed::Int32(a) => a.is_null(row),
            Typed::Int64(a) => a.is_null(row),
            Typed::Float32(a) => a.is_null(row),
            Typed::Float64(a) => a.is_null(row),
            Typed::Decimal(a, _) => a.is_null(row),
            Typed::Utf8(a, _) => a.is_null(row),
            Typed::Binary(a) => a.is_null(row),
            Typed::Date(a) => a.is_null(row),
            Typed::Time(a) => a.is_null(row),
            Typed::Timestamp(a, _) => a.is_null(row),
            Typed::Other(a, _) => a.is_null(row),
        };
        if null {
            out.push(tag::NULL);
            return;
        }
        match typed {
            Typed::Bool(a) => {
                out.push(tag::BOOL);
                out.push(a.value(row) as u8);
            }
            Typed::Int16(a) => encode_i64(tag::INT, a.value(row).into(), out),
            Typed::Int32(a) => encode_i64(tag::INT, a.value(row).into(), out),
            Typed::Int64(a) => encode_i64(tag::INT, a.value(row), out),
            Typed::Float32(a) => encode_float(a.value(row).into(), out),
            Typed::Float64(a) => encode_float(a.value(row), out),
            Typed::Decimal(a, scale) => encode_decimal(a.value(row), *scale, out),
            Typed::Utf8(a, kind) => encode_str(a.value(row), *kind, out),
            Typed::Binary(a) => encode_bytes(tag::BYTES, a.value(row), out),
            Typed::Date(a) => {
                out.push(tag::DATE);
                out.extend_from_slice(&a.value(row).to_le_bytes());
            }
            Typed::Time(a) => encode_i64(tag::TIME, a.value(row), out),
            Typed::Timestamp(a, t) => encode_i64(*t, a.value(row), out),
            Typed::Other(a, k) => encode_value(*a, *k, row, out),
        }
    }
}

/// The 128-bit hash of an encoded row.
pub fn row_hash(encoded: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(encoded)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::*;

    use super::*;

    fn enc(array: ArrayRef, kind: Canonical) -> Vec<Vec<u8>> {
        (0..array.len())
            .map(|row| {
                let mut out = Vec::new();
                encode_value(array.as_ref(), kind, row, &mut out);
                out
            })
            .collect()
    }

    fn native(array: ArrayRef) -> Vec<Vec<u8>> {
        enc(array, Canonical::Native)
    }

    #[test]
    fn integers_are_equal_by_value_whatever_their_width() {
        let a = native(Arc::new(Int16Array::from(vec![7, -1])));
        let b = native(Arc::new(Int64Array::from(vec![7, -1])));
        let c = native(Arc::new(UInt64Array::from(vec![7, u64::MAX])));
        assert_eq!(a, b);
        assert_eq!(a[0], c[0]);
        assert_ne!(a[1], c[1], "-1 is not u64::MAX");
        let wide = native(Arc::new(
            Decimal128Array::from(vec![u64::MAX as i128])
                .with_precision_and_scale(20, 0)
                .unwrap(),
        ));
        assert_eq!(
            wide[0], c[1],
            "a decimal(20,0) equals the same unsigned integer"
        );
    }

    #[test]
    fn decimals_drop_trailing_zeros_of_the_scale() {
        let two = native(Arc::new(
            Decimal128Array::from(vec![150, 500, -5, 105])
                .with_precision_and_scale(12, 2)
                .unwrap(),
        ));
        let one = native(Arc::new(
            Decimal128Array::from(vec![15, 50])
                .with_precision_and_scale(10, 1)
                .unwrap(),
        ));
        assert_eq!(two[0], one[0], "1.50 = 1.5");
        assert_eq!(two[1], one[1], "5.00 = 5.0");
        assert_eq!(two[1], native(Arc::new(Int32Array::from(vec![5])))[0]);
        assert_ne!(two[3], one[0], "1.05 is not 1.5");
        let text = enc(
            Arc::new(StringArray::from(vec![
                "1.500", "-0.05", "5", "0.0", "-0", "1e1",
            ])),
            Canonical::DecimalText,
        );
        assert_eq!(text[0], two[0]);
        assert_eq!(text[1], two[2]);
        assert_eq!(text[2], two[1]);
        assert_eq!(text[3], text[4], "0.0 = -0");
        assert_eq!(text[5], native(Arc::new(Int8Array::from(vec![10])))[0]);
        let huge = enc(
            Arc::new(StringArray::from(vec![
                "123456789012345678901234567890123456789012345.000000000000000000001",
                "123456789012345678901234567890123456789012345.00000000000000000000100",
                "123456789012345678901234567890123456789012345.000000000000000000002",
                "NaN",
            ])),
            Canonical::DecimalText,
        );
        assert_eq!(huge[0], huge[1]);
        assert_ne!(huge[0], huge[2]);
        assert_ne!(huge[3], huge[0]);
    }

    #[test]
    fn floats_by_value() {
        let d = native(Arc::new(Float64Array::from(vec![
            0.5,
            -0.0,
            f64::NAN,
            0.1,
            f64::INFINITY,
        ])));
        let f = native(Arc::new(Float32Array::from(vec![
            0.5,
            0.0,
            -f32::NAN,
            0.1,
            f32::INFINITY,
        ])));
        assert_eq!(d[0], f[0]);
        assert_eq!(d[1], f[1], "-0 = 0");
        assert_eq!(d[2], f[2], "one NaN");
        assert_eq!(d[4], f[4]);
        assert_ne!(
            d[3], f[3],
            "0.1f32 is not 0.1f64: that is what the tolerance is for"
        );
        assert_eq!(decode_float(&d[3]), Some(0.1));
        assert_ne!(d[0], native(Arc::new(Int64Array::from(vec![0])))[0]);
    }

    #[test]
    fn null_empty_text_and_empty_bytes_differ() {
        let t = enc(
            Arc::new(StringArray::from(vec![
                Some(""),
                None,
                Some("abc"),
                Some("abc "),
            ])),
            Canonical::Text,
        );
        let b = native(Arc::new(BinaryArray::from(vec![Some(&b""[..]), None])));
        assert_ne!(t[0], t[1]);
        assert_ne!(t[0], b[0]);
        assert_eq!(t[1], b[1], "NULL is NULL whatever the column");
        assert_ne!(t[2], t[3], "trailing spaces count in text");
        let padded = enc(
            Arc::new(StringArray::from(vec!["abc", "abc  "])),
            Canonical::PaddedText,
        );
        assert_eq!(padded[0], padded[1], "char(n) padding does not");
    }

    #[test]
    fn rows_are_unambiguous() {
        let first = enc(
            Arc::new(StringArray::from(vec!["ab", "a"])),
            Canonical::Text,
        );
        let second = enc(
            Arc::new(StringArray::from(vec!["c", "bc"])),
            Canonical::Text,
        );
        assert_ne!(
            [first[0].clone(), second[0].clone()].concat(),
            [first[1].clone(), second[1].clone()].concat()
        );
    }

    #[test]
    fn json_ignores_key_order_and_whitespace() {
        let j = enc(
            Arc::new(StringArray::from(vec![
                r#"{"b": null, "a": [1, {"y": 2, "x": 1}]}"#,
                r#"{"a":[1,{"x":1,"y":2}],"b":null}"#,
                r#"{"a":[{"x":1,"y":2},1],"b":null}"#,
                "not json",
            ])),
            Canonical::Json,
        );
        assert_eq!(j[0], j[1]);
        assert_ne!(j[1], j[2], "array order counts");
        let text = enc(
            Arc::new(StringArray::from(vec!["not json"])),
            Canonical::Text,
        );
        assert_eq!(j[3], text[0], "invalid JSON compares as its text");
    }

    #[test]
    fn timestamps_at_microseconds_naive_and_instant_apart() {
        let micros = native(Arc::new(TimestampMicrosecondArray::from(vec![1_000_001])));
        let nanos = native(Arc::new(TimestampNanosecondArray::from(vec![
            1_000_001_999,
        ])));
        let utc = native(Arc::new(
            TimestampMicrosecondArray::from(vec![1_000_001]).with_timezone("UTC"),
        ));
        let zoned = native(Arc::new(
            TimestampMicrosecondArray::from(vec![1_000_001]).with_timezone("+05:30"),
        ));
        assert_eq!(micros, nanos, "precision is the microsecond");
        assert_ne!(micros, utc, "a naive timestamp is not an instant");
        assert_eq!(utc, zoned, "an instant is the same instant in any zone");
        let next = native(Arc::new(TimestampMicrosecondArray::from(vec![1_000_002])));
        assert_ne!(micros, next);
        let d32 = native(Arc::new(Date32Array::from(vec![19_000])));
        let d64 = native(Arc::new(Date64Array::from(vec![19_000 * 86_400_000])));
        assert_eq!(d32, d64);
        let t64 = native(Arc::new(Time64MicrosecondArray::from(vec![3_600_000_000])));
        let t32 = native(Arc::new(Time32SecondArray::from(vec![3600])));
        assert_eq!(t64, t32);
    }

    #[test]
    fn kinds_follow_the_logical_types_of_either_side() {
        let json = LogicalType::Json;
        let ch = LogicalType::Char { length: 3 };
        assert_eq!(
            Canonical::for_column(&DataType::Utf8, &[Some(&LogicalType::Text), Some(&json)])
                .unwrap(),
            Canonical::Json
        );
        assert_eq!(
            Canonical::for_column(&DataType::Utf8, &[Some(&ch), None]).unwrap(),
            Canonical::PaddedText
        );
        let field = LogicalType::Uuid.arrow_field("u", true, "uuid");
        assert_eq!(Canonical::for_field(&field).unwrap(), Canonical::Uuid);
        assert!(Canonical::for_column(&DataType::Null, &[]).is_err());
        let uuid = enc(
            Arc::new(FixedSizeBinaryArray::try_from_iter(vec![[1u8; 16]].into_iter()).unwrap()),
            Canonical::Uuid,
        );
        let bytes = native(Arc::new(BinaryArray::from(vec![&[1u8; 16][..]])));
        assert_ne!(uuid, bytes, "a UUID is not the same 16 bytes as binary");
    }

    #[test]
    fn the_row_encoder_matches_single_values() {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from(vec![1, 2])),
            Arc::new(StringArray::from(vec![Some("x"), None])),
        ];
        let kinds = [Canonical::Native, Canonical::Text];
        let encoder = RowEncoder::new(&cols, &kinds);
        let mut row = Vec::new();
        encoder.encode(1, 1, &mut row);
        assert_eq!(row, vec![tag::NULL]);
        row.clear();
        encoder.encode(0, 0, &mut row);
        encoder.encode(1, 0, &mut row);
        assert_ne!(row_hash(&row), 0);
        let mut other = Vec::new();
        encode_int(1, &mut other);
        encode_value(cols[1].as_ref(), Canonical::Text, 0, &mut other);
        assert_eq!(row, other);
    }
}
