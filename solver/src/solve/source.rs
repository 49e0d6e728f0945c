//! Source ops: the empty filesystem (scratch), a local build context, an
//! image's layers, a file downloaded for `ADD URL`, and a git checkout
//! for `ADD <git url>`.

use super::http::{io, DownloadError};
use super::step::{key_parts, Input, StepEnv, VertexResult};
use super::StepError;
use crate::graph::Vertex;
use crate::layer;
use crate::op::{ContextSource, GitSource, HttpSource, ImageSource};
use kiln_oci::{Digest, LocalStore};
use std::path::PathBuf;

/// The empty filesystem.
pub(super) fn scratch(vertex: &Vertex) -> Input {
    (VertexResult::Fs(Vec::new()), vertex.digest.clone())
}

/// A local build context, by name; its files are read (and checksummed
/// into cache keys) by the steps that use them.
pub(super) fn context(vertex: &Vertex, source: &ContextSource) -> Input {
    (
        VertexResult::Context(source.name.clone()),
        vertex.digest.clone(),
    )
}

/// An image's layers from the store, unpacked once per diff id.
pub(super) fn image(
    env: &StepEnv,
    vertex: &Vertex,
    image: &ImageSource,
) -> Result<Input, StepError> {
    let clock = env.clock(vertex);
    let layers = env.timed(&vertex.meta.name, || {
        Ok(layer::image_layers(&env.store, image)?)
    });
    match &layers {
        // Every layer was unpacked already: nothing to do, as a cache hit.
        Ok((found, false)) => clock.end(
            super::StepStatus::Cached,
            Some(found.iter().map(|l| l.size).sum()),
        ),
        _ => clock.end_with(&layers, |(made, _)| Some(made.iter().map(|l| l.size).sum())),
    }
    let (layers, _) = layers?;
    Ok((VertexResult::Fs(layers), vertex.digest.clone()))
}

/// A file downloaded for `ADD URL`: its key covers the content.
pub(super) fn http(
    env: &StepEnv,
    vertex: &Vertex,
    http: &HttpSource,
    inputs: &[Input],
) -> Result<Input, StepError> {
    let clock = env.clock(vertex);
    let downloaded = env.timed(&vertex.meta.name, || {
        download(&env.store, http).map_err(StepError::Download)
    });
    clock.end_with(&downloaded, |_| None);
    let (dir, content) = downloaded?;
    let parts = key_parts(&vertex.digest, inputs, Some(content.to_string()));
    Ok((VertexResult::Dir(dir), parts.key()))
}

/// Downloads an ADD URL into `<store>/http/<url digest>/<filename>` (mode
/// 0600, as BuildKit leaves it), verifying `--checksum`, with the
/// deadlines of [`super::http`]. Returns the directory and the content
/// digest.
fn download(store: &LocalStore, http: &HttpSource) -> Result<(PathBuf, Digest), DownloadError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let handle =
        tokio::runtime::Handle::try_current().map_err(|_| DownloadError::NoAsyncRuntime)?;
    let deadlines = super::http::Deadlines::from_env()?;
    let downloads = store.layout().downloads();
    std::fs::create_dir_all(&downloads).map_err(io(format!("creating {}", downloads.display())))?;
    // `.tmp-<pid>-`: `kiln prune` knows a running build's temporaries.
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".tmp-{}-", kiln_oci::process_tag()))
        .tempdir_in(&downloads)
        .map_err(io(format!(
            "creating a directory in {}",
            downloads.display()
        )))?;
    let file_path = tmp.path().join(&http.filename);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file_path)
        .map_err(io(format!("creating {}", file_path.display())))?;
    let content = handle.block_on(super::http::fetch(
        &http.url,
        http.checksum.as_deref(),
        &mut file,
        &deadlines,
    ))?;
    drop(file);
    std::fs::set_permissions(&file_path, std::fs::Permissions::from_mode(0o600))
        .map_err(io(format!("chmod {}", file_path.display())))?;
    let dir = downloads.join(format!(
        "{}-{}",
        Digest::sha256(http.url.as_bytes()).hex(),
        &content.hex()[..16]
    ));
    if !dir.exists() {
        let kept = tmp.keep();
        if std::fs::rename(&kept, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&kept);
        }
    } else if let Ok(d) = std::fs::File::open(&dir) {
        // The last use, for `kiln prune`'s order.
        let _ = d.set_modified(std::time::SystemTime::now());
    }
    Ok((dir, content))
}

/// A git checkout for `ADD <git url>`: its key covers the commit the ref
/// resolved to (and the vertex digest the URL and options).
pub(super) fn git(
    env: &StepEnv,
    vertex: &Vertex,
    git: &GitSource,
    inputs: &[Input],
) -> Result<Input, StepError> {
    let clock = env.clock(vertex);
    let checkout = env.timed(&vertex.meta.name, || {
        super::git::checkout(&env.store, &env.host, git).map_err(|e| StepError::Git(Box::new(e)))
    });
    clock.end_with(&checkout, |_| None);
    let (dir, commit) = checkout?;
    let parts = key_parts(&vertex.digest, inputs, Some(format!("git:{commit}")));
    Ok((VertexResult::Dir(dir), parts.key()))
}
