//! PostgreSQL's binary COPY format: decoding rows into Arrow builders (source) and encoding
//! Arrow arrays into rows (target), without going through `ToSql`/`FromSql` per value.

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, IntervalUnit, TimeUnit};
use bytes::{BufMut, BytesMut};

use crate::batch::{ColumnBuilder, parse_decimal};

/// The 11-byte signature, flags and header-extension length that open a binary COPY stream.
pub const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// Days from 1970-01-01 to PostgreSQL's epoch 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// How one column of a binary COPY row is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoder {
    Bool,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    /// `numeric` into `Decimal128` at the builder's scale, exactly.
    Numeric,
    /// `numeric` of any size into its decimal text.
    NumericText,
    /// Text in the connection's encoding (UTF-8), validated.
    Text,
    Bytea,
    Date,
    Time,
    Timestamp,
    Uuid,
    Interval,
}

fn be_i16(b: &[u8]) -> i16 {
    i16::from_be_bytes([b[0], b[1]])
}
fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
fn be_i64(b: &[u8]) -> i64 {
    i64::from_be_bytes(b[..8].try_into().expect("8 bytes"))
}

fn need(v: &[u8], n: usize, what: &str) -> Result<(), String> {
    if v.len() == n {
        Ok(())
    } else {
        Err(format!("{what} value of {} bytes, expected {n}", v.len()))
    }
}

/// Decodes one non-NULL field `v` into `builder`. With `keep_infinity`, `±infinity` dates and
/// timestamps become the Arrow type's extreme values, for a policy to act on; without it they
/// are an error.
pub fn decode_value(
    dec: Decoder,
    v: &[u8],
    builder: &mut ColumnBuilder,
    keep_infinity: bool,
) -> Result<(), String> {
    match (dec, builder) {
        (Decoder::Bool, ColumnBuilder::Bool(b)) => {
            need(v, 1, "boolean")?;
            b.append_value(v[0] != 0)
        }
        (Decoder::Int16, ColumnBuilder::Int16(b)) => {
            need(v, 2, "smallint")?;
            b.append_value(be_i16(v))
        }
        (Decoder::Int32, ColumnBuilder::Int32(b)) => {
            need(v, 4, "integer")?;
            b.append_value(be_i32(v))
        }
        (Decoder::Int64, ColumnBuilder::Int64(b)) => {
            need(v, 8, "bigint")?;
            b.append_value(be_i64(v))
        }
        (Decoder::Float32, ColumnBuilder::Float32(b)) => {
            need(v, 4, "real")?;
            b.append_value(f32::from_bits(be_i32(v) as u32))
        }
        (Decoder::Float64, ColumnBuilder::Float64(b)) => {
            need(v, 8, "double")?;
            b.append_value(f64::from_bits(be_i64(v) as u64))
        }
        (
            Decoder::Numeric,
            ColumnBuilder::Decimal {
                builder,
                precision,
                scale,
            },
        ) => builder.append_value(numeric_to_i128(v, *precision, *scale)?),
        (Decoder::NumericText, ColumnBuilder::Utf8(b)) => b.append_value(numeric_to_string(v)?),
        (Decoder::Text, ColumnBuilder::Utf8(b)) => b.append_value(
            std::str::from_utf8(v)
                .map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to()))?,
        ),
        (Decoder::Bytea, ColumnBuilder::Binary(b)) => b.append_value(v),
        (Decoder::Date, ColumnBuilder::Date(b)) => {
            need(v, 4, "date")?;
            let d = be_i32(v);
            if d == i32::MAX || d == i32::MIN {
                if keep_infinity {
                    b.append_value(d);
                    return Ok(());
                }
                return Err("date 'infinity' is out of range; set policies.out_of_range (\"null\" or \"coerce\")".into());
            }
            b.append_value(d.checked_add(PG_EPOCH_DAYS).ok_or("date out of range")?)
        }
        (Decoder::Time, ColumnBuilder::Time(b)) => {
            need(v, 8, "time")?;
            b.append_value(be_i64(v))
        }
        (Decoder::Timestamp, ColumnBuilder::Timestamp { builder, .. }) => {
            need(v, 8, "timestamp")?;
            let t = be_i64(v);
            if t == i64::MAX || t == i64::MIN {
                if keep_infinity {
                    builder.append_value(t);
                    return Ok(());
                }
                return Err("timestamp 'infinity' is out of range; set policies.out_of_range (\"null\" or \"coerce\")".into());
            }
            builder.append_value(
                t.checked_add(PG_EPOCH_MICROS)
                    .ok_or("timestamp out of range")?,
            )
        }
        (Decoder::Uuid, ColumnBuilder::FixedBinary(b)) => {
            b.append_value(v).map_err(|e| e.to_string())?
        }
        (Decoder::Interval, ColumnBuilder::Interval(b)) => {
            need(v, 16, "interval")?;
            let micros = be_i64(v);
            let nanos = micros.checked_mul(1000).ok_or("interval out of range")?;
            b.append_value(IntervalMonthDayNano::new(
                be_i32(&v[12..]),
                be_i32(&v[8..]),
                nanos,
            ))
        }
        (dec, _) => {
            return Err(format!(
                "internal: decoder {dec:?} does not match the column's Arrow type"
            ));
        }
    }
    Ok(())
}

struct NumericHeader<'a> {
    weight: i16,
    sign: u16,
    dscale: u16,
    digits: &'a [u8],
}

fn numeric_header(v: &[u8]) -> Result<NumericHeader<'_>, String> {
    if v.len() < 8 {
        return Err("numeric value too short".into());
    }
    let ndigits = be_i16(v) as usize;
    if v.len() != 8 + 2 * ndigits {
        return Err("numeric value has a wrong length".into());
    }
    let sign = be_i16(&v[4..]) as u16;
    match sign {
        NUMERIC_NAN => {
            return Err(
                "NaN cannot be stored in a decimal; set a policy or cast the column".into(),
            );
        }
        NUMERIC_PINF | NUMERIC_NINF => {
            return Err(
                "numeric 'Infinity' cannot be stored in a decimal; set a policy or cast the column"
                    .into(),
            );
        }
        _ => {}
    }
    Ok(NumericHeader {
        weight: be_i16(&v[2..]),
        sign,
        dscale: be_i16(&v[6..]) as u16,
        digits: &v[8..],
    })
}

/// Decodes a numeric to an unscaled integer at `scale`, exactly; errors rather than round.
pub fn numeric_to_i128(v: &[u8], precision: u8, scale: i8) -> Result<i128, String> {
    let h = numeric_header(v)?;
    let n = h.digits.len() / 2;
    let fast = (|| {
        let mut acc: i128 = 0;
        for i in 0..n {
            acc = acc
                .checked_mul(10_000)?
                .checked_add(be_i16(&h.digits[2 * i..]) as i128)?;
        }
        let frac_digits = 4 * (n as i32 - 1 - h.weight as i32);
        let shift = scale as i32 - frac_digits;
        if shift >= 0 {
            acc = acc.checked_mul(10i128.checked_pow(shift as u32)?)?;
        } else {
            let div = 10i128.checked_pow((-shift) as u32)?;
            if acc % div != 0 {
                return None;
            }
            acc /= div;
        }
        Some(if h.sign == NUMERIC_NEG { -acc } else { acc })
    })();
    match fast {
        Some(x) if x.unsigned_abs() < 10u128.pow(precision as u32) => Ok(x),
        // Out of range, would round, or overflowed in the middle: the exact text path decides.
        _ => {
            numeric_header(v)?;
            parse_decimal(&numeric_to_string(v)?, precision, scale)
        }
    }
}

/// Decodes a numeric to its exact decimal text (`-12.50`, `NaN`, `Infinity`).
pub fn numeric_to_string(v: &[u8]) -> Result<String, String> {
    if v.len() >= 8 {
        match be_i16(&v[4..]) as u16 {
            NUMERIC_NAN => return Ok("NaN".into()),
            NUMERIC_PINF => return Ok("Infinity".into()),
            NUMERIC_NINF => return Ok("-Infinity".into()),
            _ => {}
        }
    }
    let h = numeric_header(v)?;
    let n = h.digits.len() / 2;
    let digit = |i: i32| {
        if i >= 0 && (i as usize) < n {
            be_i16(&h.digits[2 * i as usize..])
        } else {
            0
        }
    };
    let mut out = String::new();
    if h.sign == NUMERIC_NEG {
        out.push('-');
    }
    if h.weight < 0 {
        out.push('0');
    } else {
        for i in 0..=h.weight as i32 {
            let d = digit(i);
            if i == 0 {
                out.push_str(&d.to_string());
            } else {
                out.push_str(&format!("{d:04}"));
            }
        }
    }
    if h.dscale > 0 {
        out.push('.');
        let mut frac = String::new();
        let mut i = h.weight as i32 + 1;
        while frac.len() < h.dscale as usize {
            frac.push_str(&format!("{:04}", digit(i)));
            i += 1;
        }
        frac.truncate(h.dscale as usize);
        out.push_str(&frac);
    }
    Ok(out)
}

/// Appends a numeric field (length prefix included) for an unscaled decimal at `scale`.
pub fn put_numeric_i128(buf: &mut BytesMut, v: i128, scale: i8) {
    let neg = v < 0;
    let mut abs = v.unsigned_abs();
    let mut s = scale as i32;
    if s < 0 {
        abs *= 10u128.pow((-s) as u32);
        s = 0;
    }
    let s = s as u32;
    let p = 10u128.pow(s);
    let (mut int_part, frac) = (abs / p, abs % p);
    let mut groups = [0i16; 24];
    let mut int_groups = [0i16; 12];
    let mut ni = 0;
    while int_part > 0 {
        int_groups[ni] = (int_part % 10_000) as i16;
        int_part /= 10_000;
        ni += 1;
    }
    let mut len = 0;
    for i in (0..ni).rev() {
        groups[len] = int_groups[i];
        len += 1;
    }
    let nf = s.div_ceil(4);
    for i in 0..nf {
        let end = 4 * (i + 1);
        let g = if end <= s {
            (frac / 10u128.pow(s - end)) % 10_000
        } else {
            (frac % 10u128.pow(s - 4 * i)) * 10u128.pow(end - s)
        };
        groups[len] = g as i16;
        len += 1;
    }
    put_numeric_groups(buf, &groups[..len], ni as i32 - 1, neg, s as u16);
}

fn put_numeric_groups(buf: &mut BytesMut, groups: &[i16], mut weight: i32, neg: bool, dscale: u16) {
    let mut start = 0;
    while start < groups.len() && groups[start] == 0 {
        start += 1;
        weight -= 1;
    }
    let mut end = groups.len();
    while end > start && groups[end - 1] == 0 {
        end -= 1;
    }
    let digits = &groups[start..end];
    if digits.is_empty() {
        weight = 0;
    }
    buf.put_i32(8 + 2 * digits.len() as i32);
    buf.put_i16(digits.len() as i16);
    buf.put_i16(weight as i16);
    buf.put_u16(if neg && !digits.is_empty() {
        NUMERIC_NEG
    } else {
        0
    });
    buf.put_u16(dscale);
    for d in digits {
        buf.put_i16(*d);
    }
}

/// Appends a numeric field from decimal text of any size (`NaN` included).
pub fn put_numeric_text(buf: &mut BytesMut, text: &str) -> Result<(), String> {
    let t = text.trim();
    let special = match t.to_ascii_lowercase().as_str() {
        "nan" => Some(NUMERIC_NAN),
        "infinity" | "+infinity" => Some(NUMERIC_PINF),
        "-infinity" => Some(NUMERIC_NINF),
        _ => None,
    };
    if let Some(sign) = special {
        buf.put_i32(8);
        buf.put_slice(&[0, 0, 0, 0]);
        buf.put_u16(sign);
        buf.put_u16(0);
        return Ok(());
    }
    let (neg, int_s, frac_s) = split_decimal(t)?;
    let (int_s, frac_s) = (int_s.as_str(), frac_s.as_str());
    let int_s = int_s.trim_start_matches('0');
    let mut groups = Vec::with_capacity(int_s.len() / 4 + frac_s.len() / 4 + 2);
    let lead = int_s.len() % 4;
    if lead > 0 {
        groups.push(int_s[..lead].parse::<i16>().unwrap_or(0));
    }
    for c in int_s.as_bytes()[lead..].chunks(4) {
        groups.push(group_value(c));
    }
    let weight = groups.len() as i32 - 1;
    for c in frac_s.as_bytes().chunks(4) {
        let mut g = group_value(c);
        for _ in c.len()..4 {
            g *= 10;
        }
        groups.push(g);
    }
    put_numeric_groups(buf, &groups, weight, neg, frac_s.len() as u16);
    Ok(())
}

/// Splits decimal text into sign, integer digits and fraction digits, applying an exponent
/// (`1.25e3` → `1250`, `5e-2` → `0.05`), so that values a source printed in scientific notation
/// (SQLite REALs) are carried exactly.
fn split_decimal(t: &str) -> Result<(bool, String, String), String> {
    let bad = || format!("`{t}` is not a decimal number");
    let (neg, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i64>().map_err(|_| bad())?),
        None => (body, 0),
    };
    let (int_s, frac_s) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_s.is_empty() && frac_s.is_empty()
        || !int_s
            .bytes()
            .chain(frac_s.bytes())
            .all(|b| b.is_ascii_digit())
        || exp.unsigned_abs() > 100_000
    {
        return Err(bad());
    }
    if exp == 0 {
        return Ok((neg, int_s.to_string(), frac_s.to_string()));
    }
    let digits = format!("{int_s}{frac_s}");
    let point = int_s.len() as i64 + exp;
    Ok(if point <= 0 {
        (
            neg,
            String::new(),
            format!("{}{digits}", "0".repeat((-point) as usize)),
        )
    } else if point as usize >= digits.len() {
        (
            neg,
            format!("{digits}{}", "0".repeat(point as usize - digits.len())),
            String::new(),
        )
    } else {
        (
            neg,
            digits[..point as usize].to_string(),
            digits[point as usize..].to_string(),
        )
    })
}

fn group_value(c: &[u8]) -> i16 {
    c.iter().fold(0i16, |acc, b| acc * 10 + (b - b'0') as i16)
}

/// How one Arrow column is written into a binary COPY row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoder {
    Bool,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    /// `Decimal128` into `numeric`.
    Numeric,
    /// Decimal text into `numeric`.
    NumericText,
    /// UTF-8 text as is (text, varchar, char, enum labels, json).
    Text,
    /// UTF-8 text prefixed with the jsonb format version.
    Jsonb,
    Bytea,
    Date,
    Time,
    Timestamp,
    Uuid,
    Interval,
}

impl Encoder {
    /// The binary encoder for a column of native type `native_base` (normalized) fed with
    /// `data_type`, or `None` when this pair must go through text COPY.
    pub fn for_column(native_base: &str, data_type: &DataType, is_enum: bool) -> Option<Encoder> {
        use DataType as D;
        Some(match (native_base, data_type) {
            ("boolean", D::Boolean) => Encoder::Bool,
            ("smallint", D::Int16) => Encoder::Int16,
            ("integer", D::Int32) => Encoder::Int32,
            ("bigint", D::Int64) => Encoder::Int64,
            ("real", D::Float32) => Encoder::Float32,
            ("double precision", D::Float64) => Encoder::Float64,
            ("numeric", D::Decimal128(..)) => Encoder::Numeric,
            ("numeric", D::Utf8) => Encoder::NumericText,
            ("text" | "character varying" | "character" | "name" | "json", D::Utf8) => {
                Encoder::Text
            }
            ("jsonb", D::Utf8) => Encoder::Jsonb,
            ("bytea", D::Binary) => Encoder::Bytea,
            ("date", D::Date32) => Encoder::Date,
            ("time without time zone", D::Time64(TimeUnit::Microsecond)) => Encoder::Time,
            ("timestamp without time zone", D::Timestamp(TimeUnit::Microsecond, None)) => {
                Encoder::Timestamp
            }
            ("timestamp with time zone", D::Timestamp(TimeUnit::Microsecond, Some(_))) => {
                Encoder::Timestamp
            }
            ("uuid", D::FixedSizeBinary(16)) => Encoder::Uuid,
            ("interval", D::Interval(IntervalUnit::MonthDayNano)) => Encoder::Interval,
            (_, D::Utf8) if is_enum => Encoder::Text,
            _ => return None,
        })
    }
}

/// Appends every row of `batch` to `buf` in binary COPY format. `encoders[i]` is column i's.
/// On error, gives the index of the column whose value could not be encoded.
pub fn encode_batch(
    batch: &RecordBatch,
    encoders: &[Encoder],
    buf: &mut BytesMut,
) -> Result<(), (usize, String)> {
    let cols = batch.columns();
    let ncols = cols.len() as i16;
    buf.reserve(batch.num_rows() * (2 + 12 * cols.len()));
    for row in 0..batch.num_rows() {
        buf.put_i16(ncols);
        for (i, (col, enc)) in cols.iter().zip(encoders).enumerate() {
            if col.is_null(row) {
                buf.put_i32(-1);
                continue;
            }
            encode_value(col.as_ref(), *enc, row, buf).map_err(|e| (i, e))?;
        }
    }
    Ok(())
}

fn encode_value(
    col: &dyn Array,
    enc: Encoder,
    row: usize,
    buf: &mut BytesMut,
) -> Result<(), String> {
    match enc {
        Encoder::Bool => {
            buf.put_i32(1);
            buf.put_u8(col.as_boolean().value(row) as u8);
        }
        Encoder::Int16 => {
            buf.put_i32(2);
            buf.put_i16(col.as_primitive::<Int16Type>().value(row));
        }
        Encoder::Int32 => {
            buf.put_i32(4);
            buf.put_i32(col.as_primitive::<Int32Type>().value(row));
        }
        Encoder::Int64 => {
            buf.put_i32(8);
            buf.put_i64(col.as_primitive::<Int64Type>().value(row));
        }
        Encoder::Float32 => {
            buf.put_i32(4);
            buf.put_f32(col.as_primitive::<Float32Type>().value(row));
        }
        Encoder::Float64 => {
            buf.put_i32(8);
            buf.put_f64(col.as_primitive::<Float64Type>().value(row));
        }
        Encoder::Numeric => {
            let DataType::Decimal128(_, scale) = col.data_type() else {
                return Err("internal: numeric encoder without a decimal column".into());
            };
            put_numeric_i128(buf, col.as_primitive::<Decimal128Type>().value(row), *scale);
        }
        Encoder::NumericText => put_numeric_text(buf, col.as_string::<i32>().value(row))?,
        Encoder::Text => {
            let s = col.as_string::<i32>().value(row);
            if s.as_bytes().contains(&0) {
                return Err(
                    "text contains a NUL byte (0x00), which PostgreSQL text cannot hold".into(),
                );
            }
            buf.put_i32(s.len() as i32);
            buf.put_slice(s.as_bytes());
        }
        Encoder::Jsonb => {
            let s = col.as_string::<i32>().value(row);
            buf.put_i32(s.len() as i32 + 1);
            buf.put_u8(1);
            buf.put_slice(s.as_bytes());
        }
        Encoder::Bytea => {
            let b = col.as_binary::<i32>().value(row);
            buf.put_i32(b.len() as i32);
            buf.put_slice(b);
        }
        Encoder::Date => {
            let d = col.as_primitive::<Date32Type>().value(row);
            buf.put_i32(4);
            buf.put_i32(d.checked_sub(PG_EPOCH_DAYS).ok_or("date out of range")?);
        }
        Encoder::Time => {
            buf.put_i32(8);
            buf.put_i64(col.as_primitive::<Time64MicrosecondType>().value(row));
        }
        Encoder::Timestamp => {
            let t = col.as_primitive::<TimestampMicrosecondType>().value(row);
            buf.put_i32(8);
            buf.put_i64(
                t.checked_sub(PG_EPOCH_MICROS)
                    .ok_or("timestamp out of range")?,
            );
        }
        Encoder::Uuid => {
            buf.put_i32(16);
            buf.put_slice(col.as_fixed_size_binary().value(row));
        }
        Encoder::Interval => {
            let v = col.as_primitive::<IntervalMonthDayNanoType>().value(row);
            if v.nanoseconds % 1000 != 0 {
                return Err(
                    "interval has sub-microsecond precision, which PostgreSQL cannot hold".into(),
                );
            }
            buf.put_i32(16);
            buf.put_i64(v.nanoseconds / 1000);
            buf.put_i32(v.days);
            buf.put_i32(v.months);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(v: i128, precision: u8, scale: i8) -> (i128, String) {
        let mut buf = BytesMut::new();
        put_numeric_i128(&mut buf, v, scale);
        let field = &buf[4..];
        (
            numeric_to_i128(field, precision, scale).unwrap(),
            numeric_to_string(field).unwrap(),
        )
    }

    #[test]
    fn numeric_codec_round_trips() {
        assert_eq!(round_trip(1250, 12, 2), (1250, "12.50".into()));
        assert_eq!(round_trip(-5, 4, 2), (-5, "-0.05".into()));
        assert_eq!(round_trip(0, 4, 2), (0, "0.00".into()));
        assert_eq!(
            round_trip(123_456_789, 20, 0),
            (123_456_789, "123456789".into())
        );
        let max38 = 10i128.pow(38) - 1;
        assert_eq!(round_trip(max38, 38, 2).0, max38);
        assert_eq!(round_trip(-max38, 38, 10).0, -max38);
        assert_eq!(round_trip(12_345, 10, 7).1, "0.0012345");
    }

    #[test]
    fn numeric_text_encoding_matches_integer_encoding() {
        for (text, v, scale) in [
            ("12.50", 1250i128, 2i8),
            ("-0.05", -5, 2),
            ("100000", 100_000, 0),
            ("0.0012345", 12_345, 7),
            ("1.25e5", 125_000, 0),
            ("5e-2", 5, 2),
        ] {
            let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
            put_numeric_text(&mut a, text).unwrap();
            put_numeric_i128(&mut b, v, scale);
            assert_eq!(a, b, "{text}");
            if !text.contains('e') {
                assert_eq!(numeric_to_string(&a[4..]).unwrap(), text);
            }
        }
        let mut big = BytesMut::new();
        let text = "123456789012345678901234567890123456789012345.123456789012345678901234567890";
        put_numeric_text(&mut big, text).unwrap();
        assert_eq!(numeric_to_string(&big[4..]).unwrap(), text);
    }
}
