//! `kiln import`: busybox's root filesystem as a plain, gzip, zstd, xz and bzip2
//! tarball becomes a one-layer image (the same diff id as busybox's own
//! layer) that `kiln build` runs a step in; `--change` of every kind
//! shows in `kiln inspect`; `-` reads stdin and a URL is fetched from a
//! loopback server (a 404 and a stalled one end in one line); hostile tars and unsupported changes are refused in
//! one line, leaving no image.

mod common;

use common::{s, Env, BUSYBOX};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;

/// busybox's layer, uncompressed (a root filesystem tar).
fn busybox_tar() -> Vec<u8> {
    let hex = kiln_test_support::BUSYBOX_LAYER
        .strip_prefix("sha256:")
        .expect("sha256");
    let blob = std::fs::read(format!("{BUSYBOX}/blobs/sha256/{hex}")).expect("busybox layer");
    let mut tar = Vec::new();
    flate2::read::MultiGzDecoder::new(&blob[..])
        .read_to_end(&mut tar)
        .expect("gunzip");
    tar
}

/// busybox's layer diff id, from its config.
fn busybox_diff_id(env: &Env) -> String {
    let config = inspect(env, "busybox");
    config["Config"]["rootfs"]["diff_ids"][0]
        .as_str()
        .expect("diff id")
        .to_string()
}

fn inspect(env: &Env, name: &str) -> serde_json::Value {
    let (out, _) = env.ok(&["inspect", name], None);
    serde_json::from_str(&out).expect("inspect json")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    w.write_all(data).expect("gzip");
    w.finish().expect("gzip")
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 3).expect("zstd")
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut w = xz2::write::XzEncoder::new(Vec::new(), 1);
    w.write_all(data).expect("xz");
    w.finish().expect("xz")
}

fn bzip2(data: &[u8]) -> Vec<u8> {
    let mut w = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    w.write_all(data).expect("bzip2");
    w.finish().expect("bzip2")
}

fn write(env: &Env, name: &str, data: &[u8]) -> PathBuf {
    let path = env.path(name);
    std::fs::write(&path, data).expect("write tarball");
    path
}

#[test]
fn every_compression_makes_busybox_s_layer_and_builds_from_it() {
    let env = Env::new();
    let tar = busybox_tar();
    let expected = busybox_diff_id(&env);
    let mut ids = Vec::new();
    for (kind, data) in [
        ("tar", tar.clone()),
        ("tar.gz", gzip(&tar)),
        ("tar.zst", zstd(&tar)),
        ("tar.xz", xz(&tar)),
        ("tar.bz2", bzip2(&tar)),
    ] {
        let file = write(&env, &format!("rootfs.{kind}"), &data);
        let name = format!("imported:{}", kind.replace('.', "-"));
        let (out, _) = env.ok(&["import", s(&file), "-t", &name], None);
        let id = out.trim().to_string();
        assert!(id.starts_with("sha256:") && id.len() == 71, "{out}");
        let config = inspect(&env, &name);
        assert_eq!(config["Digest"], id.as_str(), "{kind}: the printed id");
        assert_eq!(
            config["Config"]["rootfs"]["diff_ids"],
            serde_json::json!([expected]),
            "{kind}: the uncompressed tar is busybox's layer"
        );
        assert_eq!(
            config["Config"]["history"][0]["comment"],
            format!("Imported from {}", s(&file)).as_str()
        );
        assert!(config["Config"]["config"]["Env"].is_null(), "no PATH added");
        ids.push(id);
    }
    assert!(env.images().contains("imported"), "{}", env.images());

    // A build runs a step in the imported image.
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM imported:tar-xz\nRUN echo ran in $(busybox | head -1 | cut -d' ' -f1) > /ran.txt\n",
        )],
    );
    let out = env.path("out");
    env.ok(&["build", "-o", s(&out), s(&ctx)], None);
    let ran = std::fs::read_to_string(out.join("ran.txt")).expect("ran.txt");
    assert_eq!(ran.trim(), "ran in BusyBox");
}

#[test]
fn changes_of_every_kind_show_in_inspect() {
    let env = Env::new();
    let file = write(&env, "rootfs.tar.gz", &gzip(&busybox_tar()));
    env.ok(
        &[
            "import",
            s(&file),
            "changed:1",
            "--change",
            "ENV A=1 B=two",
            "-c",
            "ENV C=${A}x",
            "-c",
            "CMD [\"sh\", \"-c\", \"echo hi\"]",
            "-c",
            "ENTRYPOINT [\"/bin/busybox\"]",
            "-c",
            "EXPOSE 80 53/udp",
            "-c",
            "LABEL org.example=\"a b\"",
            "-c",
            "ONBUILD RUN echo child",
            "-c",
            "STOPSIGNAL SIGTERM",
            "-c",
            "USER 1000:1000",
            "-c",
            "VOLUME /data",
            "-c",
            "WORKDIR /srv/app",
            "-m",
            "from a test",
            "--platform",
            "linux/arm64",
        ],
        None,
    );
    let v = inspect(&env, "changed:1");
    let c = &v["Config"]["config"];
    assert_eq!(c["Env"], serde_json::json!(["A=1", "B=two", "C=1x"]), "{v}");
    assert_eq!(c["Cmd"], serde_json::json!(["sh", "-c", "echo hi"]));
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/busybox"]));
    assert_eq!(
        c["ExposedPorts"],
        serde_json::json!({"80/tcp": {}, "53/udp": {}})
    );
    assert_eq!(c["Labels"], serde_json::json!({"org.example": "a b"}));
    assert_eq!(c["OnBuild"], serde_json::json!(["RUN echo child"]));
    assert_eq!(c["StopSignal"], "SIGTERM");
    assert_eq!(c["User"], "1000:1000");
    assert_eq!(c["Volumes"], serde_json::json!({"/data": {}}));
    assert_eq!(c["WorkingDir"], "/srv/app");
    assert_eq!(v["Config"]["architecture"], "arm64");
    assert_eq!(
        v["Config"]["history"],
        serde_json::json!([{"comment": "from a test", "created": v["Config"]["created"]}])
    );

    // Instructions docker import does not take, one line naming --change.
    for bad in ["RUN echo x", "FROM busybox", "COPY a b", "HEALTHCHECK NONE"] {
        let err = env.fails(&["import", s(&file), "-c", bad], None);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            err.contains("--change") && err.contains(bad),
            "{bad}: {err}"
        );
    }
    let err = env.fails(&["import", s(&file), "-c", "CMD a\nUSER b"], None);
    assert!(err.contains("one instruction per --change"), "{err}");
    let err = env.fails(&["import", s(&file), "--platform", "linux/"], None);
    assert!(err.contains("--platform"), "{err}");
    let err = env.fails(&["import", s(&env.path("missing.tar"))], None);
    assert!(err.contains("missing.tar"), "{err}");
}

/// Serves `body` to every GET (404 for paths other than `/rootfs`).
fn serve(body: Vec<u8>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let body = body.clone();
            std::thread::spawn(move || respond(stream, &body));
        }
    });
    port
}

fn respond(mut stream: TcpStream, body: &[u8]) {
    let mut reader = BufReader::new(&stream);
    let mut first = String::new();
    let _ = reader.read_line(&mut first);
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
        line.clear();
    }
    if first.starts_with("GET /hold ") {
        // Headers never come: kiln's deadline must end the wait.
        std::thread::sleep(std::time::Duration::from_secs(30));
        return;
    }
    if first.starts_with("GET /rootfs ") {
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(body);
    } else {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
}

#[test]
fn stdin_and_urls() {
    let env = Env::new();
    let tar = busybox_tar();
    let expected = busybox_diff_id(&env);
    let (out, _) = env.ok(&["import", "-", "-t", "from-stdin"], Some(&zstd(&tar)));
    let v = inspect(&env, "from-stdin");
    assert_eq!(v["Digest"], out.trim());
    assert_eq!(v["Config"]["rootfs"]["diff_ids"][0], expected.as_str());
    assert_eq!(v["Config"]["history"][0]["comment"], "Imported from -");

    let port = serve(xz(&tar));
    let url = format!("http://127.0.0.1:{port}/rootfs");
    env.ok(&["import", &url, "from-url:v1"], None);
    let v = inspect(&env, "from-url:v1");
    assert_eq!(v["Config"]["rootfs"]["diff_ids"][0], expected.as_str());
    assert_eq!(
        v["Config"]["history"][0]["comment"],
        format!("Imported from {url}").as_str()
    );
    let missing = format!("http://127.0.0.1:{port}/nothing");
    let err = env.fails(&["import", &missing], None);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(&missing) && err.contains("404"), "{err}");
    // The download has a deadline (KILN_GIT_TIMEOUT, as context URLs).
    let hold = format!("http://127.0.0.1:{port}/hold");
    let out = env.run_env(&["import", &hold], None, &[("KILN_GIT_TIMEOUT", "1")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&hold) && err.contains("not downloaded within 1s"),
        "{err}"
    );
}

/// A tar whose single member has the raw name `name` (the `tar` crate's
/// builder refuses to write `..`), then a regular file.
fn raw_tar(name: &[u8], kind: tar::EntryType, link: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_old();
    {
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        old.linkname[..link.len()].copy_from_slice(link);
    }
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    let data: &[u8] = if kind == tar::EntryType::Regular {
        b"evil"
    } else {
        b""
    };
    header.set_size(data.len() as u64);
    header.set_cksum();
    builder.append(&header, data).expect("append");
    builder.into_inner().expect("tar")
}

#[test]
fn hostile_tars_are_refused_and_leave_no_image() {
    let env = Env::new();
    let before = env.images();
    let blobs = |env: &Env| {
        std::fs::read_dir(env.path("store/blobs/sha256"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let blobs_before = blobs(&env);
    let escape = raw_tar(b"../escape", tar::EntryType::Regular, b"");
    let deep = raw_tar(b"a/../../b", tar::EntryType::Regular, b"");
    let link = raw_tar(b"hard", tar::EntryType::Link, b"../../etc/passwd");
    // A symlink, then a file written through it.
    let through = kiln_test_support::TarBuilder::new()
        .symlink("etc", "/tmp")
        .file("etc/owned", 0o644, b"evil")
        .into_bytes();
    for (what, tar) in [
        ("..", escape),
        ("a/../..", deep),
        ("hardlink ..", link),
        ("through a symlink", through),
    ] {
        let file = write(&env, "hostile.tar.gz", &gzip(&tar));
        let err = env.fails(&["import", s(&file), "-t", "hostile"], None);
        assert_eq!(err.trim().lines().count(), 1, "{what}: {err}");
        assert!(
            err.contains("hostile.tar.gz")
                && (err.contains("escapes the layer directory") || err.contains("not a directory")),
            "{what}: {err}"
        );
    }
    assert!(!std::path::Path::new("/tmp/owned").exists());
    assert_eq!(env.images(), before, "no image");
    assert_eq!(blobs(&env), blobs_before, "no blob left behind");

    // An absolute name lands below the root, as in any layer.
    let mut abs = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..10].copy_from_slice(b"/abs/file\0");
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(2);
    header.set_cksum();
    abs.append(&header, &b"ok"[..]).expect("append");
    let file = write(&env, "abs.tar", &abs.into_inner().expect("tar"));
    env.ok(&["import", s(&file), "-t", "abs"], None);
    let out = env.path("abs-out");
    let ctx = env.context("abs-ctx", &[("Dockerfile", "FROM abs\n")]);
    env.ok(&["build", "-o", s(&out), s(&ctx)], None);
    assert_eq!(
        std::fs::read_to_string(out.join("abs/file")).expect("abs/file"),
        "ok"
    );
}
