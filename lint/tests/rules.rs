//! One table case per rule: a small Dockerfile and the (code, line)
//! findings expected, following hadolint's tests and catalogue.

use kiln_lint::{lint, Config, Severity};

fn found(src: &str, config: &Config) -> Vec<(String, usize)> {
    lint(src, config)
        .into_iter()
        .map(|d| (d.code, d.line))
        .collect()
}

/// Asserts that linting `src` gives `code` at exactly `lines`.
fn case(code: &str, src: &str, lines: &[usize]) {
    let got: Vec<usize> = found(src, &Config::default())
        .into_iter()
        .filter(|(c, _)| c == code)
        .map(|(_, l)| l)
        .collect();
    assert_eq!(got, lines, "{code} on:\n{src}");
}

#[test]
fn instruction_rules() {
    case(
        "DL3000",
        "FROM a:1\nWORKDIR rel/dir\nWORKDIR /abs\nWORKDIR C:\\x\nWORKDIR $HOME\n",
        &[2],
    );
    case(
        "DL3002",
        "FROM a:1\nUSER root\nFROM b:1\nUSER root\nUSER app\n",
        &[2],
    );
    case("DL3002", "FROM a:1\nUSER 0:0\n", &[2]);
    case(
        "DL3006",
        "FROM debian\nFROM debian:12 AS b\nFROM b\nFROM scratch\nFROM $X\nFROM a@sha256:00\n",
        &[1],
    );
    case("DL3007", "FROM a:latest\nFROM a:latest@sha256:00\n", &[1]);
    case(
        "DL3011",
        "FROM a:1\nEXPOSE 80 80000\nEXPOSE 8000-8080/tcp\n",
        &[2],
    );
    case(
        "DL3012",
        "FROM a:1\nHEALTHCHECK NONE\nHEALTHCHECK NONE\nFROM b:1\nHEALTHCHECK NONE\n",
        &[3],
    );
    case(
        "DL3020",
        "FROM a:1\nADD x.tar.gz /\nADD https://x/y /\nADD src /dst\n",
        &[4],
    );
    case(
        "DL3021",
        "FROM a:1\nCOPY a b c\nCOPY a b c/\nCOPY a b\n",
        &[2],
    );
    case("DL3022", "FROM a:1 AS x\nCOPY --from=x a b\nCOPY --from=y a b\nCOPY --from=0 a b\nCOPY --from=img:1 a b\n", &[3]);
    case("DL3023", "FROM a:1 AS x\nCOPY --from=x a b\n", &[2]);
    case("DL3024", "FROM a:1 AS x\nFROM b:1 AS x\n", &[2]);
    case(
        "DL3025",
        "FROM a:1\nCMD echo hi\nENTRYPOINT [\"x\"]\nHEALTHCHECK CMD curl x\n",
        &[2, 4],
    );
    case(
        "DL3029",
        "FROM --platform=linux/amd64 a:1\nFROM --platform=$BUILDPLATFORM b:1\n",
        &[1],
    );
    case(
        "DL3044",
        "FROM a:1\nENV A=1 B=$A\nENV C=2\nENV C=3 D=${C}\nENV PATH=$PATH:/x\n",
        &[2],
    );
    case("DL3045", "FROM a:1 AS b\nCOPY x rel/\nWORKDIR /app\nCOPY x rel/\nFROM b\nCOPY x rel/\nFROM c:1\nCOPY x /abs\n", &[2]);
    case(
        "DL3048",
        "FROM a:1\nLABEL Maintainer=x\nLABEL org.opencontainers.image.title=x\n",
        &[2],
    );
    case("DL3063", "FROM a:1 AS context\n", &[1]);
    case(
        "DL3064",
        "FROM a:1\nARG GITHUB_TOKEN\nENV DB_PASSWORD=x\nENV OK=1\n",
        &[2, 3],
    );
    case("DL3065", "FROM --platform=$TARGETPLATFORM a:1\n", &[1]);
    case(
        "DL3066",
        "FROM a:1\nARG U\nUSER $U\nUSER 1000:1000\nUSER app\n",
        &[5],
    );
    case(
        "DL3067",
        "FROM a:1 AS b\nFROM c:1\nCOPY --from=b / /\nCOPY --from=b /app /\n",
        &[3],
    );
    case("DL4000", "FROM a:1\nMAINTAINER me\n", &[2]);
    case(
        "DL4003",
        "FROM a:1\nCMD [\"a\"]\nCMD [\"b\"]\nFROM b:1\nCMD [\"c\"]\n",
        &[3],
    );
    case(
        "DL4004",
        "FROM a:1\nENTRYPOINT [\"a\"]\nENTRYPOINT [\"b\"]\n",
        &[3],
    );
}

#[test]
fn run_rules() {
    case("DL3001", "FROM a:1\nRUN top\nRUN echo\n", &[2]);
    case("DL3003", "FROM a:1\nRUN cd /opt && make\n", &[2]);
    case("DL3004", "FROM a:1\nRUN sudo make\n", &[2]);
    case("DL3008", "FROM a:1\nRUN apt-get install -y python\nRUN apt-get install -y python=3 ./x.deb -t buster\n", &[2]);
    case("DL3009", "FROM a:1\nRUN apt-get update\nRUN apt-get update && rm -rf /var/lib/apt/lists/*\nRUN --mount=type=cache,target=/var/lib/apt/lists apt-get update\n", &[2]);
    case(
        "DL3009",
        "FROM a:1 AS unused\nRUN apt-get update\nFROM b:1\n",
        &[],
    );
    case("DL3013", "FROM a:1\nRUN pip install flask\nRUN pip install flask==2 -r req.txt\nRUN python -m pip install x==1\n", &[2]);
    case("DL3014", "FROM a:1\nRUN apt-get install x=1\nRUN apt-get -qq install x=1\nRUN apt-get install --yes x=1\n", &[2]);
    case("DL3015", "FROM a:1\nRUN apt-get install -y x=1\nRUN apt-get install -y --no-install-recommends x=1\n", &[2]);
    case("DL3016", "FROM a:1\nRUN npm install express\nRUN npm install express@4 @a/b@1 ./local\nRUN npm install\n", &[2]);
    case(
        "DL3018",
        "FROM a:1\nRUN apk add --no-cache curl\nRUN apk add --no-cache curl=8 -t .deps x=1\n",
        &[2],
    );
    case(
        "DL3019",
        "FROM a:1\nRUN apk add curl=8\nRUN apk add --no-cache curl=8\n",
        &[2],
    );
    case("DL3027", "FROM a:1\nRUN apt install x\n", &[2]);
    case(
        "DL3028",
        "FROM a:1\nRUN gem install rails\nRUN gem install rails:7\nRUN gem install rails -v 7\n",
        &[2],
    );
    case(
        "DL3030",
        "FROM a:1\nRUN yum install x-1.0\nRUN yum install -y x-1.0\n",
        &[2],
    );
    case(
        "DL3032",
        "FROM a:1\nRUN yum install -y x-1.0\nRUN yum install -y x-1.0 && yum clean all\n",
        &[2],
    );
    case("DL3033", "FROM a:1\nRUN yum install -y x && yum clean all\nRUN yum install -y x-1.2.3 && yum clean all\n", &[2]);
    case(
        "DL3034",
        "FROM a:1\nRUN zypper install x=1\nRUN zypper -n install x=1\n",
        &[2],
    );
    case("DL3035", "FROM a:1\nRUN zypper dist-upgrade\n", &[2]);
    case(
        "DL3036",
        "FROM a:1\nRUN zypper install -y x=1\nRUN zypper install -y x=1 && zypper clean\n",
        &[2],
    );
    case(
        "DL3037",
        "FROM a:1\nRUN zypper install -y x\nRUN zypper install -y x=1\n",
        &[2],
    );
    case("DL3038", "FROM a:1\nRUN dnf install x-1.0\n", &[2]);
    case(
        "DL3040",
        "FROM a:1\nRUN dnf install -y x-1.0\nRUN dnf install -y x-1.0 && dnf clean all\n",
        &[2],
    );
    case("DL3041", "FROM a:1\nENV V=1\nRUN dnf install -y x && dnf clean all\nRUN dnf install -y x-$V && dnf clean all\n", &[3]);
    case("DL3042", "FROM a:1\nRUN pip install x==1\nRUN pip install --no-cache-dir x==1\nENV PIP_NO_CACHE_DIR=1\nRUN pip install x==1\n", &[2]);
    case(
        "DL3046",
        "FROM a:1\nRUN useradd -u 123456 app\nRUN useradd -l -u 123456 app\n",
        &[2],
    );
    case("DL3047", "FROM a:1\nRUN wget http://x\nRUN wget -q http://x\nRUN wget --progress=dot:giga http://x\n", &[2]);
    case(
        "DL3059",
        "FROM a:1\nRUN a\n# comment\nRUN b\nRUN c && d\nRUN e\nENV X=1\nRUN f\n",
        &[4],
    );
    case(
        "DL3060",
        "FROM a:1\nRUN yarn install\nRUN yarn install && yarn cache clean\n",
        &[2],
    );
    case(
        "DL3062",
        "FROM a:1\nRUN go install example.com/x@latest\nRUN go install example.com/x@v1.2.3\n",
        &[2],
    );
    case(
        "DL4001",
        "FROM a:1\nRUN curl x\nRUN wget -q y\nRUN curl z\n",
        &[3, 4],
    );
    case("DL4005", "FROM a:1\nRUN ln -sf /bin/bash /bin/sh\n", &[2]);
    case("DL4006", "FROM a:1\nRUN a | b\nSHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]\nRUN a | b\nFROM c:1\nRUN a | b\n", &[2, 6]);
    case(
        "DL4006",
        "FROM a:1\nSHELL [\"powershell\", \"-Command\"]\nRUN a | b\n",
        &[],
    );
}

#[test]
fn onbuild_triggers_are_checked_by_shell_rules() {
    case("DL3004", "FROM a:1\nONBUILD RUN sudo x\n", &[2]);
    case("DL3020", "FROM a:1\nONBUILD ADD src /dst\n", &[]);
}

#[test]
fn pragmas_and_config() {
    case(
        "DL3003",
        "FROM a:1\n# hadolint ignore=DL3003,DL3059\nRUN cd /x\nRUN cd /y\n",
        &[4],
    );
    case(
        "DL3003",
        "# hadolint global ignore=DL3003\nFROM a:1\nRUN cd /x\n",
        &[],
    );
    case(
        "StageNameCasing",
        "# check=skip=StageNameCasing\nFROM a:1 AS Build\n",
        &[],
    );
    let mut config = Config::default();
    config.ignored.push("DL3006".into());
    config.overrides.insert("DL3057".into(), Severity::Info);
    config.overrides.insert("DL3003".into(), Severity::Error);
    let all = lint("FROM a\nRUN cd /x\n", &config);
    let codes: Vec<(&str, Severity)> = all.iter().map(|d| (d.code.as_str(), d.severity)).collect();
    assert_eq!(
        codes,
        [("DL3057", Severity::Info), ("DL3003", Severity::Error)]
    );
    let mut config = Config::default();
    config.trusted_registries.push("my.registry".into());
    let got = found(
        "FROM my.registry/a:1\nFROM docker.io/b:1\nFROM c:1\n",
        &config,
    );
    let dl3026: Vec<usize> = got
        .iter()
        .filter(|(c, _)| c == "DL3026")
        .map(|(_, l)| *l)
        .collect();
    assert_eq!(dl3026, [2, 3]);
}

#[test]
fn parse_errors_are_dl1000() {
    let d = lint("FROM a:1\nCOPY --bogus a b\n", &Config::default());
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].code.as_str(), d[0].line, d[0].column),
        ("DL1000", 2, 6)
    );
    assert_eq!(d[0].severity, Severity::Error);
    assert!(kiln_lint::is_failure(
        &d,
        &Config {
            failure_threshold: Severity::Error,
            ..Config::default()
        }
    ));
}

#[test]
fn buildkit_checks() {
    case("StageNameCasing", "FROM a:1 AS Build\n", &[1]);
    case("FromAsCasing", "FROM a:1 as b\nfrom a:1 as c\n", &[1]);
    case(
        "JSONArgsRecommended",
        "FROM a:1\nCMD x\nFROM b:1\nSHELL [\"/bin/bash\", \"-c\"]\nCMD y\n",
        &[2],
    );
    case("MaintainerDeprecated", "FROM a:1\nMAINTAINER me\n", &[2]);
    case(
        "ConsistentInstructionCasing",
        "FROM a:1\nRUN x\nrun y\n",
        &[3],
    );
    case("DuplicateStageName", "FROM a:1 AS x\nFROM b:1 AS X\n", &[2]);
    case("ReservedStageName", "FROM a:1 AS scratch\n", &[1]);
    case("LegacyKeyValueFormat", "FROM a:1\nENV A 1\nENV B=2\n", &[2]);
    case(
        "MultipleInstructionsDisallowed",
        "FROM a:1\nCMD [\"a\"]\nCMD [\"b\"]\n",
        &[2],
    );
    case(
        "WorkdirRelativePath",
        "FROM a:1\nWORKDIR rel\nWORKDIR rel2\n",
        &[2],
    );
    case(
        "SecretsUsedInArgOrEnv",
        "FROM a:1\nARG GITHUB_TOKEN\nARG PUBLIC_KEY\nENV GPG_KEYS=x\n",
        &[2],
    );
    case(
        "RedundantTargetPlatform",
        "FROM --platform=$TARGETPLATFORM a:1\n",
        &[1],
    );
    case(
        "UndefinedArgInFrom",
        "ARG TAG=1\nFROM a:$TAG\nFROM b:$OTHER\nFROM --platform=$BUILDPLATFORM c:1\n",
        &[3],
    );
}

/// The ARGs BuildKit defines without a declaration come from one list
/// (`kiln_parser::predefined`): every automatic platform ARG and
/// TARGETSTAGE in FROM, and both cases of every proxy ARG, ALL_PROXY's too.
#[test]
fn predefined_args_are_buildkits() {
    case(
        "UndefinedArgInFrom",
        "FROM a:${TARGETOSVERSION}\nFROM b:$BUILDOSVERSION\nFROM c-$TARGETSTAGE\nFROM d:$NOPE\n",
        &[4],
    );
    case(
        "UndefinedVar",
        "FROM scratch\nENV A=$ALL_PROXY B=$all_proxy C=$no_proxy\nENV D=$NO_PROXYY\n",
        &[3],
    );
}

#[test]
fn more_buildkit_checks() {
    case("NoEmptyContinuation", "FROM a:1\nRUN a \\\n\n  b\n", &[2]);
    case(
        "ExposeProtoCasing",
        "FROM a:1\nEXPOSE 80/TcP 81/udp\n",
        &[2],
    );
    case(
        "ExposeInvalidFormat",
        "FROM a:1\nEXPOSE 80:80\nEXPOSE 81\n",
        &[2],
    );
    case(
        "FromPlatformFlagConstDisallowed",
        "FROM --platform=linux/amd64 a:1\nFROM --platform=linux/amd64 a:1 AS build_amd64\n",
        &[1],
    );
    case(
        "InvalidDefaultArgInFrom",
        "ARG TAG\nFROM busybox:${TAG}\nARG V=3\nFROM busybox:${V}\nFROM busybox:${TAG:-1}\n",
        &[2],
    );
    case("UndefinedVar", "FROM scratch\nARG NAME=x\nCOPY $NAME /\nCOPY $NAEM /\nFROM debian:12\nENV APP=/a\nWORKDIR $APP\nWORKDIR $APPX\nWORKDIR $JAVA_HOME\nENV GOPATH=/go\nENV PATH=$GOPATH:$PATH\n", &[4, 8]);
    case(
        "InvalidDefaultArgInFrom",
        "ARG D\nFROM b-$TARGETOS${D:+-debug}\n",
        &[],
    );
    case("InvalidDefinitionDescription", "# check=experimental=InvalidDefinitionDescription\n\n# base image\nFROM a:1 AS build\n# build the thing\nFROM a:1 AS other\n", &[4, 6]);
    case(
        "InvalidDefinitionDescription",
        "# base image\nFROM a:1 AS build\n",
        &[],
    );
    case(
        "JSONArgsRecommended",
        "FROM a:1\n# check=skip=JSONArgsRecommended\nCMD x\nCMD y\n",
        &[4],
    );
}

#[test]
fn label_schema_rules() {
    let mut config = Config::default();
    for (k, v) in [
        ("author", "text"),
        ("url", "url"),
        ("version", "semver"),
        ("rev", "hash"),
        ("date", "rfc3339"),
        ("license", "spdx"),
        ("mail", "email"),
    ] {
        config.label_schema.insert(k.into(), v.into());
    }
    config.strict_labels = true;
    let src = "FROM a:1 AS base\nLABEL author=\"\" url=nope version=1.2 rev=XYZ date=today license=Apache mail=nobody extra=1\nFROM base\nFROM b:1\n";
    let got = found(src, &config);
    let codes: Vec<&str> = got
        .iter()
        .map(|(c, _)| c.as_str())
        .filter(|c| c.starts_with("DL30") && *c != "DL3048")
        .collect();
    assert_eq!(
        codes,
        [
            "DL3050", "DL3051", "DL3052", "DL3053", "DL3054", "DL3055", "DL3056", "DL3058",
            "DL3049", "DL3049", "DL3049", "DL3049", "DL3049", "DL3049", "DL3049"
        ]
    );
    assert!(got
        .iter()
        .filter(|(c, _)| c == "DL3049")
        .all(|(_, l)| *l == 4));
}

#[test]
fn dl3010_copy_then_extract() {
    case(
        "DL3010",
        "FROM a:1\nCOPY app.tar.gz /tmp/\nRUN tar -xzf /tmp/app.tar.gz\nCOPY b.zip /\n",
        &[2],
    );
    case(
        "DL3010",
        "FROM a:1\nCOPY --from=x app.tar.gz /tmp/\nRUN tar -xzf /tmp/app.tar.gz\n",
        &[],
    );
}

#[test]
fn every_rule_is_explained() {
    for rule in kiln_lint::rules() {
        assert!(kiln_lint::explain(rule.code()).is_some(), "{}", rule.code());
    }
    assert!(kiln_lint::explain("DL1000").is_some());
}

#[test]
fn misplaced_instructions_are_reported_and_the_rest_linted() {
    case("DL3061", "LABEL a=b\nFROM debian\nRUN cd /x\n", &[1]);
    case("DL3003", "LABEL a=b\nFROM debian\nRUN cd /x\n", &[3]);
    case(
        "DL3043",
        "FROM a:1\nONBUILD ONBUILD RUN x\nONBUILD MAINTAINER me\nRUN cd /x\n",
        &[2, 3],
    );
    case("DL1000", "LABEL a=b\nFROM a:1\nCOPY --bogus a b\n", &[3]);
}

#[test]
fn copy_ignored_file_needs_a_dockerignore() {
    let src = "FROM a:1\nCOPY vendor/x /x\nCOPY src /src\nCOPY --from=b vendor /v\n";
    let mut config = Config::default();
    assert!(found(src, &config)
        .iter()
        .all(|(c, _)| c != "CopyIgnoredFile"));
    config.dockerignore = Some(kiln_lint::DockerIgnore::parse("vendor\n"));
    let lines: Vec<usize> = found(src, &config)
        .into_iter()
        .filter(|(c, _)| c == "CopyIgnoredFile")
        .map(|(_, l)| l)
        .collect();
    assert_eq!(lines, [2]);
    config.dockerignore = Some(kiln_lint::DockerIgnore::parse("vendor\n!vendor/keep\n"));
    assert!(found(src, &config)
        .iter()
        .all(|(c, _)| c != "CopyIgnoredFile"));
}

/// With the base images resolved (as `kiln lint` does from its store or a
/// registry), UndefinedVar sees their ENV and reports every other name,
/// and InvalidBaseImagePlatform compares their platform with the stage's.
#[test]
fn base_images_make_undefined_var_exact_and_check_platforms() {
    use kiln_lint::{base_refs, BaseImage, BaseImages};
    let src = "ARG PY=3.12\n\
               FROM python:${PY} AS app\n\
               ENV A=$PYTHON_VERSION B=$NOT_SET\n\
               FROM app\n\
               WORKDIR $PYTHON_VERSON\n\
               FROM --platform=$BUILDPLATFORM golang:1 AS tools\n\
               ENV X=$GOPATH\n\
               FROM unknown:1\n\
               ENV Y=$ANYTHING\n";
    let mut images = BaseImages::new("linux/arm64", "linux/amd64");
    let refs = base_refs(src, &images);
    let wanted: Vec<(&str, &str)> = refs
        .iter()
        .map(|r| (r.image.as_str(), r.platform.as_str()))
        .collect();
    assert_eq!(
        wanted,
        [
            ("python:3.12", "linux/arm64"),
            ("golang:1", "linux/amd64"),
            ("unknown:1", "linux/arm64")
        ]
    );
    images.insert(
        &refs[0],
        BaseImage {
            env: vec!["PATH".into(), "PYTHON_VERSION".into()],
            platform: "linux/amd64".into(),
        },
    );
    images.insert(
        &refs[1],
        BaseImage {
            env: vec!["PATH".into(), "GOPATH".into()],
            platform: "linux/amd64".into(),
        },
    );
    let config = Config {
        base_images: Some(images),
        ..Config::default()
    };
    let found = lint(src, &config);
    let of = |code: &str| -> Vec<(usize, String)> {
        found
            .iter()
            .filter(|d| d.code == code)
            .map(|d| (d.line, d.message.clone()))
            .collect()
    };
    assert_eq!(
        of("UndefinedVar"),
        [
            (3, "Usage of undefined variable '$NOT_SET'".to_string()),
            (
                5,
                "Usage of undefined variable '$PYTHON_VERSON' (did you mean $PYTHON_VERSION?)"
                    .to_string()
            )
        ]
    );
    // python is amd64 but the target is arm64; golang is wanted for the
    // build platform, which it matches; unknown:1 was not resolved.
    assert_eq!(
        of("InvalidBaseImagePlatform"),
        [(
            2,
            "Base image python:3.12 was pulled with platform \"linux/amd64\", expected \"linux/arm64\" for current build"
                .to_string()
        )]
    );
    // Without them: no platform check, and only near misses are reported.
    let found = lint(src, &Config::default());
    assert!(!found
        .iter()
        .any(|d| d.code == "InvalidBaseImagePlatform" || d.message.contains("NOT_SET")));
}
