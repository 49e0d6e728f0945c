//! `--exclude` patterns as BuildKit applies them: moby/patternmatcher
//! patterns ([`kiln_patterns::DockerIgnore`]) matched, as fsutil's copy
//! does, against each path below the copied source, each entry with the
//! state of its parent directory.

use super::FileOpError;
use kiln_patterns::{DockerIgnore, IgnoreError, ParentState};

/// The `--exclude` patterns of one COPY/ADD.
#[derive(Debug, Default)]
pub(crate) struct Excludes {
    matcher: Option<DockerIgnore>,
}

impl Excludes {
    /// Compiles `patterns` as patternmatcher's `New` does (trimmed,
    /// cleaned, `!` for exceptions); a malformed one fails the copy, as
    /// BuildKit's "invalid excludepatterns".
    pub(crate) fn new(patterns: &[String]) -> Result<Excludes, FileOpError> {
        if patterns.is_empty() {
            return Ok(Excludes::default());
        }
        match DockerIgnore::from_patterns(patterns) {
            Ok(matcher) => Ok(Excludes {
                matcher: Some(matcher),
            }),
            Err(IgnoreError::BadPattern {
                pattern, reason, ..
            }) => Err(FileOpError::invalid(format!(
                "invalid --exclude pattern {pattern:?}: {reason}"
            ))),
            Err(e) => Err(FileOpError::invalid(format!("--exclude: {e}"))),
        }
    }

    /// Whether there are no patterns (nothing is excluded).
    pub(crate) fn is_empty(&self) -> bool {
        self.matcher.is_none()
    }

    /// Whether some pattern is an exception (`!pattern`): then an excluded
    /// directory is still walked, and created only when something below it
    /// is copied.
    pub(crate) fn has_exceptions(&self) -> bool {
        self.matcher
            .as_ref()
            .is_some_and(DockerIgnore::has_exceptions)
    }

    /// Whether the source match `path` (context- or stage-relative) is
    /// excluded: the last pattern matching it or a parent directory wins.
    /// BuildKit itself never matches a copied source, only what is below
    /// it; kiln also drops wildcard matches the patterns name, as Docker's
    /// reference documents (`COPY --exclude=*.txt hom* /mydir/`).
    pub(crate) fn excludes_source(&self, path: &str) -> bool {
        self.matcher.as_ref().is_some_and(|m| m.is_excluded(path))
    }

    /// Whether `rel`, a path below the copied source, is excluded, given
    /// the state of its parent directory (empty for the source's own
    /// children); returns the state for `rel`'s children too.
    pub(crate) fn below_source(&self, rel: &str, parent: &[bool]) -> (bool, ParentState) {
        match &self.matcher {
            Some(m) => m.matches_using_parent_results(rel, parent),
            None => (false, Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excludes(patterns: &[&str]) -> Excludes {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        Excludes::new(&patterns).expect("valid patterns")
    }

    /// Whether `path` is excluded when its parent directories are walked
    /// first, as the copy does.
    fn walked(e: &Excludes, path: &str) -> bool {
        let mut state = Vec::new();
        let mut excluded = false;
        let mut end = 0;
        for comp in path.split('/') {
            end += comp.len();
            (excluded, state) = e.below_source(&path[..end], &state);
            end += 1;
        }
        excluded
    }

    #[test]
    fn patterns_below_the_source() {
        let e = excludes(&["*.md", "sub/**/x", "!keep.md"]);
        assert!(walked(&e, "a.md"));
        assert!(!walked(&e, "keep.md"));
        assert!(!walked(&e, "d/a.md"));
        assert!(walked(&e, "sub/x"));
        assert!(walked(&e, "sub/a/b/x"));
        assert!(walked(&e, "sub/a/x/below"));
        assert!(!walked(&e, "sub/a/y"));
        assert!(e.has_exceptions());
        let d = excludes(&["dir", "[ab]?.txt", "\\*"]);
        assert!(walked(&d, "dir/f"));
        assert!(walked(&d, "a1.txt"));
        assert!(!walked(&d, "c1.txt"));
        assert!(walked(&d, "*"));
        assert!(!walked(&d, "x"));
        assert!(!d.has_exceptions());
        // patternmatcher's `**` inside a component and its suffix fast path.
        let s = excludes(&["**.md", "a**b"]);
        assert!(walked(&s, "d/e/f.md"));
        assert!(walked(&s, "ab"));
        assert!(walked(&s, "a/x/b"));
        assert!(!walked(&s, "axb"));
    }

    #[test]
    fn sources_match_with_their_parents() {
        let e = excludes(&["*.txt", "dir"]);
        assert!(e.excludes_source("a.txt"));
        assert!(e.excludes_source("dir/f"));
        assert!(!e.excludes_source("sub/a.txt"));
        assert!(!Excludes::default().excludes_source("a.txt"));
    }

    #[test]
    fn malformed_patterns_fail() {
        for bad in ["[", "a\\", "!", "[]a]", "[b-a]"] {
            let err = Excludes::new(&[bad.to_string()]).expect_err(bad);
            assert!(err.to_string().contains("--exclude"), "{bad}: {err}");
        }
    }

    /// `--exclude` matching neither recurses on the path's depth nor
    /// backtracks exponentially on many `*` or `**`.
    #[test]
    fn deep_paths_on_a_small_stack() {
        let got = std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(|| {
                let deep = "d/".repeat(20_000);
                let e = excludes(&["**/**/**/x", "d/**/keep/**", "*a*a*a*a*a*a*a*a*a*a*a*a*b"]);
                let none = [false; 3];
                let name = "a".repeat(300);
                (
                    e.below_source(&format!("{deep}x"), &none).0,
                    e.below_source(&format!("{deep}y"), &none).0,
                    e.below_source(&format!("{deep}keep/z"), &none).0,
                    e.below_source(&name, &none).0,
                    e.below_source(&format!("{name}b"), &none).0,
                )
            })
            .expect("thread")
            .join()
            .expect("no overflow");
        assert_eq!(got, (true, false, true, false, true));
    }
}
