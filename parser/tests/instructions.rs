//! BuildKit's instruction-layer tables (GO-TESTS-SUMMARY.md §3, §4 and §6)
//! and kiln's own typed-instruction cases.

use kiln_parser::instruction::*;
use kiln_parser::{parse, Instruction, Position};

fn err(src: &str) -> String {
    match parse(src) {
        Ok(df) => panic!("{src:?} parsed: {df:?}"),
        Err(e) => e.to_string(),
    }
}

fn first(src: &str) -> Instruction {
    let df = parse(src).unwrap_or_else(|e| panic!("{src:?}: {e}"));
    df.stages[0]
        .commands
        .first()
        .map(|c| c.instruction.clone())
        .unwrap_or_else(|| df.stages[0].from.instruction.clone())
}

#[test]
fn argument_count_errors() {
    let mut n = 0;
    for kw in ["MAINTAINER", "WORKDIR", "USER", "STOPSIGNAL"] {
        let e = err(&format!("FROM busybox\n{kw}\n"));
        assert!(
            e.ends_with(&format!("{kw} requires exactly one argument")),
            "{e}"
        );
        n += 1;
    }
    for kw in ["ENV", "LABEL", "ONBUILD", "HEALTHCHECK", "EXPOSE", "VOLUME"] {
        let e = err(&format!("FROM busybox\n{kw}\n"));
        assert!(
            e.ends_with(&format!("{kw} requires at least one argument")),
            "{e}"
        );
        n += 1;
    }
    for kw in ["ADD", "COPY"] {
        let e = err(&format!("FROM busybox\n{kw} arg1\n"));
        assert!(
            e.ends_with(&format!(
                "{kw} requires at least two arguments, but only one was provided. Destination could not be determined"
            )),
            "{e}"
        );
        n += 1;
    }
    assert!(err("FROM busybox\nENV =arg2\n").contains("ENV names can not be blank"));
    assert!(err("FROM busybox\nLABEL =arg2\n").contains("LABEL names can not be blank"));
    println!("argument-count errors: {} cases", n + 2);
}

#[test]
fn error_cases() {
    let cases = [
        (
            "FROM busybox\nCOPY\t\n\t\tquux \\\n      bar\n",
            "COPY requires at least two arguments",
        ),
        (
            "FROM busybox\nONBUILD FROM scratch\n",
            "FROM isn't allowed as an ONBUILD trigger",
        ),
        (
            "FROM busybox\nMAINTAINER --boo joe@example.com\n",
            "unknown flag: --boo",
        ),
        (
            "FROM busybox\nONBUILD ONBUILD RUN touch foobar\n",
            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
        ),
        (
            "FROM busybox\nHEALTHCHECK --interval=50ns CMD true\n",
            "cannot be less than 1ms",
        ),
        (
            "FROM busybox\nCOPY /foo <<EOF\nEOF\n",
            "COPY cannot accept a heredoc as a destination",
        ),
        (
            "LABEL a=b\nFROM busybox\n",
            "no build stage in current context",
        ),
        (
            "FROM busybox\nSHELL /bin/sh -c\n",
            "SHELL requires the arguments to be in JSON form",
        ),
        ("FROM busybox AS 1st\n", "invalid name for build stage"),
        (
            "FROM busybox AS\n",
            "FROM requires either one or three arguments",
        ),
        (
            "FROM busybox\nRUN --mount=type=nfs,target=/x true\n",
            "unsupported mount type",
        ),
        (
            "FROM busybox\nRUN --network=bridge true\n",
            "unsupported network mode",
        ),
        (
            "FROM busybox\nRUN --security=weird true\n",
            "unsupported security mode",
        ),
        (
            "FROM busybox\nCOPY --link=maybe a b\n",
            "expecting boolean value",
        ),
        (
            "FROM busybox\nCOPY --from a b\n",
            "invalid value for --from: missing a value",
        ),
        (
            "FROM busybox\nHEALTHCHECK NONE x\n",
            "HEALTHCHECK NONE takes no arguments",
        ),
        (
            "FROM busybox\nHEALTHCHECK CMD\n",
            "Missing command after HEALTHCHECK CMD",
        ),
        (
            "FROM busybox\nHEALTHCHECK --retries=-1 CMD true\n",
            "--retries",
        ),
        (
            "FROM busybox\nHEALTHCHECK PING x\n",
            "Unknown type \"PING\" in HEALTHCHECK",
        ),
        (
            "FROM busybox\nENV a=b c\n",
            "Syntax error - can't find = in \"c\"",
        ),
        (
            "FROM busybox\nCMD [\"a\", 1]\n",
            "arrays must be comprised of strings only",
        ),
    ];
    for (src, want) in cases {
        let e = err(src);
        assert!(e.contains(want), "{src:?}: got {e:?}, want {want:?}");
    }
    println!("instruction error cases: {} passed", cases.len());
}

#[test]
fn errors_point_at_the_flag() {
    let e = parse("FROM busybox\nRUN echo a && \\\n  true\nCOPY --chown=a \\\n   --bogus=1 a b\n")
        .unwrap_err();
    assert_eq!(e.position, Position::new(5, 4));
    assert_eq!(e.to_string(), "5:4: unknown flag: --bogus");
    let e = parse("FROM busybox\nRUN --mount=type=cache,sharing=often true\n").unwrap_err();
    assert_eq!(e.position, Position::new(2, 5));
}

#[test]
fn unknown_instructions_are_kept() {
    let df = parse("FROM busybox\nFOO bar baz\nfoo bar\n").unwrap();
    let kws: Vec<&str> = df.stages[0]
        .commands
        .iter()
        .map(|c| c.instruction.name())
        .collect();
    assert_eq!(kws, ["FOO", "foo"]);
    assert_eq!(
        df.stages[0].commands[0].instruction,
        Instruction::Unknown(Unknown {
            keyword: "FOO".into(),
            args: "bar baz".into()
        })
    );
}

#[test]
fn healthcheck_forms() {
    match first("FROM busybox\nHEALTHCHECK CMD hello world\n") {
        Instruction::Healthcheck(Healthcheck::Cmd(h)) => {
            assert_eq!(h.test, ["CMD-SHELL", "hello world"]);
        }
        other => panic!("{other:?}"),
    }
    match first("FROM busybox\nHEALTHCHECK --interval=0ms --timeout=1ms --start-period=1m30s --start-interval=5s --retries=3 CMD [\"/bin/check\", \"-q\"]\n") {
        Instruction::Healthcheck(Healthcheck::Cmd(h)) => {
            assert_eq!(h.test, ["CMD", "/bin/check", "-q"]);
            assert_eq!(h.interval, Some(std::time::Duration::ZERO));
            assert_eq!(h.timeout, Some(std::time::Duration::from_millis(1)));
            assert_eq!(h.start_period, Some(std::time::Duration::from_secs(90)));
            assert_eq!(h.start_interval, Some(std::time::Duration::from_secs(5)));
            assert_eq!(h.retries, Some(3));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        first("FROM busybox\nhealthcheck none\n"),
        Instruction::Healthcheck(Healthcheck::None)
    );
}

#[test]
fn copy_heredoc_sources() {
    let copy = |src: &str| match first(src) {
        Instruction::Copy(c) => c,
        other => panic!("{other:?}"),
    };
    let c = copy("FROM busybox\nCOPY /foo /bar\n");
    assert_eq!(c.sources, vec![CopySource::Path("/foo".into())]);
    assert_eq!(c.dest, "/bar");
    let data = |s: &CopySource| match s {
        CopySource::Heredoc(h) => (h.name.clone(), h.chomped_content(), h.expand),
        other => panic!("{other:?}"),
    };
    let c = copy("FROM busybox\nCOPY <<EOF /bar\nEOF\n");
    assert_eq!(data(&c.sources[0]), ("EOF".into(), "".into(), true));
    let c = copy("FROM busybox\nCOPY <<EOF /bar\nTESTING\nEOF\n");
    assert_eq!(
        data(&c.sources[0]),
        ("EOF".into(), "TESTING\n".into(), true)
    );
    let c = copy("FROM busybox\nCOPY <<-EOF /bar\n\tTESTING\nEOF\n");
    assert_eq!(
        data(&c.sources[0]),
        ("EOF".into(), "TESTING\n".into(), true)
    );
    let c = copy("FROM busybox\nCOPY <<'EOF' /bar\nTESTING\nEOF\n");
    assert_eq!(
        data(&c.sources[0]),
        ("EOF".into(), "TESTING\n".into(), false)
    );
    let c = copy("FROM busybox\nCOPY <<EOF1 <<EOF2 /bar\nhello\nEOF1\nworld\nEOF2\n");
    assert_eq!(data(&c.sources[0]).1, "hello\n");
    assert_eq!(data(&c.sources[1]).1, "world\n");
    let c = copy("FROM busybox\nCOPY <<EOF foo.txt /bar\nthis is inline\nEOF\n");
    assert_eq!(data(&c.sources[0]).1, "this is inline\n");
    assert_eq!(c.sources[1], CopySource::Path("foo.txt".into()));
    let c = copy("FROM busybox\nCOPY <<EOF /quotes\n\"quotes\"\nEOF\n");
    assert_eq!(data(&c.sources[0]).1, "\"quotes\"\n");
}

#[test]
fn run_forms() {
    let run = |src: &str| match first(src) {
        Instruction::Run(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        run("FROM a\nRUN [\"ls\", \"/\"]\n").command,
        CommandLine::Exec(vec!["ls".into(), "/".into()])
    );
    let r = run("FROM a\nRUN [\"<<EOF\"]\n");
    assert_eq!(r.command, CommandLine::Exec(vec!["<<EOF".into()]));
    assert!(r.heredocs.is_empty());
    assert_eq!(
        run("FROM a\nRUN ls /\n").command,
        CommandLine::Shell("ls /".into())
    );
    let r = run("FROM a\nRUN <<EOF\nls /\nwhoami\nEOF\n");
    assert_eq!(r.command, CommandLine::Shell("<<EOF".into()));
    assert_eq!(r.heredocs[0].content, "ls /\nwhoami\n");
    let r = run("FROM a\nRUN <<'EOF' | python\nprint(1)\nprint(2)\nEOF\n");
    assert_eq!(r.command, CommandLine::Shell("<<'EOF' | python".into()));
    let r = run("FROM a\nRUN <<-EOF\n\techo test\nEOF\n");
    assert_eq!(r.heredocs[0].content, "\techo test\n");
    assert!(r.heredocs[0].chomp);
    let r = run("FROM a\nRUN --mount=type=tmpfs,target=/foo/ --network=none --security=insecure echo hello\n");
    assert_eq!(r.mounts[0].mount.kind, MountType::Tmpfs);
    assert_eq!(r.network, Some(NetworkMode::None));
    assert_eq!(r.security, Some(SecurityMode::Insecure));
    let r = run("FROM a\nRUN --mount=type=secret,id=aws,target=/root/.aws/credentials,required=true,mode=0400,uid=1,gid=2 --mount=type=ssh --mount=from=build,src=/out,dst=/in,rw x\n");
    assert_eq!(r.mounts.len(), 3);
    assert!(r.mounts[0].mount.required);
    assert_eq!(r.mounts[0].mount.mode, Some(0o400));
    assert_eq!(r.mounts[1].mount.kind, MountType::Ssh);
    assert_eq!(r.mounts[2].mount.from.as_deref(), Some("build"));
    assert!(!r.mounts[2].mount.readonly);
}

#[test]
fn every_instruction_types() {
    let df = parse(concat!(
        "# syntax=docker/dockerfile:1\n",
        "ARG A B=2\n",
        "from --platform=$BUILDPLATFORM golang AS Build\n",
        "COPY --from=x --chown=1:1 --chmod=755 --link --parents --exclude=*.md --exclude=*.txt a b /c/\n",
        "ADD --checksum=sha256:abc --keep-git-dir=true --unpack=false --link https://x/y.tgz /z\n",
        "ENV k v w\nLABEL a=b\nMAINTAINER me\nEXPOSE 80/tcp 53/udp\nVOLUME [\"/a\", \"/b\"]\n",
        "USER u:g\nWORKDIR /w\nONBUILD COPY --from=a b c\nSTOPSIGNAL SIGTERM\n",
        "SHELL [\"/bin/bash\", \"-c\"]\nCMD [\"a\"]\nENTRYPOINT exec b\n",
    ))
    .unwrap();
    assert_eq!(df.directive("syntax"), Some("docker/dockerfile:1"));
    assert!(
        matches!(&df.global_args[0].instruction, Instruction::Arg(a) if a.len() == 2 && a[1].default.as_deref() == Some("2"))
    );
    let stage = &df.stages[0];
    assert_eq!(stage.name(), Some("build"));
    assert_eq!(stage.base().platform.as_deref(), Some("$BUILDPLATFORM"));
    assert_eq!(stage.base().as_keyword.as_deref(), Some("AS"));
    let names: Vec<&str> = stage
        .commands
        .iter()
        .map(|c| c.instruction.name())
        .collect();
    assert_eq!(
        names,
        [
            "COPY",
            "ADD",
            "ENV",
            "LABEL",
            "MAINTAINER",
            "EXPOSE",
            "VOLUME",
            "USER",
            "WORKDIR",
            "ONBUILD",
            "STOPSIGNAL",
            "SHELL",
            "CMD",
            "ENTRYPOINT"
        ]
    );
    match &stage.commands[0].instruction {
        Instruction::Copy(c) => {
            assert_eq!(c.from.as_deref(), Some("x"));
            assert!(c.link && c.parents);
            assert_eq!(c.excludes, ["*.md", "*.txt"]);
            assert_eq!(c.sources.len(), 2);
        }
        other => panic!("{other:?}"),
    }
    match &stage.commands[1].instruction {
        Instruction::Add(c) => {
            assert_eq!(c.checksum.as_deref(), Some("sha256:abc"));
            assert_eq!((c.keep_git_dir, c.unpack), (Some(true), Some(false)));
        }
        other => panic!("{other:?}"),
    }
    match &stage.commands[2].instruction {
        Instruction::Env(kv) => {
            assert!(kv.legacy);
            assert_eq!(kv.pairs[0].value, "v w");
        }
        other => panic!("{other:?}"),
    }
    match &stage.commands[9].instruction {
        Instruction::Onbuild(o) => {
            assert_eq!(o.expression, "COPY --from=a b c");
            assert!(
                matches!(&o.trigger.instruction, Instruction::Copy(c) if c.from.as_deref() == Some("a"))
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        stage.commands[13].instruction,
        Instruction::Entrypoint(CommandLine::Shell("exec b".into()))
    );
}

/// TestNilLinter: every keyword with odd arguments errors or parses, never panics.
#[test]
fn odd_arguments_never_panic() {
    let mut n = 0;
    for kw in kiln_parser::KEYWORDS {
        for args in [
            "foo=bar", "a", "a b", "a b c", "0 0", "", "--", "[", "[]", "<<", "<<EOF", "\\",
        ] {
            let _ = parse(&format!("FROM busybox\n{kw} {args}\n"));
            let _ = parse(&format!("FROM busybox\nONBUILD {kw} {args}\n"));
            n += 2;
        }
    }
    println!("odd arguments: {n} Dockerfiles parsed or rejected without panicking");
}

/// Every prefix of every corpus file, and a few mutations: errors are fine,
/// panics are not.
#[test]
fn truncated_corpus_files_never_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/corpus/buildkit/parser/testfiles");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("corpus") {
        let path = entry.expect("entry").path().join("Dockerfile");
        let text = std::fs::read_to_string(&path).expect("utf-8");
        for (i, _) in text.char_indices().step_by(7) {
            let _ = parse(&text[..i]);
            let _ = parse(&format!("{}\"'`\\<<", &text[..i]));
            n += 2;
        }
    }
    println!("truncated corpus inputs: {n} parsed or rejected without panicking");
}

#[test]
fn onbuild_heredoc_triggers_keep_their_bodies_and_parse_again() {
    let text = "FROM a\nONBUILD COPY --chmod=755 <<EOF /x\n#!/bin/sh\necho hi\nEOF\nONBUILD RUN <<-A cat\n\tone\n\tA\n";
    let df = parse(text).expect("parses");
    let expressions: Vec<String> = df.stages[0]
        .commands
        .iter()
        .map(|c| match &c.instruction {
            Instruction::Onbuild(o) => o.expression.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        expressions,
        [
            "COPY --chmod=755 <<EOF /x\n#!/bin/sh\necho hi\nEOF",
            "RUN <<-A cat\n\tone\nA"
        ]
    );
    // What a child image's trigger is parsed from: the same instruction.
    for e in &expressions {
        let again = parse(&format!("FROM b\n{e}\n")).expect("the stored trigger parses");
        assert_eq!(again.stages[0].commands.len(), 1, "{e}");
    }
}
