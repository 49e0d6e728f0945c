//! The script of a RUN, read by a small POSIX/bash command-line parser for
//! the rules that look inside RUN. (Not to be confused with
//! `kiln_parser::shell`, BuildKit's word expansion for instructions.)
//!
//! It is not a shell: it finds what the rules ask about, the way hadolint
//! asks ShellCheck's parser for it.
//!
//! * [`Script::parse`] reads a script into the list of simple commands it
//!   contains anywhere (inside `&&`/`||`/`;` lists, pipelines, subshells,
//!   `{ }` groups, `if`/`while`/`until`/`for`/`case` bodies, function bodies,
//!   `$(...)` and backticks), in pre-order: an outer command comes before
//!   the commands of its substitutions.
//! * Each [`Command`] has a name (its first word, when that word is literal;
//!   `busybox X`, `builtin X`, `command X` and `exec X` are named `X`) and
//!   its arguments flattened as ShellCheck's "oversimplify" does: quotes
//!   removed, escapes applied, and every expansion (`$X`, `${X}`, `$(...)`,
//!   backticks, `$((...))`) written as the text `${VAR}`.
//! * [`Script::has_pipes`] and [`Script::sets_pipefail`] answer DL4006's
//!   questions.
//!
//! A script that does not parse (an unbalanced quote, `fi` without `if`, a
//! stray `)`) yields no commands, as hadolint's parse does.

mod parse;

pub use parse::ScriptSyntaxError;

/// A parsed shell script: the simple commands it contains and whether it
/// has a pipe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Script {
    commands: Vec<Command>,
    has_pipes: bool,
    error: Option<ScriptSyntaxError>,
}

/// One simple command: its name and its flattened arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The command name (`apt-get`).
    pub name: String,
    /// Every word after the first one, flattened (see the module docs).
    pub args: Vec<String>,
    /// The same arguments as written (quotes, `$` and escapes kept).
    pub raw_args: Vec<String>,
    /// `NAME=value` words before the command name, flattened.
    pub assignments: Vec<String>,
}

impl Script {
    /// Parses `text` as a bash script. Never fails: a script with a syntax
    /// error has no commands, and [`Script::error`] says why.
    pub fn parse(text: &str) -> Script {
        match parse::parse_partial(text) {
            Ok((commands, has_pipes)) => Script {
                commands,
                has_pipes,
                error: None,
            },
            Err((error, _)) => Script {
                commands: Vec::new(),
                has_pipes: false,
                error: Some(error),
            },
        }
    }

    /// The simple commands, in pre-order.
    pub fn commands(&self) -> &[Command] {
        &self.commands
    }

    /// True when a pipeline with `|` (or `|&`) appears anywhere.
    pub fn has_pipes(&self) -> bool {
        self.has_pipes
    }

    /// The syntax error that stopped the parse, if any.
    pub fn error(&self) -> Option<&ScriptSyntaxError> {
        self.error.as_ref()
    }

    /// True when the script turns on `pipefail` (`set -o pipefail`,
    /// `set -euo pipefail`, `set -eo pipefail`, ...).
    pub fn sets_pipefail(&self) -> bool {
        self.commands
            .iter()
            .any(|c| c.name == "set" && c.has_flag("o") && c.has_arg("pipefail"))
    }

    /// True when any command is named `name`.
    pub fn has_command(&self, name: &str) -> bool {
        self.commands.iter().any(|c| c.name == name)
    }
}

/// A flag found among a command's arguments: its name and the index of the
/// argument it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag<'a> {
    /// `o` for `-o`, `a`/`b` for `-ab`, `no-cache` for `--no-cache=x`.
    pub name: &'a str,
    /// Index into [`Command::args`].
    pub arg: usize,
}

impl Command {
    /// The flags in the arguments: `--name[=value]` gives `name`; `-abc`
    /// gives `a`, `b` and `c`; `-` and `--` are not flags.
    pub fn flags(&self) -> Vec<Flag<'_>> {
        let mut out = Vec::new();
        for (i, arg) in self.args.iter().enumerate() {
            if arg == "-" || arg == "--" {
                continue;
            }
            if let Some(long) = arg.strip_prefix("--") {
                let name = long.split('=').next().unwrap_or(long);
                out.push(Flag { name, arg: i });
            } else if let Some(short) = arg.strip_prefix('-') {
                for (at, c) in short.char_indices() {
                    out.push(Flag {
                        name: &short[at..at + c.len_utf8()],
                        arg: i,
                    });
                }
            }
        }
        out
    }

    /// True when the flag `name` is present (see [`Command::flags`]).
    pub fn has_flag(&self, name: &str) -> bool {
        self.flags().iter().any(|f| f.name == name)
    }

    /// True when any of the flags `names` is present.
    pub fn has_any_flag(&self, names: &[&str]) -> bool {
        self.flags().iter().any(|f| names.contains(&f.name))
    }

    /// True when some argument equals `arg`.
    pub fn has_arg(&self, arg: &str) -> bool {
        self.args.iter().any(|a| a == arg)
    }

    /// True when the command is `name` and any argument is one of `args`
    /// (hadolint's `cmdHasArgs`; not positional).
    pub fn is_with_any_arg(&self, name: &str, args: &[&str]) -> bool {
        self.name == name && self.args.iter().any(|a| args.contains(&a.as_str()))
    }

    /// The arguments that are not flags. Values of flags stay (see
    /// [`Command::drop_flag_values`]).
    pub fn args_no_flags(&self) -> Vec<&str> {
        self.args
            .iter()
            .filter(|a| !is_flag_word(a))
            .map(String::as_str)
            .collect()
    }

    /// A copy without the argument that follows each of the flags `names`
    /// (hadolint's `dropFlagArg`: the next argument is dropped even when the
    /// value was given with `=`).
    pub fn drop_flag_values(&self, names: &[&str]) -> Command {
        let mut drop = Vec::new();
        for f in self.flags() {
            if names.contains(&f.name) && f.arg + 1 < self.args.len() {
                drop.push(f.arg + 1);
            }
        }
        let keep = |v: &Vec<String>| -> Vec<String> {
            v.iter()
                .enumerate()
                .filter(|(i, _)| !drop.contains(i))
                .map(|(_, a)| a.clone())
                .collect()
        };
        Command {
            name: self.name.clone(),
            args: keep(&self.args),
            raw_args: keep(&self.raw_args),
            assignments: self.assignments.clone(),
        }
    }
}

/// True for `-x`, `--xyz` words (but not `-` or `--`).
pub(crate) fn is_flag_word(arg: &str) -> bool {
    arg != "-" && arg != "--" && arg.starts_with('-')
}

#[cfg(test)]
mod tests;

impl Script {
    /// This script's commands followed by `other`'s.
    pub fn merged(mut self, other: Script) -> Script {
        self.commands.extend(other.commands);
        self.has_pipes |= other.has_pipes;
        if self.error.is_none() {
            self.error = other.error;
        }
        self
    }
}
