//! Snapshots: the writable root filesystem a RUN step runs on, and the
//! read-only views of other filesystems it mounts, kept apart from the
//! runtimes that run the process (containerd's split).
//!
//! A [`Snapshotter`] turns a [`LayerStack`] into mounts:
//!
//! - [`Snapshotter::prepare`] makes a writable snapshot on the parent
//!   layers ([`ActiveSnapshot`]): the mounts of the rootfs, and the
//!   directory the process's writes land in;
//! - [`Snapshotter::view`] makes a view ([`View`]) whose writes are
//!   thrown away (`RUN --mount=type=bind,from=…`);
//! - [`Snapshotter::commit`] leaves the snapshot's changes in its upper
//!   directory in overlay format (whiteouts, opaque directories), ready for
//!   [`crate::diff`].
//!
//! Two implementations exist: [`OverlaySnapshotter`] (an overlayfs on the
//! layer directories, the upper directory receiving the changes as they
//! happen) and [`CopySnapshotter`] (a plain copy of the layers that the
//! process changes, compared with them afterwards: slower, but it works
//! where overlayfs cannot be mounted, such as on a store on overlayfs).
//!
//! A [`Runtime`](crate::Runtime) only runs a process on a rootfs given as mounts (plus the
//! step's own [`crate::Mount`]s), see [`RunRequest`](crate::RunRequest). The caller owns the
//! choice of snapshotter ([`Snapshots`](crate::Snapshots)): it starts with the mode it is
//! given ([`SnapshotMode`]) and, when a runtime reports that the kernel
//! refused the overlay ([`RuntimeError::OverlayRefused`](crate::RuntimeError::OverlayRefused)), switches to
//! copy snapshots for this and every later step of the build and says so
//! once ([`RunOutput::notes`](crate::RunOutput::notes)).
//!
//! Isolation modes plug in here. A new mode (the isolation ladder's chroot
//! or none) is a [`Runtime`](crate::Runtime): it receives the same [`RunRequest`](crate::RunRequest), mounts
//! [`ActiveSnapshot::mounts`] on its root however it can (or, with no mount
//! namespace at all, runs in a directory that a snapshotter made plain:
//! [`CopySnapshotter`]'s mounts are a single bind of one), and the caller
//! picks the snapshotter the mode can use through [`Snapshots`](crate::Snapshots).

mod copy;
mod overlay;

use crate::stack::LayerStack;
use std::io;
use std::path::{Path, PathBuf};

pub use copy::CopySnapshotter;
pub use overlay::OverlaySnapshotter;

/// One mount that makes up a snapshot, mounted at the snapshot's place
/// (the rootfs, or [`View::path`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotMount {
    /// An overlayfs (always with `userxattr`).
    Overlay {
        /// The lower directories, bottom first (absolute); empty for
        /// scratch (the runtime then uses an empty directory of its own).
        lowers: Vec<PathBuf>,
        /// The upper directory (absolute).
        upper: PathBuf,
        /// The work directory, on the same filesystem as `upper`.
        work: PathBuf,
        /// Mount with `volatile` (the upper directory's fsyncs are
        /// skipped): for a step's scratch upper, which kiln itself reads
        /// into the layer blob (synced by the store) or discards, with a
        /// fresh work directory that is removed afterwards (overlayfs
        /// refuses to mount a work directory a volatile mount used).
        volatile: bool,
    },
    /// A (non-recursive, writable) bind mount of a host directory.
    Bind {
        /// The directory (absolute).
        source: PathBuf,
    },
}

/// A writable snapshot a process runs on, made by
/// [`Snapshotter::prepare`] and finished by [`Snapshotter::commit`].
#[derive(Debug)]
pub struct ActiveSnapshot {
    parent: LayerStack,
    upper: PathBuf,
    changes: PathBuf,
    mounts: Vec<SnapshotMount>,
}

impl ActiveSnapshot {
    /// The mounts that make the rootfs, in order.
    pub fn mounts(&self) -> &[SnapshotMount] {
        &self.mounts
    }

    /// The host directory the process's writes land in (the runtime
    /// removes its mount stubs from there after the run).
    pub fn changes(&self) -> &Path {
        &self.changes
    }

    /// The directory that holds the changes in overlay format after
    /// [`Snapshotter::commit`].
    pub fn upper(&self) -> &Path {
        &self.upper
    }

    /// The layers the snapshot was prepared on.
    pub fn parent(&self) -> &LayerStack {
        &self.parent
    }
}

/// A view of a filesystem whose writes are thrown away, made by
/// [`Snapshotter::view`].
#[derive(Debug)]
pub struct View {
    /// Where the view appears once [`View::mounts`] are mounted there.
    pub path: PathBuf,
    /// The mounts to make at `path`, in order (none when `path` already
    /// holds the view).
    pub mounts: Vec<SnapshotMount>,
}

/// A snapshot operation that failed; the message names it and the path.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {error}")]
pub struct SnapshotError {
    /// What was being done, e.g. `copying the rootfs to /…/rootfs`.
    pub step: String,
    /// The error.
    #[source]
    pub error: io::Error,
}

/// A [`SnapshotError`] maker for `map_err`.
fn fail(step: impl Into<String>) -> impl FnOnce(io::Error) -> SnapshotError {
    let step = step.into();
    move |error| SnapshotError { step, error }
}

/// Makes snapshots of layer stacks (see the module docs).
pub trait Snapshotter: Send + Sync + std::fmt::Debug {
    /// The mode this snapshotter implements.
    fn mode(&self) -> SnapshotMode;

    /// Prepares a writable snapshot of `parent`. `upper` (empty) receives
    /// the changes and gets the mode and owner of `parent`'s root (0755
    /// root for scratch), since it is the merged root directory; `work` is
    /// an empty directory on the same filesystem, for the snapshotter's
    /// own use.
    ///
    /// # Errors
    /// I/O errors naming the path.
    fn prepare(
        &self,
        parent: &LayerStack,
        upper: &Path,
        work: &Path,
    ) -> Result<ActiveSnapshot, SnapshotError>;

    /// A view of `parent` whose writes are thrown away, using the
    /// directory `dir` (created if missing, removed by the caller).
    ///
    /// # Errors
    /// I/O errors naming the path.
    fn view(&self, parent: &LayerStack, dir: &Path) -> Result<View, SnapshotError>;

    /// Leaves the changes of `active` in its upper directory in overlay
    /// format, once the process is done (and its mounts are gone).
    ///
    /// # Errors
    /// I/O errors naming the path.
    fn commit(&self, active: ActiveSnapshot) -> Result<(), SnapshotError>;
}

/// The snapshotter a build starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SnapshotMode {
    /// [`OverlaySnapshotter`], switching to copies when overlayfs is
    /// refused.
    #[default]
    Overlay,
    /// [`CopySnapshotter`] from the start.
    Copy,
}

impl SnapshotMode {
    /// The snapshotter of this mode.
    pub fn snapshotter(self) -> &'static dyn Snapshotter {
        match self {
            SnapshotMode::Overlay => &OverlaySnapshotter,
            SnapshotMode::Copy => &CopySnapshotter,
        }
    }
}

/// A root directory's `(mode, uid, gid)`.
type RootMeta = (u32, u32, u32);

/// The mode and owner of `stack`'s root directory (0755 root for
/// scratch), given to the directory that stands for it.
fn root_meta(stack: &LayerStack) -> Result<RootMeta, SnapshotError> {
    use std::os::unix::fs::MetadataExt;
    match stack.layers().last() {
        Some(top) => {
            let md = std::fs::metadata(top).map_err(fail(format!("reading {}", top.display())))?;
            Ok((md.mode() & 0o7777, md.uid(), md.gid()))
        }
        None => Ok((0o755, 0, 0)),
    }
}

/// Gives `dir` the root's `(mode, uid, gid)` (the owner only as root).
fn set_root_meta(dir: &Path, (mode, uid, gid): RootMeta) -> Result<(), SnapshotError> {
    if crate::privileges::is_root() {
        std::os::unix::fs::chown(dir, Some(uid), Some(gid))
            .map_err(fail(format!("chown {}", dir.display())))?;
    }
    crate::file_meta::chmod(dir, mode).map_err(fail(format!("chmod {}", dir.display())))
}

/// The absolute `upper` and `work` of a writable snapshot of `parent`,
/// `upper` given the root's mode and owner (it is the merged root); also
/// returns that `(mode, uid, gid)`.
fn writable_root(
    parent: &LayerStack,
    upper: &Path,
    work: &Path,
) -> Result<(PathBuf, PathBuf, RootMeta), SnapshotError> {
    let upper = absolute(upper)?;
    let work = absolute(work)?;
    let meta = root_meta(parent)?;
    set_root_meta(&upper, meta)?;
    Ok((upper, work, meta))
}

/// `p` made absolute.
fn absolute(p: &Path) -> Result<PathBuf, SnapshotError> {
    std::path::absolute(p).map_err(fail(format!("resolving {}", p.display())))
}
