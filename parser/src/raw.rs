//! The low-level parse, BuildKit's `parser.Parse`: physical lines become
//! instruction nodes holding a keyword, `--flag` words and arguments shaped
//! per instruction. Nothing is validated or expanded here; [`crate::parse`]
//! builds typed instructions on top.

use crate::directive::{Directive, DirectiveReader};
use crate::error::{ErrorKind, ParseError};
use crate::gostr::go_quote;
use crate::heredoc::{markers_in_line, Heredoc};
use crate::span::{Position, Span};
use crate::syntax::{split_instruction, split_words};
use serde::Serialize;

/// BuildKit's scanner refuses physical lines of this many bytes or more.
const MAX_LINE: usize = 65536;

/// The result of the low-level parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RawDockerfile {
    /// Parser directives from the top of the file.
    pub directives: Vec<Directive>,
    /// The escape character in force (`\` or a backtick).
    pub escape: char,
    /// One node per instruction, in file order.
    pub nodes: Vec<RawNode>,
    /// Every comment line outside heredoc bodies (directives included).
    pub comments: Vec<Comment>,
    /// Non-fatal findings, such as empty continuation lines.
    pub warnings: Vec<Warning>,
}

/// A comment line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comment {
    /// The text after `#`, untrimmed.
    pub text: String,
    /// The 1-based line.
    pub line: usize,
}

/// A non-fatal finding of the parser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// Short description, e.g. `Empty continuation line found in: RUN a b`.
    pub message: String,
    /// Longer explanation.
    pub detail: String,
    /// The instruction concerned.
    pub span: Span,
}

/// A `--flag` word as written before the arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RawFlag {
    /// The word with quotes removed, e.g. `--from=build`.
    pub text: String,
    /// Where the word is.
    pub span: Span,
}

/// One instruction of the low-level parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RawNode {
    /// The keyword as written (`RUN`, `run`, `Foo`).
    pub keyword: String,
    /// The flag words before the arguments.
    pub flags: Vec<RawFlag>,
    /// The arguments, shaped per instruction as BuildKit does: key, value,
    /// separator triples for ENV and LABEL; the words for FROM; the JSON
    /// elements or the whole text for RUN; and so on.
    pub args: Vec<String>,
    /// ONBUILD's trigger instruction.
    pub nested: Option<Box<RawNode>>,
    /// The arguments were a JSON array (exec form).
    pub json: bool,
    /// The whole instruction line after continuation lines were joined.
    pub original: String,
    /// Heredoc bodies, for RUN, COPY and ADD.
    pub heredocs: Vec<Heredoc>,
    /// From the keyword to the end of the last line consumed.
    pub span: Span,
    /// Where the arguments start.
    pub args_position: Position,
    /// An empty line was skipped inside the continuation.
    pub empty_continuation: bool,
}

impl RawNode {
    /// The keyword in lower case, as BuildKit dispatches on it.
    pub fn command(&self) -> String {
        self.keyword.to_lowercase()
    }

    /// The node in BuildKit's AST dump notation, e.g.
    /// `(copy ["--from=a"] "b" "c")`, without the outer parentheses.
    pub fn dump(&self) -> String {
        let mut s = self.command();
        if !self.flags.is_empty() {
            let flags: Vec<String> = self.flags.iter().map(|f| go_quote(&f.text)).collect();
            s.push_str(&format!(" [{}]", flags.join(" ")));
        }
        if let Some(nested) = &self.nested {
            s.push_str(&format!(" ({})", nested.dump()));
        }
        for arg in &self.args {
            s.push(' ');
            s.push_str(&go_quote(arg));
        }
        s
    }

    fn can_contain_heredoc(&self) -> bool {
        if self.json {
            return false;
        }
        match self.command().as_str() {
            "run" | "copy" | "add" => true,
            "onbuild" => self
                .nested
                .as_ref()
                .is_some_and(|n| n.can_contain_heredoc()),
            _ => false,
        }
    }
}

impl RawDockerfile {
    /// The whole parse in BuildKit's dump notation, one line per instruction.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            out.push('(');
            out.push_str(&node.dump());
            out.push_str(")\n");
        }
        out
    }
}

/// Maps byte offsets of a joined instruction line back to physical positions.
#[derive(Debug, Default)]
struct SourceMap {
    /// (offset in the joined line, line, column of that offset).
    segments: Vec<(usize, usize, usize)>,
}

impl SourceMap {
    fn push(&mut self, offset: usize, line: usize, column: usize) {
        self.segments.push((offset, line, column));
    }

    fn position(&self, text: &str, offset: usize) -> Position {
        let idx = self
            .segments
            .iter()
            .rposition(|(o, _, _)| *o <= offset)
            .unwrap_or(0);
        let Some(&(start, line, column)) = self.segments.get(idx) else {
            return Position::new(1, 1);
        };
        let slice = text.get(start..offset.min(text.len())).unwrap_or("");
        Position::new(line, column + slice.chars().count())
    }
}

/// Strips the line ending (every trailing CR and LF).
fn trim_eol(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Applies BuildKit's continuation test `([^E])E[ \t]*$|^E[ \t]*$`: returns
/// the line without the escape and trailing blanks, and whether it continues.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    let Some(before) = body.strip_suffix(escape) else {
        return (line, false);
    };
    if before.is_empty() || !before.ends_with(escape) {
        (before, true)
    } else {
        (line, false)
    }
}

fn too_long(line: &str, line_no: usize) -> Result<(), ParseError> {
    if trim_eol(line).len() >= MAX_LINE {
        return Err(ParseError::new(
            Position::new(line_no, 1),
            ErrorKind::LineTooLong,
        ));
    }
    Ok(())
}

/// Runs the low-level parse.
///
/// # Errors
/// A [`ParseError`] for what BuildKit's parser rejects: a file with no
/// instructions, a bad or repeated directive, JSON arrays holding
/// non-strings, ENV/LABEL without a value, unterminated heredocs, overlong
/// lines.
pub fn parse_raw(source: &str) -> Result<RawDockerfile, ParseError> {
    let source = source.strip_prefix('\u{FEFF}').unwrap_or(source);
    let lines: Vec<&str> = source.split_inclusive('\n').collect();
    let mut directives = DirectiveReader::new();
    let mut nodes = Vec::new();
    let mut comments = Vec::new();
    let mut warnings = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line_no = i + 1;
        let physical = lines[i];
        i += 1;
        too_long(physical, line_no)?;
        let content = trim_eol(physical);
        let trimmed = content.trim_start();
        directives.read(trimmed, line_no)?;
        let escape = directives.escape;
        if is_comment(trimmed) {
            comments.push(Comment {
                text: trimmed[1..].to_string(),
                line: line_no,
            });
            continue;
        }
        let (first, continues) = trim_continuation(trimmed, escape);
        let mut done = !continues;
        if done && first.is_empty() {
            continue;
        }
        let mut map = SourceMap::default();
        let lead = content[..content.len() - trimmed.len()].chars().count();
        map.push(0, line_no, lead + 1);
        let mut text = first.to_string();
        let mut empty_continuation = false;
        let mut last_line = line_no;
        let mut last_len = content.chars().count();
        while !done && i < lines.len() {
            let next_no = i + 1;
            let next = lines[i];
            i += 1;
            too_long(next, next_no)?;
            let next = trim_eol(next);
            last_line = next_no;
            last_len = next.chars().count();
            if is_comment(next) {
                comments.push(Comment {
                    text: next.trim_start()[1..].to_string(),
                    line: next_no,
                });
                continue;
            }
            if next.trim_start().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (part, continues) = trim_continuation(next, escape);
            map.push(text.len(), next_no, 1);
            text.push_str(part);
            done = !continues;
        }
        let start = Position::new(line_no, lead + 1);
        let mut node = node_from_line(&text, 0, &map, escape)?;
        let mut end = Position::new(last_line, last_len + 1);
        if node.can_contain_heredoc() && text.contains("<<") {
            let markers = markers_in_line(&text).map_err(|(word, msg)| {
                ParseError::new(start, ErrorKind::InvalidHeredoc(word, msg))
            })?;
            for marker in markers {
                let body_start = Position::new(i + 1, 1);
                let mut content = String::new();
                let mut terminated = false;
                while i < lines.len() {
                    let body_line = lines[i];
                    i += 1;
                    let mut candidate = trim_eol(body_line);
                    if marker.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == marker.name {
                        terminated = true;
                        break;
                    }
                    content.push_str(body_line);
                }
                if !terminated {
                    return Err(ParseError::new(
                        start,
                        ErrorKind::UnterminatedHeredoc(marker.name),
                    ));
                }
                end = Position::new(i, trim_eol(lines[i - 1]).chars().count() + 1);
                node.heredocs.push(Heredoc {
                    name: marker.name,
                    file_descriptor: marker.file_descriptor,
                    chomp: marker.chomp,
                    expand: marker.expand,
                    content,
                    span: Span::new(body_start, end),
                });
            }
        }
        node.span = Span::new(start, end);
        node.empty_continuation = empty_continuation;
        if empty_continuation {
            warnings.push(Warning {
                message: format!("Empty continuation line found in: {text}"),
                detail: "Empty continuation lines will become errors in a future release".into(),
                span: node.span,
            });
        }
        nodes.push(node);
    }
    if nodes.is_empty() {
        return Err(ParseError::new(
            Position::new(lines.len().max(1), 1),
            ErrorKind::NoInstructions,
        ));
    }
    Ok(RawDockerfile {
        directives: directives.found,
        escape: directives.escape,
        nodes,
        comments,
        warnings,
    })
}

/// Builds a node from the instruction text starting at byte `base` of
/// `full`, the joined line that `map` describes (ONBUILD recurses with the
/// offset of its trigger).
fn node_from_line(
    full: &str,
    base: usize,
    map: &SourceMap,
    escape: char,
) -> Result<RawNode, ParseError> {
    let line = full.get(base..).unwrap_or("");
    let lead = line.len() - line.trim_start().len();
    let trimmed = line.trim();
    let base = base + lead;
    let split = split_instruction(trimmed, escape);
    let pos = |offset: usize| map.position(full, base + offset);
    let args_position = pos(split.args_start);
    let flags = split
        .flags
        .iter()
        .map(|f| RawFlag {
            text: f.text.clone(),
            span: Span::new(pos(f.start), pos(f.end)),
        })
        .collect();
    let mut node = RawNode {
        keyword: split.keyword.clone(),
        flags,
        args: Vec::new(),
        nested: None,
        json: false,
        original: line.to_string(),
        heredocs: Vec::new(),
        span: Span::point(pos(0)),
        args_position,
        empty_continuation: false,
    };
    let rest = split.args.as_str();
    let err = |kind| ParseError::new(args_position, kind);
    match node.command().as_str() {
        "from" | "expose" => node.args = split_blanks(rest),
        "add" | "copy" | "volume" => match parse_json(rest).map_err(err)? {
            Some(items) => {
                node.args = items;
                node.json = true;
            }
            None => node.args = split_blanks(rest),
        },
        "run" | "cmd" | "entrypoint" | "shell" => {
            let (args, json) = maybe_json(rest).map_err(err)?;
            node.args = args;
            node.json = json;
        }
        "healthcheck" => {
            let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
            if sep > 0 {
                node.args.push(rest[..sep].to_string());
                let (args, json) = maybe_json(rest[sep..].trim_start()).map_err(err)?;
                node.args.extend(args);
                node.json = json;
            }
        }
        "env" | "label" => {
            node.args = name_values(rest, &split.keyword.to_uppercase(), escape).map_err(err)?;
        }
        "arg" => node.args = split_words(rest, escape),
        "maintainer" | "user" | "workdir" | "stopsignal" => {
            if !rest.is_empty() {
                node.args.push(rest.to_string());
            }
        }
        "onbuild" => {
            if !rest.is_empty() {
                let nested = node_from_line(full, base + split.args_start, map, escape)?;
                node.nested = Some(Box::new(nested));
            }
        }
        _ => node.args.push(String::new()),
    }
    Ok(node)
}

/// Splits on runs of `[ \t\v\f\r]`, as BuildKit does for FROM and EXPOSE.
fn split_blanks(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return Vec::new();
    }
    rest.split([' ', '\t', '\u{0B}', '\u{0C}', '\r'])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A JSON array of strings, or `None` when the text is not valid JSON.
fn parse_json(rest: &str) -> Result<Option<Vec<String>>, ErrorKind> {
    let text = rest.trim_start();
    if !text.starts_with('[') {
        return Ok(None);
    }
    let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(text) else {
        return Ok(None);
    };
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(ErrorKind::JsonNotStrings),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Exec form when the text is a JSON array of strings, else the whole text
/// as one argument.
fn maybe_json(rest: &str) -> Result<(Vec<String>, bool), ErrorKind> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    match parse_json(rest)? {
        Some(items) => Ok((items, true)),
        None => Ok((vec![rest.to_string()], false)),
    }
}

/// ENV and LABEL: `key value` (legacy) or `key=value ...`, as triples.
fn name_values(rest: &str, keyword: &str, escape: char) -> Result<Vec<String>, ErrorKind> {
    let words = split_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let mut parts = rest.splitn(2, [' ', '\t', '\u{0B}', '\u{0C}', '\r']);
        let key = parts.next().unwrap_or_default();
        let value = parts
            .next()
            .map(|v| v.trim_start_matches([' ', '\t', '\u{0B}', '\u{0C}', '\r']));
        return match value {
            Some(value) => Ok(vec![key.to_string(), value.to_string(), String::new()]),
            None => Err(ErrorKind::Arguments(format!(
                "{keyword} must have two arguments"
            ))),
        };
    }
    let mut out = Vec::with_capacity(words.len() * 3);
    for word in &words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(ErrorKind::MissingEquals(word.clone()));
        };
        out.extend([key.to_string(), value.to_string(), "=".to_string()]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_rule() {
        assert_eq!(trim_continuation("foo \\", '\\'), ("foo ", true));
        assert_eq!(trim_continuation("foo\\\\", '\\'), ("foo\\\\", false));
        assert_eq!(trim_continuation("\\  ", '\\'), ("", true));
        assert_eq!(
            trim_continuation("goodnight  \\", '\\'),
            ("goodnight  ", true)
        );
        assert_eq!(trim_continuation("a`", '`'), ("a", true));
    }

    #[test]
    fn positions_follow_physical_lines() {
        let df = parse_raw("FROM a\n  RUN --mount=x \\\n   --network=none echo\n").unwrap();
        let run = &df.nodes[1];
        assert_eq!(run.span.start, Position::new(2, 3));
        assert_eq!(run.flags[0].span.start, Position::new(2, 7));
        assert_eq!(run.flags[1].span.start, Position::new(3, 4));
        assert_eq!(run.args_position, Position::new(3, 19));
        assert_eq!(run.span.end.line, 3);
    }

    #[test]
    fn onbuild_trigger_positions_count_characters() {
        let df = parse_raw(
            "FROM a\nONBUILD   ENV é=1 \\\n  x=2\nONBUILD COPY --chown=ü \\\n --bad=1 a b\n",
        )
        .unwrap();
        let copy = df.nodes[2].nested.as_ref().unwrap();
        assert_eq!(copy.flags[1].span.start, Position::new(5, 2));
        assert_eq!(
            df.nodes[1].nested.as_ref().unwrap().span.start,
            Position::new(2, 11)
        );
    }

    #[test]
    fn heredoc_bodies_are_consumed() {
        let df = parse_raw("FROM a\nRUN <<A <<B cat\nx\nA\ny\nB\nCMD c\n").unwrap();
        assert_eq!(df.nodes.len(), 3);
        assert_eq!(df.nodes[1].heredocs[0].content, "x\n");
        assert_eq!(df.nodes[1].heredocs[1].content, "y\n");
        assert_eq!(df.nodes[1].span.end.line, 6);
        assert!(parse_raw("FROM a\nRUN <<A\nx\n").is_err());
    }
}
