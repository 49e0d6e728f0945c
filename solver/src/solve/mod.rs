//! Solving: runs the vertices the target needs, in parallel (bounded by
//! `jobs`), each at most once, reusing cached results; the first failure
//! stops the build and names the instruction and line.

mod cache;
mod context_tree;
pub(crate) mod http;
mod layer;
mod lazy;
mod mounts;

pub use cache::{
    unix_millis, CacheIndex, CacheKeyParts, CacheRecord, CachedLayer, CACHE_KEY_VERSION,
};
pub use context_tree::ContextTree;
pub use layer::LayerRecord;

use crate::context::BuildContext;
use crate::graph::{Graph, VertexId};
use crate::lower::Lowered;
use crate::op::{FileAction, Op};
use crate::remote_cache::{CacheMode, CacheSource, ExportedRecord};
use kiln_executor::{LayerStack, Source, SourceTree};
use kiln_oci::{Digest, ImageConfig, LocalStore};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// How to solve.
#[derive(Debug, Clone)]
pub struct SolveOptions {
    /// Steps run at once.
    pub jobs: usize,
    /// Ignore the cache (results are still recorded).
    pub no_cache: bool,
    /// Ignore the cache for the steps of these stages only
    /// (`--no-cache-filter`).
    pub no_cache_stages: Vec<String>,
    /// `--secret` values by id, for `RUN --mount=type=secret`. They are
    /// read only when a step mounts them and never enter a cache key, a
    /// layer or a log line.
    pub secrets: BTreeMap<String, SecretSource>,
    /// `--ssh` agents by id (socket paths), for `RUN --mount=type=ssh`.
    pub ssh: BTreeMap<String, std::path::PathBuf>,
    /// `--allow`: what RUN steps may ask for beyond the sandbox.
    pub allow: Vec<Entitlement>,
    /// How new layers are compressed (the outputs' choice; an output
    /// wanting another converts at export).
    pub compression: kiln_oci::Compression,
    /// Caches to reuse layers from when the local cache misses
    /// (`--cache-from`), in order.
    pub cache_from: Vec<Arc<dyn CacheSource>>,
    /// The snapshotter choice of RUN steps, shared by every solve of a
    /// build (it switches to copies for good when overlayfs is refused).
    pub snapshots: Arc<kiln_executor::Snapshots>,
}

impl std::fmt::Debug for dyn CacheSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CacheSource({})", self.name())
    }
}

/// A privilege a build must be granted (`--allow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entitlement {
    /// `network.host`: `RUN --network=host`.
    NetworkHost,
    /// `security.insecure`: `RUN --security=insecure`.
    SecurityInsecure,
}

impl std::str::FromStr for Entitlement {
    type Err = String;

    fn from_str(s: &str) -> Result<Entitlement, String> {
        match s {
            "network.host" => Ok(Entitlement::NetworkHost),
            "security.insecure" => Ok(Entitlement::SecurityInsecure),
            other => Err(format!(
                "unknown entitlement {other:?} (expected network.host or security.insecure)"
            )),
        }
    }
}

impl std::fmt::Display for Entitlement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Entitlement::NetworkHost => "network.host",
            Entitlement::SecurityInsecure => "security.insecure",
        })
    }
}

/// Where a `--secret` comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file.
    File(std::path::PathBuf),
    /// An environment variable of the kiln process.
    Env(String),
}

impl Default for SolveOptions {
    fn default() -> Self {
        SolveOptions {
            jobs: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            no_cache: false,
            no_cache_stages: Vec::new(),
            secrets: BTreeMap::new(),
            ssh: BTreeMap::new(),
            allow: Vec::new(),
            compression: kiln_oci::Compression::default(),
            cache_from: Vec::new(),
            snapshots: Arc::default(),
        }
    }
}

/// What happens during a solve, for progress displays.
#[derive(Debug, Clone)]
pub enum Event {
    /// A step starts running.
    Started {
        /// Its display name.
        name: String,
    },
    /// A step was found in the cache.
    Cached {
        /// Its display name.
        name: String,
    },
    /// A step missed the cache, and why.
    Miss {
        /// Its display name.
        name: String,
        /// Which input changed.
        reason: String,
    },
    /// Something the user should know about a step (e.g. a fallback).
    Note {
        /// Its display name.
        name: String,
        /// The message.
        message: String,
    },
    /// Output of a running step, as the process wrote it (stdout and
    /// stderr combined; a chunk may end mid-line).
    Log {
        /// Its display name.
        name: String,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A step failed; the solve stops after the steps still running.
    Error {
        /// Its display name.
        name: String,
        /// What went wrong (the same text as the [`SolveError`]).
        message: String,
    },
    /// A step finished.
    Done {
        /// Its display name.
        name: String,
        /// Seconds it took.
        seconds: f64,
    },
}

/// Receives [`Event`]s; called from worker threads.
pub trait ProgressSink: Send + Sync {
    /// One event.
    fn event(&self, event: Event);
}

/// Why a solve failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SolveError {
    /// A step failed.
    #[error("{}{name}: {message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
    Step {
        /// The step's display name.
        name: String,
        /// Its Dockerfile line.
        line: Option<usize>,
        /// What went wrong.
        message: String,
    },
}

impl SolveError {
    /// The Dockerfile line of the failed step.
    pub fn line(&self) -> Option<usize> {
        match self {
            SolveError::Step { line, .. } => *line,
        }
    }
}

/// The result of a vertex.
#[derive(Debug, Clone)]
enum Output {
    /// A filesystem: its layers, bottom first.
    Fs(Vec<LayerRecord>),
    /// A local context, by name.
    Context(String),
    /// A plain directory (a downloaded file), usable only as a source.
    Dir(std::path::PathBuf),
}

/// What a solve produced: the target's layers and its completed config.
#[derive(Debug, Clone)]
pub struct Solved {
    /// Every layer of the image, base first.
    pub layers: Vec<LayerRecord>,
    /// The image config with `rootfs.diff_ids` filled in.
    pub config: ImageConfig,
    /// Every step of the build that made or reused a layer: its cache key
    /// and the layer, in the order they finished.
    pub steps: Vec<(Digest, CachedLayer)>,
    /// Layers of other stages that `--cache-from` caches provided and
    /// nothing fetched.
    lazy: Arc<lazy::LazyLayers>,
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
    ) -> Result<(), String> {
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

struct Shared {
    graph: Graph,
    store: LocalStore,
    cache: CacheIndex,
    contexts: HashMap<String, Arc<BuildContext>>,
    progress: Arc<dyn ProgressSink>,
    no_cache: bool,
    no_cache_stages: Vec<String>,
    runtime: Arc<dyn kiln_executor::Runtime>,
    snapshots: Arc<kiln_executor::Snapshots>,
    secrets: BTreeMap<String, SecretSource>,
    ssh: BTreeMap<String, std::path::PathBuf>,
    compression: kiln_oci::Compression,
    imports: Vec<Arc<dyn CacheSource>>,
    steps: Mutex<Vec<(Digest, CachedLayer)>>,
    lazy: Arc<lazy::LazyLayers>,
}

/// Solves `lowered` with the local `store`, reading contexts from
/// `contexts` (by name).
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
    let shared = Arc::new(Shared {
        graph: lowered.graph.clone(),
        store: store.clone(),
        cache: CacheIndex::new(store.root()),
        contexts,
        progress,
        no_cache: options.no_cache,
        no_cache_stages: options
            .no_cache_stages
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect(),
        runtime,
        snapshots: options.snapshots.clone(),
        secrets: options.secrets.clone(),
        ssh: options.ssh.clone(),
        compression: options.compression,
        imports: options.cache_from.clone(),
        steps: Mutex::new(Vec::new()),
        lazy: Arc::default(),
    });
    let order = shared.graph.closure(&[lowered.root]);
    preflight(&shared, &order, &options.allow)?;
    let mut done: HashMap<VertexId, (Output, Digest)> = HashMap::new();
    let mut running = std::collections::HashSet::new();
    let mut tasks = tokio::task::JoinSet::new();
    let jobs = options.jobs.max(1);
    let mut failure: Option<SolveError> = None;
    loop {
        if failure.is_none() {
            for id in &order {
                if tasks.len() >= jobs {
                    break;
                }
                if done.contains_key(id) || running.contains(id) {
                    continue;
                }
                let vertex = shared.graph.vertex(*id);
                if !vertex.inputs.iter().all(|i| done.contains_key(i)) {
                    continue;
                }
                let inputs: Vec<(Output, Digest)> =
                    vertex.inputs.iter().map(|i| done[i].clone()).collect();
                let shared = shared.clone();
                let id = *id;
                running.insert(id);
                tasks.spawn_blocking(move || (id, run_vertex(&shared, id, &inputs)));
            }
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        match joined {
            Ok((id, Ok(out))) => {
                running.remove(&id);
                done.insert(id, out);
            }
            Ok((id, Err(message))) => {
                running.remove(&id);
                let v = shared.graph.vertex(id);
                shared.progress.event(Event::Error {
                    name: v.meta.name.clone(),
                    message: message.clone(),
                });
                failure.get_or_insert(SolveError::Step {
                    name: v.meta.name.clone(),
                    line: v.meta.line,
                    message,
                });
            }
            Err(e) => {
                failure.get_or_insert(SolveError::Step {
                    name: "scheduler".into(),
                    line: None,
                    message: format!("a build step panicked: {e}"),
                });
            }
        }
    }
    if let Some(f) = failure {
        return Err(f);
    }
    let layers = match done.remove(&lowered.root) {
        Some((Output::Fs(layers), _)) => layers,
        _ => Vec::new(),
    };
    let mut config = lowered.config.clone();
    config.rootfs.kind = "layers".into();
    config.rootfs.diff_ids = layers.iter().map(|l| l.diff_id.to_string()).collect();
    // The image is exported: its layers must be here. Fetching blocks on
    // the caches' own async calls, so it runs off the async workers.
    let fetch = {
        let (shared, layers) = (shared.clone(), layers.clone());
        tokio::task::spawn_blocking(move || shared.lazy.materialize(&shared.store, &layers)).await
    };
    fetch
        .unwrap_or_else(|e| Err(format!("fetching cached layers panicked: {e}")))
        .map_err(|message| SolveError::Step {
            name: "[internal] fetching cached layers".into(),
            line: None,
            message,
        })?;
    let steps = std::mem::take(&mut *shared.steps.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(Solved {
        layers,
        config,
        steps,
        lazy: shared.lazy.clone(),
    })
}

/// Refuses, before anything runs, a build whose RUN steps need a secret or
/// SSH agent that was not given, or a privilege that was not allowed.
fn preflight(shared: &Shared, order: &[VertexId], allow: &[Entitlement]) -> Result<(), SolveError> {
    for id in order {
        let v = shared.graph.vertex(*id);
        let Op::Exec(exec) = &v.op else { continue };
        let fail = |message: String| SolveError::Step {
            name: v.meta.name.clone(),
            line: v.meta.line,
            message,
        };
        let needs = [
            (
                exec.network == "host",
                Entitlement::NetworkHost,
                "--network=host",
            ),
            (
                exec.security == "insecure",
                Entitlement::SecurityInsecure,
                "--security=insecure",
            ),
        ];
        for (asked, entitlement, flag) in needs {
            if asked && !allow.contains(&entitlement) {
                return Err(fail(format!(
                    "{flag} needs the {entitlement} entitlement: add --allow {entitlement}"
                )));
            }
        }
        mounts::check(shared, exec).map_err(fail)?;
    }
    Ok(())
}

/// Runs one vertex (on a blocking thread): cache lookup, else execution.
fn run_vertex(
    shared: &Shared,
    id: VertexId,
    inputs: &[(Output, Digest)],
) -> Result<(Output, Digest), String> {
    let vertex = shared.graph.vertex(id);
    let name = vertex.meta.name.clone();
    match &vertex.op {
        Op::Scratch => Ok((Output::Fs(Vec::new()), vertex.digest.clone())),
        Op::Context(c) => Ok((Output::Context(c.name.clone()), vertex.digest.clone())),
        Op::Image(image) => {
            let started = Instant::now();
            shared.progress.event(Event::Started { name: name.clone() });
            let layers = layer::image_layers(&shared.store, image)?;
            shared.progress.event(Event::Done {
                name,
                seconds: started.elapsed().as_secs_f64(),
            });
            Ok((Output::Fs(layers), vertex.digest.clone()))
        }
        Op::Merge => {
            let mut layers = Vec::new();
            for (out, _) in inputs {
                if let Output::Fs(l) = out {
                    layers.extend(l.iter().cloned());
                }
            }
            let parts = key_parts(vertex.digest.as_str(), inputs, None);
            Ok((Output::Fs(layers), parts.key()))
        }
        Op::Exec(exec) => {
            let Some((Output::Fs(base), _)) = inputs.first() else {
                return Err("RUN needs a filesystem input".into());
            };
            // The context files a bind mount shows are part of its key.
            let mut sums = Vec::new();
            for m in &exec.mounts {
                if let crate::op::ExecMount::Bind { source, .. } = m {
                    if let Some((Output::Context(ctx), _)) = inputs.get(source.input) {
                        let path = source.path.trim_matches('/');
                        let path = if path.is_empty() { "." } else { path };
                        sums.push(context_sum(shared, ctx, &[path.to_string()])?);
                    }
                }
            }
            let context =
                (!sums.is_empty()).then(|| Digest::sha256(sums.join(",").as_bytes()).to_string());
            let parts = key_parts(vertex.digest.as_str(), inputs, context);
            run_step(shared, &vertex.meta, base, parts, || {
                materialize_inputs(shared, inputs)?;
                run_exec(
                    shared,
                    &vertex.meta.name,
                    exec,
                    inputs,
                    &layer::stack_of(base),
                )
            })
        }
        Op::Http(http) => {
            let started = Instant::now();
            shared.progress.event(Event::Started { name: name.clone() });
            let (dir, content) = layer::download(&shared.store, http)?;
            shared.progress.event(Event::Done {
                name,
                seconds: started.elapsed().as_secs_f64(),
            });
            let parts = key_parts(vertex.digest.as_str(), inputs, Some(content.to_string()));
            Ok((Output::Dir(dir), parts.key()))
        }
        Op::File(file) => {
            let Some((Output::Fs(base), _)) = inputs.first() else {
                return Err("a file operation needs a filesystem input".into());
            };
            // The context files a COPY reads are part of its key.
            let mut context_sums = Vec::new();
            for action in &file.actions {
                if let FileAction::Copy(copy) = action {
                    if let Some((Output::Context(ctx), _)) = inputs.get(copy.input) {
                        context_sums.push(context_sum(shared, ctx, &copy.sources)?);
                    }
                }
            }
            let context = (!context_sums.is_empty())
                .then(|| Digest::sha256(context_sums.join(",").as_bytes()).to_string());
            let parts = key_parts(vertex.digest.as_str(), inputs, context);
            run_step(shared, &vertex.meta, base, parts, || {
                materialize_inputs(shared, inputs)?;
                let stacks: Vec<Option<LayerStack>> = inputs
                    .iter()
                    .map(|(o, _)| match o {
                        Output::Fs(l) => Some(layer::stack_of(l)),
                        Output::Dir(d) => Some(LayerStack::new(vec![d.clone()])),
                        Output::Context(_) => None,
                    })
                    .collect();
                let trees: Vec<Option<ContextTree>> = inputs
                    .iter()
                    .map(|(o, _)| match o {
                        Output::Context(c) => {
                            shared.contexts.get(c).map(|c| ContextTree(c.clone()))
                        }
                        _ => None,
                    })
                    .collect();
                let mut sources: Vec<Source<'_>> = Vec::new();
                for (stack, tree) in stacks.iter().zip(&trees) {
                    match (stack, tree) {
                        (Some(s), _) => sources.push(Source::Tree(s as &dyn SourceTree)),
                        (None, Some(t)) => sources.push(Source::Context(t as &dyn SourceTree)),
                        (None, None) => return Err("a COPY source is not available".into()),
                    }
                }
                layer::build_layer(
                    &shared.store,
                    shared.compression,
                    &layer::stack_of(base),
                    &file.actions,
                    &sources,
                )
            })
        }
    }
}

/// The checksum of the files `sources` name in context `name`.
fn context_sum(shared: &Shared, name: &str, sources: &[String]) -> Result<String, String> {
    let context = shared
        .contexts
        .get(name)
        .ok_or_else(|| format!("build context {name:?} is not available"))?;
    let mut entries = Vec::new();
    for src in sources {
        entries.extend(context.resolve(src).map_err(|e| e.to_string())?);
    }
    Ok(context
        .checksum(&entries)
        .map_err(|e| e.to_string())?
        .hex()
        .to_string())
}

/// Runs a step that adds one layer on top of `base`: a cache hit, or
/// `build` with the miss reason, progress and cache record around it.
fn run_step(
    shared: &Shared,
    meta: &crate::graph::VertexMeta,
    base: &[LayerRecord],
    parts: CacheKeyParts,
    build: impl FnOnce() -> Result<LayerRecord, String>,
) -> Result<(Output, Digest), String> {
    let key = parts.key();
    if let Some(hit) = cached(shared, meta, &key, base)? {
        return Ok((Output::Fs(hit), key));
    }
    note_miss(shared, meta, &parts);
    shared.progress.event(Event::Started {
        name: meta.name.clone(),
    });
    let started = Instant::now();
    let record = build()?;
    record_layer(shared, meta, &key, &parts, &record)?;
    shared.progress.event(Event::Done {
        name: meta.name.clone(),
        seconds: started.elapsed().as_secs_f64(),
    });
    let mut layers = base.to_vec();
    layers.push(record);
    Ok((Output::Fs(layers), key))
}

/// Runs a RUN step in the sandbox on top of `stack` and makes its layer.
fn run_exec(
    shared: &Shared,
    name: &str,
    exec: &crate::op::ExecOp,
    inputs: &[(Output, Digest)],
    stack: &LayerStack,
) -> Result<LayerRecord, String> {
    layer::new_layer(&shared.store, shared.compression, |upper, work| {
        // Mount sources and files the step reads while it runs (heredoc
        // scripts) live in a scratch directory removed afterwards.
        let scratch = tempfile::tempdir_in(shared.store.root())
            .map_err(|e| format!("creating a scratch directory: {e}"))?;
        let prepared = mounts::prepare(shared, exec, inputs, scratch.path())?;
        let mut env = exec.env.clone();
        env.extend(prepared.env.iter().cloned());
        // Only what the process itself writes: never secret values.
        let log = |data: &[u8]| {
            shared.progress.event(Event::Log {
                name: name.to_string(),
                data: data.to_vec(),
            })
        };
        let mut request = kiln_executor::RunStep {
            lower: stack,
            upper,
            work,
            process: kiln_executor::ProcessSpec {
                args: exec.args.clone(),
                env,
                cwd: exec.cwd.clone(),
                user: exec.user.clone(),
                hostname: "buildkitsandbox".into(),
                network: if exec.network == "none" {
                    kiln_executor::NetworkMode::None
                } else {
                    kiln_executor::NetworkMode::Host
                },
                security: if exec.security == "insecure" {
                    kiln_executor::SecurityMode::Insecure
                } else {
                    kiln_executor::SecurityMode::Sandbox
                },
            },
            mounts: prepared.mounts.clone(),
            output: Some(kiln_executor::OutputSink(&log)),
        };
        for (i, file) in exec.files.iter().enumerate() {
            use std::os::unix::fs::PermissionsExt;
            let source = scratch.path().join(format!("file-{i}"));
            std::fs::write(&source, &file.data)
                .and_then(|()| {
                    std::fs::set_permissions(&source, std::fs::Permissions::from_mode(0o755))
                })
                .map_err(|e| format!("writing {}: {e}", source.display()))?;
            request.mounts.push(kiln_executor::Mount::Bind {
                source,
                target: file.path.clone(),
                readonly: true,
            });
        }
        let out = shared
            .snapshots
            .run(shared.runtime.as_ref(), &request)
            .map_err(|e| exec_hint(e.to_string()))?;
        drop(prepared);
        for message in &out.notes {
            shared.progress.event(Event::Note {
                name: name.to_string(),
                message: message.clone(),
            });
        }
        if out.status != 0 {
            let hint = if is_exec_format_error(&String::from_utf8_lossy(&out.output)) {
                format!(" ({})", foreign_binary_hint())
            } else {
                String::new()
            };
            return Err(format!(
                "process {:?} did not complete successfully: exit code: {}{hint}{}",
                exec.args.join(" "),
                out.status,
                last_lines(&out.output, 10)
            ));
        }
        Ok(())
    })
}

/// The cached layer for `key` on top of `base`, unless the cache is off for
/// this step.
fn cached(
    shared: &Shared,
    meta: &crate::graph::VertexMeta,
    key: &Digest,
    base: &[LayerRecord],
) -> Result<Option<Vec<LayerRecord>>, String> {
    if cache_disabled(shared, meta) {
        return Ok(None);
    }
    let local = shared
        .cache
        .get(key)
        .and_then(|hit| layer::restore(&shared.store, &hit).map(|record| (hit, record)));
    let Some((hit, record)) = local.or_else(|| imported(shared, key)) else {
        return Ok(None);
    };
    // Orders what pruning removes first, and keeps an imported record for
    // the next build; never fails this one.
    let _ = shared.cache.touch(key, &hit);
    remember_step(shared, key, &hit);
    shared.progress.event(Event::Cached {
        name: meta.name.clone(),
    });
    let mut layers = base.to_vec();
    layers.push(record);
    Ok(Some(layers))
}

/// The layer for `key` from the first `--cache-from` cache that has it.
/// Its blob is fetched only when something reads the layer (see
/// [`lazy`]); one already in the store is used at once.
fn imported(shared: &Shared, key: &Digest) -> Option<(CachedLayer, LayerRecord)> {
    for source in &shared.imports {
        let Some(layer) = source.lookup(key) else {
            continue;
        };
        if let Some(record) = layer::restore(&shared.store, &layer) {
            return Some((layer, record));
        }
        if let Some(record) = layer::record_of(&shared.store, &layer) {
            shared.lazy.add(source.clone(), layer.clone());
            return Some((layer, record));
        }
    }
    None
}

/// Fetches and unpacks the layers of `inputs` that are still in a
/// `--cache-from` cache: a step is about to read them.
fn materialize_inputs(shared: &Shared, inputs: &[(Output, Digest)]) -> Result<(), String> {
    for (out, _) in inputs {
        if let Output::Fs(layers) = out {
            shared.lazy.materialize(&shared.store, layers)?;
        }
    }
    Ok(())
}

/// Adds a step's key and layer to what the build used.
fn remember_step(shared: &Shared, key: &Digest, layer: &CachedLayer) {
    shared
        .steps
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((key.clone(), layer.clone()));
}

fn cache_disabled(shared: &Shared, meta: &crate::graph::VertexMeta) -> bool {
    shared.no_cache
        || meta
            .stage
            .as_ref()
            .is_some_and(|s| shared.no_cache_stages.contains(&s.to_ascii_lowercase()))
}

/// Reports why a step runs.
fn note_miss(shared: &Shared, meta: &crate::graph::VertexMeta, parts: &CacheKeyParts) {
    let reason = if cache_disabled(shared, meta) {
        "--no-cache".to_string()
    } else {
        parts.miss_reason(shared.cache.last(&meta.name).as_ref())
    };
    shared.progress.event(Event::Miss {
        name: meta.name.clone(),
        reason,
    });
}

/// Records a new layer under its cache key.
fn record_layer(
    shared: &Shared,
    meta: &crate::graph::VertexMeta,
    key: &Digest,
    parts: &CacheKeyParts,
    record: &LayerRecord,
) -> Result<(), String> {
    let cached = CachedLayer {
        diff_id: record.diff_id.to_string(),
        blob: record.blob.to_string(),
        size: record.size,
        media_type: record.media_type.clone(),
        last_used: Some(cache::unix_millis(std::time::SystemTime::now())),
    };
    remember_step(shared, key, &cached);
    shared
        .cache
        .put(key, &cached, &meta.name, parts)
        .map_err(|e| format!("recording the cache: {e}"))
}

/// True when `text` says the kernel refused a program's format (ENOEXEC):
/// usually a binary for another architecture, as in a `--platform` build
/// of a foreign image. The built-in runtime reports it as an error, OCI
/// runtimes in the step's output.
fn is_exec_format_error(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("os error 8") || lower.contains("exec format error")
}

/// What to do about an exec format error.
fn foreign_binary_hint() -> String {
    format!(
        "the program is not built for this machine ({}); running another platform's programs \
         needs an emulator registered with binfmt_misc (qemu-user-static), or cross-compile in a \
         stage FROM --platform=$BUILDPLATFORM",
        kiln_oci::Platform::host()
    )
}

/// `message` with [`foreign_binary_hint`] when it is an exec format error.
fn exec_hint(message: String) -> String {
    if is_exec_format_error(&message) {
        format!("{message}: {}", foreign_binary_hint())
    } else {
        message
    }
}

/// The last `n` lines of a step's output, indented, for error messages.
fn last_lines(output: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(output);
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = &lines[lines.len().saturating_sub(n)..];
    format!(
        "\n{}",
        tail.iter()
            .map(|l| format!("  > {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

fn key_parts(vertex: &str, inputs: &[(Output, Digest)], context: Option<String>) -> CacheKeyParts {
    CacheKeyParts {
        vertex: vertex.to_string(),
        inputs: inputs.iter().map(|(_, k)| k.to_string()).collect(),
        context,
    }
}

/// Layers by diff id, for export.
pub fn layer_map(solved: &Solved) -> BTreeMap<String, LayerRecord> {
    solved
        .layers
        .iter()
        .map(|l| (l.diff_id.to_string(), l.clone()))
        .collect()
}
