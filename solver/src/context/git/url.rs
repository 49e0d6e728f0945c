//! Which strings are git URLs, and how `#ref:subdir` or Dockerfile 1.18's
//! query options (`?ref=&subdir=...`) split, after BuildKit's gitutil
//! rules (read for behaviour; this is kiln's own code):
//!
//! - a URL with a scheme: `http://` and `https://` only when the path ends
//!   in `.git`; `git://` and `ssh://` always; any other scheme is not git;
//! - scp-style `user@host:path` (`git@github.com:org/repo.git`);
//! - `github.com/org/repo` (https);
//! - `./` and `../` are local paths, never git.
//!
//! The fragment is `ref[:subdir]`; the query takes `ref`, `tag`, `branch`,
//! `checksum`/`commit`, `subdir`, `keep-git-dir` and `submodules`. A URL
//! cannot have both.

use super::GitError;

/// A git repository with the ref, subdirectory and options to fetch.
#[derive(Clone, PartialEq, Eq)]
pub struct GitUrl {
    /// The repository URL without fragment and query (what `git fetch`
    /// is given).
    pub remote: String,
    /// The ref: a branch, a tag, a full ref (`refs/tags/v1`) or a commit;
    /// `None` fetches the remote's HEAD.
    pub reference: Option<String>,
    /// A pinned commit (`checksum=`/`commit=`, `ADD --checksum`): the
    /// fetched commit must start with it.
    pub checksum: Option<String>,
    /// The subdirectory used as the root (clean, relative, no `..`).
    pub subdir: Option<String>,
    /// Keep the `.git` directory (`keep-git-dir=true`).
    pub keep_git_dir: bool,
    /// Check out submodules (default; `submodules=false` turns it off).
    pub submodules: bool,
    /// The URL as given, with any password replaced (for messages).
    shown: String,
}

impl std::fmt::Debug for GitUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GitUrl({})", self.shown)
    }
}

impl std::fmt::Display for GitUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

/// Whether `value` is a git URL (it may still have bad options).
pub fn is_git_url(value: &str) -> bool {
    GitUrl::detect(value).is_some()
}

impl GitUrl {
    /// Reads `value` as a git URL: `None` when it is not one (a local
    /// path, another URL), `Some(Err)` when it is one with unusable
    /// options.
    pub fn detect(value: &str) -> Option<Result<GitUrl, GitError>> {
        if value.starts_with("./") || value.starts_with("../") || value.starts_with('-') {
            return None;
        }
        let (before_fragment, fragment) = match value.split_once('#') {
            Some((b, f)) => (b, Some(f)),
            None => (value, None),
        };
        let (base, query) = match before_fragment.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (before_fragment, None),
        };
        let remote = if let Some(rest) = base.strip_prefix("github.com/") {
            format!("https://github.com/{rest}")
        } else if let Some((scheme, _)) = scheme_of(base) {
            match scheme.to_ascii_lowercase().as_str() {
                "http" | "https" => {
                    let path = base[scheme.len() + 3..]
                        .split_once('/')
                        .map_or("", |(_, p)| p);
                    if !path.ends_with(".git") {
                        return None;
                    }
                }
                "git" | "ssh" => {}
                _ => return None,
            }
            base.to_string()
        } else if is_scp_style(base) {
            base.to_string()
        } else {
            return None;
        };
        Some(GitUrl::with_options(value, remote, fragment, query))
    }

    fn with_options(
        value: &str,
        remote: String,
        fragment: Option<&str>,
        query: Option<&str>,
    ) -> Result<GitUrl, GitError> {
        let shown = redact(value);
        let bad = |problem: String| GitError::BadUrl {
            url: shown.clone(),
            problem,
        };
        if remote.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("spaces or control characters in the URL".into()));
        }
        let mut url = GitUrl {
            remote,
            reference: None,
            checksum: None,
            subdir: None,
            keep_git_dir: false,
            submodules: true,
            shown: shown.clone(),
        };
        if let (Some(_), Some(_)) = (fragment, query) {
            return Err(bad("a #fragment and a ?query cannot both be given".into()));
        }
        if let Some(f) = fragment.filter(|f| !f.is_empty()) {
            let (r, s) = match f.split_once(':') {
                Some((r, s)) => (r, Some(s)),
                None => (f, None),
            };
            url.reference = Some(r.to_string()).filter(|r| !r.is_empty());
            url.subdir = s.map(str::to_string);
        }
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            let mut seen = std::collections::BTreeSet::new();
            for (key, v) in decode_query(q).map_err(bad)? {
                if !seen.insert(key.clone()) {
                    return Err(bad(format!("query option {key:?} given twice")));
                }
                let set_ref = |url: &mut GitUrl, r: String| {
                    if url.reference.is_some() {
                        return Err(bad("only one of ref=, tag= and branch= can be given".into()));
                    }
                    url.reference = Some(r);
                    Ok(())
                };
                match key.as_str() {
                    "ref" => set_ref(&mut url, v)?,
                    "tag" => set_ref(&mut url, format!("refs/tags/{v}"))?,
                    "branch" => set_ref(&mut url, format!("refs/heads/{v}"))?,
                    "checksum" | "commit" => {
                        if url.checksum.is_some() {
                            return Err(bad("checksum= and commit= cannot both be given".into()));
                        }
                        url.checksum = Some(v);
                    }
                    "subdir" => url.subdir = Some(v),
                    "keep-git-dir" => url.keep_git_dir = parse_bool(&key, &v).map_err(bad)?,
                    "submodules" => url.submodules = parse_bool(&key, &v).map_err(bad)?,
                    _ => {
                        return Err(bad(format!(
                            "unknown query option {key:?} (ref, tag, branch, checksum, commit, \
                             subdir, keep-git-dir, submodules)"
                        )))
                    }
                }
            }
        }
        if let Some(r) = &url.reference {
            check_ref(r).map_err(bad)?;
        }
        if let Some(c) = &url.checksum {
            check_checksum(c).map_err(bad)?;
        }
        url.subdir = match url.subdir.take() {
            Some(s) => clean_subdir(&s).map_err(bad)?,
            None => None,
        };
        Ok(url)
    }

    /// Pins the commit (`ADD --checksum=`); a different pin in the URL
    /// is an error.
    ///
    /// # Errors
    /// A checksum that is not hex, or one that differs from the URL's.
    pub fn pin(&mut self, checksum: &str) -> Result<(), GitError> {
        let bad = |problem: String| GitError::BadUrl {
            url: self.shown.clone(),
            problem,
        };
        check_checksum(checksum).map_err(bad)?;
        match &self.checksum {
            Some(c) if !c.eq_ignore_ascii_case(checksum) => Err(bad(format!(
                "--checksum={checksum} differs from the URL's checksum {c}"
            ))),
            _ => {
                self.checksum = Some(checksum.to_ascii_lowercase());
                Ok(())
            }
        }
    }

    /// The host (with port) of the remote, for `GIT_AUTH_TOKEN.<host>`.
    pub fn host(&self) -> Option<String> {
        if let Some((scheme, _)) = scheme_of(&self.remote) {
            let rest = &self.remote[scheme.len() + 3..];
            let authority = rest.split('/').next().unwrap_or("");
            let host = authority.rsplit('@').next().unwrap_or("");
            return Some(host.to_string()).filter(|h| !h.is_empty());
        }
        let (_, rest) = self.remote.split_once('@')?;
        rest.split_once(':').map(|(h, _)| h.to_string())
    }

    /// Whether the remote is fetched over HTTP(S) (where tokens apply).
    pub fn is_http(&self) -> bool {
        matches!(
            scheme_of(&self.remote).map(|(s, _)| s.to_ascii_lowercase()),
            Some(s) if s == "http" || s == "https"
        )
    }
}

/// `scheme://...`: the scheme when `s` starts with one.
fn scheme_of(s: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = s.split_once("://")?;
    (!scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric()))
        .then_some((scheme, rest))
}

/// `user@host:path`, as ssh's scp syntax.
fn is_scp_style(s: &str) -> bool {
    let Some((user, rest)) = s.split_once('@') else {
        return false;
    };
    let Some((host, path)) = rest.split_once(':') else {
        return false;
    };
    let word = |w: &str, extra: &str| {
        !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
    };
    word(user, "_.-") && word(host, "._-") && !path.is_empty()
}

/// The URL with the password of `user:password@` replaced.
pub fn redact(value: &str) -> String {
    if let Some((scheme, rest)) = scheme_of(value) {
        let end = rest.find('/').unwrap_or(rest.len());
        let authority = &rest[..end];
        if let Some((userinfo, host)) = authority.rsplit_once('@') {
            let user = userinfo.split(':').next().unwrap_or("");
            let shown = if userinfo.contains(':') {
                format!("{user}:xxxxx")
            } else {
                "xxxxx".to_string()
            };
            return format!("{scheme}://{shown}@{host}{}", &rest[end..]);
        }
    }
    value.to_string()
}

fn decode_query(q: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.push((percent_decode(k)?, percent_decode(v)?));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad percent escape in {s:?}"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

fn parse_bool(key: &str, v: &str) -> Result<bool, String> {
    match v {
        "" | "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("{key}={v:?}: expected true or false")),
    }
}

/// A ref git can fetch, that no option or refspec can hide in.
fn check_ref(r: &str) -> Result<(), String> {
    let bad = r.starts_with('-')
        || r.starts_with('/')
        || r.ends_with('/')
        || r.ends_with(".lock")
        || r.contains("..")
        || r.contains("//")
        || r.contains("@{")
        || r.len() > 1024
        || r.chars().any(|c| {
            c.is_control()
                || c.is_whitespace()
                || matches!(c, ':' | '^' | '~' | '?' | '*' | '[' | '\\')
        });
    if bad {
        Err(format!("{r:?} is not a valid git ref"))
    } else {
        Ok(())
    }
}

/// A commit pin: 7 to 64 hex digits.
fn check_checksum(c: &str) -> Result<(), String> {
    if (7..=64).contains(&c.len()) && c.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(format!(
            "checksum {c:?} is not a commit (7 to 64 hex digits)"
        ))
    }
}

/// The subdirectory, cleaned: `None` for the root; `..` is refused.
fn clean_subdir(s: &str) -> Result<Option<String>, String> {
    let mut parts = Vec::new();
    for p in s.split('/') {
        match p {
            "" | "." => {}
            ".." => return Err(format!("subdir {s:?} leaves the repository")),
            p if p.chars().any(char::is_control) => {
                return Err(format!("subdir {s:?} has control characters"))
            }
            p => parts.push(p),
        }
    }
    Ok(Some(parts.join("/")).filter(|p| !p.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> GitUrl {
        GitUrl::detect(s).expect("a git URL").expect("valid")
    }

    #[test]
    fn what_counts_as_git() {
        for yes in [
            "https://host/org/repo.git",
            "https://host/org/repo.git#main",
            "http://host/repo.git#v1:sub",
            "git://host/repo",
            "ssh://git@host/repo",
            "git@github.com:org/repo.git#main",
            "github.com/org/repo",
            "https://host/r.git?ref=main&subdir=a",
        ] {
            assert!(is_git_url(yes), "{yes}");
        }
        for no in [
            ".",
            "./dir",
            "../x",
            "dir",
            "https://host/ctx.tar.gz",
            "https://host/repo",
            "ftp://host/repo.git",
            "-",
            "a@b",
            "/abs/path",
        ] {
            assert!(!is_git_url(no), "{no}");
        }
    }

    #[test]
    fn fragment_and_query() {
        let u = ok("https://h/r.git#v1.0:docs/./site");
        assert_eq!(u.remote, "https://h/r.git");
        assert_eq!(u.reference.as_deref(), Some("v1.0"));
        assert_eq!(u.subdir.as_deref(), Some("docs/site"));
        let u = ok(
            "https://h/r.git?tag=v1&subdir=a&keep-git-dir=true&submodules=false&checksum=abcdef0",
        );
        assert_eq!(u.reference.as_deref(), Some("refs/tags/v1"));
        assert_eq!(u.checksum.as_deref(), Some("abcdef0"));
        assert!(u.keep_git_dir && !u.submodules);
        assert_eq!(ok("git@h.io:o/r.git#main").host().as_deref(), Some("h.io"));
        assert_eq!(
            ok("https://u:p@h:8080/r.git").host().as_deref(),
            Some("h:8080")
        );
        assert_eq!(
            ok("https://u:secret@h/r.git").to_string(),
            "https://u:xxxxx@h/r.git"
        );
    }

    #[test]
    fn bad_options_are_errors() {
        for bad in [
            "https://h/r.git#main?x",
            "https://h/r.git?ref=a&tag=b",
            "https://h/r.git?nope=1",
            "https://h/r.git#-upload-pack=x",
            "https://h/r.git#main:../..",
            "https://h/r.git?checksum=xyz",
            "https://h/r.git?ref=a:b",
        ] {
            assert!(matches!(GitUrl::detect(bad), Some(Err(_))), "{bad}");
        }
    }
}
