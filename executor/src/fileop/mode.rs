//! `--chmod` values.

use super::{Chmod, FileOpError};

/// The mode a copied entry gets: `mode` (permission bits incl. special
/// bits) changed by `chmod`.
pub(crate) fn apply_chmod(
    chmod: Option<&Chmod>,
    mode: u32,
    is_dir: bool,
) -> Result<u32, FileOpError> {
    match chmod {
        None => Ok(mode & 0o7777),
        Some(Chmod::Octal(m)) => Ok(m & 0o7777),
        Some(Chmod::Symbolic(spec)) => symbolic(spec, mode & 0o7777, is_dir)
            .ok_or_else(|| FileOpError::invalid(format!("invalid --chmod value {spec:?}"))),
    }
}

/// Applies a symbolic mode (`u+x,g-w,o=r`, `a+X`, `go=u`) as chmod(1) does
/// (no umask: a missing who means `a`).
fn symbolic(spec: &str, mut mode: u32, is_dir: bool) -> Option<u32> {
    for clause in spec.split(',') {
        let chars: Vec<char> = clause.chars().collect();
        let mut i = 0;
        let mut who = 0u32;
        while i < chars.len() && "ugoa".contains(chars[i]) {
            who |= match chars[i] {
                'u' => 0o4700,
                'g' => 0o2070,
                'o' => 0o1007,
                _ => 0o7777,
            };
            i += 1;
        }
        if who == 0 {
            who = 0o7777;
        }
        if i >= chars.len() {
            return None;
        }
        while i < chars.len() {
            let op = chars[i];
            if !"+-=".contains(op) {
                return None;
            }
            i += 1;
            let mut perm = 0u32;
            while i < chars.len() && !"+-=".contains(chars[i]) {
                perm |= match chars[i] {
                    'r' => 0o444,
                    'w' => 0o222,
                    'x' => 0o111,
                    'X' => {
                        if is_dir || mode & 0o111 != 0 {
                            0o111
                        } else {
                            0
                        }
                    }
                    's' => 0o6000,
                    't' => 0o1000,
                    'u' => ((mode >> 6) & 7) * 0o111,
                    'g' => ((mode >> 3) & 7) * 0o111,
                    'o' => (mode & 7) * 0o111,
                    _ => return None,
                };
                i += 1;
            }
            let bits = perm & who;
            match op {
                '+' => mode |= bits,
                '-' => mode &= !bits,
                _ => mode = (mode & !(who & 0o7777)) | bits,
            }
        }
    }
    Some(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbolic_modes() {
        assert_eq!(symbolic("u+x", 0o644, false), Some(0o744));
        assert_eq!(symbolic("g-w,o=r", 0o664, false), Some(0o644));
        assert_eq!(symbolic("a+X", 0o644, false), Some(0o644));
        assert_eq!(symbolic("a+X", 0o644, true), Some(0o755));
        assert_eq!(symbolic("a+X", 0o744, false), Some(0o755));
        assert_eq!(symbolic("+x", 0o600, false), Some(0o711));
        assert_eq!(symbolic("go=u", 0o640, false), Some(0o666));
        assert_eq!(symbolic("u+s,+t", 0o755, false), Some(0o5755));
        assert_eq!(symbolic("u=rw", 0o4755, false), Some(0o655));
        assert_eq!(symbolic("u", 0o644, false), None);
        assert_eq!(symbolic("u+q", 0o644, false), None);
    }
}
