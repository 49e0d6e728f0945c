//! The request phase on its own: `kiln build`'s flags, read by clap as
//! the cli reads them, into a [`BuildRequest`] or the first flag's error.

use super::*;
use clap::Parser;
use kiln_solver::remote_cache::CacheMode;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    args: BuildArgs,
}

fn request(argv: &[&str]) -> Result<BuildRequest> {
    let cli = Cli::try_parse_from(std::iter::once("build").chain(argv.iter().copied()))
        .expect("clap accepts the flags");
    BuildRequest::from_args(&cli.args, &Default::default())
}

fn error(argv: &[&str]) -> String {
    match request(argv) {
        Ok(_) => panic!("{argv:?} was accepted"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn flags_become_typed_values() {
    let r = request(&[
        "--platform",
        "linux/amd64,linux/arm64,linux/amd64",
        "-t",
        "app:1",
        "--label",
        "team=core",
        "--build-arg",
        "SOURCE_DATE_EPOCH= 42",
        "--build-context",
        "base=docker-image://busybox",
        "--cache-from",
        "type=local,src=/c",
        "--cache-to",
        "type=registry,ref=r/cache,mode=max",
        "--allow",
        "network.host",
        "--call",
        "check,format=json",
        "--no-cache-filter",
        "a,b",
        "ctx",
    ])
    .expect("valid flags");
    let platforms: Vec<String> = r.platforms.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        platforms,
        ["linux/amd64", "linux/arm64/v8"],
        "each once, in order"
    );
    assert!(r.multi_platform());
    assert_eq!(r.options.platform, r.platforms[0]);
    assert_eq!(r.tags, ["docker.io/library/app:1"]);
    assert_eq!(r.labels.get("team").map(String::as_str), Some("core"));
    assert_eq!(r.epoch, Some(42));
    assert!(r.options.named_contexts.contains_key("base"));
    assert_eq!(
        r.cache_from,
        [CacheLocation::Local("/c".into(), "latest".into())]
    );
    assert_eq!(r.cache_to[0].mode, CacheMode::Max);
    assert_eq!(r.allow, [Entitlement::NetworkHost]);
    assert_eq!(r.call, Call::Check { json: true });
    assert_eq!(r.no_cache_stages, ["a", "b"]);
}

#[test]
fn the_first_wrong_flag_is_named() {
    for (argv, want) in [
        (
            &["--annotation", "index:k=v", "ctx"][..],
            "--annotation index:...: a single-platform build writes no index (give several --platform values)",
        ),
        (
            &["--platform", "linux/amd64,linux/arm64", "-o", "type=docker,dest=x.tar", "ctx"][..],
            "a docker archive holds one platform; build one --platform, or use type=oci for an index",
        ),
        (&["-t", "Bad Name", "ctx"][..], "-t \"Bad Name\": "),
        (
            &["--build-arg", "SOURCE_DATE_EPOCH=soon", "ctx"][..],
            "SOURCE_DATE_EPOCH=\"soon\": expected seconds since 1970",
        ),
        (
            &["--build-context", "base", "ctx"][..],
            "--build-context \"base\": expected NAME=VALUE",
        ),
        (
            &["--cache-from", "type=gha", "ctx"][..],
            "--cache-from \"type=gha\": cache type \"gha\" is not supported (registry, local or inline)",
        ),
        (
            &["--cache-to", "type=inline,mode=max", "ctx"][..],
            "--cache-to \"type=inline,mode=max\": an inline cache holds the image's own steps only",
        ),
        (
            &["--call", "subrequests.describe", "ctx"][..],
            "--call \"subrequests.describe\": unknown method (build, check, outline or targets)",
        ),
        (&["--allow", "everything", "ctx"][..], "--allow: "),
    ] {
        let got = error(argv);
        assert!(got.contains(want), "{argv:?}: {got:?} lacks {want:?}");
    }
}

#[test]
fn layers_are_converted_for_the_outputs_that_leave_the_store() {
    let zstd: kiln_oci::Compression = "zstd".parse().expect("zstd");
    let wanted = |argv: &[&str]| -> Vec<kiln_oci::Compression> {
        request(argv)
            .expect("valid")
            .layer_conversions()
            .iter()
            .map(|o| o.compression)
            .collect()
    };
    assert_eq!(
        wanted(&["-o", "type=image,name=a,compression=zstd", "ctx"]),
        [zstd]
    );
    // Each wanted compression once.
    assert_eq!(
        wanted(&[
            "-o",
            "type=image,name=a,compression=zstd",
            "--push",
            "-t",
            "r/a",
            "--cache-to",
            "type=local,dest=c",
            "ctx"
        ]),
        [zstd, kiln_oci::Compression::default()]
    );
    // The local store keeps layers as built; a rootfs is not an image.
    assert!(wanted(&["-o", "type=image,name=a", "ctx"]).is_empty());
    assert!(wanted(&["-t", "a", "ctx"]).is_empty());
    assert!(wanted(&["-o", "type=local,dest=out", "ctx"]).is_empty());
    assert!(wanted(&["--cache-to", "type=inline", "-t", "a", "ctx"]).is_empty());
    assert_eq!(
        wanted(&["-o", "type=image,name=a,push=true", "ctx"]),
        [kiln_oci::Compression::default()]
    );
}
