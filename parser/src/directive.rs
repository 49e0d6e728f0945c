//! Parser directives (`# syntax=`, `# escape=`, `# check=`), recognised only
//! at the top of the file.

use crate::error::{ErrorKind, ParseError};
use crate::span::Position;
use serde::Serialize;

/// A parser directive found at the top of the Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Directive {
    /// The directive name, lower-cased (`syntax`, `escape` or `check`).
    pub name: String,
    /// The value with surrounding blanks removed.
    pub value: String,
    /// The 1-based line it is on.
    pub line: usize,
}

const KNOWN: [&str; 3] = ["syntax", "escape", "check"];

/// Tracks directives while the top of the file is read.
#[derive(Debug)]
pub(crate) struct DirectiveReader {
    done: bool,
    pub found: Vec<Directive>,
    pub escape: char,
}

impl DirectiveReader {
    pub fn new() -> Self {
        DirectiveReader {
            done: false,
            found: Vec::new(),
            escape: '\\',
        }
    }

    /// Looks at one (left-trimmed) line. Directive reading stops for good at
    /// the first line that is not a known `# name=value` directive.
    pub fn read(&mut self, line: &str, line_no: usize) -> Result<(), ParseError> {
        if self.done {
            return Ok(());
        }
        let Some((name, value)) = split_directive(line, "#") else {
            self.done = true;
            return Ok(());
        };
        let name = name.to_ascii_lowercase();
        if !KNOWN.contains(&name.as_str()) {
            self.done = true;
            return Ok(());
        }
        let at = Position::new(line_no, 1);
        if self.found.iter().any(|d| d.name == name) {
            return Err(ParseError::new(at, ErrorKind::DuplicateDirective(name)));
        }
        if name == "escape" {
            self.escape = match value {
                "\\" => '\\',
                "`" => '`',
                other => {
                    return Err(ParseError::new(
                        at,
                        ErrorKind::InvalidEscape(other.to_string()),
                    ))
                }
            };
        }
        self.found.push(Directive {
            name,
            value: value.to_string(),
            line: line_no,
        });
        Ok(())
    }
}

/// Matches `#[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=[ \t]*(.+?)[ \t]*$`, with
/// `comment` in place of `#`.
fn split_directive<'a>(line: &'a str, comment: &str) -> Option<(&'a str, &'a str)> {
    let blanks = |c: char| c == ' ' || c == '\t';
    let body = line.strip_prefix(comment)?.trim_start_matches(blanks);
    let name_len = body
        .char_indices()
        .take_while(|(i, c)| {
            if *i == 0 {
                c.is_ascii_alphabetic()
            } else {
                c.is_ascii_alphanumeric()
            }
        })
        .count();
    if name_len == 0 {
        return None;
    }
    let (name, after) = body.split_at(name_len);
    let value = after
        .trim_start_matches(blanks)
        .strip_prefix('=')?
        .trim_matches(blanks);
    if value.is_empty() {
        return None;
    }
    Some((name, value))
}

/// A directive found by [`detect_syntax`] or [`detect_check`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DetectedDirective {
    /// The value up to its first space: the frontend reference for `syntax`,
    /// the options for `check`.
    pub reference: String,
    /// The whole value.
    pub value: String,
    /// The 1-based line it is on.
    pub line: usize,
}

/// Finds the `syntax` directive the way BuildKit picks a frontend, which is
/// more lenient than the parser: a `#!` first line is skipped, `//syntax=`
/// comments are accepted, and so is a whole-file JSON object with a
/// `"syntax"` key.
pub fn detect_syntax(source: &str) -> Option<DetectedDirective> {
    let source = source.strip_prefix('\u{FEFF}').unwrap_or(source);
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(source) {
        if let Some(serde_json::Value::String(v)) = map.get("syntax") {
            return Some(detected(v, 1));
        }
    }
    scan_for("syntax", source, "//").or_else(|| scan_for("syntax", source, "#"))
}

/// Finds the `check` directive (lint options): only `#` comments count, after
/// an optional `#!` first line.
pub fn detect_check(source: &str) -> Option<DetectedDirective> {
    let source = source.strip_prefix('\u{FEFF}').unwrap_or(source);
    scan_for("check", source, "#")
}

fn detected(value: &str, line: usize) -> DetectedDirective {
    DetectedDirective {
        reference: value.split(' ').next().unwrap_or_default().to_string(),
        value: value.to_string(),
        line,
    }
}

fn scan_for(key: &str, source: &str, comment: &str) -> Option<DetectedDirective> {
    for (i, line) in source.lines().enumerate() {
        if i == 0 && line.starts_with("#!") {
            continue;
        }
        let (name, value) = split_directive(line.trim(), comment)?;
        let name = name.to_ascii_lowercase();
        if !KNOWN.contains(&name.as_str()) {
            return None;
        }
        if name == key {
            return Some(detected(value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directive_shapes() {
        let d = |l| split_directive(l, "#");
        assert_eq!(d("# escape = `"), Some(("escape", "`")));
        assert_eq!(d("#escape=\\"), Some(("escape", "\\")));
        assert_eq!(d("# key = FOO bar"), Some(("key", "FOO bar")));
        assert_eq!(d("# smth"), None);
        assert_eq!(d("# 1x=y"), None);
        assert_eq!(d("#x="), None);
    }

    #[test]
    fn unknown_key_ends_directives() {
        let mut r = DirectiveReader::new();
        r.read("#escape=\\", 1).unwrap();
        r.read("# key = FOO bar", 2).unwrap();
        r.read("# syntax=x", 3).unwrap();
        assert_eq!(r.found.len(), 1);
        let mut r = DirectiveReader::new();
        r.read("# EScape=\\", 1).unwrap();
        assert_eq!(r.found[0].name, "escape");
        assert!(r.read("# escape=`", 2).is_err());
        let mut r = DirectiveReader::new();
        assert!(r.read("# escape=x", 1).is_err());
    }
}
