//! [`VerifiedReader`]: a stream checked against the digest it should
//! have, for content read from somewhere that does not verify it (a
//! decompressed layer against its diff id).

use crate::Digest;
use sha2::Digest as _;
use std::io::{self, Read};

/// A reader that hashes what passes through it and, at the end of the
/// stream, fails with [`io::ErrorKind::InvalidData`] unless the bytes had
/// the expected digest. A consumer that stops early has verified nothing:
/// read to the end (for a tar, past its end marker) before trusting it.
pub struct VerifiedReader<R> {
    inner: R,
    hasher: StreamHasher,
    expected: Digest,
    done: bool,
}

/// The hash of a digest's algorithm.
enum StreamHasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl<R: Read> VerifiedReader<R> {
    /// Checks `inner` against `expected` (sha256 or sha512, the two
    /// algorithms a [`Digest`] can name).
    pub fn new(inner: R, expected: Digest) -> VerifiedReader<R> {
        let hasher = match expected.algorithm() {
            "sha512" => StreamHasher::Sha512(sha2::Sha512::new()),
            _ => StreamHasher::Sha256(sha2::Sha256::new()),
        };
        VerifiedReader {
            inner,
            hasher,
            expected,
            done: false,
        }
    }

    /// Reads what is left, so the whole stream is checked.
    ///
    /// # Errors
    /// A read error, or a digest mismatch.
    pub fn finish(mut self) -> io::Result<()> {
        io::copy(&mut self, &mut io::sink()).map(|_| ())
    }

    fn actual(&self) -> String {
        let (algorithm, bytes) = match &self.hasher {
            StreamHasher::Sha256(h) => ("sha256", h.clone().finalize().to_vec()),
            StreamHasher::Sha512(h) => ("sha512", h.clone().finalize().to_vec()),
        };
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("{algorithm}:{hex}")
    }
}

impl<R: Read> Read for VerifiedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let actual = self.actual();
            if actual != self.expected.as_str() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("content is {actual}, expected {}", self.expected),
                ));
            }
            self.done = true;
            return Ok(0);
        }
        match &mut self.hasher {
            StreamHasher::Sha256(h) => h.update(&buf[..n]),
            StreamHasher::Sha512(h) => h.update(&buf[..n]),
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_the_expected_bytes_and_refuses_others() {
        let good = Digest::sha256(b"layer");
        let mut out = Vec::new();
        VerifiedReader::new(&b"layer"[..], good.clone())
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"layer");
        let err = VerifiedReader::new(&b"layeR"[..], good)
            .finish()
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("expected sha256:"), "{err}");
    }

    #[test]
    fn checks_sha512() {
        use sha2::Digest as _;
        let hex: String = sha2::Sha512::digest(b"x")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let expected: Digest = format!("sha512:{hex}").parse().unwrap();
        VerifiedReader::new(&b"x"[..], expected.clone())
            .finish()
            .unwrap();
        assert!(VerifiedReader::new(&b"y"[..], expected).finish().is_err());
    }
}
