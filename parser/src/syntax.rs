//! The pest grammar (`grammar.pest`) and the functions that read its parse
//! trees: splitting an instruction line, the quote-aware word splitter and
//! heredoc marker detection.

use pest::iterators::Pair;
use pest::Parser;

#[derive(pest_derive::Parser)]
#[grammar = "grammar.pest"]
struct LineGrammar;

/// A flag word with its byte range in the line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FlagWord {
    /// The processed text, e.g. `--from=build` (quotes removed).
    pub text: String,
    /// Byte offset of the first `-` in the line.
    pub start: usize,
    /// Byte offset just past the word.
    pub end: usize,
}

/// An instruction line taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SplitLine {
    /// The keyword as written.
    pub keyword: String,
    /// The `--flag` words before the arguments.
    pub flags: Vec<FlagWord>,
    /// The arguments, trimmed.
    pub args: String,
    /// Byte offset of `args` in the line.
    pub args_start: usize,
}

fn entry(escape: char, backslash: Rule, backtick: Rule) -> Rule {
    if escape == '`' {
        backtick
    } else {
        backslash
    }
}

/// Splits a joined instruction line (already trimmed) into keyword, flags and
/// arguments, like BuildKit's `splitCommand` + `extractBuilderFlags`.
pub(crate) fn split_instruction(line: &str, escape: char) -> SplitLine {
    let rule = entry(escape, Rule::instruction_bs, Rule::instruction_bt);
    let mut out = SplitLine {
        keyword: String::new(),
        flags: Vec::new(),
        args: String::new(),
        args_start: line.len(),
    };
    // The grammar accepts every input (each rule has an `ANY` fallback), so
    // a failure here would be a grammar bug; fall back to "all keyword".
    let Ok(mut pairs) = LineGrammar::parse(rule, line) else {
        out.keyword = line.to_string();
        return out;
    };
    let Some(top) = pairs.next() else {
        out.keyword = line.to_string();
        return out;
    };
    let mut args_from: Option<usize> = None;
    let end = top.as_span().end();
    for pair in top.into_inner() {
        match pair.as_rule() {
            Rule::keyword => out.keyword = pair.as_str().to_string(),
            Rule::flags => {
                for flag in pair.into_inner() {
                    let span = flag.as_span();
                    let text: String = flag.into_inner().map(|p| p.as_str()).collect();
                    let text = format!("--{text}");
                    if args_from.is_some() {
                        continue;
                    }
                    if text == "--" {
                        // A bare `--` ends the flags; what follows is arguments.
                        args_from = Some(span.end());
                        continue;
                    }
                    out.flags.push(FlagWord {
                        text,
                        start: span.start(),
                        end: span.end(),
                    });
                }
            }
            _ => {}
        }
    }
    let from = args_from.unwrap_or(end);
    let raw = line.get(from..).unwrap_or("");
    out.args_start = from + (raw.len() - raw.trim_start().len());
    out.args = raw.trim().to_string();
    out
}

/// BuildKit's quote-aware splitter for ENV, LABEL and ARG: splits on unquoted
/// whitespace and keeps quotes and escapes in the words.
pub(crate) fn split_words(text: &str, escape: char) -> Vec<String> {
    let rule = entry(escape, Rule::words_bs, Rule::words_bt);
    let Ok(mut pairs) = LineGrammar::parse(rule, text) else {
        return text.split_whitespace().map(str::to_string).collect();
    };
    let Some(top) = pairs.next() else {
        return Vec::new();
    };
    top.into_inner()
        .filter(|p| p.as_rule() == Rule::word)
        .map(|word| leaf_text(word))
        .collect()
}

fn leaf_text(pair: Pair<'_, Rule>) -> String {
    pair.into_inner().map(|p| p.as_str()).collect()
}

/// The raw shell words of a RUN/COPY/ADD line, as BuildKit's heredoc finder
/// sees them. `None` when the line does not lex (an unterminated quote), in
/// which case BuildKit finds no heredocs either.
pub(crate) fn heredoc_words(line: &str) -> Option<Vec<String>> {
    let mut pairs = LineGrammar::parse(Rule::heredoc_words, line).ok()?;
    let top = pairs.next()?;
    Some(
        top.into_inner()
            .filter(|p| p.as_rule() == Rule::heredoc_word)
            .map(|p| p.as_str().to_string())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(line: &str) -> (Vec<String>, String) {
        let s = split_instruction(line, '\\');
        (s.flags.into_iter().map(|f| f.text).collect(), s.args)
    }

    #[test]
    fn splits_flags_like_buildkit() {
        assert_eq!(
            flags("COPY --chmod=\"7 55\" a b"),
            (vec!["--chmod=7 55".to_string()], "a b".to_string())
        );
        assert_eq!(
            flags("COPY --doit=true -- foo /tmp/"),
            (vec!["--doit=true".to_string()], "foo /tmp/".to_string())
        );
        assert_eq!(
            flags("CMD --doit -- [ ]"),
            (vec!["--doit".to_string()], "[ ]".to_string())
        );
        assert_eq!(flags("COPY -- foo"), (vec![], "foo".to_string()));
        assert_eq!(
            flags("RUN --a=b\\ c d"),
            (vec!["--a=b c".to_string()], "d".to_string())
        );
        assert_eq!(flags("RUN -x"), (vec![], "-x".to_string()));
        assert_eq!(flags("RUN"), (vec![], String::new()));
        assert_eq!(flags("RUN --x"), (vec!["--x".to_string()], String::new()));
        let s = split_instruction("FROM\tbusybox  AS b", '\\');
        assert_eq!(s.keyword, "FROM");
        assert_eq!(s.args, "busybox  AS b");
        assert_eq!(s.args_start, 5);
    }

    #[test]
    fn words_keep_quotes_and_escapes() {
        let w = |s: &str| split_words(s, '\\');
        assert_eq!(w("foo bar 'abc xyz'"), vec!["foo", "bar", "'abc xyz'"]);
        assert_eq!(w("foo\\ bar"), vec!["foo\\ bar"]);
        assert_eq!(w("föo bàr \"âbc xÿz\""), vec!["föo", "bàr", "\"âbc xÿz\""]);
        assert_eq!(w("a=\"\""), vec!["a=\"\""]);
        assert_eq!(w("\"\""), vec!["\"\""]);
        assert_eq!(w("x\\"), vec!["x"]);
        assert_eq!(w("name='a\\'b''"), vec!["name='a\\'b''"]);
        assert_eq!(split_words("a` b c", '`'), vec!["a` b", "c"]);
    }

    #[test]
    fn heredoc_words_absorb_blanks_after_markers() {
        let h = |s: &str| heredoc_words(s).unwrap_or_default();
        assert_eq!(h("RUN <<  EOF  > foo"), vec!["RUN", "<<  EOF", ">", "foo"]);
        assert_eq!(h("RUN <<- EOF"), vec!["RUN", "<<- EOF"]);
        assert_eq!(h("RUN << -EOF"), vec!["RUN", "<< -EOF"]);
        assert_eq!(h("RUN '<<EOF'"), vec!["RUN", "'<<EOF'"]);
        assert_eq!(h("COPY <<A <<B /d"), vec!["COPY", "<<A", "<<B", "/d"]);
        assert!(heredoc_words("RUN \"oops").is_none());
    }
}
