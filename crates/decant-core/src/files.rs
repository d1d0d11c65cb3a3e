//! Options for files: how CSV/TSV text is split, decoded and typed and how JSON records become
//! columns (`[source.csv]` / `[source.json]`, or the URL's query
//! `file://data/*.csv?delimiter=;&header=false` where no plan exists), and how file targets are
//! written (`[target.file]`, or `file:///dir/?format=csv&compression=gzip`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// How to read CSV/TSV files. Every key has a default; see docs/files.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CsvOptions {
    /// The table's name (default: from the file name, or the glob with its wildcards removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// One ASCII character, or `tab` (default `,`; a tab for `.tsv` files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// The quote character; empty turns quoting off.
    pub quote: String,
    /// The escape character inside quoted fields (e.g. `\`); default none: a quote inside a
    /// quoted field is doubled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escape: Option<String>,
    /// The first record names the columns.
    pub header: bool,
    /// Unquoted field values that mean NULL (a quoted `""` is an empty string).
    pub null: Vec<String>,
    /// `utf-8` (a leading BOM is skipped), `utf-8-bom`, `latin-1` or `windows-1252`.
    pub encoding: String,
    /// `auto` (by extension: `.gz`, `.zst`), `none`, `gzip` or `zstd`.
    pub compression: String,
    /// Quoted fields may hold line breaks (RFC 4180). With `false` a line break always ends a
    /// record, so an unbalanced quote costs one record instead of swallowing the lines after it.
    pub newlines_in_quotes: bool,
    /// chrono formats tried for dates (default ISO `%Y-%m-%d`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub date_formats: Vec<String>,
    /// chrono formats tried for timestamps (default ISO, with `T` or a space, optional fraction
    /// and offset).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timestamp_formats: Vec<String>,
    /// Numbers use a decimal comma (`12,50`); the delimiter should then not be a comma.
    pub decimal_comma: bool,
    /// Records read to infer column types.
    pub sample_rows: usize,
    /// Columns without a NULL in the sample are declared NOT NULL (a later NULL is a reject).
    pub infer_not_null: bool,
    /// Pinned logical types per column (`id = "int64"`, `amount = "decimal(12,2)"`): no
    /// inference for these.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, String>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            table: None,
            delimiter: None,
            quote: "\"".into(),
            escape: None,
            header: true,
            null: vec![String::new()],
            encoding: "utf-8".into(),
            compression: "auto".into(),
            newlines_in_quotes: true,
            date_formats: vec![],
            timestamp_formats: vec![],
            decimal_comma: false,
            sample_rows: 1000,
            infer_not_null: false,
            columns: BTreeMap::new(),
        }
    }
}

impl CsvOptions {
    /// Applies `k=v&k=v` from a URL's query on top of these options. Lists (`null`,
    /// `date_formats`, `timestamp_formats`) take one value per repetition of the key; a pinned
    /// type is `column.NAME=TYPE`.
    pub fn apply_query(&mut self, query: &str) -> Result<(), CoreError> {
        let mut lists: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in query_pairs(query) {
            let bad = |what: &str| CoreError::Plan(format!("file URL option {k}={v}: {what}"));
            let flag = |v: &str| parse_flag(v).ok_or_else(|| bad("expected true or false"));
            match k.as_str() {
                "table" => self.table = Some(v),
                "delimiter" => self.delimiter = Some(v),
                "quote" => self.quote = v,
                "escape" => self.escape = Some(v),
                "header" => self.header = flag(&v)?,
                "encoding" => self.encoding = v,
                "compression" => self.compression = v,
                "newlines_in_quotes" => self.newlines_in_quotes = flag(&v)?,
                "decimal_comma" => self.decimal_comma = flag(&v)?,
                "infer_not_null" => self.infer_not_null = flag(&v)?,
                "sample_rows" => self.sample_rows = v.parse().map_err(|_| bad("not a number"))?,
                "null" | "date_formats" | "timestamp_formats" => {
                    lists.entry(k.clone()).or_default().push(v)
                }
                _ => match k.strip_prefix("column.") {
                    Some(col) => {
                        self.columns.insert(col.to_string(), v);
                    }
                    None => return Err(bad("unknown option (see docs/files.md)")),
                },
            }
        }
        for (k, v) in lists {
            match k.as_str() {
                "null" => self.null = v,
                "date_formats" => self.date_formats = v,
                _ => self.timestamp_formats = v,
            }
        }
        Ok(())
    }
}

/// Whether the records of a JSON file are one per line or the elements of one array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JsonFormat {
    /// `.jsonl`/`.ndjson` are lines; a `.json` file is an array when it starts with `[`, else lines.
    #[default]
    Auto,
    /// JSON Lines: one object per line.
    Lines,
    /// One top-level array of objects.
    Array,
}

/// What to do with a field a record has but the inferred schema lacks (a key first seen after
/// the sample).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownFields {
    /// The record is a reject (`unknown_field(NAME)`): no value is dropped unseen.
    #[default]
    Reject,
    /// The field is left out and the record loads.
    Ignore,
}

/// How to read Parquet files (`[source.parquet]`). The schema comes from the files' metadata;
/// a pinned column's values are converted as their text would be from a CSV file, and a value
/// that does not fit is a reject. See docs/files.md.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ParquetOptions {
    /// The table's name (default: from the file name, or the glob with its wildcards removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Pinned logical types per column (`id = "int32"`, `day = "date"`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, String>,
}

/// How to read JSON Lines and JSON array files. Every key has a default; see docs/files.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JsonOptions {
    /// The table's name (default: from the file name, or the glob with its wildcards removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// `auto`, `lines` or `array`.
    pub format: JsonFormat,
    /// `auto` (by extension: `.gz`, `.zst`), `none`, `gzip` or `zstd`.
    pub compression: String,
    /// Nested objects become columns named by their keys joined with `_` (`customer_address_city`);
    /// `false` keeps a nested object as one JSON column. Arrays are always JSON columns.
    pub flatten: bool,
    /// Columns taken from a path into nested objects (`customer_city = "customer.address.city"`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub paths: BTreeMap<String, String>,
    /// `reject` (default) or `ignore` a field the sample did not show.
    pub unknown_fields: UnknownFields,
    /// chrono formats tried for dates in strings (default ISO `%Y-%m-%d`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub date_formats: Vec<String>,
    /// chrono formats tried for timestamps in strings (default ISO).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timestamp_formats: Vec<String>,
    /// Records read to infer the columns and their types (across the files, in name order).
    pub sample_rows: usize,
    /// Columns without a NULL (or a missing key) in the sample are declared NOT NULL.
    pub infer_not_null: bool,
    /// Pinned logical types per column (`id = "int64"`, `amount = "decimal(12,2)"`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, String>,
}

impl Default for JsonOptions {
    fn default() -> Self {
        JsonOptions {
            table: None,
            format: JsonFormat::Auto,
            compression: "auto".into(),
            flatten: false,
            paths: BTreeMap::new(),
            unknown_fields: UnknownFields::Reject,
            date_formats: vec![],
            timestamp_formats: vec![],
            sample_rows: 1000,
            infer_not_null: false,
            columns: BTreeMap::new(),
        }
    }
}

impl JsonOptions {
    /// Applies `k=v&k=v` from a URL's query on top of these options; a pinned type is
    /// `column.NAME=TYPE`, a path `path.NAME=a.b.c`.
    pub fn apply_query(&mut self, query: &str) -> Result<(), CoreError> {
        let mut lists: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in query_pairs(query) {
            let bad = |what: &str| CoreError::Plan(format!("file URL option {k}={v}: {what}"));
            let flag = |v: &str| parse_flag(v).ok_or_else(|| bad("expected true or false"));
            match k.as_str() {
                "table" => self.table = Some(v),
                "format" => {
                    self.format = match v.as_str() {
                        "auto" => JsonFormat::Auto,
                        "lines" => JsonFormat::Lines,
                        "array" => JsonFormat::Array,
                        _ => return Err(bad("expected auto, lines or array")),
                    }
                }
                "compression" => self.compression = v,
                "flatten" => self.flatten = flag(&v)?,
                "unknown_fields" => {
                    self.unknown_fields = match v.as_str() {
                        "reject" => UnknownFields::Reject,
                        "ignore" => UnknownFields::Ignore,
                        _ => return Err(bad("expected reject or ignore")),
                    }
                }
                "infer_not_null" => self.infer_not_null = flag(&v)?,
                "sample_rows" => self.sample_rows = v.parse().map_err(|_| bad("not a number"))?,
                "date_formats" | "timestamp_formats" => lists.entry(k.clone()).or_default().push(v),
                _ => {
                    if let Some(col) = k.strip_prefix("column.") {
                        self.columns.insert(col.to_string(), v);
                    } else if let Some(col) = k.strip_prefix("path.") {
                        self.paths.insert(col.to_string(), v);
                    } else {
                        return Err(bad("unknown option (see docs/files.md)"));
                    }
                }
            }
        }
        for (k, v) in lists {
            match k.as_str() {
                "date_formats" => self.date_formats = v,
                _ => self.timestamp_formats = v,
            }
        }
        Ok(())
    }
}

/// The `k=v` pairs of a URL query, percent-decoded (`+` is a space); empty pairs are skipped
/// and a key without `=` has an empty value.
fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k), decode(v))
    })
}

/// A query option's boolean spelling.
fn parse_flag(v: &str) -> Option<bool> {
    match v {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// The format of a file target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Csv,
    Jsonl,
    Parquet,
}

impl FileFormat {
    /// The file extension (without compression suffix).
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Jsonl => "jsonl",
            FileFormat::Parquet => "parquet",
        }
    }

    fn parse(text: &str) -> Option<FileFormat> {
        match text.to_ascii_lowercase().as_str() {
            "csv" => Some(FileFormat::Csv),
            "jsonl" | "ndjson" => Some(FileFormat::Jsonl),
            "parquet" => Some(FileFormat::Parquet),
            _ => None,
        }
    }
}

/// How a file target compresses: gzip or zstd streams for CSV/JSONL, snappy or zstd pages
/// for Parquet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileCompression {
    None,
    Gzip,
    Zstd,
    Snappy,
}

impl FileCompression {
    fn parse(text: &str) -> Option<FileCompression> {
        match text.to_ascii_lowercase().as_str() {
            "none" => Some(FileCompression::None),
            "gzip" | "gz" => Some(FileCompression::Gzip),
            "zstd" | "zst" => Some(FileCompression::Zstd),
            "snappy" => Some(FileCompression::Snappy),
            _ => None,
        }
    }
}

/// One file per table (parts are joined when the table is complete) or one file per chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileLayout {
    /// `orders.csv`: the name appears only once every chunk of the table is written.
    #[default]
    Table,
    /// `orders/part-<chunk>.csv`: each chunk's file appears as soon as the chunk commits.
    Chunk,
}

/// How to write files (`file:///dir/` targets). Every key has a default but `format`, which a
/// URL ending in `*.csv`, `*.jsonl.gz`, `*.parquet`... can also give; see docs/files.md.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileTargetOptions {
    /// `csv`, `jsonl` or `parquet`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<FileFormat>,
    /// `none`, `gzip` or `zstd` for CSV and JSON Lines (default `none`); `none`, `snappy` or
    /// `zstd` for Parquet (default `snappy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<FileCompression>,
    /// `table` (default): `orders.csv`; `chunk`: `orders/part-<chunk>.csv`.
    pub layout: FileLayout,
    /// CSV: write a header record with the column names (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<bool>,
    /// CSV: one ASCII character, or `tab` (default `,`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// CSV: the unquoted text that means NULL (default empty: an empty string is written `""`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub null: Option<String>,
}

impl FileTargetOptions {
    /// Applies `k=v&k=v` from a target URL's query on top of these options.
    pub fn apply_query(&mut self, query: &str) -> Result<(), CoreError> {
        for (k, v) in query_pairs(query) {
            let bad = |what: &str| CoreError::Plan(format!("file target option {k}={v}: {what}"));
            match k.as_str() {
                "format" => {
                    self.format = Some(
                        FileFormat::parse(&v).ok_or_else(|| bad("use csv, jsonl or parquet"))?,
                    )
                }
                "compression" => {
                    self.compression = Some(
                        FileCompression::parse(&v)
                            .ok_or_else(|| bad("use none, gzip, zstd or snappy"))?,
                    )
                }
                "layout" => {
                    self.layout = match v.as_str() {
                        "table" => FileLayout::Table,
                        "chunk" => FileLayout::Chunk,
                        _ => return Err(bad("use table or chunk")),
                    }
                }
                "header" => {
                    self.header = Some(parse_flag(&v).ok_or_else(|| bad("expected true or false"))?)
                }
                "delimiter" => self.delimiter = Some(v),
                "null" => self.null = Some(v),
                _ => return Err(bad("unknown option (see docs/files.md, file targets)")),
            }
        }
        Ok(())
    }

    /// Fills `format` and `compression` from a URL path's last segment such as `*.csv.gz`
    /// (where the plan left them unset) and returns the directory the files go to.
    pub fn apply_pattern<'a>(&mut self, path: &'a str) -> Result<&'a str, CoreError> {
        let (dir, last) = match path.rsplit_once('/') {
            Some((d, l)) => (if d.is_empty() { "/" } else { d }, l),
            None => (".", path),
        };
        let Some(pattern) = last.strip_prefix("*.") else {
            if last.contains('*') {
                return Err(CoreError::Plan(format!(
                    "file target {path}: name a directory (`file:///exports/`), optionally with `*.csv`, `*.jsonl.gz`, `*.parquet`..."
                )));
            }
            return Ok(path);
        };
        let (format, compression) = match pattern.split_once('.') {
            Some((f, c)) => (f, Some(c)),
            None => (pattern, None),
        };
        let bad = || {
            CoreError::Plan(format!(
                "file target {path}: `{last}` is not `*.csv`, `*.jsonl` or `*.parquet` (with .gz or .zst for csv and jsonl)"
            ))
        };
        let format = FileFormat::parse(format).ok_or_else(bad)?;
        self.format.get_or_insert(format);
        if let Some(c) = compression {
            let c = FileCompression::parse(c).ok_or_else(bad)?;
            self.compression.get_or_insert(c);
        }
        Ok(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_options_override_defaults() {
        let mut o = CsvOptions::default();
        o.apply_query("delimiter=%3B&header=false&null=NULL&null=&column.id=int64")
            .unwrap();
        assert_eq!(o.delimiter.as_deref(), Some(";"));
        assert!(!o.header);
        assert_eq!(o.null, vec!["NULL".to_string(), String::new()]);
        assert_eq!(o.columns["id"], "int64");
        assert!(o.apply_query("bogus=1").is_err());
    }

    #[test]
    fn plan_section_parses() {
        let o: CsvOptions = toml::from_str(
            "delimiter = \"tab\"\nencoding = \"latin-1\"\n[columns]\nid = \"int32\"",
        )
        .unwrap();
        assert_eq!(o.delimiter.as_deref(), Some("tab"));
        assert!(o.header);
        assert!(toml::from_str::<CsvOptions>("delimeter = \";\"").is_err());
    }

    #[test]
    fn json_options_parse_from_plan_and_query() {
        let o: JsonOptions = toml::from_str(
            "format = \"lines\"\nflatten = true\n[paths]\ncity = \"customer.address.city\"\n[columns]\nid = \"int64\"",
        )
        .unwrap();
        assert_eq!(o.format, JsonFormat::Lines);
        assert!(o.flatten);
        assert_eq!(o.paths["city"], "customer.address.city");
        assert!(toml::from_str::<JsonOptions>("flaten = true").is_err());
        let mut q = JsonOptions::default();
        q.apply_query("format=array&path.city=a.b&column.id=int32&unknown_fields=ignore")
            .unwrap();
        assert_eq!(q.format, JsonFormat::Array);
        assert_eq!(q.paths["city"], "a.b");
        assert_eq!(q.columns["id"], "int32");
        assert_eq!(q.unknown_fields, UnknownFields::Ignore);
        assert!(q.apply_query("format=xml").is_err());
        assert!(q.apply_query("delimiter=;").is_err());
    }

    #[test]
    fn file_target_options_from_plan_query_and_pattern() {
        let mut o: FileTargetOptions =
            toml::from_str("format = \"csv\"\ncompression = \"gzip\"\nlayout = \"chunk\"").unwrap();
        assert_eq!(o.format, Some(FileFormat::Csv));
        assert_eq!(o.layout, FileLayout::Chunk);
        assert!(toml::from_str::<FileTargetOptions>("formatt = \"csv\"").is_err());
        o.apply_query("null=%5CN&header=false").unwrap();
        assert_eq!(o.null.as_deref(), Some("\\N"));
        assert_eq!(o.header, Some(false));
        assert!(o.apply_query("format=xml").is_err());
        let mut p = FileTargetOptions::default();
        assert_eq!(p.apply_pattern("/x/out/*.jsonl.zst").unwrap(), "/x/out");
        assert_eq!(p.format, Some(FileFormat::Jsonl));
        assert_eq!(p.compression, Some(FileCompression::Zstd));
        let mut q = FileTargetOptions::default();
        assert_eq!(q.apply_pattern("/x/out/").unwrap(), "/x/out/");
        assert_eq!(q.format, None);
        assert!(q.apply_pattern("/x/*.xml").is_err());
    }
}
