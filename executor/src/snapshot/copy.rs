//! Copy snapshots: the process changes a plain copy of the layers, which
//! is compared with them afterwards to write the changes into the upper
//! directory (for hosts where overlayfs cannot be mounted).

use super::{
    fail, set_root_meta, writable_root, ActiveSnapshot, SnapshotError, SnapshotMode, SnapshotMount,
    Snapshotter, View,
};
use crate::stack::LayerStack;
use std::path::Path;

/// Snapshots as plain copies (see the module docs): the rootfs is a bind
/// mount of `<work>/rootfs`, a copy of the parent layers, and
/// [`Snapshotter::commit`] diffs it against them into the upper directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopySnapshotter;

impl Snapshotter for CopySnapshotter {
    fn mode(&self) -> SnapshotMode {
        SnapshotMode::Copy
    }

    fn prepare(
        &self,
        parent: &LayerStack,
        upper: &Path,
        work: &Path,
    ) -> Result<ActiveSnapshot, SnapshotError> {
        let (upper, work, meta) = writable_root(parent, upper, work)?;
        let dir = work.join("rootfs");
        crate::stack::materialize(parent, &dir)
            .map_err(fail(format!("copying the rootfs to {}", dir.display())))?;
        set_root_meta(&dir, meta)?;
        Ok(ActiveSnapshot {
            parent: parent.clone(),
            upper,
            changes: dir.clone(),
            mounts: vec![SnapshotMount::Bind { source: dir }],
        })
    }

    fn view(&self, parent: &LayerStack, dir: &Path) -> Result<View, SnapshotError> {
        let view = dir.join("view");
        crate::stack::materialize(parent, &view).map_err(fail(format!(
            "copying a mount source to {}",
            view.display()
        )))?;
        Ok(View {
            path: view,
            mounts: Vec::new(),
        })
    }

    fn commit(&self, active: ActiveSnapshot) -> Result<(), SnapshotError> {
        let dir = &active.changes;
        crate::walkdiff::walk_diff(&active.parent, dir, &active.upper)
            .map_err(fail(format!("diffing {}", dir.display())))?;
        std::fs::remove_dir_all(dir).map_err(fail(format!("removing {}", dir.display())))
    }
}
