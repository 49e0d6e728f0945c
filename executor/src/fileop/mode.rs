//! `--chmod` values and `--exclude` patterns.

use super::{Chmod, FileOpError};

/// The mode a copied entry gets: `mode` (permission bits incl. special
/// bits) changed by `chmod`.
pub(crate) fn apply_chmod(
    chmod: Option<&Chmod>,
    mode: u32,
    is_dir: bool,
) -> Result<u32, FileOpError> {
    match chmod {
        None => Ok(mode & 0o7777),
        Some(Chmod::Octal(m)) => Ok(m & 0o7777),
        Some(Chmod::Symbolic(spec)) => symbolic(spec, mode & 0o7777, is_dir)
            .ok_or_else(|| FileOpError::invalid(format!("invalid --chmod value {spec:?}"))),
    }
}

/// Applies a symbolic mode (`u+x,g-w,o=r`, `a+X`, `go=u`) as chmod(1) does
/// (no umask: a missing who means `a`).
fn symbolic(spec: &str, mut mode: u32, is_dir: bool) -> Option<u32> {
    for clause in spec.split(',') {
        let chars: Vec<char> = clause.chars().collect();
        let mut i = 0;
        let mut who = 0u32;
        while i < chars.len() && "ugoa".contains(chars[i]) {
            who |= match chars[i] {
                'u' => 0o4700,
                'g' => 0o2070,
                'o' => 0o1007,
                _ => 0o7777,
            };
            i += 1;
        }
        if who == 0 {
            who = 0o7777;
        }
        if i >= chars.len() {
            return None;
        }
        while i < chars.len() {
            let op = chars[i];
            if !"+-=".contains(op) {
                return None;
            }
            i += 1;
            let mut perm = 0u32;
            while i < chars.len() && !"+-=".contains(chars[i]) {
                perm |= match chars[i] {
                    'r' => 0o444,
                    'w' => 0o222,
                    'x' => 0o111,
                    'X' => {
                        if is_dir || mode & 0o111 != 0 {
                            0o111
                        } else {
                            0
                        }
                    }
                    's' => 0o6000,
                    't' => 0o1000,
                    'u' => ((mode >> 6) & 7) * 0o111,
                    'g' => ((mode >> 3) & 7) * 0o111,
                    'o' => (mode & 7) * 0o111,
                    _ => return None,
                };
                i += 1;
            }
            let bits = perm & who;
            match op {
                '+' => mode |= bits,
                '-' => mode &= !bits,
                _ => mode = (mode & !(who & 0o7777)) | bits,
            }
        }
    }
    Some(mode)
}

/// `--exclude` patterns: `.dockerignore` semantics (Go `filepath.Match`
/// per component, `**` for any number of components, `!` re-includes, the
/// last matching pattern wins, a pattern matching a parent directory
/// matches everything below it).
#[derive(Debug, Default)]
pub(crate) struct Excludes {
    patterns: Vec<(bool, Vec<String>)>,
    negations: bool,
}

impl Excludes {
    pub(crate) fn new(patterns: &[String]) -> Excludes {
        let mut out = Excludes::default();
        for p in patterns {
            let p = p.trim();
            let (negate, p) = match p.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, p),
            };
            let comps: Vec<String> = super::tree::clean(p)
                .into_iter()
                .map(str::to_string)
                .collect();
            if comps.is_empty() {
                continue;
            }
            out.negations |= negate;
            out.patterns.push((negate, comps));
        }
        out
    }

    /// Whether some pattern re-includes paths (then excluded directories
    /// are still walked).
    pub(crate) fn has_negations(&self) -> bool {
        self.negations
    }

    /// Whether relative path `rel` is excluded.
    pub(crate) fn excluded(&self, rel: &str) -> bool {
        if self.patterns.is_empty() || rel.is_empty() {
            return false;
        }
        let comps: Vec<&str> = rel.split('/').collect();
        let mut excluded = false;
        for (negate, pattern) in &self.patterns {
            let matched = (1..=comps.len()).any(|n| match_path(pattern, &comps[..n]));
            if matched {
                excluded = !negate;
            }
        }
        excluded
    }
}

fn match_path(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((p, rest)) if p == "**" => (0..=path.len()).any(|i| match_path(rest, &path[i..])),
        Some((p, rest)) => match path.split_first() {
            Some((c, tail)) => {
                let pc: Vec<char> = p.chars().collect();
                let cc: Vec<char> = c.chars().collect();
                glob(&pc, &cc) && match_path(rest, tail)
            }
            None => false,
        },
    }
}

/// Go `filepath.Match` for one component (no `/` inside); a malformed
/// pattern matches nothing.
pub(crate) fn glob(p: &[char], s: &[char]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some('*') => (0..=s.len()).any(|i| glob(&p[1..], &s[i..])),
        Some('?') => !s.is_empty() && glob(&p[1..], &s[1..]),
        Some('[') => {
            let Some((&c, rest_s)) = s.split_first() else {
                return false;
            };
            let mut i = 1;
            let negate = matches!(p.get(i), Some('^'));
            if negate {
                i += 1;
            }
            let mut matched = false;
            let mut first = true;
            loop {
                let Some(&lo) = p.get(i) else {
                    return false;
                };
                if lo == ']' && !first {
                    i += 1;
                    break;
                }
                first = false;
                let (lo, next) = match lo {
                    '\\' => match p.get(i + 1) {
                        Some(&e) => (e, i + 2),
                        None => return false,
                    },
                    lo => (lo, i + 1),
                };
                i = next;
                let mut hi = lo;
                if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|&h| h != ']') {
                    let (h, next) = match p[i + 1] {
                        '\\' => match p.get(i + 2) {
                            Some(&e) => (e, i + 3),
                            None => return false,
                        },
                        h => (h, i + 2),
                    };
                    hi = h;
                    i = next;
                }
                if lo <= c && c <= hi {
                    matched = true;
                }
            }
            matched != negate && glob(&p[i..], rest_s)
        }
        Some('\\') => match (p.get(1), s.first()) {
            (Some(e), Some(c)) if e == c => glob(&p[2..], &s[1..]),
            _ => false,
        },
        Some(c) => s.first() == Some(c) && glob(&p[1..], &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbolic_modes() {
        assert_eq!(symbolic("u+x", 0o644, false), Some(0o744));
        assert_eq!(symbolic("g-w,o=r", 0o664, false), Some(0o644));
        assert_eq!(symbolic("a+X", 0o644, false), Some(0o644));
        assert_eq!(symbolic("a+X", 0o644, true), Some(0o755));
        assert_eq!(symbolic("a+X", 0o744, false), Some(0o755));
        assert_eq!(symbolic("+x", 0o600, false), Some(0o711));
        assert_eq!(symbolic("go=u", 0o640, false), Some(0o666));
        assert_eq!(symbolic("u+s,+t", 0o755, false), Some(0o5755));
        assert_eq!(symbolic("u=rw", 0o4755, false), Some(0o655));
        assert_eq!(symbolic("u", 0o644, false), None);
        assert_eq!(symbolic("u+q", 0o644, false), None);
    }

    #[test]
    fn excludes() {
        let e = Excludes::new(&["*.md".into(), "sub/**/x".into(), "!keep.md".into()]);
        assert!(e.excluded("a.md"));
        assert!(!e.excluded("keep.md"));
        assert!(!e.excluded("d/a.md"));
        assert!(e.excluded("sub/x"));
        assert!(e.excluded("sub/a/b/x"));
        assert!(e.excluded("sub/a/x/below"));
        assert!(!e.excluded("sub/a/y"));
        let d = Excludes::new(&["dir".into(), "[ab]?.txt".into(), "\\*".into()]);
        assert!(d.excluded("dir/f"));
        assert!(d.excluded("a1.txt"));
        assert!(!d.excluded("c1.txt"));
        assert!(d.excluded("*"));
        assert!(!d.excluded("x"));
    }

    #[test]
    fn globs() {
        let g = |p: &str, s: &str| {
            glob(
                &p.chars().collect::<Vec<_>>(),
                &s.chars().collect::<Vec<_>>(),
            )
        };
        assert!(g("[^a]x", "bx"));
        assert!(!g("[^a]x", "ax"));
        assert!(g("[a-c]", "b"));
        assert!(g("[]a]", "]"));
        assert!(!g("[a", "a"));
        assert!(g("*.txt", ".txt"));
    }
}
