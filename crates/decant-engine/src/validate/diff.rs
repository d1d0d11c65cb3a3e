//! Narrowing a differing unit down to rows: re-read the rows of the differing digest buckets
//! from both sides, in groups that fit in memory, and match them by key (or, without a key,
//! count them as a multiset).

use std::cmp::Ordering;
use std::collections::HashMap;

use decant_core::canonical::decode_float;

use super::digest::{Filter, KeptRow};
use super::report::{ColumnDiff, DiffKind, Difference};
use super::table::TableCheck;

/// Groups the differing buckets `(bucket, rows)` so that each re-read keeps at most about
/// `budget` rows per side; a bucket larger than that is re-read in slices.
pub(crate) fn plan_filters(buckets: usize, differing: &[(usize, u64)], budget: u64) -> Vec<Filter> {
    let budget = budget.max(1);
    let mut out = Vec::new();
    let mut group = vec![false; buckets];
    let mut rows = 0u64;
    let mut any = false;
    for &(bucket, n) in differing {
        if n > budget {
            let parts = n.div_ceil(budget);
            for part in 0..parts {
                let mut only = vec![false; buckets];
                only[bucket] = true;
                out.push(Filter {
                    buckets: only,
                    parts,
                    part,
                });
            }
            continue;
        }
        if any && rows + n > budget {
            out.push(Filter {
                buckets: std::mem::replace(&mut group, vec![false; buckets]),
                parts: 1,
                part: 0,
            });
            rows = 0;
        }
        group[bucket] = true;
        rows += n;
        any = true;
    }
    if group.iter().any(|b| *b) {
        out.push(Filter {
            buckets: group,
            parts: 1,
            part: 0,
        });
    }
    out
}

/// Groups differing buckets of a range-bucketed unit into runs `(first, last, filter)`, each
/// re-read as one key range: neighbours (at most `max_gap` equal buckets apart) share a run
/// while their rows fit the `budget`; a bucket larger than the budget is re-read in slices.
pub(crate) fn plan_runs(
    buckets: usize,
    differing: &[(usize, u64)],
    budget: u64,
    max_gap: usize,
) -> Vec<(usize, usize, Filter)> {
    let budget = budget.max(1);
    let mut out: Vec<(usize, usize, Filter)> = Vec::new();
    let mut run: Option<(usize, usize, Vec<bool>, u64)> = None;
    for &(bucket, n) in differing {
        if n > budget {
            let parts = n.div_ceil(budget);
            for part in 0..parts {
                let mut only = vec![false; buckets];
                only[bucket] = true;
                let filter = Filter {
                    buckets: only,
                    parts,
                    part,
                };
                out.push((bucket, bucket, filter));
            }
            continue;
        }
        match &mut run {
            Some((_, last, wanted, rows))
                if bucket <= *last + max_gap + 1 && *rows + n <= budget =>
            {
                *last = bucket;
                wanted[bucket] = true;
                *rows += n;
            }
            _ => {
                if let Some((first, last, wanted, _)) = run.take() {
                    out.push((first, last, whole(wanted)));
                }
                let mut wanted = vec![false; buckets];
                wanted[bucket] = true;
                run = Some((bucket, bucket, wanted, n));
            }
        }
    }
    if let Some((first, last, wanted, _)) = run {
        out.push((first, last, whole(wanted)));
    }
    out
}

fn whole(buckets: Vec<bool>) -> Filter {
    Filter {
        buckets,
        parts: 1,
        part: 0,
    }
}

fn key_display(check: &TableCheck, row: &KeptRow) -> Vec<Option<String>> {
    check.order[..check.key_len]
        .iter()
        .map(|&i| row.display[i].clone())
        .collect()
}

/// True when two encoded floats are within the relative `tolerance`.
fn within_tolerance(a: &[u8], b: &[u8], tolerance: f64) -> bool {
    match (decode_float(a), decode_float(b)) {
        (Some(x), Some(y)) if tolerance > 0.0 && x.is_finite() && y.is_finite() => {
            (x - y).abs() <= tolerance * x.abs().max(y.abs())
        }
        _ => false,
    }
}

/// Matches rows by key. Returns the differences and the number of rows whose only differences
/// were floats within `tolerance`.
pub(crate) fn diff_keyed(
    check: &TableCheck,
    source: Vec<KeptRow>,
    target: Vec<KeptRow>,
    tolerance: f64,
) -> (Vec<Difference>, u64) {
    let mut by_key: HashMap<Vec<u8>, (Vec<KeptRow>, Vec<KeptRow>)> = HashMap::new();
    for r in source {
        by_key.entry(r.key.clone()).or_default().0.push(r);
    }
    for r in target {
        by_key.entry(r.key.clone()).or_default().1.push(r);
    }
    let names = check.column_names();
    let (mut out, mut tolerated) = (Vec::new(), 0u64);
    for (_, (mut src, mut tgt)) in by_key {
        // Identical rows first, so a duplicated key pairs the rows that match.
        src.retain(|s| match tgt.iter().position(|t| t.hash == s.hash) {
            Some(i) => {
                tgt.swap_remove(i);
                false
            }
            None => true,
        });
        let paired = src.len().min(tgt.len());
        for (s, t) in src.iter().zip(&tgt) {
            let mut columns = Vec::new();
            for pos in check.key_len..check.order.len() {
                let (a, b) = (s.value(pos), t.value(pos));
                if a != b && !within_tolerance(a, b, tolerance) {
                    let col = check.order[pos];
                    columns.push((
                        col,
                        ColumnDiff {
                            column: names[col].clone(),
                            source: s.display[col].clone(),
                            target: t.display[col].clone(),
                        },
                    ));
                }
            }
            if columns.is_empty() {
                tolerated += 1;
                continue;
            }
            columns.sort_by_key(|(col, _)| *col);
            out.push(Difference {
                kind: DiffKind::Changed,
                key: key_display(check, s),
                row: vec![],
                count: 1,
                columns: columns.into_iter().map(|(_, c)| c).collect(),
            });
        }
        for (rows, kind) in [(&src, DiffKind::Missing), (&tgt, DiffKind::Extra)] {
            for r in rows.iter().skip(paired) {
                out.push(Difference {
                    kind,
                    key: key_display(check, r),
                    row: vec![],
                    count: 1,
                    columns: vec![],
                });
            }
        }
    }
    (out, tolerated)
}

/// Counts rows as a multiset: a row more often in the source is missing, more often in the
/// target extra, with the difference of the counts.
pub(crate) fn diff_multiset(source: Vec<KeptRow>, target: Vec<KeptRow>) -> Vec<Difference> {
    let mut counts: HashMap<u128, (u64, u64, KeptRow)> = HashMap::new();
    for (rows, on_source) in [(source, true), (target, false)] {
        for r in rows {
            let e = counts.entry(r.hash).or_insert_with(|| (0, 0, r));
            if on_source {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
    }
    counts
        .into_values()
        .filter(|(s, t, _)| s != t)
        .map(|(s, t, r)| Difference {
            kind: if s > t {
                DiffKind::Missing
            } else {
                DiffKind::Extra
            },
            key: vec![],
            row: r.display,
            count: s.abs_diff(t),
            columns: vec![],
        })
        .collect()
}

/// Compares value lists the way a person sorts them: numbers by value, then text, NULL first.
fn compare_values(a: &[Option<String>], b: &[Option<String>]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = match (x, y) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(x), Some(y)) => match (x.parse::<i128>(), y.parse::<i128>()) {
                (Ok(p), Ok(q)) => p.cmp(&q),
                _ => x.cmp(y),
            },
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

/// Sorts differences by key (or row), then kind, so reports are stable from run to run.
pub(crate) fn sort_differences(diffs: &mut [Difference]) {
    diffs.sort_by(|a, b| {
        compare_values(&a.key, &b.key)
            .then_with(|| compare_values(&a.row, &b.row))
            .then_with(|| a.kind.cmp(&b.kind))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(filters: &[Filter]) -> Vec<usize> {
        let mut seen: Vec<usize> = filters
            .iter()
            .flat_map(|f| {
                f.buckets
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b)
                    .map(|(i, _)| i)
            })
            .collect();
        seen.sort();
        seen.dedup();
        seen
    }

    #[test]
    fn filters_fit_the_budget_and_cover_every_bucket() {
        let differing = [(1, 400), (3, 400), (5, 300), (7, 2500)];
        let filters = plan_filters(8, &differing, 1000);
        assert_eq!(total(&filters), vec![1, 3, 5, 7]);
        let slices: Vec<&Filter> = filters.iter().filter(|f| f.buckets[7]).collect();
        assert_eq!(slices.len(), 3, "2500 rows in slices of at most 1000");
        assert!(slices.iter().all(|f| f.parts == 3));
        assert_eq!(
            filters.len(),
            3 + 2,
            "400 + 400 fit together, 300 more do not"
        );
        assert!(plan_filters(8, &[], 1000).is_empty());
    }

    #[test]
    fn runs_join_neighbours_and_split_far_buckets() {
        let differing = [(0, 10), (2, 10), (50, 10), (60, 5000), (61, 10)];
        let runs: Vec<(usize, usize, u64)> = plan_runs(100, &differing, 1000, 8)
            .into_iter()
            .map(|(a, b, f)| (a, b, f.parts))
            .collect();
        assert_eq!(
            runs,
            vec![
                (0, 2, 1),
                (60, 60, 5),
                (60, 60, 5),
                (60, 60, 5),
                (60, 60, 5),
                (60, 60, 5),
                (50, 50, 1),
                (61, 61, 1)
            ]
        );
    }

    #[test]
    fn values_sort_numerically_then_as_text() {
        let v = |s: &[&str]| s.iter().map(|x| Some(x.to_string())).collect::<Vec<_>>();
        assert_eq!(compare_values(&v(&["9"]), &v(&["10"])), Ordering::Less);
        assert_eq!(compare_values(&v(&["b"]), &v(&["a"])), Ordering::Greater);
        assert_eq!(compare_values(&[None], &v(&["0"])), Ordering::Less);
    }

    #[test]
    fn tolerance_is_relative_and_only_for_floats() {
        let enc = |v: f64| {
            let mut out = Vec::new();
            decant_core::canonical::encode_float(v, &mut out);
            out
        };
        assert!(within_tolerance(&enc(100.0), &enc(100.00001), 1e-6));
        assert!(!within_tolerance(&enc(100.0), &enc(100.001), 1e-6));
        assert!(!within_tolerance(&enc(1.0), &enc(1.0 + 1e-12), 0.0));
        let mut int = Vec::new();
        decant_core::canonical::encode_int(1, &mut int);
        assert!(!within_tolerance(&int, &enc(1.0), 1.0));
    }
}
