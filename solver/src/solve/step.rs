//! What every step of a solve shares ([`StepEnv`]), a vertex's result
//! ([`VertexResult`]), and the frame around a step that adds a layer:
//! cache lookup, miss reason, progress and cache record ([`run_step`]).

use super::{Event, ProgressSink, SecretSource, StepError};
use crate::cache::lookup::BuildCache;
use crate::cache::CacheKeyParts;
use crate::context::BuildContext;
use crate::graph::{Graph, VertexMeta};
use kiln_oci::{Compression, Digest, Layer, LocalStore};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
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
    /// How new layers are compressed.
    pub compression: Compression,
    pub progress: Arc<dyn ProgressSink>,
    pub host: HostInputs,
    pub cache: BuildCache,
    pub runtime: Arc<dyn kiln_executor::Runtime>,
    /// The snapshotter choice of RUN steps (shared by the build's solves).
    pub snapshots: Arc<kiln_executor::Snapshots>,
    /// Bounds kiln's own CPU-heavy work (shared by the build's solves).
    pub cpu: super::CpuPool,
}

impl StepEnv {
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
    meta: &VertexMeta,
    base: &[Layer],
    parts: CacheKeyParts,
    cancel: &super::CancelToken,
    build: impl FnOnce() -> Result<Layer, StepError>,
) -> Result<Input, StepError> {
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
            return Ok(on_base(hit));
        }
    }
    if cancel.is_cancelled() {
        return Err(StepError::Cancelled);
    }
    if env.store.is_read_only() {
        return Err(StepError::ReadOnlyStore {
            root: env.store.root().to_path_buf(),
        });
    }
    env.event(Event::Miss {
        name: meta.name.clone(),
        reason: env.cache.miss_reason(meta, &parts),
    });
    let record = env.timed(&meta.name, || {
        let record = build()?;
        env.cache
            .record(&meta.name, &key, &parts, &record)
            .map_err(StepError::RecordCache)?;
        Ok(record)
    })?;
    Ok(on_base(record))
}
