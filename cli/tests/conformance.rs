//! The Dockerfile conformance suite: builds every case of
//! `shared/conformance/cases/` and of the project's own
//! `conformance/cases/` (goldens made by real BuildKit with
//! `conformance/gen-goldens.sh`) with `kiln build` and compares the image
//! with the case's `expected/` goldens, as `shared/conformance/FORMAT.md`
//! describes (rootfs listing, per-layer listing, normalised config, or the
//! error of an error case).
//!
//! * Every case must pass, except those in [`KNOWN_FAILING`]; a case in
//!   that list that passes fails the test too, so the list only shrinks.
//! * `created_by`/`comment` history differences are reported, never failures.
//!
//! Run with `cargo test -p kiln-cli --test conformance -- --nocapture`.
//! Environment knobs: `KILN_CONFORMANCE_FILTER=03,copy` runs only the cases
//! whose name contains one of the comma-separated words;
//! `KILN_CONFORMANCE_JOBS` (default 2) and `KILN_CONFORMANCE_TIMEOUT`
//! (seconds per kiln command, default 300).

#[path = "conformance/apply.rs"]
mod apply;
#[path = "conformance/case.rs"]
mod case;
#[path = "conformance/config.rs"]
mod config;
#[path = "conformance/diff.rs"]
mod diff;
#[path = "conformance/http.rs"]
mod http;
#[path = "conformance/layout.rs"]
mod layout;
#[path = "conformance/listing.rs"]
mod listing;
#[path = "conformance/run.rs"]
mod run;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Cases that do not pass yet, each with the reason. Remove a case from
/// here as soon as it passes: the test fails if a listed case passes.
const KNOWN_FAILING: &[&str] = &[];

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared");

/// The project's own cases, laid out as the shared ones.
const OWN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../conformance/cases");

/// How a case came out, from the suite's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Passed,
    /// A failure that fails the test.
    Failed,
    /// In KNOWN_FAILING and failed.
    KnownFailing,
    /// In KNOWN_FAILING but passed: fails the test.
    UnexpectedPass,
}

#[test]
fn conformance() {
    let shared = Path::new(SHARED);
    let mut cases =
        case::load_all(&shared.join("conformance/cases")).expect("loading the shared cases");
    assert!(!cases.is_empty(), "no conformance cases found");
    cases.extend(case::load_all(Path::new(OWN)).expect("loading the project's cases"));

    let stale: Vec<&str> = KNOWN_FAILING
        .iter()
        .copied()
        .filter(|name| !cases.iter().any(|c| c.name == *name))
        .collect();
    assert!(
        stale.is_empty(),
        "KNOWN_FAILING names cases that do not exist: {stale:?}"
    );

    let filter: Vec<String> = std::env::var("KILN_CONFORMANCE_FILTER")
        .unwrap_or_default()
        .split(',')
        .map(|w| w.trim().to_string())
        .filter(|w| !w.is_empty())
        .collect();
    let selected: Vec<&case::Case> = cases
        .iter()
        .filter(|c| filter.is_empty() || filter.iter().any(|w| c.name.contains(w.as_str())))
        .collect();

    let tools = run::Tools {
        kiln: PathBuf::from(env!("CARGO_BIN_EXE_kiln")),
        bases: shared.join("bases"),
        timeout: Duration::from_secs(env_number("KILN_CONFORMANCE_TIMEOUT", 300)),
    };
    let jobs = env_number("KILN_CONFORMANCE_JOBS", 2).max(1) as usize;
    let outcomes = run_all(&selected, &tools, jobs);

    let mut counts = [0usize; 4];
    let mut history_cases = Vec::new();
    for (case, outcome) in selected.iter().zip(&outcomes) {
        let verdict = verdict(case, outcome);
        counts[verdict as usize] += 1;
        if !outcome.history_text.is_empty() {
            history_cases.push(case.name.as_str());
        }
        print_details(case, outcome, verdict);
    }

    let [passed, failed, known, unexpected] = counts;
    println!();
    if !history_cases.is_empty() {
        println!(
            "conformance: {} case(s) differ only in history text (created_by/comment; not a failure): {}",
            history_cases.len(),
            history_cases.join(", ")
        );
    }
    println!("conformance: {passed} passed, {failed} failed, {known} known failing");
    let mut errors = Vec::new();
    if failed > 0 {
        errors.push(format!(
            "{failed} case(s) failed that are not in KNOWN_FAILING: {}",
            names(&selected, &outcomes, Verdict::Failed)
        ));
    }
    if unexpected > 0 {
        errors.push(format!(
            "{unexpected} case(s) in KNOWN_FAILING now pass; remove them from KNOWN_FAILING in cli/tests/conformance.rs: {}",
            names(&selected, &outcomes, Verdict::UnexpectedPass)
        ));
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// Runs the cases over `jobs` threads; the outcomes are in case order.
fn run_all(cases: &[&case::Case], tools: &run::Tools, jobs: usize) -> Vec<run::Outcome> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<run::Outcome>>> =
        Mutex::new((0..cases.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(cases.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(case) = cases.get(i) else { break };
                let outcome = std::panic::catch_unwind(|| run::run_case(case, tools))
                    .unwrap_or_else(|_| run::Outcome {
                        problems: vec!["the harness panicked on this case".into()],
                        ..Default::default()
                    });
                let label = match verdict(case, &outcome) {
                    Verdict::Passed => "ok",
                    Verdict::Failed => "FAILED",
                    Verdict::KnownFailing => "known failing",
                    Verdict::UnexpectedPass => "PASSED but in KNOWN_FAILING",
                };
                println!("conformance: {} ... {label}", case.name);
                results.lock().unwrap()[i] = Some(outcome);
            });
        }
    });
    results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|o| o.expect("every case ran"))
        .collect()
}

fn verdict(case: &case::Case, outcome: &run::Outcome) -> Verdict {
    let known = KNOWN_FAILING.contains(&case.name.as_str());
    match (outcome.passed(), known) {
        (true, true) => Verdict::UnexpectedPass,
        (true, false) => Verdict::Passed,
        (false, true) => Verdict::KnownFailing,
        (false, false) => Verdict::Failed,
    }
}

/// Prints a failing case's diffs, and notes and history text for all.
fn print_details(case: &case::Case, outcome: &run::Outcome, verdict: Verdict) {
    let heading = match verdict {
        Verdict::Failed => "FAILED",
        Verdict::KnownFailing => "known failing",
        Verdict::UnexpectedPass => "passes but is in KNOWN_FAILING",
        Verdict::Passed => "passed",
    };
    let show_problems = !outcome.problems.is_empty();
    if !show_problems && outcome.history_text.is_empty() && outcome.note.is_none() {
        return;
    }
    println!("\n=== {} [{heading}] {}", case.name, case.spec.description);
    if let Some(note) = &outcome.note {
        println!("  note: {note}");
    }
    for problem in &outcome.problems {
        println!("  {}", problem.replace('\n', "\n  "));
    }
    for text in &outcome.history_text {
        println!("  (not a failure) {}", text.replace('\n', "\n  "));
    }
}

fn names(cases: &[&case::Case], outcomes: &[run::Outcome], wanted: Verdict) -> String {
    cases
        .iter()
        .zip(outcomes)
        .filter(|(c, o)| verdict(c, o) == wanted)
        .map(|(c, _)| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The listing code against a golden: the busybox base layer, listed and
/// applied onto an empty rootfs, must equal case 54's rootfs.txt (54 adds
/// no layers), and its layer listing must be the same lines.
#[test]
fn listing_self_check() {
    let shared = Path::new(SHARED);
    let image = layout::read_image(&shared.join("bases/busybox")).expect("busybox layout");
    assert_eq!(
        image.diff_ids,
        ["sha256:beed84fc74dde1dc0ce0032588340a67fd356283344bc7ad96cdef142f1fddb6"]
    );
    let members = layout::read_layer(&image.layers[0], &image.diff_ids[0]).expect("base layer");
    let golden =
        std::fs::read_to_string(shared.join("conformance/cases/54-label/expected/rootfs.txt"))
            .expect("54's rootfs.txt");
    let golden = run::lines(&golden);

    let mut rootfs = apply::Rootfs::default();
    rootfs.apply(&members).expect("apply base layer");
    let rendered = rootfs.render();
    let d = diff::diff(&golden, &rendered, 20);
    assert!(d.is_empty(), "rootfs listing differs:\n{}", d.join("\n"));

    let layer = listing::Listing::of_layer(&members).render();
    assert_eq!(
        layer, golden,
        "layer listing differs from the rootfs listing"
    );

    // The base config normalises to the golden's base history entry.
    let normalised = config::normalise(&image.config);
    assert_eq!(normalised["layers"], 1);
    assert_eq!(
        config::history_lines(&normalised),
        ["make-bases.sh: busybox rootfs (268 applet symlinks, passwd, group)  [comment: null]"]
    );
    println!(
        "self-check: {} entries match 54-label/expected/rootfs.txt",
        rendered.len()
    );
}

/// The comparison end to end on a real layout: the busybox base itself,
/// checked against case 54 (LABEL/ENV only). Its layers and rootfs match
/// (layer 0 is recognised as the base); only the config differs, and the
/// history text is reported separately.
#[test]
fn comparison_self_check() {
    let shared = Path::new(SHARED);
    let cases = case::load_all(&shared.join("conformance/cases")).expect("cases");
    let case54 = cases.iter().find(|c| c.name == "54-label").expect("54");
    let outcome = run::check_success(case54, &shared.join("bases/busybox")).expect("compares");
    assert_eq!(outcome.problems.len(), 1, "{:#?}", outcome.problems);
    let config = &outcome.problems[0];
    assert!(config.starts_with("config.json"), "{config}");
    assert!(config.contains("\"from.parent\": \"yes\""), "{config}");
    assert!(
        config.contains("+ history[].empty_layer: [false]"),
        "{config}"
    );
    assert_eq!(outcome.history_text.len(), 1);
    assert!(outcome.history_text[0].contains("- LABEL from.parent=yes a=parent"));
}

/// layers.txt headers: base digests are picked up only from `base` lines.
#[test]
fn base_headers_are_parsed() {
    let text = "# layer 0 sha256:abc base\n/a\tf\n# layer 1\n# layer 2\n";
    assert_eq!(
        run::base_digests(&run::lines(text)),
        [Some("sha256:abc".to_string()), None, None]
    );
}
