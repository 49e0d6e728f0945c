//! The exec op (RUN): the process, its network and security modes, and its
//! `--mount`s.

use serde::Serialize;

/// A process to run (RUN).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecOp {
    /// argv.
    pub args: Vec<String>,
    /// `KEY=value` environment.
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// `user[:group]`.
    pub user: String,
    /// `--network` mode.
    pub network: NetworkMode,
    /// `--security` mode.
    pub security: SecurityMode,
    /// Files provided read-only at these paths while the process runs (a
    /// `#!` heredoc script at `/dev/pipes/NAME`); never in the layer.
    pub files: Vec<ExecFile>,
    /// `RUN --mount`s. Only their definitions are hashed: a secret's value
    /// and a cache's contents never reach a cache key.
    pub mounts: Vec<ExecMount>,
    /// Extra `/etc/hosts` entries (`--add-host`), hashed as BuildKit's
    /// exec meta holds them; left out of the hash when there are none, so
    /// other steps' keys do not move.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<(String, std::net::IpAddr)>,
    /// `/dev/shm`'s size in bytes (`--shm-size`). This and the next two
    /// are hashed as BuildKit's exec meta holds them (`ShmSize`, `Ulimit`,
    /// `CgroupParent`, which its cache map keeps); each is left out of the
    /// hash when unset, so other steps' keys do not move.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<u64>,
    /// Resource limits (`--ulimit`), in the order given.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ulimits: Vec<kiln_executor::Ulimit>,
    /// The parent cgroup (`--cgroup-parent`), as
    /// [`kiln_executor::cgroup_parent`] returns it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup_parent: Option<String>,
    /// The platform the process runs as (its base image's, `linux/arm64`):
    /// another architecture's runs under QEMU emulation. Hashed, as
    /// BuildKit hashes an op's platform, so the same step on `scratch`
    /// for two platforms has two keys; `linux/amd64` is left out of the
    /// hash, so the keys made before this field (all of them pinned in
    /// `solver/tests/digests.rs`) do not move.
    #[serde(skip_serializing_if = "is_linux_amd64")]
    pub platform: String,
}

fn is_linux_amd64(platform: &str) -> bool {
    platform == "linux/amd64"
}

/// The network of a RUN step (`RUN --network`, else the build's
/// `--network`). Hashed as `default`, `host` or `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// The default network, which is the host's.
    #[default]
    Default,
    /// The host's network (needs the `network.host` entitlement).
    Host,
    /// No network: only `lo`.
    None,
}

impl std::str::FromStr for NetworkMode {
    type Err = String;

    fn from_str(value: &str) -> Result<NetworkMode, String> {
        match value {
            "default" => Ok(NetworkMode::Default),
            "host" => Ok(NetworkMode::Host),
            "none" => Ok(NetworkMode::None),
            other => Err(format!(
                "unknown network mode {other:?} (expected default, host or none)"
            )),
        }
    }
}

/// How much a RUN step may do (`RUN --security`). Hashed as `sandbox` or
/// `insecure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecurityMode {
    /// The sandbox's defaults.
    #[default]
    Sandbox,
    /// Every capability, no seccomp filter (needs the `security.insecure`
    /// entitlement).
    Insecure,
}

/// A `RUN --mount`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExecMount {
    /// A persistent cache directory, shared between builds.
    Cache {
        /// Where it appears.
        target: String,
        /// Its identity (`id=`, default the target).
        id: String,
        /// Mode of a new cache directory (default 0755).
        mode: u32,
        /// Owner of a new cache directory.
        uid: u32,
        /// Group of a new cache directory.
        gid: u32,
        /// `sharing=`: how concurrent steps share it.
        sharing: CacheSharing,
        /// `ro`.
        readonly: bool,
        /// `from=`/`source=`: what a new cache directory starts with.
        seed: Option<MountSource>,
        /// `uid`, `gid` or `mode` was given: the cache is then another one
        /// than the id's plain cache (BuildKit keys it by the directory it
        /// starts from), see [`mount_name`](crate::cache::mounts::mount_name).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        owner_given: bool,
    },
    /// A path of another input (`type=bind`): a stage, an image or a
    /// context. Writes (`rw`) are discarded after the step.
    Bind {
        /// Where it appears.
        target: String,
        /// The input and the path in it.
        source: MountSource,
        /// Read-only (the default).
        readonly: bool,
    },
    /// An SSH agent socket forwarded from `--ssh`.
    Ssh {
        /// The `--ssh` id (default `default`).
        id: String,
        /// Where the socket appears (default `/run/buildkit/ssh_agent.N`).
        target: String,
        /// Socket mode (default 0600).
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
        /// Fail when the agent was not given.
        required: bool,
    },
    /// A secret from `--secret`, as a file and/or an environment variable.
    Secret {
        /// The secret id.
        id: String,
        /// Where the file appears (default `/run/secrets/<id>` unless only
        /// `env=` is given).
        target: Option<String>,
        /// `env=`: the environment variable that holds the value.
        env: Option<String>,
        /// File mode (default 0400).
        mode: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
        /// Fail when the secret was not given.
        required: bool,
    },
    /// An empty tmpfs.
    Tmpfs {
        /// Where it appears.
        target: String,
        /// Size limit in bytes.
        size: Option<u64>,
    },
}

/// A path inside one of a vertex's inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountSource {
    /// The index in the vertex's inputs (0 is the base filesystem).
    pub input: usize,
    /// The path inside it (`/` for all of it).
    pub path: String,
}

/// How concurrent steps share a cache mount (`sharing=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheSharing {
    /// Every step uses the same directory at once.
    Shared,
    /// A step finding the directory in use gets a directory of its own.
    Private,
    /// Steps wait for each other.
    Locked,
}

/// A file an exec op provides while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecFile {
    /// Absolute path inside the container.
    pub path: String,
    /// Content.
    pub data: Vec<u8>,
}
