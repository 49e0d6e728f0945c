//! Deciding, from a gzip block's own bytes, that deflate cannot win on it,
//! so that it is written as stored deflate blocks (deflate level 0: a copy
//! with 5 bytes of framing per 64 KiB) instead of paying the LZ77 search.
//!
//! The test looks at the block only (never at the thread count or at what
//! came before), so the decision and the bytes are the same on every run.
//! It is conservative: it says "incompressible" only when all three hold,
//! and text, binaries and typical layer content fail the first one by far.
//!
//! 1. **Flat byte histograms.** Every segment of [`SEGMENT`] bytes has an
//!    order-0 entropy of at least [`MIN_BITS_PER_BYTE`]: Huffman coding could
//!    save at most ~0.4% there, less than its code tables cost. (Uniform
//!    random data measures ~7.99 on 16 KiB; text ~4.5–5.5; x86 code ~6;
//!    a tar header among random data pulls its segment below 7.97.)
//! 2. **No repeated 64-byte strings.** A gear rolling hash (a fingerprint of
//!    the last 64 bytes) picks content-defined anchors, about one in 64
//!    bytes; two anchors with the same fingerprint mean a repeated string,
//!    which LZ77 would find (for example the same compressed file stored
//!    twice). Since anchors depend on content, not position, a repeat of
//!    ~128 bytes or more shows up wherever it sits.
//! 3. **A fast trial finds nothing.** A [`SAMPLE`]-byte sample at level 1
//!    does not shrink, which catches short periodic patterns whose
//!    histogram is flat (a counter, say) and that anchors could miss.
//!
//! Blocks shorter than [`MIN_LEN`] always go through deflate.

use flate2::{Compress, FlushCompress};

/// Blocks shorter than this are always deflated.
pub(super) const MIN_LEN: usize = 64 * 1024;
/// The unit of the entropy test (about one deflate block of symbols).
const SEGMENT: usize = 16 * 1024;
/// The order-0 entropy, in bits per byte, that every segment must reach.
const MIN_BITS_PER_BYTE: f64 = 7.97;
/// The size of the trial-compressed sample.
const SAMPLE: usize = 4096;
/// Anchors: a position whose gear hash has its top `ANCHOR_BITS` bits 0.
const ANCHOR_BITS: u32 = 6;

/// Whether `block` should be stored rather than deflated.
pub(super) fn incompressible(block: &[u8]) -> bool {
    block.len() >= MIN_LEN && flat_histograms(block) && !repeats(block) && !trial_shrinks(block)
}

/// Test 1: every segment's order-0 entropy is at least
/// [`MIN_BITS_PER_BYTE`]. A last piece shorter than a segment joins the
/// segment before it.
fn flat_histograms(block: &[u8]) -> bool {
    let full = block.len() / SEGMENT;
    (0..full).all(|i| {
        let end = if i + 1 == full {
            block.len()
        } else {
            (i + 1) * SEGMENT
        };
        block
            .get(i * SEGMENT..end)
            .is_some_and(|s| entropy_bits(s) >= MIN_BITS_PER_BYTE)
    })
}

/// Order-0 entropy of `data` in bits per byte.
fn entropy_bits(data: &[u8]) -> f64 {
    // Four histograms, summed, so that runs of one byte do not serialise
    // on a single counter.
    let mut h = [[0u32; 256]; 4];
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        h[0][usize::from(c[0])] += 1;
        h[1][usize::from(c[1])] += 1;
        h[2][usize::from(c[2])] += 1;
        h[3][usize::from(c[3])] += 1;
    }
    for &b in chunks.remainder() {
        h[0][usize::from(b)] += 1;
    }
    let n = data.len() as f64;
    let mut bits = 0.0;
    let [h0, h1, h2, h3] = &h;
    for (((a, b), c), d) in h0.iter().zip(h1).zip(h2).zip(h3) {
        let c = a + b + c + d;
        if c > 0 {
            let p = f64::from(c) / n;
            bits -= p * p.log2();
        }
    }
    bits
}

/// Test 2: whether two content-defined anchors share a fingerprint of the
/// 64 bytes before them. The block is hashed as four quarters side by
/// side (independent hash chains run four times as fast); only a repeat
/// within the first 64 bytes of a quarter can go unseen.
fn repeats(block: &[u8]) -> bool {
    const WARM: usize = 64;
    let quarter = block.len() / 4;
    if quarter <= WARM {
        return false;
    }
    let (a, rest) = block.split_at(quarter);
    let (b, rest) = rest.split_at(quarter);
    let (c, d) = rest.split_at(quarter);
    let mut seen = Anchors::new(block.len());
    let mut h = [0u64; 4];
    let step = |h: u64, byte: u8| (h << 1).wrapping_add(GEAR[usize::from(byte)]);
    for i in 0..WARM {
        h = [
            step(h[0], a[i]),
            step(h[1], b[i]),
            step(h[2], c[i]),
            step(h[3], d[i]),
        ];
    }
    let lanes = a[WARM..]
        .iter()
        .zip(&b[WARM..])
        .zip(&c[WARM..])
        .zip(&d[WARM..quarter]);
    for (((&x0, &x1), &x2), &x3) in lanes {
        h = [
            step(h[0], x0),
            step(h[1], x1),
            step(h[2], x2),
            step(h[3], x3),
        ];
        let any = (h[0] < LIMIT) | (h[1] < LIMIT) | (h[2] < LIMIT) | (h[3] < LIMIT);
        // Rarely taken: some chain is at an anchor.
        if any && h.iter().any(|&v| v < LIMIT && seen.insert(v)) {
            return true;
        }
    }
    // The last quarter's extra bytes (the block length mod 4).
    let mut last = h[3];
    for &x in &d[quarter..] {
        last = step(last, x);
        if last < LIMIT && seen.insert(last) {
            return true;
        }
    }
    false
}

/// A hash below this (its top `ANCHOR_BITS` bits all 0) is an anchor.
const LIMIT: u64 = 1 << (64 - ANCHOR_BITS);

/// The fingerprints of the anchors seen: open addressing, sized for four
/// times the expected anchors.
struct Anchors {
    table: Vec<u64>,
    mask: usize,
}

impl Anchors {
    fn new(len: usize) -> Anchors {
        let slots = (len >> ANCHOR_BITS).next_power_of_two() * 4;
        Anchors {
            table: vec![0; slots],
            mask: slots - 1,
        }
    }

    /// Adds `h`; true if it was there already. Zero marks an empty slot.
    fn insert(&mut self, h: u64) -> bool {
        let key = h | 1;
        let mut slot = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize & self.mask;
        loop {
            match self.table[slot] {
                0 => {
                    self.table[slot] = key;
                    return false;
                }
                k if k == key => return true,
                _ => slot = (slot + 1) & self.mask,
            }
        }
    }
}

/// Test 3: whether level 1 shrinks the block's middle [`SAMPLE`] bytes by
/// more than 3%.
fn trial_shrinks(block: &[u8]) -> bool {
    let start = (block.len() - SAMPLE) / 2;
    let Some(sample) = block.get(start..start + SAMPLE) else {
        return true;
    };
    let mut c = Compress::new(flate2::Compression::new(1), false);
    let mut out = Vec::with_capacity(SAMPLE * 2);
    match c.compress_vec(sample, &mut out, FlushCompress::Finish) {
        // When in doubt, deflate.
        Ok(flate2::Status::StreamEnd) => out.len() < SAMPLE - SAMPLE * 3 / 100,
        _ => true,
    }
}

/// The gear table: 256 fixed pseudo-random 64-bit values (splitmix64 of
/// 0..256), so the anchors are the same on every machine.
static GEAR: [u64; 256] = gear_table();

const fn gear_table() -> [u64; 256] {
    let mut t = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut z = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        t[i] = z ^ (z >> 31);
        i += 1;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(len: usize, seed: u64) -> Vec<u8> {
        let mut s = seed | 1;
        (0..len / 8 + 1)
            .flat_map(|_| {
                s ^= s >> 12;
                s ^= s << 25;
                s ^= s >> 27;
                s.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes()
            })
            .take(len)
            .collect()
    }

    #[test]
    fn random_is_incompressible() {
        for seed in 1..20 {
            assert!(incompressible(&random(128 * 1024, seed)), "seed {seed}");
        }
        assert!(incompressible(&random(MIN_LEN, 7)));
        assert!(!incompressible(&random(MIN_LEN - 1, 7)));
    }

    #[test]
    fn structure_is_found() {
        let r = random(128 * 1024, 3);
        // Text.
        let text: Vec<u8> = b"the layer of the image, "
            .iter()
            .copied()
            .cycle()
            .take(128 * 1024)
            .collect();
        assert!(!incompressible(&text));
        // A counter: flat histogram, short period.
        let counter: Vec<u8> = (0..128 * 1024).map(|i| (i % 256) as u8).collect();
        assert!(entropy_bits(&counter) > 7.99);
        assert!(!incompressible(&counter));
        // A random 10 KiB piece stored twice: flat histogram, one repeat.
        let mut twice = r.clone();
        twice.copy_within(50_000..60_000, 90_000);
        assert!(!incompressible(&twice));
        // Repeats of 2 KiB and 300 bytes within one quarter, and one
        // from the first quarter into the last.
        for (from, to, len) in [
            (1000, 5000, 2048),
            (40_000, 41_000, 300),
            (100, 120_000, 4096),
        ] {
            let mut r2 = r.clone();
            r2.copy_within(from..from + len, to);
            assert!(!incompressible(&r2), "{len} bytes from {from} to {to}");
        }
        // A tar header's zeros among random bytes.
        let mut header = r.clone();
        header[70_000..70_400].fill(0);
        assert!(!incompressible(&header));
    }
}
