//! Layer unpack: a layer blob (plain tar, gzip or zstd) extracted into a
//! fresh temporary directory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Cursor;

fuzz_target!(|data: &[u8]| {
    let Ok(tmp) = tempfile::tempdir() else {
        return;
    };
    let Ok(mut layer) = kiln_oci::compress::decompressor(Cursor::new(data)) else {
        return;
    };
    let _ = kiln_executor::unpack(&mut layer, &tmp.path().join("layer"));
});
