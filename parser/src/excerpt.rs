//! Dockerfile excerpts as BuildKit prints them under an error or a build
//! check: a `FILE:LINE` header, a rule, the lines around the ones at
//! fault, numbered, with `>>>` on those, and a closing rule.
//!
//! ```text
//! Dockerfile:3
//! --------------------
//!    1 |     FROM busybox
//!    2 |     RUN echo hi
//!    3 | >>> RUN false
//!    4 |     CMD ["sh"]
//! --------------------
//! ```

use std::fmt::Write as _;
use std::ops::RangeInclusive;

/// The rule above and below the lines.
const RULE: &str = "--------------------";

/// The longest line shown, in characters; longer ones are cut with `…`
/// (a minified line must not flood the terminal).
const MAX_WIDTH: usize = 200;

/// The most lines shown of a range; a longer one (a RUN of hundreds of
/// continuation lines) shows its first and last halves of this around a
/// line saying how many were left out.
const MAX_MARKED: usize = 20;

/// The excerpt of `source` (read from `file`) for `lines` (1-based,
/// inclusive): two lines of context each side of a single line, one
/// each side of a range, as far as the file goes. Every line ends with a
/// newline. Empty when `lines` starts outside the file.
pub fn excerpt(file: &str, source: &str, lines: RangeInclusive<usize>) -> String {
    let text: Vec<&str> = source.lines().collect();
    let (first, last) = (*lines.start(), *lines.end());
    if first == 0 || first > text.len() {
        return String::new();
    }
    let last = last.clamp(first, text.len());
    let pad = if first == last { 2 } else { 1 };
    let from = first.saturating_sub(pad).max(1);
    let to = (last + pad).min(text.len());
    let mut out = String::new();
    let _ = writeln!(out, "{file}:{first}");
    let _ = writeln!(out, "{RULE}");
    let skip =
        (last - first + 1 > MAX_MARKED).then(|| (first + MAX_MARKED / 2)..=(last - MAX_MARKED / 2));
    for n in from..=to {
        if let Some(skip) = skip.as_ref().filter(|s| s.contains(&n)) {
            if n == *skip.start() {
                let left_out = skip.end() - skip.start() + 1;
                let _ = writeln!(out, " ... | >>> ({left_out} more lines)");
            }
            continue;
        }
        let line = text.get(n - 1).copied().unwrap_or_default();
        let line = line.strip_suffix('\r').unwrap_or(line);
        let line = match line.char_indices().nth(MAX_WIDTH) {
            Some((i, _)) => format!("{}…", &line[..i]),
            None => line.to_string(),
        };
        let mark = if lines.contains(&n) { ">>>" } else { "   " };
        let _ = writeln!(out, " {n:>3} | {mark} {line}");
    }
    let _ = writeln!(out, "{RULE}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "FROM busybox\nRUN one\nRUN two\nRUN three\nRUN four\nRUN five\nRUN six\n";

    #[test]
    fn one_line_has_two_lines_of_context_each_side() {
        assert_eq!(
            excerpt("Dockerfile", SOURCE, 4..=4),
            "Dockerfile:4\n\
             --------------------\n   \
             2 |     RUN one\n   \
             3 |     RUN two\n   \
             4 | >>> RUN three\n   \
             5 |     RUN four\n   \
             6 |     RUN five\n\
             --------------------\n"
        );
    }

    #[test]
    fn a_range_is_marked_whole_with_one_line_each_side() {
        assert_eq!(
            excerpt("df", SOURCE, 2..=3),
            "df:2\n--------------------\n   1 |     FROM busybox\n   2 | >>> RUN one\n   3 | >>> RUN two\n   4 |     RUN three\n--------------------\n"
        );
    }

    #[test]
    fn the_context_stops_at_the_file_ends() {
        let text = excerpt("Dockerfile", "FROM a\nRUN b\n", 1..=1);
        assert_eq!(
            text,
            "Dockerfile:1\n--------------------\n   1 | >>> FROM a\n   2 |     RUN b\n--------------------\n"
        );
        assert_eq!(excerpt("Dockerfile", "FROM a\n", 5..=5), "");
        assert_eq!(excerpt("Dockerfile", "FROM a\n", 0..=0), "");
        // A range past the end is cut at the last line.
        assert!(excerpt("Dockerfile", "FROM a\nRUN b\n", 2..=9).contains("   2 | >>> RUN b\n"));
    }

    #[test]
    fn a_long_range_is_shown_by_its_ends() {
        let mut text = String::from("FROM a\nRUN \\\n");
        for i in 0..100 {
            text.push_str(&format!("  step{i} \\\n"));
        }
        text.push_str("  done\nCMD x\n");
        let shown = excerpt("Dockerfile", &text, 2..=103);
        let lines: Vec<&str> = shown.lines().collect();
        // Header, rule, context, 10 + elision + 10, context, rule.
        assert_eq!(lines.len(), 2 + 1 + 21 + 1 + 1, "{shown}");
        assert_eq!(lines[3], "   2 | >>> RUN \\");
        assert!(shown.contains(" ... | >>> (82 more lines)\n"), "{shown}");
        assert!(shown.contains(" 103 | >>>   done\n"), "{shown}");
        assert!(shown.contains(" 104 |     CMD x\n"), "{shown}");
    }

    #[test]
    fn long_lines_are_cut() {
        let long = format!("RUN {}\n", "x".repeat(1000));
        let text = excerpt("Dockerfile", &long, 1..=1);
        assert!(
            text.lines().all(|l| l.chars().count() < MAX_WIDTH + 20),
            "{text}"
        );
        assert!(text.contains('…'));
    }
}
