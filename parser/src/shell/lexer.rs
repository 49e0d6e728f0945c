//! The expansion engine: a port of the behaviour of BuildKit's `shellWord`
//! (`frontend/dockerfile/shell/lex.go`) over a char cursor.

use std::collections::BTreeSet;

use super::env::Env;
use super::error::ShellError;
use super::pattern;
use super::unicode_class::{is_digit, is_letter, is_space};
use super::Lexer;

/// Deepest `${…}` nesting accepted before failing with
/// [`ShellError::TooDeeplyNested`] instead of exhausting the stack.
const MAX_NESTING: usize = 256;

/// Longest word expansion may produce before failing with
/// [`ShellError::TooLong`]; a longer input word raises the bound to its own
/// length, so only growth by expansion is refused.
pub(super) const MAX_WORD_BYTES: usize = 1 << 20;

/// Everything one run produces.
pub(super) struct Output {
    pub(super) value: String,
    pub(super) words: Vec<String>,
    pub(super) matched: BTreeSet<String>,
    pub(super) unmatched: BTreeSet<String>,
}

/// Run the lexer over `word`.
pub(super) fn run(settings: Lexer, word: &str, env: &dyn Env) -> Result<Output, ShellError> {
    let mut chars: Vec<(usize, char)> = word.char_indices().collect();
    // Go's text/scanner drops a byte-order mark at the very start.
    if chars.first().is_some_and(|&(_, c)| c == '\u{FEFF}') {
        chars.remove(0);
    }
    let mut state = State {
        settings,
        env,
        chars,
        end: word.len(),
        pos: 0,
        raw_escapes: settings.raw_escapes,
        depth: 0,
        limit: MAX_WORD_BYTES.max(word.len()),
        matched: BTreeSet::new(),
        unmatched: BTreeSet::new(),
    };
    let (value, words) = state.process_until(None, settings.raw_escapes)?;
    Ok(Output {
        value,
        words,
        matched: state.matched,
        unmatched: state.unmatched,
    })
}

/// Word-splitting accumulator (BuildKit's `wordsStruct`).
#[derive(Default)]
struct Words {
    words: Vec<String>,
    word: String,
}

impl Words {
    /// An unquoted character: whitespace ends the current word.
    fn add_char(&mut self, c: char) {
        if !is_space(c) {
            self.word.push(c);
        } else if !self.word.is_empty() {
            self.words.push(std::mem::take(&mut self.word));
        }
    }

    /// A quoted or escaped character: always part of the word.
    fn add_raw_char(&mut self, c: char) {
        self.word.push(c);
    }

    /// The value of an unquoted expansion: split on whitespace.
    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    /// A quoted part: added as a block (an empty one adds nothing).
    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

struct State<'a> {
    settings: Lexer,
    env: &'a dyn Env,
    chars: Vec<(usize, char)>,
    /// Byte length of the input (the offset of end of input).
    end: usize,
    pos: usize,
    /// Current raw-escapes mode (switched on inside patterns).
    raw_escapes: bool,
    depth: usize,
    /// Longest result allowed (see [`MAX_WORD_BYTES`]).
    limit: usize,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

impl State<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).map(|&(_, c)| c)
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    /// Byte offset of the character at the cursor.
    fn offset(&self) -> usize {
        self.chars.get(self.pos).map_or(self.end, |&(o, _)| o)
    }

    /// Input text from byte offset `from` through the character at the
    /// cursor.
    fn text_through_cursor(&self, from: usize) -> String {
        let to = self.offset();
        self.chars
            .iter()
            .filter(|&&(o, _)| o >= from && o <= to)
            .map(|&(_, c)| c)
            .collect()
    }

    /// BuildKit's `processStopOn`: process until `stop` (consumed) or the
    /// end of input. Returns the processed text and its words.
    fn process_until(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), ShellError> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let result = self.process_until_inner(stop);
        self.raw_escapes = saved;
        result
    }

    fn process_until_inner(
        &mut self,
        stop: Option<char>,
    ) -> Result<(String, Vec<String>), ShellError> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if stop == Some(c) {
                self.pos += 1;
                return Ok((result, words.finish()));
            }
            let quotes = !self.settings.skip_process_quotes;
            match c {
                '$' => {
                    let offset = self.offset();
                    let s = self.process_dollar()?;
                    words.add_string(&s);
                    result.push_str(&s);
                    self.check_len(&result, offset)?;
                }
                '\'' if quotes => {
                    let s = self.process_single_quote()?;
                    words.add_raw_string(&s);
                    result.push_str(&s);
                }
                '"' if quotes => {
                    let s = self.process_double_quote()?;
                    words.add_raw_string(&s);
                    result.push_str(&s);
                }
                '<' => {
                    let s = self.process_possible_heredoc();
                    words.add_raw_string(&s);
                    result.push_str(&s);
                }
                _ => {
                    self.pos += 1;
                    if c == self.settings.escape {
                        if self.raw_escapes {
                            words.add_raw_char(c);
                            result.push(c);
                        }
                        // The escape escapes anything, except the end of input.
                        let Some(escaped) = self.next() else { break };
                        words.add_raw_char(escaped);
                        result.push(escaped);
                    } else {
                        words.add_char(c);
                        result.push(c);
                    }
                }
            }
        }
        match stop {
            // Callers turn this into the error that names the construct.
            Some(_) => Err(ShellError::MissingClosingBrace { offset: self.end }),
            None => Ok((result, words.finish())),
        }
    }

    /// `'…'`: everything literal up to the next `'`.
    fn process_single_quote(&mut self) -> Result<String, ShellError> {
        let offset = self.offset();
        let mut result = String::new();
        let raw = self.settings.raw_quotes;
        if let Some(open) = self.next().filter(|_| raw) {
            result.push(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(ShellError::UnterminatedQuote {
                        quote: '\'',
                        offset,
                    })
                }
                Some('\'') => {
                    if raw {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    /// `"…"`: `$` expands; the escape character escapes only `"`, `$` and
    /// itself.
    fn process_double_quote(&mut self) -> Result<String, ShellError> {
        let offset = self.offset();
        let mut result = String::new();
        let raw = self.settings.raw_quotes;
        if let Some(open) = self.next().filter(|_| raw) {
            result.push(open);
        }
        loop {
            match self.peek() {
                None => return Err(ShellError::UnterminatedQuote { quote: '"', offset }),
                Some('"') => {
                    self.pos += 1;
                    if raw {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let at = self.offset();
                    let s = self.process_dollar()?;
                    result.push_str(&s);
                    self.check_len(&result, at)?;
                }
                Some(mut c) => {
                    self.pos += 1;
                    let escape = self.settings.escape;
                    if c == escape {
                        if self.raw_escapes {
                            result.push(c);
                        }
                        match self.peek() {
                            // An escape at the end is dropped (and the
                            // missing quote reported next round).
                            None => continue,
                            Some(e) if e == '"' || e == '$' || e == escape => {
                                self.pos += 1;
                                c = e;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(c);
                }
            }
        }
    }

    /// `<`, or `<<` plus any spaces, tabs and carriage returns after it
    /// (kept in one word so heredoc markers survive word splitting).
    fn process_possible_heredoc(&mut self) -> String {
        self.pos += 1;
        if self.peek() != Some('<') {
            return "<".to_string();
        }
        self.pos += 1;
        let mut result = "<<".to_string();
        while let Some(c @ ('\t' | '\r' | ' ')) = self.peek() {
            self.pos += 1;
            result.push(c);
        }
        result
    }

    /// Fail once expansion has made `result` longer than the limit;
    /// `offset` is the `$` that was just expanded.
    fn check_len(&self, result: &str, offset: usize) -> Result<(), ShellError> {
        if result.len() > self.limit {
            return Err(ShellError::TooLong {
                limit: self.limit,
                offset,
            });
        }
        Ok(())
    }

    fn lookup(&mut self, name: &str) -> Option<String> {
        match self.env.lookup(name) {
            Some(value) => {
                self.matched.insert(name.to_string());
                Some(value.to_string())
            }
            None => {
                self.unmatched.insert(name.to_string());
                None
            }
        }
    }

    /// BuildKit's `processName`: a digit run, one special-parameter
    /// character, or a run of letters, digits and `_`.
    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && is_digit(c) {
                while let Some(d) = self.peek().filter(|&d| is_digit(d)) {
                    self.pos += 1;
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.pos += 1;
                return c.to_string();
            }
            if !is_letter(c) && !is_digit(c) && c != '_' {
                break;
            }
            self.pos += 1;
            name.push(c);
        }
        name
    }

    /// `$name`, `${…}`, or a literal `$`.
    fn process_dollar(&mut self) -> Result<String, ShellError> {
        let offset = self.offset();
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(match self.lookup(&name) {
                Some(value) => value,
                None if self.settings.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        if self.depth >= MAX_NESTING {
            return Err(ShellError::TooDeeplyNested {
                limit: MAX_NESTING,
                offset,
            });
        }
        self.depth += 1;
        let result = self.process_braces(offset);
        self.depth -= 1;
        result
    }

    /// `${…}`; the cursor is on the `{`.
    fn process_braces(&mut self, offset: usize) -> Result<String, ShellError> {
        self.pos += 1;
        match self.peek() {
            None => return Err(ShellError::MissingClosingBrace { offset }),
            // The offending character is not consumed: an enclosing
            // substitution then reports this error, not a missing brace.
            Some('{' | '}' | ':') => {
                return Err(ShellError::BadSubstitution {
                    word: self.text_through_cursor(offset),
                    offset,
                });
            }
            Some(_) => {}
        }
        let name = self.process_name();
        // BuildKit reports an unterminated `${name` as the unsupported
        // modifier U+FFFD; a missing brace is what it is.
        let Some(modifier) = self.next() else {
            return Err(ShellError::MissingClosingBrace { offset });
        };
        match modifier {
            '}' => Ok(match self.lookup(&name) {
                Some(value) => value,
                None if self.settings.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => self.process_modifier(offset, name, modifier),
            '/' => self.process_replace(offset, name),
            other => Err(ShellError::UnsupportedModifier {
                modifier: other.to_string(),
                offset,
            }),
        }
    }

    /// `${name<op>word}` for `-`, `+`, `?`, `#`, `%` and their `:` forms.
    fn process_modifier(
        &mut self,
        offset: usize,
        name: String,
        first: char,
    ) -> Result<String, ShellError> {
        let mut chs = first.to_string();
        let null_is_unset = first == ':';
        let op = if null_is_unset {
            // `${name:` at the end: BuildKit then fails to find the `}`.
            let Some(op) = self.next() else {
                return Err(ShellError::MissingClosingBrace { offset });
            };
            chs.push(op);
            op
        } else {
            first
        };
        let pattern_op = op == '#' || op == '%';
        if null_is_unset && pattern_op {
            return Err(ShellError::UnsupportedModifier {
                modifier: chs,
                offset,
            });
        }
        let word = self.process_nested('}', pattern_op, offset)?;

        let value = self.lookup(&name);
        if self.settings.skip_unset && value.is_none() {
            return Ok(format!("${{{name}{chs}{word}}}"));
        }
        // Unset, or empty with the `:` form.
        let empty = match value.as_deref() {
            None => true,
            Some(v) => null_is_unset && v.is_empty(),
        };
        match op {
            '-' => Ok(if empty {
                word
            } else {
                value.unwrap_or_default()
            }),
            '+' => Ok(if empty { String::new() } else { word }),
            '?' => match value {
                None => Err(ShellError::VariableUnset {
                    name,
                    message: message_or(word, "is not allowed to be unset"),
                    offset,
                }),
                Some(v) if null_is_unset && v.is_empty() => Err(ShellError::VariableEmpty {
                    name,
                    message: message_or(word, "is not allowed to be empty"),
                    offset,
                }),
                Some(v) => Ok(v),
            },
            '#' | '%' => {
                // `##` / `%%`: the second operator character comes out of
                // the processed word, as in BuildKit.
                let (pattern, longest) = match word.strip_prefix(op) {
                    Some(rest) => (rest, true),
                    None => (word.as_str(), false),
                };
                let value = value.unwrap_or_default();
                check_pattern_work(pattern, &value, offset)?;
                let trimmed = if op == '%' {
                    pattern::trim_suffix(pattern, &value, longest)
                } else {
                    pattern::trim_prefix(pattern, &value, longest)
                };
                trimmed.map_err(|e| ShellError::InvalidPattern {
                    pattern: pattern.to_string(),
                    reason: e.reason(),
                    offset,
                })
            }
            _ => Err(ShellError::UnsupportedModifier {
                modifier: chs,
                offset,
            }),
        }
    }

    /// `${name/pattern/replacement}` and `${name//pattern/replacement}`;
    /// the first `/` has been consumed.
    fn process_replace(&mut self, offset: usize, name: String) -> Result<String, ShellError> {
        let all = self.peek() == Some('/');
        if all {
            self.pos += 1;
        }
        let pattern = self.process_nested('/', true, offset)?;
        let replacement = self.process_nested('}', true, offset)?;
        let value = self.lookup(&name);
        if self.settings.skip_unset && value.is_none() {
            return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
        }
        // An unset variable is replaced in as the empty string (so an empty
        // pattern still inserts the replacement).
        let value = value.unwrap_or_default();
        check_pattern_work(&pattern, &value, offset)?;
        pattern::replace(&pattern, &value, &replacement, all, self.limit).map_err(|e| match e {
            pattern::ReplaceError::Pattern(e) => ShellError::InvalidPattern {
                pattern: pattern.clone(),
                reason: e.reason(),
                offset,
            },
            pattern::ReplaceError::TooLong => ShellError::TooLong {
                limit: self.limit,
                offset,
            },
        })
    }

    /// Process a nested part up to `stop`. Like BuildKit, any failure that
    /// leaves the cursor at the end of input is reported as the missing
    /// `stop` character of the substitution at `offset`.
    fn process_nested(
        &mut self,
        stop: char,
        raw_escapes: bool,
        offset: usize,
    ) -> Result<String, ShellError> {
        match self.process_until(Some(stop), raw_escapes) {
            Ok((word, _)) => Ok(word),
            Err(e @ (ShellError::TooDeeplyNested { .. } | ShellError::TooLong { .. })) => Err(e),
            Err(_) if self.at_end() && stop == '/' => Err(ShellError::MissingSlash { offset }),
            Err(_) if self.at_end() => Err(ShellError::MissingClosingBrace { offset }),
            Err(e) => Err(e),
        }
    }
}

/// Most pattern-by-value steps one `#`, `%` or `/` substitution may take
/// (the matcher runs the pattern's automaton over the value: its time is
/// their lengths multiplied).
pub(super) const MAX_PATTERN_WORK: usize = 1 << 26;

/// Refuses a substitution whose pattern and value are too long together
/// to match in reasonable time (a 1 MiB pattern over a 1 MiB value).
fn check_pattern_work(pattern: &str, value: &str, offset: usize) -> Result<(), ShellError> {
    let work = (pattern.len() + 1).saturating_mul(value.len() + 1);
    if work > MAX_PATTERN_WORK {
        return Err(ShellError::PatternTooCostly {
            limit: MAX_PATTERN_WORK,
            offset,
        });
    }
    Ok(())
}

fn message_or(word: String, default: &str) -> String {
    if word.is_empty() {
        default.to_string()
    } else {
        word
    }
}
