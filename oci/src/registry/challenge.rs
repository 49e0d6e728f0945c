//! `WWW-Authenticate` challenge parsing (RFC 7235 §4.1, RFC 6750 §3).
//!
//! A registry answers an unauthenticated request with `401` and one or more
//! challenges, e.g.
//! `Bearer realm="https://auth.docker.io/token",service="registry.docker.io"`.
//! The grammar is
//!
//! ```text
//! WWW-Authenticate = 1#challenge
//! challenge        = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//! auth-param       = token BWS "=" BWS ( token / quoted-string )
//! ```
//!
//! Commas separate both challenges and the parameters inside one, so a new
//! challenge is recognised by a token that is *not* followed by `=`. The
//! parser is lenient: anything it cannot make sense of is skipped, and it
//! never panics on arbitrary input.

/// One challenge kiln knows how to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// HTTP Basic authentication (RFC 7617).
    Basic {
        /// The protection space named by the server, if any.
        realm: Option<String>,
    },
    /// Token authentication as in the Docker registry token spec: fetch a
    /// token from `realm` and retry with `Authorization: Bearer <token>`.
    Bearer {
        /// URL of the token endpoint.
        realm: String,
        /// The `service` parameter to pass to the token endpoint.
        service: Option<String>,
        /// The scope the server asked for, e.g. `repository:a/b:pull`.
        scope: Option<String>,
    },
}

/// Parses the value of one `WWW-Authenticate` header into the `Basic` and
/// `Bearer` challenges it contains, in header order.
///
/// Scheme and parameter names are case-insensitive; values may be tokens or
/// quoted strings with backslash escapes. Challenges with other schemes are
/// skipped, and so is a `Bearer` challenge without a (non-empty) `realm`.
/// When a parameter occurs twice the first value is used.
pub(crate) fn parse_challenges(header_value: &str) -> Vec<Challenge> {
    let mut parser = Parser {
        input: header_value.as_bytes(),
        pos: 0,
    };
    let mut challenges = Vec::new();
    while let Some(raw) = parser.next_challenge() {
        if let Some(challenge) = raw.into_challenge() {
            challenges.push(challenge);
        }
    }
    challenges
}

/// The token-endpoint scope for `actions` on `repository`:
/// `scope_for("a/b", &["pull", "push"])` is `repository:a/b:pull,push`.
pub(crate) fn scope_for(repository: &str, actions: &[&str]) -> String {
    format!("repository:{repository}:{}", actions.join(","))
}

/// A challenge as written: the scheme and its auth-params.
struct RawChallenge {
    scheme: String,
    /// Lowercased names with their (unescaped) values.
    params: Vec<(String, String)>,
}

impl RawChallenge {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn into_challenge(self) -> Option<Challenge> {
        if self.scheme.eq_ignore_ascii_case("basic") {
            Some(Challenge::Basic {
                realm: self.param("realm").map(str::to_owned),
            })
        } else if self.scheme.eq_ignore_ascii_case("bearer") {
            let realm = self.param("realm").filter(|r| !r.is_empty())?;
            Some(Challenge::Bearer {
                realm: realm.to_owned(),
                service: self.param("service").map(str::to_owned),
                scope: self.param("scope").map(str::to_owned),
            })
        } else {
            None
        }
    }
}

/// RFC 7230 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(is_space) {
            self.pos += 1;
        }
    }

    fn skip_spaces_and_commas(&mut self) {
        while self.peek().is_some_and(|b| is_space(b) || b == b',') {
            self.pos += 1;
        }
    }

    fn text(&self, start: usize, end: usize) -> String {
        String::from_utf8_lossy(&self.input[start..end]).into_owned()
    }

    fn token(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        self.text(start, self.pos)
    }

    /// Skips to the next top-level comma (or the end), stepping over quoted
    /// strings; always advances at least one byte unless at the end.
    fn skip_garbage(&mut self) {
        if self.peek().is_some() {
            self.pos += 1;
        }
        while let Some(b) = self.peek() {
            match b {
                b',' => break,
                b'"' => {
                    self.quoted_string();
                }
                _ => self.pos += 1,
            }
        }
    }

    /// Reads a quoted-string starting at the opening quote. An unterminated
    /// string runs to the end of the input.
    fn quoted_string(&mut self) -> String {
        self.pos += 1; // opening quote
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    if let Some(escaped) = self.peek() {
                        out.push(escaped);
                        self.pos += 1;
                    }
                }
                _ => out.push(b),
            }
        }
        // Only ASCII backslashes were removed, so this is still UTF-8 for any
        // `&str` input; be lossy rather than fail regardless.
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// An unquoted value. Tokens are what the grammar allows; be lenient
    /// and take everything up to a comma or whitespace, so that an unquoted
    /// URL (`realm=https://host/token`) still works.
    fn bare_value(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(|b| b != b',' && !is_space(b)) {
            self.pos += 1;
        }
        self.text(start, self.pos)
    }

    fn next_challenge(&mut self) -> Option<RawChallenge> {
        loop {
            self.skip_spaces_and_commas();
            self.peek()?;
            let scheme = self.token();
            if scheme.is_empty() {
                self.skip_garbage();
                continue;
            }
            let params = self.params();
            return Some(RawChallenge { scheme, params });
        }
    }

    /// Reads the auth-params after a scheme, stopping before the scheme of
    /// the next challenge.
    fn params(&mut self) -> Vec<(String, String)> {
        let mut params: Vec<(String, String)> = Vec::new();
        loop {
            self.skip_spaces_and_commas();
            let start = self.pos;
            if self.peek().is_none() {
                break;
            }
            let name = self.token();
            if name.is_empty() {
                // Neither a parameter nor a scheme: skip this list element.
                self.skip_garbage();
                continue;
            }
            self.skip_spaces();
            if self.peek() != Some(b'=') {
                // A token not followed by `=` starts the next challenge
                // (or is a token68, which no scheme we handle uses; it is
                // then read as a challenge of its own and dropped).
                self.pos = start;
                break;
            }
            self.pos += 1; // '='
            self.skip_spaces();
            match self.peek() {
                // `abc==`, `abc=` followed by a comma or the end: a token68
                // with padding, not a parameter.
                None | Some(b',') | Some(b'=') => {
                    while self.peek() == Some(b'=') {
                        self.pos += 1;
                    }
                    self.skip_spaces();
                    if self.peek().is_some_and(|b| b != b',') {
                        self.skip_garbage();
                    }
                }
                Some(b'"') => {
                    let value = self.quoted_string();
                    push_param(&mut params, name, value);
                    self.skip_spaces();
                    if self.peek().is_some_and(|b| b != b',') {
                        self.skip_garbage();
                    }
                }
                Some(_) => {
                    let value = self.bare_value();
                    push_param(&mut params, name, value);
                }
            }
        }
        params
    }
}

fn push_param(params: &mut Vec<(String, String)>, name: String, value: String) {
    let name = name.to_ascii_lowercase();
    if !params.iter().any(|(n, _)| *n == name) {
        params.push((name, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(realm: &str, service: Option<&str>, scope: Option<&str>) -> Challenge {
        Challenge::Bearer {
            realm: realm.to_owned(),
            service: service.map(str::to_owned),
            scope: scope.map(str::to_owned),
        }
    }

    fn basic(realm: Option<&str>) -> Challenge {
        Challenge::Basic {
            realm: realm.map(str::to_owned),
        }
    }

    #[test]
    fn table() {
        let cases: Vec<(&str, Vec<Challenge>)> = vec![
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
                vec![bearer(
                    "https://auth.docker.io/token",
                    Some("registry.docker.io"),
                    Some("repository:library/busybox:pull"),
                )],
            ),
            (
                r#"Bearer realm="http://127.0.0.1:5001/token",service="kiln",scope="repository:a/b:pull,push""#,
                vec![bearer(
                    "http://127.0.0.1:5001/token",
                    Some("kiln"),
                    Some("repository:a/b:pull,push"),
                )],
            ),
            (
                r#"Basic realm="Registry Realm""#,
                vec![basic(Some("Registry Realm"))],
            ),
            ("Basic", vec![basic(None)]),
            (
                r#"bearer REALM="https://r/token", Service="s""#,
                vec![bearer("https://r/token", Some("s"), None)],
            ),
            (
                r#"BASIC realm="x""#,
                vec![basic(Some("x"))],
            ),
            (
                "  Bearer   realm = \"https://r/token\" ,\t service=\"s\" ,  scope = \"repository:x:pull\"  ",
                vec![bearer("https://r/token", Some("s"), Some("repository:x:pull"))],
            ),
            (
                r#"Basic realm="say \"hi\" \\ bye""#,
                vec![basic(Some(r#"say "hi" \ bye"#))],
            ),
            // Token (unquoted) values, and an unquoted URL.
            (
                "Bearer realm=https://r/token,service=reg.example,scope=repository:a/b:pull",
                vec![bearer("https://r/token", Some("reg.example"), Some("repository:a/b:pull"))],
            ),
            // Several challenges in one header.
            (
                r#"Basic realm="b", Bearer realm="https://r/token",service="s""#,
                vec![basic(Some("b")), bearer("https://r/token", Some("s"), None)],
            ),
            (
                r#"Bearer realm="https://r/token", scope="repository:a/b:pull,push", Basic"#,
                vec![
                    bearer("https://r/token", None, Some("repository:a/b:pull,push")),
                    basic(None),
                ],
            ),
            (
                r#"Basic, Bearer realm="https://r/token""#,
                vec![basic(None), bearer("https://r/token", None, None)],
            ),
            // Unknown schemes are skipped, including ones with a token68.
            (
                r#"Negotiate, Digest realm="d", nonce="n", qop="auth", Basic realm="b""#,
                vec![basic(Some("b"))],
            ),
            (
                r#"Negotiate YWJjZA==, Basic realm="b""#,
                vec![basic(Some("b"))],
            ),
            (
                r#"Negotiate YWJjZGU=, Basic realm="b""#,
                vec![basic(Some("b"))],
            ),
            // Bearer without a realm is useless.
            (r#"Bearer service="s""#, vec![]),
            (r#"Bearer realm="""#, vec![]),
            ("Bearer", vec![]),
            // First value of a duplicated parameter wins.
            (
                r#"Bearer realm="https://one", realm="https://two""#,
                vec![bearer("https://one", None, None)],
            ),
            ("", vec![]),
            ("   ,, , ", vec![]),
        ];
        for (header, expected) in cases {
            assert_eq!(parse_challenges(header), expected, "header: {header:?}");
        }
    }

    #[test]
    fn garbage_does_not_panic() {
        let inputs = [
            "\"",
            "=",
            "==,,==",
            "Bearer realm=\"unterminated",
            "Bearer realm=\"https://r/token\\",
            "Bearer realm=",
            "Bearer realm=,",
            "Bearer =\"x\"",
            "\"quoted\" Basic realm=x",
            "Basic realm=\"x\" junk junk, Bearer realm=\"y\"",
            "Bearer realm=\"é\\ü\", service=ß",
            "\u{0}\u{1}\u{7f}",
            "Basic realm=\"x\"\"y\"",
            ",Bearer,realm,=,\",",
        ];
        for input in inputs {
            let _ = parse_challenges(input);
        }
        // Every prefix of a real header, too.
        let header = r#"Basic realm="b\"q", Bearer realm="https://r/token",service="s",scope="repository:a/b:pull""#;
        for end in 0..=header.len() {
            let _ = parse_challenges(&header[..end]);
        }
    }

    #[test]
    fn lenient_results_for_odd_input() {
        // An unterminated quoted string runs to the end.
        assert_eq!(
            parse_challenges("Bearer realm=\"https://r/token"),
            vec![bearer("https://r/token", None, None)]
        );
        // Junk after a quoted value is skipped up to the next comma.
        assert_eq!(
            parse_challenges(r#"Basic realm="x" junk junk, Bearer realm="y""#),
            vec![basic(Some("x")), bearer("y", None, None)]
        );
        // Non-ASCII survives unescaping.
        assert_eq!(
            parse_challenges("Basic realm=\"é\\ü\""),
            vec![basic(Some("éü"))]
        );
    }

    #[test]
    fn scopes() {
        assert_eq!(
            scope_for("a/b", &["pull", "push"]),
            "repository:a/b:pull,push"
        );
        assert_eq!(
            scope_for("library/busybox", &["pull"]),
            "repository:library/busybox:pull"
        );
    }
}
