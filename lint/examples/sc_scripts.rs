//! Writes the ShellCheck script of each RUN of a Dockerfile to DIR/LINE.sh:
//! `cargo run -p kiln-lint --example sc_scripts -- FILE DIR`.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(file), Some(dir)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: sc_scripts DOCKERFILE DIR");
        std::process::exit(2);
    };
    let source = std::fs::read_to_string(file).unwrap_or_default();
    let Ok(df) = kiln_parser::parse(&source) else {
        eprintln!("{file}: does not parse");
        std::process::exit(1);
    };
    for s in kiln_lint::run_scripts(&df, &source) {
        let path = std::path::Path::new(dir).join(format!("{}.sh", s.line));
        if let Err(e) = std::fs::write(&path, &s.script) {
            eprintln!("{}: {e}", path.display());
        }
    }
}
