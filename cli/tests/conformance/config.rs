//! The normalised image config of `config.json` (FORMAT.md, "config.json"),
//! split into the part compared strictly and the history text.

use serde_json::{Map, Value};

/// The `config.<key>` fields copied verbatim (absent → `null`).
const CONFIG_KEYS: &[&str] = &[
    "ArgsEscaped",
    "Cmd",
    "Entrypoint",
    "Env",
    "ExposedPorts",
    "Healthcheck",
    "Labels",
    "OnBuild",
    "Shell",
    "StopSignal",
    "User",
    "Volumes",
    "WorkingDir",
];

/// Normalises an OCI image config blob exactly as `config.json` is written:
/// the listed `config` keys, `Author`, `os`, `architecture`, `layers` =
/// `len(rootfs.diff_ids)` and `history` as `{comment, created_by,
/// empty_layer}` (empty_layer defaulting to false).
pub fn normalise(raw: &Value) -> Value {
    let get = |v: &Value, key: &str| v.get(key).cloned().unwrap_or(Value::Null);
    let inner = raw.get("config").cloned().unwrap_or(Value::Null);
    let mut out = Map::new();
    out.insert("Author".into(), get(raw, "author"));
    for key in CONFIG_KEYS {
        out.insert((*key).into(), get(&inner, key));
    }
    out.insert("architecture".into(), get(raw, "architecture"));
    let history: Vec<Value> = raw
        .get("history")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .map(|h| {
                    let mut e = Map::new();
                    e.insert("comment".into(), get(h, "comment"));
                    e.insert("created_by".into(), get(h, "created_by"));
                    let empty = h.get("empty_layer").and_then(Value::as_bool);
                    e.insert("empty_layer".into(), Value::Bool(empty.unwrap_or(false)));
                    Value::Object(e)
                })
                .collect()
        })
        .unwrap_or_default();
    out.insert("history".into(), Value::Array(history));
    let layers = raw
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    out.insert("layers".into(), layers.into());
    out.insert("os".into(), get(raw, "os"));
    Value::Object(out)
}

/// The strictly compared view of a normalised config, as pretty JSON
/// lines: every key `golden` has except `history`, which is reduced to one
/// line holding its sequence of `empty_layer` flags. (The shared goldens
/// have no `ArgsEscaped`; the project's own do.)
pub fn strict_lines(normalised: &Value, golden: &Value) -> Vec<String> {
    let mut view = normalised.as_object().cloned().unwrap_or_default();
    view.remove("history");
    view.retain(|key, _| golden.get(key).is_some());
    let flags: Vec<String> = history(normalised)
        .iter()
        .map(|h| {
            h.get("empty_layer")
                .unwrap_or(&Value::Bool(false))
                .to_string()
        })
        .collect();
    let mut lines = pretty_lines(&Value::Object(view));
    lines.push(format!("history[].empty_layer: [{}]", flags.join(", ")));
    lines
}

/// The history text (BuildKit's presentation, compared softly): one line
/// per history entry with its `created_by` and `comment`.
pub fn history_lines(normalised: &Value) -> Vec<String> {
    history(normalised)
        .iter()
        .map(|h| {
            let text = |key: &str| match h.get(key) {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => "null".into(),
            };
            format!("{}  [comment: {}]", text("created_by"), text("comment"))
        })
        .collect()
}

fn history(normalised: &Value) -> &[Value] {
    normalised
        .get("history")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Pretty JSON (sorted keys, indent 2) split into lines.
fn pretty_lines(value: &Value) -> Vec<String> {
    let text = serde_json::to_string_pretty(&sort_keys(value)).expect("JSON renders");
    text.lines().map(str::to_string).collect()
}

/// A copy with object keys sorted, whatever order serde_json's map keeps.
fn sort_keys(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for key in keys {
                out.insert(key.clone(), sort_keys(&map[key]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(sort_keys).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_the_goldens() {
        let raw: Value = serde_json::from_str(
            r#"{"architecture":"amd64","os":"linux","author":"me",
                "config":{"Env":["A=1"],"Cmd":["sh"],"Unrelated":1},
                "rootfs":{"type":"layers","diff_ids":["sha256:a","sha256:b"]},
                "history":[{"created_by":"x"},
                           {"created_by":"y","empty_layer":true,"comment":"c"}]}"#,
        )
        .unwrap();
        let n = normalise(&raw);
        assert_eq!(n["Author"], "me");
        assert_eq!(n["Entrypoint"], Value::Null);
        assert_eq!(n["layers"], 2);
        assert!(n.get("Unrelated").is_none());
        assert_eq!(
            n["history"][0],
            serde_json::json!({"comment": null, "created_by": "x", "empty_layer": false})
        );
        let strict = strict_lines(&n, &n).join("\n");
        assert!(strict.ends_with("}\nhistory[].empty_layer: [false, true]"));
        assert!(!strict.contains("created_by"));
        assert_eq!(history_lines(&n)[1], "y  [comment: c]");
    }
}
