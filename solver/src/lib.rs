//! kiln-solver: lowers a parsed Dockerfile to a content-addressed DAG of
//! operations and solves it with caching (being written; see issue 4).
#![deny(missing_docs)]

pub mod context;
