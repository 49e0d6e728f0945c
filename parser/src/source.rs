//! Dockerfile bytes to text: UTF-8 only, with a hint for UTF-16 files
//! and the position of the first byte that is not UTF-8.

use crate::error::{ErrorKind, ParseError};
use crate::span::Position;

/// The text of a Dockerfile read as bytes.
///
/// # Errors
/// [`ErrorKind::Utf16`] at 1:1 for a file in UTF-16 (a byte-order mark,
/// or a NUL in its first two bytes); [`ErrorKind::NotUtf8`] at the line
/// and column of the first byte that is not UTF-8.
pub fn decode(bytes: Vec<u8>) -> Result<String, ParseError> {
    let utf16 = match bytes.as_slice() {
        [0xFF, 0xFE, ..] => Some("it starts with the UTF-16 byte-order mark FF FE"),
        [0xFE, 0xFF, ..] => Some("it starts with the UTF-16 byte-order mark FE FF"),
        [a, 0, ..] | [0, a, ..] if *a != 0 => Some("every other byte is NUL"),
        _ => None,
    };
    if let Some(why) = utf16 {
        return Err(ParseError::new(
            Position::new(1, 1),
            ErrorKind::Utf16(why.to_string()),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        // The valid prefix is UTF-8, so it can be read as text.
        let prefix = String::from_utf8_lossy(&e.as_bytes()[..at]);
        let line = prefix.matches('\n').count() + 1;
        let column = prefix.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        ParseError::new(Position::new(line, column), ErrorKind::NotUtf8(at))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_is_named() {
        for bytes in [
            b"\xFF\xFEF\0R\0".to_vec(),
            b"\xFE\xFF\0F\0R".to_vec(),
            b"F\0R\0O\0M\0".to_vec(),
        ] {
            let e = decode(bytes).expect_err("utf-16");
            assert_eq!(e.position, Position::new(1, 1));
            assert!(e.to_string().contains("save it as UTF-8"), "{e}");
        }
    }

    #[test]
    fn the_first_bad_byte_has_a_position() {
        let e = decode(b"FROM x\nRUN \xc3\xa9\xff\n".to_vec()).expect_err("bad");
        assert_eq!(e.position, Position::new(2, 6));
        assert_eq!(e.kind, ErrorKind::NotUtf8(13));
        assert_eq!(decode(b"FROM x\n".to_vec()).expect("ok"), "FROM x\n");
        assert_eq!(decode(Vec::new()).expect("empty"), "");
    }
}
