//! A table's transforms compiled once into DataFusion physical expressions, then run on every
//! batch: computed and constant columns, the filter, row rules, masks, in that order.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::compute::kernels::cmp::distinct;
use datafusion::arrow::compute::{filter_record_batch, prep_null_mask_filter};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{Expr, lit};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use decant_core::Reject;
use decant_core::transform::{
    Dedupe, Mask, REFERENCE_MAX_KEYS, ReferenceSide, RowRule, RuleAction, RuleCheck,
};
use serde::{Deserialize, Serialize};

use crate::dedupe::CompiledDedupe;
use crate::error::TransformError;
use crate::mask::CompiledMask;
use crate::rules::{rule_expr, rule_reason};

/// One column the transforms produce, in target order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputSpec {
    /// The name expressions, the filter and rules use: the source column's name, or the key of
    /// a computed column.
    pub name: String,
    /// Its name on the target (quarantine records use it).
    pub target_name: String,
    /// The source column it copies when it has neither `expr` nor `value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<Mask>,
}

/// A table's transforms as the plan declares them (stored with the job; compiled at run start).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TransformSpec {
    pub outputs: Vec<OutputSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RowRule>,
    /// Columns (by `name`) that locate a rejected row (`id=42`): the primary key, if unmasked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_columns: Vec<String>,
    /// One row per key (after the filter, before the rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedupe: Option<Dedupe>,
}

impl TransformSpec {
    /// True when the transforms change nothing: the runner then skips them entirely.
    pub fn is_identity(&self) -> bool {
        self.filter.is_none()
            && self.rules.is_empty()
            && self.dedupe.is_none()
            && self.outputs.iter().all(|o| {
                o.expr.is_none() && o.value.is_none() && o.mask.is_none() && o.source.is_some()
            })
    }
}

/// Per step counts of one chunk or a whole table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepCounts {
    pub seen: u64,
    pub changed: u64,
    pub rejected: u64,
    pub warned: u64,
}

/// A transform step as the summary names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// `expr`, `value`, `where`, `mask:hmac`, `rule:not_null`, …
    pub kind: String,
    /// The column or the rule's name.
    pub name: String,
}

enum Stage {
    Copy(usize),
    Eval(Arc<dyn PhysicalExpr>),
}

struct CompiledRule {
    rule: RowRule,
    check: RuleEval,
    step: usize,
}

enum RuleEval {
    Expr(Arc<dyn PhysicalExpr>),
    /// Indices into the stage batch, and the keys seen so far in this load.
    Unique(Vec<usize>, Arc<Mutex<HashSet<u128>>>),
    /// Indices into the stage batch, and the lookup's keys (set once by the runner before
    /// the table's first chunk, see [`TableTransform::set_reference_keys`]).
    Reference(Vec<usize>, Arc<OnceLock<HashSet<u128>>>),
}

/// A `reference` rule's lookup, for the runner to load.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceNeed {
    /// Pass back to [`TableTransform::set_reference_keys`].
    pub rule: usize,
    pub name: String,
    pub table: String,
    pub key: Vec<String>,
    pub side: ReferenceSide,
    pub max_keys: u64,
}

/// The hash a row's key values are compared by (`unique`, `reference`): their text forms,
/// length-prefixed; `None` when any is NULL (NULLs are not compared, as in SQL).
pub fn key_hash(batch: &RecordBatch, columns: &[usize], row: usize) -> Option<u128> {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for c in columns {
        let v = text(batch.column(*c).as_ref(), row)?;
        h.update(&(v.len() as u64).to_le_bytes());
        h.update(v.as_bytes());
    }
    Some(h.digest128())
}

/// Compiled transforms of one table; shared by all its chunks.
pub struct TableTransform {
    input: SchemaRef,
    stage_schema: SchemaRef,
    stages: Vec<(Stage, Option<usize>, Option<usize>)>, // stage, source index for `changed`, step
    filter: Option<(Arc<dyn PhysicalExpr>, usize)>,
    /// The filter as planned (coerced and simplified), for [`TableTransform::pushdown`].
    filter_expr: Option<Expr>,
    /// Output name → the source column it copies unchanged.
    copies: std::collections::HashMap<String, String>,
    rules: Vec<CompiledRule>,
    masks: Vec<(usize, CompiledMask, usize)>,
    key_columns: Vec<usize>,
    target_names: Vec<String>,
    steps: Vec<Step>,
    /// Per input column: the plan masks it, so its raw value stays out of a reject's input.
    masked_inputs: Vec<bool>,
    pub(crate) dedupe: Option<CompiledDedupe>,
}

fn plan_err(column: &str, e: impl std::fmt::Display) -> TransformError {
    TransformError::Plan {
        column: column.to_string(),
        message: e.to_string(),
    }
}

fn json_literal(v: &serde_json::Value) -> Result<ScalarValue, String> {
    Ok(match v {
        serde_json::Value::String(s) => ScalarValue::Utf8(Some(s.clone())),
        serde_json::Value::Bool(b) => ScalarValue::Boolean(Some(*b)),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => ScalarValue::Int64(Some(i)),
            None => ScalarValue::Float64(n.as_f64()),
        },
        serde_json::Value::Null => ScalarValue::Null,
        other => {
            return Err(format!(
                "a constant must be text, a number or a boolean, not {other}"
            ));
        }
    })
}

pub(crate) fn literal(v: &serde_json::Value) -> Result<Expr, String> {
    json_literal(v).map(lit)
}

/// A session with Decant's cleansing functions registered.
pub fn session() -> SessionContext {
    let ctx = SessionContext::new();
    for f in crate::functions::cleansing_udfs() {
        ctx.register_udf(f);
    }
    ctx
}

fn to_bool(
    value: datafusion::logical_expr::ColumnarValue,
    rows: usize,
) -> Result<BooleanArray, TransformError> {
    let a = value
        .into_array(rows)
        .map_err(|e| TransformError::Eval(e.to_string()))?;
    match a.as_boolean_opt() {
        // NULL counts as false: a row passes only when the condition is true.
        Some(b) if b.null_count() > 0 => Ok(prep_null_mask_filter(b)),
        Some(b) => Ok(b.clone()),
        None => Err(TransformError::Eval(format!(
            "a condition returned {} instead of a boolean",
            a.data_type()
        ))),
    }
}

impl TableTransform {
    /// Compiles `spec` for batches of `input`. Every problem is reported, each with its
    /// column or rule and DataFusion's message (with the position for syntax errors).
    pub fn compile(
        spec: &TransformSpec,
        input: SchemaRef,
    ) -> Result<TableTransform, Vec<TransformError>> {
        let ctx = session();
        let mut problems = Vec::new();
        let input_df = match DFSchema::try_from(input.as_ref().clone()) {
            Ok(s) => s,
            Err(e) => return Err(vec![plan_err("(schema)", e)]),
        };
        let mut steps = Vec::new();
        let mut stages = Vec::new();
        let mut fields = Vec::new();
        for o in &spec.outputs {
            let source_idx = o.source.as_deref().and_then(|s| input.index_of(s).ok());
            let compiled: Result<(Stage, Option<usize>), TransformError> = if let Some(sql) =
                &o.expr
            {
                ctx.parse_sql_expr(sql, &input_df)
                    .and_then(|e| physical(&ctx, e, &input_df))
                    .map_err(|e| plan_err(&o.name, format!("expr `{sql}`: {e}")))
                    .map(|p| {
                        steps.push(Step {
                            kind: "expr".into(),
                            name: o.name.clone(),
                        });
                        (Stage::Eval(p), Some(steps.len() - 1))
                    })
            } else if let Some(v) = &o.value {
                literal(v)
                    .map_err(|e| plan_err(&o.name, e))
                    .and_then(|e| physical(&ctx, e, &input_df).map_err(|e| plan_err(&o.name, e)))
                    .map(|p| {
                        steps.push(Step {
                            kind: "value".into(),
                            name: o.name.clone(),
                        });
                        (Stage::Eval(p), Some(steps.len() - 1))
                    })
            } else {
                match source_idx {
                    Some(i) => Ok((Stage::Copy(i), None)),
                    None => Err(plan_err(
                        &o.name,
                        "names no source column; give it an expr or a value",
                    )),
                }
            };
            match compiled {
                Ok((stage, step)) => {
                    let (dt, nullable) = match &stage {
                        Stage::Copy(i) => (
                            input.field(*i).data_type().clone(),
                            input.field(*i).is_nullable(),
                        ),
                        Stage::Eval(p) => (
                            p.data_type(&input).unwrap_or(DataType::Null),
                            p.nullable(&input).unwrap_or(true),
                        ),
                    };
                    let dt = if dt == DataType::Null {
                        DataType::Utf8
                    } else {
                        dt
                    };
                    fields.push(Field::new(&o.name, dt, nullable || o.mask.is_some()));
                    stages.push((stage, source_idx.filter(|_| step.is_some()), step));
                }
                Err(e) => {
                    // Keep going with a text placeholder, so that the filter's and the rules'
                    // errors are reported in the same pass.
                    problems.push(e);
                    fields.push(Field::new(&o.name, DataType::Utf8, true));
                }
            }
        }
        let stage_schema = Arc::new(Schema::new(fields));
        let stage_df = match DFSchema::try_from(stage_schema.as_ref().clone()) {
            Ok(s) => s,
            Err(e) => return Err(vec![plan_err("(columns)", e)]),
        };
        let mut filter_expr = None;
        let filter = spec.filter.as_ref().and_then(|sql| {
            match ctx.parse_sql_expr(sql, &stage_df).and_then(|e| {
                let e = simplified(&ctx, e, &stage_df)?;
                let p = ctx.create_physical_expr(e.clone(), &stage_df)?;
                Ok((e, p))
            }) {
                Ok((e, p)) => {
                    steps.push(Step {
                        kind: "where".into(),
                        name: sql.clone(),
                    });
                    filter_expr = Some(e);
                    Some((p, steps.len() - 1))
                }
                Err(e) => {
                    problems.push(plan_err("where", format!("`{sql}`: {e}")));
                    None
                }
            }
        });
        let mut rules = Vec::new();
        for r in &spec.rules {
            let label = format!("rule `{}`", r.name);
            let check = match &r.check {
                RuleCheck::Unique { columns } => {
                    let idx: Result<Vec<usize>, _> = columns
                        .iter()
                        .map(|c| {
                            stage_schema
                                .index_of(c)
                                .map_err(|_| plan_err(&label, format!("unique: no column `{c}`")))
                        })
                        .collect();
                    if columns.is_empty() {
                        Err(plan_err(&label, "unique needs at least one column"))
                    } else {
                        idx.map(|i| RuleEval::Unique(i, Arc::default()))
                    }
                }
                RuleCheck::Reference { column, key, .. } => {
                    let (columns, keys) = (column.names(), key.names());
                    let idx: Result<Vec<usize>, _> = columns
                        .iter()
                        .map(|c| {
                            stage_schema.index_of(c).map_err(|_| {
                                plan_err(&label, format!("reference: no column `{c}`"))
                            })
                        })
                        .collect();
                    if columns.is_empty() || columns.len() != keys.len() {
                        Err(plan_err(
                            &label,
                            "reference needs as many key columns as columns (at least one)",
                        ))
                    } else {
                        idx.map(|i| RuleEval::Reference(i, Arc::default()))
                    }
                }
                check => rule_expr(&ctx, check, &stage_df)
                    .and_then(|e| physical(&ctx, e, &stage_df).map_err(|e| e.to_string()))
                    .map(RuleEval::Expr)
                    .map_err(|e| plan_err(&label, e)),
            };
            match check {
                Ok(check) => {
                    steps.push(Step {
                        kind: format!("rule:{}", r.check.kind()),
                        name: r.name.clone(),
                    });
                    rules.push(CompiledRule {
                        rule: r.clone(),
                        check,
                        step: steps.len() - 1,
                    });
                }
                Err(e) => problems.push(e),
            }
        }
        let mut masks = Vec::new();
        for (i, o) in spec.outputs.iter().enumerate() {
            if let Some(m) = &o.mask {
                match CompiledMask::compile(m, &o.name) {
                    Ok(m) => {
                        steps.push(Step {
                            kind: format!("mask:{}", m.name()),
                            name: o.name.clone(),
                        });
                        masks.push((i, m, steps.len() - 1));
                    }
                    Err(e) => problems.push(e),
                }
            }
        }
        let masked: HashSet<&str> = spec
            .outputs
            .iter()
            .filter(|o| o.mask.is_some())
            .map(|o| o.name.as_str())
            .collect();
        let key_columns = if spec.key_columns.iter().any(|k| masked.contains(k.as_str())) {
            vec![] // a masked key would leak through the location
        } else {
            spec.key_columns
                .iter()
                .filter_map(|k| stage_schema.index_of(k).ok())
                .collect()
        };
        let target_names: Vec<String> =
            spec.outputs.iter().map(|o| o.target_name.clone()).collect();
        let dedupe = spec.dedupe.as_ref().and_then(|d| {
            steps.push(Step {
                kind: "dedupe".into(),
                name: d.key.join(", "),
            });
            match CompiledDedupe::compile(
                d,
                &stage_schema,
                &key_columns,
                &target_names,
                steps.len() - 1,
            ) {
                Ok(d) => Some(d),
                Err(e) => {
                    problems.push(plan_err("dedupe", e));
                    None
                }
            }
        });
        if !problems.is_empty() {
            return Err(problems);
        }
        let stage_fields: Vec<Field> = stage_schema
            .fields()
            .iter()
            .zip(&masks_types(&stage_schema, &masks))
            .map(|(f, dt)| Field::new(f.name(), dt.clone(), f.is_nullable()))
            .collect();
        let masked_inputs = input
            .fields()
            .iter()
            .map(|f| {
                spec.outputs
                    .iter()
                    .any(|o| o.mask.is_some() && o.source.as_deref() == Some(f.name().as_str()))
            })
            .collect();
        let copies = spec
            .outputs
            .iter()
            .zip(&stages)
            .filter_map(|(o, (stage, _, _))| match stage {
                Stage::Copy(i) => Some((o.name.clone(), input.field(*i).name().clone())),
                Stage::Eval(_) => None,
            })
            .collect();
        Ok(TableTransform {
            filter_expr,
            copies,
            masked_inputs,
            input,
            stage_schema: Arc::new(Schema::new(stage_fields)),
            stages,
            filter,
            rules,
            masks,
            key_columns,
            target_names,
            steps,
            dedupe,
        })
    }

    /// The filter as planned: coerced to the columns' types and simplified.
    pub(crate) fn filter_expr(&self) -> Option<&Expr> {
        self.filter_expr.as_ref()
    }

    /// The source column the output `name` copies unchanged, if it is such a copy.
    pub(crate) fn copied_source(&self, name: &str) -> Option<&str> {
        self.copies.get(name).map(String::as_str)
    }

    /// The Arrow types of the output columns, in target order (a masked column is text).
    pub fn output_schema(&self) -> SchemaRef {
        self.stage_schema.clone()
    }

    /// Step 1 on a batch of the input schema: the output columns before masking (text types
    /// as evaluated). Counts `seen` and `changed` into `counts` when given.
    pub(crate) fn columns(
        &self,
        batch: &RecordBatch,
        mut counts: Option<&mut Vec<StepCounts>>,
    ) -> Result<RecordBatch, TransformError> {
        let t = self;
        let rows = batch.num_rows();
        let eval =
            |e: &Arc<dyn PhysicalExpr>, b: &RecordBatch| -> Result<ArrayRef, TransformError> {
                e.evaluate(b)
                    .and_then(|v| v.into_array(b.num_rows()))
                    .map_err(|e| TransformError::Eval(e.to_string()))
            };
        let mut columns = Vec::with_capacity(t.stages.len());
        for (i, (stage, source, step)) in t.stages.iter().enumerate() {
            let col = match stage {
                Stage::Copy(c) => batch.column(*c).clone(),
                Stage::Eval(e) => {
                    let col = eval(e, batch)?;
                    let want = t.stage_schema.field(i).data_type();
                    let col = if col.data_type() != want && !t.masks.iter().any(|(m, _, _)| *m == i)
                    {
                        arrow_cast::cast(&col, want)
                            .map_err(|e| TransformError::Eval(e.to_string()))?
                    } else {
                        col
                    };
                    if let Some(step) = step
                        && let Some(counts) = counts.as_deref_mut()
                    {
                        let c = &mut counts[*step];
                        c.seen += rows as u64;
                        c.changed += match source {
                            Some(s) if batch.column(*s).data_type() == col.data_type() => {
                                distinct(batch.column(*s), &col)
                                    .map(|d| d.true_count() as u64)
                                    .unwrap_or(rows as u64)
                            }
                            _ => rows as u64,
                        };
                    }
                    col
                }
            };
            columns.push(col);
        }
        let unmasked_schema = Arc::new(Schema::new(
            t.stage_schema
                .fields()
                .iter()
                .zip(&columns)
                .map(|(f, c)| Field::new(f.name(), c.data_type().clone(), true))
                .collect::<Vec<_>>(),
        ));
        RecordBatch::try_new(unmasked_schema, columns)
            .map_err(|e| TransformError::Eval(e.to_string()))
    }

    /// Step 2 on the stage batch: which rows the filter keeps (`None`: no filter).
    pub(crate) fn filter_mask(
        &self,
        stage: &RecordBatch,
    ) -> Result<Option<BooleanArray>, TransformError> {
        let Some((f, _)) = &self.filter else {
            return Ok(None);
        };
        let value = f
            .evaluate(stage)
            .map_err(|e| TransformError::Eval(e.to_string()))?;
        to_bool(value, stage.num_rows()).map(Some)
    }

    /// True when the table deduplicates: the runner must feed a [`crate::DedupeScan`] the
    /// whole table before its first chunk.
    pub fn needs_dedupe_scan(&self) -> bool {
        self.dedupe.is_some()
    }

    /// The lookups of the `reference` rules, which the runner loads before the first chunk.
    pub fn references(&self) -> Vec<ReferenceNeed> {
        self.rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match &r.rule.check {
                RuleCheck::Reference {
                    table,
                    key,
                    side,
                    max_keys,
                    ..
                } => Some(ReferenceNeed {
                    rule: i,
                    name: r.rule.name.clone(),
                    table: table.clone(),
                    key: key.names(),
                    side: *side,
                    max_keys: max_keys.unwrap_or(REFERENCE_MAX_KEYS),
                }),
                _ => None,
            })
            .collect()
    }

    /// Gives a `reference` rule its keys (hashed with [`key_hash`]); only the first call counts.
    pub fn set_reference_keys(&self, rule: usize, keys: HashSet<u128>) {
        if let Some(RuleEval::Reference(_, slot)) = self.rules.get(rule).map(|r| &r.check) {
            let _ = slot.set(keys);
        }
    }

    /// True when every `reference` rule has its keys.
    pub fn references_loaded(&self) -> bool {
        self.rules.iter().all(|r| match &r.check {
            RuleEval::Reference(_, slot) => slot.get().is_some(),
            _ => true,
        })
    }

    /// Makes this compilation decide rows by other rows as `from` does: the same dedupe
    /// choice and reference keys, set once and shared, not copied. `from` must be compiled from
    /// the same spec. Its `unique` rules keep their own keys: a fresh compilation (a re-read of
    /// part of a table) sees only its own rows there.
    pub fn share_decisions(&mut self, from: &TableTransform) {
        if let (Some(mine), Some(theirs)) = (self.dedupe.as_mut(), from.dedupe.as_ref()) {
            mine.winners = theirs.winners.clone();
        }
        for (mine, theirs) in self.rules.iter_mut().zip(&from.rules) {
            if let (RuleEval::Reference(_, slot), RuleEval::Reference(_, keys)) =
                (&mut mine.check, &theirs.check)
            {
                *slot = keys.clone();
            }
        }
    }

    /// The steps, in the order their counts are reported.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Starts a chunk attempt: its counts, and the unique keys it adds, which are forgotten
    /// again unless [`ChunkRun::commit`] is called.
    pub fn begin_chunk(self: &Arc<Self>, chunk_id: &str) -> ChunkRun {
        ChunkRun {
            transform: self.clone(),
            chunk_id: chunk_id.to_string(),
            counts: vec![StepCounts::default(); self.steps.len()],
            rows: 0,
            added: Vec::new(),
            committed: false,
        }
    }
}

fn masks_types(schema: &Schema, masks: &[(usize, CompiledMask, usize)]) -> Vec<DataType> {
    (0..schema.fields().len())
        .map(|i| {
            if masks.iter().any(|(m, _, _)| *m == i) {
                DataType::Utf8
            } else {
                schema.field(i).data_type().clone()
            }
        })
        .collect()
}

/// One chunk attempt's state.
pub struct ChunkRun {
    transform: Arc<TableTransform>,
    chunk_id: String,
    counts: Vec<StepCounts>,
    rows: u64,
    added: Vec<(usize, u128)>,
    committed: bool,
}

/// A transformed batch and what it left out.
pub struct Applied {
    pub batch: RecordBatch,
    pub rejects: Vec<Reject>,
    /// Rows the filter left out.
    pub filtered: u64,
    /// Rows loaded although a `warn` rule flagged them.
    pub warned: u64,
    /// For each row of `batch`, its row number in the chunk (0-based, over every batch this
    /// run applied), so a caller can tell which input rows loaded.
    pub rows: Vec<u64>,
    /// For each of `rejects`, its row number in the chunk.
    pub reject_rows: Vec<u64>,
}

pub(crate) fn text(col: &dyn Array, row: usize) -> Option<String> {
    if col.is_null(row) {
        return None;
    }
    let f =
        datafusion::arrow::util::display::ArrayFormatter::try_new(col, &Default::default()).ok()?;
    Some(f.value(row).to_string())
}

impl ChunkRun {
    /// Runs the transforms on one batch of the source's schema.
    pub fn apply(&mut self, batch: &RecordBatch) -> Result<Applied, TransformError> {
        let t = self.transform.clone();
        let rows = batch.num_rows();
        let mut stage = t.columns(batch, Some(&mut self.counts))?;
        let first_row = self.rows;
        self.rows += rows as u64;
        let mut filtered = 0;
        // Row numbers in the chunk, for locations, kept through the filter.
        let mut row_numbers: Vec<u64> = (first_row..first_row + rows as u64).collect();
        if let Some((f, step)) = &t.filter {
            let keep = to_bool(
                f.evaluate(&stage)
                    .map_err(|e| TransformError::Eval(e.to_string()))?,
                rows,
            )?;
            let c = &mut self.counts[*step];
            c.seen += rows as u64;
            filtered = (rows - keep.true_count()) as u64;
            c.changed += filtered;
            if filtered > 0 {
                stage = filter_record_batch(&stage, &keep)
                    .map_err(|e| TransformError::Eval(e.to_string()))?;
                row_numbers = row_numbers
                    .into_iter()
                    .zip(keep.iter())
                    .filter(|(_, k)| *k == Some(true))
                    .map(|(r, _)| r)
                    .collect();
            }
        }
        let n = stage.num_rows();
        // Per row: the rule (as the quarantine names it) and the reason it does not load.
        let mut rejected: Vec<Option<(String, String)>> = vec![None; n];
        let mut warned_rows = vec![false; n];
        let location = |row: usize, stage: &RecordBatch| -> String {
            if t.key_columns.is_empty() {
                format!("chunk {} row {}", self.chunk_id, row_numbers[row] + 1)
            } else {
                t.key_columns
                    .iter()
                    .map(|k| {
                        format!(
                            "{}={}",
                            t.target_names[*k],
                            text(stage.column(*k).as_ref(), row).unwrap_or_else(|| "NULL".into())
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        if let Some(d) = &t.dedupe {
            d.check(&stage, &mut rejected, &mut self.counts)?;
        }
        for (ri, r) in t.rules.iter().enumerate() {
            let ok: Vec<bool> = match &r.check {
                RuleEval::Expr(e) => {
                    let b = to_bool(
                        e.evaluate(&stage)
                            .map_err(|e| TransformError::Eval(e.to_string()))?,
                        n,
                    )?;
                    b.values().iter().collect()
                }
                RuleEval::Unique(cols, seen) => {
                    let mut out = vec![true; n];
                    let mut set = seen.lock().unwrap_or_else(|e| e.into_inner());
                    for (row, o) in out.iter_mut().enumerate() {
                        if rejected[row].is_some() {
                            continue; // a row that does not load takes no key
                        }
                        let Some(key) = key_hash(&stage, cols, row) else {
                            continue;
                        };
                        if set.insert(key) {
                            self.added.push((ri, key));
                        } else {
                            *o = false;
                        }
                    }
                    out
                }
                RuleEval::Reference(cols, keys) => {
                    let keys = keys.get().ok_or_else(|| {
                        TransformError::Eval(format!(
                            "rule `{}`: its lookup keys were not loaded",
                            r.rule.name
                        ))
                    })?;
                    (0..n)
                        .map(|row| key_hash(&stage, cols, row).is_none_or(|k| keys.contains(&k)))
                        .collect()
                }
            };
            let c = &mut self.counts[r.step];
            c.seen += n as u64;
            for (row, good) in ok.iter().enumerate() {
                if *good || rejected[row].is_some() {
                    continue;
                }
                match r.rule.action {
                    RuleAction::Reject => {
                        c.rejected += 1;
                        rejected[row] = Some((
                            format!("{}({})", r.rule.check.kind(), r.rule.name),
                            rule_reason(&r.rule.check),
                        ));
                    }
                    RuleAction::Warn => {
                        c.warned += 1;
                        warned_rows[row] = true;
                    }
                    RuleAction::Fail => {
                        return Err(TransformError::RuleFailed {
                            rule: r.rule.name.clone(),
                            location: location(row, &stage),
                            reason: rule_reason(&r.rule.check),
                        });
                    }
                }
            }
        }
        // Masks last: rules saw the real values, everything from here on sees masked ones.
        let mut columns = stage.columns().to_vec();
        for (i, m, step) in &t.masks {
            let c = &mut self.counts[*step];
            c.seen += n as u64;
            c.changed += (n - columns[*i].null_count()) as u64;
            columns[*i] = m.apply(&columns[*i])?;
        }
        let masked = RecordBatch::try_new(t.stage_schema.clone(), columns)
            .map_err(|e| TransformError::Eval(e.to_string()))?;
        let mut rejects = Vec::new();
        let mut reject_rows = Vec::new();
        let mut keep = Vec::with_capacity(n);
        for (row, r) in rejected.iter().enumerate() {
            keep.push(r.is_none());
            if let Some((rule, reason)) = r {
                let input_row = (row_numbers[row] - first_row) as usize;
                reject_rows.push(row_numbers[row]);
                let mut record = serde_json::Map::new();
                for (ci, name) in t.target_names.iter().enumerate() {
                    record.insert(
                        name.clone(),
                        text(masked.column(ci).as_ref(), row)
                            .map_or(serde_json::Value::Null, serde_json::Value::String),
                    );
                }
                rejects.push(Reject {
                    location: location(row, &masked),
                    rule: rule.clone(),
                    reason: reason.clone(),
                    record: serde_json::Value::Object(record).to_string(),
                    input: Some(crate::input::encode_row(batch, input_row, &t.masked_inputs)),
                });
            }
        }
        let batch = if rejects.is_empty() {
            masked
        } else {
            row_numbers = row_numbers
                .into_iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(r, _)| r)
                .collect();
            let keep = BooleanArray::from(keep);
            filter_record_batch(&masked, &keep).map_err(|e| TransformError::Eval(e.to_string()))?
        };
        Ok(Applied {
            batch,
            rejects,
            filtered,
            warned: warned_rows.iter().filter(|w| **w).count() as u64,
            rows: row_numbers,
            reject_rows,
        })
    }

    /// The chunk committed: its unique keys stay taken; its counts are returned.
    pub fn commit(mut self) -> Vec<StepCounts> {
        self.committed = true;
        std::mem::take(&mut self.counts)
    }

    /// Unused input schema check (the runner builds batches of this schema).
    pub fn input_schema(&self) -> &SchemaRef {
        &self.transform.input
    }
}

impl Drop for ChunkRun {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        // The attempt failed: a retry must find its keys free again.
        for (ri, key) in self.added.drain(..) {
            if let RuleEval::Unique(_, set) = &self.transform.rules[ri].check {
                set.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
            }
        }
    }
}

/// The physical form of `expr`, simplified first as DataFusion's own planner does: some
/// functions (`coalesce`, `nvl`) exist only as a rewrite into `CASE` and fail on the first
/// batch when planned unsimplified.
fn physical(
    ctx: &SessionContext,
    expr: Expr,
    schema: &DFSchema,
) -> datafusion::error::Result<Arc<dyn PhysicalExpr>> {
    ctx.create_physical_expr(simplified(ctx, expr, schema)?, schema)
}

/// `expr` coerced to the schema's types and simplified, as DataFusion's planner does.
fn simplified(
    ctx: &SessionContext,
    expr: Expr,
    schema: &DFSchema,
) -> datafusion::error::Result<Expr> {
    let state = ctx.state();
    let simplifier = ExprSimplifier::new(
        SimplifyContext::builder()
            .with_schema(Arc::new(schema.clone()))
            .with_config_options(Arc::clone(state.config_options()))
            .build(),
    );
    simplifier.simplify(simplifier.coerce(expr, schema)?)
}
