//! `.dockerignore` with Docker's semantics: the file is read like docker/cli's
//! `ReadAll` and matched like moby/patternmatcher's `MatchesOrParentMatches`
//! (the last pattern that matches the path or one of its parent directories
//! wins; `!` patterns are exceptions that re-include).

use crate::glob::{go_clean, Pattern, Token};
use crate::{IgnoreError, PatternError};
use std::path::{Path, PathBuf};

/// How one pattern is matched (patternmatcher's fast paths are part of its
/// observable behaviour, e.g. `**file` also matches `xfile`).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// No wildcards: the path must equal the pattern.
    Exact,
    /// `lit**`: the path must start with `lit`.
    Prefix(String),
    /// `**lit`: the path must end with `lit` (or equal it without a leading `/`).
    Suffix(String),
    /// Anything else.
    Glob(Pattern),
}

/// One cleaned `.dockerignore` pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IgnorePattern {
    text: String,
    exception: bool,
    kind: Kind,
}

impl IgnorePattern {
    /// The cleaned pattern text, without the leading `!` of an exception.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether this is an exception (`!pattern`) that re-includes paths.
    pub fn is_exception(&self) -> bool {
        self.exception
    }

    /// Whether the pattern itself matches `path` (no parent matching).
    pub fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.text,
            Kind::Prefix(prefix) => path.starts_with(prefix.as_str()),
            Kind::Suffix(suffix) => {
                path.ends_with(suffix.as_str())
                    || suffix.strip_prefix('/').is_some_and(|rest| path == rest)
            }
            Kind::Glob(pattern) => pattern.matches(path),
        }
    }

    /// Compiles a pattern already cleaned by [`DockerIgnore::from_patterns`].
    fn compile(text: &str, exception: bool) -> Result<IgnorePattern, PatternError> {
        // Go validates with filepath.Match before compiling.
        Pattern::new(text)?;
        let pattern = Pattern::with_double_star(text)?;
        let tokens = pattern.tokens();
        let starts_with_double_star = text.starts_with("**");
        let no_escapes = !text.contains('\\');
        let literal = |t: &Token| matches!(t, Token::Lit(_));
        let kind = if tokens.iter().all(literal) && no_escapes {
            Kind::Exact
        } else if text.ends_with("**")
            && tokens.last() == Some(&Token::AnyRest)
            && tokens[..tokens.len() - 1].iter().all(literal)
            && no_escapes
        {
            if starts_with_double_star {
                Kind::Suffix(String::new())
            } else {
                Kind::Prefix(text[..text.len() - 2].to_string())
            }
        } else if starts_with_double_star
            && tokens.len() > 1
            && tokens[1..].iter().all(literal)
            && no_escapes
        {
            Kind::Suffix(text[2..].to_string())
        } else {
            Kind::Glob(pattern)
        };
        Ok(IgnorePattern {
            text: text.to_string(),
            exception,
            kind,
        })
    }
}

/// The parsed exclusion rules of a build context.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DockerIgnore {
    patterns: Vec<IgnorePattern>,
    file: Option<PathBuf>,
}

/// Per-pattern "matches this directory or one of its parents" flags, carried
/// down a walk so each entry is matched once per pattern.
pub type ParentState = Vec<bool>;

impl DockerIgnore {
    /// No patterns: nothing is excluded.
    pub fn empty() -> DockerIgnore {
        DockerIgnore::default()
    }

    /// Reads and parses the ignore file at `path`.
    pub fn read(path: &Path) -> Result<DockerIgnore, IgnoreError> {
        let bytes = std::fs::read(path).map_err(|source| IgnoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        DockerIgnore::parse(&String::from_utf8_lossy(&bytes), path)
    }

    /// Parses ignore-file `text` like docker/cli's `ReadAll`: a UTF-8 BOM is
    /// dropped, lines starting with `#` are comments, lines are trimmed,
    /// empty lines skipped, patterns cleaned and a leading `/` removed.
    /// `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<DockerIgnore, IgnoreError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut lines = Vec::new();
        for (index, raw) in text.split('\n').enumerate() {
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            if raw.starts_with('#') {
                continue;
            }
            let mut pattern = raw.trim();
            if pattern.is_empty() {
                continue;
            }
            let invert = pattern.starts_with('!');
            if invert {
                pattern = pattern[1..].trim();
            }
            let mut cleaned = String::new();
            if !pattern.is_empty() {
                cleaned = go_clean(pattern);
                if cleaned.len() > 1 && cleaned.starts_with('/') {
                    cleaned.remove(0);
                }
            }
            if invert {
                cleaned.insert(0, '!');
            }
            lines.push((index + 1, cleaned));
        }
        let mut ignore = DockerIgnore::compile_lines(lines, path)?;
        ignore.file = Some(path.to_path_buf());
        Ok(ignore)
    }

    /// Builds a matcher from patterns as patternmatcher's `New` takes them
    /// (`!` prefix for exceptions; each is trimmed and cleaned).
    pub fn from_patterns<S: AsRef<str>>(patterns: &[S]) -> Result<DockerIgnore, IgnoreError> {
        let lines = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| (i + 1, p.as_ref().to_string()))
            .collect();
        DockerIgnore::compile_lines(lines, Path::new("<patterns>"))
    }

    fn compile_lines(
        lines: Vec<(usize, String)>,
        path: &Path,
    ) -> Result<DockerIgnore, IgnoreError> {
        let mut patterns = Vec::new();
        for (line, raw) in lines {
            let trimmed = raw.trim();
            if trimmed.is_empty() {
                continue;
            }
            let cleaned = go_clean(trimmed);
            let bad = |reason: PatternError| IgnoreError::BadPattern {
                path: path.to_path_buf(),
                line,
                pattern: raw.clone(),
                reason,
            };
            let (exception, text) = match cleaned.strip_prefix('!') {
                Some("") => return Err(bad(PatternError::LoneExclamation)),
                Some(rest) => (true, rest),
                None => (false, cleaned.as_str()),
            };
            patterns.push(IgnorePattern::compile(text, exception).map_err(bad)?);
        }
        Ok(DockerIgnore {
            patterns,
            file: None,
        })
    }

    /// The patterns, in file order.
    pub fn patterns(&self) -> &[IgnorePattern] {
        &self.patterns
    }

    /// The file the patterns came from, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Whether any pattern is an exception (`!pattern`).
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exception)
    }

    /// Whether the slash-separated, context-relative `path` is excluded: the
    /// last pattern matching it or one of its parent directories decides.
    /// The context root (`""` or `.`) is never excluded.
    pub fn is_excluded(&self, path: &str) -> bool {
        let path = path.trim_matches('/');
        if path.is_empty() || path == "." || self.patterns.is_empty() {
            return false;
        }
        let state = self.parent_state(path);
        self.evaluate(path, &state).0
    }

    /// The state to pass to [`DockerIgnore::evaluate`] for the children of
    /// directory `dir` (`""` for the root).
    pub fn state_for_dir(&self, dir: &str) -> ParentState {
        let dir = dir.trim_matches('/');
        if dir.is_empty() {
            return vec![false; self.patterns.len()];
        }
        let mut state = self.parent_state(dir);
        for (flag, pattern) in state.iter_mut().zip(&self.patterns) {
            *flag = *flag || pattern.matches(dir);
        }
        state
    }

    /// Per-pattern flags for the parent directories of `path`.
    fn parent_state(&self, path: &str) -> ParentState {
        let mut state = vec![false; self.patterns.len()];
        let mut end = 0;
        while let Some(pos) = path[end..].find('/') {
            let parent = &path[..end + pos];
            for (flag, pattern) in state.iter_mut().zip(&self.patterns) {
                *flag = *flag || pattern.matches(parent);
            }
            end += pos + 1;
        }
        state
    }

    /// Evaluates `path` given its parent's state: whether it is excluded, and
    /// the state for its children.
    pub fn evaluate(&self, path: &str, parent: &[bool]) -> (bool, ParentState) {
        let mut excluded = false;
        let mut state = Vec::with_capacity(self.patterns.len());
        for (pattern, &parent_matched) in self.patterns.iter().zip(parent) {
            let matched = parent_matched || pattern.matches(path);
            if matched {
                excluded = !pattern.exception;
            }
            state.push(matched);
        }
        (excluded, state)
    }

    /// Matches `path` as patternmatcher's `MatchesUsingParentResults` does
    /// (fsutil's copy filters `COPY --exclude` with it): whether `path` is
    /// excluded, and the state for its children. `parent` is the state its
    /// parent directory got, or empty when the parents were not evaluated
    /// (then each pattern is also tried on the parent directories).
    ///
    /// Unlike [`DockerIgnore::evaluate`], a pattern is only tried when it
    /// could change the result (an inclusion while the path is not
    /// excluded, an exception while it is), and a pattern not tried is not
    /// passed on as matched: with `a`, `!a/b`, `a` the directory `a` is
    /// excluded but `a/b` is not, as in BuildKit.
    pub fn matches_using_parent_results(&self, path: &str, parent: &[bool]) -> (bool, ParentState) {
        let mut excluded = false;
        let mut state = Vec::with_capacity(self.patterns.len());
        for (i, pattern) in self.patterns.iter().enumerate() {
            let mut matched = parent.get(i).copied().unwrap_or(false);
            if !matched && pattern.exception == excluded {
                matched = pattern.matches(path)
                    || (parent.is_empty() && parent_dirs(path).any(|dir| pattern.matches(dir)));
            }
            state.push(matched);
            if matched {
                excluded = !pattern.exception;
            }
        }
        (excluded, state)
    }

    /// Whether some exception could re-include a path strictly below the
    /// excluded directory `dir`; if not, the directory need not be walked.
    /// Errs on the side of walking.
    pub fn exception_could_match_below(&self, dir: &str) -> bool {
        let dir_parts: Vec<&str> = dir.split('/').collect();
        self.patterns
            .iter()
            .filter(|p| p.exception)
            .any(|p| could_match_below(&p.text, &dir_parts))
    }
}

/// The parent directories of slash path `path`, shortest first (`a`, `a/b`
/// for `a/b/c`).
fn parent_dirs(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

/// Whether pattern `text` could match some path `dir/...`.
fn could_match_below(text: &str, dir_parts: &[&str]) -> bool {
    // `**` crosses directories and a negated class can match `/`: give up.
    if text.contains("**") || text.contains('[') {
        return true;
    }
    let parts: Vec<&str> = text.split('/').collect();
    if parts.len() <= dir_parts.len() {
        return false;
    }
    for (part, dir_part) in parts.iter().zip(dir_parts) {
        match Pattern::new(part) {
            Ok(pattern) if !pattern.matches(dir_part) => return false,
            Ok(_) => {}
            Err(_) => return true,
        }
    }
    true
}
