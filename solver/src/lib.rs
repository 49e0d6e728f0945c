//! kiln's solver: a parsed Dockerfile in, an image's layers and config out.
//!
//! It works in two steps, as BuildKit's frontend and solver do:
//!
//! 1. [`lower`] turns a [`kiln_parser::Dockerfile`] into a [`Graph`] of
//!    [`Vertex`]es: an [`Op`] (an image, a build context, a downloaded file,
//!    file actions, a RUN process or a merge of layers) and the vertices it
//!    reads. A vertex's digest hashes its op and its inputs' digests, so
//!    equal work has one vertex. Base images are found through an
//!    [`ImageResolver`] as lowering meets them; lowering runs nothing.
//! 2. [`solve`] runs the vertices the target needs. Its scheduler knows
//!    only vertices, dependencies, the `--jobs` limit and a
//!    [`CancelToken`]; each op kind has its own module that runs it. A step
//!    that adds a layer is looked up in the cache first: its key
//!    ([`CacheKeyParts`]) covers the op, the inputs' keys and the content
//!    of the context files it reads; hits come from the local
//!    [`CacheIndex`] or a `--cache-from` cache ([`remote_cache`]). RUN
//!    steps run through a [`kiln_executor::Runtime`].
//!
//! Build contexts (`.dockerignore`, checksums) are in [`context`]; store
//! usage and pruning in [`gc`]; build records (`kiln builds`) in
//! [`builds`]. Errors are typed: [`LowerError`]
//! carries the Dockerfile position, [`SolveError`] the failed step, its
//! line and the [`StepError`].
//!
//! Lowering a small Dockerfile and looking at its graph (no sandbox, no
//! store):
//!
//! ```
//! use kiln_oci::Platform;
//! use kiln_solver::{lower, BuildOptions, ImageResolver, Op, ResolveError, ResolvedImage};
//!
//! /// Refuses every image: this Dockerfile needs none.
//! struct NoImages;
//!
//! impl ImageResolver for NoImages {
//!     fn resolve(&self, reference: &str, _: &Platform) -> Result<ResolvedImage, ResolveError> {
//!         Err(format!("{reference}: no images here").into())
//!     }
//! }
//!
//! let dockerfile = kiln_parser::parse(
//!     "FROM scratch\nCOPY hello.txt /\nRUN [\"/bin/true\"]\n",
//! )
//! .unwrap();
//! let lowered = lower(
//!     &dockerfile,
//!     &BuildOptions::default(),
//!     &NoImages,
//!     std::path::Path::new("."),
//! )
//! .unwrap();
//! let graph = &lowered.graph;
//! let root = graph.vertex(lowered.root);
//! assert!(matches!(root.op, Op::Exec(_)));
//! assert_eq!(root.meta.line, Some(3));
//! // Inputs first: the empty filesystem and the context, the COPY, the RUN.
//! let kinds: Vec<&str> = graph
//!     .closure(&[lowered.root])
//!     .iter()
//!     .map(|id| graph.vertex(*id).op.kind())
//!     .collect();
//! assert_eq!(kinds, ["scratch", "context", "file", "exec"]);
//!
//! let err = lower(
//!     &kiln_parser::parse("FROM busybox\n").unwrap(),
//!     &BuildOptions::default(),
//!     &NoImages,
//!     std::path::Path::new("."),
//! )
//! .unwrap_err();
//! assert!(err.to_string().contains("no images here"), "{err}");
//! ```
#![deny(missing_docs)]

pub mod builds;
mod cache;
pub mod context;
pub mod gc;
mod graph;
mod layer;
mod lower;
mod op;
mod resolve_error;
mod solve;

pub use cache::mounts as cache_mounts;
pub use cache::options as cache_options;
pub use cache::remote as remote_cache;
pub use cache::{
    unix_millis, CacheIndex, CacheIndexEntry, CacheKeyParts, CachedLayer, FetchError, LazyError,
    CACHE_KEY_VERSION,
};
pub use graph::{Graph, Vertex, VertexId, VertexMeta, VertexState};
pub use layer::LayerError;
pub use lower::{
    import_lowered, lower, BuildOptions, ImageResolver, LinkedTarget, LowerError, Lowered,
    NamedContext, ResolvedImage,
};
pub use op::{
    CacheSharing, Chmod, ContextSource, CopyAction, ExecFile, ExecMount, ExecOp, FileAction,
    FileOp, HttpSource, ImageSource, MountSource, NetworkMode, Op, Owner, SecurityMode,
};
pub use resolve_error::ResolveError;
pub use solve::{
    check_emulation, default_jobs, layer_map, solve, solve_roots, solve_with_cancel, CancelToken,
    ChecksumProblem, ContextTree, CpuPool, CpuSlot, DownloadError, Entitlement, EntitlementError,
    Event, MountError, PrepareFn, PrepareLayer, ProgressSink, SecretSource, SolveError,
    SolveOptions, Solved, StepError, StepReport, StepStatus,
};
