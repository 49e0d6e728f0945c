//! The bundle's `config.json` for a prepared run (built with
//! `oci_spec::runtime`): namespaces and id maps, the mounts at their
//! resolved targets, capabilities, rlimits, masked and read-only paths
//! and the seccomp profile.

use super::OciRuntime;
use crate::runtime::builtin::{last_cap, DEFAULT_CAPS};
use crate::runtime::plan::{Planned, Prepared, What};
use crate::runtime::{
    files, policy, seccomp, NetworkMode, Resources, RunRequest, RuntimeError, SecurityMode,
    UlimitName,
};
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxIdMapping, LinuxIdMappingBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, Mount as OciMount, MountBuilder, ProcessBuilder,
    RootBuilder, Spec, SpecBuilder, UserBuilder,
};
use std::collections::HashSet;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Capability names by number (`CAP_` omitted), up to
/// `CAP_CHECKPOINT_RESTORE` (40).
const CAP_NAMES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The bundle's rlimits: `resources`' `--ulimit`s as given (the runtime
/// sets them as root, so a hard limit may be raised, as BuildKit's
/// `process.rlimits`), then the [`policy::RLIMITS`] they do not replace,
/// clamped to this process's hard limits as the built-in runtime does.
fn rlimits(resources: &Resources) -> Result<Vec<oci_spec::runtime::PosixRlimit>, RuntimeError> {
    let given = resources
        .ulimits
        .iter()
        .map(|u| (u.name.resource(), u.soft, u.hard));
    let defaults = policy::defaults(resources).map(|r| {
        let (soft, hard) = policy::clamp(r);
        (r.resource, soft, hard)
    });
    given
        .chain(defaults)
        .map(|(resource, soft, hard)| {
            let kind = UlimitName::ALL
                .into_iter()
                .find(|n| n.resource() == resource)
                .map(oci_rlimit_type)
                .ok_or_else(|| RuntimeError::Invalid(format!("unknown rlimit {resource}")))?;
            oci_spec::runtime::PosixRlimitBuilder::default()
                .typ(kind)
                .soft(soft)
                .hard(hard)
                .build()
                .map_err(|e| RuntimeError::Invalid(format!("rlimit {resource}: {e}")))
        })
        .collect()
}

/// The OCI type of a `--ulimit` name (`RLIMIT_` + its name upper-cased).
fn oci_rlimit_type(name: UlimitName) -> oci_spec::runtime::PosixRlimitType {
    use oci_spec::runtime::PosixRlimitType as T;
    match name {
        UlimitName::As => T::RlimitAs,
        UlimitName::Core => T::RlimitCore,
        UlimitName::Cpu => T::RlimitCpu,
        UlimitName::Data => T::RlimitData,
        UlimitName::Fsize => T::RlimitFsize,
        UlimitName::Locks => T::RlimitLocks,
        UlimitName::Memlock => T::RlimitMemlock,
        UlimitName::Msgqueue => T::RlimitMsgqueue,
        UlimitName::Nice => T::RlimitNice,
        UlimitName::Nofile => T::RlimitNofile,
        UlimitName::Nproc => T::RlimitNproc,
        UlimitName::Rss => T::RlimitRss,
        UlimitName::Rtprio => T::RlimitRtprio,
        UlimitName::Rttime => T::RlimitRttime,
        UlimitName::Sigpending => T::RlimitSigpending,
        UlimitName::Stack => T::RlimitStack,
    }
}

/// This process's capability bounding set (every capability when
/// unreadable).
fn bounding_set() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX)
}

fn mount(dest: &str, typ: &str, source: &Path, options: &[&str]) -> Result<OciMount, RuntimeError> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(|e| RuntimeError::Invalid(format!("mount {dest}: {e}")))
}

/// The `ST_*` flags of the mount `path` is on (none when unknown).
fn mount_flags(path: &Path) -> libc::c_ulong {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return 0;
    };
    // SAFETY: a valid C string and a zeroed out-parameter.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) == 0 {
            st.f_flag
        } else {
            0
        }
    }
}

/// The identity map of every id (`0 0 4294967295`, as the built-in
/// runtime has as root) when the bundle gets a user namespace; else none.
fn identity_map(userns: bool) -> Result<Vec<LinuxIdMapping>, RuntimeError> {
    if !userns {
        return Ok(Vec::new());
    }
    Ok(vec![LinuxIdMappingBuilder::default()
        .container_id(0u32)
        .host_id(0u32)
        .size(u32::MAX)
        .build()
        .map_err(|e| {
            RuntimeError::Invalid(format!("id map: {e}"))
        })?])
}

/// The OCI mounts of one planned mount (`bind_sys`: binds the host's
/// `/sys` where sysfs cannot be mounted: no network namespace owned by
/// the container's user namespace).
fn oci_mounts(m: &Planned, bind_sys: bool, shm: &str) -> Result<Vec<OciMount>, RuntimeError> {
    let dest = m.dest();
    Ok(match &m.what {
        What::Proc => vec![mount(
            &dest,
            "proc",
            Path::new("proc"),
            &["nosuid", "noexec", "nodev"],
        )?],
        // A rootless kiln cannot mount sysfs without its own network
        // namespace: the host's /sys is bound read-only instead, as
        // rootless Podman does.
        What::Sys if bind_sys => vec![mount(
            &dest,
            "bind",
            Path::new("/sys"),
            &["rbind", "nosuid", "noexec", "nodev", "ro"],
        )?],
        What::Sys => vec![mount(
            &dest,
            "sysfs",
            Path::new("sysfs"),
            &["nosuid", "noexec", "nodev", "ro"],
        )?],
        What::Dev => vec![
            mount(
                &dest,
                "tmpfs",
                Path::new("tmpfs"),
                &["nosuid", "strictatime", "mode=755", "size=65536k"],
            )?,
            mount(
                &format!("{dest}/pts"),
                "devpts",
                Path::new("devpts"),
                &[
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620",
                    "gid=5",
                ],
            )?,
            mount(
                &format!("{dest}/shm"),
                "tmpfs",
                Path::new("shm"),
                &["nosuid", "noexec", "nodev", "mode=1777", shm],
            )?,
            mount(
                &format!("{dest}/mqueue"),
                "mqueue",
                Path::new("mqueue"),
                &["nosuid", "noexec", "nodev"],
            )?,
        ],
        What::Bind {
            src,
            recursive,
            readonly,
        } => {
            // nodev like every mount of the container; and the flags the
            // source's mount has, which the runtime's read-only remount
            // must keep (they are locked in the user namespace).
            let mut opts = vec![if *recursive { "rbind" } else { "bind" }, "nodev"];
            let flags = mount_flags(src);
            if flags & libc::ST_NOSUID != 0 {
                opts.push("nosuid");
            }
            if flags & libc::ST_NOEXEC != 0 {
                opts.push("noexec");
            }
            if *readonly {
                opts.push("ro");
            }
            vec![mount(&dest, "bind", src, &opts)?]
        }
        // The secrets tmpfs is nosuid, nodev and noexec: flags the
        // read-only remount must keep.
        What::Secret { src } => vec![mount(
            &dest,
            "bind",
            src,
            &["bind", "nosuid", "nodev", "noexec", "ro"],
        )?],
        What::Tmpfs { data } => {
            let mut opts = vec!["nosuid", "nodev"];
            opts.extend(data.split(','));
            vec![mount(&dest, "tmpfs", Path::new("tmpfs"), &opts)?]
        }
    })
}

impl OciRuntime {
    /// The bundle's `config.json`.
    pub(super) fn config(
        &self,
        req: &RunRequest<'_>,
        p: &Prepared,
        cwd: &str,
        id: &str,
    ) -> Result<Spec, RuntimeError> {
        let spec = &req.process;
        let bad = |what: &str| {
            let what = what.to_string();
            move |e: oci_spec::OciSpecError| RuntimeError::Invalid(format!("{what}: {e}"))
        };
        let insecure = spec.security == SecurityMode::Insecure;
        // Only what this process may pass on (the runtime fails to set a
        // capability outside its bounding set); the built-in runtime drops
        // the others from the bounding set the same way.
        let bounding = bounding_set();
        let numbers: Vec<u32> = if insecure {
            (0..=last_cap().min(63)).collect()
        } else {
            DEFAULT_CAPS.to_vec()
        };
        let caps: HashSet<Capability> = numbers
            .iter()
            .filter(|n| bounding & (1u64 << **n) != 0)
            .filter_map(|n| CAP_NAMES.get(*n as usize))
            .filter_map(|name| name.parse().ok())
            .collect();
        let user = UserBuilder::default()
            .uid(p.user.uid)
            .gid(p.user.gid)
            .additional_gids(p.user.groups.clone())
            .build()
            .map_err(bad("user"))?;
        let capabilities = LinuxCapabilitiesBuilder::default()
            .bounding(caps.clone())
            .effective(caps.clone())
            .permitted(caps)
            .inheritable(HashSet::new())
            .ambient(HashSet::new())
            .build()
            .map_err(bad("capabilities"))?;
        let process = ProcessBuilder::default()
            .terminal(false)
            .user(user)
            .args(spec.args.clone())
            .env(p.env.clone())
            .cwd(cwd)
            .capabilities(capabilities)
            .no_new_privileges(!insecure)
            .rlimits(rlimits(&spec.resources)?)
            .build()
            .map_err(bad("process"))?;
        let mut namespaces = Vec::new();
        let mut types = vec![
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Mount,
        ];
        if spec.network == NetworkMode::None {
            types.push(LinuxNamespaceType::Network);
        }
        let userns = self.userns();
        if userns {
            types.push(LinuxNamespaceType::User);
        }
        for typ in types {
            namespaces.push(
                LinuxNamespaceBuilder::default()
                    .typ(typ)
                    .build()
                    .map_err(bad("namespace"))?,
            );
        }
        let strings = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut linux = LinuxBuilder::default()
            .namespaces(namespaces)
            .uid_mappings(identity_map(userns)?)
            .gid_mappings(identity_map(userns)?)
            .devices(Vec::new());
        // A rootless kiln may not create cgroups; without a path, runc in
        // rootless mode creates none. With --cgroup-parent, runc makes the
        // container's cgroup under it (crun has no cgroup manager here:
        // kiln places crun itself, see `mod.rs`).
        if !self.rootless {
            linux = linux.cgroups_path(match &spec.resources.cgroup_parent {
                Some(parent) if !self.crun => PathBuf::from(format!("/{parent}/{id}")),
                _ => PathBuf::from(format!("/{id}")),
            });
        }
        linux = if insecure {
            linux.masked_paths(Vec::new()).readonly_paths(Vec::new())
        } else {
            linux
                .masked_paths(strings(policy::MASKED_PATHS))
                .readonly_paths(strings(policy::READONLY_PATHS))
                .seccomp(seccomp::oci_profile())
        };
        let linux = linux.build().map_err(bad("linux"))?;
        let mut mounts = Vec::new();
        // sysfs needs a network namespace owned by the container's user
        // namespace; with the host's network, the host's /sys is bound.
        let bind_sys = self.rootless || (userns && spec.network == NetworkMode::Host);
        let shm = spec.resources.shm_option();
        for m in &p.mounts {
            mounts.extend(oci_mounts(m, bind_sys, &shm)?);
        }
        let root = RootBuilder::default()
            .path(p.root.clone())
            .readonly(false)
            .build()
            .map_err(bad("root"))?;
        SpecBuilder::default()
            .version("1.0.2-dev")
            .root(root)
            .process(process)
            .hostname(files::hostname(&spec.hostname))
            .mounts(mounts)
            .linux(linux)
            .build()
            .map_err(bad("config.json"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_names_parse() {
        for name in CAP_NAMES {
            assert!(name.parse::<Capability>().is_ok(), "{name}");
        }
        assert_eq!(CAP_NAMES[40], "CHECKPOINT_RESTORE");
        assert_eq!(CAP_NAMES[21], "SYS_ADMIN");
    }

    #[test]
    fn ulimits_replace_the_default_rlimits_in_the_bundle() {
        use oci_spec::runtime::PosixRlimitType as T;
        let summary = |r: &Resources| -> Vec<(T, u64, u64)> {
            rlimits(r)
                .unwrap()
                .iter()
                .map(|l| (l.typ(), l.soft(), l.hard()))
                .collect()
        };
        let defaults = summary(&Resources::default());
        assert_eq!(defaults.len(), 1);
        assert_eq!(defaults[0].0, T::RlimitNofile);
        assert_eq!(defaults[0].1, 1024);
        let given = Resources {
            ulimits: vec![
                "core=-1".parse().unwrap(),
                "nofile=10:2000000".parse().unwrap(),
            ],
            ..Resources::default()
        };
        // As given (the runtime may raise a hard limit), and no second
        // RLIMIT_NOFILE.
        assert_eq!(
            summary(&given),
            [
                (T::RlimitCore, u64::MAX, u64::MAX),
                (T::RlimitNofile, 10, 2_000_000)
            ]
        );
        for name in UlimitName::ALL {
            let json = serde_json::to_string(&oci_rlimit_type(name)).unwrap();
            assert_eq!(json, format!("\"RLIMIT_{}\"", name.as_str().to_uppercase()));
        }
    }
}
