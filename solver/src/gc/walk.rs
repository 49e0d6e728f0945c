//! Walking the store's files: allocated sizes, directory listings,
//! temporaries, and removing trees.

use super::entry::{Entry, Kind, Reclaim, Target};
use super::{io_err, GcError};
use kiln_executor::dirfd::Dir;
use kiln_oci::{LocalStore, StoreLayout};
use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Allocated bytes of `path` and everything under it whose inode is not in
/// `seen` yet (added to it). Symlinks are not followed; vanished paths
/// count 0. The walk keeps one open directory per level and opens each
/// relative to its parent: no recursion, and no path is longer than a name.
pub(super) fn allocated(path: &Path, seen: &mut HashSet<(u64, u64)>) -> Result<u64, GcError> {
    let md = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err("reading", path)(e)),
    };
    let mut total = 0;
    if seen.insert((md.dev(), md.ino())) {
        total += md.blocks() * 512;
    }
    if !md.is_dir() {
        return Ok(total);
    }
    let gone = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
    let top = match Dir::open(path) {
        Ok(d) => d,
        Err(e) if gone(&e) => return Ok(total),
        Err(e) => return Err(io_err("opening", path)(e)),
    };
    let names = match top.names() {
        Ok(n) => n,
        Err(e) if gone(&e) => return Ok(total),
        Err(e) => return Err(io_err("listing", path)(e)),
    };
    let mut stack = vec![(top, names)];
    while let Some((dir, names)) = stack.last_mut() {
        let Some(name) = names.pop() else {
            stack.pop();
            continue;
        };
        let md = match dir.child_metadata(&name) {
            Ok(m) => m,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(io_err("reading", &dir.child_path(&name))(e)),
        };
        if seen.insert((md.dev(), md.ino())) {
            total += md.blocks() * 512;
        }
        if !md.is_dir() {
            continue;
        }
        let sub = match dir.open_dir(&name) {
            Ok(d) => d,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(io_err("opening", &dir.child_path(&name))(e)),
        };
        match sub.names() {
            Ok(names) => stack.push((sub, names)),
            Err(e) if gone(&e) => {}
            Err(e) => return Err(io_err("listing", sub.path())(e)),
        }
    }
    Ok(total)
}

pub(super) fn modified(path: &Path) -> Option<SystemTime> {
    fs::symlink_metadata(path).and_then(|m| m.modified()).ok()
}

/// The names in a directory, sorted (none when it does not exist).
pub(super) fn names(dir: &Path) -> Result<Vec<String>, GcError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("listing", dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("listing", dir))?;
        out.push(entry.file_name().to_string_lossy().into_owned());
    }
    out.sort();
    Ok(out)
}

/// Whether `s` is 64 hex digits (the name of a blob or layer).
pub(crate) fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// True when `name` carries the tag (or pid) of a process still running
/// (`tmp-<tag>-…`, `….tmp-<tag>…`): the one rule for "temporary of a live
/// process" ([`kiln_oci::temporary_owner`], [`kiln_oci::Owner::alive`]
/// by the store's owner locks).
pub(super) fn owner_alive(layout: &StoreLayout, name: &str) -> bool {
    kiln_oci::temporary_owner(name, false).is_some_and(|o| o.alive(Some(&layout.owners())))
}

/// The store's temporaries (besides ingest files): what [`super::usage`]
/// lists as "temporary": `layers/` entries that are not a layer
/// (`tmp-<tag>-…` uppers, `work-<tag>-…` work directories), `.tmp-<tag>`
/// names in `cache-mounts/`, `contexts/`, `http/` and `exports/`, and the
/// `.tmp…` staging directories in the root.
fn temporaries(layout: &StoreLayout) -> Result<Vec<PathBuf>, GcError> {
    let mut out = Vec::new();
    let layers = layout.layers();
    for name in names(&layers)? {
        if !is_hex64(&name) {
            out.push(layers.join(name));
        }
    }
    for dir in [
        layout.cache_mounts(),
        layout.contexts(),
        layout.downloads(),
        layout.exports(),
        layout.builds(),
    ] {
        for name in names(&dir)? {
            if name.contains(".tmp-") {
                out.push(dir.join(name));
            }
        }
    }
    let staging = layout.staging();
    for name in names(staging)? {
        let path = staging.join(&name);
        if name.starts_with(".tmp") {
            out.push(path);
        }
    }
    Ok(out)
}

/// Removes the temporaries of processes that are gone (killed with
/// `SIGKILL`, or a crash) and, when `this_run` is set, those of this
/// process (an interrupted build, after it stopped): files and
/// directories whose name carries such a tag or pid, and ingest files
/// likewise.
/// Pid-less staging directories (`.tmpXXXXXX`) go only when no build,
/// pull or load runs ([`LocalStore::try_lock_exclusive`]): they are made
/// under a lease. Never waits for a lock. Returns how many went.
///
/// # Errors
/// I/O errors listing, or the first path that could not be removed (the
/// others are still tried); a read-only store fails here (callers that
/// sweep on the side ignore it).
pub fn sweep_temporaries(store: &LocalStore, this_run: bool) -> Result<usize, GcError> {
    let owners = store.layout().owners();
    let gone = |owner: kiln_oci::Owner| {
        (this_run && owner.is_this_process()) || !owner.alive(Some(&owners))
    };
    let lock = store.try_lock_exclusive()?;
    let mut removed = 0;
    let mut failed = None;
    let mut remove = |path: &Path| match remove_path(path) {
        Ok(()) => removed += 1,
        Err(e) => {
            failed.get_or_insert(e);
        }
    };
    for path in temporaries(store.layout())? {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dead = match kiln_oci::temporary_owner(&name, false) {
            Some(owner) => gone(owner),
            None => lock.is_some(),
        };
        if dead {
            remove(&path);
        }
    }
    let ingest = store.layout().ingest();
    for name in names(&ingest)? {
        if kiln_oci::temporary_owner(&name, true).is_none_or(gone) {
            remove(&ingest.join(name));
        }
    }
    kiln_oci::owner::sweep_owners(&owners);
    drop(lock);
    failed.map_or(Ok(removed), Err)
}

pub(super) fn temporary(
    layout: &StoreLayout,
    path: PathBuf,
    seen: &mut HashSet<(u64, u64)>,
) -> Result<Entry, GcError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let alive = owner_alive(layout, &name);
    Ok(Entry {
        id: path.display().to_string(),
        kind: Kind::BuildCache,
        description: if alive {
            "temporary of a running build".into()
        } else {
            "temporary left by a build".into()
        },
        size: allocated(&path, seen)?,
        last_used: modified(&path),
        shared: false,
        reclaim: if alive {
            Reclaim::Never
        } else {
            Reclaim::Default
        },
        target: Target::Paths(vec![path]),
    })
}

/// Removes `path` and, for a directory, everything under it, at any depth
/// (directories left `0000` by RUN steps and overlay work directories are
/// made writable first).
pub(super) fn remove_path(path: &Path) -> Result<(), GcError> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io_err("removing", path)(io::Error::from(
            io::ErrorKind::InvalidInput,
        )));
    };
    let parent = match Dir::open(parent) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("opening", parent)(e)),
    };
    match parent.remove_tree(name) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        // remove_tree's messages name the path already.
        Err(e) => Err(io_err("removing", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn temporaries_of_live_processes_are_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = StoreLayout::new(dir.path().to_path_buf());
        let me = kiln_oci::process_tag();
        assert!(owner_alive(&layout, &format!("tmp-{me}-3")));
        assert!(owner_alive(&layout, &format!("abc.tmp-{me}-ThreadId(2)")));
        assert!(owner_alive(&layout, &format!("work-{me}-0")));
        assert!(!owner_alive(&layout, "work-4294967295-0"));
        assert!(!owner_alive(&layout, "tmp-4294967295-1"));
        assert!(!owner_alive(&layout, ".tmpAbC"));
        // A kiln that was pid 1 of an earlier container, as this one may
        // be: its pid is in use, but its owner lock is free.
        let pid = std::process::id();
        fs::create_dir_all(layout.owners()).expect("owners");
        fs::write(layout.owners().join(format!("{pid}x00000000000000aa")), b"").expect("lock");
        assert!(!owner_alive(
            &layout,
            &format!("work-{pid}x00000000000000aa-0")
        ));
        assert!(!owner_alive(&layout, &format!("work-{pid}-0")));
    }

    #[test]
    fn the_sweep_removes_dead_and_this_runs_temporaries_and_keeps_live_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path().join("s")).expect("store");
        let layout = store.layout();
        let me = kiln_oci::process_tag();
        let dead = u32::MAX - 1;
        let paths = [
            layout.layers().join(format!("tmp-{dead}-0")),
            layout.layers().join(format!("work-{me}-0")),
            layout.root().join(format!(".tmp-{dead}-x")),
            layout.root().join(".tmpOld"),
            layout.ingest().join(format!("{dead}-0-0")),
            layout.ingest().join(format!("{me}-0-0")),
            // The names file a killed `kiln tag` was writing.
            layout.root().join(format!(".tmp-{dead}-refs.json")),
        ];
        let make = || {
            for p in &paths {
                if p.starts_with(layout.ingest()) || p.ends_with(format!(".tmp-{dead}-refs.json")) {
                    fs::write(p, b"x").expect("file");
                } else {
                    // A RUN step may leave a directory without permissions.
                    fs::create_dir_all(p.join("d")).expect("dir");
                    fs::set_permissions(p.join("d"), fs::Permissions::from_mode(0o000))
                        .expect("chmod");
                }
            }
        };
        let left = || paths.iter().filter(|p| p.exists()).count();
        make();
        // While a lease is held (a build runs), pid-less names are kept;
        // this process is alive.
        let lease = store.lease().expect("lease");
        assert_eq!(sweep_temporaries(&store, false).expect("sweep"), 4);
        assert!(paths[1].exists() && paths[3].exists() && paths[5].exists());
        drop(lease);
        // Nothing running: the pid-less one goes too.
        assert_eq!(sweep_temporaries(&store, false).expect("sweep"), 1);
        assert_eq!(left(), 2);
        // An interrupted run removes its own.
        assert_eq!(sweep_temporaries(&store, true).expect("sweep"), 2);
        assert_eq!(left(), 0);
    }
}
