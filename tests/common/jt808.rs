//! JT/T 808 test data made independently of the library: hex, frames framed by a
//! naive reference encoder, and a reproducible random source.

/// The bytes of a hex string (whitespace ignored).
pub fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// Lower-case hex of `b`.
pub fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A deliberately naive reference encoder, independent of the library: header
/// bytes are given raw, the checksum is XORed here, then everything between the
/// flags is escaped byte by byte.
pub fn reference_frame(header_and_body: &[u8]) -> Vec<u8> {
    let mut content = header_and_body.to_vec();
    content.push(header_and_body.iter().fold(0, |a, b| a ^ b));
    let mut out = vec![0x7e];
    for b in content {
        match b {
            0x7e => out.extend([0x7d, 0x02]),
            0x7d => out.extend([0x7d, 0x01]),
            _ => out.push(b),
        }
    }
    out.push(0x7e);
    out
}

/// A tiny deterministic PRNG (xorshift64*), so the randomized tests need no
/// dependency and fail reproducibly.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}
