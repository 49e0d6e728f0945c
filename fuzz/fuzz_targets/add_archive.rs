//! ADD of a local archive: the input is a file `a.tar` in the source tree,
//! ADDed with extraction onto a base image that holds symlinks pointing
//! out of the root (`/x/etc -> /etc`, `/x/up -> ../..`).
#![no_main]

use kiln_executor::{apply_file_actions, CopyAction, FileAction, LayerStack, Source};
use libfuzzer_sys::fuzz_target;
use std::fs;
use std::os::unix::fs::symlink;

fuzz_target!(|data: &[u8]| {
    let Ok(tmp) = tempfile::tempdir() else {
        return;
    };
    let (src, base, upper) = (
        tmp.path().join("src"),
        tmp.path().join("base"),
        tmp.path().join("upper"),
    );
    let setup = || -> std::io::Result<()> {
        fs::create_dir(&src)?;
        fs::write(src.join("a.tar"), data)?;
        fs::create_dir_all(base.join("x"))?;
        symlink("/etc", base.join("x/etc"))?;
        symlink("../..", base.join("x/up"))?;
        fs::create_dir(&upper)
    };
    if setup().is_err() {
        return;
    }
    let sources = LayerStack::new(vec![src]);
    let base = LayerStack::new(vec![base]);
    let action = FileAction::Copy(CopyAction {
        input: 0,
        sources: vec!["a.tar".into()],
        dest: "/x/".into(),
        dest_is_dir: true,
        owner: None,
        chmod: None,
        unpack: true,
        excludes: Vec::new(),
        parents: false,
    });
    let _ = apply_file_actions(&base, &upper, &[action], &[Source::Tree(&sources)]);
});
