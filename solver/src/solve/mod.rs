//! Solving: runs the vertices the target needs, in parallel (bounded by
//! `jobs`), each at most once, reusing cached results; the first failure
//! stops the build and names the instruction and line. kiln's own
//! CPU-heavy work in a step (a new layer's diff and compression, a COPY, a
//! context checksum) is bounded apart from `jobs` by a [`CpuPool`] sized
//! to the cores, so steps that wait do not hold the cores.
//!
//! [`scheduler`] knows only vertices, dependencies, the job limit and the
//! [`CancelToken`]; this module hands it one function that runs a vertex,
//! which dispatches to the op's own module: [`source`] (scratch, context,
//! image, `ADD URL`), [`file`] (COPY and friends), [`exec`] (RUN, with
//! [`mounts`]) and [`merge`]. What every step shares is a [`StepEnv`]; the
//! cache a step consults is [`crate::cache`].
//!
//! Cancellation ([`solve_with_cancel`], or the first failure) reaches the
//! steps as follows: no vertex starts after it; a step that adds a layer
//! checks the token after its cache lookup, and a RUN step again just
//! before it starts its process; a RUN process that is already running is
//! killed with its whole tree (the runtime watches the token's
//! [`kiln_executor::CancelSignal`]) and its step ends as cancelled. Other
//! running steps (a copy, a download) finish first.

mod context_tree;
mod cpu;
mod error;
mod exec;
mod file;
mod git;
pub(crate) mod http;
mod merge;
mod mounts;
mod options;
mod progress;
mod scheduler;
mod source;
mod step;

pub use context_tree::ContextTree;
pub use cpu::{default_jobs, CpuPool, CpuSlot};
pub use error::{SolveError, StepError};
pub use http::{ChecksumProblem, DownloadError};
pub use mounts::MountError;
pub use options::{
    Entitlement, EntitlementError, PrepareFn, PrepareLayer, SecretSource, SolveOptions,
};
pub use progress::{Event, ProgressSink, StepReport, StepStatus};
pub use scheduler::CancelToken;

use crate::cache::lazy::{LazyError, LazyLayers};
use crate::cache::lookup::BuildCache;
use crate::cache::remote::{CacheMode, ExportedRecord};
use crate::cache::CachedLayer;
use crate::context::BuildContext;
use crate::graph::{Graph, VertexId, VertexMeta};
use crate::layer;
use crate::lower::Lowered;
use crate::op::Op;
use kiln_executor::LayerStack;
use kiln_oci::{Digest, ImageConfig, Layer, LocalStore};
use scheduler::{Failure, Node};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use step::{HostInputs, Input, StepEnv, VertexResult};

/// What a solve produced: the target's layers and its completed config.
#[derive(Debug, Clone)]
pub struct Solved {
    /// Every layer of the image, base first.
    pub layers: Vec<Layer>,
    /// The image config with `rootfs.diff_ids` filled in.
    pub config: ImageConfig,
    /// Every step of the build that made or reused a layer: its cache key
    /// and the layer, in the order they finished.
    pub steps: Vec<(Digest, CachedLayer)>,
    /// The ids of the cache mounts (`RUN --mount=type=cache`) the build's
    /// steps use.
    pub cache_mounts: std::collections::BTreeSet<String>,
    /// Layers of other stages that `--cache-from` caches provided and
    /// nothing fetched.
    lazy: Arc<LazyLayers>,
}

impl Solved {
    /// The cache records `--cache-to` exports: every step's with
    /// [`CacheMode::Max`], else only those whose layer is in the image.
    pub fn cache_records(&self, mode: CacheMode) -> Vec<ExportedRecord> {
        let in_image: std::collections::HashSet<String> =
            self.layers.iter().map(|l| l.diff_id.to_string()).collect();
        self.steps
            .iter()
            .filter(|(_, layer)| mode == CacheMode::Max || in_image.contains(&layer.diff_id))
            .map(|(key, layer)| ExportedRecord::new(key, layer))
            .collect()
    }

    /// Fetches into `store` the blobs of `records` that are still only in
    /// a `--cache-from` cache (steps of other stages that hit and were
    /// never needed), so they can be exported. Call it outside the async
    /// runtime.
    ///
    /// # Errors
    /// A cache failing to deliver.
    pub fn fetch_blobs(
        &self,
        store: &LocalStore,
        records: &[ExportedRecord],
    ) -> Result<(), LazyError> {
        for r in records {
            self.lazy.fetch_blob(store, &r.blob)?;
        }
        Ok(())
    }

    /// The image's filesystem as a layer stack.
    pub fn stack(&self) -> LayerStack {
        layer::stack_of(&self.layers)
    }
}

/// Solves `lowered` with the local `store`, reading contexts from
/// `contexts` (by name). It cannot be cancelled: see [`solve_with_cancel`].
///
/// # Errors
/// The first step that fails, named with its line.
pub async fn solve(
    lowered: &Lowered,
    store: &LocalStore,
    contexts: HashMap<String, Arc<BuildContext>>,
    options: &SolveOptions,
    runtime: Arc<dyn kiln_executor::Runtime>,
    progress: Arc<dyn ProgressSink>,
) -> Result<Solved, SolveError> {
    let cancel = CancelToken::new();
    solve_with_cancel(
        lowered, store, contexts, options, runtime, progress, &cancel,
    )
    .await
}

/// [`solve`], stopping when `cancel` is cancelled: no step starts after
/// that, running RUN processes are killed, and the other running steps
/// see it (see the module docs). The solve then returns
/// [`SolveError::Cancelled`] once the running steps have ended.
///
/// # Errors
/// The first step that fails, named with its line, or the cancellation.
pub async fn solve_with_cancel(
    lowered: &Lowered,
    store: &LocalStore,
    contexts: HashMap<String, Arc<BuildContext>>,
    options: &SolveOptions,
    runtime: Arc<dyn kiln_executor::Runtime>,
    progress: Arc<dyn ProgressSink>,
    cancel: &CancelToken,
) -> Result<Solved, SolveError> {
    let roots = [(lowered.root, lowered.config.clone())];
    let mut solved = solve_roots(
        &lowered.graph,
        &roots,
        store,
        contexts,
        options,
        runtime,
        progress,
        cancel,
    )
    .await?;
    solved.pop().ok_or(SolveError::Cancelled)
}

/// [`solve_with_cancel`] for several roots of one graph at once (the
/// targets of `kiln bake`): every vertex any root needs runs once, and
/// one [`Solved`] per root comes back, in the order of `roots`, each
/// with its image config (`rootfs` filled in).
///
/// # Errors
/// The first step that fails, named with its line, or the cancellation.
#[allow(clippy::too_many_arguments)]
pub async fn solve_roots(
    graph: &Graph,
    roots: &[(VertexId, ImageConfig)],
    store: &LocalStore,
    contexts: HashMap<String, Arc<BuildContext>>,
    options: &SolveOptions,
    runtime: Arc<dyn kiln_executor::Runtime>,
    progress: Arc<dyn ProgressSink>,
    cancel: &CancelToken,
) -> Result<Vec<Solved>, SolveError> {
    layer::settle_in_background(store);
    let env = Arc::new(StepEnv {
        graph: graph.clone(),
        store: store.clone(),
        prepare: options.prepare.clone(),
        background: Default::default(),
        progress,
        host: HostInputs {
            contexts,
            secrets: options.secrets.clone(),
            ssh: options.ssh.clone(),
        },
        cache: BuildCache::new(
            store,
            options.no_cache,
            &options.no_cache_stages,
            options.cache_from.clone(),
        ),
        runtime,
        snapshots: options.snapshots.clone(),
        cpu: options.cpu.clone(),
        unread: unread_vertices(graph, roots, options.root_dirs),
    });
    let root_ids: Vec<VertexId> = roots.iter().map(|(id, _)| *id).collect();
    let order = env.graph.closure(&root_ids);
    preflight(&env, &order, &options.allow)?;
    exec::emulation(&env.graph, &order, options.emulate, env.progress.as_ref())?;
    let nodes = order
        .iter()
        .map(|id| Node {
            id: *id,
            inputs: env.graph.vertex(*id).inputs.clone(),
        })
        .collect();
    let work = {
        let env = env.clone();
        move |id: VertexId, inputs: Vec<Input>, cancel: &CancelToken| {
            let result = run_vertex(&env, id, &inputs, cancel);
            if let Err(e) = &result {
                if !matches!(e, StepError::Cancelled) {
                    env.event(Event::Error {
                        name: env.graph.vertex(id).meta.name.clone(),
                        message: e.to_string(),
                    });
                }
            }
            result
        }
    };
    let done = scheduler::run(nodes, options.jobs, cancel, work).await;
    // The new layers' background work (their compression for the
    // outputs) ends before the solve does, failed or not: a failure or
    // a cancellation has told it to stop.
    let waited = {
        let env = env.clone();
        tokio::task::spawn_blocking(move || env.background.wait()).await
    };
    let done = done.map_err(|failure| failed(&env, failure))?;
    match waited.map(|failed| failed.map(|b| *b)) {
        Ok(None) => {}
        Ok(Some((_, StepError::Cancelled))) => return Err(SolveError::Cancelled),
        Ok(Some((meta, error))) => {
            env.event(Event::Error {
                name: meta.name.clone(),
                message: error.to_string(),
            });
            return Err(step_error(&meta, error));
        }
        Err(e) => {
            return Err(SolveError::Step {
                name: "[internal] compressing layers".into(),
                line: None,
                error: StepError::Panicked(e.to_string()),
            })
        }
    }
    let mut images = Vec::new();
    for (root, config) in roots {
        let layers = match done.get(root) {
            Some((VertexResult::Fs(layers), _)) => layers.clone(),
            _ => Vec::new(),
        };
        let mut config = config.clone();
        config.rootfs.kind = "layers".into();
        config.rootfs.diff_ids = layers.iter().map(|l| l.diff_id.to_string()).collect();
        images.push((layers, config));
    }
    // The images are exported: their layers must be here, and their
    // directories too when the outputs read files. Fetching blocks on the
    // caches' own async calls, so it runs off the async workers.
    let fetch = {
        let env = env.clone();
        let layers: Vec<Layer> = images.iter().flat_map(|(l, _)| l.clone()).collect();
        let dirs = options.root_dirs;
        tokio::task::spawn_blocking(move || {
            env.cache.materialize(&env.store, &layers)?;
            if dirs {
                for l in &layers {
                    layer::unpack_missing(&env.store, l).map_err(StepError::from)?;
                }
            }
            Ok::<_, StepError>(())
        })
        .await
    };
    let fetched = match fetch {
        Ok(result) => result,
        Err(e) => Err(StepError::Panicked(format!("fetching cached layers: {e}"))),
    };
    fetched.map_err(|error| SolveError::Step {
        name: "[internal] fetching cached layers".into(),
        line: None,
        error,
    })?;
    let steps = env.cache.take_used();
    let lazy = env.cache.lazy();
    let cache_mounts = crate::cache::mounts::ids_in(&env.graph, &order);
    Ok(images
        .into_iter()
        .map(|(layers, config)| Solved {
            layers,
            config,
            steps: steps.clone(),
            cache_mounts: cache_mounts.clone(),
            lazy: lazy.clone(),
        })
        .collect())
}

/// The [`SolveError`] of a scheduler failure; a panic is reported as a
/// failure of its step, like an error.
fn failed(env: &StepEnv, failure: Failure<VertexId, StepError>) -> SolveError {
    let (id, error) = match failure {
        Failure::Failed { vertex, error } => (vertex, error),
        Failure::Panicked { vertex, message } => {
            let error = StepError::Panicked(message);
            env.event(Event::Error {
                name: env.graph.vertex(vertex).meta.name.clone(),
                message: error.to_string(),
            });
            (vertex, error)
        }
        Failure::Unrunnable { vertex } => (vertex, StepError::Unrunnable),
        Failure::Cancelled => return SolveError::Cancelled,
    };
    step_error(&env.graph.vertex(id).meta, error)
}

fn step_error(meta: &VertexMeta, error: StepError) -> SolveError {
    SolveError::Step {
        name: meta.name.clone(),
        line: meta.line,
        error,
    }
}

/// Checks that the RUN steps of `lowered` for another architecture can
/// run under QEMU emulation, registering it when `register` (`--emulate`)
/// allows, as [`solve`] does first; a multi-platform build calls it for
/// every platform before solving any, so it fails before anything runs.
///
/// # Errors
/// [`SolveError::Step`] naming the first RUN step that cannot run, with
/// [`StepError::Emulation`] saying what to install or run.
pub fn check_emulation(
    lowered: &Lowered,
    register: bool,
    progress: &dyn ProgressSink,
) -> Result<(), SolveError> {
    let order = lowered.graph.closure(&[lowered.root]);
    exec::emulation(&lowered.graph, &order, register, progress)
}

/// Refuses, before anything runs, a build whose RUN steps need a secret or
/// SSH agent that was not given, or a privilege that was not allowed.
fn preflight(env: &StepEnv, order: &[VertexId], allow: &[Entitlement]) -> Result<(), SolveError> {
    for id in order {
        let v = env.graph.vertex(*id);
        if let Op::Exec(op) = &v.op {
            exec::preflight(&env.host, op, allow).map_err(|e| step_error(&v.meta, e))?;
        }
    }
    Ok(())
}

/// The vertices whose filesystem nothing reads as files: roots that are
/// no other vertex's input, unless the outputs read the roots' files
/// (`root_dirs`).
fn unread_vertices(
    graph: &Graph,
    roots: &[(VertexId, ImageConfig)],
    root_dirs: bool,
) -> HashSet<VertexId> {
    if root_dirs {
        return HashSet::new();
    }
    let read: HashSet<VertexId> = graph
        .vertices()
        .iter()
        .flat_map(|v| v.inputs.iter().copied())
        .collect();
    roots
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !read.contains(id))
        .collect()
}

/// Runs one vertex (on a blocking thread) by its op's module.
fn run_vertex(
    env: &StepEnv,
    id: VertexId,
    inputs: &[Input],
    cancel: &CancelToken,
) -> Result<Input, StepError> {
    let vertex = env.graph.vertex(id);
    match &vertex.op {
        Op::Scratch => Ok(source::scratch(vertex)),
        Op::Context(c) => Ok(source::context(vertex, c)),
        // Unpacking an image's layers (the blobs are in the store) is
        // kiln's own work: a CPU slot.
        Op::Image(image) => env.cpu.run(cancel, || source::image(env, vertex, image)),
        Op::Http(http) => source::http(env, vertex, http, inputs),
        Op::Git(git) => source::git(env, vertex, git, inputs),
        Op::Merge => Ok(merge::run(vertex, inputs)),
        Op::Exec(op) => exec::run(env, vertex, op, inputs, cancel),
        Op::File(op) => file::run(env, vertex, op, inputs, !env.unread.contains(&id), cancel),
    }
}

/// Layers by diff id, for export.
pub fn layer_map(solved: &Solved) -> BTreeMap<String, Layer> {
    solved
        .layers
        .iter()
        .map(|l| (l.diff_id.to_string(), l.clone()))
        .collect()
}

#[cfg(test)]
mod tests;
