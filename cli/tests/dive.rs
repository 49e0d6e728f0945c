//! `kiln dive` and `kiln diff` on images the real `kiln build` makes from
//! busybox: dive's numbers in `--json`, `--ci` around its thresholds, the
//! `.dive-ci` file, the files `kiln diff` reports, and the explorer in a
//! real terminal (tmux).

mod common;

use common::{s, Env};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const MIB: usize = 1024 * 1024;

/// Bytes that do not repeat (so no layer compresses them away), by seed.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Builds `tag` from busybox: a 1 MiB file written to /data, then written
/// over by another 1 MiB.
fn build_wasteful(env: &Env, tag: &str) {
    let ctx = env.context(
        "wasteful",
        &[(
            "Dockerfile",
            "FROM busybox\nCOPY one /data\nCOPY two /data\n",
        )],
    );
    std::fs::write(ctx.join("one"), noise(MIB, 1)).expect("write");
    std::fs::write(ctx.join("two"), noise(MIB, 2)).expect("write");
    env.ok(&["build", "-t", tag, "--progress", "plain", s(&ctx)], None);
}

fn dive_json(env: &Env, image: &str) -> Value {
    let (out, _) = env.ok(&["dive", image, "--json"], None);
    serde_json::from_str(&out).expect("dive --json prints JSON")
}

#[test]
fn json_counts_a_file_written_twice_as_dive_does() {
    let env = Env::new();
    build_wasteful(&env, "waste:1");
    let json = dive_json(&env, "waste:1");
    let image = &json["image"];
    // dive counts every copy of a path written more than once.
    assert_eq!(image["inefficientBytes"], 2 * MIB as u64, "{image}");
    let files = image["fileReference"].as_array().expect("files");
    assert_eq!(files.len(), 1, "{image}");
    assert_eq!(files[0]["file"], "/data");
    assert_eq!(files[0]["count"], 2);
    assert_eq!(files[0]["sizeBytes"], 2 * MIB as u64);
    let layers = json["layer"].as_array().expect("layers");
    assert_eq!(layers.len(), 3);
    assert_eq!(layers[1]["sizeBytes"], MIB as u64);
    assert!(
        layers[1]["command"]
            .as_str()
            .expect("command")
            .contains("COPY one /data"),
        "{}",
        layers[1]
    );
    assert_eq!(layers[2]["changed"], 1);
    assert_eq!(layers[2]["added"], 0);
    // The efficiency: what each path needs at least over all written.
    let base = layers[0]["sizeBytes"].as_u64().expect("base size");
    let expected = (base + MIB as u64) as f64 / (base + 2 * MIB as u64) as f64;
    let got = image["efficiencyScore"].as_f64().expect("score");
    assert!((got - expected).abs() < 1e-9, "{got} != {expected}");
    assert_eq!(image["userSizeBytes"], 2 * MIB as u64);
    assert_eq!(image["userWastedPercent"], 1.0);

    // --json FILE writes the same analysis to the file.
    let file = env.path("analysis.json");
    let (out, _) = env.ok(&["dive", "waste:1", "--json", s(&file)], None);
    assert!(out.is_empty(), "{out}");
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("file")).expect("JSON");
    assert_eq!(written, json);
}

#[test]
fn ci_fails_exactly_past_each_threshold() {
    let env = Env::new();
    build_wasteful(&env, "waste:1");
    let ci = |rules: &[&str]| {
        let mut args = vec!["dive", "waste:1", "--ci"];
        args.extend_from_slice(rules);
        let out = env.run(&args, None);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let off = [
        "--lowest-efficiency",
        "disabled",
        "--highest-user-wasted-percent",
        "disabled",
    ];
    // 2 MiB wasted: 2MiB is not above, 2MB (2,000,000) is.
    let (code, out) = ci(&[&off[..], &["--highest-wasted-bytes", "2MiB"]].concat());
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("PASS: highestWastedBytes"), "{out}");
    assert!(out.contains("SKIP: lowestEfficiency"), "{out}");
    assert!(out.contains("Result:PASS"), "{out}");
    let (code, out) = ci(&[&off[..], &["--highest-wasted-bytes", "2MB"]].concat());
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAIL: highestWastedBytes"), "{out}");
    assert!(out.contains("Result:FAIL"), "{out}");
    // Wasted over user bytes is exactly 1.0 here.
    let (code, _) = ci(&[
        "--lowest-efficiency",
        "disabled",
        "--highest-user-wasted-percent",
        "1.0",
    ]);
    assert_eq!(code, Some(0));
    let (code, out) = ci(&[
        "--lowest-efficiency",
        "disabled",
        "--highest-user-wasted-percent",
        "0.99",
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAIL: highestUserWastedPercent"), "{out}");
    // dive's defaults (0.9 efficiency, 0.1 user wasted) fail this image.
    let (code, out) = ci(&[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAIL: lowestEfficiency"), "{out}");
    // A bad value names its flag.
    let err = env.fails(
        &["dive", "waste:1", "--ci", "--highest-wasted-bytes", "lots"],
        None,
    );
    assert!(err.contains("--highest-wasted-bytes"), "{err}");
}

/// Runs kiln in `dir` (for `.dive-ci` in the current directory).
fn run_in(env: &Env, dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = env
        .command(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("kiln runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn ci_reads_the_dive_ci_file() {
    let env = Env::new();
    build_wasteful(&env, "waste:1");
    let score = dive_json(&env, "waste:1")["image"]["efficiencyScore"]
        .as_f64()
        .expect("score");
    let dir = env.path("project");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let rules = |lowest: f64| {
        format!(
            "rules:\n  lowestEfficiency: {lowest}\n  highestWastedBytes: 3MB\n  highestUserWastedPercent: disabled\n"
        )
    };
    std::fs::write(dir.join(".dive-ci"), rules(score - 0.01)).expect("write");
    let (code, out, err) = run_in(&env, &dir, &["dive", "waste:1", "--ci"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("PASS: lowestEfficiency"), "{out}");
    assert!(out.contains("PASS: highestWastedBytes"), "{out}");
    assert!(out.contains("SKIP: highestUserWastedPercent"), "{out}");
    std::fs::write(dir.join(".dive-ci"), rules(score + 0.01)).expect("write");
    let (code, out, _) = run_in(&env, &dir, &["dive", "waste:1", "--ci"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAIL: lowestEfficiency"), "{out}");
    // A flag wins over the file.
    let (code, out, _) = run_in(
        &env,
        &dir,
        &["dive", "waste:1", "--ci", "--lowest-efficiency", "0.1"],
    );
    assert_eq!(code, Some(0), "{out}");
    // --ci-config names another file; a broken one fails with its place.
    let other = env.path("strict.yaml");
    std::fs::write(&other, "rules:\n  highestWastedBytes: 1KB\n").expect("write");
    let (code, out, _) = run_in(
        &env,
        &dir,
        &["dive", "waste:1", "--ci", "--ci-config", s(&other)],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAIL: highestWastedBytes"), "{out}");
    std::fs::write(&other, "rules:\n  lowestEfficiency: [0.5\n").expect("write");
    let (code, _, err) = run_in(
        &env,
        &dir,
        &["dive", "waste:1", "--ci", "--ci-config", s(&other)],
    );
    assert_eq!(code, Some(1));
    assert!(err.contains(&format!("{}:", s(&other))), "{err}");
}

#[test]
fn without_a_terminal_the_explorer_asks_for_ci_or_json() {
    let env = Env::new();
    let err = env.fails(&["dive", "busybox"], None);
    assert!(
        err.contains("needs a terminal") && err.contains("--ci") && err.contains("--json"),
        "{err}"
    );
}

/// The paths of one kind in `kiln diff --json`.
fn paths(json: &Value, kind: &str) -> Vec<String> {
    json[kind]
        .as_array()
        .expect("list")
        .iter()
        .map(|e| e["path"].as_str().expect("path").to_string())
        .collect()
}

#[test]
fn diff_shows_exactly_the_files_added_removed_and_changed() {
    let env = Env::new();
    let a = env.context(
        "a",
        &[
            // A RUN step too: both images hold the mount points RUN
            // steps leave (/dev, /proc, /sys).
            (
                "Dockerfile",
                "FROM busybox\nCOPY a.txt keep.txt /files/\nRUN true\n",
            ),
            ("a.txt", "only in a"),
            ("keep.txt", "version 1"),
        ],
    );
    let b = env.context(
        "b",
        &[
            (
                "Dockerfile",
                "FROM busybox\nCOPY b.txt keep.txt /files/\nRUN rm /etc/group && chmod 600 /etc/passwd\n",
            ),
            ("b.txt", "only in b, longer"),
            ("keep.txt", "version 2"),
        ],
    );
    env.ok(&["build", "-t", "a:1", "--progress", "plain", s(&a)], None);
    env.ok(&["build", "-t", "b:1", "--progress", "plain", s(&b)], None);
    let (out, _) = env.ok(&["diff", "a:1", "b:1", "--json"], None);
    let json: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(paths(&json, "added"), ["/files/b.txt"], "{json}");
    assert_eq!(
        paths(&json, "removed"),
        ["/etc/group", "/files/a.txt"],
        "{json}"
    );
    assert_eq!(
        paths(&json, "changed"),
        ["/etc/passwd", "/files/keep.txt"],
        "{json}"
    );
    let changed = json["changed"].as_array().expect("changed");
    assert_eq!(changed[0]["what"], serde_json::json!(["mode"]));
    // Same size, other bytes: the content hash tells.
    assert_eq!(changed[1]["what"], serde_json::json!(["content"]));
    assert_eq!(json["added"][0]["size"], 17);

    // The table: a letter, the size and the path per line, then totals.
    let (table, _) = env.ok(&["diff", "a:1", "b:1"], None);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("CHANGE"), "{table}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with('A') && l.ends_with("/files/b.txt")),
        "{table}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with('C') && l.ends_with("/files/keep.txt (content)")),
        "{table}"
    );
    assert!(table.contains("1 added (17 B), 2 removed ("), "{table}");

    // Layers: what b's RUN layer did over the layer below it.
    let (out, _) = env.ok(&["diff", "b:1@layer:1", "b:1@layer:2", "--json"], None);
    let json: Value = serde_json::from_str(&out).expect("JSON");
    let added = paths(&json, "added");
    assert!(
        added
            .iter()
            .all(|p| ["/dev", "/proc", "/sys"].contains(&p.as_str())),
        "{json}"
    );
    assert_eq!(paths(&json, "removed"), ["/etc/group"]);
    assert_eq!(paths(&json, "changed"), ["/etc/passwd"]);
    let err = env.fails(&["diff", "b:1@layer:7", "b:1"], None);
    assert!(
        err.contains("b:1@layer:7") && err.contains("3 layers"),
        "{err}"
    );
}

/// A tmux server of the test's own (its socket in the test's temporary
/// directory), killed when dropped.
struct Tmux {
    socket: std::path::PathBuf,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux runs")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "dive"]).stdout)
            .into_owned()
    }

    /// Waits (up to a minute: the machine may be busy) until the screen
    /// holds `text`; returns the screen.
    fn wait_for(&self, text: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let screen = self.screen();
            if screen.contains(text) || std::time::Instant::now() > deadline {
                return screen;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

#[test]
fn the_explorer_runs_in_a_real_terminal() {
    if Command::new("tmux").arg("-V").output().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "tmux is missing (.ci/run installs it)"
        );
        eprintln!("skipping: tmux is not installed");
        return;
    }
    let env = Env::new();
    build_wasteful(&env, "waste:1");
    let tmux = Tmux {
        socket: env.path("tmux.sock"),
    };
    let script = format!(
        "KILN_ROOT={} {} dive waste:1; echo kiln-exited-$?; sleep 600",
        s(&env.path("store")),
        env!("CARGO_BIN_EXE_kiln")
    );
    let out = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "dive",
        "-x",
        "160",
        "-y",
        "40",
        "sh",
        "-c",
        &script,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let screen = tmux.wait_for("q Quit");
    assert!(
        screen.contains("Layers") && screen.contains("COPY one /data"),
        "{screen}"
    );
    assert!(
        screen.contains("Potential wasted space: 2.1 MB"),
        "{screen}"
    );
    // The third layer wrote /data again: marked C, on screen with the
    // changed-only filter.
    tmux.cmd(&["send-keys", "-t", "dive", "Down", "Down", "u"]);
    let screen = tmux.wait_for("[changed only]");
    assert!(
        screen
            .lines()
            .any(|l| l.contains("C -rw") && l.contains("data")),
        "{screen}"
    );
    tmux.cmd(&["send-keys", "-t", "dive", "q"]);
    let screen = tmux.wait_for("kiln-exited-");
    assert!(screen.contains("kiln-exited-0"), "{screen}");
    // The main screen is back: the explorer's frame is gone.
    assert!(!screen.contains("q Quit"), "{screen}");
}

#[test]
fn layouts_and_the_store_read_alike() {
    let env = Env::new();
    let layout = format!("oci-layout://{}", common::BUSYBOX);
    let from_layout = dive_json(&env, &layout);
    let from_store = dive_json(&env, "busybox");
    assert_eq!(from_layout["layer"], from_store["layer"]);
    assert_eq!(
        from_layout["image"]["sizeBytes"],
        from_store["image"]["sizeBytes"]
    );
    // busybox has one layer: the image, the layout and the layer blob by
    // digest hold the same files.
    let blob = from_store["layer"][0]["id"].as_str().expect("layer digest");
    for (a, b) in [("busybox", layout.as_str()), (blob, "busybox")] {
        let (out, _) = env.ok(&["diff", a, b, "--json"], None);
        let json: Value = serde_json::from_str(&out).expect("JSON");
        for kind in ["added", "removed", "changed"] {
            assert_eq!(paths(&json, kind), Vec::<String>::new(), "{a} {b}: {json}");
        }
    }
}

/// Writes an OCI layout at `dir` of one image whose one layer is `tar`.
fn layout_with_layer(dir: &Path, tar: &[u8]) {
    use sha2::{Digest as _, Sha256};
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("mkdir");
    let put = |data: &[u8]| {
        let hex = format!("{:x}", Sha256::digest(data));
        std::fs::write(blobs.join(&hex), data).expect("blob");
        (format!("sha256:{hex}"), data.len())
    };
    let (layer, layer_size) = put(tar);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer]},
        "history": [{"created_by": "hostile"}],
    });
    let (config, config_size) = put(config.to_string().as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layer_size}],
    });
    let (manifest, manifest_size) = put(manifest.to_string().as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest, "size": manifest_size,
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"org.opencontainers.image.ref.name": "latest"},
        }],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).expect("index");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("marker");
}

/// A tar of one empty file whose name is `name` as given (the tar crate
/// refuses `..` in names it sets itself).
fn tar_named(name: &str) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(0);
    header.set_mode(0o644);
    let mut builder = tar::Builder::new(Vec::new());
    if name.len() < 100 {
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_cksum();
        builder.append(&header, &b""[..]).expect("append");
    } else {
        builder
            .append_data(&mut header, name, &b""[..])
            .expect("append");
    }
    builder.into_inner().expect("tar")
}

#[test]
fn hostile_layers_fail_in_one_line() {
    let env = Env::new();
    let deep = "d/".repeat(300) + "f";
    for (name, says) in [
        ("../../etc/passwd", "may not hold `..`"),
        (deep.as_str(), "deeper than 256 directories"),
    ] {
        let dir = env.path("hostile");
        let _ = std::fs::remove_dir_all(&dir);
        layout_with_layer(&dir, &tar_named(name));
        let image = format!("oci-layout://{}", s(&dir));
        for args in [
            vec!["dive", image.as_str(), "--json"],
            vec!["diff", "busybox", image.as_str()],
        ] {
            let err = env.fails(&args, None);
            assert!(err.contains(says), "{err}");
            assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        }
    }
}
