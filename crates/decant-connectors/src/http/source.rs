//! The HTTP JSON API source: tables from `[source.http]`, schemas inferred from the first
//! pages, chunks as page ranges, and reads that stream page after page into Arrow batches,
//! quarantining records that do not fit.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use async_trait::async_trait;
use decant_core::http::{HttpOptions, HttpTable, Pagination};
use decant_core::{
    Catalog, ChunkRange, ChunkSpec, ConnectionUrl, Dialect, LogicalType, Table, TableName,
};
use reqwest::Url;
use serde_json::Value;
use tokio::sync::mpsc;

use super::client::{ApiClient, redact};
use super::json::{append_page, at_path, inexact_records, take_records};
use super::paging::{Pager, with_params};
use crate::batch::BatchBuilder;
use crate::error::ConnectorError;
use crate::files::values::supported;
use crate::traits::{ReadRequest, Source};

/// One table, checked: its URL and pinned types.
#[derive(Debug, Clone)]
pub(super) struct ApiTable {
    pub(super) def: HttpTable,
    pub(super) url: Url,
    pub(super) pinned: Vec<(String, LogicalType)>,
}

/// An HTTP JSON API as a source; see docs/http.md.
pub struct HttpSource {
    tables: Vec<ApiTable>,
    client: Arc<ApiClient>,
    pub(super) sample_records: usize,
    /// Records served per table and chunk in this process, for `count_rows`.
    served: Mutex<HashMap<String, HashMap<String, u64>>>,
    /// Chunk ids planned per table in this process.
    planned: Mutex<HashMap<String, Vec<String>>>,
    /// The incremental watermark of each table's chunks read in this process.
    since: Mutex<HashMap<String, Option<String>>>,
    /// Every column of each table as introspected: a field among them is known even when the
    /// plan skips its column (only a field outside them is a reject).
    pub(super) layouts: Mutex<HashMap<String, Arc<HashSet<String>>>>,
}

pub(super) fn config(m: String) -> ConnectorError {
    ConnectorError::Config(m)
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl HttpSource {
    /// Checks the options and builds the client; no request is sent yet.
    pub fn open(
        url: &ConnectionUrl,
        options: Option<&HttpOptions>,
    ) -> Result<Self, ConnectorError> {
        let base = Url::parse(url.expose()).map_err(|e| config(format!("{url}: {e}")))?;
        let o = options.cloned().unwrap_or_default();
        let defs = if o.tables.is_empty() {
            vec![HttpTable {
                name: base
                    .path_segments()
                    .and_then(|mut s| s.rfind(|p| !p.is_empty()).map(str::to_string))
                    .unwrap_or_else(|| "api".into()),
                path: String::new(),
                records: String::new(),
                key: None,
                pagination: Pagination::None,
                params: Default::default(),
                columns: Default::default(),
                incremental: None,
            }]
        } else {
            o.tables.clone()
        };
        let mut tables = Vec::new();
        for def in defs {
            let mut table_url =
                if def.path.starts_with("http://") || def.path.starts_with("https://") {
                    Url::parse(&def.path)
                } else if def.path.is_empty() {
                    Ok(base.clone())
                } else {
                    let mut joined = base.clone();
                    let path = format!(
                        "{}/{}",
                        base.path().trim_end_matches('/'),
                        def.path.trim_start_matches('/')
                    );
                    joined.set_path(&path);
                    Ok(joined)
                }
                .map_err(|e| config(format!("source.http table `{}`: path: {e}", def.name)))?;
            let params: Vec<(&str, &str)> = def
                .params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            if !params.is_empty() {
                table_url = with_params(&table_url, &params);
            }
            let mut pinned = Vec::new();
            for (col, ty) in &def.columns {
                let t: LogicalType = ty.parse().map_err(|e| {
                    config(format!(
                        "source.http table `{}`: columns.{col}: {e}",
                        def.name
                    ))
                })?;
                if !supported(&t) {
                    return Err(config(format!(
                        "source.http table `{}`: columns.{col} = \"{ty}\": an API carries bool, integers, floats, decimals, text, json, dates, times, timestamps and uuids",
                        def.name
                    )));
                }
                pinned.push((col.clone(), t));
            }
            tables.push(ApiTable {
                def,
                url: table_url,
                pinned,
            });
        }
        Ok(HttpSource {
            tables,
            client: Arc::new(ApiClient::new(&o)?),
            sample_records: o.sample_records.max(1),
            served: Mutex::new(HashMap::new()),
            planned: Mutex::new(HashMap::new()),
            since: Mutex::new(HashMap::new()),
            layouts: Mutex::new(HashMap::new()),
        })
    }

    fn table(&self, name: &TableName) -> Result<&ApiTable, ConnectorError> {
        self.tables
            .iter()
            .find(|t| t.def.name == name.name)
            .ok_or_else(|| config(format!("the API source has no table {name}")))
    }

    /// The table's URL with the incremental parameter, when there is a watermark.
    fn url_since(t: &ApiTable, since: Option<&str>) -> Url {
        match (&t.def.incremental, since) {
            (Some(inc), Some(s)) => with_params(&t.url, &[(inc.param.as_str(), s)]),
            _ => t.url.clone(),
        }
    }

    /// Fetches one page: its records (all of them; the pager decides how many to keep).
    pub(super) async fn page(&self, t: &ApiTable, url: &Url) -> Result<Page, ConnectorError> {
        let mut response = self.client.get_json(url).await?;
        let records = take_records(&mut response.body, &t.def.records)
            .map_err(|e| config(format!("GET {}: {e}", redact(url))))?;
        Ok(Page {
            url: response.url,
            records,
            body: response.body,
            text: response.text,
            headers: response.headers,
        })
    }

    /// The total record count the first page announces (page and offset styles with
    /// `total_path`).
    async fn announced_total(
        &self,
        t: &ApiTable,
        since: Option<&str>,
    ) -> Result<Option<u64>, ConnectorError> {
        let total_path = match &t.def.pagination {
            Pagination::Page { total_path, .. } | Pagination::Offset { total_path, .. } => {
                total_path.as_deref()
            }
            _ => None,
        };
        let Some(path) = total_path else {
            return Ok(None);
        };
        let pager = Pager::new(
            Self::url_since(t, since),
            &t.def.pagination,
            Pager::start(&t.def.pagination),
            None,
        );
        let Some(url) = pager.next_url().cloned() else {
            return Ok(None);
        };
        let page = self.page(t, &url).await?;
        match at_path(&page.body, path).and_then(Value::as_u64) {
            Some(n) => Ok(Some(n)),
            None => Err(config(format!(
                "GET {}: no record count (a non-negative integer) at total_path `{path}`",
                redact(&url)
            ))),
        }
    }

    /// Chunks of `table`, reading only records after `since` when it is set.
    pub async fn plan_since(
        &self,
        table: &Table,
        chunk_rows: u64,
        since: Option<String>,
    ) -> Result<Vec<ChunkSpec>, ConnectorError> {
        let t = self.table(&table.name)?;
        let start = Pager::start(&t.def.pagination);
        let chunk = |lo: u64, hi: Option<u64>, rows: u64| ChunkSpec {
            id: format!("{}@{lo}", t.def.name),
            range: ChunkRange::HttpPages {
                lo,
                hi,
                since: since.clone(),
            },
            estimated_rows: rows,
        };
        let total = self.announced_total(t, since.as_deref()).await?;
        let chunks = match (&t.def.pagination, total) {
            (Pagination::Page { size, .. }, Some(total)) => {
                let pages_per_chunk = (chunk_rows / size).max(1);
                let pages = total.div_ceil(*size).max(1);
                let n = pages.div_ceil(pages_per_chunk);
                (0..n)
                    .map(|i| {
                        let lo = start + i * pages_per_chunk;
                        let last = i + 1 == n;
                        let rows = if last {
                            total - (i * pages_per_chunk * size).min(total)
                        } else {
                            pages_per_chunk * size
                        };
                        // The last chunk reads on to an empty page: records added since the
                        // count are not lost.
                        chunk(lo, (!last).then_some(lo + pages_per_chunk), rows)
                    })
                    .collect()
            }
            (Pagination::Offset { size, .. }, Some(total)) => {
                let per_chunk = (chunk_rows / size).max(1) * size;
                let n = total.div_ceil(per_chunk).max(1);
                (0..n)
                    .map(|i| {
                        let lo = i * per_chunk;
                        let last = i + 1 == n;
                        let rows = if last {
                            total - lo.min(total)
                        } else {
                            per_chunk
                        };
                        chunk(lo, (!last).then_some(lo + per_chunk), rows)
                    })
                    .collect()
            }
            _ => vec![chunk(start, None, table.row_estimate)],
        };
        lock(&self.planned).insert(
            t.def.name.clone(),
            chunks.iter().map(|c: &ChunkSpec| c.id.clone()).collect(),
        );
        Ok(chunks)
    }

    /// The first-run value of the incremental parameter.
    pub fn initial_since(&self, table: &TableName) -> Option<String> {
        self.table(table)
            .ok()?
            .def
            .incremental
            .as_ref()?
            .initial
            .clone()
    }
}

/// One response's records, with what pagination reads from it.
pub(super) struct Page {
    pub(super) url: Url,
    pub(super) records: Vec<Value>,
    pub(super) body: Value,
    /// The response as the API sent it, where a number the parse rounded is still exact.
    pub(super) text: String,
    pub(super) headers: reqwest::header::HeaderMap,
}

#[async_trait]
impl Source for HttpSource {
    fn dialect(&self) -> Dialect {
        Dialect::Http
    }

    async fn introspect(&self, _schemas: &[String]) -> Result<Catalog, ConnectorError> {
        let mut catalog = Catalog {
            server_version: format!("HTTP JSON API ({} tables)", self.tables.len()),
            ..Catalog::default()
        };
        for t in &self.tables {
            catalog.tables.push(self.infer(t).await?);
        }
        Ok(catalog)
    }

    async fn plan_chunks(
        &self,
        table: &Table,
        chunk_rows: u64,
    ) -> Result<Vec<ChunkSpec>, ConnectorError> {
        let since = self.initial_since(&table.name);
        self.plan_since(table, chunk_rows, since).await
    }

    fn incremental_field(&self, table: &TableName) -> Option<String> {
        let t = self.table(table).ok()?;
        t.def.incremental.as_ref().map(|i| i.field.clone())
    }

    async fn plan_chunks_since(
        &self,
        table: &Table,
        chunk_rows: u64,
        watermark: Option<String>,
    ) -> Result<Vec<ChunkSpec>, ConnectorError> {
        let since = watermark.or_else(|| self.initial_since(&table.name));
        self.plan_since(table, chunk_rows, since).await
    }

    async fn read_chunk(
        &self,
        request: &ReadRequest,
        tx: mpsc::Sender<RecordBatch>,
    ) -> Result<u64, ConnectorError> {
        let t = self.table(&request.table)?.clone();
        let ChunkRange::HttpPages { lo, hi, since } = &request.chunk.range else {
            return Err(config(format!(
                "an API source reads page ranges, not {}",
                request.chunk.range.describe()
            )));
        };
        lock(&self.since).insert(t.def.name.clone(), since.clone());
        let known = lock(&self.layouts)
            .get(&t.def.name)
            .cloned()
            .unwrap_or_else(|| Arc::new(request.columns.iter().map(|c| c.name.clone()).collect()));
        let mut pager = Pager::new(
            Self::url_since(&t, since.as_deref()),
            &t.def.pagination,
            *lo,
            *hi,
        );
        let internal = |e: arrow_schema::ArrowError| ConnectorError::Internal(e.to_string());
        let mut builder = BatchBuilder::new(request.schema.clone(), request.batch_rows.max(1))
            .map_err(internal)?;
        let (mut rows, mut records) = (0u64, 0u64);
        while let Some(url) = pager.next_url().cloned() {
            let page = self.page(&t, &url).await?;
            let (received, keep) = (page.records.len(), pager.keep(page.records.len()));
            records += keep as u64;
            // Turning JSON into columns is CPU work: off the async workers, one page at a time.
            let (b, sent, batches) = {
                let request = request.clone();
                let (records, text) = (page.records, page.text);
                let page_url = redact(&page.url);
                let known = known.clone();
                let path = t.def.records.clone();
                tokio::task::spawn_blocking(move || {
                    let mut b = builder;
                    let inexact = match inexact_records(&text, &path) {
                        Ok(found) => found,
                        Err(e) => {
                            let e = ConnectorError::Internal(format!("GET {page_url}: {e}"));
                            return (b, 0, Err(e));
                        }
                    };
                    drop(text);
                    let r = append_page(
                        &mut b,
                        &request,
                        &known,
                        &records[..keep],
                        &inexact,
                        &page_url,
                    );
                    (b, r.0, r.1)
                })
                .await?
            };
            builder = b;
            rows += sent;
            for batch in batches? {
                tx.send(batch)
                    .await
                    .map_err(|_| ConnectorError::ChannelClosed)?;
            }
            pager.advance(&page.url, &page.body, &page.headers, received)?;
        }
        if !builder.is_empty() {
            let batch = builder.finish().map_err(internal)?;
            tx.send(batch)
                .await
                .map_err(|_| ConnectorError::ChannelClosed)?;
        }
        lock(&self.served)
            .entry(t.def.name.clone())
            .or_default()
            .insert(request.chunk.id.clone(), records);
        Ok(rows)
    }

    async fn count_rows(&self, table: &TableName) -> Result<u64, ConnectorError> {
        // The records this process read, when it read every chunk of the table: counting
        // again would walk the whole API a second time.
        let planned = lock(&self.planned).get(&table.name).cloned();
        if let (Some(ids), Some(served)) = (planned, lock(&self.served).get(&table.name))
            && ids.iter().all(|id| served.contains_key(id))
        {
            return Ok(ids.iter().map(|id| served[id]).sum());
        }
        // A resumed job read some chunks in an earlier process: walk the API and count.
        let t = self.table(table)?;
        let since = lock(&self.since).get(&table.name).cloned().flatten();
        let since = since.or_else(|| self.initial_since(table));
        let start = Pager::start(&t.def.pagination);
        let mut pager = Pager::new(
            Self::url_since(t, since.as_deref()),
            &t.def.pagination,
            start,
            None,
        );
        let mut n = 0u64;
        while let Some(url) = pager.next_url().cloned() {
            let page = self.page(t, &url).await?;
            n += page.records.len() as u64;
            pager.advance(&page.url, &page.body, &page.headers, page.records.len())?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use decant_core::http::HttpTable;

    fn table(name: &str, path: &str) -> HttpTable {
        HttpTable {
            name: name.into(),
            path: path.into(),
            records: String::new(),
            key: None,
            pagination: Pagination::None,
            params: [("status".to_string(), "all".to_string())].into(),
            columns: Default::default(),
            incremental: None,
        }
    }

    #[test]
    fn tables_join_the_base_url_and_refuse_what_cannot_work() {
        let url = ConnectionUrl::parse("http://api.local:8080/v2/").unwrap();
        let o = HttpOptions {
            tables: vec![table("users", "/users"), table("other", "http://x.local/o")],
            ..Default::default()
        };
        let s = HttpSource::open(&url, Some(&o)).unwrap();
        assert_eq!(
            s.tables[0].url.as_str(),
            "http://api.local:8080/v2/users?status=all"
        );
        assert_eq!(s.tables[1].url.as_str(), "http://x.local/o?status=all");
        let plain =
            HttpSource::open(&ConnectionUrl::parse("http://h/api/items").unwrap(), None).unwrap();
        assert_eq!(plain.tables[0].def.name, "items");

        let tls = ConnectionUrl::parse("https://api.local/v2").unwrap();
        let s = HttpSource::open(&tls, Some(&o)).unwrap();
        assert_eq!(
            s.tables[0].url.as_str(),
            "https://api.local/v2/users?status=all"
        );
        let missing = HttpOptions {
            ca_file: Some("/nonexistent/decant-ca.pem".into()),
            ..o.clone()
        };
        let err = HttpSource::open(&tls, Some(&missing))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("source.http.ca_file `/nonexistent/decant-ca.pem`: cannot read it"),
            "{err}"
        );
        let not_pem = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(not_pem.path(), "not a certificate\n").unwrap();
        let file = not_pem.path().to_string_lossy().into_owned();
        let no_cert = HttpOptions {
            ca_file: Some(file.clone()),
            ..o.clone()
        };
        let err = HttpSource::open(&tls, Some(&no_cert))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains(&file) && err.contains("no certificate in it"),
            "{err}"
        );
        let mut pinned = table("t", "/t");
        pinned.columns.insert("shape".into(), "geometry".into());
        let bad = HttpOptions {
            tables: vec![pinned],
            ..Default::default()
        };
        assert!(HttpSource::open(&url, Some(&bad)).is_err());
    }
}
