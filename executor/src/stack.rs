//! Layer stacks and the [`SourceTree`] view COPY reads sources through.
//!
//! The merged view follows overlayfs: a name is looked up from the top
//! layer down; the first layer holding it decides. A whiteout (character
//! device 0/0) there means deleted. A directory merges with the
//! directories at the same path in lower layers, down to (and including)
//! the first opaque one or the first layer where the path is a
//! non-directory or a whiteout.

mod lookup;
mod materialize;

use crate::names;
pub(crate) use lookup::join;
use lookup::{clean, io_err, Found};
pub use materialize::materialize;
pub(crate) use materialize::{copy_leaf, set_meta};
use std::collections::HashMap;
use std::io;
use std::path::PathBuf;

/// What went wrong reading a source tree.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// A COPY source without wildcards names nothing.
    #[error("{path:?}: not found")]
    NotFound {
        /// The source as written.
        path: String,
    },
    /// An I/O error on a path of the tree.
    #[error("{action} {path}: {error}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The real path.
        path: PathBuf,
        /// The error.
        #[source]
        error: std::io::Error,
    },
}

/// One entry of a source tree.
#[derive(Debug, Clone)]
pub struct SourceEntry {
    /// The path relative to the tree's root (`dir/a.txt`; `""` is the root).
    pub rel: String,
    /// Where the entry really is on disk (in whichever layer holds it).
    pub real: PathBuf,
    /// Its metadata, not following a final symlink.
    pub metadata: std::fs::Metadata,
}

/// A tree COPY can read from: a [`LayerStack`] (a stage or an image) or
/// the build context (implemented in the solver, which applies
/// `.dockerignore`).
pub trait SourceTree: Send + Sync {
    /// Expands a COPY source as written: leading `/` and `./` dropped,
    /// `..` clamped at the root, wildcards (`*`, `?`, `[...]`, Go
    /// `filepath.Match` syntax) matched per path component. A literal path
    /// that does not exist is [`SourceError::NotFound`]; a wildcard that
    /// matches nothing gives an empty list. Paths are returned sorted.
    ///
    /// # Errors
    /// `NotFound` or I/O errors.
    fn resolve(&self, source: &str) -> Result<Vec<String>, SourceError>;

    /// The entry at `rel`, not following a final symlink; `None` when
    /// absent (or deleted by an upper layer, or excluded).
    ///
    /// # Errors
    /// I/O errors.
    fn entry(&self, rel: &str) -> Result<Option<SourceEntry>, SourceError>;

    /// The names in directory `rel`, sorted, without deleted or excluded
    /// names.
    ///
    /// # Errors
    /// I/O errors.
    fn list(&self, rel: &str) -> Result<Vec<String>, SourceError>;
}

/// A filesystem as layer directories, bottom first.
///
/// A stack made with [`LayerStack::new`] remembers the directories its
/// lookups walk through (shared by clones), so a deep stack is not walked
/// layer by layer again for every path: its layers must not change while
/// it is read. [`LayerStack::with`] makes a stack over a layer being
/// written, which remembers nothing.
#[derive(Debug, Clone, Default)]
pub struct LayerStack {
    layers: Vec<PathBuf>,
    dirs: Option<std::sync::Arc<std::sync::Mutex<HashMap<String, Found>>>>,
}

impl PartialEq for LayerStack {
    fn eq(&self, other: &LayerStack) -> bool {
        self.layers == other.layers
    }
}

impl Eq for LayerStack {}

impl LayerStack {
    /// A stack of these layer directories, bottom first.
    pub fn new(layers: Vec<PathBuf>) -> LayerStack {
        LayerStack {
            layers,
            dirs: Some(Default::default()),
        }
    }

    /// The merged directory at the resolved path `key`, remembered or
    /// looked up with `find`.
    fn cached_dir(
        &self,
        key: &str,
        find: impl FnOnce() -> Result<Option<Found>, SourceError>,
    ) -> Result<Option<Found>, SourceError> {
        let Some(dirs) = &self.dirs else {
            return find();
        };
        if let Some(f) = dirs.lock().unwrap_or_else(|e| e.into_inner()).get(key) {
            return Ok(Some(f.clone()));
        }
        let found = find()?;
        if let Some(f) = &found {
            if f.metadata.is_dir() {
                dirs.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key.to_string(), f.clone());
            }
        }
        Ok(found)
    }

    /// The layer directories, bottom first.
    pub fn layers(&self) -> &[PathBuf] {
        &self.layers
    }

    /// This stack with `upper` (possibly being written) on top; the new
    /// stack remembers no lookups.
    pub fn with(&self, upper: PathBuf) -> LayerStack {
        let mut layers = self.layers.clone();
        layers.push(upper);
        LayerStack { layers, dirs: None }
    }
}

impl SourceTree for LayerStack {
    fn resolve(&self, source: &str) -> Result<Vec<String>, SourceError> {
        let comps = clean(source);
        if !comps.iter().any(|c| has_meta(c)) {
            let rel = comps.join("/");
            return match self.entry(&rel)? {
                Some(_) => Ok(vec![rel]),
                None => Err(SourceError::NotFound {
                    path: source.to_string(),
                }),
            };
        }
        for c in comps.iter().filter(|c| has_meta(c)) {
            if let Err(BadPattern) = go_match(c, "") {
                return Err(SourceError::Io {
                    action: "matching",
                    path: PathBuf::from(source),
                    error: io::Error::new(io::ErrorKind::InvalidInput, "syntax error in pattern"),
                });
            }
        }
        let mut current = vec![String::new()];
        for c in &comps {
            let mut next = Vec::new();
            if has_meta(c) {
                for parent in &current {
                    let Some(found) = self.lookup(parent, true)? else {
                        continue;
                    };
                    if !found.metadata.is_dir() {
                        continue;
                    }
                    for name in Self::present(&found)? {
                        let name = names::encode(&name);
                        if go_match(c, &name).unwrap_or(false) {
                            next.push(join(parent, &name));
                        }
                    }
                }
            } else {
                next = current.iter().map(|p| join(p, c)).collect();
            }
            current = next;
        }
        let mut out = Vec::new();
        for path in current {
            if self.entry(&path)?.is_some() {
                out.push(path);
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn entry(&self, rel: &str) -> Result<Option<SourceEntry>, SourceError> {
        Ok(self.lookup(rel, false)?.map(|found| SourceEntry {
            rel: clean(rel).join("/"),
            real: found.real,
            metadata: found.metadata,
        }))
    }

    /// Lists directory `rel` (a final symlink is followed, as `opendir`
    /// does). An absent path is [`SourceError::NotFound`], a non-directory
    /// an `ENOTDIR` I/O error. Names that are not UTF-8 come in
    /// [`names::encode`] form.
    fn list(&self, rel: &str) -> Result<Vec<String>, SourceError> {
        let Some(found) = self.lookup(rel, true)? else {
            if self.layers.is_empty() && clean(rel).is_empty() {
                return Ok(Vec::new());
            }
            return Err(SourceError::NotFound {
                path: rel.to_string(),
            });
        };
        if !found.metadata.is_dir() {
            return Err(io_err(
                "listing",
                &found.real,
                io::Error::from_raw_os_error(libc::ENOTDIR),
            ));
        }
        Ok(Self::present(&found)?
            .into_iter()
            .map(|n| names::encode(&n).into_owned())
            .collect())
    }
}

/// Whether a path component is a pattern (Go's `hasMeta` on Unix).
fn has_meta(component: &str) -> bool {
    component.contains(['*', '?', '[', '\\'])
}

/// A malformed pattern (Go's `filepath.ErrBadPattern`).
#[derive(Debug, PartialEq, Eq)]
struct BadPattern;

/// Go's `filepath.Match` on Unix: `*` (no `/`), `?`, `[...]` / `[^...]`
/// with ranges, `\` escapes.
fn go_match(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let mut pattern: &[char] = &pattern.chars().collect::<Vec<_>>();
    let name_chars: Vec<char> = name.chars().collect();
    let mut name: &[char] = &name_chars;
    'outer: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            return Ok(!name.contains(&'/'));
        }
        let (t, ok, err) = match_chunk(chunk, name);
        if ok && (t.is_empty() || !pattern.is_empty()) {
            name = t;
            continue;
        }
        if err {
            return Err(BadPattern);
        }
        if star {
            let mut i = 0;
            while i < name.len() && name[i] != '/' {
                let (t, ok, err) = match_chunk(chunk, &name[i + 1..]);
                if ok {
                    if pattern.is_empty() && !t.is_empty() {
                        i += 1;
                        continue;
                    }
                    name = t;
                    continue 'outer;
                }
                if err {
                    return Err(BadPattern);
                }
                i += 1;
            }
        }
        while !pattern.is_empty() {
            let (_, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            if match_chunk(chunk, &[]).2 {
                return Err(BadPattern);
            }
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// Go's `scanChunk`: leading stars, then the chunk up to the next star
/// outside a class.
fn scan_chunk(mut pattern: &[char]) -> (bool, &[char], &[char]) {
    let mut star = false;
    while pattern.first() == Some(&'*') {
        pattern = &pattern[1..];
        star = true;
    }
    let mut inrange = false;
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            '\\' if i + 1 < pattern.len() => i += 1,
            '[' => inrange = true,
            ']' => inrange = false,
            '*' if !inrange => break,
            _ => {}
        }
        i += 1;
    }
    (star, &pattern[..i], &pattern[i..])
}

/// Go's `matchChunk`: (rest of name, matched, bad pattern).
fn match_chunk<'a>(mut chunk: &[char], mut s: &'a [char]) -> (&'a [char], bool, bool) {
    let mut failed = false;
    while !chunk.is_empty() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match chunk[0] {
            '[' => {
                let mut r = '\0';
                if !failed {
                    r = s[0];
                    s = &s[1..];
                }
                chunk = &chunk[1..];
                let mut negated = false;
                if chunk.first() == Some(&'^') {
                    negated = true;
                    chunk = &chunk[1..];
                }
                let mut matched = false;
                let mut nrange = 0;
                loop {
                    if chunk.first() == Some(&']') && nrange > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let Some((lo, rest)) = get_esc(chunk) else {
                        return (&[], false, true);
                    };
                    chunk = rest;
                    let mut hi = lo;
                    if chunk[0] == '-' {
                        let Some((h, rest)) = get_esc(&chunk[1..]) else {
                            return (&[], false, true);
                        };
                        hi = h;
                        chunk = rest;
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    nrange += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            '?' => {
                if !failed {
                    if s[0] == '/' {
                        failed = true;
                    }
                    s = &s[1..];
                }
                chunk = &chunk[1..];
            }
            c => {
                let c = if c == '\\' {
                    chunk = &chunk[1..];
                    match chunk.first() {
                        None => return (&[], false, true),
                        Some(&c) => c,
                    }
                } else {
                    c
                };
                if !failed {
                    if c != s[0] {
                        failed = true;
                    }
                    s = &s[1..];
                }
                chunk = &chunk[1..];
            }
        }
    }
    if failed {
        (&[], false, false)
    } else {
        (s, true, false)
    }
}

/// Go's `getEsc`: one possibly escaped class character; the class must go
/// on after it.
fn get_esc(chunk: &[char]) -> Option<(char, &[char])> {
    let mut chunk = chunk;
    match chunk.first() {
        None | Some('-') | Some(']') => return None,
        Some('\\') => {
            chunk = &chunk[1..];
            chunk.first()?;
        }
        _ => {}
    }
    let r = chunk[0];
    let rest = &chunk[1..];
    if rest.is_empty() {
        return None;
    }
    Some((r, rest))
}

#[cfg(test)]
mod tests {
    use super::{clean, go_match, BadPattern};

    #[test]
    fn go_match_cases() {
        // From Go's filepath match_test.go.
        let cases: &[(&str, &str, Result<bool, BadPattern>)] = &[
            ("abc", "abc", Ok(true)),
            ("*", "abc", Ok(true)),
            ("*c", "abc", Ok(true)),
            ("a*", "a", Ok(true)),
            ("a*", "abc", Ok(true)),
            ("a*", "ab/c", Ok(false)),
            ("a*/b", "abc/b", Ok(true)),
            ("a*/b", "a/c/b", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Ok(false)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Ok(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Ok(false)),
            ("ab[c]", "abc", Ok(true)),
            ("ab[b-d]", "abc", Ok(true)),
            ("ab[e-g]", "abc", Ok(false)),
            ("ab[^c]", "abc", Ok(false)),
            ("ab[^b-d]", "abc", Ok(false)),
            ("ab[^e-g]", "abc", Ok(true)),
            ("a\\*b", "a*b", Ok(true)),
            ("a\\*b", "ab", Ok(false)),
            ("a?b", "a☺b", Ok(true)),
            ("a[^a]b", "a☺b", Ok(true)),
            ("a???b", "a☺b", Ok(false)),
            ("a[^a][^a][^a]b", "a☺b", Ok(false)),
            ("[a-ζ]*", "α", Ok(true)),
            ("*[a-ζ]", "A", Ok(false)),
            ("a?b", "a/b", Ok(false)),
            ("a*b", "a/b", Ok(false)),
            ("[\\]a]", "]", Ok(true)),
            ("[\\-]", "-", Ok(true)),
            ("[x\\-]", "x", Ok(true)),
            ("[x\\-]", "-", Ok(true)),
            ("[x\\-]", "z", Ok(false)),
            ("[\\-x]", "x", Ok(true)),
            ("[\\-x]", "-", Ok(true)),
            ("[\\-x]", "a", Ok(false)),
            ("[]a]", "]", Err(BadPattern)),
            ("[-]", "-", Err(BadPattern)),
            ("[x-]", "x", Err(BadPattern)),
            ("[x-]", "-", Err(BadPattern)),
            ("[x-]", "z", Err(BadPattern)),
            ("[-x]", "x", Err(BadPattern)),
            ("[-x]", "-", Err(BadPattern)),
            ("[-x]", "a", Err(BadPattern)),
            ("\\", "a", Err(BadPattern)),
            ("[a-b-c]", "a", Err(BadPattern)),
            ("[", "a", Err(BadPattern)),
            ("[^", "a", Err(BadPattern)),
            ("[^bc", "a", Err(BadPattern)),
            ("a[", "a", Err(BadPattern)),
            ("a[", "ab", Err(BadPattern)),
            ("a[", "x", Err(BadPattern)),
            ("a/b[", "x", Err(BadPattern)),
            ("*x", "xxx", Ok(true)),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(&go_match(pattern, name), want, "{pattern:?} {name:?}");
        }
    }

    #[test]
    fn clean_clamps() {
        assert_eq!(clean("/a/./b/../../../c/"), vec!["c".to_string()]);
        assert!(clean("./").is_empty());
    }
}
