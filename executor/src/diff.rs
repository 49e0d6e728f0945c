//! Upper directory → layer tar (being written).

use std::io::Write;
use std::path::Path;

/// Writes the layer tar of `upper` to `out` (being written).
///
/// # Errors
/// I/O errors naming the path.
pub fn diff(upper: &Path, out: &mut dyn Write) -> std::io::Result<()> {
    let _ = (upper, out);
    Err(std::io::Error::other("layer diff is not written yet"))
}
