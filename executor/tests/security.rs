//! Security of the RUN sandbox and of layer/ADD extraction: every test
//! tries an escape and checks that it fails (needs root for the sandbox
//! tests: real namespaces, overlayfs and processes; they are skipped
//! otherwise).
//!
//! Several sandbox tests also run a *probe*: this test binary itself,
//! bound into the sandbox with the host's libraries, re-run with
//! `KILN_SECURITY_PROBE` set so that [`probe`] makes raw syscalls (keyctl,
//! reboot, clone with namespace flags…) that busybox has no applet for.

#[macro_use]
mod support;

use support::{runtime_with, sh, text, Env};

use kiln_executor::{
    apply_file_actions, unpack, unpack_blob, CopyAction, Fallbacks, FileAction, LayerStack, Mount,
    NetworkMode, SecurityMode, Source,
};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// A name no other run of these tests uses.
fn unique(what: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "kiln-sec-{what}-{}-{}-{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A host directory that stands for "the host": removed on drop.
struct HostDir(PathBuf);

impl HostDir {
    fn new(what: &str) -> HostDir {
        let dir = std::env::temp_dir().join(unique(what));
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("hostfile"), "host secret\n").unwrap();
        HostDir(dir)
    }

    /// The names in it, sorted.
    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Only `hostfile` is there, unchanged and not hardlinked.
    fn assert_untouched(&self) {
        assert_eq!(self.names(), ["hostfile"], "{}", self.0.display());
        let f = self.0.join("hostfile");
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "host secret\n");
        assert_eq!(std::fs::metadata(&f).unwrap().nlink(), 1, "hardlinked");
    }
}

impl Drop for HostDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bind(source: &Path, target: &str, readonly: bool) -> Mount {
    Mount::Bind {
        source: source.to_path_buf(),
        target: target.into(),
        readonly,
    }
}

// ---------------------------------------------------------------- probe

/// The probe's environment variable: its value is the host pid to signal.
const PROBE_ENV: &str = "KILN_SECURITY_PROBE";

fn errno_name(e: i32) -> String {
    match e {
        libc::EPERM => "EPERM".into(),
        libc::ENOSYS => "ENOSYS".into(),
        libc::ESRCH => "ESRCH".into(),
        libc::EINVAL => "EINVAL".into(),
        libc::EBADF => "EBADF".into(),
        libc::EFAULT => "EFAULT".into(),
        libc::ENOENT => "ENOENT".into(),
        libc::EAFNOSUPPORT => "EAFNOSUPPORT".into(),
        e => format!("errno{e}"),
    }
}

/// `OK` or the errno's name.
fn outcome(rc: libc::c_long) -> String {
    if rc >= 0 {
        "OK".into()
    } else {
        errno_name(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

/// Not a test of its own: inside the sandbox (see the module docs), makes
/// raw syscalls and prints `name=OUTCOME` lines. Does nothing otherwise.
#[test]
fn probe() {
    let Ok(host_pid) = std::env::var(PROBE_ENV) else {
        return;
    };
    let host_pid: libc::pid_t = host_pid.parse().unwrap();
    let mut r: BTreeMap<&str, String> = BTreeMap::new();
    // SAFETY: raw syscalls with null or valid pointers; a clone that
    // succeeds exits at once in the child.
    unsafe {
        use libc::*;
        r.insert("unshare_user", outcome(syscall(SYS_unshare, CLONE_NEWUSER)));
        r.insert("unshare_mount", outcome(syscall(SYS_unshare, CLONE_NEWNS)));
        r.insert(
            "mount",
            outcome(mount(
                c"t".as_ptr(),
                c"/tmp".as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null(),
            ) as c_long),
        );
        r.insert(
            "umount",
            outcome(umount2(c"/proc".as_ptr(), MNT_DETACH) as c_long),
        );
        r.insert("setns", outcome(syscall(SYS_setns, -1, 0)));
        r.insert(
            "pivot_root",
            outcome(syscall(SYS_pivot_root, c"/".as_ptr(), c"/".as_ptr())),
        );
        r.insert("keyctl", outcome(syscall(SYS_keyctl, 0, -3, 0)));
        r.insert(
            "add_key",
            outcome(syscall(
                SYS_add_key,
                c"user".as_ptr(),
                c"k".as_ptr(),
                c"v".as_ptr(),
                1,
                -3,
            )),
        );
        // A bad magic: EINVAL if the call got through.
        r.insert("reboot", outcome(syscall(SYS_reboot, 0, 0, 0, 0)));
        r.insert("bpf", outcome(syscall(SYS_bpf, 0, 0, 0)));
        r.insert(
            "init_module",
            outcome(syscall(SYS_init_module, 0, 0, c"".as_ptr())),
        );
        r.insert(
            "swapon",
            outcome(syscall(SYS_swapon, c"/nonexistent".as_ptr(), 0)),
        );
        r.insert(
            "open_by_handle_at",
            outcome(syscall(SYS_open_by_handle_at, -1, 0, 0)),
        );
        r.insert(
            "perf_event_open",
            outcome(syscall(SYS_perf_event_open, 0, 0, -1, -1, 0)),
        );
        r.insert("clone3", outcome(syscall(SYS_clone3, 0, 0)));
        let rc = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
        if rc == 0 {
            _exit(0);
        }
        r.insert("clone_newuser", outcome(rc));
        let rc = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
        if rc == 0 {
            _exit(0);
        }
        if rc > 0 {
            waitpid(rc as pid_t, std::ptr::null_mut(), 0);
        }
        r.insert("clone_plain", outcome(rc));
        r.insert(
            "socket_vsock",
            outcome(socket(40, SOCK_STREAM, 0) as c_long),
        );
        r.insert(
            "socket_inet",
            outcome(socket(AF_INET, SOCK_STREAM, 0) as c_long),
        );
        r.insert(
            "personality_query",
            outcome(syscall(SYS_personality, 0xffff_ffffu32)),
        );
        r.insert(
            "personality_addr_no_randomize",
            outcome(syscall(SYS_personality, 0x0004_0000)),
        );
        r.insert(
            "fchmodat2",
            outcome(syscall(452, AT_FDCWD, c"/".as_ptr(), 0o755, 0)),
        );
        r.insert("chroot", outcome(chroot(c"/".as_ptr()) as c_long));
        r.insert("kill_host", outcome(kill(host_pid, 0) as c_long));
        r.insert("kill_host_term", outcome(kill(host_pid, SIGTERM) as c_long));
        r.insert(
            "sethostname",
            outcome(sethostname(c"x".as_ptr(), 1) as c_long),
        );
        // io_uring_params is 120 bytes; EFAULT-free with a zeroed one.
        let mut params = [0u8; 120];
        let rc = syscall(SYS_io_uring_setup, 1, params.as_mut_ptr());
        if rc >= 0 {
            close(rc as c_int);
        }
        r.insert("io_uring_setup", outcome(rc));
        for (key, path, kind, dev) in [
            ("mknod_kmsg", c"/tmp/probe-kmsg", S_IFCHR, makedev(1, 11)),
            ("mknod_mem", c"/tmp/probe-mem", S_IFCHR, makedev(1, 1)),
            ("mknod_loop", c"/tmp/probe-loop", S_IFBLK, makedev(7, 0)),
            ("mknod_fifo", c"/tmp/probe-fifo", S_IFIFO, 0),
        ] {
            r.insert(
                key,
                outcome(mknod(path.as_ptr(), kind | 0o600, dev) as c_long),
            );
        }
    }
    r.insert(
        "thread",
        match std::thread::spawn(|| 7).join() {
            Ok(7) => "OK".into(),
            _ => "FAILED".into(),
        },
    );
    for (k, v) in r {
        println!("probe:{k}={v}");
    }
}

/// Runs the probe in the sandbox (signalling `host_pid`); returns its
/// results.
fn run_probe(env: &Env, host_pid: u32) -> BTreeMap<String, String> {
    let exe = std::env::current_exe().unwrap();
    let mut mounts = vec![bind(&exe, "/probe", true)];
    for lib in ["/lib", "/lib64", "/usr/lib", "/usr/lib64"] {
        let p = Path::new(lib);
        if std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
            mounts.push(bind(p, lib, true));
        } else if let Ok(to) = std::fs::canonicalize(p) {
            // e.g. /lib -> usr/lib: the same content under the link's name.
            mounts.push(bind(&to, lib, true));
        }
    }
    let mut spec = sh("");
    spec.args = vec![
        "/probe".into(),
        "--exact".into(),
        "probe".into(),
        "--nocapture".into(),
        "--test-threads=1".into(),
    ];
    spec.env.push(format!("{PROBE_ENV}={host_pid}"));
    let (out, _) = env.run(spec, mounts);
    let out = text(&out);
    let results: BTreeMap<String, String> = out
        .lines()
        .filter_map(|l| l.split_once("probe:").map(|(_, r)| r))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert!(results.len() > 20, "probe output:\n{out}");
    results
}

/// A host process to look for: killed on drop.
struct HostSleep(std::process::Child);

impl HostSleep {
    fn new() -> HostSleep {
        HostSleep(
            std::process::Command::new("sleep")
                .arg("60")
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for HostSleep {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------- tests

on_every_runtime!(
    host_files_outside_the_mounts_are_invisible,
    host_processes_are_invisible_and_cannot_be_signalled,
    network_none_is_isolated_and_host_is_not,
    readonly_binds_cannot_be_written_or_remounted,
    seccomp_refuses_what_docker_refuses,
    busybox_workload_works_and_privileged_tools_do_not,
    proc_is_masked_and_readonly_and_rlimits_are_set,
    symlinks_in_layers_do_not_escape,
    stub_cleanup_does_not_follow_symlinks_planted_by_the_run,
    host_devices_are_out_of_reach,
);

/// Files of the host outside the mounts are out of sight: a marker in a
/// host temp dir and in `/root` is not found by name or content anywhere
/// in the sandbox, but is as soon as its directory is bind-mounted.
fn host_files_outside_the_mounts_are_invisible(rt: &'static str) {
    let env = Env::busybox(rt);
    let marker = unique("marker");
    let content = format!("{marker}-content");
    let tmp_dir = HostDir::new("files");
    std::fs::write(tmp_dir.0.join(&marker), &content).unwrap();
    let root_file = Path::new("/root").join(&marker);
    std::fs::write(&root_file, &content).unwrap();
    struct Rm(PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _rm = Rm(root_file);
    // The content is split in the script so that the script itself (in
    // /proc/*/cmdline, excluded anyway) does not hold it.
    let (a, b) = content.split_at(10);
    let script = format!(
        "find / -name '*{}*' 2>/dev/null; \
         find / \\( -path /proc -o -path /sys -o -path /dev \\) -prune -o -type f -print 2>/dev/null \
         | xargs grep -l \"{a}\"\"{b}\" 2>/dev/null; echo done",
        &marker[10..]
    );
    let out = env.sh_out(&script, Vec::new());
    assert_eq!(out, "done\n");
    // The same search finds the marker once the directory is mounted.
    let out = env.sh_out(&script, vec![bind(&tmp_dir.0, "/mnt/host", true)]);
    let expected = format!("/mnt/host/{marker}");
    assert_eq!(out.lines().filter(|l| *l == expected).count(), 2, "{out}");
}

/// Host processes cannot be seen or signalled: pid 1 is the command, only
/// the sandbox's processes are in /proc and `ps`, and `kill` of a host
/// pid fails (with ESRCH, from the probe).
fn host_processes_are_invisible_and_cannot_be_signalled(rt: &'static str) {
    let env = Env::busybox(rt);
    let host = HostSleep::new();
    let pid = host.0.id();
    let script = format!(
        "echo self=$$; kill -0 {pid} 2>/dev/null && echo alive || echo gone; \
         kill -TERM {pid} 2>/dev/null && echo killed; \
         ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' '; echo; ps -o pid,comm"
    );
    let out = env.sh_out(&script, Vec::new());
    eprintln!("{out}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("self=1"));
    assert_eq!(lines.next(), Some("gone"));
    let pids: Vec<u32> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(!pids.is_empty() && pids.iter().all(|p| *p < 10), "{pids:?}");
    assert!(!pids.contains(&pid));
    assert!(!out.contains("sleep"), "{out}");
    assert!(!out.contains("killed"), "{out}");
    let probe = run_probe(&env, pid);
    assert_eq!(probe["kill_host"], "ESRCH");
    assert_eq!(probe["kill_host_term"], "ESRCH");
    // The host process lives on.
    let mut host = host;
    assert!(
        host.0.try_wait().unwrap().is_none(),
        "host sleep was killed"
    );
}

/// A host TCP listener on 127.0.0.1 that answers one HTTP request per
/// connection with `reply`.
fn listener(reply: &'static str) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let _ = write!(
                c,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    port
}

/// `NetworkMode::None` has only `lo` and cannot reach a host listener on
/// 127.0.0.1; `Host` can. (busybox `nc`: this static busybox's `wget`
/// crashes on this host whatever the sandbox settings.)
fn network_none_is_isolated_and_host_is_not(rt: &'static str) {
    let env = Env::busybox(rt);
    let port = listener("hello-from-host");
    let script = format!(
        "ls /sys/class/net | tr '\\n' ' '; echo; \
         tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ' '; echo; \
         echo GET | nc -w 3 127.0.0.1 {port} 2>&1 || echo unreachable"
    );
    let mut spec = sh(&script);
    spec.network = NetworkMode::None;
    let out = text(&env.run(spec, Vec::new()).0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].trim(), "lo", "{out}");
    assert_eq!(lines[1].trim(), "lo", "{out}");
    assert!(
        out.contains("unreachable") && !out.contains("hello-from-host"),
        "{out}"
    );
    let out = env.sh_out(
        &format!("echo GET | nc -w 3 127.0.0.1 {port} | tail -n 1 || echo unreachable"),
        Vec::new(),
    );
    assert_eq!(out, "hello-from-host", "{out}");
}

/// A read-only bind mount stays read-only: writes fail, and so do remount
/// attempts (mount is denied); the host directory is unchanged. A
/// read-write bind of the same directory is writable (the test can fail).
fn readonly_binds_cannot_be_written_or_remounted(rt: &'static str) {
    let env = Env::busybox(rt);
    let host = HostDir::new("robind");
    // Errors go to a file shown after the markers: stdout and stderr are
    // separate pipes, so a shell error written in two pieces could
    // otherwise be split by a marker line.
    let script = "exec 2>/tmp/errors; \
                  echo x > /ro/new || echo write-failed; \
                  echo y >> /ro/hostfile || echo append-failed; \
                  rm -f /ro/hostfile || echo rm-failed; \
                  mount -o remount,rw /ro || echo remount-failed; \
                  mount -o remount,rw,bind /ro || echo bind-remount-failed; \
                  umount /ro || echo umount-failed; \
                  echo z > /ro/new2 || echo write2-failed; \
                  cat /tmp/errors";
    let out = env.sh_out(script, vec![bind(&host.0, "/ro", true)]);
    eprintln!("{out}");
    for what in [
        "write-failed",
        "append-failed",
        "rm-failed",
        "remount-failed",
        "bind-remount-failed",
        "umount-failed",
        "write2-failed",
    ] {
        assert!(out.lines().any(|l| l == what), "{what}: {out}");
    }
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(
        out.to_lowercase().contains("permission denied") || out.contains("Operation not permitted"),
        "{out}"
    );
    host.assert_untouched();
    let out = env.sh_out(
        "echo x > /rw/new && echo wrote",
        vec![bind(&host.0, "/rw", false)],
    );
    assert_eq!(out, "wrote\n");
    assert_eq!(host.names(), ["hostfile", "new"]);
}

/// Docker's seccomp profile and capabilities, seen from raw syscalls.
fn seccomp_refuses_what_docker_refuses(rt: &'static str) {
    let env = Env::busybox(rt);
    let host = HostSleep::new();
    let r = run_probe(&env, host.0.id());
    eprintln!("{r:#?}");
    let expect = [
        ("unshare_user", "EPERM"),
        ("unshare_mount", "EPERM"),
        ("mount", "EPERM"),
        ("umount", "EPERM"),
        ("setns", "EPERM"),
        ("pivot_root", "EPERM"),
        ("keyctl", "EPERM"),
        ("add_key", "EPERM"),
        ("reboot", "EPERM"),
        ("bpf", "EPERM"),
        ("init_module", "EPERM"),
        ("swapon", "EPERM"),
        ("open_by_handle_at", "EPERM"),
        ("perf_event_open", "EPERM"),
        ("clone3", "ENOSYS"),
        ("clone_newuser", "EPERM"),
        ("clone_plain", "OK"),
        ("socket_vsock", "EPERM"),
        ("socket_inet", "OK"),
        ("personality_query", "OK"),
        ("personality_addr_no_randomize", "EPERM"),
        ("fchmodat2", "ENOSYS"),
        ("chroot", "OK"),
        ("sethostname", "EPERM"),
        ("thread", "OK"),
        ("io_uring_setup", "EPERM"),
        ("mknod_kmsg", "EPERM"),
        ("mknod_mem", "EPERM"),
        ("mknod_loop", "EPERM"),
        ("mknod_fifo", "OK"),
    ];
    for (k, v) in expect {
        let got = r.get(k).map(String::as_str);
        // crun 1.8's libseccomp fails a syscall newer than it knows with
        // the default errno: refused all the same.
        if rt == "crun" && k == "fchmodat2" && got == Some("EPERM") {
            continue;
        }
        // The built-in runtime answers a device mknod with a placeholder
        // file (see device_nodes_are_placeholders_inside_the_root).
        let v = if rt == "builtin" && k.starts_with("mknod_") {
            "OK"
        } else {
            v
        };
        assert_eq!(got, Some(v), "{rt}: {k}");
    }
}

/// The same refusals with busybox, the capabilities Docker keeps, and an
/// ordinary workload.
fn busybox_workload_works_and_privileged_tools_do_not(rt: &'static str) {
    let env = Env::busybox(rt);
    let script = "unshare -U true 2>/dev/null && echo unshare-ok || echo unshare-denied; \
                  unshare -m true 2>/dev/null && echo unshare-m-ok || echo unshare-m-denied; \
                  mkdir -p /mnt/t; mount -t tmpfs t /mnt/t 2>/dev/null && echo mount-ok || echo mount-denied; \
                  swapoff -a 2>/dev/null; sysctl -w kernel.hostname=x >/dev/null 2>&1 && echo sysctl-ok || echo sysctl-denied; \
                  linux32 true && echo linux32-ok; \
                  touch /f && chown 5:5 /f && stat -c %u:%g /f; \
                  mknod /p p && mkfifo /q && ls -l /p /q | cut -c1; \
                  printf 'b\\na\\nc\\n' | sort | tr '\\n' ' '; echo; \
                  mkdir -p /w/d && echo hi > /w/d/f && tar -C /w -cf /w.tar d && mkdir /x && tar -C /x -xf /w.tar && cat /x/d/f; \
                  find /x -type f | wc -l | tr -d ' '; \
                  wget -h 2>&1 | grep -q 'Usage: wget' && echo wget-ok; \
                  date +%Y >/dev/null && echo date-ok; \
                  seq 1 1000 | awk '{s+=$1} END {print s}'; \
                  (echo sub | cat) | sed s/sub/pipe/";
    let out = env.sh_out(script, Vec::new());
    eprintln!("{out}");
    let expected = "unshare-denied\nunshare-m-denied\nmount-denied\nsysctl-denied\nlinux32-ok\n\
                    5:5\np\np\na b c \nhi\n1\nwget-ok\ndate-ok\n500500\npipe\n";
    assert_eq!(out, expected);
}

/// No host device is reachable: a step can make no char or block device
/// (`mknod c 1 11` then a write is how a step wrote to the host's kernel
/// log through crun; the built-in runtime answers it with a placeholder,
/// a plain file), cannot open device nodes a layer brings (an ADDed tar
/// can hold them), and `/dev` holds only the usual nodes.
fn host_devices_are_out_of_reach(rt: &'static str) {
    let mut env = Env::busybox(rt);
    let devs = env.tmp.path().join("devs");
    std::fs::create_dir(&devs).unwrap();
    for (name, kind, dev) in [
        ("kmsg", libc::S_IFCHR, libc::makedev(1, 11)),
        ("mem", libc::S_IFCHR, libc::makedev(1, 1)),
        ("null", libc::S_IFCHR, libc::makedev(1, 3)),
        ("loop0", libc::S_IFBLK, libc::makedev(7, 0)),
    ] {
        let path = std::ffi::CString::new(devs.join(name).as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid path.
        assert_eq!(unsafe { libc::mknod(path.as_ptr(), kind | 0o666, dev) }, 0);
    }
    std::fs::set_permissions(&devs, std::fs::Permissions::from_mode(0o755)).unwrap();
    let layer = env.tmp.path().join("layer");
    std::fs::create_dir(&layer).unwrap();
    std::fs::rename(&devs, layer.join("devs")).unwrap();
    std::fs::set_permissions(&layer, std::fs::Permissions::from_mode(0o755)).unwrap();
    env.stack = env.stack.with(layer);
    let marker = unique("kmsg");
    let script = format!(
        "exec 2>&1; mknod /tmp/kmsg c 1 11 && echo {marker} > /tmp/kmsg; [ -c /tmp/kmsg ] && echo made-kmsg; \
         mknod /tmp/loop b 7 0; [ -b /tmp/loop ] && echo made-loop; \
         echo {marker} > /devs/kmsg && echo wrote-layer; head -c 1 /devs/mem >/dev/null && echo read-mem; \
         echo x > /devs/null && echo wrote-null; head -c 1 /devs/loop0 >/dev/null && echo read-loop; \
         echo x > /dev/null && echo dev-null-ok; ls /dev | tr '\\n' ' '"
    );
    let out = env.sh_out(&script, Vec::new());
    eprintln!("{rt}: {out}");
    for bad in [
        "made-kmsg",
        "made-loop",
        "wrote-layer",
        "read-mem",
        "wrote-null",
        "read-loop",
    ] {
        assert!(!out.lines().any(|l| l == bad), "{rt}: {bad}: {out}");
    }
    assert!(out.contains("dev-null-ok"), "{rt}: {out}");
    let listed = out.lines().last().unwrap_or_default();
    const USUAL: &[&str] = &[
        "console", "core", "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm",
        "stderr", "stdin", "stdout", "tty", "urandom", "zero",
    ];
    for name in listed.split_whitespace() {
        assert!(USUAL.contains(&name), "{rt}: /dev/{name} in {listed}");
    }
    let kmsg = std::process::Command::new("dmesg").output().unwrap();
    assert!(
        !String::from_utf8_lossy(&kmsg.stdout).contains(&marker),
        "{rt}: the step wrote to the host's kernel log"
    );
}

/// A device a step makes on the built-in runtime is a placeholder: an
/// empty plain file with the mode and owner asked for, marked for the
/// layer diff, made only inside the step's root (absolute paths resolve
/// in it, relative ones beneath the working directory, magic links are
/// refused), and only for a caller with `CAP_MKNOD`.
#[test]
fn device_nodes_are_placeholders_inside_the_root() {
    need_root!();
    let env = Env::busybox("builtin");
    let host = unique("kiln-mknod");
    let script = format!(
        "exec 2>&1; umask 027; mknod /d c 1 3 && echo made; [ -c /d ] || echo not-a-device; \
         stat -c '%a %s' /d; echo x > /d && cat /d; \
         mknod /d c 1 3 || echo exists; \
         mknod /../../tmp/{host} c 1 3 && [ -f /tmp/{host} ] && echo clamped-in-root; \
         cd /tmp && mknod ../../../{host}-rel c 1 3 || echo relative-escape-refused; \
         mkdir -p /sub && cd /sub && mknod here b 7 0 && [ -f /sub/here ] && echo relative-ok; \
         ln -s /proc/self/root /r && {{ mknod /r/m c 1 3 || echo magic-link-refused; }}; \
         ln -s /etc /e && mknod /e/{host} c 1 3 && [ -f /etc/{host} ] && echo symlink-in-root; \
         su -s /bin/sh nobody -c 'mknod /tmp/n c 1 3' || echo unprivileged-refused"
    );
    let (out, upper) = env.sh("mknod", &script);
    let out = String::from_utf8_lossy(&out.output).into_owned();
    eprintln!("{out}");
    for line in [
        "made",
        "not-a-device",
        "640 0",
        "x",
        "exists",
        "clamped-in-root",
        "relative-escape-refused",
        "relative-ok",
        "magic-link-refused",
        "symlink-in-root",
        "unprivileged-refused",
    ] {
        assert!(out.lines().any(|l| l == line), "{line}: {out}");
    }
    for host_path in [
        format!("/tmp/{host}"),
        format!("/{host}-rel"),
        format!("/etc/{host}"),
    ] {
        assert!(
            !Path::new(&host_path).exists(),
            "{host_path} made on the host"
        );
    }
    // In the layer: plain files, marked; the diff writes devices.
    let md = std::fs::symlink_metadata(upper.join("sub/here")).unwrap();
    assert!(md.file_type().is_file(), "a real device in the upper dir");
    let mut tar = Vec::new();
    kiln_executor::diff(&upper, &mut tar).unwrap();
    let mut archive = tar::Archive::new(&tar[..]);
    let devices: Vec<(String, char, u32, u32)> = archive
        .entries()
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let kind = match e.header().entry_type() {
                tar::EntryType::Char => 'c',
                tar::EntryType::Block => 'b',
                _ => return None,
            };
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let h = e.header();
            Some((
                path,
                kind,
                h.device_major().unwrap().unwrap(),
                h.device_minor().unwrap().unwrap(),
            ))
        })
        .collect();
    assert!(
        devices.contains(&("sub/here".into(), 'b', 7, 0)),
        "{devices:?}"
    );
    assert!(
        devices.contains(&(format!("tmp/{host}"), 'c', 1, 3)),
        "{devices:?}"
    );
    // `echo x > /d` made it a file with content: no longer a device.
    assert!(!devices.iter().any(|d| d.0 == "d"), "{devices:?}");
}

/// Docker's masked paths (policy.rs has the same list).
const MASKED: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only paths.
const READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The masked paths that exist on this host (e.g. no `/proc/kcore` on a
/// kernel without `CONFIG_PROC_KCORE`) are empty inside, the read-only
/// ones are mounted read-only (writes fail), and the rlimits are set; with
/// a fresh /proc and with the host-/proc bind fallback. Under
/// `SecurityMode::Insecure` nothing is masked.
fn proc_is_masked_and_readonly_and_rlimits_are_set(rt: &'static str) {
    let env = Env::busybox(rt);
    let mut script = String::new();
    let mut host_bytes = 0;
    for p in MASKED {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => script.push_str(&format!("echo {p}=$(ls {p} | wc -l); ")),
            Ok(_) => {
                host_bytes += std::fs::read(p).map_or(0, |d| d.len());
                script.push_str(&format!("echo {p}=$(cat {p} | wc -c); "));
            }
            Err(_) => {}
        }
    }
    assert!(host_bytes > 0, "no masked file with content on this host");
    let readonly: Vec<&str> = READONLY
        .iter()
        .copied()
        .filter(|p| Path::new(p).exists())
        .collect();
    script.push_str(
        "{ echo 1 > /proc/sys/kernel/ns_last_pid; } 2>&1 || echo sys-ro; \
         grep -E ' /proc/(sys|bus|fs|irq|sysrq-trigger) ' /proc/self/mounts | cut -d' ' -f2,4 | cut -d, -f1; \
         ulimit -n; ulimit -Hn",
    );
    let mut hard = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut hard) },
        0
    );
    let hard = hard.rlim_max.min(524_288);
    let (soft, hard) = (1024.min(hard).to_string(), hard.to_string());
    let check = |out: &str| {
        eprintln!("{out}");
        let l: Vec<&str> = out.lines().collect();
        for line in &l {
            if let Some((path, n)) = line.split_once('=') {
                assert_eq!(n.trim(), "0", "{path} is not masked: {out}");
            }
        }
        assert!(
            out.contains("Read-only file system") && l.contains(&"sys-ro"),
            "{out}"
        );
        for p in &readonly {
            assert!(l.contains(&format!("{p} ro").as_str()), "{p}: {out}");
        }
        assert_eq!(&l[l.len() - 2..], [soft.as_str(), hard.as_str()], "{out}");
    };
    check(&env.sh_out(&script, Vec::new()));
    // The /proc and /sys bind fallbacks.
    // The fallbacks are the runtime's value: only this run binds them.
    let forced = Fallbacks {
        proc: true,
        sys: true,
        ..Fallbacks::default()
    };
    let (out, _) = env.run_on(
        runtime_with(rt, forced).as_ref(),
        "fallbacks",
        sh(&script),
        Vec::new(),
    );
    check(&text(&out.unwrap()));
    // Insecure: the host's content shows again.
    let mut spec = sh("cat /proc/interrupts | wc -c; grep -c ' /proc/sys ' /proc/self/mounts");
    spec.security = SecurityMode::Insecure;
    let out = text(&env.run(spec, Vec::new()).0);
    let l: Vec<&str> = out.lines().collect();
    assert_ne!(l[0].trim(), "0", "{out}");
    assert_eq!(l[1].trim(), "0", "{out}");
}

/// A lower layer with links that point out of the rootfs (`etc/evil -> /`,
/// a relative `a -> ../../../../<hostdir>`, an absolute `abs -> <hostdir>`):
/// inside the sandbox they resolve in the rootfs, and mount targets under
/// them land in the rootfs; nothing is written on the host.
fn symlinks_in_layers_do_not_escape(rt: &'static str) {
    let mut env = Env::busybox(rt);
    let host = HostDir::new("links");
    let hostpath = host.0.to_str().unwrap().to_string();
    let evil = env.tmp.path().join("evil");
    std::fs::create_dir_all(evil.join("etc")).unwrap();
    std::os::unix::fs::symlink("/", evil.join("etc/evil")).unwrap();
    std::os::unix::fs::symlink(format!("../../../../../../..{hostpath}"), evil.join("a")).unwrap();
    std::os::unix::fs::symlink(&hostpath, evil.join("abs")).unwrap();
    std::fs::set_permissions(&evil, std::fs::Permissions::from_mode(0o755)).unwrap();
    env.stack = env.stack.with(evil);
    let src = HostDir::new("src");
    std::fs::write(src.0.join("from-bind"), "bound\n").unwrap();
    let script = format!(
        "cat /abs/hostfile 2>/dev/null || echo no-hostfile; \
         cat /a/hostfile 2>/dev/null || echo no-hostfile-rel; \
         mkdir -p {hostpath} && echo pwn > /abs/pwned && echo pwn > /a/pwned2 && echo wrote; \
         ls /etc/evil/etc/evil/bin/busybox; \
         cat {hostpath}/x/from-bind; ls {hostpath}/t; \
         touch /etc/evil/{hostpath}/pwned3 && echo touched"
    );
    let mounts = vec![
        bind(&src.0, "/abs/x", true),
        Mount::Tmpfs {
            target: "/a/t".into(),
            size: None,
        },
        bind(&src.0, "/../../etc/evil/../abs/y", true),
    ];
    let (out, upper) = env.run(sh(&script), mounts);
    let out = text(&out);
    eprintln!("{out}");
    assert_eq!(
        out,
        "no-hostfile\nno-hostfile-rel\nwrote\n/etc/evil/etc/evil/bin/busybox\nbound\ntouched\n"
    );
    host.assert_untouched();
    // The writes are in the layer, at the host-looking path.
    let in_layer = upper.join(hostpath.trim_start_matches('/'));
    assert!(in_layer.join("pwned").is_file());
    assert!(in_layer.join("pwned2").is_file());
    assert!(in_layer.join("pwned3").is_file());
    // The mount stubs were cleaned from the layer.
    assert!(!in_layer.join("x").exists() && !in_layer.join("t").exists());
    assert!(!in_layer.join("y").exists());
}

// ------------------------------------------------------------- tarballs

/// One crafted tar entry: raw name and link name bytes (no checks).
enum Entry<'a> {
    File(&'a str, &'a str),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
}

/// A tar with these entries, written header by header so that `..` and
/// absolute names get through.
fn crafted_tar(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut h = tar::Header::new_old();
        let (name, link, kind, data): (&str, &str, tar::EntryType, &str) = match e {
            Entry::File(n, d) => (n, "", tar::EntryType::Regular, d),
            Entry::Dir(n) => (n, "", tar::EntryType::Directory, ""),
            Entry::Symlink(n, l) => (n, l, tar::EntryType::Symlink, ""),
            Entry::Hardlink(n, l) => (n, l, tar::EntryType::Link, ""),
        };
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(data.len() as u64);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data.as_bytes());
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// The malicious archives: (what, entries). `{host}` is the host dir.
fn evil_archives(host: &str) -> Vec<(&'static str, Vec<Entry<'static>>)> {
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let up = leak(format!("../../../../../../../..{host}/pwned"));
    let abs = leak(format!("{host}/pwned"));
    let host_s = leak(host.to_string());
    let hostfile = leak(format!("{host}/hostfile"));
    let hostfile_up = leak(format!("../../../../../../../..{host}/hostfile"));
    vec![
        (
            "dotdot",
            vec![Entry::File("../escaped", "x"), Entry::File(up, "x")],
        ),
        (
            "dotdot-inside",
            vec![Entry::Dir("d"), Entry::File("d/../../escaped", "x")],
        ),
        ("absolute", vec![Entry::File(abs, "x")]),
        (
            "symlink-then-write",
            vec![
                Entry::Symlink("link", host_s),
                Entry::File("link/pwned", "x"),
            ],
        ),
        (
            "symlink-dir-then-write",
            vec![
                Entry::Symlink("ldir", host_s),
                Entry::Dir("ldir/sub"),
                Entry::File("ldir/sub/pwned", "x"),
            ],
        ),
        ("hardlink-absolute", vec![Entry::Hardlink("hl", hostfile)]),
        ("hardlink-dotdot", vec![Entry::Hardlink("hl", hostfile_up)]),
        (
            "hardlink-to-symlink",
            vec![
                Entry::Symlink("slink", hostfile),
                Entry::Hardlink("hl", "slink"),
            ],
        ),
        (
            "hardlink-through-symlink",
            vec![
                Entry::Symlink("link", host_s),
                Entry::Hardlink("hl", "link/hostfile"),
            ],
        ),
    ]
}

/// Every regular file below `dir` (not following symlinks), relative.
fn files_below(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(
                    e.path()
                        .strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    out.sort();
    out
}

/// Layer tars (`unpack_blob`, as for image layers) cannot write outside
/// the layer directory: `..` entries are refused, absolute names land
/// inside, entries below a symlink are refused (the layer keeps the
/// symlink itself), hardlinks resolve inside the layer (a host path is
/// not found there). Extraction is all-or-nothing: a refused archive
/// leaves no layer directory.
#[test]
fn layer_tars_cannot_escape() {
    let host = HostDir::new("layer");
    let hostpath = host.0.to_str().unwrap().to_string();
    let tmp = TempDir::new().unwrap();
    for (what, entries) in evil_archives(&hostpath) {
        let blob = tmp.path().join(format!("{what}.tar"));
        let tar = crafted_tar(&entries);
        std::fs::write(&blob, &tar).unwrap();
        let base = tmp.path().join(what);
        std::fs::create_dir(&base).unwrap();
        let dir = base.join("layer");
        let diff_id = kiln_oci::Digest::sha256(&tar);
        let res = unpack_blob(
            &blob,
            "application/vnd.oci.image.layer.v1.tar",
            &diff_id,
            &dir,
        );
        eprintln!("{what}: {res:?}");
        let kept = matches!(what, "absolute" | "hardlink-to-symlink");
        match what {
            "absolute" => {
                res.unwrap();
                assert_eq!(
                    files_below(&dir),
                    [format!("{}/pwned", hostpath.trim_start_matches('/'))]
                );
            }
            "hardlink-to-symlink" => {
                // The link is to the symlink itself, not followed.
                res.unwrap();
                assert!(files_below(&dir).is_empty());
                let md = std::fs::symlink_metadata(dir.join("hl")).unwrap();
                assert!(md.file_type().is_symlink() && md.nlink() == 2);
            }
            _ => {
                let err = res.unwrap_err().to_string();
                assert!(!dir.exists(), "{what}: a refused layer is not kept");
                assert!(
                    err.contains("escapes")
                        || err.contains("not a directory")
                        || err.contains("No such file"),
                    "{what}: {err}"
                );
            }
        }
        assert_eq!(
            std::fs::read_dir(&base).unwrap().count(),
            usize::from(kept),
            "{what}: nothing next to the layer"
        );
        host.assert_untouched();
        assert!(!tmp.path().join("escaped").exists());
    }
    // The same through `unpack` from a reader.
    let entries = [
        Entry::Symlink("link", "/"),
        Entry::File("link/etc/pwned", "x"),
    ];
    let dir = tmp.path().join("reader");
    assert!(unpack(&mut &crafted_tar(&entries)[..], &dir).is_err());
}

/// ADD of a local tarball (auto-extraction) confines every entry to the
/// rootfs, as BuildKit does (it extracts with paths resolved inside the
/// root): `..` past the destination is an error (Docker's "breakout"),
/// absolute names land inside the destination, an entry written through a
/// symlink to an absolute path lands at that path *inside the rootfs*, and
/// a hardlink to a host path (directly, with `..`, or through a symlink)
/// is resolved inside the rootfs, where it does not exist: an error.
#[test]
fn added_tarballs_cannot_escape() {
    let host = HostDir::new("add");
    let hostpath = host.0.to_str().unwrap().to_string();
    let rel_host = hostpath.trim_start_matches('/').to_string();
    let tmp = TempDir::new().unwrap();
    let base = tmp.path().join("base");
    std::fs::create_dir_all(base.join("etc")).unwrap();
    std::fs::write(base.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    let base_stack = LayerStack::new(vec![base]);
    for (what, entries) in evil_archives(&hostpath) {
        let ctx = tmp.path().join(format!("ctx-{what}"));
        std::fs::create_dir(&ctx).unwrap();
        std::fs::write(ctx.join("evil.tar"), crafted_tar(&entries)).unwrap();
        let context = LayerStack::new(vec![ctx]);
        let upper = tmp.path().join(format!("upper-{what}"));
        std::fs::create_dir(&upper).unwrap();
        let action = FileAction::Copy(CopyAction {
            input: 0,
            sources: vec!["evil.tar".into()],
            dest: "/dst".into(),
            dest_is_dir: true,
            owner: None,
            chmod: None,
            unpack: true,
            excludes: Vec::new(),
            parents: false,
        });
        let res = apply_file_actions(&base_stack, &upper, &[action], &[Source::Context(&context)]);
        eprintln!("{what}: {res:?}");
        host.assert_untouched();
        assert!(!tmp.path().join("escaped").exists());
        let files = files_below(&upper);
        match what {
            "dotdot" | "dotdot-inside" | "hardlink-dotdot" => {
                let err = res.unwrap_err().to_string();
                assert!(err.contains("outside of the destination"), "{what}: {err}");
            }
            "absolute" => {
                res.unwrap();
                assert_eq!(files, [format!("dst/{rel_host}/pwned")]);
            }
            "symlink-then-write" => {
                res.unwrap();
                assert_eq!(files, [format!("{rel_host}/pwned")]);
            }
            "symlink-dir-then-write" => {
                res.unwrap();
                assert_eq!(files, [format!("{rel_host}/sub/pwned")]);
            }
            "hardlink-to-symlink" => {
                res.unwrap();
                assert!(files.is_empty(), "{files:?}");
                let md = std::fs::symlink_metadata(upper.join("dst/hl")).unwrap();
                assert!(md.file_type().is_symlink());
            }
            _ => {
                let err = res.unwrap_err().to_string();
                assert!(err.contains("linking"), "{what}: {err}");
                assert!(files.is_empty(), "{what}: {files:?}");
            }
        }
    }
}

/// The mount stubs are removed after the run by the host: a RUN that
/// swaps a stub's parent for a symlink to a host directory must not make
/// the host remove (or touch) what is at the same path there.
fn stub_cleanup_does_not_follow_symlinks_planted_by_the_run(rt: &'static str) {
    let env = Env::busybox(rt);
    let host = HostDir::new("stubs");
    std::fs::create_dir_all(host.0.join("y/z")).unwrap();
    std::fs::write(host.0.join("y/f"), "").unwrap();
    let old = std::fs::metadata(host.0.join("y")).unwrap().mtime();
    let hostpath = host.0.to_str().unwrap();
    let script = format!("mv /x /x.old && ln -s {hostpath} /x && echo swapped");
    let mounts = vec![
        Mount::Tmpfs {
            target: "/x/y/z".into(),
            size: None,
        },
        bind(&host.0.join("y/f"), "/x/y/f", true),
    ];
    let (out, upper) = env.run(sh(&script), mounts);
    assert_eq!(text(&out), "swapped\n");
    assert!(std::fs::symlink_metadata(upper.join("x"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(host.0.join("y/z").is_dir(), "host directory removed");
    assert!(host.0.join("y/f").is_file(), "host file removed");
    assert_eq!(std::fs::metadata(host.0.join("y")).unwrap().mtime(), old);
}

/// Directory times are set at the end of an ADD: a directory an archive
/// created and then replaced by a symlink to the host must not lead
/// those deferred writes to the host.
#[test]
fn deferred_directory_times_do_not_follow_a_replacing_symlink() {
    let host = HostDir::new("times");
    std::fs::create_dir(host.0.join("sub")).unwrap();
    let before = std::fs::metadata(host.0.join("sub")).unwrap().mtime();
    let hostpath = host.0.to_str().unwrap().to_string();
    let tmp = TempDir::new().unwrap();
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    let entries = [
        Entry::Dir("d"),
        Entry::Dir("d/sub"),
        Entry::Symlink("d", &hostpath),
    ];
    std::fs::write(ctx.join("evil.tar"), crafted_tar(&entries)).unwrap();
    let context = LayerStack::new(vec![ctx]);
    let upper = tmp.path().join("upper");
    std::fs::create_dir(&upper).unwrap();
    let action = FileAction::Copy(CopyAction {
        input: 0,
        sources: vec!["evil.tar".into()],
        dest: "/dst".into(),
        dest_is_dir: true,
        owner: None,
        chmod: None,
        unpack: true,
        excludes: Vec::new(),
        parents: false,
    });
    apply_file_actions(
        &LayerStack::default(),
        &upper,
        &[action],
        &[Source::Context(&context)],
    )
    .unwrap();
    assert!(std::fs::symlink_metadata(upper.join("dst/d"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::metadata(host.0.join("sub")).unwrap().mtime(),
        before,
        "host directory times changed"
    );
    // The same archive as a layer: directory modes and times are deferred
    // there too.
    let mode = std::fs::metadata(host.0.join("sub")).unwrap().mode();
    let layer = tmp.path().join("layer");
    unpack(&mut &crafted_tar(&entries)[..], &layer).unwrap();
    assert!(std::fs::symlink_metadata(layer.join("d"))
        .unwrap()
        .file_type()
        .is_symlink());
    let md = std::fs::metadata(host.0.join("sub")).unwrap();
    assert_eq!((md.mtime(), md.mode()), (before, mode));
}
