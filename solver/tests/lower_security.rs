//! Lowering hostile Dockerfiles (issue 13, findings 6, 7 and 10): no
//! panic, no recursion on the depth of stage chains, bad `ADD` URLs and
//! checksums refused before anything is downloaded, and every error at a
//! `LINE:COL`.

use kiln_oci::Platform;
use kiln_solver::{
    lower, BuildOptions, ImageResolver, LowerError, Lowered, ResolveError, ResolvedImage,
};
use std::path::Path;

/// No image exists: these Dockerfiles build from scratch.
struct NoImages;

impl ImageResolver for NoImages {
    fn resolve(&self, reference: &str, _: &Platform) -> Result<ResolvedImage, ResolveError> {
        Err(format!("no image {reference} here").into())
    }
}

fn lower_text(text: &str) -> Result<Lowered, LowerError> {
    let dockerfile = kiln_parser::parse(text).expect("the Dockerfile parses");
    lower(
        &dockerfile,
        &BuildOptions::default(),
        &NoImages,
        Path::new("/nonexistent"),
    )
}

fn error(text: &str) -> LowerError {
    match lower_text(text) {
        Ok(_) => panic!("lowering succeeded:\n{text}"),
        Err(e) => e,
    }
}

#[test]
fn a_dockerfile_of_only_args_is_an_error_at_1_1() {
    for text in ["ARG A=1\n", "ARG A=1\nARG B\n"] {
        let e = error(text);
        assert_eq!(e.to_string(), "1:1: dockerfile contains no stages to build");
    }
}

/// `FROM scratch AS s0`, `FROM s0 AS s1`, ... `FROM s{n-1} AS s{n}`,
/// with each reference made by `reference(i)`.
fn chain(n: usize, prelude: &str, reference: impl Fn(usize) -> String) -> String {
    let mut text = String::from(prelude);
    text.push_str("FROM scratch AS s0\n");
    for i in 1..n {
        text.push_str(&format!("FROM {} AS s{i}\n", reference(i - 1)));
    }
    text
}

#[test]
fn two_thousand_chained_stages_lower_on_a_small_stack() {
    // Test threads have 2 MiB of stack; recursive lowering overflowed 8.
    let text = chain(2000, "", |i| format!("s{i}"));
    lower_text(&text).expect("the chain lowers");
    // COPY --from chains too, with a file in each stage.
    let mut text = String::from("FROM scratch AS s0\nCOPY <<EOF /f0\n0\nEOF\n");
    for i in 1..2000 {
        text.push_str(&format!(
            "FROM scratch AS s{i}\nCOPY --from=s{} / /\n",
            i - 1
        ));
    }
    lower_text(&text).expect("the COPY --from chain lowers");
}

#[test]
fn chains_only_known_after_expansion_lower_too() {
    // `${P}N` matches no stage as written, so each stage waits for the
    // one it names while it is being lowered.
    let text = chain(2000, "ARG P=s\n", |i| format!("${{P}}{i}"));
    lower_text(&text).expect("the chain lowers");
    let mut text = String::from("FROM scratch AS s0\nARG P=s\n");
    for i in 1..2000 {
        text.push_str(&format!(
            "FROM scratch AS s{i}\nARG P=s\nCOPY --from=${{P}}{} / /\n",
            i - 1
        ));
    }
    lower_text(&text).expect("the COPY --from chain lowers");
}

#[test]
fn a_stage_that_waits_for_many_goes_on_where_it_paused() {
    // One stage naming 2,000 others through a variable: it pauses at each
    // COPY for the stage it names and resumes there (lowering it again
    // from the top each time took minutes), ending where the same
    // Dockerfile with the names written out ends.
    let text = |reference: &dyn Fn(usize) -> String| {
        let mut text = String::from("FROM scratch AS s0\nCOPY <<EOF /f\nx\nEOF\n");
        for i in 1..2000 {
            text.push_str(&format!("FROM scratch AS s{i}\n"));
        }
        text.push_str("FROM scratch\nARG P=s\nENV E=1\n");
        for i in 0..2000 {
            text.push_str(&format!(
                "COPY --from={} / /d{i}\nENV E=$E{i}\n",
                reference(i)
            ));
        }
        text
    };
    let waited = lower_text(&text(&|i| format!("${{P}}{i}"))).expect("lowers");
    let written = lower_text(&text(&|i| format!("s{i}"))).expect("lowers");
    assert_eq!(
        waited.graph.vertex(waited.root).digest,
        written.graph.vertex(written.root).digest
    );
    assert_eq!(
        serde_json::to_value(&waited.config).expect("json"),
        serde_json::to_value(&written.config).expect("json")
    );
}

#[test]
fn cycles_are_still_found_with_their_position() {
    let e = error("FROM scratch AS a\nCOPY --from=b /x /x\nFROM a AS b\n");
    assert_eq!(
        e.to_string(),
        "3:1: circular dependency detected on stage: a"
    );
    // Through expansion, which only lowering sees: the reference to a
    // later stage is refused before it could close a cycle.
    let e = error(
        "FROM scratch AS a\nARG B=b\nCOPY --from=$B /x /x\nFROM scratch AS b\nARG A=a\nCOPY --from=$A /y /y\n",
    );
    assert_eq!(
        e.to_string(),
        "3:6: cannot copy from stage \"b\", it needs to be defined before current stage \"a\"",
    );
}

#[test]
fn add_checksums_kiln_cannot_check_are_refused_at_the_flag() {
    let md5 = "FROM scratch\nADD --checksum=md5:d41d8cd98f00b204e9800998ecf8427e http://127.0.0.1:9/f /\n";
    let e = error(md5);
    assert_eq!(
        e.to_string(),
        "2:5: invalid --checksum=md5:d41d8cd98f00b204e9800998ecf8427e: unsupported algorithm \"md5\" (sha256:HEX or sha512:HEX)"
    );
    let e = error("FROM scratch\nADD --checksum=sha256:abc http://127.0.0.1:9/f /\n");
    assert!(
        e.to_string()
            .starts_with("2:5: invalid --checksum=sha256:abc: "),
        "{e}"
    );
    let e = error("FROM scratch\nADD --checksum=nonsense http://127.0.0.1:9/f /\n");
    assert!(e.to_string().contains("not ALGORITHM:HEX"), "{e}");
    let good = format!(
        "FROM scratch\nADD --checksum={} http://127.0.0.1:9/f /\n",
        kiln_oci::Digest::sha256(b"")
    );
    lower_text(&good).expect("a sha256 checksum is fine");
}

#[test]
fn an_invalid_add_url_says_why() {
    let e = error("FROM scratch\nADD http://[::1/ok /\n");
    assert_eq!(
        e.to_string(),
        "2:1: ADD invalid URL \"http://[::1/ok\": invalid IPv6 address"
    );
}

#[test]
fn lowering_errors_carry_a_column() {
    for (text, at) in [
        // The flag at fault.
        ("FROM scratch\nCOPY --chmod=abc a /\n", "2:6"),
        ("FROM scratch\n  COPY --chown=1 --chmod=9z a /\n", "2:18"),
        ("FROM --platform=nope/x/y/z scratch\n", "1:6"),
        // The instruction.
        ("FROM scratch\n  EXPOSE x\n", "2:3"),
        ("FROM nothere\n", "1:1"),
        ("FROM scratch\n    FOO bar\n", "2:5"),
        ("FROM scratch\nRUN --mount=type=tmpfs true\n", "2:5"),
    ] {
        let e = error(text);
        let position = e.position().expect("a position");
        assert_eq!(position.to_string(), at, "{text:?}: {e}");
        assert!(e.to_string().starts_with(&format!("{at}: ")), "{e}");
    }
}
