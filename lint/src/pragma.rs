//! Ignore pragmas in comments (`# hadolint ignore=...`, `global ignore=`,
//! `stage ignore=`, `shell=`) and BuildKit's `# check=skip=...` directive.

use kiln_parser::Dockerfile;

/// The pragmas of one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pragmas {
    /// `# hadolint ignore=`: the comment's line and the codes; they cover
    /// the instruction starting on the next line.
    pub inline: Vec<(usize, Vec<String>)>,
    /// `# hadolint global ignore=`: codes ignored in the whole file.
    pub global: Vec<String>,
    /// `# hadolint stage ignore=`: the comment's line and the codes; they
    /// cover the lines after it up to the FROM after next one (the FROM
    /// directly below the comment opens the stage they cover).
    pub stage: Vec<(usize, Vec<String>)>,
    /// `# hadolint shell=`: the comment's line and the shell name.
    pub shell: Vec<(usize, String)>,
    /// `# check=skip=...`: BuildKit check names to skip (`all` for all).
    pub check_skip: Vec<String>,
    /// `# check=error=true`: BuildKit check findings are errors.
    pub check_error: bool,
    /// `# check=experimental=...`: experimental BuildKit checks to run.
    pub check_experimental: Vec<String>,
    /// `# check=skip=...` comments directly above an instruction: the
    /// comment's line and the check names (BuildKit 1.21's per-instruction
    /// form).
    pub check_inline: Vec<(usize, Vec<String>)>,
}

/// One hadolint pragma read from a comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pragma {
    /// `ignore=CODES`
    Ignore(Vec<String>),
    /// `global ignore=CODES`
    GlobalIgnore(Vec<String>),
    /// `stage ignore=CODES`
    StageIgnore(Vec<String>),
    /// `shell=NAME`
    Shell(String),
}

/// Reads a comment's text (after `#`) as a hadolint pragma.
pub fn parse_pragma(text: &str) -> Option<Pragma> {
    let rest = text
        .trim_start_matches([' ', '\t'])
        .strip_prefix("hadolint")?;
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    let rest = rest.trim_start_matches([' ', '\t']);
    if let Some(list) = rest.strip_prefix("ignore=") {
        return codes(list).map(Pragma::Ignore);
    }
    if let Some(after) = rest.strip_prefix("global") {
        let list = after
            .trim_start_matches([' ', '\t'])
            .strip_prefix("ignore=")?;
        return codes(list).map(Pragma::GlobalIgnore);
    }
    if let Some(after) = rest.strip_prefix("stage") {
        let list = after
            .trim_start_matches([' ', '\t'])
            .strip_prefix("ignore=")?;
        return codes(list).map(Pragma::StageIgnore);
    }
    if let Some(shell) = rest.strip_prefix("shell=") {
        let name = shell.split_whitespace().next()?;
        return Some(Pragma::Shell(name.to_string()));
    }
    None
}

/// `DL3008, DL3015 # reason` -> the codes.
fn codes(list: &str) -> Option<Vec<String>> {
    let list = list.split('#').next().unwrap_or_default();
    let mut out = Vec::new();
    for item in list.split(',') {
        let item = item.trim_matches([' ', '\t', '\r']);
        if item.is_empty()
            || !item
                .chars()
                .all(|c| matches!(c, 'D' | 'L' | 'S' | 'C' | '0'..='9'))
        {
            // A list with a blank tail (`DL3008 foo`) keeps the codes before.
            let first = item.split([' ', '\t']).next().unwrap_or_default();
            if !first.is_empty()
                && first
                    .chars()
                    .all(|c| matches!(c, 'D' | 'L' | 'S' | 'C' | '0'..='9'))
            {
                out.push(first.to_string());
                break;
            }
            if out.is_empty() {
                return None;
            }
            break;
        }
        out.push(item.to_string());
    }
    (!out.is_empty()).then_some(out)
}

impl Pragmas {
    /// Collects the pragmas of a parsed file.
    pub fn read(dockerfile: &Dockerfile) -> Pragmas {
        Pragmas::read_with(dockerfile, None)
    }

    /// Like [`Pragmas::read`], with `check` (when given) in place of the
    /// file's `# check=` directive, as BuildKit's
    /// `BUILDKIT_DOCKERFILE_CHECK` build argument replaces it.
    pub fn read_with(dockerfile: &Dockerfile, check: Option<&str>) -> Pragmas {
        let mut p = Pragmas::default();
        for comment in &dockerfile.comments {
            match parse_pragma(&comment.text) {
                Some(Pragma::Ignore(c)) => p.inline.push((comment.line, c)),
                Some(Pragma::GlobalIgnore(c)) => p.global.extend(c),
                Some(Pragma::StageIgnore(c)) => p.stage.push((comment.line, c)),
                Some(Pragma::Shell(s)) => p.shell.push((comment.line, s)),
                None => {
                    let text = comment.text.trim_start();
                    if let Some(list) = text.strip_prefix("check=skip=") {
                        let list = list.split_whitespace().next().unwrap_or_default();
                        let names = list.split(',').map(|s| s.trim().to_string()).collect();
                        p.check_inline.push((comment.line, names));
                    }
                }
            }
        }
        if let Some(check) = check.or_else(|| dockerfile.directive("check")) {
            for part in check.split(';') {
                let Some((key, value)) = part.split_once('=') else {
                    continue;
                };
                match key.trim() {
                    "skip" => p
                        .check_skip
                        .extend(value.split(',').map(|s| s.trim().to_string())),
                    "error" => p.check_error = value.trim().eq_ignore_ascii_case("true"),
                    "experimental" => p
                        .check_experimental
                        .extend(value.split(',').map(|s| s.trim().to_string())),
                    _ => {}
                }
            }
        }
        p
    }

    /// True when a hadolint pragma suppresses `code` at `line`;
    /// `from_lines` are the lines of the file's FROM instructions.
    pub fn ignores(&self, code: &str, line: usize, from_lines: &[usize]) -> bool {
        let has = |codes: &Vec<String>| codes.iter().any(|c| c == code);
        if self.global.iter().any(|c| c == code) {
            return true;
        }
        if self
            .inline
            .iter()
            .any(|(l, codes)| *l + 1 == line && has(codes))
        {
            return true;
        }
        self.stage.iter().any(|(l, codes)| {
            if !has(codes) || line <= *l + 1 {
                return false;
            }
            // The region ends at the first FROM after the line below the
            // comment.
            let end = from_lines
                .iter()
                .copied()
                .filter(|f| *f > *l + 1)
                .min()
                .unwrap_or(usize::MAX);
            line < end
        })
    }

    /// True when a per-instruction `# check=skip=` comment above `line`
    /// turns the BuildKit check `code` off there.
    pub fn skips_check_at(&self, code: &str, line: usize) -> bool {
        self.check_inline.iter().any(|(l, names)| {
            *l + 1 == line
                && names
                    .iter()
                    .any(|n| n == code || n.eq_ignore_ascii_case("all"))
        })
    }

    /// True when `# check=experimental=` turns the experimental check `code`
    /// on.
    pub fn enables_experimental(&self, code: &str) -> bool {
        self.check_experimental
            .iter()
            .any(|s| s == code || s.eq_ignore_ascii_case("all"))
    }

    /// True when BuildKit's `# check=skip=` turns `code` off. `all` only
    /// covers BuildKit checks, not hadolint codes.
    pub fn skips_check(&self, code: &str, is_buildkit: bool) -> bool {
        self.check_skip
            .iter()
            .any(|s| s == code || (is_buildkit && s.eq_ignore_ascii_case("all")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pragma_forms() {
        let p = |s: &str| parse_pragma(s);
        assert_eq!(
            p(" hadolint ignore=DL3008,DL3015"),
            Some(Pragma::Ignore(vec!["DL3008".into(), "DL3015".into()]))
        );
        assert_eq!(
            p("hadolint ignore=DL3008 , SC2086 # because"),
            Some(Pragma::Ignore(vec!["DL3008".into(), "SC2086".into()]))
        );
        assert_eq!(
            p(" hadolint global ignore=DL3003"),
            Some(Pragma::GlobalIgnore(vec!["DL3003".into()]))
        );
        assert_eq!(
            p(" hadolint stage ignore=DL3003"),
            Some(Pragma::StageIgnore(vec!["DL3003".into()]))
        );
        assert_eq!(
            p(" hadolint shell=powershell"),
            Some(Pragma::Shell("powershell".into()))
        );
        assert_eq!(p(" hadolintignore=DL3003"), None);
        assert_eq!(p(" just a comment"), None);
    }

    #[test]
    fn scopes() {
        let df = kiln_parser::parse(
            "# check=skip=StageNameCasing;error=true\n\
             # hadolint global ignore=DL3006\n\
             # hadolint stage ignore=DL3008\n\
             FROM a\n\
             RUN x\n\
             # hadolint ignore=DL3059\n\
             RUN y\n\
             FROM b\n\
             RUN z\n",
        )
        .unwrap();
        let p = Pragmas::read(&df);
        let froms = [4, 8];
        assert!(p.ignores("DL3006", 8, &froms));
        assert!(p.ignores("DL3008", 5, &froms));
        assert!(!p.ignores("DL3008", 4, &froms));
        assert!(!p.ignores("DL3008", 9, &froms));
        assert!(p.ignores("DL3059", 7, &froms));
        assert!(!p.ignores("DL3059", 5, &froms));
        assert!(p.skips_check("StageNameCasing", true));
        assert!(p.check_error);
    }
}
