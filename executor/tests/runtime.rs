//! The runtime suite: every scenario runs on the built-in sandbox, runc
//! and crun (`builtin::…`, `runc::…`, `crun::…`) on the busybox base
//! (needs root: real namespaces, overlayfs and processes). Differences the
//! runtimes document (runc's separate stdout and stderr pipes, how an
//! unknown command is reported) are asserted per runtime; the live output
//! sink and the timing are the built-in runtime's.

#[macro_use]
mod support;

use support::{sh, text, Env};

use kiln_executor::{
    diff, unpack_blob, CancelSignal, LayerStack, Mount, NetworkMode, OutputSink, RunStep,
    RuntimeError, OUTPUT_LIMIT,
};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

on_every_runtime!(
    run_produces_the_layer,
    run_true_keeps_only_etc,
    exit_codes_propagate,
    user_by_name_and_number,
    cwd_is_created,
    hostname_hosts_and_pid_namespace,
    network_none_has_only_lo,
    env_is_passed,
    extra_mounts_leave_no_trace,
    replacing_a_directory_makes_it_opaque,
    scratch_base,
    output_keeps_the_tail,
    setup_errors_name_the_step,
    user_opaque_xattr_of_a_lower_is_honoured,
    opaque_dirs_of_unpacked_layers_are_honoured,
    mount_table_inside,
    layer_mounts_show_another_filesystem_and_discard_writes,
    insecure_mode_keeps_every_capability_and_no_seccomp,
    the_volatile_fallback_mounts_without_it,
    copy_snapshots_make_the_same_filesystem,
    a_cancelled_run_kills_its_process_tree_and_cleans_up,
);

/// The entry names of the layer tar of `upper`.
fn tar_names(upper: &Path) -> Vec<String> {
    let mut buf = Vec::new();
    diff(upper, &mut buf).unwrap();
    let mut ar = tar::Archive::new(&buf[..]);
    ar.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// The names directly in `dir`, sorted.
fn ls(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn run_produces_the_layer(rt: &'static str) {
    let env = Env::busybox(rt);
    let (out, upper) = env.sh(
        "a",
        "echo hi > /x; rm /etc/group; mkdir -p /var/lib/d; echo out",
    );
    assert_eq!(text(&out), "out\n");
    assert_eq!(out.status, 0);
    assert_eq!(std::fs::read_to_string(upper.join("x")).unwrap(), "hi\n");
    let wh = std::fs::symlink_metadata(upper.join("etc/group")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
    assert_eq!(ls(&upper.join("etc")), vec!["group"]);
    for d in ["dev", "proc", "sys"] {
        let md = std::fs::symlink_metadata(upper.join(d)).unwrap();
        assert!(md.is_dir(), "{d}");
        assert_eq!(md.mode() & 0o7777, 0o755, "{d}");
        assert!(ls(&upper.join(d)).is_empty(), "{d}");
    }
    assert!(upper.join("var/lib/d").is_dir());
    assert_eq!(
        ls(&upper),
        vec!["dev", "etc", "proc", "sys", "var", "x"],
        "nothing else in the layer"
    );
    let names = tar_names(&upper);
    assert!(names.contains(&"etc/".to_string()), "{names:?}");
    assert!(names.contains(&"etc/.wh.group".to_string()), "{names:?}");
    assert!(!names
        .iter()
        .any(|n| n.contains("hosts") || n.contains("resolv")));
}

fn run_true_keeps_only_etc(rt: &'static str) {
    let mut env = Env::busybox(rt);
    let (out, upper) = env.sh("a", "true");
    assert_eq!(out.status, 0);
    env.commit(upper);
    // Second RUN: /dev, /proc, /sys exist now; only /etc is copied up.
    let (out, upper) = env.sh("b", "true");
    assert_eq!(out.status, 0);
    assert_eq!(ls(&upper), vec!["etc"]);
    assert!(ls(&upper.join("etc")).is_empty());
    assert_eq!(tar_names(&upper), vec!["etc/"]);
}

fn exit_codes_propagate(rt: &'static str) {
    let env = Env::busybox(rt);
    assert_eq!(env.sh("a", "exit 3").0.status, 3);
    assert_eq!(env.sh("b", "echo err >&2; false").0.status, 1);
    let (out, _) = env.sh("c", "echo to-stderr >&2; echo to-stdout");
    if rt == "builtin" {
        assert_eq!(text(&out), "to-stderr\nto-stdout\n");
    } else {
        // runc and crun copy stdout and stderr through pipes of their own.
        let mut lines: Vec<String> = text(&out).lines().map(str::to_string).collect();
        lines.sort();
        assert_eq!(lines, ["to-stderr", "to-stdout"]);
    }
    // A child killed by a signal; the shell reports 128+9.
    assert_eq!(env.sh("d", "sh -c 'kill -9 $$'; exit $?").0.status, 137);
}

fn user_by_name_and_number(rt: &'static str) {
    let env = Env::busybox(rt);
    let mut spec = sh("id -u; id -g; id -G; echo $HOME; touch /tmp/f");
    spec.user = "app".into();
    let (out, upper) = env.run_with("a", spec, Vec::new());
    let out = out.unwrap();
    assert_eq!(text(&out), "1000\n1000\n1000\n/home/app\n");
    let md = std::fs::metadata(upper.join("tmp/f")).unwrap();
    assert_eq!((md.uid(), md.gid()), (1000, 1000));

    let mut spec = sh("id -u; id -g; id -G");
    spec.user = "1234:5678".into();
    let out = env.run_with("b", spec, Vec::new()).0.unwrap();
    assert_eq!(text(&out), "1234\n5678\n5678\n");

    // A uid not in passwd: gid 0, HOME=/.
    let mut spec = sh("id -u; id -g; echo $HOME");
    spec.user = "4321".into();
    let out = env.run_with("c", spec, Vec::new()).0.unwrap();
    assert_eq!(text(&out), "4321\n0\n/\n");

    let mut spec = sh("id -u; id -g");
    spec.user = "app:nogroup".into();
    let out = env.run_with("d", spec, Vec::new()).0.unwrap();
    assert_eq!(text(&out), "1000\n65534\n");

    // Root: HOME from passwd, caps are Docker's default set, no_new_privs.
    let (out, _) = env.sh(
        "e",
        "echo $HOME; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; \
         unshare -U true 2>/dev/null || echo no-unshare; mount -t tmpfs t /tmp 2>/dev/null || echo no-mount",
    );
    assert_eq!(
        text(&out),
        "/root\nCapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nNoNewPrivs:\t1\nSeccomp:\t2\n\
         no-unshare\nno-mount\n"
    );

    let mut spec = sh("true");
    spec.user = "nosuchuser".into();
    let err = env.run_with("f", spec, Vec::new()).0.unwrap_err();
    assert!(matches!(err, RuntimeError::User(_)), "{err}");
    assert!(err.to_string().contains("unable to find user nosuchuser"));
}

fn cwd_is_created(rt: &'static str) {
    let env = Env::busybox(rt);
    let mut spec = sh("pwd; touch here");
    spec.cwd = "/work/dir".into();
    let (out, upper) = env.run_with("a", spec, Vec::new());
    assert_eq!(text(&out.unwrap()), "/work/dir\n");
    assert!(upper.join("work/dir/here").is_file());
    let md = std::fs::metadata(upper.join("work")).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o755);
    assert_eq!(ls(&upper), ["dev", "etc", "proc", "sys", "work"]);
    // An existing directory is used as it is.
    let mut spec = sh("pwd -P; touch g");
    spec.cwd = "/tmp".into();
    let (out, upper) = env.run_with("b", spec, Vec::new());
    assert_eq!(text(&out.unwrap()), "/tmp\n");
    assert_eq!(ls(&upper), ["dev", "etc", "proc", "sys", "tmp"]);
    assert_eq!(ls(&upper.join("tmp")), ["g"]);
}

fn hostname_hosts_and_pid_namespace(rt: &'static str) {
    let env = Env::busybox(rt);
    let (out, _) = env.sh(
        "a",
        "hostname; cat /etc/hosts; echo $$; test -s /etc/resolv.conf && echo resolv; \
         { echo x >> /etc/hosts; } 2>/dev/null || echo ro",
    );
    assert_eq!(
        text(&out),
        "buildkitsandbox\n127.0.0.1\tlocalhost buildkitsandbox\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n1\nresolv\nro\n"
    );
    let mut spec = sh("hostname");
    spec.hostname = "other".into();
    assert_eq!(
        text(&env.run_with("b", spec, Vec::new()).0.unwrap()),
        "other\n"
    );
}

fn network_none_has_only_lo(rt: &'static str) {
    let env = Env::busybox(rt);
    let script = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '";
    let mut spec = sh(script);
    spec.network = NetworkMode::None;
    let out = env.run_with("a", spec, Vec::new()).0.unwrap();
    assert_eq!(text(&out), "lo\n");
    let mut spec = sh("ping -c1 -W1 127.0.0.1 >/dev/null && echo up");
    spec.network = NetworkMode::None;
    let out = env.run_with("b", spec, Vec::new()).0.unwrap();
    assert_eq!(text(&out), "up\n");
    // The host network has more than lo.
    let out = env.sh("c", script).0;
    assert!(text(&out).lines().count() > 1, "{}", text(&out));
}

fn env_is_passed(rt: &'static str) {
    let env = Env::busybox(rt);
    let mut spec = sh("echo $FOO; echo $HOME");
    spec.env.push("FOO=bar baz".into());
    spec.env.push("HOME=/elsewhere".into());
    let out = env.run_with("a", spec, Vec::new()).0.unwrap();
    assert_eq!(text(&out), "bar baz\n/elsewhere\n");
    // args[0] looked up in PATH.
    let mut spec = sh("");
    spec.args = vec!["echo".into(), "via".into(), "path".into()];
    let out = env.run_with("b", spec, Vec::new()).0.unwrap();
    assert_eq!(text(&out), "via path\n");
    let mut spec = sh("");
    spec.args = vec!["no-such-command".into()];
    let err = env.run_with("c", spec, Vec::new()).0.unwrap_err();
    if rt == "builtin" {
        assert!(matches!(err, RuntimeError::Exec { .. }), "{err}");
    } else {
        assert!(matches!(err, RuntimeError::Oci { .. }), "{err}");
    }
}

fn extra_mounts_leave_no_trace(rt: &'static str) {
    let env = Env::busybox(rt);
    let src = env.tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a"), "from host\n").unwrap();
    let rw = env.tmp.path().join("rw");
    std::fs::create_dir(&rw).unwrap();
    let secret = env.tmp.path().join("secret");
    std::fs::write(&secret, "s3cr3t").unwrap();
    let mounts = vec![
        Mount::Tmpfs {
            target: "/scratch".into(),
            size: Some(1 << 20),
        },
        Mount::Bind {
            source: src.clone(),
            target: "/mnt/src".into(),
            readonly: true,
        },
        Mount::Bind {
            source: rw.clone(),
            target: "/mnt/rw".into(),
            readonly: false,
        },
        Mount::Bind {
            source: secret,
            target: "/run/secrets/token".into(),
            readonly: true,
        },
        Mount::Tmpfs {
            target: "/tmp/cache".into(),
            size: None,
        },
    ];
    let script = "echo y > /scratch/y && cat /scratch/y; grep -c ' /scratch tmpfs' /proc/mounts; \
                  cat /mnt/src/a; touch /mnt/src/b 2>/dev/null || echo ro; cat /run/secrets/token; echo; \
                  echo z > /tmp/cache/z && echo cached; echo kept > /tmp/kept; echo w > /mnt/rw/w";
    let (out, upper) = env.run_with("a", sh(script), mounts);
    let out = out.unwrap();
    assert_eq!(text(&out), "y\n1\nfrom host\nro\ns3cr3t\ncached\n");
    assert_eq!(out.status, 0);
    assert!(!src.join("b").exists());
    assert_eq!(std::fs::read_to_string(rw.join("w")).unwrap(), "w\n");
    assert_eq!(ls(&upper), vec!["dev", "etc", "proc", "sys", "tmp"]);
    assert_eq!(ls(&upper.join("tmp")), vec!["kept"]);
    let names = tar_names(&upper);
    assert!(
        !names.iter().any(|n| n.contains("scratch")
            || n.starts_with("mnt")
            || n.starts_with("run")
            || n.contains("cache")),
        "{names:?}"
    );
}

fn replacing_a_directory_makes_it_opaque(rt: &'static str) {
    let mut env = Env::busybox(rt);
    let (out, upper) = env.sh("a", "mkdir -p /d/sub && echo a > /d/a && echo b > /d/sub/b");
    assert_eq!(out.status, 0);
    env.commit(upper);
    let (out, upper) = env.sh("b", "rm -rf /d && mkdir /d && echo c > /d/c");
    assert_eq!(out.status, 0, "{}", text(&out));
    let d = upper.join("d");
    let mut buf = [0u8; 8];
    let c = std::ffi::CString::new(d.to_str().unwrap()).unwrap();
    // SAFETY: valid path and buffer.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"user.overlay.opaque".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert_eq!(n, 1, "user.overlay.opaque missing");
    assert_eq!(buf[0], b'y');
    assert_eq!(ls(&d), vec!["c"]);
    let names = tar_names(&upper);
    assert!(names.contains(&"d/.wh..wh..opq".to_string()), "{names:?}");
    env.commit(upper);
    let (out, _) = env.sh("c", "ls /d");
    assert_eq!(text(&out), "c\n");
}

fn scratch_base(rt: &'static str) {
    // FROM scratch with busybox bind-mounted in: the stubs (including
    // /etc and /bin created for them) are removed again.
    let bb = Env::busybox(rt);
    let busybox = bb.stack.layers()[0].join("bin/busybox");
    let env = Env::scratch(rt);
    let mut spec = sh("echo hi; echo f > /f");
    spec.args[0] = "/bin/busybox".into();
    spec.args.insert(1, "sh".into());
    let mounts = vec![Mount::Bind {
        source: busybox,
        target: "/bin/busybox".into(),
        readonly: true,
    }];
    let (out, upper) = env.run_with("a", spec, mounts);
    let out = out.unwrap();
    assert_eq!(text(&out), "hi\n");
    assert_eq!(ls(&upper), vec!["dev", "f", "proc", "sys"]);
    let md = std::fs::metadata(&upper).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o755);
}

fn output_keeps_the_tail(rt: &'static str) {
    let env = Env::busybox(rt);
    let (out, _) = env.sh("a", "yes | head -c 200000; echo; echo end");
    assert_eq!(out.status, 0);
    assert_eq!(out.output.len(), OUTPUT_LIMIT);
    assert!(out.output.ends_with(b"y\n\nend\n"));
}

#[test]
fn output_sink_receives_the_bytes_in_order_while_the_process_runs() {
    need_root!();
    let env = Env::busybox("builtin");
    let (upper, work) = env.dirs("sink");
    // More than OUTPUT_LIMIT, numbered so order and completeness show, then
    // a pause so chunks read before it arrive well before the end.
    let script = "i=0; while [ $i -lt 12000 ]; do echo line$i; i=$((i+1)); done; \
                  sleep 1; echo end";
    let chunks: std::sync::Mutex<Vec<(std::time::Instant, Vec<u8>)>> = Default::default();
    let sink = |data: &[u8]| {
        chunks
            .lock()
            .unwrap()
            .push((std::time::Instant::now(), data.to_vec()))
    };
    let step = RunStep {
        lower: &env.stack,
        upper: &upper,
        work: &work,
        process: sh(script),
        mounts: Vec::new(),
        output: Some(OutputSink(&sink)),
        cancel: None,
    };
    let out = env.exec(&step).unwrap();
    let finished = std::time::Instant::now();
    assert_eq!(out.status, 0);
    let chunks = chunks.into_inner().unwrap();
    let streamed: Vec<u8> = chunks.iter().flat_map(|(_, c)| c.clone()).collect();
    let mut expected = String::new();
    for i in 0..12000 {
        expected.push_str(&format!("line{i}\n"));
    }
    expected.push_str("end\n");
    assert!(expected.len() > OUTPUT_LIMIT);
    assert!(streamed == expected.as_bytes(), "the sink saw other bytes");
    // RunOutput still keeps only the tail.
    assert_eq!(
        out.output,
        expected.as_bytes()[expected.len() - OUTPUT_LIMIT..]
    );
    // The numbered lines arrived before the process ended.
    let (first_at, _) = &chunks[0];
    assert!(
        finished.duration_since(*first_at) >= std::time::Duration::from_millis(700),
        "the first chunk came only at the end"
    );
}

fn setup_errors_name_the_step(rt: &'static str) {
    let env = Env::busybox(rt);
    let (upper, _) = env.dirs("a");
    let step = RunStep {
        lower: &env.stack,
        upper: &upper,
        work: &env.tmp.path().join("missing-work"),
        process: sh("true"),
        mounts: Vec::new(),
        output: None,
        cancel: None,
    };
    let err = env.exec(&step).unwrap_err();
    assert!(err.to_string().starts_with("mounting overlay"), "{err}");
}

#[test]
fn timing_of_a_trivial_run() {
    need_root!();
    let env = Env::busybox("builtin");
    let mut spec = sh("");
    spec.args = vec!["/bin/true".into()];
    let n = 20;
    let start = std::time::Instant::now();
    for i in 0..n {
        let out = env
            .run_with(&format!("t{i}"), spec.clone(), Vec::new())
            .0
            .unwrap();
        assert_eq!(out.status, 0);
    }
    let avg = start.elapsed() / n;
    eprintln!("average `true` run: {avg:?}");
    assert!(avg < std::time::Duration::from_millis(200), "{avg:?}");
}

/// A layer tar with `d/a`, then one replacing `d` (opaque) with `d/b`.
fn opaque_layers(env: &Env) -> LayerStack {
    let mut layers = env.stack.layers().to_vec();
    for (i, entries) in [
        vec![("d/", None), ("d/a", Some("a"))],
        vec![
            ("d/", None),
            ("d/.wh..wh..opq", Some("")),
            ("d/b", Some("b")),
        ],
    ]
    .into_iter()
    .enumerate()
    {
        let mut b = tar::Builder::new(Vec::new());
        for (name, content) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            match content {
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(0o755);
                    h.set_size(0);
                    b.append_data(&mut h, name, &[][..]).unwrap();
                }
                Some(c) => {
                    h.set_mode(0o644);
                    h.set_size(c.len() as u64);
                    b.append_data(&mut h, name, c.as_bytes()).unwrap();
                }
            }
        }
        let blob = env.tmp.path().join(format!("l{i}.tar"));
        let tar = b.into_inner().unwrap();
        std::fs::write(&blob, &tar).unwrap();
        let dir = env.tmp.path().join(format!("l{i}"));
        std::fs::create_dir(&dir).unwrap();
        let diff_id = kiln_oci::Digest::sha256(&tar);
        unpack_blob(
            &blob,
            "application/vnd.oci.image.layer.v1.tar",
            &diff_id,
            &dir,
        )
        .unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        layers.push(dir);
    }
    LayerStack::new(layers)
}

fn set_user_opaque(dir: &Path) {
    let c = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
    // SAFETY: valid path and value.
    let rc = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            c"user.overlay.opaque".as_ptr(),
            b"y".as_ptr().cast(),
            1,
            0,
        )
    };
    assert_eq!(rc, 0);
}

/// Overlay in a user namespace (`userxattr`) only reads
/// `user.overlay.opaque`.
fn user_opaque_xattr_of_a_lower_is_honoured(rt: &'static str) {
    let mut env = Env::busybox(rt);
    env.stack = opaque_layers(&env);
    set_user_opaque(&env.stack.layers()[2].join("d"));
    let (out, _) = env.sh("a", "ls /d");
    assert_eq!(text(&out), "b\n");
}

/// Opaque directories that `unpack` writes must be honoured by the
/// sandbox's overlay (mounted with `userxattr`, which reads only
/// `user.overlay.opaque`): `d/a` of the lower layer must not show through.
fn opaque_dirs_of_unpacked_layers_are_honoured(rt: &'static str) {
    let mut env = Env::busybox(rt);
    env.stack = opaque_layers(&env);
    let (out, _) = env.sh("a", "ls /d");
    assert_eq!(text(&out), "b\n");
}

/// Whether the `/proc/self/mounts` line `l` has overlayfs's `volatile`
/// option (`fsync=volatile` since Linux 6.x).
fn is_volatile(l: &str) -> bool {
    l.split(' ').nth(3).is_some_and(|o| {
        o.split(',')
            .any(|o| o == "volatile" || o == "fsync=volatile")
    })
}

fn mount_table_inside(rt: &'static str) {
    let env = Env::busybox(rt);
    let (out, _) = env.sh("a", "cat /proc/self/mounts");
    let mounts = text(&out);
    eprintln!("{mounts}");
    let root = mounts.lines().find(|l| l.split(' ').nth(1) == Some("/"));
    assert!(root.is_some_and(|l| l.starts_with("overlay / overlay ") && l.contains("userxattr")));
    // The step's upper is scratch that kiln reads into the layer itself:
    // its fsyncs are skipped (`volatile`, kernel >= 5.10; kiln needs 5.11;
    // shown as `fsync=volatile` since 6.x).
    assert!(root.is_some_and(is_volatile), "{root:?}");
    let sys = mounts.lines().find(|l| l.split(' ').nth(1) == Some("/sys"));
    assert!(
        sys.is_some_and(|l| l.split(' ').nth(3).unwrap().starts_with("ro,")),
        "{sys:?}"
    );
    for m in [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/etc/hosts",
        "/etc/resolv.conf",
    ] {
        assert!(
            mounts.lines().any(|l| l.split(' ').nth(1) == Some(m)),
            "{m}"
        );
    }
}

fn layer_mounts_show_another_filesystem_and_discard_writes(rt: &'static str) {
    let env = Env::busybox(rt);
    // The "other stage": one layer with a directory, a file and a symlink
    // pointing outside (resolved inside that filesystem, not the host).
    let other = env.tmp.path().join("other");
    std::fs::create_dir_all(other.join("out/sub")).unwrap();
    std::fs::write(other.join("out/app"), "binary\n").unwrap();
    std::fs::write(other.join("out/sub/x"), "x\n").unwrap();
    std::os::unix::fs::symlink("/out/sub", other.join("link")).unwrap();
    let lower = LayerStack::new(vec![other.clone()]);
    let mounts = vec![
        Mount::Layers {
            lower: lower.clone(),
            source: "out".into(),
            target: "/src".into(),
            readonly: false,
        },
        Mount::Layers {
            lower: lower.clone(),
            source: "out/app".into(),
            target: "/usr/local/bin/app".into(),
            readonly: true,
        },
        Mount::Layers {
            lower,
            source: "link".into(),
            target: "/ro".into(),
            readonly: true,
        },
    ];
    let script = "cat /src/app /usr/local/bin/app /ro/x; echo w > /src/new && cat /src/new; \
                  rm /src/app && echo removed; touch /ro/y 2>/dev/null || echo ro";
    let (out, upper) = env.run_with("a", sh(script), mounts);
    let out = out.unwrap();
    assert_eq!(text(&out), "binary\nbinary\nx\nw\nremoved\nro\n");
    // Writes went to a throwaway upper: the source and the layer are clean.
    assert!(other.join("out/app").exists());
    assert!(!other.join("out/new").exists());
    let names = tar_names(&upper);
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("src") || n.starts_with("ro") || n.contains("local")),
        "{names:?}"
    );
    // A missing source is an error, not an empty mount.
    let (res, _) = env.run_with(
        "b",
        sh("true"),
        vec![Mount::Layers {
            lower: LayerStack::new(vec![other]),
            source: "nope".into(),
            target: "/src".into(),
            readonly: true,
        }],
    );
    let err = res.unwrap_err().to_string();
    assert!(err.contains("\"nope\" does not exist"), "{err}");
}

fn insecure_mode_keeps_every_capability_and_no_seccomp(rt: &'static str) {
    let env = Env::busybox(rt);
    let script = "grep -E '^(CapBnd|Seccomp|NoNewPrivs):' /proc/self/status";
    let (out, _) = env.sh("a", script);
    let sandboxed = text(&out);
    assert!(sandboxed.contains("Seccomp:\t2"), "{sandboxed}");
    assert!(sandboxed.contains("NoNewPrivs:\t1"), "{sandboxed}");
    let mut spec = sh(script);
    spec.security = kiln_executor::SecurityMode::Insecure;
    let (out, _) = env.run_with("b", spec, Vec::new());
    let insecure = text(&out.unwrap());
    assert!(insecure.contains("Seccomp:\t0"), "{insecure}");
    assert!(insecure.contains("NoNewPrivs:\t0"), "{insecure}");
    let bnd = |s: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix("CapBnd:\t"))
            .map(|h| u64::from_str_radix(h.trim(), 16).unwrap())
            .unwrap()
    };
    assert_eq!(bnd(&sandboxed), 0xa80425fb);
    assert!(bnd(&insecure).count_ones() > 30, "{insecure}");
}

/// Copy snapshots (`KILN_RUNTIME_FALLBACKS=copy`, or after overlayfs was
/// refused) make a layer with the same result as overlay snapshots: new
/// files, a deletion (whiteout), a replaced directory (opaque for overlay;
/// a whiteout per old entry for copies, which compare trees), no mount
/// traces.
fn copy_snapshots_make_the_same_filesystem(rt: &'static str) {
    let mut env = Env::busybox(rt);
    let (out, upper) = env.sh("base", "mkdir -p /d/sub && echo a > /d/a");
    assert_eq!(out.status, 0);
    env.commit(upper);
    let mut copy = Env::busybox(rt).with_fallbacks(kiln_executor::Fallbacks::parse("copy"));
    copy.stack = env.stack.clone();
    assert_eq!(copy.snapshot_mode(), kiln_executor::SnapshotMode::Copy);
    let other = env.tmp.path().join("other");
    std::fs::create_dir_all(other.join("out")).unwrap();
    std::fs::write(other.join("out/app"), "binary\n").unwrap();
    let mounts = vec![
        Mount::Tmpfs {
            target: "/scratch".into(),
            size: None,
        },
        Mount::Layers {
            lower: LayerStack::new(vec![other.clone()]),
            source: "out".into(),
            target: "/src".into(),
            readonly: false,
        },
    ];
    let script = "echo hi > /x; rm /etc/group; rm -rf /d && mkdir /d && echo c > /d/c; \
                  echo t > /scratch/t; cat /src/app; echo w > /src/w";
    let mut layers = Vec::new();
    for env in [&env, &copy] {
        let (out, upper) = env.run_with("step", sh(script), mounts.clone());
        let out = out.unwrap();
        assert_eq!((out.status, text(&out)), (0, "binary\n".to_string()));
        assert!(out.notes.is_empty(), "{:?}", out.notes);
        let names = tar_names(&upper);
        for want in ["x", "etc/.wh.group", "d/c"] {
            assert!(names.iter().any(|n| n == want), "{want}: {names:?}");
        }
        assert!(
            !names
                .iter()
                .any(|n| n.contains("scratch") || n.starts_with("src")),
            "{names:?}"
        );
        // The filesystem the layer makes on its base.
        let merged = env.tmp.path().join(format!("merged-{}", layers.len()));
        kiln_executor::materialize(&env.stack.with(upper), &merged).unwrap();
        layers.push(tree(&merged));
    }
    assert_eq!(layers[0], layers[1]);
    assert!(
        layers[1].contains(&"d/c=c\n".to_string()),
        "{:?}",
        layers[1]
    );
    assert!(!layers[1]
        .iter()
        .any(|n| n.starts_with("d/a") || n.starts_with("etc/group")));
    assert!(!other.join("out/w").exists());
}

/// Every path below `dir` with its type and, for files, content.
fn tree(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            if e.file_type().is_file() {
                format!(
                    "{rel}={}",
                    std::fs::read_to_string(e.path()).unwrap_or_default()
                )
            } else {
                rel
            }
        })
        .collect();
    out.sort();
    out
}

/// The pids of the processes in the pid namespace `ns` (as
/// `readlink /proc/PID/ns/pid` shows it, e.g. `pid:[4026532]`).
fn processes_in(ns: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/pid"))
                .is_ok_and(|l| l.to_string_lossy() == ns)
        })
        .collect()
}

fn a_cancelled_run_kills_its_process_tree_and_cleans_up(rt: &'static str) {
    let env = Env::busybox(rt);
    let mark = env.tmp.path().join("mark");
    std::fs::create_dir(&mark).unwrap();
    // The process says which pid namespace it is in and shows its mounts
    // (the scratch directory's hosts file among them), then sleeps in a
    // child of the shell.
    let script = "readlink /proc/self/ns/pid > /mark/ns; cat /proc/self/mountinfo > /mark/mounts; \
                  touch /mark/ready; sleep 1000; echo not killed";
    let mounts = vec![Mount::Bind {
        source: mark.clone(),
        target: "/mark".into(),
        readonly: false,
    }];
    let (upper, work) = env.dirs("cancel");
    let cancel = CancelSignal::new();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let stack = env.stack.clone();
    let signal = cancel.clone();
    // The env is moved to the run's thread, so that a hanging run fails the
    // test instead of blocking it.
    std::thread::spawn(move || {
        let step = RunStep {
            lower: &stack,
            upper: &upper,
            work: &work,
            process: sh(script),
            mounts,
            output: None,
            cancel: Some(&signal),
        };
        let _ = done_tx.send(env.exec(&step));
    });
    let hang_guard = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !mark.join("ready").exists() {
        assert!(
            std::time::Instant::now() < hang_guard,
            "the process never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let ns = std::fs::read_to_string(mark.join("ns")).unwrap();
    let ns = ns.trim();
    assert!(!processes_in(ns).is_empty(), "the sleep runs in {ns}");
    let mounts = std::fs::read_to_string(mark.join("mounts")).unwrap();
    let scratch = mounts
        .split(['/', ' '])
        .find(|c| c.starts_with("kiln-run-"))
        .unwrap_or_else(|| panic!("no scratch directory in the mounts:\n{mounts}"))
        .to_string();
    assert!(std::env::temp_dir().join(&scratch).is_dir(), "{scratch}");

    cancel.cancel();
    let result = done_rx
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("the cancelled run returns");
    assert!(matches!(result, Err(RuntimeError::Cancelled)), "{result:?}");
    assert_eq!(processes_in(ns), Vec::<String>::new(), "left running");
    assert!(
        !std::env::temp_dir().join(&scratch).exists(),
        "{scratch} left behind"
    );
}

/// `KILN_RUNTIME_FALLBACKS=volatile` (and `all`) mounts the step's
/// overlay without `volatile`, through the new mount API and through
/// `mount(2)`; the layer is the same.
fn the_volatile_fallback_mounts_without_it(rt: &'static str) {
    for list in ["volatile", "all", "overlay"] {
        let env = Env::busybox(rt).with_fallbacks(kiln_executor::Fallbacks::parse(list));
        let (out, upper) = env.sh(list, "grep ' / overlay ' /proc/self/mounts; echo x > /f");
        let root = text(&out);
        assert!(root.contains("userxattr"), "{list}: {root}");
        assert_eq!(is_volatile(&root), list == "overlay", "{list}: {root}");
        assert_eq!(std::fs::read_to_string(upper.join("f")).unwrap(), "x\n");
    }
}
