//! BuildKit's own parser test data, read in place from
//! `../shared/corpus/buildkit/parser/` (see FORMAT.md there).

use kiln_parser::raw::parse_raw;
use kiln_parser::Position;
use std::fs;
use std::path::{Path, PathBuf};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/buildkit/parser")
}

fn read(path: &Path) -> String {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    String::from_utf8(bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn cases(dir: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(corpus().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn testfiles_dump_like_buildkit() {
    let dirs = cases("testfiles");
    let mut failures = Vec::new();
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let source = read(&dir.join("Dockerfile"));
        let expected = read(&dir.join("result"));
        match parse_raw(&source) {
            Ok(df) => {
                // RawDockerfile::dump ends every instruction with "\n", which
                // is BuildKit's dump plus the newline its test appends.
                let got = df.dump();
                if got != expected {
                    failures.push(format!("{name}:\n--- expected\n{expected}--- got\n{got}"));
                }
            }
            Err(e) => failures.push(format!("{name}: parse failed: {e}")),
        }
    }
    println!(
        "parser testfiles: {} of {} dumps match BuildKit's result files",
        dirs.len() - failures.len(),
        dirs.len()
    );
    assert_eq!(dirs.len(), 33, "expected the 33 upstream testfiles");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn negative_testfiles_fail() {
    let dirs = cases("testfiles-negative");
    let mut passed = 0;
    for dir in &dirs {
        let source = read(&dir.join("Dockerfile"));
        let result = parse_raw(&source);
        assert!(result.is_err(), "{} parsed but must fail", dir.display());
        passed += 1;
    }
    println!(
        "parser testfiles-negative: {passed} of {} fail as expected",
        dirs.len()
    );
    assert_eq!(passed, 4);
}

#[test]
fn line_numbers_match_buildkit() {
    let source = read(&corpus().join("testfile-line/Dockerfile"));
    let df = parse_raw(&source).expect("parses");
    let lines: Vec<(usize, usize)> = df
        .nodes
        .iter()
        .map(|n| (n.span.start.line, n.span.end.line))
        .collect();
    assert_eq!(lines, vec![(5, 5), (11, 12), (17, 31)]);
    assert_eq!(df.directives.len(), 1);
    assert_eq!(df.directives[0].name, "escape");
    println!("parser testfile-line: 3 of 3 nodes have BuildKit's start and end lines");
}

#[test]
fn empty_continuation_lines_warn() {
    let source = "\nFROM alpine:3.6\n\nRUN valid \\\n    continuation\n\nRUN something \\\n\n    following \\\n\n    more\n\nRUN another \\\n\n    thing\n\nRUN non-indented \\\n# this is a comment\n   after-comment\n\nRUN indented \\\n    # this is an indented comment\n    comment\n\t";
    let df = parse_raw(source).expect("parses");
    assert_eq!(df.warnings.len(), 2);
    assert!(df.warnings[0]
        .message
        .contains("Empty continuation line found in: RUN something     following     more"));
    assert!(df.warnings[1].message.contains("RUN another     thing"));
    assert_eq!(
        df.warnings[0].detail,
        "Empty continuation lines will become errors in a future release"
    );
    assert_eq!(df.nodes[4].args, vec!["non-indented    after-comment"]);
    assert_eq!(df.nodes[5].args, vec!["indented     comment"]);
}

#[test]
fn overlong_line_is_an_error() {
    let source = format!("FROM a\nLABEL {}\n", "a".repeat(65536));
    let err = parse_raw(&source).unwrap_err();
    assert_eq!(
        err.to_string(),
        "2:1: dockerfile line greater than max allowed size of 65535"
    );
    assert_eq!(err.position, Position::new(2, 1));
}

/// TestParseExtractsHeredoc from GO-TESTS-SUMMARY.md §2, row by row.
#[test]
fn heredocs_extracted_like_buildkit() {
    let source = "FROM alpine:3.6\nENV NAME=me\n\nRUN ls\n\nUSER <<INVALID\nINVALID\n\nRUN <<EMPTY\nEMPTY\n\nRUN 3<<EMPTY2\nEMPTY2\n\nRUN \"<<NOHEREDOC\"\n\nRUN <<INDENT\n\tfoo\n\tbar\nINDENT\n\nRUN <<-UNINDENT\n\tbaz\n\tquux\nUNINDENT\n\nRUN <<-UNINDENT2\n\tbaz\n\tquux\n\tUNINDENT2\n\nRUN <<-EXPAND\n\texpand $NAME\nEXPAND\n\nRUN <<-'NOEXPAND'\n\tdon't expand $NAME\nNOEXPAND\n\nRUN <<COPY\nfoo\nbar\nCOPY\n\nRUN <<COMMENT\n# internal comment\necho hello world\necho foo bar # trailing comment\nCOMMENT\n\nRUN --mount=type=cache,target=/foo <<MOUNT\necho hello\nMOUNT\n\nCOPY <<FILE1 <<FILE2 /dest\ncontent 1\nFILE1\ncontent 2\nFILE2\n\nCOPY <<EOF /quotes\n\"foo\"\n'bar'\nEOF\n\nCOPY <<X <<Y /dest\nY\nX\nX\nY\n\nRUN <<COMPLEX python3\nprint('hello world')\nCOMPLEX\n\nCOPY <<file.txt /dest\nhello world\nfile.txt\n\nRUN <<eo'f'\necho foo\neof\n\nRUN <<eo\\'f\necho foo\neo'f\n\nRUN <<'e'o\\'f\necho foo\neo'f\n\nRUN <<'one two'\necho bar\none two\n\nRUN <<$EOF\n$EOF\n\nRUN <<  EOF\nEOF\n\nRUN <<  EOF  > foo\nEOF\n";
    let df = parse_raw(source).expect("parses");
    type Row = (&'static str, u32, bool, bool, &'static str);
    let expected: Vec<Vec<Row>> = vec![
        vec![],
        vec![],
        vec![],
        vec![],
        vec![("EMPTY", 0, false, true, "")],
        vec![("EMPTY2", 3, false, true, "")],
        vec![],
        vec![("INDENT", 0, false, true, "\tfoo\n\tbar\n")],
        vec![("UNINDENT", 0, true, true, "\tbaz\n\tquux\n")],
        vec![("UNINDENT2", 0, true, true, "\tbaz\n\tquux\n")],
        vec![("EXPAND", 0, true, true, "\texpand $NAME\n")],
        vec![("NOEXPAND", 0, true, false, "\tdon't expand $NAME\n")],
        vec![("COPY", 0, false, true, "foo\nbar\n")],
        vec![(
            "COMMENT",
            0,
            false,
            true,
            "# internal comment\necho hello world\necho foo bar # trailing comment\n",
        )],
        vec![("MOUNT", 0, false, true, "echo hello\n")],
        vec![
            ("FILE1", 0, false, true, "content 1\n"),
            ("FILE2", 0, false, true, "content 2\n"),
        ],
        vec![("EOF", 0, false, true, "\"foo\"\n'bar'\n")],
        vec![("X", 0, false, true, "Y\n"), ("Y", 0, false, true, "X\n")],
        vec![("COMPLEX", 0, false, true, "print('hello world')\n")],
        vec![("file.txt", 0, false, true, "hello world\n")],
        vec![("eof", 0, false, false, "echo foo\n")],
        vec![("eo'f", 0, false, true, "echo foo\n")],
        vec![("eo'f", 0, false, false, "echo foo\n")],
        vec![("one two", 0, false, false, "echo bar\n")],
        vec![("$EOF", 0, false, true, "")],
        vec![("EOF", 0, false, true, "")],
        vec![("EOF", 0, false, true, "")],
    ];
    let got: Vec<Vec<Row>> = df
        .nodes
        .iter()
        .map(|n| {
            n.heredocs
                .iter()
                .map(|h| {
                    let leak =
                        |s: &str| -> &'static str { Box::leak(s.to_string().into_boxed_str()) };
                    (
                        leak(&h.name),
                        h.file_descriptor,
                        h.chomp,
                        h.expand,
                        leak(&h.content),
                    )
                })
                .collect()
        })
        .collect();
    assert_eq!(df.nodes[3].keyword, "USER");
    assert_eq!(df.nodes[4].keyword, "INVALID");
    let mut expected = expected;
    expected.insert(4, vec![]); // the INVALID line parses as its own instruction
    assert_eq!(got, expected);
    println!("heredoc extraction: {} instructions checked", got.len());
}

#[test]
fn json_heredoc_lookalikes_are_not_heredocs() {
    let df = parse_raw("FROM busybox\nRUN [\"whoami\"]\nRUN [\"<<EOF\"]\nRUN [\"<<'EOF'\"]\nEOF\n")
        .expect("parses");
    assert_eq!(df.nodes.len(), 5);
    assert!(df.nodes.iter().all(|n| n.heredocs.is_empty()));
}
