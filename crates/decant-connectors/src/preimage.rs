//! Upserts with pre-images: the SQL every dialect shares for staging a chunk, recording what it
//! is about to change, and undoing it. Each target adds only its own upsert statement and how
//! rows reach the stage table.
//!
//! A side table holds, per row the job touched, either the row as it was before the job
//! updated it (`_decant_op = 'u'`) or the row the job inserted (`'i'`, only its key matters),
//! and `_decant_seq`, increasing in commit order. Undo restores every updated key to its
//! earliest pre-image, then deletes the inserted keys.

use decant_core::ident::quote_qualified;
use decant_core::{Dialect, TableName, quote_ident};

use crate::traits::TargetTable;

/// The name of the per-session stage table a chunk is loaded into before it is merged.
pub const STAGE_TABLE: &str = "_decant_stage";

/// Column of the side table naming the operation: `u` (pre-image) or `i` (inserted).
pub const OP_COLUMN: &str = "_decant_op";

/// Column of the side table ordering its rows (SQLite uses its `rowid`).
pub const SEQ_COLUMN: &str = "_decant_seq";

pub(crate) fn qualified(dialect: Dialect, table: &TableName) -> String {
    quote_qualified(dialect, table.schema.as_deref(), &table.name)
}

fn list(dialect: Dialect, names: &[String], prefix: &str) -> String {
    names
        .iter()
        .map(|c| format!("{prefix}{}", quote_ident(dialect, c)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn column_names(table: &TargetTable) -> Vec<String> {
    table.columns.iter().map(|c| c.name.clone()).collect()
}

/// `a.k1 = b.k1 AND a.k2 = b.k2`.
fn key_match(dialect: Dialect, key: &[String], a: &str, b: &str) -> String {
    key.iter()
        .map(|k| {
            let k = quote_ident(dialect, k);
            format!("{a}.{k} = {b}.{k}")
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn seq(dialect: Dialect) -> String {
    match dialect {
        Dialect::Sqlite => "rowid".into(),
        d => quote_ident(d, SEQ_COLUMN),
    }
}

/// Statements that record, for the rows staged in `stage`, the pre-image of every row of the
/// target they will update and the key of every row they will insert. They run before the
/// merge, in its transaction.
pub fn record_statements(
    dialect: Dialect,
    table: &TargetTable,
    key: &[String],
    side: &TableName,
    stage: &str,
) -> Vec<String> {
    let cols = column_names(table);
    let t = qualified(dialect, &table.name);
    let p = qualified(dialect, side);
    let op = quote_ident(dialect, OP_COLUMN);
    let into = format!("INSERT INTO {p} ({}, {op})", list(dialect, &cols, ""));
    let first_key = quote_ident(dialect, &key[0]);
    vec![
        format!(
            "{into} SELECT {}, 'u' FROM {t} x JOIN {stage} s ON {}",
            list(dialect, &cols, "x."),
            key_match(dialect, key, "x", "s")
        ),
        // A LEFT JOIN rather than NOT EXISTS: MySQL's optimizer handles both, SQLite plans
        // the join on the key index.
        format!(
            "{into} SELECT {}, 'i' FROM {stage} s LEFT JOIN {t} x ON {} WHERE x.{first_key} IS NULL",
            list(dialect, &cols, "s."),
            key_match(dialect, key, "x", "s")
        ),
    ]
}

/// The key tuple of `table` that `IN` compares: `k` or `(k1, k2)`.
fn key_tuple(dialect: Dialect, key: &[String]) -> String {
    match key {
        [one] => quote_ident(dialect, one),
        many => format!("({})", list(dialect, many, "")),
    }
}

/// Restores every updated key to its earliest pre-image, then deletes the inserted rows; run in
/// one transaction.
pub fn undo_statements(
    dialect: Dialect,
    table: &TargetTable,
    key: &[String],
    side: &TableName,
) -> Vec<String> {
    let t = qualified(dialect, &table.name);
    let p = qualified(dialect, side);
    let op = quote_ident(dialect, OP_COLUMN);
    let seq = seq(dialect);
    let keys = list(dialect, key, "");
    let non_key: Vec<&String> = table
        .columns
        .iter()
        .map(|c| &c.name)
        .filter(|c| !key.contains(c))
        .collect();
    // The earliest pre-image of each key: the row as it was before the job's first change.
    let first = format!(
        "(SELECT {keys}, min({seq}) AS first_seq FROM {p} WHERE {op} = 'u' GROUP BY {keys})"
    );
    let mut statements = Vec::new();
    if !non_key.is_empty() {
        let set_from = |prefix: &str| {
            non_key
                .iter()
                .map(|c| {
                    let c = quote_ident(dialect, c);
                    format!("{prefix}{c} = p.{c}")
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        statements.push(match dialect {
            Dialect::Mysql => format!(
                "UPDATE {t} x JOIN {p} p ON {} JOIN {first} f ON f.first_seq = p.{seq} SET {}",
                key_match(dialect, key, "x", "p"),
                set_from("x.")
            ),
            _ => format!(
                "UPDATE {t} AS x SET {} FROM {p} p JOIN {first} f ON f.first_seq = p.{seq} WHERE {}",
                set_from(""),
                key_match(dialect, key, "x", "p")
            ),
        });
    }
    statements.push(format!(
        "DELETE FROM {t} WHERE {} IN (SELECT {keys} FROM {p} WHERE {op} = 'i')",
        key_tuple(dialect, key)
    ));
    statements
}

/// The merge of the stage into the target: insert new keys, update the other columns of
/// existing ones.
pub fn merge_statement(
    dialect: Dialect,
    table: &TargetTable,
    key: &[String],
    stage: &str,
) -> String {
    let cols = column_names(table);
    let t = qualified(dialect, &table.name);
    let non_key: Vec<&String> = cols.iter().filter(|c| !key.contains(c)).collect();
    let insert = format!(
        "INSERT INTO {t} ({}) SELECT {} FROM {stage}",
        list(dialect, &cols, ""),
        list(dialect, &cols, "")
    );
    match dialect {
        Dialect::Mysql => {
            let set = if non_key.is_empty() {
                let k = quote_ident(dialect, &key[0]);
                format!("{k} = {k}")
            } else {
                non_key
                    .iter()
                    .map(|c| {
                        let c = quote_ident(dialect, c);
                        format!("{c} = VALUES({c})")
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!("{insert} ON DUPLICATE KEY UPDATE {set}")
        }
        _ => {
            let action = if non_key.is_empty() {
                "DO NOTHING".to_string()
            } else {
                let set = non_key
                    .iter()
                    .map(|c| {
                        let c = quote_ident(dialect, c);
                        format!("{c} = excluded.{c}")
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("DO UPDATE SET {set}")
            };
            // SQLite needs a WHERE to tell the upsert clause from a join constraint.
            let filter = if dialect == Dialect::Sqlite {
                " WHERE true"
            } else {
                ""
            };
            format!(
                "{insert}{filter} ON CONFLICT ({}) {action}",
                list(dialect, key, "")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traits::TargetColumn;
    use decant_core::LogicalType;

    fn table() -> TargetTable {
        let col = |name: &str| TargetColumn {
            name: name.into(),
            native_type: "integer".into(),
            logical: LogicalType::Int32,
            nullable: true,
            auto_increment: false,
        };
        TargetTable {
            name: TableName {
                schema: Some("public".into()),
                name: "t".into(),
            },
            columns: vec![col("id"), col("v")],
            primary_key: vec!["id".into()],
            unique_keys: vec![],
            indexes: vec![],
            foreign_keys: vec![],
        }
    }

    #[test]
    fn postgres_merge_updates_the_other_columns() {
        let sql = merge_statement(Dialect::Postgres, &table(), &["id".into()], "s");
        assert_eq!(
            sql,
            "INSERT INTO \"public\".\"t\" (\"id\", \"v\") SELECT \"id\", \"v\" FROM s ON CONFLICT (\"id\") DO UPDATE SET \"v\" = excluded.\"v\""
        );
    }

    #[test]
    fn mysql_merge_and_undo_use_its_syntax() {
        let mut t = table();
        t.name.schema = None;
        let sql = merge_statement(Dialect::Mysql, &t, &["id".into()], "s");
        assert!(
            sql.ends_with("ON DUPLICATE KEY UPDATE `v` = VALUES(`v`)"),
            "{sql}"
        );
        let side = TableName {
            schema: None,
            name: "p".into(),
        };
        let undo = undo_statements(Dialect::Mysql, &t, &["id".into()], &side);
        assert!(
            undo[0].starts_with("UPDATE `t` x JOIN `p` p ON x.`id` = p.`id`"),
            "{}",
            undo[0]
        );
        assert_eq!(
            undo[1],
            "DELETE FROM `t` WHERE `id` IN (SELECT `id` FROM `p` WHERE `_decant_op` = 'i')"
        );
    }

    #[test]
    fn a_table_that_is_all_key_only_inserts_and_deletes() {
        let mut t = table();
        t.columns.truncate(1);
        let side = TableName {
            schema: None,
            name: "p".into(),
        };
        assert!(merge_statement(Dialect::Sqlite, &t, &["id".into()], "s").ends_with("DO NOTHING"));
        assert_eq!(
            undo_statements(Dialect::Sqlite, &t, &["id".into()], &side).len(),
            1
        );
    }
}
