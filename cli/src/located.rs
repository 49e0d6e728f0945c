//! Build errors tied to lines of a Dockerfile, printed as BuildKit prints
//! them: the one-line `FILE:LINE:COL: message` first (what scripts grep),
//! then on the following lines of stderr the failed step's last output
//! in a box, the Dockerfile excerpt with the lines at fault marked `>>>`
//! ([`kiln_parser::excerpt`], the renderer `kiln build --check` uses too)
//! and `ERROR: message`.

use std::fmt;

/// A build error at lines of a Dockerfile.
#[derive(Debug)]
pub struct Located {
    /// `Dockerfile:3:1: message`, one line.
    line: String,
    /// What follows it: output box, excerpt, `ERROR:` line.
    detail: String,
}

/// The failed step and its last output lines, for the box above the
/// excerpt.
pub struct StepOutput<'a> {
    /// The step's name (`[stage-0 2] RUN make`).
    pub name: &'a str,
    /// Its last output lines, oldest first.
    pub lines: Vec<String>,
}

impl Located {
    /// An error in `file` (whose text is `source`) at `position`
    /// (`LINE:COL`, the first line at fault), spanning `lines`, saying
    /// `message`: its first line is the one-line error, any further lines
    /// go under `ERROR:`.
    pub fn new(
        file: &str,
        source: &str,
        position: impl fmt::Display,
        lines: std::ops::RangeInclusive<usize>,
        message: &str,
        step: Option<StepOutput<'_>>,
    ) -> Located {
        let first = message.lines().next().unwrap_or_default();
        let mut detail = String::new();
        if let Some(step) = step.filter(|s| !s.lines.is_empty()) {
            detail.push_str("------\n");
            detail.push_str(&format!(" > {}:\n", step.name));
            for l in &step.lines {
                detail.push_str(l);
                detail.push('\n');
            }
            detail.push_str("------\n");
        }
        detail.push_str(&kiln_parser::excerpt(file, source, lines));
        detail.push_str(&format!("ERROR: {}", message.trim_end()));
        Located {
            line: format!("{file}:{position}: {first}"),
            detail,
        }
    }

    /// What is printed after the one-line error.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The excerpt and the rest of the error after the first line, when
    /// `err` is (or wraps) a [`Located`].
    pub fn detail_of(err: &anyhow::Error) -> Option<&str> {
        err.chain()
            .find_map(|c| c.downcast_ref::<Located>())
            .map(Located::detail)
    }
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line)
    }
}

impl std::error::Error for Located {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_is_the_one_line_error_and_the_excerpt_follows() {
        let source = "FROM busybox\nRUN echo hi\nRUN false\n";
        let step = StepOutput {
            name: "[stage-0 2] RUN false",
            lines: vec!["oops".into()],
        };
        let err = Located::new(
            "Dockerfile",
            source,
            "3:1",
            3..=3,
            "process \"/bin/sh -c false\" did not complete successfully: exit code: 1",
            Some(step),
        );
        assert_eq!(
            err.to_string(),
            "Dockerfile:3:1: process \"/bin/sh -c false\" did not complete successfully: exit code: 1"
        );
        let wrapped = anyhow::Error::new(err);
        assert_eq!(
            Located::detail_of(&wrapped),
            Some(
                "------\n > [stage-0 2] RUN false:\noops\n------\n\
                 Dockerfile:3\n--------------------\n   \
                 1 |     FROM busybox\n   \
                 2 |     RUN echo hi\n   \
                 3 | >>> RUN false\n\
                 --------------------\n\
                 ERROR: process \"/bin/sh -c false\" did not complete successfully: exit code: 1"
            )
        );
        assert_eq!(Located::detail_of(&anyhow::anyhow!("plain")), None);
    }
}
