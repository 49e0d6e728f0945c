//! Glob matching with Go's `filepath.Match` syntax (COPY sources) and the
//! `**` extension that `.dockerignore` adds (moby/patternmatcher).
//!
//! A pattern is parsed into tokens once and matched with a table filled
//! backwards (no recursion, no regular-expression engine): the cost is
//! tokens × characters, whatever the pattern.

use crate::PatternError;

/// One element of a compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Token {
    /// A literal character.
    Lit(char),
    /// `?`: any one character except `/`.
    Any,
    /// `*`: any run of characters without `/`.
    Star,
    /// `[...]`: one character from (or, negated, not from) a set of ranges.
    Class(Class),
    /// `**` followed by more pattern: nothing, or anything that ends with `/`
    /// (patternmatcher's `(.*/)?`).
    AnyDirs,
    /// `**` at the end of a pattern: anything (patternmatcher's `.*`).
    AnyRest,
}

/// A bracket expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Class {
    negated: bool,
    ranges: Vec<(char, char)>,
}

impl Class {
    fn matches(&self, c: char) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != self.negated
    }
}

/// A compiled pattern.
///
/// [`Pattern::new`] reads Go's `filepath.Match` syntax: `*` (a run without
/// `/`), `?` (one character but `/`), `[...]` / `[^...]` with ranges, `\`
/// escapes. For a name without `/` (one path component, as COPY matches
/// them) the result is Go's; across `/` it is the plain regular-language
/// meaning of the pattern. [`Pattern::with_double_star`] adds
/// `.dockerignore`'s `**`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    tokens: Vec<Token>,
}

impl Pattern {
    /// Compiles a Go `filepath.Match` pattern (`**` is just two stars).
    pub fn new(pattern: &str) -> Result<Pattern, PatternError> {
        compile(pattern, false).map(|tokens| Pattern { tokens })
    }

    /// Compiles a pattern with patternmatcher's `**`: `**/` matches any
    /// number of directories, a final `**` anything. As patternmatcher's
    /// regular expressions do, it rejects a range like `[b-a]`, which
    /// [`Pattern::new`] (Go) accepts as matching nothing.
    pub fn with_double_star(pattern: &str) -> Result<Pattern, PatternError> {
        compile(pattern, true).map(|tokens| Pattern { tokens })
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        matches(&self.tokens, text)
    }

    /// The name this pattern stands for when it has no wildcards (escapes
    /// removed), else `None`.
    pub fn literal(&self) -> Option<String> {
        self.tokens
            .iter()
            .map(|t| match t {
                Token::Lit(c) => Some(*c),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn tokens(&self) -> &[Token] {
        &self.tokens
    }
}

/// Go's `filepath.Match(pattern, name)` on Unix: whether `name` matches,
/// or [`PatternError`] (Go's `ErrBadPattern`) for malformed syntax.
pub fn go_match(pattern: &str, name: &str) -> Result<bool, PatternError> {
    Pattern::new(pattern).map(|p| p.matches(name))
}

/// Reads one possibly escaped character of a bracket expression (Go's
/// `getEsc`): `-` and `]` must be escaped, and the class must go on after it.
fn class_char(chars: &[char], i: &mut usize) -> Result<char, PatternError> {
    let c = match chars.get(*i) {
        None => return Err(PatternError::UnterminatedClass),
        Some('-') | Some(']') => return Err(PatternError::UnescapedInClass),
        Some('\\') => {
            *i += 1;
            *chars.get(*i).ok_or(PatternError::TrailingEscapeInClass)?
        }
        Some(&c) => c,
    };
    *i += 1;
    if *i >= chars.len() {
        return Err(PatternError::UnterminatedClass);
    }
    Ok(c)
}

/// Parses a bracket expression whose `[` is at `chars[*i - 1]`. A range
/// whose start is after its end matches nothing in Go's `filepath.Match`;
/// patternmatcher's regular expressions reject it (`strict_ranges`).
fn parse_class(chars: &[char], i: &mut usize, strict_ranges: bool) -> Result<Class, PatternError> {
    let mut negated = false;
    if chars.get(*i) == Some(&'^') {
        negated = true;
        *i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        if chars.get(*i) == Some(&']') && !ranges.is_empty() {
            *i += 1;
            return Ok(Class { negated, ranges });
        }
        let lo = class_char(chars, i)?;
        let mut hi = lo;
        if chars.get(*i) == Some(&'-') {
            *i += 1;
            hi = class_char(chars, i)?;
        }
        if strict_ranges && lo > hi {
            return Err(PatternError::InvalidRange { lo, hi });
        }
        ranges.push((lo, hi));
    }
}

/// Compiles a pattern, optionally with `.dockerignore`'s `**` rules.
fn compile(pattern: &str, double_star: bool) -> Result<Vec<Token>, PatternError> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if double_star && chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                tokens.push(if i >= chars.len() {
                    Token::AnyRest
                } else {
                    Token::AnyDirs
                });
            }
            '*' => tokens.push(Token::Star),
            '?' => tokens.push(Token::Any),
            '\\' => {
                let next = *chars.get(i).ok_or(PatternError::TrailingEscape)?;
                i += 1;
                tokens.push(Token::Lit(next));
            }
            '[' => tokens.push(Token::Class(parse_class(&chars, &mut i, double_star)?)),
            c => tokens.push(Token::Lit(c)),
        }
    }
    Ok(tokens)
}

/// Whether `text` matches the compiled `tokens` completely.
///
/// A table, filled from the last token and the end of the text backwards:
/// one row per token, one cell per position in `text` (whether the tokens
/// from here match the text from there). Time is tokens × characters and
/// nothing recurses, however long the path.
fn matches(tokens: &[Token], text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    // `next[ci]`: whether the tokens after the current one match chars[ci..].
    let mut next: Vec<bool> = (0..=n).map(|ci| ci == n).collect();
    let mut cur = vec![false; n + 1];
    for token in tokens.iter().rev() {
        // For `**/`: whether some `/` at or after ci, before any newline,
        // is followed by a match of the rest.
        let mut slash_then_rest = false;
        for ci in (0..=n).rev() {
            let c = chars.get(ci).copied();
            let after = |v: &[bool]| v.get(ci + 1).copied().unwrap_or(false);
            cur[ci] = match token {
                Token::Lit(l) => c == Some(*l) && after(&next),
                Token::Any => c.is_some_and(|c| c != '/') && after(&next),
                Token::Class(class) => c.is_some_and(|c| class.matches(c)) && after(&next),
                Token::Star => next[ci] || (c.is_some_and(|c| c != '/') && after(&cur)),
                // Go's `.` does not match a newline.
                Token::AnyRest => next[ci] || (c.is_some_and(|c| c != '\n') && after(&cur)),
                Token::AnyDirs => {
                    slash_then_rest = match c {
                        None | Some('\n') => false,
                        Some('/') => after(&next) || slash_then_rest,
                        Some(_) => slash_then_rest,
                    };
                    next[ci] || slash_then_rest
                }
            };
        }
        std::mem::swap(&mut next, &mut cur);
    }
    next[0]
}

/// Whether `name` contains an unescaped `*`, `?` or `[` (BuildKit's
/// `containsWildcards`).
pub fn has_wildcards(name: &str) -> bool {
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// Go's `path.Clean`: the shortest equivalent slash path, `.` when empty.
pub fn go_clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|last| *last != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// A context-relative path as the build looks it up: cleaned, `..`
/// clamped at the root, no leading `/` or `./`. The root is `""`.
pub fn clean_relative(path: &str) -> String {
    let cleaned = go_clean(&format!("/{path}"));
    cleaned.trim_start_matches('/').to_string()
}
