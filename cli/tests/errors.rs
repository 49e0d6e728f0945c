//! Build errors as BuildKit shows them: the one-line `FILE:LINE:COL:`
//! message first, then the failed step's output, the Dockerfile excerpt
//! with the failing lines marked `>>>` and `ERROR: ...`; "did you mean"
//! for misspelt instructions; plain progress naming a step before its
//! ERROR; and a failed pull or base image resolve saying why, in one
//! line: connection refused, DNS, 401, 404 (TLS: oci/tests/registry_errors.rs).

mod common;
use kiln_test_support as support;

use common::{s, Env};
use support::{Auth, Registry};

/// The stderr of a failing `kiln build --progress=quiet` of `dockerfile`.
fn quiet_failure(env: &Env, dockerfile: &str) -> String {
    let ctx = env.context("ctx", &[("Dockerfile", dockerfile)]);
    env.fails(&["build", "--progress=quiet", s(&ctx)], None)
}

#[test]
fn a_failed_run_is_named_once_with_its_output_and_the_excerpt() {
    let env = Env::new();
    let stderr = quiet_failure(
        &env,
        "FROM busybox\nRUN echo hi\nRUN echo oops; echo more >&2; exit 3\nCMD [\"sh\"]\n",
    );
    let message = "process \"/bin/sh -c echo oops; echo more >&2; exit 3\" \
                   did not complete successfully: exit code: 3";
    assert_eq!(
        stderr,
        format!(
            "kiln: Dockerfile:3:1: {message}\n\
             ------\n \
             > [stage-0 2] RUN echo oops; echo more >&2; exit 3:\n\
             oops\n\
             more\n\
             ------\n\
             Dockerfile:3\n\
             --------------------\n   \
             1 |     FROM busybox\n   \
             2 |     RUN echo hi\n   \
             3 | >>> RUN echo oops; echo more >&2; exit 3\n   \
             4 |     CMD [\"sh\"]\n\
             --------------------\n\
             ERROR: {message}\n"
        )
    );
    assert_eq!(
        stderr.matches("echo oops; echo more").count(),
        4,
        "{stderr}"
    );
}

#[test]
fn an_unknown_instruction_suggests_the_nearest_one() {
    let env = Env::new();
    let stderr = quiet_failure(&env, "FROM busybox\nRUNN echo hi\nCMD [\"sh\"]\n");
    assert_eq!(
        stderr,
        "kiln: Dockerfile:2:1: unknown instruction: RUNN (did you mean RUN?)\n\
         Dockerfile:2\n\
         --------------------\n   \
         1 |     FROM busybox\n   \
         2 | >>> RUNN echo hi\n   \
         3 |     CMD [\"sh\"]\n\
         --------------------\n\
         ERROR: unknown instruction: RUNN (did you mean RUN?)\n"
    );
    // Nothing near: no suggestion.
    let stderr = quiet_failure(&env, "FROM busybox\nBANANA split\n");
    assert!(
        stderr.starts_with("kiln: Dockerfile:2:1: unknown instruction: BANANA\n"),
        "{stderr}"
    );
}

#[test]
fn a_parse_error_and_a_multi_line_step_are_shown_in_the_file() {
    let env = Env::new();
    let stderr = quiet_failure(&env, "FROM busybox\nCOPY --bogus a b\n");
    assert_eq!(
        stderr,
        "kiln: Dockerfile:2:6: unknown flag: --bogus\n\
         Dockerfile:2\n\
         --------------------\n   \
         1 |     FROM busybox\n   \
         2 | >>> COPY --bogus a b\n\
         --------------------\n\
         ERROR: unknown flag: --bogus\n"
    );
    // A step on continuation lines is marked on each of them; -f names
    // the file as given.
    let ctx = env.context(
        "multi",
        &[(
            "build.Dockerfile",
            "FROM busybox\nRUN --mount=type=secret,id=token,required=true \\\n    cat /run/secrets/token\nCMD [\"sh\"]\n",
        )],
    );
    let file = ctx.join("build.Dockerfile");
    let stderr = env.fails(
        &["build", "--progress=quiet", "-f", s(&file), s(&ctx)],
        None,
    );
    let name = s(&file);
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("kiln: {name}:2:1: ")),
        "{stderr}"
    );
    assert!(first.contains("secret token"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{name}:2\n\
             --------------------\n   \
             1 |     FROM busybox\n   \
             2 | >>> RUN --mount=type=secret,id=token,required=true \\\n   \
             3 | >>>     cat /run/secrets/token\n   \
             4 |     CMD [\"sh\"]\n\
             --------------------\nERROR: "
        )),
        "{stderr}"
    );
}

#[test]
fn plain_names_the_step_before_its_error() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", "FROM busybox\nCOPY missing /x\n")]);
    let stderr = env.fails(&["build", "--progress=plain", s(&ctx)], None);
    let lines: Vec<&str> = stderr.lines().collect();
    let error = lines
        .iter()
        .position(|l| l.starts_with('#') && l.contains(" ERROR: "))
        .unwrap_or_else(|| panic!("no ERROR line:\n{stderr}"));
    let n = lines[error].split(' ').next().unwrap_or_default();
    let header = lines
        .iter()
        .position(|l| *l == format!("{n} [stage-0 1] COPY missing /x"))
        .unwrap_or_else(|| panic!("no header for {n}:\n{stderr}"));
    assert!(header < error, "{stderr}");
    // Every numbered line's step was introduced before it.
    let mut seen = std::collections::BTreeSet::new();
    for l in &lines {
        let Some(n) = l.strip_prefix('#').and_then(|r| r.split(' ').next()) else {
            continue;
        };
        let rest = &l[n.len() + 2..];
        let is_header = rest.starts_with('[') || rest.starts_with("pull ");
        assert!(
            seen.contains(n) || is_header,
            "#{n} before its header:\n{stderr}"
        );
        seen.insert(n.to_string());
    }
}

/// A port on 127.0.0.1 that nothing listens on.
fn refused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

/// The last line of kiln's stderr that starts with `kiln: `.
fn kiln_line(stderr: &str) -> &str {
    stderr
        .lines()
        .rfind(|l| l.starts_with("kiln: "))
        .unwrap_or_else(|| panic!("no error line:\n{stderr}"))
}

#[test]
fn a_failed_pull_says_why() {
    let env = Env::new();
    let refused = format!("127.0.0.1:{}/x:1", refused_port());
    let refused_stderr = env.fails(&["pull", "--progress=quiet", &refused], None);
    assert_eq!(
        kiln_line(&refused_stderr),
        format!(
            "kiln: pulling {refused}: GET http://{}/v2/x/manifests/1: connection refused by {}",
            refused.trim_end_matches("/x:1"),
            refused.trim_end_matches("/x:1")
        )
    );

    let started = std::time::Instant::now();
    let dns = env.fails(&["pull", "--progress=quiet", "kiln.invalid/x:1"], None);
    let took = started.elapsed();
    println!("DNS failure reported in {took:?}: {dns}");
    // A name the resolver says does not exist is not asked again (with
    // retries and their backoff this took 7.8 s); without a resolver the
    // failure is temporary and is retried.
    if dns.contains("Name or service not known") || dns.contains("Name does not resolve") {
        assert!(took < std::time::Duration::from_secs(3), "{took:?}");
    }
    assert!(
        kiln_line(&dns).starts_with(
            "kiln: pulling kiln.invalid/x:1: GET https://kiln.invalid/v2/x/manifests/1: \
             DNS lookup of kiln.invalid failed: "
        ),
        "{dns}"
    );

    let registry = Registry::start(Auth::None);
    let missing = format!("{}/nothing/here:1", registry.host());
    let not_found = env.fails(&["pull", "--progress=quiet", &missing], None);
    assert_eq!(
        kiln_line(&not_found),
        format!("kiln: pulling {missing}: {missing}: not found in the registry")
    );

    let locked = Registry::start(Auth::basic("user", "secret"));
    let image = format!("{}/private/x:1", locked.host());
    let unauthorized = env.fails(&["pull", "--progress=quiet", &image], None);
    let host = locked.host();
    assert_eq!(
        kiln_line(&unauthorized),
        format!(
            "kiln: pulling {image}: {host}: authentication required and no credentials \
             were found for {host}; run `kiln login {host}`"
        )
    );
    // Each cause is one line, and each is told apart.
    let all = [&refused_stderr, &dns, &not_found, &unauthorized];
    for stderr in all {
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

#[test]
fn a_failed_base_image_resolve_says_why_at_its_from_line() {
    let env = Env::new();
    let host = format!("127.0.0.1:{}", refused_port());
    let stderr = quiet_failure(&env, &format!("FROM {host}/base:1\nRUN true\n"));
    let first = stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with("kiln: Dockerfile:1:1: "), "{stderr}");
    assert!(
        first.ends_with(&format!("connection refused by {host}")),
        "{stderr}"
    );
    assert!(stderr.contains("   1 | >>> FROM "), "{stderr}");

    let stderr = quiet_failure(&env, "FROM kiln.invalid/base:1\nRUN true\n");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.contains("DNS lookup of kiln.invalid failed"),
        "{stderr}"
    );
}

/// Every `[+] Building SECONDS (DONE/TOTAL)[ FINISHED]` header in `text`:
/// (seconds, done, total, finished).
fn headers(text: &str) -> Vec<(f64, usize, usize, bool)> {
    text.split("[+] Building ")
        .skip(1)
        .filter_map(|rest| {
            let (secs, rest) = rest.split_once("s (")?;
            let (counts, rest) = rest.split_once(')')?;
            let (done, total) = counts.split_once('/')?;
            Some((
                secs.parse().ok()?,
                done.parse().ok()?,
                total.parse().ok()?,
                rest.starts_with(" FINISHED"),
            ))
        })
        .collect()
}

#[test]
fn the_tty_display_has_buildx_header_live_then_finished() {
    // `script` (util-linux) gives kiln a pseudo-terminal for stderr.
    support::require_tool("script");
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "FROM busybox\nRUN sleep 1\nRUN echo done\n")],
    );
    let command = format!(
        "{} build --no-cache --progress=tty {}",
        env!("CARGO_BIN_EXE_kiln"),
        s(&ctx)
    );
    let out = env
        .command("script")
        .args(["-qec", &command, s(&env.path("typescript"))])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let seen = headers(&text);
    // Redrawn while the build runs: the time moves during the sleep.
    let times: std::collections::BTreeSet<String> =
        seen.iter().map(|h| format!("{:.1}", h.0)).collect();
    assert!(times.len() >= 5, "not live: {seen:?}");
    assert!(
        seen.windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1),
        "{seen:?}"
    );
    assert!(seen.iter().any(|h| h.1 < h.2), "no running step: {seen:?}");
    // Ends FINISHED, every step counted: the base and the two RUNs.
    let last = seen.last().copied().expect("a header");
    assert!(last.3, "{seen:?}");
    assert_eq!((last.1, last.2), (3, 3), "{seen:?}");
    assert!(last.0 >= 1.0, "{seen:?}");
    assert!(
        seen[..seen.len() - 1].iter().all(|h| !h.3),
        "FINISHED only at the end: {seen:?}"
    );
    // The header is the display's first line: its line starts the redraw.
    assert!(
        text.contains("\r[+] Building ") || text.starts_with("[+] Building "),
        "{text:?}"
    );
}

#[test]
fn a_forced_tty_without_a_terminal_ends_with_the_header_then_the_error() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", "FROM busybox\nRUN exit 4\n")]);
    let stderr = env.fails(&["build", "--progress=tty", s(&ctx)], None);
    let lines: Vec<&str> = stderr.lines().collect();
    let error = lines
        .iter()
        .position(|l| l.starts_with("kiln: Dockerfile:2:1: "))
        .unwrap_or_else(|| panic!("{stderr}"));
    let header = headers(lines[error - 1]);
    assert_eq!(header.len(), 1, "{stderr}");
    assert_eq!(
        (header[0].1, header[0].2, header[0].3),
        (2, 2, true),
        "{stderr}"
    );
    assert!(
        lines[error - 2].starts_with(" => ERROR [stage-0 1] RUN exit 4 "),
        "{stderr}"
    );
}
