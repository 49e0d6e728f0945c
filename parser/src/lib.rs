//! kiln's Dockerfile front end: text in, typed instructions with positions out.
//!
//! Parsing happens in two steps, as in BuildKit's Dockerfile frontend:
//!
//! 1. [`raw::parse_raw`] reads physical lines the way BuildKit's low-level
//!    parser does: parser directives at the top (`# syntax=`, `# escape=`,
//!    `# check=`), comments, line continuations with all their quirks,
//!    heredoc bodies, `--flag` words and per-instruction argument shapes
//!    (JSON exec form with the silent fallback to shell form, ENV/LABEL
//!    pairs, ...). Its [`raw::RawDockerfile::dump`] prints BuildKit's AST
//!    dump format, which the conformance tests compare byte for byte.
//! 2. [`parse`] turns the nodes into a [`Dockerfile`]: global ARGs and
//!    [`Stage`]s of [`Command`]s, each holding a typed [`Instruction`] (one
//!    variant per keyword, flags checked and typed, `RUN --mount` read into
//!    [`instruction::RunMount`]) and its [`Span`].
//!
//! Variables are not expanded while parsing. [`shell`] is BuildKit's word
//! lexer (`$a`, `${a:-b}`, `${a#p}`, quotes, escapes), and
//! [`Command::expand`] applies it to exactly the arguments BuildKit expands
//! for each instruction; the solver calls it with the stage's ARG and ENV
//! values. [`predefined`] lists the ARGs BuildKit defines without a
//! declaration (proxies, platforms, the target stage).
//!
//! Every error is a [`ParseError`] whose `Display` is `LINE:COL: message`;
//! the caller adds the file name.
//!
//! ```
//! use kiln_parser::{parse, Instruction};
//!
//! let df = parse("FROM busybox AS base\nRUN --network=none echo hi\n").unwrap();
//! let stage = &df.stages[0];
//! assert_eq!(stage.name(), Some("base"));
//! let run = &stage.commands[0];
//! assert!(matches!(run.instruction, Instruction::Run(_)));
//! assert_eq!(run.span.start.line, 2);
//!
//! let err = parse("FROM busybox\nCOPY --bogus a b\n").unwrap_err();
//! assert_eq!(err.to_string(), "2:6: unknown flag: --bogus");
//! ```
//!
//! The crate does no file I/O, hashing or image work.
#![deny(missing_docs)]

mod directive;
mod dockerfile;
mod error;
mod excerpt;
mod gostr;
mod heredoc;
pub mod instruction;
pub mod predefined;
pub mod raw;
pub mod shell;
mod source;
mod span;
mod suggest;
mod syntax;

pub use directive::{detect_check, detect_syntax, DetectedDirective, Directive};
pub use dockerfile::{parse, Dockerfile, Stage};
pub use error::{ErrorKind, ParseError};
pub use excerpt::excerpt;
pub use gostr::go_quote;
pub use heredoc::{chomp, Heredoc};
pub use instruction::{Command, Instruction};
pub use source::decode;
pub use span::{Position, Span};
pub use suggest::{suggest_instruction, KEYWORDS};
