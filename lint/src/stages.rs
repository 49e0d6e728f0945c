//! How stages build on each other: `FROM <name>` names an earlier stage.

use kiln_parser::Dockerfile;

/// For each stage, the earlier stage its FROM names (the last one of that
/// name, compared without case), or `None` when it starts from an image.
pub(crate) fn parents(dockerfile: &Dockerfile) -> Vec<Option<usize>> {
    let mut parents = Vec::new();
    for (i, stage) in dockerfile.stages.iter().enumerate() {
        let image = stage.base().image.to_ascii_lowercase();
        let parent = dockerfile.stages[..i]
            .iter()
            .rposition(|s| s.name() == Some(image.as_str()));
        parents.push(parent);
    }
    parents
}
