//! Golden vertex digests and cache keys. A vertex's digest is the hash of
//! its serialised op and its inputs' digests, and every cache key is built
//! on it, so a change to any op's serialised form (a renamed field, a
//! reordered variant, a type the solver takes from another crate) moves
//! them and silently invalidates every cache. These tests pin them: when one
//! fails, the change was either a mistake or must be deliberate, with the
//! cache-key version bumped.

use kiln_oci::{Digest, ImageConfig, LocalStore, Platform};
use kiln_solver::context::BuildContext;
use kiln_solver::{
    lower, solve, BuildOptions, CacheKeyParts, Event, FileAction, FileOp, Graph, ImageResolver,
    Lowered, Op, ProgressSink, ResolveError, ResolvedImage, SolveOptions, VertexMeta,
    CACHE_KEY_VERSION,
};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

const CHANGED: &str = "vertex digests changed: if deliberate, bump the cache-key version";

/// Every image resolves, to a manifest digest made from its name and
/// platform, with a config that has only a PATH.
struct Fixed;

impl ImageResolver for Fixed {
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage, ResolveError> {
        let r = kiln_oci::Reference::parse(reference).map_err(|e| e.to_string())?;
        let mut config = ImageConfig {
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            ..ImageConfig::default()
        };
        config.config.env = Some(vec!["PATH=/bin".into()]);
        Ok(ResolvedImage {
            reference: r.to_string(),
            manifest: Digest::sha256(format!("{r} {platform}").as_bytes()),
            config,
        })
    }
}

fn options() -> BuildOptions {
    let amd64: Platform = "linux/amd64".parse().expect("platform");
    BuildOptions {
        platform: amd64.clone(),
        build_platform: amd64,
        ..BuildOptions::default()
    }
}

fn lower_text(text: &str, options: &BuildOptions) -> Lowered {
    let dockerfile = kiln_parser::parse(text).expect("the Dockerfile parses");
    lower(&dockerfile, options, &Fixed, Path::new("/nonexistent")).expect("it lowers")
}

/// `kind digest` of every vertex, in the order they were added.
fn digests(graph: &Graph) -> Vec<String> {
    graph
        .vertices()
        .iter()
        .map(|v| format!("{} {}", v.op.kind(), v.digest))
        .collect()
}

/// Lowers `text` and compares every vertex digest with `expected`.
fn assert_digests(text: &str, options: &BuildOptions, expected: &[&str]) {
    let lowered = lower_text(text, options);
    assert_eq!(digests(&lowered.graph), expected, "{CHANGED}\n{text}");
}

#[test]
fn from_an_image_with_workdir_and_a_context_copy() {
    assert_digests(
        "FROM busybox\nUSER app\nWORKDIR /app\nCOPY a.txt .\n",
        &options(),
        &[
            "image sha256:048e9ba385cb4b2fbf59220c81a8fe72c3459ade486f73bc132a8513a9d15b45",
            "file sha256:ba74a1daf83c096cc689416e1e27ba5320fdb61eadd9bff75daf84181cfdc7a6",
            "context sha256:9bfe52df2387d51b228529936df70d3e38018309682d9f2f359cd723b5a385b6",
            "file sha256:2b43d18fdbaf3c11bb10fd69d2c288d58202c9af5140922cc7606c4fe6cc836a",
        ],
    );
}

#[test]
fn run_with_mounts_network_security_and_a_heredoc_script() {
    let text = "FROM busybox AS tools\n\
        FROM busybox\n\
        RUN --mount=type=cache,target=/var/cache/apk,sharing=locked,mode=0700,uid=1,gid=2 \
            --mount=type=cache,id=seeded,target=/seed,from=tools,source=/etc,ro \
            --mount=type=bind,from=tools,source=/bin,target=/tools \
            --mount=type=bind,target=/src,rw \
            --mount=type=secret,id=token,env=TOKEN,required \
            --mount=type=ssh \
            --mount=type=tmpfs,target=/tmp,size=1048576 \
            true\n\
        RUN --network=none --security=insecure echo hi\n\
        RUN --network=host echo host\n\
        RUN <<EOF\n#!/bin/sh\necho script\nEOF\n";
    assert_digests(
        text,
        &options(),
        &[
            "image sha256:048e9ba385cb4b2fbf59220c81a8fe72c3459ade486f73bc132a8513a9d15b45",
            "context sha256:9bfe52df2387d51b228529936df70d3e38018309682d9f2f359cd723b5a385b6",
            "exec sha256:b5bc1422752fdf637e181b84495c0840b0ef6e1fd306924d0464dc5c707c75e7",
            "exec sha256:5846359ad6b1f751845f30117b8f799d3afab4d18c15ce7e15663629845700a6",
            "exec sha256:965a5a04243be998ae38b8ace53cf8099cd8aae34a0ae15f954594906cec00d2",
            "exec sha256:321c0785e89e8f9849e4f5c0cc774fbfe0f7ce51d24e4ad2f81d032d18672e37",
        ],
    );
    // The build's --network is what a RUN without --network gets.
    let none = BuildOptions {
        network: "none".parse().expect("network"),
        ..options()
    };
    assert_digests(
        "FROM busybox\nRUN echo hi\n",
        &none,
        &[
            "image sha256:048e9ba385cb4b2fbf59220c81a8fe72c3459ade486f73bc132a8513a9d15b45",
            "exec sha256:e25b3bfab214ecd2e30bd8cf7c2f166ab7ae495434b8e94bd5d678c10b78a959",
        ],
    );
}

#[test]
fn copy_and_add_with_their_options() {
    let text = "FROM scratch\n\
        COPY --chmod=755 --chown=1:2 a.txt /x/\n\
        COPY --chown=user:group --chmod=u+x,go-w b /y\n\
        COPY --link --exclude=*.md --parents src/ /src/\n\
        ADD t.tar /t/\n\
        ADD --unpack=false t.tar /keep/\n\
        ADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 \
            https://example.com/dir/file.txt /f\n\
        COPY <<EOF /h.txt\nhello\nEOF\n";
    assert_digests(
        text,
        &options(),
        &[
            "scratch sha256:d38c155c4391bf00440e52a76b32de189268c559f1f9a04811053b61d543d86a",
            "context sha256:9bfe52df2387d51b228529936df70d3e38018309682d9f2f359cd723b5a385b6",
            "file sha256:9bd5debcf5753ecfc2cf41bc54f58d29d11736a72204731c09345bb45989a683",
            "file sha256:9fbb6b9e1d0154f702c783947cffd6031e818c601ef41d47cbe44bcc998b6056",
            "file sha256:ca10664f9c686fd1381948cc91e80c950d989d3b7af1f3f32fbb75290ba0bc62",
            "file sha256:88257c300504cd4ab7ed085ddb8e30b75cf9679f3fc1fa6ce7d91450e4b382b8",
            "file sha256:255358cb5ef3253b5dfa8b504bb38215ec52431eded226bdd4eb45cd2f935fef",
            "http sha256:52bc839bb583072894db845d0967a7ab186dd5805e03a211271e43c767c97ae9",
            "file sha256:3a62a5717ac927f3b3ef3d505829af556aab93df9533d0127db6343558584fba",
            "file sha256:af232f49f2a9ebfe06fd5414e01730b8e93904e294cc29a2818f0c1d3db5a5ee",
        ],
    );
}

#[test]
fn copy_from_a_stage_an_image_and_a_named_context() {
    let text = "FROM busybox AS build\n\
        RUN echo built > /out\n\
        FROM scratch\n\
        COPY --from=build /out /out\n\
        COPY --from=alpine:3.20 /etc/os-release /\n\
        COPY --from=extra / /extra/\n";
    let mut opts = options();
    opts.named_contexts.insert(
        "extra".into(),
        "/some/dir".parse().expect("a local context"),
    );
    assert_digests(
        text,
        &opts,
        &[
            "image sha256:048e9ba385cb4b2fbf59220c81a8fe72c3459ade486f73bc132a8513a9d15b45",
            "exec sha256:d39e1bfb6785fb1a65dabd9244d65e765fc559e99cc3448a89a25186bfbb2e0b",
            "scratch sha256:d38c155c4391bf00440e52a76b32de189268c559f1f9a04811053b61d543d86a",
            "file sha256:cc89224d05d14770b194b5d043a5caad76571ee800192f414c2f4d0e7ec4d407",
            "image sha256:109a1aef48bfd38dd23cd4629b739c2b212239e061df8c32a7f83a4a7f29ccc6",
            "file sha256:c48b90f9fd70488216496ee012b929601cee41f20fc1255479754ad7c513ec73",
            "context sha256:c236b5ed099f7491b4cdd24e31de96321bc997b066263e2f8c89459211fb0639",
            "file sha256:c2a6889cf746930250222bffe34069d0eba6b7c7c8866275bd3d76279982110c",
        ],
    );
}

#[test]
fn stages_on_stages_share_their_vertices() {
    let text = "FROM busybox AS base\n\
        ENV A=1\n\
        RUN echo $A\n\
        FROM base AS one\n\
        RUN echo one\n\
        FROM base AS two\n\
        COPY --from=one /x /x\n\
        WORKDIR sub\n";
    assert_digests(
        text,
        &options(),
        &[
            "image sha256:048e9ba385cb4b2fbf59220c81a8fe72c3459ade486f73bc132a8513a9d15b45",
            "exec sha256:a8912d242d1d7b25b37399bdde564aa82c573f69b4f5bd5f2d519d6cc4d007ae",
            "exec sha256:a0223dc7e29b2a789e8d940722ba008211b001b4fd4f8f500fefb40e03d555ca",
            "file sha256:01c0990c6cab8875df78a843b9c48aa0d9d3848167f40f78dc78bcfe62541c95",
            "file sha256:3c1888044f76332be17236b83d8b7fa3255eeb7b7e967f393934bfd0f50bbe0c",
        ],
    );
}

#[test]
fn a_merge_of_two_branches() {
    let mut g = Graph::new();
    let scratch = g.add(Op::Scratch, vec![], VertexMeta::default());
    let mkdir = |path: &str| {
        Op::File(FileOp {
            actions: vec![FileAction::Mkdir {
                path: path.into(),
                mode: 0o755,
                owner: None,
                parents: true,
            }],
        })
    };
    let a = g.add(mkdir("/a"), vec![scratch], VertexMeta::default());
    let b = g.add(mkdir("/b"), vec![scratch], VertexMeta::default());
    g.add(Op::Merge, vec![a, b], VertexMeta::default());
    assert_eq!(
        digests(&g),
        [
            "scratch sha256:d38c155c4391bf00440e52a76b32de189268c559f1f9a04811053b61d543d86a",
            "file sha256:2b11c870374ce4da94a976a2917b2f2235550c1a54935a26d670f765d7a14c46",
            "file sha256:56aad55efefd79350610f5506167997765a2f70e46011cf10d2daf0cb9dc3826",
            "merge sha256:fb317a3b39186c0bf4ea5642331a7718a7e0f2d3469d13c4295f197abd02aeae",
        ],
        "{CHANGED}"
    );
}

#[test]
fn the_cache_key_formula() {
    assert_eq!(CACHE_KEY_VERSION, "kiln.cache.v1", "{CHANGED}");
    let parts = CacheKeyParts {
        vertex: "sha256:aa".into(),
        inputs: vec!["sha256:bb".into(), "sha256:cc".into()],
        context: Some("dd".into()),
    };
    let none = CacheKeyParts {
        context: None,
        ..parts.clone()
    };
    assert_eq!(
        [parts.key().to_string(), none.key().to_string()],
        [
            "sha256:6280c56c40f54e05692cb1281b5538071ec6d4dfb58e5278ed417debc554364e",
            "sha256:2f5b7bf87b161226ac1bce47a8a7402c3c862d7904621581cdab9f7bbe3015c9",
        ],
        "{CHANGED}"
    );
}

/// Never asked to run anything that matters: a RUN "succeeds" and leaves
/// an empty layer, which is all a cache key needs.
struct NoProcess;

impl kiln_executor::Runtime for NoProcess {
    fn run(
        &self,
        _: &kiln_executor::RunRequest<'_>,
    ) -> Result<kiln_executor::RunOutput, kiln_executor::RuntimeError> {
        Ok(kiln_executor::RunOutput {
            status: 0,
            output: Vec::new(),
            notes: Vec::new(),
        })
    }
}

struct Quiet;

impl ProgressSink for Quiet {
    fn event(&self, _: Event) {}
}

/// The cache keys the solver records for a real solve from scratch: file
/// steps reading the context (whose checksum is part of the key), heredoc
/// files, WORKDIR, RUN (on a runtime that runs nothing) and a step on a
/// merge. Needs root, to give the context files owner 0:0.
#[test]
fn cache_keys_of_a_solve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(ctx.join("src")).expect("mkdir");
    for (path, data, mode) in [
        ("a.txt", "a\n", 0o644),
        ("src/run.sh", "#!/bin/sh\n", 0o755),
        ("src/README.md", "readme\n", 0o600),
    ] {
        use std::os::unix::fs::PermissionsExt;
        let path = ctx.join(path);
        std::fs::write(&path, data).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    for path in ["", "src", "a.txt", "src/run.sh", "src/README.md"] {
        std::os::unix::fs::lchown(ctx.join(path), Some(0), Some(0))
            .expect("chown 0:0 (this test runs as root)");
    }
    let text = "FROM scratch\n\
        COPY --chmod=755 a.txt /x/\n\
        COPY --exclude=*.md src/ /src/\n\
        WORKDIR /work\n\
        COPY <<EOF /h.txt\nhello\nEOF\n\
        RUN --network=none echo hi\n";
    let dockerfile = kiln_parser::parse(text).expect("parses");
    let mut lowered = lower(&dockerfile, &options(), &Fixed, &ctx).expect("lowers");
    // A step on the merge of the result and another branch.
    let scratch = lowered
        .graph
        .add(Op::Scratch, vec![], VertexMeta::default());
    let side = lowered.graph.add(
        Op::File(FileOp {
            actions: vec![FileAction::Mkdir {
                path: "/side".into(),
                mode: 0o700,
                owner: None,
                parents: false,
            }],
        }),
        vec![scratch],
        VertexMeta {
            name: "side".into(),
            ..VertexMeta::default()
        },
    );
    let merge = lowered
        .graph
        .add(Op::Merge, vec![lowered.root, side], VertexMeta::default());
    lowered.root = lowered.graph.add(
        Op::File(FileOp {
            actions: vec![FileAction::Rm {
                path: "/h.txt".into(),
                allow_not_found: false,
            }],
        }),
        vec![merge],
        VertexMeta {
            name: "after the merge".into(),
            ..VertexMeta::default()
        },
    );
    let store = LocalStore::open(dir.path().join("store")).expect("store");
    let context = BuildContext::open(&ctx, None).expect("context");
    let contexts = HashMap::from([("context".to_string(), Arc::new(context))]);
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let solved = rt
        .block_on(solve(
            &lowered,
            &store,
            contexts,
            &SolveOptions {
                jobs: 1,
                ..SolveOptions::default()
            },
            Arc::new(NoProcess),
            Arc::new(Quiet),
        ))
        .expect("solves");
    // Keys by the step that made them (steps finish in any order).
    let cache = kiln_solver::CacheIndex::new(store.layout());
    let mut keys = BTreeMap::new();
    for v in lowered.graph.closure(&[lowered.root]) {
        let v = lowered.graph.vertex(v);
        if let Some(parts) = cache.last(&v.meta.name) {
            keys.insert(v.meta.name.clone(), parts.key().to_string());
        }
    }
    let mut recorded: Vec<String> = solved.steps.iter().map(|(k, _)| k.to_string()).collect();
    recorded.sort();
    let mut named: Vec<String> = keys.values().cloned().collect();
    named.sort();
    assert_eq!(recorded, named, "every recorded key belongs to a step");
    let keys: Vec<String> = keys.into_iter().map(|(n, k)| format!("{n} {k}")).collect();
    assert_eq!(keys, [
            "[stage-0 1] COPY --chmod=755 a.txt /x/ sha256:8b6381782fb74be3cc0d8f21fb3622ba507e0fc798db58f0be3f4ad45c8c83d7",
            "[stage-0 2] COPY --exclude=*.md src/ /src/ sha256:8aa05ce69a4242e240873a7a8a07b24130aa0c95b942927e3302591dc3792677",
            "[stage-0 3] WORKDIR /work sha256:bbdef73d43f4c1d1b7619920ff953299d7aa7111b8efd94a20f8162fbcb8492d",
            "[stage-0 4] COPY <<EOF /h.txt sha256:c15df3563676d9bf2c79bceb5226b63a37869f6ba4603d54b8100f3227ee459a",
            "[stage-0 5] RUN --network=none echo hi sha256:78499fe8f7ebab3cdb89fbad8bd1223b9bbe3c81481466d5cfad177754076721",
            "after the merge sha256:409537fc9f3223fa0808212f2452f5a1bac4a320a71958a6b2df0de3d7f4d661",
            "side sha256:ce4f971611117aefaac7766d562b2ad0c0f2b724466f4942cad1bbbb4cf1813f",
        ], "{CHANGED}");
}

/// A RUN step's platform is part of its digest, so of its key (BuildKit
/// hashes an op's platform): the same step on `scratch` gets a key per
/// platform. linux/amd64 is left out of the hash, which keeps the digests
/// pinned above. A stage on a `FROM --platform=$BUILDPLATFORM` stage runs
/// as its base says, natively (issue 17: emulated RUN).
#[test]
fn issue_17_a_run_step_has_a_key_per_platform() {
    let text = "FROM scratch\nRUN [\"/bin/true\"]\n";
    let exec = |platform: &str| {
        let options = BuildOptions {
            platform: platform.parse().expect("platform"),
            ..options()
        };
        let lowered = lower_text(text, &options);
        let v = lowered.graph.vertex(lowered.root);
        match &v.op {
            Op::Exec(e) => (e.platform.clone(), v.digest.to_string()),
            other => panic!("not a RUN: {other:?}"),
        }
    };
    let (amd64, arm64, arm) = (
        exec("linux/amd64"),
        exec("linux/arm64"),
        exec("linux/arm/v7"),
    );
    assert_eq!(
        [&amd64.0, &arm64.0, &arm.0],
        ["linux/amd64", "linux/arm64", "linux/arm/v7"]
    );
    assert_ne!(amd64.1, arm64.1);
    assert_ne!(arm64.1, arm.1);
    assert_ne!(amd64.1, arm.1);

    let native = "FROM --platform=$BUILDPLATFORM busybox AS tools\nRUN echo build\n\
        FROM tools AS more\nRUN echo more\n";
    let options = BuildOptions {
        platform: "linux/arm64".parse().expect("platform"),
        ..options()
    };
    let lowered = lower_text(native, &options);
    let platforms: Vec<String> = lowered
        .graph
        .vertices()
        .iter()
        .filter_map(|v| match &v.op {
            Op::Exec(e) => Some(e.platform.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/amd64"]);
}
