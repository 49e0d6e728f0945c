//! Sizes and ages as Docker reads and prints them.

use std::time::Duration;

/// Reads a size as Docker's `--keep-storage` does (go-units
/// `RAMInBytes`): a number with an optional `b`, `k`, `m`, `g`, `t` or `p`
/// suffix (any case, optionally followed by `b` or `ib`), in powers of
/// 1024: `5GB` is 5 GiB, `512m` 512 MiB, `100` 100 bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit = unit.trim_start().to_ascii_lowercase();
    let value: f64 = number
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| format!("invalid size {text:?} (examples: 10GB, 512MB, 1048576)"))?;
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b').filter(|u| !u.is_empty()))
        .unwrap_or(&unit);
    let power = match unit {
        "" | "b" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        _ => {
            return Err(format!(
                "invalid size {text:?}: unknown unit (use B, KB, MB, GB, TB or PB)"
            ))
        }
    };
    let bytes = value * 1024f64.powi(power);
    if bytes > u64::MAX as f64 {
        return Err(format!("invalid size {text:?}: too large"));
    }
    Ok(bytes as u64)
}

/// Prints a size as Docker does (go-units `HumanSize`): four significant
/// digits, decimal units, no space: `0B`, `8.192kB`, `12.35MB`.
pub fn docker_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    let digits = if value >= 100.0 {
        1
    } else if value >= 10.0 {
        2
    } else {
        3
    };
    let mut text = format!("{value:.digits$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{text}{}", UNITS[unit])
}

/// How long ago, as Docker prints it (go-units `HumanDuration`).
pub fn ago(elapsed: Duration) -> String {
    let s = elapsed.as_secs();
    let text = match s {
        0 => "Less than a second".to_string(),
        1 => "1 second".to_string(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".to_string(),
        120..=2699 => format!("{} minutes", s / 60),
        2700..=5399 => "About an hour".to_string(),
        5400..=172_799 => format!("{} hours", (s + 1800) / 3600),
        172_800..=1_209_599 => format!("{} days", s / 86_400),
        1_209_600..=5_183_999 => format!("{} weeks", s / 604_800),
        5_184_000..=63_071_999 => format!("{} months", s / 2_592_000),
        _ => format!("{} years", s / 31_536_000),
    };
    format!("{text} ago")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("5GB"), Ok(5 << 30));
        assert_eq!(parse_size("5g"), Ok(5 << 30));
        assert_eq!(parse_size("1.5MiB"), Ok(3 << 19));
        assert_eq!(parse_size("512 kb"), Ok(512 << 10));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5XB").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn sizes_print_like_docker() {
        assert_eq!(docker_size(0), "0B");
        assert_eq!(docker_size(999), "999B");
        assert_eq!(docker_size(8192), "8.192kB");
        assert_eq!(docker_size(12_345_678), "12.35MB");
        assert_eq!(docker_size(1_200_000_000), "1.2GB");
        assert_eq!(docker_size(100_000), "100kB");
    }

    #[test]
    fn ages() {
        assert_eq!(ago(Duration::from_secs(5)), "5 seconds ago");
        assert_eq!(ago(Duration::from_secs(600)), "10 minutes ago");
        assert_eq!(ago(Duration::from_secs(3 * 86_400)), "3 days ago");
    }
}
