//! Logical types: the system-neutral type of a column, and how it is carried in Arrow.
//!
//! Each connector maps its native types to a `LogicalType` (reading) and a `LogicalType` to a
//! native type (writing); the pair of tables is the type mapping of a source→target pair.

use std::fmt;
use std::str::FromStr;

use arrow_schema::{DataType, Field, IntervalUnit, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// Field metadata key holding the source's native type, so nothing about it is lost in Arrow.
pub const META_SOURCE_TYPE: &str = "decant.source_type";
/// Field metadata key holding the logical type (its `Display` form).
pub const META_LOGICAL_TYPE: &str = "decant.logical_type";

/// A column type independent of any one database.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LogicalType {
    Bool,
    Int8,
    Int16,
    Int32,
    Int64,
    UInt8,
    UInt16,
    UInt32,
    UInt64,
    Float32,
    Float64,
    /// Exact decimal with at most 38 digits (Arrow `Decimal128`).
    Decimal {
        precision: u8,
        scale: i8,
    },
    /// Exact decimal of any size (PostgreSQL `numeric` without precision, MySQL `decimal(65,30)`),
    /// carried as its decimal text so no digit is lost.
    BigDecimal,
    /// Fixed-length character string, blank-padded.
    Char {
        length: u32,
    },
    /// Variable-length string with an optional limit in characters.
    Varchar {
        length: Option<u32>,
    },
    Text,
    /// Byte string; `fixed` for MySQL `binary(n)`.
    Binary {
        length: Option<u32>,
        fixed: bool,
    },
    Date,
    /// Time of day, fractional digits 0..=6.
    Time {
        precision: u8,
    },
    /// Date and time without time zone (naive), fractional digits 0..=6.
    Timestamp {
        precision: u8,
    },
    /// An instant, carried in UTC, fractional digits 0..=6.
    TimestampTz {
        precision: u8,
    },
    /// A span of months, days and microseconds.
    Interval,
    /// MySQL `year`.
    Year,
    Uuid,
    /// JSON document, carried as its text.
    Json,
    /// One value of a closed list (MySQL `enum`, PostgreSQL enum types).
    Enum {
        name: Option<String>,
        values: Vec<String>,
    },
    /// A subset of a closed list (MySQL `set`), carried as comma-separated text.
    Set {
        values: Vec<String>,
    },
    /// Bit string of `length` bits, carried as text of `0` and `1`.
    Bit {
        length: u32,
        varying: bool,
    },
    Inet,
    Cidr,
    MacAddr,
    /// Spatial value, carried as WKT text.
    Geometry,
    /// A one-dimensional array, carried as JSON text.
    Array(Box<LogicalType>),
}

impl LogicalType {
    /// The Arrow type that carries values of this type between stages.
    pub fn arrow_type(&self) -> DataType {
        use LogicalType::*;
        match self {
            Bool => DataType::Boolean,
            Int8 => DataType::Int8,
            Int16 | Year => DataType::Int16,
            Int32 => DataType::Int32,
            Int64 => DataType::Int64,
            UInt8 => DataType::UInt8,
            UInt16 => DataType::UInt16,
            UInt32 => DataType::UInt32,
            UInt64 => DataType::UInt64,
            Float32 => DataType::Float32,
            Float64 => DataType::Float64,
            Decimal { precision, scale } => DataType::Decimal128(*precision, *scale),
            Binary { .. } => DataType::Binary,
            Date => DataType::Date32,
            Time { .. } => DataType::Time64(TimeUnit::Microsecond),
            Timestamp { .. } => DataType::Timestamp(TimeUnit::Microsecond, None),
            TimestampTz { .. } => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Interval => DataType::Interval(IntervalUnit::MonthDayNano),
            Uuid => DataType::FixedSizeBinary(16),
            BigDecimal
            | Char { .. }
            | Varchar { .. }
            | Text
            | Json
            | Enum { .. }
            | Set { .. }
            | Bit { .. }
            | Inet
            | Cidr
            | MacAddr
            | Geometry
            | Array(_) => DataType::Utf8,
        }
    }

    /// An Arrow field for a column of this type, with the logical and source types in metadata.
    pub fn arrow_field(&self, name: &str, nullable: bool, source_type: &str) -> Field {
        Field::new(name, self.arrow_type(), nullable).with_metadata(
            [
                (META_LOGICAL_TYPE.to_string(), self.to_string()),
                (META_SOURCE_TYPE.to_string(), source_type.to_string()),
            ]
            .into(),
        )
    }

    /// True for types whose values are text in Arrow.
    pub fn is_textual(&self) -> bool {
        self.arrow_type() == DataType::Utf8
    }
}

fn list(values: &[String]) -> String {
    values
        .iter()
        .map(|v| format!("'{}'", v.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(",")
}

impl fmt::Display for LogicalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use LogicalType::*;
        match self {
            Bool => write!(f, "bool"),
            Int8 => write!(f, "int8"),
            Int16 => write!(f, "int16"),
            Int32 => write!(f, "int32"),
            Int64 => write!(f, "int64"),
            UInt8 => write!(f, "uint8"),
            UInt16 => write!(f, "uint16"),
            UInt32 => write!(f, "uint32"),
            UInt64 => write!(f, "uint64"),
            Float32 => write!(f, "float32"),
            Float64 => write!(f, "float64"),
            Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            BigDecimal => write!(f, "bigdecimal"),
            Char { length } => write!(f, "char({length})"),
            Varchar { length: Some(n) } => write!(f, "varchar({n})"),
            Varchar { length: None } => write!(f, "varchar"),
            Text => write!(f, "text"),
            Binary {
                length: Some(n),
                fixed: true,
            } => write!(f, "binary({n})"),
            Binary {
                length: Some(n),
                fixed: false,
            } => write!(f, "varbinary({n})"),
            Binary { length: None, .. } => write!(f, "bytes"),
            Date => write!(f, "date"),
            Time { precision } => write!(f, "time({precision})"),
            Timestamp { precision } => write!(f, "timestamp({precision})"),
            TimestampTz { precision } => write!(f, "timestamptz({precision})"),
            Interval => write!(f, "interval"),
            Year => write!(f, "year"),
            Uuid => write!(f, "uuid"),
            Json => write!(f, "json"),
            Enum { values, .. } => write!(f, "enum({})", list(values)),
            Set { values } => write!(f, "set({})", list(values)),
            Bit {
                length,
                varying: false,
            } => write!(f, "bit({length})"),
            Bit {
                length,
                varying: true,
            } => write!(f, "varbit({length})"),
            Inet => write!(f, "inet"),
            Cidr => write!(f, "cidr"),
            MacAddr => write!(f, "macaddr"),
            Geometry => write!(f, "geometry"),
            Array(inner) => write!(f, "array<{inner}>"),
        }
    }
}

/// Splits `name(args)` into the lower-cased name and the raw argument text.
pub fn split_type_args(text: &str) -> (String, Option<&str>) {
    let t = text.trim();
    match (t.find('('), t.rfind(')')) {
        (Some(open), Some(close)) if close > open => (
            t[..open].trim().to_ascii_lowercase(),
            Some(&t[open + 1..close]),
        ),
        _ => (t.to_ascii_lowercase(), None),
    }
}

/// Parses a quoted list `'a','b''c'` as used by enum and set types.
pub fn parse_quoted_list(args: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = args.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    value.push('\'');
                }
                '\'' => break,
                '\\' => {
                    if let Some(n) = chars.next() {
                        value.push(n);
                    }
                }
                c => value.push(c),
            }
        }
        out.push(value);
    }
    out
}

fn nums(args: Option<&str>) -> Vec<i64> {
    args.map(|a| a.split(',').filter_map(|p| p.trim().parse().ok()).collect())
        .unwrap_or_default()
}

impl FromStr for LogicalType {
    type Err = CoreError;

    /// Parses the `Display` form, so plans can name logical types.
    fn from_str(text: &str) -> Result<Self, CoreError> {
        use LogicalType::*;
        let unknown = || CoreError::UnknownType(text.to_string());
        let t = text.trim();
        if let Some(inner) = t.strip_prefix("array<").and_then(|r| r.strip_suffix('>')) {
            return Ok(Array(Box::new(inner.parse()?)));
        }
        let (name, args) = split_type_args(t);
        let n = nums(args);
        let first = |d: u32| n.first().map_or(d, |v| *v as u32);
        Ok(match name.as_str() {
            "bool" => Bool,
            "int8" => Int8,
            "int16" => Int16,
            "int32" => Int32,
            "int64" => Int64,
            "uint8" => UInt8,
            "uint16" => UInt16,
            "uint32" => UInt32,
            "uint64" => UInt64,
            "float32" => Float32,
            "float64" => Float64,
            "decimal" => match n.as_slice() {
                [p, s] => Decimal {
                    precision: *p as u8,
                    scale: *s as i8,
                },
                [p] => Decimal {
                    precision: *p as u8,
                    scale: 0,
                },
                _ => return Err(unknown()),
            },
            "bigdecimal" => BigDecimal,
            "char" => Char { length: first(1) },
            "varchar" => Varchar {
                length: n.first().map(|v| *v as u32),
            },
            "text" => Text,
            "binary" => Binary {
                length: Some(first(1)),
                fixed: true,
            },
            "varbinary" => Binary {
                length: Some(first(255)),
                fixed: false,
            },
            "bytes" => Binary {
                length: None,
                fixed: false,
            },
            "date" => Date,
            "time" => Time {
                precision: first(6) as u8,
            },
            "timestamp" => Timestamp {
                precision: first(6) as u8,
            },
            "timestamptz" => TimestampTz {
                precision: first(6) as u8,
            },
            "interval" => Interval,
            "year" => Year,
            "uuid" => Uuid,
            "json" => Json,
            "enum" => Enum {
                name: None,
                values: parse_quoted_list(args.unwrap_or("")),
            },
            "set" => Set {
                values: parse_quoted_list(args.unwrap_or("")),
            },
            "bit" => Bit {
                length: first(1),
                varying: false,
            },
            "varbit" => Bit {
                length: first(1),
                varying: true,
            },
            "inet" => Inet,
            "cidr" => Cidr,
            "macaddr" => MacAddr,
            "geometry" => Geometry,
            _ => return Err(unknown()),
        })
    }
}

impl Serialize for LogicalType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for LogicalType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        let all = [
            LogicalType::Decimal {
                precision: 12,
                scale: 2,
            },
            LogicalType::Varchar { length: Some(16) },
            LogicalType::Varchar { length: None },
            LogicalType::Enum {
                name: None,
                values: vec!["a".into(), "it's".into()],
            },
            LogicalType::Set {
                values: vec!["x".into(), "y".into()],
            },
            LogicalType::Array(Box::new(LogicalType::Int32)),
            LogicalType::TimestampTz { precision: 3 },
            LogicalType::Binary {
                length: Some(16),
                fixed: true,
            },
            LogicalType::Binary {
                length: None,
                fixed: false,
            },
            LogicalType::Bit {
                length: 8,
                varying: true,
            },
        ];
        for t in all {
            let parsed: LogicalType = t.to_string().parse().unwrap();
            assert_eq!(parsed, t, "{t}");
        }
        assert!("frobnicate".parse::<LogicalType>().is_err());
    }
}
