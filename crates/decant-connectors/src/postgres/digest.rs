//! Digests computed inside PostgreSQL: each column's extended hash function (the one its hash
//! index uses), mixed into a row hash, folded by `count` and `bit_xor` (and an exact `sum`
//! where rows may repeat), so a chunk's comparison sends two or three numbers instead of its
//! rows. PostgreSQL 14 and later, as before (the functions are older; the gate is kept).
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

/// The column's 64-bit hash seeded with `seed` (the type's own extended hash function, the one
/// its hash index uses), or `None` when its type does not qualify. NULL hashes as `-seed`.
///
/// Calling each type's function directly costs about a third of `hash_record_extended`
/// over a `ROW(...)` of the same columns, which builds a tuple per row only to take it apart.
fn hashed_column(column: &ReadColumn, seed: usize) -> Option<String> {
    let name = quote_ident(Dialect::Postgres, &column.name);
    let call = |function: &str, arg: String| format!("{function}({arg}, {seed})");
    let hash = match base_type(&column.native_type).as_str() {
        "smallint" | "int2" => call("hashint2extended", name),
        "integer" | "int4" => call("hashint4extended", name),
        "bigint" | "int8" => call("hashint8extended", name),
        "numeric" | "decimal" => call("hash_numeric_extended", name),
        "real" | "float4" => call("hashfloat4extended", name),
        "double precision" | "float8" => call("hashfloat8extended", name),
        "boolean" | "bool" => call("hashint4extended", format!("{name}::int4")),
        // Both casts are exact and keep infinities apart.
        "date" => call("timestamp_hash_extended", format!("{name}::timestamp")),
        "timestamp" | "timestamp without time zone" => call("timestamp_hash_extended", name),
        "timestamp with time zone" | "timestamptz" => call(
            "timestamp_hash_extended",
            format!("({name} AT TIME ZONE 'UTC')"),
        ),
        "time" | "time without time zone" => call("time_hash_extended", name),
        "uuid" => call("uuid_hash_extended", name),
        // bytea's hash function takes an `internal` argument; the record hash calls it.
        "bytea" => call("hash_record_extended", format!("ROW({name})")),
        // Through the `C` collation, so that a nondeterministic one cannot equate two texts.
        "text" | "character varying" | "varchar" => {
            call("hashtextextended", format!("{name} COLLATE \"C\""))
        }
        "character" | "char" | "bpchar" => {
            call("hashbpcharextended", format!("{name} COLLATE \"C\""))
        }
        _ => return None,
    };
    Some(format!("coalesce({hash}, -{seed})"))
}

/// The aggregate query over one chunk, or `None` when a column does not qualify. `distinct`
/// rows need only the XOR (about half the cost of adding the exact sum). With `buckets`, one
/// row per non-empty bucket, its number first.
///
/// A row's hash mixes its columns' hashes, each seeded by its position, through one more
/// hash of their XOR: a value moved to another column or row changes the row's hash.
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
        .enumerate()
        .map(|(i, c)| hashed_column(c, i + 1))
        .collect::<Option<Vec<_>>>()?;
    let h = format!("hashint8extended({}, 0)", hashed.join(" # "));
    let bucket = match buckets {
        None => "0::int8".to_string(),
        Some(b) => format!(
            "greatest(least(({} - ({}::int8)) / {}::int8, {}::int8), 0)::int8",
            quote_ident(Dialect::Postgres, &b.column),
            b.lo,
            b.width.max(1),
            b.count.max(1) - 1
        ),
    };
    let group = if buckets.is_some() { " GROUP BY 1" } else { "" };
    let from = format!("FROM {qualified_table} WHERE {}", chunk_predicate(range));
    Some(if distinct {
        format!(
            "SELECT {bucket} AS bucket, count(*)::int8, coalesce(bit_xor({h}), 0)::int8, '0' {from}{group}"
        )
    } else {
        // The row hash once per row, for both folds: OFFSET 0 keeps the planner from
        // pulling the subquery up and writing the expression out twice.
        let outer = if buckets.is_some() {
            "bucket"
        } else {
            "0::int8"
        };
        format!(
            "SELECT {outer}, count(*)::int8, coalesce(bit_xor(h), 0)::int8, coalesce(sum(h), 0)::text \
             FROM (SELECT {bucket} AS bucket, {h} AS h {from} OFFSET 0) AS r{group}"
        )
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
            q.contains(
                "hashint8extended(coalesce(hashint8extended(\"id\", 1), -1) # \
                 coalesce(hashtextextended(\"we\"\"ird\" COLLATE \"C\", 2), -2), 0)"
            ),
            "{q}"
        );
        assert!(q.contains("\"id\" >= 1 AND \"id\" < 10"), "{q}");
        assert!(!q.contains("sum("), "distinct rows need no sum: {q}");
        let q = digest_query("t", &range, &[col("id", "bigint")], false, None).unwrap();
        assert!(q.contains("coalesce(sum(h), 0)::text"), "{q}");
        assert!(q.contains("OFFSET 0"), "{q}");
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
