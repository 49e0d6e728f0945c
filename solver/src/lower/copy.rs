//! COPY and ADD: sources from the context, a stage or an image; heredoc
//! files; destination rules; `--chown`, `--chmod`, `--exclude`, `--parents`.

use super::instructions::{clean_path, owner_spec};
use super::{flag_at, LowerError, Lowerer, StageState, Step};
use crate::graph::VertexId;
use crate::graph::VertexMeta;
use crate::op::{Chmod, CopyAction, FileAction, FileOp, GitSource, HttpSource, Op};
use kiln_parser::instruction::{CopySource, FileCopy};
use kiln_parser::Command;

impl Lowerer<'_> {
    pub(crate) fn copy(
        &mut self,
        st: &mut StageState,
        cmd: &Command,
        c: &FileCopy,
        is_add: bool,
    ) -> Step<()> {
        let at = cmd.span.start;
        let keyword = if is_add { "ADD" } else { "COPY" };
        let source_vertex = self.copy_source(st, c, flag_at(cmd, "from"))?;
        let dest_raw = &c.dest;
        let joined = if dest_raw.starts_with('/') {
            dest_raw.clone()
        } else {
            format!("{}/{dest_raw}", st.workdir().trim_end_matches('/'))
        };
        let dest_is_dir = dest_raw.ends_with('/')
            || dest_raw == "."
            || dest_raw.ends_with("/.")
            || joined.ends_with('/');
        let dest = clean_path(&joined);
        let owner = c.chown.as_deref().filter(|s| !s.is_empty()).map(owner_spec);
        let chmod = match c.chmod.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(m) => Some(parse_chmod(m).map_err(|message| LowerError::Invalid {
                at: flag_at(cmd, "chmod"),
                message,
            })?),
        };
        let git_source = |p: &str| is_add && is_git_source(p);
        let any_git = c
            .sources
            .iter()
            .any(|s| matches!(s, CopySource::Path(p) if git_source(p)));
        if let Some(checksum) = c.checksum.as_deref().filter(|_| is_add && !any_git) {
            crate::solve::http::check_checksum(checksum).map_err(|e| LowerError::Invalid {
                at: flag_at(cmd, "checksum"),
                message: e.to_string(),
            })?;
        }
        let mut actions = Vec::new();
        let mut paths = Vec::new();
        let mut inputs = vec![st.vertex];
        let several = c.sources.len() > 1;
        for source in &c.sources {
            match source {
                CopySource::Path(p) if git_source(p) => {
                    let mut url = match crate::context::git::GitUrl::detect(p) {
                        Some(Ok(u)) => u,
                        Some(Err(e)) => {
                            return Err(LowerError::Invalid {
                                at,
                                message: format!("{keyword} {e}"),
                            }
                            .into())
                        }
                        None => {
                            return Err(LowerError::Invalid {
                                at,
                                message: format!("{keyword} {p}: not a git URL"),
                            }
                            .into())
                        }
                    };
                    if let Some(checksum) = c.checksum.as_deref() {
                        url.pin(checksum).map_err(|e| LowerError::Invalid {
                            at: flag_at(cmd, "checksum"),
                            message: e.to_string(),
                        })?;
                    }
                    let git = self.graph.add(
                        Op::Git(GitSource {
                            url: p.clone(),
                            checksum: c.checksum.clone(),
                            keep_git_dir: c.keep_git_dir == Some(true),
                        }),
                        vec![],
                        VertexMeta {
                            name: format!("[{}] git {url}", st.name),
                            line: Some(at.line),
                            stage: Some(st.name.clone()),
                        },
                    );
                    inputs.push(git);
                    actions.push(FileAction::Copy(CopyAction {
                        input: inputs.len() - 1,
                        sources: vec!["/".to_string()],
                        dest: dest.clone(),
                        dest_is_dir: true,
                        owner: owner.clone(),
                        chmod: chmod.clone(),
                        unpack: false,
                        excludes: c.excludes.clone(),
                        parents: false,
                    }));
                }
                CopySource::Path(p)
                    if is_add && (p.starts_with("http://") || p.starts_with("https://")) =>
                {
                    crate::solve::http::check_url(p).map_err(|e| LowerError::Invalid {
                        at,
                        message: format!("{keyword} {e}"),
                    })?;
                    let filename = url_filename(p);
                    let http = self.graph.add(
                        Op::Http(HttpSource {
                            url: p.clone(),
                            checksum: c.checksum.clone(),
                            filename: filename.clone(),
                        }),
                        vec![],
                        VertexMeta {
                            name: format!("[{}] https {p}", st.name),
                            line: Some(at.line),
                            stage: Some(st.name.clone()),
                        },
                    );
                    inputs.push(http);
                    actions.push(FileAction::Copy(CopyAction {
                        input: inputs.len() - 1,
                        sources: vec![filename],
                        dest: dest.clone(),
                        dest_is_dir: dest_is_dir || several,
                        owner: owner.clone(),
                        chmod: chmod.clone(),
                        unpack: false,
                        excludes: Vec::new(),
                        parents: false,
                    }));
                }
                CopySource::Path(p) => paths.push(p.clone()),
                CopySource::Heredoc(h) => {
                    // `Command::expand` has already expanded an unquoted
                    // heredoc's body; expanding again would eat `\$`.
                    let data = h.chomped_content();
                    let path = if dest_is_dir {
                        clean_path(&format!("{dest}/{}", h.name))
                    } else {
                        dest.clone()
                    };
                    let mode = match &chmod {
                        Some(Chmod::Octal(m)) => *m,
                        _ => 0o644,
                    };
                    actions.push(FileAction::Mkfile {
                        path,
                        data: data.into_bytes(),
                        mode,
                        owner: owner.clone(),
                    });
                }
            }
        }
        if !paths.is_empty() {
            inputs.push(source_vertex);
            actions.insert(
                0,
                FileAction::Copy(CopyAction {
                    input: inputs.len() - 1,
                    sources: paths.clone(),
                    dest: dest.clone(),
                    dest_is_dir,
                    owner: owner.clone(),
                    chmod: chmod.clone(),
                    unpack: is_add && c.unpack != Some(false),
                    excludes: c.excludes.clone(),
                    parents: c.parents,
                }),
            );
        }
        let meta = st.meta(cmd);
        st.vertex = self.graph.add(Op::File(FileOp { actions }), inputs, meta);

        // History in BuildKit's words: --from, --link and --checksum left out.
        let mut text = vec![keyword.to_string()];
        if let Some(o) = &c.chown {
            text.push(format!("--chown={o}"));
        }
        if let Some(m) = &c.chmod {
            text.push(format!("--chmod={m}"));
        }
        for e in &c.excludes {
            text.push(format!("--exclude={e}"));
        }
        if c.parents {
            text.push("--parents".into());
        }
        for s in &c.sources {
            text.push(match s {
                CopySource::Path(p) => p.clone(),
                CopySource::Heredoc(h) => format!("<<{}", h.name),
            });
        }
        text.push(dest_raw.clone());
        st.history(format!("{} # buildkit", text.join(" ")), false);
        Ok(())
    }

    /// The vertex COPY reads from: the context, a stage, a named context or
    /// an image.
    fn copy_source(
        &mut self,
        st: &StageState,
        c: &FileCopy,
        at: kiln_parser::Position,
    ) -> Step<VertexId> {
        self.source_vertex(st, c.from.as_deref(), at, Reader::Copy)
    }

    /// The vertex `from` names (a stage, a named context or an image), or
    /// the main context when there is none. A stage defined after the
    /// reader's is an error, as in BuildKit (it would not be built yet).
    pub(crate) fn source_vertex(
        &mut self,
        st: &StageState,
        from: Option<&str>,
        at: kiln_parser::Position,
        reader: Reader<'_>,
    ) -> Step<VertexId> {
        let Some(from) = from.filter(|f| !f.is_empty()) else {
            return Ok(self.context_vertex());
        };
        if let Some(index) = self.find_stage(from) {
            if index == st.index {
                return Err(LowerError::Circular {
                    at,
                    stage: from.to_string(),
                }
                .into());
            }
            if index > st.index {
                let message = match reader {
                    Reader::Copy => format!(
                        "cannot copy from stage {}, it needs to be defined before current stage {}",
                        kiln_parser::go_quote(from),
                        kiln_parser::go_quote(&st.name)
                    ),
                    Reader::Mount { target } => format!(
                        "cannot mount from stage {} to {}, stage needs to be defined before current command",
                        kiln_parser::go_quote(from),
                        kiln_parser::go_quote(target)
                    ),
                };
                return Err(LowerError::Invalid { at, message }.into());
            }
            return Ok(self.stage(index, at)?.vertex);
        }
        if let Some((name, super::NamedContext::Local(dir))) = self.named_context(from) {
            return Ok(self.named_context_vertex(&name, &dir));
        }
        let platform = st.platform.clone();
        let (v, _) = self.image(from, &platform, at)?;
        Ok(v)
    }
}

/// What reads from another stage, for the error when that stage comes
/// later.
#[derive(Clone, Copy)]
pub(crate) enum Reader<'a> {
    /// `COPY --from` (or `ADD --from`).
    Copy,
    /// `RUN --mount=from=...,target=TARGET`.
    Mount {
        /// The mount's target as written.
        target: &'a str,
    },
}

/// The file name an ADD of `url` saves as: the last path segment.
fn url_filename(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let after_host = path.splitn(4, '/').nth(3).unwrap_or("");
    after_host
        .rsplit('/')
        .find(|s| !s.is_empty())
        .unwrap_or("__unnamed__")
        .to_string()
}

/// `--chmod`: octal (`755`, `0644`) or symbolic (`u+x,go-w`, `a=r`).
pub(crate) fn parse_chmod(text: &str) -> std::result::Result<Chmod, String> {
    if text.chars().all(|c| c.is_ascii_digit()) {
        return u32::from_str_radix(text, 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .map(Chmod::Octal)
            .ok_or_else(|| format!("invalid --chmod={text}: not an octal mode"));
    }
    for clause in text.split(',') {
        let rest = clause.trim_start_matches(['u', 'g', 'o', 'a']);
        let mut chars = rest.chars();
        let ok = matches!(chars.next(), Some('+' | '-' | '='))
            && chars.all(|c| matches!(c, 'r' | 'w' | 'x' | 'X' | 's' | 't'));
        if !ok {
            return Err(format!(
                "invalid --chmod={text}: {clause:?} is not a symbolic mode"
            ));
        }
    }
    Ok(Chmod::Symbolic(text.to_string()))
}

/// Whether an ADD source is a git repository: a git URL as BuildKit's
/// gitutil reads it, except the `github.com/...` shorthand, which ADD
/// takes for a local path (BuildKit's `IndistinguishableFromLocal`).
fn is_git_source(p: &str) -> bool {
    !p.starts_with("github.com/") && crate::context::git::is_git_url(p)
}
