//! Crafted layers (issue 13, findings 1 and 9a): a layer must be the
//! content its diff id names, concurrent unpacks of one layer both
//! succeed, and sparse members made by GNU tar are extracted in full or
//! refused by name, never dropped.

use kiln_executor::{unpack, unpack_blob, UnpackError};
use kiln_oci::Digest;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;

/// busybox's single layer (gzip) and the diff id its config claims.
const BUSYBOX: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/bases/busybox/blobs/sha256/d83a308413b8acb7cc8807ec15a786c10f5ecc5da57af786b9a351120a3ad03a"
);
const BUSYBOX_DIFF_ID: &str =
    "sha256:beed84fc74dde1dc0ce0032588340a67fd356283344bc7ad96cdef142f1fddb6";

const TAR: &str = "application/vnd.oci.image.layer.v1.tar";

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A one-file tar made by the `tar` crate.
fn small_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(2);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    b.append_data(&mut h, "hello", &b"hi"[..]).expect("append");
    b.into_inner().expect("tar")
}

#[test]
fn a_layer_that_is_not_its_diff_id_leaves_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let blob = tmp.path().join("blob");
    let tar = small_tar();
    fs::write(&blob, &tar).expect("write");
    let claimed: Digest = BUSYBOX_DIFF_ID.parse().expect("digest");
    let dir = tmp.path().join("layers/x");
    fs::create_dir(tmp.path().join("layers")).expect("mkdir");
    let err = unpack_blob(&blob, TAR, &claimed, &dir).expect_err("forged diff id");
    match &err {
        UnpackError::DiffIdMismatch { expected, actual } => {
            assert_eq!(expected, &claimed);
            assert_eq!(actual, &Digest::sha256(&tar));
        }
        other => panic!("{other}"),
    }
    let text = err.to_string();
    assert!(text.contains(BUSYBOX_DIFF_ID) && text.contains(Digest::sha256(&tar).as_str()));
    assert!(
        entries(&tmp.path().join("layers")).is_empty(),
        "no directory, no temporary"
    );

    // Bytes after the tar's end are part of the diff id: a blob with
    // trailing data is not the layer the plain tar's digest names.
    let mut padded = tar.clone();
    padded.extend_from_slice(&[0u8; 4096]);
    fs::write(&blob, &padded).expect("write");
    let err = unpack_blob(&blob, TAR, &Digest::sha256(&tar), &dir).expect_err("trailing bytes");
    assert!(matches!(err, UnpackError::DiffIdMismatch { .. }), "{err}");
    assert!(entries(&tmp.path().join("layers")).is_empty());
    unpack_blob(&blob, TAR, &Digest::sha256(&padded), &dir).expect("the real diff id");
    assert_eq!(fs::read(dir.join("hello")).expect("hello"), b"hi");

    // `unpack` reports the digest of what it read.
    let plain = tmp.path().join("plain");
    assert_eq!(
        unpack(&mut tar.as_slice(), &plain).expect("unpack"),
        Digest::sha256(&tar)
    );
}

#[test]
fn concurrent_unpacks_of_one_layer_all_succeed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("layer");
    let diff_id: Digest = BUSYBOX_DIFF_ID.parse().expect("digest");
    let barrier = std::sync::Barrier::new(3);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    unpack_blob(Path::new(BUSYBOX), TAR, &diff_id, &dir)
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread").expect("every unpack succeeds");
        }
    });
    assert_eq!(entries(tmp.path()), ["layer"], "temporaries removed");
    assert!(dir.join("bin/busybox").is_file());
}

/// A 1 MiB file with a hole, data at its start and end, and its content.
fn sparse_file(path: &Path) -> Vec<u8> {
    let mut f = fs::File::create(path).expect("create");
    f.write_all(b"head").expect("write");
    f.seek(SeekFrom::Start((1 << 20) - 4)).expect("seek");
    f.write_all(b"tail").expect("write");
    drop(f);
    let mut content = Vec::new();
    fs::File::open(path)
        .expect("open")
        .read_to_end(&mut content)
        .expect("read");
    content
}

/// `tar --sparse --format=FORMAT` of `dir/sparse`.
fn gnu_tar(dir: &Path, format: &str) -> Vec<u8> {
    let out = dir.join(format!("{format}.tar"));
    let status = Command::new("tar")
        .args(["--sparse", &format!("--format={format}"), "-cf"])
        .arg(&out)
        .arg("-C")
        .arg(dir)
        .arg("sparse")
        .status()
        .expect("tar runs");
    assert!(status.success());
    fs::read(out).expect("tar")
}

#[test]
fn gnu_sparse_members_unpack_in_full_and_pax_sparse_ones_are_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    fs::create_dir(&src).expect("mkdir");
    let content = sparse_file(&src.join("sparse"));

    let gnu = gnu_tar(&src, "gnu");
    assert_eq!(gnu[156], b'S', "GNU tar wrote a GNU sparse member");
    let dir = tmp.path().join("gnu");
    let blob = tmp.path().join("gnu.blob");
    fs::write(&blob, &gnu).expect("write");
    unpack_blob(&blob, TAR, &Digest::sha256(&gnu), &dir).expect("GNU sparse unpacks");
    assert_eq!(entries(&dir), ["sparse"]);
    assert!(fs::read(dir.join("sparse")).expect("read") == content);

    let pax = gnu_tar(&src, "posix");
    assert!(
        pax.windows(11).any(|w| w == b"GNU.sparse."),
        "GNU tar wrote a PAX sparse member"
    );
    let dir = tmp.path().join("pax");
    let err = unpack(&mut pax.as_slice(), &dir).expect_err("PAX sparse is refused");
    let text = err.to_string();
    assert!(
        text.contains("sparse") && text.contains("GNUSparseFile"),
        "the error names the entry: {text}"
    );
    assert!(!dir.exists());
}
