//! The snapshotter choice with a fake runtime (no sandbox, no root): the
//! overlay-refused → copy switch, its note, and what copy snapshots
//! commit.

use super::{RunStep, Snapshots};
use crate::runtime::{NetworkMode, ProcessSpec, RunOutput, RunRequest, Runtime, RuntimeError};
use crate::snapshot::{SnapshotMode, SnapshotMount};
use crate::stack::LayerStack;
use std::io;
use std::path::Path;
use std::sync::Mutex;
use tempfile::TempDir;

/// What kind of rootfs a call got.
fn kinds(calls: &Mutex<Vec<Vec<SnapshotMount>>>) -> Vec<&'static str> {
    calls
        .lock()
        .unwrap()
        .iter()
        .map(|mounts| match mounts[..] {
            [SnapshotMount::Overlay { .. }] => "overlay",
            [SnapshotMount::Bind { .. }] => "bind",
            _ => "other",
        })
        .collect()
}

/// A runtime that refuses overlays as the kernel does on a store on
/// overlayfs (or fails otherwise, with `setup_error`), and on a plain
/// rootfs writes `new` and removes `gone`, as a process would.
#[derive(Default)]
struct Fake {
    setup_error: bool,
    /// The rootfs mounts of every call.
    calls: Mutex<Vec<Vec<SnapshotMount>>>,
}

impl Runtime for Fake {
    fn run(&self, req: &RunRequest<'_>) -> Result<RunOutput, RuntimeError> {
        self.calls
            .lock()
            .unwrap()
            .push(req.rootfs.mounts().to_vec());
        let step = "mounting overlay on /scratch/rootfs".to_string();
        match req.rootfs.mounts() {
            [SnapshotMount::Overlay { .. }] if self.setup_error => Err(RuntimeError::Setup {
                step,
                error: io::Error::from_raw_os_error(libc::ENOENT),
                detail: String::new(),
            }),
            [SnapshotMount::Overlay { .. }] => Err(RuntimeError::OverlayRefused {
                step,
                error: io::Error::from_raw_os_error(libc::EINVAL),
                detail: String::new(),
            }),
            [SnapshotMount::Bind { source }] => {
                assert_eq!(source, req.rootfs.changes());
                std::fs::write(source.join("new"), "made\n").unwrap();
                std::fs::remove_file(source.join("gone")).unwrap();
                Ok(RunOutput {
                    status: 0,
                    output: b"ran\n".to_vec(),
                    notes: Vec::new(),
                })
            }
            other => panic!("unexpected rootfs {other:?}"),
        }
    }
}

/// A base layer with `keep` and `gone`, and fresh step directories.
struct Fixture {
    tmp: TempDir,
    stack: LayerStack,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = TempDir::new().unwrap();
        let base = tmp.path().join("base");
        std::fs::create_dir(&base).unwrap();
        std::fs::write(base.join("keep"), "k").unwrap();
        std::fs::write(base.join("gone"), "g").unwrap();
        Fixture {
            stack: LayerStack::new(vec![base]),
            tmp,
        }
    }

    /// Runs one step named `name` through `snapshots`; returns its result
    /// and upper directory.
    fn run(
        &self,
        snapshots: &Snapshots,
        runtime: &Fake,
        name: &str,
    ) -> (Result<RunOutput, RuntimeError>, std::path::PathBuf) {
        let upper = self.tmp.path().join(format!("{name}-upper"));
        let work = self.tmp.path().join(format!("{name}-work"));
        std::fs::create_dir(&upper).unwrap();
        std::fs::create_dir(&work).unwrap();
        let step = RunStep {
            lower: &self.stack,
            upper: &upper,
            work: &work,
            process: ProcessSpec {
                args: vec!["true".into()],
                env: Vec::new(),
                cwd: "/".into(),
                user: String::new(),
                hostname: "buildkitsandbox".into(),
                network: NetworkMode::Host,
                security: Default::default(),
                extra_hosts: Vec::new(),
                resources: Default::default(),
            },
            mounts: Vec::new(),
            output: None,
            cancel: None,
        };
        (snapshots.run(runtime, &step), upper)
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_refused_overlay_switches_the_build_to_copies_and_says_so_once() {
    let f = Fixture::new();
    let snapshots = Snapshots::new(SnapshotMode::Overlay);
    let fake = Fake::default();
    let (out, upper) = f.run(&snapshots, &fake, "a");
    let out = out.unwrap();
    assert_eq!(out.output, b"ran\n");
    assert_eq!(
        out.notes,
        [
            "overlayfs cannot be used here (mounting overlay on /scratch/rootfs: Invalid argument \
          (os error 22)): RUN steps use copy snapshots from now on"
        ]
    );
    assert_eq!(snapshots.mode(), SnapshotMode::Copy);
    // The copy's changes are in the upper directory in overlay format, and
    // the copy is gone.
    assert_eq!(names(&upper), ["gone", "new"]);
    assert_eq!(
        std::fs::read_to_string(upper.join("new")).unwrap(),
        "made\n"
    );
    let gone = upper.join("gone");
    let md = std::fs::symlink_metadata(&gone).unwrap();
    assert!(
        crate::overlay_marks::is_whiteout(&gone, &md),
        "not a whiteout"
    );
    assert!(!f.tmp.path().join("a-work/rootfs").exists());
    // Overlay first, then the copy.
    assert_eq!(kinds(&fake.calls), ["overlay", "bind"]);

    // Later steps go straight to copies, without a note.
    let (out, upper) = f.run(&snapshots, &fake, "b");
    assert!(out.unwrap().notes.is_empty());
    assert_eq!(names(&upper), ["gone", "new"]);
    assert_eq!(kinds(&fake.calls), ["overlay", "bind", "bind"]);
}

#[test]
fn other_setup_errors_keep_overlay_snapshots() {
    let f = Fixture::new();
    let snapshots = Snapshots::default();
    let fake = Fake {
        setup_error: true,
        ..Fake::default()
    };
    let (out, _) = f.run(&snapshots, &fake, "a");
    let err = out.unwrap_err();
    assert!(matches!(err, RuntimeError::Setup { .. }), "{err}");
    assert_eq!(snapshots.mode(), SnapshotMode::Overlay);
    assert_eq!(fake.calls.lock().unwrap().len(), 1);
}

#[test]
fn copy_mode_starts_with_copies() {
    let f = Fixture::new();
    let snapshots = Snapshots::new(SnapshotMode::Copy);
    let fake = Fake::default();
    let (out, upper) = f.run(&snapshots, &fake, "a");
    assert!(out.unwrap().notes.is_empty());
    assert_eq!(names(&upper), ["gone", "new"]);
    assert_eq!(kinds(&fake.calls), ["bind"]);
}

#[test]
fn the_upper_directory_gets_the_mode_of_the_parent_root() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    std::fs::set_permissions(&f.stack.layers()[0], std::fs::Permissions::from_mode(0o750)).unwrap();
    for mode in [SnapshotMode::Overlay, SnapshotMode::Copy] {
        let upper = f.tmp.path().join(format!("{mode:?}-upper"));
        let work = f.tmp.path().join(format!("{mode:?}-work"));
        std::fs::create_dir(&upper).unwrap();
        std::fs::create_dir(&work).unwrap();
        let active = mode.snapshotter().prepare(&f.stack, &upper, &work).unwrap();
        let md = std::fs::metadata(&upper).unwrap();
        assert_eq!(md.permissions().mode() & 0o7777, 0o750, "{mode:?}");
        let changes = std::fs::metadata(active.changes()).unwrap();
        assert_eq!(changes.permissions().mode() & 0o7777, 0o750, "{mode:?}");
    }
}
