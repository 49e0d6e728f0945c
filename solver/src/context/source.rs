//! COPY/ADD source resolution: cleaning, symlink resolution scoped to the
//! context root, and per-component wildcard matching.

use super::error::ContextError;
use super::walk::{self, EntryKind};
use super::{BuildContext, ContextEntry};
use kiln_executor::names;
use kiln_patterns::{has_wildcards, Pattern};
use std::collections::VecDeque;
use std::io::ErrorKind;
use std::path::PathBuf;

/// Most symlinks followed while resolving one path (Linux's `MAXSYMLINKS`
/// is 40; BuildKit allows 255).
const MAX_SYMLINKS: usize = 255;

/// Cleans a source or context-relative path: `..` is clamped at the root,
/// `.`, empty components and a leading `/` or `./` are dropped. The root is
/// `""`.
pub fn clean_source(source: &str) -> String {
    kiln_patterns::clean_relative(source)
}

impl BuildContext {
    /// Resolves `rel` inside the context, following symlinks as if the
    /// context root were `/` (so nothing outside it is reached). The last
    /// component is followed only if `follow_final`. Returns the real
    /// context-relative path, or `None` when a component does not exist or
    /// a non-final component is not a directory.
    pub(crate) fn resolve_scoped(
        &self,
        rel: &str,
        follow_final: bool,
    ) -> Result<Option<String>, ContextError> {
        let mut queue: VecDeque<String> = rel.split('/').map(str::to_string).collect();
        let mut cur: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(comp) = queue.pop_front() {
            match comp.as_str() {
                "" | "." => continue,
                ".." => {
                    cur.pop();
                    continue;
                }
                _ => {}
            }
            let is_final = queue.iter().all(|c| c.is_empty() || c == ".");
            cur.push(comp);
            if is_final && !follow_final {
                break;
            }
            let abs = self.root.join(cur.join("/"));
            let md = match std::fs::symlink_metadata(&abs) {
                Ok(md) => md,
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                    return Ok(None)
                }
                Err(e) => return Err(ContextError::io(abs)(e)),
            };
            if md.file_type().is_symlink() {
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return Err(ContextError::SymlinkLoop {
                        path: rel.to_string(),
                    });
                }
                let target = std::fs::read_link(&abs).map_err(ContextError::io(&abs))?;
                let target = names::encode(target.as_os_str()).into_owned();
                cur.pop();
                if target.starts_with('/') {
                    cur.clear();
                }
                for part in target.split('/').rev() {
                    queue.push_front(part.to_string());
                }
            } else if !is_final && !md.is_dir() {
                return Ok(None);
            }
        }
        Ok(Some(cur.join("/")))
    }

    /// Whether `rel` is part of the context: not excluded, or an excluded
    /// directory that an exception re-includes something below.
    pub(crate) fn is_present(&self, rel: &str, kind: EntryKind) -> Result<bool, ContextError> {
        if !self.ignore.is_excluded(rel) {
            return Ok(true);
        }
        if kind != EntryKind::Dir || !self.ignore.exception_could_match_below(rel) {
            return Ok(false);
        }
        let mut out: Vec<walk::WalkEntry> = Vec::new();
        walk::walk_into(
            &self.ignore,
            rel,
            &names::rel_path(&self.root, rel),
            &mut out,
        )
    }

    /// The entry for an existing, present `rel` (not following a final
    /// symlink), or `None`.
    fn present_entry(&self, rel: String) -> Result<Option<ContextEntry>, ContextError> {
        let abs = names::rel_path(&self.root, &rel);
        let md = match std::fs::symlink_metadata(&abs) {
            Ok(md) => md,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                return Ok(None)
            }
            Err(e) => return Err(ContextError::io(abs)(e)),
        };
        let kind = EntryKind::from_file_type(md.file_type());
        if !self.is_present(&rel, kind)? {
            return Ok(None);
        }
        Ok(Some(ContextEntry {
            rel_path: rel,
            kind,
            abs_path: abs,
        }))
    }

    /// See [`BuildContext::resolve`].
    pub(crate) fn resolve_source(&self, source: &str) -> Result<Vec<ContextEntry>, ContextError> {
        let cleaned = clean_source(source);
        let not_found = || ContextError::NotFound {
            source: format!("/{cleaned}"),
        };
        if cleaned.is_empty() {
            return Ok(vec![ContextEntry {
                rel_path: String::new(),
                kind: EntryKind::Dir,
                abs_path: self.root.clone(),
            }]);
        }
        if !has_wildcards(&cleaned) {
            let rel = self
                .resolve_scoped(&cleaned, false)?
                .ok_or_else(not_found)?;
            return Ok(vec![self.present_entry(rel)?.ok_or_else(not_found)?]);
        }
        let comps: Vec<&str> = cleaned.split('/').collect();
        // Real, present directories matched so far.
        let mut dirs: Vec<String> = vec![String::new()];
        let mut found: Vec<ContextEntry> = Vec::new();
        for (i, comp) in comps.iter().enumerate() {
            let last = i + 1 == comps.len();
            let pattern = Pattern::new(comp).map_err(|reason| ContextError::BadSourcePattern {
                source: source.to_string(),
                pattern: comp.to_string(),
                reason: reason.to_string(),
            })?;
            let mut candidates: Vec<String> = Vec::new();
            for dir in &dirs {
                match pattern.literal() {
                    Some(name) => candidates.push(walk::join_rel(dir, &name)),
                    None => {
                        let abs = names::rel_path(&self.root, dir);
                        let names = match walk::sorted_names(&abs) {
                            Ok(names) => names,
                            Err(ContextError::Io { source, .. })
                                if matches!(
                                    source.kind(),
                                    ErrorKind::NotFound | ErrorKind::NotADirectory
                                ) =>
                            {
                                continue
                            }
                            Err(e) => return Err(e),
                        };
                        candidates.extend(
                            names
                                .into_iter()
                                .filter(|(name, _)| pattern.matches(name))
                                .map(|(name, _)| walk::join_rel(dir, &name)),
                        );
                    }
                }
            }
            let mut next = Vec::new();
            for candidate in candidates {
                if last {
                    if let Some(entry) = self.present_entry(candidate)? {
                        found.push(entry);
                    }
                    continue;
                }
                // Follow symlinks to directories along the way.
                let Some(real) = self.resolve_scoped(&candidate, true)? else {
                    continue;
                };
                if let Some(entry) = self.present_entry(real)? {
                    if entry.kind == EntryKind::Dir {
                        next.push(entry.rel_path);
                    }
                }
            }
            dirs = next;
        }
        found.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
        found.dedup_by(|a, b| a.rel_path == b.rel_path);
        Ok(found)
    }

    /// The real directory for [`BuildContext::walk`].
    pub(crate) fn walk_dir(&self, rel_dir: &str) -> Result<(String, PathBuf), ContextError> {
        let cleaned = clean_source(rel_dir);
        let not_found = || ContextError::NotFound {
            source: format!("/{cleaned}"),
        };
        let rel = self.resolve_scoped(&cleaned, true)?.ok_or_else(not_found)?;
        let abs = names::rel_path(&self.root, &rel);
        match std::fs::symlink_metadata(&abs) {
            Ok(md) if md.is_dir() => Ok((rel, abs)),
            Ok(_) => Err(ContextError::NotADirectory { path: rel }),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(not_found()),
            Err(e) => Err(ContextError::io(abs)(e)),
        }
    }
}
