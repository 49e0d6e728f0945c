//! The merge op: the layers of its inputs stacked in order (a COPY
//! `--link` result on its base). Nothing runs; the key covers the inputs.

use super::step::{key_parts, Input, VertexResult};
use crate::graph::Vertex;

/// The inputs' layers, first input at the bottom.
pub(super) fn run(vertex: &Vertex, inputs: &[Input]) -> Input {
    let mut layers = Vec::new();
    for (out, _) in inputs {
        if let VertexResult::Fs(l) = out {
            layers.extend(l.iter().cloned());
        }
    }
    (
        VertexResult::Fs(layers),
        key_parts(&vertex.digest, inputs, None).key(),
    )
}
