//! Relative paths inside an image filesystem, as strings: `/`-separated,
//! no leading `/`, `""` for the root. One set of rules for the file
//! actions and the layer stack's lookups.

/// Splits a path into components: empty and `.` dropped, `..` clamped at
/// the root.
pub(crate) fn clean(path: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// `parent/name` for relative paths (`""` is the root).
pub(crate) fn join(parent: &str, name: &str) -> String {
    match (parent.is_empty(), name.is_empty()) {
        (true, _) => name.to_string(),
        (_, true) => parent.to_string(),
        _ => format!("{parent}/{name}"),
    }
}

/// The parent of a relative path (`""` for top-level names).
pub(crate) fn parent(rel: &str) -> &str {
    rel.rfind('/').map_or("", |i| &rel[..i])
}

/// The last component of a relative path.
pub(crate) fn base_name(rel: &str) -> &str {
    rel.rfind('/').map_or(rel, |i| &rel[i + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_clamps() {
        assert_eq!(clean("/a/./b/../../../c/"), vec!["c"]);
        assert!(clean("./").is_empty());
    }

    #[test]
    fn joins_and_splits() {
        assert_eq!(join("", "a"), "a");
        assert_eq!(join("a/b", "c"), "a/b/c");
        assert_eq!(parent("a/b/c"), "a/b");
        assert_eq!(parent("a"), "");
        assert_eq!(base_name("a/b/c"), "c");
    }
}
