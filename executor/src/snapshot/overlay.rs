//! Overlay snapshots: the layer directories are the overlay's lowers and
//! the upper directory receives the changes as the process makes them.

use super::{
    absolute, fail, writable_root, ActiveSnapshot, SnapshotError, SnapshotMode, SnapshotMount,
    Snapshotter, View,
};
use crate::stack::LayerStack;
use std::path::{Path, PathBuf};

/// Snapshots as overlayfs mounts (see the module docs); needs a kernel
/// that mounts overlayfs where the runtime runs (in a user namespace:
/// ≥ 5.11) and an upper directory on a filesystem it accepts.
#[derive(Debug, Clone, Copy, Default)]
pub struct OverlaySnapshotter;

/// `stack`'s layer directories, absolute, bottom first.
fn lowers(stack: &LayerStack) -> Result<Vec<PathBuf>, SnapshotError> {
    stack.layers().iter().map(|l| absolute(l)).collect()
}

impl Snapshotter for OverlaySnapshotter {
    fn mode(&self) -> SnapshotMode {
        SnapshotMode::Overlay
    }

    fn prepare(
        &self,
        parent: &LayerStack,
        upper: &Path,
        work: &Path,
    ) -> Result<ActiveSnapshot, SnapshotError> {
        let (upper, work, _) = writable_root(parent, upper, work)?;
        let lowers = lowers(parent)?;
        Ok(ActiveSnapshot {
            parent: parent.clone(),
            changes: upper.clone(),
            mounts: vec![SnapshotMount::Overlay {
                lowers,
                upper: upper.clone(),
                work,
                // A step's upper: see `SnapshotMount::Overlay::volatile`.
                volatile: true,
            }],
            upper,
        })
    }

    fn view(&self, parent: &LayerStack, dir: &Path) -> Result<View, SnapshotError> {
        let (view, upper, work, empty) = (
            dir.join("view"),
            dir.join("upper"),
            dir.join("work"),
            dir.join("empty"),
        );
        for d in [&view, &upper, &work, &empty] {
            std::fs::create_dir_all(d).map_err(fail(format!("creating {}", d.display())))?;
        }
        let mut lowers = lowers(parent)?;
        if lowers.is_empty() {
            lowers.push(absolute(&empty)?);
        }
        Ok(View {
            mounts: vec![SnapshotMount::Overlay {
                lowers,
                upper,
                work,
                // The caller's directory may be mounted again.
                volatile: false,
            }],
            path: view,
        })
    }

    fn commit(&self, _active: ActiveSnapshot) -> Result<(), SnapshotError> {
        // The upper directory has held the changes all along.
        Ok(())
    }
}
