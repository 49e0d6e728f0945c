//! `kiln load`: an OCI layout tar or docker-archive (plain or gzip) loaded
//! into a fresh local store.
#![no_main]

use kiln_oci::LocalStore;
use libfuzzer_sys::fuzz_target;
use std::io::Cursor;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(tmp) = tempfile::tempdir() else {
        return;
    };
    let Ok(store) = LocalStore::open(tmp.path().join("store")) else {
        return;
    };
    let _ = kiln_oci::archive::load_tar(&store, Cursor::new(data), Path::new("fuzz.tar"));
});
