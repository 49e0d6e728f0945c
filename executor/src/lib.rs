//! kiln-executor: the filesystem side of a build.
//!
//! A built filesystem is a [`LayerStack`]: layer directories, bottom first,
//! each holding one layer's changes in overlayfs format (a deletion is a
//! 0/0 character device, an opaque directory carries the
//! `trusted.overlay.opaque` or `user.overlay.opaque` xattr), so the same
//! directories serve overlayfs as lowerdirs.
//!
//! - [`unpack`]: a layer tar (OCI whiteouts) → a layer directory
//!   ([`unpack_blob`]: a gzip or plain layer blob).
//! - [`apply_file_actions`]: COPY/ADD/WORKDIR/heredoc files → a new, empty
//!   upper directory on top of a stack (parents are copied up with their
//!   metadata, as overlayfs does).
//! - [`diff`]: an upper directory → a deterministic layer tar (OCI
//!   whiteouts, hardlinks kept).
//! - [`materialize`]: a stack → a plain directory (for `--output type=local`).
//!
//! Sources for COPY are anything implementing [`SourceTree`]: another stack
//! (a stage or image) or the build context (implemented by the solver).
//!
//! RUN steps run on [`snapshot`]s: [`Snapshots::run`] prepares a writable
//! snapshot of the stack with the build's [`Snapshotter`] (overlay, or
//! copies where overlayfs is refused), hands it to a [`Runtime`] and
//! commits the changes to the step's upper directory. The runtime is the
//! built-in namespace sandbox ([`BuiltinRuntime`]) or an external OCI
//! runtime ([`OciRuntime`]: runc or crun, as root); both produce the same
//! layer for the same step.
//!
//! A RUN step of another architecture runs under QEMU user emulation:
//! [`Binfmt::ensure`] finds a binfmt_misc handler for its platform, or
//! registers one when allowed ([`needs_emulation`] says which need one).
//!
//! [`rootless`]: a non-root kiln re-enters itself as root of a user
//! namespace with the user's subordinate ids, at start-up.
#![deny(missing_docs)]

mod diff;
pub mod dirfd;
pub mod durable;
mod emulation;
mod file_caps;
mod file_meta;
mod fileop;
pub mod names;
mod overlay_marks;
mod privileges;
mod relpath;
pub mod rootless;
mod runtime;
pub mod snapshot;
mod stack;
mod step;
mod unpack;
mod walkdiff;

pub use diff::{diff, diff_grafted, diff_with, DiffError, DiffOptions};
pub use emulation::{needs_emulation, Binfmt, EmulationError, BINFMT_MISC};
pub use fileop::{
    apply_file_actions, apply_file_actions_grafting, Chmod, CopyAction, FileAction, FileOpError,
    Graft, Grafts, Owner, Source,
};
pub use runtime::{
    abort_runs, cgroup_parent, set_scratch_base, sweep_stale, BuiltinRuntime, CancelSignal,
    ChrootRuntime, Decision, Fallbacks, IsolatedRuntime, Isolation, Mount, NetworkMode, OciRuntime,
    OutputSink, Probe, ProcessSpec, Resources, RunOutput, RunRequest, Runtime, RuntimeError,
    SecurityMode, Ulimit, UlimitError, UlimitName, OUTPUT_LIMIT,
};
pub use snapshot::{
    ActiveSnapshot, CopySnapshotter, OverlaySnapshotter, SnapshotError, SnapshotMode,
    SnapshotMount, Snapshotter, View,
};
pub use stack::{materialize, LayerStack, SourceEntry, SourceError, SourceTree};
pub use step::{RunStep, Snapshots};
pub use unpack::{commit_dir, commit_new_dir, unpack, unpack_blob, UnpackError};
pub use walkdiff::walk_diff;
