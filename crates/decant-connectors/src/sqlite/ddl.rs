//! DDL text both ways: reading what `PRAGMA`s do not report from a table's `CREATE TABLE` text
//! (check constraints, `AUTOINCREMENT`), and writing the DDL of a target table.

use decant_core::{CheckConstraint, Dialect, ForeignKey, Index, quote_ident};

use crate::MARKER_TABLE;
use crate::traits::{DdlSet, TargetTable};

fn q(name: &str) -> String {
    quote_ident(Dialect::Sqlite, name)
}

/// One token of SQLite's SQL: what matters here is words, parentheses and where each starts.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A keyword or identifier, unquoted (`CHECK`) or quoted (`"we""ird"` → `we"ird`).
    Word {
        text: String,
        quoted: bool,
    },
    Open,
    Close,
    Comma,
    /// A string literal, number or operator: anything else.
    Other,
}

/// Splits SQL into tokens with their byte offsets; strings, quoted names and comments are
/// consumed whole, so a `CHECK` or a parenthesis inside them is never mistaken for syntax.
fn tokenize(sql: &str) -> Vec<(usize, usize, Token)> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        let c = b[i];
        let token = match c {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..].find("*/").map_or(b.len(), |p| i + 2 + p + 2);
                continue;
            }
            b'\'' | b'"' | b'`' | b'[' => {
                let close = if c == b'[' { b']' } else { c };
                let mut text = String::new();
                i += 1;
                let mut from = i;
                while i < b.len() {
                    if b[i] == close {
                        text.push_str(&sql[from..i]);
                        if close != b']' && b.get(i + 1) == Some(&close) {
                            text.push(close as char);
                            i += 2;
                            from = i;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
                if c == b'\'' {
                    Token::Other
                } else {
                    Token::Word { text, quoted: true }
                }
            }
            b'(' => {
                i += 1;
                Token::Open
            }
            b')' => {
                i += 1;
                Token::Close
            }
            b',' => {
                i += 1;
                Token::Comma
            }
            c if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 => {
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric()
                        || b[i] == b'_'
                        || b[i] == b'$'
                        || b[i] >= 0x80)
                {
                    i += 1;
                }
                Token::Word {
                    text: sql[start..i].to_string(),
                    quoted: false,
                }
            }
            _ => {
                i += 1;
                Token::Other
            }
        };
        out.push((start, i.min(b.len()), token));
    }
    out
}

fn is_keyword(t: &Token, kw: &str) -> bool {
    matches!(t, Token::Word { text, quoted: false } if text.eq_ignore_ascii_case(kw))
}

/// What the `CREATE TABLE` text says beyond the `PRAGMA`s.
#[derive(Debug, Default, PartialEq)]
pub struct CreateTableText {
    pub checks: Vec<CheckConstraint>,
    pub autoincrement: bool,
}

/// Reads check constraints (column and table constraints, with their `CONSTRAINT` names where
/// given) and `AUTOINCREMENT` from a table's `CREATE TABLE` text.
pub fn parse_create_table(table: &str, sql: &str) -> CreateTableText {
    let tokens = tokenize(sql);
    let mut out = CreateTableText::default();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i].2;
        match t {
            Token::Open => depth += 1,
            Token::Close => depth = depth.saturating_sub(1),
            _ if depth == 1 && is_keyword(t, "AUTOINCREMENT") => out.autoincrement = true,
            _ if depth == 1 && is_keyword(t, "CHECK") => {
                if let Some((expr, next)) = parenthesized(sql, &tokens, i + 1) {
                    let name = match i.checked_sub(2).map(|k| (&tokens[k].2, &tokens[k + 1].2)) {
                        Some((c, Token::Word { text, .. })) if is_keyword(c, "CONSTRAINT") => {
                            text.clone()
                        }
                        _ => format!("{table}_check{}", out.checks.len() + 1),
                    };
                    out.checks.push(CheckConstraint {
                        name,
                        expression: expr,
                    });
                    i = next;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The text inside the parentheses that open at token `at`, and the token index after them.
fn parenthesized(
    sql: &str,
    tokens: &[(usize, usize, Token)],
    at: usize,
) -> Option<(String, usize)> {
    let (open_start, _, Token::Open) = tokens.get(at)? else {
        return None;
    };
    let mut depth = 0usize;
    for (k, (start, _, t)) in tokens.iter().enumerate().skip(at) {
        match t {
            Token::Open => depth += 1,
            Token::Close => {
                depth -= 1;
                if depth == 0 {
                    return Some((sql[open_start + 1..*start].trim().to_string(), k + 1));
                }
            }
            _ => {}
        }
    }
    None
}

fn column_list(columns: &[String]) -> String {
    columns.iter().map(|c| q(c)).collect::<Vec<_>>().join(", ")
}

/// SQLite reserves `sqlite_` names (its automatic unique indexes are named so): give those a
/// name SQLite accepts.
pub fn index_name(table: &str, index: &Index) -> String {
    if index.name.to_ascii_lowercase().starts_with("sqlite_") || index.name.is_empty() {
        let suffix = if index.unique { "key" } else { "idx" };
        format!("{table}_{}_{suffix}", index.columns.join("_"))
    } else {
        index.name.clone()
    }
}

/// The name an index gets on a SQLite target. SQLite index names are global: a MySQL source may
/// use one name on several tables, and `IF NOT EXISTS` would then skip the second index without a
/// word, so names are prefixed with their table unless they already are.
fn target_index_name(table: &str, index: &Index) -> String {
    let name = index_name(table, index);
    if name.starts_with(&format!("{table}_")) {
        name
    } else {
        format!("{table}_{name}")
    }
}

fn foreign_key_clause(fk: &ForeignKey) -> String {
    let mut s = format!(
        "FOREIGN KEY ({}) REFERENCES {} ({})",
        column_list(&fk.columns),
        q(&fk.ref_table.name),
        column_list(&fk.ref_columns)
    );
    for (what, action) in [("DELETE", &fk.on_delete), ("UPDATE", &fk.on_update)] {
        if let Some(a) = action {
            let a = a.to_ascii_uppercase();
            if matches!(
                a.as_str(),
                "CASCADE" | "RESTRICT" | "SET NULL" | "SET DEFAULT" | "NO ACTION"
            ) {
                s.push_str(&format!(" ON {what} {a}"));
            }
        }
    }
    s
}

/// The DDL of a target table. SQLite cannot add keys to an existing table, so the primary key
/// and the foreign keys are inline (foreign keys are not enforced: Decant's connections turn
/// `foreign_keys` off, so chunks load in any order); indexes come after the data.
pub fn table_ddl(table: &TargetTable) -> DdlSet {
    let name = q(&table.name.name);
    let pk = &table.primary_key;
    // A single INTEGER key column is the rowid: SQLite's fastest layout, and it numbers new rows
    // itself. AUTOINCREMENT is left out: it only adds a counter that never reuses the numbers
    // of deleted rows, at a cost SQLite's documentation advises against.
    let rowid_key = match pk.as_slice() {
        [k] => table
            .columns
            .iter()
            .find(|c| &c.name == k)
            .filter(|c| c.native_type.trim().eq_ignore_ascii_case("INTEGER")),
        _ => None,
    };
    let mut parts: Vec<String> = table
        .columns
        .iter()
        .map(|c| {
            let mut s = format!("{} {}", q(&c.name), c.native_type);
            if rowid_key.is_some_and(|k| k.name == c.name) {
                s.push_str(" PRIMARY KEY");
            }
            if !c.nullable {
                s.push_str(" NOT NULL");
            }
            s
        })
        .collect();
    if !pk.is_empty() && rowid_key.is_none() {
        parts.push(format!("PRIMARY KEY ({})", column_list(pk)));
    }
    parts.extend(table.foreign_keys.iter().map(foreign_key_clause));
    let create = format!(
        "CREATE TABLE IF NOT EXISTS {name} (\n  {}\n)",
        parts.join(",\n  ")
    );
    let indexes = table
        .unique_keys
        .iter()
        .map(|i| (i, true))
        .chain(table.indexes.iter().map(|i| (i, i.unique)))
        .map(|(i, unique)| {
            format!(
                "CREATE {}INDEX IF NOT EXISTS {} ON {name} ({})",
                if unique { "UNIQUE " } else { "" },
                q(&target_index_name(&table.name.name, i)),
                column_list(&i.columns)
            )
        })
        .collect();
    DdlSet {
        create: vec![create],
        indexes,
        foreign_keys: vec![],
        sequences: vec![],
        drop: format!("DROP TABLE IF EXISTS {name}"),
        truncate: format!("DELETE FROM {name}"),
    }
}

/// The marker table: one row per committed chunk, written in the chunk's own transaction.
pub fn marker_table_ddl() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {} (job_id TEXT, table_name TEXT, chunk_id TEXT, \
         row_count INTEGER, committed_at TEXT, PRIMARY KEY (job_id, table_name, chunk_id))",
        q(MARKER_TABLE)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_checks_outside_strings_and_comments() {
        let sql = r#"CREATE TABLE "we""ird" (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            price NUMERIC CHECK (price >= 0), -- CHECK (not this one)
            note TEXT DEFAULT 'CHECK (nor this)',
            "check" TEXT, /* CHECK (x) */
            CONSTRAINT positive_qty CHECK ((qty > 0) AND note <> ')'),
            qty INT
        )"#;
        let parsed = parse_create_table("we\"ird", sql);
        assert!(parsed.autoincrement);
        assert_eq!(
            parsed.checks,
            vec![
                CheckConstraint {
                    name: "we\"ird_check1".into(),
                    expression: "price >= 0".into()
                },
                CheckConstraint {
                    name: "positive_qty".into(),
                    expression: "(qty > 0) AND note <> ')'".into()
                },
            ]
        );
        assert!(
            !parse_create_table("t", "CREATE TABLE t(a TEXT DEFAULT 'AUTOINCREMENT')")
                .autoincrement
        );
    }

    #[test]
    fn autoindex_names_are_renamed() {
        let i = Index {
            name: "sqlite_autoindex_t_1".into(),
            columns: vec!["a".into(), "b".into()],
            unique: true,
            unsupported: None,
        };
        assert_eq!(index_name("t", &i), "t_a_b_key");
    }
}
