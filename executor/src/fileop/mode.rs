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
            if match_prefix(pattern, &comps) {
                excluded = !negate;
            }
        }
        excluded
    }
}

/// Whether `pattern` (components, `**` for any number of them) matches
/// some leading part `path[..n]`, `n >= 1`, of `path`.
///
/// A table instead of recursion: `reach[i]` says whether the pattern
/// components seen so far match `path[..i]`. Time is pattern length ×
/// depth, whatever the number of `**`.
fn match_prefix(pattern: &[String], path: &[&str]) -> bool {
    let mut reach = vec![false; path.len() + 1];
    reach[0] = true;
    for p in pattern {
        let mut next = vec![false; path.len() + 1];
        if p == "**" {
            let mut any = false;
            for (i, r) in reach.iter().enumerate() {
                any |= *r;
                next[i] = any;
            }
        } else {
            let pc: Vec<char> = p.chars().collect();
            for (i, c) in path.iter().enumerate() {
                if reach[i] {
                    next[i + 1] = glob(&pc, &c.chars().collect::<Vec<_>>());
                }
            }
        }
        reach = next;
    }
    reach.iter().skip(1).any(|&r| r)
}

/// One element of a compiled component pattern.
enum Elem {
    /// `*`: any run of characters.
    Star,
    /// `?`: one character.
    Any,
    /// A literal (or escaped) character.
    Lit(char),
    /// `[...]` / `[^...]`: one character in (or not in) the ranges.
    Class(bool, Vec<(char, char)>),
}

/// Compiles a component pattern; `None` when it is malformed.
fn compile(p: &[char]) -> Option<Vec<Elem>> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = p.get(i) {
        i += 1;
        out.push(match c {
            '*' => Elem::Star,
            '?' => Elem::Any,
            '\\' => {
                let e = *p.get(i)?;
                i += 1;
                Elem::Lit(e)
            }
            '[' => {
                let negate = p.get(i) == Some(&'^');
                if negate {
                    i += 1;
                }
                let mut ranges = Vec::new();
                loop {
                    let lo = *p.get(i)?;
                    if lo == ']' && !ranges.is_empty() {
                        i += 1;
                        break;
                    }
                    let lo = if lo == '\\' {
                        i += 2;
                        *p.get(i - 1)?
                    } else {
                        i += 1;
                        lo
                    };
                    let mut hi = lo;
                    if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|&h| h != ']') {
                        hi = if p[i + 1] == '\\' {
                            i += 3;
                            *p.get(i - 1)?
                        } else {
                            i += 2;
                            p[i - 1]
                        };
                    }
                    ranges.push((lo, hi));
                }
                Elem::Class(negate, ranges)
            }
            c => Elem::Lit(c),
        });
    }
    Some(out)
}

impl Elem {
    /// Whether this single-character element matches `c`.
    fn one(&self, c: char) -> bool {
        match self {
            Elem::Star => false,
            Elem::Any => true,
            Elem::Lit(l) => *l == c,
            Elem::Class(negate, ranges) => {
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negate
            }
        }
    }
}

/// Go `filepath.Match` for one component (no `/` inside); a malformed
/// pattern matches nothing. Matched without recursion or exponential
/// backtracking: on a mismatch only the last `*` takes one more character.
pub(crate) fn glob(p: &[char], s: &[char]) -> bool {
    let Some(elems) = compile(p) else {
        return false;
    };
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while let Some(&c) = s.get(si) {
        match elems.get(pi) {
            Some(Elem::Star) => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(e) if e.one(c) => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    star = Some((sp, ss + 1));
                    pi = sp + 1;
                    si = ss + 1;
                }
                None => return false,
            },
        }
    }
    elems[pi..].iter().all(|e| matches!(e, Elem::Star))
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

    /// `--exclude` matching neither recurses on the path's depth nor
    /// backtracks exponentially on many `*` or `**`.
    #[test]
    fn excludes_deep_paths_on_a_small_stack() {
        let got = std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(|| {
                let deep = "d/".repeat(20_000);
                let e = Excludes::new(&["**/**/**/x".into(), "d/**/keep/**".into()]);
                let stars = format!("{}b", "*a".repeat(15));
                let name = "a".repeat(300);
                (
                    e.excluded(&format!("{deep}x")),
                    e.excluded(&format!("{deep}y")),
                    e.excluded(&format!("{deep}keep/z")),
                    g(&stars, &name),
                    g(&stars, &format!("{name}b")),
                )
            })
            .expect("thread")
            .join()
            .expect("no overflow");
        assert_eq!(got, (true, false, true, false, true));
    }

    fn g(p: &str, s: &str) -> bool {
        glob(
            &p.chars().collect::<Vec<_>>(),
            &s.chars().collect::<Vec<_>>(),
        )
    }

    #[test]
    fn globs() {
        assert!(g("[^a]x", "bx"));
        assert!(!g("[^a]x", "ax"));
        assert!(g("[a-c]", "b"));
        assert!(g("[]a]", "]"));
        assert!(!g("[a", "a"));
        assert!(g("*.txt", ".txt"));
        assert!(g("a*b*c", "axxbyyc"));
        assert!(!g("a*b*c", "axxbyy"));
        assert!(g("*", ""));
        assert!(g("\\*x", "*x"));
        assert!(!g("x\\", "x"));
        assert!(g("[\\]]", "]"));
        assert!(g("[a-]", "-"));
    }
}
