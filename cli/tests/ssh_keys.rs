//! Build secrets given as buildx gives them (issue 17): `--ssh ID=KEYFILE`
//! served by kiln's own agent to `RUN --mount=type=ssh`, and `--secret
//! type=env`.
//!
//! kiln's busybox has no SSH client, so the test brings the host's
//! `ssh-add` and `ssh-keygen` (openssh-client) into the step through a
//! named context, with their libraries and the dynamic loader: inside the
//! step `ssh-add -l` lists the keys the agent serves and `ssh-keygen -Y
//! sign` signs through the agent; the host checks the signatures with the
//! public keys. Without openssh-client the test says why it skipped (and
//! fails under `CI=true`).

mod common;

use common::{s, Env};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `ssh-keygen`, or `None` after saying why.
fn openssh() -> Option<()> {
    let found = Command::new("ssh-keygen")
        .arg("-?")
        .output()
        .is_ok_and(|_| Path::new("/usr/bin/ssh-add").exists() || which("ssh-add").is_some());
    if found {
        return Some(());
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must have ssh-keygen and ssh-add (openssh-client; .ci/run installs it)"
    );
    eprintln!("skipped: ssh-keygen and ssh-add (openssh-client) are not installed");
    None
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    })
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A new key pair at `path` (and `path.pub`).
fn keygen(path: &Path, kind: &str, passphrase: &str, extra: &[&str]) {
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-N", passphrase, "-C"])
            .arg(format!("kiln-{kind}"))
            .args(extra)
            .arg("-f")
            .arg(path),
    );
}

/// A directory with `ssh-add`, `ssh-keygen`, the libraries `ldd` names
/// for them and the loader, so they run in busybox as
/// `/t/ld.so --library-path /t/lib /t/TOOL`.
fn tools(dir: &Path) -> PathBuf {
    let lib = dir.join("lib");
    std::fs::create_dir_all(&lib).expect("mkdir");
    for tool in ["ssh-add", "ssh-keygen"] {
        let path = which(tool).expect("tool on PATH");
        std::fs::copy(&path, dir.join(tool)).expect("copy tool");
        let listing = run_ok(Command::new("ldd").arg(&path));
        for line in listing.lines() {
            let line = line.trim();
            if let Some((_, rest)) = line.split_once("=> ") {
                let so = rest.split_whitespace().next().unwrap_or_default();
                if so.starts_with('/') {
                    let name = Path::new(so).file_name().expect("name");
                    std::fs::copy(so, lib.join(name)).expect("copy library");
                }
            } else if line.starts_with('/') && line.contains("ld-linux") {
                let so = line.split_whitespace().next().unwrap_or_default();
                std::fs::copy(so, dir.join("ld.so")).expect("copy loader");
            }
        }
    }
    assert!(dir.join("ld.so").is_file(), "the loader was found");
    dir.to_path_buf()
}

const SIGNING: &str = "FROM busybox\n\
     RUN --mount=type=ssh --mount=type=bind,from=tools,target=/t \\\n\
         /t/ld.so --library-path /t/lib /t/ssh-add -l > /listed && \\\n\
         for k in /t/keys/*.pub; do \\\n\
           echo signed-in-the-step | /t/ld.so --library-path /t/lib /t/ssh-keygen -Y sign -f $k -n kiln-test > /sig-$(basename $k .pub) || exit 1; \\\n\
         done\n";

#[test]
fn key_files_are_served_by_an_agent_in_the_step() {
    let Some(()) = openssh() else { return };
    let env = Env::new();
    let dir = tools(&env.path("tools"));
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).expect("mkdir");
    let ed = env.path("id_ed25519");
    let rsa = env.path("id_rsa");
    keygen(&ed, "ed25519", "", &[]);
    keygen(&rsa, "rsa", "", &["-b", "2048"]);
    for k in [&ed, &rsa] {
        let name = k.file_name().expect("name");
        std::fs::copy(
            k.with_extension("pub"),
            keys.join(format!("{}.pub", name.to_string_lossy())),
        )
        .expect("copy public key");
    }
    let ctx = env.context("ctx", &[("Dockerfile", SIGNING)]);
    let out = env.path("out");
    env.ok(
        &[
            "build",
            "--ssh",
            &format!("default={},{}", s(&ed), s(&rsa)),
            "--build-context",
            &format!("tools={}", s(&dir)),
            "-o",
            s(&out),
            s(&ctx),
        ],
        None,
    );
    // ssh-add -l in the step lists both keys, as the host sees them.
    let listed = std::fs::read_to_string(out.join("listed")).expect("listed");
    for k in [&ed, &rsa] {
        let host = run_ok(
            Command::new("ssh-keygen")
                .arg("-lf")
                .arg(k.with_extension("pub")),
        );
        assert!(
            listed.contains(host.trim()),
            "{host} not in the step's list:\n{listed}"
        );
    }
    assert_eq!(listed.lines().count(), 2, "{listed}");
    // Each key signed through the agent; the host checks the signatures.
    for (k, algorithm) in [(&ed, "ED25519"), (&rsa, "RSA")] {
        let name = k.file_name().expect("name").to_string_lossy().into_owned();
        let sig = out.join(format!("sig-{name}"));
        let mut check = Command::new("sh");
        check.arg("-c").arg(format!(
            "echo signed-in-the-step | ssh-keygen -Y check-novalidate -n kiln-test -s {}",
            s(&sig)
        ));
        let said = run_ok(&mut check);
        assert!(
            said.contains("Good \"kiln-test\" signature") && said.contains(algorithm),
            "{said}"
        );
    }
    // Nothing of the agent is left in the image.
    assert!(!out.join("run/buildkit").exists());
    assert!(!out.join("t").exists());

    // One key per id: each id is its own agent.
    let ctx2 = env.context(
        "ctx2",
        &[(
            "Dockerfile",
            "FROM busybox\n\
             RUN --mount=type=ssh,id=first,target=/a.sock --mount=type=ssh,id=second,target=/b.sock \\\n\
                 --mount=type=bind,from=tools,target=/t \\\n\
                 SSH_AUTH_SOCK=/a.sock /t/ld.so --library-path /t/lib /t/ssh-add -l > /a && \\\n\
                 SSH_AUTH_SOCK=/b.sock /t/ld.so --library-path /t/lib /t/ssh-add -l > /b\n",
        )],
    );
    env.ok(
        &[
            "build",
            "--ssh",
            &format!("first={}", s(&ed)),
            "--ssh",
            &format!("second={}", s(&rsa)),
            "--build-context",
            &format!("tools={}", s(&dir)),
            "-o",
            s(&out),
            s(&ctx2),
        ],
        None,
    );
    let a = std::fs::read_to_string(out.join("a")).expect("a");
    let b = std::fs::read_to_string(out.join("b")).expect("b");
    assert!(a.contains("(ED25519)") && a.lines().count() == 1, "{a}");
    assert!(b.contains("(RSA)") && b.lines().count() == 1, "{b}");
}

#[test]
fn unusable_key_files_are_refused_in_one_line() {
    let Some(()) = openssh() else { return };
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN --mount=type=ssh sleep 30\n",
        )],
    );
    let encrypted = env.path("id_locked");
    keygen(&encrypted, "ed25519", "a passphrase", &[]);
    let pem = env.path("id_pem");
    keygen(&pem, "rsa", "", &["-b", "2048", "-m", "PEM"]);
    let junk = env.path("not-a-key");
    std::fs::write(&junk, "not a socket, not a key").expect("write");
    let agent = env.path("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&agent).expect("bind");
    for (value, says) in [
        (format!("default={}", s(&encrypted)), "is encrypted"),
        (
            format!("default={}", s(&pem)),
            "is not an OpenSSH private key",
        ),
        (
            format!("default={}", s(&junk)),
            "is not an OpenSSH private key",
        ),
        (
            format!("default={},{}", s(&agent), s(&junk)),
            "give it alone",
        ),
        (format!("default={}", s(&env.path("absent"))), "absent"),
        (
            format!("default={}", env.dir.path().display()),
            "is a directory",
        ),
        ("default=".to_string(), "no socket or key file"),
    ] {
        let started = std::time::Instant::now();
        let err = env.fails(&["build", "--ssh", &value, s(&ctx)], None);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "refused before the build"
        );
        assert_eq!(err.trim().lines().count(), 1, "{value}: one line:\n{err}");
        assert!(err.contains("--ssh"), "{value}: {err}");
        assert!(err.contains(says), "{value}: {says:?} in {err}");
        assert!(!err.contains("PRIVATE KEY"), "no key material: {err}");
    }
}

#[test]
fn env_secrets_reach_the_step() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox\n\
             RUN --mount=type=secret,id=token --mount=type=secret,id=API_KEY,env=KEY \\\n\
                 test \"$(cat /run/secrets/token)\" = from-the-variable && \\\n\
                 test \"$KEY\" = from-the-named-variable && echo both > /ok && \\\n\
                 test ! -e /run/secrets/token.x\n",
        )],
    );
    let out = env.path("out");
    let ran = env.run_env(
        &[
            "build",
            "--secret",
            "type=env,id=token,env=KILN_TEST_TOKEN",
            "--secret",
            "id=API_KEY,type=env",
            "-o",
            s(&out),
            s(&ctx),
        ],
        None,
        &[
            ("KILN_TEST_TOKEN", "from-the-variable"),
            ("API_KEY", "from-the-named-variable"),
        ],
    );
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(out.join("ok")).expect("ok"),
        "both\n"
    );
    // Neither value is in the image.
    for entry in walkdir::WalkDir::new(&out).into_iter().flatten() {
        if entry.file_type().is_file() {
            let data = std::fs::read(entry.path()).unwrap_or_default();
            for secret in ["from-the-variable", "from-the-named-variable"] {
                assert!(
                    !data.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{secret} in {}",
                    entry.path().display()
                );
            }
        }
    }
    // An unset variable is an error naming the flag's id.
    let err = env.fails(
        &[
            "build",
            "--no-cache",
            "--secret",
            "type=env,id=token,env=KILN_TEST_UNSET_VARIABLE",
            s(&ctx),
        ],
        None,
    );
    assert!(
        err.contains("token") || err.contains("KILN_TEST_UNSET_VARIABLE"),
        "{err}"
    );
}
