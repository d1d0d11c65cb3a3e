//! The migration plan: what to move, where, and how. TOML on disk, the same structs as JSON in the API.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::http::parse_duration;
use crate::size::parse_size;
use crate::url::ConnectionUrl;

/// A migration plan. Every key but `source.url` and `target.url` has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The job's name: a rerun of a plan with the same name resumes that job.
    /// Defaults to the plan file's name without extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub source: SourceConfig,
    pub target: TargetConfig,
    #[serde(default)]
    pub load: LoadConfig,
    /// Per-table settings, keyed by the source table's name (`name` or `schema.name`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tables: BTreeMap<String, TableConfig>,
    /// Type rules applied to every column, in order; the first that matches wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cast: Vec<CastRule>,
    #[serde(default)]
    pub policies: Policies,
    /// How `decant validate` (and, later, `decant run`) proves the target matches the source.
    #[serde(default)]
    pub validate: ValidateConfig,
}

/// Where data comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Connection URL; `${VAR}` is replaced by the environment variable `VAR` when connecting.
    pub url: String,
    /// Schemas to read (PostgreSQL); default: every schema but the system ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemas: Vec<String>,
    /// Tables to migrate, as glob patterns (`*`, `?`) on `name` or `schema.name`; default: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Tables to leave out, as glob patterns; applied after `include`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// How to read CSV/TSV files (`file://` sources); see docs/files.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv: Option<crate::files::CsvOptions>,
    /// How to read JSON Lines and JSON array files (`file://` sources); see docs/files.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<crate::files::JsonOptions>,
    /// How to read Parquet files (`file://` sources): the table's name and pinned types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parquet: Option<crate::files::ParquetOptions>,
    /// How to read an HTTP JSON API (`http://`, `https://` sources); see docs/http.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<crate::http::HttpOptions>,
}

/// Where data goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Connection URL; `${VAR}` is replaced by the environment variable `VAR` when connecting.
    pub url: String,
    /// Schema that receives the tables (PostgreSQL). Default: the source table's schema when the
    /// source is PostgreSQL, else `public`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// How to write files (`file:///dir/` targets): format, compression, layout, CSV options;
    /// see docs/files.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<crate::files::FileTargetOptions>,
}

/// What to do when a target table already exists. A table that does not exist is created
/// (except by `truncate` and `append`, which need it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IfExists {
    /// Stop before touching anything.
    Fail,
    /// Load into a shadow table, validate it, then swap names in one transaction; the old
    /// table is kept under a backup name until `decant finalize` (or `swap_retention`), so
    /// rollback swaps back (the default).
    #[default]
    Swap,
    /// Insert new keys and update existing ones (the table's primary key or `key`), recording
    /// the pre-image of every row changed so that rollback can restore it.
    Upsert,
    /// Empty the existing table, keep its definition.
    Truncate,
    /// Add rows to the existing table.
    Append,
    /// Drop the table and create it from the source's definition.
    Drop,
}

/// How the load runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadConfig {
    /// Chunks loaded at the same time.
    pub parallelism: usize,
    /// Target rows per chunk (tables split on their integer key, or PostgreSQL pages).
    pub chunk_rows: u64,
    /// Rows per Arrow batch between reader and writer.
    pub batch_rows: usize,
    /// What to do when a target table exists.
    pub if_exists: IfExists,
    /// Bytes of batches in flight at most, e.g. `"256MB"`.
    pub max_memory: String,
    /// Create the primary key after the data (faster for new tables).
    pub primary_key_after_load: bool,
    /// Attempts per chunk when the connection drops (1 = no retry).
    pub retries: u32,
    /// Rejected records (quarantined with their reason) the job tolerates in all; one more
    /// fails the job, leaving the chunks committed so far consistent and resumable. The default
    /// 0 fails on the first reject; raise it to load past bad records.
    pub max_rejects: u64,
    /// Rejected records as a share of the rows read (0.0–1.0) the job tolerates, checked as each
    /// chunk commits; unset means no ratio limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_reject_ratio: Option<f64>,
    /// Push the part of each table's `where` that the source evaluates exactly into the
    /// source's query (docs/transform.md); `false` reads every row and filters in the engine.
    pub push_filters: bool,
    /// How long a succeeded job keeps its swap backups and upsert pre-images (e.g. `"7d"`)
    /// before `decant serve` or `decant finalize --expired` finalizes it; unset keeps them until
    /// an explicit finalize.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap_retention: Option<String>,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            parallelism: 4,
            chunk_rows: 250_000,
            batch_rows: 8192,
            if_exists: IfExists::Swap,
            max_memory: "256MB".into(),
            primary_key_after_load: true,
            retries: 5,
            max_rejects: 0,
            max_reject_ratio: None,
            push_filters: true,
            swap_retention: None,
        }
    }
}

impl LoadConfig {
    pub fn max_memory_bytes(&self) -> Result<u64, CoreError> {
        parse_size(&self.max_memory)
    }

    /// `swap_retention` as a duration; `None` when the plan keeps backups until finalized.
    pub fn swap_retention(&self) -> Result<Option<Duration>, CoreError> {
        self.retention().map_err(CoreError::Plan)
    }

    fn retention(&self) -> Result<Option<Duration>, String> {
        self.swap_retention
            .as_deref()
            .map(|text| {
                parse_duration(text).map_err(|e| {
                    format!("load.swap_retention: {e}; use a number with s, m, h or d, e.g. \"7d\"")
                })
            })
            .transpose()
    }
}

/// Settings for one table.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// The table's name on the target (default: the source name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rename: Option<String>,
    /// Leave the table out.
    #[serde(default)]
    pub skip: bool,
    /// Overrides `load.if_exists` for this table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_exists: Option<IfExists>,
    /// Overrides `load.chunk_rows` for this table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_rows: Option<u64>,
    /// The target columns an `upsert` matches rows on, when not the table's primary key; the
    /// target needs a unique index on exactly these columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Vec<String>>,
    /// Per-column settings, keyed by the source column name; a key that names no source column
    /// with an `expr` or `value` adds a computed column.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, ColumnConfig>,
    /// Only rows for which this SQL expression is true are loaded (DataFusion dialect, over the
    /// source and computed columns); the others are counted as filtered.
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Row rules, checked in order on every row (after `expr`, before masking).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<crate::transform::RowRule>,
    /// Loads one row per key (the first or last by primary key); the others go to the
    /// quarantine as duplicates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedupe: Option<crate::transform::Dedupe>,
    /// The target's column order, by target column name; columns not named follow in their
    /// source order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order: Vec<String>,
    /// Rejected records this table tolerates (on top of `load.max_rejects` for the job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rejects: Option<u64>,
    /// Rejected records as a share of this table's rows read (0.0–1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_reject_ratio: Option<f64>,
}

/// Settings for one column.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnConfig {
    /// The column's name on the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rename: Option<String>,
    /// The target's native type for this column (e.g. `"text"`, `"numeric(20,0)"`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub target_type: Option<String>,
    /// Leave the column out.
    #[serde(default)]
    pub skip: bool,
    /// Hazard policies for this column; they override the type's and the global ones.
    #[serde(default, skip_serializing_if = "is_default_policies")]
    pub policies: PolicySet,
    /// A SQL expression (DataFusion dialect) over the source columns whose value replaces the
    /// column's, e.g. `lower(trim(email))`; on a new key, a computed column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expr: Option<String>,
    /// A constant for every row (string, number or boolean): a constant column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    /// Masks the value everywhere it could leak: target, quarantine, logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<crate::transform::Mask>,
}

fn is_default_policies(p: &PolicySet) -> bool {
    *p == PolicySet::default()
}

/// A global type rule in the spirit of pgloader's CAST: columns whose source type matches get
/// `target_type` on the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CastRule {
    /// Matched case-insensitively against the column's native type: either the whole type
    /// (`tinyint(1)`, `varchar(255)`) or its base name (`datetime`, `character varying`).
    pub source_type: String,
    /// Only columns with this name (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// The target's native type to create.
    pub target_type: String,
}

pub use crate::hazard::{Policies, PolicySet, ValuePolicy};

/// How much a run proves about the data it copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidateMode {
    /// No proof beyond the chunk markers.
    Off,
    /// Row counts, source against target (what `decant run` always checks).
    #[default]
    Count,
    /// Row counts and per-chunk digests of every value, with a row-level diff where they differ.
    Checksum,
}

/// Validation settings: the comparison, and rules the target must satisfy.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidateConfig {
    /// What `decant run` validates after loading (`decant validate` always compares digests).
    pub mode: ValidateMode,
    /// Relative tolerance for floating-point values: `|a - b| <= float_tolerance * max(|a|, |b|)`
    /// counts as equal. 0 (the default) compares floats exactly.
    pub float_tolerance: f64,
    /// Business rules checked on the target, as SQL that returns one number.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<ValidationRule>,
}

/// A business rule: `sql` runs on the target and its first value must equal `expect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationRule {
    /// A short name for reports (`no negative totals`).
    pub name: String,
    /// A query in the target's SQL returning one row whose first column is a number,
    /// e.g. `SELECT count(*) FROM orders WHERE total < 0`.
    pub sql: String,
    /// The value the query must return (default 0).
    #[serde(default)]
    pub expect: i64,
}

impl Plan {
    /// Parses a TOML plan.
    pub fn from_toml(text: &str) -> Result<Plan, CoreError> {
        let plan: Plan = toml::from_str(text).map_err(|e| CoreError::Plan(e.to_string()))?;
        plan.check()?;
        Ok(plan)
    }

    /// Parses a JSON plan (the API's form).
    pub fn from_json(text: &str) -> Result<Plan, CoreError> {
        let plan: Plan = serde_json::from_str(text).map_err(|e| CoreError::Plan(e.to_string()))?;
        plan.check()?;
        Ok(plan)
    }

    /// Reads a plan file; its name defaults to the file's stem.
    pub fn from_file(path: &Path) -> Result<Plan, CoreError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CoreError::Plan(format!("cannot read {}: {e}", path.display())))?;
        let mut plan = if path.extension().is_some_and(|e| e == "json") {
            Plan::from_json(&text)?
        } else {
            Plan::from_toml(&text)?
        };
        if plan.name.is_none() {
            plan.name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        }
        Ok(plan)
    }

    /// Checks what serde cannot: values in range, URLs well-formed once resolved.
    pub fn check(&self) -> Result<(), CoreError> {
        let mut problems = Vec::new();
        if self.load.parallelism == 0 {
            problems.push("load.parallelism must be at least 1".to_string());
        }
        if self.load.chunk_rows == 0 {
            problems.push("load.chunk_rows must be at least 1".to_string());
        }
        if self.load.batch_rows == 0 {
            problems.push("load.batch_rows must be at least 1".to_string());
        }
        if let Err(e) = self.load.max_memory_bytes() {
            problems.push(format!("load.max_memory: {e}"));
        }
        if let Err(e) = self.load.retention() {
            problems.push(e);
        }
        let tolerance = self.validate.float_tolerance;
        if !tolerance.is_finite() || tolerance < 0.0 {
            problems.push(format!(
                "validate.float_tolerance must be a number >= 0 (a relative tolerance such as 1e-6), not {tolerance}"
            ));
        }
        if let Some(r) = self.load.max_reject_ratio
            && !(0.0..=1.0).contains(&r)
        {
            problems.push(format!(
                "load.max_reject_ratio must be between 0 and 1, not {r}"
            ));
        }
        for (name, t) in &self.tables {
            if let Some(r) = t.max_reject_ratio
                && !(0.0..=1.0).contains(&r)
            {
                problems.push(format!(
                    "[tables.\"{name}\"] max_reject_ratio must be between 0 and 1, not {r}"
                ));
            }
            if t.key
                .as_ref()
                .is_some_and(|k| k.is_empty() || k.iter().any(|c| c.trim().is_empty()))
            {
                problems.push(format!(
                    "[tables.\"{name}\"] key must name at least one column, and no empty name"
                ));
            }
            let mut rule_names = std::collections::HashSet::new();
            for rule in &t.rules {
                if rule.name.trim().is_empty() || !rule_names.insert(rule.name.as_str()) {
                    problems.push(format!(
                        "[tables.\"{name}\"] rules need a unique, non-empty name (`{}`)",
                        rule.name
                    ));
                }
            }
            for (col, c) in &t.columns {
                if c.expr.is_some() && c.value.is_some() {
                    problems.push(format!(
                        "[tables.\"{name}\".columns.\"{col}\"] has both expr and value; keep one"
                    ));
                }
                if c.skip && (c.expr.is_some() || c.value.is_some() || c.mask.is_some()) {
                    problems.push(format!(
                        "[tables.\"{name}\".columns.\"{col}\"] is skipped and transformed; keep one"
                    ));
                }
            }
        }
        if let Some(http) = &self.source.http
            && let Err(e) = http.check()
        {
            problems.push(e.to_string());
        }
        let mut names = std::collections::HashSet::new();
        for (i, rule) in self.validate.rules.iter().enumerate() {
            if rule.name.trim().is_empty() {
                problems.push(format!("validate.rules[{i}] needs a name"));
            } else if !names.insert(rule.name.as_str()) {
                problems.push(format!(
                    "validate.rules: two rules are named `{}`; names must be unique",
                    rule.name
                ));
            }
            if rule.sql.trim().is_empty() {
                problems.push(format!("validate.rules[{i}] (`{}`) needs sql", rule.name));
            }
        }
        let file_target = self.target.url.starts_with("file://");
        if file_target && self.validate.mode == ValidateMode::Checksum {
            problems.push(
                "validate.mode = \"checksum\" compares digests in databases; a file target is proven by row counts (mode = \"count\")".to_string(),
            );
        }
        if self.target.file.is_some() && !file_target && !self.target.url.contains("${") {
            problems.push("[target.file] is for file:// targets only".to_string());
        }
        for (key, url) in [
            ("source.url", &self.source.url),
            ("target.url", &self.target.url),
        ] {
            if !url.contains("${")
                && let Err(e) = ConnectionUrl::parse(url)
            {
                problems.push(format!("{key}: {e}"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(CoreError::Plan(problems.join("; ")))
        }
    }

    /// The job name, or `decant` when neither the plan nor a file gave one.
    pub fn job_name(&self) -> &str {
        self.name.as_deref().unwrap_or("decant")
    }

    pub fn source_url(&self) -> Result<ConnectionUrl, CoreError> {
        ConnectionUrl::parse(&expand_env(&self.source.url)?)
    }

    pub fn target_url(&self) -> Result<ConnectionUrl, CoreError> {
        ConnectionUrl::parse(&expand_env(&self.target.url)?)
    }
}

/// Replaces `${VAR}` with the environment variable `VAR`; `$${` stays a literal `${`.
pub fn expand_env(text: &str) -> Result<String, CoreError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(lit) = after.strip_prefix("${") {
            out.push_str("${");
            rest = lit;
        } else if let Some(var) = after.strip_prefix('{') {
            let end = var
                .find('}')
                .ok_or_else(|| CoreError::Plan(format!("unclosed ${{ in `{text}`")))?;
            let name = &var[..end];
            let value = std::env::var(name).map_err(|_| CoreError::MissingEnv(name.to_string()))?;
            out.push_str(&value);
            rest = &var[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Glob matching with `*` and `?`, used for table selection.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_plan_parses_with_defaults() {
        let plan = Plan::from_toml(
            "[source]\nurl = \"mysql://root@127.0.0.1:3306/sakila\"\n[target]\nurl = \"postgres://root@127.0.0.1:5432/sakila\"\n",
        )
        .unwrap();
        assert_eq!(plan.load, LoadConfig::default());
        assert!(plan.tables.is_empty());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = Plan::from_toml(
            "[source]\nurl = \"sqlite://a.db\"\nurll = 1\n[target]\nurl = \"sqlite://b.db\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("urll"), "{err}");
    }

    #[test]
    fn json_and_toml_are_the_same_structs() {
        let toml = Plan::from_toml(
            "[source]\nurl = \"sqlite://a.db\"\n[target]\nurl = \"sqlite://b.db\"\n[load]\nif_exists = \"append\"\n",
        )
        .unwrap();
        let json = Plan::from_json(&serde_json::to_string(&toml).unwrap()).unwrap();
        assert_eq!(toml, json);
    }

    #[test]
    fn validate_settings_are_checked() {
        let base = "[source]\nurl = \"sqlite://a.db\"\n[target]\nurl = \"sqlite://b.db\"\n";
        let plan = Plan::from_toml(base).unwrap();
        assert_eq!(plan.validate, ValidateConfig::default());
        assert_eq!(plan.validate.mode, ValidateMode::Count);
        let ok = Plan::from_toml(&format!(
            "{base}[validate]\nmode = \"checksum\"\nfloat_tolerance = 1e-9\n[[validate.rules]]\nname = \"r\"\nsql = \"SELECT 0\"\n"
        ))
        .unwrap();
        assert_eq!(ok.validate.rules[0].expect, 0);
        assert_eq!(ok.validate.mode, ValidateMode::Checksum);
        let err = Plan::from_toml(&format!(
            "{base}[validate]\nfloat_tolerance = -1.0\n[[validate.rules]]\nname = \"r\"\nsql = \"\"\n[[validate.rules]]\nname = \"r\"\nsql = \"SELECT 1\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("float_tolerance"), "{err}");
        assert!(err.contains("needs sql"), "{err}");
        assert!(err.contains("two rules are named `r`"), "{err}");
        assert!(
            Plan::from_toml(&format!("{base}[validate]\nmode = \"full\"\n")).is_err(),
            "unknown modes are refused"
        );
    }

    #[test]
    fn swap_retention_is_a_duration() {
        let base = "[source]\nurl = \"sqlite://a.db\"\n[target]\nurl = \"sqlite://b.db\"\n";
        assert_eq!(
            Plan::from_toml(base)
                .unwrap()
                .load
                .swap_retention()
                .unwrap(),
            None
        );
        let week = Plan::from_toml(&format!("{base}[load]\nswap_retention = \"7d\"\n")).unwrap();
        assert_eq!(
            week.load.swap_retention().unwrap(),
            Some(Duration::from_secs(7 * 86_400))
        );
        let err = Plan::from_toml(&format!("{base}[load]\nswap_retention = \"a week\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("load.swap_retention"), "{err}");
        assert!(err.contains("`a week` is not a duration"), "{err}");
    }

    #[test]
    fn env_expansion() {
        let home = std::env::var("HOME").expect("HOME is set");
        assert_eq!(
            expand_env("postgres://u:${HOME}@h/db").unwrap(),
            format!("postgres://u:{home}@h/db")
        );
        assert_eq!(expand_env("a$${b}").unwrap(), "a${b}");
        assert!(matches!(
            expand_env("${DECANT_SURELY_UNSET_42}"),
            Err(CoreError::MissingEnv(_))
        ));
    }

    #[test]
    fn globs() {
        assert!(glob_match("film*", "film_actor"));
        assert!(glob_match("*", "x"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("film*", "actor"));
        assert!(glob_match("public.*", "public.t"));
    }
}
