//! `--shm-size`, `--ulimit` and `--cgroup-parent` (buildx's flags) reach
//! RUN steps on every runtime (the built-in sandbox, runc, crun) and in
//! the chroot isolation, take part in cache keys only when given, and bad
//! values are refused in one line naming the flag.

mod common;

use common::{s, Env};
use std::path::Path;
use std::process::Command;

/// Writes what the step sees to /r: `/dev/shm`'s size in KiB, the soft
/// and hard open-files limits, the soft process limit, the cgroups.
const DOCKERFILE: &str = "FROM busybox\n\
    RUN (df -k /dev/shm | tail -n 1 | awk '{print $2}'; ulimit -n; ulimit -Hn; ulimit -u; \
    cat /proc/self/cgroup) > /r\n";

fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// What a step saw: shm KiB, soft and hard nofile, soft nproc, cgroups.
struct Seen {
    shm_kib: String,
    nofile: String,
    nofile_hard: String,
    nproc: String,
    cgroups: Vec<String>,
}

fn build(env: &Env, ctx: &Path, name: &str, extra: &[&str]) -> (Seen, String) {
    let out = env.path(name);
    let dest = format!("type=local,dest={}", s(&out));
    let mut args = vec!["build", "--progress=plain", "-o", &dest];
    args.extend_from_slice(extra);
    args.push(s(ctx));
    let (_, log) = env.ok(&args, None);
    let text = std::fs::read_to_string(out.join("r")).expect("/r");
    let mut lines = text.lines().map(str::to_string);
    let mut next = || lines.next().unwrap_or_default();
    let seen = Seen {
        shm_kib: next(),
        nofile: next(),
        nofile_hard: next(),
        nproc: next(),
        cgroups: Vec::new(),
    };
    let cgroups = text.lines().skip(4).map(str::to_string).collect();
    (Seen { cgroups, ..seen }, log)
}

/// The mount points of the cgroup hierarchies (v1 and v2).
fn hierarchies() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let fstype = right.split(' ').next()?;
            let f: Vec<&str> = left.split(' ').collect();
            (matches!(fstype, "cgroup" | "cgroup2") && f.get(3) == Some(&"/"))
                .then(|| f.get(4).map(|m| m.to_string()))
                .flatten()
        })
        .collect()
}

/// Removes the test's parent cgroup (empty by then) in every hierarchy.
struct ParentCgroup(String);

impl Drop for ParentCgroup {
    fn drop(&mut self) {
        for h in hierarchies() {
            let _ = std::fs::remove_dir(Path::new(&h).join(&self.0));
        }
    }
}

/// kiln's own hard limit of open files (the test's, which kiln inherits).
fn own_nofile_hard() -> u64 {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: l is a valid rlimit to write to.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) }, 0);
    l.rlim_max
}

/// Whether this process may raise a hard limit (`CAP_SYS_RESOURCE`, which
/// some containers withhold even from root).
fn can_raise() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << 24) != 0)
}

/// A hard open-files limit to ask for: the host's ceiling (above kiln's
/// own on most hosts) where kiln may raise limits, else kiln's own.
fn nofile_hard() -> String {
    if can_raise() {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "1048576".into())
    } else {
        own_nofile_hard().to_string()
    }
}

#[test]
fn shm_size_ulimits_and_cgroup_parent_reach_run_steps_on_every_runtime() {
    if !is_root() {
        eprintln!("skipped: raising limits and creating cgroups need root");
        return;
    }
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    let parent = format!("kiln-test-{}", std::process::id());
    let _cleanup = ParentCgroup(parent.clone());
    let hard = nofile_hard();
    let nofile = format!("nofile=2048:{hard}");
    let cgroup_parent = format!("/{parent}");
    for runtime in ["builtin", "runc", "crun"] {
        if runtime != "builtin" && !have(runtime) {
            // .ci/run installs both.
            assert!(std::env::var_os("CI").is_none(), "CI must have {runtime}");
            eprintln!("{runtime} is not installed: not tested");
            continue;
        }
        let (seen, _) = build(
            &env,
            &ctx,
            runtime,
            &[
                "--no-cache",
                "--runtime",
                runtime,
                "--shm-size",
                "96m",
                "--ulimit",
                &nofile,
                "--ulimit",
                "nproc=1000:2000",
                "--cgroup-parent",
                &cgroup_parent,
            ],
        );
        assert_eq!(seen.shm_kib, "98304", "{runtime}: /dev/shm");
        assert_eq!(seen.nofile, "2048", "{runtime}: ulimit -n");
        assert_eq!(seen.nofile_hard, hard, "{runtime}: ulimit -Hn");
        assert_eq!(seen.nproc, "1000", "{runtime}: ulimit -u");
        // Every hierarchy (v1 controllers, and the unified one on a hybrid
        // or v2 host) puts the step under the parent.
        let under = format!(":/{parent}/");
        assert!(!seen.cgroups.is_empty(), "{runtime}");
        for line in &seen.cgroups {
            assert!(
                line.contains(&under),
                "{runtime}: {line}\n{:#?}",
                seen.cgroups
            );
        }
        // The step's own cgroup is gone after it (runc removes its own).
        for h in hierarchies() {
            let dir = Path::new(&h).join(&parent);
            let left: Vec<_> = std::fs::read_dir(&dir)
                .map(|d| {
                    d.flatten()
                        .filter(|e| e.path().is_dir())
                        .map(|e| e.file_name())
                        .collect()
                })
                .unwrap_or_default();
            assert!(
                left.is_empty(),
                "{runtime}: {} holds {left:?}",
                dir.display()
            );
        }
    }
}

#[test]
fn chroot_isolation_applies_ulimits_and_cgroup_parent_and_says_what_shm_size_does() {
    if !is_root() {
        eprintln!("skipped: the chroot isolation needs root");
        return;
    }
    let env = Env::new();
    // No /proc in the chroot isolation: the cgroup is looked at from here
    // while the step sleeps.
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN (ulimit -n; ulimit -Hn; ulimit -u) > /r && sleep 3\n",
        )],
    );
    let parent = format!("kiln-test-chroot-{}", std::process::id());
    let _cleanup = ParentCgroup(parent.clone());
    let hard = nofile_hard();
    let out = env.path("out");
    let dest = format!("type=local,dest={}", s(&out));
    let nofile = format!("nofile=512:{hard}");
    let child = env
        .command(env!("CARGO_BIN_EXE_kiln"))
        .args([
            "build",
            "--progress=plain",
            "-o",
            &dest,
            "--isolation",
            "chroot",
            "--ulimit",
            &nofile,
            "--ulimit",
            "nproc=700",
            "--shm-size",
            "96m",
            "--cgroup-parent",
            &parent,
            s(&ctx),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kiln runs");
    // The sleeping step is in <parent>/kiln-* in every hierarchy.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut seen = Vec::new();
    while seen.len() < hierarchies().len() && std::time::Instant::now() < deadline {
        seen.clear();
        for h in hierarchies() {
            let held = std::fs::read_dir(Path::new(&h).join(&parent))
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("kiln-"))
                .any(|e| {
                    std::fs::read_to_string(e.path().join("cgroup.procs"))
                        .is_ok_and(|p| !p.trim().is_empty())
                });
            if held {
                seen.push(h);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let done = child.wait_with_output().expect("kiln finishes");
    let log = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{log}");
    assert_eq!(seen, hierarchies(), "the step was not in every hierarchy");
    let r = std::fs::read_to_string(out.join("r")).expect("/r");
    assert_eq!(r.lines().collect::<Vec<_>>(), ["512", hard.as_str(), "700"]);
    assert!(
        log.contains("/dev/shm is a directory of the rootfs, without a size limit"),
        "{log}"
    );
    for h in hierarchies() {
        let left = std::fs::read_dir(Path::new(&h).join(&parent))
            .map(|d| d.flatten().filter(|e| e.path().is_dir()).count())
            .unwrap_or(0);
        assert_eq!(left, 0, "{h}: the step's cgroup stayed");
    }
}

#[test]
fn raising_a_hard_limit_without_the_capability_says_so() {
    if !is_root() || can_raise() {
        eprintln!("skipped: kiln may raise hard limits here (or runs no sandbox as a user)");
        return;
    }
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    let own = own_nofile_hard();
    let flag = format!("nofile=64:{}", own + 1);
    let err = env.fails(&["build", "--ulimit", &flag, s(&ctx)], None);
    assert!(
        err.contains(&format!(
            "--ulimit {flag}: setting the limit (the hard limit is above kiln's own, {own}, and raising it needs CAP_SYS_RESOURCE)"
        )),
        "{err}"
    );
}

#[test]
fn defaults_stay_and_the_values_are_part_of_the_cache_key() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN (ulimit -n; df -k /dev/shm | tail -n 1 | awk '{print $2}'; \
             cat /proc/sys/kernel/random/uuid) > /r\n",
        )],
    );
    let run = |name: &str, extra: &[&str]| -> Vec<String> {
        let out = env.path(name);
        let dest = format!("type=local,dest={}", s(&out));
        let mut args = vec!["build", "-o", &dest];
        args.extend_from_slice(extra);
        args.push(s(&ctx));
        env.ok(&args, None);
        std::fs::read_to_string(out.join("r"))
            .expect("/r")
            .lines()
            .map(str::to_string)
            .collect()
    };
    let plain = run("plain", &[]);
    // Docker's defaults: 1024 open files, a 64 MiB /dev/shm.
    assert_eq!(plain[..2], ["1024", "65536"], "{plain:?}");
    assert_eq!(run("again", &[]), plain, "the same flags hit the cache");
    // `--shm-size 0` is buildx's "not set".
    assert_eq!(run("zero", &["--shm-size", "0"]), plain);
    let limited = run("limited", &["--ulimit", "nofile=256:512"]);
    assert_eq!(limited[0], "256");
    assert_ne!(limited[2], plain[2], "another ulimit is another step");
    // A later --ulimit of the same name wins; flag order is not in the key.
    let both = run(
        "both",
        &["--ulimit", "nofile=1:2", "--ulimit", "nofile=256:512"],
    );
    assert_eq!(both, limited);
    let shm = run("shm", &["--shm-size", "32m"]);
    assert_eq!(shm[1], "32768");
    assert_ne!(shm[2], plain[2], "another shm size is another step");
}

#[test]
fn bad_values_are_refused_naming_the_flag() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    for (args, expected) in [
        (
            ["--shm-size", "12x"],
            "--shm-size: invalid size \"12x\": unknown unit",
        ),
        (["--shm-size", "big"], "--shm-size: invalid size \"big\""),
        (
            ["--ulimit", "files=10"],
            "--ulimit \"files=10\": unknown ulimit \"files\"",
        ),
        (
            ["--ulimit", "nofile=4096:1024"],
            "--ulimit \"nofile=4096:1024\": nofile: the soft limit 4096 is above the hard limit 1024",
        ),
        (
            ["--ulimit", "nofile"],
            "--ulimit \"nofile\": \"nofile\": expected NAME=SOFT[:HARD]",
        ),
        (
            ["--ulimit", "nofile=many"],
            "\"many\" is not a limit",
        ),
        (
            ["--cgroup-parent", "/a/../b"],
            "--cgroup-parent \"/a/../b\": \"..\" is not allowed",
        ),
        (
            ["--cgroup-parent", "machine.slice:kiln:"],
            "--cgroup-parent \"machine.slice:kiln:\": systemd's slice:prefix: form",
        ),
    ] {
        let mut all = vec!["build"];
        all.extend_from_slice(&args);
        all.push(s(&ctx));
        let err = env.fails(&all, None);
        assert!(err.contains(expected), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn a_small_open_files_limit_leaves_the_sandboxs_own_setup_alone() {
    // The limits are set late in the sandbox's setup, after its mounts, so
    // a step may run with fewer files than mounting needs (runc and crun
    // fail there, as with Docker).
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "FROM busybox\nRUN ulimit -n; ulimit -Hn\n")],
    );
    let (_, log) = env.ok(
        &[
            "build",
            "--progress=plain",
            "--runtime",
            "builtin",
            "--ulimit",
            "nofile=4",
            s(&ctx),
        ],
        None,
    );
    let printed: Vec<&str> = log
        .lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            (words.len() == 3 && words[0] == "#2" && words[1].parse::<f64>().is_ok())
                .then_some(words[2])
        })
        .collect();
    assert_eq!(printed, ["4", "4"], "{log}");
}
