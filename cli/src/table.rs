//! Tables as docker prints them: columns three spaces apart, the last
//! one not padded, long text cut with an ellipsis.

use std::io::{self, Write};

/// Writes `rows` (the header first) in columns.
pub fn write<const N: usize>(out: &mut impl Write, rows: &[[String; N]]) -> io::Result<()> {
    let widths: Vec<usize> = (0..N)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < N {
                let pad = widths[i] - cell.chars().count() + 3;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// `text` cut to `max` characters with an ellipsis, as docker cuts.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_as_docker_cuts() {
        assert_eq!(truncate("short", 45), "short");
        let long = "RUN /bin/sh -c apt-get update && apt-get install -y curl";
        let cut = truncate(long, 45);
        assert_eq!(cut.chars().count(), 45);
        assert!(cut.ends_with('…') && long.starts_with(cut.trim_end_matches('…')));
    }

    #[test]
    fn columns_are_three_spaces_apart_and_the_last_is_not_padded() {
        let rows = [
            ["A".to_string(), "long".into(), "x".into()],
            ["ééé".to_string(), "b".into(), "".into()],
        ];
        let mut out = Vec::new();
        write(&mut out, &rows).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "A     long   x\nééé   b\n");
    }
}
