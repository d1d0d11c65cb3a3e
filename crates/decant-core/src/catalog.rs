//! The schema catalog: what introspection finds in a database, in one system-neutral shape.

use serde::{Deserialize, Serialize};

use crate::types::LogicalType;

/// A table's name, with its schema (PostgreSQL schema, MySQL database) when the system has one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableName {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    pub name: String,
}

impl TableName {
    pub fn new(schema: Option<&str>, name: &str) -> Self {
        TableName {
            schema: schema.map(str::to_string),
            name: name.to_string(),
        }
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// One column as the source declares it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// The native type exactly as the system spells it (`tinyint(1) unsigned`, `character varying(16)`).
    pub native_type: String,
    /// The logical type, or `None` when the native type is unknown to Decant (the plan must cast it).
    pub logical: Option<LogicalType>,
    pub nullable: bool,
    /// The default expression in the source's own SQL, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Identity / auto-increment / serial column.
    #[serde(default)]
    pub auto_increment: bool,
    /// A generated (computed) column: its values are computed by the source, not stored data.
    #[serde(default)]
    pub generated: bool,
}

/// An index (unique or not) over some columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Index {
    pub name: String,
    pub columns: Vec<String>,
    pub unique: bool,
    /// The index could not be expressed as plain columns (expression, partial): listed, not carried.
    #[serde(default)]
    pub unsupported: Option<String>,
}

/// A foreign key from `columns` to `ref_table(ref_columns)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForeignKey {
    pub name: String,
    pub columns: Vec<String>,
    pub ref_table: TableName,
    pub ref_columns: Vec<String>,
    pub on_delete: Option<String>,
    pub on_update: Option<String>,
}

/// A check constraint with its expression in the source's SQL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckConstraint {
    pub name: String,
    pub expression: String,
}

/// A table and everything Decant knows about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub name: TableName,
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
    /// Unique constraints (not the primary key), as named column lists.
    pub unique_keys: Vec<Index>,
    /// Secondary indexes (neither the primary key nor a unique constraint).
    pub indexes: Vec<Index>,
    pub foreign_keys: Vec<ForeignKey>,
    pub checks: Vec<CheckConstraint>,
    /// The system's row estimate (statistics, not a count).
    pub row_estimate: u64,
    /// Bytes on disk, data and indexes, as the system reports them.
    pub size_bytes: u64,
    /// Next value of the identity / auto-increment counter, where the system exposes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_auto_increment: Option<i64>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// A view: listed by introspection, not migrated yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct View {
    pub name: TableName,
    pub definition: Option<String>,
}

/// A trigger: listed by introspection (preflight names it), not carried to the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    pub table: TableName,
    pub name: String,
}

/// Everything introspection found in one database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Catalog {
    /// The system and version, e.g. `PostgreSQL 15.20` or `MariaDB 10.11.19`.
    pub server_version: String,
    pub tables: Vec<Table>,
    pub views: Vec<View>,
    #[serde(default)]
    pub triggers: Vec<Trigger>,
}

impl Catalog {
    pub fn table(&self, name: &TableName) -> Option<&Table> {
        self.tables.iter().find(|t| &t.name == name)
    }
}
