//! The Dockerfile parser: raw parse (and its AST dump), the directive
//! scanners, the typed parse, and expansion of every parsed command with a
//! small environment.
#![no_main]

use kiln_parser::shell::Lexer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = kiln_parser::detect_syntax(&text);
    let _ = kiln_parser::detect_check(&text);
    if let Ok(raw) = kiln_parser::raw::parse_raw(&text) {
        let _ = raw.dump();
    }
    let Ok(dockerfile) = kiln_parser::parse(&text) else {
        return;
    };
    let lexer = Lexer::new(dockerfile.escape);
    let env = [("A", "a b"), ("EMPTY", ""), ("PATH", "/usr/bin:/bin")];
    for stage in &dockerfile.stages {
        let _ = stage.name();
        for command in &stage.commands {
            let _ = command.expand(&lexer, &env);
        }
    }
});
