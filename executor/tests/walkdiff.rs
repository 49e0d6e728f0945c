//! The copy snapshotter's diff: changes made to a plain copy of a base are
//! found by walking, and the base plus the upper directory they become
//! reads back as exactly the changed copy.

mod support;

use kiln_executor::{materialize, walk_diff, LayerStack};
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use support::busybox_base;

/// path -> "type mode uid gid size mtime nlink-group content/target".
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, String> = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        let entry = entry.expect("walk");
        let rel = entry
            .path()
            .strip_prefix(root)
            .expect("prefix")
            .display()
            .to_string();
        if rel.is_empty() {
            continue;
        }
        let md = entry.path().symlink_metadata().expect("md");
        let ft = md.file_type();
        let body = if ft.is_file() {
            format!("{:x?}", sha(&std::fs::read(entry.path()).expect("read")))
        } else if ft.is_symlink() {
            std::fs::read_link(entry.path())
                .expect("link")
                .display()
                .to_string()
        } else {
            String::new()
        };
        let link_group = if md.nlink() > 1 && !ft.is_dir() {
            inodes
                .entry(md.ino())
                .or_insert_with(|| rel.clone())
                .clone()
        } else {
            String::new()
        };
        let mtime = if ft.is_dir() { 0 } else { md.mtime() };
        out.insert(
            rel,
            format!(
                "{:o} {} {} {} {} {link_group} {body}",
                md.mode(),
                md.uid(),
                md.gid(),
                if ft.is_dir() { 0 } else { md.size() },
                mtime
            ),
        );
    }
    out
}

fn sha(data: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut h);
    h.finish()
}

#[test]
fn base_plus_walked_diff_equals_the_changed_copy() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = busybox_base(tmp.path());
    let lower = LayerStack::new(vec![base]);
    let merged = tmp.path().join("merged");
    materialize(&lower, &merged).expect("copy");

    // A RUN's worth of changes.
    let m = |p: &str| merged.join(p);
    std::fs::write(m("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").expect("write");
    std::fs::remove_file(m("bin/ls")).expect("rm");
    std::fs::remove_dir_all(m("etc/network")).ok();
    std::fs::create_dir_all(m("usr")).expect("mkdir");
    std::fs::remove_dir_all(m("usr")).expect("rm -rf");
    std::fs::create_dir(m("usr")).expect("mkdir");
    std::fs::write(m("usr/README"), "new\n").expect("write");
    std::fs::create_dir_all(m("opt/app/lib")).expect("mkdir");
    std::fs::write(m("opt/app/lib/a"), "a").expect("write");
    std::fs::hard_link(m("opt/app/lib/a"), m("opt/app/b")).expect("link");
    std::os::unix::fs::symlink("/opt/app/b", m("opt/link")).expect("symlink");
    std::fs::set_permissions(m("tmp"), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::os::unix::fs::lchown(m("etc/group"), Some(5), Some(6)).expect("chown");
    let upper = tmp.path().join("upper");
    std::fs::create_dir(&upper).expect("mkdir");
    walk_diff(&lower, &merged, &upper).expect("diff");

    // Only the changes are in the upper directory.
    let written = snapshot(&upper);
    assert!(written.contains_key("bin/ls"), "whiteout for bin/ls");
    let ls = upper.join("bin/ls").symlink_metadata().expect("whiteout");
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(&ls.file_type()) && ls.rdev() == 0);
    assert!(written.contains_key("etc/passwd") && written.contains_key("etc/group"));
    assert!(!written.contains_key("etc/hostname") && !written.contains_key("bin/sh"));
    assert!(written.contains_key("usr/README"));
    assert!(!written.contains_key("var"), "{:?}", written.keys());
    assert_eq!(
        written["opt/app/b"].split(' ').nth(5),
        written["opt/app/lib/a"].split(' ').nth(5),
        "hard links stay linked"
    );

    // Base + upper reads back as the changed copy.
    let out = tmp.path().join("out");
    materialize(&lower.with(upper), &out).expect("materialize");
    let (want, got) = (snapshot(&merged), snapshot(&out));
    for (k, v) in &want {
        assert_eq!(got.get(k), Some(v), "{k}");
    }
    assert_eq!(
        want.len(),
        got.len(),
        "{:?}",
        got.keys()
            .filter(|k| !want.contains_key(*k))
            .collect::<Vec<_>>()
    );
}

#[test]
fn an_unchanged_copy_has_an_empty_diff() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = busybox_base(tmp.path());
    let lower = LayerStack::new(vec![base]);
    let merged = tmp.path().join("merged");
    materialize(&lower, &merged).expect("copy");
    let upper = tmp.path().join("upper");
    std::fs::create_dir(&upper).expect("mkdir");
    walk_diff(&lower, &merged, &upper).expect("diff");
    assert_eq!(std::fs::read_dir(&upper).expect("ls").count(), 0);
    // Scratch: everything is new.
    let upper2 = tmp.path().join("upper2");
    std::fs::create_dir(&upper2).expect("mkdir");
    walk_diff(&LayerStack::default(), &merged, &upper2).expect("diff");
    assert_eq!(snapshot(&upper2), snapshot(&merged));
}

/// A RUN that makes a 1,500-deep directory chain: the diff walks it (and
/// copies it into the upper directory) without recursion, so even a small
/// thread stack does (the recursive walk overflowed it and aborted).
#[test]
fn deep_new_chain_is_diffed_on_a_small_stack() {
    let tmp = tempfile::tempdir().expect("tmp");
    let base = tmp.path().join("base");
    std::fs::create_dir(&base).expect("base");
    std::fs::write(base.join("kept"), "k").expect("kept");
    let merged = tmp.path().join("m");
    std::fs::create_dir(&merged).expect("merged");
    std::fs::write(merged.join("kept"), "k").expect("kept");
    let times = std::fs::metadata(base.join("kept")).expect("md");
    let kept = std::fs::File::options()
        .write(true)
        .open(merged.join("kept"))
        .expect("open");
    kept.set_modified(times.modified().expect("mtime"))
        .expect("set mtime");
    let mut deep = merged.clone();
    for _ in 0..1500 {
        deep.push("d");
    }
    std::fs::create_dir_all(&deep).expect("chain");
    std::fs::write(deep.join("leaf"), "x").expect("leaf");
    let upper = tmp.path().join("u");
    std::fs::create_dir(&upper).expect("upper");
    let stack = LayerStack::new(vec![base.clone()]);
    let (m, u) = (merged.clone(), upper.clone());
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || walk_diff(&stack, &m, &u))
        .expect("thread")
        .join()
        .expect("no panic")
        .expect("walk_diff");
    let leaf = upper
        .join(deep.strip_prefix(&merged).expect("below"))
        .join("leaf");
    assert_eq!(std::fs::read_to_string(leaf).expect("leaf in upper"), "x");
    assert!(!upper.join("kept").exists(), "an unchanged file was copied");
}

/// `cap_net_bind_service=ep` in the plain (revision 2) format.
fn net_bind_caps() -> Vec<u8> {
    let mut v = 0x0200_0001u32.to_le_bytes().to_vec();
    v.extend_from_slice(&(1u32 << 10).to_le_bytes());
    v.extend_from_slice(&[0; 12]);
    v
}

fn caps_of(path: &Path) -> Option<Vec<u8>> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    let mut buf = vec![0u8; 64];
    // SAFETY: valid path, name and buffer.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"security.capability".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

fn set_caps(path: &Path, value: &[u8]) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: valid path, name and value.
    let rc = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            c"security.capability".as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(rc, 0, "setxattr: {}", std::io::Error::last_os_error());
}

/// File capabilities (`setcap`) are part of the layer, as in BuildKit's:
/// a copy snapshot keeps them, its diff finds a `setcap` that changed no
/// time, the layer tar carries them as `SCHILY.xattr.security.capability`
/// and unpacking sets them again.
#[test]
fn file_capabilities_go_through_copies_diffs_tars_and_unpacking() {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: setting file capabilities needs root");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = busybox_base(tmp.path());
    set_caps(&base.join("bin/busybox"), &net_bind_caps());
    let lower = LayerStack::new(vec![base.clone()]);
    let merged = tmp.path().join("merged");
    materialize(&lower, &merged).expect("copy");
    assert_eq!(caps_of(&merged.join("bin/busybox")), Some(net_bind_caps()));
    // A setcap on a file of the base: only its ctime moves.
    std::fs::create_dir_all(merged.join("usr/bin")).expect("mkdir");
    std::fs::write(merged.join("usr/bin/prog"), b"#!/bin/sh\n").expect("write");
    let before = std::fs::symlink_metadata(merged.join("bin/busybox")).expect("md");
    let mut changed = net_bind_caps();
    changed[4] |= 1; // and cap_chown
    set_caps(&merged.join("bin/busybox"), &changed);
    let after = std::fs::symlink_metadata(merged.join("bin/busybox")).expect("md");
    assert_eq!(before.mtime_nsec(), after.mtime_nsec());
    set_caps(&merged.join("usr/bin/prog"), &net_bind_caps());
    let upper = tmp.path().join("upper");
    std::fs::create_dir(&upper).expect("mkdir");
    walk_diff(&lower, &merged, &upper).expect("diff");
    assert_eq!(caps_of(&upper.join("bin/busybox")), Some(changed.clone()));
    assert_eq!(caps_of(&upper.join("usr/bin/prog")), Some(net_bind_caps()));

    let mut tar = Vec::new();
    kiln_executor::diff(&upper, &mut tar).expect("layer tar");
    let mut seen = BTreeMap::new();
    let mut archive = tar::Archive::new(tar.as_slice());
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let path = entry.path().expect("path").display().to_string();
        if let Some(pax) = entry.pax_extensions().expect("pax") {
            for ext in pax {
                let ext = ext.expect("pax record");
                if ext.key() == Ok("SCHILY.xattr.security.capability") {
                    seen.insert(path.clone(), ext.value_bytes().to_vec());
                }
            }
        }
    }
    assert_eq!(seen.get("bin/busybox"), Some(&changed));
    assert_eq!(seen.get("usr/bin/prog"), Some(&net_bind_caps()));
    assert_eq!(seen.len(), 2, "{seen:?}");

    let unpacked = tmp.path().join("unpacked");
    std::fs::create_dir(&unpacked).expect("mkdir");
    kiln_executor::unpack(&mut tar.as_slice(), &unpacked).expect("unpack");
    assert_eq!(caps_of(&unpacked.join("bin/busybox")), Some(changed));
    assert_eq!(
        caps_of(&unpacked.join("usr/bin/prog")),
        Some(net_bind_caps())
    );
}
