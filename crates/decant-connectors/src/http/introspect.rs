//! Introspection of an API table: the first pages' records decide the columns and their types
//! with the JSON files' inference (`json_values::kind_of`, widening int → bigint → numeric →
//! text, objects and arrays as JSON); pinned types win; the key comes first and is NOT NULL.

use std::sync::Arc;

use decant_core::{Column, Table, TableName};
use serde_json::Value;

use super::paging::Pager;
use super::source::{ApiTable, HttpSource, config, lock};
use crate::error::ConnectorError;
use crate::files::json_values::kind_of;
use crate::files::values::{Kind, ValueFormats};

impl HttpSource {
    /// Reads the first pages into a table definition.
    pub(super) async fn infer(&self, t: &ApiTable) -> Result<Table, ConnectorError> {
        let mut pager = Pager::new(
            t.url.clone(),
            &t.def.pagination,
            Pager::start(&t.def.pagination),
            None,
        );
        let mut fields: Vec<(String, Kind)> = Vec::new();
        let formats = ValueFormats::default();
        let mut sampled = 0usize;
        while sampled < self.sample_records {
            let Some(url) = pager.next_url().cloned() else {
                break;
            };
            let page = self.page(t, &url).await?;
            for r in page.records.iter().take(pager.keep(page.records.len())) {
                let Value::Object(m) = r else { continue }; // the load rejects it
                for (k, v) in m {
                    let kind = kind_of(v, &formats);
                    match fields.iter_mut().find(|f| &f.0 == k) {
                        Some(f) => f.1 = f.1.widen(kind),
                        None => fields.push((k.clone(), kind)),
                    }
                }
                sampled += 1;
            }
            pager.advance(&page.url, &page.body, &page.headers, page.records.len())?;
        }
        for (name, _) in &t.pinned {
            if !fields.iter().any(|f| &f.0 == name) {
                fields.push((name.clone(), Kind::Unknown));
            }
        }
        let key = t.def.key.clone();
        if let Some(k) = &key
            && !fields.iter().any(|f| &f.0 == k)
        {
            return Err(config(format!(
                "source.http table `{}`: the key field `{k}` is in none of the {sampled} sampled records",
                t.def.name
            )));
        }
        // The key first, then the fields by name (JSON objects carry no column order).
        fields.sort_by(|a, b| {
            (Some(&a.0) != key.as_ref(), &a.0).cmp(&(Some(&b.0) != key.as_ref(), &b.0))
        });
        if fields.is_empty() {
            return Err(config(format!(
                "source.http table `{}`: no record to infer columns from; pin them with columns",
                t.def.name
            )));
        }
        lock(&self.layouts).insert(
            t.def.name.clone(),
            Arc::new(fields.iter().map(|f| f.0.clone()).collect()),
        );
        let columns = fields
            .into_iter()
            .map(|(name, kind)| {
                let logical = t
                    .pinned
                    .iter()
                    .find(|p| p.0 == name)
                    .map_or_else(|| kind.logical(), |p| p.1.clone());
                Column {
                    // A later page may leave out any field but the key.
                    nullable: Some(&name) != key.as_ref(),
                    native_type: logical.to_string(),
                    logical: Some(logical),
                    name,
                    default: None,
                    auto_increment: false,
                    generated: false,
                }
            })
            .collect();
        Ok(Table {
            name: TableName::new(None, &t.def.name),
            columns,
            primary_key: key.into_iter().collect(),
            unique_keys: vec![],
            indexes: vec![],
            foreign_keys: vec![],
            checks: vec![],
            row_estimate: sampled as u64,
            size_bytes: 0,
            next_auto_increment: None,
        })
    }
}
