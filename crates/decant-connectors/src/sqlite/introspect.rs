//! Reads a SQLite file's catalog from `sqlite_schema` and the table-valued `PRAGMA`s
//! (`table_list`, `table_xinfo`, `index_list`, `index_info`, `foreign_key_list`), plus `dbstat`.

use std::collections::HashMap;

use decant_core::{
    Catalog, Column, Dialect, ForeignKey, Index, Table, TableName, View, quote_ident,
};
use rusqlite::{Connection, OptionalExtension};

use super::ddl::{index_name, parse_create_table};
use super::rowid_alias;
use super::types::to_logical;
use crate::MARKER_TABLE;
use crate::error::ConnectorError;

/// Reads every table and view of the `main` database but SQLite's own (`sqlite_*`), Decant's
/// marker table, and virtual tables with their shadow tables (their data is not theirs to copy).
pub fn introspect(conn: &Connection) -> Result<Catalog, ConnectorError> {
    let version: String = conn.query_row("SELECT sqlite_version()", [], |r| r.get(0))?;
    let mut stmt = conn.prepare(
        "SELECT l.name, l.type, l.wr, s.sql FROM pragma_table_list AS l \
         LEFT JOIN sqlite_schema AS s ON s.name = l.name AND s.type IN ('table', 'view') \
         WHERE l.schema = 'main' AND l.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
         ORDER BY l.name",
    )?;
    let objects: Vec<(String, String, bool, Option<String>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    let names: HashMap<String, String> = objects
        .iter()
        .map(|(n, ..)| (n.to_lowercase(), n.clone()))
        .collect();
    let sizes = btree_sizes(conn);
    let mut catalog = Catalog {
        server_version: format!("SQLite {version}"),
        ..Catalog::default()
    };
    for (name, kind, without_rowid, sql) in objects {
        match kind.as_str() {
            "table" if name != MARKER_TABLE => catalog.tables.push(table(
                conn,
                &name,
                without_rowid,
                sql.as_deref().unwrap_or(""),
                &names,
            )?),
            "view" => catalog.views.push(View {
                name: TableName::new(None, &name),
                definition: sql,
            }),
            "virtual" | "shadow" => {
                tracing::info!(table = %name, kind, "sqlite virtual table left out")
            }
            _ => {}
        }
    }
    let mut triggers = conn
        .prepare("SELECT tbl_name, name FROM sqlite_schema WHERE type = 'trigger' ORDER BY 1, 2")?;
    catalog.triggers = triggers
        .query_map([], |r| {
            Ok(decant_core::Trigger {
                table: TableName::new(None, &r.get::<_, String>(0)?),
                name: r.get(1)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    drop(triggers);
    if let Some(sizes) = sizes {
        for t in &mut catalog.tables {
            t.size_bytes = btrees_of(conn, &t.name.name)?
                .iter()
                .filter_map(|b| sizes.get(b))
                .sum();
        }
    } else {
        // No dbstat: share the file's size among tables by row count.
        let file: i64 = conn.query_row(
            "SELECT page_count * page_size FROM pragma_page_count, pragma_page_size",
            [],
            |r| r.get(0),
        )?;
        let file = file.max(0) as u64;
        let rows: u64 = catalog.tables.iter().map(|t| t.row_estimate).sum();
        for t in &mut catalog.tables {
            t.size_bytes = (file as u128 * t.row_estimate as u128 / rows.max(1) as u128) as u64;
        }
    }
    Ok(catalog)
}

/// Bytes per b-tree (table or index) from `dbstat`, or `None` when SQLite lacks it.
fn btree_sizes(conn: &Connection) -> Option<HashMap<String, u64>> {
    let mut stmt = conn
        .prepare("SELECT name, pgsize FROM dbstat WHERE aggregate = TRUE")
        .ok()?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .ok()?;
    rows.map(|r| r.map(|(n, s)| (n, s.max(0) as u64)))
        .collect::<Result<_, _>>()
        .ok()
}

/// A table's b-trees: itself and its indexes (automatic ones included).
fn btrees_of(conn: &Connection, table: &str) -> Result<Vec<String>, ConnectorError> {
    let mut stmt = conn.prepare("SELECT name FROM sqlite_schema WHERE tbl_name = ?1")?;
    let names = stmt
        .query_map([table], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(names)
}

type XInfo = (String, String, bool, Option<String>, i64, i64);

fn table(
    conn: &Connection,
    name: &str,
    without_rowid: bool,
    sql: &str,
    names: &HashMap<String, String>,
) -> Result<Table, ConnectorError> {
    let mut stmt = conn.prepare(
        "SELECT name, type, \"notnull\", dflt_value, pk, hidden FROM pragma_table_xinfo(?1) \
         WHERE hidden <> 1 ORDER BY cid",
    )?;
    let xinfo: Vec<XInfo> = stmt
        .query_map([name], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    let triples: Vec<(String, String, i64)> = xinfo
        .iter()
        .map(|(n, t, _, _, pk, _)| (n.clone(), t.clone(), *pk))
        .collect();
    let alias = if without_rowid {
        None
    } else {
        rowid_alias(conn, name, &triples)?
    };
    let mut pk: Vec<(i64, String)> = xinfo
        .iter()
        .filter(|c| c.4 > 0)
        .map(|c| (c.4, c.0.clone()))
        .collect();
    pk.sort();
    let text = parse_create_table(name, sql);
    let columns = xinfo
        .into_iter()
        .map(|(cname, ty, notnull, default, pk, hidden)| {
            let is_alias = alias.as_deref() == Some(cname.as_str());
            Column {
                logical: Some(to_logical(&ty)),
                native_type: ty,
                // The rowid, and WITHOUT ROWID key columns, cannot hold NULL whatever is declared.
                nullable: !(notnull || is_alias || (without_rowid && pk > 0)),
                default,
                auto_increment: is_alias,
                generated: hidden == 2 || hidden == 3,
                name: cname,
            }
        })
        .collect();
    let qname = quote_ident(Dialect::Sqlite, name);
    let (rows, max_key): (i64, Option<i64>) = match &alias {
        Some(a) => conn.query_row(
            &format!(
                "SELECT count(*), max({}) FROM {qname}",
                quote_ident(Dialect::Sqlite, a)
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?,
        None => (
            conn.query_row(&format!("SELECT count(*) FROM {qname}"), [], |r| r.get(0))?,
            None,
        ),
    };
    let next_auto_increment = match &alias {
        Some(_) if text.autoincrement => Some(
            conn.query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = ?1",
                [name],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map_or(1, |s| s.saturating_add(1)),
        ),
        Some(_) => Some(max_key.map_or(1, |m| m.saturating_add(1))),
        None => None,
    };
    let (unique_keys, indexes) = indexes(conn, name)?;
    Ok(Table {
        name: TableName::new(None, name),
        columns,
        primary_key: pk.into_iter().map(|(_, c)| c).collect(),
        unique_keys,
        indexes,
        foreign_keys: foreign_keys(conn, name, names)?,
        checks: text.checks,
        row_estimate: rows.max(0) as u64,
        size_bytes: 0,
        next_auto_increment,
    })
}

/// Unique constraints and other indexes; the primary key's own index is left out.
fn indexes(conn: &Connection, table: &str) -> Result<(Vec<Index>, Vec<Index>), ConnectorError> {
    let mut stmt = conn.prepare(
        "SELECT name, \"unique\", origin, partial FROM pragma_index_list(?1) ORDER BY name",
    )?;
    let list: Vec<(String, bool, String, bool)> = stmt
        .query_map([table], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut info = conn.prepare("SELECT cid, name FROM pragma_index_info(?1) ORDER BY seqno")?;
    let (mut unique_keys, mut others) = (Vec::new(), Vec::new());
    for (name, unique, origin, partial) in list {
        if origin == "pk" {
            continue;
        }
        let parts: Vec<(i64, Option<String>)> = info
            .query_map([&name], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let unsupported = if parts.iter().any(|(cid, _)| *cid == -2) {
            Some("expression index".to_string())
        } else if partial {
            Some("partial index (WHERE clause)".to_string())
        } else if parts.iter().any(|(_, n)| n.is_none()) {
            Some("indexes the rowid".to_string())
        } else {
            None
        };
        let mut index = Index {
            name,
            columns: parts.into_iter().filter_map(|(_, n)| n).collect(),
            unique,
            unsupported,
        };
        index.name = index_name(table, &index);
        if origin == "u" {
            unique_keys.push(index);
        } else {
            others.push(index);
        }
    }
    Ok((unique_keys, others))
}

fn foreign_keys(
    conn: &Connection,
    table: &str,
    names: &HashMap<String, String>,
) -> Result<Vec<ForeignKey>, ConnectorError> {
    let mut stmt = conn.prepare(
        "SELECT id, \"table\", \"from\", \"to\", on_update, on_delete \
         FROM pragma_foreign_key_list(?1) ORDER BY id, seq",
    )?;
    type Row = (i64, String, String, Option<String>, String, String);
    let rows: Vec<Row> = stmt
        .query_map([table], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    let action = |a: &str| (!a.eq_ignore_ascii_case("NO ACTION")).then(|| a.to_string());
    let mut out: Vec<(i64, ForeignKey, bool)> = Vec::new();
    for (id, parent, from, to, on_update, on_delete) in rows {
        if out.last().is_none_or(|(last, ..)| *last != id) {
            // SQLite matches names case-insensitively; use the parent's name as it is stored.
            let parent = names.get(&parent.to_lowercase()).cloned().unwrap_or(parent);
            out.push((
                id,
                ForeignKey {
                    name: String::new(),
                    columns: vec![],
                    ref_table: TableName::new(None, &parent),
                    ref_columns: vec![],
                    on_delete: action(&on_delete),
                    on_update: action(&on_update),
                },
                false,
            ));
        }
        let (_, fk, implicit) = out.last_mut().expect("pushed above");
        fk.columns.push(from);
        match to {
            Some(to) => fk.ref_columns.push(to),
            None => *implicit = true,
        }
    }
    let mut fks = Vec::new();
    for (_, mut fk, implicit) in out.into_iter().rev() {
        if implicit {
            // `REFERENCES parent` without columns means the parent's primary key.
            let mut pk =
                conn.prepare("SELECT name FROM pragma_table_xinfo(?1) WHERE pk > 0 ORDER BY pk")?;
            fk.ref_columns = pk
                .query_map([&fk.ref_table.name], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
        }
        fk.name = format!("{table}_{}_fkey", fk.columns.join("_"));
        fks.push(fk);
    }
    Ok(fks)
}
