//! What the `kiln build` tests share: a store with busybox loaded, and
//! running the binary. What tests of other crates share too is in
//! kiln-test-support.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// `mode uid gid size name [link]` of every entry of a docker-archive's
/// layers, in order.
#[allow(unused_imports)]
pub use kiln_test_support::layer_listing as listing;
/// The busybox OCI layout (tag `latest`).
#[allow(unused_imports)]
pub use kiln_test_support::BUSYBOX_LAYOUT as BUSYBOX;

pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        let env = Env {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        env.ok(&["load", "-i", BUSYBOX, "-t", "busybox:latest"], None);
        env
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `program` with this environment's store, Docker config and kiln
    /// config (none from the host's).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("KILN_ROOT", self.path("store"))
            .env("DOCKER_CONFIG", self.path("docker"))
            .env("XDG_CONFIG_HOME", self.path("xdg"))
            .env_remove("KILN_CONFIG");
        cmd
    }

    pub fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        self.run_env(args, stdin, &[])
    }

    /// [`Env::run`] with extra environment variables.
    pub fn run_env(&self, args: &[&str], stdin: Option<&[u8]>, vars: &[(&str, &str)]) -> Output {
        let mut child = self
            .command(env!("CARGO_BIN_EXE_kiln"))
            .args(args)
            .envs(vars.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kiln runs");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input)
                .expect("stdin");
        }
        drop(child.stdin.take());
        child.wait_with_output().expect("kiln finishes")
    }

    pub fn ok(&self, args: &[&str], stdin: Option<&[u8]>) -> (String, String) {
        let out = self.run(args, stdin);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "kiln {} failed:\n{stderr}",
            args.join(" ")
        );
        (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
    }

    pub fn fails(&self, args: &[&str], stdin: Option<&[u8]>) -> String {
        let out = self.run(args, stdin);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(1),
            "kiln {} should fail:\n{stderr}",
            args.join(" ")
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr
    }

    /// A context directory with these files.
    pub fn context(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.path(name);
        for (path, content) in files {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, content).expect("write");
        }
        dir
    }

    pub fn images(&self) -> String {
        self.ok(&["images"], None).0
    }
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Copies the image `reference` from a plain-HTTP registry into an OCI
/// layout (skopeo) and unpacks it (umoci): the bundle directory, whose
/// `rootfs/` holds the image's files.
pub fn unpack_from_registry(env: &Env, reference: &str) -> PathBuf {
    let layout = env.path("layout");
    kiln_test_support::skopeo_ok(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{reference}"),
        &format!("oci:{}:app", s(&layout)),
    ]);
    let bundle = env.path("bundle");
    let out = Command::new("umoci")
        .args([
            "unpack",
            "--image",
            &format!("{}:app", s(&layout)),
            s(&bundle),
        ])
        .output()
        .expect("umoci runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    bundle
}
