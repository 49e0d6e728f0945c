//! `.dockerignore` for the CopyIgnoredFile check, read and matched by
//! [`kiln_patterns`], the same code that decides what a build excludes.

/// The patterns of a `.dockerignore` file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerIgnore {
    /// `None` when a pattern is malformed: a build would stop there, so
    /// the check has nothing to say.
    matcher: Option<kiln_patterns::DockerIgnore>,
}

impl DockerIgnore {
    /// Reads `.dockerignore` text as docker/cli does: one pattern a line,
    /// `#` comments, `!` exceptions.
    pub fn parse(text: &str) -> Self {
        let path = std::path::Path::new(".dockerignore");
        DockerIgnore {
            matcher: kiln_patterns::DockerIgnore::parse(text, path).ok(),
        }
    }

    /// True when the file has `!` exceptions (BuildKit then skips the
    /// check altogether).
    pub fn has_exclusions(&self) -> bool {
        self.matcher
            .as_ref()
            .is_some_and(kiln_patterns::DockerIgnore::has_exceptions)
    }

    /// True when `path` (relative to the context, cleaned as the build
    /// cleans COPY sources) or one of its parent directories matches a
    /// pattern.
    pub fn matches_or_parent_matches(&self, path: &str) -> bool {
        self.matcher
            .as_ref()
            .is_some_and(|m| m.is_excluded(&kiln_patterns::clean_relative(path)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let d = DockerIgnore::parse("# comment\nvendor/\n*.md\n**/node_modules\nbuild/[a-c]*\n");
        assert!(d.matches_or_parent_matches("vendor"));
        assert!(d.matches_or_parent_matches("./vendor/x/y.go"));
        assert!(d.matches_or_parent_matches("/vendor/x/y.go"));
        assert!(d.matches_or_parent_matches("README.md"));
        assert!(!d.matches_or_parent_matches("docs/README.md"));
        assert!(d.matches_or_parent_matches("a/b/node_modules/x"));
        assert!(d.matches_or_parent_matches("build/bin"));
        assert!(!d.matches_or_parent_matches("build/x"));
        assert!(!d.matches_or_parent_matches("src/main.go"));
        assert!(!d.matches_or_parent_matches("."));
        assert!(!d.has_exclusions());
        assert!(DockerIgnore::parse("*\n!src\n").has_exclusions());
    }

    /// Where lint's own matcher used to disagree with the build: Go has no
    /// `[!...]` negation, and patternmatcher's `**name` also matches
    /// `xname`.
    #[test]
    fn agrees_with_what_the_build_excludes() {
        let d = DockerIgnore::parse("[!a]*\n**tmp\n");
        assert!(d.matches_or_parent_matches("!x"));
        assert!(!d.matches_or_parent_matches("bx"));
        assert!(d.matches_or_parent_matches("dir/xtmp"));
        let build = kiln_patterns::DockerIgnore::parse("[!a]*\n**tmp\n", ".dockerignore".as_ref())
            .expect("valid");
        for path in ["!x", "bx", "dir/xtmp", "a", "tmp/y"] {
            assert_eq!(
                d.matches_or_parent_matches(path),
                build.is_excluded(path),
                "{path:?}"
            );
        }
    }

    /// A malformed file stops a build before any check runs: nothing to
    /// report.
    #[test]
    fn a_malformed_file_reports_nothing() {
        let d = DockerIgnore::parse("vendor\n[\n");
        assert!(!d.matches_or_parent_matches("vendor/x"));
        assert!(!d.has_exclusions());
    }
}
