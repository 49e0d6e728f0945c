//! A RUN step from start to end: a writable snapshot of its layers
//! (chosen by the build's [`Snapshots`]), the process run on it by a
//! [`Runtime`], and the snapshot committed to the step's upper directory.
//! This module is where the two seams meet: [`crate::snapshot`] knows no
//! runtime, and [`crate::runtime`] neither chooses nor commits a snapshot.

use crate::runtime::{
    CancelSignal, Mount, OutputSink, ProcessSpec, RunOutput, RunRequest, Runtime, RuntimeError,
};
use crate::snapshot::{SnapshotMode, Snapshotter};
use crate::stack::LayerStack;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// One RUN step: a process on a writable snapshot of `lower` whose
/// changes end up in `upper` (see [`Snapshots::run`]).
#[derive(Debug)]
pub struct RunStep<'a> {
    /// The read-only layers (empty for scratch).
    pub lower: &'a LayerStack,
    /// An empty directory that receives the changes (becomes the layer).
    /// Its mode and owner are set from the top lower layer's root (0755
    /// root for scratch): it is the merged root directory.
    pub upper: &'a Path,
    /// An empty work directory on the same filesystem as `upper`.
    pub work: &'a Path,
    /// What to run.
    pub process: ProcessSpec,
    /// Extra mounts; they leave no trace in `upper`.
    pub mounts: Vec<Mount>,
    /// Receives the process's combined output while it runs (see
    /// [`RunRequest::output`]).
    pub output: Option<OutputSink<'a>>,
    /// Stops the run when cancelled (see [`RunRequest::cancel`]).
    pub cancel: Option<&'a CancelSignal>,
}

/// A build's choice of snapshotter: the mode it starts with, switched to
/// copies (for good) once a runtime reports that overlayfs is refused.
/// One is shared by every step of a build, those running at once and
/// those of its other platforms included.
#[derive(Debug, Default)]
pub struct Snapshots {
    copy: AtomicBool,
}

impl Snapshots {
    /// A choice starting with `mode`.
    pub fn new(mode: SnapshotMode) -> Snapshots {
        Snapshots {
            copy: AtomicBool::new(mode == SnapshotMode::Copy),
        }
    }

    /// The mode steps use now.
    pub fn mode(&self) -> SnapshotMode {
        if self.copy.load(Ordering::Relaxed) {
            SnapshotMode::Copy
        } else {
            SnapshotMode::Overlay
        }
    }

    /// Runs `step` with `runtime` on a snapshot of the current mode and
    /// commits its changes to `step.upper`. A non-zero exit is not an
    /// error. When the runtime reports that overlayfs is refused, switches
    /// to copy snapshots, runs the step again on one and says so in
    /// [`RunOutput::notes`] (once, whichever step gets there first).
    ///
    /// # Errors
    /// [`RuntimeError`] when the snapshot or the sandbox cannot be set up
    /// or the command cannot be executed.
    pub fn run(
        &self,
        runtime: &dyn Runtime,
        step: &RunStep<'_>,
    ) -> Result<RunOutput, RuntimeError> {
        let mode = if runtime.needs_copy_snapshots() {
            SnapshotMode::Copy
        } else {
            self.mode()
        };
        match run_on(mode.snapshotter(), runtime, step) {
            Err(refused @ RuntimeError::OverlayRefused { .. }) if mode == SnapshotMode::Overlay => {
                let first = !self.copy.swap(true, Ordering::Relaxed);
                let mut out = run_on(SnapshotMode::Copy.snapshotter(), runtime, step)?;
                if first {
                    out.notes.push(format!(
                        "overlayfs cannot be used here ({refused}): RUN steps use copy snapshots from now on"
                    ));
                }
                Ok(out)
            }
            other => other,
        }
    }
}

/// Prepares a snapshot with `snapshotter`, runs the step on it and
/// commits it.
fn run_on(
    snapshotter: &dyn Snapshotter,
    runtime: &dyn Runtime,
    step: &RunStep<'_>,
) -> Result<RunOutput, RuntimeError> {
    let rootfs = snapshotter.prepare(step.lower, step.upper, step.work)?;
    let out = runtime.run(&RunRequest {
        lower: step.lower,
        rootfs: &rootfs,
        snapshotter,
        process: &step.process,
        mounts: &step.mounts,
        output: step.output,
        cancel: step.cancel,
    })?;
    snapshotter.commit(rootfs)?;
    Ok(out)
}

#[cfg(test)]
mod tests;
