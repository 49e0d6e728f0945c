//! BuildKit's directive tables (TestDirectives, TestDetectSyntax,
//! TestParseDirective) and JSON/name-value tables (json_test.go,
//! line_parsers_test.go), from GO-TESTS-SUMMARY.md §3 and §4; plus CRLF and
//! BOM handling.

use kiln_parser::raw::parse_raw;
use kiln_parser::{detect_check, detect_syntax, parse, Position};

#[test]
fn directives_table() {
    let df = parse_raw("#escape=\\\n# key = FOO bar\n\n# smth\nFROM a\n").unwrap();
    assert_eq!(df.directives.len(), 1);
    assert_eq!(
        (
            df.directives[0].name.as_str(),
            df.directives[0].value.as_str()
        ),
        ("escape", "\\")
    );
    let df = parse_raw("# EScape=\\\n# KEY = FOO bar\nFROM a\n").unwrap();
    assert_eq!(df.directives.len(), 1);
    assert_eq!(df.directives[0].name, "escape");
    // A shebang is an ordinary comment for the parser: it ends directives.
    let df = parse_raw("#!/bin/sh\n# escape=`\nFROM a\n").unwrap();
    assert_eq!(df.escape, '\\');
    assert!(parse_raw("# escape=\\\n# escape=`\nFROM a\n").is_err());
    let e = parse_raw("# escape=x\nFROM a\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "1:1: invalid escape token 'x' does not match ` or \\"
    );
    let df = parse_raw(
        "# syntax=docker/dockerfile:1\n# check=skip=all\n# escape=`\nFROM a\nRUN a `\n  b\n",
    )
    .unwrap();
    assert_eq!(df.directives.len(), 3);
    assert_eq!(df.nodes[1].args, ["a   b"]);
    println!("directive table: 7 cases passed");
}

#[test]
fn detect_syntax_table() {
    /// (reference, value, line) of the detected directive.
    type Found = Option<(&'static str, &'static str, usize)>;
    let cases: &[(&str, Found)] = &[
        (
            "# syntax = dockerfile:experimental // opts\nFROM a\n",
            Some((
                "dockerfile:experimental",
                "dockerfile:experimental // opts",
                1,
            )),
        ),
        (
            "#!/bin/sh\n# syntax = dockerfile:experimental\n",
            Some(("dockerfile:experimental", "dockerfile:experimental", 2)),
        ),
        ("#!/bin/sh\n\n# syntax = dockerfile:experimental\n", None),
        ("FROM busybox\nRUN ls\n", None),
        ("//syntax=foo\n//key=value\n", Some(("foo", "foo", 1))),
        ("#!/bin/sh\n//syntax=x\n", Some(("x", "x", 2))),
        (
            "{\"syntax\": \"foo\", \"bar\": [\"abc\"]}",
            Some(("foo", "foo", 1)),
        ),
        ("{\"syntax\": \"foo\"", None),
        ("{\"syntax\": \"foo\"}\n# syntax=bar\n", None),
        (
            "\u{FEFF}# syntax = myfrontend\n",
            Some(("myfrontend", "myfrontend", 1)),
        ),
    ];
    for (src, want) in cases {
        let got = detect_syntax(src).map(|d| (d.reference, d.value, d.line));
        let want = want.map(|(r, v, l)| (r.to_string(), v.to_string(), l));
        assert_eq!(got, want, "{src:?}");
    }
    println!("DetectSyntax table: {} cases passed", cases.len());
}

#[test]
fn detect_check_table() {
    let d = detect_check("#check = skip=all // opts\nFROM a\n").unwrap();
    assert_eq!(
        (d.reference.as_str(), d.value.as_str(), d.line),
        ("skip=all", "skip=all // opts", 1)
    );
    assert_eq!(
        detect_check("#!/bin/sh\n# check=skip=all\n").map(|d| d.line),
        Some(2)
    );
    assert_eq!(detect_check("#!/bin/sh\n\n# check=skip=all\n"), None);
    assert_eq!(detect_check("//check=skip=all\n"), None);
    println!("ParseDirective(check) table: 4 cases passed");
}

#[test]
fn json_table() {
    let valid: &[(&str, &[&str])] = &[
        ("[]", &[]),
        ("[\"\"]", &[""]),
        ("[\"a\"]", &["a"]),
        ("[\"a\",\"b\"]", &["a", "b"]),
        ("[ \"a\", \"b\" ]", &["a", "b"]),
        ("[\t\"a\",\t\"b\"\t]", &["a", "b"]),
        ("\t[\t\"a\",\t\"b\"\t]\t", &["a", "b"]),
        (
            "[\"abc 123\", \"♥\", \"☃\", \"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u0000\"]",
            &["abc 123", "♥", "☃", "\" \\ / \u{8} \u{c} \n \r \t \u{0}"],
        ),
    ];
    for (json, want) in valid {
        let df = parse_raw(&format!("CMD {json}\n")).unwrap();
        assert!(df.nodes[0].json, "{json}");
        assert_eq!(df.nodes[0].args, *want, "{json}");
    }
    let invalid = [
        "[\"a\",42,\"b\"]",
        "[\"a\",123.456,\"b\"]",
        "[\"a\",{},\"b\"]",
        "[\"a\",{\"c\": \"d\"},\"b\"]",
        "[\"a\",[\"c\"],\"b\"]",
        "[\"a\",true,\"b\"]",
        "[\"a\",false,\"b\"]",
        "[\"a\",null,\"b\"]",
    ];
    for json in invalid {
        let e = parse_raw(&format!("CMD {json}\n")).unwrap_err();
        assert!(
            e.to_string()
                .contains("arrays must be comprised of strings only"),
            "{json}"
        );
    }
    println!(
        "JSON table: {} valid and {} invalid cases passed",
        valid.len(),
        invalid.len()
    );
}

#[test]
fn name_value_table() {
    let df = parse_raw("LABEL foo bar\nLABEL foo=bar thing=star\n").unwrap();
    assert_eq!(df.nodes[0].args, ["foo", "bar", ""]);
    assert_eq!(df.nodes[1].args, ["foo", "bar", "=", "thing", "star", "="]);
    assert!(parse_raw("ENV foo\n")
        .unwrap_err()
        .to_string()
        .contains("ENV must have two arguments"));
}

#[test]
fn crlf_and_bom() {
    let df =
        parse("\u{FEFF}FROM busybox\r\nRUN echo a \\\r\n  b\r\nCOPY <<EOF /x\r\nhi\r\nEOF\r\n")
            .unwrap();
    let cmds: Vec<_> = df.commands().collect();
    assert_eq!(cmds[0].span.start, Position::new(1, 1));
    assert_eq!(cmds[1].original, "RUN echo a   b");
    match &cmds[2].instruction {
        kiln_parser::Instruction::Copy(c) => match &c.sources[0] {
            kiln_parser::instruction::CopySource::Heredoc(h) => assert_eq!(h.content, "hi\r\n"),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    // ADD takes heredocs too.
    let df = parse("FROM a\nADD <<EOF /x\nhello\nEOF\n").unwrap();
    assert!(
        matches!(&df.stages[0].commands[0].instruction, kiln_parser::Instruction::Add(c) if matches!(c.sources[0], kiln_parser::instruction::CopySource::Heredoc(_)))
    );
}
