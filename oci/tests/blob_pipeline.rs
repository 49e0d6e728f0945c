//! The pipelined blob writer on a real store: the same blobs, digests and
//! guarantees as the plain writer.

use kiln_oci::{
    BlobIngester, BlobReader, BlobStore, Digest, LocalStore, PipelineOptions, StoreError,
};
use std::io::Write;
use std::num::NonZeroU64;

fn store() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = LocalStore::open(dir.path().join("store")).expect("store opens");
    (dir, store)
}

fn ingest_is_empty(store: &LocalStore) -> bool {
    std::fs::read_dir(store.layout().ingest())
        .expect("ingest dir")
        .next()
        .is_none()
}

/// Pseudo-random bytes (xorshift), so a misplaced buffer changes the hash.
fn data(len: usize) -> Vec<u8> {
    let mut s: u64 = 0x9E37_79B9_7F4A_7C15 ^ len as u64;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

const CHUNK: usize = 64 << 10;

/// Every way of running the pipeline, with buffers small enough that a
/// few MiB go round the pool many times.
fn option_sets() -> Vec<PipelineOptions> {
    let small = PipelineOptions {
        chunk_size: CHUNK,
        buffers: 2,
        ..PipelineOptions::default()
    };
    vec![
        PipelineOptions::default(),
        small,
        PipelineOptions {
            worker_writes: false,
            ..small
        },
        PipelineOptions {
            writeback_every: NonZeroU64::new(CHUNK as u64 * 3),
            ..small
        },
        PipelineOptions {
            worker_writes: false,
            writeback_every: NonZeroU64::new(1),
            ..small
        },
    ]
}

#[test]
fn pipelined_blobs_equal_plain_ones_at_every_size_and_write_pattern() {
    let (_dir, store) = store();
    let default_chunk = PipelineOptions::default().chunk_size;
    let sizes = [
        0,
        1,
        CHUNK - 1,
        CHUNK,
        CHUNK + 1,
        default_chunk - 1,
        default_chunk,
        default_chunk + 1,
        // More than the default pool holds: buffers come back for reuse.
        (6 << 20) + 3,
    ];
    let all = data((6 << 20) + 3);
    for &len in &sizes {
        let data = &all[..len];
        let plain = store.write_blob(data, None).expect("plain writer");
        assert_eq!(plain, Digest::sha256(data));
        store.delete(&plain).expect("delete");
        for options in option_sets() {
            // One big write, then odd-sized writes that straddle buffers.
            for piece in [len.max(1), 4097, 1] {
                if piece == 1 && len > CHUNK + 1 {
                    continue;
                }
                let mut w = store.writer_with(options).expect("writer");
                for part in data.chunks(piece) {
                    w.write_all(part).expect("write");
                }
                assert_eq!(w.written(), len as u64);
                let digest = w.commit(None, Some(len as u64)).expect("commit");
                assert_eq!(digest, plain, "{options:?}, {len} bytes in {piece}s");
                assert!(store.read(&digest).expect("read") == data, "{options:?}");
                store.delete(&digest).expect("delete");
            }
        }
    }
    assert!(ingest_is_empty(&store));
}

#[test]
fn a_wrong_expected_digest_publishes_nothing() {
    let (_dir, store) = store();
    for options in option_sets() {
        let data = data((3 << 20) + 11);
        let expected = Digest::sha256(b"the layer that was promised");
        let mut w = store.writer_with(options).expect("writer");
        w.write_all(&data).expect("write");
        match w.commit(Some(&expected), None) {
            Err(StoreError::DigestMismatch {
                expected: e,
                actual,
            }) => {
                assert_eq!(e, expected);
                assert_eq!(actual, Digest::sha256(&data));
            }
            other => panic!("{other:?}"),
        }
        assert!(!store.exists(&expected));
        assert!(store.blobs().expect("list").is_empty(), "{options:?}");
        assert!(ingest_is_empty(&store), "{options:?}");
    }
}

#[test]
fn a_wrong_size_publishes_nothing() {
    let (_dir, store) = store();
    let mut w = store.writer_pipelined().expect("writer");
    w.write_all(&data(CHUNK * 3)).expect("write");
    assert!(matches!(
        w.commit(None, Some(CHUNK as u64)),
        Err(StoreError::SizeMismatch { .. })
    ));
    assert!(store.blobs().expect("list").is_empty());
    assert!(ingest_is_empty(&store));
}

#[test]
fn a_dropped_writer_leaves_no_ingest_file() {
    let (_dir, store) = store();
    for options in option_sets() {
        let mut w = store.writer_with(options).expect("writer");
        w.write_all(&data((5 << 20) + 1)).expect("write");
        w.flush().expect("flush");
        drop(w);
        assert!(ingest_is_empty(&store), "{options:?}");
        // Dropped before anything was written.
        drop(store.writer_with(options).expect("writer"));
        assert!(ingest_is_empty(&store), "{options:?}");
    }
    assert!(store.blobs().expect("list").is_empty());
}

#[test]
fn a_blob_store_trait_object_gives_a_pipelined_writer() {
    let (_dir, store) = store();
    let dyn_store: &dyn BlobStore = &store;
    let data = data((2 << 20) + 77);
    let mut w = dyn_store.writer_pipelined().expect("writer");
    w.write_all(&data).expect("write");
    let digest = w
        .commit(Some(&Digest::sha256(&data)), Some(data.len() as u64))
        .expect("commit");
    assert_eq!(dyn_store.read(&digest).expect("read"), data);
    // A committed writer is gone: writing after commit is impossible by
    // construction (commit takes it by value).
    assert!(ingest_is_empty(&store));
}

/// An image in `store` whose one layer is a tar of a `len`-byte file:
/// (manifest digest, layer digest).
fn image_with_a_layer(store: &LocalStore, len: usize) -> (Digest, Digest) {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(len as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "big.bin", &data(len)[..])
        .expect("tar");
    let layer = tar.into_inner().expect("tar");
    let layer_digest = store.write_blob(&layer, None).expect("layer");
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest.as_str()]},
    })
    .to_string();
    let config_digest = store.write_blob(config.as_bytes(), None).expect("config");
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest.as_str(),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest.as_str(),
            "size": layer.len(),
        }],
    })
    .to_string();
    let manifest_digest = store
        .write_blob(manifest.as_bytes(), None)
        .expect("manifest");
    (manifest_digest, layer_digest)
}

#[test]
fn archive_import_of_a_big_layer_stores_the_same_blob() {
    let (_a, source) = store();
    let (manifest, layer) = image_with_a_layer(&source, (5 << 20) + 9);
    let images = [kiln_oci::archive::NamedImage {
        names: vec!["example.com/big:1".into()],
        digest: manifest.clone(),
    }];
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("layout");
    kiln_oci::archive::write_layout_dir(&source, &images, &dir).expect("layout dir");
    let tar = kiln_oci::archive::write_layout_tar(&source, &images, Vec::new()).expect("tar");
    let want = source.read(&layer).expect("layer");

    let (_b, from_dir) = store();
    let loaded = kiln_oci::archive::load(&from_dir, &dir).expect("load dir");
    assert_eq!(loaded[0].digest, manifest);
    let (_c, from_tar) = store();
    let loaded = kiln_oci::archive::load_tar(&from_tar, &tar[..], std::path::Path::new("x.tar"))
        .expect("load tar");
    assert_eq!(loaded[0].digest, manifest);
    for store in [&from_dir, &from_tar] {
        assert!(store.read(&layer).expect("layer") == want);
        assert!(ingest_is_empty(store));
    }

    // A big blob damaged in the layout is refused and not stored.
    let blob = kiln_oci::archive::layout_blob_path(&dir, &layer);
    let mut bytes = std::fs::read(&blob).expect("blob");
    bytes[3 << 20] ^= 1;
    std::fs::write(&blob, &bytes).expect("damage");
    let (_d, damaged) = store();
    let err = kiln_oci::archive::load(&damaged, &dir).expect_err("damaged");
    assert!(err.to_string().contains(layer.as_str()), "{err}");
    assert!(!damaged.exists(&layer));
    assert!(ingest_is_empty(&damaged));
}
