//! What the executor's sandbox tests share: the busybox base layer, a
//! `sh -c` process, root detection.
#![allow(dead_code)]

use kiln_executor::{unpack_blob, NetworkMode, ProcessSpec, RunOutput, SecurityMode};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

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
    }
}

/// A run's output as text.
pub fn text(out: &RunOutput) -> String {
    String::from_utf8_lossy(&out.output).into_owned()
}
