//! `.dockerignore` patterns, as BuildKit's pattern matcher reads them, for
//! the CopyIgnoredFile check.

/// The patterns of a `.dockerignore` file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerIgnore {
    patterns: Vec<Vec<String>>,
    has_exclusions: bool,
}

/// Lexical clean of a slash path, without a leading `/` or `./`.
fn clean(path: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            p => out.push(p.to_string()),
        }
    }
    out
}

impl DockerIgnore {
    /// Reads `.dockerignore` text: one pattern a line, `#` comments, `!`
    /// exceptions.
    pub fn parse(text: &str) -> Self {
        let mut d = DockerIgnore::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix('!') {
                d.has_exclusions = true;
                d.patterns.push(clean(rest.trim()));
                continue;
            }
            d.patterns.push(clean(line));
        }
        d
    }

    /// True when the file has `!` exceptions (BuildKit then skips the
    /// check altogether).
    pub fn has_exclusions(&self) -> bool {
        self.has_exclusions
    }

    /// True when `path` (relative to the context) or one of its parent
    /// directories matches a pattern.
    pub fn matches_or_parent_matches(&self, path: &str) -> bool {
        let parts = clean(path);
        if parts.is_empty() {
            return false;
        }
        (1..=parts.len()).any(|n| {
            self.patterns
                .iter()
                .any(|p| !p.is_empty() && match_parts(p, &parts[..n]))
        })
    }
}

fn match_parts(pattern: &[String], path: &[String]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| match_parts(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((p, prest)) => {
                match_segment(first.as_bytes(), p.as_bytes()) && match_parts(rest, prest)
            }
            None => false,
        },
    }
}

/// `*`, `?`, `[...]` and `\\x` within one path segment.
fn match_segment(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| match_segment(rest, &name[i..])),
        Some((b'?', rest)) => !name.is_empty() && match_segment(rest, &name[1..]),
        Some((b'[', rest)) => {
            let Some(close) = rest.iter().position(|&c| c == b']') else {
                return name.first() == Some(&b'[') && match_segment(rest, &name[1..]);
            };
            let (class, after) = (&rest[..close], &rest[close + 1..]);
            let Some(&c) = name.first() else { return false };
            let (negate, class) = match class.split_first() {
                Some((b'^' | b'!', cl)) => (true, cl),
                _ => (false, class),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negate && match_segment(after, &name[1..])
        }
        Some((b'\\', rest)) if !rest.is_empty() => {
            name.first() == Some(&rest[0]) && match_segment(&rest[1..], &name[1..])
        }
        Some((&c, rest)) => name.first() == Some(&c) && match_segment(rest, &name[1..]),
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
        assert!(d.matches_or_parent_matches("README.md"));
        assert!(!d.matches_or_parent_matches("docs/README.md"));
        assert!(d.matches_or_parent_matches("a/b/node_modules/x"));
        assert!(d.matches_or_parent_matches("build/bin"));
        assert!(!d.matches_or_parent_matches("build/x"));
        assert!(!d.matches_or_parent_matches("src/main.go"));
        assert!(!d.has_exclusions());
        assert!(DockerIgnore::parse("*\n!src\n").has_exclusions());
    }
}
