//! The build ARGs that exist without a declaration: BuildKit's proxy ARGs,
//! the ARGs it sets from the platforms and the target stage, and the
//! `BUILDKIT_*` frontend argument kiln reads. One list for the whole
//! workspace (the solver's lowering, lint's checks and lint's ShellCheck
//! scripts, the build's checks).

/// BuildKit's proxy ARGs: those of Docker's classic builder
/// ([`CLASSIC_PROXY_ARGS`], the first eight) and `ALL_PROXY` /
/// `all_proxy`, which BuildKit adds.
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The proxy ARGs of Docker's classic builder (its "Predefined ARGs"
/// list): they reach RUN without an `ARG` and stay out of the history.
/// hadolint exports exactly these into the scripts it gives ShellCheck, and
/// kiln's lowering passes exactly these from `--build-arg` to RUN.
pub const CLASSIC_PROXY_ARGS: &[&str] = PROXY_ARGS.split_at(8).0;

/// The platform ARGs BuildKit sets for every build (`TARGET*` from the
/// target platform, `BUILD*` from the build platform). A stage sees them
/// only after `ARG NAME`; FROM lines see them always.
pub const PLATFORM_ARGS: [&str; 10] = [
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETOSVERSION",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDOSVERSION",
    "BUILDARCH",
    "BUILDVARIANT",
];

/// The name of the stage being built (`default` for an unnamed last
/// stage), set by BuildKit beside [`PLATFORM_ARGS`].
pub const TARGET_STAGE_ARG: &str = "TARGETSTAGE";

/// The build argument that replaces a Dockerfile's `# check=` directive
/// (BuildKit's frontend option, read by its build checks).
pub const DOCKERFILE_CHECK_ARG: &str = "BUILDKIT_DOCKERFILE_CHECK";

/// Whether `name` is one of the ARGs BuildKit defines for every build
/// before the first FROM: [`PLATFORM_ARGS`] and [`TARGET_STAGE_ARG`].
pub fn is_automatic_arg(name: &str) -> bool {
    name == TARGET_STAGE_ARG || PLATFORM_ARGS.contains(&name)
}

/// Whether `name` is one of BuildKit's [`PROXY_ARGS`].
pub fn is_proxy_arg(name: &str) -> bool {
    PROXY_ARGS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildkit_adds_all_proxy_to_the_classic_set() {
        assert_eq!(CLASSIC_PROXY_ARGS.len(), 8);
        assert!(!CLASSIC_PROXY_ARGS.contains(&"ALL_PROXY"));
        assert!(is_proxy_arg("all_proxy") && is_proxy_arg("ALL_PROXY"));
        assert!(!is_proxy_arg("Http_Proxy"));
    }

    #[test]
    fn automatic_args() {
        for name in ["TARGETPLATFORM", "BUILDOSVERSION", "TARGETSTAGE"] {
            assert!(is_automatic_arg(name), "{name}");
        }
        for name in ["HTTP_PROXY", "TARGET", "targetos"] {
            assert!(!is_automatic_arg(name), "{name}");
        }
    }
}
