//! Source positions.

use serde::Serialize;
use std::fmt;

/// A position in the Dockerfile: 1-based line and 1-based column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Default)]
pub struct Position {
    /// 1-based physical line number.
    pub line: usize,
    /// 1-based column, counted in Unicode scalar values.
    pub column: usize,
}

impl Position {
    /// Creates a position from a 1-based line and column.
    pub fn new(line: usize, column: usize) -> Self {
        Position { line, column }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A half-open region of the source: from `start` up to (not including) `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
pub struct Span {
    /// First character of the region.
    pub start: Position,
    /// Position just past the last character of the region.
    pub end: Position,
}

impl Span {
    /// Creates a span from two positions.
    pub fn new(start: Position, end: Position) -> Self {
        Span { start, end }
    }

    /// A span covering a single point.
    pub fn point(at: Position) -> Self {
        Span { start: at, end: at }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}
