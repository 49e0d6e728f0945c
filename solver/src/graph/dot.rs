//! The build graph as Graphviz DOT (`kiln build --print dag`).
//!
//! One `cluster_N` subgraph per stage (sources shared by stages, such as
//! base images and the build context, stay outside), a node shape per op
//! kind, edges styled by what the input is to the vertex (its root
//! filesystem, a RUN mount, a COPY source), and, when the states of a
//! build are known, nodes filled by state with a legend. Every string
//! goes through [`quote`], the one escaping function.

use super::{Graph, VertexId};
use crate::op::{ExecMount, FileAction, Op};
use kiln_oci::Digest;
use std::collections::HashMap;
use std::fmt::Write;

/// What happened to a vertex in a build, for colouring the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VertexState {
    /// Its result came from the cache.
    Cached,
    /// It ran.
    Built,
    /// It failed.
    Failed,
}

impl VertexState {
    const ALL: [VertexState; 3] = [VertexState::Cached, VertexState::Built, VertexState::Failed];

    fn name(self) -> &'static str {
        match self {
            VertexState::Cached => "cached",
            VertexState::Built => "built",
            VertexState::Failed => "failed",
        }
    }

    fn fill(self) -> &'static str {
        match self {
            VertexState::Cached => "lightblue",
            VertexState::Built => "palegreen",
            VertexState::Failed => "#ff6666",
        }
    }
}

/// Longest line of instruction text on a node, in characters, and how
/// many lines of it a node shows.
const LABEL_WIDTH: usize = 48;
const LABEL_LINES: usize = 3;
/// Longest text on an edge, in characters.
const MAX_EDGE_LABEL: usize = 30;

/// How an input reaches the vertex that uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum EdgeKind {
    /// The filesystem the op works on (input 0, a merge's layers).
    Input,
    /// A RUN `--mount` source (bind, or a cache mount's seed).
    Mount(String),
    /// A COPY/ADD source.
    Copy(String),
}

/// A string as a DOT quoted string: backslashes and quotes escaped, a
/// newline as Graphviz's line break (`\n`), other control characters
/// replaced by U+FFFD. Inside quotes `<`, `>`, `{` and `|` are plain text
/// (no node here has a record shape, whose labels would give `{` and `|`
/// a meaning), and `\N`-style escapes cannot appear since every
/// backslash is doubled.
pub(crate) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push(' '),
            c if c.is_control() => out.push(char::REPLACEMENT_CHARACTER),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `text` on one line (a continuation's backslash-newline, newlines and
/// runs of white space become one space), at most `max` characters (the
/// rest replaced by `…`).
fn one_line(text: &str, max: usize) -> String {
    let joined = text.replace("\\\r\n", " ").replace("\\\n", " ");
    let words: Vec<&str> = joined.split_whitespace().collect();
    let line = words.join(" ");
    if line.chars().count() <= max {
        return line;
    }
    let mut cut: String = line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `text` on at most `lines` lines of at most `width` characters, broken
/// at spaces (a longer word is cut), the rest replaced by `…`.
fn wrap(text: &str, width: usize, lines: usize) -> Vec<String> {
    let text = one_line(text, usize::MAX);
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in text.split(' ') {
        let len = current.chars().count();
        let fits = len == 0 || len + 1 + word.chars().count() <= width;
        if !fits {
            out.push(std::mem::take(&mut current));
        }
        if out.len() == lines {
            break;
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    if !current.is_empty() && out.len() < lines {
        out.push(current);
    }
    let shown: usize = out.iter().map(|l| l.chars().count() + 1).sum();
    let cut = shown < text.chars().count() + 1;
    for line in &mut out {
        if line.chars().count() > width {
            *line = one_line(line, width);
        }
    }
    if cut {
        if let Some(last) = out.last_mut() {
            let mut kept: String = last.chars().take(width.saturating_sub(1)).collect();
            kept.push('…');
            *last = kept;
        }
    }
    out
}

/// The node shape and style for an op kind.
fn shape(op: &Op) -> (&'static str, &'static str) {
    match op {
        Op::Scratch => ("box3d", "dashed"),
        Op::Image(_) => ("box3d", ""),
        Op::Context(_) => ("folder", ""),
        Op::Http(_) | Op::Git(_) => ("component", ""),
        Op::File(_) => ("note", ""),
        Op::Exec(_) => ("box", "rounded"),
        Op::Merge => ("diamond", ""),
    }
}

/// What each of a vertex's `inputs` inputs is to it.
fn edge_kinds(op: &Op, inputs: usize) -> Vec<EdgeKind> {
    let mut kinds = vec![EdgeKind::Input; inputs];
    let mut mark = |index: usize, kind: EdgeKind| {
        // Input 0 is the root filesystem even when a mount reads it too.
        if index > 0 {
            if let Some(slot) = kinds.get_mut(index) {
                if *slot == EdgeKind::Input {
                    *slot = kind;
                }
            }
        }
    };
    match op {
        Op::Exec(exec) => {
            for mount in &exec.mounts {
                match mount {
                    ExecMount::Bind { target, source, .. } => {
                        mark(source.input, EdgeKind::Mount(target.clone()));
                    }
                    ExecMount::Cache {
                        target,
                        seed: Some(source),
                        ..
                    } => mark(source.input, EdgeKind::Mount(target.clone())),
                    _ => {}
                }
            }
        }
        Op::File(file) => {
            for action in &file.actions {
                if let FileAction::Copy(copy) = action {
                    let what = copy.sources.first().cloned().unwrap_or_default();
                    mark(copy.input, EdgeKind::Copy(what));
                }
            }
        }
        _ => {}
    }
    kinds
}

/// `graph`'s vertices `ids` (inputs first) as DOT, filled by `states`
/// (vertex digest → state; empty for no colours and no legend).
pub(super) fn write(
    graph: &Graph,
    ids: &[VertexId],
    states: &HashMap<Digest, VertexState>,
) -> String {
    let mut out = String::from("digraph kiln {\n");
    out.push_str("  graph [rankdir=TB, fontname=\"Helvetica\", fontsize=11];\n");
    out.push_str("  node [fontname=\"Helvetica\", fontsize=10];\n");
    out.push_str("  edge [fontname=\"Helvetica\", fontsize=9];\n");

    // Stages in the order their first vertex appears.
    let mut stages: Vec<(&str, Vec<VertexId>)> = Vec::new();
    let mut loose: Vec<VertexId> = Vec::new();
    for id in ids {
        match graph.vertex(*id).meta.stage.as_deref() {
            Some(stage) => match stages.iter_mut().find(|(s, _)| *s == stage) {
                Some((_, members)) => members.push(*id),
                None => stages.push((stage, vec![*id])),
            },
            None => loose.push(*id),
        }
    }
    for id in &loose {
        node(&mut out, graph, *id, states, "  ");
    }
    for (n, (stage, members)) in stages.iter().enumerate() {
        let _ = writeln!(out, "  subgraph cluster_{n} {{");
        let _ = writeln!(
            out,
            "    label={}; style=\"rounded\"; color=\"gray50\";",
            quote(&if stage.starts_with("stage-") {
                stage.to_string()
            } else {
                format!("stage {stage}")
            })
        );
        for id in members {
            node(&mut out, graph, *id, states, "    ");
        }
        out.push_str("  }\n");
    }

    let shown: std::collections::HashSet<VertexId> = ids.iter().copied().collect();
    for id in ids {
        let v = graph.vertex(*id);
        for (input, kind) in v.inputs.iter().zip(edge_kinds(&v.op, v.inputs.len())) {
            if !shown.contains(input) {
                continue;
            }
            let attrs = match kind {
                EdgeKind::Input => String::new(),
                EdgeKind::Mount(target) => format!(
                    " [style=dashed, label={}]",
                    quote(&format!("mount {}", one_line(&target, MAX_EDGE_LABEL)))
                ),
                EdgeKind::Copy(source) => format!(
                    " [style=dotted, label={}]",
                    quote(&format!("copy {}", one_line(&source, MAX_EDGE_LABEL)))
                ),
            };
            let _ = writeln!(out, "  v{} -> v{}{attrs};", input.0, id.0);
        }
    }

    if !states.is_empty() {
        out.push_str("  subgraph cluster_legend {\n");
        out.push_str("    label=\"last build\"; style=\"dashed\"; color=\"gray50\";\n");
        for state in VertexState::ALL {
            let _ = writeln!(
                out,
                "    legend_{name} [label={label}, shape=box, style=filled, fillcolor={fill}];",
                name = state.name(),
                label = quote(state.name()),
                fill = quote(state.fill()),
            );
        }
        out.push_str("  }\n");
    }
    out.push_str("}\n");
    out
}

/// One node line: the instruction text, the op kind and a short digest.
fn node(
    out: &mut String,
    graph: &Graph,
    id: VertexId,
    states: &HashMap<Digest, VertexState>,
    indent: &str,
) {
    let v = graph.vertex(id);
    let hex = v.digest.hex();
    let short = hex.get(..12).unwrap_or(hex);
    let mut lines = wrap(&v.meta.name, LABEL_WIDTH, LABEL_LINES);
    lines.push(format!("{} {short}", v.op.kind()));
    let label = lines.join("\n");
    let (shape, style) = shape(&v.op);
    let mut styles: Vec<&str> = style.split(',').filter(|s| !s.is_empty()).collect();
    let mut fill = String::new();
    if let Some(state) = states.get(&v.digest) {
        styles.push("filled");
        fill = format!(", fillcolor={}", quote(state.fill()));
    }
    let style = if styles.is_empty() {
        String::new()
    } else {
        format!(", style={}", quote(&styles.join(",")))
    };
    let _ = writeln!(
        out,
        "{indent}v{} [label={}, shape={shape}{style}{fill}];",
        id.0,
        quote(&label)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::VertexMeta;
    use crate::op::{CopyAction, ExecMount, ExecOp, FileOp, MountSource};

    #[test]
    fn quote_escapes_what_dot_reads_specially() {
        assert_eq!(quote("plain"), "\"plain\"");
        assert_eq!(quote("a \"b\""), r#""a \"b\"""#);
        assert_eq!(quote(r"C:\dir\N"), r#""C:\\dir\\N""#);
        assert_eq!(quote("one\ntwo"), r#""one\ntwo""#);
        assert_eq!(quote("<b>{x|y}</b>"), "\"<b>{x|y}</b>\"");
        assert_eq!(quote("bell\u{7}nul\u{0}"), "\"bell\u{fffd}nul\u{fffd}\"");
        assert_eq!(quote("tab\there"), "\"tab here\"");
        assert_eq!(quote("ünï ✓"), "\"ünï ✓\"");
        // A trailing backslash does not escape the closing quote.
        assert_eq!(quote("end\\"), r#""end\\""#);
    }

    #[test]
    fn one_line_joins_continuations_and_truncates() {
        assert_eq!(
            one_line("RUN a && \\\n    b\n\tc", 60),
            "RUN a && b c".to_string()
        );
        let long = "x".repeat(100);
        let cut = one_line(&long, 10);
        assert_eq!(cut.chars().count(), 10);
        assert!(cut.ends_with('…'));
        assert_eq!(one_line("ééé", 2), "é…");
    }

    #[test]
    fn wrap_breaks_at_spaces_and_marks_the_cut() {
        assert_eq!(wrap("RUN a b", 48, 3), vec!["RUN a b"]);
        assert_eq!(wrap("aaa bbb ccc", 7, 3), vec!["aaa bbb", "ccc"]);
        assert_eq!(wrap("aaa bbb ccc ddd", 7, 2), vec!["aaa bbb", "ccc ddd"]);
        assert_eq!(
            wrap("aaa bbb ccc ddd eee", 7, 2),
            vec!["aaa bbb", "ccc dd…"]
        );
        assert_eq!(wrap(&"x".repeat(20), 8, 2), vec!["xxxxxxx…"]);
        assert_eq!(wrap("", 8, 2), Vec::<String>::new());
    }

    fn meta(name: &str, stage: Option<&str>) -> VertexMeta {
        VertexMeta {
            name: name.into(),
            line: None,
            stage: stage.map(String::from),
        }
    }

    #[test]
    fn stages_shapes_edges_and_colours() {
        let mut g = Graph::new();
        let base = g.add(Op::Scratch, vec![], meta("[internal] scratch", None));
        let ctx = g.add(
            Op::Context(crate::op::ContextSource {
                name: "context".into(),
            }),
            vec![],
            meta("[context] load build context", None),
        );
        let run = g.add(
            Op::Exec(ExecOp {
                args: vec!["true".into()],
                env: vec![],
                cwd: "/".into(),
                user: String::new(),
                network: Default::default(),
                security: Default::default(),
                files: vec![],
                mounts: vec![ExecMount::Bind {
                    target: "/src".into(),
                    source: MountSource {
                        input: 1,
                        path: "/".into(),
                    },
                    readonly: true,
                }],
                extra_hosts: vec![],
                shm_size: None,
                ulimits: vec![],
                cgroup_parent: None,
                platform: "linux/amd64".into(),
            }),
            vec![base, ctx],
            meta(
                "[build 1/2] RUN --mount=type=bind,target=/src true",
                Some("build"),
            ),
        );
        let copy = g.add(
            Op::File(FileOp {
                actions: vec![FileAction::Copy(CopyAction {
                    input: 1,
                    sources: vec!["/out/\"app\"".into()],
                    dest: "/app".into(),
                    dest_is_dir: false,
                    owner: None,
                    chmod: None,
                    unpack: false,
                    excludes: vec![],
                    parents: false,
                })],
            }),
            vec![base, run],
            meta(
                "[stage-1 1/1] COPY --from=build /out/\"app\" /app",
                Some("stage-1"),
            ),
        );
        let ids = g.closure(&[copy]);
        let mut states = HashMap::new();
        states.insert(g.vertex(run).digest.clone(), VertexState::Cached);
        states.insert(g.vertex(copy).digest.clone(), VertexState::Failed);
        let dot = write(&g, &ids, &states);
        assert!(
            dot.contains("subgraph cluster_0 {\n    label=\"stage build\""),
            "{dot}"
        );
        assert!(
            dot.contains("subgraph cluster_1 {\n    label=\"stage-1\""),
            "{dot}"
        );
        assert!(dot.contains("shape=folder"), "{dot}");
        assert!(dot.contains("shape=note"), "{dot}");
        assert!(dot.contains(&format!(
            "v{} -> v{} [style=dashed, label=\"mount /src\"]",
            ctx.0, run.0
        )));
        assert!(dot.contains(&format!(
            "v{} -> v{} [style=dotted, label=\"copy /out/\\\"app\\\"\"]",
            run.0, copy.0
        )));
        assert!(
            dot.contains(&format!("v{} -> v{};", base.0, run.0)),
            "{dot}"
        );
        assert!(dot.contains("fillcolor=\"lightblue\""), "{dot}");
        assert!(dot.contains("fillcolor=\"#ff6666\""), "{dot}");
        assert!(dot.contains("cluster_legend"), "{dot}");
        let plain = write(&g, &ids, &HashMap::new());
        assert!(
            !plain.contains("filled") && !plain.contains("legend"),
            "{plain}"
        );
    }
}
