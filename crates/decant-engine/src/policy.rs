//! Applies hazard policies to batches during the load, counting every value a policy changes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arrow_array::builder::{BinaryBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef, PrimitiveArray, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use decant_connectors::HazardBound;
use decant_core::hazard::{HazardKind, ValuePolicy};
use serde::Serialize;

use crate::hazards::PlannedCheck;

/// Values one policy changed in one column.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyChange {
    pub table: String,
    pub column: String,
    pub kind: HazardKind,
    pub policy: ValuePolicy,
    pub values: u64,
}

type Key = (String, String, HazardKind, ValuePolicy);

/// Counts of changed values, per table, column, kind and policy.
#[derive(Debug, Default, Clone)]
pub struct PolicyCounters {
    inner: Arc<Mutex<BTreeMap<Key, u64>>>,
}

impl PolicyCounters {
    /// Adds the counts of a committed chunk.
    pub fn merge(&self, table: &str, local: &BTreeMap<(String, HazardKind, ValuePolicy), u64>) {
        let mut inner = self.inner.lock().expect("counter lock");
        for ((column, kind, policy), n) in local {
            *inner
                .entry((table.to_string(), column.clone(), *kind, *policy))
                .or_default() += n;
        }
    }

    pub fn changes(&self) -> Vec<PolicyChange> {
        self.inner
            .lock()
            .expect("counter lock")
            .iter()
            .map(|((table, column, kind, policy), n)| PolicyChange {
                table: table.clone(),
                column: column.clone(),
                kind: *kind,
                policy: *policy,
                values: *n,
            })
            .collect()
    }
}

/// Per-chunk counts, merged into `PolicyCounters` only when the chunk commits.
pub type LocalCounts = BTreeMap<(String, HazardKind, ValuePolicy), u64>;

/// Applies every non-`fail` policy of `checks` to `batch` (source-typed columns named like the
/// checks' columns). Values with a `fail` policy pass through: the target or the conversion then
/// fails the chunk, naming table, column and range.
pub fn apply(
    batch: &RecordBatch,
    checks: &[PlannedCheck],
    counts: &mut LocalCounts,
) -> Result<RecordBatch, (usize, String)> {
    let active: Vec<&PlannedCheck> = checks
        .iter()
        .filter(|c| c.policy != ValuePolicy::Fail)
        .collect();
    if active.is_empty() {
        return Ok(batch.clone());
    }
    let schema = batch.schema();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    for c in active {
        let Some(i) = schema
            .fields()
            .iter()
            .position(|f| f.name() == &c.check.column)
        else {
            continue;
        };
        let (array, changed) = apply_one(&columns[i], c).map_err(|e| (i, e))?;
        if changed > 0 {
            *counts
                .entry((c.check.column.clone(), c.check.kind, c.policy))
                .or_default() += changed;
            columns[i] = array;
        }
    }
    RecordBatch::try_new(schema, columns).map_err(|e| (0, e.to_string()))
}

/// What to do with one value: keep it, make it NULL, or replace it.
enum Fix<T> {
    Keep,
    Null,
    Replace(T),
}

fn map_strings(a: &ArrayRef, f: impl Fn(&str) -> Fix<String>) -> (ArrayRef, u64) {
    let s = a.as_string::<i32>();
    let mut b = StringBuilder::with_capacity(s.len(), s.value_data().len());
    let mut changed = 0;
    for v in s.iter() {
        match v.map(&f) {
            None => b.append_null(),
            Some(Fix::Keep) => b.append_value(v.unwrap_or_default()),
            Some(Fix::Null) => {
                changed += 1;
                b.append_null()
            }
            Some(Fix::Replace(r)) => {
                changed += 1;
                b.append_value(r)
            }
        }
    }
    (Arc::new(b.finish()), changed)
}

fn map_primitive<T: ArrowPrimitiveType>(
    a: &ArrayRef,
    f: impl Fn(T::Native) -> Fix<T::Native>,
) -> (ArrayRef, u64) {
    let p = a.as_primitive::<T>();
    let mut changed = 0;
    let out: PrimitiveArray<T> = p
        .iter()
        .map(|v| match v.map(&f) {
            None => None,
            Some(Fix::Keep) => v,
            Some(Fix::Null) => {
                changed += 1;
                None
            }
            Some(Fix::Replace(r)) => {
                changed += 1;
                Some(r)
            }
        })
        .collect();
    let out = out.with_data_type(a.data_type().clone());
    (Arc::new(out), changed)
}

fn pick<T>(policy: ValuePolicy, coerced: impl FnOnce() -> T) -> Fix<T> {
    match policy {
        ValuePolicy::Coerce => Fix::Replace(coerced()),
        _ => Fix::Null,
    }
}

fn apply_one(a: &ArrayRef, c: &PlannedCheck) -> Result<(ArrayRef, u64), String> {
    let p = c.policy;
    Ok(match (c.check.kind, &c.check.bound, a.data_type()) {
        (HazardKind::NulByte, _, DataType::Utf8) => map_strings(a, |v| {
            if v.contains('\0') {
                pick(p, || v.replace('\0', ""))
            } else {
                Fix::Keep
            }
        }),
        (HazardKind::TooLong, HazardBound::MaxChars { chars }, DataType::Utf8) => {
            let n = *chars as usize;
            map_strings(a, |v| {
                if v.chars().count() > n {
                    pick(p, || v.chars().take(n).collect())
                } else {
                    Fix::Keep
                }
            })
        }
        (HazardKind::NotANumber, _, DataType::Float64) => {
            map_primitive::<Float64Type>(a, |v| if v.is_finite() { Fix::Keep } else { Fix::Null })
        }
        (HazardKind::NotANumber, _, DataType::Float32) => {
            map_primitive::<Float32Type>(a, |v| if v.is_finite() { Fix::Keep } else { Fix::Null })
        }
        (HazardKind::NotANumber, _, DataType::Utf8) => map_strings(a, |v| {
            if matches!(v, "NaN" | "Infinity" | "-Infinity") {
                Fix::Null
            } else {
                Fix::Keep
            }
        }),
        (HazardKind::OutOfRange, HazardBound::DateRange { min, max }, DataType::Date32) => {
            let (lo, hi) = (date_bound(min, i32::MIN), date_bound(max, i32::MAX));
            map_primitive::<Date32Type>(a, |v| {
                if v < lo {
                    pick(p, || lo)
                } else if v > hi {
                    pick(p, || hi)
                } else {
                    Fix::Keep
                }
            })
        }
        (
            HazardKind::OutOfRange,
            HazardBound::DateRange { min, max },
            DataType::Timestamp(TimeUnit::Microsecond, _),
        ) => {
            let day = 86_400_000_000i64;
            let lo = (date_bound(min, i32::MIN) as i64).saturating_mul(day);
            let hi = (date_bound(max, i32::MAX - 1) as i64 + 1)
                .saturating_mul(day)
                .saturating_sub(1);
            map_primitive::<TimestampMicrosecondType>(a, |v| {
                if v < lo {
                    pick(p, || lo)
                } else if v > hi {
                    pick(p, || hi)
                } else {
                    Fix::Keep
                }
            })
        }
        (HazardKind::OutOfRange, HazardBound::AbsAtLeast { limit }, DataType::UInt64) => {
            let max = limit
                .parse::<u64>()
                .map_or(u64::MAX, |l| l.saturating_sub(1));
            map_primitive::<UInt64Type>(a, |v| if v > max { pick(p, || max) } else { Fix::Keep })
        }
        (
            HazardKind::OutOfRange,
            HazardBound::AbsAtLeast { limit },
            DataType::Decimal128(_, scale),
        ) => {
            let digits = limit
                .trim_start_matches("1e")
                .parse::<u32>()
                .map_err(|_| format!("bad limit {limit}"))?;
            let bound = 10i128
                .checked_pow(digits + (*scale).max(0) as u32)
                .unwrap_or(i128::MAX);
            map_primitive::<Decimal128Type>(a, |v| {
                if v.unsigned_abs() >= bound.unsigned_abs() {
                    pick(p, || if v < 0 { -(bound - 1) } else { bound - 1 })
                } else {
                    Fix::Keep
                }
            })
        }
        (HazardKind::OutOfRange, HazardBound::AbsAtLeast { limit }, DataType::Utf8) => {
            let digits = limit
                .trim_start_matches("1e")
                .parse::<usize>()
                .map_err(|_| format!("bad limit {limit}"))?;
            map_strings(a, |v| {
                let int_digits = v
                    .trim_start_matches(['-', '+'])
                    .split('.')
                    .next()
                    .unwrap_or("")
                    .trim_start_matches('0')
                    .len();
                let fits = int_digits <= digits;
                if fits || matches!(v, "NaN" | "Infinity" | "-Infinity") {
                    Fix::Keep
                } else {
                    pick(p, || {
                        format!(
                            "{}{}",
                            if v.starts_with('-') { "-" } else { "" },
                            "9".repeat(digits)
                        )
                    })
                }
            })
        }
        (HazardKind::LobTooLarge, HazardBound::MaxBytes { bytes }, DataType::Utf8) => {
            let n = *bytes as usize;
            map_strings(a, |v| if v.len() > n { Fix::Null } else { Fix::Keep })
        }
        (HazardKind::LobTooLarge, HazardBound::MaxBytes { bytes }, DataType::Binary) => {
            let n = *bytes as usize;
            let b = a.as_binary::<i32>();
            let mut out = BinaryBuilder::with_capacity(b.len(), b.value_data().len());
            let mut changed = 0;
            for v in b.iter() {
                match v {
                    Some(v) if v.len() > n => {
                        changed += 1;
                        out.append_null()
                    }
                    Some(v) => out.append_value(v),
                    None => out.append_null(),
                }
            }
            (Arc::new(out.finish()) as ArrayRef, changed)
        }
        _ => (a.clone(), 0),
    })
}

/// Days since 1970 of an ISO date, `YYYY-MM-DD BC` and years past 9999 included.
fn date_bound(text: &str, fallback: i32) -> i32 {
    let (ad, bc) = match text.strip_suffix(" BC") {
        Some(ad) => (ad, true),
        None => (text, false),
    };
    let parts: Vec<i32> = ad.split('-').filter_map(|p| p.parse().ok()).collect();
    let [year, month, day] = parts[..] else {
        return fallback;
    };
    let year = if bc { 1 - year } else { year };
    chrono::NaiveDate::from_ymd_opt(year, month as u32, day as u32)
        .map(decant_connectors::batch::days_from_date)
        .unwrap_or(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hazards::PlannedCheck;
    use arrow_array::{Date32Array, StringArray};
    use arrow_schema::{Field, Schema};
    use decant_connectors::HazardCheck;
    use decant_connectors::batch::parse_date;

    fn check(
        column: &str,
        kind: HazardKind,
        bound: HazardBound,
        policy: ValuePolicy,
    ) -> PlannedCheck {
        PlannedCheck {
            check: HazardCheck {
                column: column.into(),
                kind,
                bound,
            },
            policy,
            resolve: String::new(),
        }
    }

    #[test]
    fn policies_change_only_hazardous_values_and_count_them() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("d", DataType::Date32, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![
                    Some("a\0b"),
                    Some("long text"),
                    None,
                    Some("ok"),
                ])),
                Arc::new(Date32Array::from(vec![
                    Some(i32::MAX),
                    Some(0),
                    None,
                    Some(i32::MIN),
                ])),
            ],
        )
        .unwrap();
        let checks = [
            check(
                "s",
                HazardKind::NulByte,
                HazardBound::None,
                ValuePolicy::Coerce,
            ),
            check(
                "s",
                HazardKind::TooLong,
                HazardBound::MaxChars { chars: 4 },
                ValuePolicy::Null,
            ),
            check(
                "d",
                HazardKind::OutOfRange,
                HazardBound::DateRange {
                    min: "0001-01-01".into(),
                    max: "9999-12-31".into(),
                },
                ValuePolicy::Coerce,
            ),
        ];
        let mut counts = LocalCounts::new();
        let out = apply(&batch, &checks, &mut counts).unwrap();
        let s = out.column(0).as_string::<i32>();
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            vec![Some("ab"), None, None, Some("ok")]
        );
        let d = out.column(1).as_primitive::<Date32Type>();
        assert_eq!(d.value(0), parse_date("9999-12-31").unwrap());
        assert_eq!(d.value(3), parse_date("0001-01-01").unwrap());
        assert_eq!(d.value(1), 0);
        assert_eq!(
            counts[&("s".to_string(), HazardKind::NulByte, ValuePolicy::Coerce)],
            1
        );
        assert_eq!(
            counts[&("s".to_string(), HazardKind::TooLong, ValuePolicy::Null)],
            1
        );
        assert_eq!(
            counts[&("d".to_string(), HazardKind::OutOfRange, ValuePolicy::Coerce)],
            2
        );
        assert!(date_bound("4713-01-01 BC", 0) < date_bound("0001-01-01", 0));
        assert!(date_bound("262142-12-31", i32::MAX) < i32::MAX);
        assert_eq!(date_bound("1970-01-02", 0), 1);
    }
}
