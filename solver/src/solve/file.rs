//! The file op (COPY, ADD, WORKDIR and the like): file actions applied on
//! top of input 0, reading other inputs (stages, images, downloads,
//! contexts with `.dockerignore` applied). Its key covers the context
//! files it copies. Checksumming those files, and copying and packing
//! the layer, each hold a slot of the CPU pool ([`super::CpuPool`]). A
//! layer nothing in the build reads as files is written straight into its
//! tar where it can be ([`layer::LayerDir::Optional`]).

use super::context_tree::ContextTree;
use super::step::{combined, key_parts, run_step, Input, StepEnv, VertexResult};
use super::{CancelToken, StepError};
use crate::graph::Vertex;
use crate::layer;
use crate::op::{FileAction, FileOp};
use kiln_executor::{LayerStack, Source, SourceTree};

/// Runs the file op `file` of `vertex`: a cache hit, or a new layer.
pub(super) fn run(
    env: &StepEnv,
    vertex: &Vertex,
    file: &FileOp,
    inputs: &[Input],
    read: bool,
    cancel: &CancelToken,
) -> Result<Input, StepError> {
    let Some((VertexResult::Fs(base), _)) = inputs.first() else {
        return Err(StepError::NoFilesystem {
            what: "a file operation",
        });
    };
    // The context files a COPY reads are part of its key.
    let mut sums = Vec::new();
    for action in &file.actions {
        if let FileAction::Copy(copy) = action {
            if let Some((VertexResult::Context(ctx), _)) = inputs.get(copy.input) {
                let sum = env
                    .cpu
                    .run(cancel, || env.host.checksum(ctx, &copy.sources))?;
                sums.push(sum);
            }
        }
    }
    let parts = key_parts(&vertex.digest, inputs, combined(&sums));
    run_step(env, vertex, base, parts, cancel, || {
        env.materialize_inputs(inputs)?;
        // Copying and packing are kiln's own work: one CPU slot for both.
        let _slot = env.cpu.acquire(cancel)?;
        let stacks: Vec<Option<LayerStack>> = inputs
            .iter()
            .map(|(o, _)| match o {
                VertexResult::Fs(l) => Some(layer::stack_of(l)),
                VertexResult::Dir(d) => Some(LayerStack::new(vec![d.clone()])),
                VertexResult::Context(_) => None,
            })
            .collect();
        let trees: Vec<Option<ContextTree>> = inputs
            .iter()
            .map(|(o, _)| match o {
                VertexResult::Context(c) => {
                    env.host.contexts.get(c).map(|c| ContextTree(c.clone()))
                }
                _ => None,
            })
            .collect();
        let mut sources: Vec<Source<'_>> = Vec::new();
        for (stack, tree) in stacks.iter().zip(&trees) {
            match (stack, tree) {
                (Some(s), _) => sources.push(Source::Tree(s as &dyn SourceTree)),
                (None, Some(t)) => sources.push(Source::Context(t as &dyn SourceTree)),
                (None, None) => return Err(StepError::NoCopySource),
            }
        }
        let dir = if read {
            layer::LayerDir::Kept
        } else {
            layer::LayerDir::Optional
        };
        Ok(layer::build_layer(
            &env.store,
            &layer::stack_of(base),
            &file.actions,
            &sources,
            dir,
        )?)
    })
}
