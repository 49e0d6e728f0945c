//! An interrupted or killed `kiln build` leaves nothing of its RUN steps
//! behind, on every runtime: SIGINT or SIGTERM to kiln during a long RUN
//! kills every process of the step and removes the step's scratch
//! directory (and runc's cgroups) before kiln ends; after SIGKILL the
//! processes die with kiln and the next build removes the directory.
//! Needs root (runc and crun need it; the process checks read other
//! processes' environments); a missing runc or crun fails the test.

mod common;

use common::{s, Env};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The pids of live processes whose environment holds `marker` (zombies
/// have an empty one).
fn marked(marker: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == marker.as_bytes()))
        })
        .collect()
}

/// The `kiln-run-*` directories in `tmp`.
fn scratch_dirs(tmp: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(tmp)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("kiln-run-"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The cgroups named after `dir` (runc names a run's cgroups after its
/// scratch directory).
fn cgroups_of(dir: &Path) -> Vec<PathBuf> {
    let Some(id) = dir.file_name() else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .map(|rd| rd.flatten().map(|e| e.path().join(id)).collect())
        .unwrap_or_default();
    found.push(Path::new("/sys/fs/cgroup").join(id));
    found.retain(|p| p.is_dir());
    found
}

/// Polls `ready` every 50 ms, for at most `secs` seconds; whether it held.
fn wait_for(secs: u64, mut ready: impl FnMut() -> bool) -> bool {
    for _ in 0..secs * 20 {
        if ready() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    ready()
}

/// Starts `kiln build` of `ctx` on `runtime` with `TMPDIR=tmp`.
fn start(env: &Env, runtime: &str, tmp: &Path, ctx: &Path) -> Child {
    let mut args = vec!["build", "--no-cache", "--progress=plain"];
    if runtime != "builtin" {
        args.extend(["--runtime", runtime]);
    }
    args.push(s(ctx));
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(&args)
        .env("KILN_ROOT", env.path("store"))
        .env("TMPDIR", tmp)
        .env_remove("KILN_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kiln runs")
}

/// One interruption of a build on `runtime` with `signal`.
fn interrupt(env: &Env, runtime: &str, signal: libc::c_int) {
    let what = format!("{runtime}, signal {signal}");
    let marker = format!(
        "KILN_STEP_MARK=kiln-interrupt-{}-{runtime}-{signal}",
        std::process::id()
    );
    let tmp = env.path(&format!("tmp-{runtime}-{signal}"));
    std::fs::create_dir(&tmp).unwrap();
    let (key, value) = marker.split_once('=').unwrap();
    let dockerfile =
        format!("FROM busybox\nENV {key}={value}\nRUN sh -c 'sleep 1000 & sleep 1001 & wait'\n");
    let ctx = env.context(
        &format!("ctx-{runtime}-{signal}"),
        &[("Dockerfile", &dockerfile)],
    );
    let mut kiln = start(env, runtime, &tmp, &ctx);
    // Both sleeps and their shell.
    let started = wait_for(120, || marked(&marker).len() >= 3);
    if !started {
        let _ = kiln.kill();
        let out = kiln.wait_with_output().unwrap();
        panic!(
            "{what}: the step did not start:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dirs = scratch_dirs(&tmp);
    assert_eq!(dirs.len(), 1, "{what}: {dirs:?}");
    // SAFETY: a signal to our own child.
    assert_eq!(unsafe { libc::kill(kiln.id() as libc::pid_t, signal) }, 0);
    let out = kiln.wait_with_output().unwrap();
    assert!(!out.status.success(), "{what}: kiln succeeded");
    if signal == libc::SIGKILL {
        // The steps die with kiln, through the runtime's parent-death
        // signal: not at the same instant.
        assert!(
            wait_for(30, || marked(&marker).is_empty()),
            "{what}: step processes survive: {:?}",
            marked(&marker)
        );
        assert_eq!(scratch_dirs(&tmp), dirs, "{what}");
        // The next build removes what the killed one left.
        let after = env.context(
            &format!("after-{runtime}-{signal}"),
            &[("Dockerfile", "FROM busybox\nRUN true\n")],
        );
        let next = start(env, runtime, &tmp, &after)
            .wait_with_output()
            .unwrap();
        assert!(
            next.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&next.stderr)
        );
    } else {
        // Gone before kiln ended.
        assert_eq!(
            marked(&marker),
            Vec::<u32>::new(),
            "{what}: step processes survive"
        );
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(signal), "{what}");
    }
    assert_eq!(scratch_dirs(&tmp), Vec::<PathBuf>::new(), "{what}");
    assert_eq!(cgroups_of(&dirs[0]), Vec::<PathBuf>::new(), "{what}");
}

fn interrupted_builds_leave_nothing_running(runtime: &str) {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let env = Env::new();
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGKILL] {
        interrupt(&env, runtime, signal);
    }
}

#[test]
fn interrupted_builds_leave_nothing_running_builtin() {
    interrupted_builds_leave_nothing_running("builtin");
}

#[test]
fn interrupted_builds_leave_nothing_running_runc() {
    interrupted_builds_leave_nothing_running("runc");
}

#[test]
fn interrupted_builds_leave_nothing_running_crun() {
    interrupted_builds_leave_nothing_running("crun");
}
