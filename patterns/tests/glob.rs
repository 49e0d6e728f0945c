//! Go's `filepath.Match` table and the `**` extension, checked through the
//! public API.

use kiln_patterns::{clean_relative, go_clean, go_match, has_wildcards, Pattern};

#[test]
fn filepath_match_table() {
    // (pattern, name, expected); None = ErrBadPattern. Go's match_test.go.
    let cases: &[(&str, &str, Option<bool>)] = &[
        ("abc", "abc", Some(true)),
        ("*", "abc", Some(true)),
        ("*c", "abc", Some(true)),
        ("a*", "a", Some(true)),
        ("a*", "abc", Some(true)),
        ("a*", "ab/c", Some(false)),
        ("a*/b", "abc/b", Some(true)),
        ("a*/b", "a/c/b", Some(false)),
        ("a*b*c*d*e*/f", "axbxcxdxe/f", Some(true)),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Some(true)),
        ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Some(false)),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Some(false)),
        ("a*b?c*x", "abxbbxdbxebxczzx", Some(true)),
        ("a*b?c*x", "abxbbxdbxebxczzy", Some(false)),
        ("ab[c]", "abc", Some(true)),
        ("ab[b-d]", "abc", Some(true)),
        ("ab[e-g]", "abc", Some(false)),
        ("ab[^c]", "abc", Some(false)),
        ("ab[^b-d]", "abc", Some(false)),
        ("ab[^e-g]", "abc", Some(true)),
        ("a\\*b", "a*b", Some(true)),
        ("a\\*b", "ab", Some(false)),
        ("a?b", "a☺b", Some(true)),
        ("a[^a]b", "a☺b", Some(true)),
        ("a???b", "a☺b", Some(false)),
        ("a[^a][^a][^a]b", "a☺b", Some(false)),
        ("[a-ζ]*", "α", Some(true)),
        ("*[a-ζ]", "A", Some(false)),
        ("a?b", "a/b", Some(false)),
        ("a*b", "a/b", Some(false)),
        ("[\\]a]", "]", Some(true)),
        ("[\\-]", "-", Some(true)),
        ("[x\\-]", "x", Some(true)),
        ("[x\\-]", "-", Some(true)),
        ("[x\\-]", "z", Some(false)),
        ("[\\-x]", "x", Some(true)),
        ("[\\-x]", "-", Some(true)),
        ("[\\-x]", "a", Some(false)),
        ("[!a]", "!", Some(true)), // Go has no `[!...]` negation
        ("[!a]", "b", Some(false)),
        ("[]a]", "]", None),
        ("[-]", "-", None),
        ("[x-]", "x", None),
        ("[x-]", "-", None),
        ("[x-]", "z", None),
        ("[-x]", "x", None),
        ("[-x]", "-", None),
        ("[-x]", "a", None),
        ("\\", "a", None),
        ("[a-b-c]", "a", None),
        ("[", "a", None),
        ("[^", "a", None),
        ("[^bc", "a", None),
        ("a[", "a", None),
        ("a[", "ab", None),
        ("a[", "x", None),
        ("a/b[", "x", None),
        ("*x", "xxx", Some(true)),
        // Go checks no range order: a reversed range matches nothing.
        ("[b-a]", "a", Some(false)),
        ("x[b-a]*", "xbz", Some(false)),
        ("**", "a", Some(true)),
        ("**", "a/b", Some(false)),
    ];
    for (pattern, name, want) in cases {
        let got = go_match(pattern, name).ok();
        assert_eq!(got, *want, "Match({pattern:?}, {name:?})");
    }
}

#[test]
fn bad_patterns_say_why() {
    let cases: &[(&str, &str)] = &[
        ("[", "unterminated character class"),
        ("[]a]", "'-' or ']' must be escaped in a class"),
        ("[\\", "trailing '\\' in a class"),
        ("a\\", "trailing '\\'"),
    ];
    for (pattern, want) in cases {
        let err = Pattern::new(pattern).expect_err(pattern);
        assert_eq!(err.to_string(), *want, "{pattern:?}");
    }
    // patternmatcher's regular expressions reject what Go lets match nothing.
    let err = Pattern::with_double_star("[b-a]").expect_err("reversed range");
    assert_eq!(err.to_string(), "invalid range b-a");
}

#[test]
fn double_star_tokens() {
    let cases: &[(&str, &str, bool)] = &[
        ("**/*.txt", "file.txt", true),
        ("**/*.txt", "a/b/file.txt", true),
        ("**/*.txt", "a/b/file.txt2", false),
        ("a/**/b", "a/b", true),
        ("a/**/b", "a/x/y/b", true),
        ("a/**/b", "ab", false),
        ("a**/*.txt", "a/dir/dir/file.txt", true),
        ("dir/**", "dir/x", true),
        ("dir/**", "dir", false),
    ];
    for (pattern, name, want) in cases {
        let compiled = Pattern::with_double_star(pattern).expect("valid pattern");
        assert_eq!(compiled.matches(name), *want, "{pattern:?} vs {name:?}");
    }
}

#[test]
fn literal_table() {
    let cases: &[(&str, Option<&str>)] = &[
        ("abc", Some("abc")),
        ("a\\*b", Some("a*b")),
        ("a*", None),
        ("[ab]", None),
    ];
    for (pattern, want) in cases {
        let compiled = Pattern::new(pattern).expect("valid");
        assert_eq!(compiled.literal().as_deref(), *want, "{pattern:?}");
    }
}

/// A hostile pattern against a long name is answered at once: the matcher
/// is a table, never a backtracking search.
#[test]
fn hostile_patterns_stay_linear() {
    let pattern = "*a".repeat(200) + "b";
    let name = "a".repeat(5000);
    assert_eq!(go_match(&pattern, &name), Ok(false));
    let deep = Pattern::with_double_star(&"**/a".repeat(200)).expect("valid");
    assert!(!deep.matches(&"a/".repeat(3000)));
}

#[test]
fn wildcards_and_clean() {
    let wild: &[(&str, bool)] = &[
        ("a.txt", false),
        ("*.txt", true),
        ("a?", true),
        ("[ab]", true),
        ("a\\*b", false),
        ("dir/sub", false),
    ];
    for (name, want) in wild {
        assert_eq!(has_wildcards(name), *want, "{name:?}");
    }
    let clean: &[(&str, &str)] = &[
        ("", "."),
        ("a/./b/", "a/b"),
        ("a//b", "a/b"),
        ("../a", "../a"),
        ("/../a", "/a"),
        ("a/../..", ".."),
        ("/", "/"),
        ("./", "."),
    ];
    for (input, want) in clean {
        assert_eq!(go_clean(input), *want, "{input:?}");
    }
}

#[test]
fn clean_relative_table() {
    let cases: &[(&str, &str)] = &[
        ("a.txt", "a.txt"),
        ("./a.txt", "a.txt"),
        ("/a.txt", "a.txt"),
        ("../a.txt", "a.txt"),
        ("../../x/../y/./z/", "y/z"),
        (".", ""),
        ("", ""),
        ("/", ""),
        ("dir/", "dir"),
        ("a//b", "a/b"),
        ("/a/./b/../../../c/", "c"),
    ];
    for (input, want) in cases {
        assert_eq!(clean_relative(input), *want, "{input:?}");
    }
}
