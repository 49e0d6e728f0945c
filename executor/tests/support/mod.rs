//! What the executor's sandbox tests share: the busybox base layer, a
//! `sh -c` process, root detection, the runtimes by name, the
//! [`on_every_runtime!`] suite generator and the [`Env`] that runs steps.
#![allow(dead_code)]

use kiln_executor::{
    unpack_blob, BuiltinRuntime, Fallbacks, LayerStack, Mount, NetworkMode, OciRuntime,
    ProcessSpec, RunOutput, RunStep, Runtime, RuntimeError, SecurityMode, SnapshotMode, Snapshots,
};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// The busybox base's only layer blob (gzip).
pub const BUSYBOX: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/bases/busybox/blobs/sha256/d83a308413b8acb7cc8807ec15a786c10f5ecc5da57af786b9a351120a3ad03a"
);
/// The diff id busybox's config gives that layer (checked on unpack).
pub const BUSYBOX_DIFF_ID: &str =
    "sha256:beed84fc74dde1dc0ce0032588340a67fd356283344bc7ad96cdef142f1fddb6";

/// The `PATH` the test processes get.
pub const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Whether the tests run as root (the sandbox tests need it).
pub fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Returns from the test, saying why, unless it runs as root.
#[allow(unused_macros)]
macro_rules! need_root {
    () => {
        if !support::is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}

/// The busybox layer unpacked into `<dir>/base` (mode 0755).
pub fn busybox_base(dir: &Path) -> PathBuf {
    let base = dir.join("base");
    std::fs::create_dir(&base).unwrap();
    unpack_blob(
        Path::new(BUSYBOX),
        "application/vnd.oci.image.layer.v1.tar+gzip",
        &BUSYBOX_DIFF_ID.parse().unwrap(),
        &base,
    )
    .unwrap();
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
    base
}

/// `/bin/sh -c script` as root in `/`, host network, sandboxed.
pub fn sh(script: &str) -> ProcessSpec {
    ProcessSpec {
        args: vec!["/bin/sh".into(), "-c".into(), script.into()],
        env: vec![PATH.into()],
        cwd: "/".into(),
        user: String::new(),
        hostname: "buildkitsandbox".into(),
        network: NetworkMode::Host,
        security: SecurityMode::Sandbox,
        extra_hosts: Vec::new(),
        resources: Default::default(),
    }
}

/// A run's output as text.
pub fn text(out: &RunOutput) -> String {
    String::from_utf8_lossy(&out.output).into_owned()
}

/// The runtime named `builtin`, `runc` or `crun`, taking `fallbacks`. A
/// missing runc or crun fails the test: the suites run on every runtime
/// (`.ci/run` installs both).
pub fn runtime_with(name: &str, fallbacks: Fallbacks) -> Box<dyn Runtime> {
    match name {
        "builtin" => Box::new(BuiltinRuntime::new(fallbacks)),
        name => Box::new(
            OciRuntime::new(name)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .with_fallbacks(fallbacks),
        ),
    }
}

/// The runtime named `builtin`, `runc` or `crun` (see [`runtime_with`]).
pub fn runtime(name: &str) -> Box<dyn Runtime> {
    runtime_with(name, Fallbacks::default())
}

/// Generates, for each named `fn(runtime_name)`, a test per runtime:
/// `builtin::name`, `runc::name` and `crun::name` (skipped unless root).
/// A new runtime (an isolation mode) is one more line here.
#[allow(unused_macros)]
macro_rules! on_every_runtime {
    ($($name:ident),* $(,)?) => {
        on_every_runtime!(@rt builtin, $($name),*);
        on_every_runtime!(@rt runc, $($name),*);
        on_every_runtime!(@rt crun, $($name),*);
    };
    (@rt $rt:ident, $($name:ident),*) => {
        mod $rt {
            $(
                #[test]
                fn $name() {
                    if !super::support::is_root() {
                        eprintln!("skipped: needs root");
                        return;
                    }
                    super::$name(stringify!($rt));
                }
            )*
        }
    };
}

/// A scratch area with a layer stack, running steps on one runtime with
/// fresh upper and work directories.
pub struct Env {
    /// Holds the layers and the step directories.
    pub tmp: TempDir,
    /// The layers the steps run on.
    pub stack: LayerStack,
    /// The runtime's name (`builtin`, `runc`, `crun`).
    pub rt: &'static str,
    runtime: Box<dyn Runtime>,
    snapshots: Snapshots,
}

impl Env {
    /// The busybox base on runtime `rt`.
    pub fn busybox(rt: &'static str) -> Env {
        let tmp = TempDir::new().unwrap();
        let base = busybox_base(tmp.path());
        Env::new(tmp, LayerStack::new(vec![base]), rt)
    }

    /// An empty stack (`FROM scratch`) on runtime `rt`.
    pub fn scratch(rt: &'static str) -> Env {
        Env::new(TempDir::new().unwrap(), LayerStack::default(), rt)
    }

    fn new(tmp: TempDir, stack: LayerStack, rt: &'static str) -> Env {
        Env {
            tmp,
            stack,
            rt,
            runtime: runtime(rt),
            snapshots: Snapshots::default(),
        }
    }

    /// The same, with the runtime taking `fallbacks` (and copy snapshots
    /// when they ask for them).
    pub fn with_fallbacks(self, fallbacks: Fallbacks) -> Env {
        Env {
            runtime: runtime_with(self.rt, fallbacks),
            snapshots: Snapshots::new(fallbacks.snapshots()),
            ..self
        }
    }

    /// The snapshot mode the next step uses.
    pub fn snapshot_mode(&self) -> SnapshotMode {
        self.snapshots.mode()
    }

    /// Fresh (upper, work) dirs named after `name` (made unique).
    pub fn dirs(&self, name: &str) -> (PathBuf, PathBuf) {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let upper = self.tmp.path().join(format!("{name}-{n}-upper"));
        let work = self.tmp.path().join(format!("{name}-{n}-work"));
        std::fs::create_dir(&upper).unwrap();
        std::fs::create_dir(&work).unwrap();
        (upper, work)
    }

    /// Runs `step` on this env's runtime and snapshots.
    pub fn exec(&self, step: &RunStep<'_>) -> Result<RunOutput, RuntimeError> {
        self.snapshots.run(self.runtime.as_ref(), step)
    }

    /// Runs `spec` with `mounts` through `rt` into a fresh upper named
    /// after `name`.
    pub fn run_on(
        &self,
        rt: &dyn Runtime,
        name: &str,
        spec: ProcessSpec,
        mounts: Vec<Mount>,
    ) -> (Result<RunOutput, RuntimeError>, PathBuf) {
        let (upper, work) = self.dirs(name);
        let step = RunStep {
            lower: &self.stack,
            upper: &upper,
            work: &work,
            process: spec,
            mounts,
            output: None,
            cancel: None,
        };
        (self.snapshots.run(rt, &step), upper)
    }

    /// Runs `spec` with `mounts` into a fresh upper named after `name`.
    pub fn run_with(
        &self,
        name: &str,
        spec: ProcessSpec,
        mounts: Vec<Mount>,
    ) -> (Result<RunOutput, RuntimeError>, PathBuf) {
        self.run_on(self.runtime.as_ref(), name, spec, mounts)
    }

    /// Runs `spec` with `mounts`, which must work; returns the output and
    /// the upper dir.
    pub fn run(&self, spec: ProcessSpec, mounts: Vec<Mount>) -> (RunOutput, PathBuf) {
        let (out, upper) = self.run_with("run", spec, mounts);
        (out.unwrap(), upper)
    }

    /// Runs `sh -c script` as root; returns the output and the upper dir.
    pub fn sh(&self, name: &str, script: &str) -> (RunOutput, PathBuf) {
        let (out, upper) = self.run_with(name, sh(script), Vec::new());
        (out.unwrap(), upper)
    }

    /// `sh -c script` with `mounts`; returns the output as text.
    pub fn sh_out(&self, script: &str, mounts: Vec<Mount>) -> String {
        text(&self.run(sh(script), mounts).0)
    }

    /// Puts `upper` on top of the stack.
    pub fn commit(&mut self, upper: PathBuf) {
        self.stack = self.stack.with(upper);
    }
}
