//! Digests computed inside PostgreSQL: `hash_record_extended` over each row (PostgreSQL 14 and
//! later), folded by `count` and `bit_xor` (and an exact `sum` where rows may repeat), so a
//! chunk's comparison sends two or three numbers instead of its rows.
//!
//! Only types whose hash tells every two different values apart qualify. Text hashes through
//! the `C` collation (a nondeterministic collation would hash `'a'` and `'A'` alike); intervals
//! (`'1 day'` hashes as `'24 hours'`), `citext`, JSON, arrays and unknown types do not qualify.
//! Numeric and float hashes equate `1.5` with `1.50` and `-0` with `0`, as the canonical
//! encoding does.

use decant_core::{ChunkRange, Dialect, quote_ident};

use super::source::chunk_predicate;
use crate::traits::{InPlaceDigest, KeyBuckets, ReadColumn};

/// The first server version with `hash_record_extended`.
pub(super) const MIN_VERSION: i32 = 140_000;

/// The type's name without modifiers: `numeric(12,2)` → `numeric`,
/// `timestamp(3) without time zone` → `timestamp without time zone`.
fn base_type(native: &str) -> String {
    let mut out = String::with_capacity(native.len());
    let mut depth = 0;
    for c in native.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ if depth == 0 => out.push(c.to_ascii_lowercase()),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The column as it enters the row hash, or `None` when its type does not qualify.
fn hashed_column(column: &ReadColumn) -> Option<String> {
    let name = quote_ident(Dialect::Postgres, &column.name);
    match base_type(&column.native_type).as_str() {
        "smallint"
        | "integer"
        | "bigint"
        | "int2"
        | "int4"
        | "int8"
        | "numeric"
        | "decimal"
        | "real"
        | "double precision"
        | "float4"
        | "float8"
        | "boolean"
        | "bool"
        | "date"
        | "timestamp"
        | "timestamp without time zone"
        | "timestamp with time zone"
        | "timestamptz"
        | "time"
        | "time without time zone"
        | "bytea"
        | "uuid" => Some(name),
        "text" | "character varying" | "varchar" | "character" | "char" | "bpchar" => {
            Some(format!("{name} COLLATE \"C\""))
        }
        _ => None,
    }
}

/// The aggregate query over one chunk, or `None` when a column does not qualify. `distinct`
/// rows need only the XOR (about half the cost of adding the exact sum). With `buckets`, one
/// row per non-empty bucket, its number first.
pub(super) fn digest_query(
    qualified_table: &str,
    range: &ChunkRange,
    columns: &[ReadColumn],
    distinct: bool,
    buckets: Option<&KeyBuckets>,
) -> Option<String> {
    if columns.is_empty() {
        return None;
    }
    let hashed = columns
        .iter()
        .map(hashed_column)
        .collect::<Option<Vec<_>>>()?;
    let h = format!("hash_record_extended(ROW({}), 0)", hashed.join(", "));
    let sum = if distinct {
        "'0'".to_string()
    } else {
        format!("coalesce(sum({h}), 0)::text")
    };
    let folds = format!("count(*)::int8, coalesce(bit_xor({h}), 0)::int8, {sum}");
    let from = format!("FROM {qualified_table} WHERE {}", chunk_predicate(range));
    Some(match buckets {
        None => format!("SELECT 0::int8, {folds} {from}"),
        Some(b) => format!(
            "SELECT greatest(least(({} - ({}::int8)) / {}::int8, {}::int8), 0)::int8 AS bucket, {folds} {from} GROUP BY 1",
            quote_ident(Dialect::Postgres, &b.column),
            b.lo,
            b.width.max(1),
            b.count.max(1) - 1
        ),
    })
}

/// One bucket's digest from a row of [`digest_query`]: `(bucket, digest)`.
pub(super) fn digest_from_row(row: &tokio_postgres::Row) -> Result<(usize, InPlaceDigest), String> {
    let sum: String = row.get(3);
    let digest = InPlaceDigest {
        rows: row.get::<_, i64>(1) as u64,
        xor: row.get::<_, i64>(2) as u64,
        sum: sum
            .parse()
            .map_err(|e| format!("in-place digest sum `{sum}`: {e}"))?,
    };
    Ok((row.get::<_, i64>(0).max(0) as usize, digest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use decant_core::LogicalType;

    fn col(name: &str, native: &str) -> ReadColumn {
        ReadColumn {
            name: name.into(),
            native_type: native.into(),
            logical: LogicalType::Text,
        }
    }

    #[test]
    fn base_types_drop_modifiers() {
        assert_eq!(base_type("numeric(12,2)"), "numeric");
        assert_eq!(
            base_type("timestamp(3) without time zone"),
            "timestamp without time zone"
        );
        assert_eq!(base_type("Character Varying(16)"), "character varying");
    }

    #[test]
    fn text_hashes_by_bytes_and_unhashable_types_opt_out() {
        let range = ChunkRange::IntKey {
            column: "id".into(),
            lo: Some(1),
            hi: Some(10),
        };
        let q = digest_query(
            "\"public\".\"t\"",
            &range,
            &[col("id", "bigint"), col("we\"ird", "character varying(5)")],
            true,
            None,
        )
        .unwrap();
        assert!(
            q.contains("ROW(\"id\", \"we\"\"ird\" COLLATE \"C\")"),
            "{q}"
        );
        assert!(q.contains("\"id\" >= 1 AND \"id\" < 10"), "{q}");
        assert!(!q.contains("sum("), "distinct rows need no sum: {q}");
        let q = digest_query("t", &range, &[col("id", "bigint")], false, None).unwrap();
        assert!(q.contains("sum(hash_record_extended"), "{q}");
        let buckets = KeyBuckets {
            column: "id".into(),
            lo: -5,
            width: 3,
            count: 4,
        };
        let q = digest_query("t", &range, &[col("id", "bigint")], true, Some(&buckets)).unwrap();
        assert!(
            q.contains(
                "greatest(least((\"id\" - (-5::int8)) / 3::int8, 3::int8), 0)::int8 AS bucket"
            ),
            "{q}"
        );
        assert!(q.ends_with("GROUP BY 1"), "{q}");
        for native in ["interval", "jsonb", "citext", "integer[]", "json"] {
            assert!(
                digest_query(
                    "t",
                    &range,
                    &[col("id", "bigint"), col("x", native)],
                    false,
                    None
                )
                .is_none(),
                "{native} must not be hashed in place"
            );
        }
    }
}
