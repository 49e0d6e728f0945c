//! Words and operators: the lexing half of the parser (quotes, escapes,
//! expansions, substitutions and heredoc bodies).

use super::{parse_script, Parser, Result, Token, Word, EXPANSION, OPERATORS};

impl Parser<'_> {
    pub(super) fn lex(&mut self) -> Result<Token> {
        self.skip_blanks();
        let Some(c) = self.ch(0) else {
            return Ok(Token::Eof);
        };
        if c == '\n' {
            self.pos += 1;
            self.read_heredoc_bodies();
            return Ok(Token::Newline);
        }
        // Process substitution `<(...)` / `>(...)` is a word.
        if matches!(c, '<' | '>') && self.ch(1) == Some('(') {
            self.pos += 2;
            self.substitution()?;
            return Ok(Token::Word(Word {
                text: EXPANSION.to_string(),
                raw: String::new(),
                literal: false,
                quoted: false,
            }));
        }
        for op in OPERATORS {
            if self.starts_with(op) {
                self.pos += op.chars().count();
                return Ok(Token::Op(op));
            }
        }
        // An IO number (`2>`): digits directly before a redirection.
        let digits = self
            .chars
            .get(self.pos..)
            .unwrap_or(&[])
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits > 0 && matches!(self.ch(digits), Some('<' | '>')) {
            self.pos += digits;
            return self.lex();
        }
        Ok(Token::Word(self.word()?))
    }

    fn starts_with(&self, s: &str) -> bool {
        s.chars().enumerate().all(|(i, c)| self.ch(i) == Some(c))
    }

    /// Reads the bodies of the heredocs opened on the line just ended.
    fn read_heredoc_bodies(&mut self) {
        let pending = std::mem::take(&mut self.heredocs);
        for (delimiter, strip_tabs) in pending {
            loop {
                if self.pos >= self.chars.len() {
                    return;
                }
                let start = self.pos;
                while let Some(c) = self.ch(0) {
                    self.pos += 1;
                    if c == '\n' {
                        break;
                    }
                }
                let line: String = self.chars[start..self.pos].iter().collect();
                let line = line.trim_end_matches(['\n', '\r']);
                let line = if strip_tabs {
                    line.trim_start_matches('\t')
                } else {
                    line
                };
                if line == delimiter {
                    break;
                }
            }
        }
    }

    fn is_word_end(c: char) -> bool {
        matches!(
            c,
            ' ' | '\t' | '\r' | '\n' | ';' | '&' | '|' | '(' | ')' | '<' | '>'
        )
    }

    fn word(&mut self) -> Result<Word> {
        let start = self.pos;
        let mut w = Word {
            text: String::new(),
            raw: String::new(),
            literal: true,
            quoted: false,
        };
        while let Some(c) = self.ch(0) {
            if Self::is_word_end(c) {
                // `a=(x y)` array assignment and `@(...)`-style globs.
                if c == '('
                    && (w.text.ends_with('=') || w.text.ends_with(['@', '!', '+', '?', '*']))
                    && !w.text.is_empty()
                {
                    let start = self.pos;
                    self.skip_balanced('(', ')')?;
                    w.text.extend(&self.chars[start..self.pos]);
                    continue;
                }
                break;
            }
            match c {
                '\\' => {
                    match self.ch(1) {
                        Some('\n') => {}
                        Some('\r') if self.ch(2) == Some('\n') => self.pos += 1,
                        Some(n) => {
                            w.text.push(n);
                            w.quoted = true;
                        }
                        None => {}
                    }
                    self.pos += 2;
                }
                '\'' => {
                    self.pos += 1;
                    w.quoted = true;
                    self.single_quoted(&mut w.text)?;
                }
                '"' => {
                    self.pos += 1;
                    w.quoted = true;
                    self.double_quoted(&mut w)?;
                }
                '$' => self.dollar(&mut w)?,
                '`' => {
                    self.backticks()?;
                    w.literal = false;
                    w.text.push_str(EXPANSION);
                }
                _ => {
                    w.text.push(c);
                    self.pos += 1;
                }
            }
        }
        let end = self.pos.min(self.chars.len());
        w.raw = self.chars[start.min(end)..end].iter().collect();
        Ok(w)
    }

    fn single_quoted(&mut self, out: &mut String) -> Result<()> {
        loop {
            match self.ch(0) {
                None => return Err(self.error("unterminated single quote")),
                Some('\'') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn double_quoted(&mut self, w: &mut Word) -> Result<()> {
        loop {
            match self.ch(0) {
                None => return Err(self.error("unterminated double quote")),
                Some('"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some('\\') => {
                    match self.ch(1) {
                        Some('\n') => {}
                        Some(n @ ('$' | '`' | '"' | '\\')) => w.text.push(n),
                        Some(n) => {
                            w.text.push('\\');
                            w.text.push(n);
                        }
                        None => return Err(self.error("unterminated double quote")),
                    }
                    self.pos += 2;
                }
                Some('$') => self.dollar(w)?,
                Some('`') => {
                    self.backticks()?;
                    w.literal = false;
                    w.text.push_str(EXPANSION);
                }
                Some(c) => {
                    w.text.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// `$...` at the cursor.
    fn dollar(&mut self, w: &mut Word) -> Result<()> {
        match self.ch(1) {
            Some('(') if self.ch(2) == Some('(') => {
                self.pos += 1;
                self.skip_balanced('(', ')')?;
            }
            Some('(') => {
                self.pos += 2;
                self.substitution()?;
            }
            Some('{') => {
                self.pos += 1;
                self.skip_braced()?;
            }
            Some('\'') => {
                self.pos += 2;
                w.quoted = true;
                self.ansi_c_quoted(&mut w.text)?;
                return Ok(());
            }
            Some('"') => {
                self.pos += 2;
                w.quoted = true;
                return self.double_quoted(w);
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                self.pos += 1;
                while matches!(self.ch(0), Some(c) if c.is_ascii_alphanumeric() || c == '_') {
                    self.pos += 1;
                }
            }
            Some(c) if c.is_ascii_digit() || "@*#?-$!".contains(c) => self.pos += 2,
            _ => {
                w.text.push('$');
                self.pos += 1;
                return Ok(());
            }
        }
        w.literal = false;
        w.text.push_str(EXPANSION);
        Ok(())
    }

    /// Parses a `$(...)` body; the cursor is just after the `(`.
    fn substitution(&mut self) -> Result<()> {
        self.enter()?;
        let saved = self.peeked.take();
        self.list(&[")"])?;
        self.expect_op(")")?;
        self.peeked = saved;
        self.leave();
        Ok(())
    }

    fn ansi_c_quoted(&mut self, out: &mut String) -> Result<()> {
        loop {
            match self.ch(0) {
                None => return Err(self.error("unterminated $' quote")),
                Some('\'') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some('\\') => {
                    if let Some(n) = self.ch(1) {
                        out.push(match n {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                    }
                    self.pos += 2;
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// Skips `(` ... `)` with nesting, quotes and escapes; the cursor is on
    /// the opening character.
    pub(super) fn skip_balanced(&mut self, open: char, close: char) -> Result<()> {
        let mut depth = 0usize;
        while let Some(c) = self.ch(0) {
            match c {
                '\\' => self.pos += 1,
                '\'' => {
                    self.pos += 1;
                    let mut sink = String::new();
                    self.single_quoted(&mut sink)?;
                    continue;
                }
                '"' => {
                    self.pos += 1;
                    let mut sink = Word {
                        text: String::new(),
                        raw: String::new(),
                        literal: true,
                        quoted: true,
                    };
                    self.double_quoted(&mut sink)?;
                    continue;
                }
                c if c == open => depth += 1,
                c if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        self.pos += 1;
                        return Ok(());
                    }
                }
                _ => {}
            }
            self.pos += 1;
        }
        Err(self.error(format!("missing {close}")))
    }

    /// Skips `{...}` of a `${...}` expansion, parsing substitutions inside.
    fn skip_braced(&mut self) -> Result<()> {
        // On `{`.
        self.pos += 1;
        let mut depth = 1usize;
        let mut sink = Word {
            text: String::new(),
            raw: String::new(),
            literal: true,
            quoted: true,
        };
        while let Some(c) = self.ch(0) {
            match c {
                '\\' => self.pos += 2,
                '\'' => {
                    self.pos += 1;
                    let mut s = String::new();
                    self.single_quoted(&mut s)?;
                }
                '"' => {
                    self.pos += 1;
                    self.double_quoted(&mut sink)?;
                }
                '$' => self.dollar(&mut sink)?,
                '`' => self.backticks()?,
                '{' => {
                    depth += 1;
                    self.pos += 1;
                }
                '}' => {
                    depth -= 1;
                    self.pos += 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                _ => self.pos += 1,
            }
        }
        Err(self.error("missing }"))
    }

    /// Parses a backtick substitution's contents; the cursor is on the
    /// opening backtick.
    fn backticks(&mut self) -> Result<()> {
        self.pos += 1;
        let mut inner = String::new();
        loop {
            match self.ch(0) {
                None => return Err(self.error("unterminated backtick")),
                Some('`') => {
                    self.pos += 1;
                    break;
                }
                Some('\\') => {
                    match self.ch(1) {
                        Some(n @ ('`' | '\\' | '$')) => inner.push(n),
                        Some(n) => {
                            inner.push('\\');
                            inner.push(n);
                        }
                        None => {}
                    }
                    self.pos += 2;
                }
                Some(c) => {
                    inner.push(c);
                    self.pos += 1;
                }
            }
        }
        self.enter()?;
        let (commands, pipes) = parse_script(&inner)?;
        self.leave();
        self.commands.extend(commands);
        self.pipes |= pipes;
        Ok(())
    }
}
