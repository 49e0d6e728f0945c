//! Unit tests of reference parsing.

use super::*;

const H: &str = "7cc4b5aefd1d0cadf8d97d4350462ba51c694ebca145b08d7d41b41acc8db5aa";

fn d() -> String {
    format!("sha256:{H}")
}

/// (input, domain, repository, tag, has the sha256 digest `d()`, Display, familiar)
type Row = (
    String,
    &'static str,
    &'static str,
    Option<&'static str>,
    bool,
    String,
    String,
);

fn table() -> Vec<Row> {
    let dg = d();
    vec![
        (
            "busybox".into(),
            "docker.io",
            "library/busybox",
            Some("latest"),
            false,
            "docker.io/library/busybox:latest".into(),
            "busybox:latest".into(),
        ),
        (
            "busybox:1.36".into(),
            "docker.io",
            "library/busybox",
            Some("1.36"),
            false,
            "docker.io/library/busybox:1.36".into(),
            "busybox:1.36".into(),
        ),
        (
            "library/busybox".into(),
            "docker.io",
            "library/busybox",
            Some("latest"),
            false,
            "docker.io/library/busybox:latest".into(),
            "busybox:latest".into(),
        ),
        (
            "docker.io/busybox".into(),
            "docker.io",
            "library/busybox",
            Some("latest"),
            false,
            "docker.io/library/busybox:latest".into(),
            "busybox:latest".into(),
        ),
        (
            "docker.io/library/busybox:latest".into(),
            "docker.io",
            "library/busybox",
            Some("latest"),
            false,
            "docker.io/library/busybox:latest".into(),
            "busybox:latest".into(),
        ),
        (
            "index.docker.io/busybox".into(),
            "docker.io",
            "library/busybox",
            Some("latest"),
            false,
            "docker.io/library/busybox:latest".into(),
            "busybox:latest".into(),
        ),
        (
            "registry-1.docker.io/user/app:2".into(),
            "docker.io",
            "user/app",
            Some("2"),
            false,
            "docker.io/user/app:2".into(),
            "user/app:2".into(),
        ),
        (
            "user/repo".into(),
            "docker.io",
            "user/repo",
            Some("latest"),
            false,
            "docker.io/user/repo:latest".into(),
            "user/repo:latest".into(),
        ),
        (
            "user/app:1".into(),
            "docker.io",
            "user/app",
            Some("1"),
            false,
            "docker.io/user/app:1".into(),
            "user/app:1".into(),
        ),
        (
            "library/a/b".into(),
            "docker.io",
            "library/a/b",
            Some("latest"),
            false,
            "docker.io/library/a/b:latest".into(),
            "library/a/b:latest".into(),
        ),
        (
            "ghcr.io/org/app:v1".into(),
            "ghcr.io",
            "org/app",
            Some("v1"),
            false,
            "ghcr.io/org/app:v1".into(),
            "ghcr.io/org/app:v1".into(),
        ),
        (
            "ghcr.io/app".into(),
            "ghcr.io",
            "app",
            Some("latest"),
            false,
            "ghcr.io/app:latest".into(),
            "ghcr.io/app:latest".into(),
        ),
        (
            "localhost/app".into(),
            "localhost",
            "app",
            Some("latest"),
            false,
            "localhost/app:latest".into(),
            "localhost/app:latest".into(),
        ),
        (
            "localhost:5000/app:1".into(),
            "localhost:5000",
            "app",
            Some("1"),
            false,
            "localhost:5000/app:1".into(),
            "localhost:5000/app:1".into(),
        ),
        (
            "127.0.0.1:5000/a/b/c:tag".into(),
            "127.0.0.1:5000",
            "a/b/c",
            Some("tag"),
            false,
            "127.0.0.1:5000/a/b/c:tag".into(),
            "127.0.0.1:5000/a/b/c:tag".into(),
        ),
        (
            "[::1]:5000/app".into(),
            "[::1]:5000",
            "app",
            Some("latest"),
            false,
            "[::1]:5000/app:latest".into(),
            "[::1]:5000/app:latest".into(),
        ),
        (
            "[2001:db8::1]/app".into(),
            "[2001:db8::1]",
            "app",
            Some("latest"),
            false,
            "[2001:db8::1]/app:latest".into(),
            "[2001:db8::1]/app:latest".into(),
        ),
        (
            "example:5000/app".into(),
            "example:5000",
            "app",
            Some("latest"),
            false,
            "example:5000/app:latest".into(),
            "example:5000/app:latest".into(),
        ),
        (
            "Example.COM/app".into(),
            "Example.COM",
            "app",
            Some("latest"),
            false,
            "Example.COM/app:latest".into(),
            "Example.COM/app:latest".into(),
        ),
        (
            "UpperHost/app".into(),
            "UpperHost",
            "app",
            Some("latest"),
            false,
            "UpperHost/app:latest".into(),
            "UpperHost/app:latest".into(),
        ),
        (
            "localhost:5000".into(),
            "docker.io",
            "library/localhost",
            Some("5000"),
            false,
            "docker.io/library/localhost:5000".into(),
            "localhost:5000".into(),
        ),
        (
            "a.b-c---d/e__f.g-h:Tag_1.x-y".into(),
            "a.b-c---d",
            "e__f.g-h",
            Some("Tag_1.x-y"),
            false,
            "a.b-c---d/e__f.g-h:Tag_1.x-y".into(),
            "a.b-c---d/e__f.g-h:Tag_1.x-y".into(),
        ),
        (
            "foo/a__b---c_d.e".into(),
            "docker.io",
            "foo/a__b---c_d.e",
            Some("latest"),
            false,
            "docker.io/foo/a__b---c_d.e:latest".into(),
            "foo/a__b---c_d.e:latest".into(),
        ),
        (
            "app:_tag".into(),
            "docker.io",
            "library/app",
            Some("_tag"),
            false,
            "docker.io/library/app:_tag".into(),
            "app:_tag".into(),
        ),
        (
            format!("busybox@{dg}"),
            "docker.io",
            "library/busybox",
            None,
            true,
            format!("docker.io/library/busybox@{dg}"),
            format!("busybox@{dg}"),
        ),
        (
            format!("busybox:1.36@{dg}"),
            "docker.io",
            "library/busybox",
            Some("1.36"),
            true,
            format!("docker.io/library/busybox:1.36@{dg}"),
            format!("busybox:1.36@{dg}"),
        ),
        (
            format!("localhost:5000/app@{dg}"),
            "localhost:5000",
            "app",
            None,
            true,
            format!("localhost:5000/app@{dg}"),
            format!("localhost:5000/app@{dg}"),
        ),
        (
            format!("ghcr.io/o/a:v1@{dg}"),
            "ghcr.io",
            "o/a",
            Some("v1"),
            true,
            format!("ghcr.io/o/a:v1@{dg}"),
            format!("ghcr.io/o/a:v1@{dg}"),
        ),
        (
            format!("busybox@sha512:{H}{H}"),
            "docker.io",
            "library/busybox",
            None,
            false,
            format!("docker.io/library/busybox@sha512:{H}{H}"),
            format!("busybox@sha512:{H}{H}"),
        ),
    ]
}

#[test]
fn normalisation_table() {
    let rows = table();
    assert!(rows.len() >= 29);
    for (input, domain, repo, tag, sha256_digest, display, familiar) in rows {
        let r = Reference::parse(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(r.domain(), domain, "{input}");
        assert_eq!(r.repository(), repo, "{input}");
        assert_eq!(r.name(), format!("{domain}/{repo}"), "{input}");
        assert_eq!(r.tag(), tag, "{input}");
        if sha256_digest {
            assert_eq!(r.digest(), Some(d().as_str()), "{input}");
        }
        assert_eq!(r.to_string(), display, "{input}");
        assert_eq!(r.familiar(), familiar, "{input}");
        // Both forms parse back to the same reference.
        assert_eq!(Reference::parse(&display).as_ref(), Ok(&r), "{input}");
        assert_eq!(Reference::parse(&familiar).as_ref(), Ok(&r), "{input}");
        assert_eq!(display.parse::<Reference>().as_ref(), Ok(&r), "{input}");
    }
}

#[test]
fn registry_host() {
    let cases = [
        ("busybox", "registry-1.docker.io"),
        ("index.docker.io/user/app", "registry-1.docker.io"),
        ("ghcr.io/o/a", "ghcr.io"),
        ("localhost:5000/a", "localhost:5000"),
        ("[::1]:5000/a", "[::1]:5000"),
        ("quay.io:443/a", "quay.io:443"),
    ];
    for (input, host) in cases {
        assert_eq!(
            Reference::parse(input).unwrap().registry_host(),
            host,
            "{input}"
        );
    }
}

#[test]
fn loopback_registries() {
    let cases = [
        ("localhost/a", true),
        ("localhost:5000/a", true),
        ("LOCALHOST:5000/a", true),
        ("127.0.0.1/a", true),
        ("127.0.0.1:5000/a", true),
        ("127.255.3.4:80/a", true),
        ("[::1]/a", true),
        ("[::1]:5000/a", true),
        ("[0:0:0:0:0:0:0:1]:5000/a", true),
        ("busybox", false),
        ("localhost", false),
        ("ghcr.io/a", false),
        ("128.0.0.1:5000/a", false),
        ("127.0.0.1.example.com/a", false),
        ("localhost.example.com/a", false),
        ("[::2]:5000/a", false),
        ("10.0.0.1:5000/a", false),
    ];
    for (input, expected) in cases {
        let r = Reference::parse(input).unwrap();
        assert_eq!(r.is_loopback_registry(), expected, "{input}");
    }
}

#[test]
fn with_tag_replaces_tag_and_keeps_digest() {
    let r = Reference::parse("busybox")
        .unwrap()
        .with_tag("1.36")
        .unwrap();
    assert_eq!(r.to_string(), "docker.io/library/busybox:1.36");
    let dr = Reference::parse(&format!("busybox@{}", d())).unwrap();
    let dt = dr.with_tag("v2").unwrap();
    assert_eq!(
        dt.to_string(),
        format!("docker.io/library/busybox:v2@{}", d())
    );
    for bad in ["", ".x", "-x", "a:b", "a/b", "a@b", &"a".repeat(129), "é"] {
        assert_eq!(
            r.with_tag(bad),
            Err(ReferenceError::InvalidTag(bad.to_owned())),
            "{bad:?}"
        );
    }
    assert!(r.with_tag(&"a".repeat(128)).is_ok());
}

#[test]
fn errors() {
    use ReferenceError as E;
    let long_path = "a".repeat(248); // "library/" + 248 = 256
    let ok_path = "a".repeat(247); // "library/" + 247 = 255
    type Case = (String, fn(String) -> E);
    let cases: Vec<Case> = vec![
        ("Busybox".into(), E::UppercaseRepository),
        ("docker.io/User/app".into(), E::UppercaseRepository),
        ("ghcr.io/org/App:v1".into(), E::UppercaseRepository),
        ("user/Repo".into(), E::UppercaseRepository),
        ("busybox:".into(), E::InvalidTag),
        ("busybox:.tag".into(), E::InvalidTag),
        ("busybox:-tag".into(), E::InvalidTag),
        ("busybox:a:b".into(), E::InvalidTag),
        ("busybox:t!".into(), E::InvalidTag),
        (format!("busybox:{}", "t".repeat(129)), E::InvalidTag),
        ("busybox@".into(), E::InvalidDigest),
        ("busybox@sha256".into(), E::InvalidDigest),
        ("busybox@sha256:abc".into(), E::InvalidDigest),
        (
            format!("busybox@sha256:{}", H.to_uppercase()),
            E::InvalidDigest,
        ),
        (format!("busybox@sha256:{H}0"), E::InvalidDigest),
        (format!("busybox@sha512:{H}"), E::InvalidDigest),
        (format!("busybox@md5:{H}"), E::InvalidDigest),
        (format!("busybox@{H}"), E::InvalidDigest),
        (format!("busybox@sha256:{H}@sha256:{H}"), E::InvalidDigest),
        ("busybox/".into(), E::InvalidFormat),
        ("user//app".into(), E::InvalidFormat),
        ("/app".into(), E::InvalidFormat),
        (":tag".into(), E::InvalidFormat),
        (format!("@{}", d()), E::InvalidFormat),
        ("a_-b".into(), E::InvalidFormat),
        ("a___b".into(), E::InvalidFormat),
        ("a..b".into(), E::InvalidFormat),
        ("-app".into(), E::InvalidFormat),
        ("app-".into(), E::InvalidFormat),
        ("my app".into(), E::InvalidFormat),
        ("app!".into(), E::InvalidFormat),
        ("caf\u{e9}".into(), E::InvalidFormat),
        ("[::1]:5000".into(), E::InvalidFormat),
        ("ghcr.io/".into(), E::InvalidFormat),
        (long_path, E::NameTooLong),
        (format!("ghcr.io/{}", "a".repeat(256)), E::NameTooLong),
        ("-bad.io/app".into(), E::InvalidDomain),
        ("bad-.io/app".into(), E::InvalidDomain),
        ("a..io/app".into(), E::InvalidDomain),
        ("host:/app".into(), E::InvalidDomain),
        ("host:50x/app".into(), E::InvalidDomain),
        ("host:1:2/app".into(), E::InvalidDomain),
        ("[::1/app".into(), E::InvalidDomain),
        ("[]:5000/app".into(), E::InvalidDomain),
        ("[::1]x/app".into(), E::InvalidDomain),
        ("[::g]/app".into(), E::InvalidDomain),
        ("under_score.io/app".into(), E::InvalidDomain),
        (H.into(), E::HexIdentifier),
    ];
    for (input, make) in cases {
        assert_eq!(
            Reference::parse(&input),
            Err(make(input.clone())),
            "{input}"
        );
    }
    assert_eq!(Reference::parse(""), Err(E::Empty));
    assert!(Reference::parse(&ok_path).is_ok());
    // A 64-hex name with a tag is a plain repository name.
    assert!(Reference::parse(&format!("{H}:v1")).is_ok());
    // 63 hex digits are an ordinary name.
    assert!(Reference::parse(&H[1..]).is_ok());
}

#[test]
fn error_messages_name_the_problem() {
    let e = Reference::parse("Busybox").unwrap_err();
    assert!(e.to_string().contains("must be lowercase"), "{e}");
    assert!(e.to_string().contains("Busybox"), "{e}");
}

#[test]
fn serde_round_trip() {
    let r = Reference::parse(&format!("ghcr.io/o/a:v1@{}", d())).unwrap();
    let json = serde_json::to_string(&r).unwrap();
    assert_eq!(json, format!("\"ghcr.io/o/a:v1@{}\"", d()));
    let back: Reference = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r);
    let short: Reference = serde_json::from_str("\"busybox\"").unwrap();
    assert_eq!(short.to_string(), "docker.io/library/busybox:latest");
    assert!(serde_json::from_str::<Reference>("\"Bad\"").is_err());
    assert!(serde_json::from_str::<Reference>("42").is_err());
}

#[test]
fn never_panics_on_odd_input() {
    let mut inputs: Vec<String> = Vec::new();
    let mut seeds: Vec<String> = table().into_iter().map(|row| row.0).collect();
    seeds.extend(
        [
            "[::1]:5000/app@sha256:",
            "a@b@c",
            "@",
            ":",
            "/",
            "//",
            "[",
            "]",
            "[]",
            "[:",
            "[::1]",
            "::1/a",
            ":5000/a",
            "a:/b",
            "a/b:c/d",
            "a/:b",
            "localhost:",
            "x\u{0}y",
            "\u{1F600}/\u{1F600}:\u{1F600}@\u{1F600}",
            "é/ü:ß@sha256:é",
            "   ",
            "\n",
            "a\tb",
            "sha256:abc",
        ]
        .map(String::from),
    );
    seeds.push("a/".repeat(200));
    seeds.push(format!("{}/x", ".".repeat(300)));
    seeds.push(format!("x:{}", ":".repeat(300)));
    for seed in &seeds {
        for i in 0..=seed.len() {
            if let (Some(head), Some(tail)) = (seed.get(..i), seed.get(i..)) {
                inputs.push(head.to_owned());
                inputs.push(tail.to_owned());
            }
        }
    }
    assert!(inputs.len() > 300);
    for input in &inputs {
        if let Ok(r) = Reference::parse(input) {
            // Whatever parses is stable under re-parsing its forms.
            assert_eq!(
                Reference::parse(&r.to_string()).as_ref(),
                Ok(&r),
                "{input:?}"
            );
            assert_eq!(
                Reference::parse(&r.familiar()).as_ref(),
                Ok(&r),
                "{input:?}"
            );
            let _ = (r.registry_host(), r.is_loopback_registry());
        }
    }
}
