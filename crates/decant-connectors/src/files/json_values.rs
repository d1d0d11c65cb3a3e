//! JSON objects as rows: inferring columns and their types from a sample of records, and turning
//! one `serde_json::Map` record into one row of a `BatchBuilder` (or a reject with its reason).
//! Shared by every source whose records are JSON objects (JSON Lines and array files, HTTP APIs).
//!
//! A column is a path into the record: a top-level key, a nested key joined with `_` when
//! flattening, or a path declared by the plan. Nested objects and arrays that are not flattened
//! are JSON columns holding their compact JSON text.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet};

use decant_core::LogicalType;
use decant_core::files::UnknownFields;
use serde_json::{Map, Value};

use super::values::{Cell, Kind, ValueFormats, append, nul_byte_reject, parse_cell};
use crate::batch::BatchBuilder;

/// Separator of the names of flattened nested keys (`customer.address` → `customer_address`).
const FLATTEN_SEPARATOR: &str = "_";

/// How records map to columns, before any type is known.
#[derive(Debug, Clone, Default)]
pub struct JsonShape {
    /// Nested objects become one column per leaf, named by the joined keys.
    pub flatten: bool,
    /// Columns read from a path into nested objects: (column name, keys).
    pub declared: Vec<(String, Vec<String>)>,
    pub formats: ValueFormats,
}

impl JsonShape {
    /// Parses a declared path `customer.address.city` into its keys.
    pub fn parse_path(path: &str) -> Result<Vec<String>, String> {
        let keys: Vec<String> = path.split('.').map(str::to_string).collect();
        if keys.iter().any(String::is_empty) {
            return Err(format!(
                "`{path}` is not a path: keys joined by dots, e.g. customer.address.city"
            ));
        }
        Ok(keys)
    }
}

/// One column of a JSON table: where its value sits and what it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonColumn {
    pub name: String,
    pub path: Vec<String>,
    pub logical: LogicalType,
    pub nullable: bool,
}

/// Why a record is not a row: the quarantine's rule and reason.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordError {
    pub rule: String,
    pub reason: String,
}

impl RecordError {
    pub fn new(rule: impl Into<String>, reason: impl Into<String>) -> Self {
        RecordError {
            rule: rule.into(),
            reason: reason.into(),
        }
    }
}

/// A column as the sample sees it so far.
#[derive(Debug)]
struct Seen {
    name: String,
    path: Vec<String>,
    kind: Kind,
    /// Records in which the column held a non-null value.
    non_null: u64,
}

/// Infers columns from sample records: declared paths first, then the keys in the order they
/// first appear as the record's `Map` iterates (sorted by key: serde_json is built without
/// `preserve_order` here), each typed with the narrowest kind that holds all its values
/// (int32 → int64 → numeric → text; objects and arrays → json).
#[derive(Debug)]
pub struct JsonInference {
    shape: JsonShape,
    columns: Vec<Seen>,
    by_name: HashMap<String, usize>,
    records: u64,
}

impl JsonInference {
    /// Declared columns come first, in their declared order.
    pub fn new(shape: JsonShape) -> Result<Self, String> {
        let mut inference = JsonInference {
            shape,
            columns: Vec::new(),
            by_name: HashMap::new(),
            records: 0,
        };
        for (name, path) in inference.shape.declared.clone() {
            inference.column(&name, &path)?;
        }
        Ok(inference)
    }

    /// Records seen so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The index of the column `name` for `path`; two paths with one name are an error.
    fn column(&mut self, name: &str, path: &[String]) -> Result<usize, String> {
        if let Some(&i) = self.by_name.get(name) {
            if self.columns[i].path != path {
                return Err(format!(
                    "the fields {} and {} both make a column named {name}; declare a path for one of them",
                    self.columns[i].path.join("."),
                    path.join(".")
                ));
            }
            return Ok(i);
        }
        self.columns.push(Seen {
            name: name.to_string(),
            path: path.to_vec(),
            kind: Kind::Unknown,
            non_null: 0,
        });
        self.by_name
            .insert(name.to_string(), self.columns.len() - 1);
        Ok(self.columns.len() - 1)
    }

    fn observe(&mut self, i: usize, v: &Value) {
        if v.is_null() {
            return;
        }
        let c = &mut self.columns[i];
        c.kind = c.kind.widen(kind_of(v, &self.shape.formats));
        c.non_null += 1;
    }

    /// Widens the columns by one record.
    pub fn add(&mut self, record: &Map<String, Value>) -> Result<(), String> {
        self.records += 1;
        // Declared columns were made first, so their indices are 0..declared.len().
        for i in 0..self.shape.declared.len() {
            if let Some(v) = lookup(record, &self.shape.declared[i].1) {
                self.observe(i, v);
            }
        }
        let mut path = Vec::new();
        self.add_object(record, &mut path)
    }

    fn add_object(
        &mut self,
        map: &Map<String, Value>,
        path: &mut Vec<String>,
    ) -> Result<(), String> {
        for (k, v) in map {
            path.push(k.clone());
            let declared = self.shape.declared.iter().any(|(_, p)| p == path);
            if declared {
                // Read through its declared column (observed in `add`).
            } else if let (true, Value::Object(inner)) = (self.shape.flatten, v) {
                self.add_object(inner, path)?;
            } else {
                let i = self.column(&column_name(path), path)?;
                self.observe(i, v);
            }
            path.pop();
        }
        Ok(())
    }

    /// The columns, with pinned types in place of inferred ones. A column is nullable when a
    /// sampled record lacked it or held null (always, unless `infer_not_null`).
    pub fn finish(
        self,
        pinned: &HashMap<String, LogicalType>,
        infer_not_null: bool,
    ) -> Result<Vec<JsonColumn>, String> {
        for name in pinned.keys() {
            if !self.by_name.contains_key(name) {
                let names: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
                return Err(format!(
                    "columns.{name}: the sample has no such column (it has {})",
                    names.join(", ")
                ));
            }
        }
        let records = self.records;
        let declared = self.shape.declared.len();
        // With flattening, a key that was only ever null where it is an object elsewhere is no
        // column of its own: its nested keys are.
        let parents: HashSet<Vec<String>> = self
            .columns
            .iter()
            .flat_map(|c| (1..c.path.len()).map(|n| c.path[..n].to_vec()))
            .collect();
        Ok(self
            .columns
            .into_iter()
            .enumerate()
            .filter(|(i, c)| *i < declared || c.non_null > 0 || !parents.contains(&c.path))
            .map(|(_, c)| JsonColumn {
                logical: pinned
                    .get(&c.name)
                    .cloned()
                    .unwrap_or_else(|| c.kind.logical()),
                nullable: !infer_not_null || records == 0 || c.non_null < records,
                name: c.name,
                path: c.path,
            })
            .collect())
    }
}

/// A column's name from its path: keys joined with `_`; an empty top-level key is `_`, since a
/// target cannot name a column with nothing.
fn column_name(path: &[String]) -> String {
    let name = path.join(FLATTEN_SEPARATOR);
    if name.is_empty() { "_".into() } else { name }
}

/// The kind of one non-null JSON value. Strings stay text unless they read as a date or a
/// timestamp: a quoted `"007"` or `"12"` was written as text on purpose.
pub fn kind_of(v: &Value, f: &ValueFormats) -> Kind {
    match v {
        Value::Null => Kind::Unknown,
        Value::Bool(_) => Kind::Bool,
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) if i32::try_from(i).is_ok() => Kind::Int32,
            (Some(_), _) => Kind::Int64,
            _ => Kind::Numeric,
        },
        Value::String(s) => match Kind::of(s, f) {
            k @ (Kind::Date | Kind::Timestamp | Kind::TimestampTz) => k,
            _ => Kind::Text,
        },
        Value::Array(_) | Value::Object(_) => Kind::Json,
    }
}

/// The value at `path`; `None` when a key is missing or a step is not an object.
pub fn lookup<'a>(record: &'a Map<String, Value>, path: &[String]) -> Option<&'a Value> {
    let (last, parents) = path.split_last()?;
    let mut map = record;
    for k in parents {
        map = map.get(k)?.as_object()?;
    }
    map.get(last)
}

/// Turns records into rows of the requested columns of a table's layout.
#[derive(Debug)]
pub struct JsonRows {
    /// (name, path, logical type, nullable) of each requested column, in batch order.
    requested: Vec<JsonColumn>,
    flatten: bool,
    unknown: UnknownFields,
    /// Paths of every column of the layout (requested or not): a field at one is known.
    known: HashSet<Vec<String>>,
    /// Top-level keys that are columns, for the common flat case without allocation.
    known_top: HashSet<String>,
    /// Paths declared by the plan: the only columns that take a whole object when flattening.
    declared: HashSet<Vec<String>>,
    formats: ValueFormats,
    /// Per requested column: a NUL byte in its text makes the record a reject.
    reject_nul: Vec<bool>,
}

impl JsonRows {
    /// `layout` is the table's whole column list (as inferred); `requested` names the columns
    /// to read, with the types and nullability the batch schema wants.
    pub fn new(
        layout: &[JsonColumn],
        requested: &[JsonColumn],
        shape: &JsonShape,
        unknown: UnknownFields,
    ) -> Self {
        let known: HashSet<Vec<String>> = layout
            .iter()
            .chain(requested)
            .map(|c| c.path.clone())
            .collect();
        let known_top = known
            .iter()
            .filter(|p| p.len() == 1)
            .map(|p| p[0].clone())
            .collect();
        JsonRows {
            requested: requested.to_vec(),
            flatten: shape.flatten,
            unknown,
            known,
            known_top,
            formats: shape.formats.clone(),
            declared: shape.declared.iter().map(|(_, p)| p.clone()).collect(),
            reject_nul: vec![false; requested.len()],
        }
    }

    /// Makes a NUL byte in the text of these columns a reject (`Policies::reject_nul`).
    pub fn reject_nul(mut self, columns: &BTreeSet<String>) -> Self {
        self.reject_nul = self
            .requested
            .iter()
            .map(|c| columns.contains(&c.name))
            .collect();
        self
    }

    /// Appends `record` as one row, or leaves the builder untouched and says why not.
    pub fn append(
        &self,
        record: &Map<String, Value>,
        builder: &mut BatchBuilder,
    ) -> Result<(), RecordError> {
        if self.unknown == UnknownFields::Reject {
            let mut path = Vec::new();
            if let Some(field) = self.unknown_field(record, &mut path) {
                return Err(RecordError::new(
                    format!("unknown_field({field})"),
                    format!(
                        "{field} is not a column of the table (the sample did not show it); raise sample_rows, or set unknown_fields = \"ignore\""
                    ),
                ));
            }
        }
        let mut cells: Vec<Cell<'_>> = Vec::with_capacity(self.requested.len());
        for (c, &reject_nul) in self.requested.iter().zip(&self.reject_nul) {
            let mut v = lookup(record, &c.path).unwrap_or(&Value::Null);
            if self.flatten && v.is_object() && !self.declared.contains(&c.path) {
                // Flattened: the object's keys are columns of their own (a key that held a
                // scalar in other records keeps its column, NULL here).
                v = &Value::Null;
            }
            if v.is_null() {
                if !c.nullable {
                    return Err(RecordError::new(
                        format!("not_null({})", c.name),
                        format!("{} is null or missing, but the column is NOT NULL", c.name),
                    ));
                }
                cells.push(Cell::Null);
                continue;
            }
            let cell = json_cell(v, &c.logical, &self.formats).map_err(|e| {
                RecordError::new(
                    format!("bad_value({})", c.name),
                    format!("{} ({}): {e}", c.name, c.logical),
                )
            })?;
            if reject_nul && let Some((rule, reason)) = nul_byte_reject(&c.name, &cell, &c.logical)
            {
                return Err(RecordError::new(rule, reason));
            }
            cells.push(cell);
        }
        for (i, cell) in cells.into_iter().enumerate() {
            append(builder.column(i), cell).map_err(|e| RecordError::new("internal", e))?;
        }
        builder.end_row();
        Ok(())
    }

    /// The dotted path of the first field of `map` that no column reads.
    fn unknown_field(&self, map: &Map<String, Value>, path: &mut Vec<String>) -> Option<String> {
        for (k, v) in map {
            if path.is_empty() && self.known_top.contains(k) {
                continue;
            }
            path.push(k.clone());
            // A null carries no value to lose, wherever it sits.
            let found = if v.is_null() || self.known.contains(path.as_slice()) {
                None
            } else if let (true, Value::Object(inner)) = (self.flatten, v) {
                self.unknown_field(inner, path)
            } else {
                Some(path.join("."))
            };
            path.pop();
            if found.is_some() {
                return found;
            }
        }
        None
    }
}

/// Converts one non-null value to a cell of type `t`.
pub fn json_cell<'a>(v: &'a Value, t: &LogicalType, f: &ValueFormats) -> Result<Cell<'a>, String> {
    use LogicalType as L;
    Ok(match (v, t) {
        (_, L::Json) => Cell::Text(Cow::Owned(v.to_string())),
        (Value::String(s), _) => parse_cell(Cow::Borrowed(s), t, f)?,
        (Value::Object(_) | Value::Array(_), L::Text | L::Varchar { .. } | L::Char { .. }) => {
            Cell::Text(Cow::Owned(v.to_string()))
        }
        (Value::Object(_), _) => return Err(format!("an object is not {t}")),
        (Value::Array(_), _) => return Err(format!("an array is not {t}")),
        (Value::Bool(b), L::Bool) => Cell::Bool(*b),
        (Value::Number(n), L::Float32 | L::Float64) => {
            Cell::Float(n.as_f64().ok_or_else(|| format!("{n} is not a number"))?)
        }
        // Numbers and booleans parse from their JSON text, so ranges and scales are checked
        // exactly as for text files.
        (Value::Number(n), _) => parse_cell(Cow::Owned(n.to_string()), t, f)?,
        (Value::Bool(b), _) => parse_cell(Cow::Owned(b.to_string()), t, f)?,
        (Value::Null, _) => Cell::Null,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int32Type, Int64Type};
    use arrow_schema::{Field, Schema};
    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn infer(shape: JsonShape, records: &[Value]) -> Vec<JsonColumn> {
        let mut inf = JsonInference::new(shape).unwrap();
        for r in records {
            inf.add(&obj(r.clone())).unwrap();
        }
        inf.finish(&HashMap::new(), true).unwrap()
    }

    fn types(cols: &[JsonColumn]) -> Vec<(String, String, bool)> {
        cols.iter()
            .map(|c| (c.name.clone(), c.logical.to_string(), c.nullable))
            .collect()
    }

    fn builder(cols: &[JsonColumn]) -> BatchBuilder {
        let fields: Vec<Field> = cols
            .iter()
            .map(|c| c.logical.arrow_field(&c.name, c.nullable, ""))
            .collect();
        BatchBuilder::new(Arc::new(Schema::new(fields)), 16).unwrap()
    }

    #[test]
    fn kinds_widen_and_nested_values_are_json() {
        let cols = infer(
            JsonShape::default(),
            &[
                json!({"id": 1, "big": 1, "amount": 1, "name": "a", "code": "007", "on": true,
                       "day": "2024-01-31", "tags": ["x"], "customer": {"city": "Oslo"}}),
                json!({"id": 2, "big": 3_000_000_000i64, "amount": 2.5, "name": null, "code": "8",
                       "on": false, "day": "2024-02-01", "tags": [], "customer": {"city": "Rome"},
                       "late": "x"}),
            ],
        );
        let t = |n: &str, ty: &str, null: bool| (n.to_string(), ty.to_string(), null);
        assert_eq!(
            types(&cols),
            [
                t("amount", "bigdecimal", false),
                t("big", "int64", false),
                t("code", "text", false),
                t("customer", "json", false),
                t("day", "date", false),
                t("id", "int32", false),
                t("name", "text", true),
                t("on", "bool", false),
                t("tags", "json", false),
                t("late", "text", true),
            ]
        );
        // A string and an object in one column: JSON holds both.
        let mixed = infer(
            JsonShape::default(),
            &[json!({"a": "x"}), json!({"a": {"b": 1}})],
        );
        assert_eq!(mixed[0].logical, LogicalType::Json);
    }

    #[test]
    fn flattening_and_declared_paths_name_nested_columns() {
        let shape = JsonShape {
            flatten: true,
            declared: vec![(
                "city".into(),
                JsonShape::parse_path("customer.address.city").unwrap(),
            )],
            ..Default::default()
        };
        let records = [
            json!({"id": 1, "customer": {"name": "Ann", "address": {"city": "Oslo", "zip": "0150"}}, "tags": [1]}),
        ];
        let cols = infer(shape.clone(), &records);
        let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "city",
                "customer_address_zip",
                "customer_name",
                "id",
                "tags"
            ]
        );
        let rows = JsonRows::new(&cols, &cols, &shape, UnknownFields::Reject);
        let mut b = builder(&cols);
        rows.append(&obj(records[0].clone()), &mut b).unwrap();
        let err = rows
            .append(&obj(json!({"id": 2, "customer": {"phone": "1"}})), &mut b)
            .unwrap_err();
        assert_eq!(err.rule, "unknown_field(customer.phone)");
        let lenient = JsonRows::new(&cols, &cols, &shape, UnknownFields::Ignore);
        let full = json!({"id": 2, "customer": {"name": "Bo", "phone": "1", "address": {"city": "Rome", "zip": "1"}}, "tags": []});
        lenient.append(&obj(full), &mut b).unwrap();
        let batch = b.finish().unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.column(0).as_string::<i32>().value(0), "Oslo");
        assert_eq!(batch.column(0).as_string::<i32>().value(1), "Rome");
        assert_eq!(batch.column(4).as_string::<i32>().value(0), "[1]");
        assert_eq!(batch.column(2).as_string::<i32>().value(0), "Ann");
        assert!(JsonShape::parse_path("a..b").is_err());
    }

    #[test]
    fn colliding_flattened_names_are_an_error() {
        let mut inf = JsonInference::new(JsonShape {
            flatten: true,
            ..Default::default()
        })
        .unwrap();
        let err = inf.add(&obj(json!({"a_b": 1, "a": {"b": 2}}))).unwrap_err();
        assert!(err.contains("a.b and a_b"), "{err}");
        // A key only ever null where it is an object elsewhere makes no column of its own.
        let cols = infer(
            JsonShape {
                flatten: true,
                ..Default::default()
            },
            &[json!({"c": null, "n": null}), json!({"c": {"x": 1}})],
        );
        let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["n", "c_x"]);
        // A key that is a number in one record and an object in another: both shapes load.
        let shape = JsonShape {
            flatten: true,
            ..Default::default()
        };
        let records = [json!({"a": 5, "": 1}), json!({"a": {"b": 1}, "": 2})];
        let cols = infer(shape.clone(), &records);
        let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["_", "a", "a_b"]);
        let rows = JsonRows::new(&cols, &cols, &shape, UnknownFields::Reject);
        let mut b = builder(&cols);
        for r in records {
            rows.append(&obj(r), &mut b).unwrap();
        }
        let batch = b.finish().unwrap();
        assert_eq!(batch.column(1).as_primitive::<Int32Type>().value(0), 5);
        assert!(batch.column(1).is_null(1));
        assert_eq!(batch.column(2).as_primitive::<Int32Type>().value(1), 1);
    }

    #[test]
    fn values_that_do_not_fit_are_rejects_and_leave_no_row() {
        let shape = JsonShape::default();
        let mut inf = JsonInference::new(shape.clone()).unwrap();
        inf.add(&obj(json!({"id": 1, "n": 2, "doc": {"k": 1}})))
            .unwrap();
        let pinned = HashMap::from([("n".to_string(), LogicalType::Int64)]);
        let cols = inf.finish(&pinned, true).unwrap();
        let rows = JsonRows::new(&cols, &cols, &shape, UnknownFields::Reject);
        let mut b = builder(&cols);
        let bad = |r: Value, b: &mut BatchBuilder| rows.append(&obj(r), b).unwrap_err();
        assert_eq!(
            bad(json!({"id": 3_000_000_000i64, "n": 1, "doc": {}}), &mut b).reason,
            "id (int32): 3000000000 is out of range for int32"
        );
        assert_eq!(
            bad(json!({"id": 1, "n": "x", "doc": {}}), &mut b).rule,
            "bad_value(n)"
        );
        assert_eq!(
            bad(json!({"id": 1, "n": {"a": 1}, "doc": {}}), &mut b).reason,
            "n (int64): an object is not int64"
        );
        assert_eq!(bad(json!({"n": 1, "doc": {}}), &mut b).rule, "not_null(id)");
        assert_eq!(b.len(), 0, "a rejected record appends nothing");
        rows.append(&obj(json!({"id": 7, "n": "42", "doc": "s"})), &mut b)
            .unwrap();
        let batch = b.finish().unwrap();
        // Columns in key order: doc, id, n.
        assert_eq!(batch.column(0).as_string::<i32>().value(0), "\"s\"");
        assert_eq!(batch.column(1).as_primitive::<Int32Type>().value(0), 7);
        assert_eq!(batch.column(2).as_primitive::<Int64Type>().value(0), 42);
        assert!(inf_pinned_unknown_column_fails());
    }

    fn inf_pinned_unknown_column_fails() -> bool {
        let inf = JsonInference::new(JsonShape::default()).unwrap();
        let pinned = HashMap::from([("nope".to_string(), LogicalType::Int64)]);
        inf.finish(&pinned, false).is_err()
    }
}
