//! Another host user cannot reach anything in the store: after builds that
//! make a setuid-root file (`RUN chmod 4755`, also in a cache mount) and a
//! device node (`ADD` of a tar holding `c 1 11`), uid 65534 can neither
//! stat, open nor execute any of them, in a new store and in an old 0755
//! one that opening repairs. Needs root (to build and to switch to uid
//! 65534 with `setpriv`); elsewhere the test says why it is skipped.

mod common;

use common::{s, Env};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The uid and gid of the other host user.
const NOBODY: &str = "65534";

fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A tar with one character device, `kmsg` (1, 11), mode 0666.
fn device_tar(path: &Path) {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Char);
    header.set_device_major(1).expect("major");
    header.set_device_minor(11).expect("minor");
    header.set_mode(0o666);
    header.set_size(0);
    builder
        .append_data(&mut header, "kmsg", std::io::empty())
        .expect("append");
    std::fs::write(path, builder.into_inner().expect("tar")).expect("write");
}

/// Every setuid or setgid file and every device node under `root`, found
/// as root.
fn dangerous(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let md = entry.metadata().expect("lstat");
            let t = md.file_type();
            if t.is_dir() {
                stack.push(entry.path());
            } else if t.is_char_device()
                || t.is_block_device()
                || (t.is_file() && md.mode() & 0o6000 != 0)
            {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    found
}

/// The paths of `paths` that uid 65534 can stat, open or execute (the
/// setuid files are busybox as `true`).
fn reachable_by_nobody(paths: &[PathBuf]) -> Vec<String> {
    let script = r#"for p in "$@"; do
        if stat "$p" >/dev/null 2>&1; then echo "stat $p"; fi
        if (head -c0 < "$p") 2>/dev/null; then echo "open $p"; fi
        if (: >> "$p") 2>/dev/null; then echo "open-for-writing $p"; fi
        if "$p" 2>/dev/null; then echo "exec $p"; fi
    done"#;
    let out = Command::new("setpriv")
        .args([
            "--reuid",
            NOBODY,
            "--regid",
            NOBODY,
            "--clear-groups",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .args(paths)
        .output()
        .expect("setpriv runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The mode bits of `p`, in octal.
fn mode(p: &Path) -> String {
    format!(
        "{:o}",
        std::fs::metadata(p).expect("stat").permissions().mode() & 0o7777
    )
}

#[test]
fn setuid_files_and_devices_in_the_store_are_out_of_other_users_reach() {
    if !is_root() {
        eprintln!("skipped: needs root (to build and to act as uid 65534)");
        return;
    }
    let env = Env::new();
    // Only the store may stand in the other user's way.
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox\n\
             ADD dev.tar /dev-in-image/\n\
             RUN mkdir /suid && cp /bin/busybox /suid/true && chmod 4755 /suid/true\n\
             RUN --mount=type=cache,target=/c mkdir -p /c/sgid && cp -f /bin/busybox /c/sgid/true && \\\n\
                 chmod 6755 /c/sgid/true\n",
        )],
    );
    device_tar(&ctx.join("dev.tar"));
    env.ok(&["build", "-t", "x:1", s(&ctx)], None);

    let store = env.path("store");
    assert_eq!(mode(&store), "700", "a new store is private");
    assert_eq!(mode(&store.join("layers")), "700");
    let found = dangerous(&store);
    for what in ["suid/true", "sgid/true", "dev-in-image/kmsg"] {
        assert!(
            found.iter().any(|p| p.ends_with(what)),
            "the build made no {what}: {found:?}"
        );
    }
    let reached = reachable_by_nobody(&found);
    assert!(reached.is_empty(), "uid 65534 reaches {reached:?}");

    // An old kiln made every directory 0755: the same files are then
    // reachable (this shows the check above can fail)...
    let mut dirs = vec![store.clone()];
    while let Some(dir) = dirs.pop() {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        for entry in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(entry.path());
            }
        }
    }
    let reached = reachable_by_nobody(&found);
    assert!(
        reached.iter().any(|l| l.starts_with("exec ")),
        "the 0755 store hides its files: {reached:?}"
    );

    // ...until any kiln command opens the store: it repairs the modes,
    // without an error, and builds still work.
    let (images, _) = env.ok(&["images"], None);
    assert!(images.contains("x"), "{images}");
    for dir in ["", "layers", "cache-mounts", "blobs", "cache"] {
        assert_eq!(mode(&store.join(dir)), "700", "{dir}/ was not repaired");
    }
    let reached = reachable_by_nobody(&found);
    assert!(reached.is_empty(), "uid 65534 reaches {reached:?}");
    env.ok(&["build", "--no-cache", "-t", "x:2", s(&ctx)], None);
    let reached = reachable_by_nobody(&dangerous(&store));
    assert!(reached.is_empty(), "uid 65534 reaches {reached:?}");
}

#[test]
fn a_store_root_with_missing_parents_is_created_private() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("var/lib/kiln");
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["--root", s(&root), "images"])
        .env_remove("KILN_ROOT")
        .output()
        .expect("kiln runs");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(mode(&root), "700");
    for dir in ["blobs", "blobs/sha256", "ingest", "layers"] {
        assert_eq!(mode(&root.join(dir)), "700", "{dir}");
    }
}
