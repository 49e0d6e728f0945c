//! Shell-word expansion, as BuildKit's `frontend/dockerfile/shell/lex.go`
//! does it for Dockerfile instructions.
//!
//! A [`Lexer`] removes quotes, processes escapes and expands variables in a
//! word, either into one string ([`Lexer::process_word`]) or into a list of
//! whitespace-separated words ([`Lexer::process_words`]).
//!
//! Supported syntax (BuildKit's, which is a subset of POSIX `sh`):
//!
//! - `'…'` is literal; `"…"` expands `$` and lets the escape character escape
//!   only `"`, `$` and itself; outside quotes the escape character (`\` or
//!   `` ` ``) escapes any character, and a trailing one is dropped.
//! - `$name` and `${name}`, where a name is a run of letters, digits and `_`
//!   (Unicode letters and decimal digits count), or a run of digits
//!   (`$1x` is `$1` then `x`), or one of the special parameters
//!   `@ * # ? - $ ! 0`. A `$` before anything else is literal (`$.`).
//! - `${a:-w}` / `${a-w}` (default), `${a:+w}` / `${a+w}` (alternative),
//!   `${a:?msg}` / `${a?msg}` (required); the `:` forms also treat an empty
//!   value as unset. `w` and `msg` are themselves expanded.
//! - `${a#p}` / `${a##p}` remove the shortest / longest prefix matching the
//!   pattern `p`, `${a%p}` / `${a%%p}` the shortest / longest suffix, and
//!   `${a/p/r}` / `${a//p/r}` replace the first / every match of `p` with `r`.
//!   In patterns `*` is any string and `?` any character (neither matches a
//!   newline), `\*`, `\?`, `\\`, `\}` and `\/` are literal.
//! - `${a:=w}`, `${a=w}`, `${a:#p}` and other modifiers are errors, as are
//!   `${}`, `${:…}` and `${{…}`; an extra `}` after a substitution is literal.

mod env;
mod error;
mod lexer;
mod pattern;
mod unicode_class;

use std::collections::BTreeSet;

pub use env::Env;
pub use error::ShellError;

/// A configured lexer (builder style; cheap to copy).
///
/// All options default to off, which is what BuildKit uses to expand
/// instruction arguments:
///
/// ```
/// use kiln_parser::shell::Lexer;
/// let env = [("NAME", "world")];
/// let lexer = Lexer::new('\\');
/// assert_eq!(lexer.process_word(r#"hello "${NAME}"\!"#, &env).unwrap(), "hello world!");
/// assert_eq!(lexer.process_words("a 'b c' ${NAME:-x}", &env).unwrap(), ["a", "b c", "world"]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lexer {
    escape: char,
    raw_quotes: bool,
    raw_escapes: bool,
    skip_unset: bool,
    skip_process_quotes: bool,
}

impl Default for Lexer {
    /// A lexer with the default escape character `\` and all options off.
    fn default() -> Self {
        Self::new('\\')
    }
}

/// The result of [`Lexer::process_word_with_matches`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    /// The expanded word.
    pub value: String,
    /// Names that were looked up and found (even if empty).
    pub matched: BTreeSet<String>,
    /// Names that were looked up and are unset.
    pub unmatched: BTreeSet<String>,
}

impl Lexer {
    /// A lexer using `escape` as the escape character (`\`, or a backtick
    /// after an `escape` parser directive), with all options off.
    #[must_use]
    pub fn new(escape: char) -> Self {
        Self {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset: false,
            skip_process_quotes: false,
        }
    }

    /// The escape character.
    #[must_use]
    pub fn escape(&self) -> char {
        self.escape
    }

    /// Keep quote characters in the output (BuildKit's `RawQuotes`).
    #[must_use]
    pub fn raw_quotes(self, on: bool) -> Self {
        Self {
            raw_quotes: on,
            ..self
        }
    }

    /// Keep escape characters in the output (BuildKit's `RawEscapes`).
    /// Default values of `${a:-w}`-style modifiers are still unescaped.
    #[must_use]
    pub fn raw_escapes(self, on: bool) -> Self {
        Self {
            raw_escapes: on,
            ..self
        }
    }

    /// Leave references to unset variables as they are written instead of
    /// expanding them to the empty string (BuildKit's `SkipUnsetEnv`):
    /// `$FOO` stays `$FOO` and `${FOO:-x}` stays `${FOO:-x}` (with `x`
    /// processed).
    #[must_use]
    pub fn skip_unset(self, on: bool) -> Self {
        Self {
            skip_unset: on,
            ..self
        }
    }

    /// Treat `'` and `"` as ordinary characters (BuildKit's
    /// `SkipProcessQuotes`).
    #[must_use]
    pub fn skip_process_quotes(self, on: bool) -> Self {
        Self {
            skip_process_quotes: on,
            ..self
        }
    }

    /// Expand `word` into a single string: whitespace is kept and nothing is
    /// split (BuildKit's `ProcessWord`).
    pub fn process_word(&self, word: &str, env: &dyn Env) -> Result<String, ShellError> {
        Ok(lexer::run(*self, word, env)?.value)
    }

    /// Expand `word` and split it into words (BuildKit's `ProcessWords`).
    ///
    /// Unquoted whitespace separates words; quoted parts and escaped
    /// characters never split; the value of an unquoted `$VAR` is split on
    /// its whitespace; empty words are dropped (so `""` gives no word).
    /// `<<` and the blanks right after it stay in one word, so heredoc
    /// markers such as `<< EOF` survive.
    pub fn process_words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>, ShellError> {
        Ok(lexer::run(*self, word, env)?.words)
    }

    /// Like [`Lexer::process_word`], and also report which variable names
    /// were looked up, split into found and unset (BuildKit's
    /// `ProcessWordWithMatches`).
    pub fn process_word_with_matches(
        &self,
        word: &str,
        env: &dyn Env,
    ) -> Result<Expansion, ShellError> {
        let out = lexer::run(*self, word, env)?;
        Ok(Expansion {
            value: out.value,
            matched: out.matched,
            unmatched: out.unmatched,
        })
    }
}

/// Convenience: single-word expansion with the escape character `\` and all
/// options off.
pub fn expand(word: &str, env: &dyn Env) -> Result<String, ShellError> {
    Lexer::default().process_word(word, env)
}
