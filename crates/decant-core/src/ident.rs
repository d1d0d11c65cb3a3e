//! SQL dialects and identifier quoting: every identifier Decant sends is quoted for its dialect.

use serde::{Deserialize, Serialize};

/// The SQL systems Decant speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    Postgres,
    Mysql,
    Sqlite,
    /// Files (CSV, TSV): no SQL, but names and types still follow one convention.
    File,
    /// HTTP JSON APIs: a source only, no SQL.
    Http,
}

impl Dialect {
    /// The longest identifier the system accepts, in bytes (PostgreSQL truncates past 63).
    pub fn max_identifier_len(self) -> usize {
        match self {
            Dialect::Postgres => 63,
            Dialect::Mysql => 64,
            Dialect::Sqlite | Dialect::File | Dialect::Http => usize::MAX,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::Mysql => "mysql",
            Dialect::Sqlite => "sqlite",
            Dialect::File => "file",
            Dialect::Http => "http",
        }
    }
}

impl std::fmt::Display for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Quotes one identifier for `dialect`, doubling the quote character inside it.
pub fn quote_ident(dialect: Dialect, name: &str) -> String {
    let q = match dialect {
        Dialect::Mysql => '`',
        Dialect::Postgres | Dialect::Sqlite | Dialect::File | Dialect::Http => '"',
    };
    let mut out = String::with_capacity(name.len() + 2);
    out.push(q);
    for c in name.chars() {
        if c == q {
            out.push(q);
        }
        out.push(c);
    }
    out.push(q);
    out
}

/// Quotes a string literal for DDL text where a bound parameter is impossible (defaults, comments).
pub fn quote_literal(dialect: Dialect, value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' if dialect == Dialect::Mysql => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Quotes `schema.name` (or just `name`) for `dialect`.
pub fn quote_qualified(dialect: Dialect, schema: Option<&str>, name: &str) -> String {
    match schema {
        Some(s) => format!("{}.{}", quote_ident(dialect, s), quote_ident(dialect, name)),
        None => quote_ident(dialect, name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_hostile_identifiers() {
        assert_eq!(quote_ident(Dialect::Postgres, r#"we"ird"#), r#""we""ird""#);
        assert_eq!(quote_ident(Dialect::Mysql, "or`der"), "`or``der`");
        assert_eq!(quote_ident(Dialect::Sqlite, "order"), "\"order\"");
        assert_eq!(quote_literal(Dialect::Mysql, r"a'b\c"), r"'a''b\\c'");
        assert_eq!(quote_literal(Dialect::Postgres, r"a'b\c"), r"'a''b\c'");
    }
}
