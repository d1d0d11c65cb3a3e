//! The SQLite type mapping table: declared type → logical (reading, by SQLite's affinity rules
//! plus the common declared names) and logical → declared type (writing).
//! Mirrored in `docs/type-mapping/sqlite.md`.

use decant_core::LogicalType;
use decant_core::types::split_type_args;

/// SQLite's column affinity, derived from the declared type (SQLite docs, "Datatypes", §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affinity {
    Integer,
    Text,
    /// Also the affinity of a column declared without a type.
    Blob,
    Real,
    Numeric,
}

/// The affinity SQLite gives a declared type; the rules apply in this order.
pub fn affinity(declared: &str) -> Affinity {
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") {
        Affinity::Integer
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        Affinity::Text
    } else if t.contains("BLOB") || t.trim().is_empty() {
        Affinity::Blob
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        Affinity::Real
    } else {
        Affinity::Numeric
    }
}

/// The widest decimal whose every value survives SQLite's NUMERIC affinity, which turns decimal
/// text into a REAL keeping 15 significant digits.
pub const NUMERIC_EXACT_DIGITS: u8 = 15;

/// Lower-cased type name without arguments, blanks collapsed (`varying character`).
fn base_name(declared: &str) -> (String, Vec<i64>) {
    let (name, args) = split_type_args(declared);
    let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
    let nums = args
        .map(|a| a.split(',').filter_map(|p| p.trim().parse().ok()).collect())
        .unwrap_or_default();
    (name, nums)
}

fn decimal(nums: &[i64]) -> LogicalType {
    match nums {
        [p, s] if (1..=38).contains(p) && (0..=*p).contains(s) => LogicalType::Decimal {
            precision: *p as u8,
            scale: *s as i8,
        },
        [p] if (1..=38).contains(p) => LogicalType::Decimal {
            precision: *p as u8,
            scale: 0,
        },
        _ => LogicalType::BigDecimal,
    }
}

/// Maps a declared column type to a logical type. Never fails: a name the table does not know
/// falls to its affinity (NUMERIC affinity and no type at all are carried as text, see the docs).
pub fn to_logical(declared: &str) -> LogicalType {
    use LogicalType::*;
    let (name, nums) = base_name(declared);
    let len = nums.first().map(|n| (*n).clamp(0, u32::MAX as i64) as u32);
    match name.as_str() {
        "boolean" | "bool" => return Bool,
        "numeric" | "decimal" | "numeric text" | "decimal text" => return decimal(&nums),
        "character" | "char" | "nchar" | "native character" if len.is_some() => {
            return Char {
                length: len.unwrap_or(1),
            };
        }
        "varchar" | "character varying" | "varying character" | "nvarchar" | "varchar2" => {
            return Varchar { length: len };
        }
        "text" | "clob" | "string" | "char" | "character" => return Text,
        "blob" | "bytea" => {
            return Binary {
                length: None,
                fixed: false,
            };
        }
        "binary" => {
            return Binary {
                length: Some(len.unwrap_or(1)),
                fixed: true,
            };
        }
        "varbinary" => {
            return Binary {
                length: len,
                fixed: false,
            };
        }
        "date" => return Date,
        "datetime" | "timestamp" | "timestamp without time zone" => {
            return Timestamp { precision: 6 };
        }
        "timestamptz" | "timestamp with time zone" => return TimestampTz { precision: 6 },
        "time" | "time without time zone" => return Time { precision: 6 },
        "interval" => return Interval,
        "year" => return Year,
        "uuid" | "guid" => return Uuid,
        "json" | "jsonb" | "json text" => return Json,
        _ => {}
    }
    match affinity(declared) {
        // SQLite stores every integer in 8 bytes and never enforces a declared width.
        Affinity::Integer => Int64,
        Affinity::Real => Float64,
        Affinity::Text => Text,
        Affinity::Blob if declared.trim().is_empty() => Text,
        Affinity::Blob => Binary {
            length: None,
            fixed: false,
        },
        Affinity::Numeric => Text,
    }
}

/// The declared type SQLite gets for a logical type. Each name's affinity keeps the values
/// Decant writes exactly (see the docs for why some names end in `TEXT`).
pub fn to_native(logical: &LogicalType) -> String {
    use LogicalType::*;
    match logical {
        Bool => "BOOLEAN".into(),
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 => "INTEGER".into(),
        // SQLite integers are signed 64-bit: unsigned 64-bit values keep every digit as exact text.
        UInt64 => "DECIMAL TEXT(20,0)".into(),
        Float32 | Float64 => "REAL".into(),
        Decimal { precision, scale } if *precision <= NUMERIC_EXACT_DIGITS => {
            format!("NUMERIC({precision},{scale})")
        }
        Decimal { precision, scale } => format!("DECIMAL TEXT({precision},{scale})"),
        BigDecimal => "DECIMAL TEXT".into(),
        Char { length } => format!("CHAR({length})"),
        Varchar { length: Some(n) } => format!("VARCHAR({n})"),
        Varchar { length: None } => "VARCHAR".into(),
        Binary { .. } => "BLOB".into(),
        Date => "DATE".into(),
        Time { .. } => "TIME".into(),
        Timestamp { .. } => "DATETIME".into(),
        TimestampTz { .. } => "TIMESTAMP WITH TIME ZONE".into(),
        Interval => "INTERVAL".into(),
        Year => "YEAR".into(),
        Uuid => "UUID".into(),
        Json => "JSON TEXT".into(),
        Text
        | Enum { .. }
        | Set { .. }
        | Bit { .. }
        | Inet
        | Cidr
        | MacAddr
        | Geometry
        | Array(_) => "TEXT".into(),
    }
}

/// Parses the ISO 8601 form `batch::write_interval` writes (`P1Y2M3DT4H5M6.5S`, each part
/// signed) into months, days and microseconds.
pub fn parse_interval(text: &str) -> Option<(i32, i32, i64)> {
    let body = text.trim().strip_prefix('P')?;
    let (date, time) = body.split_once('T').unwrap_or((body, ""));
    let (mut months, mut days, mut micros) = (0i64, 0i64, 0i64);
    for (part, unit) in parts(date)? {
        let whole: i64 = part.parse().ok()?;
        match unit {
            'Y' => months = months.checked_add(whole.checked_mul(12)?)?,
            'M' => months = months.checked_add(whole)?,
            'W' => days = days.checked_add(whole.checked_mul(7)?)?,
            'D' => days = days.checked_add(whole)?,
            _ => return None,
        }
    }
    for (part, unit) in parts(time)? {
        let (int, frac) = part.split_once('.').unwrap_or((part, ""));
        let negative = int.starts_with('-');
        let mut us = int
            .parse::<i64>()
            .ok()?
            .checked_abs()?
            .checked_mul(1_000_000)?;
        if !frac.is_empty() {
            if unit != 'S' || frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            us += format!("{frac:0<6}").parse::<i64>().ok()?;
        }
        let scale = match unit {
            'H' => 3600,
            'M' => 60,
            'S' => 1,
            _ => return None,
        };
        let us = us.checked_mul(scale)?;
        micros = micros.checked_add(if negative { -us } else { us })?;
    }
    Some((months.try_into().ok()?, days.try_into().ok()?, micros))
}

/// Splits `1Y-2M3D` into (`1`, 'Y'), (`-2`, 'M'), (`3`, 'D').
fn parts(s: &str) -> Option<Vec<(&str, char)>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if c.is_ascii_alphabetic() {
            if i == start {
                return None;
            }
            out.push((&s[start..i], c));
            start = i + 1;
        }
    }
    (start == s.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use LogicalType::*;

    #[test]
    fn affinity_follows_sqlite_rules() {
        assert_eq!(affinity("FLOATING POINT"), Affinity::Integer);
        assert_eq!(affinity("VARCHAR(20)"), Affinity::Text);
        assert_eq!(affinity(""), Affinity::Blob);
        assert_eq!(affinity("DOUBLE PRECISION"), Affinity::Real);
        assert_eq!(affinity("STRING"), Affinity::Numeric);
        assert_eq!(affinity("DECIMAL TEXT(38,2)"), Affinity::Text);
    }

    #[test]
    fn declared_names_map() {
        assert_eq!(to_logical("INTEGER"), Int64);
        assert_eq!(to_logical("tinyint"), Int64);
        assert_eq!(to_logical("UNSIGNED BIG INT"), Int64);
        assert_eq!(to_logical("varchar(20)"), Varchar { length: Some(20) });
        assert_eq!(to_logical("NVARCHAR"), Varchar { length: None });
        assert_eq!(
            to_logical("decimal(10, 2)"),
            Decimal {
                precision: 10,
                scale: 2
            }
        );
        assert_eq!(to_logical("NUMERIC"), BigDecimal);
        assert_eq!(to_logical("numeric(60,10)"), BigDecimal);
        assert_eq!(to_logical("DATETIME"), Timestamp { precision: 6 });
        assert_eq!(to_logical(""), Text);
        assert_eq!(to_logical("MONEY"), Text);
        assert_eq!(to_logical("FLOAT"), Float64);
        assert_eq!(
            to_logical("BLOB"),
            Binary {
                length: None,
                fixed: false
            }
        );
        assert_eq!(to_logical("interval"), Interval);
    }

    #[test]
    fn native_types_read_back_as_themselves() {
        for l in [
            Bool,
            Int64,
            Float64,
            Decimal {
                precision: 12,
                scale: 2,
            },
            Decimal {
                precision: 38,
                scale: 9,
            },
            BigDecimal,
            Char { length: 3 },
            Varchar { length: Some(9) },
            Text,
            Date,
            Time { precision: 6 },
            Timestamp { precision: 6 },
            TimestampTz { precision: 6 },
            Interval,
            Year,
            Uuid,
            Json,
        ] {
            assert_eq!(to_logical(&to_native(&l)), l, "{l}");
        }
        let big = to_native(&Decimal {
            precision: 20,
            scale: 0,
        });
        assert_eq!(
            affinity(&big),
            Affinity::Text,
            "{big} must keep every digit"
        );
        assert_eq!(affinity(&to_native(&Json)), Affinity::Text);
    }

    /// The first two cells of each row of the table under `heading`, without backticks.
    fn table_rows(doc: &str, heading: &str) -> Vec<(String, String)> {
        let section = doc.split(heading).nth(1).expect("heading present");
        let section = section.split("\n## ").next().unwrap_or(section);
        section
            .lines()
            .filter(|l| l.starts_with("| `") || l.starts_with("| (no type)"))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let clean = |c: &str| match c {
                    "(no type)" => String::new(),
                    c => c.trim_matches('`').to_string(),
                };
                (clean(cells[1]), clean(cells[2]))
            })
            .collect()
    }

    #[test]
    fn docs_match_the_code() {
        let doc = include_str!("../../../../docs/type-mapping/sqlite.md");
        let reading = table_rows(doc, "## Reading");
        assert!(reading.len() > 40);
        for (native, logical) in reading {
            assert_eq!(
                to_logical(&native).to_string(),
                logical,
                "reading `{native}`"
            );
        }
        let writing = table_rows(doc, "## Writing");
        assert!(writing.len() > 30);
        for (logical, native) in writing {
            let l: LogicalType = logical.parse().unwrap_or_else(|e| panic!("{logical}: {e}"));
            assert_eq!(to_native(&l), native, "writing {logical}");
        }
    }

    #[test]
    fn intervals_parse_what_batch_writes() {
        let mut s = String::new();
        crate::batch::write_interval(&mut s, -14, -3, -5_500_000);
        assert_eq!(parse_interval(&s), Some((-14, -3, -5_500_000)));
        s.clear();
        crate::batch::write_interval(&mut s, 25, 40, 3_723_000_001);
        assert_eq!(parse_interval(&s), Some((25, 40, 3_723_000_001)));
        assert_eq!(parse_interval("P1W"), Some((0, 7, 0)));
        assert_eq!(parse_interval("1 day"), None);
    }
}
