//! Per-instruction word expansion: which arguments of which instruction
//! BuildKit expands with the build's ARG and ENV values, and how.
//!
//! Expanded: FROM (image, `--platform`), COPY/ADD (sources, destination,
//! `--from`, `--chown`, `--chmod`, `--checksum`, `--exclude`, heredoc bodies
//! not opened with a quoted delimiter), ENV and LABEL (keys and values), ARG
//! defaults, EXPOSE (with word splitting), VOLUME, USER, WORKDIR, STOPSIGNAL
//! and the values of `RUN --mount`. Left as written: RUN, CMD, ENTRYPOINT,
//! SHELL and HEALTHCHECK commands (the shell in the container expands them),
//! MAINTAINER and ONBUILD triggers (expanded when they fire).

use super::mount::RunMount;
use super::types::*;
use crate::error::{ErrorKind, ParseError};
use crate::heredoc::Heredoc;
use crate::shell::{Env, Lexer};

impl Command {
    /// Returns this command with its arguments expanded against `env`,
    /// following BuildKit's per-instruction rules (see the module docs).
    /// `lexer` should use the Dockerfile's escape character.
    ///
    /// # Errors
    /// A [`ParseError`] at this command's position when a word does not
    /// expand (`${X:?}` with X unset, a bad substitution, an unterminated
    /// quote) or an expanded value is invalid (a `--mount` field, an empty
    /// VOLUME).
    pub fn expand(&self, lexer: &Lexer, env: &dyn Env) -> Result<Command, ParseError> {
        let at = self.span.start;
        let mut x = Expander { lexer, env, at };
        let instruction = match &self.instruction {
            Instruction::From(f) => Instruction::From(From {
                image: x.word(&f.image)?,
                platform: x.opt(&f.platform)?,
                ..f.clone()
            }),
            Instruction::Copy(c) => Instruction::Copy(x.file_copy(c)?),
            Instruction::Add(c) => Instruction::Add(x.file_copy(c)?),
            Instruction::Env(kv) => Instruction::Env(x.key_values(kv)?),
            Instruction::Label(kv) => Instruction::Label(x.key_values(kv)?),
            Instruction::Arg(args) => Instruction::Arg(
                args.iter()
                    .map(|a| {
                        Ok(ArgDecl {
                            name: a.name.clone(),
                            default: x.opt(&a.default)?,
                        })
                    })
                    .collect::<Result<_, ParseError>>()?,
            ),
            Instruction::Expose(ports) => {
                let mut out = Vec::new();
                for p in ports {
                    out.extend(x.words(p)?);
                }
                Instruction::Expose(out)
            }
            Instruction::Volume(paths) => {
                let paths = x.each(paths)?;
                if paths.iter().any(|p| p.trim().is_empty()) {
                    return Err(ParseError::new(
                        at,
                        ErrorKind::Invalid("VOLUME specified can not be an empty string".into()),
                    ));
                }
                Instruction::Volume(paths)
            }
            Instruction::User(u) => Instruction::User(x.word(u)?),
            Instruction::Workdir(w) => Instruction::Workdir(x.word(w)?),
            Instruction::Stopsignal(s) => Instruction::Stopsignal(x.word(s)?),
            Instruction::Run(run) => Instruction::Run(x.run(run)?),
            other => other.clone(),
        };
        Ok(Command {
            instruction,
            ..self.clone()
        })
    }
}

struct Expander<'a> {
    lexer: &'a Lexer,
    env: &'a dyn Env,
    at: crate::span::Position,
}

impl Expander<'_> {
    fn fail(&self, word: &str, message: String) -> ParseError {
        ParseError::new(
            self.at,
            ErrorKind::Expansion {
                word: word.to_string(),
                message,
            },
        )
    }

    fn word(&mut self, word: &str) -> Result<String, ParseError> {
        self.lexer
            .process_word(word, self.env)
            .map_err(|e| self.fail(word, e.to_string()))
    }

    fn words(&mut self, word: &str) -> Result<Vec<String>, ParseError> {
        self.lexer
            .process_words(word, self.env)
            .map_err(|e| self.fail(word, e.to_string()))
    }

    fn opt(&mut self, word: &Option<String>) -> Result<Option<String>, ParseError> {
        word.as_deref().map(|w| self.word(w)).transpose()
    }

    fn each(&mut self, words: &[String]) -> Result<Vec<String>, ParseError> {
        words.iter().map(|w| self.word(w)).collect()
    }

    fn key_values(&mut self, kv: &KeyValues) -> Result<KeyValues, ParseError> {
        let pairs = kv
            .pairs
            .iter()
            .map(|p| {
                Ok(KeyValue {
                    key: self.word(&p.key)?,
                    value: self.word(&p.value)?,
                })
            })
            .collect::<Result<_, ParseError>>()?;
        Ok(KeyValues {
            pairs,
            legacy: kv.legacy,
        })
    }

    fn heredoc(&mut self, h: &Heredoc) -> Result<Heredoc, ParseError> {
        if !h.expand {
            return Ok(h.clone());
        }
        // Inline files keep their quotes: only variables are expanded.
        let lexer = self.lexer.skip_process_quotes(true);
        let content = lexer
            .process_word(&h.content, self.env)
            .map_err(|e| self.fail(&h.name, e.to_string()))?;
        Ok(Heredoc {
            content,
            ..h.clone()
        })
    }

    fn file_copy(&mut self, c: &FileCopy) -> Result<FileCopy, ParseError> {
        let sources = c
            .sources
            .iter()
            .map(|s| {
                Ok(match s {
                    CopySource::Path(p) => CopySource::Path(self.word(p)?),
                    CopySource::Heredoc(h) => CopySource::Heredoc(self.heredoc(h)?),
                })
            })
            .collect::<Result<_, ParseError>>()?;
        Ok(FileCopy {
            sources,
            dest: self.word(&c.dest)?,
            from: self.opt(&c.from)?,
            chown: self.opt(&c.chown)?,
            chmod: self.opt(&c.chmod)?,
            checksum: self.opt(&c.checksum)?,
            excludes: self.each(&c.excludes)?,
            ..c.clone()
        })
    }

    fn run(&mut self, run: &Run) -> Result<Run, ParseError> {
        let mut mounts = Vec::with_capacity(run.mounts.len());
        for m in &run.mounts {
            let lexer = self.lexer;
            let env = self.env;
            let mut expand = |v: &str| {
                lexer
                    .process_word(v, env)
                    .map(Some)
                    .map_err(|e| format!("{v:?}: {e}"))
            };
            let mount = RunMount::parse_with(&m.spec, &mut expand).map_err(|message| {
                ParseError::new(
                    m.span.start,
                    ErrorKind::InvalidFlagValue {
                        flag: "mount".into(),
                        message,
                    },
                )
            })?;
            mounts.push(MountFlag { mount, ..m.clone() });
        }
        Ok(Run {
            mounts,
            ..run.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::shell::Lexer;

    fn expand_all(src: &str, env: &[(&str, &str)]) -> Vec<crate::Instruction> {
        let df = crate::parse(src).unwrap();
        let lexer = Lexer::new(df.escape);
        df.commands()
            .map(|c| c.expand(&lexer, &env).unwrap().instruction)
            .collect()
    }

    #[test]
    fn expands_what_buildkit_expands() {
        use crate::instruction::*;
        let env = [("V", "1.2"), ("P", "80 443"), ("U", "app"), ("ID", "gomod")];
        let got = expand_all(
            "FROM img:$V\nENV A=\"x $V\" B=$U\nEXPOSE $P\nUSER $U\nWORKDIR /w/$U\nRUN echo $V\nRUN --mount=type=cache,id=$ID,target=/c,uid=${UID:-10} true\nCOPY --chown=$U a/$V /d/\nCOPY <<EOF <<'RAW' /x/\n\"$V\"\nEOF\n$V\nRAW\n",
            &env,
        );
        assert!(matches!(&got[0], Instruction::From(f) if f.image == "img:1.2"));
        match &got[1] {
            Instruction::Env(kv) => {
                assert_eq!(kv.pairs[0].value, "x 1.2");
                assert_eq!(kv.pairs[1].value, "app");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(got[2], Instruction::Expose(vec!["80".into(), "443".into()]));
        assert_eq!(got[3], Instruction::User("app".into()));
        assert_eq!(got[4], Instruction::Workdir("/w/app".into()));
        assert_eq!(
            got[5],
            Instruction::Run(match &got[5] {
                Instruction::Run(r) => {
                    assert_eq!(r.command, CommandLine::Shell("echo $V".into()));
                    r.clone()
                }
                other => panic!("{other:?}"),
            })
        );
        match &got[6] {
            Instruction::Run(r) => {
                assert_eq!(r.mounts[0].mount.id.as_deref(), Some("gomod"));
                assert_eq!(r.mounts[0].mount.uid, Some(10));
            }
            other => panic!("{other:?}"),
        }
        match &got[7] {
            Instruction::Copy(c) => {
                assert_eq!(c.chown.as_deref(), Some("app"));
                assert_eq!(c.sources, vec![CopySource::Path("a/1.2".into())]);
            }
            other => panic!("{other:?}"),
        }
        match &got[8] {
            Instruction::Copy(c) => match (&c.sources[0], &c.sources[1]) {
                (CopySource::Heredoc(a), CopySource::Heredoc(b)) => {
                    assert_eq!(a.content, "\"1.2\"\n");
                    assert_eq!(b.content, "$V\n");
                }
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn expansion_errors_have_positions() {
        let df = crate::parse("FROM a\nUSER ${U:?must be set}\n").unwrap();
        let cmd = &df.stages[0].commands[0];
        let err = cmd.expand(&Lexer::new('\\'), &[("X", "1")]).unwrap_err();
        assert_eq!(err.position.line, 2);
        assert!(err.to_string().contains("must be set"), "{err}");
    }
}
