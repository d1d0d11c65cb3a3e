//! The plan's transform keys: computed and constant columns, masks, filters and row rules. The
//! `decant-transform` crate compiles them; this module only holds their shape.

use serde::{Deserialize, Serialize};

/// How a column's values are masked on their way to the target (and to the quarantine).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "method", rename_all = "snake_case")]
pub enum Mask {
    /// Keyed HMAC-SHA256, as hex: the same input and key give the same value in every chunk
    /// and every run, so joins on the masked column still work.
    Hmac {
        /// The environment variable holding the key (never the key itself).
        key_env: String,
        /// Hex digits kept (default 64, the whole digest).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        length: Option<usize>,
    },
    /// Every non-null value becomes `text` (default `[redacted]`).
    Redact {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    /// All characters but the last `keep` (default 4) become `*`: `****1234`.
    Partial {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        keep: Option<usize>,
    },
    /// Format-preserving fake: each letter becomes a letter, each digit a digit, of the same
    /// case, the rest stays (`@`, `.`, `-`): stable per input, keyed when `key_env` is set.
    Fake {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_env: Option<String>,
    },
}

/// What happens to a row that breaks a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    /// The row goes to the quarantine with the rule and the reason (the default).
    #[default]
    Reject,
    /// The row loads; the summary counts it.
    Warn,
    /// The job stops before the chunk commits.
    Fail,
}

/// A row rule: `check` says what a good row looks like.
// No `deny_unknown_fields`: serde does not support it with `flatten`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowRule {
    /// A short name, unique in the table, shown in the quarantine and the summary.
    pub name: String,
    #[serde(default)]
    pub action: RuleAction,
    #[serde(flatten)]
    pub check: RuleCheck,
}

/// The kinds of rule. Columns are named as the transforms see them: source names, plus the
/// names of computed columns; values are checked after `expr`, before masking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RuleCheck {
    /// The column holds a value.
    NotNull { column: String },
    /// `min <= value <= max` (either bound optional); NULL passes (pair with not_null).
    Range {
        column: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<serde_json::Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<serde_json::Value>,
    },
    /// The text matches the regular expression (Rust `regex` syntax); NULL passes.
    Regex { column: String, pattern: String },
    /// The value is one of `values`; NULL passes.
    InSet {
        column: String,
        values: Vec<serde_json::Value>,
    },
    /// The text's length in characters is within bounds; NULL passes.
    Length {
        column: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<u64>,
    },
    /// Any boolean SQL expression (DataFusion dialect); false or NULL breaks the rule.
    Expr { sql: String },
    /// No two rows of this load share the values of `columns` (across chunks; NULLs are not
    /// compared, as in SQL). The first row seen wins; later ones break the rule.
    Unique { columns: Vec<String> },
    /// The value of `column` (or the values of several columns) exists as `key` in `table` of
    /// the target or the source; a NULL in any of the columns passes (as a foreign key does).
    /// The keys are read once per run into a set (at most `max_keys`); values compare by their
    /// text form (`42` matches `42`, not `42.0`).
    Reference {
        column: Columns,
        /// The lookup table, `schema.table` or `table` (then the side's default schema).
        table: String,
        key: Columns,
        #[serde(default)]
        side: ReferenceSide,
        /// The most keys the lookup may hold in memory (about 40 bytes each); default
        /// 2,000,000. A larger table fails the run at its start with a message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_keys: Option<u64>,
    },
}

/// One column name or several (a composite reference).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Columns {
    One(String),
    Many(Vec<String>),
}

impl Columns {
    pub fn names(&self) -> Vec<String> {
        match self {
            Columns::One(c) => vec![c.clone()],
            Columns::Many(c) => c.clone(),
        }
    }
}

/// Where a `reference` rule looks its keys up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceSide {
    /// The target database: a table loaded earlier (in this job, its chunks commit first) or
    /// one that was there already.
    #[default]
    Target,
    /// The source database (or the file source).
    Source,
}

/// Default cap on the keys a `reference` rule holds.
pub const REFERENCE_MAX_KEYS: u64 = 2_000_000;

impl RuleCheck {
    /// The kind's name, as in the plan.
    pub fn kind(&self) -> &'static str {
        match self {
            RuleCheck::NotNull { .. } => "not_null",
            RuleCheck::Range { .. } => "range",
            RuleCheck::Regex { .. } => "regex",
            RuleCheck::InSet { .. } => "in_set",
            RuleCheck::Length { .. } => "length",
            RuleCheck::Expr { .. } => "expr",
            RuleCheck::Unique { .. } => "unique",
            RuleCheck::Reference { .. } => "reference",
        }
    }
}

/// Keeps one row per key: `dedupe = { key = ["email"], keep = "first" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dedupe {
    /// The columns that make rows duplicates (as the transforms see them: source names and
    /// computed columns, after `expr`); rows with a NULL in one of them are all kept.
    pub key: Vec<String>,
    #[serde(default)]
    pub keep: Keep,
    /// The most distinct keys held in memory (about 80 bytes each); default 2,000,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_keys: Option<u64>,
}

/// Which row of a key's duplicates loads, by the table's primary key order on the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Keep {
    /// The row with the smallest primary key.
    #[default]
    First,
    /// The row with the largest primary key.
    Last,
}
