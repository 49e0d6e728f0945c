//! Conformance of `kiln_parser::shell` with BuildKit's shell lexer tests
//! (`frontend/dockerfile/shell/lex_test.go` and its data files), read in
//! place from the shared corpus.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use kiln_parser::shell::{expand, Env, Expansion, Lexer, ShellError};

fn corpus(rel: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/corpus/buildkit/"
    ))
    .join(rel)
}

fn read_corpus(rel: &str) -> String {
    let path = corpus(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Every prefix (on char boundaries) of `s`, including `s` itself.
fn prefixes(s: &str) -> impl Iterator<Item = &str> {
    s.char_indices()
        .map(move |(i, _)| &s[..i])
        .chain(std::iter::once(s))
}

// ---------------------------------------------------------------------------
// envVarTest (FORMAT.md §2)

/// The corpus's `PLATFORM|SOURCE|EXPECTED` lines that apply to Linux.
fn envvar_cases() -> Vec<(usize, String, String)> {
    let text = read_corpus("shell/envVarTest");
    let mut cases = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(
            fields.len(),
            3,
            "envVarTest:{}: need exactly 3 fields: {line:?}",
            n + 1
        );
        let (platform, source, expected) = (fields[0].trim(), fields[1].trim(), fields[2].trim());
        match platform {
            "A" | "U" => cases.push((n + 1, source.to_string(), expected.to_string())),
            "W" => {}
            other => panic!("envVarTest:{}: invalid platform {other:?}", n + 1),
        }
    }
    cases
}

#[test]
fn envvar_test_file() {
    let env = [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ];
    let lexer = Lexer::new('\\');
    let cases = envvar_cases();
    let mut failures = Vec::new();
    for (line, source, expected) in &cases {
        let got = lexer.process_word(source, &env);
        let ok = match (&got, expected.as_str()) {
            (Err(_), "error") => true,
            (Ok(value), expected) => expected != "error" && value == expected,
            (Err(_), _) => false,
        };
        if !ok {
            failures.push(format!(
                "  line {line}: {source:?}: expected {expected:?}, got {got:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} envVarTest cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_eq!(cases.len(), 228, "envVarTest must have 228 A+U lines");
    println!("envVarTest: {} cases passed (A+U)", cases.len());
}

// ---------------------------------------------------------------------------
// wordsTest (FORMAT.md §3)

#[test]
fn words_test_file() {
    let text = read_corpus("shell/wordsTest");
    let lexer = Lexer::new('\\');
    let mut env: Vec<(String, String)> = Vec::new();
    let mut count = 0;
    let mut failures = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("ENV ") {
            let rest = rest.trim_start_matches(' ');
            let (name, value) = rest.split_once('=').unwrap_or((rest, ""));
            // The value is verbatim, trailing spaces included.
            env.push((name.to_string(), value.to_string()));
            continue;
        }
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(
            fields.len(),
            2,
            "wordsTest:{}: need exactly one '|': {line:?}",
            n + 1
        );
        let input = fields[0].trim();
        // Only leading spaces are insignificant; trailing ones are part of
        // the last expected word.
        let expected: Vec<&str> = fields[1].trim_start_matches(' ').split(',').collect();
        count += 1;
        let got = lexer.process_words(input, &env);
        let ok = match &got {
            Err(_) => expected == ["error"],
            Ok(words) => *words == expected,
        };
        if !ok {
            failures.push(format!(
                "  line {}: {input:?}: expected {expected:?}, got {got:?}",
                n + 1
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} wordsTest cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(count, 24, "wordsTest must have 24 cases");
    println!("wordsTest: {count} cases passed");
}

// ---------------------------------------------------------------------------
// TestProcessWithMatches (GO-TESTS-SUMMARY.md §5, the ```jsonl block)

struct MatchRow {
    input: String,
    env: HashMap<String, String>,
    /// `None` when the row expects an error.
    expected: Option<(String, BTreeSet<String>, BTreeSet<String>)>,
}

fn string_set(value: &serde_json::Value, key: &str) -> BTreeSet<String> {
    value[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} must be an array in {value}"))
        .iter()
        .map(|v| v.as_str().expect("names are strings").to_string())
        .collect()
}

fn process_with_matches_rows() -> Vec<MatchRow> {
    let text = read_corpus("GO-TESTS-SUMMARY.md");
    let section = text
        .find("TestProcessWithMatches")
        .expect("TestProcessWithMatches section");
    let start =
        section + text[section..].find("```jsonl\n").expect("```jsonl block") + "```jsonl\n".len();
    let len = text[start..].find("```").expect("end of the jsonl block");
    text[start..start + len]
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let row: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            let env = row["env"]
                .as_object()
                .expect("env object")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("string value").to_string()))
                .collect();
            let expected = if row["error"].as_bool() == Some(true) {
                None
            } else {
                Some((
                    row["expected"].as_str().expect("expected").to_string(),
                    string_set(&row, "matched"),
                    string_set(&row, "unmatched"),
                ))
            };
            MatchRow {
                input: row["input"].as_str().expect("input").to_string(),
                env,
                expected,
            }
        })
        .collect()
}

#[test]
fn process_with_matches_rows_from_summary() {
    let rows = process_with_matches_rows();
    let lexer = Lexer::new('\\');
    let mut failures = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let got = lexer.process_word_with_matches(&row.input, &row.env);
        let ok = match (&got, &row.expected) {
            (Err(_), None) => true,
            (Ok(x), Some((value, matched, unmatched))) => {
                x.value == *value && x.matched == *matched && x.unmatched == *unmatched
            }
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "  row {}: {:?} env {:?}: expected {:?}, got {got:?}",
                i + 1,
                row.input,
                row.env,
                row.expected
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} TestProcessWithMatches rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    assert_eq!(rows.len(), 47, "TestProcessWithMatches has 47 rows");
    println!("TestProcessWithMatches: {} rows passed", rows.len());
}

// ---------------------------------------------------------------------------
// TestShellParserMandatoryEnvVars, TestProcessWithMatchesPlatform

#[test]
fn mandatory_env_vars() {
    let lexer = Lexer::new('\\');
    let set_envs = [("VAR", "plain"), ("ARG", "x")];
    let empty_envs = [("VAR", ""), ("ARG", "x")];
    let unset_envs = [("ARG", "x")];
    let no_empty = "${VAR:?message here$ARG}";
    let no_unset = "${VAR?message here$ARG}";

    assert_eq!(lexer.process_word(no_empty, &set_envs).unwrap(), "plain");
    let err = lexer.process_word(no_empty, &empty_envs).unwrap_err();
    assert!(err.to_string().contains("message herex"), "{err}");
    assert_eq!(
        err,
        ShellError::VariableEmpty {
            name: "VAR".into(),
            message: "message herex".into(),
            offset: 0
        }
    );
    let err = lexer.process_word(no_empty, &unset_envs).unwrap_err();
    assert!(err.to_string().contains("message herex"), "{err}");
    assert!(matches!(err, ShellError::VariableUnset { .. }), "{err:?}");

    assert_eq!(lexer.process_word(no_unset, &set_envs).unwrap(), "plain");
    assert_eq!(lexer.process_word(no_unset, &empty_envs).unwrap(), "");
    let err = lexer.process_word(no_unset, &unset_envs).unwrap_err();
    assert!(err.to_string().contains("message herex"), "{err}");

    // Default messages.
    let err = lexer.process_word("${FOO?}", &unset_envs).unwrap_err();
    assert_eq!(err.to_string(), "FOO: is not allowed to be unset");
    let err = lexer.process_word("${FOO:?}", &unset_envs).unwrap_err();
    assert_eq!(err.to_string(), "FOO: is not allowed to be unset");
    let err = lexer.process_word("ab${VAR:?}", &empty_envs).unwrap_err();
    assert_eq!(err.to_string(), "VAR: is not allowed to be empty");
    assert_eq!(err.offset(), 2);
}

#[test]
fn process_with_matches_platform() {
    let lexer = Lexer::new('\\');
    let input =
        "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz";
    let base = [("VERSION", "v1.2.3"), ("TARGETOS", "linux")];

    let mut env: Vec<(&str, &str)> = base.to_vec();
    env.extend([("TARGETARCH", "arm"), ("TARGETVARIANT", "v7")]);
    let x = lexer.process_word_with_matches(input, &env).unwrap();
    assert_eq!(x.value, "something-v1.2.3.linux-arm-v7.tar.gz");
    assert_eq!(
        x.matched,
        set(&["VERSION", "TARGETOS", "TARGETARCH", "TARGETVARIANT"])
    );
    assert!(x.unmatched.is_empty());

    let mut env: Vec<(&str, &str)> = base.to_vec();
    env.extend([("TARGETARCH", "arm64"), ("TARGETVARIANT", "")]);
    let x = lexer.process_word_with_matches(input, &env).unwrap();
    assert_eq!(x.value, "something-v1.2.3.linux-arm64.tar.gz");
    assert_eq!(
        x.matched,
        set(&["VERSION", "TARGETOS", "TARGETARCH", "TARGETVARIANT"])
    );

    let mut env: Vec<(&str, &str)> = base.to_vec();
    env.push(("TARGETARCH", "arm64"));
    let x = lexer.process_word_with_matches(input, &env).unwrap();
    assert_eq!(x.value, "something-v1.2.3.linux-arm64.tar.gz");
    assert_eq!(x.unmatched, set(&["TARGETVARIANT"]));
}

// ---------------------------------------------------------------------------
// Pattern operators through the public API

#[test]
fn pattern_operators() {
    let w = |word: &str, env: &[(&str, &str)]| expand(word, &env).unwrap();
    // TestConvertShellPatternToRegex: metacharacters are literal.
    assert_eq!(w("${FOO#*}", &[("FOO", "abc")]), "abc");
    assert_eq!(w("${FOO##*}", &[("FOO", "abc")]), "");
    assert_eq!(w("${FOO#?}", &[("FOO", "abc")]), "bc");
    assert_eq!(w("${FOO#\\*}", &[("FOO", "*bc")]), "bc");
    assert_eq!(w("${FOO#a.c}", &[("FOO", "abc")]), "abc");
    assert_eq!(w("${FOO#a.c}", &[("FOO", "a.cd")]), "d");
    assert_eq!(w("${FOO#[ab]}", &[("FOO", "[ab]c")]), "c");
    for bad in ["${FOO#\\x}", "${FOO#$P}", "${FOO%%a\\x}", "${FOO/\\x/y}"] {
        let err = expand(bad, &[("FOO", "abc"), ("P", "\\")]).unwrap_err();
        assert!(
            matches!(err, ShellError::InvalidPattern { .. }),
            "{bad}: {err:?}"
        );
        assert!(err.to_string().starts_with("invalid pattern ("), "{err}");
    }
    let err = expand("x ${FOO#\\x}", &[("FOO", "abc")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid pattern (\\x) in substitution: invalid escape '\\x'"
    );
    assert_eq!(err.offset(), 2);
    // Shortest / longest prefix and suffix.
    let path = [("P", "/usr/local/bin/tool.tar.gz")];
    assert_eq!(w("${P#*/}", &path), "usr/local/bin/tool.tar.gz");
    assert_eq!(w("${P##*/}", &path), "tool.tar.gz");
    assert_eq!(w("${P%.*}", &path), "/usr/local/bin/tool.tar");
    assert_eq!(w("${P%%.*}", &path), "/usr/local/bin/tool");
    assert_eq!(w("${P%/*}", &path), "/usr/local/bin");
    // Replacement.
    assert_eq!(w("${P/\\//:}", &path), ":usr/local/bin/tool.tar.gz");
    assert_eq!(w("${P//\\//:}", &path), ":usr:local:bin:tool.tar.gz");
    assert_eq!(w("${P//o/}", &path), "/usr/lcal/bin/tl.tar.gz");
    // `\}` in a pattern.
    assert_eq!(w("${P#\\}}", &[("P", "}x")]), "x");
    // Unicode values are handled by characters.
    assert_eq!(
        w("${K#?}|${K%?}|${K//?/.}", &[("K", "한국어")]),
        "국어|한국|..."
    );
    // Quotes inside a pattern are removed before the pattern is compiled,
    // so they do not make `*` literal (unlike sh); a quoted `#` after `#`
    // still means `##`.
    assert_eq!(w("${P#'*'}", &[("P", "*a*")]), "*a*");
    assert_eq!(w(r"${P#'\*'}", &[("P", "*a*")]), "a*");
    assert_eq!(w("${P#'#'*a}", &[("P", "aba")]), "");
    // The replace-all form expands Go regexp templates (`$0` is the match).
    assert_eq!(w("${P//o/[$R]}", &[("P", "foo"), ("R", "$0")]), "f[o][o]");
    assert_eq!(w("${P/o/[$R]}", &[("P", "foo"), ("R", "$0")]), "f[$0]o");
    // `*` and `?` do not match a newline.
    assert_eq!(w("${P##*}", &[("P", "ab\ncd")]), "\ncd");
}

// ---------------------------------------------------------------------------
// Errors

#[test]
fn error_variants_messages_and_offsets() {
    let env = [("PWD", "/home"), ("NULL", "")];
    let e = |word: &str| expand(word, &env).unwrap_err();

    assert_eq!(
        e("ab${}"),
        ShellError::BadSubstitution {
            word: "${}".into(),
            offset: 2
        }
    );
    assert_eq!(e("${:-x}").to_string(), "syntax error: bad substitution");
    assert!(matches!(e("${{a}"), ShellError::BadSubstitution { .. }));
    assert_eq!(e("x${PWD"), ShellError::MissingClosingBrace { offset: 1 });
    assert_eq!(e("x${").to_string(), "syntax error: missing '}'");
    assert_eq!(
        e("${a:-${b:-c}"),
        ShellError::MissingClosingBrace { offset: 0 }
    );
    assert_eq!(e("${a:-'x}"), ShellError::MissingClosingBrace { offset: 0 });
    assert_eq!(e("${a/x"), ShellError::MissingSlash { offset: 0 });
    assert_eq!(e("${a/x").to_string(), "syntax error: missing '/' in ${}");
    assert_eq!(
        e("he${PWD:=000}xx"),
        ShellError::UnsupportedModifier {
            modifier: ":=".into(),
            offset: 2
        }
    );
    assert_eq!(
        e("${a=b}").to_string(),
        "unsupported modifier (=) in substitution"
    );
    assert_eq!(
        e("${a:YYY}").to_string(),
        "unsupported modifier (:Y) in substitution"
    );
    assert_eq!(
        e("${a:#x}").to_string(),
        "unsupported modifier (:#) in substitution"
    );
    assert_eq!(
        e("${.}").to_string(),
        "unsupported modifier (.) in substitution"
    );
    assert_eq!(
        e("한'x"),
        ShellError::UnterminatedQuote {
            quote: '\'',
            offset: 3
        }
    );
    assert_eq!(
        e("a\"x\\\"").to_string(),
        "unexpected end of statement while looking for matching double-quote"
    );
    assert_eq!(
        e("'x").to_string(),
        "unexpected end of statement while looking for matching single-quote"
    );
    // A nested error that does not reach the end of input keeps its cause.
    assert_eq!(
        e("${a:-${b?gone}}"),
        ShellError::VariableUnset {
            name: "b".into(),
            message: "gone".into(),
            offset: 5
        }
    );
    // ... but one that does is reported as the outer missing brace, as in
    // BuildKit.
    assert_eq!(
        e("${a:-${b?gone}"),
        ShellError::MissingClosingBrace { offset: 0 }
    );
    // The custom message is expanded.
    assert_eq!(e("${NULL:?is $PWD}").to_string(), "NULL: is /home");
    // Offsets are byte offsets of the `$`.
    assert_eq!(e("한국어${}").offset(), 9);
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let depth = 100_000;
    let word = format!("{}x{}", "${a:-".repeat(depth), "}".repeat(depth));
    let err = expand(&word, &[("b", "c")]).unwrap_err();
    assert!(matches!(err, ShellError::TooDeeplyNested { .. }), "{err:?}");
    // Reasonable nesting works.
    let word = format!("{}x{}", "${a:-".repeat(100), "}".repeat(100));
    assert_eq!(expand(&word, &[("b", "c")]).unwrap(), "x");
}

// ---------------------------------------------------------------------------
// Options and other behaviour not covered by the data files

#[test]
fn lexer_options() {
    let env = [("A", "1"), ("E", "")];
    let l = Lexer::new('\\');
    assert_eq!(l.process_word(r#"'a'"b"\c"#, &env).unwrap(), "abc");
    assert_eq!(
        l.raw_quotes(true)
            .process_word(r#"'a'"b$A"\c"#, &env)
            .unwrap(),
        r#"'a'"b1"c"#
    );
    assert_eq!(
        l.raw_escapes(true)
            .process_word(r#"\a"\$A""#, &env)
            .unwrap(),
        r#"\a\$A"#
    );
    // Default words of `:-` are unescaped even with raw escapes on.
    assert_eq!(
        l.raw_escapes(true).process_word(r"${X:-\a}", &env).unwrap(),
        "a"
    );
    assert_eq!(
        l.skip_unset(true)
            .process_word("$A $X ${X} ${X:-d} ${X/a/b} ${E:-e} $1", &env)
            .unwrap(),
        "1 $X ${X} ${X:-d} ${X/a/b} e $1"
    );
    assert_eq!(
        l.skip_process_quotes(true)
            .process_word(r#"'$A' "$A""#, &env)
            .unwrap(),
        r#"'1' "1""#
    );
    // Backtick escape: `\` is literal, `` ` `` escapes.
    let b = Lexer::new('`');
    assert_eq!(b.process_word(r"C:\dir\$A", &env).unwrap(), r"C:\dir\1");
    assert_eq!(b.process_word(r"a``b`$A`", &env).unwrap(), "a`b$A");
    assert_eq!(
        b.process_word(r#""x`"y\z`$A""#, &env).unwrap(),
        r#"x"y\z$A"#
    );
    assert_eq!(b.process_words(r"a` b c", &env).unwrap(), ["a b", "c"]);
    assert_eq!(Lexer::default(), Lexer::new('\\'));
    assert_eq!(b.escape(), '`');
}

#[test]
fn names_and_special_parameters() {
    let env = [
        ("A", "1"),
        ("한", "k"),
        ("_x1", "u"),
        ("0", "zero"),
        ("@", "at"),
    ];
    let w = |word: &str| expand(word, &env).unwrap();
    assert_eq!(w("$한국"), "");
    assert_eq!(w("$한.$_x1"), "k.u");
    assert_eq!(w("$0A $@A"), "zeroA atA");
    assert_eq!(w("$A$"), "1$");
    assert_eq!(w("$ $/ $."), "$ $/ $.");
    // Go's unicode.IsDigit: `²` is not a digit, so `$²` is literal.
    assert_eq!(w("$²"), "$²");
    assert_eq!(w("$٣x"), "x");
    // `${+w}` has an empty name, which is unset; in `${-w}`, `-` is the
    // special parameter and `w` an unsupported modifier.
    assert_eq!(w("${+w}|${-}|${--w}"), "||w");
    assert!(matches!(
        expand("${-w}", &env),
        Err(ShellError::UnsupportedModifier { .. })
    ));
    let x = Lexer::new('\\')
        .process_word_with_matches("$A${B:-$C}${A+x}", &env)
        .unwrap();
    assert_eq!(
        x,
        Expansion {
            value: "1x".into(),
            matched: set(&["A"]),
            unmatched: set(&["B", "C"])
        }
    );
}

#[test]
fn word_splitting_extras() {
    let env = [("S", " a  b "), ("E", "")];
    let l = Lexer::new('\\');
    assert_eq!(l.process_words(r#"a "" b"#, &env).unwrap(), ["a", "b"]);
    assert!(l.process_words(r#""""#, &env).unwrap().is_empty());
    assert!(l.process_words("  $E  ", &env).unwrap().is_empty());
    assert_eq!(
        l.process_words("x${S}y", &env).unwrap(),
        ["x", "a", "b", "y"]
    );
    assert_eq!(l.process_words("x\"$S\"y", &env).unwrap(), ["x a  b y"]);
    assert_eq!(l.process_words("a\tb\nc", &env).unwrap(), ["a", "b", "c"]);
    // `<<` keeps the blanks after it in the same word (heredoc markers).
    assert_eq!(
        l.process_words("cat <<  EOF > x", &env).unwrap(),
        ["cat", "<<  EOF", ">", "x"]
    );
    assert_eq!(l.process_words("a<b << c", &env).unwrap(), ["a<b", "<< c"]);
    assert_eq!(l.process_word("cat <<  EOF", &env).unwrap(), "cat <<  EOF");
    // Words before a modified substitution are kept (see the report on
    // BuildKit's shared word buffer).
    assert_eq!(
        l.process_words("ab${X:-c}d e", &env).unwrap(),
        ["abcd", "e"]
    );
}

#[test]
fn env_implementations() {
    let w = "$A-$B";
    let hash: HashMap<String, String> = [("A".to_string(), "1".to_string())].into();
    let btree: BTreeMap<String, String> = [("A".to_string(), "1".to_string())].into();
    assert_eq!(expand(w, &hash).unwrap(), "1-");
    assert_eq!(expand(w, &btree).unwrap(), "1-");
    let pairs: &[(&str, &str)] = &[("A", "1"), ("B", "2"), ("A", "3")];
    assert_eq!(expand(w, &pairs).unwrap(), "3-2");
    let owned: Vec<(String, String)> = vec![("B".into(), "x".into()), ("B".into(), "".into())];
    assert_eq!(expand("${B-unset}${B:-empty}", &owned).unwrap(), "empty");
    let empty: [(&str, &str); 0] = [];
    assert_eq!(expand(w, &empty).unwrap(), "-");
    assert_eq!(Env::lookup(&pairs, "A"), Some("3"));
}

// ---------------------------------------------------------------------------
// Robustness: no input may panic.

fn all_lexers() -> Vec<Lexer> {
    let mut lexers = Vec::new();
    for escape in ['\\', '`'] {
        for bits in 0..16u8 {
            lexers.push(
                Lexer::new(escape)
                    .raw_quotes(bits & 1 != 0)
                    .raw_escapes(bits & 2 != 0)
                    .skip_unset(bits & 4 != 0)
                    .skip_process_quotes(bits & 8 != 0),
            );
        }
    }
    lexers
}

fn exercise(lexers: &[Lexer], word: &str, env: &dyn Env) {
    for lexer in lexers {
        let _ = lexer.process_word(word, env);
        let _ = lexer.process_words(word, env);
        let _ = lexer.process_word_with_matches(word, env);
    }
}

#[test]
fn no_panic_on_any_prefix_or_garbage() {
    let env = [
        ("PWD", "/home"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
        ("FOO", "a*b?c\\d/e}f\n$0"),
        ("BAR", "\\"),
    ];
    let lexers = all_lexers();
    let mut inputs: Vec<String> = envvar_cases()
        .into_iter()
        .map(|(_, source, _)| source)
        .collect();
    inputs.extend(
        read_corpus("shell/wordsTest")
            .lines()
            .filter_map(|l| l.split_once('|').map(|(input, _)| input.trim().to_string())),
    );
    inputs.extend(process_with_matches_rows().into_iter().map(|r| r.input));
    for garbage in [
        "${",
        "$",
        "\"",
        "'",
        "\\",
        "`",
        "${a/",
        "${a//",
        "${a/b",
        "${a/b/",
        "${a:",
        "${a:-",
        "${a#",
        "${a%%",
        "${a:?",
        "${#",
        "${#}",
        "${##}",
        "${$",
        "$${",
        "${a/\\",
        "${FOO#$BAR}",
        "${FOO%$BAR}",
        "${FOO/$BAR/x}",
        "${FOO//$BAR}",
        "<<",
        "<<\t\r ",
        "\u{FEFF}$FOO",
        "${FOO//?/$$0${0}$x${}}",
        "\"${a:-\"}\"}\"",
        "\0$\0{\0}",
    ] {
        inputs.push(garbage.to_string());
    }
    let mut checked = 0usize;
    for input in &inputs {
        for prefix in prefixes(input) {
            exercise(&lexers, prefix, &env);
            checked += 1;
        }
    }
    // Deterministic pseudo-random words over the lexer's special characters.
    let alphabet: Vec<char> = "${}:-+?#%/*\\`'\"<  \tab0@한\n.=_".chars().collect();
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    for _ in 0..3000 {
        let len = (seed % 24) as usize;
        let mut word = String::new();
        for _ in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            word.push(alphabet[(seed % alphabet.len() as u64) as usize]);
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        exercise(&lexers, &word, &env);
        checked += 1;
    }
    println!(
        "no-panic: {checked} inputs x {} lexer configurations",
        lexers.len()
    );
}
