//! Building one case with `kiln build` and comparing the result with its
//! `expected/` files.

use crate::apply::Rootfs;
use crate::case::Case;
use crate::listing::{mask_whiteout, Listing};
use crate::{config, diff, http, layout};
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// At most this many differing lines are shown per file.
const DIFF_LINES: usize = 20;

/// What the suite runs against.
pub struct Tools {
    /// The `kiln` binary under test.
    pub kiln: PathBuf,
    /// `shared/bases`, holding the `busybox` and `busybox-onbuild` layouts.
    pub bases: PathBuf,
    /// How long one kiln command may take.
    pub timeout: Duration,
}

/// The result of one case.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Why the case failed (each a block of report text); empty = passed.
    pub problems: Vec<String>,
    /// `created_by`/`comment` differences: reported, never a failure.
    pub history_text: Vec<String>,
    /// Extra information, e.g. whether an error message matched.
    pub note: Option<String>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }

    fn failed(problem: String) -> Outcome {
        Outcome {
            problems: vec![problem],
            ..Outcome::default()
        }
    }
}

/// Builds `case` in a fresh temp dir and store, and compares.
pub fn run_case(case: &Case, tools: &Tools) -> Outcome {
    try_run(case, tools).unwrap_or_else(Outcome::failed)
}

fn try_run(case: &Case, tools: &Tools) -> Result<Outcome, String> {
    let tmp = tempfile::Builder::new()
        .prefix(&format!("kiln-conformance-{}-", case.name))
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let copy = tmp.path().join("case");
    case.prepare(&copy)
        .map_err(|e| format!("copying the case: {e}"))?;
    let kiln = Kiln::new(tools, tmp.path())?;

    for (layout, name) in [
        ("busybox", "busybox:latest"),
        ("busybox-onbuild", "busybox-onbuild:latest"),
    ] {
        let dir = tools.bases.join(layout);
        let run = kiln.run(vec![
            "load".into(),
            "-i".into(),
            dir.into(),
            "-t".into(),
            name.into(),
        ])?;
        if !run.status.success() {
            return Err(format!(
                "`kiln load` of {name} failed ({}):\n{}",
                run.status,
                tail(&run.stderr, 10)
            ));
        }
    }

    let server = match &case.spec.http {
        Some(h) => Some(
            http::Server::start(h.port, copy.join(&h.root))
                .map_err(|e| format!("HTTP server on port {}: {e}", h.port))?,
        ),
        None => None,
    };
    let out_dir = tmp.path().join("out");
    let run = kiln.run(build_args(case, &copy, &out_dir))?;
    drop(server);

    if case.expects_error() {
        Ok(check_error(case, &run, &out_dir))
    } else if !run.status.success() {
        Err(format!(
            "kiln build failed ({}):\n{}",
            run.status,
            tail(&run.stderr, 20)
        ))
    } else {
        check_success(case, &out_dir)
    }
}

/// The `kiln build` command line, mirroring gen-goldens' buildx call.
fn build_args(case: &Case, copy: &Path, out_dir: &Path) -> Vec<OsString> {
    let context = copy.join("context");
    let spec = &case.spec;
    let mut args: Vec<OsString> = vec!["build".into(), "-f".into()];
    args.push(context.join(case.dockerfile()).into());
    for (key, value) in &spec.build_args {
        args.push("--build-arg".into());
        args.push(format!("{key}={value}").into());
    }
    if let Some(target) = &spec.target {
        args.push("--target".into());
        args.push(target.into());
    }
    for (id, file) in &spec.secrets {
        args.push("--secret".into());
        args.push(format!("id={id},src={}", copy.join(file).display()).into());
    }
    args.extend(spec.extra_flags.iter().map(OsString::from));
    args.push("--no-cache".into());
    args.push("--output".into());
    args.push(format!("type=oci,dest={},tar=false", out_dir.display()).into());
    args.push(context.into());
    args
}

/// An error case: non-zero exit, no panic, no image; the wording of the
/// message is only reported.
fn check_error(case: &Case, run: &Run, out_dir: &Path) -> Outcome {
    let stderr = String::from_utf8_lossy(&run.stderr);
    let mut problems = Vec::new();
    if run.status.success() {
        problems.push("expected an error, but kiln build exited 0".to_string());
    }
    if stderr.contains("panicked") {
        problems.push("kiln panicked".to_string());
    }
    if run.status.code() == Some(2) && stderr.contains("Usage:") {
        // A clap usage error means kiln rejected the command line itself,
        // not the Dockerfile: the case was not really exercised.
        problems.push("kiln rejected the command line (usage error)".to_string());
    }
    if out_dir.join("index.json").exists() {
        problems.push("an image was written although the build failed".to_string());
    }
    if !problems.is_empty() {
        problems.push(format!("stderr:\n{}", tail(&run.stderr, 10)));
    }
    let wanted = case.spec.error.as_deref().unwrap_or("");
    let matched = if stderr.contains(wanted) { "yes" } else { "no" };
    Outcome {
        problems,
        history_text: Vec::new(),
        note: Some(format!("message contains {wanted:?}: {matched}")),
    }
}

/// A success case: compare config.json, layers.txt and rootfs.txt.
pub fn check_success(case: &Case, out_dir: &Path) -> Result<Outcome, String> {
    let expected = case.dir.join("expected");
    let image = layout::read_image(out_dir).map_err(|e| format!("reading the output: {e}"))?;
    let mut outcome = Outcome::default();

    let actual_config = config::normalise(&image.config);
    let expected_config: serde_json::Value = serde_json::from_str(&read(&expected, "config.json")?)
        .map_err(|e| format!("expected/config.json: {e}"))?;
    report(
        &mut outcome.problems,
        "config.json",
        diff::diff(
            &config::strict_lines(&expected_config, &expected_config),
            &config::strict_lines(&actual_config, &expected_config),
            DIFF_LINES,
        ),
    );
    report(
        &mut outcome.history_text,
        "history text",
        diff::diff(
            &config::history_lines(&expected_config),
            &config::history_lines(&actual_config),
            DIFF_LINES,
        ),
    );

    let mut layers = Vec::new();
    for (blob, diff_id) in image.layers.iter().zip(&image.diff_ids) {
        layers.push(layout::read_layer(blob, diff_id)?);
    }

    // layers.txt: a layer is "base" when its diff_id is the digest that
    // the expected header names.
    let expected_layers = lines(&read(&expected, "layers.txt")?);
    let bases = base_digests(&expected_layers);
    let mut actual_layers = Vec::new();
    for (i, (members, diff_id)) in layers.iter().zip(&image.diff_ids).enumerate() {
        if bases.get(i).and_then(Option::as_deref) == Some(diff_id.as_str()) {
            actual_layers.push(format!("# layer {i} {diff_id} base"));
        } else {
            actual_layers.push(format!("# layer {i}"));
            actual_layers.extend(Listing::of_layer(members).render());
        }
    }
    let masked = |l: &[String]| l.iter().map(|x| mask_whiteout(x)).collect::<Vec<_>>();
    report(
        &mut outcome.problems,
        "layers.txt",
        diff::diff(
            &masked(&expected_layers),
            &masked(&actual_layers),
            DIFF_LINES,
        ),
    );

    let mut rootfs = Rootfs::default();
    for (i, members) in layers.iter().enumerate() {
        rootfs
            .apply(members)
            .map_err(|e| format!("applying layer {i}: {e}"))?;
    }
    report(
        &mut outcome.problems,
        "rootfs.txt",
        diff::diff(
            &lines(&read(&expected, "rootfs.txt")?),
            &rootfs.render(),
            DIFF_LINES,
        ),
    );
    Ok(outcome)
}

/// For each `# layer N` header of a layers.txt, the digest it names when
/// it is a base layer.
pub fn base_digests(layers_txt: &[String]) -> Vec<Option<String>> {
    layers_txt
        .iter()
        .filter(|l| l.starts_with("# layer "))
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            match words.as_slice() {
                ["#", "layer", _, digest, "base"] => Some(digest.to_string()),
                _ => None,
            }
        })
        .collect()
}

/// Adds a titled diff block when the diff is not empty.
fn report(into: &mut Vec<String>, title: &str, diff: Vec<String>) {
    if !diff.is_empty() {
        let body: Vec<String> = diff.iter().map(|l| format!("    {l}")).collect();
        into.push(format!(
            "{title} (- expected, + kiln):\n{}",
            body.join("\n")
        ));
    }
}

fn read(dir: &Path, name: &str) -> Result<String, String> {
    fs::read_to_string(dir.join(name)).map_err(|e| format!("expected/{name}: {e}"))
}

pub fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

/// The last `n` lines of some output, indented.
fn tail(bytes: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(n);
    all[start..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A finished kiln command.
struct Run {
    status: ExitStatus,
    stderr: Vec<u8>,
}

/// kiln with a private store and empty Docker/XDG config dirs.
struct Kiln<'a> {
    tools: &'a Tools,
    root: PathBuf,
}

impl<'a> Kiln<'a> {
    fn new(tools: &'a Tools, root: &Path) -> Result<Kiln<'a>, String> {
        for dir in ["docker", "xdg"] {
            fs::create_dir_all(root.join(dir)).map_err(|e| e.to_string())?;
        }
        Ok(Kiln {
            tools,
            root: root.to_path_buf(),
        })
    }

    /// Runs kiln with a timeout; stdout is discarded.
    fn run(&self, args: Vec<OsString>) -> Result<Run, String> {
        let mut child = Command::new(&self.tools.kiln)
            .args(&args)
            .env("KILN_ROOT", self.root.join("store"))
            .env("DOCKER_CONFIG", self.root.join("docker"))
            .env("XDG_CONFIG_HOME", self.root.join("xdg"))
            .env_remove("KILN_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", self.tools.kiln.display()))?;
        let mut pipe = child.stderr.take().expect("stderr is piped");
        let reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        });
        let deadline = Instant::now() + self.tools.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "kiln {} timed out after {:?}",
                        show(&args),
                        self.tools.timeout
                    ));
                }
                Err(e) => return Err(format!("waiting for kiln: {e}")),
            }
        };
        let stderr = reader.join().unwrap_or_default();
        Ok(Run { status, stderr })
    }
}

fn show(args: &[OsString]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
