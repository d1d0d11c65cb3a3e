//! The validation report: what was compared, what differs, which rules failed, and how long
//! it took. Serialized as the `--report` JSON; rendered as HTML by `html`.

use serde::{Deserialize, Serialize};

/// The verdict of a table, a rule, or a whole validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Everything compared is equal; every rule holds.
    Match,
    /// Differences were found, or a rule failed.
    Differences,
    /// Something could not be compared or checked: the report is incomplete.
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Match => "match",
            Outcome::Differences => "differences",
            Outcome::Error => "error",
        }
    }
}

/// How a row differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    /// In the source, not in the target.
    Missing,
    /// In the target, not in the source.
    Extra,
    /// The same key on both sides, with different values.
    Changed,
}

impl DiffKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DiffKind::Missing => "missing",
            DiffKind::Extra => "extra",
            DiffKind::Changed => "changed",
        }
    }
}

/// One column of a changed row, with its value on each side (`None` is NULL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDiff {
    pub column: String,
    pub source: Option<String>,
    pub target: Option<String>,
}

/// One differing row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    pub kind: DiffKind,
    /// The key's values, in the order of the table's `key_columns` (empty without a key).
    pub key: Vec<Option<String>>,
    /// Tables without a key: the whole row, in the order of the table's `columns`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub row: Vec<Option<String>>,
    /// How many identical rows this entry stands for (tables without a key; 1 otherwise).
    pub count: u64,
    /// For `changed`: the columns that differ.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnDiff>,
}

/// The comparison of one table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableReport {
    pub source_table: String,
    pub target_table: String,
    /// How rows were matched: `key ranges`, `key hash` or `multiset` (no key).
    pub method: String,
    /// The columns rows are matched by (target names); empty for a multiset.
    pub key_columns: Vec<String>,
    /// The columns compared (target names).
    pub columns: Vec<String>,
    pub source_rows: Option<u64>,
    pub target_rows: Option<u64>,
    /// Units whose digests were compared (key-range chunks, or 1 for a whole table).
    pub chunks: usize,
    pub chunks_differing: usize,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub differences: Vec<Difference>,
    /// More differences exist than the report lists (`--max-diffs`).
    pub differences_truncated: bool,
    /// Rows whose only differences are floats within `float_tolerance`.
    pub rows_within_tolerance: u64,
    /// Source rows the plan's `where` filter leaves out: not expected on the target.
    #[serde(default)]
    pub rows_filtered: u64,
    /// Source rows the plan's row rules reject (the run quarantines them): not expected on
    /// the target, and not counted in `source_rows`.
    #[serde(default)]
    pub rows_rejected: u64,
    pub duration_secs: f64,
    pub notes: Vec<String>,
}

impl TableReport {
    /// Counts of listed differences by kind: (missing, extra, changed), multiset counts included.
    pub fn counts(&self) -> (u64, u64, u64) {
        let mut c = (0, 0, 0);
        for d in &self.differences {
            match d.kind {
                DiffKind::Missing => c.0 += d.count,
                DiffKind::Extra => c.1 += d.count,
                DiffKind::Changed => c.2 += d.count,
            }
        }
        c
    }
}

/// Where a rule comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// Derived from the plan: foreign-key orphans, duplicate keys, NULLs in NOT NULL columns.
    Integrity,
    /// Written in the plan's `[[validate.rules]]`.
    Business,
}

/// How a rule fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleStatus {
    Passed,
    Failed,
    /// Not run: the target enforces it with a constraint.
    Enforced,
    /// The query failed.
    Error,
}

/// One rule checked on the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleResult {
    pub name: String,
    pub kind: RuleKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    pub sql: String,
    pub expected: i64,
    pub actual: Option<i64>,
    pub status: RuleStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub duration_secs: f64,
}

/// Everything `decant validate` found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationReport {
    pub job_name: String,
    /// Connection URLs, passwords hidden.
    pub source: String,
    pub target: String,
    /// `checksum` (digests and row diffs) or `count` (row counts only).
    pub mode: String,
    pub float_tolerance: f64,
    pub started_at: String,
    pub duration_secs: f64,
    pub outcome: Outcome,
    pub tables: Vec<TableReport>,
    pub rules: Vec<RuleResult>,
    pub warnings: Vec<String>,
}

impl ValidationReport {
    /// The verdict: an error anywhere beats differences, which beat a match.
    pub fn compute_outcome(&self) -> Outcome {
        let tables = self.tables.iter().map(|t| t.outcome);
        let rules = self.rules.iter().map(|r| match r.status {
            RuleStatus::Passed | RuleStatus::Enforced => Outcome::Match,
            RuleStatus::Failed => Outcome::Differences,
            RuleStatus::Error => Outcome::Error,
        });
        tables.chain(rules).max().unwrap_or(Outcome::Match)
    }

    /// The process exit code, like `diff`: 0 everything matches, 1 differences or failed
    /// rules, 2 errors.
    pub fn exit_code(&self) -> u8 {
        match self.outcome {
            Outcome::Match => 0,
            Outcome::Differences => 1,
            Outcome::Error => 2,
        }
    }

    /// Differing rows listed over all tables (multiset counts included).
    pub fn difference_count(&self) -> u64 {
        self.tables
            .iter()
            .map(|t| {
                let (m, e, c) = t.counts();
                m + e + c
            })
            .sum()
    }

    pub fn rules_failed(&self) -> usize {
        self.rules
            .iter()
            .filter(|r| r.status == RuleStatus::Failed)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(outcome: Outcome) -> TableReport {
        TableReport {
            source_table: "s".into(),
            target_table: "t".into(),
            method: "key ranges".into(),
            key_columns: vec!["id".into()],
            columns: vec!["id".into()],
            source_rows: Some(1),
            target_rows: Some(1),
            chunks: 1,
            chunks_differing: 0,
            outcome,
            error: None,
            differences: vec![Difference {
                kind: DiffKind::Extra,
                key: vec![],
                row: vec![Some("1".into())],
                count: 3,
                columns: vec![],
            }],
            differences_truncated: false,
            rows_within_tolerance: 0,
            rows_filtered: 0,
            rows_rejected: 0,
            duration_secs: 0.0,
            notes: vec![],
        }
    }

    #[test]
    fn errors_beat_differences_beat_matches() {
        let mut r = ValidationReport {
            job_name: "j".into(),
            source: "s".into(),
            target: "t".into(),
            mode: "checksum".into(),
            float_tolerance: 0.0,
            started_at: String::new(),
            duration_secs: 0.0,
            outcome: Outcome::Match,
            tables: vec![table(Outcome::Match), table(Outcome::Differences)],
            rules: vec![],
            warnings: vec![],
        };
        assert_eq!(r.compute_outcome(), Outcome::Differences);
        assert_eq!(r.difference_count(), 6, "multiset counts add up");
        r.rules.push(RuleResult {
            name: "r".into(),
            kind: RuleKind::Business,
            table: None,
            sql: "SELECT 1".into(),
            expected: 0,
            actual: None,
            status: RuleStatus::Error,
            detail: None,
            duration_secs: 0.0,
        });
        r.outcome = r.compute_outcome();
        assert_eq!((r.outcome, r.exit_code()), (Outcome::Error, 2));
    }
}
