//! The OCI runtimes (runc, crun) against the built-in runtime on the
//! busybox base: the same request must give the same layer and the same
//! view from inside. Needs root and the runtime binaries (skipped with a
//! message otherwise). The tests of this binary run one at a time, and
//! every run checks that nothing leaked (mounts, scratch and state
//! directories, cgroups). The scenarios every runtime shares are the
//! runtime suite (`runtime.rs`); these are the OCI runtimes' own: the
//! bundle, the runtime's errors, cgroups and leaks, and side-by-side
//! comparisons with the built-in runtime.

#[macro_use]
mod support;

use support::{is_root, sh, text, Env};

use kiln_executor::{
    diff, BuiltinRuntime, Mount, NetworkMode, OciRuntime, ProcessSpec, RunOutput, RunStep, Runtime,
    RuntimeError, SecurityMode, Snapshots,
};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One test at a time, so the leak checks see only their own runs.
static SERIAL: Mutex<()> = Mutex::new(());

/// The runtime, or `None` (with a message) when the test cannot run.
fn runtime(name: &str) -> Option<OciRuntime> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return None;
    }
    match OciRuntime::new(name) {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("skipped: {name} is not usable: {e}");
            None
        }
    }
}

/// Runs through an OCI runtime with the leak check after every run, and
/// side by side with the built-in runtime.
trait Checked {
    /// Runs `spec` with `mounts` through `rt` into a fresh upper named
    /// after `name`, then checks that nothing leaked.
    fn checked(
        &self,
        rt: &dyn Runtime,
        name: &str,
        spec: ProcessSpec,
        mounts: Vec<Mount>,
    ) -> (Result<RunOutput, RuntimeError>, PathBuf);

    /// Runs the same request through the built-in runtime and `rt`.
    fn both(
        &self,
        rt: &OciRuntime,
        name: &str,
        spec: ProcessSpec,
        mounts: Vec<Mount>,
    ) -> ((RunOutput, PathBuf), (RunOutput, PathBuf));
}

impl Checked for Env {
    fn checked(
        &self,
        rt: &dyn Runtime,
        name: &str,
        spec: ProcessSpec,
        mounts: Vec<Mount>,
    ) -> (Result<RunOutput, RuntimeError>, PathBuf) {
        let res = self.run_on(rt, name, spec, mounts);
        assert_no_leaks();
        res
    }

    fn both(
        &self,
        rt: &OciRuntime,
        name: &str,
        spec: ProcessSpec,
        mounts: Vec<Mount>,
    ) -> ((RunOutput, PathBuf), (RunOutput, PathBuf)) {
        let (b, bu) = self.checked(
            &BuiltinRuntime::default(),
            &format!("{name}-builtin"),
            spec.clone(),
            mounts.clone(),
        );
        let (o, ou) = self.checked(rt, &format!("{name}-oci"), spec, mounts);
        ((b.unwrap(), bu), (o.unwrap(), ou))
    }
}

/// No mount of a run in this process's namespace, and no scratch
/// directory, runc/crun state or cgroup named after one of this process's
/// runs (other processes, such as a concurrent test binary, have their own).
fn assert_no_leaks() {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.contains("kiln-run-") && !mountinfo.contains("cgroup-hide"),
        "leftover mounts:\n{mountinfo}"
    );
    let ours = format!("kiln-run-{}-", kiln_oci::process_tag());
    let tmp = std::env::temp_dir();
    let scratch: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&ours))
        .collect();
    assert!(scratch.is_empty(), "leftover scratch dirs: {scratch:?}");
    for state in ["/run/runc", "/run/crun"] {
        if let Ok(rd) = std::fs::read_dir(state) {
            let left: Vec<_> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&ours))
                .collect();
            assert!(left.is_empty(), "leftover state in {state}: {left:?}");
        }
    }
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        for ctl in rd.filter_map(|e| e.ok()) {
            let Ok(inner) = std::fs::read_dir(ctl.path()) else {
                continue;
            };
            let left: Vec<_> = inner
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&ours))
                .collect();
            assert!(
                left.is_empty(),
                "leftover cgroups in {}: {left:?}",
                ctl.path().display()
            );
        }
    }
}

/// The layer tar of `upper`, one line per entry: type, path, mode,
/// owner, size, link target (no times).
fn listing(upper: &Path) -> Vec<String> {
    let mut buf = Vec::new();
    diff(upper, &mut buf).unwrap();
    let mut ar = tar::Archive::new(&buf[..]);
    ar.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            format!(
                "{:?} {} {:o} {}:{} {} {}",
                h.entry_type(),
                e.path().unwrap().display(),
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.size().unwrap(),
                e.link_name()
                    .unwrap()
                    .map(|l| l.display().to_string())
                    .unwrap_or_default()
            )
        })
        .collect()
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = [0u8; 64];
    // SAFETY: valid C strings and buffer.
    let r = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), 64) };
    (r >= 0).then(|| buf[..r as usize].to_vec())
}

macro_rules! oci_tests {
    ($($name:ident),* $(,)?) => {
        mod runc {
            $(
                #[test]
                fn $name() {
                    let _serial = super::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(rt) = super::runtime("runc") {
                        assert!(!rt.is_crun());
                        super::$name(&rt);
                    }
                }
            )*
        }
        mod crun {
            $(
                #[test]
                fn $name() {
                    let _serial = super::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(rt) = super::runtime("crun") {
                        assert!(rt.is_crun());
                        super::$name(&rt);
                    }
                }
            )*
        }
    };
}

oci_tests!(
    same_layer_as_builtin,
    exit_codes_and_output,
    users_and_groups,
    network_modes,
    hosts_resolv_hostname_and_pid_namespace,
    insecure_mode_caps,
    runtime_errors_carry_its_messages,
    cgroups_are_removed,
);

/// runc puts the container in cgroups named after the run (removed
/// afterwards: `Env::run` checks); crun runs without a cgroup manager.
fn cgroups_are_removed(rt: &OciRuntime) {
    let env = Env::busybox("builtin");
    let (out, _) = env.checked(rt, "a", sh("cat /proc/self/cgroup"), Vec::new());
    let out = text(&out.unwrap());
    if rt.is_crun() {
        assert!(!out.contains("kiln-run-"), "{out}");
    } else {
        assert!(out.contains(":memory:/kiln-run-"), "{out}");
    }
}

fn same_layer_as_builtin(rt: &OciRuntime) {
    let env = Env::busybox("builtin");
    let script = "set -e; rm /etc/group; rm -rf /home; mkdir /home; echo new > /home/x; \
                  echo extra >> /etc/passwd; chmod 600 /etc/passwd; chmod 700 /root; \
                  mkdir -p /opt/a/b; echo hi > /opt/a/b/c; ln -s /opt/a /opt/link; \
                  chown 1000:1000 /opt/a; mkfifo /opt/fifo; echo done";
    let ((b, bu), (o, ou)) = env.both(rt, "layer", sh(script), Vec::new());
    assert_eq!(text(&b), "done\n");
    assert_eq!(text(&o), "done\n");
    assert_eq!((b.status, o.status), (0, 0));
    let (bl, ol) = (listing(&bu), listing(&ou));
    assert_eq!(bl, ol);
    // Sanity: the listing really holds the changes.
    let joined = bl.join("\n");
    for want in [
        "etc/.wh.group",
        "home/.wh..wh..opq",
        "home/x",
        "etc/passwd 600",
        "opt/a/b/c",
        "opt/link 777 0:0 0 /opt/a",
        "opt/a/ 755 1000:1000",
    ] {
        assert!(joined.contains(want), "{want} missing from\n{joined}");
    }
    // The replaced directory is opaque through the user xattr in both.
    assert_eq!(
        xattr(&ou.join("home"), "user.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(
        xattr(&bu.join("home"), "user.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    // A run doing nothing leaves only the copied-up /etc (and /dev, /proc
    // and /sys, which this base lacks) in both.
    let ((_, bu), (_, ou)) = env.both(rt, "true", sh("true"), Vec::new());
    assert_eq!(listing(&bu), listing(&ou));
    let names: Vec<_> = listing(&ou)
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap_or_default().to_string())
        .collect();
    assert_eq!(names, ["dev/", "etc/", "proc/", "sys/"]);
}

fn exit_codes_and_output(rt: &OciRuntime) {
    let env = Env::busybox("builtin");
    // stdout and stderr are both collected (runc copies them through
    // separate pipes, so their relative order is not kept).
    let (out, _) = env.checked(rt, "a", sh("echo out; echo err >&2; exit 7"), Vec::new());
    let out = out.unwrap();
    assert_eq!(out.status, 7);
    let mut lines: Vec<_> = text(&out).lines().map(str::to_string).collect();
    lines.sort();
    assert_eq!(lines, ["err", "out"]);
    // A killed process: 128 + the signal.
    let (out, _) = env.checked(
        rt,
        "b",
        sh("exec 2>/dev/null; sh -c 'kill -9 $$'; echo $?"),
        Vec::new(),
    );
    assert_eq!(text(&out.unwrap()), "137\n");
    let (out, _) = env.checked(rt, "c", sh("exit 0"), Vec::new());
    assert_eq!(out.unwrap().status, 0);
    // Long output keeps the tail, like the built-in runtime.
    let script = "i=0; while [ $i -lt 20000 ]; do echo line$i; i=$((i+1)); done";
    let ((b, _), (o, _)) = env.both(rt, "d", sh(script), Vec::new());
    assert_eq!(b.output, o.output);
    assert!(text(&o).ends_with("line19999\n"));
    assert_eq!(o.output.len(), kiln_executor::OUTPUT_LIMIT);
    // stdin is empty.
    let (out, _) = env.checked(rt, "e", sh("cat; echo eof"), Vec::new());
    assert_eq!(text(&out.unwrap()), "eof\n");
}

fn users_and_groups(rt: &OciRuntime) {
    let env = Env::busybox("builtin");
    let probe = "id -u; id -g; id -G; echo $HOME; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' \
                 /proc/self/status; touch /tmp/f-$(id -u); ls -ln /tmp | sed 1d | \
                 awk '{print $3\":\"$4\" \"$9}'";
    for (i, user) in [
        "",
        "app",
        "1000",
        "4321",
        "1234:5678",
        "app:nogroup",
        "nobody",
    ]
    .iter()
    .enumerate()
    {
        let mut spec = sh(probe);
        spec.user = user.to_string();
        let ((b, bu), (o, ou)) = env.both(rt, &format!("u{i}"), spec, Vec::new());
        assert_eq!(text(&b), text(&o), "user {user:?}");
        assert_eq!(listing(&bu), listing(&ou), "user {user:?}");
    }
    let mut spec = sh("id");
    spec.user = "app".into();
    let (o, _) = env.checked(rt, "app", spec, Vec::new());
    assert_eq!(
        text(&o.unwrap()),
        "uid=1000(app) gid=1000(app) groups=1000(app)\n"
    );
    let (o, _) = env.checked(rt, "root", sh("grep CapEff /proc/self/status"), Vec::new());
    assert_eq!(text(&o.unwrap()), "CapEff:\t00000000a80425fb\n");
    let mut spec = sh("true");
    spec.user = "nosuchuser".into();
    let err = env.checked(rt, "none", spec, Vec::new()).0.unwrap_err();
    assert!(matches!(err, RuntimeError::User(_)), "{err}");
}

fn network_modes(rt: &OciRuntime) {
    let env = Env::busybox("builtin");
    let mut spec = sh("ls /sys/class/net; cat /sys/class/net/lo/operstate; ping -c1 -W1 127.0.0.1 >/dev/null && echo ping");
    spec.network = NetworkMode::None;
    let ((b, _), (o, _)) = env.both(rt, "none", spec, Vec::new());
    assert_eq!(text(&o), "lo\nunknown\nping\n");
    assert_eq!(text(&b), text(&o));
    let (o, _) = env.checked(rt, "host", sh("ls /sys/class/net"), Vec::new());
    let host = text(&o.unwrap());
    assert!(host.lines().any(|l| l == "lo"), "{host}");
    assert!(host.lines().count() > 1, "{host}");
}

fn hosts_resolv_hostname_and_pid_namespace(rt: &OciRuntime) {
    let env = Env::busybox("builtin");
    let script = "hostname; cat /etc/hosts /etc/resolv.conf; echo pid=$$; \
                  { echo x >> /etc/hosts; } 2>/dev/null || echo hosts-ro; set -- /proc/[0-9]*; echo procs=$#; \
                  grep -E ' /(proc|sys|dev|dev/pts|dev/shm|dev/mqueue|etc/hosts|etc/resolv.conf) ' /proc/mounts | \
                  awk '{print $2, $3, substr($4, 1, 2)}' | sort";
    for (i, (host, net)) in [
        ("buildkitsandbox", NetworkMode::Host),
        ("myhost", NetworkMode::None),
    ]
    .into_iter()
    .enumerate()
    {
        let mut spec = sh(script);
        spec.hostname = host.into();
        spec.network = net;
        let ((b, bu), (o, ou)) = env.both(rt, &format!("h{i}"), spec, Vec::new());
        assert_eq!(text(&b), text(&o));
        let out = text(&o);
        assert!(
            out.starts_with(&format!("{host}\n127.0.0.1\tlocalhost {host}\n")),
            "{out}"
        );
        assert!(out.contains("nameserver"), "{out}");
        assert!(out.contains("pid=1\nhosts-ro\nprocs=1\n"), "{out}");
        assert!(out.contains("/sys sysfs ro"), "{out}");
        assert!(out.contains("/etc/hosts"), "{out}");
        assert_eq!(listing(&bu), listing(&ou));
    }
}

fn insecure_mode_caps(rt: &OciRuntime) {
    let env = Env::busybox("builtin");
    let script = "grep -E '^(CapBnd|CapEff|Seccomp|NoNewPrivs):' /proc/self/status; \
                  cat /proc/kcore 2>&1 | head -c 0; [ -s /proc/keys ] && echo keys || echo masked";
    let ((b, _), (o, _)) = env.both(rt, "sandbox", sh(script), Vec::new());
    let sandboxed = text(&o);
    assert!(
        sandboxed.contains("CapBnd:\t00000000a80425fb"),
        "{sandboxed}"
    );
    assert!(sandboxed.contains("Seccomp:\t2"), "{sandboxed}");
    assert!(sandboxed.contains("NoNewPrivs:\t1"), "{sandboxed}");
    assert!(sandboxed.ends_with("masked\n"), "{sandboxed}");
    let strip = |s: &str| s.lines().take(4).collect::<Vec<_>>().join("\n");
    assert_eq!(strip(&text(&b)), strip(&sandboxed));
    let mut spec = sh(script);
    spec.security = SecurityMode::Insecure;
    let ((b, _), (o, _)) = env.both(rt, "insecure", spec, Vec::new());
    let insecure = text(&o);
    assert!(insecure.contains("Seccomp:\t0"), "{insecure}");
    assert!(insecure.contains("NoNewPrivs:\t0"), "{insecure}");
    // Every capability this process has: the built-in runtime's user
    // namespace may give it more (a capability missing from the host's
    // bounding set), so compare with the host's set instead.
    let cap = |s: &str, name: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|h| u64::from_str_radix(h.trim(), 16).unwrap())
            .unwrap()
    };
    let host = std::fs::read_to_string("/proc/self/status").unwrap();
    assert_eq!(cap(&insecure, "CapBnd:\t"), cap(&host, "CapBnd:\t"));
    assert_eq!(cap(&insecure, "CapEff:\t"), cap(&host, "CapBnd:\t"));
    let builtin = cap(&text(&b), "CapBnd:\t");
    assert_eq!(
        builtin & cap(&host, "CapBnd:\t"),
        cap(&insecure, "CapBnd:\t")
    );
    assert!(cap(&insecure, "CapBnd:\t").count_ones() > 30, "{insecure}");
    // Mounting works with every capability and no seccomp.
    let mut spec = sh("mount -t tmpfs t /tmp && echo mounted");
    spec.security = SecurityMode::Insecure;
    let (o, _) = env.checked(rt, "mount", spec, Vec::new());
    assert_eq!(text(&o.unwrap()), "mounted\n");
    let (o, _) = env.checked(
        rt,
        "nomount",
        sh("mount -t tmpfs t /tmp 2>/dev/null || echo refused"),
        Vec::new(),
    );
    assert_eq!(text(&o.unwrap()), "refused\n");
}

fn runtime_errors_carry_its_messages(rt: &OciRuntime) {
    let env = Env::busybox("builtin");
    let mut spec = sh("true");
    spec.args = vec!["no-such-command".into()];
    let err = env.checked(rt, "a", spec, Vec::new()).0.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RuntimeError::Oci { .. }), "{msg}");
    assert!(msg.contains("no-such-command"), "{msg}");
    assert!(msg.contains("not found"), "{msg}");
    // A working directory that is a file: the runtime refuses it.
    let mut spec = sh("true");
    spec.cwd = "/etc/passwd".into();
    let err = env.checked(rt, "b", spec, Vec::new()).0.unwrap_err();
    let msg = err.to_string();
    assert!(msg.to_lowercase().contains("not a directory"), "{msg}");
    // A process that merely fails is not an error.
    let (out, _) = env.checked(rt, "c", sh("false"), Vec::new());
    assert_eq!(out.unwrap().status, 1);
}

#[test]
fn missing_runtime_is_named() {
    let err = OciRuntime::new("kiln-no-such-runtime").unwrap_err();
    assert!(err.to_string().contains("kiln-no-such-runtime"), "{err}");
}

/// 50 sequential runs of `/bin/true` through each runtime:
/// `cargo test -p kiln-executor --release --test oci_runtime -- --ignored --nocapture`.
#[test]
#[ignore]
fn timing_of_trivial_runs() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let env = Env::busybox("builtin");
    let mut runtimes: Vec<(String, Box<dyn Runtime>)> =
        vec![("builtin".into(), Box::new(BuiltinRuntime::default()))];
    for name in ["runc", "crun"] {
        match OciRuntime::new(name) {
            Ok(rt) => runtimes.push((name.into(), Box::new(rt))),
            Err(e) => eprintln!("{name}: {e}"),
        }
    }
    let mut spec = sh("");
    spec.args = vec!["/bin/true".into()];
    for (name, rt) in &runtimes {
        let n = 50;
        let mut dirs = Vec::new();
        for i in 0..n {
            let upper = env.tmp.path().join(format!("t-{name}-{i}-upper"));
            let work = env.tmp.path().join(format!("t-{name}-{i}-work"));
            std::fs::create_dir(&upper).unwrap();
            std::fs::create_dir(&work).unwrap();
            dirs.push((upper, work));
        }
        let start = std::time::Instant::now();
        for (upper, work) in &dirs {
            let step = RunStep {
                lower: &env.stack,
                upper,
                work,
                process: spec.clone(),
                mounts: Vec::new(),
                output: None,
                cancel: None,
            };
            let out = Snapshots::default().run(rt.as_ref(), &step).unwrap();
            assert_eq!(out.status, 0);
        }
        let ms = start.elapsed().as_secs_f64() * 1000.0 / n as f64;
        eprintln!("{name}: {ms:.1} ms/run ({n} runs of /bin/true)");
        assert_no_leaks();
    }
}

/// As non-root (run this binary as another user to exercise it), an
/// installed runtime is refused with a clear message.
#[test]
fn non_root_is_refused() {
    if is_root() {
        eprintln!("skipped: runs as non-root only");
        return;
    }
    for name in ["runc", "crun"] {
        if let Err(e) = OciRuntime::new(name) {
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("--runtime {name} needs root")) || msg.contains("not found"),
                "{msg}"
            );
        } else {
            panic!("{name} accepted as non-root");
        }
    }
}
