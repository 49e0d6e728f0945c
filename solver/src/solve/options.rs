//! How to solve: [`SolveOptions`], and what a build may be granted or
//! given ([`Entitlement`], [`SecretSource`]).

use crate::cache::remote::CacheSource;
use std::collections::BTreeMap;
use std::sync::Arc;

/// How to solve.
#[derive(Debug, Clone)]
pub struct SolveOptions {
    /// Steps run at once (`--jobs`): RUN processes, pulls, downloads and
    /// every other step, waiting or not. The default is
    /// [`default_jobs`](super::default_jobs), well above the core count:
    /// kiln's own CPU-heavy work is bounded by [`cpu`](Self::cpu) instead.
    pub jobs: usize,
    /// Bounds kiln's own CPU-heavy work in steps (layer diff, tar, hashes
    /// and compression, COPY, context checksums): one slot per core by
    /// default. Clones share it, so a build's solves share one pool.
    pub cpu: super::CpuPool,
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
    /// What to do with each new layer once its step is done, in the
    /// background while later steps run (the outputs' compression of it:
    /// new layers are stored uncompressed). `None`: nothing.
    pub prepare: Option<PrepareLayer>,
    /// Caches to reuse layers from when the local cache misses
    /// (`--cache-from`), in order.
    pub cache_from: Vec<Arc<dyn CacheSource>>,
    /// The snapshotter choice of RUN steps, shared by every solve of a
    /// build (it switches to copies for good when overlayfs is refused).
    pub snapshots: Arc<kiln_executor::Snapshots>,
    /// `--emulate`: register QEMU emulation with binfmt_misc for RUN
    /// steps of another architecture when no handler is there (root
    /// only). Without it such steps need a handler already registered.
    pub emulate: bool,
    /// The outputs read the built filesystem as files (a local or tar
    /// output, an SBOM, timestamps rewritten from the layer directories):
    /// the roots' layers are kept as directories. Without it a step no
    /// other step reads may write its layer straight into its tar (see
    /// `kiln_executor::apply_file_actions_grafting`); its directory is
    /// unpacked from the blob the first time something reads it.
    pub root_dirs: bool,
}

/// Work on a layer a step made, run in the background on the solve's
/// [`CpuPool`](super::CpuPool) (one slot) as soon as the step is done, so
/// that it overlaps the later steps: the outputs' compression of the
/// layer, remembered for the export. It gets the layer and a check that
/// says whether the build was cancelled (it should then stop early and
/// leave nothing half written). The solve waits for every such job before
/// it returns and fails with the first job's error.
#[derive(Clone)]
pub struct PrepareLayer(Arc<PrepareFn>);

/// The function of a [`PrepareLayer`].
pub type PrepareFn =
    dyn Fn(&kiln_oci::Layer, &dyn Fn() -> bool) -> Result<(), String> + Send + Sync;

impl PrepareLayer {
    /// Wraps `work`.
    pub fn new(
        work: impl Fn(&kiln_oci::Layer, &dyn Fn() -> bool) -> Result<(), String> + Send + Sync + 'static,
    ) -> PrepareLayer {
        PrepareLayer(Arc::new(work))
    }

    /// Runs it on `layer`.
    ///
    /// # Errors
    /// The work's own error message.
    pub fn run(&self, layer: &kiln_oci::Layer, cancelled: &dyn Fn() -> bool) -> Result<(), String> {
        (self.0)(layer, cancelled)
    }
}

impl std::fmt::Debug for PrepareLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrepareLayer(..)")
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
    type Err = EntitlementError;

    fn from_str(s: &str) -> Result<Entitlement, EntitlementError> {
        match s {
            "network.host" => Ok(Entitlement::NetworkHost),
            "security.insecure" => Ok(Entitlement::SecurityInsecure),
            other => Err(EntitlementError(other.to_string())),
        }
    }
}

/// An `--allow` value that is not an entitlement (the value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown entitlement {0:?} (expected network.host or security.insecure)")]
pub struct EntitlementError(pub String);

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
            jobs: super::default_jobs(),
            cpu: super::CpuPool::cores(),
            no_cache: false,
            no_cache_stages: Vec::new(),
            secrets: BTreeMap::new(),
            ssh: BTreeMap::new(),
            allow: Vec::new(),
            prepare: None,
            cache_from: Vec::new(),
            snapshots: Arc::default(),
            emulate: false,
            root_dirs: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Entitlement;
    use crate::cache::remote::CacheMode;

    #[test]
    fn flag_values_parse_with_typed_errors() {
        assert_eq!("network.host".parse(), Ok(Entitlement::NetworkHost));
        assert_eq!(
            "net"
                .parse::<Entitlement>()
                .expect_err("unknown")
                .to_string(),
            "unknown entitlement \"net\" (expected network.host or security.insecure)"
        );
        assert_eq!("max".parse(), Ok(CacheMode::Max));
        assert_eq!(
            "all".parse::<CacheMode>().expect_err("unknown").to_string(),
            "mode=all: expected min or max"
        );
    }
}
