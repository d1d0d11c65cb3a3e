//! The planner: which tables move, how each column maps, in which order tables load, and the
//! DDL, all computed before anything touches the target.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow_schema::{Schema, SchemaRef};
use decant_connectors::{DdlSet, ReadColumn, Target, TargetColumn, TargetTable};
use decant_core::plan::{CastRule, IfExists, Plan, glob_match};
use decant_core::types::split_type_args;
use decant_core::{Catalog, Dialect, ForeignKey, Index, LogicalType, Table, TableName};
use serde::{Deserialize, Serialize};

use crate::error::EngineError;

/// A column to read, as stored in the job (serializable twin of `ReadColumn`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceColumn {
    pub name: String,
    pub native_type: String,
    pub logical: LogicalType,
}

/// Everything the runner needs for one table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableJob {
    pub source: TableName,
    pub source_columns: Vec<SourceColumn>,
    pub target: TargetTable,
    pub ddl: DdlSet,
    pub if_exists: IfExists,
    pub chunk_rows: u64,
    pub row_estimate: u64,
    pub size_bytes: u64,
    /// Notes for the user: lossy mappings, dropped indexes, foreign keys to tables left out.
    pub notes: Vec<String>,
    /// The hazard checks this table needs, each with the policy that resolves what it finds.
    pub checks: Vec<crate::hazards::PlannedCheck>,
    /// Every column's hazard policies, resolved (column → type → global), by source column.
    pub policies: std::collections::BTreeMap<String, decant_core::hazard::PolicySet>,
    /// The table's transforms (computed columns, filter, rules, masks); none when the plan
    /// declares none, and then the runner skips that stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<decant_transform::TransformSpec>,
}

impl TableJob {
    /// The policies a reader of this table gets: the plan's, with every column's resolved set
    /// and the columns whose NUL bytes make a record a reject (readers with a quarantine).
    pub fn reader_policies(
        &self,
        plan: &decant_core::plan::Policies,
    ) -> decant_core::plan::Policies {
        decant_core::plan::Policies {
            resolved: self.policies.clone(),
            reject_nul: self
                .checks
                .iter()
                .filter(|c| {
                    c.check.kind == decant_core::hazard::HazardKind::NulByte
                        && c.policy == decant_core::hazard::ValuePolicy::Fail
                })
                .map(|c| c.check.column.clone())
                .collect(),
            ..plan.clone()
        }
    }

    pub fn read_columns(&self) -> Vec<ReadColumn> {
        self.source_columns
            .iter()
            .map(|c| ReadColumn {
                name: c.name.clone(),
                native_type: c.native_type.clone(),
                logical: c.logical.clone(),
            })
            .collect()
    }

    /// The Arrow schema the source produces.
    pub fn source_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.source_columns
                .iter()
                .zip(&self.target.columns)
                .map(|(s, t)| s.logical.arrow_field(&s.name, t.nullable, &s.native_type))
                .collect::<Vec<_>>(),
        ))
    }

    /// The Arrow schema the target writer receives.
    pub fn target_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.target
                .columns
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    // Computed columns have no source column: their source type is their own.
                    let source_type = self
                        .source_columns
                        .get(i)
                        .map_or(t.native_type.as_str(), |s| s.native_type.as_str());
                    t.logical.arrow_field(&t.name, t.nullable, source_type)
                })
                .collect::<Vec<_>>(),
        ))
    }
}

/// The computed plan of a job: tables in load order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobPlan {
    pub tables: Vec<TableJob>,
    /// Views found on the source; they are listed, not migrated yet.
    pub views_not_migrated: Vec<String>,
    pub warnings: Vec<String>,
}

fn table_key(name: &TableName) -> String {
    name.to_string()
}

fn selected(plan: &Plan, name: &TableName) -> bool {
    let full = name.to_string();
    let matches = |p: &String| glob_match(p, &full) || glob_match(p, &name.name);
    let included = plan.source.include.is_empty() || plan.source.include.iter().any(matches);
    let excluded = plan.source.exclude.iter().any(matches);
    let skipped = table_config(plan, name).is_some_and(|c| c.skip);
    included && !excluded && !skipped
}

fn table_config<'a>(
    plan: &'a Plan,
    name: &TableName,
) -> Option<&'a decant_core::plan::TableConfig> {
    plan.tables
        .get(&name.to_string())
        .or_else(|| plan.tables.get(&name.name))
}

fn cast_matches(rule: &CastRule, column: &str, native: &str) -> bool {
    if rule.column.as_deref().is_some_and(|c| c != column) {
        return false;
    }
    let want = rule.source_type.trim().to_ascii_lowercase();
    let have = native.trim().to_ascii_lowercase();
    want == have || (!want.contains('(') && split_type_args(&have).0 == want)
}

/// Builds the job plan from the source catalog. Every problem is collected and reported at once.
pub fn build_plan(
    plan: &Plan,
    catalog: &Catalog,
    source_dialect: Dialect,
    target: &dyn Target,
) -> Result<JobPlan, EngineError> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let tables: Vec<&Table> = catalog
        .tables
        .iter()
        .filter(|t| selected(plan, &t.name))
        .collect();
    for key in plan.tables.keys() {
        if !catalog
            .tables
            .iter()
            .any(|t| table_key(&t.name) == *key || t.name.name == *key)
        {
            problems.push(format!(
                "[tables.\"{key}\"] names a table the source does not have"
            ));
        }
    }
    let same_dialect = source_dialect == target.dialect();

    // Target names first: foreign keys need the names of the tables they reference.
    let mut target_names: HashMap<TableName, TableName> = HashMap::new();
    for t in &tables {
        let cfg = table_config(plan, &t.name);
        let name = cfg
            .and_then(|c| c.rename.clone())
            .unwrap_or_else(|| t.name.name.clone());
        let schema = match target.dialect() {
            Dialect::Postgres => plan
                .target
                .schema
                .clone()
                .or_else(|| {
                    if source_dialect == Dialect::Postgres {
                        t.name.schema.clone()
                    } else {
                        None
                    }
                })
                .or_else(|| target.default_schema()),
            _ => None,
        };
        let tn = TableName { schema, name };
        if tn.name.len() > target.dialect().max_identifier_len() {
            problems.push(format!(
                "table name `{}` is longer than {} bytes, the limit of {}; rename it with [tables.\"{}\"] rename = \"...\"",
                tn.name,
                target.dialect().max_identifier_len(),
                target.dialect(),
                t.name
            ));
        }
        if let Some((other, _)) = target_names
            .iter()
            .find(|(_, v)| v.to_string().to_lowercase() == tn.to_string().to_lowercase())
        {
            problems.push(format!(
                "tables {} and {} would both be created as {tn}; rename one",
                other, t.name
            ));
        }
        target_names.insert(t.name.clone(), tn);
    }

    let mut jobs = Vec::new();
    for t in &tables {
        let cfg = table_config(plan, &t.name);
        let mut notes = Vec::new();
        let mut source_columns = Vec::new();
        let mut target_columns = Vec::new();
        let mut renamed: HashMap<String, String> = HashMap::new();
        let target_name = target_names[&t.name].clone();
        for c in &t.columns {
            let ccfg = cfg.and_then(|tc| tc.columns.get(&c.name));
            if ccfg.is_some_and(|cc| cc.skip) {
                continue;
            }
            if c.generated {
                notes.push(format!(
                    "column {} is generated on the source; its values are copied as data",
                    c.name
                ));
            }
            let override_type = ccfg.and_then(|cc| cc.target_type.clone()).or_else(|| {
                plan.cast
                    .iter()
                    .find(|r| cast_matches(r, &c.name, &c.native_type))
                    .map(|r| r.target_type.clone())
            });
            let mut source_logical = match (&c.logical, &override_type) {
                (Some(l), _) => l.clone(),
                // An unknown type with an explicit target type is read as its text form.
                (None, Some(_)) => LogicalType::Text,
                (None, None) => {
                    problems.push(format!(
                        "column {}.{} has type `{}`, which Decant does not know; set a target type with \
                         [tables.\"{}\".columns.\"{}\"] type = \"text\" (or any {} type), or a [[cast]] rule",
                        t.name,
                        c.name,
                        c.native_type,
                        t.name,
                        c.name,
                        target.dialect()
                    ));
                    continue;
                }
            };
            let target_col_name = ccfg
                .and_then(|cc| cc.rename.clone())
                .unwrap_or_else(|| c.name.clone());
            if target_col_name.len() > target.dialect().max_identifier_len() {
                problems.push(format!(
                    "column name {}.{} is too long for {}; rename it",
                    t.name,
                    target_col_name,
                    target.dialect()
                ));
            }
            renamed.insert(c.name.clone(), target_col_name.clone());
            if let LogicalType::Enum { name, .. } = &mut source_logical
                && (name.is_none() || !same_dialect)
            {
                *name = Some(format!("{}_{}", target_name.name, target_col_name));
            }
            let (native, target_logical) = match &override_type {
                Some(native) => match target.parse_native_type(native) {
                    Ok(l) => (native.clone(), l),
                    Err(e) => {
                        problems.push(format!("column {}.{}: {e}", t.name, c.name));
                        continue;
                    }
                },
                None if same_dialect && !matches!(source_logical, LogicalType::Enum { .. }) => {
                    (c.native_type.clone(), source_logical.clone())
                }
                None => match target.native_type(&source_logical) {
                    Ok(native) => {
                        let l = target
                            .parse_native_type(&native)
                            .unwrap_or_else(|_| source_logical.clone());
                        let l = match (&source_logical, l) {
                            (LogicalType::Enum { .. }, _) => source_logical.clone(),
                            (_, l) => l,
                        };
                        (native, l)
                    }
                    Err(e) => {
                        problems.push(format!("column {}.{}: {e}", t.name, c.name));
                        continue;
                    }
                },
            };
            // A column given a text type is read as text: the plan can then carry values that do
            // not fit their declared source type (SQLite's dynamic typing, odd MySQL data).
            if override_type.is_some()
                && target_logical.is_textual()
                && !source_logical.is_textual()
            {
                source_logical = LogicalType::Text;
            }
            source_columns.push(SourceColumn {
                name: c.name.clone(),
                native_type: c.native_type.clone(),
                logical: source_logical,
            });
            target_columns.push(TargetColumn {
                name: target_col_name,
                native_type: native,
                logical: target_logical,
                nullable: c.nullable,
                auto_increment: c.auto_increment,
            });
        }
        // Hazard checks look at source values, before any transform: they pair each source
        // column with its target column as the plain mapping made it.
        let untransformed = target_columns.clone();
        let transform = cfg.and_then(|cfg| {
            let schema = Arc::new(Schema::new(
                source_columns
                    .iter()
                    .zip(&target_columns)
                    .map(|(s, t)| s.logical.arrow_field(&s.name, t.nullable, &s.native_type))
                    .collect::<Vec<_>>(),
            ));
            crate::transform_plan::plan_transform(
                &t.name,
                cfg,
                &source_columns,
                &mut target_columns,
                &t.primary_key,
                schema,
                target,
                &mut problems,
            )
        });
        let map_cols = |cols: &[String]| -> Option<Vec<String>> {
            cols.iter().map(|c| renamed.get(c).cloned()).collect()
        };
        let primary_key = match map_cols(&t.primary_key) {
            Some(pk) => pk,
            None => {
                notes.push("primary key uses a skipped column; it is not created".into());
                vec![]
            }
        };
        let keep_index = |i: &Index, notes: &mut Vec<String>| -> Option<Index> {
            if let Some(why) = &i.unsupported {
                notes.push(format!("index {} is not carried: {why}", i.name));
                return None;
            }
            match map_cols(&i.columns) {
                Some(columns) => Some(Index {
                    columns,
                    ..i.clone()
                }),
                None => {
                    notes.push(format!(
                        "index {} uses a skipped column; it is not created",
                        i.name
                    ));
                    None
                }
            }
        };
        let unique_keys = t
            .unique_keys
            .iter()
            .filter_map(|i| keep_index(i, &mut notes))
            .collect();
        let indexes = t
            .indexes
            .iter()
            .filter_map(|i| keep_index(i, &mut notes))
            .collect();
        let mut foreign_keys = Vec::new();
        for fk in &t.foreign_keys {
            let Some(ref_target) = target_names.get(&fk.ref_table) else {
                notes.push(format!(
                    "foreign key {} references {}, which is not migrated; it is not created",
                    fk.name, fk.ref_table
                ));
                continue;
            };
            let Some(columns) = map_cols(&fk.columns) else {
                notes.push(format!(
                    "foreign key {} uses a skipped column; it is not created",
                    fk.name
                ));
                continue;
            };
            let ref_cfg = table_config(plan, &fk.ref_table);
            let ref_columns = fk
                .ref_columns
                .iter()
                .map(|c| {
                    ref_cfg
                        .and_then(|rc| rc.columns.get(c))
                        .and_then(|cc| cc.rename.clone())
                        .unwrap_or_else(|| c.clone())
                })
                .collect();
            foreign_keys.push(ForeignKey {
                columns,
                ref_table: ref_target.clone(),
                ref_columns,
                ..fk.clone()
            });
        }
        if !t.checks.is_empty() && !same_dialect {
            notes.push(format!(
                "{} check constraint(s) are not carried across systems",
                t.checks.len()
            ));
        }
        let target_table = TargetTable {
            name: target_name,
            columns: target_columns,
            primary_key,
            unique_keys,
            indexes,
            foreign_keys,
        };
        let pairs: Vec<(SourceColumn, TargetColumn)> =
            source_columns.iter().cloned().zip(untransformed).collect();
        let (checks, policies) = crate::hazards::plan_checks(
            plan,
            &t.name,
            source_dialect,
            target.dialect(),
            &pairs,
            &mut problems,
        );
        // A column whose hazards may be loaded as NULL must accept NULL.
        let mut target_table = target_table;
        for c in &checks {
            if c.policy == decant_core::hazard::ValuePolicy::Null
                && let Some(i) = source_columns.iter().position(|s| s.name == c.check.column)
            {
                target_table.columns[i].nullable = true;
            }
        }
        // `order` changes only the DDL: every writer names its columns, so the batches keep
        // the source's order and the table gets the plan's.
        let ordered = cfg
            .filter(|c| !c.order.is_empty())
            .map(|c| ordered_columns(&target_table, &c.order))
            .transpose()
            .unwrap_or_else(|e| {
                problems.push(format!("table {}: order: {e}", t.name));
                None
            });
        let ddl = target.ddl(
            ordered.as_ref().unwrap_or(&target_table),
            plan.load.primary_key_after_load,
        );
        jobs.push(TableJob {
            source: t.name.clone(),
            source_columns,
            target: target_table,
            ddl,
            checks,
            policies,
            if_exists: cfg.and_then(|c| c.if_exists).unwrap_or(plan.load.if_exists),
            chunk_rows: cfg
                .and_then(|c| c.chunk_rows)
                .unwrap_or(plan.load.chunk_rows),
            row_estimate: t.row_estimate,
            size_bytes: t.size_bytes,
            notes,
            transform,
        });
    }
    if !problems.is_empty() {
        return Err(EngineError::Plan(problems));
    }
    let (ordered, cycle) = fk_order(jobs);
    if let Some(c) = cycle {
        warnings.push(format!("foreign keys form a cycle among {c}; those tables load in name order (foreign keys are added after all data)"));
    }
    Ok(JobPlan {
        tables: ordered,
        views_not_migrated: catalog.views.iter().map(|v| v.name.to_string()).collect(),
        warnings,
    })
}

/// Orders tables so that referenced tables load before the tables that reference them.
fn fk_order(jobs: Vec<TableJob>) -> (Vec<TableJob>, Option<String>) {
    let mut remaining: BTreeMap<String, TableJob> = jobs
        .into_iter()
        .map(|j| (j.target.name.to_string(), j))
        .collect();
    let mut out = Vec::new();
    let mut cycle = None;
    while !remaining.is_empty() {
        let names: HashSet<String> = remaining.keys().cloned().collect();
        let ready: Vec<String> = remaining
            .iter()
            .filter(|(name, j)| {
                j.target.foreign_keys.iter().all(|fk| {
                    let r = fk.ref_table.to_string();
                    r == **name || !names.contains(&r)
                })
            })
            .map(|(n, _)| n.clone())
            .collect();
        if ready.is_empty() {
            cycle = Some(names.iter().cloned().collect::<Vec<_>>().join(", "));
            out.extend(std::mem::take(&mut remaining).into_values());
            break;
        }
        for n in ready {
            out.extend(remaining.remove(&n));
        }
    }
    (out, cycle)
}

/// `table` with the columns named in `order` first, in that order, and the rest after them in
/// their own order.
fn ordered_columns(table: &TargetTable, order: &[String]) -> Result<TargetTable, String> {
    let mut seen = std::collections::HashSet::new();
    let mut columns = Vec::with_capacity(table.columns.len());
    for name in order {
        if !seen.insert(name.as_str()) {
            return Err(format!("names {name} twice"));
        }
        let c = table
            .columns
            .iter()
            .find(|c| c.name == *name)
            .ok_or_else(|| {
                format!(
                    "no target column {name} (order names target columns, after renames: {})",
                    table
                        .columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
        columns.push(c.clone());
    }
    columns.extend(
        table
            .columns
            .iter()
            .filter(|c| !seen.contains(c.name.as_str()))
            .cloned(),
    );
    Ok(TargetTable {
        columns,
        ..table.clone()
    })
}
