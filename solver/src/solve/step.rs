//! What every step of a solve shares ([`StepEnv`]), a vertex's result
//! ([`VertexResult`]), and the frame around a step that adds a layer:
//! cache lookup, miss reason, progress and cache record ([`run_step`]).

use super::{Event, ProgressSink, SecretSource, StepError, StepReport, StepStatus};
use crate::cache::lookup::BuildCache;
use crate::cache::CacheKeyParts;
use crate::context::BuildContext;
use crate::graph::{Graph, Vertex, VertexId, VertexMeta};
use crate::layer;
use kiln_oci::{Digest, Layer, LocalStore};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// The result of a vertex.
#[derive(Debug, Clone)]
pub(super) enum VertexResult {
    /// A filesystem: its layers, bottom first.
    Fs(Vec<Layer>),
    /// A local context, by name.
    Context(String),
    /// A plain directory (a downloaded file), usable only as a source.
    Dir(PathBuf),
}

/// A finished input of a step: its result and its cache key.
pub(super) type Input = (VertexResult, Digest);

/// What a build reads from the host besides the store: its contexts by
/// name, `--secret` values and `--ssh` agents.
pub(super) struct HostInputs {
    pub contexts: HashMap<String, Arc<BuildContext>>,
    pub secrets: BTreeMap<String, SecretSource>,
    pub ssh: BTreeMap<String, PathBuf>,
}

impl HostInputs {
    /// The context called `name`.
    pub fn context(&self, name: &str) -> Result<&Arc<BuildContext>, StepError> {
        self.contexts.get(name).ok_or_else(|| StepError::NoContext {
            name: name.to_string(),
        })
    }

    /// The checksum of the files `sources` name in context `name` (part of
    /// the cache key of a step that reads them).
    pub fn checksum(&self, name: &str, sources: &[String]) -> Result<String, StepError> {
        let context = self.context(name)?;
        let mut entries = Vec::new();
        for src in sources {
            entries.extend(context.resolve(src)?);
        }
        Ok(context.checksum(&entries)?.hex().to_string())
    }
}

/// What every step of one solve shares.
pub(super) struct StepEnv {
    pub graph: Graph,
    pub store: LocalStore,
    /// What to do with each new layer in the background (the outputs'
    /// compression of it).
    pub prepare: Option<super::PrepareLayer>,
    /// The background jobs started for new layers: the solve waits for
    /// them before it returns.
    pub background: Background,
    pub progress: Arc<dyn ProgressSink>,
    pub host: HostInputs,
    pub cache: BuildCache,
    pub runtime: Arc<dyn kiln_executor::Runtime>,
    /// The snapshotter choice of RUN steps (shared by the build's solves).
    pub snapshots: Arc<kiln_executor::Snapshots>,
    /// Bounds kiln's own CPU-heavy work (shared by the build's solves).
    pub cpu: super::CpuPool,
    /// The vertices whose filesystem nothing in the build reads as files:
    /// their layers may be written straight into their tars.
    pub unread: HashSet<VertexId>,
}

/// Background jobs of a solve ([`StepEnv::prepare_in_background`]).
#[derive(Default)]
pub(super) struct Background {
    jobs: Mutex<Vec<Job>>,
}

/// A background job and the step it is for.
type Job = (VertexMeta, std::thread::JoinHandle<Result<(), StepError>>);

impl Background {
    /// Waits for every job started so far; the first failure (by start
    /// order) with its step. Every job is waited for, failed or not.
    pub fn wait(&self) -> Option<Box<(VertexMeta, StepError)>> {
        let jobs = std::mem::take(&mut *self.jobs.lock().unwrap_or_else(PoisonError::into_inner));
        let mut first = None;
        for (meta, job) in jobs {
            let result = job.join().unwrap_or_else(|panic| {
                Err(StepError::Panicked(super::scheduler::panic_message(
                    panic.as_ref(),
                )))
            });
            if let Err(e) = result {
                first.get_or_insert_with(|| Box::new((meta, e)));
            }
        }
        first
    }
}

impl StepEnv {
    /// Starts the solve's [`PrepareLayer`](super::PrepareLayer) work on
    /// `layer` (made or found by step `meta`) in the background: it waits
    /// for a slot of the CPU pool, then runs unless `cancel` was
    /// cancelled; cancelling also tells a running job to stop.
    pub fn prepare_in_background(
        &self,
        meta: &VertexMeta,
        layer: &Layer,
        cancel: &super::CancelToken,
    ) {
        let Some(prepare) = self.prepare.clone() else {
            return;
        };
        let (cpu, layer, cancel) = (self.cpu.clone(), layer.clone(), cancel.clone());
        let job = std::thread::Builder::new()
            .name("kiln-prepare".into())
            .spawn(move || {
                let _slot = cpu.acquire(&cancel)?;
                prepare.run(&layer, &|| cancel.is_cancelled()).map_err(|e| {
                    if cancel.is_cancelled() {
                        StepError::Cancelled
                    } else {
                        StepError::Prepare(e)
                    }
                })
            });
        // A thread that cannot start leaves the work to the export.
        if let Ok(job) = job {
            self.background
                .jobs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((meta.clone(), job));
        }
    }

    /// Reports `event` to the progress display.
    pub fn event(&self, event: Event) {
        self.progress.event(event);
    }

    /// Fetches and unpacks the layers of `inputs` that are still in a
    /// `--cache-from` cache: a step is about to read them.
    pub fn materialize_inputs(&self, inputs: &[Input]) -> Result<(), StepError> {
        for (out, _) in inputs {
            if let VertexResult::Fs(layers) = out {
                self.cache.materialize(&self.store, layers)?;
                for l in layers {
                    layer::unpack_missing(&self.store, l)?;
                }
            }
        }
        Ok(())
    }

    /// Runs `work` between a Started and a Done event for step `name`.
    pub fn timed<T>(
        &self,
        name: &str,
        work: impl FnOnce() -> Result<T, StepError>,
    ) -> Result<T, StepError> {
        self.event(Event::Started {
            name: name.to_string(),
        });
        let started = Instant::now();
        let out = work()?;
        self.event(Event::Done {
            name: name.to_string(),
            seconds: started.elapsed().as_secs_f64(),
        });
        Ok(out)
    }

    /// Starts the clock of `vertex`'s [`StepReport`].
    pub fn clock<'a>(&'a self, vertex: &'a Vertex) -> StepClock<'a> {
        StepClock {
            env: self,
            vertex,
            started: Instant::now(),
            miss_reason: None,
        }
    }
}

/// A step being timed for its [`StepReport`]: made by
/// [`StepEnv::clock`] when the step begins, consumed when it ends.
pub(super) struct StepClock<'a> {
    env: &'a StepEnv,
    vertex: &'a Vertex,
    started: Instant,
    miss_reason: Option<String>,
}

impl StepClock<'_> {
    /// Reports the step's end: `bytes` of the layer it made or found.
    pub fn end(self, status: StepStatus, bytes: Option<u64>) {
        self.env.progress.step(StepReport {
            name: self.vertex.meta.name.clone(),
            vertex: self.vertex.digest.clone(),
            started: self.started,
            ended: Instant::now(),
            status,
            miss_reason: self.miss_reason,
            bytes,
        });
    }

    /// Reports the end of a step that produced `result`.
    pub fn end_with<T>(self, result: &Result<T, StepError>, bytes: impl FnOnce(&T) -> Option<u64>) {
        match result {
            Ok(out) => {
                let bytes = bytes(out);
                self.end(StepStatus::Built, bytes)
            }
            Err(StepError::Cancelled) => self.end(StepStatus::Cancelled, None),
            // The first line only: the rest is the process's last output
            // lines, which may print anything (build records keep no
            // output).
            Err(e) => {
                let message = e.to_string();
                let first = message.lines().next().unwrap_or_default();
                self.end(StepStatus::Failed(first.to_string()), None)
            }
        }
    }
}

/// The key parts of a vertex with digest `vertex` on `inputs`, with the
/// checksum of the context files it reads.
pub(super) fn key_parts(
    vertex: &Digest,
    inputs: &[Input],
    context: Option<String>,
) -> CacheKeyParts {
    CacheKeyParts {
        vertex: vertex.to_string(),
        inputs: inputs.iter().map(|(_, k)| k.to_string()).collect(),
        context,
    }
}

/// The combined checksum of several context reads, if there were any.
pub(super) fn combined(sums: &[String]) -> Option<String> {
    (!sums.is_empty()).then(|| Digest::sha256(sums.join(",").as_bytes()).to_string())
}

/// Runs a step that adds one layer on top of `base`: a cache hit, or
/// `build` (unless the solve is cancelled) with the miss reason, progress
/// and cache record around it.
pub(super) fn run_step(
    env: &StepEnv,
    vertex: &Vertex,
    base: &[Layer],
    parts: CacheKeyParts,
    cancel: &super::CancelToken,
    build: impl FnOnce() -> Result<Layer, StepError>,
) -> Result<Input, StepError> {
    let meta = &vertex.meta;
    let mut clock = env.clock(vertex);
    let key = parts.key();
    let on_base = |record: Layer| {
        let mut layers = base.to_vec();
        layers.push(record);
        (VertexResult::Fs(layers), key.clone())
    };
    if !env.cache.disabled(meta) {
        if let Some(hit) = env.cache.hit(&env.store, &key) {
            env.event(Event::Cached {
                name: meta.name.clone(),
            });
            clock.end(StepStatus::Cached, Some(hit.size));
            // Only a layer made here can need converting (a remote
            // cache's layers come compressed, and may not be fetched).
            if hit.media_type == kiln_oci::media::OCI_LAYER_TAR {
                env.prepare_in_background(meta, &hit, cancel);
            }
            return Ok(on_base(hit));
        }
    }
    if cancel.is_cancelled() {
        clock.end(StepStatus::Cancelled, None);
        return Err(StepError::Cancelled);
    }
    if env.store.is_read_only() {
        let e = StepError::ReadOnlyStore {
            root: env.store.root().to_path_buf(),
        };
        clock.end(StepStatus::Failed(e.to_string()), None);
        return Err(e);
    }
    let reason = env.cache.miss_reason(meta, &parts);
    clock.miss_reason = Some(reason.clone());
    env.event(Event::Miss {
        name: meta.name.clone(),
        reason,
    });
    let record = env.timed(&meta.name, || {
        let record = build()?;
        env.cache
            .record(&meta.name, &key, &parts, &record)
            .map_err(StepError::RecordCache)?;
        Ok(record)
    });
    clock.end_with(&record, |r| Some(r.size));
    let record = record?;
    env.prepare_in_background(meta, &record, cancel);
    Ok(on_base(record))
}
