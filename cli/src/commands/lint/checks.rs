//! BuildKit's build checks as `kiln build` runs them: after lowering (so
//! the base images it resolved are known), before any step runs. A build
//! prints what they found at the end (`N warnings found:`), fails first
//! when `# check=error=true` makes them errors, and `--check` prints
//! BuildKit's report with source excerpts instead of building; the reports
//! are [`kiln_lint::check_report`]'s.

use super::base_images::base_image;
pub use kiln_lint::check_report::{has_errors, report, report_json, rule_names, summary};
use kiln_lint::{base_refs, try_lint_file, BaseImages, Config, Diagnostic, Origin};
use kiln_oci::{ImageConfig, Platform};
use kiln_solver::NamedContext;
use std::collections::BTreeMap;

/// The build argument that replaces the Dockerfile's `# check=` directive.
pub const CHECK_ARG: &str = kiln_parser::predefined::DOCKERFILE_CHECK_ARG;

/// A base image lowering resolved: the FROM text, the platform asked for
/// and the image's config.
pub type Resolved = (String, Platform, ImageConfig);

/// `resolved` plus, for each named context that is an image
/// (`--build-context busybox=docker-image://...` or `oci-layout://...`),
/// what it resolved to under the context's name, which is what FROM says.
pub fn through_contexts(
    resolved: &[Resolved],
    contexts: &BTreeMap<String, NamedContext>,
) -> Vec<Resolved> {
    let mut out = resolved.to_vec();
    for (name, context) in contexts {
        let source = match context {
            NamedContext::Image(reference) => reference.clone(),
            NamedContext::OciLayout(layout) => format!("oci-layout://{layout}"),
            NamedContext::Local(_) | NamedContext::Target(_) => continue,
        };
        for (text, platform, config) in resolved {
            if *text == source {
                out.push((name.clone(), platform.clone(), config.clone()));
            }
        }
    }
    out
}

/// Runs BuildKit's checks over `source` (read from `file`) for a build
/// targeting `target` with `build_args`, knowing the images in `resolved`.
pub fn run(
    file: &str,
    source: &str,
    resolved: &[Resolved],
    target: &Platform,
    build_args: &BTreeMap<String, String>,
) -> Vec<Diagnostic> {
    let mut images = BaseImages::new(target.to_string(), Platform::host().to_string());
    for base in base_refs(source, &images) {
        let found = resolved.iter().find(|(text, platform, _)| {
            *text == base.image
                && base
                    .platform
                    .parse::<Platform>()
                    .is_ok_and(|p| p == *platform)
        });
        if let Some((_, _, config)) = found {
            images.insert(&base, base_image(config));
        }
    }
    let config = Config {
        only: Some(Origin::BuildKit),
        base_images: Some(images),
        check_directive: build_args.get(CHECK_ARG).cloned(),
        ..Config::default()
    };
    match try_lint_file(file, source, &config) {
        Ok(found) => found,
        Err((found, _)) => found,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_argument_replaces_the_directive() {
        let source = "# check=skip=JSONArgsRecommended\nFROM busybox\nCMD echo hi\n";
        let platform = "linux/amd64".parse().expect("platform");
        assert!(run("Dockerfile", source, &[], &platform, &BTreeMap::new()).is_empty());
        let args = BTreeMap::from([(CHECK_ARG.to_string(), "error=true".to_string())]);
        let found = run("Dockerfile", source, &[], &platform, &args);
        assert!(has_errors(&found), "{found:?}");
    }
}
