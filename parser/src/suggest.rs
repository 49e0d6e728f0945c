//! "did you mean" for a misspelt instruction, as BuildKit suggests one:
//! the known keyword nearest by edit distance, when it is near enough.

/// Every instruction keyword kiln knows.
pub const KEYWORDS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// The keyword `word` most likely meant (compared without case): the one
/// at the smallest edit distance, if that is at most 2 and less than the
/// word's length (so `XY` suggests nothing). Ties go to the first in
/// alphabetical order.
pub fn suggest_instruction(word: &str) -> Option<&'static str> {
    let upper = word.to_ascii_uppercase();
    let len = upper.chars().count();
    KEYWORDS
        .iter()
        .map(|k| (strsim::levenshtein(&upper, k), *k))
        .filter(|(d, _)| *d > 0 && *d <= 2 && *d < len)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_get_the_keyword() {
        assert_eq!(suggest_instruction("RUNN"), Some("RUN"));
        assert_eq!(suggest_instruction("runn"), Some("RUN"));
        assert_eq!(suggest_instruction("FORM"), Some("FROM"));
        assert_eq!(suggest_instruction("CPY"), Some("COPY"));
        assert_eq!(suggest_instruction("WORKDIRR"), Some("WORKDIR"));
        assert_eq!(suggest_instruction("ENTRYPIONT"), Some("ENTRYPOINT"));
    }

    #[test]
    fn far_words_get_nothing() {
        assert_eq!(suggest_instruction("XY"), None);
        assert_eq!(suggest_instruction("BANANA"), None);
        assert_eq!(suggest_instruction("R"), None);
        assert_eq!(suggest_instruction("RUN"), None);
    }
}
