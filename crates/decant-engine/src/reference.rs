//! The `reference` rule's lookups: each reads its table's key columns once per run, on the
//! source or the target, into a set of key hashes capped at `max_keys`, and the order tables
//! load in so that a lookup on the target sees a table this job loads only once it is whole.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use decant_connectors::{ReadColumn, ReadRequest, Source, connect_source_with};
use decant_core::plan::Plan;
use decant_core::transform::ReferenceSide;
use decant_core::{Catalog, ChunkRange, ChunkSpec};
use decant_transform::{ReferenceNeed, TableTransform, key_hash};
use tokio::sync::mpsc;

use crate::error::EngineError;

/// Batch size of the key reads: a few MB at most, whatever the table.
const KEY_BATCH_ROWS: usize = 16_384;

/// The load wave of each table (by target name): 0 for tables without target lookups into
/// this job, else one more than the tables they look up. Chunks of a wave start only when
/// every earlier wave committed, so the lookup reads whole tables.
pub fn waves(
    tables: &[(String, Option<Arc<TableTransform>>)],
    target_default_schema: Option<&str>,
) -> Result<BTreeMap<String, usize>, EngineError> {
    let names: Vec<&str> = tables.iter().map(|(n, _)| n.as_str()).collect();
    let deps: BTreeMap<&str, Vec<&str>> = tables
        .iter()
        .map(|(name, t)| {
            let refs = t.as_ref().map_or_else(Vec::new, |t| t.references());
            let in_job = refs
                .iter()
                .filter(|r| r.side == ReferenceSide::Target)
                .filter_map(|r| {
                    names
                        .iter()
                        .find(|n| same_table(n, &r.table, target_default_schema))
                        .copied()
                })
                .collect();
            (name.as_str(), in_job)
        })
        .collect();
    let mut wave = BTreeMap::new();
    fn visit<'a>(
        n: &'a str,
        deps: &BTreeMap<&'a str, Vec<&'a str>>,
        wave: &mut BTreeMap<String, usize>,
        path: &mut Vec<&'a str>,
    ) -> Result<usize, EngineError> {
        if let Some(w) = wave.get(n) {
            return Ok(*w);
        }
        if path.contains(&n) {
            path.push(n);
            return Err(EngineError::Plan(vec![format!(
                "reference rules on the target go round in a circle ({}): a table can only look up tables loaded before it; use side = \"source\" for one of them",
                path.join(" -> ")
            )]));
        }
        path.push(n);
        let mut w = 0;
        for d in deps.get(n).into_iter().flatten() {
            w = w.max(visit(d, deps, wave, path)? + 1);
        }
        path.pop();
        wave.insert(n.to_string(), w);
        Ok(w)
    }
    for n in &names {
        visit(n, &deps, &mut wave, &mut Vec::new())?;
    }
    Ok(wave)
}

/// `schema.table` or `table` (in the side's default schema, or any schema when it has none).
fn same_table(full: &str, wanted: &str, default_schema: Option<&str>) -> bool {
    if full == wanted {
        return true;
    }
    match (full.rsplit_once('.'), wanted.contains('.')) {
        (Some((schema, name)), false) => {
            name == wanted && default_schema.is_none_or(|d| d == schema)
        }
        (None, false) => full == wanted,
        _ => false,
    }
}

/// Opens the two sides once and answers every lookup of a run.
pub struct ReferenceLoader {
    source: Arc<dyn Source>,
    source_catalog: Option<Catalog>,
    /// The target, opened as a reader on first use.
    target: Option<Arc<dyn Source>>,
    /// The schema an unqualified target table name means.
    target_schema: Option<String>,
    plan: Plan,
}

impl ReferenceLoader {
    pub fn new(
        plan: &Plan,
        source: Arc<dyn Source>,
        target_schema: Option<String>,
    ) -> ReferenceLoader {
        ReferenceLoader {
            source,
            source_catalog: None,
            target: None,
            target_schema,
            plan: plan.clone(),
        }
    }

    /// Loads the keys of every reference rule of `transform` into it.
    pub async fn load(
        &mut self,
        table: &str,
        transform: &TableTransform,
    ) -> Result<(), EngineError> {
        for need in transform.references() {
            let keys = self.keys(&need).await.map_err(|e| {
                EngineError::Plan(vec![format!("table {table}: rule `{}`: {e}", need.name)])
            })?;
            tracing::info!(table = %table, rule = %need.name, keys = keys.len(), "reference keys loaded");
            transform.set_reference_keys(need.rule, keys);
        }
        Ok(())
    }

    async fn keys(&mut self, need: &ReferenceNeed) -> Result<HashSet<u128>, String> {
        let (reader, default_schema) = match need.side {
            ReferenceSide::Source => (self.source.clone(), None),
            ReferenceSide::Target => {
                if self.target.is_none() {
                    let url = self.plan.target_url().map_err(|e| e.to_string())?;
                    let reader = connect_source_with(&url, None)
                        .await
                        .map_err(|e| format!("cannot read the target: {e}"))?;
                    self.target = Some(reader);
                }
                (
                    self.target.clone().expect("opened above"),
                    self.target_schema.clone(),
                )
            }
        };
        // The target's catalog is read each time: a table this job loaded appears in it.
        let catalog = match need.side {
            ReferenceSide::Source => {
                if self.source_catalog.is_none() {
                    self.source_catalog = Some(
                        reader
                            .introspect(&self.plan.source.schemas)
                            .await
                            .map_err(|e| e.to_string())?,
                    );
                }
                self.source_catalog.clone().expect("read above")
            }
            ReferenceSide::Target => reader.introspect(&[]).await.map_err(|e| e.to_string())?,
        };
        let side = match need.side {
            ReferenceSide::Source => "source",
            ReferenceSide::Target => "target",
        };
        let table = catalog
            .tables
            .iter()
            .find(|t| same_table(&t.name.to_string(), &need.table, default_schema.as_deref()))
            .ok_or_else(|| format!("the {side} has no table {}", need.table))?;
        let mut columns = Vec::new();
        for k in &need.key {
            let c = table
                .column(k)
                .ok_or_else(|| format!("{side} table {} has no column {k}", table.name))?;
            let logical = c.logical.clone().ok_or_else(|| {
                format!(
                    "{side} column {}.{k} has a type Decant cannot read ({})",
                    table.name, c.native_type
                )
            })?;
            columns.push(ReadColumn {
                name: k.clone(),
                native_type: c.native_type.clone(),
                logical,
            });
        }
        let schema = Arc::new(arrow_schema::Schema::new(
            columns
                .iter()
                .map(|c| c.logical.arrow_field(&c.name, true, &c.native_type))
                .collect::<Vec<_>>(),
        ));
        let request = ReadRequest {
            table: table.name.clone(),
            columns,
            chunk: ChunkSpec {
                id: "reference".into(),
                range: ChunkRange::Whole,
                estimated_rows: table.row_estimate,
            },
            batch_rows: KEY_BATCH_ROWS,
            schema,
            policies: Default::default(),
            rejects: Default::default(),
            filter: None,
        };
        let (tx, mut rx) = mpsc::channel(2);
        let read = tokio::spawn(async move { reader.read_chunk(&request, tx).await });
        let mut keys = HashSet::new();
        let all: Vec<usize> = (0..need.key.len()).collect();
        let mut too_many = false;
        while let Some(batch) = rx.recv().await {
            for row in 0..batch.num_rows() {
                if let Some(k) = key_hash(&batch, &all, row) {
                    keys.insert(k);
                }
            }
            if keys.len() as u64 > need.max_keys {
                too_many = true;
                break; // dropping the receiver stops the reader
            }
        }
        drop(rx);
        let result = read.await.map_err(|e| e.to_string())?;
        if too_many {
            return Err(format!(
                "{side} table {} has more than max_keys = {} keys; raise max_keys (about 40 bytes of memory per key)",
                table.name, need.max_keys
            ));
        }
        result.map_err(|e| e.to_string())?;
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::{DataType, Field, Schema};
    use decant_core::transform::{Columns, RowRule, RuleAction, RuleCheck};
    use decant_transform::{OutputSpec, TransformSpec};

    fn looking_up(table: &str, side: ReferenceSide) -> Option<Arc<TableTransform>> {
        let spec = TransformSpec {
            outputs: vec![OutputSpec {
                name: "ref_id".into(),
                target_name: "ref_id".into(),
                source: Some("ref_id".into()),
                expr: None,
                value: None,
                mask: None,
            }],
            rules: vec![RowRule {
                name: "exists".into(),
                action: RuleAction::Reject,
                check: RuleCheck::Reference {
                    column: Columns::One("ref_id".into()),
                    table: table.into(),
                    key: Columns::One("id".into()),
                    side,
                    max_keys: None,
                },
            }],
            ..Default::default()
        };
        let schema = Arc::new(Schema::new(vec![Field::new(
            "ref_id",
            DataType::Int64,
            true,
        )]));
        Some(Arc::new(TableTransform::compile(&spec, schema).unwrap()))
    }

    #[test]
    fn target_lookups_into_the_job_load_in_later_waves_and_circles_are_refused() {
        let tables = vec![
            (
                "public.a".to_string(),
                looking_up("b", ReferenceSide::Target),
            ),
            (
                "public.b".to_string(),
                looking_up("public.c", ReferenceSide::Target),
            ),
            (
                "public.c".to_string(),
                looking_up("a", ReferenceSide::Source),
            ),
            ("public.d".to_string(), None),
        ];
        let w = waves(&tables, Some("public")).unwrap();
        assert_eq!(w["public.c"], 0, "a source lookup waits for nothing");
        assert_eq!(w["public.b"], 1);
        assert_eq!(w["public.a"], 2);
        assert_eq!(w["public.d"], 0);
        let circle = vec![
            (
                "public.a".to_string(),
                looking_up("b", ReferenceSide::Target),
            ),
            (
                "public.b".to_string(),
                looking_up("a", ReferenceSide::Target),
            ),
        ];
        let err = waves(&circle, Some("public")).unwrap_err().to_string();
        assert!(err.contains("go round in a circle"), "{err}");
    }

    #[test]
    fn table_names_match_with_and_without_schema() {
        assert!(same_table("public.customers", "customers", Some("public")));
        assert!(same_table(
            "public.customers",
            "public.customers",
            Some("public")
        ));
        assert!(!same_table("sales.customers", "customers", Some("public")));
        assert!(same_table("shop.customers", "customers", None));
        assert!(!same_table(
            "public.customers2",
            "customers",
            Some("public")
        ));
    }
}
