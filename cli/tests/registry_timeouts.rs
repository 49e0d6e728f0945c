//! `kiln pull` through a stalling proxy (kiln_test_support::FaultProxy in
//! front of a real registry): the timeout settings from the config file,
//! the flag and the environment, and the one-line give-up message.

use kiln_test_support as support;

use std::process::{Command, Output};
use support::{Auth, Fault, FaultProxy, Registry};

/// The final error line (`kiln: ...`); the progress display shows the
/// step's error on its own line as well.
fn error_line(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("kiln: "))
        .unwrap_or("")
}

fn kiln(dir: &std::path::Path, config: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let config_path = dir.join("config.toml");
    std::fs::write(&config_path, config).expect("write config");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.args(args)
        .env("KILN_ROOT", dir.join("store"))
        .env("DOCKER_CONFIG", dir.join("docker"))
        .env("KILN_CONFIG", &config_path)
        .env_remove("KILN_REGISTRY_TIMEOUT")
        .env_remove("KILN_REGISTRY_DEADLINE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("kiln runs")
}

#[test]
fn a_pull_through_a_stalling_proxy_fails_naming_host_wait_and_attempts() {
    let registry = Registry::start(Auth::None);
    registry.seed_busybox("library/busybox:1");
    let proxy = FaultProxy::start(&registry.host());
    proxy.add(None, "/v2/", Fault::Stall, None);
    let dir = tempfile::tempdir().expect("temp dir");
    let target = format!("{}/library/busybox:1", proxy.host());
    let expected = format!(
        "no data from {} for 1 s while fetching manifest 1; 2 attempts",
        proxy.host()
    );

    // The flag sets the timeout, the config file the retries.
    let config = "[registry-defaults]\nretries = 1\ntimeout = \"1m\"\n";
    let out = kiln(
        dir.path(),
        config,
        &["--registry-timeout", "1s", "pull", &target],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let requests = proxy.count(None, "/v2/");
    eprintln!(
        "flag: exit {:?}, {requests} requests, stderr:\n{stderr}",
        out.status.code()
    );
    assert!(!out.status.success());
    assert_eq!(
        error_line(&stderr).matches(&expected).count(),
        1,
        "{stderr}"
    );
    assert_eq!(requests, 2);

    // The environment, and the config file alone.
    for (config, env) in [
        (
            "[registry-defaults]\nretries = 1\n",
            vec![("KILN_REGISTRY_TIMEOUT", "1s")],
        ),
        (
            "[registry-defaults]\nretries = 1\ntimeout = \"1s\"\n",
            vec![],
        ),
    ] {
        let before = proxy.count(None, "/v2/");
        let out = kiln(dir.path(), config, &["pull", &target], &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let requests = proxy.count(None, "/v2/") - before;
        eprintln!(
            "{env:?} {config:?}: exit {:?}, {requests} requests",
            out.status.code()
        );
        assert!(!out.status.success());
        assert_eq!(
            error_line(&stderr).matches(&expected).count(),
            1,
            "{stderr}"
        );
        assert_eq!(requests, 2);
    }

    // A deadline shorter than the timeout ends the pull first.
    let out = kiln(
        dir.path(),
        "[registry-defaults]\ndeadline = \"1s\"\ntimeout = \"30s\"\n",
        &["pull", &target],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("deadline: exit {:?}, stderr:\n{stderr}", out.status.code());
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(
            "kiln: pulling {target}: the 1 s deadline passed while fetching manifest 1; "
        )),
        "{stderr}"
    );
}

#[test]
fn bad_timeout_settings_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = kiln(
        dir.path(),
        "[registry-defaults]\ntimeout = \"soon\"\n",
        &["pull", "127.0.0.1:1/x:1"],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("registry-defaults.timeout = \"soon\""),
        "{stderr}"
    );
    let out = kiln(
        dir.path(),
        "",
        &["--registry-timeout", "0s", "pull", "127.0.0.1:1/x:1"],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--registry-timeout"), "{stderr}");
}
