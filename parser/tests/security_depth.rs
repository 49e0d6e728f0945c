//! Expansion cannot be made to allocate without bound (issue 13, finding 6).

use kiln_parser::shell::{Lexer, ShellError};

const MIB: usize = 1 << 20;

/// `A=${A}${A}` applied again and again doubles the value each time; the
/// lexer refuses the step that passes 1 MiB instead of doubling on.
#[test]
fn doubling_stops_at_the_limit() {
    let lexer = Lexer::default();
    let mut value = "x".to_string();
    let mut steps = 0;
    let err = loop {
        let env = [("A", value.as_str())];
        match lexer.process_word("${A}${A}", &env) {
            Ok(v) => value = v,
            Err(e) => break e,
        }
        steps += 1;
        assert!(
            value.len() <= MIB,
            "no limit: {} bytes after {steps} steps",
            value.len()
        );
    };
    assert_eq!(value.len(), MIB);
    assert_eq!(
        err,
        ShellError::TooLong {
            limit: MIB,
            offset: 4
        }
    );
    assert_eq!(
        err.to_string(),
        "expanded word is longer than 1048576 bytes"
    );
}

/// Every way of growing a word is bounded: quoted and unquoted references,
/// defaults, word splitting, and `//` replacements whose template repeats
/// the match.
#[test]
fn every_expansion_form_is_bounded() {
    let lexer = Lexer::default();
    let big = "y".repeat(MIB / 2 + 1);
    let env = [("B", big.as_str())];
    for word in [
        "$B$B",
        "\"$B$B\"",
        "${U:-$B$B}",
        "x${B:+$B$B}",
        "${B/y/$B}",
        "${B//y/zz}",
    ] {
        let err = lexer.process_word(word, &env).expect_err(word);
        assert!(matches!(err, ShellError::TooLong { .. }), "{word}: {err:?}");
        let err = lexer.process_words(word, &env).expect_err(word);
        assert!(matches!(err, ShellError::TooLong { .. }), "{word}: {err:?}");
    }
    // `$0` repeated in a replacement template multiplies the match.
    let template = "$0".repeat(4096);
    let env = [("B", big.as_str()), ("T", template.as_str())];
    let err = lexer
        .process_word("${B//*/$T}", &env)
        .expect_err("template");
    assert!(matches!(err, ShellError::TooLong { .. }), "{err:?}");
}

/// The limit is on growth: a word already that long in the Dockerfile, and a
/// value that is exactly at the limit, still expand.
#[test]
fn long_input_and_exact_limit_are_accepted() {
    let lexer = Lexer::default();
    let literal = "z".repeat(2 * MIB);
    assert_eq!(
        lexer.process_word(&literal, &[("A", "")]).expect("literal"),
        literal
    );
    let half = "y".repeat(MIB / 2);
    let env = [("H", half.as_str())];
    assert_eq!(lexer.process_word("$H$H", &env).expect("exact").len(), MIB);
}

/// Matching a pattern against a value costs their lengths multiplied: a
/// 1 MiB value used as its own pattern (10^12 steps) is refused at once;
/// ordinary sizes match as before.
#[test]
fn huge_pattern_matches_are_refused() {
    let lexer = Lexer::default();
    let big = "a".repeat(MIB);
    let env = [("A", big.as_str())];
    for word in ["${A/$A/x}", "${A//$A/x}", "${A#$A}", "${A%$A}"] {
        let err = lexer.process_word(word, &env).expect_err(word);
        assert!(
            matches!(err, ShellError::PatternTooCostly { offset: 0, .. }),
            "{word}: {err:?}"
        );
    }
    let small = "ab".repeat(1000);
    let env = [("S", small.as_str())];
    assert_eq!(
        lexer.process_word("${S//b/}", &env).expect("ok"),
        "a".repeat(1000)
    );
    assert_eq!(lexer.process_word("${S%%b*}", &env).expect("ok"), "a");
}

/// The fuzzer's input that spun for minutes on the old lexer (a `//`
/// replacement nested in `//` replacements, the pattern empty), replayed
/// the way the `shell_expand` fuzz target reads it: an options byte
/// (0xff: raw quotes and escapes, skip unset, no quote processing, backtick
/// escapes), the word, then after a NUL the environment.
#[test]
fn nested_replacements_the_fuzzer_found_finish() {
    let data = include_bytes!("../../fuzz/regressions/shell_expand/nested-replace-timeout");
    let text = String::from_utf8_lossy(&data[1..]);
    let (word, env_text) = text.split_once('\0').expect("word and environment");
    let env: Vec<(&str, &str)> = env_text
        .lines()
        .map(|line| line.split_once('=').unwrap_or((line, "")))
        .collect();
    let lexer = Lexer::new('`')
        .raw_quotes(true)
        .raw_escapes(true)
        .skip_unset(true)
        .skip_process_quotes(true);
    let lengths = [
        lexer.process_word(word, &env.as_slice()).map(|w| w.len()),
        lexer.process_words(word, &env.as_slice()).map(|w| w.len()),
        lexer
            .process_word_with_matches(word, &env.as_slice())
            .map(|w| w.value.len()),
    ];
    for len in lengths.into_iter().flatten() {
        assert!(len <= MIB, "{len} bytes");
    }
}
