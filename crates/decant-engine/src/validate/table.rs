//! Resolves a table of the plan on both sides: its columns by their names there, the key rows
//! are matched by, how rows are compared, and the units whose digests are compared.

use std::sync::Arc;

use arrow_schema::{Schema, SchemaRef};
use decant_connectors::{ReadColumn, Source};
use decant_core::canonical::Canonical;

use super::digest::{Bucketing, is_integer};
use decant_core::{Catalog, ChunkRange, ChunkSpec, Column, LogicalType, Table, TableName};
use decant_transform::{TableTransform, TransformSpec};

use crate::planner::TableJob;

/// Rows per digest bucket a unit aims at: a differing bucket is re-read and diffed in memory.
const ROWS_PER_BUCKET: u64 = 512;
const MAX_BUCKETS: u64 = 1 << 16;
/// The most rows of a unit both sides digest in the databases (see `compare::settle_in_place`).
const IN_PLACE_UNIT_ROWS: u64 = 1 << 16;

/// How the rows of a table are matched across the two sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    /// A single integer key: the source's key-range chunks are read on both sides and compared
    /// chunk by chunk, so a difference is re-read within its chunk only.
    KeyRanges,
    /// A composite or non-integer key: each side is read in its own chunks, rows are bucketed
    /// by the hash of their key, and differing buckets are re-read.
    KeyHash,
    /// No key: the table is compared as a multiset of rows, bucketed by row hash.
    Multiset,
}

impl Method {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Method::KeyRanges => "key ranges",
            Method::KeyHash => "key hash",
            Method::Multiset => "multiset",
        }
    }
}

/// A set of rows compared as one: its digests on the two sides must be equal.
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    pub source_chunks: Vec<ChunkSpec>,
    pub target_chunks: Vec<ChunkSpec>,
    pub bucketing: Bucketing,
}

impl Unit {
    /// The key-range chunk of buckets `first..=last` on each side, for a unit bucketed by key
    /// range; `None` for any other unit (it is re-read whole).
    pub fn sub_chunks(&self, first: usize, last: usize) -> Option<(ChunkSpec, ChunkSpec)> {
        let ([source], [target]) = (self.source_chunks.as_slice(), self.target_chunks.as_slice())
        else {
            return None;
        };
        let (ChunkRange::IntKey { column: sc, lo, hi }, ChunkRange::IntKey { column: tc, .. }) =
            (&source.range, &target.range)
        else {
            return None;
        };
        if !matches!(self.bucketing, Bucketing::Range { .. }) {
            return None;
        }
        let (lo, hi) = self.bucketing.key_range(first, last, *lo, *hi);
        let spec = |column: &String| ChunkSpec {
            id: format!("{}/{first}-{last}", source.id),
            range: ChunkRange::IntKey {
                column: column.clone(),
                lo,
                hi,
            },
            estimated_rows: 0,
        };
        Some((spec(sc), spec(tc)))
    }
}

/// One table, ready to compare.
#[derive(Debug)]
pub(crate) struct TableCheck {
    pub source: TableName,
    pub target: TableName,
    pub source_read: Vec<ReadColumn>,
    pub source_schema: SchemaRef,
    pub target_read: Vec<ReadColumn>,
    /// The schema both sides are compared in: the target's columns and types. Source batches
    /// are converted to it, as `run` converts them before writing.
    pub schema: SchemaRef,
    pub kinds: Vec<Canonical>,
    /// Column indexes in encoding order: the key columns first.
    pub order: Vec<usize>,
    pub key_len: usize,
    pub method: Method,
    pub units: Vec<Unit>,
    pub notes: Vec<String>,
    /// Both sides can digest this table's units in the database (see `compare::settle_in_place`).
    pub in_place: bool,
    /// Both sides enforce the key (a primary key, or a unique key of NOT NULL columns): no row
    /// can appear twice on either side.
    pub distinct: bool,
    /// The plan's transforms, replayed on every source batch before it is converted and hashed.
    pub transform: Option<SourceTransform>,
    /// The source columns' hazard policies as the run resolved them (column → type → global),
    /// so that the source is read with the values the run wrote.
    pub source_policies: std::collections::BTreeMap<String, decant_core::hazard::PolicySet>,
    /// The hazard checks whose policies the run applied to source batches in the engine
    /// (`coerce` or `null` of a NUL byte, an overlong text, a NaN...), replayed likewise.
    pub source_checks: Vec<crate::hazards::PlannedCheck>,
}

/// A table's transforms as validation replays them on the source side.
pub(crate) struct SourceTransform {
    spec: TransformSpec,
    /// Compiled once for the digest pass: its `unique` rules remember keys across all chunks
    /// of the table, as they do across a run's chunks.
    pub digests: Arc<TableTransform>,
    /// Names of the masked columns (target names), for the report's notes.
    pub masked: Vec<String>,
}

impl SourceTransform {
    /// A fresh compilation for one re-read: `unique` rules then see only the rows of that
    /// re-read, which for a rule on the key are all the rows of that key. Dedupe and
    /// `reference` rules keep the whole table's decisions (`replay::prepare`).
    pub fn fresh(&self, schema: &SchemaRef) -> Result<Arc<TableTransform>, String> {
        let mut fresh = compile(&self.spec, schema)?;
        fresh.share_decisions(&self.digests);
        Ok(Arc::new(fresh))
    }

    /// Whether rows can be left out (a `where` filter, row rules, dedupe): the source's row
    /// count then says nothing without reading the rows.
    pub fn drops_rows(&self) -> bool {
        self.spec.filter.is_some() || !self.spec.rules.is_empty() || self.spec.dedupe.is_some()
    }
}

impl std::fmt::Debug for SourceTransform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceTransform")
            .field("spec", &self.spec)
            .field("masked", &self.masked)
            .finish_non_exhaustive()
    }
}

fn compile(spec: &TransformSpec, schema: &SchemaRef) -> Result<TableTransform, String> {
    TableTransform::compile(spec, schema.clone()).map_err(|errors| {
        errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// The source column target column `i` of `job` copies unchanged (renamed at most), if any:
/// its source type then tells how its values are encoded too (a `char(n)` pads, `json`
/// normalizes). A computed, constant or masked column has only its own type.
pub(crate) fn copied_source(job: &TableJob, i: usize) -> Option<&LogicalType> {
    let s = job.source_columns.get(i)?;
    match &job.transform {
        None => Some(&s.logical),
        Some(spec) => spec
            .outputs
            .get(i)
            .filter(|o| {
                o.source.as_deref() == Some(s.name.as_str())
                    && o.expr.is_none()
                    && o.value.is_none()
                    && o.mask.is_none()
            })
            .map(|_| &s.logical),
    }
}

impl TableCheck {
    /// Target names of the compared columns.
    pub fn column_names(&self) -> Vec<String> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    pub fn key_names(&self) -> Vec<String> {
        let names = self.column_names();
        self.order[..self.key_len]
            .iter()
            .map(|&i| names[i].clone())
            .collect()
    }
}

/// Finds `name` among the target's tables: exactly, else by name alone (MySQL and SQLite have
/// no schema), else ignoring case when that is unambiguous.
pub(crate) fn find_table<'a>(catalog: &'a Catalog, name: &TableName) -> Option<&'a Table> {
    if let Some(t) = catalog.table(name) {
        return Some(t);
    }
    let unique = |f: &dyn Fn(&Table) -> bool| {
        let mut found = catalog.tables.iter().filter(|t| f(t));
        match (found.next(), found.next()) {
            (Some(t), None) => Some(t),
            _ => None,
        }
    };
    let schema_fits = |t: &Table| match (&t.name.schema, &name.schema) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        _ => true,
    };
    unique(&|t| t.name.name == name.name && schema_fits(t))
        .or_else(|| unique(&|t| t.name.name.eq_ignore_ascii_case(&name.name) && schema_fits(t)))
}

fn find_column<'a>(table: &'a Table, name: &str) -> Option<&'a Column> {
    table.column(name).or_else(|| {
        let mut found = table
            .columns
            .iter()
            .filter(|c| c.name.eq_ignore_ascii_case(name));
        match (found.next(), found.next()) {
            (Some(c), None) => Some(c),
            _ => None,
        }
    })
}

/// Whether `table` enforces the key at positions `key` of `read` as its primary key or as a
/// unique key of NOT NULL columns.
fn key_enforced(table: &Table, key: &[usize], read: &[ReadColumn]) -> bool {
    let names: Vec<&str> = key.iter().map(|&k| read[k].name.as_str()).collect();
    let same = |cols: &[String]| {
        cols.len() == names.len()
            && cols
                .iter()
                .all(|c| names.iter().any(|n| n.eq_ignore_ascii_case(c)))
    };
    let not_null = |cols: &[String]| {
        cols.iter()
            .all(|c| find_column(table, c).is_some_and(|c| !c.nullable))
    };
    same(&table.primary_key)
        || table
            .unique_keys
            .iter()
            .any(|u| u.unsupported.is_none() && same(&u.columns) && not_null(&u.columns))
}

/// Whether two native type names are the same type, ignoring case and spacing.
fn same_type(a: &str, b: &str) -> bool {
    let norm = |t: &str| {
        t.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    norm(a) == norm(b)
}

fn buckets_for(rows: u64) -> usize {
    (rows / ROWS_PER_BUCKET)
        .max(1)
        .next_power_of_two()
        .min(MAX_BUCKETS) as usize
}

/// Buckets of equal key width over `[lo, lo + span)`.
fn by_range(lo: i128, span: i128, rows: u64) -> Bucketing {
    let span = span.max(1);
    let buckets = (buckets_for(rows) as i128).min(span);
    Bucketing::Range {
        lo,
        width: (span + buckets - 1) / buckets,
        buckets: buckets as usize,
    }
}

/// The key width of a table's bounded chunks, which its open-ended first and last chunks borrow.
pub(crate) fn chunk_step(chunks: &[ChunkSpec]) -> Option<i128> {
    chunks.iter().find_map(|c| match c.range {
        ChunkRange::IntKey {
            lo: Some(l),
            hi: Some(h),
            ..
        } => Some(h as i128 - l as i128),
        _ => None,
    })
}

/// Range buckets for a key-range chunk; an open-ended chunk borrows the width of the others.
pub(crate) fn chunk_bucketing(range: &ChunkRange, step: Option<i128>, rows: u64) -> Bucketing {
    match (range, step) {
        (
            ChunkRange::IntKey {
                lo: Some(l),
                hi: Some(h),
                ..
            },
            _,
        ) => by_range(*l as i128, *h as i128 - *l as i128, rows),
        (
            ChunkRange::IntKey {
                lo: None,
                hi: Some(h),
                ..
            },
            Some(step),
        ) => by_range(*h as i128 - step, step, rows),
        (
            ChunkRange::IntKey {
                lo: Some(l),
                hi: None,
                ..
            },
            Some(step),
        ) => by_range(*l as i128, step, rows),
        _ => Bucketing::Hash {
            buckets: buckets_for(rows),
        },
    }
}

/// The keys rows may be matched by, best first: the plan's primary key, then its unique keys
/// of NOT NULL columns.
pub(crate) fn key_candidates(job: &TableJob) -> impl Iterator<Item = &Vec<String>> {
    std::iter::once(&job.target.primary_key)
        .chain(
            job.target
                .unique_keys
                .iter()
                .filter(|u| {
                    u.columns.iter().all(|c| {
                        job.target
                            .columns
                            .iter()
                            .any(|t| &t.name == c && !t.nullable)
                    })
                })
                .map(|u| &u.columns),
        )
        .filter(|k| !k.is_empty())
}

/// Resolves `job` against the target's catalog and plans its units. An `Err` is a message for
/// the table's report: the table cannot be compared as the plan describes it.
pub(crate) async fn resolve(
    job: &TableJob,
    source_table: &Table,
    target_catalog: &Catalog,
    source: &dyn Source,
    target: &dyn Source,
    run_recorded: bool,
) -> Result<TableCheck, String> {
    let target_table = find_table(target_catalog, &job.target.name).ok_or_else(|| {
        format!(
            "target table {} does not exist; run the plan first, or rename the table in the plan",
            job.target.name
        )
    })?;
    let mut notes = Vec::new();
    let mut missing = Vec::new();
    let (mut source_read, mut target_read) = (Vec::new(), Vec::new());
    let (mut source_fields, mut fields, mut kinds) = (Vec::new(), Vec::new(), Vec::new());
    for (i, planned) in job.target.columns.iter().enumerate() {
        let Some(actual) = find_column(target_table, &planned.name) else {
            missing.push(planned.name.clone());
            continue;
        };
        // A column Decant created is read as the plan wrote it; one created otherwise (another
        // tool, a later ALTER) as the target's introspection describes it.
        let logical = match &actual.logical {
            Some(l)
                if !actual
                    .native_type
                    .eq_ignore_ascii_case(&planned.native_type) =>
            {
                l.clone()
            }
            _ => planned.logical.clone(),
        };
        let field = logical.arrow_field(&actual.name, true, &actual.native_type);
        let kind =
            Canonical::for_column(field.data_type(), &[Some(&logical), copied_source(job, i)])
                .map_err(|e| format!("column {}: {e}", actual.name))?;
        target_read.push(ReadColumn {
            name: actual.name.clone(),
            native_type: actual.native_type.clone(),
            logical,
        });
        fields.push(field);
        kinds.push(kind);
    }
    // The source side reads every column the plan reads: with transforms, computed columns
    // and filters may need them all.
    for s in &job.source_columns {
        source_fields.push(s.logical.arrow_field(&s.name, true, &s.native_type));
        source_read.push(ReadColumn {
            name: s.name.clone(),
            native_type: s.native_type.clone(),
            logical: s.logical.clone(),
        });
    }
    if !missing.is_empty() {
        return Err(format!(
            "target table {} has no column {}",
            target_table.name,
            missing.join(", ")
        ));
    }
    for c in &target_table.columns {
        if !target_read.iter().any(|r| r.name == c.name) {
            notes.push(format!(
                "target column {} is not in the plan and is not compared",
                c.name
            ));
        }
    }
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    let source_schema: SchemaRef = Arc::new(Schema::new(source_fields));
    let transform = match &job.transform {
        Some(spec) => Some(SourceTransform {
            digests: Arc::new(compile(spec, &source_schema).map_err(|e| {
                format!("the plan's transforms cannot be replayed on the source: {e}")
            })?),
            masked: spec
                .outputs
                .iter()
                .filter(|o| o.mask.is_some())
                .map(|o| o.target_name.clone())
                .collect(),
            spec: spec.clone(),
        }),
        None => None,
    };
    let names: Vec<&str> = target_read.iter().map(|c| c.name.as_str()).collect();

    // The key: the plan's primary key, else a unique key of NOT NULL columns.
    let position = |n: &String| {
        names
            .iter()
            .position(|c| *c == n || c.eq_ignore_ascii_case(n))
    };
    let key: Vec<usize> = key_candidates(job)
        .find_map(|k| k.iter().map(position).collect::<Option<Vec<usize>>>())
        .unwrap_or_default();
    let mut order = key.clone();
    order.extend((0..names.len()).filter(|i| !key.contains(i)));

    // Both sides digest in place when they hash alike and every column has one type on both:
    // the same values then give the same hash.
    let same_family = match (
        source.in_place_digest_family(),
        target.in_place_digest_family(),
    ) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    };
    let in_place = same_family
        && transform.is_none()
        && source_read
            .iter()
            .zip(&target_read)
            .all(|(s, t)| same_type(&s.native_type, &t.native_type));
    // A chunk digested in place costs an aggregate query, a few milliseconds of fixed cost;
    // one that differs is aggregated again by key bucket. Smaller units make that second pass
    // cheaper at no measurable cost to the first. Inside `decant run`, whose load recorded the
    // source's digests chunk by chunk, the run's chunks are kept: the source is not read again.
    let chunk_rows = if in_place && !run_recorded {
        job.chunk_rows.min(IN_PLACE_UNIT_ROWS)
    } else {
        job.chunk_rows
    };
    let source_chunks = source
        .plan_chunks(source_table, chunk_rows)
        .await
        .map_err(|e| format!("cannot plan the source's chunks: {e}"))?;
    // Key ranges need the key as the source has it: a key a transform computes or changes
    // is matched by its hash instead.
    let key_source_name = match key.as_slice() {
        [k] => copied_source(job, *k).map(|_| source_read[*k].name.as_str()),
        _ => None,
    };
    let ranged = key_source_name.is_some_and(|k| {
        source_chunks
            .iter()
            .all(|c| matches!(&c.range, ChunkRange::IntKey { column, .. } if column == k))
    });
    // Key ranges on a target without an index on the key would scan the table once per chunk.
    let indexed = key.first().is_some_and(|&k| {
        let name = &target_read[k].name;
        let leads = |cols: &[String]| cols.first().is_some_and(|c| c.eq_ignore_ascii_case(name));
        leads(&target_table.primary_key)
            || target_table
                .unique_keys
                .iter()
                .chain(&target_table.indexes)
                .any(|i| leads(&i.columns))
    });
    if ranged && !indexed && source_chunks.len() > 1 {
        notes.push(format!(
            "the target has no index on {}: each side is read in its own chunks and rows are \
             matched by the hash of their key",
            target_read[key[0]].name
        ));
    }
    let aligned = ranged && (indexed || source_chunks.len() == 1);
    let (method, units) = if aligned {
        let target_key = target_read[key[0]].name.clone();
        let integer_key = is_integer(schema.field(key[0]).data_type());
        let step = chunk_step(&source_chunks);
        let units = source_chunks
            .into_iter()
            .map(|c| {
                let mapped = match &c.range {
                    ChunkRange::IntKey { lo, hi, .. } => ChunkRange::IntKey {
                        column: target_key.clone(),
                        lo: *lo,
                        hi: *hi,
                    },
                    other => other.clone(),
                };
                let bucketing = if integer_key {
                    chunk_bucketing(&c.range, step, c.estimated_rows)
                } else {
                    Bucketing::Hash {
                        buckets: buckets_for(c.estimated_rows),
                    }
                };
                Unit {
                    bucketing,
                    target_chunks: vec![ChunkSpec {
                        range: mapped,
                        ..c.clone()
                    }],
                    source_chunks: vec![c],
                }
            })
            .collect();
        (Method::KeyRanges, units)
    } else {
        let target_chunks = target
            .plan_chunks(target_table, chunk_rows)
            .await
            .map_err(|e| format!("cannot plan the target's chunks: {e}"))?;
        let rows = source_chunks
            .iter()
            .map(|c| c.estimated_rows)
            .sum::<u64>()
            .max(target_chunks.iter().map(|c| c.estimated_rows).sum())
            .max(source_table.row_estimate);
        let method = if key.is_empty() {
            notes.push(
                "the table has no key: it is compared as a multiset of rows, so a changed row \
                 shows as one row missing and one extra (rows cannot be told apart as changed)"
                    .into(),
            );
            Method::Multiset
        } else {
            Method::KeyHash
        };
        let unit = Unit {
            source_chunks,
            target_chunks,
            bucketing: Bucketing::Hash {
                buckets: buckets_for(rows),
            },
        };
        (method, vec![unit])
    };
    if let Some(t) = &transform {
        notes.push(
            "the plan transforms this table: source rows are compared after its transforms, \
             replayed here as `decant run` applies them"
                .into(),
        );
        if same_family {
            notes.push(
                "the source cannot be digested in the database, where the transforms do not \
                 run: its rows are read and transformed here"
                    .into(),
            );
        }
        if !t.masked.is_empty() {
            notes.push(format!(
                "masked columns ({}) are compared and shown masked, never with their source values",
                t.masked.join(", ")
            ));
        }
    }
    let distinct = !key.is_empty()
        && key_enforced(source_table, &key, &source_read)
        && key_enforced(target_table, &key, &target_read);
    Ok(TableCheck {
        in_place,
        distinct,
        source: job.source.clone(),
        target: target_table.name.clone(),
        source_read,
        source_schema,
        target_read,
        schema,
        kinds,
        key_len: key.len(),
        order,
        method,
        units,
        notes,
        transform,
        source_policies: job.policies.clone(),
        source_checks: job.checks.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(schema: Option<&str>, name: &str) -> Table {
        Table {
            name: TableName::new(schema, name),
            columns: vec![],
            primary_key: vec![],
            unique_keys: vec![],
            indexes: vec![],
            foreign_keys: vec![],
            checks: vec![],
            row_estimate: 0,
            size_bytes: 0,
            next_auto_increment: None,
        }
    }

    #[test]
    fn tables_are_found_with_or_without_schema() {
        let catalog = Catalog {
            server_version: String::new(),
            tables: vec![table(None, "Orders"), table(Some("public"), "t")],
            views: vec![],
            triggers: vec![],
        };
        let found = |s: Option<&str>, n: &str| {
            find_table(&catalog, &TableName::new(s, n)).map(|t| t.name.to_string())
        };
        assert_eq!(found(Some("public"), "t").as_deref(), Some("public.t"));
        assert_eq!(found(None, "t").as_deref(), Some("public.t"));
        assert_eq!(found(Some("public"), "Orders").as_deref(), Some("Orders"));
        assert_eq!(found(None, "orders").as_deref(), Some("Orders"));
        assert_eq!(found(Some("other"), "t"), None);
    }

    #[test]
    fn open_chunks_borrow_the_width_of_the_others() {
        let first = ChunkRange::IntKey {
            column: "id".into(),
            lo: None,
            hi: Some(1001),
        };
        assert_eq!(
            chunk_bucketing(&first, Some(1000), 2000),
            Bucketing::Range {
                lo: 1,
                width: 250,
                buckets: 4
            }
        );
        assert!(matches!(
            chunk_bucketing(&first, None, 1000),
            Bucketing::Hash { .. }
        ));
        let narrow = ChunkRange::IntKey {
            column: "id".into(),
            lo: Some(10),
            hi: Some(13),
        };
        assert_eq!(
            chunk_bucketing(&narrow, None, 1_000_000),
            Bucketing::Range {
                lo: 10,
                width: 1,
                buckets: 3
            },
            "never more buckets than keys"
        );
    }

    #[test]
    fn buckets_grow_with_rows_and_stay_bounded() {
        assert_eq!(buckets_for(0), 1);
        assert_eq!(buckets_for(250_000), 512);
        assert_eq!(buckets_for(u64::MAX), MAX_BUCKETS as usize);
    }
}
