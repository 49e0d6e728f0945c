//! The order stages are lowered in: only those the target needs, each
//! after the stages it names, with explicit stacks (never recursion) so
//! hostile chains of any depth are fine; and cycles, found first.

use super::{flag_at, Flow, LowerError, Lowerer, Result, StageOut, Step};
use kiln_parser::{Dockerfile, Position};

impl Lowerer<'_> {
    /// The stage `COPY --from` or `RUN --mount=from` names: see
    /// [`stage_index`].
    pub(crate) fn find_stage(&self, name: &str) -> Option<usize> {
        stage_index(&self.dockerfile.stages, name, None)
    }

    /// Lowers stage `target` and, first, every stage it needs, with an
    /// explicit work stack: a chain of thousands of stages needs no deeper
    /// native stack than one stage. `deps` are the stage references as
    /// written (lowered before a stage is tried); at a reference only known
    /// after expansion, the stage pauses until the one it names is
    /// lowered.
    pub(super) fn lower_target(
        &mut self,
        target: usize,
        deps: &[Vec<(usize, Position)>],
    ) -> Result<StageOut> {
        // (stage, whether its written references were pushed already)
        let mut work = vec![(target, false)];
        while let Some(&(index, pushed)) = work.last() {
            if self.done[index].is_some() {
                work.pop();
                continue;
            }
            self.in_progress[index] = true;
            if !pushed {
                if let Some(top) = work.last_mut() {
                    top.1 = true;
                }
                let waiting: Vec<usize> = deps[index]
                    .iter()
                    .map(|(j, _)| *j)
                    .filter(|j| *j != index && self.done[*j].is_none() && !self.in_progress[*j])
                    .collect();
                if !waiting.is_empty() {
                    work.extend(waiting.into_iter().rev().map(|j| (j, false)));
                    continue;
                }
            }
            match self.lower_stage(index) {
                Ok(out) => {
                    self.done[index] = Some(out);
                    self.in_progress[index] = false;
                    work.pop();
                }
                Err(Flow::Need(dep, at)) if self.in_progress[dep] => {
                    return Err(LowerError::Circular {
                        at,
                        stage: self.stage_name(dep),
                    });
                }
                Err(Flow::Need(dep, _)) => work.push((dep, false)),
                Err(Flow::Error(e)) => return Err(e),
            }
        }
        self.done[target]
            .clone()
            .ok_or(LowerError::NoTarget(target.to_string()))
    }

    /// A stage's name, or its index when it has none.
    fn stage_name(&self, index: usize) -> String {
        self.dockerfile.stages[index]
            .name()
            .map(str::to_string)
            .unwrap_or_else(|| index.to_string())
    }

    /// The output of stage `index`, referenced at `at`; when it is not
    /// lowered yet, [`Flow::Need`] asks the driver to lower it first.
    pub(crate) fn stage(&mut self, index: usize, at: Position) -> Step<StageOut> {
        match &self.done[index] {
            Some(out) => Ok(out.clone()),
            None => Err(Flow::Need(index, at)),
        }
    }
}

/// Each stage's references to other stages as written (FROM and `COPY
/// --from` naming a stage), with where they are.
pub(super) fn static_deps(dockerfile: &Dockerfile) -> Vec<Vec<(usize, Position)>> {
    let stages = &dockerfile.stages;
    stages
        .iter()
        .enumerate()
        .map(|(i, stage)| {
            let mut d = Vec::new();
            if let Some(j) = stage_index(stages, &stage.base().image, Some(i)) {
                d.push((j, stage.from.span.start));
            }
            for cmd in &stage.commands {
                if let kiln_parser::Instruction::Copy(c) = &cmd.instruction {
                    if let Some(j) = c.from.as_deref().and_then(|f| stage_index(stages, f, None)) {
                        d.push((j, flag_at(cmd, "from")));
                    }
                }
            }
            d
        })
        .collect()
}

/// The stage a reference names, as BuildKit resolves it: the **last**
/// stage of that name (case-insensitive). With `before`, only the stages
/// above that index and only by name (a `FROM` passes its own stage,
/// `--target` the stage count); without, `COPY --from` and
/// `RUN --mount=from`, which see every stage and take a number as a stage
/// index too.
pub(crate) fn stage_index(
    stages: &[kiln_parser::Stage],
    name: &str,
    before: Option<usize>,
) -> Option<usize> {
    let lower = name.to_ascii_lowercase();
    let visible = before.unwrap_or(stages.len()).min(stages.len());
    let named = stages[..visible]
        .iter()
        .rposition(|s| s.name() == Some(lower.as_str()));
    match before {
        Some(_) => named,
        None => named.or_else(|| name.parse::<usize>().ok().filter(|i| *i < stages.len())),
    }
}

/// Finds stage cycles the way BuildKit does: a depth-first walk of the
/// stages in file order, so the error names the first stage of the cycle.
/// The walk keeps its own stack, so chains of any length are fine.
pub(super) fn check_cycles(dockerfile: &Dockerfile, deps: &[Vec<(usize, Position)>]) -> Result<()> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut mark = vec![Mark::New; deps.len()];
    for root in 0..deps.len() {
        if mark[root] != Mark::New {
            continue;
        }
        mark[root] = Mark::Open;
        // (stage, index of its next reference to follow)
        let mut stack = vec![(root, 0usize)];
        while let Some((i, next)) = stack.last_mut() {
            let Some(&(j, at)) = deps[*i].get(*next) else {
                mark[*i] = Mark::Done;
                stack.pop();
                continue;
            };
            *next += 1;
            match mark[j] {
                Mark::Done => {}
                Mark::Open => {
                    return Err(LowerError::Circular {
                        at,
                        stage: dockerfile.stages[j]
                            .name()
                            .map(str::to_string)
                            .unwrap_or_else(|| j.to_string()),
                    })
                }
                Mark::New => {
                    mark[j] = Mark::Open;
                    stack.push((j, 0));
                }
            }
        }
    }
    Ok(())
}
