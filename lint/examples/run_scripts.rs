//! Prints the commands kiln-lint's shell parser finds in each RUN of a
//! Dockerfile: `cargo run -p kiln-lint --example run_scripts -- FILE`.

use kiln_lint::{run_text, shell::Script};
use kiln_parser::Instruction;

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
    for c in df.commands() {
        if let Instruction::Run(run) = &c.instruction {
            let script = Script::parse(&run_text(run));
            println!(
                "line {}: pipes={} error={:?}",
                c.span.start.line,
                script.has_pipes(),
                script.error()
            );
            for cmd in script.commands() {
                println!("    {} {:?}", cmd.name, cmd.args);
            }
        }
    }
}
