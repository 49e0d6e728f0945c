//! Shell patterns for the `#`, `##`, `%`, `%%`, `/` and `//` operators.
//!
//! BuildKit turns these patterns into Go regular expressions; this module
//! matches them directly with the same results:
//!
//! - `*` matches any run of characters and `?` any single character, except
//!   that neither matches a newline (Go's `.` does not match `\n`);
//! - `\*`, `\?` and `\\` are the literal characters; `\}` and `\/` are `}`
//!   and `/` (the backslash only protected them from the `${…}` parser); any
//!   other escape, or a lone trailing `\`, is an error;
//! - every other character is literal (there are no bracket expressions).
//!
//! Go's leftmost-first semantics with lazy (`.*?`) or greedy (`.*`) stars
//! equal "shortest" and "longest" match for these patterns, so an anchored
//! match is found by simulating the pattern's automaton and keeping the
//! first or last accepting position, and an unanchored search keeps the
//! leftmost start and then the longest end from it.

/// One element of a compiled pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// `*`: any run of non-newline characters.
    Star,
    /// `?`: one non-newline character.
    Any,
    /// A literal character.
    Lit(char),
}

/// A pattern that does not compile: the character after the offending
/// backslash, `None` for a trailing backslash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct InvalidEscape(pub(super) Option<char>);

impl InvalidEscape {
    /// BuildKit's description of the problem.
    pub(super) fn reason(self) -> String {
        match self.0 {
            Some(c) => format!("invalid escape '\\{c}'"),
            None => "invalid escape '\\' at end of pattern".to_string(),
        }
    }
}

/// Why [`replace`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReplaceError {
    /// The pattern does not compile.
    Pattern(InvalidEscape),
    /// The result would be longer than the limit given to [`replace`].
    TooLong,
}

impl From<InvalidEscape> for ReplaceError {
    fn from(e: InvalidEscape) -> Self {
        Self::Pattern(e)
    }
}

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    tokens: Vec<Token>,
}

/// Per automaton state, the smallest match start that reaches it.
type States = Vec<Option<usize>>;

fn merge(slot: &mut Option<usize>, start: usize) {
    *slot = Some(slot.map_or(start, |s| s.min(start)));
}

impl Pattern {
    fn compile(pattern: &str) -> Result<Self, InvalidEscape> {
        let mut chars = pattern.chars().peekable();
        // Go's text/scanner drops a byte-order mark at the very start.
        chars.next_if_eq(&'\u{FEFF}');
        let mut tokens = Vec::new();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' => Token::Star,
                '?' => Token::Any,
                '\\' => {
                    if matches!(chars.peek(), Some('}' | '/')) {
                        continue;
                    }
                    match chars.next() {
                        Some(e @ ('*' | '?' | '\\')) => Token::Lit(e),
                        other => return Err(InvalidEscape(other)),
                    }
                }
                c => Token::Lit(c),
            });
        }
        Ok(Self { tokens })
    }

    fn accept(&self) -> usize {
        self.tokens.len()
    }

    /// Follow the empty transitions (a `*` may match nothing).
    fn close(&self, states: &mut States) {
        for (k, token) in self.tokens.iter().enumerate() {
            if *token == Token::Star {
                if let Some(start) = states[k] {
                    merge(&mut states[k + 1], start);
                }
            }
        }
    }

    /// Consume `c` from `cur` into `next`.
    fn step(&self, cur: &States, c: char, next: &mut States) {
        next.iter_mut().for_each(|s| *s = None);
        for (k, token) in self.tokens.iter().enumerate() {
            let Some(start) = cur[k] else { continue };
            match *token {
                Token::Star if c != '\n' => merge(&mut next[k], start),
                Token::Any if c != '\n' => merge(&mut next[k + 1], start),
                Token::Lit(l) if l == c => merge(&mut next[k + 1], start),
                _ => {}
            }
        }
        self.close(next);
    }

    /// Length of the shortest (or longest) prefix of `text` that the whole
    /// pattern matches.
    fn prefix_match(&self, text: &[char], longest: bool) -> Option<usize> {
        let mut cur: States = vec![None; self.tokens.len() + 1];
        let mut next = cur.clone();
        cur[0] = Some(0);
        self.close(&mut cur);
        let mut found = None;
        for i in 0..=text.len() {
            if cur[self.accept()].is_some() {
                found = Some(i);
                if !longest {
                    break;
                }
            }
            let Some(&c) = text.get(i) else { break };
            if cur.iter().all(Option::is_none) {
                break;
            }
            self.step(&cur, c, &mut next);
            std::mem::swap(&mut cur, &mut next);
        }
        found
    }

    /// Leftmost match starting at or after `from`, longest at that start
    /// (Go's `FindStringIndex` with greedy stars), as char indices.
    fn find(&self, text: &[char], from: usize) -> Option<(usize, usize)> {
        let mut cur: States = vec![None; self.tokens.len() + 1];
        let mut next = cur.clone();
        let mut best: Option<(usize, usize)> = None;
        let mut i = from;
        loop {
            match best {
                None => {
                    merge(&mut cur[0], i);
                    self.close(&mut cur);
                }
                // Threads that started after the best match cannot win.
                Some((b, _)) => cur.iter_mut().for_each(|s| {
                    if s.is_some_and(|s| s > b) {
                        *s = None;
                    }
                }),
            }
            if let Some(s) = cur[self.accept()] {
                best = match best {
                    Some((b, _)) if s > b => best,
                    _ => Some((s, i)),
                };
            }
            let Some(&c) = text.get(i) else { break };
            if best.is_some() && cur.iter().all(Option::is_none) {
                break;
            }
            self.step(&cur, c, &mut next);
            std::mem::swap(&mut cur, &mut next);
            i += 1;
        }
        best
    }
}

/// `${var#pattern}` (shortest) and `${var##pattern}` (longest): remove the
/// matching prefix of `value`, if any.
pub(super) fn trim_prefix(
    pattern: &str,
    value: &str,
    longest: bool,
) -> Result<String, InvalidEscape> {
    let compiled = Pattern::compile(pattern)?;
    let text: Vec<char> = value.chars().collect();
    Ok(match compiled.prefix_match(&text, longest) {
        Some(n) => text[n..].iter().collect(),
        None => value.to_string(),
    })
}

/// `${var%pattern}` (shortest) and `${var%%pattern}` (longest): remove the
/// matching suffix of `value`, if any. Like BuildKit, this reverses the
/// pattern (keeping `\x` pairs together) and the value, and trims a prefix.
pub(super) fn trim_suffix(
    pattern: &str,
    value: &str,
    longest: bool,
) -> Result<String, InvalidEscape> {
    let compiled = Pattern::compile(&reverse_pattern(pattern))?;
    let text: Vec<char> = value.chars().rev().collect();
    Ok(match compiled.prefix_match(&text, longest) {
        Some(n) => text[n..].iter().rev().collect(),
        None => value.to_string(),
    })
}

/// `${var/pattern/replacement}` (first match, `all == false`) and
/// `${var//pattern/replacement}` (all matches).
///
/// As in BuildKit (Go's `ReplaceAllString`), the replace-all form treats the
/// replacement as a regexp template: `$$` is a `$`, `$0`/`${0}` is the
/// matched text, any other `$name`/`${name}` is empty, and a `$` not
/// followed by a name is literal. The first-match form inserts the
/// replacement verbatim.
///
/// Fails with [`ReplaceError::TooLong`] as soon as the result grows past
/// `limit` bytes (replacing every character of a long value with a long
/// replacement would otherwise multiply their sizes).
pub(super) fn replace(
    pattern: &str,
    value: &str,
    replacement: &str,
    all: bool,
    limit: usize,
) -> Result<String, ReplaceError> {
    let compiled = Pattern::compile(pattern)?;
    let text: Vec<char> = value.chars().collect();
    let mut out = String::with_capacity(value.len());
    if !all {
        let out = match compiled.find(&text, 0) {
            Some((start, end)) => {
                out.extend(&text[..start]);
                out.push_str(replacement);
                out.extend(&text[end..]);
                out
            }
            None => value.to_string(),
        };
        return if out.len() > limit {
            Err(ReplaceError::TooLong)
        } else {
            Ok(out)
        };
    }
    // Go's regexp.replaceAll, in char instead of byte positions.
    let (mut last_end, mut search) = (0usize, 0usize);
    while search <= text.len() {
        let Some((start, end)) = compiled.find(&text, search) else {
            break;
        };
        out.extend(&text[last_end..start]);
        // No replacement for an empty match right after the previous match.
        if end > last_end || start == 0 {
            let matched: String = text[start..end].iter().collect();
            expand_template(replacement, &matched, &mut out, limit);
        }
        if out.len() > limit {
            return Err(ReplaceError::TooLong);
        }
        last_end = end;
        // Advance past this match, always by at least one character.
        let width = usize::from(search < text.len());
        if search + width > end {
            search += width;
        } else if search + 1 > end {
            search += 1;
        } else {
            search = end;
        }
    }
    out.extend(&text[last_end..]);
    if out.len() > limit {
        return Err(ReplaceError::TooLong);
    }
    Ok(out)
}

/// Go's `Regexp.Expand` for a regexp whose only group is the whole match.
/// Stops early once `out` is longer than `limit` (a template of many `$0`s
/// repeats the match that many times).
fn expand_template(template: &str, whole: &str, out: &mut String, limit: usize) {
    let mut rest = template;
    while let Some(dollar) = rest.find('$') {
        if out.len() > limit {
            return;
        }
        out.push_str(&rest[..dollar]);
        rest = &rest[dollar + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        match template_name(rest) {
            Some((name, after)) => {
                if name == "0" {
                    out.push_str(whole);
                }
                rest = after;
            }
            // Malformed: the `$` is literal.
            None => out.push('$'),
        }
    }
    out.push_str(rest);
}

/// Go's `regexp.extract`: a `name` or `{name}` of letters, digits and `_`.
fn template_name(s: &str) -> Option<(&str, &str)> {
    let (brace, body) = match s.strip_prefix('{') {
        Some(body) => (true, body),
        None => (false, s),
    };
    let len = body
        .char_indices()
        .find(|&(_, c)| {
            !(super::unicode_class::is_letter(c) || super::unicode_class::is_digit(c) || c == '_')
        })
        .map_or(body.len(), |(i, _)| i);
    if len == 0 {
        return None;
    }
    let (name, after) = body.split_at(len);
    if brace {
        after.strip_prefix('}').map(|after| (name, after))
    } else {
        Some((name, after))
    }
}

/// Reverse a pattern but keep each `\x` pair in order (`a\*c` → `c\*a`); a
/// trailing lone `\` is kept as a single character. BuildKit's
/// `reversePattern`.
fn reverse_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut units: Vec<&[char]> = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let len = if chars[i] == '\\' && i + 1 < chars.len() {
            2
        } else {
            1
        };
        units.push(&chars[i..i + len]);
        i += len;
    }
    units.iter().rev().flat_map(|u| u.iter()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(p: &str) -> Vec<Token> {
        Pattern::compile(p).expect("valid pattern").tokens
    }

    #[test]
    fn compile_like_convert_shell_pattern_to_regex() {
        use Token::*;
        assert_eq!(toks("*"), vec![Star]);
        assert_eq!(toks("?"), vec![Any]);
        assert_eq!(toks("\\*"), vec![Lit('*')]);
        assert_eq!(
            toks("(()[]{\\}^$.\\*\\?|\\\\"),
            "(()[]{}^$.*?|\\".chars().map(Lit).collect::<Vec<_>>()
        );
        assert_eq!(toks("a\\/b"), vec![Lit('a'), Lit('/'), Lit('b')]);
        assert_eq!(toks(""), vec![]);
        assert_eq!(toks("\u{FEFF}a\u{FEFF}"), vec![Lit('a'), Lit('\u{FEFF}')]);
        for (bad, esc) in [
            ("\\", None),
            ("\\x", Some('x')),
            ("\\\\\\", None),
            ("a\\}\\n", Some('n')),
        ] {
            assert_eq!(Pattern::compile(bad), Err(InvalidEscape(esc)), "{bad:?}");
        }
        assert_eq!(InvalidEscape(Some('x')).reason(), "invalid escape '\\x'");
    }

    #[test]
    fn reverse_pattern_keeps_escape_pairs() {
        for (p, want) in [
            ("a\\*c", "c\\*a"),
            ("\\\\\\ab", "b\\a\\\\"),
            ("ab\\", "\\ba"),
            ("👽\\🚀🖖", "🖖\\🚀👽"),
            ("\\\\b", "b\\\\"),
            ("", ""),
        ] {
            assert_eq!(reverse_pattern(p), want, "{p:?}");
        }
    }

    #[test]
    fn prefix_and_suffix() {
        let t = |p: &str, v: &str, l: bool| trim_prefix(p, v, l).expect("valid");
        let s = |p: &str, v: &str, l: bool| trim_suffix(p, v, l).expect("valid");
        assert_eq!(t("*x*y", "xxyy", false), "y");
        assert_eq!(t("*x*y", "xxyy", true), "");
        assert_eq!(t("*", "xxyy", false), "xxyy");
        assert_eq!(t("*", "xxyy", true), "");
        assert_eq!(t("*x", "xxyy", true), "yy");
        assert_eq!(t("?\\?", "???y", false), "?y");
        assert_eq!(t("z", "xxyy", false), "xxyy");
        assert_eq!(t("", "xxyy", true), "xxyy");
        assert_eq!(s("y*", "xxyy", false), "xxy");
        assert_eq!(s("y*", "xxyy", true), "xx");
        assert_eq!(s("\\**", "xx**", true), "xx");
        assert_eq!(s("\\**\\*", "a***yy*", true), "a");
        assert_eq!(s("x", "xxyy", false), "xxyy");
        // Unicode is matched by characters.
        assert_eq!(t("?", "한국어", false), "국어");
        assert_eq!(s("?", "한국어", false), "한국");
        // `*` and `?` do not cross a newline, literals do.
        assert_eq!(t("*", "ab\ncd", true), "\ncd");
        assert_eq!(t("*b?c", "ab\ncd", true), "ab\ncd");
        assert_eq!(t("*b\nc", "ab\ncd", true), "d");
        // A trailing lone backslash reverses into an escape (BuildKit quirk).
        assert_eq!(s("a*\\", "xa*", false), "x");
        assert_eq!(trim_prefix("a*\\", "a*", false), Err(InvalidEscape(None)));
    }

    #[test]
    fn replace_first_and_all() {
        let r = |p: &str, v: &str, rep: &str, all: bool| {
            replace(p, v, rep, all, usize::MAX).expect("valid")
        };
        assert_eq!(r("\\*/", "/foo*/*/*.txt", ".", false), "/foo.*/*.txt");
        assert_eq!(r("\\*/", "/foo*/*/*.txt", ".", true), "/foo..*.txt");
        assert_eq!(r("/?/", "/a/foo/b/c.txt", "/", true), "/foo/c.txt");
        assert_eq!(r("", "xxyy", "ww", false), "wwxxyy");
        assert_eq!(r("", "xy", "-", true), "-x-y-");
        assert_eq!(r("", "", "-", true), "-");
        assert_eq!(r("x*", "axxb", "-", true), "a-");
        assert_eq!(r("*", "ab\ncd", "-", true), "-\n-");
        assert_eq!(r("o", "foo", "[$0]", true), "f[o][o]");
        assert_eq!(
            r("o", "foo", "[${0}|$1|$$|$}|${x]", true),
            "f[o||$|$}|${x][o||$|$}|${x]"
        );
        assert_eq!(r("o", "foo", "[$0]", false), "f[$0]o");
        assert_eq!(r("?", "한국어", "_", true), "___");
        assert_eq!(r("z", "xxyy", "_", true), "xxyy");
    }

    #[test]
    fn find_is_leftmost_then_longest() {
        let p = Pattern::compile("a*b").expect("valid");
        let text: Vec<char> = "xxaab-ab".chars().collect();
        assert_eq!(p.find(&text, 0), Some((2, 8)));
        assert_eq!(p.find(&text, 3), Some((3, 8)));
        let p = Pattern::compile("b?").expect("valid");
        assert_eq!(p.find(&text, 0), Some((4, 6)));
        assert_eq!(p.find(&text, 7), None);
    }
}
