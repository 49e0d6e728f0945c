//! `--progress` through the binary: plain lines with RUN output, rawjson
//! events, quiet, tty with and without a terminal, and transfer progress
//! for push, pull and FROM pulls.

mod common;
use kiln_test_support as support;

use common::{s, Env};
use serde_json::Value;
use support::{Auth, Registry};

/// A RUN step with output on stdout, on stderr, and a last line without a
/// newline.
const DOCKERFILE: &str = "FROM busybox\n\
     RUN echo first-line; echo second-line >&2; printf tail-without-newline\n";
const RUN_STEP: &str = "RUN echo first-line";

/// The vertex number plain output gives the step whose start line
/// contains `what`.
fn plain_number(log: &str, what: &str) -> String {
    log.lines()
        .find(|l| l.starts_with('#') && l.contains(what) && !l.contains("cache miss"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no start line for {what}:\n{log}"))
        .to_string()
}

/// The text of `#N SECONDS TEXT` log lines of vertex `n`, in order.
fn plain_logs(log: &str, n: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(n)?.strip_prefix(' ')?;
            let (secs, text) = rest.split_once(' ')?;
            secs.parse::<f64>().ok()?;
            Some(text.to_string())
        })
        .collect()
}

#[test]
fn plain_shows_run_output_with_the_step_number() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    let (_, log) = env.ok(&["build", "--progress=plain", "-t", "p:1", s(&ctx)], None);
    let n = plain_number(&log, RUN_STEP);
    assert_eq!(
        plain_logs(&log, &n),
        vec!["first-line", "second-line", "tail-without-newline"],
        "{log}"
    );
    // The output comes between the start line and DONE; the miss says why.
    let pos = |text: &str| {
        log.find(text)
            .unwrap_or_else(|| panic!("{text:?} missing:\n{log}"))
    };
    assert!(
        pos(&format!("{n} [stage-0 1] RUN")) < pos("first-line"),
        "{log}"
    );
    assert!(
        pos("tail-without-newline") < pos(&format!("{n} DONE ")),
        "{log}"
    );
    assert!(
        log.contains(&format!("{n} cache miss: no earlier build")),
        "{log}"
    );
}

/// Every line of `log` as a JSON object with the fields every event has.
fn events(log: &str) -> Vec<Value> {
    let kinds = [
        "started", "cached", "miss", "note", "log", "transfer", "done", "error",
    ];
    log.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\n{log}"));
            let time = v["time"].as_str().expect("time");
            assert!(
                time.len() >= 20 && time.as_bytes()[10] == b'T' && time.ends_with('Z'),
                "{line}"
            );
            assert!(v["vertex"].as_u64().is_some_and(|n| n >= 1), "{line}");
            assert!(v["name"].is_string(), "{line}");
            assert!(
                kinds.contains(&v["event"].as_str().expect("event")),
                "{line}"
            );
            v
        })
        .collect()
}

/// The events of the vertex whose name contains `what`.
fn events_of<'a>(events: &'a [Value], what: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["name"].as_str().is_some_and(|n| n.contains(what)))
        .collect()
}

#[test]
fn rawjson_lines_are_json_with_the_documented_fields() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    let (_, log) = env.ok(&["build", "--progress=rawjson", "-t", "j:1", s(&ctx)], None);
    let all = events(&log);
    let run = events_of(&all, RUN_STEP);
    let kinds: Vec<&str> = run.iter().filter_map(|e| e["event"].as_str()).collect();
    // One vertex number for the step.
    assert!(run.iter().all(|e| e["vertex"] == run[0]["vertex"]), "{log}");
    assert_eq!(kinds.first(), Some(&"miss"), "{log}");
    assert_eq!(kinds.get(1), Some(&"started"), "{log}");
    assert_eq!(kinds.last(), Some(&"done"), "{log}");
    assert!(run[0]["reason"].is_string(), "{log}");
    assert!(
        run.last().is_some_and(|e| e["seconds"].as_f64().is_some()),
        "{log}"
    );
    let data: String = run
        .iter()
        .filter(|e| e["event"] == "log")
        .map(|e| e["data"].as_str().expect("data").to_string())
        .collect();
    assert_eq!(
        data, "first-line\nsecond-line\ntail-without-newline",
        "{log}"
    );

    // A rebuild: the step is cached, and nothing runs.
    let (_, log) = env.ok(&["build", "--progress=rawjson", "-t", "j:1", s(&ctx)], None);
    let all = events(&log);
    let run = events_of(&all, RUN_STEP);
    let kinds: Vec<&str> = run.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(kinds, vec!["cached"], "{log}");
}

#[test]
fn rawjson_reports_a_failed_step_as_an_error_event() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo before-failing; exit 3\n",
        )],
    );
    let log = env.fails(&["build", "--progress=rawjson", s(&ctx)], None);
    // kiln's own error message comes last; the display's lines are JSON.
    let (display, error) = log.split_once("\nkiln: ").expect("an error message");
    assert!(error.contains("exit code: 3"), "{log}");
    let all = events(display);
    let run = events_of(&all, "RUN echo before-failing");
    assert!(
        run.iter()
            .any(|e| e["event"] == "log" && e["data"] == "before-failing\n"),
        "{log}"
    );
    let error = run.last().expect("events");
    assert_eq!(error["event"], "error", "{log}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("exit code: 3")),
        "{log}"
    );
}

#[test]
fn quiet_prints_nothing_on_success_and_the_error_on_failure() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    let (out, log) = env.ok(&["build", "--progress=quiet", "-t", "q:1", s(&ctx)], None);
    assert_eq!((out.as_str(), log.as_str()), ("", ""));

    let bad = env.context("bad", &[("Dockerfile", "FROM busybox\nRUN exit 7\n")]);
    let log = env.fails(&["build", "--progress=quiet", s(&bad)], None);
    assert!(log.contains("exit code: 7"), "{log}");
    assert!(!log.contains("#2"), "{log}");
}

/// Runs kiln with `env`'s store and a stderr whose reader is gone (every
/// write fails with EPIPE); returns the exit code.
fn run_with_a_closed_stderr(env: &Env, args: &[&str]) -> Option<i32> {
    let mut child = env
        .command(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kiln runs");
    drop(child.stderr.take());
    child.wait().expect("kiln finishes").code()
}

#[test]
fn a_closed_stderr_does_not_stop_the_display() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    let bad = env.context("bad", &[("Dockerfile", "FROM busybox\nRUN exit 7\n")]);
    // Every mode, the summary lines after the export included.
    for mode in [
        "--progress=rawjson",
        "--progress=quiet",
        "--progress=plain",
        "--progress=tty",
    ] {
        let args = ["build", mode, "--no-cache", "-t", "c:1", s(&ctx)];
        assert_eq!(run_with_a_closed_stderr(&env, &args), Some(0), "{mode}");
        let args = ["build", mode, s(&bad)];
        assert_eq!(run_with_a_closed_stderr(&env, &args), Some(1), "{mode}");
    }
}

#[test]
fn forced_tty_without_a_terminal_writes_the_collapsed_lines() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    let (_, log) = env.ok(&["build", "--progress=tty", "-t", "t:1", s(&ctx)], None);
    assert!(!log.contains('\x1b'), "no terminal codes: {log:?}");
    let line = log
        .lines()
        .find(|l| l.starts_with(" => [stage-0 1] RUN echo first-line"))
        .unwrap_or_else(|| panic!("no collapsed line:\n{log}"));
    let secs = line.rsplit(' ').next().expect("time");
    assert!(
        secs.strip_suffix('s')
            .is_some_and(|t| t.parse::<f64>().is_ok()),
        "{line}"
    );
    // No plain numbered lines and no output lines.
    assert!(
        !log.contains("#2 ") && !log.contains("first-line\n"),
        "{log}"
    );

    let (_, log) = env.ok(&["build", "--progress=tty", "-t", "t:1", s(&ctx)], None);
    assert!(
        log.contains(" => CACHED [stage-0 1] RUN echo first-line"),
        "{log}"
    );
}

#[test]
fn auto_is_plain_without_a_terminal() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    for args in [vec!["build"], vec!["build", "--progress=auto"]] {
        let mut args = args.clone();
        args.extend(["--no-cache", "-t", "a:1", s(&ctx)]);
        let (_, log) = env.ok(&args, None);
        let n = plain_number(&log, RUN_STEP);
        assert!(
            plain_logs(&log, &n).contains(&"first-line".to_string()),
            "{log}"
        );
    }
}

#[test]
fn auto_is_tty_on_a_terminal() {
    // `script` (util-linux) gives kiln a pseudo-terminal for stderr.
    support::require_tool("script");
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    let command = format!(
        "{} build --no-cache -t tty:1 {}",
        env!("CARGO_BIN_EXE_kiln"),
        s(&ctx)
    );
    let transcript = env.path("typescript");
    let out = env
        .command("script")
        .args(["-qec", &command, s(&transcript)])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    // The live display: drawn with terminal codes, the step collapsed with
    // its time, no plain numbered lines.
    assert!(text.contains("\x1b["), "{text:?}");
    assert!(
        text.contains(" => [stage-0 1] RUN echo first-line"),
        "{text:?}"
    );
    assert!(!text.contains("#2 DONE"), "{text:?}");
}

#[test]
fn transfers_are_reported_for_push_pull_and_from_pulls() {
    let registry = Registry::start(Auth::None);
    let env = Env::new();
    let target = format!("{}/progress/busybox:1", registry.host());
    env.ok(&["tag", "busybox", &target], None);

    // push, plain: the vertex, a line per blob, DONE.
    let (_, log) = env.ok(&["push", "--progress=plain", &target], None);
    assert!(log.contains(&format!("#1 push {target}")), "{log}");
    let blob_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("#1 sha256:") && l.contains(" done "))
        .collect();
    assert!(blob_lines.len() >= 2, "config and layer: {log}");
    assert!(log.contains("#1 DONE "), "{log}");

    // pull into an empty store, rawjson: transfer events per blob.
    let empty = Env {
        dir: tempfile::tempdir().expect("temp dir"),
    };
    let code = run_with_a_closed_stderr(&empty, &["pull", "--progress=plain", &target]);
    assert_eq!(code, Some(0), "a pull with stderr closed");
    let empty = Env {
        dir: tempfile::tempdir().expect("temp dir"),
    };
    let (out, log) = empty.ok(&["pull", "--progress=rawjson", &target], None);
    assert!(out.contains("Digest: sha256:"), "{out}");
    let all = events(&log);
    let transfers: Vec<&Value> = all.iter().filter(|e| e["event"] == "transfer").collect();
    let done: Vec<&&Value> = transfers.iter().filter(|e| e["status"] == "done").collect();
    assert!(done.len() >= 2, "{log}");
    for e in &done {
        assert!(e["digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:")));
        assert_eq!(e["current"], e["total"], "{log}");
        assert!(e["total"].as_u64().is_some_and(|t| t > 0), "{log}");
    }
    assert!(
        transfers.iter().any(|e| e["status"] == "running"),
        "a running event when each blob starts: {log}"
    );
    assert_eq!(
        all.last().map(|e| e["event"].clone()),
        Some(Value::from("done")),
        "{log}"
    );

    // A FROM that is not in the store is pulled, shown as its own vertex.
    let fresh = Env {
        dir: tempfile::tempdir().expect("temp dir"),
    };
    let ctx = fresh.context(
        "ctx",
        &[("Dockerfile", &format!("FROM {target}\nRUN echo ran\n"))],
    );
    let (_, log) = fresh.ok(&["build", "--progress=plain", "-t", "f:1", s(&ctx)], None);
    let n = plain_number(&log, &format!("[internal] pull {target}"));
    assert!(
        log.lines()
            .any(|l| l.starts_with(&format!("{n} sha256:")) && l.contains(" done ")),
        "{log}"
    );
    assert!(log.contains(&format!("{n} DONE ")), "{log}");
}
