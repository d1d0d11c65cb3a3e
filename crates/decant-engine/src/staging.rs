//! Staged phases: `extract` writes each chunk's raw batches to Parquet, `transform` reads them,
//! applies the plan's policies, transforms, rules and masks and writes the result, `load` reads
//! the staged chunks into the target with the run's exactly-once markers.
//!
//! Layout (docs/service.md): `<root>/<job>/<table>/<stage>/chunk-000012.parquet`, where
//! `<stage>` is `extract` or `transform` and `000012` the chunk's position in the job's plan.
//! An extracted chunk's reader rejects (malformed file records) sit beside it in
//! `chunk-000012.rejects.json`, written before the Parquet file is renamed into place. A file
//! that exists is a committed chunk: a phase resumes by skipping them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use decant_connectors::ChunkMarker;
use decant_core::{ChunkSpec, Reject};
use decant_store::Store;
use serde::{Deserialize, Serialize};

use crate::error::EngineError;

/// One phase of a staged job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Source → raw Parquet.
    Extract,
    /// Raw Parquet → policies, transforms, rules, masks → transformed Parquet and quarantine.
    Transform,
    /// Staged Parquet → target, exactly once.
    Load,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Extract => "extract",
            Phase::Transform => "transform",
            Phase::Load => "load",
        }
    }

    pub fn parse(s: &str) -> Option<Phase> {
        match s.trim() {
            "extract" => Some(Phase::Extract),
            "transform" => Some(Phase::Transform),
            "load" => Some(Phase::Load),
            _ => None,
        }
    }
}

/// A folder of staged chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Extract,
    Transform,
}

impl Stage {
    pub fn dir(self) -> &'static str {
        match self {
            Stage::Extract => "extract",
            Stage::Transform => "transform",
        }
    }
}

/// Where one job's phases stage their chunks.
#[derive(Debug, Clone)]
pub struct Staging {
    dir: PathBuf,
}

/// A table name as a folder name: `public.items` stays, anything a path could misread becomes
/// `_` (a table named `../x` must not escape the staging root).
pub fn table_dir_name(table: &str) -> String {
    let name: String = table
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.chars().all(|c| c == '.') {
        name.replace('.', "_")
    } else {
        name
    }
}

impl Staging {
    pub fn new(root: &Path, job_id: &str) -> Staging {
        Staging {
            dir: root.join(table_dir_name(job_id)),
        }
    }

    pub fn job_dir(&self) -> &Path {
        &self.dir
    }

    pub fn stage_dir(&self, table: &str, stage: Stage) -> PathBuf {
        self.dir.join(table_dir_name(table)).join(stage.dir())
    }

    pub fn chunk_file(&self, table: &str, stage: Stage, order: usize) -> PathBuf {
        self.stage_dir(table, stage)
            .join(format!("chunk-{order:06}.parquet"))
    }

    pub fn rejects_file(&self, table: &str, order: usize) -> PathBuf {
        self.stage_dir(table, Stage::Extract)
            .join(format!("chunk-{order:06}.rejects.json"))
    }

    /// The reader rejects an extracted chunk recorded (none when it had none).
    pub fn read_rejects(&self, table: &str, order: usize) -> Result<Vec<Reject>, EngineError> {
        let path = self.rejects_file(table, order);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
            Err(e) => Err(EngineError::Staging(format!("{}: {e}", path.display()))),
        }
    }

    /// Records an extracted chunk's reader rejects (replacing an earlier attempt's); a chunk
    /// without rejects has no file.
    pub fn write_rejects(
        &self,
        table: &str,
        order: usize,
        rejects: &[Reject],
    ) -> Result<(), EngineError> {
        let path = self.rejects_file(table, order);
        let fail = |e: std::io::Error| EngineError::Staging(format!("{}: {e}", path.display()));
        if rejects.is_empty() {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(fail(e)),
                _ => Ok(()),
            };
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let tmp = decant_connectors::staged::temp_path(&path);
        std::fs::write(&tmp, serde_json::to_vec(rejects)?).map_err(fail)?;
        std::fs::rename(&tmp, &path).map_err(fail)
    }

    /// The committed chunks of `stage`, with their rows (from the Parquet footers), as markers.
    pub async fn done(
        &self,
        stage: Stage,
        chunks: &HashMap<String, Vec<ChunkSpec>>,
    ) -> Result<Vec<ChunkMarker>, EngineError> {
        let staging = self.clone();
        let chunks = chunks.clone();
        tokio::task::spawn_blocking(move || {
            let mut markers = Vec::new();
            for (table, specs) in &chunks {
                for (order, spec) in specs.iter().enumerate() {
                    let path = staging.chunk_file(table, stage, order);
                    if path.exists() {
                        markers.push(ChunkMarker {
                            table: table.clone(),
                            chunk_id: spec.id.clone(),
                            rows: decant_connectors::staged::staged_rows(&path)?,
                        });
                    }
                }
            }
            Ok::<_, EngineError>(markers)
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?
    }

    /// Per table, the records extracted: rows staged plus the reader's rejects, which is what
    /// the source held when it was read (the load's proof counts against it).
    pub async fn extracted_records(
        &self,
        chunks: &HashMap<String, Vec<ChunkSpec>>,
    ) -> Result<HashMap<String, u64>, EngineError> {
        let mut per_table: HashMap<String, u64> = HashMap::new();
        for m in self.done(Stage::Extract, chunks).await? {
            *per_table.entry(m.table).or_default() += m.rows;
        }
        for (table, specs) in chunks {
            for order in 0..specs.len() {
                let rejects = self.read_rejects(table, order)?.len() as u64;
                *per_table.entry(table.clone()).or_default() += rejects;
            }
        }
        Ok(per_table)
    }

    /// Per table, the chunks of `stage` not staged yet: `public.items: 3 of 10 chunks missing`.
    pub fn missing(&self, stage: Stage, tables: &[(String, usize)]) -> Vec<String> {
        tables
            .iter()
            .filter_map(|(table, count)| {
                let missing = (0..*count)
                    .filter(|&i| !self.chunk_file(table, stage, i).exists())
                    .count();
                (missing > 0).then(|| format!("{table}: {missing} of {count} chunks missing"))
            })
            .collect()
    }

    /// Records the phase that runs, so that a restarted service resumes it; `None` for a
    /// one-shot run.
    pub fn record_phase(&self, phase: Option<Phase>) -> Result<(), EngineError> {
        let path = self.dir.join("phase");
        let fail = |e: std::io::Error| EngineError::Staging(format!("{}: {e}", path.display()));
        match phase {
            Some(p) => {
                std::fs::create_dir_all(&self.dir).map_err(fail)?;
                std::fs::write(&path, p.as_str()).map_err(fail)
            }
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(fail(e)),
                _ => Ok(()),
            },
        }
    }

    /// The phase last started for this job, if it was a staged one.
    pub fn recorded_phase(&self) -> Option<Phase> {
        std::fs::read_to_string(self.dir.join("phase"))
            .ok()
            .and_then(|s| Phase::parse(&s))
    }
}

/// The stage `phase` reads (none: the source), once every chunk of it is staged; a
/// [`EngineError::NotReady`] saying which phase to run first otherwise. `load` reads the
/// transformed chunks when the plan has transforms or the transform phase ran to its end, else
/// the extracted ones.
pub async fn check_ready(
    store: &Store,
    root: &Path,
    job_id: &str,
    phase: Phase,
) -> Result<Option<Stage>, EngineError> {
    if phase == Phase::Extract {
        return Ok(None);
    }
    let staging = Staging::new(root, job_id);
    let mut tables: Vec<(String, usize)> = Vec::new();
    for c in store.chunks(job_id).await? {
        match tables.last_mut() {
            Some((t, n)) if *t == c.table_name => *n += 1,
            _ => tables.push((c.table_name, 1)),
        }
    }
    let mut transforms = false;
    for m in store.mappings(job_id).await? {
        let t: crate::planner::TableJob = serde_json::from_str(&m.mapping_json)?;
        transforms |= t.transform.is_some();
    }
    let extract_missing = staging.missing(Stage::Extract, &tables);
    if !extract_missing.is_empty() {
        return Err(EngineError::NotReady(format!(
            "job {job_id} is not extracted yet ({}); POST /migration/extract (or `decant run --phase extract`) first",
            extract_missing.join(", ")
        )));
    }
    if phase == Phase::Transform {
        return Ok(Some(Stage::Extract));
    }
    let transform_missing = staging.missing(Stage::Transform, &tables);
    if transform_missing.is_empty() {
        return Ok(Some(Stage::Transform));
    }
    if transforms {
        return Err(EngineError::NotReady(format!(
            "job {job_id} has transforms and is not transformed yet ({}); POST /migration/transform (or `decant run --phase transform`) first",
            transform_missing.join(", ")
        )));
    }
    Ok(Some(Stage::Extract))
}

/// How one phase moves a chunk: what it reads, which steps it applies, where it writes.
#[derive(Debug, Clone)]
pub struct ChunkFlow {
    pub phase: Option<Phase>,
    /// The stage read; `None` reads the source.
    pub input: Option<Stage>,
    pub staging: Option<Staging>,
}

impl ChunkFlow {
    /// A one-shot run: source → every step → target.
    pub fn direct() -> ChunkFlow {
        ChunkFlow {
            phase: None,
            input: None,
            staging: None,
        }
    }

    /// The stage written; `None` writes the target.
    pub fn output(&self) -> Option<Stage> {
        match self.phase {
            Some(Phase::Extract) => Some(Stage::Extract),
            Some(Phase::Transform) => Some(Stage::Transform),
            _ => None,
        }
    }

    pub fn writes_target(&self) -> bool {
        self.output().is_none()
    }

    /// Policies, transforms, rules and masks run here (and this phase owns the chunk's
    /// quarantine): in a run, in transform, and in a load of extracted chunks.
    pub fn applies_steps(&self) -> bool {
        match self.phase {
            None | Some(Phase::Transform) => true,
            Some(Phase::Extract) => false,
            Some(Phase::Load) => self.input == Some(Stage::Extract),
        }
    }

    /// Batches become the target's types only on the way into the target.
    pub fn converts(&self) -> bool {
        self.writes_target()
    }

    /// The chunk state `progress_tracking` records when this phase has committed a chunk.
    pub fn done_state(&self) -> &'static str {
        match self.phase {
            Some(Phase::Extract) => "extracted",
            Some(Phase::Transform) => "transformed",
            _ => "done",
        }
    }

    /// The step the status shows while chunks move.
    pub fn moving_step(&self) -> &'static str {
        match self.phase {
            Some(Phase::Extract) => "extracting",
            Some(Phase::Transform) => "transforming",
            _ => "loading",
        }
    }

    pub(crate) fn staging(&self) -> Result<&Staging, EngineError> {
        self.staging
            .as_ref()
            .ok_or_else(|| EngineError::Internal("a staged phase without a staging dir".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_stay_inside_the_staging_root() {
        assert_eq!(table_dir_name("public.items"), "public.items");
        assert_eq!(table_dir_name("../etc/passwd"), ".._etc_passwd");
        assert_eq!(table_dir_name(".."), "__");
        assert_eq!(table_dir_name("a b/c"), "a_b_c");
        let s = Staging::new(Path::new("/s"), "job-1");
        assert_eq!(
            s.chunk_file("public.items", Stage::Extract, 12),
            Path::new("/s/job-1/public.items/extract/chunk-000012.parquet")
        );
    }

    #[test]
    fn each_phase_reads_applies_and_writes_its_part() {
        let flow = |phase, input| ChunkFlow {
            phase: Some(phase),
            input,
            staging: None,
        };
        let extract = flow(Phase::Extract, None);
        assert!(!extract.applies_steps() && !extract.writes_target());
        let transform = flow(Phase::Transform, Some(Stage::Extract));
        assert!(transform.applies_steps() && !transform.converts());
        assert!(!flow(Phase::Load, Some(Stage::Transform)).applies_steps());
        assert!(flow(Phase::Load, Some(Stage::Extract)).applies_steps());
        assert!(ChunkFlow::direct().applies_steps() && ChunkFlow::direct().writes_target());
    }

    #[test]
    fn rejects_round_trip_and_an_empty_set_removes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = Staging::new(dir.path(), "j");
        let r = Reject {
            location: "a.csv:3".into(),
            rule: "malformed_record".into(),
            reason: "unbalanced quote".into(),
            record: "1,\"x".into(),
        };
        s.write_rejects("t", 0, std::slice::from_ref(&r)).unwrap();
        assert_eq!(s.read_rejects("t", 0).unwrap(), vec![r]);
        s.write_rejects("t", 0, &[]).unwrap();
        assert!(s.read_rejects("t", 0).unwrap().is_empty());
        assert!(!s.rejects_file("t", 0).exists());
        s.record_phase(Some(Phase::Transform)).unwrap();
        assert_eq!(s.recorded_phase(), Some(Phase::Transform));
        s.record_phase(None).unwrap();
        assert_eq!(s.recorded_phase(), None);
    }
}
