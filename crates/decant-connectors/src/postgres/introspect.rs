//! Reads PostgreSQL's catalog into a `Catalog`: tables, columns, keys, indexes, foreign keys,
//! checks, enums and domains, estimates and sizes, views.

use std::collections::HashMap;

use decant_core::{
    Catalog, CheckConstraint, Column, ForeignKey, Index, LogicalType, Table, TableName, View,
};
use tokio_postgres::Client;

use super::types::to_logical;
use crate::MARKER_TABLE;
use crate::error::ConnectorError;

const SYSTEM_SCHEMAS: &str = "('pg_catalog', 'information_schema', 'pg_toast')";

fn fk_action(code: &str) -> Option<String> {
    match code {
        "c" => Some("CASCADE".into()),
        "n" => Some("SET NULL".into()),
        "d" => Some("SET DEFAULT".into()),
        "r" => Some("RESTRICT".into()),
        _ => None, // 'a' = NO ACTION, the default
    }
}

/// Reads the catalog of the schemas named (all non-system schemas when empty).
pub async fn introspect(client: &Client, schemas: &[String]) -> Result<Catalog, ConnectorError> {
    let server_version: String = client.query_one("SELECT version()", &[]).await?.get(0);
    let schema_filter = format!(
        "n.nspname NOT IN {SYSTEM_SCHEMAS} AND n.nspname NOT LIKE 'pg_temp%' AND (cardinality($1::text[]) = 0 OR n.nspname = ANY($1))"
    );
    let tables = client
        .query(
            &format!(
                "SELECT c.oid, n.nspname, c.relname, greatest(c.reltuples, 0)::float8, \
                        pg_total_relation_size(c.oid)::int8 \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND {schema_filter} \
                   AND c.relname <> '{MARKER_TABLE}' \
                 ORDER BY n.nspname, c.relname"
            ),
            &[&schemas],
        )
        .await?;
    let oids: Vec<u32> = tables.iter().map(|r| r.get(0)).collect();

    let enum_labels = enum_labels(client).await?;

    // Columns, with domains resolved to their base type and arrays to their element type.
    let columns = client
        .query(
            "SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                    pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text, \
                    t.typtype::text, t.oid, \
                    CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END, \
                    bt.typtype::text, bt.oid, t.typname \
             FROM pg_attribute a \
             JOIN pg_type t ON t.oid = a.atttypid \
             LEFT JOIN pg_type bt ON bt.oid = t.typbasetype \
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attrelid, a.attnum",
            &[&oids],
        )
        .await?;
    let mut cols_by_table: HashMap<u32, Vec<Column>> = HashMap::new();
    for r in &columns {
        let rel: u32 = r.get(0);
        let name: String = r.get(1);
        let mut native: String = r.get(2);
        let default: Option<String> = r.get(4);
        let identity: String = r.get(5);
        let generated: String = r.get(6);
        let typtype: String = r.get(7);
        let type_oid: u32 = r.get(8);
        let domain_base: Option<String> = r.get(9);
        let base_typtype: Option<String> = r.get(10);
        let base_oid: Option<u32> = r.get(11);
        let type_name: String = r.get(12);
        let logical = if typtype == "e" {
            Some(LogicalType::Enum {
                name: Some(type_name.clone()),
                values: enum_labels.get(&type_oid).cloned().unwrap_or_default(),
            })
        } else if let Some(base) = domain_base {
            // A domain is carried as its base type; its constraint is listed in the docs as not carried.
            native = base;
            if base_typtype.as_deref() == Some("e") {
                Some(LogicalType::Enum {
                    name: None,
                    values: base_oid
                        .and_then(|o| enum_labels.get(&o).cloned())
                        .unwrap_or_default(),
                })
            } else {
                to_logical(&native)
            }
        } else {
            to_logical(&native)
        };
        let auto_increment = !identity.is_empty()
            || default
                .as_deref()
                .is_some_and(|d| d.starts_with("nextval("));
        cols_by_table.entry(rel).or_default().push(Column {
            name,
            native_type: native,
            logical,
            nullable: !r.get::<_, bool>(3),
            default: if generated.is_empty() { default } else { None },
            auto_increment,
            generated: !generated.is_empty(),
        });
    }

    let constraints = client
        .query(
            "SELECT con.conrelid, con.conname, con.contype::text, \
                    ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, i) \
                          JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i), \
                    fn.nspname, fc.relname, \
                    ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, i) \
                          JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.i), \
                    con.confdeltype::text, con.confupdtype::text, pg_get_constraintdef(con.oid), con.conindid \
             FROM pg_constraint con \
             LEFT JOIN pg_class fc ON fc.oid = con.confrelid \
             LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace \
             WHERE con.conrelid = ANY($1) AND con.contype IN ('p', 'u', 'f', 'c') \
             ORDER BY con.conrelid, con.conname",
            &[&oids],
        )
        .await?;

    let indexes = client
        .query(
            "SELECT i.indrelid, ic.relname, i.indisunique, \
                    ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o) \
                          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o), \
                    i.indexprs IS NOT NULL OR i.indpred IS NOT NULL, pg_get_indexdef(i.indexrelid), \
                    EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.contype IN ('p','u','x')), \
                    am.amname \
             FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam \
             WHERE i.indrelid = ANY($1) ORDER BY i.indrelid, ic.relname",
            &[&oids],
        )
        .await?;

    let mut out = Vec::with_capacity(tables.len());
    for t in &tables {
        let oid: u32 = t.get(0);
        let schema: String = t.get(1);
        let mut table = Table {
            name: TableName::new(Some(&schema), &t.get::<_, String>(2)),
            columns: cols_by_table.remove(&oid).unwrap_or_default(),
            primary_key: vec![],
            unique_keys: vec![],
            indexes: vec![],
            foreign_keys: vec![],
            checks: vec![],
            row_estimate: t.get::<_, f64>(3) as u64,
            size_bytes: t.get::<_, i64>(4) as u64,
            next_auto_increment: None,
        };
        for c in constraints.iter().filter(|c| c.get::<_, u32>(0) == oid) {
            let name: String = c.get(1);
            let cols: Vec<String> = c.get(3);
            match c.get::<_, String>(2).as_str() {
                "p" => table.primary_key = cols,
                "u" => table.unique_keys.push(Index {
                    name,
                    columns: cols,
                    unique: true,
                    unsupported: None,
                }),
                "f" => table.foreign_keys.push(ForeignKey {
                    name,
                    columns: cols,
                    ref_table: TableName::new(
                        c.get::<_, Option<&str>>(4),
                        c.get::<_, Option<&str>>(5).unwrap_or_default(),
                    ),
                    ref_columns: c.get(6),
                    on_delete: fk_action(c.get(7)),
                    on_update: fk_action(c.get(8)),
                }),
                _ => {
                    let def: String = c.get(9);
                    let expression = def.strip_prefix("CHECK ").unwrap_or(&def).to_string();
                    table.checks.push(CheckConstraint { name, expression });
                }
            }
        }
        for i in indexes
            .iter()
            .filter(|i| i.get::<_, u32>(0) == oid && !i.get::<_, bool>(6))
        {
            let method: String = i.get(7);
            let unsupported = if i.get::<_, bool>(4) {
                Some(format!(
                    "expression or partial index: {}",
                    i.get::<_, String>(5)
                ))
            } else if method != "btree" {
                Some(format!("{method} index: {}", i.get::<_, String>(5)))
            } else {
                None
            };
            table.indexes.push(Index {
                name: i.get(1),
                columns: i.get(3),
                unique: i.get(2),
                unsupported,
            });
        }
        out.push(table);
    }

    let views = client
        .query(
            &format!(
                "SELECT n.nspname, c.relname, pg_get_viewdef(c.oid) FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('v', 'm') AND {schema_filter} ORDER BY 1, 2"
            ),
            &[&schemas],
        )
        .await?
        .iter()
        .map(|r| View {
            name: TableName::new(Some(r.get(0)), r.get(1)),
            definition: r.get(2),
        })
        .collect();

    let triggers = client
        .query(
            "SELECT n.nspname, c.relname, t.tgname FROM pg_trigger t \
             JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE NOT t.tgisinternal AND t.tgrelid = ANY($1) ORDER BY 1, 2, 3",
            &[&oids],
        )
        .await?
        .iter()
        .map(|r| decant_core::Trigger {
            table: TableName::new(Some(r.get(0)), r.get(1)),
            name: r.get(2),
        })
        .collect();
    Ok(Catalog {
        server_version,
        tables: out,
        views,
        triggers,
    })
}

async fn enum_labels(client: &Client) -> Result<HashMap<u32, Vec<String>>, ConnectorError> {
    let mut out: HashMap<u32, Vec<String>> = HashMap::new();
    for r in client
        .query(
            "SELECT enumtypid, enumlabel::text FROM pg_enum ORDER BY enumtypid, enumsortorder",
            &[],
        )
        .await?
    {
        out.entry(r.get(0)).or_default().push(r.get(1));
    }
    Ok(out)
}
