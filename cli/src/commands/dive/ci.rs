//! dive's CI mode: three rules with thresholds from flags, a `.dive-ci`
//! YAML file or dive's defaults, checked against an analysis.

use super::analysis::{printable, Analysis};
use super::human_bytes;
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::path::Path;

/// The rules' names, as `.dive-ci` spells them, with their flags and
/// dive's defaults.
const RULES: [(&str, &str, &str); 3] = [
    ("lowestEfficiency", "--lowest-efficiency", "0.9"),
    ("highestWastedBytes", "--highest-wasted-bytes", "disabled"),
    (
        "highestUserWastedPercent",
        "--highest-user-wasted-percent",
        "0.1",
    ),
];

/// One rule's threshold; `None` when disabled.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Fail below this efficiency.
    pub lowest_efficiency: Option<f64>,
    /// Fail above these wasted bytes.
    pub highest_wasted_bytes: Option<u64>,
    /// Fail above this wasted-over-user-bytes ratio.
    pub highest_user_wasted_percent: Option<f64>,
}

impl Rules {
    /// The rules from flags (`flags` in [`RULES`]' order), over those of
    /// the config file (`file`, else `.dive-ci` when present), over
    /// dive's defaults.
    pub fn resolve(file: Option<&Path>, flags: [Option<&str>; 3]) -> Result<Rules> {
        let mut values: [(String, String); 3] =
            RULES.map(|(_, _, default)| (default.to_string(), "dive's default".to_string()));
        let default_file = Path::new(".dive-ci");
        let file = match file {
            Some(f) => Some(f),
            None => default_file.is_file().then_some(default_file),
        };
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--ci-config {}: reading it", path.display()))?;
            for (key, value) in
                read_config(&text).map_err(|e| anyhow::anyhow!("{}:{e}", path.display()))?
            {
                let Some(i) = RULES.iter().position(|(k, _, _)| *k == key) else {
                    bail!(
                        "{}: unknown rule {key:?} (dive's rules: lowestEfficiency, highestWastedBytes, highestUserWastedPercent)",
                        path.display()
                    );
                };
                values[i] = (value, format!("{}: rules.{key}", path.display()));
            }
        }
        for (i, flag) in flags.iter().enumerate() {
            if let Some(value) = flag {
                values[i] = (value.to_string(), RULES[i].1.to_string());
            }
        }
        let disabled = |v: &str| v.trim() == "disabled";
        let ratio = |(v, from): &(String, String)| -> Result<Option<f64>> {
            if disabled(v) {
                return Ok(None);
            }
            let r: f64 = v
                .trim()
                .parse()
                .ok()
                .filter(|r: &f64| r.is_finite())
                .with_context(|| format!("{from}: {v:?} is not a number (e.g. 0.9) or disabled"))?;
            Ok(Some(r))
        };
        let bytes = |(v, from): &(String, String)| -> Result<Option<u64>> {
            if disabled(v) {
                return Ok(None);
            }
            parse_bytes(v).map(Some).with_context(|| {
                format!("{from}: {v:?} is not a size (e.g. 20MB, 1GiB, 1048576) or disabled")
            })
        };
        Ok(Rules {
            lowest_efficiency: ratio(&values[0])?,
            highest_wasted_bytes: bytes(&values[1])?,
            highest_user_wasted_percent: ratio(&values[2])?,
        })
    }
}

/// The `rules:` of a `.dive-ci` file as key and value text; an error
/// starts with `line:col:` where the YAML parser knows them.
fn read_config(text: &str) -> Result<Vec<(String, String)>> {
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|e| match e.location() {
            Some(at) => anyhow::anyhow!("{}:{}: {e}", at.line(), at.column()),
            None => anyhow::anyhow!(" {e}"),
        })?;
    let Some(rules) = doc.get("rules") else {
        return Ok(Vec::new());
    };
    let Some(map) = rules.as_mapping() else {
        bail!(" `rules` must be a map of rule names to values");
    };
    let mut out = Vec::new();
    for (key, value) in map {
        let Some(key) = key.as_str() else {
            bail!(" a rule name must be a string");
        };
        let value = match value {
            serde_yaml_ng::Value::String(s) => s.clone(),
            serde_yaml_ng::Value::Number(n) => n.to_string(),
            _ => bail!(" rules.{key}: the value must be a number or a string"),
        };
        out.push((key.to_string(), value));
    }
    Ok(out)
}

/// Reads a size as dive does (go-humanize's `ParseBytes`): a number, an
/// optional space and a unit, any case: `B`, SI `kB`/`MB`/`GB`/`TB`/`PB`/`EB`
/// (or just `k`, `m`...) in powers of 1000, `KiB`/`MiB`/... (or `ki`,
/// `mi`...) in powers of 1024.
pub fn parse_bytes(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .replace(',', "")
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)
        .with_context(|| format!("no number in {text:?}"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let (power, base) = match unit.as_str() {
        "" | "b" => (0, 1000f64),
        "k" | "kb" => (1, 1000.0),
        "ki" | "kib" => (1, 1024.0),
        "m" | "mb" => (2, 1000.0),
        "mi" | "mib" => (2, 1024.0),
        "g" | "gb" => (3, 1000.0),
        "gi" | "gib" => (3, 1024.0),
        "t" | "tb" => (4, 1000.0),
        "ti" | "tib" => (4, 1024.0),
        "p" | "pb" => (5, 1000.0),
        "pi" | "pib" => (5, 1024.0),
        "e" | "eb" => (6, 1000.0),
        "ei" | "eib" => (6, 1024.0),
        _ => bail!("unknown unit {unit:?}"),
    };
    let value = number * base.powi(power);
    if value >= u64::MAX as f64 {
        bail!("too large");
    }
    Ok(value as u64)
}

/// Checks the rules: dive's report (analysis figures, inefficient files,
/// a PASS/FAIL/SKIP line per rule, the tally) and whether all passed.
pub fn evaluate(rules: &Rules, a: &Analysis) -> (String, bool) {
    let mut out = String::new();
    let _ = writeln!(out, "  efficiency: {:.4} %", a.efficiency * 100.0);
    let _ = writeln!(
        out,
        "  wastedBytes: {} bytes ({})",
        a.wasted_bytes,
        human_bytes(a.wasted_bytes)
    );
    let _ = writeln!(
        out,
        "  userWastedPercent: {:.4} %",
        a.user_wasted_percent * 100.0
    );
    let _ = writeln!(out, "Inefficient Files:");
    let _ = writeln!(out, "{:>5}  {:>12}  File Path", "Count", "Wasted Space");
    if a.inefficiencies.is_empty() {
        let _ = writeln!(out, "None");
    }
    for file in &a.inefficiencies {
        let _ = writeln!(
            out,
            "{:>5}  {:>12}  {}",
            file.count,
            human_bytes(file.size),
            printable(&file.path)
        );
    }
    let _ = writeln!(out, "Results:");
    let mut results: Vec<(&str, Option<Option<String>>)> = vec![
        (
            "highestUserWastedPercent",
            rules.highest_user_wasted_percent.map(|max| {
                (a.user_wasted_percent > max).then(|| {
                    format!(
                        "too many bytes wasted, relative to the user bytes added (%-user-wasted-bytes={} > threshold={max})",
                        a.user_wasted_percent
                    )
                })
            }),
        ),
        (
            "highestWastedBytes",
            rules.highest_wasted_bytes.map(|max| {
                (a.wasted_bytes > max).then(|| {
                    format!(
                        "too many bytes wasted (wasted-bytes={} > threshold={max})",
                        a.wasted_bytes
                    )
                })
            }),
        ),
        (
            "lowestEfficiency",
            rules.lowest_efficiency.map(|min| {
                (a.efficiency < min).then(|| {
                    format!(
                        "image efficiency is too low (efficiency={} < threshold={min})",
                        a.efficiency
                    )
                })
            }),
        ),
    ];
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for (name, result) in results.drain(..) {
        match result {
            None => {
                skipped += 1;
                let _ = writeln!(out, "  SKIP: {name}: rule disabled");
            }
            Some(None) => {
                passed += 1;
                let _ = writeln!(out, "  PASS: {name}");
            }
            Some(Some(why)) => {
                failed += 1;
                let _ = writeln!(out, "  FAIL: {name}: {why}");
            }
        }
    }
    let pass = failed == 0;
    let _ = writeln!(
        out,
        "Result:{} [Total:3] [Passed:{passed}] [Failed:{failed}] [Warn:0] [Skipped:{skipped}]",
        if pass { "PASS" } else { "FAIL" }
    );
    (out, pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_dive_reads_them() {
        assert_eq!(parse_bytes("20MB").expect("size"), 20_000_000);
        assert_eq!(parse_bytes("20 mib").expect("size"), 20 * 1024 * 1024);
        assert_eq!(parse_bytes("1048576").expect("size"), 1_048_576);
        assert_eq!(parse_bytes("1.5kB").expect("size"), 1500);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("5 parsecs").is_err());
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_the_defaults() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("ci.yaml");
        std::fs::write(
            &file,
            "rules:\n  lowestEfficiency: 0.95\n  highestWastedBytes: 20MB\n",
        )
        .expect("write");
        let rules = Rules::resolve(Some(&file), [None, Some("disabled"), None]).expect("rules");
        assert_eq!(
            rules,
            Rules {
                lowest_efficiency: Some(0.95),
                highest_wasted_bytes: None,
                highest_user_wasted_percent: Some(0.1),
            }
        );
        std::fs::write(&file, "rules:\n  lowestEfficency: 0.95\n").expect("write");
        let err = Rules::resolve(Some(&file), [None; 3]).expect_err("typo");
        assert!(
            err.to_string().contains("unknown rule \"lowestEfficency\""),
            "{err}"
        );
        std::fs::write(&file, "rules:\n  lowestEfficiency: [\n").expect("write");
        let err = Rules::resolve(Some(&file), [None; 3]).expect_err("bad yaml");
        assert!(
            err.to_string().starts_with(&format!("{}:", file.display())),
            "{err}"
        );
        let err = Rules::resolve(None, [Some("high"), None, None]).expect_err("bad flag");
        assert!(err.to_string().contains("--lowest-efficiency"), "{err}");
    }
}
