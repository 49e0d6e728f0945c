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

/// Who builds: root with a test store, or the rootless CI user with a
/// store and temp dir it owns.
struct Builder {
    /// Root's store (busybox loaded); `None` when rootless.
    root_env: Option<Env>,
    /// A directory the builder owns.
    base: PathBuf,
    /// The rootless user's (uid, gid).
    user: Option<(u32, u32)>,
}

/// The user `.ci/run` creates with subordinate ids for rootless builds.
const ROOTLESS_USER: &str = "kilnrootless";

impl Builder {
    fn root() -> Builder {
        let env = Env::new();
        let base = env.dir.path().to_path_buf();
        Builder {
            root_env: Some(env),
            base,
            user: None,
        }
    }

    /// `None` (saying why) when the rootless user is missing outside CI.
    fn rootless(runtime: &str) -> Option<Builder> {
        let id = |flag: &str| -> Option<u32> {
            let out = Command::new("id")
                .args([flag, ROOTLESS_USER])
                .output()
                .ok()?;
            String::from_utf8_lossy(&out.stdout).trim().parse().ok()
        };
        let Some(user) = id("-u").zip(id("-g")) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must have {ROOTLESS_USER}"
            );
            eprintln!("skipped: no user {ROOTLESS_USER} (.ci/run creates it)");
            return None;
        };
        let base = std::env::temp_dir().join(format!(
            "kiln-sec-rootless-{}-{runtime}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir(&base).unwrap();
        std::os::unix::fs::chown(&base, Some(user.0), Some(user.1)).unwrap();
        let b = Builder {
            root_env: None,
            base,
            user: Some(user),
        };
        let load = b
            .kiln(
                &["load", "-i", common::BUSYBOX, "-t", "busybox:latest"],
                &b.base,
            )
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(
            load.status.success(),
            "{}",
            String::from_utf8_lossy(&load.stderr)
        );
        Some(b)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.base.join(name)
    }

    /// A build context holding `dockerfile`, readable by the builder.
    fn context(&self, name: &str, dockerfile: &str) -> PathBuf {
        let dir = self.path(name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
        dir
    }

    /// A temp dir the builder owns.
    fn tmp(&self, name: &str) -> PathBuf {
        let dir = self.path(name);
        std::fs::create_dir(&dir).unwrap();
        if let Some((uid, gid)) = self.user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        }
        dir
    }

    /// `kiln args` as the builder, with `TMPDIR=tmp`.
    fn kiln(&self, args: &[&str], tmp: &Path) -> Command {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
        cmd.arg("--root")
            .arg(self.path("store"))
            .args(args)
            .env("HOME", &self.base)
            .env("TMPDIR", tmp)
            .env_remove("KILN_ROOT")
            .env_remove("KILN_CONFIG")
            .env_remove("XDG_DATA_HOME")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if let Some((uid, gid)) = self.user {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    /// Starts `kiln build` of `ctx` on `runtime` with `TMPDIR=tmp`.
    fn start(&self, runtime: &str, tmp: &Path, ctx: &Path) -> Child {
        let mut args = vec!["build", "--no-cache", "--progress=plain"];
        if runtime != "builtin" {
            args.extend(["--runtime", runtime]);
        }
        args.push(s(ctx));
        self.kiln(&args, tmp)
            .stderr(Stdio::piped())
            .spawn()
            .expect("kiln runs")
    }
}

impl Drop for Builder {
    fn drop(&mut self) {
        if self.root_env.is_none() {
            let _ = std::fs::remove_dir_all(&self.base);
        }
    }
}

/// One interruption of a build on `runtime` with `signal`.
fn interrupt(env: &Builder, runtime: &str, signal: libc::c_int) {
    let who = if env.user.is_some() { "rootless " } else { "" };
    let what = format!("{who}{runtime}, signal {signal}");
    let marker = format!(
        "KILN_STEP_MARK=kiln-interrupt-{}-{runtime}-{signal}",
        std::process::id()
    );
    let tmp = env.tmp(&format!("tmp-{runtime}-{signal}"));
    let (key, value) = marker.split_once('=').unwrap();
    let dockerfile =
        format!("FROM busybox\nENV {key}={value}\nRUN sh -c 'sleep 1000 & sleep 1001 & wait'\n");
    let ctx = env.context(&format!("ctx-{runtime}-{signal}"), &dockerfile);
    // The runs' scratch directories live in the store (`runs/`), none in
    // $TMPDIR.
    let runs = env.path("store").join("runs");
    let scratch = || [scratch_dirs(&tmp), scratch_dirs(&runs)].concat();
    let mut kiln = env.start(runtime, &tmp, &ctx);
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
    let dirs = scratch();
    assert_eq!(dirs.len(), 1, "{what}: {dirs:?}");
    assert_eq!(scratch_dirs(&tmp), Vec::<PathBuf>::new(), "{what}");
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
        if env.user.is_none() {
            assert_eq!(scratch(), dirs, "{what}");
        }
        // (A rootless kiln's namespaced process gets SIGTERM when the
        // killed one dies, and cleans up itself.) The next build removes
        // what the killed one left.
        let after = env.context(
            &format!("after-{runtime}-{signal}"),
            "FROM busybox\nRUN true\n",
        );
        let next = env.start(runtime, &tmp, &after).wait_with_output().unwrap();
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
        // Ended by the signal (a rootless kiln's outer process passes the
        // status on as 128 + the signal).
        use std::os::unix::process::ExitStatusExt;
        assert!(
            out.status.signal() == Some(signal) || out.status.code() == Some(128 + signal),
            "{what}: {:?}",
            out.status
        );
    }
    assert_eq!(scratch(), Vec::<PathBuf>::new(), "{what}");
    assert_eq!(cgroups_of(&dirs[0]), Vec::<PathBuf>::new(), "{what}");
}

fn interrupted_builds_leave_nothing_running(runtime: &str) {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let env = Builder::root();
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGKILL] {
        interrupt(&env, runtime, signal);
    }
}

/// The same for a rootless kiln (the signals go to the process the user
/// started, outside the user namespace kiln builds in).
fn interrupted_rootless_builds_leave_nothing_running(runtime: &str) {
    if !is_root() {
        eprintln!("skipped: needs root (to start kiln as {ROOTLESS_USER})");
        return;
    }
    let Some(env) = Builder::rootless(runtime) else {
        return;
    };
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

#[test]
fn interrupted_rootless_builds_leave_nothing_running_builtin() {
    interrupted_rootless_builds_leave_nothing_running("builtin");
}

#[test]
fn interrupted_rootless_builds_leave_nothing_running_runc() {
    interrupted_rootless_builds_leave_nothing_running("runc");
}

#[test]
fn interrupted_rootless_builds_leave_nothing_running_crun() {
    interrupted_rootless_builds_leave_nothing_running("crun");
}
