//! A compact line diff for failure reports.

/// The differing lines between `expected` and `actual` (`- ` expected only,
/// `+ ` actual only, in order), at most `max` of them plus a line saying
/// how many were left out. Empty when the two are equal.
pub fn diff(expected: &[String], actual: &[String], max: usize) -> Vec<String> {
    if expected == actual {
        return Vec::new();
    }
    let changes = lcs_diff(expected, actual);
    let total = changes.len();
    let mut out: Vec<String> = changes.into_iter().take(max).collect();
    if total > max {
        out.push(format!("  … and {} more differing lines", total - max));
    }
    out
}

/// The non-common lines of a longest-common-subsequence alignment.
fn lcs_diff(a: &[String], b: &[String]) -> Vec<String> {
    // Skip the common prefix and suffix; listings usually differ in a few
    // places only.
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let (a, b) = (&a[prefix..], &b[prefix..]);
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (a, b) = (&a[..a.len() - suffix], &b[..b.len() - suffix]);
    if a.len().saturating_mul(b.len()) > 16_000_000 {
        // Too big for the table: list the whole middle on both sides.
        let mut out: Vec<String> = a.iter().map(|l| format!("- {l}")).collect();
        out.extend(b.iter().map(|l| format!("+ {l}")));
        return out;
    }
    let (n, m) = (a.len(), b.len());
    // table[i][j] = LCS length of a[i..] and b[j..].
    let mut table = vec![0u32; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            table[at(i, j)] = if a[i] == b[j] {
                table[at(i + 1, j + 1)] + 1
            } else {
                table[at(i + 1, j)].max(table[at(i, j + 1)])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j == m || (i < n && table[at(i + 1, j)] >= table[at(i, j + 1)]) {
            out.push(format!("- {}", a[i]));
            i += 1;
        } else {
            out.push(format!("+ {}", b[j]));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn shows_only_changes() {
        let d = diff(&lines("a b c d"), &lines("a x c d e"), 20);
        assert_eq!(d, ["- b", "+ x", "+ e"]);
        assert!(diff(&lines("a"), &lines("a"), 20).is_empty());
        let d = diff(&lines("a b c"), &lines("x y z"), 2);
        assert_eq!(d.len(), 3);
        assert!(d[2].contains("4 more"));
    }
}
