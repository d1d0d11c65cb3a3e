//! DDL for the MySQL target: InnoDB tables with the primary key inline, keys and indexes after
//! the data, foreign keys last. Every identifier is quoted; statements can run again on resume
//! (`IF NOT EXISTS`, which MariaDB also accepts for keys and foreign keys).

use std::collections::HashMap;

use decant_core::Index;

use super::types::NativeType;
use super::{ident, qualified};
use crate::traits::{DdlSet, TargetColumn, TargetTable};

/// Bytes of an InnoDB index key Decant plans with (the limit is 3072; some room for the rest).
const KEY_BYTES: u32 = 3000;

/// Text and blob types, which MySQL indexes only by a prefix.
fn is_long(native: &str) -> Option<bool> {
    match NativeType::parse(native).base.as_str() {
        "tinytext" | "text" | "mediumtext" | "longtext" => Some(false),
        "tinyblob" | "blob" | "mediumblob" | "longblob" => Some(true),
        _ => None,
    }
}

fn is_integer(native: &str) -> bool {
    let t = NativeType::parse(native);
    matches!(
        t.base.as_str(),
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint"
    ) && t.nums().as_slice() != [1]
}

/// A name of at most 64 bytes: long names are cut and suffixed with a hash of the whole.
fn object_name(name: &str) -> String {
    if name.len() <= 64 && !name.eq_ignore_ascii_case("PRIMARY") {
        return name.to_string();
    }
    // FNV-1a: stable across builds, so a resumed job computes the same name.
    let hash = name.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    });
    let mut end = 55.min(name.len());
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}_{hash:08x}", &name[..end])
}

/// `(`a`, `b`(191))`: long columns of a non-unique index get a prefix.
fn key_columns(columns: &[String], natives: &HashMap<&str, &str>) -> String {
    let long = columns
        .iter()
        .filter(|c| {
            natives
                .get(c.as_str())
                .is_some_and(|n| is_long(n).is_some())
        })
        .count()
        .max(1) as u32;
    let parts: Vec<String> = columns
        .iter()
        .map(|c| match natives.get(c.as_str()).and_then(|n| is_long(n)) {
            Some(true) => format!("{}({})", ident(c), KEY_BYTES / long),
            Some(false) => format!("{}({})", ident(c), KEY_BYTES / 4 / long),
            None => ident(c),
        })
        .collect();
    parts.join(", ")
}

/// Key columns (primary or unique) cannot be prefixes: long text becomes a bounded varchar, so
/// a longer value fails the load instead of breaking uniqueness.
fn bounded_key_types(table: &TargetTable) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = HashMap::new();
    let keys = std::iter::once(&table.primary_key).chain(
        table
            .unique_keys
            .iter()
            .chain(&table.indexes)
            .filter(|i| i.unique && i.unsupported.is_none())
            .map(|i| &i.columns),
    );
    for key in keys {
        let long: Vec<(&TargetColumn, bool)> = key
            .iter()
            .filter_map(|k| table.columns.iter().find(|c| &c.name == k))
            .filter_map(|c| is_long(&c.native_type).map(|b| (c, b)))
            .collect();
        let n = long.len().max(1) as u32;
        for (c, binary) in long {
            let (limit, ty) = if binary {
                (KEY_BYTES / n, "varbinary")
            } else {
                (KEY_BYTES / 4 / n, "varchar")
            };
            let keep = out
                .get(&c.name)
                .and_then(|t| NativeType::parse(t).nums().first().copied());
            if keep.is_none_or(|k| limit < k) {
                out.insert(c.name.clone(), format!("{ty}({limit})"));
            }
        }
    }
    out
}

pub fn ddl(table: &TargetTable, mariadb: bool) -> DdlSet {
    let q = qualified(&table.name);
    let bounded = bounded_key_types(table);
    let natives: HashMap<&str, &str> = table
        .columns
        .iter()
        .map(|c| {
            let n = bounded.get(&c.name).unwrap_or(&c.native_type);
            (c.name.as_str(), n.as_str())
        })
        .collect();
    // MySQL allows one AUTO_INCREMENT column, of an integer type, and it must lead a key.
    let auto = table
        .columns
        .iter()
        .find(|c| c.auto_increment && is_integer(natives[c.name.as_str()]));
    let mut defs: Vec<String> = table
        .columns
        .iter()
        .map(|c| {
            let mut d = format!(
                "{} {} {}",
                ident(&c.name),
                natives[c.name.as_str()],
                if c.nullable { "NULL" } else { "NOT NULL" }
            );
            if auto.is_some_and(|a| a.name == c.name) {
                d.push_str(" AUTO_INCREMENT");
            }
            d
        })
        .collect();
    if !table.primary_key.is_empty() {
        defs.push(format!(
            "PRIMARY KEY ({})",
            key_columns(&table.primary_key, &natives)
        ));
    }
    if let Some(a) = auto
        && table.primary_key.first() != Some(&a.name)
    {
        defs.push(format!(
            "KEY {} ({})",
            ident(&object_name(&format!("decant_ai_{}", a.name))),
            ident(&a.name)
        ));
    }
    let create = vec![format!(
        "CREATE TABLE IF NOT EXISTS {q} (\n  {}\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 \
         COLLATE=utf8mb4_bin",
        defs.join(",\n  ")
    )];

    let if_not_exists = if mariadb { " IF NOT EXISTS" } else { "" };
    let add_index = |i: &Index, unique: bool| {
        format!(
            "ALTER TABLE {q} ADD {}KEY{if_not_exists} {} ({})",
            if unique { "UNIQUE " } else { "" },
            ident(&object_name(&i.name)),
            key_columns(&i.columns, &natives)
        )
    };
    let mut indexes: Vec<String> = table
        .unique_keys
        .iter()
        .filter(|u| u.unsupported.is_none())
        .map(|u| add_index(u, true))
        .collect();
    indexes.extend(
        table
            .indexes
            .iter()
            .filter(|i| i.unsupported.is_none())
            .map(|i| add_index(i, i.unique)),
    );
    let cols = |c: &[String]| c.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ");
    let foreign_keys = table
        .foreign_keys
        .iter()
        .map(|fk| {
            let mut s = format!(
                "ALTER TABLE {q} ADD CONSTRAINT {} FOREIGN KEY{if_not_exists} ({}) REFERENCES {} ({})",
                ident(&object_name(&fk.name)),
                cols(&fk.columns),
                qualified(&fk.ref_table),
                cols(&fk.ref_columns)
            );
            for (what, action) in [("DELETE", &fk.on_delete), ("UPDATE", &fk.on_update)] {
                if let Some(a) = action {
                    s.push_str(&format!(" ON {what} {a}"));
                }
            }
            s
        })
        .collect();
    DdlSet {
        create,
        indexes,
        foreign_keys,
        // InnoDB moves AUTO_INCREMENT past explicit ids by itself.
        sequences: vec![],
        drop: format!("DROP TABLE IF EXISTS {q}"),
        truncate: format!("TRUNCATE TABLE {q}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use decant_core::{LogicalType, TableName};

    fn col(name: &str, native: &str) -> TargetColumn {
        TargetColumn {
            name: name.into(),
            native_type: native.into(),
            logical: LogicalType::Text,
            nullable: false,
            auto_increment: false,
        }
    }

    #[test]
    fn long_key_columns_are_bounded_and_names_quoted() {
        let table = TargetTable {
            name: TableName::new(None, "or`der"),
            columns: vec![col("code", "longtext"), col("note", "longtext")],
            primary_key: vec!["code".into()],
            unique_keys: vec![],
            indexes: vec![Index {
                name: "x".repeat(70),
                columns: vec!["note".into()],
                unique: false,
                unsupported: None,
            }],
            foreign_keys: vec![],
        };
        let d = ddl(&table, true);
        assert!(d.create[0].contains("CREATE TABLE IF NOT EXISTS `or``der`"));
        assert!(d.create[0].contains("`code` varchar(750) NOT NULL"));
        assert!(d.create[0].contains("`note` longtext NOT NULL"));
        assert!(d.indexes[0].contains("(`note`(750))"), "{}", d.indexes[0]);
        assert!(d.indexes[0].contains("ADD KEY IF NOT EXISTS"));
        assert_eq!(object_name(&"x".repeat(70)).len(), 64);
    }
}
