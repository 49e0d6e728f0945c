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
        let Some((name, value)) = split_directive(line) else {
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

/// Matches `#[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=[ \t]*(.+?)[ \t]*$`.
fn split_directive(line: &str) -> Option<(&str, &str)> {
    let blanks = |c: char| c == ' ' || c == '\t';
    let body = line.strip_prefix('#')?.trim_start_matches(blanks);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directive_shapes() {
        assert_eq!(split_directive("# escape = `"), Some(("escape", "`")));
        assert_eq!(split_directive("#escape=\\"), Some(("escape", "\\")));
        assert_eq!(split_directive("# key = FOO bar"), Some(("key", "FOO bar")));
        assert_eq!(split_directive("# smth"), None);
        assert_eq!(split_directive("# 1x=y"), None);
        assert_eq!(split_directive("#x="), None);
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
