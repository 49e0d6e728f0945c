//! Conformance cases: `case.json`, whether a case needs RUN, and the
//! normalised copy of its files that a build uses (FORMAT.md, "case.json").

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The contents of `case.json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Free text; shown with failures.
    pub description: String,
    /// Dockerfile path relative to `context/` (default `Dockerfile`).
    pub dockerfile: Option<String>,
    /// Base images the case needs (informative: the harness serves every
    /// base).
    #[serde(default)]
    #[allow(dead_code)]
    pub images: Vec<String>,
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    /// Secret id → file path relative to the case directory.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    #[serde(default)]
    pub extra_flags: Vec<String>,
    pub http: Option<Http>,
    /// Path relative to `context/` → link target: symlinks BuildKit saw,
    /// which the shared copy cannot hold; [`Case::prepare`] makes them.
    #[serde(default)]
    pub symlinks: BTreeMap<String, String>,
    /// `"success"` or `"error"`.
    pub expect: String,
    /// Error cases: a substring of BuildKit's error.
    pub error: Option<String>,
}

/// Serve `<case>/<root>` on `127.0.0.1:<port>` while the case builds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    pub port: u16,
    pub root: String,
}

/// One case directory.
#[derive(Debug)]
pub struct Case {
    /// The directory name, e.g. `01-copy-basic`.
    pub name: String,
    /// The case directory (read-only: builds use a copy).
    pub dir: PathBuf,
    pub spec: Spec,
}

/// Every case under `cases_dir`, sorted by name.
pub fn load_all(cases_dir: &Path) -> Result<Vec<Case>, String> {
    let mut cases = Vec::new();
    let entries = fs::read_dir(cases_dir).map_err(|e| format!("{}: {e}", cases_dir.display()))?;
    for entry in entries {
        let dir = entry.map_err(|e| e.to_string())?.path();
        if !dir.join("case.json").is_file() {
            continue;
        }
        let text = fs::read_to_string(dir.join("case.json")).map_err(|e| e.to_string())?;
        let spec: Spec =
            serde_json::from_str(&text).map_err(|e| format!("{}/case.json: {e}", dir.display()))?;
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        cases.push(Case { name, dir, spec });
    }
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(cases)
}

impl Case {
    /// The Dockerfile path relative to `context/`.
    pub fn dockerfile(&self) -> &str {
        self.spec.dockerfile.as_deref().unwrap_or("Dockerfile")
    }

    pub fn expects_error(&self) -> bool {
        self.spec.expect == "error"
    }

    /// Copies `context/`, `secrets/`, `www/` (and the HTTP root) into `to`,
    /// keeping symlinks, makes the case's `symlinks` in the copied
    /// `context/`, and normalises the copy's modes: regular files 0755 if
    /// owner-executable else 0644, directories (each copied root included)
    /// 0755, symlinks untouched.
    pub fn prepare(&self, to: &Path) -> io::Result<()> {
        let mut roots = vec!["context".to_string(), "secrets".into(), "www".into()];
        if let Some(http) = &self.spec.http {
            roots.push(http.root.clone());
        }
        fs::create_dir_all(to)?;
        for root in roots {
            let from = self.dir.join(&root);
            if from.is_dir() && !to.join(&root).exists() {
                copy_tree(&from, &to.join(&root))?;
            }
        }
        for (path, target) in &self.spec.symlinks {
            let link = to.join("context").join(path);
            if fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(target, &link)?;
            }
        }
        Ok(())
    }
}

/// Recursively copies `from` to `to` with the normalised modes.
fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let meta = fs::symlink_metadata(&src)?;
        let kind = meta.file_type();
        if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src)?, &dst)?;
        } else if kind.is_dir() {
            copy_tree(&src, &dst)?;
        } else if kind.is_file() {
            fs::copy(&src, &dst)?;
            let mode = if meta.permissions().mode() & 0o100 != 0 {
                0o755
            } else {
                0o644
            };
            fs::set_permissions(&dst, fs::Permissions::from_mode(mode))?;
        } else {
            return Err(io::Error::other(format!(
                "{}: unsupported file type in a case",
                src.display()
            )));
        }
    }
    fs::set_permissions(to, fs::Permissions::from_mode(0o755))
}
