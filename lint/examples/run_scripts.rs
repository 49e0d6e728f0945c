//! Prints the commands kiln-lint's shell parser finds in each RUN of a
//! Dockerfile (the script as hadolint reads it from the source):
//! `cargo run -p kiln-lint --example run_scripts -- FILE`.

use kiln_lint::{Config, Context};

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: run_scripts DOCKERFILE");
        std::process::exit(2);
    };
    let source = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    };
    let df = match kiln_parser::parse(&source) {
        Ok(df) => df,
        Err(e) => {
            eprintln!("{path}:{e}");
            std::process::exit(1);
        }
    };
    let config = Config::default();
    let cx = Context::new(&df, &source, &config);
    for (item, _, script) in cx.runs(true) {
        println!(
            "line {}: pipes={} error={:?}",
            item.line,
            script.has_pipes(),
            script.error()
        );
        for cmd in script.commands() {
            println!("    {} {:?}", cmd.name, cmd.args);
        }
    }
}
