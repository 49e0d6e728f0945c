//! Unit tests of the credentials module.

use super::*;
use serde_json::json;
use tempfile::TempDir;

fn password(user: &str, pass: &str) -> Credential {
    Credential {
        username: user.to_owned(),
        secret: Secret::Password(pass.to_owned()),
    }
}

fn b64(s: &str) -> String {
    BASE64.encode(s)
}

/// A tempdir with `config.json` holding `json`.
fn config_with(json: &Value) -> (TempDir, DockerConfig) {
    let dir = TempDir::new().expect("tempdir");
    let path = dir.path().join("config.json");
    fs::write(&path, serde_json::to_vec_pretty(json).expect("json")).expect("write");
    let config = DockerConfig::load(&path).expect("load");
    (dir, config)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).expect("read")).expect("json")
}

/// Writes an executable `docker-credential-<name>` with `body` into
/// `dir/bin` and returns that directory.
fn write_helper(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).expect("mkdir");
    let path = bin.join(format!("{HELPER_PREFIX}{name}"));
    fs::write(&path, format!("#!/bin/sh\n{body}")).expect("write helper");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    bin
}

/// A helper that records its input beside itself (`get-input`,
/// `store-input`, `erase-input`) and answers `get` with `answer.json`
/// if that exists, else with "not found".
const RECORDING_HELPER: &str = r#"dir=$(dirname "$0")
input=$(cat)
case "$1" in
  get)
    printf '%s' "$input" > "$dir/get-input"
    if [ -f "$dir/answer.json" ]; then cat "$dir/answer.json"
    else echo "credentials not found in native keychain"; exit 1; fi ;;
  store) printf '%s' "$input" > "$dir/store-input" ;;
  erase) printf '%s' "$input" > "$dir/erase-input" ;;
  *) echo "unknown action $1" >&2; exit 2 ;;
esac
"#;

#[test]
fn registry_keys() {
    for hub in [
        "docker.io",
        "index.docker.io",
        "registry-1.docker.io",
        "Docker.IO",
        "https://index.docker.io/v1/",
        "https://registry-1.docker.io/v2/",
    ] {
        assert_eq!(registry_key(hub), DOCKER_HUB_KEY, "{hub}");
    }
    assert_eq!(registry_key("ghcr.io"), "ghcr.io");
    assert_eq!(registry_key("localhost:5000"), "localhost:5000");
    assert_eq!(registry_key("https://localhost:5000/v2/"), "localhost:5000");
    assert_eq!(registry_key("HTTP://reg.example"), "reg.example");
    assert_eq!(registry_key("reg.example/"), "reg.example");
}

#[test]
fn default_path_prefers_docker_config() {
    assert_eq!(
        default_path_from(Some("/cfg".into()), Some("/home/u".into())),
        Some(PathBuf::from("/cfg/config.json"))
    );
    assert_eq!(
        default_path_from(Some("".into()), Some("/home/u".into())),
        Some(PathBuf::from("/home/u/.docker/config.json"))
    );
    assert_eq!(
        default_path_from(None, Some("/home/u".into())),
        Some(PathBuf::from("/home/u/.docker/config.json"))
    );
    assert_eq!(default_path_from(None, None), None);
    assert_eq!(default_path_from(None, Some("".into())), None);
    // The public wrappers read the real environment (never changed here).
    assert_eq!(
        DockerConfig::default_path(),
        default_path_from(env::var_os("DOCKER_CONFIG"), env::var_os("HOME"))
    );
    let _: fn() -> Result<DockerConfig> = DockerConfig::load_default;
}

#[test]
fn base64_auth() {
    let (_dir, config) = config_with(&json!({
        "auths": { "reg.example": { "auth": b64("alice:pa:ss") } }
    }));
    assert_eq!(
        config.credential_for("reg.example").expect("lookup"),
        Some(password("alice", "pa:ss"))
    );
    assert_eq!(
        config.credential_for("other.example").expect("lookup"),
        None
    );
}

#[test]
fn auth_without_padding_and_with_username_fields() {
    let (_dir, config) = config_with(&json!({
        "auths": {
            // "a:b" encodes to "YTpi" (no padding); "ab:c" needs it.
            "one.example": { "auth": b64("ab:c").trim_end_matches('=') },
            "two.example": { "username": "bob", "password": "pw" },
            "three.example": { "auth": "", "username": "carol", "password": "x" },
        }
    }));
    assert_eq!(
        config.credential_for("one.example").expect("lookup"),
        Some(password("ab", "c"))
    );
    assert_eq!(
        config.credential_for("two.example").expect("lookup"),
        Some(password("bob", "pw"))
    );
    assert_eq!(
        config.credential_for("three.example").expect("lookup"),
        Some(password("carol", "x"))
    );
}

#[test]
fn identity_token() {
    let (_dir, config) = config_with(&json!({
        "auths": {
            "reg.example": { "auth": b64("bob:"), "identitytoken": "refresh-tok" },
            "bare.example": { "identitytoken": "t2" },
        }
    }));
    assert_eq!(
        config.credential_for("reg.example").expect("lookup"),
        Some(Credential {
            username: "bob".into(),
            secret: Secret::IdentityToken("refresh-tok".into()),
        })
    );
    assert_eq!(
        config.credential_for("bare.example").expect("lookup"),
        Some(Credential {
            username: String::new(),
            secret: Secret::IdentityToken("t2".into()),
        })
    );
}

#[test]
fn url_shaped_keys() {
    let (_dir, config) = config_with(&json!({
        "auths": {
            "https://reg.example": { "auth": b64("a:1") },
            "http://localhost:5000/v2/": { "auth": b64("b:2") },
            "HTTPS://Upper.Example/": { "auth": b64("c:3") },
        }
    }));
    assert_eq!(
        config.credential_for("reg.example").expect("lookup"),
        Some(password("a", "1"))
    );
    assert_eq!(
        config.credential_for("localhost:5000").expect("lookup"),
        Some(password("b", "2"))
    );
    assert_eq!(
        config.credential_for("upper.example").expect("lookup"),
        Some(password("c", "3"))
    );
    // Different port, different registry.
    assert_eq!(
        config.credential_for("localhost:5001").expect("lookup"),
        None
    );
    assert_eq!(config.credential_for("localhost").expect("lookup"), None);
}

#[test]
fn exact_key_wins_over_url_key() {
    let (_dir, config) = config_with(&json!({
        "auths": {
            "https://reg.example/v2/": { "auth": b64("old:1") },
            "reg.example": { "auth": b64("new:2") },
        }
    }));
    assert_eq!(
        config.credential_for("reg.example").expect("lookup"),
        Some(password("new", "2"))
    );
}

#[test]
fn docker_hub_aliases() {
    let (_dir, config) = config_with(&json!({
        "auths": { "https://index.docker.io/v1/": { "auth": b64("hubuser:hubpw") } }
    }));
    for host in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
        assert_eq!(
            config.credential_for(host).expect("lookup"),
            Some(password("hubuser", "hubpw")),
            "{host}"
        );
    }
    let (_dir, config) = config_with(&json!({
        "auths": { "docker.io": { "auth": b64("u:p") } }
    }));
    assert_eq!(
        config
            .credential_for("registry-1.docker.io")
            .expect("lookup"),
        Some(password("u", "p"))
    );
}

#[test]
fn empty_entries_are_no_credential() {
    // What Docker writes when a helper holds the credential.
    let (_dir, config) = config_with(&json!({
        "auths": { "reg.example": {}, "https://index.docker.io/v1/": { "auth": "" } }
    }));
    assert_eq!(config.credential_for("reg.example").expect("lookup"), None);
    assert_eq!(config.credential_for("docker.io").expect("lookup"), None);
}

#[test]
fn missing_and_empty_files_are_empty_configs() {
    let dir = TempDir::new().expect("tempdir");
    let path = dir.path().join("nowhere").join("config.json");
    let config = DockerConfig::load(&path).expect("missing file");
    assert_eq!(config.path(), path);
    assert_eq!(config.credential_for("docker.io").expect("lookup"), None);

    let empty = dir.path().join("empty.json");
    fs::write(&empty, " \n").expect("write");
    let config = DockerConfig::load(&empty).expect("empty file");
    assert_eq!(config.credential_for("reg.example").expect("lookup"), None);
}

#[test]
fn malformed_files_name_the_path() {
    let dir = TempDir::new().expect("tempdir");
    let path = dir.path().join("config.json");
    for (content, want) in [
        ("{\"auths\": {", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ("{\"auths\": []}", "`auths`"),
        ("{\"credHelpers\": {\"x\": 1}}", "`credHelpers`"),
        ("{\"credsStore\": true}", "`credsStore`"),
    ] {
        fs::write(&path, content).expect("write");
        let err = DockerConfig::load(&path).expect_err(content).to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn bad_auth_entry_is_an_error_without_the_secret() {
    let (dir, config) = config_with(&json!({
        "auths": {
            "bad.example": { "auth": "%%not-base64-s3cret%%" },
            "nocolon.example": { "auth": b64("justuser-s3cret") },
            "good.example": { "auth": b64("u:p") },
        }
    }));
    for host in ["bad.example", "nocolon.example"] {
        let err = config.credential_for(host).expect_err(host).to_string();
        assert!(err.contains(host), "{err}");
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
    // Other registries still work.
    assert_eq!(
        config.credential_for("good.example").expect("lookup"),
        Some(password("u", "p"))
    );
}

#[test]
fn store_and_load_round_trip_preserving_unknown_keys() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, mut config) = config_with(&json!({
        "auths": {
            "keep.example": { "auth": b64("k:k") },
            "https://reg.example/v2/": { "auth": b64("stale:stale") },
        },
        "proxies": { "default": { "httpProxy": "http://proxy:3128" } },
        "currentContext": "colima",
        "psFormat": "table {{.ID}}",
    }));
    config
        .store_credential("reg.example", &password("alice", "pw"))
        .expect("store");
    config
        .store_credential(
            "docker.io",
            &Credential {
                username: "hub".into(),
                secret: Secret::IdentityToken("idtok".into()),
            },
        )
        .expect("store hub");

    let path = config.path().to_path_buf();
    let mode = fs::metadata(&path).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let json = read_json(&path);
    assert_eq!(json["currentContext"], "colima");
    assert_eq!(json["psFormat"], "table {{.ID}}");
    assert_eq!(json["proxies"]["default"]["httpProxy"], "http://proxy:3128");
    assert_eq!(
        json["auths"]["reg.example"],
        json!({ "auth": b64("alice:pw") })
    );
    assert_eq!(
        json["auths"][DOCKER_HUB_KEY],
        json!({ "auth": b64("hub:"), "identitytoken": "idtok" })
    );
    // The stale URL-shaped entry for the same registry is gone.
    assert!(json["auths"].get("https://reg.example/v2/").is_none());

    let reloaded = DockerConfig::load(&path).expect("reload");
    assert_eq!(
        reloaded.credential_for("reg.example").expect("lookup"),
        Some(password("alice", "pw"))
    );
    assert_eq!(
        reloaded.credential_for("keep.example").expect("lookup"),
        Some(password("k", "k"))
    );
    assert_eq!(
        reloaded
            .credential_for("registry-1.docker.io")
            .expect("lookup"),
        Some(Credential {
            username: "hub".into(),
            secret: Secret::IdentityToken("idtok".into()),
        })
    );
    // No temporary files left behind.
    let leftovers: Vec<_> = fs::read_dir(path.parent().expect("parent"))
        .expect("readdir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn store_creates_missing_directory_and_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new().expect("tempdir");
    let path = dir.path().join("docker").join("config.json");
    let mut config = DockerConfig::load(&path).expect("missing is empty");
    config
        .store_credential("localhost:5000", &password("u", "p"))
        .expect("store");
    assert_eq!(
        fs::metadata(&path).expect("stat").permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        DockerConfig::load(&path)
            .expect("reload")
            .credential_for("localhost:5000")
            .expect("lookup"),
        Some(password("u", "p"))
    );
}

#[test]
fn save_through_a_symlink_keeps_the_link() {
    let dir = TempDir::new().expect("tempdir");
    let real = dir.path().join("real.json");
    fs::write(&real, "{}").expect("write");
    let link = dir.path().join("config.json");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    let mut config = DockerConfig::load(&link).expect("load");
    config
        .store_credential("reg.example", &password("u", "p"))
        .expect("store");
    assert!(fs::symlink_metadata(&link)
        .expect("lstat")
        .file_type()
        .is_symlink());
    assert_eq!(read_json(&real)["auths"]["reg.example"]["auth"], b64("u:p"));
}

#[test]
fn erase() {
    let (_dir, mut config) = config_with(&json!({
        "auths": {
            "reg.example": { "auth": b64("a:1") },
            "https://reg.example": { "auth": b64("b:2") },
            "other.example": { "auth": b64("c:3") },
        },
        "currentContext": "default",
    }));
    assert!(config.erase_credential("reg.example").expect("erase"));
    assert!(!config.erase_credential("reg.example").expect("erase again"));
    assert!(!config
        .erase_credential("never.example")
        .expect("erase none"));

    let reloaded = DockerConfig::load(config.path()).expect("reload");
    assert_eq!(
        reloaded.credential_for("reg.example").expect("lookup"),
        None
    );
    assert_eq!(
        reloaded.credential_for("other.example").expect("lookup"),
        Some(password("c", "3"))
    );
    assert_eq!(read_json(config.path())["currentContext"], "default");
}

#[test]
fn erase_docker_hub_by_alias() {
    let (_dir, mut config) = config_with(&json!({
        "auths": { DOCKER_HUB_KEY: { "auth": b64("u:p") } }
    }));
    assert!(config.erase_credential("docker.io").expect("erase"));
    assert_eq!(
        config.credential_for("index.docker.io").expect("lookup"),
        None
    );
}

#[test]
fn helper_get_password_and_token() {
    let dir = TempDir::new().expect("tempdir");
    let bin = write_helper(dir.path(), "fake", RECORDING_HELPER);
    let (_cfg_dir, config) = config_with(&json!({
        "credHelpers": { "reg.example": "fake" },
        "auths": { "reg.example": { "auth": b64("file:file") } },
    }));
    let config = config.with_helper_search_path(&bin);

    fs::write(
        bin.join("answer.json"),
        r#"{"ServerURL":"reg.example","Username":"alice","Secret":"s3cret"}"#,
    )
    .expect("answer");
    assert_eq!(
        config.credential_for("reg.example").expect("lookup"),
        Some(password("alice", "s3cret"))
    );
    assert_eq!(
        fs::read_to_string(bin.join("get-input")).expect("input"),
        "reg.example"
    );

    fs::write(
        bin.join("answer.json"),
        r#"{"ServerURL":"reg.example","Username":"<token>","Secret":"refresh"}"#,
    )
    .expect("answer");
    assert_eq!(
        config.credential_for("reg.example").expect("lookup"),
        Some(Credential {
            username: String::new(),
            secret: Secret::IdentityToken("refresh".into()),
        })
    );
}

#[test]
fn helper_not_found_falls_back_to_auths() {
    let dir = TempDir::new().expect("tempdir");
    let bin = write_helper(
        dir.path(),
        "fake",
        "cat >/dev/null\necho 'credentials not found in native keychain'\nexit 1\n",
    );
    let (_cfg_dir, config) = config_with(&json!({
        "credsStore": "fake",
        "auths": { "reg.example": { "auth": b64("file:pw") } },
    }));
    let config = config.with_helper_search_path(&bin);
    assert_eq!(
        config.credential_for("reg.example").expect("lookup"),
        Some(password("file", "pw"))
    );
    assert_eq!(config.credential_for("none.example").expect("lookup"), None);
}

#[test]
fn creds_store_gets_docker_hub_key() {
    let dir = TempDir::new().expect("tempdir");
    let bin = write_helper(dir.path(), "desk", RECORDING_HELPER);
    fs::write(
        bin.join("answer.json"),
        r#"{"ServerURL":"https://index.docker.io/v1/","Username":"hub","Secret":"pw"}"#,
    )
    .expect("answer");
    let (_cfg_dir, config) = config_with(&json!({ "credsStore": "desk" }));
    let config = config.with_helper_search_path(&bin);
    assert_eq!(
        config
            .credential_for("registry-1.docker.io")
            .expect("lookup"),
        Some(password("hub", "pw"))
    );
    assert_eq!(
        fs::read_to_string(bin.join("get-input")).expect("input"),
        DOCKER_HUB_KEY
    );
}

#[test]
fn cred_helpers_entry_overrides_creds_store() {
    let dir = TempDir::new().expect("tempdir");
    write_helper(dir.path(), "store", RECORDING_HELPER);
    let bin = write_helper(
        dir.path(),
        "special",
        "cat >/dev/null\necho '{\"Username\":\"special\",\"Secret\":\"x\"}'\n",
    );
    fs::write(
        bin.join("answer.json"),
        r#"{"Username":"store","Secret":"y"}"#,
    )
    .expect("answer");
    let (_cfg_dir, config) = config_with(&json!({
        "credsStore": "store",
        // URL-shaped credHelpers keys match too; "" means no helper.
        "credHelpers": { "https://special.example": "special", "plain.example": "" },
        "auths": { "plain.example": { "auth": b64("plain:z") } },
    }));
    let config = config.with_helper_search_path(&bin);
    assert_eq!(
        config.credential_for("special.example").expect("lookup"),
        Some(password("special", "x"))
    );
    assert_eq!(
        config.credential_for("other.example").expect("lookup"),
        Some(password("store", "y"))
    );
    assert_eq!(
        config.credential_for("plain.example").expect("lookup"),
        Some(password("plain", "z"))
    );
    // "plain.example" never reached the credsStore helper.
    assert_eq!(
        fs::read_to_string(bin.join("get-input")).expect("input"),
        "other.example"
    );
}

#[test]
fn helper_failure_names_helper_and_output() {
    let dir = TempDir::new().expect("tempdir");
    let bin = write_helper(
        dir.path(),
        "broken",
        "cat >/dev/null\necho 'keychain is locked' >&2\nexit 3\n",
    );
    let (_cfg_dir, config) = config_with(&json!({ "credsStore": "broken" }));
    let config = config.with_helper_search_path(&bin);
    let err = config.credential_for("reg.example").expect_err("fails");
    assert!(
        matches!(err, CredentialError::HelperFailed { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("docker-credential-broken"), "{msg}");
    assert!(msg.contains("keychain is locked"), "{msg}");
    assert!(msg.contains("reg.example"), "{msg}");
}

#[test]
fn helper_garbage_answer_is_an_error_without_the_answer() {
    let dir = TempDir::new().expect("tempdir");
    let bin = write_helper(
        dir.path(),
        "junk",
        "cat >/dev/null\necho '{\"Username\": \"u\", \"Secret\": 12345}'\n",
    );
    let (_cfg_dir, config) = config_with(&json!({ "credsStore": "junk" }));
    let config = config.with_helper_search_path(&bin);
    let err = config.credential_for("reg.example").expect_err("fails");
    let msg = err.to_string();
    assert!(
        matches!(err, CredentialError::HelperResponse { .. }),
        "{msg}"
    );
    assert!(msg.contains("docker-credential-junk"), "{msg}");
    assert!(!msg.contains("12345"), "{msg}");
}

#[test]
fn missing_and_invalid_helpers() {
    let dir = TempDir::new().expect("tempdir");
    let (_cfg_dir, config) = config_with(&json!({
        "credsStore": "absent",
        "credHelpers": { "evil.example": "../../bin/sh" },
    }));
    let config = config.with_helper_search_path(dir.path());
    let err = config.credential_for("reg.example").expect_err("no helper");
    assert!(
        matches!(&err, CredentialError::HelperNotFound { helper } if helper == "absent"),
        "{err:?}"
    );
    assert!(err.to_string().contains("docker-credential-absent"));
    let err = config.credential_for("evil.example").expect_err("bad name");
    assert!(
        matches!(err, CredentialError::InvalidHelperName { .. }),
        "{err:?}"
    );
}

#[test]
fn find_helper_needs_an_executable_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new().expect("tempdir");
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    fs::create_dir_all(&first).expect("mkdir");
    fs::create_dir_all(first.join("docker-credential-x")).expect("a directory");
    fs::create_dir_all(&second).expect("mkdir");
    let plain = second.join("docker-credential-y");
    fs::write(&plain, "").expect("write");
    fs::set_permissions(&plain, fs::Permissions::from_mode(0o644)).expect("chmod");
    let bin = write_helper(dir.path(), "x", "exit 0\n");

    let search = env::join_paths([&first, &second, &bin]).expect("join");
    assert_eq!(
        find_helper("x", Some(&search)),
        Some(bin.join("docker-credential-x"))
    );
    assert_eq!(find_helper("y", Some(&search)), None);
    assert_eq!(find_helper("x", None), None);
}

#[test]
fn store_and_erase_through_helper() {
    let dir = TempDir::new().expect("tempdir");
    let bin = write_helper(dir.path(), "fake", RECORDING_HELPER);
    let (_cfg_dir, config) = config_with(&json!({
        "credHelpers": { "reg.example": "fake" },
        "auths": {
            "reg.example": { "auth": b64("plaintext:old") },
            "other.example": { "auth": b64("o:o") },
        },
        "currentContext": "ctx",
    }));
    let mut config = config.with_helper_search_path(&bin);

    config
        .store_credential("reg.example", &password("alice", "new"))
        .expect("store");
    let sent = read_json(&bin.join("store-input"));
    assert_eq!(
        sent,
        json!({ "ServerURL": "reg.example", "Username": "alice", "Secret": "new" })
    );
    // The plaintext copy is gone from the file; the rest is kept.
    let json = read_json(config.path());
    assert!(json["auths"].get("reg.example").is_none());
    assert_eq!(json["auths"]["other.example"]["auth"], b64("o:o"));
    assert_eq!(json["currentContext"], "ctx");

    config
        .store_credential(
            "reg.example",
            &Credential {
                username: "ignored".into(),
                secret: Secret::IdentityToken("tok".into()),
            },
        )
        .expect("store token");
    assert_eq!(
        read_json(&bin.join("store-input")),
        json!({ "ServerURL": "reg.example", "Username": "<token>", "Secret": "tok" })
    );

    assert!(config.erase_credential("reg.example").expect("erase"));
    assert_eq!(
        fs::read_to_string(bin.join("erase-input")).expect("input"),
        "reg.example"
    );
}

#[test]
fn erase_through_helper_that_has_nothing() {
    let dir = TempDir::new().expect("tempdir");
    let bin = write_helper(
        dir.path(),
        "empty",
        "cat >/dev/null\necho 'credentials not found in native keychain'\nexit 1\n",
    );
    let (_cfg_dir, config) = config_with(&json!({ "credsStore": "empty" }));
    let mut config = config.with_helper_search_path(&bin);
    assert!(!config.erase_credential("reg.example").expect("erase"));
}

#[test]
fn debug_output_is_redacted() {
    let cred = password("alice", "hunter2-s3cret");
    let shown = format!("{cred:?} {cred:#?}");
    assert!(!shown.contains("hunter2-s3cret"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
    assert!(shown.contains("alice"), "{shown}");

    let token = Secret::IdentityToken("tok-s3cret".into());
    let shown = format!("{token:?}");
    assert_eq!(shown, "IdentityToken(<redacted>)");
    assert_eq!(token.expose(), "tok-s3cret");

    let (_dir, config) = config_with(&json!({
        "auths": { "reg.example": { "auth": b64("u:hunter2-s3cret") } }
    }));
    let shown = format!("{config:?}");
    assert!(!shown.contains(&b64("u:hunter2-s3cret")), "{shown}");
    assert!(shown.contains("auths"), "{shown}");
}
