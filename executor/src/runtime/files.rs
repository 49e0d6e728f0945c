//! The `/etc/hosts` and `/etc/resolv.conf` a RUN step sees.

use super::NetworkMode;

/// The hostname, BuildKit's default when empty.
pub(super) fn hostname(hostname: &str) -> &str {
    if hostname.is_empty() {
        "buildkitsandbox"
    } else {
        hostname
    }
}

/// BuildKit's hosts file for `hostname`, then the `extra` entries
/// (`--add-host`).
pub(super) fn hosts(hostname: &str, extra: &[(String, std::net::IpAddr)]) -> String {
    let name = self::hostname(hostname);
    let mut out =
        format!("127.0.0.1\tlocalhost {name}\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for (host, ip) in extra {
        out.push_str(&format!("{ip}\t{host}\n"));
    }
    out
}

/// The host's resolv.conf (systemd-resolved's upstream one when the host
/// points at the 127.0.0.53 stub); without a usable nameserver in a
/// separate network namespace, Google's public DNS as BuildKit does.
pub(super) fn resolv_conf(network: NetworkMode) -> String {
    let mut conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if conf.lines().any(|l| is_nameserver(l, "127.0.0.53")) {
        if let Ok(upstream) = std::fs::read_to_string("/run/systemd/resolve/resolv.conf") {
            conf = upstream;
        }
    }
    if network == NetworkMode::Host {
        return conf;
    }
    // Loopback nameservers are unreachable from another netns.
    let mut out = String::new();
    let mut servers = 0;
    for line in conf.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let ip = words.next().unwrap_or("");
            if ip.starts_with("127.") || ip == "::1" {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

fn is_nameserver(line: &str, ip: &str) -> bool {
    let mut words = line.split_whitespace();
    words.next() == Some("nameserver") && words.next() == Some(ip)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hosts_format() {
        assert_eq!(
            super::hosts("box", &[]),
            "127.0.0.1\tlocalhost box\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        );
        let extra = [
            ("db".to_string(), "10.1.2.3".parse().expect("ip")),
            ("v6".to_string(), "fd00::1".parse().expect("ip")),
        ];
        assert!(super::hosts("box", &extra).ends_with("10.1.2.3\tdb\nfd00::1\tv6\n"));
    }
}
