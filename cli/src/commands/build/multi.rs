//! Several builds as one: what `kiln bake` drives. Each build goes
//! through `kiln build`'s own phases (request, plan, export); their
//! graphs are merged into one and solved together, so a vertex several
//! builds share runs once, and a build can read another's result as a
//! named context ([`NamedContext::Target`]) without a registry.

use super::plan::{self, Checked, Source};
use super::request::BuildRequest;
use super::resolver::StoreResolver;
use super::{export, solve, BuildArgs};
use crate::global::{runtime, GlobalArgs};
use crate::progress::{ProgressMode, Reporter};
use anyhow::{bail, Context, Result};
use kiln_lint::Diagnostic;
use kiln_solver::{Graph, LinkedTarget, Lowered, NamedContext, Solved};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the builds share: the store (leased), the registry client, the
/// runtime, the config file and the progress output.
pub(crate) struct Session {
    store: kiln_oci::LocalStore,
    lease: kiln_oci::Lease,
    staging: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    client: kiln_oci::RegistryClient,
    reporter: Arc<Reporter>,
    config: crate::config::Config,
    pull: bool,
    /// Builds planned so far: each fetches remote contexts into its own
    /// staging directory.
    count: std::cell::Cell<usize>,
    /// The steps of every build, for their records.
    log: Arc<kiln_solver::builds::StepLog>,
}

/// One build, planned: its flags read, its Dockerfile lowered per
/// platform, its build checks run.
pub(crate) struct Planned {
    /// The build's name (the bake target), put in front of its steps'.
    pub(crate) name: String,
    source: Source,
    request: BuildRequest,
    lowered: Vec<Lowered>,
    found: Vec<Diagnostic>,
    /// Whether it only feeds others (checks and plain `--call`): nothing
    /// is solved or exported for it alone.
    done: bool,
    /// What its record says was asked for.
    info: kiln_solver::builds::BuildInfo,
}

impl Planned {
    /// Its graphs, one per platform, for other builds' `target:` contexts.
    pub(crate) fn linked(&self) -> Vec<LinkedTarget> {
        self.lowered
            .iter()
            .map(|l| LinkedTarget(Arc::new(l.clone())))
            .collect()
    }
}

impl Session {
    /// Opens the store and what builds need, with one progress output.
    ///
    /// # Errors
    /// A store, runtime, registry client or config file that cannot be had.
    pub(crate) fn open(global: &GlobalArgs, progress: ProgressMode, pull: bool) -> Result<Session> {
        let store = global.store()?;
        let lease = store.lease()?;
        let staging = store
            .staging_dir()
            .context("creating a staging directory")?;
        Ok(Session {
            lease,
            staging,
            rt: runtime()?,
            client: global.registry()?,
            reporter: Reporter::new(progress),
            config: global.config_file()?,
            pull,
            store,
            count: Default::default(),
            log: Default::default(),
        })
    }

    /// A directory for files the builds need (inline Dockerfiles).
    pub(crate) fn staging(&self) -> &Path {
        self.staging.path()
    }

    /// Plans one build of `args`, its named contexts `links` (per
    /// platform: a build with one platform links to a one-platform build,
    /// else platform by platform) added.
    ///
    /// # Errors
    /// What `kiln build` reports for these flags and this Dockerfile.
    pub(crate) fn plan(
        &self,
        name: &str,
        args: &BuildArgs,
        links: &BTreeMap<String, Vec<LinkedTarget>>,
    ) -> Result<Planned> {
        let n = self.count.get();
        self.count.set(n + 1);
        let staging = self.staging.path().join(format!("build-{n}"));
        std::fs::create_dir_all(&staging).context("creating a staging directory")?;
        let source = Source::read(args, &staging)?;
        let request = BuildRequest::from_args(args, &source.fetched)?;
        if self.store.is_read_only() {
            if let Some(writer) = request.store_writer() {
                bail!(
                    "store {} is read-only and {writer} writes to it",
                    self.store.root().display()
                );
            }
        }
        let resolver = StoreResolver {
            store: &self.store,
            client: &self.client,
            runtime: &self.rt,
            progress: &self.reporter,
            resolved: Default::default(),
            pull: self.pull || args.pull,
            log: &self.log,
        };
        let platforms = request.platforms.len();
        let lowered = plan::lower_with(&source, &request, &resolver, &mut |i, options| {
            for (ctx, linked) in links {
                let one = match linked.as_slice() {
                    [one] => one,
                    many if many.len() == platforms => &many[i],
                    _ => bail!(
                        "contexts.{ctx}: the linked target builds {} platforms and this one {platforms}",
                        linked.len()
                    ),
                };
                options
                    .named_contexts
                    .insert(ctx.clone(), NamedContext::Target(one.clone()));
            }
            Ok(())
        })
        .with_context(|| format!("target {name:?}"))?;
        let (found, done) = match plan::check(&source, &request, &resolver)? {
            Checked::Build(found) => (found, false),
            Checked::Done => (Vec::new(), true),
        };
        Ok(Planned {
            name: name.to_string(),
            info: super::record::info(args, Some(name)),
            source,
            request,
            lowered,
            found,
            done,
        })
    }

    /// Solves the graphs of `builds` as one (each build's steps named
    /// with its name first) and exports each build's images to its
    /// outputs, in order. Each build leaves a record with its own steps
    /// (those of its roots' closures) and the result of them all.
    ///
    /// # Errors
    /// The first step that fails, or the first export.
    pub(crate) fn build_all(self, builds: &[Planned]) -> Result<()> {
        let (store, log) = (self.store.clone(), self.log.clone());
        let mut vertices = Vec::new();
        let result = self.solve_all(builds, &mut vertices);
        for (b, only) in builds.iter().filter(|b| !b.done).zip(
            vertices
                .into_iter()
                .map(Some)
                .chain(std::iter::repeat(None)),
        ) {
            super::record::write(Some(&store), &log, b.info.clone(), &result, only.as_ref());
        }
        result
    }

    /// [`Session::build_all`] but for the records; `vertices` gets each
    /// build's vertex digests once the graph is merged.
    fn solve_all(
        self,
        builds: &[Planned],
        vertices: &mut Vec<std::collections::HashSet<kiln_oci::Digest>>,
    ) -> Result<()> {
        let builds: Vec<&Planned> = builds.iter().filter(|b| !b.done).collect();
        let Some(first) = builds.first() else {
            return Ok(());
        };
        let mut graph = Graph::new();
        let mut contexts: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut dockerfiles: BTreeMap<String, Option<PathBuf>> = BTreeMap::new();
        let mut roots = Vec::new();
        for b in &builds {
            for l in &b.lowered {
                let mut named = l.clone();
                named.graph.prefix_names(&b.name);
                let before: Vec<String> = contexts.keys().cloned().collect();
                let root = kiln_solver::import_lowered(&mut graph, &mut contexts, &named);
                for name in contexts.keys().filter(|n| !before.contains(n)) {
                    dockerfiles.insert(name.clone(), b.source.path.clone());
                }
                roots.push((root, l.config.clone()));
            }
        }
        let mut start = 0;
        for b in &builds {
            let end = (start + b.lowered.len()).min(roots.len());
            let mine: Vec<_> = roots[start..end].iter().map(|(id, _)| *id).collect();
            start = end;
            let closure = graph.closure(&mine);
            vertices.push(
                closure
                    .iter()
                    .map(|id| graph.vertex(*id).digest.clone())
                    .collect(),
            );
        }
        let solver = solve::Solver {
            store: &self.store,
            client: &self.client,
            rt: &self.rt,
            reporter: &self.reporter,
            config: &self.config,
            log: &self.log,
        };
        let (mut options, runtime) = solver.options(&first.request)?;
        for b in builds.iter().skip(1) {
            let (more, _) = solver.options(&b.request)?;
            for (id, s) in more.secrets {
                options.secrets.entry(id).or_insert(s);
            }
            for (id, s) in more.ssh {
                options.ssh.entry(id).or_insert(s);
            }
            for a in more.allow {
                if !options.allow.contains(&a) {
                    options.allow.push(a);
                }
            }
            // One target's outputs reading files keeps every root's
            // layer directories.
            options.root_dirs |= more.root_dirs;
            // Steps are content-addressed: every target's caches serve the
            // one graph.
            options.cache_from.extend(more.cache_from);
            // Every target's outputs get their layers compressed in the
            // background (a conversion two targets share is remembered
            // after the first).
            options.prepare = match (options.prepare.take(), more.prepare) {
                (Some(a), Some(b)) => Some(kiln_solver::PrepareLayer::new(move |l, cancelled| {
                    a.run(l, cancelled)?;
                    b.run(l, cancelled)
                })),
                (a, b) => a.or(b),
            };
            options.no_cache |= more.no_cache;
            options.emulate |= more.emulate;
            options.no_cache_stages.extend(more.no_cache_stages);
        }
        // `--ssh ID=KEYFILE`: kiln's own agents, for as long as the solve.
        let mut agents = Vec::new();
        for b in &builds {
            let (served, sockets) = crate::ssh_agent::serve(&self.rt, &b.request.ssh_keys)?;
            agents.push(served);
            for (id, s) in sockets {
                options.ssh.entry(id).or_insert(s);
            }
        }
        let root_ids: Vec<_> = roots.iter().map(|(id, _)| *id).collect();
        let caches = &options.cache_from;
        super::remote_cache::restore_for(caches, &graph, &root_ids, &self.store, &self.reporter);
        let progress: Arc<dyn kiln_solver::ProgressSink> = self.log.sink(self.reporter.clone());
        for b in &builds {
            for l in &b.lowered {
                kiln_solver::check_emulation(l, options.emulate, progress.as_ref())
                    .map_err(|e| step_error(&builds, &e))?;
            }
        }
        let opened = solver.open_named(
            contexts
                .iter()
                .map(|(n, d)| (n, d, dockerfiles.get(n).and_then(|p| p.as_deref()))),
        )?;
        let mut solved: Vec<Solved> = self
            .rt
            .block_on(kiln_solver::solve_roots(
                &graph,
                &roots,
                &self.store,
                opened.clone(),
                &options,
                runtime,
                progress,
                crate::signals::build_cancel(),
            ))
            .map_err(|e| step_error(&builds, &e))?;
        for ctx in opened.values() {
            let _ = ctx.save_checksum_cache();
        }
        let exporter = export::Exporter {
            store: &self.store,
            client: &self.client,
            rt: &self.rt,
            reporter: &self.reporter,
        };
        for b in &builds {
            let rest = solved.split_off(b.lowered.len().min(solved.len()));
            let attestations = super::attest::statements(
                &b.request,
                &super::attest::Built {
                    source: &b.source,
                    lowered: &b.lowered,
                    solved: &solved,
                    started: b.request.started,
                    git_context: None,
                },
                &self.reporter,
            )
            .with_context(|| format!("target {:?}", b.name))?;
            exporter
                .export(&b.request, &solved, &attestations)
                .with_context(|| format!("target {:?}", b.name))?;
            solved = rest;
        }
        super::super::cache::enforce_cap(&self.store, &self.config, self.lease);
        for b in &builds {
            plan::list_found(&b.found, &b.source, &self.reporter);
        }
        Ok(())
    }
}

/// A solve error of the build whose step failed (its name is the first
/// word of the step's name), as `kiln build` reports it (one line, then
/// the excerpt), under its target's name; else as it is.
fn step_error(builds: &[&Planned], e: &kiln_solver::SolveError) -> anyhow::Error {
    let owner = match e {
        kiln_solver::SolveError::Step { name, .. } => name
            .strip_prefix('[')
            .and_then(|n| n.split([' ', ']']).next())
            .and_then(|n| builds.iter().find(|b| b.name == n)),
        _ => None,
    };
    match owner {
        Some(b) => solve::solve_error(&b.source, e).context(format!("target {:?}", b.name)),
        None => anyhow::anyhow!("{e}"),
    }
}
