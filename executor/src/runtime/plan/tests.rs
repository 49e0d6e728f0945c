//! The child's operation plan of the built-in runtime, checked without
//! root and without running anything: `prepare` + `builtin::plan` for
//! requests with bind, cache, tmpfs, secret and layer mounts, read-only
//! binds, both network modes and both security modes.

use super::prepare;
use crate::runtime::builtin::{plan, BuiltinPlan};
use crate::runtime::child::Op;
use crate::runtime::{Fallbacks, Mount, NetworkMode, ProcessSpec, RunRequest, SecurityMode};
use crate::snapshot::{SnapshotMode, Snapshotter};
use crate::stack::LayerStack;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// A base layer with passwd and group files (and a `/data` directory in
/// a second filesystem for layer mounts).
struct Fixture {
    tmp: TempDir,
    stack: LayerStack,
    other: LayerStack,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = TempDir::new().unwrap();
        let base = tmp.path().join("base");
        std::fs::create_dir_all(base.join("etc")).unwrap();
        std::fs::create_dir_all(base.join("bin")).unwrap();
        std::fs::write(
            base.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(base.join("etc/group"), "root:x:0:\napp:x:1000:\n").unwrap();
        let other = tmp.path().join("other");
        std::fs::create_dir_all(other.join("data")).unwrap();
        std::fs::write(tmp.path().join("host-file"), "x").unwrap();
        std::fs::create_dir(tmp.path().join("cache")).unwrap();
        Fixture {
            stack: LayerStack::new(vec![base]),
            other: LayerStack::new(vec![other]),
            tmp,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Every `RUN --mount` kind, given out of depth order.
    fn mounts(&self) -> Vec<Mount> {
        vec![
            Mount::Bind {
                source: self.path("host-file"),
                target: "/opt/deep/file".into(),
                readonly: true,
            },
            // A cache mount: a writable bind of the cache directory.
            Mount::Bind {
                source: self.path("cache"),
                target: "/cache".into(),
                readonly: false,
            },
            Mount::Tmpfs {
                target: "/scratch".into(),
                size: Some(4096),
            },
            Mount::Secret {
                data: b"hunter2".to_vec(),
                target: "/run/secrets/token".into(),
                mode: 0o400,
                uid: 1000,
                gid: 1000,
            },
            Mount::Layers {
                lower: self.other.clone(),
                source: "data".into(),
                target: "/data".into(),
                readonly: true,
            },
        ]
    }

    /// The plan (op descriptions with the scratch and rootfs paths
    /// replaced by `<scratch>`, `<root>`) for `process` with `mounts`.
    fn plan(
        &self,
        snapshotter: &dyn Snapshotter,
        process: &ProcessSpec,
        mounts: &[Mount],
        name: &str,
    ) -> (Vec<String>, BuiltinPlan) {
        let upper = self.path(&format!("{name}-upper"));
        let work = self.path(&format!("{name}-work"));
        std::fs::create_dir(&upper).unwrap();
        std::fs::create_dir(&work).unwrap();
        let rootfs = snapshotter.prepare(&self.stack, &upper, &work).unwrap();
        let req = RunRequest {
            lower: &self.stack,
            rootfs: &rootfs,
            snapshotter,
            process,
            mounts,
            output: None,
            cancel: None,
        };
        let fallbacks = Fallbacks::default();
        let mut p = prepare(&req, &fallbacks).unwrap();
        let built = plan(&req, &mut p, &fallbacks).unwrap();
        let scratch = p.scratch.dir.display().to_string();
        let descs = built
            .ops
            .iter()
            .map(|(d, _)| d.replace(&scratch, "<scratch>"))
            .map(|d| d.replace(&work.display().to_string(), "<work>"))
            .collect();
        (descs, built)
    }
}

fn process(network: NetworkMode, security: SecurityMode) -> ProcessSpec {
    ProcessSpec {
        args: vec!["sh".into(), "-c".into(), "true".into()],
        env: vec!["PATH=/usr/bin:/bin".into()],
        cwd: "/work/dir".into(),
        user: "app".into(),
        hostname: "buildkitsandbox".into(),
        network,
        security,
        extra_hosts: Vec::new(),
        resources: Default::default(),
    }
}

/// The position of the first description equal to `want`.
fn at(descs: &[String], want: &str) -> usize {
    descs
        .iter()
        .position(|d| d == want)
        .unwrap_or_else(|| panic!("no {want:?} in {descs:#?}"))
}

#[test]
fn the_plan_mounts_the_snapshot_then_the_sandbox_then_the_step_mounts_by_depth() {
    let f = Fixture::new();
    let spec = process(NetworkMode::Host, SecurityMode::Sandbox);
    let (descs, built) = f.plan(SnapshotMode::Overlay.snapshotter(), &spec, &f.mounts(), "a");
    // The namespace setup, then the rootfs overlay, the layer view's
    // overlay and the secrets tmpfs with the secret file, all outside the
    // rootfs.
    assert_eq!(descs[0], "setting the umask");
    assert_eq!(descs[1], "making / private");
    assert_eq!(descs[2], "mounting overlay on <scratch>/rootfs");
    let order = [
        "mounting overlay on <scratch>/mount-2/view",
        "mounting the secrets tmpfs on <scratch>/secrets",
        "writing the secret for /run/secrets/token",
        "mounting /proc",
        "mounting a tmpfs on /dev",
        "mounting /sys",
        "bind-mounting /etc/resolv.conf",
        "bind-mounting /etc/hosts",
        // The step's mounts, parents first (by depth), whatever the order
        // they were given in.
        "mounting a tmpfs on /scratch",
        "bind-mounting a secret on /run/secrets/token",
        "pivot_root",
        "setting the hostname",
        "creating the working directory /work",
        "creating the working directory /work/dir",
        "changing to the working directory /work/dir",
        "dropping capabilities",
        "switching to user \"app\"",
        "setting no_new_privs",
        "installing the seccomp filter",
    ];
    let positions: Vec<usize> = order.iter().map(|w| at(&descs, w)).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "out of order: {descs:#?}"
    );
    let cache = at(
        &descs,
        &format!("bind-mounting {} on /cache", f.path("cache").display()),
    );
    let data = at(&descs, "bind-mounting data on /data");
    let file = at(
        &descs,
        &format!(
            "bind-mounting {} on /opt/deep/file",
            f.path("host-file").display()
        ),
    );
    let (scratch, pivot) = (
        at(&descs, "mounting a tmpfs on /scratch"),
        at(&descs, "pivot_root"),
    );
    for depth1 in [cache, data, scratch] {
        assert!(at(&descs, "bind-mounting /etc/hosts") < depth1 && depth1 < file);
    }
    assert!(file < pivot);
    // Missing mount points are created first, the deep file's parents
    // included.
    let stub = at(
        &descs,
        "creating mount point <scratch>/rootfs/opt/deep/file",
    );
    assert!(at(&descs, "creating mount point <scratch>/rootfs/opt") < stub && stub < file);
    // Host network: no lo of its own, no network namespace.
    assert!(!descs.iter().any(|d| d == "bringing up lo"), "{descs:#?}");
    assert_eq!(built.flags & libc::CLONE_NEWNET, 0);
    assert_ne!(built.flags & libc::CLONE_NEWUSER, 0);
    // `sh` is looked up in the step's PATH.
    let candidates: Vec<_> = built
        .candidates
        .iter()
        .map(|c| c.to_str().unwrap())
        .collect();
    assert_eq!(candidates, ["/usr/bin/sh", "/bin/sh"]);
}

#[test]
fn read_only_binds_and_secrets_are_read_only_and_writable_binds_are_not() {
    let f = Fixture::new();
    let spec = process(NetworkMode::Host, SecurityMode::Sandbox);
    let (descs, built) = f.plan(SnapshotMode::Overlay.snapshotter(), &spec, &f.mounts(), "a");
    let bind = |want: &str| {
        let i = at(&descs, want);
        match &built.ops[i].1 {
            Op::Bind {
                readonly,
                recursive,
                ..
            } => (*readonly, *recursive),
            other => panic!("{want}: {other:?}"),
        }
    };
    let file = format!(
        "bind-mounting {} on /opt/deep/file",
        f.path("host-file").display()
    );
    let cache = format!("bind-mounting {} on /cache", f.path("cache").display());
    assert_eq!(bind(&file), (true, true));
    assert_eq!(bind(&cache), (false, true));
    assert_eq!(
        bind("bind-mounting a secret on /run/secrets/token"),
        (true, false)
    );
    assert_eq!(bind("bind-mounting data on /data"), (true, false));
    assert_eq!(bind("bind-mounting /etc/hosts"), (true, false));
    match &built.ops[at(&descs, "writing the secret for /run/secrets/token")].1 {
        Op::WriteFile {
            data,
            mode,
            uid,
            gid,
            ..
        } => assert_eq!(
            (data.as_slice(), *mode, *uid, *gid),
            (&b"hunter2"[..], 0o400, 1000, 1000)
        ),
        other => panic!("{other:?}"),
    }
    match &built.ops[at(&descs, "mounting a tmpfs on /scratch")].1 {
        Op::Mount { data, .. } => {
            assert_eq!(
                data.as_deref().unwrap().to_str().unwrap(),
                "mode=1777,size=4096"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn network_none_brings_up_lo_in_a_new_network_namespace() {
    let f = Fixture::new();
    let spec = process(NetworkMode::None, SecurityMode::Sandbox);
    let (descs, built) = f.plan(SnapshotMode::Overlay.snapshotter(), &spec, &[], "a");
    let lo = at(&descs, "bringing up lo");
    assert!(at(&descs, "setting the hostname") < lo && lo < at(&descs, "dropping capabilities"));
    assert_ne!(built.flags & libc::CLONE_NEWNET, 0);
}

#[test]
fn insecure_keeps_every_capability_and_installs_no_filter() {
    let f = Fixture::new();
    let sandbox = process(NetworkMode::Host, SecurityMode::Sandbox);
    let insecure = process(NetworkMode::Host, SecurityMode::Insecure);
    let (descs, built) = f.plan(SnapshotMode::Overlay.snapshotter(), &sandbox, &[], "a");
    let keep = |built: &BuiltinPlan, descs: &[String]| match &built.ops
        [at(descs, "dropping capabilities")]
    .1
    {
        Op::DropBounding { keep, .. } => *keep,
        other => panic!("{other:?}"),
    };
    assert_eq!(keep(&built, &descs), 0xa80425fb);
    let (descs, built) = f.plan(SnapshotMode::Overlay.snapshotter(), &insecure, &[], "b");
    assert_eq!(keep(&built, &descs), u64::MAX);
    for gone in ["setting no_new_privs", "installing the seccomp filter"] {
        assert!(!descs.iter().any(|d| d == gone), "{gone}: {descs:#?}");
    }
}

#[test]
fn copy_snapshots_bind_the_copy_and_views_need_no_mount() {
    let f = Fixture::new();
    let spec = process(NetworkMode::Host, SecurityMode::Sandbox);
    let (descs, built) = f.plan(SnapshotMode::Copy.snapshotter(), &spec, &f.mounts(), "a");
    assert_eq!(
        descs[2],
        "bind-mounting the rootfs copy on <scratch>/rootfs"
    );
    match &built.ops[2].1 {
        Op::Bind { src, readonly, .. } => {
            assert_eq!(
                Path::new(src.to_str().unwrap()),
                f.path("a-work").join("rootfs")
            );
            assert!(!readonly);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        !built
            .ops
            .iter()
            .any(|(_, op)| matches!(op, Op::Overlay { .. })),
        "{descs:#?}"
    );
    // The layer mount's view is a plain copy in the scratch directory.
    match &built.ops[at(&descs, "bind-mounting data on /data")].1 {
        Op::Bind { src, .. } => assert!(src.to_str().unwrap().ends_with("/mount-2/view/data")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_layer_directory_named_twice_is_one_lower() {
    let f = Fixture::new();
    let twice = LayerStack::new(vec![
        f.stack.layers()[0].clone(),
        f.stack.layers()[0].clone(),
    ]);
    let f = Fixture { stack: twice, ..f };
    let spec = process(NetworkMode::Host, SecurityMode::Sandbox);
    let (_, built) = f.plan(SnapshotMode::Overlay.snapshotter(), &spec, &[], "a");
    match &built.ops[2].1 {
        Op::Overlay { lowers, .. } => assert_eq!(lowers.len(), 1),
        other => panic!("{other:?}"),
    }
}
