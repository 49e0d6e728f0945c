//! RUN steps of another architecture under QEMU user emulation (issue 17):
//! kiln finds a binfmt_misc handler, or registers Debian's
//! qemu-user-static with `--emulate` (as root, said once), and otherwise
//! fails before any step runs, naming the step, the platform and what to
//! install or run. The messages are tested on stand-in binfmt_misc
//! directories (`KILN_BINFMT_MISC`), so they hold whatever the host has
//! registered; the real runs need root, qemu-user-static and an arm64
//! busybox (`KILN_TEST_ARM64_BUSYBOX`, from Debian's busybox-static, which
//! `.ci/run` provides) and unregister what they registered; a rootless
//! kiln (the user `kilnrootless`) runs on the handler root registered.

mod common;

use common::{s, Env};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The tests that use the kernel's handlers run one at a time.
static HOST_BINFMT: Mutex<()> = Mutex::new(());

const ON_SCRATCH: &str = "FROM scratch\n\
    COPY busybox /bin/busybox\n\
    RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox uname -m > /arch\"]\n";

/// A stand-in binfmt_misc directory with these entries (`NAME`, text).
fn binfmt_dir(env: &Env, name: &str, entries: &[(&str, &str)]) -> PathBuf {
    let dir = env.path(name);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("status"), "enabled\n").expect("status");
    std::fs::write(dir.join("register"), "").expect("register");
    for (entry, text) in entries {
        std::fs::write(dir.join(entry), text).expect("entry");
    }
    dir
}

fn build_env(env: &Env, args: &[&str], binfmt: &Path) -> (bool, String) {
    let out = env.run_env(args, None, &[("KILN_BINFMT_MISC", s(binfmt))]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.success(), stderr)
}

/// Debian's handler as the kernel prints it, with `flags`.
fn aarch64_entry(flags: &str) -> String {
    format!(
        "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: {flags}\noffset 0\n\
         magic 7f454c460201010000000000000000000200b700\n\
         mask ffffffffffffff00fffffffffffffffffeffffff\n"
    )
}

#[test]
fn without_a_handler_the_build_fails_before_any_step_naming_what_to_do() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", ON_SCRATCH), ("busybox", "not run")]);
    // Another architecture's handler does not count.
    let riscv = "enabled\ninterpreter /usr/bin/qemu-riscv64-static\nflags: F\noffset 0\n\
        magic 7f454c460201010000000000000000000200f300\n\
        mask ffffffffffffff00fffffffffffffffffeffffff\n";
    let empty = binfmt_dir(&env, "none", &[("qemu-riscv64", riscv)]);
    let args = [
        "build",
        "--progress=plain",
        "--platform",
        "linux/arm64",
        s(&ctx),
    ];
    let (ok, stderr) = build_env(&env, &args, &empty);
    assert!(!ok, "{stderr}");
    let last = stderr
        .lines()
        .find(|l| l.starts_with("kiln: "))
        .unwrap_or_default();
    assert!(last.starts_with("kiln: Dockerfile:3:1: "), "{stderr}");
    assert!(
        last.contains("linux/arm64 programs need QEMU emulation")
            && last.contains("no handler for qemu-aarch64")
            && last.contains("kiln build --emulate")
            && last.contains("apt-get install"),
        "{stderr}"
    );
    // Nothing ran, not even the COPY before it.
    assert!(
        !stderr
            .lines()
            .any(|l| l.starts_with('#') && l.contains("COPY busybox")),
        "{stderr}"
    );
    // Nor the other platform's steps in a multi-platform build.
    let both = [
        "build",
        "--progress=plain",
        "--platform",
        "linux/amd64,linux/arm64",
        s(&ctx),
    ];
    let (ok, stderr) = build_env(&env, &both, &empty);
    assert!(!ok, "{stderr}");
    let last = stderr
        .lines()
        .find(|l| l.starts_with("kiln: "))
        .unwrap_or_default();
    assert!(
        last.starts_with("kiln: Dockerfile:3:1: [linux/arm64 stage-0 2] RUN")
            && last.contains("no handler for qemu-aarch64"),
        "{stderr}"
    );
    assert!(
        !stderr
            .lines()
            .any(|l| l.starts_with('#') && l.contains("COPY busybox")),
        "{stderr}"
    );

    // A disabled handler, or one without the F flag, does not work in
    // the build's root either.
    let disabled = aarch64_entry("PF").replace("enabled", "disabled");
    let dir = binfmt_dir(&env, "disabled", &[("qemu-aarch64", &disabled)]);
    let (ok, stderr) = build_env(&env, &args, &dir);
    assert!(
        !ok && stderr.contains("no handler for qemu-aarch64"),
        "{stderr}"
    );
    let dir = binfmt_dir(&env, "nofix", &[("qemu-aarch64", &aarch64_entry("P"))]);
    let (ok, stderr) = build_env(&env, &args, &dir);
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("Dockerfile:3:1: ")
            && stderr.contains("handler qemu-aarch64 lacks the F (fix-binary) flag"),
        "{stderr}"
    );

    // A platform QEMU is not known for.
    let (ok, stderr) = build_env(
        &env,
        &["build", "--platform", "linux/sparc64", s(&ctx)],
        &empty,
    );
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("Dockerfile:3:1: ")
            && stderr.contains("linux/sparc64 programs do not run on this")
            && stderr.contains("linux/arm64"),
        "{stderr}"
    );

    // A build for this machine's platform, or one without RUN, needs none.
    let native = env.context("native", &[("Dockerfile", "FROM busybox\nRUN true\n")]);
    let (ok, stderr) = build_env(&env, &["build", s(&native)], &empty);
    assert!(ok, "{stderr}");
    let copy_only = env.context(
        "copy",
        &[("Dockerfile", "FROM scratch\nCOPY f /f\n"), ("f", "x")],
    );
    let (ok, stderr) = build_env(
        &env,
        &["build", "--platform", "linux/arm64", s(&copy_only)],
        &empty,
    );
    assert!(ok, "{stderr}");
}

#[test]
fn emulate_registers_qemu_with_the_f_flag_and_says_so_once() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"true\"]\n\
                 RUN [\"/bin/busybox\", \"true\", \"again\"]\n",
            ),
            ("busybox", "not run"),
        ],
    );
    let dir = binfmt_dir(&env, "stand-in", &[]);
    let has_qemu = Path::new("/usr/bin/qemu-aarch64-static").exists();
    let (_, stderr) = build_env(
        &env,
        &[
            "build",
            "--progress=plain",
            "--emulate",
            "--platform",
            "linux/arm64",
            s(&ctx),
        ],
        &dir,
    );
    if !has_qemu {
        assert!(
            stderr.contains("--emulate: linux/arm64 needs the QEMU interpreter /usr/bin/qemu-aarch64-static, which is missing: run `apt-get install qemu-user-static`"),
            "{stderr}"
        );
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs qemu-user-static (.ci/run)"
        );
        eprintln!("skipped the registration line: qemu-user-static is not installed");
        return;
    }
    // The stand-in's register file got one line, as binfmt_misc takes it;
    // the build itself ran on whatever the kernel has.
    let line = std::fs::read_to_string(dir.join("register")).expect("register");
    let interpreter = if Path::new("/usr/libexec/qemu-binfmt/aarch64-binfmt-P").exists() {
        "/usr/libexec/qemu-binfmt/aarch64-binfmt-P:PF"
    } else {
        "/usr/bin/qemu-aarch64-static:F"
    };
    assert_eq!(
        line,
        format!(
            ":qemu-aarch64:M::\\x7f\\x45\\x4c\\x46\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\
             \\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:{interpreter}"
        )
    );
    let note = "NOTE: registered QEMU emulation for linux/arm64 (binfmt_misc qemu-aarch64)";
    assert_eq!(stderr.matches(note).count(), 1, "{stderr}");

    // The config file's `emulate = true` is the flag for every build, and
    // KILN_EMULATE=true too.
    let config = env.path("xdg/kiln/config.toml");
    std::fs::create_dir_all(config.parent().expect("parent")).expect("mkdir");
    let plain = [
        "build",
        "--progress=plain",
        "--platform",
        "linux/arm64",
        s(&ctx),
    ];
    std::fs::write(
        &config,
        "emulate = true
",
    )
    .expect("config");
    std::fs::write(dir.join("register"), "").expect("register");
    let (_, stderr) = build_env(&env, &plain, &dir);
    assert_eq!(stderr.matches(note).count(), 1, "{stderr}");
    assert_eq!(read(&dir.join("register")), line);
    std::fs::write(&config, "emulate = \"yes\"\n").expect("config");
    let (ok, stderr) = build_env(&env, &plain, &dir);
    assert!(
        !ok && stderr.contains("emulate = \"yes\": expected true or false"),
        "{stderr}"
    );
    std::fs::remove_file(&config).expect("rm config");
    std::fs::write(dir.join("register"), "").expect("register");
    let out = env.run_env(
        &plain,
        None,
        &[("KILN_BINFMT_MISC", s(&dir)), ("KILN_EMULATE", "true")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches(note).count(), 1, "{stderr}");
    assert_eq!(read(&dir.join("register")), line);
}

/// The arm64 busybox, or why the real runs cannot be done here.
fn arm64_busybox() -> Result<PathBuf, String> {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("registering binfmt_misc handlers needs root".into());
    }
    if !Path::new("/usr/bin/qemu-aarch64-static").exists() {
        return Err("qemu-user-static is not installed".into());
    }
    let path = std::env::var_os("KILN_TEST_ARM64_BUSYBOX")
        .map(PathBuf::from)
        .ok_or("KILN_TEST_ARM64_BUSYBOX (Debian's arm64 busybox-static /bin/busybox) is not set")?;
    if !path.is_file() {
        return Err(format!(
            "KILN_TEST_ARM64_BUSYBOX={}: no such file",
            path.display()
        ));
    }
    Ok(path)
}

/// Removes on drop the aarch64 handler (and the binfmt_misc mount) a test
/// made, so the host is left as it was.
struct Restore {
    entry_before: bool,
    mounted_before: bool,
}

const HANDLER: &str = "/proc/sys/fs/binfmt_misc/qemu-aarch64";

impl Restore {
    fn new() -> Restore {
        Restore {
            entry_before: Path::new(HANDLER).exists(),
            mounted_before: Path::new("/proc/sys/fs/binfmt_misc/register").exists(),
        }
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        if !self.entry_before && Path::new(HANDLER).exists() {
            let _ = std::fs::write(HANDLER, "-1");
        }
        if !self.mounted_before && Path::new("/proc/sys/fs/binfmt_misc/register").exists() {
            let _ = std::process::Command::new("umount")
                .arg("/proc/sys/fs/binfmt_misc")
                .status();
        }
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn blob(layout: &Path, digest: &str) -> serde_json::Value {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    let text = read(&layout.join("blobs/sha256").join(hex));
    serde_json::from_str(&text).expect("JSON blob")
}

#[test]
fn an_arm64_run_step_runs_under_qemu_in_every_runtime_and_beside_amd64() {
    let busybox = match arm64_busybox() {
        Ok(path) => path,
        Err(why) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs this test as root with qemu-user-static and KILN_TEST_ARM64_BUSYBOX (.ci/run): {why}"
            );
            eprintln!("skipped: {why}");
            return;
        }
    };
    let _host = HOST_BINFMT.lock().unwrap_or_else(|e| e.into_inner());
    let restore = Restore::new();
    let env = Env::new();
    // arm64 on busybox-static, amd64 on the busybox image; the chroot
    // isolation wants an /etc in the root.
    let dockerfile = "FROM busybox AS base-amd64\n\
        FROM scratch AS base-arm64\n\
        COPY busybox-arm64 /bin/busybox\n\
        COPY passwd /etc/passwd\n\
        FROM base-$TARGETARCH\n\
        ARG TARGETPLATFORM\n\
        RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox uname -m > /arch; echo $TARGETPLATFORM > /platform\"]\n";
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", dockerfile),
            ("passwd", "root:x:0:0::/:/bin/sh\n"),
        ],
    );
    std::fs::copy(&busybox, ctx.join("busybox-arm64")).expect("copy busybox");

    // Without a handler and without --emulate: the one line saying what to do.
    if !restore.entry_before {
        let stderr = env.fails(&["build", "--platform", "linux/arm64", s(&ctx)], None);
        assert!(
            stderr.contains("Dockerfile:7:1: ") && stderr.contains("kiln build --emulate"),
            "{stderr}"
        );
    }

    let out = env.path("arm64");
    let started = std::time::Instant::now();
    let (_, log) = env.ok(
        &[
            "build",
            "--progress=plain",
            "--emulate",
            "--platform",
            "linux/arm64",
            "-o",
            &format!("type=local,dest={}", s(&out)),
            s(&ctx),
        ],
        None,
    );
    eprintln!("arm64 build with emulation: {:?}", started.elapsed());
    assert_eq!(read(&out.join("arch")), "aarch64\n");
    assert_eq!(read(&out.join("platform")), "linux/arm64\n");
    let note = "NOTE: registered QEMU emulation for linux/arm64 (binfmt_misc qemu-aarch64";
    assert_eq!(
        log.matches(note).count(),
        usize::from(!restore.entry_before),
        "{log}"
    );
    let entry = read(Path::new(HANDLER));
    assert!(
        entry.starts_with("enabled\n")
            && entry.contains("flags: ")
            && entry
                .lines()
                .any(|l| l.starts_with("flags: ") && l.contains('F')),
        "{entry}"
    );

    // Every runtime and isolation: the F flag makes the kernel hold the
    // interpreter, whatever root and mount namespace the step has.
    for extra in [
        ["--runtime", "runc"],
        ["--runtime", "crun"],
        ["--isolation", "chroot"],
    ] {
        let out = env.path(&format!("arm64-{}", extra[1]));
        let mut args = vec![
            "build",
            "--progress=plain",
            "--no-cache",
            "--platform",
            "linux/arm64",
        ];
        args.extend_from_slice(&extra);
        let dest = format!("type=local,dest={}", s(&out));
        args.extend_from_slice(&["-o", &dest, s(&ctx)]);
        let (_, log) = env.ok(&args, None);
        assert!(!log.contains("NOTE: registered"), "{log}");
        assert_eq!(read(&out.join("arch")), "aarch64\n", "{extra:?}");
    }

    // Both platforms in one build: an index of two images, each RUN saw
    // its own machine.
    let local = env.path("both");
    let layout = env.path("layout");
    let started = std::time::Instant::now();
    env.ok(
        &[
            "build",
            "--no-cache",
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &format!("type=local,dest={}", s(&local)),
            "-o",
            &format!("type=oci,dest={},tar=false", s(&layout)),
            s(&ctx),
        ],
        None,
    );
    eprintln!("amd64 + arm64 build: {:?}", started.elapsed());
    assert_eq!(read(&local.join("linux_amd64/arch")), "x86_64\n");
    assert_eq!(read(&local.join("linux_arm64/arch")), "aarch64\n");
    assert_eq!(read(&local.join("linux_arm64/platform")), "linux/arm64\n");
    let top: serde_json::Value =
        serde_json::from_str(&read(&layout.join("index.json"))).expect("index.json");
    let mut index = top;
    // The layout's index.json may name the image index, or be it.
    while index["manifests"].as_array().is_some_and(|m| m.len() == 1)
        && index["manifests"][0]["mediaType"]
            .as_str()
            .is_some_and(|t| t.contains("index"))
    {
        let digest = index["manifests"][0]["digest"]
            .as_str()
            .expect("digest")
            .to_string();
        index = blob(&layout, &digest);
    }
    let platforms: Vec<String> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap_or(""),
                m["platform"]["architecture"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"], "{index}");
    for m in index["manifests"].as_array().expect("manifests") {
        let manifest = blob(&layout, m["digest"].as_str().expect("digest"));
        let config = blob(
            &layout,
            manifest["config"]["digest"].as_str().expect("config"),
        );
        assert_eq!(
            config["architecture"], m["platform"]["architecture"],
            "{config}"
        );
    }

    // A rootless kiln cannot register, but runs on the handler the host has.
    match rootless_user() {
        Some((uid, gid)) => {
            let arch = rootless_arm64_run(&busybox, uid, gid);
            assert_eq!(arch, "aarch64\n");
        }
        None => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI makes the user {ROOTLESS}"
            );
            eprintln!("skipped the rootless run: no user {ROOTLESS} with /etc/subuid entries");
        }
    }
    drop(restore);
}

const ROOTLESS: &str = "kilnrootless";

/// (uid, gid) of [`ROOTLESS`] when it exists with subordinate ids.
fn rootless_user() -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = std::process::Command::new("id")
            .args([flag, ROOTLESS])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    let subuid = std::fs::read_to_string("/etc/subuid").ok()?;
    if !subuid
        .lines()
        .any(|l| l.starts_with(&format!("{ROOTLESS}:")))
    {
        return None;
    }
    Some((id("-u")?, id("-g")?))
}

/// Builds an arm64 `uname -m` step as [`ROOTLESS`] on a copy of kiln;
/// returns what the step wrote.
fn rootless_arm64_run(busybox: &Path, uid: u32, gid: u32) -> String {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let bin = dir.join("kiln");
    std::fs::copy(env!("CARGO_BIN_EXE_kiln"), &bin).expect("copy kiln");
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(ctx.join("etc")).expect("mkdir");
    std::fs::write(
        ctx.join("Dockerfile"),
        ON_SCRATCH.replace(
            "COPY busybox /bin/busybox\n",
            "COPY busybox /bin/busybox\nCOPY etc /etc\n",
        ),
    )
    .expect("write");
    std::fs::write(ctx.join("etc/passwd"), "root:x:0:0::/:/bin/sh\n").expect("write");
    std::fs::copy(busybox, ctx.join("busybox")).expect("copy busybox");
    for p in [
        dir,
        &bin,
        &ctx,
        &ctx.join("etc"),
        &ctx.join("etc/passwd"),
        &ctx.join("Dockerfile"),
        &ctx.join("busybox"),
    ] {
        std::os::unix::fs::chown(p, Some(uid), Some(gid)).expect("chown");
    }
    let out = dir.join("out");
    let run = std::process::Command::new("runuser")
        .args(["-u", ROOTLESS, "--"])
        .arg(&bin)
        .arg("--root")
        .arg(dir.join("store"))
        .args([
            "build",
            "--progress=plain",
            "--platform",
            "linux/arm64",
            "-o",
        ])
        .arg(format!("type=local,dest={}", s(&out)))
        .arg(&ctx)
        .env("HOME", dir)
        .env_remove("KILN_ROOT")
        .env_remove("XDG_DATA_HOME")
        .env("XDG_CONFIG_HOME", dir.join("xdg"))
        .output()
        .expect("runuser");
    assert!(
        run.status.success(),
        "rootless arm64 build failed:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    read(&out.join("arch"))
}
