//! The rules, one function each, and the registry that names them.

mod buildkit;
mod instructions;
mod labels;
mod packages;
mod run;

use crate::diagnostic::Severity::{self, *};
use crate::rule::{FnRule, Origin, Rule};

macro_rules! dl {
    ($code:literal, $sev:expr, $msg:expr, $check:path) => {
        &FnRule {
            code: $code,
            severity: $sev,
            message: $msg,
            origin: Origin::Hadolint,
            check: $check,
        } as &dyn Rule
    };
}

macro_rules! bk {
    ($code:literal, $msg:expr, $check:path) => {
        &FnRule {
            code: $code,
            severity: Severity::Warning,
            message: $msg,
            origin: Origin::BuildKit,
            check: $check,
        } as &dyn Rule
    };
}

/// DL3043 and DL3061 describe files kiln's parser rejects as BuildKit does;
/// [`crate::lint_file`] finds them while recovering from that parse error.
fn recovered_only(_: &crate::Context<'_>, _: &mut crate::Diagnostics) {}

/// Every rule, in hadolint's order, then BuildKit's checks.
static REGISTRY: &[&dyn Rule] = &[
    dl!("DL1001", Ignore, "Please refrain from using inline ignore pragmas `# hadolint ignore=DLxxxx`.", instructions::dl1001),
    dl!("DL3000", Error, "Use absolute WORKDIR", instructions::dl3000),
    dl!("DL3001", Info, "For some bash commands it makes no sense running them in a Docker container like `ssh`, `vim`, `shutdown`, `service`, `ps`, `free`, `top`, `kill`, `mount`, `ifconfig`", run::dl3001),
    dl!("DL3002", Warning, "Last USER should not be root", instructions::dl3002),
    dl!("DL3003", Warning, "Use WORKDIR to switch to a directory", run::dl3003),
    dl!("DL3004", Error, "Do not use sudo as it leads to unpredictable behavior. Use a tool like gosu to enforce root", run::dl3004),
    dl!("DL3006", Warning, "Always tag the version of an image explicitly", instructions::dl3006),
    dl!("DL3007", Warning, "Using latest is prone to errors if the image will ever update. Pin the version explicitly to a release tag", instructions::dl3007),
    dl!("DL3008", Warning, "Pin versions in apt get install. Instead of `apt-get install <package>` use `apt-get install <package>=<version>`", packages::dl3008),
    dl!("DL3009", Info, "Delete the apt lists (/var/lib/apt/lists) after installing something", packages::dl3009),
    dl!("DL3010", Info, "Use ADD for extracting archives into an image", run::dl3010),
    dl!("DL3011", Error, "Valid UNIX ports range from 0 to 65535", instructions::dl3011),
    dl!("DL3012", Error, "Multiple `HEALTHCHECK` instructions", instructions::dl3012),
    dl!("DL3013", Warning, "Pin versions in pip. Instead of `pip install <package>` use `pip install <package>==<version>` or `pip install --requirement <requirements file>`", packages::dl3013),
    dl!("DL3014", Warning, "Use the `-y` switch to avoid manual input `apt-get -y install <package>`", packages::dl3014),
    dl!("DL3015", Info, "Avoid additional packages by specifying `--no-install-recommends`", packages::dl3015),
    dl!("DL3016", Warning, "Pin versions in npm. Instead of `npm install <package>` use `npm install <package>@<version>`", packages::dl3016),
    dl!("DL3018", Warning, "Pin versions in apk add. Instead of `apk add <package>` use `apk add <package>=<version>`", packages::dl3018),
    dl!("DL3019", Info, "Use the `--no-cache` switch to avoid the need to use `--update` and remove `/var/cache/apk/*` when done installing packages", packages::dl3019),
    dl!("DL3020", Error, "Use COPY instead of ADD for files and folders", instructions::dl3020),
    dl!("DL3021", Error, "COPY with more than 2 arguments requires the last argument to end with /", instructions::dl3021),
    dl!("DL3022", Warning, "`COPY --from` should reference a previously defined `FROM` alias", instructions::dl3022),
    dl!("DL3023", Error, "`COPY --from` cannot reference its own `FROM` alias", instructions::dl3023),
    dl!("DL3024", Error, "FROM aliases (stage names) must be unique", instructions::dl3024),
    dl!("DL3025", Warning, "Use arguments JSON notation for CMD and ENTRYPOINT arguments", instructions::dl3025),
    dl!("DL3026", Error, "Use only an allowed registry in the FROM image", instructions::dl3026),
    dl!("DL3027", Warning, "Do not use apt as it is meant to be an end-user tool, use apt-get or apt-cache instead", run::dl3027),
    dl!("DL3028", Warning, "Pin versions in gem install. Instead of `gem install <gem>` use `gem install <gem>:<version>`", packages::dl3028),
    dl!("DL3029", Warning, "Do not use --platform flag with FROM", instructions::dl3029),
    dl!("DL3030", Warning, "Use the -y switch to avoid manual input `yum install -y <package>`", packages::dl3030),
    dl!("DL3032", Warning, "`yum clean all` missing after yum command.", packages::dl3032),
    dl!("DL3033", Warning, "Specify version with `yum install -y <package>-<version>`.", packages::dl3033),
    dl!("DL3034", Warning, "Non-interactive switch missing from `zypper` command: `zypper install -y`", packages::dl3034),
    dl!("DL3035", Warning, "Do not use `zypper dist-upgrade`.", packages::dl3035),
    dl!("DL3036", Warning, "`zypper clean` missing after zypper use.", packages::dl3036),
    dl!("DL3037", Warning, "Specify version with `zypper install -y <package>=<version>`.", packages::dl3037),
    dl!("DL3038", Warning, "Use the -y switch to avoid manual input `dnf install -y <package>`", packages::dl3038),
    dl!("DL3040", Warning, "`dnf clean all` missing after dnf command.", packages::dl3040),
    dl!("DL3041", Warning, "Specify version with `dnf install -y <package>-<version>`.", packages::dl3041),
    dl!("DL3042", Warning, "Avoid use of cache directory with pip. Use `pip install --no-cache-dir <package>`", packages::dl3042),
    dl!("DL3043", Error, "`ONBUILD`, `FROM` or `MAINTAINER` triggered from within `ONBUILD` instruction.", recovered_only),
    dl!("DL3044", Error, "Do not refer to an environment variable within the same `ENV` statement where it is defined.", instructions::dl3044),
    dl!("DL3045", Warning, "`COPY` to a relative destination without `WORKDIR` set.", instructions::dl3045),
    dl!("DL3046", Warning, "`useradd` without flag `-l` and high UID will result in excessively large Image.", run::dl3046),
    dl!("DL3047", Info, "Avoid use of wget without progress bar. Use `wget --progress=dot:giga <url>`. Or consider using `-q` or `-nv` (shorthands for `--quiet` or `--no-verbose`).", run::dl3047),
    dl!("DL3048", Style, "Invalid label key.", instructions::dl3048),
    dl!("DL3049", Info, "Label `<label>` is missing.", labels::dl3049),
    dl!("DL3050", Info, "Superfluous label(s) present.", labels::dl3050),
    dl!("DL3051", Warning, "label `<label>` is empty.", labels::dl3051),
    dl!("DL3052", Warning, "Label `<label>` is not a valid URL.", labels::dl3052),
    dl!("DL3053", Warning, "Label `<label>` is not a valid time format - must conform to RFC3339.", labels::dl3053),
    dl!("DL3054", Warning, "Label `<label>` is not a valid SPDX identifier.", labels::dl3054),
    dl!("DL3055", Warning, "Label `<label>` is not a valid git hash.", labels::dl3055),
    dl!("DL3056", Warning, "Label `<label>` does not conform to semantic versioning.", labels::dl3056),
    dl!("DL3057", Ignore, "`HEALTHCHECK` instruction missing.", instructions::dl3057),
    dl!("DL3058", Warning, "Label `<label>` is not a valid email format - must conform to RFC5322.", labels::dl3058),
    dl!("DL3059", Info, "Multiple consecutive `RUN` instructions. Consider consolidation.", run::dl3059),
    dl!("DL3060", Info, "`yarn cache clean` missing after `yarn install` was run.", packages::dl3060),
    dl!("DL3061", Error, "Invalid instruction order. Dockerfile must begin with `FROM`, `ARG` or comment.", recovered_only),
    dl!("DL3062", Warning, "Pin versions in go. Instead of `go install <package>` use `go install <package>@<version>`", packages::dl3062),
    dl!("DL3063", Warning, "stage name should not be a reserved word", instructions::dl3063),
    dl!("DL3064", Warning, "Potentially sensitive data should not be used in the `ARG` or `ENV` commands", instructions::dl3064),
    dl!("DL3065", Warning, "Setting `FROM --platform` to predefined `$TARGETPLATFORM` in is redundant as this is the default behavior", instructions::dl3065),
    dl!("DL3066", Info, "Non-numeric user-id may not be resolvable by host system", instructions::dl3066),
    dl!("DL3067", Warning, "Do not copy an entire filesystem from another stage", instructions::dl3067),
    dl!("DL4000", Error, "MAINTAINER is deprecated", instructions::dl4000),
    dl!("DL4001", Warning, "Either use Wget or Curl but not both", run::dl4001),
    dl!("DL4003", Warning, "Multiple `CMD` instructions found. If you list more than one `CMD` then only the last `CMD` will take effect", instructions::dl4003),
    dl!("DL4004", Error, "Multiple `ENTRYPOINT` instructions found. If you list more than one `ENTRYPOINT` then only the last `ENTRYPOINT` will take effect", instructions::dl4004),
    dl!("DL4005", Warning, "Use SHELL to change the default shell", run::dl4005),
    dl!("DL4006", Warning, "Set the SHELL option -o pipefail before RUN with a pipe in it. If you are using /bin/sh in an alpine image or if your shell is symlinked to busybox then consider explicitly setting your SHELL to /bin/ash, or disable this check", run::dl4006),
    bk!("StageNameCasing", "Stage names should be lowercase", buildkit::stage_name_casing),
    bk!("FromAsCasing", "The 'as' keyword should match the case of the 'from' keyword", buildkit::from_as_casing),
    bk!("JSONArgsRecommended", "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals", buildkit::json_args_recommended),
    bk!("MaintainerDeprecated", "The MAINTAINER instruction is deprecated, use a label instead to define an image author", buildkit::maintainer_deprecated),
    bk!("ConsistentInstructionCasing", "Instructions should be in consistent casing (all lower or all upper)", buildkit::consistent_instruction_casing),
    bk!("DuplicateStageName", "Stage names should be unique", buildkit::duplicate_stage_name),
    bk!("ReservedStageName", "Reserved words should not be used as stage names", buildkit::reserved_stage_name),
    bk!("LegacyKeyValueFormat", "Legacy key/value format with whitespace separator should not be used", buildkit::legacy_key_value_format),
    bk!("MultipleInstructionsDisallowed", "Multiple instructions of the same type should not be used in the same stage", buildkit::multiple_instructions_disallowed),
    bk!("WorkdirRelativePath", "Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes", buildkit::workdir_relative_path),
    bk!("SecretsUsedInArgOrEnv", "Sensitive data should not be used in the ARG or ENV commands", buildkit::secrets_used_in_arg_or_env),
    bk!("RedundantTargetPlatform", "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior", buildkit::redundant_target_platform),
    bk!("UndefinedArgInFrom", "FROM command must use declared ARGs", buildkit::undefined_arg_in_from),
    bk!("NoEmptyContinuation", "Empty continuation lines will become errors in a future release", buildkit::no_empty_continuation),
    bk!("UndefinedVar", "Variables should be defined before their use", buildkit::undefined_var),
    bk!("InvalidDefaultArgInFrom", "Default value for global ARG results in an empty or invalid base image name", buildkit::invalid_default_arg_in_from),
    bk!("FromPlatformFlagConstDisallowed", "FROM --platform flag should not use a constant value", buildkit::from_platform_flag_const_disallowed),
    bk!("ExposeProtoCasing", "Protocol in EXPOSE instruction should be lowercase", buildkit::expose_proto_casing),
    bk!("ExposeInvalidFormat", "IP address and host-port mapping should not be used in EXPOSE instruction. This will become an error in a future release", buildkit::expose_invalid_format),
    bk!("InvalidBaseImagePlatform", "Base image platform does not match expected target platform", buildkit::invalid_base_image_platform),
    bk!("CopyIgnoredFile", "Attempting to Copy file that is excluded by .dockerignore", buildkit::copy_ignored_file),
    &FnRule {
        code: "InvalidDefinitionDescription",
        severity: Ignore,
        message: "Comment for build stage or argument should follow the format: `# <arg/stage name> <description>`. If this is not intended to be a description comment, add an empty line or comment between the instruction and the comment.",
        origin: Origin::BuildKit,
        check: buildkit::invalid_definition_description,
    } as &dyn Rule,
];

/// Names used as `$X` or `${X...}` in `text`.
pub(crate) fn variables(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' {
            i += 2;
            continue;
        }
        if chars[i] == '$' {
            let braced = chars.get(i + 1) == Some(&'{');
            let start = if braced { i + 2 } else { i + 1 };
            let mut end = start;
            while end < chars.len() && (chars[end].is_ascii_alphanumeric() || chars[end] == '_') {
                end += 1;
            }
            if end > start {
                out.push(chars[start..end].iter().collect());
            }
            i = end.max(i + 1);
            continue;
        }
        i += 1;
    }
    out
}

/// Every rule, in hadolint's evaluation order, then BuildKit's checks.
pub fn rules() -> &'static [&'static dyn Rule] {
    REGISTRY
}

/// The rule with this code, if kiln has it.
pub fn find_rule(code: &str) -> Option<&'static dyn Rule> {
    rules().iter().copied().find(|r| r.code() == code)
}
