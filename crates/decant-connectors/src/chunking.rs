//! Splitting a table into chunks on an integer key, shared by every connector.

use decant_core::{ChunkRange, ChunkSpec, Dialect, quote_ident};

/// The SQL condition selecting a chunk's rows in `dialect`, or `None` for the whole table.
/// Bounds are integers Decant computed, so formatting them into the SQL is safe.
pub fn range_predicate(dialect: Dialect, range: &ChunkRange) -> Option<String> {
    match range {
        // File byte ranges are no SQL: file sources read them themselves.
        ChunkRange::Whole | ChunkRange::FileBytes { .. } | ChunkRange::HttpPages { .. } => None,
        ChunkRange::IntKey { column, lo, hi } => {
            let k = quote_ident(dialect, column);
            let parts: Vec<String> = [
                lo.map(|v| format!("{k} >= {v}")),
                hi.map(|v| format!("{k} < {v}")),
            ]
            .into_iter()
            .flatten()
            .collect();
            (!parts.is_empty()).then(|| parts.join(" AND "))
        }
        ChunkRange::CtidPages { lo, hi } => Some(match hi {
            Some(hi) => format!("ctid >= '({lo},0)'::tid AND ctid < '({hi},0)'::tid"),
            None => format!("ctid >= '({lo},0)'::tid"),
        }),
    }
}

/// The WHERE condition of a chunk's read: its range and, when the runner pushed part of the
/// table's filter down, that filter too. `None` reads the whole table.
pub fn read_condition(
    dialect: Dialect,
    range: &ChunkRange,
    filter: Option<&str>,
) -> Option<String> {
    match (range_predicate(dialect, range), filter) {
        (Some(r), Some(f)) => Some(format!("{r} AND ({f})")),
        (None, Some(f)) => Some(format!("({f})")),
        (r, None) => r,
    }
}

/// Merges consecutive chunks into at most `parts` ranges covering the same rows, for work that
/// runs once per range in parallel (the hazard scan).
pub fn merge_ranges(chunks: &[ChunkSpec], parts: usize) -> Vec<ChunkRange> {
    if chunks.is_empty() {
        return vec![ChunkRange::Whole];
    }
    let per = chunks.len().div_ceil(parts.max(1));
    chunks
        .chunks(per)
        .map(
            |group| match (&group[0].range, &group[group.len() - 1].range) {
                (ChunkRange::IntKey { column, lo, .. }, ChunkRange::IntKey { hi, .. }) => {
                    ChunkRange::IntKey {
                        column: column.clone(),
                        lo: *lo,
                        hi: *hi,
                    }
                }
                (ChunkRange::CtidPages { lo, .. }, ChunkRange::CtidPages { hi, .. }) => {
                    ChunkRange::CtidPages { lo: *lo, hi: *hi }
                }
                _ => ChunkRange::Whole,
            },
        )
        .collect()
}

/// Integer-key ranges of about `chunk_rows` rows; the first is open below and the last above,
/// so rows outside `[min, max]` are never lost.
pub fn int_key_chunks(
    key: &str,
    min: i64,
    max: i64,
    count: u64,
    chunk_rows: u64,
) -> Vec<ChunkSpec> {
    let span = (max as i128 - min as i128 + 1).max(1) as u128;
    let chunks = count.div_ceil(chunk_rows).max(1) as u128;
    let step = span.div_ceil(chunks).max(1);
    let mut out = Vec::new();
    let mut lo = min as i128;
    while lo <= max as i128 {
        let hi = lo + step as i128;
        let first = out.is_empty();
        let last = hi > max as i128;
        out.push(ChunkSpec {
            id: format!("k{lo}"),
            range: ChunkRange::IntKey {
                column: key.to_string(),
                lo: (!first).then_some(lo as i64),
                hi: (!last).then_some(hi as i64),
            },
            estimated_rows: (count as u128 / chunks) as u64,
        });
        lo = hi;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_ranges_cover_the_same_rows() {
        let chunks = int_key_chunks("id", 1, 1000, 1000, 100);
        let merged = merge_ranges(&chunks, 3);
        assert_eq!(merged.len(), 3);
        assert!(matches!(merged[0], ChunkRange::IntKey { lo: None, .. }));
        assert!(matches!(merged[2], ChunkRange::IntKey { hi: None, .. }));
        assert_eq!(
            range_predicate(Dialect::Mysql, &merged[1]),
            Some("`id` >= 401 AND `id` < 801".into())
        );
        assert_eq!(range_predicate(Dialect::Postgres, &ChunkRange::Whole), None);
    }

    #[test]
    fn int_key_chunks_cover_everything_once() {
        let chunks = int_key_chunks("id", 1, 1000, 1000, 300);
        assert_eq!(chunks.len(), 4);
        assert!(matches!(
            chunks[0].range,
            ChunkRange::IntKey {
                lo: None,
                hi: Some(251),
                ..
            }
        ));
        assert!(matches!(
            chunks[3].range,
            ChunkRange::IntKey {
                lo: Some(751),
                hi: None,
                ..
            }
        ));
        let one = int_key_chunks("id", 5, 5, 1, 300);
        assert!(matches!(
            one[0].range,
            ChunkRange::IntKey {
                lo: None,
                hi: None,
                ..
            }
        ));
        let extreme = int_key_chunks("id", i64::MIN, i64::MAX, 10, 3);
        assert!(extreme.len() >= 3);
        assert!(matches!(
            extreme.last().unwrap().range,
            ChunkRange::IntKey { hi: None, .. }
        ));
    }
}
