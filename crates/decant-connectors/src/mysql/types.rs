//! The MySQL/MariaDB type mapping table: native → logical (reading) and logical → native
//! (writing). Mirrored in `docs/type-mapping/mysql.md`.

use decant_core::types::parse_quoted_list;
use decant_core::{Dialect, LogicalType, quote_literal};

/// The longest `varchar(n)` Decant creates: 16383 characters × 4 bytes of utf8mb4 fit InnoDB's
/// 65535-byte row limit; longer strings become `longtext`.
pub const MAX_VARCHAR: u32 = 16383;

/// The spatial types, all read as WKT (`ST_AsText`) and written with `ST_GeomFromText`.
const GEOMETRY_TYPES: &[&str] = &[
    "geometry",
    "point",
    "linestring",
    "polygon",
    "multipoint",
    "multilinestring",
    "multipolygon",
    "geometrycollection",
    "geomcollection",
];

/// A native type split into its parts: `int(10) unsigned zerofill` → (`int`, `10`, unsigned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeType {
    /// Lower-cased base name (`int`, `double precision`, `enum`).
    pub base: String,
    /// The raw text between the parentheses, if any.
    pub args: Option<String>,
    pub unsigned: bool,
}

impl NativeType {
    pub fn parse(native: &str) -> NativeType {
        let t = native.trim();
        let lower = t.to_ascii_lowercase();
        // enum and set lists may hold any text, `unsigned` and parentheses included.
        for list in ["enum", "set"] {
            if lower.starts_with(list) && t[list.len()..].trim_start().starts_with('(') {
                let open = t.find('(').unwrap_or(0);
                let close = t.rfind(')').unwrap_or(t.len());
                return NativeType {
                    base: list.into(),
                    args: Some(t[open + 1..close.max(open + 1)].to_string()),
                    unsigned: false,
                };
            }
        }
        let (head, args, tail) = match (lower.find('('), lower.rfind(')')) {
            (Some(o), Some(c)) if c > o => (
                &lower[..o],
                Some(lower[o + 1..c].trim().to_string()),
                &lower[c + 1..],
            ),
            _ => (lower.as_str(), None, ""),
        };
        let words: Vec<&str> = head
            .split_whitespace()
            .chain(tail.split_whitespace())
            .collect();
        let unsigned = words.contains(&"unsigned");
        let base = words
            .iter()
            .copied()
            .filter(|w| !matches!(*w, "unsigned" | "signed" | "zerofill"))
            .collect::<Vec<_>>()
            .join(" ");
        NativeType {
            base,
            args,
            unsigned,
        }
    }

    /// The numeric arguments: `decimal(10,2)` → `[10, 2]`.
    pub fn nums(&self) -> Vec<u32> {
        self.args
            .as_deref()
            .map(|a| a.split(',').filter_map(|p| p.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    pub fn is_geometry(&self) -> bool {
        GEOMETRY_TYPES.contains(&self.base.as_str())
    }

    pub fn is_bit(&self) -> bool {
        self.base == "bit"
    }

    /// `float`/`float4`/`float(p ≤ 24)`: single precision, whose text form MySQL rounds.
    pub fn is_single_float(&self) -> bool {
        matches!(self.base.as_str(), "float" | "float4")
            && !matches!(self.nums().as_slice(), [p] if *p > 24)
    }
}

/// Maps a native type (information_schema `COLUMN_TYPE`, or a plan's override) to its logical
/// type; `None` when Decant does not know it. MariaDB's `json` (a `longtext` with a
/// `json_valid` check) is recognised by introspection, which sees the check.
pub fn to_logical(native: &str) -> Option<LogicalType> {
    use LogicalType::*;
    let t = NativeType::parse(native);
    let n = t.nums();
    let first = |d: u32| n.first().copied().unwrap_or(d);
    let fsp = || first(0).min(6) as u8;
    let int =
        |signed: LogicalType, unsigned: LogicalType| if t.unsigned { unsigned } else { signed };
    Some(match t.base.as_str() {
        "tinyint" | "int1" if n.as_slice() == [1] => Bool,
        "bool" | "boolean" => Bool,
        "tinyint" | "int1" => int(Int8, UInt8),
        "smallint" | "int2" => int(Int16, UInt16),
        "mediumint" | "int3" | "middleint" => int(Int32, UInt32),
        "int" | "integer" | "int4" => int(Int32, UInt32),
        "bigint" | "int8" => int(Int64, UInt64),
        "serial" => UInt64,
        "decimal" | "numeric" | "dec" | "fixed" => {
            let (p, s) = match n.as_slice() {
                [p, s] => (*p, *s),
                [p] => (*p, 0),
                _ => (10, 0),
            };
            if p <= 38 && s <= p {
                Decimal {
                    precision: p as u8,
                    scale: s as i8,
                }
            } else {
                BigDecimal
            }
        }
        "float" if matches!(n.as_slice(), [p] if *p > 24) => Float64,
        "float" | "float4" => Float32,
        "double" | "double precision" | "real" | "float8" => Float64,
        "bit" if first(1) == 1 => Bool,
        "bit" => Bit {
            length: first(1),
            varying: false,
        },
        "year" => Year,
        "date" => Date,
        "datetime" => Timestamp { precision: fsp() },
        "timestamp" => TimestampTz { precision: fsp() },
        "time" => Time { precision: fsp() },
        "char" | "character" | "nchar" | "national char" | "national character" => {
            Char { length: first(1) }
        }
        "varchar" | "character varying" | "nvarchar" | "national varchar" | "varchar2" => Varchar {
            length: n.first().copied(),
        },
        "tinytext" | "text" | "mediumtext" | "longtext" | "long" | "long varchar" => Text,
        "binary" => Binary {
            length: Some(first(1)),
            fixed: true,
        },
        "varbinary" => Binary {
            length: n.first().copied(),
            fixed: false,
        },
        "tinyblob" | "blob" | "mediumblob" | "longblob" | "long varbinary" => Binary {
            length: None,
            fixed: false,
        },
        "enum" => Enum {
            name: None,
            values: parse_quoted_list(t.args.as_deref().unwrap_or("")),
        },
        "set" => Set {
            values: parse_quoted_list(t.args.as_deref().unwrap_or("")),
        },
        "json" => Json,
        "uuid" => Uuid,
        "inet4" | "inet6" => Inet,
        _ if t.is_geometry() => Geometry,
        _ => return None,
    })
}

/// The native type MySQL creates for a logical type (the writing half of the table).
pub fn to_native(logical: &LogicalType) -> Result<String, String> {
    use LogicalType::*;
    let text_of = |n: u32| {
        if n <= MAX_VARCHAR {
            format!("varchar({n})")
        } else {
            "longtext".to_string()
        }
    };
    Ok(match logical {
        Bool => "tinyint(1)".into(),
        Int8 => "tinyint".into(),
        Int16 => "smallint".into(),
        Int32 => "int".into(),
        Int64 => "bigint".into(),
        UInt8 => "tinyint unsigned".into(),
        UInt16 => "smallint unsigned".into(),
        UInt32 => "int unsigned".into(),
        UInt64 => "bigint unsigned".into(),
        Float32 => "float".into(),
        Float64 => "double".into(),
        Decimal { precision, scale } => {
            let (p, s) = (*precision as i32, *scale as i32);
            // A negative scale (Arrow allows it) means whole numbers with p - s digits.
            let (p, s) = if s < 0 { (p - s, 0) } else { (p, s) };
            if s > 30 || p > 65 {
                return Err(format!(
                    "{logical} does not fit MySQL's decimal (at most 65 digits, 30 after the point)"
                ));
            }
            format!("decimal({},{})", p.max(s).max(1), s)
        }
        BigDecimal => "decimal(65,30)".into(),
        Char { length } if *length <= 255 => format!("char({})", length.max(&1)),
        Char { length } => text_of(*length),
        Varchar { length: Some(n) } => text_of(*n),
        Varchar { length: None } | Text => "longtext".into(),
        Binary {
            length: Some(n),
            fixed: true,
        } if *n <= 255 => format!("binary({})", n.max(&1)),
        Binary {
            length: Some(n), ..
        } if *n <= MAX_VARCHAR => format!("varbinary({n})"),
        Binary { .. } => "longblob".into(),
        Date => "date".into(),
        Time { precision } => format!("time({})", precision.min(&6)),
        Timestamp { precision } | TimestampTz { precision } => {
            format!("datetime({})", precision.min(&6))
        }
        Interval => "varchar(64)".into(),
        Year => "year".into(),
        Uuid => "char(36)".into(),
        Json | Array(_) => "json".into(),
        Enum { values, .. } => format!("enum({})", list(values)),
        Set { values } => format!("set({})", list(values)),
        Bit {
            length,
            varying: false,
        } if *length <= 64 => format!("bit({})", length.max(&1)),
        Bit { length, .. } => text_of(*length),
        Inet | Cidr => "varchar(43)".into(),
        MacAddr => "varchar(23)".into(),
        Geometry => "geometry".into(),
    })
}

fn list(values: &[String]) -> String {
    values
        .iter()
        .map(|v| quote_literal(Dialect::Mysql, v))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use LogicalType::*;

    #[test]
    fn native_to_logical() {
        let cases = [
            ("tinyint(1)", Bool),
            ("tinyint(1) unsigned", Bool),
            ("bit(1)", Bool),
            ("tinyint(4)", Int8),
            ("tinyint(3) unsigned", UInt8),
            ("smallint unsigned", UInt16),
            ("mediumint(8) unsigned", UInt32),
            ("int(10) unsigned zerofill", UInt32),
            ("int(11)", Int32),
            ("bigint(20) unsigned", UInt64),
            ("bigint", Int64),
            (
                "decimal(10,2)",
                Decimal {
                    precision: 10,
                    scale: 2,
                },
            ),
            ("decimal(65,30)", BigDecimal),
            ("float", Float32),
            ("float(30)", Float64),
            ("double", Float64),
            (
                "bit(10)",
                Bit {
                    length: 10,
                    varying: false,
                },
            ),
            ("year(4)", Year),
            ("datetime(6)", Timestamp { precision: 6 }),
            ("timestamp", TimestampTz { precision: 0 }),
            ("time(3)", Time { precision: 3 }),
            ("char(10)", Char { length: 10 }),
            ("varchar(255)", Varchar { length: Some(255) }),
            ("mediumtext", Text),
            (
                "binary(16)",
                Binary {
                    length: Some(16),
                    fixed: true,
                },
            ),
            (
                "longblob",
                Binary {
                    length: None,
                    fixed: false,
                },
            ),
            (
                "enum('a','it''s unsigned','x)')",
                Enum {
                    name: None,
                    values: vec!["a".into(), "it's unsigned".into(), "x)".into()],
                },
            ),
            (
                "set('r','w')",
                Set {
                    values: vec!["r".into(), "w".into()],
                },
            ),
            ("json", Json),
            ("multipolygon", Geometry),
            ("uuid", Uuid),
        ];
        for (native, logical) in cases {
            assert_eq!(to_logical(native), Some(logical), "{native}");
        }
        assert_eq!(to_logical("vector(3)"), None);
    }

    #[test]
    fn logical_to_native() {
        assert_eq!(to_native(&Bool).unwrap(), "tinyint(1)");
        assert_eq!(to_native(&UInt64).unwrap(), "bigint unsigned");
        assert_eq!(to_native(&BigDecimal).unwrap(), "decimal(65,30)");
        assert_eq!(
            to_native(&Varchar {
                length: Some(16384)
            })
            .unwrap(),
            "longtext"
        );
        assert_eq!(
            to_native(&TimestampTz { precision: 3 }).unwrap(),
            "datetime(3)"
        );
        assert_eq!(
            to_native(&Enum {
                name: None,
                values: vec!["a'b".into(), r"c\d".into()]
            })
            .unwrap(),
            r"enum('a''b','c\\d')"
        );
        assert!(
            to_native(&Decimal {
                precision: 38,
                scale: 35
            })
            .is_err()
        );
        // Every native type Decant creates reads back as a logical type.
        for l in [Int8, UInt32, Float32, Date, Year, Json, Geometry, Text] {
            let native = to_native(&l).unwrap();
            assert!(to_logical(&native).is_some(), "{native}");
        }
    }
}

#[cfg(test)]
mod doc_tests {
    use super::*;

    use crate::doc_table::rows as table_rows;

    #[test]
    fn docs_match_the_code() {
        let doc = include_str!("../../../../docs/type-mapping/mysql.md");
        let reading = table_rows(doc, "## Reading");
        assert!(reading.len() > 40);
        for (native, logical) in reading {
            let got = to_logical(&native).map(|l| l.to_string());
            assert_eq!(got.as_deref(), Some(logical.as_str()), "reading {native}");
        }
        let writing = table_rows(doc, "## Writing");
        assert!(writing.len() > 40);
        for (logical, native) in writing {
            let l: LogicalType = logical.parse().unwrap_or_else(|e| panic!("{logical}: {e}"));
            assert_eq!(
                to_native(&l).as_deref(),
                Ok(native.as_str()),
                "writing {logical}"
            );
        }
    }
}
