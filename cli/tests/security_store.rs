//! Another host user cannot reach anything in the store: after builds that
//! make a setuid-root file (`RUN chmod 4755`, also in a cache mount) and a
//! device node (`ADD` of a tar holding `c 1 11`), uid 65534 can neither
//! stat, open nor execute any of them, in a new store and in an old 0755
//! one that opening repairs. Needs root (to build and to switch to uid
//! 65534 with `setpriv`); elsewhere the test says why it is skipped.

mod common;

use common::{s, Env};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The uid and gid of the other host user.
const NOBODY: &str = "65534";

fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A tar with one character device, `kmsg` (1, 11), mode 0666.
fn device_tar(path: &Path) {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Char);
    header.set_device_major(1).expect("major");
    header.set_device_minor(11).expect("minor");
    header.set_mode(0o666);
    header.set_size(0);
    builder
        .append_data(&mut header, "kmsg", std::io::empty())
        .expect("append");
    std::fs::write(path, builder.into_inner().expect("tar")).expect("write");
}

/// Every setuid or setgid file and every device node under `root`, found
/// as root.
fn dangerous(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let md = entry.metadata().expect("lstat");
            let t = md.file_type();
            if t.is_dir() {
                stack.push(entry.path());
            } else if t.is_char_device()
                || t.is_block_device()
                || (t.is_file() && md.mode() & 0o6000 != 0)
            {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    found
}

/// The paths of `paths` that uid 65534 can stat, open or execute (the
/// setuid files are busybox as `true`).
fn reachable_by_nobody(paths: &[PathBuf]) -> Vec<String> {
    let script = r#"for p in "$@"; do
        if stat "$p" >/dev/null 2>&1; then echo "stat $p"; fi
        if (head -c0 < "$p") 2>/dev/null; then echo "open $p"; fi
        if (: >> "$p") 2>/dev/null; then echo "open-for-writing $p"; fi
        if "$p" 2>/dev/null; then echo "exec $p"; fi
    done"#;
    let out = Command::new("setpriv")
        .args([
            "--reuid",
            NOBODY,
            "--regid",
            NOBODY,
            "--clear-groups",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .args(paths)
        .output()
        .expect("setpriv runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The mode bits of `p`, in octal.
fn mode(p: &Path) -> String {
    format!(
        "{:o}",
        std::fs::metadata(p).expect("stat").permissions().mode() & 0o7777
    )
}

#[test]
fn setuid_files_and_devices_in_the_store_are_out_of_other_users_reach() {
    if !is_root() {
        eprintln!("skipped: needs root (to build and to act as uid 65534)");
        return;
    }
    let env = Env::new();
    // Only the store may stand in the other user's way.
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox\n\
             ADD dev.tar /dev-in-image/\n\
             RUN mkdir /suid && cp /bin/busybox /suid/true && chmod 4755 /suid/true\n\
             RUN --mount=type=cache,target=/c mkdir -p /c/sgid && cp -f /bin/busybox /c/sgid/true && \\\n\
                 chmod 6755 /c/sgid/true\n",
        )],
    );
    device_tar(&ctx.join("dev.tar"));
    env.ok(&["build", "-t", "x:1", s(&ctx)], None);

    let store = env.path("store");
    assert_eq!(mode(&store), "700", "a new store is private");
    assert_eq!(mode(&store.join("layers")), "700");
    let found = dangerous(&store);
    for what in ["suid/true", "sgid/true", "dev-in-image/kmsg"] {
        assert!(
            found.iter().any(|p| p.ends_with(what)),
            "the build made no {what}: {found:?}"
        );
    }
    let reached = reachable_by_nobody(&found);
    assert!(reached.is_empty(), "uid 65534 reaches {reached:?}");

    // An old kiln made every directory 0755: the same files are then
    // reachable (this shows the check above can fail)...
    let mut dirs = vec![store.clone()];
    while let Some(dir) = dirs.pop() {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        for entry in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(entry.path());
            }
        }
    }
    let reached = reachable_by_nobody(&found);
    assert!(
        reached.iter().any(|l| l.starts_with("exec ")),
        "the 0755 store hides its files: {reached:?}"
    );

    // ...until any kiln command opens the store: it repairs the modes,
    // without an error, and builds still work.
    let (images, _) = env.ok(&["images"], None);
    assert!(images.contains("x"), "{images}");
    for dir in ["", "layers", "cache-mounts", "blobs", "cache"] {
        assert_eq!(mode(&store.join(dir)), "700", "{dir}/ was not repaired");
    }
    let reached = reachable_by_nobody(&found);
    assert!(reached.is_empty(), "uid 65534 reaches {reached:?}");
    env.ok(&["build", "--no-cache", "-t", "x:2", s(&ctx)], None);
    let reached = reachable_by_nobody(&dangerous(&store));
    assert!(reached.is_empty(), "uid 65534 reaches {reached:?}");
}

#[test]
fn a_store_root_with_missing_parents_is_created_private() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("var/lib/kiln");
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["--root", s(&root), "images"])
        .env_remove("KILN_ROOT")
        .output()
        .expect("kiln runs");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(mode(&root), "700");
    for dir in ["blobs", "blobs/sha256", "ingest", "layers"] {
        assert_eq!(mode(&root.join(dir)), "700", "{dir}");
    }
}

/// A build whose RUN step reads three copies of the secret `s` (default
/// mode, `mode=0444`, `uid=1000`; and has it as `$TOK`) and then waits, with kiln running, until
/// the test writes to a FIFO in its cache mount.
struct HeldBuild {
    kiln: std::process::Child,
    /// The step's output lines so far.
    log: Vec<String>,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStderr>>,
    fifo: PathBuf,
}

const HELD_DOCKERFILE: &str = "FROM busybox\n\
    RUN --mount=type=secret,id=s,target=/s/default \\\n\
        --mount=type=secret,id=s,env=TOK \\\n\
        --mount=type=secret,id=s,target=/s/open,mode=0444 \\\n\
        --mount=type=secret,id=s,target=/s/other,uid=1000 \\\n\
        --mount=type=cache,id=hold,target=/hold \\\n\
        stat -c 'mode %a %u' /s/default /s/open /s/other && echo RE''ADY && cat /hold/go\n";

/// A build whose RUN step, as uid 65534 (the other host user's id: the
/// user namespace must keep them apart), gets the secret `s` as `$TOK`
/// (`env=TOK`), checks it is there and then waits as [`HELD_DOCKERFILE`]'s
/// does (the FIFO must be open to it).
const HELD_ENV_DOCKERFILE: &str = "FROM busybox\n\
    USER 65534\n\
    RUN --mount=type=secret,id=s,env=TOK \\\n\
        --mount=type=cache,id=hold,target=/hold \\\n\
        test -n \"$TOK\" && echo RE''ADY && cat /hold/go\n";

impl HeldBuild {
    /// Starts the build with `runtime`; returns once the step is waiting.
    fn start(env: &Env, secret: &Path, runtime: &str) -> HeldBuild {
        HeldBuild::start_context(env, secret, runtime, "held", HELD_DOCKERFILE)
    }

    /// Starts the build of `dockerfile` (in the context `name`) with
    /// `runtime`; returns once the step is waiting.
    fn start_context(
        env: &Env,
        secret: &Path,
        runtime: &str,
        name: &str,
        dockerfile: &str,
    ) -> HeldBuild {
        use std::io::BufRead;
        let fifo = hold_fifo(env);
        let ctx = env.path(name);
        if !ctx.exists() {
            env.context(name, &[("Dockerfile", dockerfile)]);
        }
        let mut kiln = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args([
                "build",
                "--no-cache",
                "--progress=plain",
                "--runtime",
                runtime,
            ])
            .arg("--secret")
            .arg(format!("id=s,src={}", s(secret)))
            .arg(&ctx)
            .env("KILN_ROOT", env.path("store"))
            .env("DOCKER_CONFIG", env.path("docker"))
            .env("TMPDIR", held_tmp(env))
            .env("XDG_CONFIG_HOME", env.path("xdg"))
            .env_remove("KILN_CONFIG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kiln runs");
        let stderr = kiln.stderr.take().expect("stderr");
        let mut held = HeldBuild {
            kiln,
            log: Vec::new(),
            lines: std::io::BufReader::new(stderr).lines(),
            fifo,
        };
        loop {
            let Some(Ok(line)) = held.lines.next() else {
                panic!("the build ended early:\n{}", held.log.join("\n"));
            };
            let ready = line.ends_with(" READY");
            held.log.push(line);
            if ready {
                return held;
            }
        }
    }

    /// Lets the step finish, when it still runs; never blocks.
    fn release(&self) {
        use std::os::unix::fs::OpenOptionsExt;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.fifo)
        {
            use std::io::Write;
            let _ = f.write_all(b"go\n");
        }
    }

    /// Releases the step and waits for kiln; returns its whole log.
    fn finish(mut self) -> String {
        self.release();
        while let Some(Ok(line)) = self.lines.next() {
            self.log.push(line);
        }
        let status = self.kiln.wait().expect("wait");
        let log = self.log.join("\n");
        assert!(status.success(), "{log}");
        log
    }
}

impl Drop for HeldBuild {
    /// Leaves nothing waiting should the test fail.
    fn drop(&mut self) {
        self.release();
        let _ = self.kiln.kill();
        let _ = self.kiln.wait();
    }
}

/// The FIFO `go` in the cache mount `hold` (the cache directory exists
/// already), made (0600) if missing.
fn hold_fifo(env: &Env) -> PathBuf {
    use sha2::Digest as _;
    let hold = env
        .path("store/cache-mounts")
        .join(format!("{:x}", sha2::Sha256::digest(b"hold")));
    std::fs::create_dir_all(&hold).expect("mkdir");
    let fifo = hold.join("go");
    if !fifo.exists() {
        let c = std::ffi::CString::new(s(&fifo)).expect("path");
        // SAFETY: c is a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    }
    fifo
}

/// Files under `root` holding `needle`, read as root.
fn holding(root: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(t) = entry.file_type() else { continue };
            if t.is_dir() {
                stack.push(entry.path());
            } else if t.is_file()
                && std::fs::read(entry.path())
                    .is_ok_and(|d| d.windows(needle.len()).any(|w| w == needle))
            {
                hits.push(entry.path());
            }
        }
    }
    hits
}

/// Every path under `root` (as root sees them).
fn all_paths(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(entry.path());
            }
            out.push(entry.path());
        }
    }
    out
}

/// The files holding `needle` among `paths`, and every process's open
/// files, environment, command line and root (`/proc/<pid>/root/s/*`),
/// as uid 65534 reads them, leaving out the processes `skip` (the racers,
/// which know the needle). The needle is looked for here, so that it is
/// in no command line or environment of the reader.
fn read_by_nobody(paths: &[PathBuf], needle: &str, skip: &[u32]) -> Vec<String> {
    let script = r#"for f in "$@" /proc/[0-9]*/fd/* /proc/[0-9]*/root/s/* /proc/[0-9]*/cwd/s/* \
        /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do
        case $f in /proc/*) p=${f#/proc/}; case " $SKIP " in *" ${p%%/*} "*) continue;; esac;; esac
        if [ -f "$f" ]; then printf '\n@@kiln-read %s\n' "$f"; cat "$f" 2>/dev/null; fi
    done"#;
    let skip: Vec<String> = skip.iter().map(u32::to_string).collect();
    let out = Command::new("setpriv")
        .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"])
        .args(["sh", "-c", script, "sh"])
        .args(paths)
        .env("SKIP", skip.join(" "))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("setpriv runs");
    let needle = needle.as_bytes();
    let marker = b"\n@@kiln-read ";
    let mut found = Vec::new();
    let mut rest = &out.stdout[..];
    while let Some(at) = rest.windows(marker.len()).position(|w| w == marker) {
        rest = &rest[at + marker.len()..];
        let end = rest
            .windows(marker.len())
            .position(|w| w == marker)
            .unwrap_or(rest.len());
        let (entry, next) = rest.split_at(end);
        let (name, content) = entry.split_at(entry.iter().position(|b| *b == b'\n').unwrap_or(0));
        if content.windows(needle.len()).any(|w| w == needle) {
            found.push(String::from_utf8_lossy(name).into_owned());
        }
        rest = next;
    }
    found
}

/// A process killed when dropped (should the test fail before it ends).
struct Racer(std::process::Child);

impl Drop for Racer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts uid 65534 reading every place a staged secret was ever put in
/// the store, over and over, until `stop` exists; its output is what it
/// read.
fn racer(store: &Path, stop: &Path) -> Racer {
    let script = r#"store=$1 stop=$2
        while [ ! -e "$stop" ]; do
            for f in "$store"/.tmp*/secret-* "$store"/secrets/*/secret-*; do
                cat "$f" 2>/dev/null
            done
        done"#;
    Command::new("setpriv")
        .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"])
        .args(["sh", "-c", script, "sh"])
        .args([store, stop])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(Racer)
        .expect("setpriv runs")
}

/// The setup of the secret tests: a store (as in `Env`) other users could
/// reach but for its own modes, the secret's source only root can read,
/// and a world-readable control file holding the secret.
fn secret_env(secret: &str) -> (Env, PathBuf, PathBuf) {
    let env = Env::new();
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let source = env.path("secret.txt");
    std::fs::write(&source, secret).expect("write");
    std::fs::set_permissions(&source, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let control = env.path("control.txt");
    std::fs::write(&control, format!("control {secret}")).expect("write");
    std::fs::set_permissions(&control, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    (env, source, control)
}

fn has_runtime(name: &str) -> bool {
    name == "builtin"
        || std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

#[test]
fn other_users_cannot_read_secrets_while_the_step_runs() {
    if !is_root() {
        eprintln!("skipped: needs root (to build and to act as uid 65534)");
        return;
    }
    let secret = format!("kiln-held-secret-{}", std::process::id());
    let (env, source, control) = secret_env(&secret);
    let store = env.path("store");
    for runtime in ["builtin", "runc", "crun"] {
        if !has_runtime(runtime) {
            eprintln!("{runtime}: not installed, skipped");
            continue;
        }
        let stop = env.path(&format!("stop-{runtime}"));
        let mut racer = racer(&store, &stop);
        let mut watcher = start_inotify_racer(&store, &stop, &secret);
        let held = HeldBuild::start(&env, &source, runtime);
        let log = held.log.join("\n");
        for want in ["mode 400 0", "mode 444 0", "mode 400 1000"] {
            assert!(log.contains(want), "{runtime}: no {want:?} in\n{log}");
        }
        // Every path of the store, the processes' files and roots, and
        // the control file (which shows the reader works).
        let mut paths = all_paths(&store);
        paths.push(control.clone());
        let read = read_by_nobody(&paths, &secret, &[racer.0.id(), watcher.0.id()]);
        assert_eq!(
            read,
            vec![s(&control).to_string()],
            "{runtime}: uid 65534 read the secret (only the control file may hold it)"
        );
        held.finish();
        std::fs::write(&stop, "").expect("stop");
        let mut raced = String::new();
        if let Some(mut out) = racer.0.stdout.take() {
            std::io::Read::read_to_string(&mut out, &mut raced).expect("racer");
        }
        assert!(
            !raced.contains(&secret),
            "{runtime}: the racer read {raced}"
        );
        let mut watched = String::new();
        if let Some(mut out) = watcher.0.stdout.take() {
            std::io::Read::read_to_string(&mut out, &mut watched).expect("watcher");
        }
        assert!(
            !watched.contains("READ"),
            "{runtime}: the inotify racer read {watched}"
        );
        let left = holding(&store, secret.as_bytes());
        assert!(left.is_empty(), "{runtime}: secret left in {left:?}");
    }
}

/// The `$TMPDIR` of held builds (0755, as `/tmp` lets anyone through).
fn held_tmp(env: &Env) -> PathBuf {
    let tmp = env.path("tmp");
    std::fs::create_dir_all(&tmp).expect("mkdir");
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    tmp
}

/// The per-run scratch directories of the held build `pid` of `env`.
fn scratch_dirs(env: &Env, pid: u32) -> Vec<PathBuf> {
    // `kiln-run-<pid>x<hex>-…` (older kilns: `kiln-run-<pid>-…`).
    let prefixes = [format!("kiln-run-{pid}x"), format!("kiln-run-{pid}-")];
    // In the store's `runs/` (older kilns: $TMPDIR).
    let mut dirs: Vec<PathBuf> = [held_tmp(env), env.path("store").join("runs")]
        .iter()
        .flat_map(std::fs::read_dir)
        .flatten()
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            prefixes.iter().any(|p| name.starts_with(p))
        })
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs
}

/// The bundle's `config.json` of the run in `scratch` as each process
/// that holds `needle` sees it (`/proc/<pid>/root/<scratch>/secrets/…`),
/// read as root.
fn bundle_configs(scratch: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let rel = scratch.join("secrets/config.json");
    let rel = rel.strip_prefix("/").expect("absolute");
    std::fs::read_dir("/proc")
        .expect("read_dir")
        .flatten()
        .map(|e| e.path().join("root").join(rel))
        .filter(|p| std::fs::read(p).is_ok_and(|d| d.windows(needle.len()).any(|w| w == needle)))
        .collect()
}

/// The owners of the processes whose environment holds `needle`, read as
/// root.
fn environ_owners(needle: &[u8]) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("read_dir")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read(e.path().join("environ"))
                .is_ok_and(|d| d.windows(needle.len()).any(|w| w == needle))
        })
        .filter_map(|e| e.metadata().ok().map(|m| m.uid()))
        .collect()
}

#[test]
fn other_users_cannot_read_env_secrets_while_the_step_runs() {
    if !is_root() {
        eprintln!("skipped: needs root (to build and to act as uid 65534)");
        return;
    }
    let secret = format!("kiln-env-secret-{}", std::process::id());
    let (env, source, control) = secret_env(&secret);
    let fifo = hold_fifo(&env);
    std::fs::set_permissions(&fifo, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    for runtime in ["builtin", "runc", "crun"] {
        if !has_runtime(runtime) {
            eprintln!("{runtime}: not installed, skipped");
            continue;
        }
        let held =
            HeldBuild::start_context(&env, &source, runtime, "held-env", HELD_ENV_DOCKERFILE);
        let scratch = scratch_dirs(&env, held.kiln.id());
        assert_eq!(
            scratch.len(),
            1,
            "{runtime}: scratch directories {scratch:?}"
        );
        assert_eq!(
            mode(&scratch[0]),
            "700",
            "{runtime}: {}",
            scratch[0].display()
        );
        // Nothing on disk holds the secret…
        let on_disk = holding(&scratch[0], secret.as_bytes());
        assert!(on_disk.is_empty(), "{runtime}: {on_disk:?}");
        let mut paths = all_paths(&scratch[0]);
        if runtime != "builtin" {
            // … but the bundle does, in the runtime's mount namespace (so
            // the read below would find it)…
            let configs = bundle_configs(&scratch[0], secret.as_bytes());
            assert!(
                !configs.is_empty(),
                "{runtime}: no config.json has the secret"
            );
            paths.extend(configs);
        }
        // … and so does the environment of the step, which runs as the
        // reader's host uid.
        let owners = environ_owners(secret.as_bytes());
        assert!(
            owners.contains(&65534),
            "{runtime}: no process of uid 65534 has the secret in its environment: {owners:?}"
        );
        paths.push(scratch[0].clone());
        paths.push(control.clone());
        let read = read_by_nobody(&paths, &secret, &[]);
        assert_eq!(
            read,
            vec![s(&control).to_string()],
            "{runtime}: uid 65534 read the secret (only the control file may hold it)"
        );
        held.finish();
        assert!(
            !scratch[0].exists(),
            "{runtime}: the scratch directory stays"
        );
    }
}

/// Whether some process sees `needle` in `/proc/<pid>/root/s/default`
/// (the held step's secret), read as root.
fn a_step_sees(needle: &[u8]) -> bool {
    std::fs::read_dir("/proc")
        .expect("read_dir")
        .flatten()
        .any(|e| {
            std::fs::read(e.path().join("root/s/default"))
                .is_ok_and(|d| d.windows(needle.len()).any(|w| w == needle))
        })
}

/// The cgroups named `id` (runc names a run's cgroups after its scratch
/// directory), v1 and v2.
fn cgroups_of(id: &std::ffi::OsStr) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut found: Vec<PathBuf> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join(id))
        .chain([root.join(id)])
        .filter(|p| p.is_dir())
        .collect();
    found.sort();
    found.dedup();
    found
}

/// Whether the cgroup `dir` has no process.
fn is_empty(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("cgroup.procs")).is_ok_and(|p| p.trim().is_empty())
}

#[test]
fn a_killed_build_leaves_no_secret_on_disk() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let secret = format!("kiln-killed-secret-{}", std::process::id());
    let (env, source, control) = secret_env(&secret);
    for runtime in ["builtin", "runc", "crun"] {
        if !has_runtime(runtime) {
            eprintln!("{runtime}: not installed, skipped");
            continue;
        }
        let mut held = HeldBuild::start(&env, &source, runtime);
        let pid = held.kiln.id();
        // The step has its secret files, and they are on no disk: not in
        // the store, the test's directory or the run's scratch directory.
        assert!(
            a_step_sees(secret.as_bytes()),
            "{runtime}: no step sees the secret"
        );
        let on_disk = |scratch: &[PathBuf]| {
            let mut found = holding(env.dir.path(), secret.as_bytes());
            for dir in scratch {
                found.extend(holding(dir, secret.as_bytes()));
            }
            found.sort();
            found
        };
        let scratch = scratch_dirs(&env, pid);
        assert_eq!(
            scratch.len(),
            1,
            "{runtime}: scratch directories {scratch:?}"
        );
        let want = vec![control.clone(), source.clone()];
        assert_eq!(on_disk(&scratch), want, "{runtime}: while the step runs");
        held.kiln.kill().expect("SIGKILL");
        held.kiln.wait().expect("wait");
        // Right after the kill, before any kiln opens the store again.
        assert_eq!(on_disk(&scratch), want, "{runtime}: after kill -9");
        held.release();
        drop(held);
        // The step dies with kiln; then what the next kiln would sweep
        // (the scratch directory, runc's cgroups) goes.
        let id = scratch[0].file_name().expect("name");
        let mut gone = false;
        for _ in 0..600 {
            gone = !a_step_sees(secret.as_bytes()) && cgroups_of(id).iter().all(|c| is_empty(c));
            if gone {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(gone, "{runtime}: the step outlives the killed kiln");
        kiln_executor::sweep_stale(&env.path("store").join("runs"));
        assert!(!scratch[0].exists(), "{runtime}: not swept");
        assert_eq!(cgroups_of(id), Vec::<PathBuf>::new(), "{runtime}");
    }
}

/// Starts uid 65534 watching the store with inotify (this test binary's
/// `inotify_racer`) until `stop` exists: it reads every file created or
/// changed in a directory it can watch, the moment the kernel reports it,
/// and prints `READ <path>` for those that hold `needle`.
fn start_inotify_racer(store: &Path, stop: &Path, needle: &str) -> Racer {
    Command::new("setpriv")
        .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"])
        .arg(std::env::current_exe().expect("test binary"))
        .args(["--exact", "inotify_racer", "--ignored", "--nocapture"])
        .env("KILN_RACE_STORE", store)
        .env("KILN_RACE_STOP", stop)
        .env("KILN_RACE_NEEDLE", needle)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(Racer)
        .expect("setpriv runs")
}

/// Not a test: the body of [`start_inotify_racer`] (does nothing when run
/// without its environment).
#[test]
#[ignore = "run by other_users_cannot_read_secrets_while_the_step_runs"]
fn inotify_racer() {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let (Some(store), Some(stop), Some(needle)) = (
        std::env::var_os("KILN_RACE_STORE"),
        std::env::var_os("KILN_RACE_STOP"),
        std::env::var_os("KILN_RACE_NEEDLE"),
    ) else {
        return;
    };
    let (stop, needle) = (PathBuf::from(stop), needle.as_bytes().to_vec());
    // SAFETY: plain syscall.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    assert!(fd >= 0, "inotify_init1");
    let mask = libc::IN_CREATE | libc::IN_MODIFY | libc::IN_ATTRIB | libc::IN_CLOSE_WRITE;
    let mut dirs: std::collections::HashMap<i32, PathBuf> = Default::default();
    let watch = |dirs: &mut std::collections::HashMap<i32, PathBuf>, dir: &Path| {
        let c = CString::new(dir.as_os_str().as_bytes()).expect("path");
        // SAFETY: c is a NUL-terminated path.
        let wd = unsafe { libc::inotify_add_watch(fd, c.as_ptr(), mask) };
        if wd >= 0 {
            dirs.insert(wd, dir.to_path_buf());
        } else {
            println!("cannot watch {}", dir.display());
        }
    };
    let mut pending = vec![PathBuf::from(store)];
    while let Some(dir) = pending.pop() {
        watch(&mut dirs, &dir);
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                pending.push(e.path());
            }
        }
    }
    if dirs.is_empty() {
        return;
    }
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.exists() {
        let mut poll = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd. The timeout only lets it see `stop`.
        if unsafe { libc::poll(&mut poll, 1, 50) } <= 0 {
            continue;
        }
        // SAFETY: buf is writable for its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        let mut at = 0usize;
        while n > 0 && at + 16 <= n as usize {
            let word = |i: usize| {
                let b = &buf[at + i..at + i + 4];
                u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
            };
            let (wd, event, len) = (word(0) as i32, word(4), word(12) as usize);
            let name: Vec<u8> = buf[at + 16..at + 16 + len]
                .iter()
                .copied()
                .take_while(|b| *b != 0)
                .collect();
            at += 16 + len;
            let Some(dir) = dirs.get(&wd).cloned() else {
                continue;
            };
            let path = dir.join(std::ffi::OsStr::from_bytes(&name));
            if event & libc::IN_ISDIR != 0 {
                watch(&mut dirs, &path);
            } else if std::fs::read(&path)
                .is_ok_and(|d| d.windows(needle.len()).any(|w| w == needle))
            {
                println!("READ {}", path.display());
            }
        }
    }
}
