//! kiln-parser (being written).
mod directive;
mod dockerfile;
mod error;
mod gostr;
mod heredoc;
pub mod instruction;
pub mod raw;
pub mod shell;
mod span;
mod syntax;

pub use directive::Directive;
pub use dockerfile::{parse, Dockerfile, Stage};
pub use error::{ErrorKind, ParseError};
pub use heredoc::{chomp, Heredoc};
pub use instruction::{Command, Instruction};
pub use span::{Position, Span};
