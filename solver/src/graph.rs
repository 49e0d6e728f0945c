//! The build graph: vertices (an op and its inputs) identified by digest.
//!
//! A vertex's digest is sha256 of a versioned, canonical serialisation of
//! its op and its inputs' digests, so equal sub-graphs get equal digests;
//! [`Graph::add`] returns the existing vertex for a digest it already has,
//! and such a sub-graph runs once.

mod dot;

pub use dot::VertexState;

use crate::op::Op;
use kiln_oci::Digest;
use serde::Serialize;
use std::collections::HashMap;

/// Bumped whenever the canonical encoding of ops changes.
const GRAPH_VERSION: &str = "kiln.graph.v1";

/// An index into [`Graph::vertices`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct VertexId(pub usize);

/// Where a vertex came from, for progress and errors. Not hashed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VertexMeta {
    /// Display name (`[stage-1 2/4] COPY a.txt /a.txt`).
    pub name: String,
    /// Dockerfile line of the instruction, when it has one.
    pub line: Option<usize>,
    /// The stage the instruction belongs to (for `--no-cache-filter`).
    pub stage: Option<String>,
}

/// An op with its inputs.
#[derive(Debug, Clone, Serialize)]
pub struct Vertex {
    /// What to do.
    pub op: Op,
    /// Inputs, in the op's order.
    pub inputs: Vec<VertexId>,
    /// The content address of this vertex.
    pub digest: Digest,
    /// Names and positions.
    pub meta: VertexMeta,
}

/// A DAG of vertices, deduplicated by digest.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    vertices: Vec<Vertex>,
    by_digest: HashMap<Digest, VertexId>,
}

#[derive(Serialize)]
struct Canonical<'a> {
    version: &'static str,
    op: &'a Op,
    inputs: Vec<&'a str>,
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Graph {
        Graph::default()
    }

    /// Adds a vertex, or returns the existing one with the same digest
    /// (keeping its first metadata).
    pub fn add(&mut self, op: Op, inputs: Vec<VertexId>, meta: VertexMeta) -> VertexId {
        let canonical = Canonical {
            version: GRAPH_VERSION,
            op: &op,
            inputs: inputs
                .iter()
                .map(|i| self.vertices[i.0].digest.as_str())
                .collect(),
        };
        // Serialising plain data with string keys cannot fail.
        let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
        let digest = Digest::sha256(&bytes);
        if let Some(id) = self.by_digest.get(&digest) {
            return *id;
        }
        let id = VertexId(self.vertices.len());
        self.vertices.push(Vertex {
            op,
            inputs,
            digest: digest.clone(),
            meta,
        });
        self.by_digest.insert(digest, id);
        id
    }

    /// A vertex by id.
    ///
    /// # Panics
    /// When `id` did not come from this graph.
    pub fn vertex(&self, id: VertexId) -> &Vertex {
        &self.vertices[id.0]
    }

    /// Every vertex, inputs before the vertices that use them.
    pub fn vertices(&self) -> &[Vertex] {
        &self.vertices
    }

    /// Puts `prefix` at the front of every step name, inside its brackets
    /// (`[builder 1] RUN x` becomes `[linux/arm64 builder 1] RUN x`), as
    /// buildx names the steps of a multi-platform build. Names are not part
    /// of digests, so cache keys do not change.
    pub fn prefix_names(&mut self, prefix: &str) {
        for v in &mut self.vertices {
            v.meta.name = match v.meta.name.strip_prefix('[') {
                Some(rest) => format!("[{prefix} {rest}"),
                None => format!("[{prefix}] {}", v.meta.name),
            };
        }
    }

    /// Copies the vertices `roots` depend on from `other` into this graph
    /// (equal vertices are shared), naming each local context as
    /// `rename` says, and returns the new ids of `roots`.
    pub fn import(
        &mut self,
        other: &Graph,
        roots: &[VertexId],
        rename: &mut dyn FnMut(&str) -> String,
    ) -> Vec<VertexId> {
        let mut map: HashMap<VertexId, VertexId> = HashMap::new();
        for id in other.closure(roots) {
            let v = other.vertex(id);
            let op = match &v.op {
                Op::Context(c) => Op::Context(crate::op::ContextSource {
                    name: rename(&c.name),
                }),
                op => op.clone(),
            };
            // Inputs come before the vertices that use them.
            let inputs = v
                .inputs
                .iter()
                .filter_map(|i| map.get(i).copied())
                .collect();
            let new = self.add(op, inputs, v.meta.clone());
            map.insert(id, new);
        }
        roots.iter().filter_map(|r| map.get(r).copied()).collect()
    }

    /// The vertices `roots` depend on (themselves included), inputs first.
    pub fn closure(&self, roots: &[VertexId]) -> Vec<VertexId> {
        let mut keep = vec![false; self.vertices.len()];
        let mut stack: Vec<VertexId> = roots.to_vec();
        while let Some(id) = stack.pop() {
            if !keep[id.0] {
                keep[id.0] = true;
                stack.extend(self.vertices[id.0].inputs.iter().copied());
            }
        }
        (0..self.vertices.len())
            .filter(|i| keep[*i])
            .map(VertexId)
            .collect()
    }

    /// The sub-graph reaching `roots` as Graphviz DOT: a cluster per
    /// stage, a shape per op kind, edges styled by kind (input, mount,
    /// copy source), and nodes filled by `states` (vertex digest → what a
    /// build did with it; empty for a plain graph).
    pub fn to_dot(&self, roots: &[VertexId], states: &HashMap<Digest, VertexState>) -> String {
        dot::write(self, &self.closure(roots), states)
    }

    /// The sub-graph reaching `roots` as JSON: vertices with op, inputs (as
    /// digests) and names.
    pub fn to_json(&self, roots: &[VertexId]) -> serde_json::Value {
        let vertices: Vec<serde_json::Value> = self
            .closure(roots)
            .into_iter()
            .map(|id| {
                let v = &self.vertices[id.0];
                serde_json::json!({
                    "digest": v.digest.as_str(),
                    "name": v.meta.name,
                    "line": v.meta.line,
                    "op": v.op.shown(),
                    "inputs": v.inputs.iter().map(|i| self.vertices[i.0].digest.as_str()).collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::json!({ "vertices": vertices })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::{ContextSource, FileAction, FileOp};

    fn mkdir(path: &str) -> Op {
        Op::File(FileOp {
            actions: vec![FileAction::Mkdir {
                path: path.into(),
                mode: 0o755,
                owner: None,
                parents: true,
            }],
        })
    }

    #[test]
    fn printed_graphs_hide_url_passwords() {
        let mut g = Graph::new();
        let http = g.add(
            Op::Http(crate::op::HttpSource {
                url: "https://ci:hunter2@files.example/a.tgz".into(),
                checksum: None,
                filename: "a.tgz".into(),
            }),
            vec![],
            VertexMeta::default(),
        );
        let git = g.add(
            Op::Git(crate::op::GitSource {
                url: "https://x:s3cret@git.example/r.git#main".into(),
                checksum: None,
                keep_git_dir: false,
            }),
            vec![],
            VertexMeta::default(),
        );
        let json = g.to_json(&[http, git]).to_string();
        assert!(
            !json.contains("hunter2") && !json.contains("s3cret"),
            "{json}"
        );
        assert!(
            json.contains("https://ci:xxxxx@files.example/a.tgz"),
            "{json}"
        );
        assert!(json.contains(g.vertex(http).digest.as_str()));
    }

    #[test]
    fn equal_subgraphs_share_a_vertex() {
        let mut g = Graph::new();
        let a = g.add(Op::Scratch, vec![], VertexMeta::default());
        let b = g.add(
            Op::Scratch,
            vec![],
            VertexMeta {
                name: "other name".into(),
                line: Some(3),
                stage: Some("build".into()),
            },
        );
        assert_eq!(a, b, "metadata is not part of the digest");
        let x = g.add(mkdir("/x"), vec![a], VertexMeta::default());
        let y = g.add(mkdir("/x"), vec![b], VertexMeta::default());
        assert_eq!(x, y);
        let z = g.add(mkdir("/z"), vec![a], VertexMeta::default());
        assert_ne!(x, z);
        assert_eq!(g.vertices().len(), 3);
        let ctx = g.add(
            Op::Context(ContextSource {
                name: "context".into(),
            }),
            vec![],
            VertexMeta::default(),
        );
        assert_eq!(g.closure(&[x]), vec![a, x]);
        assert!(!g.closure(&[x]).contains(&ctx));
        assert!(g.to_dot(&[x, z], &HashMap::new()).contains("digraph"));
        assert_eq!(
            g.to_json(&[z])["vertices"].as_array().map(Vec::len),
            Some(2)
        );
    }

    #[test]
    fn input_order_matters() {
        let mut g = Graph::new();
        let a = g.add(mkdir("/a"), vec![], VertexMeta::default());
        let b = g.add(mkdir("/b"), vec![], VertexMeta::default());
        let ab = g.add(Op::Merge, vec![a, b], VertexMeta::default());
        let ba = g.add(Op::Merge, vec![b, a], VertexMeta::default());
        assert_ne!(ab, ba);
    }
}
