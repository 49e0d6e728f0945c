//! Build variables: global ARGs, stage ARGs and ENV, with BuildKit's
//! scoping rules.
//!
//! - ARGs before the first FROM are visible only to FROM lines, unless a
//!   stage re-declares them with `ARG NAME`.
//! - `--build-arg` overrides a declared ARG's default; undeclared build
//!   args are unused (the proxy ARGs excepted).
//! - Predefined platform ARGs (`TARGETPLATFORM`, `BUILDOS`, ...) have
//!   values without a default, but are visible only once declared.
//! - A later declaration wins: an `ARG` after an `ENV` of the same name
//!   overrides it for expansion and RUN (not in the config Env).

use kiln_oci::Platform;
use std::collections::BTreeMap;

/// The proxy ARGs passed from `--build-arg` to RUN without declaration.
pub(crate) const PROXY_ARGS: &[&str] = kiln_parser::predefined::CLASSIC_PROXY_ARGS;

/// The values of the predefined platform ARGs.
pub(crate) fn predefined(target: &Platform, build: &Platform) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (prefix, p) in [("TARGET", target), ("BUILD", build)] {
        // As BuildKit: `linux/arm64`, not `linux/arm64/v8`.
        m.insert(format!("{prefix}PLATFORM"), p.short_string());
        m.insert(format!("{prefix}OS"), p.os.clone());
        m.insert(format!("{prefix}ARCH"), p.architecture.clone());
        m.insert(format!("{prefix}VARIANT"), p.short_variant().to_string());
    }
    m
}

/// Variables in scope in one stage, in declaration order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scope {
    /// name → (value, is_arg); later entries replace earlier ones in place.
    vars: Vec<(String, String, bool)>,
    /// Every ARG declaration in order, repeats kept (BuildKit's RUN
    /// history lists `|2 V=cli V=cli` after a re-declaration).
    declared: Vec<(String, String)>,
}

impl Scope {
    /// Sets a variable (an ENV or an ARG), moving it to the end.
    pub(crate) fn set(&mut self, name: &str, value: &str, is_arg: bool) {
        self.vars.retain(|(n, _, _)| n != name);
        self.vars
            .push((name.to_string(), value.to_string(), is_arg));
        if is_arg {
            self.declared.push((name.to_string(), value.to_string()));
        }
    }

    /// Declares an ARG. With a value it is set as [`Scope::set`] sets it;
    /// without one (no build arg, default or global value) the stage keeps
    /// what it has under that name, or leaves the name unset.
    pub(crate) fn declare(&mut self, name: &str, value: Option<&str>) {
        match value {
            Some(v) => self.set(name, v, true),
            None => self.declared.push((name.to_string(), String::new())),
        }
    }

    /// The map used to expand words.
    pub(crate) fn expansion_env(&self) -> BTreeMap<String, String> {
        self.vars
            .iter()
            .map(|(n, v, _)| (n.clone(), v.clone()))
            .collect()
    }

    /// Every ARG declaration so far, repeats kept, each with the value in
    /// force now if the name has one, else its declared value: RUN's
    /// `|N k=v` history prefix.
    pub(crate) fn declared_args(&self) -> Vec<(String, String)> {
        self.declared
            .iter()
            .map(|(name, declared)| {
                let now = self.vars.iter().find(|(n, _, _)| n == name);
                let value = now.map_or(declared, |(_, v, _)| v);
                (name.clone(), value.clone())
            })
            .collect()
    }

    /// The ARGs whose value is in force (an ENV set later hides them).
    pub(crate) fn live_args(&self) -> Vec<(String, String)> {
        self.vars
            .iter()
            .filter(|(_, _, a)| *a)
            .map(|(n, v, _)| (n.clone(), v.clone()))
            .collect()
    }
}
