//! Options for HTTP JSON API sources (`http://` and `https://` URLs): the plan's
//! `[source.http]` section — tables, where the records sit in a response, pagination, auth,
//! rate limit, retries, timeouts and incremental reads. See docs/http.md.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// How to read a JSON API. Every key but the tables has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpOptions {
    /// The API's tables; with none, the source URL itself is one table (its last path segment
    /// names it) without pagination.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<HttpTable>,
    /// How requests authenticate; the secret always comes from the environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<HttpAuth>,
    /// Requests per second at most, over all tables and chunks of the source; unset: no limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<f64>,
    /// Retries of one request after a 429, a 5xx, a timeout or a connection error.
    pub retries: u32,
    /// The first retry's wait; each further retry doubles it (`"500ms"`, `"2s"`).
    pub backoff: String,
    /// The longest wait between two attempts, also the cap on a server's `Retry-After`.
    pub max_backoff: String,
    /// Time for one whole request (connect, send, receive the body).
    pub timeout: String,
    /// Time to establish a connection.
    pub connect_timeout: String,
    /// Records of the first pages read to infer column types.
    pub sample_records: usize,
    /// Largest response body accepted, so one page cannot grow the process (`"64MiB"`).
    pub max_body: String,
    /// Extra request headers that are not secret (`Accept`, an API version).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// A PEM file of CA certificates trusted for `https://` besides the compiled-in public
    /// roots: a private or corporate CA. Verification is never turned off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            tables: vec![],
            auth: None,
            rate_limit: None,
            retries: 5,
            backoff: "500ms".into(),
            max_backoff: "30s".into(),
            timeout: "30s".into(),
            connect_timeout: "10s".into(),
            sample_records: 1000,
            max_body: "64MiB".into(),
            headers: BTreeMap::new(),
            ca_file: None,
        }
    }
}

/// One table of an API: an endpoint returning records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTable {
    /// The table's name.
    pub name: String,
    /// The endpoint: a path appended to the source URL (`/users`), or a whole `http(s)://` URL.
    pub path: String,
    /// Dotted path to the records array in a response body (`data.items`); empty: the body is
    /// the array.
    #[serde(default)]
    pub records: String,
    /// The field that identifies a record: the table's primary key, NOT NULL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// How to get the next page; default: one request, no pagination.
    #[serde(default)]
    pub pagination: Pagination,
    /// Fixed query parameters sent with every request of the table.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// Pinned logical types per field (`id = "int64"`, `price = "decimal(10,2)"`); a pinned
    /// field is a column even when the sample never shows it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, String>,
    /// Read only records changed since the last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<Incremental>,
}

/// Pagination styles.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "style", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pagination {
    /// One request returns every record.
    #[default]
    None,
    /// `?page=N&per_page=S`, from `first` on, until a page comes back empty.
    Page {
        #[serde(default = "default_page_param")]
        param: String,
        #[serde(default = "default_per_page_param")]
        size_param: String,
        #[serde(default = "default_page_size")]
        size: u64,
        /// The number of the first page (1 for most APIs).
        #[serde(default = "default_first_page")]
        first: u64,
        /// Dotted path to the total record count in the body (`meta.total`): with it the
        /// table is split into chunks of pages that load in parallel and resume separately.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        total_path: Option<String>,
    },
    /// `?offset=O&limit=L`, advancing by the records received, until a page comes back empty.
    Offset {
        #[serde(default = "default_offset_param")]
        param: String,
        #[serde(default = "default_limit_param")]
        size_param: String,
        #[serde(default = "default_page_size")]
        size: u64,
        /// Dotted path to the total record count in the body, as for `page`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        total_path: Option<String>,
    },
    /// A token taken from the body (`path`) and sent as `param` for the next page; a missing,
    /// null or empty token ends the table.
    Cursor {
        #[serde(default = "default_cursor_param")]
        param: String,
        path: String,
    },
    /// RFC 8288 `Link: <url>; rel="next"` response headers; no such link ends the table.
    Link,
}

fn default_page_param() -> String {
    "page".into()
}
fn default_per_page_param() -> String {
    "per_page".into()
}
fn default_offset_param() -> String {
    "offset".into()
}
fn default_limit_param() -> String {
    "limit".into()
}
fn default_cursor_param() -> String {
    "cursor".into()
}
fn default_page_size() -> u64 {
    100
}
fn default_first_page() -> u64 {
    1
}

/// Authentication; the plan names an environment variable, never the secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum HttpAuth {
    /// `Authorization: Bearer <token>` with the token from `token_env`.
    Bearer { token_env: String },
    /// A header (`X-Api-Key`) whose value comes from `value_env`.
    Header { name: String, value_env: String },
}

/// Incremental reads: `param` carries the highest `field` value already in the target table,
/// so a run after the first asks the API only for records changed since.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incremental {
    /// The record field that grows with every change (`updated_at`, a version number).
    pub field: String,
    /// The query parameter the API filters on (`updated_since`).
    pub param: String,
    /// The value sent when the target holds no rows yet; unset: no parameter, every record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial: Option<String>,
}

impl HttpOptions {
    /// Checks values serde cannot: durations, sizes, names.
    pub fn check(&self) -> Result<(), CoreError> {
        let mut problems = Vec::new();
        for (key, text) in [
            ("backoff", &self.backoff),
            ("max_backoff", &self.max_backoff),
            ("timeout", &self.timeout),
            ("connect_timeout", &self.connect_timeout),
        ] {
            if let Err(e) = parse_duration(text) {
                problems.push(format!("source.http.{key}: {e}"));
            }
        }
        if let Err(e) = crate::size::parse_size(&self.max_body) {
            problems.push(format!("source.http.max_body: {e}"));
        }
        if self.ca_file.as_deref().is_some_and(|f| f.trim().is_empty()) {
            problems.push("source.http.ca_file must name a PEM file".to_string());
        }
        if let Some(r) = self.rate_limit
            && !(r.is_finite() && r > 0.0)
        {
            problems.push(format!(
                "source.http.rate_limit must be a number of requests per second above 0, not {r}"
            ));
        }
        let mut names = std::collections::HashSet::new();
        for t in &self.tables {
            if t.name.trim().is_empty() || !names.insert(t.name.as_str()) {
                problems.push(format!(
                    "source.http.tables: names must be unique and not empty (`{}`)",
                    t.name
                ));
            }
            let size = match &t.pagination {
                Pagination::Page { size, .. } | Pagination::Offset { size, .. } => *size,
                _ => 1,
            };
            if size == 0 {
                problems.push(format!(
                    "source.http.tables `{}`: pagination.size must be at least 1",
                    t.name
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(CoreError::Plan(problems.join("; ")))
        }
    }
}

/// Parses `"500ms"`, `"30s"`, `"2m"`, `"1h"`, `"7d"` (a plain number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || format!("`{text}` is not a duration (e.g. \"500ms\", \"30s\", \"2m\", \"7d\")");
    let value: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86_400.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 fortnights").is_err());
    }

    #[test]
    fn plan_section_parses_and_refuses_unknown_keys() {
        let o: HttpOptions = toml::from_str(
            r#"
rate_limit = 5.0
auth = { kind = "bearer", token_env = "API_TOKEN" }
[[tables]]
name = "users"
path = "/users"
records = "data.items"
key = "id"
pagination = { style = "cursor", path = "meta.next" }
incremental = { field = "updated_at", param = "updated_since" }
[[tables]]
name = "orders"
path = "/orders"
pagination = { style = "page", size = 50 }
"#,
        )
        .unwrap();
        o.check().unwrap();
        assert_eq!(o.tables.len(), 2);
        assert_eq!(
            o.tables[0].pagination,
            Pagination::Cursor {
                param: "cursor".into(),
                path: "meta.next".into()
            }
        );
        assert!(matches!(
            o.tables[1].pagination,
            Pagination::Page {
                size: 50,
                first: 1,
                ..
            }
        ));
        assert!(toml::from_str::<HttpOptions>("retry = 3").is_err());
        assert!(
            toml::from_str::<HttpOptions>(
                "[[tables]]\nname = \"a\"\npath = \"/a\"\npagination = { style = \"page\", sise = 3 }"
            )
            .is_err(),
            "unknown pagination keys are refused"
        );
        assert!(
            toml::from_str::<HttpOptions>("auth = { kind = \"bearer\", token = \"s3cret\" }")
                .is_err(),
            "a secret in the plan is refused"
        );
        let bad = HttpOptions {
            timeout: "forever".into(),
            rate_limit: Some(0.0),
            ..Default::default()
        };
        let err = bad.check().unwrap_err().to_string();
        assert!(
            err.contains("timeout") && err.contains("rate_limit"),
            "{err}"
        );
    }
}
