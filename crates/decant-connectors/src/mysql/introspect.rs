//! Reads the catalog of the URL's database from `information_schema`.

use std::collections::BTreeMap;

use decant_core::{
    Catalog, CheckConstraint, Column, Dialect, ForeignKey, Index, LogicalType, Table, TableName,
    View, quote_literal,
};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::types::{NativeType, to_logical};
use super::{ServerInfo, ident};
use crate::error::ConnectorError;

type TableRow = (
    String,
    String,
    Option<u64>,
    Option<u64>,
    Option<u64>,
    Option<u64>,
);
type ColumnRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
);
type IndexRow = (String, String, i64, Option<String>, Option<i64>, String);
type FkRow = (
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    String,
);

/// Reads tables (columns, keys, indexes, foreign keys, checks, estimates) and views.
pub async fn introspect(conn: &mut Conn, server: &ServerInfo) -> Result<Catalog, ConnectorError> {
    let db = server.database.as_str();
    if !server.mariadb {
        // MySQL 8 caches table statistics for a day by default; estimates should be current.
        let _ = conn
            .query_drop("SET SESSION information_schema_stats_expiry = 0")
            .await;
    }
    let mut tables: BTreeMap<String, Table> = BTreeMap::new();
    let mut views = Vec::new();
    let rows: Vec<TableRow> = conn
        .exec(
            "SELECT TABLE_NAME, TABLE_TYPE, TABLE_ROWS, DATA_LENGTH, INDEX_LENGTH, AUTO_INCREMENT \
             FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME",
            (db,),
        )
        .await?;
    for (name, kind, rows, data, index, auto) in rows {
        if kind == "VIEW" || name == crate::MARKER_TABLE {
            continue;
        }
        if kind != "BASE TABLE" && kind != "SYSTEM VERSIONED" {
            tracing::debug!(table = %name, kind = %kind, "skipping non-table object");
            continue;
        }
        tables.insert(
            name.clone(),
            Table {
                name: TableName::new(None, &name),
                columns: vec![],
                primary_key: vec![],
                unique_keys: vec![],
                indexes: vec![],
                foreign_keys: vec![],
                checks: vec![],
                row_estimate: rows.unwrap_or(0),
                size_bytes: data.unwrap_or(0) + index.unwrap_or(0),
                next_auto_increment: auto.and_then(|a| i64::try_from(a).ok()),
            },
        );
    }

    let columns: Vec<ColumnRow> = conn
        .exec(
            "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA, \
             DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? \
             ORDER BY TABLE_NAME, ORDINAL_POSITION",
            (db,),
        )
        .await?;
    for (table, name, native, nullable, default, extra, data_type) in columns {
        let Some(t) = tables.get_mut(&table) else {
            continue;
        };
        let extra_l = extra.to_ascii_lowercase();
        t.columns.push(Column {
            logical: to_logical(&native),
            default: normalize_default(server.mariadb, default, &extra_l, &data_type),
            auto_increment: extra_l.contains("auto_increment"),
            generated: extra_l.contains("virtual generated")
                || extra_l.contains("stored generated"),
            nullable: nullable == "YES",
            native_type: native,
            name,
        });
    }

    let index_rows: Vec<IndexRow> = conn
        .exec(
            "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART, INDEX_TYPE \
             FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? \
             ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
            (db,),
        )
        .await?;
    let mut indexes: BTreeMap<(String, String), Index> = BTreeMap::new();
    for (table, name, non_unique, column, sub_part, index_type) in index_rows {
        let index = indexes
            .entry((table, name.clone()))
            .or_insert_with(|| Index {
                name,
                columns: vec![],
                unique: non_unique == 0,
                unsupported: None,
            });
        let why = match (&column, sub_part) {
            (None, _) => Some("expression index".to_string()),
            (Some(c), Some(n)) => Some(format!("prefix index on {c}({n})")),
            _ if index_type != "BTREE" && index_type != "HASH" => {
                Some(format!("{} index", index_type.to_ascii_lowercase()))
            }
            _ => None,
        };
        if let (Some(why), None) = (why, &index.unsupported) {
            index.unsupported = Some(why);
        }
        index.columns.extend(column);
    }
    for ((table, name), index) in indexes {
        let Some(t) = tables.get_mut(&table) else {
            continue;
        };
        if name == "PRIMARY" {
            t.primary_key = index.columns;
        } else if index.unique {
            t.unique_keys.push(index);
        } else {
            t.indexes.push(index);
        }
    }

    let fk_rows: Vec<FkRow> = conn
        .exec(
            "SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_SCHEMA, \
             k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME, r.DELETE_RULE, r.UPDATE_RULE \
             FROM information_schema.KEY_COLUMN_USAGE k \
             JOIN information_schema.REFERENTIAL_CONSTRAINTS r \
               ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA \
              AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME AND r.TABLE_NAME = k.TABLE_NAME \
             WHERE k.TABLE_SCHEMA = ? AND k.REFERENCED_TABLE_NAME IS NOT NULL \
             ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION",
            (db,),
        )
        .await?;
    for (table, name, column, ref_schema, ref_table, ref_column, on_delete, on_update) in fk_rows {
        let Some(t) = tables.get_mut(&table) else {
            continue;
        };
        if t.foreign_keys.last().is_none_or(|fk| fk.name != name) {
            let ref_schema = ref_schema.filter(|s| s != db);
            t.foreign_keys.push(ForeignKey {
                name,
                columns: vec![],
                ref_table: TableName::new(ref_schema.as_deref(), &ref_table),
                ref_columns: vec![],
                on_delete: fk_action(&on_delete),
                on_update: fk_action(&on_update),
            });
        }
        let fk = t.foreign_keys.last_mut().expect("pushed above");
        fk.columns.push(column);
        fk.ref_columns.push(ref_column);
    }

    for (table, name, clause) in checks(conn, server).await? {
        let Some(t) = tables.get_mut(&table) else {
            continue;
        };
        // MariaDB's `json` is `longtext` with a `json_valid(col)` check: the column is JSON.
        let compact: String = clause.chars().filter(|c| !c.is_whitespace()).collect();
        let json_col = t.columns.iter_mut().find(|c| {
            NativeType::parse(&c.native_type).base == "longtext"
                && compact.eq_ignore_ascii_case(&format!("json_valid({})", ident(&c.name)))
        });
        if let Some(c) = json_col {
            c.logical = Some(LogicalType::Json);
            c.native_type = "json".into();
            continue;
        }
        t.checks.push(CheckConstraint {
            name,
            expression: clause,
        });
    }

    let view_rows: Vec<(String, Option<String>)> = conn
        .exec(
            "SELECT TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS \
             WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME",
            (db,),
        )
        .await?;
    for (name, definition) in view_rows {
        views.push(View {
            name: TableName::new(None, &name),
            definition: definition.filter(|d| !d.is_empty()),
        });
    }

    let triggers: Vec<(String, String)> = conn
        .query(
            "SELECT EVENT_OBJECT_TABLE, TRIGGER_NAME FROM information_schema.TRIGGERS \
             WHERE TRIGGER_SCHEMA = DATABASE() ORDER BY 1, 2",
        )
        .await?;
    Ok(Catalog {
        server_version: server.version.clone(),
        tables: tables.into_values().collect(),
        views,
        triggers: triggers
            .into_iter()
            .map(|(table, name)| decant_core::Trigger {
                table: TableName::new(None, &table),
                name,
            })
            .collect(),
    })
}

/// Check constraints as (table, name, clause): MariaDB ≥ 10.2 names the table in
/// `CHECK_CONSTRAINTS` (its constraint names are unique per table only); MySQL ≥ 8.0.16 needs
/// `TABLE_CONSTRAINTS` for it; older servers have no such table and enforce no checks.
async fn checks(
    conn: &mut Conn,
    server: &ServerInfo,
) -> Result<Vec<(String, String, String)>, ConnectorError> {
    let sql = if server.mariadb {
        "SELECT TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
         WHERE CONSTRAINT_SCHEMA = ? ORDER BY TABLE_NAME, CONSTRAINT_NAME"
    } else {
        "SELECT t.TABLE_NAME, c.CONSTRAINT_NAME, c.CHECK_CLAUSE \
         FROM information_schema.CHECK_CONSTRAINTS c \
         JOIN information_schema.TABLE_CONSTRAINTS t \
           ON t.CONSTRAINT_SCHEMA = c.CONSTRAINT_SCHEMA AND t.CONSTRAINT_NAME = c.CONSTRAINT_NAME \
          AND t.CONSTRAINT_TYPE = 'CHECK' \
         WHERE c.CONSTRAINT_SCHEMA = ? ORDER BY t.TABLE_NAME, c.CONSTRAINT_NAME"
    };
    match conn.exec(sql, (&server.database,)).await {
        Ok(rows) => Ok(rows),
        // 1109 unknown table, 1054 unknown column: a server without CHECK support.
        Err(mysql_async::Error::Server(e)) if matches!(e.code, 1109 | 1054) => {
            tracing::debug!(error = %e.message, "no check constraints on this server");
            Ok(vec![])
        }
        Err(e) => Err(e.into()),
    }
}

/// `RESTRICT` is kept; `NO ACTION`, the default, is `None` (as the other connectors report it).
fn fk_action(rule: &str) -> Option<String> {
    match rule {
        "NO ACTION" | "" => None,
        other => Some(other.to_string()),
    }
}

/// The default as SQL text. MariaDB ≥ 10.2.7 already reports SQL (quoted literals, `NULL` for
/// none); MySQL reports a literal's bare value, and marks expressions `DEFAULT_GENERATED`.
fn normalize_default(
    mariadb: bool,
    default: Option<String>,
    extra: &str,
    data_type: &str,
) -> Option<String> {
    let d = default?;
    if mariadb {
        return (d != "NULL").then_some(d);
    }
    let numeric = matches!(
        data_type,
        "tinyint"
            | "smallint"
            | "mediumint"
            | "int"
            | "bigint"
            | "decimal"
            | "float"
            | "double"
            | "bit"
            | "year"
    );
    if extra.contains("default_generated") {
        let upper = d.to_ascii_uppercase();
        if upper.starts_with("CURRENT_TIMESTAMP") || upper.starts_with("NOW(") {
            Some(d)
        } else {
            Some(format!("({d})"))
        }
    } else if numeric || d.to_ascii_uppercase().starts_with("CURRENT_TIMESTAMP") {
        Some(d)
    } else {
        Some(quote_literal(Dialect::Mysql, &d))
    }
}
