//! `kiln parse`: show the parsed Dockerfile.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use kiln_parser::{parse, Command, Dockerfile, Span};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `kiln parse`.
#[derive(Debug, Args)]
pub struct ParseArgs {
    /// The Dockerfile to read; `-` reads standard input.
    #[arg(short = 'f', long = "file", default_value = "Dockerfile")]
    file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// How `kiln parse` prints the result.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// An indented listing, one instruction per line with its span.
    Text,
    /// The whole syntax tree as JSON.
    Json,
}

/// Runs `kiln parse`.
pub fn run(args: &ParseArgs) -> Result<ExitCode> {
    let (name, source) = read_source(&args.file)?;
    let dockerfile = match parse(&source) {
        Ok(df) => df,
        Err(err) => {
            eprintln!("{name}:{err}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &dockerfile)?;
            writeln!(out)?;
        }
        Format::Text => write_text(&mut out, &name, &dockerfile)?,
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn read_source(file: &PathBuf) -> Result<(String, String)> {
    let mut bytes = Vec::new();
    let name = if file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading the Dockerfile from standard input")?;
        "<stdin>".to_string()
    } else {
        bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        file.display().to_string()
    };
    let source = kiln_parser::decode(bytes).map_err(|e| anyhow::anyhow!("{name}:{e}"))?;
    Ok((name, source))
}

fn span_text(span: &Span) -> String {
    format!(
        "{}:{}-{}:{}",
        span.start.line, span.start.column, span.end.line, span.end.column
    )
}

fn write_command(out: &mut impl Write, indent: &str, command: &Command) -> std::io::Result<()> {
    let text = command.original.trim();
    let text = if text.chars().count() > 100 {
        let cut: String = text.chars().take(97).collect();
        format!("{cut}...")
    } else {
        text.to_string()
    };
    writeln!(
        out,
        "{indent}{:<11} {:<16} {text}",
        command.instruction.name(),
        span_text(&command.span)
    )
}

fn write_text(out: &mut impl Write, name: &str, df: &Dockerfile) -> std::io::Result<()> {
    writeln!(
        out,
        "{name}: {} stage(s), escape={}",
        df.stages.len(),
        df.escape
    )?;
    for d in &df.directives {
        writeln!(out, "directive {}={} (line {})", d.name, d.value, d.line)?;
    }
    for arg in &df.global_args {
        write_command(out, "", arg)?;
    }
    for (i, stage) in df.stages.iter().enumerate() {
        let label = match stage.name() {
            Some(n) => format!("stage {i} {n:?}"),
            None => format!("stage {i}"),
        };
        writeln!(out, "{label}")?;
        write_command(out, "  ", &stage.from)?;
        for c in &stage.commands {
            write_command(out, "  ", c)?;
        }
    }
    for w in &df.warnings {
        writeln!(out, "warning {}: {}", span_text(&w.span), w.message)?;
    }
    Ok(())
}
