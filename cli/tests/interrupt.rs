//! Interrupted builds clean up after themselves (issue 15, item 3): SIGINT
//! and SIGTERM during a RUN step and during a big COPY make kiln say
//! `interrupted` and exit 130 or 143, with no process of the step left and
//! no temporary left in the store or in `$TMPDIR`; a second signal ends
//! kiln at once; after a `kill -9` the next `kiln images` removes what the
//! dead build left. Needs root (RUN sandboxes); elsewhere the tests say
//! why they are skipped. Every test prints its counts (trials, failures,
//! temporaries left).

mod common;

use common::{s, BUSYBOX};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long any wait may take before the test fails as hung (a guard, not
/// a timing assertion).
const HANG_GUARD: Duration = Duration::from_secs(120);

fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A store, a `$TMPDIR` and contexts in one temporary directory.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let env = Env {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        std::fs::create_dir(env.tmp()).expect("tmp dir");
        let status = env
            .command(&["load", "-i", BUSYBOX, "-t", "busybox:latest"])
            .stdout(Stdio::null())
            .status()
            .expect("kiln load");
        assert!(status.success(), "kiln load failed");
        env
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn tmp(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
        cmd.args(args)
            .env("KILN_ROOT", self.store())
            .env("TMPDIR", self.tmp())
            .env("DOCKER_CONFIG", self.dir.path().join("docker"))
            .env("XDG_CONFIG_HOME", self.dir.path().join("xdg"))
            .env_remove("KILN_CONFIG");
        cmd
    }

    /// A context directory holding `Dockerfile`.
    fn context(&self, name: &str, dockerfile: &str) -> PathBuf {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).expect("context");
        std::fs::write(dir.join("Dockerfile"), dockerfile).expect("Dockerfile");
        dir
    }

    /// Starts `kiln build` of `context`; its stderr lines arrive on the
    /// receiver (and are echoed).
    fn build(&self, context: &Path, stdin: Stdio) -> (Kiln, mpsc::Receiver<String>) {
        let mut child = self
            .command(&["build", "-t", "interrupted:latest", s(context)])
            .stdin(stdin)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kiln build starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("  kiln: {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        (Kiln(child), rx)
    }

    /// What is left of builds in the store and in `$TMPDIR`: staging
    /// directories, unpacking and snapshot directories, ingest files,
    /// `.tmp-` files, run scratch directories.
    fn temporaries(&self) -> Vec<PathBuf> {
        let store = self.store();
        let mut left = Vec::new();
        let list = |dir: &Path| -> Vec<(String, PathBuf)> {
            std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .flatten()
                        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                        .collect()
                })
                .unwrap_or_default()
        };
        for (name, path) in list(&store) {
            if name.starts_with(".tmp") || name.contains(".tmp-") {
                left.push(path);
            }
        }
        for (name, path) in list(&store.join("layers")) {
            let layer = name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
            if !layer {
                left.push(path);
            }
        }
        for dir in ["cache-mounts", "contexts", "http", "exports"] {
            for (name, path) in list(&store.join(dir)) {
                if name.contains(".tmp-") {
                    left.push(path);
                }
            }
        }
        for dir in [store.join("ingest"), store.join("runs"), self.tmp()] {
            left.extend(list(&dir).into_iter().map(|(_, p)| p));
        }
        left
    }
}

/// A running kiln, killed when a failing test drops it.
struct Kiln(Child);

impl Drop for Kiln {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl std::ops::Deref for Kiln {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Kiln {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// The pids of processes whose command line is exactly `words`.
fn processes(words: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = words
        .iter()
        .flat_map(|w| [w.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want))
        .collect()
}

/// Waits (polling) until `ready` holds; fails after the hang guard.
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < HANG_GUARD, "hung waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child` to end; kills it and fails after the hang guard.
fn wait_exit(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if start.elapsed() > HANG_GUARD {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kiln did not end");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, sig: i32) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: a plain syscall on our own child.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill");
}

/// The RUN step's process: `sleep <n>` with a number unique to the test.
fn sleeper(n: u32) -> (String, [String; 2]) {
    (
        format!("FROM busybox\nRUN sleep {n}\n"),
        ["sleep".to_string(), n.to_string()],
    )
}

/// The outcome of one interruption: kiln's exit, whether it said
/// `interrupted`, and what it left.
fn check_interrupted(
    env: &Env,
    status: ExitStatus,
    lines: &mpsc::Receiver<String>,
    code: i32,
) -> usize {
    let said: Vec<String> = lines.iter().collect();
    assert_eq!(status.code(), Some(code), "exit status {status}");
    assert_eq!(
        said.iter().filter(|l| *l == "interrupted").count(),
        1,
        "says `interrupted` once: {said:?}"
    );
    assert!(
        !said
            .iter()
            .any(|l| l.contains("panicked") || l.starts_with("kiln:")),
        "no error after the interruption: {said:?}"
    );
    let left = env.temporaries();
    assert!(left.is_empty(), "temporaries left: {left:?}");
    left.len()
}

fn skip() -> bool {
    if !is_root() {
        eprintln!("skipped: RUN steps need root here");
        return true;
    }
    false
}

#[test]
fn sigint_and_sigterm_during_a_run_stop_it_and_leave_nothing() {
    if skip() {
        return;
    }
    let mut trials = 0;
    let mut failures = 0;
    let mut left = 0;
    for (n, (sig, code)) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)]
        .into_iter()
        .enumerate()
    {
        let env = Env::new();
        let id = 731_900 + u32::try_from(n).expect("small");
        let (dockerfile, words) = sleeper(id);
        let ctx = env.context("ctx", &dockerfile);
        let words = [words[0].as_str(), words[1].as_str()];
        let (mut child, lines) = env.build(&ctx, Stdio::null());
        wait_until("the RUN step's sleep", || !processes(&words).is_empty());
        signal(&child, sig);
        let status = wait_exit(&mut child);
        trials += 1;
        left += check_interrupted(&env, status, &lines, code);
        let running = processes(&words);
        assert!(
            running.is_empty(),
            "the step's process is left: {running:?}"
        );
        if status.code() != Some(code) {
            failures += 1;
        }
    }
    println!("signals during RUN: trials {trials}, failures {failures}, temporaries left {left}");
}

#[test]
fn sigint_and_sigterm_during_a_big_copy_leave_nothing() {
    if skip() {
        return;
    }
    let mut trials = 0;
    let mut left = 0;
    for (sig, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let env = Env::new();
        let ctx = env.context("ctx", "FROM busybox\nCOPY files /files\n");
        // 2,000 files of 4 KiB (8 MiB): the COPY takes a while.
        let files = ctx.join("files");
        for d in 0..20 {
            let dir = files.join(format!("d{d}"));
            std::fs::create_dir_all(&dir).expect("dir");
            for f in 0..100 {
                std::fs::write(dir.join(format!("f{f}")), [b'x'; 4096]).expect("file");
            }
        }
        let (mut child, lines) = env.build(&ctx, Stdio::null());
        // Signal once kiln says the COPY started.
        let start = Instant::now();
        let mut seen = Vec::new();
        loop {
            let line = lines
                .recv_timeout(HANG_GUARD.saturating_sub(start.elapsed()))
                .expect("kiln reports the COPY step");
            let copying = line.contains("COPY files");
            seen.push(line);
            if copying {
                break;
            }
        }
        signal(&child, sig);
        let status = wait_exit(&mut child);
        trials += 1;
        left += check_interrupted(&env, status, &lines, code);
    }
    println!("signals during COPY: trials {trials}, failures 0, temporaries left {left}");
}

#[test]
fn a_second_signal_ends_kiln_at_once() {
    if skip() {
        return;
    }
    let env = Env::new();
    let ctx = env.context("ctx", "FROM busybox\n");
    // `-f -` with a stdin that never ends: after the first signal the
    // build still waits for its Dockerfile, so only the second ends kiln.
    let mut child = Kiln(
        env.command(&["build", "-f", "-", s(&ctx)])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kiln build starts"),
    );
    let stdin = child.stdin.take().expect("stdin");
    // kiln hears signals once its main thread blocks them (SIGINT is bit
    // 1 of the mask, SIGTERM bit 14).
    let status = format!("/proc/{}/status", child.id());
    wait_until("kiln's signal handling", || {
        std::fs::read_to_string(&status).is_ok_and(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("SigBlk:"))
                .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
                .is_some_and(|m| m & (1 << 1) != 0 && m & (1 << 14) != 0)
        })
    });
    // Two different signals: both are delivered, in either order.
    signal(&child, libc::SIGINT);
    signal(&child, libc::SIGTERM);
    let status = wait_exit(&mut child);
    drop(stdin);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert!(
        matches!(status.code(), Some(130 | 143)),
        "exit status {status}: {stderr}"
    );
    assert!(stderr.contains("interrupted"), "{stderr}");
    println!("second signal: trials 1, failures 0");
}

#[test]
fn after_kill_9_the_next_command_removes_the_debris() {
    if skip() {
        return;
    }
    let env = Env::new();
    let (dockerfile, words) = sleeper(731_977);
    let ctx = env.context("ctx", &dockerfile);
    let words = [words[0].as_str(), words[1].as_str()];
    let (mut child, _lines) = env.build(&ctx, Stdio::null());
    wait_until("the RUN step's sleep", || !processes(&words).is_empty());
    signal(&child, libc::SIGKILL);
    let status = wait_exit(&mut child);
    assert_eq!(status.code(), None, "killed: {status}");
    // The step dies with kiln (its init has PR_SET_PDEATHSIG).
    wait_until("the step's end", || processes(&words).is_empty());
    let before = env.temporaries();
    assert!(!before.is_empty(), "kill -9 left nothing to sweep");

    // Another kiln's temporaries are kept while it runs.
    let (mut live, lines) = env.build(&ctx, Stdio::null());
    wait_until("the second build's sleep", || !processes(&words).is_empty());
    let out = env.command(&["images"]).output().expect("kiln images");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kept = env.temporaries();
    let live_pid = live.id().to_string();
    assert!(
        kept.iter().all(|p| p.to_string_lossy().contains(&live_pid)),
        "only the live build's temporaries remain: {kept:?}"
    );
    assert!(
        kept.iter().any(|p| p.to_string_lossy().contains(&live_pid)),
        "the live build's temporaries are kept: {kept:?}"
    );
    signal(&live, libc::SIGINT);
    let status = wait_exit(&mut live);
    let left = check_interrupted(&env, status, &lines, 130);
    println!(
        "kill -9: trials 1, temporaries before {}, left {left}",
        before.len()
    );
}
