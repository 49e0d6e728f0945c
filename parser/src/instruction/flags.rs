//! Builder flags (`--name=value` before an instruction's arguments), read the
//! way BuildKit's `BFlags` reads them.

use crate::error::{ErrorKind, ParseError};
use crate::raw::RawFlag;
use crate::span::Span;

/// How a flag takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagKind {
    /// `--name=value`, at most once.
    String,
    /// `--name=value`, any number of times.
    Strings,
    /// `--name`, `--name=true` or `--name=false`, at most once.
    Bool,
}

/// One flag occurrence after parsing.
#[derive(Debug, Clone)]
pub(crate) struct FlagValue {
    pub name: &'static str,
    pub value: String,
    pub span: Span,
}

/// The flags given to one instruction, checked against what it accepts.
#[derive(Debug, Default)]
pub(crate) struct Flags {
    values: Vec<FlagValue>,
}

impl Flags {
    /// Checks `raw` against the accepted `(name, kind)` list.
    pub fn parse(
        raw: &[RawFlag],
        accepted: &[(&'static str, FlagKind)],
    ) -> Result<Self, ParseError> {
        let mut values: Vec<FlagValue> = Vec::new();
        for flag in raw {
            let at = flag.span.start;
            let body = flag.text.strip_prefix("--").unwrap_or(&flag.text);
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some(&(known, kind)) = accepted.iter().find(|(n, _)| *n == name) else {
                return Err(ParseError::new(
                    at,
                    ErrorKind::UnknownFlag(name.to_string()),
                ));
            };
            if kind != FlagKind::Strings && values.iter().any(|v| v.name == known) {
                return Err(ParseError::new(
                    at,
                    ErrorKind::DuplicateFlag(known.to_string()),
                ));
            }
            let value = match (kind, value) {
                (FlagKind::Bool, None) => "true".to_string(),
                (FlagKind::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                    "true" | "false" => v.to_ascii_lowercase(),
                    _ => {
                        return Err(ParseError::new(
                            at,
                            ErrorKind::InvalidFlagValue {
                                flag: known.to_string(),
                                message: format!("expecting boolean value, not: {v}"),
                            },
                        ))
                    }
                },
                (_, None) => {
                    return Err(ParseError::new(
                        at,
                        ErrorKind::InvalidFlagValue {
                            flag: known.to_string(),
                            message: "missing a value".to_string(),
                        },
                    ))
                }
                (_, Some(v)) => v.to_string(),
            };
            values.push(FlagValue {
                name: known,
                value,
                span: flag.span,
            });
        }
        Ok(Flags { values })
    }

    /// The value of a single-valued flag.
    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| v.value.clone())
    }

    /// The flag occurrence itself, with its span.
    pub fn get(&self, name: &str) -> Option<&FlagValue> {
        self.values.iter().find(|v| v.name == name)
    }

    /// Every value of a repeatable flag, in order.
    pub fn all(&self, name: &str) -> Vec<&FlagValue> {
        self.values.iter().filter(|v| v.name == name).collect()
    }

    /// A boolean flag: `None` when absent.
    pub fn bool(&self, name: &str) -> Option<bool> {
        self.get(name).map(|v| v.value == "true")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::Position;

    fn raw(words: &[&str]) -> Vec<RawFlag> {
        words
            .iter()
            .map(|w| RawFlag {
                text: w.to_string(),
                span: Span::point(Position::new(1, 1)),
            })
            .collect()
    }

    const ACCEPTED: &[(&str, FlagKind)] = &[
        ("str1", FlagKind::String),
        ("bool1", FlagKind::Bool),
        ("many", FlagKind::Strings),
    ];

    #[test]
    fn bflag_rules() {
        assert!(Flags::parse(&raw(&["--str1"]), ACCEPTED).is_err());
        let f = Flags::parse(&raw(&["--str1="]), ACCEPTED).unwrap();
        assert_eq!(f.string("str1").as_deref(), Some(""));
        assert_eq!(
            Flags::parse(&raw(&["--bool1"]), ACCEPTED)
                .unwrap()
                .bool("bool1"),
            Some(true)
        );
        assert_eq!(
            Flags::parse(&raw(&["--bool1=false"]), ACCEPTED)
                .unwrap()
                .bool("bool1"),
            Some(false)
        );
        assert!(Flags::parse(&raw(&["--bool1=false1"]), ACCEPTED).is_err());
        let err = Flags::parse(&raw(&["--nope"]), ACCEPTED).unwrap_err();
        assert_eq!(err.to_string(), "1:1: unknown flag: --nope");
        assert!(Flags::parse(&raw(&["--str1=a", "--str1=b"]), ACCEPTED).is_err());
        let f = Flags::parse(&raw(&["--many=a", "--many=b"]), ACCEPTED).unwrap();
        assert_eq!(f.all("many").len(), 2);
        assert_eq!(
            Flags::parse(&raw(&[]), ACCEPTED).unwrap().bool("bool1"),
            None
        );
    }
}
