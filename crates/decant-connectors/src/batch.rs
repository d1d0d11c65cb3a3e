//! Building Arrow batches from native values, and formatting Arrow values as text: shared by
//! the connectors whose wire formats are text (MySQL, SQLite, PostgreSQL's text COPY).

use std::fmt::Write as _;
use std::sync::Arc;

use arrow_array::builder::*;
use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, IntervalUnit, SchemaRef, TimeUnit};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

/// Days from 0001-01-01 (CE day 1) to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// A builder for one column, typed by the Arrow type that carries it.
pub enum ColumnBuilder {
    Bool(BooleanBuilder),
    Int8(Int8Builder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    UInt8(UInt8Builder),
    UInt16(UInt16Builder),
    UInt32(UInt32Builder),
    UInt64(UInt64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Decimal {
        builder: Decimal128Builder,
        precision: u8,
        scale: i8,
    },
    Utf8(StringBuilder),
    Binary(BinaryBuilder),
    FixedBinary(FixedSizeBinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Timestamp {
        builder: TimestampMicrosecondBuilder,
        tz: Option<Arc<str>>,
    },
    Interval(IntervalMonthDayNanoBuilder),
}

impl ColumnBuilder {
    /// A builder for `data_type`, or an error for a type Decant does not carry.
    pub fn new(data_type: &DataType, capacity: usize) -> Result<Self, ArrowError> {
        Ok(match data_type {
            DataType::Boolean => ColumnBuilder::Bool(BooleanBuilder::with_capacity(capacity)),
            DataType::Int8 => ColumnBuilder::Int8(Int8Builder::with_capacity(capacity)),
            DataType::Int16 => ColumnBuilder::Int16(Int16Builder::with_capacity(capacity)),
            DataType::Int32 => ColumnBuilder::Int32(Int32Builder::with_capacity(capacity)),
            DataType::Int64 => ColumnBuilder::Int64(Int64Builder::with_capacity(capacity)),
            DataType::UInt8 => ColumnBuilder::UInt8(UInt8Builder::with_capacity(capacity)),
            DataType::UInt16 => ColumnBuilder::UInt16(UInt16Builder::with_capacity(capacity)),
            DataType::UInt32 => ColumnBuilder::UInt32(UInt32Builder::with_capacity(capacity)),
            DataType::UInt64 => ColumnBuilder::UInt64(UInt64Builder::with_capacity(capacity)),
            DataType::Float32 => ColumnBuilder::Float32(Float32Builder::with_capacity(capacity)),
            DataType::Float64 => ColumnBuilder::Float64(Float64Builder::with_capacity(capacity)),
            DataType::Decimal128(p, s) => ColumnBuilder::Decimal {
                builder: Decimal128Builder::with_capacity(capacity)
                    .with_precision_and_scale(*p, *s)?,
                precision: *p,
                scale: *s,
            },
            DataType::Utf8 => {
                ColumnBuilder::Utf8(StringBuilder::with_capacity(capacity, capacity * 16))
            }
            DataType::Binary => {
                ColumnBuilder::Binary(BinaryBuilder::with_capacity(capacity, capacity * 16))
            }
            DataType::FixedSizeBinary(n) => {
                ColumnBuilder::FixedBinary(FixedSizeBinaryBuilder::with_capacity(capacity, *n))
            }
            DataType::Date32 => ColumnBuilder::Date(Date32Builder::with_capacity(capacity)),
            DataType::Time64(TimeUnit::Microsecond) => {
                ColumnBuilder::Time(Time64MicrosecondBuilder::with_capacity(capacity))
            }
            DataType::Timestamp(TimeUnit::Microsecond, tz) => ColumnBuilder::Timestamp {
                builder: TimestampMicrosecondBuilder::with_capacity(capacity),
                tz: tz.clone(),
            },
            DataType::Interval(IntervalUnit::MonthDayNano) => {
                ColumnBuilder::Interval(IntervalMonthDayNanoBuilder::with_capacity(capacity))
            }
            other => {
                return Err(ArrowError::NotYetImplemented(format!(
                    "no builder for {other}"
                )));
            }
        })
    }

    pub fn append_null(&mut self) {
        match self {
            ColumnBuilder::Bool(b) => b.append_null(),
            ColumnBuilder::Int8(b) => b.append_null(),
            ColumnBuilder::Int16(b) => b.append_null(),
            ColumnBuilder::Int32(b) => b.append_null(),
            ColumnBuilder::Int64(b) => b.append_null(),
            ColumnBuilder::UInt8(b) => b.append_null(),
            ColumnBuilder::UInt16(b) => b.append_null(),
            ColumnBuilder::UInt32(b) => b.append_null(),
            ColumnBuilder::UInt64(b) => b.append_null(),
            ColumnBuilder::Float32(b) => b.append_null(),
            ColumnBuilder::Float64(b) => b.append_null(),
            ColumnBuilder::Decimal { builder, .. } => builder.append_null(),
            ColumnBuilder::Utf8(b) => b.append_null(),
            ColumnBuilder::Binary(b) => b.append_null(),
            ColumnBuilder::FixedBinary(b) => b.append_null(),
            ColumnBuilder::Date(b) => b.append_null(),
            ColumnBuilder::Time(b) => b.append_null(),
            ColumnBuilder::Timestamp { builder, .. } => builder.append_null(),
            ColumnBuilder::Interval(b) => b.append_null(),
        }
    }

    /// Appends an integer, checking that it fits the column's type.
    pub fn append_i128(&mut self, v: i128) -> Result<(), String> {
        fn fit<T: TryFrom<i128>>(v: i128, ty: &str) -> Result<T, String> {
            T::try_from(v).map_err(|_| format!("{v} is out of range for {ty}"))
        }
        match self {
            ColumnBuilder::Bool(b) => match v {
                0 => b.append_value(false),
                1 => b.append_value(true),
                _ => return Err(format!("{v} is not a boolean (0 or 1)")),
            },
            ColumnBuilder::Int8(b) => b.append_value(fit(v, "int8")?),
            ColumnBuilder::Int16(b) => b.append_value(fit(v, "int16")?),
            ColumnBuilder::Int32(b) => b.append_value(fit(v, "int32")?),
            ColumnBuilder::Int64(b) => b.append_value(fit(v, "int64")?),
            ColumnBuilder::UInt8(b) => b.append_value(fit(v, "uint8")?),
            ColumnBuilder::UInt16(b) => b.append_value(fit(v, "uint16")?),
            ColumnBuilder::UInt32(b) => b.append_value(fit(v, "uint32")?),
            ColumnBuilder::UInt64(b) => b.append_value(fit(v, "uint64")?),
            ColumnBuilder::Float32(b) => b.append_value(v as f32),
            ColumnBuilder::Float64(b) => b.append_value(v as f64),
            ColumnBuilder::Decimal {
                builder,
                precision,
                scale,
            } => {
                let scaled = v
                    .checked_mul(10i128.pow(*scale as u32))
                    .filter(|x| digits(*x) <= *precision as u32)
                    .ok_or_else(|| format!("{v} does not fit decimal({precision},{scale})"))?;
                builder.append_value(scaled)
            }
            ColumnBuilder::Utf8(b) => b.append_value(v.to_string()),
            _ => {
                return Err(format!(
                    "an integer cannot be stored in {}",
                    self.type_name()
                ));
            }
        }
        Ok(())
    }

    pub fn append_f64(&mut self, v: f64) -> Result<(), String> {
        match self {
            ColumnBuilder::Float32(b) => b.append_value(v as f32),
            ColumnBuilder::Float64(b) => b.append_value(v),
            ColumnBuilder::Utf8(b) => b.append_value(v.to_string()),
            _ => return self.append_text(&v.to_string()),
        }
        Ok(())
    }

    /// Appends bytes: raw for binary columns, validated UTF-8 for text columns, parsed otherwise.
    pub fn append_bytes(&mut self, v: &[u8]) -> Result<(), String> {
        match self {
            ColumnBuilder::Binary(b) => b.append_value(v),
            ColumnBuilder::FixedBinary(b) => b.append_value(v).map_err(|e| e.to_string())?,
            _ => {
                let text = std::str::from_utf8(v).map_err(|e| {
                    format!(
                        "invalid UTF-8 at byte {}: {}",
                        e.valid_up_to(),
                        hex_preview(v)
                    )
                })?;
                return self.append_text(text);
            }
        }
        Ok(())
    }

    /// Parses the standard text form of a value (as MySQL's text protocol and SQLite give it).
    pub fn append_text(&mut self, s: &str) -> Result<(), String> {
        let bad = |what: &str| format!("`{}` is not a valid {what}", truncate_for_error(s));
        match self {
            ColumnBuilder::Utf8(b) => b.append_value(s),
            ColumnBuilder::Binary(b) => b.append_value(s.as_bytes()),
            ColumnBuilder::Bool(b) => match s.trim().to_ascii_lowercase().as_str() {
                "1" | "t" | "true" | "y" | "yes" | "on" => b.append_value(true),
                "0" | "f" | "false" | "n" | "no" | "off" => b.append_value(false),
                _ => return Err(bad("boolean")),
            },
            ColumnBuilder::Float32(b) => {
                b.append_value(s.trim().parse().map_err(|_| bad("float"))?)
            }
            ColumnBuilder::Float64(b) => {
                b.append_value(s.trim().parse().map_err(|_| bad("double"))?)
            }
            ColumnBuilder::Decimal {
                builder,
                precision,
                scale,
            } => builder.append_value(parse_decimal(s, *precision, *scale)?),
            ColumnBuilder::Date(b) => b.append_value(parse_date(s).ok_or_else(|| bad("date"))?),
            ColumnBuilder::Time(b) => b.append_value(parse_time(s).ok_or_else(|| bad("time"))?),
            ColumnBuilder::Timestamp { builder, .. } => {
                builder.append_value(parse_timestamp(s).ok_or_else(|| bad("timestamp"))?)
            }
            ColumnBuilder::FixedBinary(b) => {
                let u = uuid::Uuid::parse_str(s.trim()).map_err(|_| bad("uuid"))?;
                b.append_value(u.as_bytes()).map_err(|e| e.to_string())?
            }
            ColumnBuilder::Interval(_) => return Err(bad("interval")),
            _ => {
                let v: i128 = s.trim().parse().map_err(|_| bad("integer"))?;
                return self.append_i128(v);
            }
        }
        Ok(())
    }

    fn type_name(&self) -> &'static str {
        match self {
            ColumnBuilder::Bool(_) => "boolean",
            ColumnBuilder::Utf8(_) => "text",
            ColumnBuilder::Binary(_) | ColumnBuilder::FixedBinary(_) => "binary",
            ColumnBuilder::Date(_) => "date",
            ColumnBuilder::Time(_) => "time",
            ColumnBuilder::Timestamp { .. } => "timestamp",
            ColumnBuilder::Interval(_) => "interval",
            _ => "number",
        }
    }

    pub fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Bool(b) => Arc::new(b.finish()),
            ColumnBuilder::Int8(b) => Arc::new(b.finish()),
            ColumnBuilder::Int16(b) => Arc::new(b.finish()),
            ColumnBuilder::Int32(b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(b) => Arc::new(b.finish()),
            ColumnBuilder::UInt8(b) => Arc::new(b.finish()),
            ColumnBuilder::UInt16(b) => Arc::new(b.finish()),
            ColumnBuilder::UInt32(b) => Arc::new(b.finish()),
            ColumnBuilder::UInt64(b) => Arc::new(b.finish()),
            ColumnBuilder::Float32(b) => Arc::new(b.finish()),
            ColumnBuilder::Float64(b) => Arc::new(b.finish()),
            ColumnBuilder::Decimal {
                builder,
                precision,
                scale,
            } => Arc::new(
                builder
                    .finish()
                    .with_precision_and_scale(*precision, *scale)
                    .expect("precision and scale were validated when the builder was made"),
            ),
            ColumnBuilder::Utf8(b) => Arc::new(b.finish()),
            ColumnBuilder::Binary(b) => Arc::new(b.finish()),
            ColumnBuilder::FixedBinary(b) => Arc::new(b.finish()),
            ColumnBuilder::Date(b) => Arc::new(b.finish()),
            ColumnBuilder::Time(b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp { builder, tz } => {
                Arc::new(builder.finish().with_timezone_opt(tz.clone()))
            }
            ColumnBuilder::Interval(b) => Arc::new(b.finish()),
        }
    }
}

/// Builds batches of a fixed schema row by row.
pub struct BatchBuilder {
    schema: SchemaRef,
    columns: Vec<ColumnBuilder>,
    rows: usize,
    capacity: usize,
    /// Approximate bytes appended since the last `finish`, for memory accounting.
    pub bytes: usize,
}

impl BatchBuilder {
    pub fn new(schema: SchemaRef, capacity: usize) -> Result<Self, ArrowError> {
        let columns = schema
            .fields()
            .iter()
            .map(|f| ColumnBuilder::new(f.data_type(), capacity))
            .collect::<Result<_, _>>()?;
        Ok(BatchBuilder {
            schema,
            columns,
            rows: 0,
            capacity,
            bytes: 0,
        })
    }

    pub fn column(&mut self, index: usize) -> &mut ColumnBuilder {
        &mut self.columns[index]
    }

    pub fn columns_mut(&mut self) -> &mut [ColumnBuilder] {
        &mut self.columns
    }

    /// Counts a finished row.
    pub fn end_row(&mut self) {
        self.rows += 1;
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// True when the batch holds `capacity` rows.
    pub fn is_full(&self) -> bool {
        self.rows >= self.capacity
    }

    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let arrays = self.columns.iter_mut().map(ColumnBuilder::finish).collect();
        self.rows = 0;
        self.bytes = 0;
        RecordBatch::try_new(self.schema.clone(), arrays)
    }
}

fn digits(v: i128) -> u32 {
    if v == 0 {
        1
    } else {
        v.unsigned_abs().ilog10() + 1
    }
}

/// Parses decimal text (`-12.50`, `1e3`) into an unscaled integer at `scale`, exactly: a value
/// that would need rounding or more than `precision` digits is an error, never a silent change.
pub fn parse_decimal(text: &str, precision: u8, scale: i8) -> Result<i128, String> {
    let s = text.trim();
    let err = || {
        format!(
            "`{}` does not fit decimal({precision},{scale})",
            truncate_for_error(s)
        )
    };
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i32>().map_err(|_| err())?),
        None => (body, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part
            .bytes()
            .chain(frac_part.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(err());
    }
    let mut value: i128 = 0;
    let mut frac_digits: i32 = 0;
    for b in int_part.bytes() {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add((b - b'0') as i128))
            .ok_or_else(err)?;
    }
    for b in frac_part.bytes() {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add((b - b'0') as i128))
            .ok_or_else(err)?;
        frac_digits += 1;
    }
    let shift = scale as i32 - frac_digits + exp;
    if shift >= 0 {
        value = value
            .checked_mul(10i128.checked_pow(shift as u32).ok_or_else(err)?)
            .ok_or_else(err)?;
    } else {
        let div = 10i128.checked_pow((-shift) as u32).ok_or_else(err)?;
        if value % div != 0 {
            return Err(format!("{} (it would be rounded)", err()));
        }
        value /= div;
    }
    if digits(value) > precision as u32 {
        return Err(err());
    }
    Ok(if neg { -value } else { value })
}

/// Parses `YYYY-MM-DD` into days since 1970-01-01.
pub fn parse_date(s: &str) -> Option<i32> {
    let d = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()?;
    Some(days_from_date(d))
}

pub fn days_from_date(d: NaiveDate) -> i32 {
    d.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE
}

pub fn date_from_days(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days.checked_add(UNIX_EPOCH_DAYS_FROM_CE)?)
}

use chrono::Datelike as _;

/// Parses `HH:MM:SS[.ffffff]` into microseconds since midnight.
pub fn parse_time(s: &str) -> Option<i64> {
    let t = NaiveTime::parse_from_str(s.trim(), "%H:%M:%S%.f").ok()?;
    Some(t.num_seconds_from_midnight() as i64 * 1_000_000 + (t.nanosecond() / 1000) as i64)
}

/// Parses `YYYY-MM-DD HH:MM:SS[.ffffff]` (or `T`, or with an offset) into microseconds since the
/// Unix epoch; text without an offset is taken as it stands (naive, or already UTC).
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let t = s.trim();
    if let Ok(dt) = DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%#z") {
        return Some(dt.timestamp_micros());
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, fmt) {
            return Some(dt.and_utc().timestamp_micros());
        }
    }
    parse_date(t).map(|d| d as i64 * 86_400_000_000)
}

pub fn timestamp_from_micros(micros: i64) -> Option<NaiveDateTime> {
    DateTime::from_timestamp_micros(micros).map(|d| d.naive_utc())
}

fn truncate_for_error(s: &str) -> String {
    if s.len() <= 64 {
        return s.to_string();
    }
    let mut end = 64;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn hex_preview(v: &[u8]) -> String {
    let mut out = String::from("0x");
    for b in v.iter().take(32) {
        let _ = write!(out, "{b:02x}");
    }
    if v.len() > 32 {
        out.push('…');
    }
    out
}

/// Writes the standard text form of `array[row]` into `out` (ISO dates, `.` decimals, shortest
/// round-trip floats, `1`/`0` booleans, hyphenated UUIDs, ISO-8601 intervals). Returns false for
/// NULL. Binary values are not text: callers encode those themselves.
pub fn write_text(array: &dyn Array, row: usize, out: &mut String) -> bool {
    if array.is_null(row) {
        return false;
    }
    match array.data_type() {
        DataType::Boolean => out.push(if array.as_boolean().value(row) {
            '1'
        } else {
            '0'
        }),
        DataType::Int8 => push_int(out, array.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => push_int(out, array.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => push_int(out, array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => push_int(out, array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => push_int(out, array.as_primitive::<UInt8Type>().value(row)),
        DataType::UInt16 => push_int(out, array.as_primitive::<UInt16Type>().value(row)),
        DataType::UInt32 => push_int(out, array.as_primitive::<UInt32Type>().value(row)),
        DataType::UInt64 => push_int(out, array.as_primitive::<UInt64Type>().value(row)),
        DataType::Float32 => {
            write_float(out, array.as_primitive::<Float32Type>().value(row) as f64)
        }
        DataType::Float64 => write_float(out, array.as_primitive::<Float64Type>().value(row)),
        DataType::Decimal128(_, scale) => write_decimal(
            out,
            array.as_primitive::<Decimal128Type>().value(row),
            *scale,
        ),
        DataType::Utf8 => out.push_str(array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => out.push_str(array.as_string::<i64>().value(row)),
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(row);
            match date_from_days(days) {
                Some(d) => write_date(out, d),
                None => push_int(out, days),
            }
        }
        DataType::Time64(TimeUnit::Microsecond) => {
            let us = array.as_primitive::<Time64MicrosecondType>().value(row);
            let secs = us.div_euclid(1_000_000);
            let _ = write!(
                out,
                "{:02}:{:02}:{:02}",
                secs / 3600,
                secs / 60 % 60,
                secs % 60
            );
            let frac = us.rem_euclid(1_000_000);
            if frac != 0 {
                let _ = write!(out, ".{frac:06}");
            }
        }
        DataType::Timestamp(TimeUnit::Microsecond, tz) => {
            let us = array.as_primitive::<TimestampMicrosecondType>().value(row);
            write_timestamp(out, us);
            if tz.is_some() {
                out.push_str("+00:00");
            }
        }
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let v = array.as_primitive::<IntervalMonthDayNanoType>().value(row);
            write_interval(out, v.months, v.days, v.nanoseconds / 1000);
        }
        DataType::FixedSizeBinary(16) => {
            let bytes = array.as_fixed_size_binary().value(row);
            match uuid::Uuid::from_slice(bytes) {
                Ok(u) => {
                    let _ = write!(out, "{}", u.hyphenated());
                }
                Err(_) => out.push_str(&hex_preview(bytes)),
            }
        }
        other => {
            let _ = write!(out, "<{other}>");
        }
    }
    true
}

fn push_int<T: itoa_like::Int>(out: &mut String, v: T) {
    v.push_to(out)
}

mod itoa_like {
    use std::fmt::Write as _;
    pub trait Int: std::fmt::Display + Copy {
        fn push_to(self, out: &mut String) {
            let _ = write!(out, "{self}");
        }
    }
    impl Int for i8 {}
    impl Int for i16 {}
    impl Int for i32 {}
    impl Int for i64 {}
    impl Int for u8 {}
    impl Int for u16 {}
    impl Int for u32 {}
    impl Int for u64 {}
}

/// Writes an unscaled decimal at `scale` as text (`-0.05`).
pub fn write_decimal(out: &mut String, v: i128, scale: i8) {
    if scale <= 0 {
        let _ = write!(out, "{v}");
        for _ in 0..(-scale) {
            out.push('0');
        }
        return;
    }
    let p = 10i128.pow(scale as u32);
    if v < 0 {
        out.push('-');
    }
    let a = v.unsigned_abs();
    let _ = write!(
        out,
        "{}.{:0width$}",
        a / p as u128,
        a % p as u128,
        width = scale as usize
    );
}

/// Writes a float with the spellings PostgreSQL reads back (`NaN`, `Infinity`, `-Infinity`);
/// finite values use the shortest text that round-trips.
fn write_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        let _ = write!(out, "{v}");
    }
}

/// `YYYY-MM-DD`, or `YYYY-MM-DD BC` for years before 1 (PostgreSQL's spelling).
fn write_date(out: &mut String, d: NaiveDate) {
    if d.year() >= 1 {
        let _ = write!(out, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day());
    } else {
        let _ = write!(
            out,
            "{:04}-{:02}-{:02} BC",
            1 - d.year(),
            d.month(),
            d.day()
        );
    }
}

/// Writes microseconds since the epoch as `YYYY-MM-DD HH:MM:SS[.ffffff]` (`... BC` before year 1).
pub fn write_timestamp(out: &mut String, micros: i64) {
    match timestamp_from_micros(micros) {
        Some(dt) => {
            let bc = dt.year() < 1;
            let year = if bc { 1 - dt.year() } else { dt.year() };
            let _ = write!(
                out,
                "{year:04}-{:02}-{:02} {}",
                dt.month(),
                dt.day(),
                dt.format("%H:%M:%S")
            );
            let frac = micros.rem_euclid(1_000_000);
            if frac != 0 {
                let _ = write!(out, ".{frac:06}");
            }
            if bc {
                out.push_str(" BC");
            }
        }
        None => push_int(out, micros),
    }
}

/// Writes an interval as ISO 8601 (`P1Y2M3DT4H5M6.5S`), which PostgreSQL reads back exactly.
pub fn write_interval(out: &mut String, months: i32, days: i32, micros: i64) {
    out.push('P');
    let _ = write!(out, "{}Y{}M{}DT", months / 12, months % 12, days);
    let sign = if micros < 0 { "-" } else { "" };
    let a = micros.unsigned_abs();
    let (h, m, s, f) = (
        a / 3_600_000_000,
        a / 60_000_000 % 60,
        a / 1_000_000 % 60,
        a % 1_000_000,
    );
    let _ = write!(out, "{sign}{h}H{sign}{m}M{sign}{s}");
    if f != 0 {
        let _ = write!(out, ".{f:06}");
    }
    out.push('S');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(parse_decimal("12.5", 12, 2).unwrap(), 1250);
        assert_eq!(parse_decimal("-0.05", 4, 2).unwrap(), -5);
        assert_eq!(parse_decimal("1e3", 6, 0).unwrap(), 1000);
        assert!(
            parse_decimal("1.005", 12, 2).is_err(),
            "rounding is refused"
        );
        assert!(
            parse_decimal("12345", 4, 0).is_err(),
            "precision is enforced"
        );
        assert!(parse_decimal("abc", 4, 0).is_err());
        let mut s = String::new();
        write_decimal(&mut s, -5, 2);
        assert_eq!(s, "-0.05");
    }

    #[test]
    fn dates_and_times_round_trip() {
        let d = parse_date("1969-12-31").unwrap();
        assert_eq!(d, -1);
        let ts = parse_timestamp("1960-01-01 00:00:00.000001").unwrap();
        let mut s = String::new();
        write_timestamp(&mut s, ts);
        assert_eq!(s, "1960-01-01 00:00:00.000001");
        assert_eq!(parse_time("23:59:59.5").unwrap(), 86_399_500_000);
    }

    #[test]
    fn builder_checks_ranges() {
        let mut b = ColumnBuilder::new(&DataType::Int8, 4).unwrap();
        assert!(b.append_i128(127).is_ok());
        assert!(b.append_i128(128).is_err());
        let mut u = ColumnBuilder::new(&DataType::UInt64, 4).unwrap();
        assert!(u.append_text("18446744073709551615").is_ok());
        let mut t = ColumnBuilder::new(&DataType::Utf8, 4).unwrap();
        assert!(
            t.append_bytes(&[0xff, 0xfe])
                .unwrap_err()
                .contains("invalid UTF-8")
        );
    }
}
