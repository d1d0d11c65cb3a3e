//! Pagination: the URL of each page of one chunk, for the page, offset, cursor and link styles,
//! and where a chunk ends.

use decant_core::http::Pagination;
use reqwest::Url;
use reqwest::header::{HeaderMap, LINK};

use super::json::at_path;
use crate::error::ConnectorError;

/// The pages of one chunk: `[lo, hi)` in page numbers (page style) or record offsets (offset
/// style); cursor, link and unpaged tables start at the first page and read to the end.
#[derive(Debug)]
pub struct Pager {
    pagination: Pagination,
    /// The table's URL with its fixed and incremental parameters.
    base: Url,
    hi: Option<u64>,
    /// The page number or record offset of the next request.
    at: u64,
    next: Option<Url>,
}

/// Sets `pairs` on `url`, replacing parameters of the same names.
pub fn with_params(url: &Url, pairs: &[(&str, &str)]) -> Url {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !pairs.iter().any(|(p, _)| p == k))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut out = url.clone();
    {
        let mut q = out.query_pairs_mut();
        q.clear();
        for (k, v) in &kept {
            q.append_pair(k, v);
        }
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    if out.query() == Some("") {
        out.set_query(None);
    }
    out
}

impl Pager {
    pub fn new(base: Url, pagination: &Pagination, lo: u64, hi: Option<u64>) -> Pager {
        let mut p = Pager {
            pagination: pagination.clone(),
            base,
            hi,
            at: lo,
            next: None,
        };
        p.next = p.numbered_url();
        if matches!(
            p.pagination,
            Pagination::None | Pagination::Cursor { .. } | Pagination::Link
        ) {
            p.next = Some(p.base.clone());
        }
        p
    }

    /// The first page's number (page style) or offset 0: where a table's first chunk starts.
    pub fn start(pagination: &Pagination) -> u64 {
        match pagination {
            Pagination::Page { first, .. } => *first,
            _ => 0,
        }
    }

    /// The next page's URL; `None` when the chunk is done.
    pub fn next_url(&self) -> Option<&Url> {
        self.next.as_ref()
    }

    /// For page and offset styles: the URL at `self.at`, or `None` past `hi`.
    fn numbered_url(&self) -> Option<Url> {
        if self.hi.is_some_and(|hi| self.at >= hi) {
            return None;
        }
        match &self.pagination {
            Pagination::Page {
                param,
                size_param,
                size,
                ..
            } => Some(with_params(
                &self.base,
                &[
                    (param, &self.at.to_string()),
                    (size_param, &size.to_string()),
                ],
            )),
            Pagination::Offset {
                param,
                size_param,
                size,
                ..
            } => {
                let limit = self.hi.map_or(*size, |hi| (*size).min(hi - self.at));
                Some(with_params(
                    &self.base,
                    &[
                        (param, &self.at.to_string()),
                        (size_param, &limit.to_string()),
                    ],
                ))
            }
            _ => None,
        }
    }

    /// How many of a page's `n` records belong to this chunk: an API that sends more than the
    /// limit asked for must not load the next chunk's records twice.
    pub fn keep(&self, n: usize) -> usize {
        match (&self.pagination, self.hi) {
            (Pagination::Offset { .. }, Some(hi)) => n.min((hi - self.at) as usize),
            _ => n,
        }
    }

    /// Moves past a page of `records` records (counted before [`Pager::keep`]).
    pub fn advance(
        &mut self,
        url: &Url,
        body: &serde_json::Value,
        headers: &HeaderMap,
        records: usize,
    ) -> Result<(), ConnectorError> {
        let kept = self.keep(records) as u64;
        self.next = if records == 0 {
            None // an empty page ends every style: no API loops forever on us
        } else {
            match &self.pagination {
                Pagination::None => None,
                Pagination::Page { .. } => {
                    self.at += 1;
                    self.numbered_url()
                }
                Pagination::Offset { .. } => {
                    self.at += kept;
                    self.numbered_url()
                }
                Pagination::Cursor { param, path } => match cursor(body, path) {
                    None => None,
                    Some(token) => {
                        let next = with_params(&self.base, &[(param, &token)]);
                        if &next == url {
                            return Err(ConnectorError::Config(format!(
                                "{url}: the API returned the cursor of this page as the next one; it would loop"
                            )));
                        }
                        Some(next)
                    }
                },
                Pagination::Link => match next_link(headers, url) {
                    Some(next) if &next == url => {
                        return Err(ConnectorError::Config(format!(
                            "{url}: the Link header's next page is this page; it would loop"
                        )));
                    }
                    other => other,
                },
            }
        };
        Ok(())
    }
}

/// The cursor at `path`: a string or a number; missing, null or empty ends the table.
fn cursor(body: &serde_json::Value, path: &str) -> Option<String> {
    match at_path(body, path)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The `rel="next"` target of the response's `Link` headers (RFC 8288), resolved against the
/// page's URL.
pub fn next_link(headers: &HeaderMap, page: &Url) -> Option<Url> {
    for value in headers.get_all(LINK) {
        let Ok(text) = value.to_str() else { continue };
        let mut rest = text;
        while let Some(open) = rest.find('<') {
            let Some(close) = rest[open..].find('>') else {
                break;
            };
            let target = &rest[open + 1..open + close];
            let after = &rest[open + close + 1..];
            // The link's parameters run to the next link's `<` (or the end).
            let end = after.find('<').unwrap_or(after.len());
            let params = &after[..end];
            let is_next = params.split(';').any(|p| {
                let p = p.trim();
                p.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("rel")
                        && v.trim()
                            .trim_end_matches(',')
                            .trim()
                            .trim_matches('"')
                            .split_ascii_whitespace()
                            .any(|r| r.eq_ignore_ascii_case("next"))
                })
            });
            if is_next {
                return page.join(target).ok();
            }
            rest = &after[end..];
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn params_replace_their_namesakes() {
        let u = with_params(&url("http://h/a?page=9&x=1"), &[("page", "2")]);
        assert_eq!(u.as_str(), "http://h/a?x=1&page=2");
    }

    #[test]
    fn link_headers_name_the_next_page() {
        let page = url("http://h/api/users?page=1");
        let mut h = HeaderMap::new();
        h.append(
            LINK,
            HeaderValue::from_static(
                r#"<http://h/api/users?page=1>; rel="prev first", </api/users?page=2>; rel="next", <http://h/api/users?page=9>; rel=last"#,
            ),
        );
        assert_eq!(
            next_link(&h, &page).unwrap().as_str(),
            "http://h/api/users?page=2"
        );
        let mut last = HeaderMap::new();
        last.append(
            LINK,
            HeaderValue::from_static(r#"<http://h/api/users?page=1>; rel="first""#),
        );
        assert_eq!(next_link(&last, &page), None);
        assert_eq!(next_link(&HeaderMap::new(), &page), None);
    }

    #[test]
    fn page_and_offset_chunks_stop_at_their_end() {
        let page = Pagination::Page {
            param: "page".into(),
            size_param: "per_page".into(),
            size: 10,
            first: 1,
            total_path: None,
        };
        let body = serde_json::json!({});
        let h = HeaderMap::new();
        let mut p = Pager::new(url("http://h/t"), &page, 3, Some(5));
        assert_eq!(
            p.next_url().unwrap().as_str(),
            "http://h/t?page=3&per_page=10"
        );
        let u = p.next_url().unwrap().clone();
        p.advance(&u, &body, &h, 10).unwrap();
        assert_eq!(
            p.next_url().unwrap().as_str(),
            "http://h/t?page=4&per_page=10"
        );
        let u = p.next_url().unwrap().clone();
        p.advance(&u, &body, &h, 10).unwrap();
        assert!(p.next_url().is_none(), "page 5 is the next chunk's");

        let offset = Pagination::Offset {
            param: "offset".into(),
            size_param: "limit".into(),
            size: 10,
            total_path: None,
        };
        let mut p = Pager::new(url("http://h/t"), &offset, 20, Some(35));
        let u = p.next_url().unwrap().clone();
        assert_eq!(u.as_str(), "http://h/t?offset=20&limit=10");
        p.advance(&u, &body, &h, 10).unwrap();
        let u = p.next_url().unwrap().clone();
        assert_eq!(u.as_str(), "http://h/t?offset=30&limit=5");
        assert_eq!(p.keep(10), 5, "an API sending more than asked");
        p.advance(&u, &body, &h, 10).unwrap();
        assert!(p.next_url().is_none());

        let mut open = Pager::new(url("http://h/t"), &offset, 0, None);
        let u = open.next_url().unwrap().clone();
        open.advance(&u, &body, &h, 0).unwrap();
        assert!(open.next_url().is_none(), "an empty page ends the table");
    }

    #[test]
    fn cursors_come_from_the_body_and_must_move() {
        let c = Pagination::Cursor {
            param: "cursor".into(),
            path: "meta.next".into(),
        };
        let h = HeaderMap::new();
        let mut p = Pager::new(url("http://h/t?x=1"), &c, 0, None);
        let u = p.next_url().unwrap().clone();
        assert_eq!(u.as_str(), "http://h/t?x=1");
        p.advance(&u, &serde_json::json!({"meta": {"next": "abc"}}), &h, 3)
            .unwrap();
        let u = p.next_url().unwrap().clone();
        assert_eq!(u.as_str(), "http://h/t?x=1&cursor=abc");
        assert!(
            p.advance(&u, &serde_json::json!({"meta": {"next": "abc"}}), &h, 3)
                .is_err()
        );
        p.advance(&u, &serde_json::json!({"meta": {"next": null}}), &h, 3)
            .unwrap();
        assert!(p.next_url().is_none());
    }
}
