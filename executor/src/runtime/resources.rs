//! The resources of a RUN step that buildx sets per build: the size of
//! `/dev/shm` (`--shm-size`), resource limits (`--ulimit`) and the parent
//! cgroup (`--cgroup-parent`, see `cgroup.rs`).
//!
//! [`Ulimit`] reads Docker's syntax (go-units `ParseUlimit`):
//! `NAME=SOFT[:HARD]`, where a missing hard limit is the soft one and `-1`
//! is unlimited. The step's first process sets them late in its setup
//! (`policy::rlimit_ops`, after the mounts); a hard limit above kiln's own
//! is raised first by the host side, in the initial user namespace, as
//! dockerd and runc may (`spawn.rs`). The default `RLIMIT_NOFILE` (see
//! `policy.rs`) is kept unless `nofile` is given.

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// A resource that `--ulimit` may limit, by Docker's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UlimitName {
    /// `RLIMIT_AS`: address space.
    As,
    /// `RLIMIT_CORE`: core file size.
    Core,
    /// `RLIMIT_CPU`: CPU time in seconds.
    Cpu,
    /// `RLIMIT_DATA`: data segment size.
    Data,
    /// `RLIMIT_FSIZE`: file size.
    Fsize,
    /// `RLIMIT_LOCKS`: file locks.
    Locks,
    /// `RLIMIT_MEMLOCK`: locked memory.
    Memlock,
    /// `RLIMIT_MSGQUEUE`: POSIX message queue bytes.
    Msgqueue,
    /// `RLIMIT_NICE`: nice ceiling.
    Nice,
    /// `RLIMIT_NOFILE`: open files.
    Nofile,
    /// `RLIMIT_NPROC`: processes of the user.
    Nproc,
    /// `RLIMIT_RSS`: resident set size.
    Rss,
    /// `RLIMIT_RTPRIO`: real-time priority.
    Rtprio,
    /// `RLIMIT_RTTIME`: real-time CPU time in microseconds.
    Rttime,
    /// `RLIMIT_SIGPENDING`: pending signals.
    Sigpending,
    /// `RLIMIT_STACK`: stack size.
    Stack,
}

impl UlimitName {
    /// Every name, in Docker's order of documentation.
    pub const ALL: [UlimitName; 16] = [
        UlimitName::As,
        UlimitName::Core,
        UlimitName::Cpu,
        UlimitName::Data,
        UlimitName::Fsize,
        UlimitName::Locks,
        UlimitName::Memlock,
        UlimitName::Msgqueue,
        UlimitName::Nice,
        UlimitName::Nofile,
        UlimitName::Nproc,
        UlimitName::Rss,
        UlimitName::Rtprio,
        UlimitName::Rttime,
        UlimitName::Sigpending,
        UlimitName::Stack,
    ];

    /// Docker's name, e.g. `nofile`.
    pub fn as_str(self) -> &'static str {
        match self {
            UlimitName::As => "as",
            UlimitName::Core => "core",
            UlimitName::Cpu => "cpu",
            UlimitName::Data => "data",
            UlimitName::Fsize => "fsize",
            UlimitName::Locks => "locks",
            UlimitName::Memlock => "memlock",
            UlimitName::Msgqueue => "msgqueue",
            UlimitName::Nice => "nice",
            UlimitName::Nofile => "nofile",
            UlimitName::Nproc => "nproc",
            UlimitName::Rss => "rss",
            UlimitName::Rtprio => "rtprio",
            UlimitName::Rttime => "rttime",
            UlimitName::Sigpending => "sigpending",
            UlimitName::Stack => "stack",
        }
    }

    /// The `RLIMIT_*` number.
    // A `u32` with glibc, a `c_int` with musl.
    #[allow(clippy::unnecessary_cast)]
    pub fn resource(self) -> u32 {
        (match self {
            UlimitName::As => libc::RLIMIT_AS,
            UlimitName::Core => libc::RLIMIT_CORE,
            UlimitName::Cpu => libc::RLIMIT_CPU,
            UlimitName::Data => libc::RLIMIT_DATA,
            UlimitName::Fsize => libc::RLIMIT_FSIZE,
            UlimitName::Locks => libc::RLIMIT_LOCKS,
            UlimitName::Memlock => libc::RLIMIT_MEMLOCK,
            UlimitName::Msgqueue => libc::RLIMIT_MSGQUEUE,
            UlimitName::Nice => libc::RLIMIT_NICE,
            UlimitName::Nofile => libc::RLIMIT_NOFILE,
            UlimitName::Nproc => libc::RLIMIT_NPROC,
            UlimitName::Rss => libc::RLIMIT_RSS,
            UlimitName::Rtprio => libc::RLIMIT_RTPRIO,
            UlimitName::Rttime => libc::RLIMIT_RTTIME,
            UlimitName::Sigpending => libc::RLIMIT_SIGPENDING,
            UlimitName::Stack => libc::RLIMIT_STACK,
        }) as u32
    }
}

impl fmt::Display for UlimitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `--ulimit`: a resource with its soft and hard limits
/// ([`Ulimit::UNLIMITED`] for `-1`). Hashed into cache keys as
/// `{"name":"nofile","soft":N,"hard":N}`, as BuildKit's exec meta holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Ulimit {
    /// The resource.
    pub name: UlimitName,
    /// The soft limit.
    pub soft: u64,
    /// The hard limit, at least `soft`.
    pub hard: u64,
}

impl Ulimit {
    /// No limit (`-1`, `RLIM_INFINITY`).
    pub const UNLIMITED: u64 = u64::MAX;
}

/// Why a `--ulimit` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UlimitError {
    /// No `=`.
    #[error("{0:?}: expected NAME=SOFT[:HARD], e.g. nofile=1024:4096")]
    Syntax(String),
    /// A name Docker does not know.
    #[error("unknown ulimit {0:?} (one of as, core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack)")]
    Name(String),
    /// A limit that is neither a number nor `-1`.
    #[error("{0:?} is not a limit (a number, or -1 for unlimited)")]
    Value(String),
    /// The soft limit is above the hard one.
    #[error("{name}: the soft limit {soft} is above the hard limit {hard}")]
    SoftAboveHard {
        /// The resource.
        name: UlimitName,
        /// The soft limit as given.
        soft: String,
        /// The hard limit as given.
        hard: String,
    },
}

impl FromStr for Ulimit {
    type Err = UlimitError;

    fn from_str(value: &str) -> Result<Ulimit, UlimitError> {
        let (name, limits) = value
            .split_once('=')
            .ok_or_else(|| UlimitError::Syntax(value.to_string()))?;
        let name = UlimitName::ALL
            .into_iter()
            .find(|n| n.as_str() == name)
            .ok_or_else(|| UlimitError::Name(name.to_string()))?;
        let limit = |text: &str| -> Result<u64, UlimitError> {
            match text.parse::<i64>() {
                Ok(-1) => Ok(Ulimit::UNLIMITED),
                Ok(n) if n >= 0 => Ok(n as u64),
                _ => Err(UlimitError::Value(text.to_string())),
            }
        };
        let (soft_text, hard_text) = limits.split_once(':').unwrap_or((limits, limits));
        let (soft, hard) = (limit(soft_text)?, limit(hard_text)?);
        if soft > hard {
            return Err(UlimitError::SoftAboveHard {
                name,
                soft: soft_text.to_string(),
                hard: hard_text.to_string(),
            });
        }
        Ok(Ulimit { name, soft, hard })
    }
}

impl fmt::Display for Ulimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: u64| {
            if v == Ulimit::UNLIMITED {
                "-1".to_string()
            } else {
                v.to_string()
            }
        };
        write!(f, "{}={}:{}", self.name, show(self.soft), show(self.hard))
    }
}

/// The per-build resources of a RUN step; the default changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resources {
    /// The size of the `/dev/shm` tmpfs in bytes (64 MiB when `None`, as
    /// Docker's). The chroot isolation has no mounts: there `/dev/shm` is
    /// a directory of the rootfs, without a limit.
    pub shm_size: Option<u64>,
    /// Resource limits, at most one per name (a later one replaces an
    /// earlier one, as Docker's `--ulimit` does).
    pub ulimits: Vec<Ulimit>,
    /// The cgroup the step's processes go under (see
    /// [`cgroup_parent`]): they run in `<parent>/kiln-<run id>`, created
    /// for the step and removed after it.
    pub cgroup_parent: Option<String>,
}

impl Resources {
    /// The `size=` option of the `/dev/shm` tmpfs.
    pub(super) fn shm_option(&self) -> String {
        match self.shm_size {
            // tmpfs takes bytes and rounds up to whole pages.
            Some(bytes) if bytes > 0 => format!("size={bytes}"),
            _ => "size=65536k".to_string(),
        }
    }
}

/// Checks a `--cgroup-parent` value and returns it as a path relative to
/// each hierarchy's root (`/a/b/` → `a/b`).
///
/// # Errors
/// A message (without the flag's name) for an empty path, `.` or `..`
/// components, a NUL byte, or systemd's `slice:prefix:` form (kiln manages
/// cgroups through cgroupfs, not systemd).
pub fn cgroup_parent(value: &str) -> Result<String, String> {
    if value.contains('\0') {
        return Err(format!("{value:?}: contains a NUL byte"));
    }
    if value.ends_with(':') || value.contains(".slice:") {
        return Err(format!(
            "{value:?}: systemd's slice:prefix: form needs the systemd cgroup driver; give a cgroupfs path such as /kiln-builds"
        ));
    }
    let comps: Vec<&str> = value.split('/').filter(|c| !c.is_empty()).collect();
    if comps.is_empty() {
        return Err(format!(
            "{value:?}: give a cgroup path such as /kiln-builds"
        ));
    }
    if let Some(c) = comps.iter().find(|c| **c == "." || **c == "..") {
        return Err(format!("{value:?}: {c:?} is not allowed in a cgroup path"));
    }
    Ok(comps.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Result<Ulimit, UlimitError> {
        s.parse()
    }

    #[test]
    fn ulimits_read_like_docker() {
        let l = u("nofile=1024:4096").unwrap();
        assert_eq!((l.name, l.soft, l.hard), (UlimitName::Nofile, 1024, 4096));
        let l = u("nproc=64").unwrap();
        assert_eq!((l.soft, l.hard), (64, 64));
        let l = u("core=-1").unwrap();
        assert_eq!((l.soft, l.hard), (Ulimit::UNLIMITED, Ulimit::UNLIMITED));
        let l = u("stack=8192:-1").unwrap();
        assert_eq!((l.soft, l.hard), (8192, Ulimit::UNLIMITED));
        assert_eq!(l.to_string(), "stack=8192:-1");
        for name in UlimitName::ALL {
            assert_eq!(u(&format!("{name}=1")).unwrap().name, name);
        }
        assert_eq!(
            u64::from(UlimitName::Nofile.resource()),
            libc::RLIMIT_NOFILE as u64
        );
    }

    #[test]
    fn bad_ulimits_say_why() {
        assert!(matches!(u("nofile"), Err(UlimitError::Syntax(_))));
        assert_eq!(u("files=1"), Err(UlimitError::Name("files".into())));
        assert!(u("files=1")
            .unwrap_err()
            .to_string()
            .starts_with("unknown ulimit \"files\""));
        assert_eq!(u("nofile=ten"), Err(UlimitError::Value("ten".into())));
        assert_eq!(u("nofile=-2"), Err(UlimitError::Value("-2".into())));
        assert_eq!(
            u("nofile=4096:1024").unwrap_err().to_string(),
            "nofile: the soft limit 4096 is above the hard limit 1024"
        );
        assert!(u("nofile=-1:1024").is_err());
    }

    #[test]
    fn ulimits_hash_as_buildkit_holds_them() {
        let l = u("nofile=1024:2048").unwrap();
        assert_eq!(
            serde_json::to_string(&l).unwrap(),
            r#"{"name":"nofile","soft":1024,"hard":2048}"#
        );
    }

    #[test]
    fn cgroup_parents_are_checked() {
        assert_eq!(cgroup_parent("/kiln/ci/").unwrap(), "kiln/ci");
        assert_eq!(cgroup_parent("builds").unwrap(), "builds");
        assert!(cgroup_parent("/").is_err());
        assert!(cgroup_parent("/a/../b").is_err());
        assert!(cgroup_parent("machine.slice:kiln:").is_err());
        assert!(cgroup_parent("a\0b").is_err());
    }

    #[test]
    fn shm_size_option() {
        let mut r = Resources::default();
        assert_eq!(r.shm_option(), "size=65536k");
        r.shm_size = Some(128 << 20);
        assert_eq!(r.shm_option(), "size=134217728");
    }
}
