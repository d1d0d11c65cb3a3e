//! Which unique keys an upsert into a MySQL table matches on. `ON DUPLICATE KEY UPDATE` takes
//! the first unique key a row collides on, whichever it is: an upsert on `key` is only an upsert
//! on `key` when every unique index of the table contains `key` (so that colliding on it means
//! colliding on `key`), and one of them is `key` itself (else rows with an existing `key` are
//! inserted again).

use decant_core::TableName;
use mysql_async::Pool;
use mysql_async::prelude::Queryable;

use crate::error::ConnectorError;

/// A unique index of a table: its name and columns, in index order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UniqueIndex {
    pub name: String,
    pub columns: Vec<String>,
}

/// The unique indexes of the live `table` (the primary key is `PRIMARY`).
pub(crate) async fn unique_indexes(
    pool: &Pool,
    table: &TableName,
) -> Result<Vec<UniqueIndex>, ConnectorError> {
    let mut conn = pool.get_conn().await?;
    let rows: Vec<(String, String)> = conn
        .exec(
            "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND NON_UNIQUE = 0 \
             ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            (table.schema.as_deref(), table.name.as_str()),
        )
        .await?;
    let mut indexes: Vec<UniqueIndex> = Vec::new();
    for (name, column) in rows {
        match indexes.last_mut() {
            Some(i) if i.name == name => i.columns.push(column),
            _ => indexes.push(UniqueIndex {
                name,
                columns: vec![column],
            }),
        }
    }
    Ok(indexes)
}

fn columns(cols: &[String]) -> String {
    cols.iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The problems of an upsert of `table` on `key` given its unique indexes (column names
/// compare as MySQL compares them, without case).
pub(crate) fn problems(table: &TableName, key: &[String], indexes: &[UniqueIndex]) -> Vec<String> {
    let has = |index: &UniqueIndex, column: &String| {
        index.columns.iter().any(|c| c.eq_ignore_ascii_case(column))
    };
    let mut problems = Vec::new();
    for index in indexes {
        if !key.iter().all(|k| has(index, k)) {
            let what = if index.name == "PRIMARY" {
                "the primary key".to_string()
            } else {
                format!("unique index `{}`", index.name)
            };
            problems.push(format!(
                "{table}: if_exists = \"upsert\" matches rows on ({}), but MySQL/MariaDB's ON DUPLICATE KEY UPDATE \
                 also matches on {what} ({}): a row colliding on it would overwrite a different row and record the \
                 wrong pre-image. Drop that index on the target (or make it non-unique) for the load, declare \
                 [tables.\"{}\"] key = [{}] if it identifies the same rows and it is the table's only unique key, \
                 or set if_exists to \"swap\" or \"append\"",
                columns(key),
                columns(&index.columns),
                table.name,
                index
                    .columns
                    .iter()
                    .map(|c| format!("\"{c}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let exact = indexes
        .iter()
        .any(|i| i.columns.len() == key.len() && key.iter().all(|k| has(i, k)));
    if !exact {
        problems.push(format!(
            "{table}: the upsert key ({}) is not a unique key of the target table, and MySQL/MariaDB matches rows \
             on unique keys only (rows with an existing key would be inserted again): add a UNIQUE index on ({}) \
             to the target, or declare key = the table's primary key",
            columns(key),
            columns(key)
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(name: &str, cols: &[&str]) -> UniqueIndex {
        UniqueIndex {
            name: name.into(),
            columns: cols.iter().map(|c| c.to_string()).collect(),
        }
    }

    fn t() -> TableName {
        TableName {
            schema: None,
            name: "t".into(),
        }
    }

    #[test]
    fn only_the_key_and_indexes_that_contain_it_are_safe() {
        let key = vec!["id".to_string()];
        assert!(problems(&t(), &key, &[index("PRIMARY", &["id"])]).is_empty());
        // Colliding on (id, v) means colliding on id: the same row.
        assert!(
            problems(
                &t(),
                &key,
                &[index("PRIMARY", &["ID"]), index("id_v", &["v", "id"])]
            )
            .is_empty()
        );
        let found = problems(
            &t(),
            &key,
            &[index("PRIMARY", &["id"]), index("uq_email", &["email"])],
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("unique index `uq_email` (`email`)") && found[0].contains("swap"),
            "{}",
            found[0]
        );
    }

    #[test]
    fn a_key_without_a_unique_index_is_refused_and_the_primary_key_named() {
        let key = vec!["email".to_string()];
        let found = problems(&t(), &key, &[index("PRIMARY", &["id"])]);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("the primary key (`id`)"), "{}", found[0]);
        assert!(
            found[1].contains("add a UNIQUE index on (`email`)"),
            "{}",
            found[1]
        );
    }
}
