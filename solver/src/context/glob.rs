//! Glob matching with Go's `filepath.Match` syntax (COPY sources) and the
//! `**` extension that `.dockerignore` adds (moby/patternmatcher).
//!
//! Patterns are parsed into [`Token`]s once and matched with a memoised
//! backtracking matcher, so no regular-expression engine is needed.

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

/// Reads one possibly escaped character of a bracket expression (Go's
/// `getEsc`): `-` and `]` must be escaped, and the class must go on after it.
fn class_char(chars: &[char], i: &mut usize) -> Result<char, String> {
    let c = match chars.get(*i) {
        None => return Err("unterminated character class".into()),
        Some('-') | Some(']') => return Err("'-' or ']' must be escaped in a class".into()),
        Some('\\') => {
            *i += 1;
            *chars.get(*i).ok_or("trailing '\\' in a class")?
        }
        Some(&c) => c,
    };
    *i += 1;
    if *i >= chars.len() {
        return Err("unterminated character class".into());
    }
    Ok(c)
}

/// Parses a bracket expression whose `[` is at `chars[*i - 1]`.
fn parse_class(chars: &[char], i: &mut usize) -> Result<Class, String> {
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
        if lo > hi {
            return Err(format!("invalid range {lo}-{hi}"));
        }
        ranges.push((lo, hi));
    }
}

/// Compiles a Go `filepath.Match` pattern (`*`, `?`, `[...]`, `\` escapes;
/// `**` is just two stars). Errors carry the reason the syntax is invalid.
pub(crate) fn compile_match(pattern: &str) -> Result<Vec<Token>, String> {
    compile(pattern, false)
}

/// Compiles a pattern, optionally with `.dockerignore`'s `**` rules.
pub(crate) fn compile(pattern: &str, double_star: bool) -> Result<Vec<Token>, String> {
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
                let next = *chars.get(i).ok_or("trailing '\\'")?;
                i += 1;
                tokens.push(Token::Lit(next));
            }
            '[' => tokens.push(Token::Class(parse_class(&chars, &mut i)?)),
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
pub(crate) fn matches(tokens: &[Token], text: &str) -> bool {
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
pub(crate) fn has_wildcards(name: &str) -> bool {
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
pub(crate) fn go_clean(path: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn go_match(pattern: &str, name: &str) -> Result<bool, String> {
        compile_match(pattern).map(|t| matches(&t, name))
    }

    #[test]
    fn filepath_match_table() {
        // (pattern, name, expected); None = ErrBadPattern. Go's own table.
        let cases: &[(&str, &str, Option<bool>)] = &[
            ("abc", "abc", Some(true)),
            ("*", "abc", Some(true)),
            ("*c", "abc", Some(true)),
            ("a*", "a", Some(true)),
            ("a*", "abc", Some(true)),
            ("a*", "ab/c", Some(false)),
            ("a*/b", "abc/b", Some(true)),
            ("a*/b", "a/c/b", Some(false)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Some(true)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Some(true)),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Some(false)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Some(false)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Some(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Some(false)),
            ("ab[c]", "abc", Some(true)),
            ("ab[b-d]", "abc", Some(true)),
            ("ab[e-g]", "abc", Some(false)),
            ("ab[^c]", "abc", Some(false)),
            ("ab[^b-d]", "abc", Some(false)),
            ("ab[^e-g]", "abc", Some(true)),
            ("a\\*b", "a*b", Some(true)),
            ("a\\*b", "ab", Some(false)),
            ("a?b", "a☺b", Some(true)),
            ("a[^a]b", "a☺b", Some(true)),
            ("a???b", "a☺b", Some(false)),
            ("[a-ζ]*", "α", Some(true)),
            ("*[a-ζ]", "A", Some(false)),
            ("a?b", "a/b", Some(false)),
            ("a*b", "a/b", Some(false)),
            ("[\\]a]", "]", Some(true)),
            ("[\\-]", "-", Some(true)),
            ("[x\\-]", "x", Some(true)),
            ("[x\\-]", "-", Some(true)),
            ("[x\\-]", "z", Some(false)),
            ("[\\-x]", "-", Some(true)),
            ("[!a]", "!", Some(true)), // Go has no `[!...]` negation
            ("[!a]", "b", Some(false)),
            ("[]a]", "]", None),
            ("[-]", "-", None),
            ("[x-]", "x", None),
            ("[-x]", "x", None),
            ("\\", "a", None),
            ("[a-b-c]", "a", None),
            ("[", "a", None),
            ("[^", "a", None),
            ("[^bc", "a", None),
            ("a[", "ab", None),
            ("*x", "xxx", Some(true)),
            ("**", "a", Some(true)),
            ("**", "a/b", Some(false)),
        ];
        for (pattern, name, want) in cases {
            let got = go_match(pattern, name).ok();
            assert_eq!(got, *want, "Match({pattern:?}, {name:?})");
        }
    }

    #[test]
    fn double_star_tokens() {
        let cases: &[(&str, &str, bool)] = &[
            ("**/*.txt", "file.txt", true),
            ("**/*.txt", "a/b/file.txt", true),
            ("**/*.txt", "a/b/file.txt2", false),
            ("a/**/b", "a/b", true),
            ("a/**/b", "a/x/y/b", true),
            ("a/**/b", "ab", false),
            ("a**/*.txt", "a/dir/dir/file.txt", true),
            ("dir/**", "dir/x", true),
            ("dir/**", "dir", false),
        ];
        for (pattern, name, want) in cases {
            let tokens = compile(pattern, true).expect("valid pattern");
            assert_eq!(matches(&tokens, name), *want, "{pattern:?} vs {name:?}");
        }
    }

    #[test]
    fn wildcards_and_clean() {
        let wild: &[(&str, bool)] = &[
            ("a.txt", false),
            ("*.txt", true),
            ("a?", true),
            ("[ab]", true),
            ("a\\*b", false),
            ("dir/sub", false),
        ];
        for (name, want) in wild {
            assert_eq!(has_wildcards(name), *want, "{name:?}");
        }
        let clean: &[(&str, &str)] = &[
            ("", "."),
            ("a/./b/", "a/b"),
            ("a//b", "a/b"),
            ("../a", "../a"),
            ("/../a", "/a"),
            ("a/../..", ".."),
            ("/", "/"),
            ("./", "."),
        ];
        for (input, want) in clean {
            assert_eq!(go_clean(input), *want, "{input:?}");
        }
    }
}
