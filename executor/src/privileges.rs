//! What this process may do: root of the host, or root only of a user
//! namespace (a rootless kiln).

/// Whether the process runs with effective uid 0.
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// True inside a user namespace that does not map every uid (a rootless
/// kiln, root only of its subordinate ids): cgroups cannot be created.
pub(crate) fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|map| {
        let fields: Vec<&str> = map.split_whitespace().collect();
        fields != ["0", "0", "4294967295"]
    })
}
