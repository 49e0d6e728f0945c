//! Heredocs: `<<EOF` markers on RUN, COPY and ADD lines, and their bodies.

use crate::shell::{Env, Lexer};
use crate::span::Span;
use serde::Serialize;

/// A heredoc attached to an instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    /// The delimiter word with quotes removed (`EOF` for `<<'EOF'`).
    pub name: String,
    /// The file descriptor before `<<` (`3` in `3<<EOF`); 0 when absent.
    pub file_descriptor: u32,
    /// `<<-`: leading tabs are stripped from the body when it is used.
    pub chomp: bool,
    /// False when any part of the delimiter was quoted: the body is then
    /// taken literally, without variable expansion.
    pub expand: bool,
    /// The raw body, each line with its line ending, terminator excluded.
    pub content: String,
    /// From the first body line to the terminator line.
    pub span: Span,
}

impl Heredoc {
    /// The body as the instruction uses it: with leading tabs removed from
    /// every line when the heredoc was opened with `<<-`.
    pub fn chomped_content(&self) -> String {
        if self.chomp {
            chomp(&self.content)
        } else {
            self.content.clone()
        }
    }
}

/// Removes leading tabs from every line, as `<<-` asks.
pub fn chomp(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|line| line.trim_start_matches('\t'))
        .collect()
}

struct NoEnv;

impl Env for NoEnv {
    fn lookup(&self, _name: &str) -> Option<&str> {
        None
    }
}

/// A heredoc marker found on a line, before its body is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marker {
    pub name: String,
    pub file_descriptor: u32,
    pub chomp: bool,
    pub expand: bool,
}

/// Parses one shell word as a heredoc marker (`<<EOF`, `3<<-'EOF'`, ...).
///
/// Returns `Ok(None)` for words that are not heredoc markers and an error
/// message for a marker whose delimiter does not lex (an unbalanced quote).
pub(crate) fn parse_marker(word: &str) -> Result<Option<Marker>, String> {
    // Shape: ^(\d*)<<(-?)\s*([^<]*)$
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (fd_text, after) = word.split_at(digits);
    let Some(after) = after.strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, after) = match after.strip_prefix('-') {
        Some(a) => (true, a),
        None => (false, after),
    };
    let rest = after.trim_start();
    if rest.contains('<') {
        return Ok(None);
    }
    let file_descriptor = if fd_text.is_empty() {
        0
    } else {
        fd_text.parse::<u32>().unwrap_or(0)
    };
    let lexer = Lexer::new('\\').skip_unset(true);
    let words = lexer
        .process_words(rest, &NoEnv)
        .map_err(|e| e.to_string())?;
    if words.len() != 1 {
        return Ok(None);
    }
    let raw = lexer
        .raw_quotes(true)
        .process_words(rest, &NoEnv)
        .map_err(|e| e.to_string())?;
    if raw.len() != 1 {
        return Err(format!("inconsistent lexing of heredoc {rest:?}"));
    }
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    let name = words[0].clone();
    let expand = quotes(&name) == quotes(&raw[0]);
    Ok(Some(Marker {
        name,
        file_descriptor,
        chomp,
        expand,
    }))
}

/// All heredoc markers on a line, in order.
pub(crate) fn markers_in_line(line: &str) -> Result<Vec<Marker>, (String, String)> {
    let Some(words) = crate::syntax::heredoc_words(line) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for word in words {
        match parse_marker(&word) {
            Ok(Some(m)) => out.push(m),
            Ok(None) => {}
            Err(e) => return Err((word, e)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(word: &str) -> Option<String> {
        parse_marker(word).ok().flatten().map(|m| m.name)
    }

    #[test]
    fn marker_words() {
        for ok in [
            "<<EOF",
            "<<'EOF'",
            "<<\"EOF\"",
            "<<-EOF",
            "<<-'EOF'",
            "<<-\"EOF\"",
            "<<EO\"F\"",
            "<< EOF",
            "<<- EOF",
        ] {
            assert_eq!(name(ok).as_deref(), Some("EOF"), "{ok}");
        }
        for err in ["<<'EOF", "<<\"EOF", "<<EOF'", "<<EOF\""] {
            assert!(parse_marker(err).is_err(), "{err}");
        }
        for none in ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<EOF sh"] {
            assert_eq!(parse_marker(none), Ok(None), "{none}");
        }
    }

    #[test]
    fn marker_expand_and_fd() {
        let m = |w: &str| parse_marker(w).unwrap().unwrap();
        assert!(!m("<<eo'f'").expand);
        assert_eq!(m("<<eo'f'").name, "eof");
        assert!(m("<<eo\\'f").expand);
        assert_eq!(m("<<eo\\'f").name, "eo'f");
        assert!(!m("<<'e'o\\'f").expand);
        assert_eq!(m("<<'one two'").name, "one two");
        assert_eq!(m("<<$EOF").name, "$EOF");
        assert_eq!(m("3<<EOF").file_descriptor, 3);
        assert!(m("<<-X").chomp);
    }

    #[test]
    fn markers_on_lines() {
        let names = |l: &str| -> Vec<String> {
            markers_in_line(l)
                .unwrap()
                .into_iter()
                .map(|m| m.name)
                .collect()
        };
        assert_eq!(names("RUN <<EOF"), vec!["EOF"]);
        assert_eq!(names("RUN <<-EOF"), vec!["EOF"]);
        assert_eq!(names("RUN <<- EOF"), vec!["EOF"]);
        assert_eq!(names("RUN << -EOF"), vec!["-EOF"]);
        assert_eq!(names("RUN <<'EOF'"), vec!["EOF"]);
        assert_eq!(names("RUN 4<<EOF"), vec!["EOF"]);
        assert_eq!(names("RUN <<EOF <<EOF2"), vec!["EOF", "EOF2"]);
        assert!(names("RUN '<<EOF'").is_empty());
        assert!(names("RUN \"<<EOF\"").is_empty());
    }

    #[test]
    fn chomp_strips_leading_tabs() {
        assert_eq!(chomp("\thello\n\tworld\n"), "hello\nworld\n");
    }
}
