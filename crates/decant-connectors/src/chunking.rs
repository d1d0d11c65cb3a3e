//! Splitting a table into chunks on an integer key, shared by every connector.

use decant_core::{ChunkRange, ChunkSpec};

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
