//! CRC32C helpers: a fast `combine`.
//!
//! `crc32c::crc32c_combine` rebuilds its zero-byte operators by repeated matrix squaring on
//! every call, which for a 1 MiB chunk costs about as much as checksumming the chunk again.
//! Here the operators for 2^k zero bytes are computed once, so combining is one 32x32 bit
//! matrix-vector product per set bit of the length.

use std::sync::OnceLock;

/// The CRC32C polynomial, reflected.
const POLY: u32 = 0x82F6_3B78;

type Matrix = [u32; 32];

fn times(m: &Matrix, mut v: u32) -> u32 {
    let mut sum = 0;
    let mut i = 0;
    while v != 0 {
        if v & 1 == 1 {
            sum ^= m[i];
        }
        v >>= 1;
        i += 1;
    }
    sum
}

fn square(m: &Matrix) -> Matrix {
    let mut out = [0u32; 32];
    for (o, &row) in out.iter_mut().zip(m) {
        *o = times(m, row);
    }
    out
}

/// `OPS[k]` appends 2^k zero bytes to a CRC register.
fn ops() -> &'static [Matrix; 64] {
    static OPS: OnceLock<[Matrix; 64]> = OnceLock::new();
    OPS.get_or_init(|| {
        // One zero bit, then two, four, eight (one byte).
        let mut bit = [0u32; 32];
        bit[0] = POLY;
        for (n, b) in bit.iter_mut().enumerate().skip(1) {
            *b = 1 << (n - 1);
        }
        let byte = square(&square(&square(&bit)));
        let mut ops = [[0u32; 32]; 64];
        ops[0] = byte;
        for k in 1..64 {
            ops[k] = square(&ops[k - 1]);
        }
        ops
    })
}

/// The CRC32C of `a` followed by `b`, from `crc_a`, `crc_b` and the length of `b`.
pub(crate) fn combine(crc_a: u32, crc_b: u32, len_b: usize) -> u32 {
    let ops = ops();
    let (mut crc, mut len, mut k) = (crc_a, len_b as u64, 0);
    while len != 0 {
        if len & 1 == 1 {
            crc = times(&ops[k], crc);
        }
        len >>= 1;
        k += 1;
    }
    crc ^ crc_b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_crate_and_a_full_pass() {
        let data: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for split in [0, 1, 7, 8, 100, 4096, 65_537, 199_999, 200_000] {
            let (a, b) = data.split_at(split);
            let (ca, cb) = (crc32c::crc32c(a), crc32c::crc32c(b));
            assert_eq!(
                combine(ca, cb, b.len()),
                crc32c::crc32c(&data),
                "split {split}"
            );
            assert_eq!(
                combine(ca, cb, b.len()),
                crc32c::crc32c_combine(ca, cb, b.len())
            );
        }
        for len in [1usize << 20, (1 << 20) + 3, usize::MAX >> 1] {
            assert_eq!(
                combine(0x1234_5678, 0x9abc_def0, len),
                crc32c::crc32c_combine(0x1234_5678, 0x9abc_def0, len)
            );
        }
    }
}
