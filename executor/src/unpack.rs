//! Layer tar → layer directory (being written).

use std::io::Read;
use std::path::Path;

/// Extracts a layer tar into `dir` in overlay format (being written).
///
/// # Errors
/// I/O errors naming the path.
pub fn unpack(layer: &mut dyn Read, dir: &Path) -> std::io::Result<()> {
    let _ = (layer, dir);
    Err(std::io::Error::other("layer unpacking is not written yet"))
}
