//! The PostgreSQL type mapping table: native → logical (reading) and logical → native (writing).
//! Mirrored in `docs/type-mapping/postgres.md`.

use decant_core::LogicalType;
use decant_core::types::split_type_args;

/// Native types carried as text (their PostgreSQL text form): kept verbatim PostgreSQL→PostgreSQL,
/// plain text elsewhere.
const TEXT_CARRIED: &[&str] = &[
    "time with time zone",
    "xml",
    "tsvector",
    "tsquery",
    "point",
    "line",
    "lseg",
    "box",
    "path",
    "polygon",
    "circle",
    "pg_lsn",
    "int4range",
    "int8range",
    "numrange",
    "tsrange",
    "tstzrange",
    "daterange",
    "int4multirange",
    "int8multirange",
    "nummultirange",
    "tsmultirange",
    "tstzmultirange",
    "datemultirange",
    "citext",
    "oid",
    "regclass",
    "txid_snapshot",
    "pg_snapshot",
];

/// Maps a `format_type()` spelling to a logical type; `None` when Decant does not know it
/// (enums and domains are resolved by introspection before this is called).
pub fn to_logical(native: &str) -> Option<LogicalType> {
    use LogicalType::*;
    let t = native.trim();
    if let Some(elem) = t.strip_suffix("[]") {
        return Some(Array(Box::new(to_logical(elem)?)));
    }
    // `timestamp(3) without time zone`: the arguments may sit in the middle.
    let (_, args) = split_type_args(t);
    let full = normalize(t);
    let nums: Vec<i64> = args
        .map(|a| a.split(',').filter_map(|p| p.trim().parse().ok()).collect())
        .unwrap_or_default();
    let precision = |default: u8| nums.first().map_or(default, |p| *p as u8);
    let logical = match full.as_str() {
        "boolean" => Bool,
        "smallint" | "smallserial" => Int16,
        "integer" | "serial" => Int32,
        "bigint" | "bigserial" => Int64,
        "real" => Float32,
        "double precision" => Float64,
        "money" => Decimal {
            precision: 19,
            scale: 2,
        },
        "numeric" | "decimal" => match nums.as_slice() {
            [p, s] if *p <= 38 && *s >= 0 => Decimal {
                precision: *p as u8,
                scale: *s as i8,
            },
            [p] if *p <= 38 => Decimal {
                precision: *p as u8,
                scale: 0,
            },
            _ => BigDecimal,
        },
        "character varying" | "varchar" => Varchar {
            length: nums.first().map(|n| *n as u32),
        },
        "character" | "char" | "bpchar" => Char {
            length: precision(1) as u32,
        },
        "\"char\"" => Char { length: 1 },
        "name" => Varchar { length: Some(63) },
        "text" => Text,
        "bytea" => Binary {
            length: None,
            fixed: false,
        },
        "date" => Date,
        "time without time zone" | "time" => Time {
            precision: precision(6),
        },
        "timestamp without time zone" | "timestamp" => Timestamp {
            precision: precision(6),
        },
        "timestamp with time zone" | "timestamptz" => TimestampTz {
            precision: precision(6),
        },
        "interval" => Interval,
        "uuid" => Uuid,
        "json" | "jsonb" => Json,
        "bit" => Bit {
            length: precision(1) as u32,
            varying: false,
        },
        "bit varying" | "varbit" => Bit {
            length: nums.first().map_or(0, |n| *n as u32),
            varying: true,
        },
        "inet" => Inet,
        "cidr" => Cidr,
        "macaddr" | "macaddr8" => MacAddr,
        "geometry" | "geography" => Geometry,
        other if TEXT_CARRIED.contains(&other) => Text,
        _ => return None,
    };
    Some(logical)
}

/// `timestamp(3) with time zone` → `timestamp with time zone`: the base spelling without arguments.
pub fn normalize(native: &str) -> String {
    let mut out = String::with_capacity(native.len());
    let mut depth = 0;
    for c in native.trim().chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            c if depth == 0 => out.push(c.to_ascii_lowercase()),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The native type PostgreSQL creates for a logical type.
pub fn to_native(logical: &LogicalType) -> String {
    use LogicalType::*;
    match logical {
        Bool => "boolean".into(),
        Int8 | Int16 | UInt8 | Year => "smallint".into(),
        Int32 | UInt16 => "integer".into(),
        Int64 | UInt32 => "bigint".into(),
        UInt64 => "numeric(20,0)".into(),
        Float32 => "real".into(),
        Float64 => "double precision".into(),
        Decimal { precision, scale } => format!("numeric({precision},{scale})"),
        BigDecimal => "numeric".into(),
        Char { length } => format!("character({length})"),
        Varchar { length: Some(n) } if *n <= 10_485_760 => format!("character varying({n})"),
        Varchar { .. } | Text | Set { .. } | Geometry => "text".into(),
        Binary { .. } => "bytea".into(),
        Date => "date".into(),
        Time { precision } => format!("time({precision}) without time zone"),
        Timestamp { precision } => format!("timestamp({precision}) without time zone"),
        TimestampTz { precision } => format!("timestamp({precision}) with time zone"),
        Interval => "interval".into(),
        Uuid => "uuid".into(),
        Json => "jsonb".into(),
        Enum {
            name: Some(name), ..
        } => decant_core::quote_ident(decant_core::Dialect::Postgres, name),
        Enum { name: None, .. } => "text".into(),
        Bit {
            length,
            varying: false,
        } => format!("bit({length})"),
        Bit {
            length: 0,
            varying: true,
        } => "bit varying".into(),
        Bit {
            length,
            varying: true,
        } => format!("bit varying({length})"),
        Inet => "inet".into(),
        Cidr => "cidr".into(),
        MacAddr => "macaddr".into(),
        Array(inner) => format!("{}[]", to_native(inner)),
    }
}

/// The expression that reads a column in a `COPY (SELECT ...) TO STDOUT (FORMAT binary)`, so that
/// the binary decoder only meets the types it knows; `quoted` is the quoted column name.
pub fn read_expression(native: &str, logical: &LogicalType, quoted: &str) -> String {
    use LogicalType::*;
    let base = normalize(native);
    match logical {
        Array(_) => format!("to_json({quoted})::text"),
        Geometry => format!("ST_AsText({quoted})"),
        Decimal { .. } if base == "money" => format!("{quoted}::numeric"),
        Bool
        | Int16
        | Int32
        | Int64
        | Float32
        | Float64
        | Decimal { .. }
        | BigDecimal
        | Binary { .. }
        | Date
        | Time { .. }
        | Timestamp { .. }
        | TimestampTz { .. }
        | Interval
        | Uuid
            if base != "money" =>
        {
            quoted.to_string()
        }
        Char { .. } | Varchar { .. } | Text
            if matches!(
                base.as_str(),
                "text" | "character varying" | "character" | "name"
            ) =>
        {
            quoted.to_string()
        }
        _ => format!("{quoted}::text"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_format_type_spellings() {
        assert_eq!(
            to_logical("numeric(12,2)"),
            Some(LogicalType::Decimal {
                precision: 12,
                scale: 2
            })
        );
        assert_eq!(to_logical("numeric"), Some(LogicalType::BigDecimal));
        assert_eq!(to_logical("numeric(50,10)"), Some(LogicalType::BigDecimal));
        assert_eq!(
            to_logical("timestamp(3) without time zone"),
            Some(LogicalType::Timestamp { precision: 3 })
        );
        assert_eq!(
            to_logical("timestamp with time zone"),
            Some(LogicalType::TimestampTz { precision: 6 })
        );
        assert_eq!(
            to_logical("character varying(16)"),
            Some(LogicalType::Varchar { length: Some(16) })
        );
        assert_eq!(
            to_logical("integer[]"),
            Some(LogicalType::Array(Box::new(LogicalType::Int32)))
        );
        assert_eq!(to_logical("frobnicator"), None);
        assert_eq!(
            normalize("timestamp(3) with time zone"),
            "timestamp with time zone"
        );
    }

    #[test]
    fn native_of_logical_parses_back() {
        for l in [
            LogicalType::Decimal {
                precision: 12,
                scale: 2,
            },
            LogicalType::Timestamp { precision: 6 },
            LogicalType::Varchar { length: Some(5) },
            LogicalType::Uuid,
            LogicalType::Array(Box::new(LogicalType::Text)),
        ] {
            assert_eq!(to_logical(&to_native(&l)), Some(l));
        }
    }
}

#[cfg(test)]
mod doc_tests {
    use super::*;

    use crate::doc_table::rows as table_rows;

    #[test]
    fn docs_match_the_code() {
        let doc = include_str!("../../../../docs/type-mapping/postgres.md");
        let reading = table_rows(doc, "## Reading");
        assert!(reading.len() > 30);
        for (native, logical) in reading {
            let got = to_logical(&native).map(|l| l.to_string());
            assert_eq!(got.as_deref(), Some(logical.as_str()), "reading {native}");
        }
        let writing = table_rows(doc, "## Writing");
        assert!(writing.len() > 30);
        for (logical, native) in writing {
            let l: LogicalType = logical.parse().unwrap_or_else(|e| panic!("{logical}: {e}"));
            assert_eq!(to_native(&l), native, "writing {logical}");
        }
    }
}
