//! The solve phase of `kiln build`: the graphs' local contexts opened
//! (with their checksum caches in the store), the solver's options set
//! from the request and the config file, and each platform's graph
//! solved.

use super::flags::{isolated_runtime, strip_line};
use super::plan::Source;
use super::remote_cache;
use super::request::BuildRequest;
use crate::config::Config;
use crate::located::StepOutput;
use crate::progress::Reporter;
use anyhow::{Context, Result};
use kiln_oci::{LocalStore, RegistryClient};
use kiln_solver::context::BuildContext;
use kiln_solver::{Lowered, ProgressSink, SolveOptions, Solved};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the solve phase works with.
pub(super) struct Solver<'a> {
    /// The store the build writes to.
    pub(super) store: &'a LocalStore,
    /// For `--cache-from` registries.
    pub(super) client: &'a RegistryClient,
    /// The async runtime.
    pub(super) rt: &'a tokio::runtime::Runtime,
    /// Progress output.
    pub(super) reporter: &'a Arc<Reporter>,
    /// The config file (`jobs`, `runtime`).
    pub(super) config: &'a Config,
    /// Collects the steps for the build record.
    pub(super) log: &'a Arc<kiln_solver::builds::StepLog>,
}

impl Solver<'_> {
    /// Solves every platform's graph, in the order of `lowered`.
    ///
    /// # Errors
    /// A context that cannot be opened, a runtime that cannot be had, or
    /// the first step that fails (at `NAME:LINE:COL` when it knows its
    /// line).
    pub(super) fn solve(
        &self,
        source: &Source,
        request: &BuildRequest,
        lowered: &[Lowered],
    ) -> Result<Vec<Solved>> {
        let contexts = self.open_contexts(source, lowered)?;
        // `--ssh ID=KEYFILE`: kiln's own agents, for as long as the solve.
        let (_agents, key_sockets) = crate::ssh_agent::serve(self.rt, &request.ssh_keys)?;
        let progress: Arc<dyn ProgressSink> = self.log.sink(self.reporter.clone());
        let (mut options, runtime) = self.options(request)?;
        options.ssh.extend(key_sockets);
        // Every platform's cache mounts, once.
        let ids = lowered
            .iter()
            .flat_map(|l| kiln_solver::cache_mounts::ids_in(&l.graph, &l.graph.closure(&[l.root])));
        let ids = ids.collect();
        remote_cache::restore_mounts(&options.cache_from, &ids, self.store, self.reporter);
        let located = |e: kiln_solver::SolveError| solve_error(source, &e);
        // Every platform's emulated RUN steps, before any platform runs.
        for one in lowered {
            kiln_solver::check_emulation(one, options.emulate, progress.as_ref())
                .map_err(located)?;
        }
        let mut solved_all = Vec::new();
        for one in lowered {
            let solved = self
                .rt
                .block_on(kiln_solver::solve_with_cancel(
                    one,
                    self.store,
                    contexts.clone(),
                    &options,
                    runtime.clone(),
                    progress.clone(),
                    crate::signals::build_cancel(),
                ))
                .map_err(located)?;
            solved_all.push(solved);
        }
        for ctx in contexts.values() {
            // A stale checksum cache only costs time; never fail the build on it.
            let _ = ctx.save_checksum_cache();
        }
        Ok(solved_all)
    }

    /// The solver's options and the runtime for `request`.
    pub(super) fn options(
        &self,
        request: &BuildRequest,
    ) -> Result<(SolveOptions, Arc<dyn kiln_executor::Runtime>)> {
        let conversions = request.layer_conversions();
        let prepare = (!conversions.is_empty()).then(|| {
            let (store, epoch) = (self.store.clone(), request.epoch);
            kiln_solver::PrepareLayer::new(move |layer, cancelled| {
                for options in &conversions {
                    kiln_exporter::prepare_layer(&store, layer, epoch, options, cancelled)
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            })
        });
        let options = SolveOptions {
            prepare,
            jobs: request
                .jobs
                .or(self.config.checked.jobs)
                .unwrap_or_else(kiln_solver::default_jobs),
            cpu: kiln_solver::CpuPool::cores(),
            no_cache: request.no_cache,
            no_cache_stages: request.no_cache_stages.clone(),
            secrets: request.secrets.clone(),
            ssh: request.ssh.clone(),
            allow: request.allow.clone(),
            emulate: request.emulate || self.config.checked.emulate,
            root_dirs: request.reads_built_files(),
            cache_from: remote_cache::open_imports(
                &request.cache_from,
                self.client,
                self.rt,
                self.reporter,
            ),
            snapshots: Arc::new(kiln_executor::Snapshots::new(
                super::flags::fallbacks().snapshots(),
            )),
        };
        let runtime = isolated_runtime(request.isolation, request.runtime.as_deref(), self.config)?;
        Ok((options, runtime))
    }

    /// Opens every local directory the graphs read, once per context
    /// name, each with a checksum cache in the store named by its path.
    fn open_contexts(
        &self,
        source: &Source,
        lowered: &[Lowered],
    ) -> Result<HashMap<String, Arc<BuildContext>>> {
        self.open_named(
            lowered
                .iter()
                .flat_map(|l| &l.contexts)
                .map(|(name, dir)| (name, dir, source.path.as_deref())),
        )
    }

    /// Opens local directories by context name (the first of a name
    /// wins), each with the Dockerfile whose `.dockerignore` it may have.
    pub(super) fn open_named<'b>(
        &self,
        named: impl Iterator<Item = (&'b String, &'b PathBuf, Option<&'b Path>)>,
    ) -> Result<HashMap<String, Arc<BuildContext>>> {
        let mut contexts = HashMap::new();
        for (name, dir, dockerfile) in named {
            if contexts.contains_key(name) {
                continue;
            }
            let cache = self.store.layout().contexts().join(
                kiln_oci::Digest::sha256(
                    dir.canonicalize()
                        .unwrap_or(dir.clone())
                        .to_string_lossy()
                        .as_bytes(),
                )
                .hex(),
            );
            if let Some(parent) = cache.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let ctx = BuildContext::open(dir, dockerfile)
                .with_context(|| format!("opening the build context {}", dir.display()))?
                .with_checksum_cache(&cache);
            contexts.insert(name.clone(), Arc::new(ctx));
        }
        Ok(contexts)
    }
}

/// A failed solve as the user sees it: at the failed step's Dockerfile
/// line with the excerpt when it has one. A failed process is named once,
/// by its command (`process "/bin/sh -c make" did not complete
/// successfully: exit code: 2`, BuildKit's words), its last output lines
/// in the box above the excerpt.
pub(super) fn solve_error(source: &Source, e: &kiln_solver::SolveError) -> anyhow::Error {
    use kiln_solver::{SolveError, StepError};
    let Some(line) = e.line() else {
        return anyhow::anyhow!("{e}");
    };
    let (name, error) = match e {
        SolveError::Step { name, error, .. } => (name.as_str(), error),
        _ => {
            return anyhow::anyhow!(
                "{}:{line}: {}",
                source.name,
                strip_line(&e.to_string(), line)
            )
        }
    };
    let (message, output) = match error {
        StepError::Exit {
            command,
            status,
            hint,
            output,
            ..
        } => {
            let hint = hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default();
            let lines: Vec<String> = output
                .lines()
                .filter_map(|l| l.strip_prefix("  > "))
                .map(str::to_string)
                .collect();
            (
                format!(
                    "process {command:?} did not complete successfully: exit code: {status}{hint}"
                ),
                lines,
            )
        }
        other => (format!("{name}: {other}"), Vec::new()),
    };
    source
        .located(
            line,
            &message,
            Some(StepOutput {
                name,
                lines: output,
            }),
        )
        .into()
}
