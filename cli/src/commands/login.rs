//! `kiln login` and `kiln logout`: credentials in Docker's config file (or
//! its credential helper), checked against the registry first.

use crate::global::{runtime, GlobalArgs};
use anyhow::{bail, Context, Result};
use clap::Args;
use kiln_oci::{
    Credential, DockerConfig, RegistryClient, RegistryOptions, Secret, StaticCredentials,
};
use std::io::BufRead;

/// Arguments of `kiln login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry (host[:port]); Docker Hub when omitted.
    server: Option<String>,
    /// The username.
    #[arg(short, long)]
    username: String,
    /// The password (prefer --password-stdin: arguments show in `ps`).
    #[arg(short, long, conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    password_stdin: bool,
}

/// The registry host a user typed, as the client and config key it:
/// scheme and path stripped, Docker Hub's aliases folded to `docker.io`.
fn server_host(server: Option<&str>) -> String {
    let s = server.unwrap_or("docker.io");
    let s = s.split_once("://").map_or(s, |(_, rest)| rest);
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "" => "docker.io".to_string(),
        h => h.to_string(),
    }
}

/// Runs `kiln login`.
pub fn login(global: &GlobalArgs, args: &LoginArgs) -> Result<()> {
    let host = server_host(args.server.as_deref());
    let password = match (&args.password, args.password_stdin) {
        (Some(p), _) => p.clone(),
        (None, true) => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password from stdin")?;
            line.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => bail!("give the password with --password-stdin (or --password)"),
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    let mut insecure = global.insecure_registries.clone();
    insecure.extend(crate::config::Config::load(global.config.as_deref())?.insecure_registries());
    let client = RegistryClient::new(
        RegistryOptions {
            insecure_registries: insecure,
            ..RegistryOptions::default()
        },
        Box::new(StaticCredentials::none().with(&host, &args.username, &password)),
    )?;
    runtime()?
        .block_on(client.ping(&host))
        .with_context(|| format!("logging in to {host}"))?;
    let mut config = DockerConfig::load_default()?;
    config.store_credential(
        &host,
        &Credential {
            username: args.username.clone(),
            secret: Secret::Password(password),
        },
    )?;
    println!(
        "Login Succeeded ({host}, saved in {})",
        config.path().display()
    );
    Ok(())
}

/// Arguments of `kiln logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry; Docker Hub when omitted.
    server: Option<String>,
}

/// Runs `kiln logout`.
pub fn logout(_global: &GlobalArgs, args: &LogoutArgs) -> Result<()> {
    let host = server_host(args.server.as_deref());
    let mut config = DockerConfig::load_default()?;
    if config.erase_credential(&host)? {
        println!("Removing login credentials for {host}");
    } else {
        println!("Not logged in to {host}");
    }
    Ok(())
}
