//! kiln-solver: lowers a parsed Dockerfile to a content-addressed DAG of
//! operations and solves it with caching (being written; see issue 4).
#![deny(missing_docs)]

pub mod context;
pub mod gc;
mod graph;
mod lower;
mod op;
pub mod remote_cache;
mod solve;

pub use graph::{Graph, Vertex, VertexId, VertexMeta};
pub use lower::{
    lower, BuildOptions, ImageResolver, LowerError, Lowered, NamedContext, ResolvedImage,
};
pub use op::{
    CacheSharing, Chmod, ContextSource, CopyAction, ExecFile, ExecMount, ExecOp, FileAction,
    FileOp, HttpSource, ImageSource, MountSource, NetworkMode, Op, Owner, SecurityMode,
};
pub use solve::{
    layer_map, solve, unix_millis, CacheIndex, CacheKeyParts, CacheRecord, CachedLayer,
    ContextTree, Entitlement, Event, LayerRecord, ProgressSink, SecretSource, SolveError,
    SolveOptions, Solved, CACHE_KEY_VERSION,
};
