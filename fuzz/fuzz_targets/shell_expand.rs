//! The shell word lexer. Input: one byte of options (bit 0 raw quotes,
//! 1 raw escapes, 2 skip unset, 3 skip quote processing, 4 backtick as the
//! escape character), then the word, then after a NUL byte `NAME=VALUE`
//! lines for the environment.
#![no_main]

use kiln_parser::shell::Lexer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (word, env_text) = text.split_once('\0').unwrap_or((&text, "A=a b\nEMPTY="));
    let env: Vec<(&str, &str)> = env_text
        .lines()
        .map(|line| line.split_once('=').unwrap_or((line, "")))
        .collect();
    let escape = if flags & 16 != 0 { '`' } else { '\\' };
    let lexer = Lexer::new(escape)
        .raw_quotes(flags & 1 != 0)
        .raw_escapes(flags & 2 != 0)
        .skip_unset(flags & 4 != 0)
        .skip_process_quotes(flags & 8 != 0);
    let _ = lexer.process_word(word, &env.as_slice());
    let _ = lexer.process_words(word, &env.as_slice());
    let _ = lexer.process_word_with_matches(word, &env.as_slice());
});
