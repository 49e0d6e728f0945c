//! The bake definition every file format reads into: targets and groups
//! with buildx's field names (the names of `--print`'s JSON and of the
//! HCL and JSON files), merged file over file, `inherits` resolved and
//! `--set` applied.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Most targets (after matrix expansion) one definition may hold.
pub(super) const MAX_TARGETS: usize = 1024;
/// Deepest `inherits` chain.
pub(super) const MAX_INHERITS_DEPTH: usize = 64;

/// One target: the settings of one `kiln build`. Unset fields are
/// `None`, so a later file or an inheriting target overrides only what it
/// sets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Target {
    /// What the target is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) description: Option<String>,
    /// Targets whose settings this one starts from.
    #[serde(skip_serializing)]
    pub(super) inherits: Option<Vec<String>>,
    /// The build context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) context: Option<String>,
    /// Named contexts (`--build-context`), `target:NAME` included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) contexts: Option<BTreeMap<String, String>>,
    /// The Dockerfile, relative to the context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) dockerfile: Option<String>,
    /// The Dockerfile's text, instead of a file.
    #[serde(rename = "dockerfile-inline", skip_serializing_if = "Option::is_none")]
    pub(super) dockerfile_inline: Option<String>,
    /// Build arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) args: Option<BTreeMap<String, String>>,
    /// Manifest annotations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) annotations: Option<Vec<String>>,
    /// Attestations (`--attest`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) attest: Option<Vec<String>>,
    /// Image labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) labels: Option<BTreeMap<String, String>>,
    /// Image names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tags: Option<Vec<String>>,
    /// `--cache-from` values.
    #[serde(rename = "cache-from", skip_serializing_if = "Option::is_none")]
    pub(super) cache_from: Option<Vec<String>>,
    /// `--cache-to` values.
    #[serde(rename = "cache-to", skip_serializing_if = "Option::is_none")]
    pub(super) cache_to: Option<Vec<String>>,
    /// The Dockerfile stage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) target: Option<String>,
    /// `--secret` values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) secret: Option<Vec<String>>,
    /// `--ssh` values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) ssh: Option<Vec<String>>,
    /// Platforms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) platforms: Option<Vec<String>>,
    /// `--output` values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) output: Option<Vec<String>>,
    /// `--pull`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) pull: Option<bool>,
    /// `--no-cache`.
    #[serde(rename = "no-cache", skip_serializing_if = "Option::is_none")]
    pub(super) no_cache: Option<bool>,
    /// `--no-cache-filter` stages.
    #[serde(rename = "no-cache-filter", skip_serializing_if = "Option::is_none")]
    pub(super) no_cache_filter: Option<Vec<String>>,
    /// `--network`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) network: Option<String>,
    /// `--add-host` entries, name to address.
    #[serde(rename = "extra-hosts", skip_serializing_if = "Option::is_none")]
    pub(super) extra_hosts: Option<BTreeMap<String, String>>,
    /// `--shm-size` (accepted and printed; `kiln build` has its own flag).
    #[serde(rename = "shm-size", skip_serializing_if = "Option::is_none")]
    pub(super) shm_size: Option<String>,
    /// `--ulimit` values (accepted and printed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) ulimits: Option<Vec<String>>,
    /// `--call`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) call: Option<String>,
    /// Privileges the target needs (`--allow`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) entitlements: Option<Vec<String>>,
}

/// Every field a target may have, as the files spell them.
pub(super) const FIELDS: [&str; 27] = [
    "description",
    "inherits",
    "context",
    "contexts",
    "dockerfile",
    "dockerfile-inline",
    "args",
    "annotations",
    "attest",
    "labels",
    "tags",
    "cache-from",
    "cache-to",
    "target",
    "secret",
    "ssh",
    "platforms",
    "output",
    "pull",
    "no-cache",
    "no-cache-filter",
    "network",
    "extra-hosts",
    "shm-size",
    "ulimits",
    "call",
    "entitlements",
];

/// Map fields: merged key by key; every other field is replaced whole.
const MAP_FIELDS: [&str; 4] = ["args", "labels", "contexts", "extra-hosts"];
/// List-of-strings fields.
const LIST_FIELDS: [&str; 14] = [
    "inherits",
    "annotations",
    "attest",
    "tags",
    "cache-from",
    "cache-to",
    "secret",
    "ssh",
    "platforms",
    "output",
    "no-cache-filter",
    "ulimits",
    "entitlements",
    "platform",
];

impl Target {
    /// Reads a target from its fields as JSON values (an evaluated HCL
    /// block or a JSON file's object): numbers and booleans in maps and
    /// lists become strings, nulls are left out, as buildx does.
    pub(super) fn from_json(fields: serde_json::Map<String, serde_json::Value>) -> Result<Target> {
        let mut clean = serde_json::Map::new();
        for (k, v) in fields {
            let v = if MAP_FIELDS.contains(&k.as_str()) {
                match v {
                    serde_json::Value::Object(m) => serde_json::Value::Object(
                        m.into_iter()
                            .filter_map(|(k, v)| scalar(v).map(|v| (k, v.into())))
                            .collect(),
                    ),
                    serde_json::Value::Null => continue,
                    other => bail!("{k}: expected a map, found {other}"),
                }
            } else if LIST_FIELDS.contains(&k.as_str()) {
                match v {
                    serde_json::Value::Array(a) => serde_json::Value::Array(
                        a.into_iter()
                            .filter_map(scalar)
                            .map(serde_json::Value::String)
                            .collect(),
                    ),
                    serde_json::Value::Null => continue,
                    other => bail!("{k}: expected a list, found {other}"),
                }
            } else if v.is_null() {
                continue;
            } else {
                v
            };
            clean.insert(k, v);
        }
        serde_json::from_value(serde_json::Value::Object(clean)).map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// Sets what `over` sets: maps key by key, other fields whole.
    pub(super) fn merge(&mut self, over: &Target) {
        macro_rules! whole {
            ($($f:ident),*) => {$(
                if over.$f.is_some() { self.$f = over.$f.clone(); }
            )*};
        }
        macro_rules! maps {
            ($($f:ident),*) => {$(
                if let Some(m) = &over.$f {
                    self.$f.get_or_insert_with(Default::default).extend(m.clone());
                }
            )*};
        }
        whole!(
            description,
            inherits,
            context,
            dockerfile,
            dockerfile_inline,
            annotations,
            attest,
            tags,
            cache_from,
            cache_to,
            target,
            secret,
            ssh,
            platforms,
            output,
            pull,
            no_cache,
            no_cache_filter,
            network,
            shm_size,
            ulimits,
            call,
            entitlements
        );
        maps!(args, labels, contexts, extra_hosts);
    }

    /// Applies one `--set` key (after `TARGET.`) and its value.
    pub(super) fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let list = || value.split(',').map(str::to_string).collect::<Vec<_>>();
        let one = || vec![value.to_string()];
        let flag = || -> Result<bool> {
            match value {
                "true" | "1" | "" => Ok(true),
                "false" | "0" => Ok(false),
                _ => bail!("expected true or false, found {value:?}"),
            }
        };
        if let Some((map, k)) = key.split_once('.') {
            let field = match map {
                "args" => &mut self.args,
                "labels" => &mut self.labels,
                "contexts" => &mut self.contexts,
                "extra-hosts" => &mut self.extra_hosts,
                _ => bail!("unknown key {key:?}"),
            };
            field
                .get_or_insert_with(Default::default)
                .insert(k.to_string(), value.to_string());
            return Ok(());
        }
        match key {
            "context" => self.context = Some(value.into()),
            "dockerfile" => self.dockerfile = Some(value.into()),
            "dockerfile-inline" => self.dockerfile_inline = Some(value.into()),
            "target" => self.target = Some(value.into()),
            "network" => self.network = Some(value.into()),
            "shm-size" => self.shm_size = Some(value.into()),
            "call" => self.call = Some(value.into()),
            "tags" => self.tags = Some(one()),
            "cache-from" => self.cache_from = Some(one()),
            "cache-to" => self.cache_to = Some(one()),
            "secrets" | "secret" => self.secret = Some(one()),
            "ssh" => self.ssh = Some(one()),
            "platform" | "platforms" => self.platforms = Some(list()),
            "output" => self.output = Some(one()),
            "annotations" => self.annotations = Some(one()),
            "attest" => self.attest = Some(one()),
            "no-cache-filter" => self.no_cache_filter = Some(list()),
            "ulimits" => self.ulimits = Some(one()),
            "entitlements" => self.entitlements = Some(list()),
            "no-cache" => self.no_cache = Some(flag()?),
            "pull" => self.pull = Some(flag()?),
            "push" => {
                if flag()? {
                    self.output
                        .get_or_insert_with(Vec::new)
                        .push("type=registry".into());
                }
            }
            _ => bail!("unknown key {key:?}"),
        }
        Ok(())
    }

    /// The list field `--set` names `key`, if it is one.
    fn list_field(&mut self, key: &str) -> Option<&mut Option<Vec<String>>> {
        Some(match key {
            "tags" => &mut self.tags,
            "cache-from" => &mut self.cache_from,
            "cache-to" => &mut self.cache_to,
            "secrets" | "secret" => &mut self.secret,
            "ssh" => &mut self.ssh,
            "output" => &mut self.output,
            "annotations" => &mut self.annotations,
            "attest" => &mut self.attest,
            "ulimits" => &mut self.ulimits,
            _ => return None,
        })
    }

    /// Fills in buildx's defaults for `--print` and building: context `.`,
    /// Dockerfile `Dockerfile` (unless inline).
    pub(super) fn with_defaults(mut self) -> Target {
        self.context.get_or_insert_with(|| ".".into());
        if self.dockerfile_inline.is_none() {
            self.dockerfile.get_or_insert_with(|| "Dockerfile".into());
        }
        self
    }
}

/// A scalar as a string (`None` for null; arrays and objects as JSON).
fn scalar(v: serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

/// A group: targets and groups built together.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Group {
    /// What the group is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) description: Option<String>,
    /// Its targets and groups.
    #[serde(default)]
    pub(super) targets: Vec<String>,
}

/// Every target and group of the bake files, merged.
#[derive(Debug, Clone, Default)]
pub(super) struct Definition {
    /// Targets by name.
    pub(super) targets: BTreeMap<String, Target>,
    /// Groups by name.
    pub(super) groups: BTreeMap<String, Group>,
    /// Targets whose `inherits` are resolved.
    resolved: BTreeSet<String>,
}

impl Definition {
    /// Merges a later file's definition over this one: a target's fields
    /// as [`Target::merge`], a group's targets replaced.
    pub(super) fn merge(&mut self, later: Definition) -> Result<()> {
        for (name, t) in later.targets {
            self.targets.entry(name).or_default().merge(&t);
        }
        for (name, g) in later.groups {
            self.groups.insert(name, g);
        }
        if self.targets.len() > MAX_TARGETS {
            bail!("more than {MAX_TARGETS} targets: split the bake files or build fewer at once");
        }
        Ok(())
    }

    /// Resolves the `inherits` of the targets `starts` (and of their
    /// parents), iteratively: a target's parents (in order) then its own
    /// fields. Cycles and chains deeper than [`MAX_INHERITS_DEPTH`] are
    /// refused. Targets already resolved are left as they are.
    pub(super) fn resolve_inherits(&mut self, starts: &[String]) -> Result<()> {
        for start in starts {
            // A depth-first walk with an explicit stack: (name, parents pushed).
            let mut stack: Vec<(String, bool)> = vec![(start.clone(), false)];
            let mut on_path: Vec<String> = Vec::new();
            while let Some((name, expanded)) = stack.pop() {
                if self.resolved.contains(&name) {
                    continue;
                }
                let target = self.targets.get(&name).with_context(|| {
                    format!(
                        "target {:?} inherits unknown target {name:?}",
                        on_path.last().unwrap_or(start)
                    )
                })?;
                let parents = target.inherits.clone().unwrap_or_default();
                if expanded {
                    on_path.pop();
                    let mut t = Target::default();
                    for p in &parents {
                        if let Some(parent) = self.targets.get(p) {
                            t.merge(parent);
                        }
                    }
                    let mut own = target.clone();
                    own.inherits = None;
                    t.merge(&own);
                    t.inherits = None;
                    self.targets.insert(name.clone(), t);
                    self.resolved.insert(name);
                    continue;
                }
                if on_path.contains(&name) {
                    bail!(
                        "target {name:?}: inherits cycle ({} -> {name})",
                        on_path.join(" -> ")
                    );
                }
                on_path.push(name.clone());
                if on_path.len() > MAX_INHERITS_DEPTH {
                    bail!("target {start:?}: inherits deeper than {MAX_INHERITS_DEPTH}");
                }
                stack.push((name, true));
                for p in parents.iter().rev() {
                    if on_path.contains(p) {
                        bail!(
                            "target {p:?}: inherits cycle ({} -> {p})",
                            on_path.join(" -> ")
                        );
                    }
                    if !self.resolved.contains(p) {
                        stack.push((p.clone(), false));
                    }
                }
            }
        }
        Ok(())
    }

    /// The targets `names` stand for (groups expanded, iteratively, each
    /// target once, in order), and the groups met on the way. With no
    /// names, the `default` group or target, as buildx.
    pub(super) fn select(&self, names: &[String]) -> Result<(Vec<String>, BTreeSet<String>)> {
        let wanted: Vec<String> = if names.is_empty() {
            if self.groups.contains_key("default") || self.targets.contains_key("default") {
                vec!["default".into()]
            } else {
                bail!("failed to find target \"default\": name targets or groups, or add `group \"default\"`");
            }
        } else {
            names.to_vec()
        };
        let mut out = Vec::new();
        let mut groups = BTreeSet::new();
        let mut stack: Vec<String> = wanted.into_iter().rev().collect();
        let mut steps = 0usize;
        while let Some(name) = stack.pop() {
            steps += 1;
            if steps > MAX_TARGETS * 16 {
                bail!("groups expand to too many names (a group cycle?)");
            }
            if let Some(g) = self.groups.get(&name) {
                if groups.insert(name.clone()) {
                    stack.extend(g.targets.iter().rev().cloned());
                }
            } else if self.targets.contains_key(&name) {
                if !out.contains(&name) {
                    out.push(name);
                }
            } else {
                bail!("failed to find target {name:?}");
            }
        }
        Ok((out, groups))
    }

    /// Applies `--set PATTERN.KEY=VALUE` values, in order; the pattern
    /// matches target names with `*` and `?` as in buildx. List keys
    /// given several times for one target collect every value;
    /// `KEY+=VALUE` appends to the files' list.
    pub(super) fn apply_sets(&mut self, sets: &[String], selected: &[String]) -> Result<()> {
        let mut lists: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for s in sets {
            let (lhs, value) = s
                .split_once('=')
                .with_context(|| format!("--set {s:?}: expected TARGET.KEY=VALUE"))?;
            // `KEY+=VALUE` appends to what the files give.
            let (lhs, append) = match lhs.strip_suffix('+') {
                Some(l) => (l, true),
                None => (lhs, false),
            };
            let (pattern, key) = lhs
                .split_once('.')
                .with_context(|| format!("--set {s:?}: expected TARGET.KEY=VALUE"))?;
            let matcher = globset::Glob::new(pattern)
                .with_context(|| format!("--set {s:?}: bad target pattern"))?
                .compile_matcher();
            let names: Vec<String> = selected
                .iter()
                .filter(|n| matcher.is_match(n.as_str()))
                .cloned()
                .collect();
            if names.is_empty() && !pattern.contains(['*', '?', '[']) {
                bail!("--set {s:?}: no target {pattern:?} is being built");
            }
            for name in names {
                let target = self.targets.entry(name.clone()).or_default();
                if let Some(field) = target.list_field(key) {
                    let all = lists.entry((name, key.to_string())).or_insert_with(|| {
                        if append {
                            field.clone().unwrap_or_default()
                        } else {
                            Vec::new()
                        }
                    });
                    all.push(value.to_string());
                    *field = Some(all.clone());
                } else if append {
                    bail!("--set {s:?}: += appends to list keys only");
                } else {
                    target
                        .set(key, value)
                        .with_context(|| format!("--set {s:?}"))?;
                }
            }
        }
        Ok(())
    }

    /// buildx's `--print` JSON: the groups met and the selected targets,
    /// with defaults filled in.
    pub(super) fn print_json(
        &self,
        targets: &[String],
        groups: &BTreeSet<String>,
    ) -> serde_json::Value {
        let groups: BTreeMap<&String, &Group> = groups
            .iter()
            .filter_map(|g| self.groups.get(g).map(|v| (g, v)))
            .collect();
        let targets: BTreeMap<&String, Target> = targets
            .iter()
            .filter_map(|t| self.targets.get(t).map(|v| (t, v.clone().with_defaults())))
            .collect();
        let mut out = serde_json::Map::new();
        if !groups.is_empty() {
            out.insert("group".into(), serde_json::json!(groups));
        }
        out.insert("target".into(), serde_json::json!(targets));
        serde_json::Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(json: serde_json::Value) -> Target {
        match json {
            serde_json::Value::Object(m) => Target::from_json(m).expect("target"),
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn maps_merge_by_key_and_lists_are_replaced() {
        let mut base = target(serde_json::json!({
            "args": {"A": "1", "B": 2}, "tags": ["x"], "pull": true
        }));
        let over = target(serde_json::json!({"args": {"B": "3"}, "tags": ["y"], "no-cache": null}));
        base.merge(&over);
        assert_eq!(
            base.args
                .as_ref()
                .and_then(|a| a.get("A"))
                .map(String::as_str),
            Some("1")
        );
        assert_eq!(
            base.args
                .as_ref()
                .and_then(|a| a.get("B"))
                .map(String::as_str),
            Some("3")
        );
        assert_eq!(base.tags, Some(vec!["y".to_string()]));
        assert_eq!(base.pull, Some(true));
        assert_eq!(base.no_cache, None);
    }

    #[test]
    fn set_keys_and_refusals() {
        let mut t = Target::default();
        t.set("args.K", "v").expect("args");
        t.set("platform", "linux/amd64,linux/arm64")
            .expect("platform");
        t.set("no-cache", "true").expect("no-cache");
        assert_eq!(t.platforms.as_ref().map(Vec::len), Some(2));
        assert_eq!(t.no_cache, Some(true));
        assert!(t.set("pull", "maybe").is_err());
        assert!(t.set("nope", "1").is_err());
        assert!(t.set("nope.K", "1").is_err());
    }

    #[test]
    fn set_replaces_collects_and_appends_lists() {
        let mut d = Definition::default();
        d.targets.insert(
            "app".into(),
            target(serde_json::json!({"tags": ["file:1"]})),
        );
        let names = vec!["app".to_string()];
        let sets = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut a = d.clone();
        a.apply_sets(&sets(&["app.tags=x", "a*.tags=y"]), &names)
            .expect("set");
        assert_eq!(a.targets["app"].tags, Some(vec!["x".into(), "y".into()]));
        let mut b = d.clone();
        b.apply_sets(&sets(&["app.tags+=x", "app.tags+=y"]), &names)
            .expect("append");
        assert_eq!(
            b.targets["app"].tags,
            Some(vec!["file:1".into(), "x".into(), "y".into()])
        );
        assert!(d
            .clone()
            .apply_sets(&sets(&["app.target+=x"]), &names)
            .is_err());
        assert!(d
            .clone()
            .apply_sets(&sets(&["other.tags=x"]), &names)
            .is_err());
        // A pattern that matches nothing is not an error.
        assert!(d.clone().apply_sets(&sets(&["zz*.tags=x"]), &names).is_ok());
    }

    #[test]
    fn groups_expand_iteratively_and_a_group_cycle_ends() {
        let mut d = Definition::default();
        d.targets.insert("a".into(), Target::default());
        d.targets.insert("b".into(), Target::default());
        let group = |t: &[&str]| Group {
            description: None,
            targets: t.iter().map(|s| s.to_string()).collect(),
        };
        d.groups.insert("default".into(), group(&["g1", "b"]));
        d.groups.insert("g1".into(), group(&["a", "g2"]));
        d.groups.insert("g2".into(), group(&["g1", "b"]));
        let (targets, groups) = d.select(&[]).expect("select");
        assert_eq!(targets, ["a", "b"]);
        assert_eq!(groups.len(), 3);
        assert!(d.select(&["missing".into()]).is_err());
    }
}
