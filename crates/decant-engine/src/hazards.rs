//! Which hazard checks a table needs — from its source and target types — and the policy that
//! resolves each, so that preflight, the run's planning scan and the load agree.

use std::collections::BTreeMap;

use decant_connectors::{HazardBound, HazardCheck, TargetColumn};
use decant_core::hazard::{HazardKind, PolicySet, ValuePolicy};
use decant_core::plan::Plan;
use decant_core::types::split_type_args;
use decant_core::{Dialect, LogicalType, TableName};
use serde::{Deserialize, Serialize};

use crate::planner::SourceColumn;

/// A check with the policy that applies to what it finds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedCheck {
    pub check: HazardCheck,
    pub policy: ValuePolicy,
    /// The plan key that changes this check's policy.
    pub resolve: String,
}

/// The date range a target's date and timestamp types hold.
pub fn date_range(target: Dialect) -> (&'static str, &'static str) {
    match target {
        // PostgreSQL holds dates to 294276 AD; Decant carries them to the end of what its date
        // arithmetic (chrono) knows, 262142 AD.
        Dialect::Postgres => ("4713-01-01 BC", "262142-12-31"),
        Dialect::Mysql | Dialect::Sqlite | Dialect::File | Dialect::Http => {
            ("0001-01-01", "9999-12-31")
        }
    }
}

fn char_limit(t: &LogicalType) -> Option<u32> {
    match t {
        LogicalType::Char { length } => Some(*length),
        LogicalType::Varchar { length: Some(n) } => Some(*n),
        _ => None,
    }
}

/// The checks one column needs, before policies.
fn column_checks(
    source: Dialect,
    target: Dialect,
    s: &SourceColumn,
    t: &TargetColumn,
    max_lob: Option<u64>,
) -> Vec<HazardCheck> {
    use LogicalType as L;
    let mut out = Vec::new();
    let mut add = |kind, bound| {
        out.push(HazardCheck {
            column: s.name.clone(),
            kind,
            bound,
        })
    };
    let dateish = matches!(
        s.logical,
        L::Date | L::Timestamp { .. } | L::TimestampTz { .. }
    );
    if source == Dialect::Mysql && dateish {
        add(HazardKind::ZeroDate, HazardBound::None);
        add(HazardKind::InvalidDate, HazardBound::None);
    }
    if source == Dialect::Postgres && dateish {
        let (min, max) = date_range(target);
        add(
            HazardKind::OutOfRange,
            HazardBound::DateRange {
                min: min.into(),
                max: max.into(),
            },
        );
    }
    // Character data only: bit strings, addresses and decimals travel as text but hold no NULs.
    let textual = matches!(
        s.logical,
        L::Char { .. } | L::Varchar { .. } | L::Text | L::Json | L::Enum { .. } | L::Set { .. }
    );
    if target == Dialect::Postgres && source != Dialect::Postgres && textual {
        add(HazardKind::NulByte, HazardBound::None);
    }
    // SQLite never checks that text is UTF-8; the reader does, and applies this policy.
    if source == Dialect::Sqlite && textual {
        add(HazardKind::InvalidEncoding, HazardBound::None);
    }
    if let Some(n) = char_limit(&t.logical) {
        let fits = source != Dialect::Sqlite && char_limit(&s.logical).is_some_and(|m| m <= n);
        if !fits && textual {
            add(
                HazardKind::TooLong,
                HazardBound::MaxChars { chars: n as u64 },
            );
        }
    }
    match (&s.logical, &t.logical) {
        (L::UInt64, L::Int64) => add(
            HazardKind::OutOfRange,
            HazardBound::AbsAtLeast {
                limit: "9223372036854775808".into(),
            },
        ),
        (
            L::Decimal { .. } | L::BigDecimal | L::Float32 | L::Float64,
            L::Decimal { precision, scale },
        ) => {
            let wider = match &s.logical {
                L::Decimal {
                    precision: sp,
                    scale: ss,
                } => (*sp as i32 - *ss as i32) > (*precision as i32 - *scale as i32),
                _ => true,
            };
            if wider {
                add(
                    HazardKind::OutOfRange,
                    HazardBound::AbsAtLeast {
                        limit: format!("1e{}", *precision as i32 - *scale as i32),
                    },
                );
            }
        }
        _ => {}
    }
    let nan_source =
        matches!(s.logical, L::Float32 | L::Float64 | L::BigDecimal) && source != Dialect::Mysql;
    // Files spell NaN out (CSV `NaN`, a JSON string, a Parquet float).
    let nan_target = match t.logical {
        L::Float32 | L::Float64 | L::BigDecimal => {
            matches!(target, Dialect::Postgres | Dialect::File)
        }
        _ => false,
    };
    if nan_source && !nan_target {
        add(HazardKind::NotANumber, HazardBound::None);
    }
    // Only types that can exceed the limit: a MySQL `text` holds 64 KB, a `longtext` 4 GB.
    let base = split_type_args(&s.native_type).0;
    let lob = matches!(s.logical, L::Binary { .. } | L::Text | L::Json)
        && !(source == Dialect::Mysql
            && matches!(
                base.as_str(),
                "tinytext" | "text" | "mediumtext" | "tinyblob" | "blob" | "mediumblob"
            ));
    let limit = max_lob
        .or((target == Dialect::Postgres && source == Dialect::Mysql).then_some((1 << 30) - 1));
    if let (true, Some(bytes)) = (lob, limit) {
        add(HazardKind::LobTooLarge, HazardBound::MaxBytes { bytes });
    }
    out
}

/// Plans the checks of one table and resolves every column's policies (column → type → global).
/// Problems (a policy that cannot apply to its kind) are appended to `problems`.
pub fn plan_checks(
    plan: &Plan,
    table: &TableName,
    source: Dialect,
    target: Dialect,
    columns: &[(SourceColumn, TargetColumn)],
    problems: &mut Vec<String>,
) -> (Vec<PlannedCheck>, BTreeMap<String, PolicySet>) {
    let cfg = plan
        .tables
        .get(&table.to_string())
        .or_else(|| plan.tables.get(&table.name));
    let max_lob = plan
        .policies
        .max_lob
        .as_deref()
        .and_then(|m| decant_core::size::parse_size(m).ok());
    let mut checks = Vec::new();
    let mut resolved = BTreeMap::new();
    for (s, t) in columns {
        let col_policies = cfg
            .and_then(|c| c.columns.get(&s.name))
            .map(|c| &c.policies);
        let base = split_type_args(&s.native_type).0;
        let mut set = PolicySet::default();
        for kind in HazardKind::ALL {
            let policy = plan.policies.resolve(kind, col_policies, &base);
            set.set(kind, policy);
        }
        for check in column_checks(source, target, s, t, max_lob) {
            let policy = set.get(check.kind).unwrap_or_default();
            if !check.kind.allows(policy) {
                let why = if policy == ValuePolicy::Reject {
                    "needs the quarantine, which this version does not have yet".to_string()
                } else {
                    format!("does not apply to {}", check.kind)
                };
                problems.push(
                    format!(
                        "{table}.{}: policy `{policy:?}` for {} {why}",
                        s.name, check.kind
                    )
                    .to_lowercase(),
                );
            }
            let resolve = format!(
                "[tables.\"{table}\".columns.\"{}\".policies] {kind} = \"null\"{coerce} (or [policies] {kind} = ... for every column)",
                s.name,
                kind = check.kind,
                coerce = if check.kind.allows(ValuePolicy::Coerce) {
                    " or \"coerce\""
                } else {
                    ""
                },
            );
            checks.push(PlannedCheck {
                check,
                policy,
                resolve,
            });
        }
        resolved.insert(s.name.clone(), set);
    }
    (checks, resolved)
}
