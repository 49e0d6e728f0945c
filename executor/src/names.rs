//! File names that are not UTF-8, carried through `String` paths.
//!
//! Paths inside a tree (a context, a layer stack, a COPY destination) are
//! slash-separated `String`s. A name that is not UTF-8 (Docker builds such
//! names) is kept by [`encode`]: every byte that is not part of valid UTF-8
//! becomes one character of the private-use range U+10FF80..=U+10FFFF
//! (`U+10FF00 + byte`); a name that really holds such a character has that
//! character's bytes escaped too, so the mapping is one-to-one. [`decode`]
//! gives the bytes back wherever a path meets the filesystem.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

const BASE: u32 = 0x10_FF00;

fn is_escape(c: char) -> bool {
    (BASE + 0x80..=BASE + 0xFF).contains(&u32::from(c))
}

fn escape(byte: u8) -> char {
    char::from_u32(BASE + u32::from(byte)).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// The `String` form of a file name or path (see the module docs).
pub fn encode(name: &OsStr) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(name.as_bytes()) {
        if !s.chars().any(is_escape) {
            return Cow::Borrowed(s);
        }
    }
    let mut out = String::with_capacity(name.len());
    for chunk in name.as_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            if is_escape(c) {
                let mut buf = [0u8; 4];
                c.encode_utf8(&mut buf)
                    .bytes()
                    .for_each(|b| out.push(escape(b)));
            } else {
                out.push(c);
            }
        }
        chunk.invalid().iter().for_each(|&b| out.push(escape(b)));
    }
    Cow::Owned(out)
}

/// The file name or path whose [`encode`] form is `s`.
pub fn decode(s: &str) -> Cow<'_, OsStr> {
    if !s.chars().any(is_escape) {
        return Cow::Borrowed(OsStr::new(s));
    }
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        if is_escape(c) {
            // In range: the difference is 0x80..=0xFF.
            out.push((u32::from(c) - BASE) as u8);
        } else {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    Cow::Owned(OsString::from_vec(out))
}

/// `root` joined with the tree path `rel` (in [`encode`] form).
pub fn rel_path(root: &Path, rel: &str) -> PathBuf {
    root.join(decode(rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_bytes() {
        let cases: &[&[u8]] = &[
            b"plain.txt",
            b"caf\xc3\xa9",
            b"latin1-caf\xe9",
            b"\xff\xfe",
            b"half\xc3",
            "\u{10FF80}real-escape-char".as_bytes(),
            b"\xf4\x8f\xbe\x80",
        ];
        let mut seen = std::collections::HashSet::new();
        for &bytes in cases {
            let name = OsStr::from_bytes(bytes);
            let s = encode(name);
            assert_eq!(decode(&s).as_bytes(), bytes, "{s:?}");
            assert!(seen.insert(s.into_owned()), "two names encode alike");
        }
        assert!(matches!(encode(OsStr::new("a/b")), Cow::Borrowed("a/b")));
    }
}
