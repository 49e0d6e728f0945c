//! Build records and the timeline (issue 19, item 4): every `kiln build`
//! and each target of `kiln bake` leaves a record in the store; `kiln
//! builds` lists them, `show` prints the steps, `trace` and `--trace`
//! write the Chrome trace event format; `kiln prune` removes them; no
//! secret or build-arg value is ever in one; a read-only store gets none
//! and still builds; Ctrl-C leaves a cancelled one. Needs root (RUN
//! sandboxes); elsewhere each test says why it is skipped.

mod common;

use common::{s, Env};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Skips (with the reason) a test that needs RUN sandboxes.
macro_rules! needs_root {
    () => {
        if !is_root() {
            eprintln!("skipped: RUN steps need root here");
            return;
        }
    };
}

/// The records `kiln builds --format json` lists, newest first.
fn records(env: &Env) -> Vec<Value> {
    let out = env.ok(&["builds", "--format", "json"], None).0;
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn steps(record: &Value) -> &Vec<Value> {
    record["steps"].as_array().expect("steps")
}

/// The step whose name contains `part`.
fn step<'a>(record: &'a Value, part: &str) -> &'a Value {
    steps(record)
        .iter()
        .find(|s| s["name"].as_str().is_some_and(|n| n.contains(part)))
        .unwrap_or_else(|| panic!("no step {part:?} in {record:#}"))
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// The record files in the store.
fn record_files(env: &Env) -> Vec<PathBuf> {
    match std::fs::read_dir(env.path("store").join("builds")) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn a_build_is_recorded_with_its_steps_and_a_rebuild_is_all_cached() {
    needs_root!();
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", "FROM busybox\nRUN echo hi > /hi\nCOPY f /f\n"),
            ("f", "file\n"),
        ],
    );
    env.ok(&["build", "-t", "rec:1", s(&ctx)], None);
    let list = records(&env);
    assert_eq!(list.len(), 1, "{list:#?}");
    let first = &list[0];
    assert_eq!(first["status"], "completed");
    assert_eq!(first["name"], "rec:1");
    assert_eq!(first["tags"], serde_json::json!(["rec:1"]));
    assert_eq!(first["context"], s(&ctx));
    let run = step(first, "RUN echo hi > /hi");
    assert_eq!(run["state"], "built");
    assert!(
        run["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{run}"
    );
    assert!(run["bytes"].as_u64().is_some_and(|b| b > 0), "{run}");
    assert!(
        run["digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:")),
        "{run}"
    );
    assert!(run["end_ms"].as_f64() >= run["start_ms"].as_f64(), "{run}");
    assert_eq!(step(first, "COPY f /f")["state"], "built");
    assert_eq!(steps(first).len(), 3, "base image, RUN, COPY: {first:#}");

    env.ok(&["build", "-t", "rec:1", s(&ctx)], None);
    let list = records(&env);
    assert_eq!(list.len(), 2);
    let again = &list[0];
    assert_ne!(again["id"], first["id"]);
    assert_eq!(steps(again).len(), 3);
    for st in steps(again) {
        assert_eq!(st["state"], "cached", "{st}");
    }
    // The same vertices, so a graph can be coloured from the record.
    let digests =
        |r: &Value| -> Vec<Value> { steps(r).iter().map(|s| s["digest"].clone()).collect() };
    assert_eq!(digests(again), digests(first));

    // The table, `show` by prefix and by offset, `rm`.
    let table = env.ok(&["builds"], None).0;
    let header: Vec<&str> = table
        .lines()
        .next()
        .expect("header")
        .split("   ")
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    assert_eq!(
        header,
        ["BUILD ID", "NAME", "STATUS", "CREATED AT", "DURATION"],
        "{table}"
    );
    let first_id = first["id"].as_str().expect("id");
    assert!(
        table.contains(first_id) && table.contains("Completed"),
        "{table}"
    );
    let shown = env.ok(&["builds", "show", &first_id[..20]], None).0;
    assert!(
        shown.contains(&format!("ID:             {first_id}")),
        "{shown}"
    );
    assert!(
        shown.contains("RUN echo hi > /hi") && shown.contains("Build Steps:    3 (0 cached, 0%)"),
        "{shown}"
    );
    let older = env.ok(&["builds", "show", "^1"], None).0;
    assert_eq!(older, shown);
    let latest = env.ok(&["builds", "show"], None).0;
    assert!(
        latest.contains("CACHED") && latest.contains("3 (3 cached, 100%)"),
        "{latest}"
    );
    let err = env.fails(&["builds", "show", "0000000000"], None);
    assert!(err.contains("no build record \"0000000000\""), "{err}");
    env.ok(&["builds", "rm", first_id], None);
    let left: Vec<Value> = records(&env).iter().map(|r| r["id"].clone()).collect();
    assert_eq!(left, [again["id"].clone()]);
    let removed = env.ok(&["builds", "rm", "--all"], None).0;
    assert_eq!(removed.trim(), again["id"].as_str().expect("id"));
    assert!(records(&env).is_empty());
    let err = env.fails(&["builds", "--format", "yaml"], None);
    assert!(err.contains("--format \"yaml\""), "{err}");
}

#[test]
fn a_failing_build_is_recorded_as_failed_with_its_error() {
    needs_root!();
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo SOME-OUTPUT-LINE && exit 3\n",
        )],
    );
    env.fails(&["build", s(&ctx)], None);
    let list = records(&env);
    assert_eq!(list.len(), 1);
    let r = &list[0];
    assert_eq!(r["status"], "failed");
    let error = r["error"].as_str().expect("error");
    assert!(
        error.starts_with("Dockerfile:2:1: process") && error.ends_with("exit code: 3"),
        "{error}"
    );
    let run = step(r, "RUN echo SOME-OUTPUT-LINE");
    assert_eq!(run["state"], "failed");
    assert!(
        run["error"]
            .as_str()
            .is_some_and(|e| e.contains("exit code: 3")),
        "{run}"
    );
    // The process's output is not kept.
    let file = std::fs::read_to_string(&record_files(&env)[0]).expect("record");
    assert!(
        !file.contains("SOME-OUTPUT-LINE\\n") && !file.contains("> SOME-OUTPUT-LINE"),
        "{file}"
    );
    let table = env.ok(&["builds"], None).0;
    assert!(
        table.lines().nth(1).is_some_and(|l| l.contains("Error")),
        "{table}"
    );
}

/// Two stages that each sleep, and a last stage reading both: with two
/// jobs, the sleeps run at once, so their intervals overlap and the trace
/// puts them on different lanes. (An ordering fact, not a timing one: both
/// RUN steps start before either ends whenever two jobs run them.)
#[test]
fn parallel_stages_overlap_in_the_trace_and_every_step_is_one_event() {
    needs_root!();
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox AS a\nRUN sleep 2 && echo a > /a\n\
             FROM busybox AS b\nRUN sleep 2 && echo b > /b\n\
             FROM busybox\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n",
        )],
    );
    let trace_file = env.path("trace.json");
    env.ok(
        &["build", "--jobs", "2", "--trace", s(&trace_file), s(&ctx)],
        None,
    );
    let trace = read_json(&trace_file);
    let events = trace["traceEvents"].as_array().expect("traceEvents");
    let x: Vec<&Value> = events.iter().filter(|e| e["ph"] == "X").collect();
    let record = &records(&env)[0];
    assert_eq!(x.len(), steps(record).len(), "{trace:#}");
    assert_eq!(x.len(), 5, "base, two RUNs, two COPYs");
    let event = |part: &str| {
        *x.iter()
            .find(|e| e["name"].as_str().is_some_and(|n| n.contains(part)))
            .unwrap_or_else(|| panic!("no event {part}"))
    };
    let (a, b) = (event("echo a > /a"), event("echo b > /b"));
    let span = |e: &Value| {
        let ts = e["ts"].as_u64().expect("ts");
        (ts, ts + e["dur"].as_u64().expect("dur"))
    };
    let ((a0, a1), (b0, b1)) = (span(a), span(b));
    assert!(a0 < b1 && b0 < a1, "the sleeps overlap: {a} {b}");
    assert_ne!(a["tid"], b["tid"], "on separate lanes");
    assert_eq!(a["args"]["cached"], false);
    assert_eq!(a["args"]["digest"], step(record, "echo a > /a")["digest"]);
    // Every lane used is named.
    for e in &x {
        assert!(
            events
                .iter()
                .any(|m| m["ph"] == "M" && m["name"] == "thread_name" && m["tid"] == e["tid"]),
            "{e}"
        );
    }
    // `kiln builds trace` writes the same timeline from the record.
    let again = env.path("again.json");
    env.ok(&["builds", "trace", "latest", "-o", s(&again)], None);
    assert_eq!(read_json(&again), trace);
}

#[test]
fn prune_removes_records_and_du_counts_them() {
    needs_root!();
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", "FROM busybox\nRUN echo x > /x\n")]);
    env.ok(&["build", s(&ctx)], None);
    assert_eq!(records(&env).len(), 1);
    let du = env.ok(&["du", "--verbose"], None).0;
    assert!(du.contains("Description:\tbuild record"), "{du}");
    // Newer than the filter: kept.
    env.ok(&["prune", "-f", "--filter", "until=1h"], None);
    assert_eq!(records(&env).len(), 1);
    let pruned = env.ok(&["prune", "-f"], None).0;
    assert!(pruned.contains("build cache"), "{pruned}");
    assert!(records(&env).is_empty());
    assert!(record_files(&env).is_empty());
}

#[test]
fn secret_and_build_arg_values_never_reach_the_record() {
    needs_root!();
    let env = Env::new();
    let secret = env.path("secret.txt");
    std::fs::write(&secret, "s3cr3t-VALUE-9431").expect("secret");
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox\nARG TOKEN\n\
             RUN --mount=type=secret,id=s cat /run/secrets/s && echo $TOKEN\n",
        )],
    );
    env.ok(
        &[
            "build",
            "--secret",
            &format!("id=s,src={}", s(&secret)),
            "--build-arg",
            "TOKEN=argvalue-5521",
            "--progress",
            "plain",
            s(&ctx),
        ],
        None,
    );
    let files = record_files(&env);
    assert_eq!(files.len(), 1);
    let bytes = std::fs::read(&files[0]).expect("record");
    let text = String::from_utf8_lossy(&bytes);
    for value in ["s3cr3t-VALUE-9431", "argvalue-5521", "secret.txt"] {
        assert!(!text.contains(value), "{value} in {text}");
    }
    let r = &records(&env)[0];
    assert_eq!(r["secrets"], serde_json::json!(["s"]));
    assert_eq!(r["build_args"], serde_json::json!(["TOKEN"]));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&files[0])
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn bake_records_each_target_with_its_own_steps() {
    needs_root!();
    let env = Env::new();
    let dir = env.context(
        "project",
        &[
            ("one.Dockerfile", "FROM busybox\nRUN echo one > /one\n"),
            ("two.Dockerfile", "FROM busybox\nRUN echo two > /two\n"),
            (
                "docker-bake.hcl",
                "group \"default\" {\n  targets = [\"one\", \"two\"]\n}\n\
                 target \"one\" {\n  dockerfile = \"one.Dockerfile\"\n  tags = [\"bake/one\"]\n}\n\
                 target \"two\" {\n  dockerfile = \"two.Dockerfile\"\n  tags = [\"bake/two\"]\n}\n",
            ),
        ],
    );
    let out = env
        .command(env!("CARGO_BIN_EXE_kiln"))
        .arg("bake")
        .current_dir(&dir)
        .output()
        .expect("kiln bake");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = records(&env);
    let mut names: Vec<&str> = list
        .iter()
        .map(|r| r["name"].as_str().expect("name"))
        .collect();
    names.sort();
    assert_eq!(names, ["one", "two"]);
    for r in &list {
        let own = if r["name"] == "one" {
            "echo one"
        } else {
            "echo two"
        };
        let other = if r["name"] == "one" {
            "echo two"
        } else {
            "echo one"
        };
        assert_eq!(step(r, own)["state"], "built");
        assert!(
            !steps(r)
                .iter()
                .any(|s| s["name"].as_str().is_some_and(|n| n.contains(other))),
            "{r:#}"
        );
    }
}

/// A read-only bind mount of a directory, undone on drop.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn mount(from: &Path, at: &Path) -> ReadOnly {
        std::fs::create_dir_all(at).expect("mount point");
        let run = |args: &[&str]| {
            let status = Command::new("mount").args(args).status().expect("mount");
            assert!(status.success(), "mount {args:?}");
        };
        run(&["--bind", s(from), s(at)]);
        let mounted = ReadOnly(at.to_path_buf());
        run(&["-o", "remount,bind,ro", s(at)]);
        mounted
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_read_only_store_builds_from_its_cache_and_gets_no_record() {
    needs_root!();
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "FROM busybox\nRUN echo hi > /hi\n")],
    );
    env.ok(&["build", s(&ctx)], None);
    assert_eq!(record_files(&env).len(), 1);
    let ro = env.path("ro-store");
    let mount = ReadOnly::mount(&env.path("store"), &ro);
    let trace = env.path("trace.json");
    let out = env
        .command(env!("CARGO_BIN_EXE_kiln"))
        .env("KILN_ROOT", &ro)
        .args([
            "build",
            "-o",
            "type=tar,dest=-",
            "--trace",
            s(&trace),
            s(&ctx),
        ])
        .stdout(Stdio::null())
        .output()
        .expect("kiln build");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("WARNING"), "{stderr}");
    // The trace is the user's file: written all the same.
    assert_eq!(read_json(&trace)["otherData"]["status"], "completed");
    drop(mount);
    assert_eq!(record_files(&env).len(), 1, "no record was added");
}

#[test]
fn an_interrupted_build_is_recorded_as_cancelled() {
    needs_root!();
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo STEP-STARTED && sleep 60\n",
        )],
    );
    let mut child = env
        .command(env!("CARGO_BIN_EXE_kiln"))
        .args(["build", "--progress", "plain", s(&ctx)])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kiln build");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    // A guard against a hang, not a timing assertion.
    let guard = Instant::now() + Duration::from_secs(120);
    loop {
        let line = rx
            .recv_timeout(guard.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("the step never started")
            });
        if line.contains("STEP-STARTED") && !line.contains("RUN") {
            break;
        }
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130));
    let list = records(&env);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["status"], "cancelled", "{:#}", list[0]);
    assert_eq!(step(&list[0], "sleep 60")["state"], "cancelled");
    let table = env.ok(&["builds"], None).0;
    assert!(table.contains("Cancelled"), "{table}");
}

#[test]
fn a_base_image_pulled_while_lowering_is_a_step_of_the_record() {
    needs_root!();
    use kiln_test_support::{Auth, Registry};
    let registry = Registry::start(Auth::None);
    registry.seed_busybox("library/busybox:pulled");
    let env = Env::new();
    // Its blobs are then fetched, not found in the store.
    env.ok(&["rmi", "busybox:latest"], None);
    let base = format!("{}/library/busybox:pulled", registry.host());
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", &format!("FROM {base}\nRUN echo hi > /hi\n"))],
    );
    env.ok(&["build", s(&ctx)], None);
    let r = &records(&env)[0];
    let pull = step(r, &format!("[internal] pull {base}"));
    assert_eq!(pull["state"], "built");
    assert!(pull["bytes"].as_u64().is_some_and(|b| b > 0), "{pull}");
    assert!(pull.get("digest").is_none(), "not a vertex: {pull}");
    // It came first: the RUN step starts after it ended.
    let run = step(r, "RUN echo hi");
    assert!(run["start_ms"].as_f64() >= pull["end_ms"].as_f64(), "{r:#}");
}

/// The fill colours of the graph's vertices (`vN [...]` nodes; the
/// legend's are not counted).
fn vertex_fills(dot: &str) -> Vec<String> {
    dot.lines()
        .map(str::trim)
        .filter(|l| l.starts_with('v') && l.contains(" ["))
        .filter_map(|l| l.split("fillcolor=").nth(1))
        .map(|f| f.trim_end_matches("];").trim_matches('"').to_string())
        .collect()
}

/// `--print dag` colours the graph by the newest record: built steps
/// after a first build, cached ones after a rebuild, a failed one red.
#[test]
fn print_dag_colours_vertices_from_the_last_build() {
    needs_root!();
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "FROM busybox\nRUN echo colour > /c\n")],
    );
    let dag = |dir: &Path| env.ok(&["build", "--print", "dag", s(dir)], None).0;
    let plain = dag(&ctx);
    assert!(vertex_fills(&plain).is_empty(), "no record yet: {plain}");
    env.ok(&["build", s(&ctx)], None);
    let built = dag(&ctx);
    // The base image was unpacked by this build; the RUN step ran.
    assert_eq!(vertex_fills(&built), ["palegreen", "palegreen"], "{built}");
    assert!(built.contains("cluster_legend"), "{built}");
    env.ok(&["build", s(&ctx)], None);
    let cached = dag(&ctx);
    assert_eq!(
        vertex_fills(&cached),
        ["lightblue", "lightblue"],
        "{cached}"
    );
    // --print runs nothing, so it leaves no record.
    assert_eq!(records(&env).len(), 2);
    let failing = env.context("failing", &[("Dockerfile", "FROM busybox\nRUN exit 4\n")]);
    env.fails(&["build", s(&failing)], None);
    let failed = dag(&failing);
    assert_eq!(vertex_fills(&failed), ["lightblue", "#ff6666"], "{failed}");
}
