//! HTTP JSON APIs as sources (`http://`, `https://` with a `[source.http]` plan section):
//! pagination by page, offset, cursor or `Link` header; auth from the environment; a shared
//! rate limit; retries with backoff that honour `Retry-After`; incremental reads.
//!
//! `introspect` infers each table's schema from the first pages, `plan_chunks` splits paged
//! tables into page ranges when the API announces its record count (else one chunk per table),
//! `read_chunk` streams one range page by page into Arrow batches and quarantines records that
//! do not fit, with the page URL and the record's index.

mod client;
mod introspect;
mod json;
mod paging;
mod source;

pub use source::HttpSource;
