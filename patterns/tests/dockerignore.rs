//! `.dockerignore` reading and matching, checked against moby/patternmatcher's
//! and docker/cli's tables.

use kiln_patterns::DockerIgnore;
use std::path::Path;

/// Reads `patterns` as the lines of a `.dockerignore` (ReadAll + New).
fn excluded(patterns: &[&str], path: &str) -> bool {
    DockerIgnore::parse(&patterns.join("\n"), Path::new(".dockerignore"))
        .expect("valid patterns")
        .is_excluded(path)
}

#[test]
fn single_pattern_table() {
    // moby/patternmatcher's TestMatches (MatchesOrParentMatches column).
    let cases: &[(&str, &str, bool)] = &[
        ("**", "file", true),
        ("**", "file/", true),
        ("**/", "file", true),
        ("**/", "file/", true),
        ("**", "dir/file", true),
        ("**/", "dir/file", true),
        ("**/**", "dir/file", true),
        ("dir/**", "dir/file", true),
        ("dir/**", "dir/dir2/file", true),
        ("**/dir", "dir", true),
        ("**/dir", "dir/file", true),
        ("**/dir2/*", "dir/dir2/file", true),
        ("**/dir2/*", "dir/dir2/file/", true),
        ("**/dir2/**", "dir/dir2/dir3/file", true),
        ("**file", "file", true),
        ("**file", "dir/file", true),
        ("**/file", "dir/file", true),
        ("**file", "dir/dir/file", true),
        ("**/file*", "dir/dir/file.txt", true),
        ("**/file*txt", "dir/dir/file.txt", true),
        ("**/file*.txt*", "dir/dir/file.txt", true),
        ("**/**/*.txt", "dir/dir/file.txt", true),
        ("**/**/*.txt2", "dir/dir/file.txt", false),
        ("**/*.txt", "file.txt", true),
        ("**/**/*.txt", "file.txt", true),
        ("a**/*.txt", "a/file.txt", true),
        ("a**/*.txt", "a/dir/file.txt", true),
        ("a**/*.txt", "a/dir/dir/file.txt", true),
        ("a/*.txt", "a/dir/file.txt", false),
        ("a/*.txt", "a/file.txt", true),
        ("a/*.txt**", "a/file.txt", true),
        ("a[b-d]e", "ae", false),
        ("a[b-d]e", "ace", true),
        ("a[b-d]e", "aae", false),
        ("a[^b-d]e", "aze", true),
        (".*", ".foo", true),
        (".*", "foo", false),
        ("abc.def", "abcdef", false),
        ("abc.def", "abc.def", true),
        ("abc?def", "abcZdef", true),
        ("abc?def", "abcdef", false),
        ("**/foo/bar", "foo/bar", true),
        ("**/foo/bar", "dir/dir2/foo/bar", true),
        ("abc/**", "abc", false),
        ("abc/**", "abc/def/ghi", true),
        ("**/.foo", ".foo", true),
        ("**/.foo", "bar.foo", false),
        ("a(b)c/def", "a(b)c/def", true),
        ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
        (
            "dist/*.whl",
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            true,
        ),
        ("a\\\\", "a\\", true),
        ("a\\*b", "a*b", true),
        ("a\\*b", "axb", false),
        // The brief's cases.
        ("*.log", "debug.log", true),
        ("*.log", "sub/debug.log", false),
        ("temp?", "temp1", true),
        ("temp?", "temp12", false),
        ("build/", "build/out.txt", true),
        ("build", "build/deep/out.txt", true),
        ("/rooted.txt", "rooted.txt", true),
        ("/rooted.txt", "sub/rooted.txt", false),
        ("**/node_modules", "pkg/node_modules/n.js", true),
        ("**/node_modules", "node_modules", true),
        ("./a/../b", "b", true),
        ("a*", "ab/c", true),
    ];
    for (pattern, path, want) in cases {
        assert_eq!(excluded(&[pattern], path), *want, "{pattern:?} vs {path:?}");
    }
}

#[test]
fn multi_pattern_table() {
    let cases: &[(&[&str], &str, bool)] = &[
        (&["**", "!util/docker/web"], "util/docker/web/foo", false),
        (
            &["**", "!util/docker/web", "util/docker/web/foo"],
            "util/docker/web/foo",
            true,
        ),
        (&["**", "!dist/*.whl"], "dist/proxy.whl", false),
        (&["docs", "!docs/README.md"], "docs/README.md", false),
        (&["docs/", "!docs/README.md"], "docs/README.md", false),
        (&["docs/*", "!docs/README.md"], "docs/README.md", false),
        (&["*.go", "!fileutils.go"], "fileutils.go", false),
        (&["!fileutils.go", "*.go"], "fileutils.go", true),
        (&["**/*.tmp", "!keep/**/*.tmp"], "keep/deep/d.tmp", false),
        (&["**/*.tmp", "!keep/**/*.tmp"], "deep/er/b.tmp", true),
        (&["docs/**", "!docs/README.md"], "docs/guide.md", true),
        (&["docs/**", "!docs/README.md"], "docs", false),
        (
            &["*.md", "!README*.md", "README-secret.md"],
            "README-secret.md",
            true,
        ),
        (
            &["*.md", "!README*.md", "README-secret.md"],
            "README.md",
            false,
        ),
    ];
    for (patterns, path, want) in cases {
        assert_eq!(excluded(patterns, path), *want, "{patterns:?} vs {path:?}");
    }
}

#[test]
fn read_all_rules() {
    let text = "\u{feff}# comment\n  # not a comment\n\n  *.log  \r\n! keep.log\n/abs/../x\n";
    let ignore = DockerIgnore::parse(text, Path::new(".dockerignore")).expect("parses");
    let texts: Vec<(&str, bool)> = ignore
        .patterns()
        .iter()
        .map(|p| (p.text(), p.is_exception()))
        .collect();
    assert_eq!(
        texts,
        vec![
            ("# not a comment", false),
            ("*.log", false),
            ("keep.log", true),
            ("x", false)
        ]
    );
}

#[test]
fn bad_patterns_name_file_line_and_pattern() {
    let cases: &[(&str, &str)] = &[
        ("ok\n[\n", "["),
        ("!\n", "!"),
        ("a\\", "a\\"),
        ("x[b-a]\n", "x[b-a]"),
    ];
    for (text, pattern) in cases {
        let err =
            DockerIgnore::parse(text, Path::new("/ctx/.dockerignore")).expect_err("must fail");
        let msg = err.to_string();
        assert!(msg.contains("/ctx/.dockerignore"), "{msg}");
        assert!(msg.contains(&format!("{pattern:?}")), "{msg}");
    }
}

#[test]
fn exception_pruning_table() {
    let cases: &[(&[&str], &str, bool)] = &[
        (&["docs/**", "!docs/README.md"], "docs/img", false),
        (&["docs", "!docs/README.md"], "docs", true),
        (&["build"], "build", false),
        (&["a", "!a/*/keep"], "a/b", true),
        (&["a", "!a/*/keep"], "a/b/c", false),
        (&["a", "!**/keep"], "a/b/c", true),
        (&["a", "!a"], "a/b", false),
        (&["a", "!a/x[ab]"], "a", true),
    ];
    for (patterns, dir, want) in cases {
        let ignore = DockerIgnore::from_patterns(patterns).expect("valid");
        assert_eq!(
            ignore.exception_could_match_below(dir),
            *want,
            "{patterns:?} {dir:?}"
        );
    }
}
