//! Build records: one summary per build in the store, for `kiln builds`
//! (after `docker buildx history`).
//!
//! A build collects its steps' [`StepReport`](crate::StepReport)s in a
//! [`StepLog`] (a [`ProgressSink`](crate::ProgressSink) in front of the
//! progress display) and, when it ends (completed, failed or cancelled),
//! turns them into a [`BuildRecord`] that [`BuildRecords::write`] puts in
//! the store's `builds/<id>.json` ([`kiln_oci::StoreLayout::builds`]).
//!
//! # The files
//!
//! One JSON file per build, named by its id (a lowercase ULID, so ids
//! sort by time), written whole or not at all (a `.tmp-<tag>-…` file
//! beside it, renamed; not synced: a crash may lose the newest), mode
//! 0600 in a 0700 directory: step names are Dockerfile lines. A record
//! holds the names of `--build-arg`s and the ids of `--secret`s, never
//! a value of either. Its size is bounded: at most [`MAX_STEPS`] steps
//! (the rest counted in `steps_omitted`), texts cut at [`MAX_TEXT`]
//! bytes; a file over [`MAX_FILE`] is not read. At most [`MAX_RECORDS`]
//! records are kept: writing one removes the oldest beyond that. `kiln
//! prune` removes them with the build cache ([`crate::gc`]: kind build
//! cache, "build record").
//!
//! [`chrome_trace`] turns a record into the Chrome trace event format
//! (Perfetto, `chrome://tracing`).

mod log;
mod trace;

pub use log::StepLog;
pub use trace::chrome_trace;

use crate::graph::VertexState;
use kiln_oci::{Digest, LocalStore, StoreLayout};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How many records the store keeps: writing one removes the oldest
/// beyond this.
pub const MAX_RECORDS: usize = 100;

/// How many steps a record holds; further steps are only counted.
pub const MAX_STEPS: usize = 2000;

/// The longest text (an error, a miss reason, a name) a record holds, in
/// bytes; longer ones are cut with `…`.
pub const MAX_TEXT: usize = 4096;

/// The largest record file read; bigger ones are skipped as unreadable.
pub const MAX_FILE: u64 = 16 * 1024 * 1024;

/// The record format's version (the `version` field).
pub const RECORD_VERSION: u32 = 1;

/// What can go wrong with build records. Every variant names the path or
/// the reference.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// A file-system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A record could not be encoded.
    #[error("encoding build record {id}: {source}")]
    Encode {
        /// The record's id.
        id: String,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// No record matches the reference.
    #[error("no build record {0:?} (see kiln builds)")]
    NotFound(String),
    /// Several records start with the prefix.
    #[error("build record {reference:?} is ambiguous: {}", ids.join(", "))]
    Ambiguous {
        /// The prefix given.
        reference: String,
        /// The ids it matches.
        ids: Vec<String>,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> RecordError {
    let path = path.to_path_buf();
    move |source| RecordError::Io {
        action,
        path,
        source,
    }
}

/// How a build ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildStatus {
    /// It succeeded.
    Completed,
    /// It failed (the record's `error` says why).
    Failed,
    /// It was interrupted (Ctrl-C, SIGTERM).
    Cancelled,
}

impl BuildStatus {
    /// The word `kiln builds` shows (buildx's, but for `Cancelled`).
    pub fn label(self) -> &'static str {
        match self {
            BuildStatus::Completed => "Completed",
            BuildStatus::Failed => "Error",
            BuildStatus::Cancelled => "Cancelled",
        }
    }
}

/// How a step ended, in a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepState {
    /// Found in the cache.
    Cached,
    /// Run (or, for a source, fetched or unpacked).
    Built,
    /// Failed (its `error` says why).
    Failed,
    /// Stopped by a cancellation or another step's failure.
    Cancelled,
}

/// What the build was asked for: filled in by the caller (the cli), from
/// its flags. Values of build args and secrets never go here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    /// The name `kiln builds` lists (a bake target, the first tag, or the
    /// context's directory name).
    pub name: String,
    /// The context as given (a directory, `-`, a URL).
    pub context: String,
    /// The Dockerfile as given (`Dockerfile` when none was).
    pub dockerfile: String,
    /// `--target`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `--platform` values.
    #[serde(default)]
    pub platforms: Vec<String>,
    /// `-t` names.
    #[serde(default)]
    pub tags: Vec<String>,
    /// `--output` values (and `--push`, `--load` as `type=` outputs).
    #[serde(default)]
    pub outputs: Vec<String>,
    /// The names of `--build-arg`s (never their values).
    #[serde(default)]
    pub build_args: Vec<String>,
    /// The ids of `--secret`s (never their sources or values).
    #[serde(default)]
    pub secrets: Vec<String>,
}

/// One step of a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The name progress showed.
    pub name: String,
    /// The vertex digest (absent for a failure reported before the step
    /// began).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// When it began, in milliseconds after the build began (monotonic).
    pub start_ms: f64,
    /// When it ended, in milliseconds after the build began (monotonic).
    pub end_ms: f64,
    /// When it began, on the wall clock (RFC 3339, UTC).
    pub started_at: String,
    /// How it ended.
    pub state: StepState,
    /// Why the cache was not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Bytes of the layer it made or found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl StepRecord {
    /// How long it took, in milliseconds.
    pub fn duration_ms(&self) -> f64 {
        (self.end_ms - self.start_ms).max(0.0)
    }
}

/// The summary of one build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildRecord {
    /// [`RECORD_VERSION`] when written.
    pub version: u32,
    /// Its id: a lowercase ULID (26 characters, sorting by time).
    pub id: String,
    /// What was asked for.
    #[serde(flatten)]
    pub info: BuildInfo,
    /// When it began (RFC 3339, UTC).
    pub started_at: String,
    /// When it began, in milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
    /// How it ended.
    pub status: BuildStatus,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its steps, by start.
    pub steps: Vec<StepRecord>,
    /// Steps beyond [`MAX_STEPS`], not recorded.
    #[serde(default)]
    pub steps_omitted: usize,
}

impl BuildRecord {
    /// When it began.
    pub fn started(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.started_unix_ms)
    }

    /// How many of its steps were cached.
    pub fn cached_steps(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| s.state == StepState::Cached)
            .count()
    }
}

/// A new record id: a ULID (time, then random), lowercase.
pub fn new_id(at: SystemTime) -> String {
    let ms = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    ulid::Ulid::from_parts(ms, fastrand::u128(..))
        .to_string()
        .to_ascii_lowercase()
}

/// Whether `id` is a record id (26 characters of Crockford's base32,
/// lowercase): the only names [`BuildRecords`] turns into paths.
pub fn is_id(id: &str) -> bool {
    id.len() == 26
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b.is_ascii_lowercase() && !b"ilou".contains(&b)))
}

/// `text` cut to [`MAX_TEXT`] bytes (at a character boundary) with `…`.
pub(crate) fn bounded(text: &str) -> String {
    if text.len() <= MAX_TEXT {
        return text.to_string();
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The build records of a store (`builds/`).
#[derive(Debug, Clone)]
pub struct BuildRecords {
    dir: PathBuf,
}

impl BuildRecords {
    /// The records of the store laid out as `layout` (nothing is read or
    /// created).
    pub fn new(layout: &StoreLayout) -> BuildRecords {
        BuildRecords {
            dir: layout.builds(),
        }
    }

    /// The directory they live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where record `id` lives (`builds/<id>.json`); `None` for a string
    /// that is not an id.
    pub fn path(&self, id: &str) -> Option<PathBuf> {
        is_id(id).then(|| self.dir.join(format!("{id}.json")))
    }

    /// Writes `record` (whole or not at all, mode 0600), then removes the
    /// oldest records beyond [`MAX_RECORDS`].
    ///
    /// # Errors
    /// An I/O error naming the path, or a record whose id is not an id.
    pub fn write(&self, record: &BuildRecord) -> Result<PathBuf, RecordError> {
        let path = self
            .path(&record.id)
            .ok_or_else(|| RecordError::NotFound(record.id.clone()))?;
        match fs::DirBuilder::new().mode(0o700).create(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("creating directory", &self.dir)(e)),
        }
        let bytes = serde_json::to_vec_pretty(record).map_err(|source| RecordError::Encode {
            id: record.id.clone(),
            source,
        })?;
        // `.tmp-<tag>-`: a sweep knows whether its maker still runs.
        let tmp = self.dir.join(format!(
            "{}{}.json",
            StoreLayout::staging_prefix(),
            record.id
        ));
        let written = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            // No fsync: a record is not worth one (it cost a cached
            // rebuild 15%); after a crash the last record may be lost or
            // empty, and an unreadable record is skipped.
            .and_then(|mut f| f.write_all(&bytes))
            .and_then(|()| fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io_err("writing build record", &path)(e));
        }
        self.keep_newest(MAX_RECORDS)?;
        Ok(path)
    }

    /// The ids of the records, newest first (ids sort by time).
    fn ids(&self) -> Result<Vec<String>, RecordError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("listing", &self.dir)(e)),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("listing", &self.dir))?;
            let name = entry.file_name();
            if let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) {
                if is_id(id) {
                    ids.push(id.to_string());
                }
            }
        }
        ids.sort_unstable_by(|a, b| b.cmp(a));
        Ok(ids)
    }

    /// Removes the records beyond the `keep` newest.
    fn keep_newest(&self, keep: usize) -> Result<(), RecordError> {
        for id in self.ids()?.into_iter().skip(keep) {
            self.remove(&id)?;
        }
        Ok(())
    }

    /// Reads record `id`; `None` when it is gone, too big or unreadable.
    fn read(&self, id: &str) -> Option<BuildRecord> {
        let path = self.path(id)?;
        let file = fs::File::open(&path).ok()?;
        let mut bytes = Vec::new();
        file.take(MAX_FILE + 1).read_to_end(&mut bytes).ok()?;
        if bytes.len() as u64 > MAX_FILE {
            return None;
        }
        serde_json::from_slice(&bytes).ok()
    }

    /// Every readable record, newest first (by start, then id).
    ///
    /// # Errors
    /// The directory cannot be listed.
    pub fn list(&self) -> Result<Vec<BuildRecord>, RecordError> {
        let mut records: Vec<BuildRecord> =
            self.ids()?.iter().filter_map(|id| self.read(id)).collect();
        records.sort_by(|a, b| (b.started_unix_ms, &b.id).cmp(&(a.started_unix_ms, &a.id)));
        Ok(records)
    }

    /// The record `reference` names: an id, a unique prefix of one,
    /// `latest` (the newest) or `^N` (the Nth before the newest, as
    /// buildx's history reads it: `^0` is the newest).
    ///
    /// # Errors
    /// [`RecordError::NotFound`], [`RecordError::Ambiguous`], or the
    /// directory cannot be listed.
    pub fn find(&self, reference: &str) -> Result<BuildRecord, RecordError> {
        let not_found = || RecordError::NotFound(reference.to_string());
        let records = self.list()?;
        let offset = if reference == "latest" {
            Some(0)
        } else {
            reference
                .strip_prefix('^')
                .and_then(|n| n.parse::<usize>().ok())
        };
        if let Some(n) = offset {
            return records.into_iter().nth(n).ok_or_else(not_found);
        }
        let prefix = reference.to_ascii_lowercase();
        if prefix.is_empty() {
            return Err(not_found());
        }
        let mut matching: Vec<BuildRecord> = records
            .into_iter()
            .filter(|r| r.id.starts_with(&prefix))
            .collect();
        match matching.len() {
            0 => Err(not_found()),
            1 => Ok(matching.remove(0)),
            _ => Err(RecordError::Ambiguous {
                reference: reference.to_string(),
                ids: matching.into_iter().map(|r| r.id).collect(),
            }),
        }
    }

    /// Removes record `id`; a record already gone is not an error.
    ///
    /// # Errors
    /// An id that is not one, or the I/O error of removing it.
    pub fn remove(&self, id: &str) -> Result<(), RecordError> {
        let path = self
            .path(id)
            .ok_or_else(|| RecordError::NotFound(id.to_string()))?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("removing", &path)(e)),
        }
    }
}

/// What the newest build in the store did with each vertex, by vertex
/// digest: cached, built or failed (cancelled steps, and steps that are
/// no vertex, are left out). Empty when there is no readable record. For
/// `--print dag`'s colours ([`crate::Graph::to_dot`]).
pub fn last_build_states(store: &LocalStore) -> HashMap<Digest, VertexState> {
    let records = BuildRecords::new(store.layout());
    let Ok(newest) = records.find("latest") else {
        return HashMap::new();
    };
    newest
        .steps
        .iter()
        .filter_map(|s| {
            let state = match s.state {
                StepState::Cached => VertexState::Cached,
                StepState::Built => VertexState::Built,
                StepState::Failed => VertexState::Failed,
                StepState::Cancelled => return None,
            };
            Some((s.digest.as_deref()?.parse().ok()?, state))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, started_unix_ms: u64) -> BuildRecord {
        BuildRecord {
            version: RECORD_VERSION,
            id: id.to_string(),
            info: BuildInfo {
                name: "app".into(),
                ..BuildInfo::default()
            },
            started_at: String::new(),
            started_unix_ms,
            duration_ms: 1.0,
            status: BuildStatus::Completed,
            error: None,
            steps: Vec::new(),
            steps_omitted: 0,
        }
    }

    #[test]
    fn ids_are_ulids_that_sort_by_time() {
        let a = new_id(UNIX_EPOCH + Duration::from_secs(1_000));
        let b = new_id(UNIX_EPOCH + Duration::from_secs(2_000));
        assert!(is_id(&a) && is_id(&b), "{a} {b}");
        assert!(a < b);
        for bad in ["", "../../etc/passwd", &a.to_uppercase(), &a[1..]] {
            assert!(!is_id(bad), "{bad}");
        }
    }

    #[test]
    fn records_are_found_by_prefix_latest_and_offset_and_capped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let records = BuildRecords::new(&StoreLayout::new(dir.path()));
        assert!(records.list().expect("list").is_empty());
        let ids: Vec<String> = (0..5u64)
            .map(|i| new_id(UNIX_EPOCH + Duration::from_secs(1_000 + i)))
            .collect();
        for (i, id) in ids.iter().enumerate() {
            records
                .write(&record(id, 1_000_000 + i as u64))
                .expect("write");
        }
        let path = records.path(&ids[0]).expect("path");
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(records.find("latest").expect("latest").id, ids[4]);
        assert_eq!(records.find("^0").expect("^0").id, ids[4]);
        assert_eq!(records.find("^2").expect("^2").id, ids[2]);
        assert!(matches!(records.find("^9"), Err(RecordError::NotFound(_))));
        assert_eq!(records.find(&ids[1]).expect("id").id, ids[1]);
        assert_eq!(records.find(&ids[1][..16]).expect("prefix").id, ids[1]);
        assert!(matches!(
            records.find(&ids[1][..2]),
            Err(RecordError::Ambiguous { .. })
        ));
        records.remove(&ids[4]).expect("rm");
        assert_eq!(records.find("latest").expect("latest").id, ids[3]);
        records.keep_newest(2).expect("keep");
        let left: Vec<String> = records
            .list()
            .expect("list")
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(left, [ids[3].clone(), ids[2].clone()]);
    }

    #[test]
    fn the_newest_record_gives_each_vertex_its_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path().join("store")).expect("store");
        assert!(last_build_states(&store).is_empty());
        let step = |digest: Option<&str>, state| StepRecord {
            name: "s".into(),
            digest: digest.map(str::to_string),
            start_ms: 0.0,
            end_ms: 0.0,
            started_at: String::new(),
            state,
            reason: None,
            bytes: None,
            error: None,
        };
        let records = BuildRecords::new(store.layout());
        let d = |c: &str| format!("sha256:{}", c.repeat(64));
        let mut old = record(&new_id(UNIX_EPOCH + Duration::from_secs(1)), 1_000);
        old.steps = vec![step(Some(&d("0")), StepState::Built)];
        records.write(&old).expect("write");
        let mut new = record(&new_id(UNIX_EPOCH + Duration::from_secs(2)), 2_000);
        new.steps = vec![
            step(Some(&d("a")), StepState::Cached),
            step(Some(&d("b")), StepState::Built),
            step(Some(&d("c")), StepState::Failed),
            step(Some(&d("d")), StepState::Cancelled),
            step(None, StepState::Failed),
            step(Some("not a digest"), StepState::Built),
        ];
        records.write(&new).expect("write");
        let states = last_build_states(&store);
        let digest = |c: &str| d(c).parse::<Digest>().expect("digest");
        let expected: HashMap<Digest, VertexState> = [
            (digest("a"), VertexState::Cached),
            (digest("b"), VertexState::Built),
            (digest("c"), VertexState::Failed),
        ]
        .into();
        assert_eq!(states, expected);
    }

    #[test]
    fn long_texts_are_cut_at_a_character() {
        let long = "é".repeat(MAX_TEXT);
        let cut = bounded(&long);
        assert!(cut.len() <= MAX_TEXT + '…'.len_utf8());
        assert!(cut.ends_with('…'));
        assert_eq!(bounded("short"), "short");
    }
}
