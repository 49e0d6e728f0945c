//! Lowering: parse a Dockerfile and lower it to the build graph (no
//! execution). Every image reference resolves to one small fixed image.
#![no_main]

use kiln_oci::{Digest, ImageConfig, Platform};
use kiln_solver::{lower, BuildOptions, ImageResolver, ResolveError, ResolvedImage};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

const CONFIG: &str = r#"{"architecture":"amd64","os":"linux",
"config":{"Env":["PATH=/usr/local/bin:/usr/bin:/bin","HOME=/root"],"WorkingDir":"/w","User":"0"},
"rootfs":{"type":"layers","diff_ids":[]}}"#;

/// Resolves any reference that parses to the same image.
struct AnyImage;

impl ImageResolver for AnyImage {
    fn resolve(
        &self,
        reference: &str,
        _platform: &Platform,
    ) -> Result<ResolvedImage, ResolveError> {
        let r = kiln_oci::Reference::parse(reference).map_err(|e| e.to_string())?;
        Ok(ResolvedImage {
            reference: r.to_string(),
            manifest: format!("sha256:{}", "ab".repeat(32))
                .parse::<Digest>()
                .map_err(|e| e.to_string())?,
            config: ImageConfig::from_slice(CONFIG.as_bytes()).map_err(|e| e.to_string())?,
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(dockerfile) = kiln_parser::parse(&text) else {
        return;
    };
    let options = BuildOptions {
        platform: Platform::new("linux", "amd64", ""),
        build_platform: Platform::new("linux", "amd64", ""),
        ..BuildOptions::default()
    };
    let _ = lower(
        &dockerfile,
        &options,
        &AnyImage,
        Path::new("/nonexistent/context"),
    );
});
