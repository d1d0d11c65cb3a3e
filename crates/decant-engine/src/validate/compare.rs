//! The two passes over the data: digests of every unit on both sides, then, for the units
//! that differ, a re-read of the differing buckets down to rows. Units run `parallelism` at a
//! time, each reading both sides at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use decant_connectors::{ConnectorError, InPlaceDigest, KeyBuckets, ReadColumn, Source};
use decant_core::plan::Plan;
use decant_core::{ChunkRange, ChunkSpec, TableName};
use decant_transform::TableTransform;
use futures::StreamExt;

use super::digest::{Bucketing, Buckets, Filter, ScanError, ScanJob, Scanned, Side, Sink, scan};
use super::inrun::{InRunDigests, Layout};
use super::report::Difference;
use super::table::{Method, TableCheck};
use super::{TableState, ValidateOptions, diff};
use crate::progress::TableProgress;

/// What every task needs.
pub(super) struct Ctx<'a> {
    pub source: Arc<dyn Source>,
    pub target: Arc<dyn Source>,
    pub plan: &'a Plan,
    pub parallelism: usize,
    pub batch_rows: usize,
    /// Source digests recorded while `decant run` loaded the chunks.
    pub recorded: Option<Arc<InRunDigests>>,
}

impl Ctx<'_> {
    fn reader(&self, side: Side) -> Arc<dyn Source> {
        match side {
            Side::Source => self.source.clone(),
            Side::Target => self.target.clone(),
        }
    }

    /// One side of one chunk, retried with backoff when the connection drops. `transform`
    /// runs on the source side only.
    #[allow(clippy::too_many_arguments)]
    async fn scan(
        &self,
        side: Side,
        check: &Arc<TableCheck>,
        chunk: &ChunkSpec,
        bucketing: Bucketing,
        make: impl Fn() -> Sink,
        progress: Option<Arc<TableProgress>>,
        transform: Option<Arc<TableTransform>>,
    ) -> Result<Scanned, ScanError> {
        let retries = self.plan.load.retries.max(1);
        let mut attempt = 1;
        loop {
            let job = ScanJob {
                reader: self.reader(side),
                side,
                check: check.clone(),
                chunk: chunk.clone(),
                batch_rows: self.batch_rows,
                policies: match side {
                    // The run read the source with each column's resolved policies.
                    Side::Source => decant_core::plan::Policies {
                        resolved: check.source_policies.clone(),
                        ..self.plan.policies.clone()
                    },
                    Side::Target => self.plan.policies.clone(),
                },
                bucketing,
                progress: progress.clone(),
                transform: transform.clone(),
            };
            let result = scan(job, make()).await;
            match result {
                Err(e) if e.is_retriable() && attempt < retries => {
                    let wait = Duration::from_millis(500 * (1 << attempt.min(6)));
                    tracing::warn!(table = %check.target, chunk = %chunk.id, attempt, error = %e, "read failed, retrying in {wait:?}");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

fn side_error(side: Side, check: &TableCheck, chunk: &ChunkSpec, e: &ScanError) -> String {
    let (name, what) = match side {
        Side::Source => (&check.source, "source"),
        Side::Target => (&check.target, "target"),
    };
    format!(
        "reading the {what} {name} ({}) failed: {e}",
        chunk.range.describe()
    )
}

pub(super) async fn count_tables(ctx: &Ctx<'_>, tables: &mut [TableState]) {
    for t in tables.iter_mut() {
        let Some(check) = t.check.clone() else {
            continue;
        };
        let started = Instant::now();
        let counted = tokio::try_join!(count_source(ctx, &check, t.progress.clone()), async {
            ctx.target
                .count_rows(&check.target)
                .await
                .map_err(|e| e.to_string())
        });
        match counted {
            Ok(c) => t.counts = Some(c),
            Err(e) => t.error = Some(format!("counting rows failed: {e}")),
        }
        t.worked(started);
    }
}

/// The source's rows as the target should hold them: its count, or, when the plan's
/// transforms can leave rows out (a filter, row rules), the rows that pass them, which only
/// reading and transforming the rows can tell.
async fn count_source(
    ctx: &Ctx<'_>,
    check: &Arc<TableCheck>,
    progress: Arc<TableProgress>,
) -> Result<u64, String> {
    let Some(transform) = check.transform.as_ref().filter(|tr| tr.drops_rows()) else {
        return ctx
            .source
            .count_rows(&check.source)
            .await
            .map_err(|e| e.to_string());
    };
    // Owned inputs: a stream of futures borrowing from an iterator is not `Send` enough for
    // the server's spawned validations.
    let chunks: Vec<ChunkSpec> = check
        .units
        .iter()
        .flat_map(|u| u.source_chunks.iter().cloned())
        .collect();
    let one = Bucketing::Hash { buckets: 1 };
    let mut scans = futures::stream::iter(chunks)
        .map(|chunk| {
            let (check, compiled, progress) =
                (check.clone(), transform.digests.clone(), progress.clone());
            async move {
                ctx.scan(
                    Side::Source,
                    &check,
                    &chunk,
                    one,
                    || Sink::Digest(Buckets::new(1)),
                    Some(progress),
                    Some(compiled),
                )
                .await
                .map_err(|e| side_error(Side::Source, &check, &chunk, &e))
            }
        })
        .buffer_unordered(ctx.parallelism);
    let mut rows = 0;
    while let Some(scanned) = scans.next().await {
        if let Sink::Digest(b) = scanned?.sink {
            rows += b.rows();
        }
    }
    Ok(rows)
}

/// Settles the units whose two sides are proven equal inside the databases: both compute a
/// digest where the rows are (PostgreSQL to PostgreSQL, each column of one type on both sides)
/// and send three numbers instead of the rows. Returns, per table and unit, whether it is
/// settled. A unit whose digests differ, or that cannot be digested in place, or whose query
/// failed, stays unsettled: it is read and hashed here, which finds the rows that differ (or
/// proves that none does) and reports a real failure with its retries.
async fn settle_in_place(
    ctx: &Ctx<'_>,
    tables: &mut [TableState],
    from_run: &[Vec<bool>],
) -> Vec<Vec<bool>> {
    let mut settled: Vec<Vec<bool>> = tables
        .iter()
        .map(|t| vec![false; t.digests.len()])
        .collect();
    let mut tasks = Vec::new();
    for (ti, t) in tables.iter().enumerate() {
        if let Some(check) = t.check.clone().filter(|c| c.in_place) {
            tasks.extend(
                (0..check.units.len())
                    .filter(|&ui| !from_run[ti][ui])
                    .map(|ui| (ti, ui, check.clone())),
            );
        }
    }
    let digest_side = |reader: Arc<dyn Source>,
                       table: TableName,
                       chunks: Vec<ChunkSpec>,
                       columns: Vec<ReadColumn>,
                       distinct: bool| async move {
        let mut total = InPlaceDigest::default();
        for c in &chunks {
            match reader
                .digest_in_place(&table, &c.range, &columns, distinct)
                .await?
            {
                Some(d) => total.merge(&d),
                None => return Ok(None),
            }
        }
        Ok::<_, ConnectorError>(Some(total))
    };
    let mut results = futures::stream::iter(tasks)
        .map(|(ti, ui, check)| async move {
            let started = Instant::now();
            let unit = &check.units[ui];
            let digests = tokio::try_join!(
                digest_side(
                    ctx.source.clone(),
                    check.source.clone(),
                    unit.source_chunks.clone(),
                    check.source_read.clone(),
                    check.distinct
                ),
                digest_side(
                    ctx.target.clone(),
                    check.target.clone(),
                    unit.target_chunks.clone(),
                    check.target_read.clone(),
                    check.distinct
                )
            );
            // Digests that differ are narrowed to buckets in the databases too, so that only
            // the differing buckets' rows are read here, not the whole unit.
            let buckets = match &digests {
                Ok((Some(a), Some(b))) if a != b => bucket_digests(ctx, &check, ui).await,
                _ => None,
            };
            (ti, ui, digests, buckets, started)
        })
        .buffer_unordered(ctx.parallelism);
    while let Some((ti, ui, digests, buckets, started)) = results.next().await {
        let t = &mut tables[ti];
        if let Some((a, b)) = buckets {
            let chunks = t.check.as_ref().map_or(0, |c| {
                c.units[ui].source_chunks.len() + c.units[ui].target_chunks.len()
            });
            t.progress
                .rows_done
                .fetch_add(a.rows() + b.rows(), Ordering::Relaxed);
            t.progress
                .chunks_done
                .fetch_add(chunks as u64, Ordering::Relaxed);
            t.digests[ui] = (a, b);
            settled[ti][ui] = true;
            t.in_place_narrowed += 1;
            t.worked(started);
            continue;
        }
        match digests {
            Ok((Some(a), Some(b))) if a == b => {
                let Some(unit) = t.check.as_ref().map(|c| &c.units[ui]) else {
                    continue;
                };
                let n = unit.bucketing.len();
                let chunks = unit.source_chunks.len() + unit.target_chunks.len();
                t.digests[ui] = (Buckets::settled(n, a.rows), Buckets::settled(n, b.rows));
                settled[ti][ui] = true;
                t.in_place_units += 1;
                t.progress
                    .rows_done
                    .fetch_add(a.rows + b.rows, Ordering::Relaxed);
                t.progress
                    .chunks_done
                    .fetch_add(chunks as u64, Ordering::Relaxed);
                t.worked(started);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(table = %t.job.target.name, unit = ui, error = %e, "in-place digest failed; reading the rows instead");
            }
        }
    }
    settled
}

/// Takes the source digests `decant run` recorded for units planned alike (see `inrun`):
/// those units' sources are not read again. Returns, per table and unit, whether it got one.
fn take_recorded(ctx: &Ctx<'_>, tables: &mut [TableState]) -> Vec<Vec<bool>> {
    let mut from_run: Vec<Vec<bool>> = tables
        .iter()
        .map(|t| vec![false; t.digests.len()])
        .collect();
    let Some(recorded) = &ctx.recorded else {
        return from_run;
    };
    for (ti, t) in tables.iter_mut().enumerate() {
        let Some(check) = t.check.clone() else {
            continue;
        };
        let layout = Layout::of(&check);
        let table = t.job.target.name.to_string();
        for (ui, unit) in check.units.iter().enumerate() {
            let [chunk] = unit.source_chunks.as_slice() else {
                continue;
            };
            if let Some((b, left_out)) = recorded.take(&table, &layout, chunk, unit.bucketing) {
                t.filtered += left_out.filtered;
                t.rejected += left_out.rejected;
                t.progress.rows_done.fetch_add(b.rows(), Ordering::Relaxed);
                t.progress.chunks_done.fetch_add(1, Ordering::Relaxed);
                t.digests[ui].0 = b;
                from_run[ti][ui] = true;
                t.from_run_units += 1;
            }
        }
        // The rows the pushed filter kept from the run's reads are counted per table, not per
        // chunk: they belong to this report only when every unit is the run's.
        if t.from_run_units == check.units.len() && !check.units.is_empty() {
            t.filtered += recorded.filtered_at_source(&table);
        }
    }
    from_run
}

/// Per-bucket digests of both sides of a key-range unit, computed in the databases, or `None`
/// when the unit is not one chunk per side bucketed by an integer key, or a side cannot.
async fn bucket_digests(
    ctx: &Ctx<'_>,
    check: &TableCheck,
    ui: usize,
) -> Option<(Buckets, Buckets)> {
    let unit = &check.units[ui];
    let Bucketing::Range { lo, width, buckets } = unit.bucketing else {
        return None;
    };
    let ([source], [target]) = (unit.source_chunks.as_slice(), unit.target_chunks.as_slice())
    else {
        return None;
    };
    let (lo, width) = (i64::try_from(lo).ok()?, i64::try_from(width).ok()?);
    let side = |reader: Arc<dyn Source>,
                table: &TableName,
                chunk: &ChunkSpec,
                columns: &[ReadColumn]| {
        let ChunkRange::IntKey { column, .. } = &chunk.range else {
            return futures::future::Either::Left(async { None });
        };
        let by = KeyBuckets {
            column: column.clone(),
            lo,
            width,
            count: buckets,
        };
        let (table, range, columns) = (table.clone(), chunk.range.clone(), columns.to_vec());
        let distinct = check.distinct;
        futures::future::Either::Right(async move {
            match reader
                .digest_buckets_in_place(&table, &range, &columns, distinct, &by)
                .await
            {
                Ok(Some(d)) if d.len() == by.count.max(1) => Some(Buckets::from_in_place(&d)),
                Ok(_) => None,
                Err(e) => {
                    tracing::debug!(table = %table, error = %e, "in-place bucket digests failed; reading the rows instead");
                    None
                }
            }
        })
    };
    let (a, b) = tokio::join!(
        side(
            ctx.source.clone(),
            &check.source,
            source,
            &check.source_read
        ),
        side(
            ctx.target.clone(),
            &check.target,
            target,
            &check.target_read
        )
    );
    Some((a?, b?))
}

/// Reads every unit of every table on both sides, `parallelism` units at a time, and sums the
/// digests of each side. Units settled in the databases first are not read.
pub(super) async fn compare_digests(ctx: &Ctx<'_>, tables: &mut [TableState]) {
    let from_run = take_recorded(ctx, tables);
    let settled = settle_in_place(ctx, tables, &from_run).await;
    struct Task {
        table: usize,
        unit: usize,
        side: Side,
        chunk: ChunkSpec,
        bucketing: Bucketing,
    }
    let mut tasks = Vec::new();
    for (ti, t) in tables.iter().enumerate() {
        let Some(check) = &t.check else { continue };
        for (ui, unit) in check.units.iter().enumerate() {
            if settled[ti][ui] {
                continue;
            }
            // Source and target chunks alternate, so both sides of a unit are read together.
            let n = unit.source_chunks.len().max(unit.target_chunks.len());
            for i in 0..n {
                for (side, chunks) in [
                    (Side::Source, &unit.source_chunks),
                    (Side::Target, &unit.target_chunks),
                ] {
                    if side == Side::Source && from_run[ti][ui] {
                        continue;
                    }
                    if let Some(chunk) = chunks.get(i) {
                        tasks.push(Task {
                            table: ti,
                            unit: ui,
                            side,
                            chunk: chunk.clone(),
                            bucketing: unit.bucketing,
                        });
                    }
                }
            }
        }
    }
    let failed: Vec<std::sync::atomic::AtomicBool> =
        tables.iter().map(|_| Default::default()).collect();
    let prepared: Vec<(Task, Option<Arc<TableCheck>>, Arc<TableProgress>)> = tasks
        .into_iter()
        .map(|t| {
            let (check, progress) = (
                tables[t.table].check.clone(),
                tables[t.table].progress.clone(),
            );
            (t, check, progress)
        })
        .collect();
    let failed = &failed;
    let mut results = futures::stream::iter(prepared)
        .map(|(task, check, progress)| async move {
            let check = check?;
            if failed[task.table].load(Ordering::Relaxed) {
                return None;
            }
            let started = Instant::now();
            let by = task.bucketing;
            let transform = check.transform.as_ref().map(|t| t.digests.clone());
            let result = ctx
                .scan(
                    task.side,
                    &check,
                    &task.chunk,
                    by,
                    || Sink::Digest(Buckets::new(by.len())),
                    Some(progress.clone()),
                    transform,
                )
                .await;
            progress.chunks_done.fetch_add(1, Ordering::Relaxed);
            let result = result.map_err(|e| {
                failed[task.table].store(true, Ordering::Relaxed);
                side_error(task.side, &check, &task.chunk, &e)
            });
            Some((task.table, task.unit, task.side, result, started))
        })
        .buffer_unordered(ctx.parallelism * 2);
    while let Some(done) = results.next().await {
        let Some((ti, ui, side, result, started)) = done else {
            continue;
        };
        let t = &mut tables[ti];
        t.worked(started);
        match result {
            Ok(Scanned {
                sink: Sink::Digest(b),
                filtered,
                rejected,
            }) => match side {
                Side::Source => {
                    t.digests[ui].0.merge(&b);
                    t.filtered += filtered;
                    t.rejected += rejected;
                }
                Side::Target => t.digests[ui].1.merge(&b),
            },
            Ok(Scanned {
                sink: Sink::Collect(..),
                ..
            }) => {}
            Err(e) => {
                t.error.get_or_insert(e);
            }
        }
    }
    drop(results);
    for t in tables
        .iter_mut()
        .filter(|t| t.check.is_some() && t.error.is_none())
    {
        let rows = t
            .digests
            .iter()
            .fold((0, 0), |(s, g), (a, b)| (s + a.rows(), g + b.rows()));
        t.counts = Some(rows);
        t.chunks_differing = t.digests.iter().filter(|(a, b)| a != b).count();
    }
}

/// Re-reads the differing buckets of every differing unit and diffs their rows.
pub(super) async fn narrow(
    ctx: &Ctx<'_>,
    opts: &ValidateOptions,
    tolerance: f64,
    tables: &mut [TableState],
) {
    let per_side = (opts.max_rows_in_memory / (2 * ctx.parallelism)).max(1000) as u64;
    let mut tasks = Vec::new();
    for (ti, t) in tables.iter().enumerate() {
        let (Some(check), None) = (&t.check, &t.error) else {
            continue;
        };
        for (ui, (src, tgt)) in t.digests.iter().enumerate() {
            let differing = src.differing(tgt);
            if differing.is_empty() {
                continue;
            }
            let unit = &check.units[ui];
            let reads: Vec<Reads> = match unit.bucketing {
                Bucketing::Range { .. } => {
                    diff::plan_runs(unit.bucketing.len(), &differing, per_side, MAX_GAP)
                        .into_iter()
                        .filter_map(|(first, last, filter)| {
                            let (source, target) = unit.sub_chunks(first, last)?;
                            Some(Reads {
                                source: vec![source],
                                target: vec![target],
                                filter,
                            })
                        })
                        .collect()
                }
                Bucketing::Hash { .. } => {
                    diff::plan_filters(unit.bucketing.len(), &differing, per_side)
                        .into_iter()
                        .map(|filter| Reads {
                            source: unit.source_chunks.clone(),
                            target: unit.target_chunks.clone(),
                            filter,
                        })
                        .collect()
                }
            };
            tasks.push((ti, check.clone(), unit.bucketing, reads));
        }
    }
    let found: Vec<AtomicUsize> = tables.iter().map(|_| AtomicUsize::new(0)).collect();
    let found = &found;
    let cap = opts.max_differences.max(1);
    let mut results = futures::stream::iter(tasks)
        .map(|(ti, check, by, reads)| async move {
            let started = Instant::now();
            let r = narrow_unit(ctx, &check, by, reads, tolerance, &found[ti], cap).await;
            (ti, r, started)
        })
        .buffer_unordered(ctx.parallelism);
    while let Some((ti, result, started)) = results.next().await {
        let t = &mut tables[ti];
        t.worked(started);
        match result {
            Ok(n) => {
                t.differences.extend(n.differences);
                t.tolerated += n.tolerated;
                t.truncated |= n.truncated;
            }
            Err(e) => {
                t.error.get_or_insert(e);
            }
        }
    }
}

struct Narrowed {
    differences: Vec<Difference>,
    tolerated: u64,
    truncated: bool,
}

/// Differing buckets merged into one re-read when fewer than this many equal buckets lie
/// between them: one query for neighbours, a query each for rows far apart.
const MAX_GAP: usize = 8;

/// One re-read of a differing unit: chunks on each side, and the rows to keep.
struct Reads {
    source: Vec<ChunkSpec>,
    target: Vec<ChunkSpec>,
    filter: Filter,
}

async fn narrow_unit(
    ctx: &Ctx<'_>,
    check: &Arc<TableCheck>,
    bucketing: Bucketing,
    reads: Vec<Reads>,
    tolerance: f64,
    found: &AtomicUsize,
    cap: usize,
) -> Result<Narrowed, String> {
    let mut out = Narrowed {
        differences: vec![],
        tolerated: 0,
        truncated: false,
    };
    for read in reads {
        if found.load(Ordering::Relaxed) >= cap {
            out.truncated = true;
            break;
        }
        let collect = |side: Side, chunks: Vec<ChunkSpec>| {
            let filter = read.filter.clone();
            async move {
                // One compilation per re-read: its `unique` rules see the re-read's rows only.
                let transform = match (&check.transform, side) {
                    (Some(t), Side::Source) => Some(t.fresh(&check.source_schema)?),
                    _ => None,
                };
                let mut rows = Vec::new();
                for chunk in &chunks {
                    let scanned = ctx
                        .scan(
                            side,
                            check,
                            chunk,
                            bucketing,
                            || Sink::Collect(filter.clone(), Vec::new()),
                            None,
                            transform.clone(),
                        )
                        .await
                        .map_err(|e| side_error(side, check, chunk, &e))?;
                    if let Sink::Collect(_, kept) = scanned.sink {
                        rows.extend(kept);
                    }
                }
                Ok::<_, String>(rows)
            }
        };
        let (src, tgt) = tokio::try_join!(
            collect(Side::Source, read.source.clone()),
            collect(Side::Target, read.target.clone())
        )?;
        let (diffs, tolerated) = match check.method {
            Method::Multiset => (diff::diff_multiset(src, tgt), 0),
            Method::KeyRanges | Method::KeyHash => diff::diff_keyed(check, src, tgt, tolerance),
        };
        found.fetch_add(diffs.len(), Ordering::Relaxed);
        out.differences.extend(diffs);
        out.tolerated += tolerated;
    }
    Ok(out)
}
