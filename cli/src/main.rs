//! `kiln`: a daemonless container image builder.

mod commands;
mod config;
mod docker_engine;
mod global;
mod located;
mod progress;
mod signals;
mod ssh_agent;
mod table;
mod units;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// kiln builds container images from Dockerfiles, without a daemon.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about)]
struct Cli {
    #[command(flatten)]
    global: global::GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse a Dockerfile and print what kiln understood, with positions.
    Parse(commands::parse::ParseArgs),
    /// Lint Dockerfiles: hadolint's rules and BuildKit's checks.
    Lint(Box<commands::lint::LintArgs>),
    /// Build an image from a Dockerfile.
    Build(Box<commands::build::BuildArgs>),
    /// BuildKit's `buildctl build` syntax, run as the `kiln build` it
    /// means (for scripts written for buildctl).
    Buildctl(commands::buildctl::BuildctlArgs),
    /// Build several targets of bake or compose files as one graph.
    Bake(Box<commands::bake::BakeArgs>),
    /// List, show, trace or remove the records of past builds (as
    /// `docker buildx history`).
    Builds(commands::builds::BuildsArgs),
    /// Download an image from a registry into the local store.
    Pull(commands::image::PullArgs),
    /// Upload an image from the local store to a registry.
    Push(commands::image::PushArgs),
    /// List the images in the local store.
    Images(commands::image::ImagesArgs),
    /// Give an image another name.
    Tag(commands::image::TagArgs),
    /// Remove image names, and the blobs nothing else uses.
    Rmi(commands::image::RmiArgs),
    /// Show an image's manifest and config as JSON.
    Inspect(commands::image::InspectArgs),
    /// Show an image's history: the step behind each layer, its size and
    /// when it was made.
    History(commands::history::HistoryArgs),
    /// Make a one-layer image from a root filesystem tarball (file, URL
    /// or `-`), as docker import does.
    Import(commands::import::ImportArgs),
    /// Explore an image's layers as dive does: each layer's files, what it
    /// added, changed and removed, and the space wasted; `--ci` checks
    /// dive's efficiency rules, `--json` prints the analysis.
    Dive(commands::dive::DiveArgs),
    /// Show the files added, removed and changed between two images or
    /// layers.
    Diff(commands::diff::DiffArgs),
    /// Write images to a docker-archive or OCI layout.
    Save(commands::archive::SaveArgs),
    /// Read images from a docker-archive or OCI layout (tar or directory).
    Load(commands::archive::LoadArgs),
    /// Show what the store holds by kind: images, build cache, unpacked
    /// layers, cache mounts, context caches, downloads.
    Du(commands::cache::DuArgs),
    /// Remove build cache least recently used first, and blobs no image
    /// uses; report the space freed.
    ///
    /// Without --all: cache records (with their blobs and unpacked layers)
    /// no image uses, unpacked layers nothing uses, context checksum
    /// caches, ADD URL downloads, build records (kiln builds), temporaries
    /// of dead builds and blobs no name reaches. --all adds cache mounts, the unpacked layers of
    /// images and cache records whose layer an image holds. Images are
    /// never removed. Waits for running builds.
    Prune(commands::cache::PruneArgs),
    /// Save credentials for a registry (checked against it first).
    Login(commands::login::LoginArgs),
    /// Remove saved credentials for a registry.
    Logout(commands::login::LogoutArgs),
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if let Command::Buildctl(args) = &cli.command {
        match commands::buildctl::to_build_args(args) {
            Ok(build) => cli.command = Command::Build(build),
            Err(err) => {
                progress::eprint_line(&format!("kiln: {}", error_text(&err)));
                return ExitCode::from(2);
            }
        }
    }
    // Building as a non-root user: become root of a user namespace with
    // the user's subordinate ids first (see kiln_executor::rootless).
    if matches!(
        cli.command,
        Command::Build(_)
            | Command::Bake(_)
            | Command::Prune(_)
            | Command::Du(_)
            | Command::Import(_)
    ) {
        let root = cli.global.root.clone().or_else(kiln_oci::default_root);
        if let Err(err) = kiln_executor::rootless::enter(root) {
            progress::eprint_line(&format!("kiln: {}", error_text(&err.into())));
            return ExitCode::FAILURE;
        }
    }
    if matches!(cli.command, Command::Build(_) | Command::Bake(_)) {
        signals::handle_interrupts();
        if let Some(root) = cli.global.root.clone().or_else(kiln_oci::default_root) {
            kiln_executor::set_scratch_base(kiln_oci::StoreLayout::new(root).runs());
        }
    }
    if let Err(err) = check_writable(&cli.global, &cli.command) {
        progress::eprint_line(&format!("kiln: {}", error_text(&err)));
        return ExitCode::FAILURE;
    }
    if !matches!(
        cli.command,
        Command::Parse(_) | Command::Lint(_) | Command::Login(_) | Command::Logout(_)
    ) {
        sweep_temporaries(&cli.global);
    }
    let result = match cli.command {
        Command::Parse(args) => commands::parse::run(&args),
        Command::Lint(args) => commands::lint::run(&cli.global, &args),
        Command::Dive(args) => commands::dive::dive(&cli.global, &args),
        command => run(&cli.global, command).map(|()| ExitCode::SUCCESS),
    };
    signals::end_if_interrupted(&cli.global);
    match result {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            // Not eprintln!: a closed stderr must not turn an error into a panic.
            progress::eprint_line(&format!("kiln: {}", error_text(&err)));
            // A Dockerfile error: the excerpt with the lines marked, as BuildKit.
            if let Some(detail) = located::Located::detail_of(&err) {
                progress::eprint_line(detail);
            }
            ExitCode::FAILURE
        }
    }
}

/// Refuses a command that writes the store when the store is on a
/// read-only filesystem, before it starts: one line naming the store and
/// the way out, rather than the first write's error.
fn check_writable(global: &global::GlobalArgs, command: &Command) -> anyhow::Result<()> {
    let writes = matches!(
        command,
        Command::Pull(_)
            | Command::Tag(_)
            | Command::Rmi(_)
            | Command::Load(_)
            | Command::Import(_)
            | Command::Prune(_)
    );
    let Some(root) = global.root.clone().or_else(kiln_oci::default_root) else {
        return Ok(());
    };
    if writes && kiln_oci::is_on_read_only_fs(&root) {
        anyhow::bail!(
            "store {} is read-only: use --root DIR for a writable store",
            root.display()
        );
    }
    Ok(())
}

/// Removes the temporaries that killed kiln processes left in the store
/// (`kiln_solver::gc::sweep_temporaries`), on the side: a store that
/// cannot be swept (read-only, not made yet, another user's files) is
/// swept by a later command.
fn sweep_temporaries(global: &global::GlobalArgs) {
    let Some(root) = global.root.clone().or_else(kiln_oci::default_root) else {
        return;
    };
    if !root.is_dir() || kiln_oci::is_on_read_only_fs(&root) {
        return;
    }
    if let Ok(store) = global.store() {
        let _ = kiln_solver::gc::sweep_temporaries(&store, false);
        kiln_executor::sweep_stale(&store.layout().runs());
    }
}

fn run(global: &global::GlobalArgs, command: Command) -> anyhow::Result<()> {
    use commands::{archive, cache, image, login};
    match command {
        Command::Parse(_) | Command::Lint(_) | Command::Buildctl(_) | Command::Dive(_) => Ok(()),
        Command::Build(a) => commands::build::build(global, &a),
        Command::Bake(a) => commands::bake::bake(global, &a),
        Command::Builds(a) => commands::builds::builds(global, &a),
        Command::Pull(a) => image::pull(global, &a),
        Command::Push(a) => image::push(global, &a),
        Command::Images(a) => image::images(global, &a),
        Command::Tag(a) => image::tag(global, &a),
        Command::Rmi(a) => image::rmi(global, &a),
        Command::Inspect(a) => image::inspect(global, &a),
        Command::History(a) => commands::history::history(global, &a),
        Command::Import(a) => commands::import::import(global, &a),
        Command::Diff(a) => commands::diff::diff(global, &a),
        Command::Save(a) => archive::save(global, &a),
        Command::Load(a) => archive::load(global, &a),
        Command::Du(a) => cache::du(global, &a),
        Command::Prune(a) => cache::prune(global, &a),
        Command::Login(a) => login::login(global, &a),
        Command::Logout(a) => login::logout(global, &a),
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .is_some_and(|e| e.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}

/// An error and its causes on one line, `outer: cause: cause`, leaving
/// out a cause the text already holds: many error types print their
/// source themselves, and a chain would say it twice
/// (`reading x: No such file (os error 2): No such file (os error 2)`).
pub(crate) fn error_text(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if part.is_empty() || text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that prints its source itself, as many do.
    #[derive(Debug)]
    struct Prints {
        path: String,
        source: std::io::Error,
    }

    impl std::fmt::Display for Prints {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "reading {}: {}", self.path, self.source)
        }
    }

    impl std::error::Error for Prints {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn a_cause_is_said_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let said = io.to_string();
        let err = anyhow::Error::new(Prints {
            path: "x".into(),
            source: io,
        })
        .context("loading y");
        assert_eq!(error_text(&err), format!("loading y: reading x: {said}"));
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_text(&plain), "outer: inner");
    }
}
