//! `kiln du`, `kiln prune` and the config file's `gc.max-storage`,
//! `runtime` and `jobs`, through real builds of the binary.

mod common;

use common::{s, Env};
use std::path::Path;
use std::process::Command;

/// Allocated bytes under `dir` as `du -sk` counts them (each inode once).
fn du_bytes(dir: &Path) -> u64 {
    let out = Command::new("du")
        .arg("-sk")
        .arg(dir)
        .output()
        .expect("du runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let kib: u64 = text
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("du prints a number");
    kib * 1024
}

/// Reads `12.35MB`-style sizes back into bytes (decimal units).
fn parse_docker_size(text: &str) -> u64 {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (n, unit) = text.split_at(split);
    let n: f64 = n.parse().expect("a number");
    let scale = match unit {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        other => panic!("unit {other:?}"),
    };
    (n * scale) as u64
}

/// The `Total:` line of `kiln du`, in bytes.
fn du_total(env: &Env) -> u64 {
    let out = env.ok(&["du"], None).0;
    let line = out
        .lines()
        .find(|l| l.starts_with("Total:"))
        .unwrap_or_else(|| panic!("no Total line:\n{out}"));
    parse_docker_size(line.trim_start_matches("Total:").trim())
}

/// The SIZE column of a `kiln du` row, in bytes.
fn du_row(out: &str, label: &str) -> u64 {
    let line = out
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label} row:\n{out}"));
    let size = line[label.len()..]
        .split_whitespace()
        .nth(1)
        .expect("size column");
    parse_docker_size(size)
}

fn write_config(env: &Env, text: &str) -> std::path::PathBuf {
    let path = env.path("xdg/kiln/config.toml");
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, text).expect("write config");
    path
}

/// Runs kiln like `Env::run` with extra environment variables.
fn run_with_env(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = env.command(env!("CARGO_BIN_EXE_kiln"));
    cmd.args(args).env_remove("KILN_RUNTIME");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output().expect("kiln runs")
}

/// A build whose `big` stage (2 MB of random bytes) is only build cache:
/// the final image copies a small file out of it.
const MULTI: &str = "FROM busybox AS big\n\
     RUN head -c 2000000 /dev/urandom > /big && echo small > /small\n\
     FROM busybox\n\
     COPY --from=big /small /small\n\
     RUN --mount=type=cache,id=pkg-cache,target=/var/cache/pkg \\\n\
         head -c 300000 /dev/urandom > /var/cache/pkg/blob && echo done > /done\n";

// `kiln du` counts allocated blocks, each inode once, and gives every path
// under the store root to exactly one entry; so its Total is what `du -sk`
// says. Tolerance: Total is printed with four significant digits (at most
// 0.05% off) and `du -sk` rounds up to KiB; 8 KiB more covers a directory
// block either way. Nothing writes to the store in between.
#[test]
fn du_total_is_what_is_on_disk_and_shows_cache_mounts() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", MULTI)]);
    env.ok(&["build", "-t", "app", s(&ctx)], None);

    let store = env.path("store");
    let on_disk = du_bytes(&store);
    let total = du_total(&env);
    let tolerance = on_disk / 2000 + 8192;
    assert!(
        total.abs_diff(on_disk) <= tolerance,
        "kiln du says {total}, du -sk says {on_disk}"
    );
    // The rows add up to the total too.
    let out = env.ok(&["du"], None).0;
    let rows: u64 = [
        "Images",
        "Build cache",
        "Unpacked layers",
        "Cache mounts",
        "Context caches",
        "Downloads",
        "Other",
    ]
    .iter()
    .map(|l| du_row(&out, l))
    .sum();
    assert!(rows.abs_diff(total) <= tolerance, "{out}");
    // The 2 MB layer of the big stage is build cache (blob and directory),
    // the cache mount holds 300 kB.
    assert!(du_row(&out, "Build cache") >= 4_000_000, "{out}");
    assert!(du_row(&out, "Cache mounts") >= 300_000, "{out}");

    let verbose = env.ok(&["du", "--verbose"], None).0;
    let mount = verbose
        .split("\n\n")
        .find(|e| e.contains("ID:\t\tpkg-cache"))
        .unwrap_or_else(|| panic!("no cache mount entry:\n{verbose}"));
    assert!(mount.contains("Kind:\t\tcache mount"), "{mount}");
    assert!(mount.contains("Last used:\t"), "{mount}");
    assert!(mount.contains("kiln prune --all"), "{mount}");
}

#[test]
fn prune_removes_build_cache_and_keeps_images_working() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", MULTI)]);
    env.ok(&["build", "-t", "app", s(&ctx)], None);
    let store = env.path("store");
    let before = du_bytes(&store);

    let (out, _) = env.ok(&["prune"], None);
    assert!(out.contains("Deleted build cache objects:"), "{out}");
    assert!(out.contains("Total:"), "{out}");
    let after = du_bytes(&store);
    assert!(
        before - after >= 4_000_000,
        "the big stage's blob and layer go: {before} -> {after}"
    );
    // The cache mount stays without --all; nothing default-prunable is left.
    let du = env.ok(&["du"], None).0;
    assert!(du_row(&du, "Cache mounts") >= 300_000, "{du}");
    assert!(du.contains("Reclaimable:\t0B (kiln prune)"), "{du}");

    // The image still works: it exports, and a rebuild re-runs the pruned
    // step and gives the same files.
    assert!(env.images().contains("app"));
    env.ok(&["save", "app", "-o", s(&env.path("app.tar"))], None);
    let (_, log) = env.ok(
        &["build", "--progress", "plain", "-t", "app", s(&ctx)],
        None,
    );
    assert!(
        log.contains("cache miss: the cached result was removed"),
        "{log}"
    );
    assert_eq!(log.matches("CACHED").count(), 2, "{log}");

    // --all takes cache mounts and unpacked image layers as well.
    let (out, _) = env.ok(&["prune", "--all"], None);
    assert!(out.contains("cache mount"), "{out}");
    let du = env.ok(&["du"], None).0;
    assert_eq!(du_row(&du, "Cache mounts"), 0, "{du}");
    assert_eq!(du_row(&du, "Unpacked layers"), 0, "{du}");
    assert_eq!(du_row(&du, "Build cache"), 0, "{du}");
    env.ok(&["save", "app", "-o", s(&env.path("app2.tar"))], None);
    let out_dir = env.path("out");
    env.ok(&["build", "-o", s(&out_dir), s(&ctx)], None);
    assert_eq!(
        std::fs::read_to_string(out_dir.join("small")).expect("small"),
        "small\n"
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.join("done")).expect("done"),
        "done\n"
    );
}

#[test]
fn prune_filter_until_keeps_recent_entries() {
    let env = Env::new();
    let dockerfile = format!("{MULTI}COPY f /f\n");
    let ctx = env.context("ctx", &[("Dockerfile", &dockerfile), ("f", "x")]);
    env.ok(&["build", "-t", "app", s(&ctx)], None);
    let store = env.path("store");
    // Everything was used seconds ago: nothing is older than an hour.
    let before = du_bytes(&store);
    let (out, _) = env.ok(&["prune", "--all", "--filter", "until=1h"], None);
    assert!(!out.contains("Deleted build cache objects"), "{out}");
    assert_eq!(du_bytes(&store), before);

    // Age the context checksum cache by two days: only it goes.
    let contexts = store.join("contexts");
    let names: Vec<_> = std::fs::read_dir(&contexts)
        .expect("contexts")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(names.len(), 1);
    let ok = Command::new("touch")
        .args(["-d", "2 days ago"])
        .arg(&names[0])
        .status()
        .expect("touch");
    assert!(ok.success());
    let (out, _) = env.ok(&["prune", "--filter", "until=24h"], None);
    assert!(out.contains("context cache"), "{out}");
    assert!(!out.contains("\tbuild cache\t"), "{out}");
    assert!(!names[0].exists());
    assert!(du_bytes(&store) + 4_000_000 > before, "the rest stays");

    // A layer conversion record (zstd output) is build cache that ages.
    let oci = env.path("zstd-oci");
    env.ok(
        &[
            "build",
            "-o",
            &format!("type=oci,dest={},compression=zstd", s(&oci)),
            s(&ctx),
        ],
        None,
    );
    let memos: Vec<_> = std::fs::read_dir(store.join("exports"))
        .expect("exports")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(!memos.is_empty());
    for memo in &memos {
        let ok = Command::new("touch")
            .args(["-d", "2 days ago"])
            .arg(memo)
            .status()
            .expect("touch");
        assert!(ok.success());
    }
    let (out, _) = env.ok(&["prune", "--filter", "until=24h"], None);
    assert!(out.contains(".json\tbuild cache\t"), "{out}");
    assert!(memos.iter().all(|m| !m.exists()), "{out}");

    let err = env.fails(&["prune", "--filter", "label=x"], None);
    assert!(err.contains("until="), "{err}");
}

#[test]
fn keep_storage_leaves_the_store_under_the_limit() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", MULTI)]);
    env.ok(&["build", "-t", "app", s(&ctx)], None);
    let store = env.path("store");
    let before = du_bytes(&store);
    // 1 MB under what it takes: the oldest entries go until it fits, and
    // the rest stays.
    let limit = before - 1_000_000;
    let (out, _) = env.ok(
        &["prune", "--all", "--keep-storage", &limit.to_string()],
        None,
    );
    assert!(out.contains("Deleted build cache objects"), "{out}");
    let after = du_bytes(&store);
    assert!(after <= limit, "{after} > {limit}\n{out}");
    assert!(after > before / 4, "not everything goes: {after}\n{out}");
    // Already under: nothing more goes.
    let (out, _) = env.ok(&["prune", "--keep-storage", "1GB"], None);
    assert!(!out.contains("Deleted build cache objects"), "{out}");
    let err = env.fails(&["prune", "--keep-storage", "lots"], None);
    assert!(err.contains("--keep-storage"), "{err}");
}

#[test]
fn max_storage_is_applied_after_each_build() {
    let env = Env::new();
    let big = env.context("big", &[("Dockerfile", MULTI)]);
    env.ok(&["build", "-t", "app", s(&big)], None);
    let store = env.path("store");
    let with_big = du_bytes(&store);

    // A cap 2 MB under that: the next build removes the big stage's cache
    // (least recently used) but nothing the build itself used.
    let limit = with_big - 2_000_000;
    // What the cap spares is what was used since the build began.
    std::thread::sleep(std::time::Duration::from_secs(1));
    write_config(&env, &format!("[gc]\nmax-storage = \"{limit}\"\n"));
    let small = env.context(
        "small",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo one > /one\nRUN echo two > /two\n",
        )],
    );
    let (_, log) = env.ok(&["build", "-t", "small", s(&small)], None);
    assert!(log.contains("gc.max-storage"), "{log}");
    let after = du_bytes(&store);
    assert!(after <= limit, "{after} > {limit}\n{log}");
    // What that build used is still cached, and both images still work.
    let (_, log) = env.ok(
        &["build", "--progress", "plain", "-t", "small", s(&small)],
        None,
    );
    assert_eq!(log.matches("CACHED").count(), 2, "{log}");

    // A cap nothing can meet: everything goes but what the build used.
    write_config(&env, "[gc]\nmax-storage = 1\n");
    std::thread::sleep(std::time::Duration::from_secs(1));
    env.ok(&["build", "-t", "small", s(&small)], None);
    let du = env.ok(&["du"], None).0;
    assert_eq!(du_row(&du, "Cache mounts"), 0, "{du}");
    let (_, log) = env.ok(
        &["build", "--progress", "plain", "-t", "small", s(&small)],
        None,
    );
    assert_eq!(log.matches("CACHED").count(), 2, "{log}");
    env.ok(
        &["save", "app", "small", "-o", s(&env.path("both.tar"))],
        None,
    );
}

#[test]
fn config_errors_name_the_key_and_the_file() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", "FROM busybox\nRUN true\n")]);
    for (text, key) in [
        ("jobs = 0\n", "jobs = 0"),
        ("jobs = \"many\"\n", "jobs = \"many\""),
        ("runtime = 5\n", "runtime = 5"),
        (
            "[gc]\nmax-storage = \"lots\"\n",
            "gc.max-storage = \"lots\"",
        ),
        ("[gc]\nmaxStorage = \"1GB\"\n", "maxStorage"),
    ] {
        let path = write_config(&env, text);
        let err = env.fails(&["build", s(&ctx)], None);
        assert!(err.contains(key), "{text}: {err}");
        assert!(err.contains(s(&path)), "{text}: {err}");
    }
}

#[test]
fn runtime_from_the_config_is_used_unless_the_flag_or_env_says_otherwise() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", "FROM busybox\nRUN true\n")]);
    let path = write_config(&env, "runtime = \"no-such-runtime\"\n");
    let err = env.fails(&["build", s(&ctx)], None);
    assert!(err.contains("runtime = no-such-runtime"), "{err}");
    assert!(err.contains(s(&path)), "{err}");
    // The flag and KILN_RUNTIME win over the config.
    env.ok(&["build", "--runtime", "builtin", s(&ctx)], None);
    let out = run_with_env(
        &env,
        &["build", "--no-cache", s(&ctx)],
        &[("KILN_RUNTIME", "builtin")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two independent stages append `start`/`end` around a sleep to a shared
/// cache mount; the last stage copies the log out. With one job they run
/// one after the other.
fn jobs_log(env: &Env, extra: &[&str]) -> String {
    let ctx = env.context(
        "jobs",
        &[(
            "Dockerfile",
            "FROM busybox AS a\n\
             RUN --mount=type=cache,id=log,target=/c sh -c 'echo start >> /c/log; sleep 1; echo end >> /c/log' && touch /a\n\
             FROM busybox AS b\n\
             RUN --mount=type=cache,id=log,target=/c sh -c 'echo start >> /c/log; sleep 1; echo end >> /c/log' && touch /b\n\
             FROM busybox\n\
             COPY --from=a /a /a\n\
             COPY --from=b /b /b\n\
             RUN --mount=type=cache,id=log,target=/c cp /c/log /log\n",
        )],
    );
    let out = env.path("jobs-out");
    let mut args = vec!["build", "-o", s(&out)];
    args.extend_from_slice(extra);
    args.push(s(&ctx));
    env.ok(&args, None);
    std::fs::read_to_string(out.join("log"))
        .expect("log")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn jobs_from_the_config_is_used_unless_the_flag_says_otherwise() {
    let serial = Env::new();
    write_config(&serial, "jobs = 1\n");
    assert_eq!(jobs_log(&serial, &[]), "start end start end");

    let parallel = Env::new();
    write_config(&parallel, "jobs = 1\n");
    assert_eq!(jobs_log(&parallel, &["--jobs", "2"]), "start start end end");
}

#[test]
fn by_default_more_steps_wait_at_once_than_there_are_cores() {
    // Four stages that each log start, wait, log end: with the default
    // --jobs (16, not the core count) all four start before any ends,
    // whatever the machine's cores.
    let env = Env::new();
    let mut dockerfile = String::new();
    for i in 0..4 {
        dockerfile.push_str(&format!(
            "FROM busybox AS s{i}\n\
             RUN --mount=type=cache,id=log,target=/c sh -c 'echo start >> /c/log; \
             n=0; while [ $(grep -c start /c/log) -lt 4 ] && [ $n -lt 60 ]; do sleep 1; n=$((n+1)); done; \
             echo end >> /c/log' && touch /s{i}\n"
        ));
    }
    dockerfile.push_str("FROM busybox\n");
    for i in 0..4 {
        dockerfile.push_str(&format!("COPY --from=s{i} /s{i} /s{i}\n"));
    }
    dockerfile.push_str("RUN --mount=type=cache,id=log,target=/c cp /c/log /log\n");
    let ctx = env.context("wait", &[("Dockerfile", dockerfile.as_str())]);
    let out = env.path("wait-out");
    env.ok(&["build", "-o", s(&out), s(&ctx)], None);
    let log = std::fs::read_to_string(out.join("log")).expect("log");
    let words: Vec<&str> = log.split_whitespace().collect();
    assert_eq!(
        words,
        ["start", "start", "start", "start", "end", "end", "end", "end"],
        "{log}"
    );
}
