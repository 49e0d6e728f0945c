//! kiln-solver: lowers a parsed Dockerfile to a content-addressed DAG of
//! operations and solves it with caching (being written; see issue 4).
#![deny(missing_docs)]

pub mod cache_options;
pub mod context;
mod graph;
mod lower;
mod op;
pub mod remote_cache;
mod solve;
pub mod storage;

pub use graph::{Graph, Vertex, VertexId, VertexMeta};
pub use lower::{
    lower, BuildOptions, ImageResolver, LowerError, Lowered, NamedContext, ResolvedImage,
};
pub use op::{
    CacheSharing, Chmod, ContextSource, CopyAction, ExecFile, ExecMount, ExecOp, FileAction,
    FileOp, HttpSource, ImageSource, MountSource, Op, Owner,
};
pub use solve::{
    layer_map, solve, unix_millis, CacheIndex, CacheKeyParts, CacheRecord, CachedLayer,
    ContextTree, Entitlement, Event, LayerRecord, ProgressSink, SecretSource, SolveError,
    SolveOptions, Solved, CACHE_KEY_VERSION,
};
