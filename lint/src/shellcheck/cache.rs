//! ShellCheck's verdicts remembered between runs: a script already
//! checked by the same `shellcheck` binary is not checked again.
//!
//! A verdict is keyed by the sha256 of the program's identity (its
//! canonical path, size, modification time and inode: an upgraded or
//! replaced binary is a new program), the arguments kiln passes, and the
//! script text. The verdicts live in one JSON file,
//! `<dir>/shellcheck-v1.json` (0600, in a 0700 directory), replaced
//! atomically after each run that learnt something; concurrent runs may
//! lose each other's new entries, which only costs time.
//!
//! The file is a speed-up and nothing more: one that cannot be read,
//! is larger than [`MAX_FILE_BYTES`] or does not parse is ignored (and
//! replaced); one that cannot be written is skipped. Each run keeps at
//! most [`MAX_ENTRIES`] verdicts, the ones it used first.

use super::Comment;
use crate::diagnostic::Severity;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The largest verdict file read.
pub const MAX_FILE_BYTES: u64 = 32 << 20;
/// The most verdicts kept.
pub const MAX_ENTRIES: usize = 200_000;
/// The file's name (the version names its format and key formula).
const FILE_NAME: &str = "shellcheck-v1.json";

/// Verdicts of one `shellcheck` program, loaded from and saved to a
/// directory.
#[derive(Debug)]
pub(super) struct VerdictCache {
    file: PathBuf,
    program: String,
    entries: HashMap<String, Option<Comment>>,
    learnt: bool,
}

impl VerdictCache {
    /// The verdicts in `dir` for `program` run with `args`; `None` when
    /// the program cannot be identified (it is not a readable file).
    pub(super) fn load(dir: &Path, program: &Path, args: &[&str]) -> Option<VerdictCache> {
        let path = std::fs::canonicalize(program).ok()?;
        let meta = std::fs::metadata(&path).ok()?;
        let program = format!(
            "{}\0{}\0{}.{}\0{}\0{}",
            path.display(),
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ino(),
            args.join("\0")
        );
        let file = dir.join(FILE_NAME);
        let entries = read_entries(&file).unwrap_or_default();
        Some(VerdictCache {
            file,
            program,
            entries,
            learnt: false,
        })
    }

    /// The key of `script`.
    fn key(&self, script: &str) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(self.program.as_bytes());
        h.update([0]);
        h.update(script.as_bytes());
        hex(&h.finalize())
    }

    /// The remembered verdict on `script` (`Some(None)`: checked, no
    /// comment).
    pub(super) fn get(&self, script: &str) -> Option<Option<Comment>> {
        self.entries.get(&self.key(script)).cloned()
    }

    /// Remembers the verdict on `script`.
    pub(super) fn put(&mut self, script: &str, verdict: Option<Comment>) {
        let key = self.key(script);
        self.entries.insert(key, verdict);
        self.learnt = true;
    }

    /// Keeps only the verdicts of `used` scripts (when there are more
    /// than [`MAX_ENTRIES`]) and writes the file if anything was learnt.
    pub(super) fn save(mut self, used: &[&str]) {
        if !self.learnt {
            return;
        }
        if self.entries.len() > MAX_ENTRIES {
            let keep: HashMap<String, Option<Comment>> = used
                .iter()
                .take(MAX_ENTRIES)
                .filter_map(|s| {
                    let key = self.key(s);
                    self.entries.get(&key).cloned().map(|v| (key, v))
                })
                .collect();
            self.entries = keep;
        }
        let _ = write_entries(&self.file, &self.entries);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "info",
        _ => "style",
    }
}

fn severity_of(name: &str) -> Option<Severity> {
    Some(match name {
        "error" => Severity::Error,
        "warning" => Severity::Warning,
        "info" => Severity::Info,
        "style" => Severity::Style,
        _ => return None,
    })
}

/// The entries of the file at `path`; `None` when it is missing, too
/// large or not what [`write_entries`] writes.
fn read_entries(path: &Path) -> Option<HashMap<String, Option<Comment>>> {
    let file = std::fs::File::open(path).ok()?;
    let mut text = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut text).ok()?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return None;
    }
    let value: Value = serde_json::from_slice(&text).ok()?;
    let mut out = HashMap::new();
    for (key, v) in value.get("verdicts")?.as_object()? {
        let verdict = if v.is_null() {
            None
        } else {
            Some(Comment {
                code: v.get("code")?.as_u64()?,
                severity: severity_of(v.get("level")?.as_str()?)?,
                message: v.get("message")?.as_str()?.to_string(),
            })
        };
        out.insert(key.clone(), verdict);
    }
    (out.len() <= MAX_ENTRIES).then_some(out)
}

/// Replaces the file at `path` with `entries` (a private temporary file
/// renamed over it).
fn write_entries(path: &Path, entries: &HashMap<String, Option<Comment>>) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("no directory"))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let verdicts: Map<String, Value> = entries
        .iter()
        .map(|(k, v)| {
            let v = match v {
                None => Value::Null,
                Some(c) => json!({
                    "code": c.code,
                    "level": severity_name(c.severity),
                    "message": c.message,
                }),
            };
            (k.clone(), v)
        })
        .collect();
    let text = serde_json::to_vec(&json!({ "verdicts": verdicts }))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".shellcheck-")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)?;
    tmp.write_all(&text)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comment() -> Comment {
        Comment {
            code: 2086,
            severity: Severity::Info,
            message: "Double quote to prevent globbing and word splitting.".into(),
        }
    }

    #[test]
    fn verdicts_survive_a_reload_and_are_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let program = dir.path().join("shellcheck");
        std::fs::write(&program, "v1").expect("program");
        let cache_dir = dir.path().join("cache");
        let mut cache = VerdictCache::load(&cache_dir, &program, &["-f"]).expect("load");
        assert_eq!(cache.get("echo $a"), None);
        cache.put("echo $a", Some(comment()));
        cache.put("true", None);
        cache.save(&["echo $a", "true"]);
        let file = cache_dir.join(FILE_NAME);
        assert_eq!(
            std::fs::metadata(&file).expect("file").mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(&cache_dir).expect("dir").mode() & 0o777,
            0o700
        );
        let again = VerdictCache::load(&cache_dir, &program, &["-f"]).expect("load");
        assert_eq!(again.get("echo $a"), Some(Some(comment())));
        assert_eq!(again.get("true"), Some(None));
        // Other arguments, or another binary, are another program.
        let other = VerdictCache::load(&cache_dir, &program, &["-S"]).expect("load");
        assert_eq!(other.get("true"), None);
        std::fs::write(&program, "v2 is longer").expect("upgrade");
        let upgraded = VerdictCache::load(&cache_dir, &program, &["-f"]).expect("load");
        assert_eq!(upgraded.get("true"), None);
    }

    #[test]
    fn a_damaged_or_huge_file_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let program = dir.path().join("shellcheck");
        std::fs::write(&program, "v1").expect("program");
        let file = dir.path().join(FILE_NAME);
        for text in [
            "not json".to_string(),
            r#"{"verdicts": {"k": {"code": "x"}}}"#.to_string(),
            r#"{"verdicts": {"k": {"code": 1, "level": "loud", "message": ""}}}"#.to_string(),
        ] {
            std::fs::write(&file, text).expect("write");
            let cache = VerdictCache::load(dir.path(), &program, &[]).expect("load");
            assert!(cache.entries.is_empty());
        }
        let huge = std::fs::File::create(&file).expect("create");
        huge.set_len(MAX_FILE_BYTES + 1).expect("grow");
        assert!(read_entries(&file).is_none());
        assert!(VerdictCache::load(dir.path(), &dir.path().join("missing"), &[]).is_none());
    }
}
