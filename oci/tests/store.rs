//! The local content store on a real directory.

use kiln_oci::{BlobIngester, BlobReader, Digest, LocalStore, StoreError};
use std::io::Write;

fn store() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = LocalStore::open(dir.path().join("store")).expect("store opens");
    (dir, store)
}

fn ingest_is_empty(store: &LocalStore) -> bool {
    std::fs::read_dir(store.root().join("ingest"))
        .expect("ingest dir")
        .next()
        .is_none()
}

#[test]
fn write_then_read() {
    let (_dir, store) = store();
    let d = store.write_blob(b"hello", None).expect("write");
    assert_eq!(d, Digest::sha256(b"hello"));
    assert_eq!(store.read(&d).expect("read"), b"hello");
    assert_eq!(store.size(&d), Some(5));
    assert_eq!(store.blobs().expect("list"), vec![d.clone()]);
    // Writing the same content again is fine and idempotent.
    assert_eq!(store.write_blob(b"hello", Some(&d)).expect("rewrite"), d);
    assert!(ingest_is_empty(&store));
}

#[test]
fn wrong_content_is_rejected_and_nothing_is_published() {
    let (_dir, store) = store();
    let expected = Digest::sha256(b"the real layer");
    let err = store
        .write_blob(b"something else", Some(&expected))
        .unwrap_err();
    match &err {
        StoreError::DigestMismatch {
            expected: e,
            actual,
        } => {
            assert_eq!(e, &expected);
            assert_eq!(actual, &Digest::sha256(b"something else"));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains(expected.as_str()));
    assert!(!store.exists(&expected));
    assert!(store.blobs().expect("list").is_empty());
    assert!(ingest_is_empty(&store));
}

#[test]
fn size_mismatch_is_rejected() {
    let (_dir, store) = store();
    let mut w = store.writer().expect("writer");
    w.write_all(b"abc").expect("write");
    assert!(matches!(
        w.commit(None, Some(4)),
        Err(StoreError::SizeMismatch { .. })
    ));
    assert!(store.blobs().expect("list").is_empty());
}

#[test]
fn abandoned_writer_leaves_nothing() {
    let (_dir, store) = store();
    {
        let mut w = store.writer().expect("writer");
        w.write_all(b"partial download").expect("write");
        assert_eq!(w.written(), 16);
    }
    assert!(ingest_is_empty(&store));
    assert!(store.blobs().expect("list").is_empty());
}

#[test]
fn missing_blob_names_the_digest() {
    let (_dir, store) = store();
    let d = Digest::sha256(b"absent");
    let err = store.read(&d).unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)));
    assert!(err.to_string().contains(d.as_str()));
    store.delete(&d).expect("deleting an absent blob is fine");
}

#[test]
fn concurrent_writers_of_the_same_blob() {
    let (_dir, store) = store();
    let data = vec![7u8; 1 << 20];
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let data = data.clone();
            std::thread::spawn(move || {
                let mut w = store.writer().expect("writer");
                for chunk in data.chunks(4096) {
                    w.write_all(chunk).expect("write");
                }
                w.commit(None, Some(data.len() as u64)).expect("commit")
            })
        })
        .collect();
    let digests: Vec<Digest> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    assert!(digests.iter().all(|d| *d == Digest::sha256(&data)));
    assert_eq!(store.read(&digests[0]).expect("read"), data);
    assert!(ingest_is_empty(&store));
}

#[test]
fn busybox_base_blobs_verify() {
    // The shared busybox OCI layout: every blob's content matches its name.
    let blobs = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/bases/busybox/blobs/sha256");
    let (_dir, store) = store();
    let mut n = 0;
    for entry in std::fs::read_dir(&blobs).expect("busybox layout") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        let expected: Digest = format!("sha256:{name}").parse().expect("digest name");
        let data = std::fs::read(&path).expect("read blob");
        assert_eq!(
            store.write_blob(&data, Some(&expected)).expect("verified"),
            expected
        );
        n += 1;
    }
    println!("busybox layout: {n} blobs ingested and verified");
    assert!(n >= 3);
}

#[test]
fn refs_survive_concurrent_updates() {
    let (_dir, store) = store();
    let d1 = store.write_blob(b"one", None).expect("write");
    assert_eq!(store.get_ref("docker.io/library/a:1").expect("get"), None);
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            let d = d1.clone();
            std::thread::spawn(move || {
                for j in 0..10 {
                    store.set_ref(&format!("r{i}:{j}"), &d).expect("set");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    let refs = store.refs().expect("refs");
    assert_eq!(refs.len(), 80, "no update may be lost");
    assert!(store.remove_ref("r0:0").expect("remove"));
    assert!(!store.remove_ref("r0:0").expect("remove again"));
    assert_eq!(store.get_ref("r1:1").expect("get"), Some(d1));
}

#[test]
fn gc_waits_for_leases_and_keeps_referenced_blobs() {
    let (_dir, store) = store();
    let named = store.write_blob(b"named", None).expect("write");
    store.set_ref("docker.io/library/x:1", &named).expect("ref");
    let lease = store.lease().expect("lease");
    let fresh = store
        .write_blob(b"written under a lease", None)
        .expect("write");
    let (tx, rx) = std::sync::mpsc::channel();
    let gc_store = store.clone();
    let collector = std::thread::spawn(move || {
        let report = gc_store.gc().expect("gc");
        tx.send(()).expect("send");
        report
    });
    // While the lease is held the collection cannot start.
    assert!(rx
        .recv_timeout(std::time::Duration::from_millis(300))
        .is_err());
    assert!(store.exists(&fresh));
    drop(lease);
    let report = collector.join().expect("gc thread");
    // Once released, the unnamed blob goes; the named one (not a manifest,
    // so it has no children) stays.
    assert_eq!(report.removed, vec![fresh]);
    assert!(store.exists(&named));
}

#[test]
fn gc_removes_ingest_files_of_dead_processes() {
    let (_dir, store) = store();
    // No process has this pid: this is what a crashed writer leaves.
    let stale = store.root().join("ingest").join("999999999-1-1");
    std::fs::write(&stale, vec![0u8; 1000]).expect("write");
    let report = store.gc().expect("gc");
    assert_eq!(report.stale_ingests, 1);
    assert_eq!(report.freed, 1000);
    assert!(!stale.exists());
}
