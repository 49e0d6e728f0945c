//! The recursive-descent parser behind [`super::Script::parse`]: the
//! grammar here, the words in `lex`.

use super::Command;

mod lex;

/// Why a script could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shell syntax error at offset {offset}: {message}")]
pub struct ScriptSyntaxError {
    /// Character offset in the script.
    pub offset: usize,
    /// What was wrong.
    pub message: String,
}

type Result<T> = std::result::Result<T, ScriptSyntaxError>;

/// Deepest nesting accepted before the parse gives up (keeps the stack safe
/// on hostile input).
const MAX_DEPTH: usize = 100;

/// Text every expansion flattens to, as ShellCheck's `oversimplify`.
const EXPANSION: &str = "${VAR}";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(Word),
    Op(&'static str),
    Newline,
    Eof,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Word {
    /// Flattened text.
    text: String,
    /// The word as written.
    raw: String,
    /// No expansion anywhere in the word.
    literal: bool,
    /// Some part was quoted or escaped (so it is never a reserved word).
    quoted: bool,
}

impl Word {
    fn is_reserved(&self, word: &str) -> bool {
        !self.quoted && self.text == word
    }
}

/// Parses `text`, returning its commands in pre-order and whether a pipe
/// appears.
pub(super) fn parse_script(text: &str) -> Result<(Vec<Command>, bool)> {
    parse_partial(text).map_err(|(e, _)| e)
}

/// Like [`parse_script`], but on a syntax error also returns the commands
/// read before it.
pub(super) fn parse_partial(
    text: &str,
) -> std::result::Result<(Vec<Command>, bool), (ScriptSyntaxError, Vec<Command>)> {
    let chars: Vec<char> = text.chars().collect();
    let mut parser = Parser {
        chars: &chars,
        pos: 0,
        peeked: None,
        commands: Vec::new(),
        pipes: false,
        depth: 0,
        heredocs: Vec::new(),
    };
    let result = parser.list(&[]).and_then(|()| match parser.next()? {
        Token::Eof => Ok(()),
        other => Err(parser.error(format!("unexpected {other:?}"))),
    });
    match result {
        Ok(()) => Ok((parser.commands, parser.pipes)),
        Err(e) => Err((e, parser.commands)),
    }
}

struct Parser<'a> {
    chars: &'a [char],
    pos: usize,
    peeked: Option<Token>,
    commands: Vec<Command>,
    pipes: bool,
    depth: usize,
    /// Heredoc delimiters waiting for the end of the current line.
    heredocs: Vec<(String, bool)>,
}

const REDIRECTS: [&str; 12] = [
    "<<<", "<<-", "&>>", "<<", "<>", "<&", ">>", ">&", ">|", "&>", "<", ">",
];

/// Every operator, longest first so that `&>` wins over `&`.
const OPERATORS: [&str; 23] = [
    "&>>", ";;&", "<<<", "<<-", "&&", "||", ";;", ";&", "|&", "<<", "<>", "<&", ">>", ">&", ">|",
    "&>", ";", "&", "|", "(", ")", "<", ">",
];

impl<'a> Parser<'a> {
    fn error(&self, message: impl Into<String>) -> ScriptSyntaxError {
        ScriptSyntaxError {
            offset: self.pos,
            message: message.into(),
        }
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn ch(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    // ---- tokens ----

    fn peek(&mut self) -> Result<&Token> {
        if self.peeked.is_none() {
            let token = self.lex()?;
            self.peeked = Some(token);
        }
        match &self.peeked {
            Some(t) => Ok(t),
            None => Err(self.error("no token")),
        }
    }

    fn next(&mut self) -> Result<Token> {
        self.peek()?;
        self.peeked.take().ok_or_else(|| self.error("no token"))
    }

    fn peek_is_op(&mut self, op: &str) -> Result<bool> {
        Ok(matches!(self.peek()?, Token::Op(o) if *o == op))
    }

    fn peek_is_reserved(&mut self, word: &str) -> Result<bool> {
        Ok(matches!(self.peek()?, Token::Word(w) if w.is_reserved(word)))
    }

    fn expect_reserved(&mut self, word: &str) -> Result<()> {
        if self.peek_is_reserved(word)? {
            self.next()?;
            Ok(())
        } else {
            Err(self.error(format!("expected {word}")))
        }
    }

    fn expect_op(&mut self, op: &str) -> Result<()> {
        if self.peek_is_op(op)? {
            self.next()?;
            Ok(())
        } else {
            Err(self.error(format!("expected {op}")))
        }
    }

    fn skip_newlines(&mut self) -> Result<()> {
        while matches!(self.peek()?, Token::Newline) {
            self.next()?;
        }
        Ok(())
    }

    /// Skips blanks, line continuations and comments.
    fn skip_blanks(&mut self) {
        while let Some(c) = self.ch(0) {
            match c {
                ' ' | '\t' | '\r' => self.pos += 1,
                '\\' if self.ch(1) == Some('\n') => self.pos += 2,
                '\\' if self.ch(1) == Some('\r') && self.ch(2) == Some('\n') => self.pos += 3,
                '#' => {
                    while let Some(c) = self.ch(0) {
                        if c == '\n' {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    // ---- grammar ----

    /// A list of and-or lists, up to one of `stops` (reserved words or
    /// operators) or the end.
    fn list(&mut self, stops: &[&str]) -> Result<()> {
        loop {
            match self.peek()? {
                Token::Eof => return Ok(()),
                Token::Newline | Token::Op(";") | Token::Op("&") => {
                    self.next()?;
                    continue;
                }
                Token::Op(op) if stops.contains(op) => return Ok(()),
                Token::Word(w) if !w.quoted && stops.contains(&w.text.as_str()) => return Ok(()),
                _ => {}
            }
            self.and_or()?;
        }
    }

    fn and_or(&mut self) -> Result<()> {
        self.pipeline()?;
        while self.peek_is_op("&&")? || self.peek_is_op("||")? {
            self.next()?;
            self.skip_newlines()?;
            self.pipeline()?;
        }
        Ok(())
    }

    fn pipeline(&mut self) -> Result<()> {
        if self.peek_is_reserved("!")? {
            self.next()?;
        }
        self.command()?;
        while self.peek_is_op("|")? || self.peek_is_op("|&")? {
            self.next()?;
            self.pipes = true;
            self.skip_newlines()?;
            // Tolerated like a separator, as ShellCheck's parser does on
            // PowerShell's `| &$exe` call operator.
            if self.peek_is_op("&")? {
                self.next()?;
            }
            self.command()?;
        }
        Ok(())
    }

    fn command(&mut self) -> Result<()> {
        self.enter()?;
        let result = self.command_inner();
        self.leave();
        result
    }

    fn command_inner(&mut self) -> Result<()> {
        let token = self.peek()?.clone();
        match token {
            Token::Op("(") => {
                self.next()?;
                if self.ch(0) == Some('(')
                    && self.pos > 0
                    && self.chars[self.pos - 1] == '('
                    && self.is_arithmetic()
                {
                    // `((...))` arithmetic command.
                    self.pos -= 1;
                    self.skip_balanced('(', ')')?;
                } else {
                    self.list(&[")"])?;
                    self.expect_op(")")?;
                }
            }
            Token::Word(w) if w.is_reserved("{") => {
                self.next()?;
                self.list(&["}"])?;
                self.expect_reserved("}")?;
            }
            Token::Word(w) if w.is_reserved("if") => {
                self.next()?;
                self.list(&["then"])?;
                self.expect_reserved("then")?;
                self.list(&["elif", "else", "fi"])?;
                loop {
                    if self.peek_is_reserved("elif")? {
                        self.next()?;
                        self.list(&["then"])?;
                        self.expect_reserved("then")?;
                        self.list(&["elif", "else", "fi"])?;
                    } else if self.peek_is_reserved("else")? {
                        self.next()?;
                        self.list(&["fi"])?;
                    } else {
                        break;
                    }
                }
                self.expect_reserved("fi")?;
            }
            Token::Word(w) if w.is_reserved("while") || w.is_reserved("until") => {
                self.next()?;
                self.list(&["do"])?;
                self.do_group()?;
            }
            Token::Word(w) if w.is_reserved("for") || w.is_reserved("select") => {
                self.next()?;
                if self.peek_is_op("(")? {
                    self.next()?;
                    self.pos -= 1;
                    self.skip_balanced('(', ')')?;
                    self.peeked = None;
                    if self.ch(0) == Some(')') {
                        self.pos += 1;
                    }
                } else {
                    match self.next()? {
                        Token::Word(_) => {}
                        _ => return Err(self.error("for without a name")),
                    }
                    self.skip_newlines()?;
                    if self.peek_is_reserved("in")? {
                        self.next()?;
                        while let Token::Word(_) = self.peek()? {
                            self.next()?;
                        }
                    }
                }
                while matches!(self.peek()?, Token::Newline | Token::Op(";")) {
                    self.next()?;
                }
                self.do_group()?;
            }
            Token::Word(w) if w.is_reserved("case") => {
                self.next()?;
                self.next()?;
                self.skip_newlines()?;
                self.expect_reserved("in")?;
                loop {
                    self.skip_newlines()?;
                    if self.peek_is_reserved("esac")? {
                        self.next()?;
                        break;
                    }
                    if self.peek_is_op("(")? {
                        self.next()?;
                    }
                    loop {
                        match self.next()? {
                            Token::Word(_) => {}
                            _ => return Err(self.error("bad case pattern")),
                        }
                        if self.peek_is_op("|")? {
                            self.next()?;
                            continue;
                        }
                        break;
                    }
                    self.expect_op(")")?;
                    self.list(&[";;", ";&", ";;&", "esac"])?;
                    if matches!(self.peek()?, Token::Op(";;" | ";&" | ";;&")) {
                        self.next()?;
                    } else if !self.peek_is_reserved("esac")? {
                        return Err(self.error("expected ;; or esac"));
                    }
                }
            }
            Token::Word(w) if w.is_reserved("[[") || w.is_reserved("[") => {
                // ShellCheck reads both as conditions, not as commands.
                let close = if w.text == "[[" { "]]" } else { "]" };
                self.next()?;
                loop {
                    match self.next()? {
                        Token::Eof => return Err(self.error(format!("missing {close}"))),
                        Token::Word(w) if w.is_reserved(close) => break,
                        _ => {}
                    }
                }
            }
            Token::Word(w) if w.is_reserved("function") => {
                self.next()?;
                self.next()?;
                if self.peek_is_op("(")? {
                    self.next()?;
                    self.expect_op(")")?;
                }
                self.skip_newlines()?;
                self.command()?;
            }
            Token::Word(w)
                if [
                    "then", "fi", "do", "done", "esac", "elif", "else", "}", "in",
                ]
                .iter()
                .any(|r| w.is_reserved(r)) =>
            {
                return Err(self.error(format!("unexpected {}", w.text)));
            }
            Token::Word(_) => return self.simple(),
            Token::Op(op) if REDIRECTS.contains(&op) => return self.simple(),
            Token::Op(op) => return Err(self.error(format!("unexpected {op}"))),
            Token::Newline | Token::Eof => return Err(self.error("missing command")),
        }
        self.redirects()
    }

    /// With the cursor on the second `(` of `((`: true when its match is
    /// directly followed by `)`, so that `((...))` is arithmetic rather than
    /// a subshell in a subshell.
    fn is_arithmetic(&mut self) -> bool {
        let saved = self.pos;
        let closes = self.skip_balanced('(', ')').is_ok() && self.ch(0) == Some(')');
        self.pos = saved;
        closes
    }

    fn do_group(&mut self) -> Result<()> {
        self.expect_reserved("do")?;
        self.list(&["done"])?;
        self.expect_reserved("done")
    }

    /// Redirections after a compound command.
    fn redirects(&mut self) -> Result<()> {
        loop {
            let op = match self.peek()? {
                Token::Op(op) if REDIRECTS.contains(op) => *op,
                _ => return Ok(()),
            };
            self.next()?;
            self.redirect_target(op)?;
        }
    }

    fn redirect_target(&mut self, op: &str) -> Result<()> {
        match self.next()? {
            Token::Word(w) => {
                if op == "<<" || op == "<<-" {
                    self.heredocs.push((w.text, op == "<<-"));
                }
                Ok(())
            }
            _ => Err(self.error(format!("missing target after {op}"))),
        }
    }

    fn simple(&mut self) -> Result<()> {
        let slot = self.commands.len();
        let mut name: Option<Word> = None;
        let mut args = Vec::new();
        let mut raw_args = Vec::new();
        let mut assignments = Vec::new();
        loop {
            match self.peek()?.clone() {
                Token::Word(w) => {
                    self.next()?;
                    if name.is_none() && is_assignment(&w.text) {
                        assignments.push(w.text);
                    } else if name.is_none() {
                        // `name() { ...; }` function definitions.
                        if self.peek_is_op("(")? && self.ch(0) == Some(')') {
                            self.next()?;
                            self.expect_op(")")?;
                            self.skip_newlines()?;
                            return self.command();
                        }
                        name = Some(w);
                    } else {
                        args.push(w.text);
                        raw_args.push(w.raw);
                    }
                }
                Token::Op(op) if REDIRECTS.contains(&op) => {
                    self.next()?;
                    self.redirect_target(op)?;
                }
                Token::Op("(") if name.is_some() || !assignments.is_empty() => {
                    // `word (...)`: ShellCheck reads a function definition
                    // with parameters (SC1065), skips them and goes on.
                    self.next()?;
                    self.pos -= 1;
                    self.skip_balanced('(', ')')?;
                    // A word after the "parameters" stops ShellCheck's parse.
                    if matches!(self.peek()?, Token::Word(_)) {
                        return Err(self.error("unexpected word after (...)"));
                    }
                    break;
                }
                _ => break,
            }
        }
        let Some(first) = name else {
            return Ok(());
        };
        if !first.literal {
            return Ok(());
        }
        let name = effective_name(&first.text, &args);
        self.commands.insert(
            slot,
            Command {
                name,
                args,
                raw_args,
                assignments,
            },
        );
        Ok(())
    }
}

/// `NAME=...` or `NAME+=...` (also `NAME[i]=...`).
fn is_assignment(word: &str) -> bool {
    let Some(eq) = word.find('=') else {
        return false;
    };
    let name = word[..eq].trim_end_matches('+');
    let name = match name.find('[') {
        Some(b) if name.ends_with(']') => &name[..b],
        _ => name,
    };
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The logical command name: `busybox X`, `builtin X`, `command X` and
/// `exec X` name `X` (ShellCheck's `getCommandName`).
fn effective_name(first: &str, args: &[String]) -> String {
    match first {
        "busybox" | "builtin" | "command" | "run" => match args.first() {
            Some(a) if !a.starts_with('-') => a.clone(),
            _ => first.to_string(),
        },
        "exec" => {
            let mut i = 0;
            while let Some(a) = args.get(i) {
                if a == "--" {
                    i += 1;
                    break;
                }
                if !a.starts_with('-') || a == "-" {
                    break;
                }
                i += if a.contains('a') { 2 } else { 1 };
            }
            args.get(i).cloned().unwrap_or_else(|| first.to_string())
        }
        _ => first.to_string(),
    }
}
