//! `created_by` texts in BuildKit's wording, so `docker history` of a kiln
//! image reads like one BuildKit built.

use kiln_oci::HealthConfig;
use kiln_parser::go_quote;
use std::collections::BTreeMap;

/// Go's `%v` of a string slice: `[a b c]`.
pub(crate) fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// Go's `%q` of a string slice, space-separated in brackets: `["a" "b"]`.
pub(crate) fn go_quoted_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| go_quote(i)).collect();
    format!("[{}]", quoted.join(" "))
}

/// `EXPOSE map[80/tcp:{} 53/udp:{}]`: Go prints map keys sorted.
pub(crate) fn expose(ports: &BTreeMap<String, serde_json::Value>) -> String {
    let items: Vec<String> = ports.keys().map(|k| format!("{k}:{{}}")).collect();
    format!("EXPOSE map[{}]", items.join(" "))
}

/// Go's duration formatting for the whole seconds and sub-second values
/// Dockerfiles use (`30s`, `1m30s`, `0s`, `500ms`).
pub(crate) fn go_duration(nanos: u64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        let (unit, div) = if nanos < 1_000 {
            ("ns", 1)
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", trim_float(nanos as f64 / div as f64));
    }
    let total_secs = nanos / 1_000_000_000;
    let frac = nanos % 1_000_000_000;
    let (h, m, s) = (total_secs / 3600, (total_secs % 3600) / 60, total_secs % 60);
    let secs = if frac == 0 {
        format!("{s}s")
    } else {
        format!("{}s", trim_float(s as f64 + frac as f64 / 1e9))
    };
    match (h, m) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.9}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `HEALTHCHECK &{["CMD" "true"] "30s" "5s" "0s" "0s" '\x03'}`.
pub(crate) fn healthcheck(h: &HealthConfig) -> String {
    let test = go_quoted_list(h.test.as_deref().unwrap_or(&[]));
    let d = |v: Option<u64>| go_quote(&go_duration(v.unwrap_or(0)));
    let retries = h.retries.unwrap_or(0);
    let rune = match char::from_u32(retries) {
        Some(c) if (' '..='~').contains(&c) && c != '\'' && c != '\\' => format!("'{c}'"),
        _ => format!("'\\x{retries:02x}'"),
    };
    format!(
        "HEALTHCHECK &{{{test} {} {} {} {} {rune}}}",
        d(h.interval),
        d(h.timeout),
        d(h.start_period),
        d(h.start_interval)
    )
}

/// `RUN |2 A=1 B=2 /bin/sh -c cmd # buildkit`.
pub(crate) fn run(args: &[(String, String)], argv: &[String]) -> String {
    let mut out = String::from("RUN ");
    if !args.is_empty() {
        out.push_str(&format!("|{} ", args.len()));
        for (k, v) in args {
            out.push_str(&format!("{k}={v} "));
        }
    }
    out.push_str(&argv.join(" "));
    out.push_str(" # buildkit");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_like_go() {
        for (n, s) in [
            (0, "0s"),
            (30_000_000_000, "30s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (500_000_000, "500ms"),
            (1_500_000_000, "1.5s"),
        ] {
            assert_eq!(go_duration(n), s);
        }
    }

    #[test]
    fn healthcheck_text() {
        let h = HealthConfig {
            test: Some(vec!["CMD".into(), "true".into()]),
            interval: Some(30_000_000_000),
            timeout: Some(5_000_000_000),
            retries: Some(4),
            ..HealthConfig::default()
        };
        assert_eq!(
            healthcheck(&h),
            r#"HEALTHCHECK &{["CMD" "true"] "30s" "5s" "0s" "0s" '\x04'}"#
        );
    }
}
