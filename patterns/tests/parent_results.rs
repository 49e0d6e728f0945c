//! `DockerIgnore::matches_using_parent_results`, patternmatcher's
//! `MatchesUsingParentResults` (what fsutil's copy filters `--exclude` with).

use kiln_patterns::DockerIgnore;

fn matcher(patterns: &[&str]) -> DockerIgnore {
    DockerIgnore::from_patterns(patterns).expect("valid patterns")
}

/// Whether `path` is excluded when each parent directory is matched first
/// and its state handed down, as a walk does.
fn walked(m: &DockerIgnore, path: &str) -> bool {
    let mut state = Vec::new();
    let mut excluded = false;
    let mut end = 0;
    for comp in path.split('/') {
        end += comp.len();
        (excluded, state) = m.matches_using_parent_results(&path[..end], &state);
        end += 1;
    }
    excluded
}

#[test]
fn walking_agrees_with_parent_matching_for_plain_patterns() {
    let m = matcher(&["**/*.md", "!keep/**", "build", "a**b", "**.log", "x/*/z"]);
    for path in [
        "r.md",
        "d/e/r.md",
        "keep/r.md",
        "keep/d/r.md",
        "build",
        "build/out/f",
        "ab",
        "a/q/b",
        "axb",
        "d/e.log",
        "x/y/z",
        "x/y/z/w",
        "x/y",
        "plain",
    ] {
        assert_eq!(walked(&m, path), m.is_excluded(path), "{path}");
    }
}

#[test]
fn without_parent_state_the_parents_are_matched() {
    let m = matcher(&["a", "x/*/z"]);
    assert!(m.matches_using_parent_results("a/b/c", &[]).0);
    assert!(m.matches_using_parent_results("x/y/z/w", &[]).0);
    assert!(!m.matches_using_parent_results("b/a", &[]).0);
    // With a state, only the path itself is matched.
    assert!(!m.matches_using_parent_results("a/b/c", &[false, false]).0);
    let (excluded, state) = m.matches_using_parent_results("a", &[]);
    assert!(excluded);
    assert_eq!(state, vec![true, false]);
}

/// A pattern that cannot change the result is not tried, and so not handed
/// down as matched: patternmatcher's walk re-includes `a/b` below `a`
/// where `MatchesOrParentMatches` (`is_excluded`) does not.
#[test]
fn untried_patterns_are_not_handed_down() {
    let m = matcher(&["a", "!a/b", "a"]);
    assert!(walked(&m, "a"));
    assert!(!walked(&m, "a/b"));
    assert!(m.is_excluded("a/b"));
    let (_, state) = m.matches_using_parent_results("a", &[]);
    assert_eq!(state, vec![true, false, false]);
    // An exception is only tried on an excluded path.
    let e = matcher(&["!k", "d"]);
    assert_eq!(
        e.matches_using_parent_results("k", &[]),
        (false, vec![false, false])
    );
}

#[test]
fn a_short_state_counts_as_unmatched() {
    let m = matcher(&["a", "b"]);
    assert!(m.matches_using_parent_results("b/c", &[true]).0);
    assert!(!m.matches_using_parent_results("c", &[false]).0);
}
