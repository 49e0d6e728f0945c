//! A RUN's text as hadolint hands it on: to its own shell parser (the
//! words of the instruction) and to ShellCheck (the lines as written).

use kiln_parser::instruction::{CommandLine, Run};
use kiln_parser::Command;

/// The text hadolint hands to its shell parser for a RUN: the shell form's
/// text, or the exec form's words joined with spaces.
pub fn run_text(run: &Run) -> String {
    match &run.command {
        CommandLine::Shell(text) => text.clone(),
        CommandLine::Exec(words) => words.join(" "),
    }
}

/// A RUN's shell text as written, the way hadolint hands it to ShellCheck:
/// escaped line breaks kept (so ShellCheck sees the same lines), comment and
/// empty lines inside the continuation turned into empty continuations.
pub(crate) fn raw_text(lines: &[&str], command: &Command, escape: char) -> Option<String> {
    let span = command.span;
    let first = span.start.line.checked_sub(1)?;
    let last = if span.end.column > 1 || span.end.line == span.start.line {
        span.end.line
    } else {
        span.end.line - 1
    };
    let chunk = lines.get(first..last.min(lines.len()))?;
    let mut text = String::new();
    for (i, line) in chunk.iter().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let trimmed = line.trim_start();
        if i > 0 && (trimmed.is_empty() || trimmed.starts_with('#')) {
            text.push(escape);
            text.push('\n');
            continue;
        }
        // `\` followed by blanks still breaks the line for hadolint.
        let body = line.trim_end_matches([' ', '\t']);
        if body.ends_with(escape) {
            text.push_str(body);
        } else {
            text.push_str(line);
        }
        text.push('\n');
    }
    // Drop the keyword and the flags.
    let mut rest = text.trim_start();
    rest = rest.get(command.keyword.len()..)?;
    for _ in 0..command.flags.len() {
        rest = skip_blanks(rest, escape);
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        rest = &rest[end..];
    }
    let rest = skip_blanks(rest, escape).trim_end();
    Some(rest.to_string())
}

/// Skips blanks and escaped line breaks.
fn skip_blanks(mut s: &str, escape: char) -> &str {
    loop {
        let t = s.trim_start_matches([' ', '\t']);
        match t.strip_prefix(escape).and_then(|r| r.strip_prefix('\n')) {
            Some(r) => s = r,
            None => return t,
        }
    }
}
