//! What this process may do: root of the host, or root only of a user
//! namespace (a rootless kiln).

/// Whether the process runs with effective uid 0.
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether the process may give files to other owners (`CAP_CHOWN` in
/// its effective set): root usually, not root with its capabilities
/// dropped (`docker run --cap-drop ALL`).
pub(crate) fn can_chown() -> bool {
    static CAN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CAN.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("CapEff:"))
                    .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            })
            .map_or(is_root(), |caps| caps & 1 != 0)
    })
}

/// Whether `gid` has a mapping in this process's user namespace (every
/// gid does outside one; a rootless kiln that could map only its own id
/// has just 0).
pub(crate) fn gid_mapped(gid: u32) -> bool {
    let Ok(map) = std::fs::read_to_string("/proc/self/gid_map") else {
        return true;
    };
    map.lines().any(|line| {
        let f: Vec<u64> = line
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        matches!(f[..], [inside, _, count] if (inside..inside + count).contains(&u64::from(gid)))
    })
}

/// True inside a user namespace that does not map every uid (a rootless
/// kiln, root only of its subordinate ids): cgroups cannot be created.
pub(crate) fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|map| {
        let fields: Vec<&str> = map.split_whitespace().collect();
        fields != ["0", "0", "4294967295"]
    })
}
