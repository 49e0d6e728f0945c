//! The command-line tools tests check kiln against: skopeo and umoci, and
//! the rule that a missing tool fails a test instead of skipping it.

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Panics unless `name` is an executable on `PATH`, naming the Debian package to install.
pub fn require_tool(name: &str) {
    let found = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| is_executable(&dir.join(name)))
    });
    if !found {
        // The Debian package is named after the binary for every tool the harness uses.
        let install = match name {
            "docker-registry" | "skopeo" | "umoci" | "openssl" | "curl" => {
                format!("run `apt-get install {name}`")
            }
            other => format!("install the Debian package that provides `{other}`"),
        };
        panic!(
            "integration test needs `{name}` on PATH, but it is not installed: \
             {install} (tests never skip silently)"
        );
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs `skopeo --insecure-policy ARGS...` and returns its output, whatever its exit status.
///
/// `--insecure-policy` spares tests from depending on `/etc/containers/policy.json`, and
/// `REGISTRY_AUTH_FILE` points at a file that does not exist so credentials saved on the
/// machine never leak into a test: pass `--creds`/`--src-creds`/`--dest-creds` instead.
pub fn skopeo(args: &[&str]) -> Output {
    require_tool("skopeo");
    Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .env("REGISTRY_AUTH_FILE", "/nonexistent/kiln-test/auth.json")
        .stdin(Stdio::null())
        .output()
        .expect("run skopeo")
}

/// Like [`skopeo`], but panics with skopeo's stderr unless it succeeds; returns stdout.
pub fn skopeo_ok(args: &[&str]) -> String {
    ok("skopeo", args, skopeo(args))
}

/// Runs `umoci ARGS...` and returns its output, whatever its exit status.
pub fn umoci(args: &[&str]) -> Output {
    require_tool("umoci");
    Command::new("umoci")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run umoci")
}

/// Like [`umoci`], but panics with umoci's stderr unless it succeeds; returns stdout.
pub fn umoci_ok(args: &[&str]) -> String {
    ok("umoci", args, umoci(args))
}

/// `out`'s stdout, or a panic naming the command and its stderr.
fn ok(tool: &str, args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "{tool} {} failed ({}):\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
