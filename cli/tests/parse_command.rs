//! `kiln parse` run as a user runs it: the built binary in a temp dir.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn kiln() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn run_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = kiln()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kiln runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("kiln finishes")
}

#[test]
fn parses_the_example_as_text() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hello/Dockerfile");
    let out = kiln()
        .args(["parse", "-f", example])
        .output()
        .expect("kiln runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(text.contains("2 stage(s)"), "{text}");
    assert!(text.contains("stage 0 \"build\""), "{text}");
    assert!(
        text.contains("directive syntax=docker/dockerfile:1 (line 1)"),
        "{text}"
    );
    // The RUN spans three lines (12 to 14).
    assert!(
        text.lines()
            .any(|l| l.contains("RUN") && l.contains("12:1-14:")),
        "{text}"
    );
}

#[test]
fn reads_stdin_and_prints_json() {
    let out = run_with_stdin(
        &["parse", "-f", "-", "--format", "json"],
        "FROM busybox AS base\nRUN --mount=type=cache,target=/c echo hi\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let stage = &json["stages"][0];
    assert_eq!(stage["from"]["instruction"]["value"]["stage_name"], "base");
    let run = &stage["commands"][0];
    assert_eq!(run["instruction"]["kind"], "run");
    assert_eq!(
        run["instruction"]["value"]["mounts"][0]["mount"]["kind"],
        "cache"
    );
    assert_eq!(run["span"]["start"]["line"], 2);
}

#[test]
fn every_instruction_serialises_to_json() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/hello/Dockerfile");
    let out = kiln()
        .args(["parse", "-f", example, "--format", "json"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(
        json["global_args"][0]["instruction"]["value"][0]["name"],
        "BASE"
    );
    let every = "FROM a\nSHELL [\"sh\"]\nUSER u\nEXPOSE 80\nVOLUME /v\nMAINTAINER m\nWORKDIR /w\nSTOPSIGNAL 9\nCMD x\nENTRYPOINT [\"y\"]\nENV a=b\nLABEL c=d\nARG e\nONBUILD RUN <<EOF\nhi\nEOF\nHEALTHCHECK NONE\nADD a b\nCOPY c d\nRUN e\nBOGUS f\n";
    let out = run_with_stdin(&["parse", "-f", "-", "--format", "json"], every);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let kinds: Vec<&str> = json["stages"][0]["commands"]
        .as_array()
        .expect("commands")
        .iter()
        .map(|c| c["instruction"]["kind"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        kinds,
        [
            "shell",
            "user",
            "expose",
            "volume",
            "maintainer",
            "workdir",
            "stopsignal",
            "cmd",
            "entrypoint",
            "env",
            "label",
            "arg",
            "onbuild",
            "healthcheck",
            "add",
            "copy",
            "run",
            "unknown"
        ]
    );
    let onbuild = &json["stages"][0]["commands"][12]["instruction"]["value"];
    assert_eq!(
        onbuild["trigger"]["instruction"]["value"]["heredocs"][0]["content"],
        "hi\n"
    );
}

#[test]
fn malformed_file_reports_file_line_column() {
    let dir = temp_dir("bad");
    let file = dir.join("Dockerfile");
    std::fs::write(&file, "FROM busybox\nCOPY --chown=1 \\\n  --nope a b\n").expect("write");
    let out = kiln()
        .arg("parse")
        .current_dir(&dir)
        .output()
        .expect("kiln runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim(), "Dockerfile:3:3: unknown flag: --nope");
    assert!(out.stdout.is_empty());
}

#[test]
fn missing_file_is_a_clear_error() {
    let dir = temp_dir("missing");
    let out = kiln()
        .args(["parse", "-f", "nope/Dockerfile"])
        .current_dir(&dir)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("reading nope/Dockerfile"), "{stderr}");
}

#[test]
fn empty_input_is_an_error_not_a_panic() {
    let out = run_with_stdin(&["parse", "-f", "-"], "");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("<stdin>:1:1: file with no instructions"),
        "{stderr}"
    );
}

#[test]
fn bad_format_flag_names_the_flag() {
    let out = kiln()
        .args(["parse", "--format", "yaml"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--format"), "{stderr}");
}
