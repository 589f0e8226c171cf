//! The torchwood `mpt` hash format, byte for byte (spec-notes/vcon-map.md,
//! "The tree format"): node hashes, varints and key bits.
//!
//! The map stores 32-byte keys and values, but these functions take byte
//! strings of any length so that torchwood's variable-length vectors can be
//! reproduced too. A key of L bytes is read as if followed by one `0x00` byte
//! and then `0xFF` bytes forever ("padding"); for 32-byte keys the padding is
//! never reached.

use std::cmp::Ordering;

use ring::digest;

use super::Hash;

/// The longest key or value the general (any-length) functions accept: 1024
/// bytes, torchwood's `MaxKeyLen` / `MaxValLen`.
pub const MAX_LEN: usize = 1024;

/// The largest bit position two distinct keys of at most [`MAX_LEN`] bytes can
/// first differ at (the padding byte after a 1024-byte key).
pub const MAX_BIT: u32 = (MAX_LEN as u32) * 8;

/// The empty tree's hash: SHA-256 of the empty string.
pub const EMPTY_ROOT: Hash = crate::merkle::EMPTY_ROOT;

/// A varint never needs more bytes than this here: every value we read is at
/// most [`MAX_BIT`] or [`MAX_LEN`], far below 2^35.
const MAX_VARINT_BYTES: usize = 5;

/// SHA-256(0x00 ‖ varint(len k) ‖ k ‖ varint(len v) ‖ v).
pub fn leaf_hash(key: &[u8], value: &[u8]) -> Hash {
    // The map's case (32 + 32 bytes, one-byte lengths): one contiguous input.
    if key.len() <= 64 && value.len() <= 64 {
        let mut buf = [0u8; 3 + 128];
        buf[1] = key.len() as u8;
        buf[2..2 + key.len()].copy_from_slice(key);
        let mut n = 2 + key.len();
        buf[n] = value.len() as u8;
        n += 1;
        buf[n..n + value.len()].copy_from_slice(value);
        n += value.len();
        return finish(digest::digest(&digest::SHA256, &buf[..n]));
    }
    let mut ctx = digest::Context::new(&digest::SHA256);
    // Room for two 10-byte varints: any usize length encodes.
    let mut buf = [0u8; 1 + 2 * 10];
    buf[0] = 0x00;
    // usize → u64 never truncates on the targets Rust supports (≤ 64-bit).
    let n = 1 + put_varint(&mut buf[1..], key.len() as u64);
    ctx.update(&buf[..n]);
    ctx.update(key);
    let n = put_varint(&mut buf, value.len() as u64);
    ctx.update(&buf[..n]);
    ctx.update(value);
    finish(ctx.finish())
}

/// SHA-256(0x01 ‖ varint(bit) ‖ left ‖ right).
pub fn inner_hash(bit: u32, left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 1 + MAX_VARINT_BYTES + 64];
    buf[0] = 0x01;
    let mut n = 1 + put_varint(&mut buf[1..], u64::from(bit));
    buf[n..n + 32].copy_from_slice(left);
    n += 32;
    buf[n..n + 32].copy_from_slice(right);
    n += 32;
    finish(digest::digest(&digest::SHA256, &buf[..n]))
}

fn finish(d: digest::Digest) -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Writes `x` as an unsigned LEB128 varint (the protobuf / Go `PutUvarint`
/// encoding, always minimal) and returns its length. `out` must have room for
/// the encoding: at most 10 bytes for a `u64`, 5 for a `u32`; every caller
/// sizes its buffer for the widest value it passes.
fn put_varint(out: &mut [u8], mut x: u64) -> usize {
    let mut i = 0;
    while x >= 0x80 {
        out[i] = (x as u8) | 0x80;
        x >>= 7;
        i += 1;
    }
    out[i] = x as u8;
    i + 1
}

/// Appends `x` as a minimal varint.
pub fn append_varint(out: &mut Vec<u8>, x: u64) {
    let mut buf = [0u8; 10];
    let n = put_varint(&mut buf, x);
    out.extend_from_slice(&buf[..n]);
}

/// Why a varint was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarintError {
    /// The input ended inside the varint.
    Truncated,
    /// Not the shortest encoding (a final `0x00` byte after a continuation
    /// byte), or longer than any value we accept could need.
    NonCanonical,
    /// A well-formed varint above the caller's limit.
    TooLarge(u64),
}

/// Reads one minimal varint from the front of `buf`, returning the value and
/// the number of bytes it took. Reads at most 5 bytes (35 bits), and
/// rejects values above `max`.
pub fn read_varint(buf: &[u8], max: u64) -> Result<(u64, usize), VarintError> {
    let mut x: u64 = 0;
    for (i, &b) in buf.iter().enumerate().take(MAX_VARINT_BYTES) {
        x |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if i > 0 && b == 0 {
                return Err(VarintError::NonCanonical);
            }
            if x > max {
                return Err(VarintError::TooLarge(x));
            }
            return Ok((x, i + 1));
        }
    }
    if buf.len() < MAX_VARINT_BYTES {
        Err(VarintError::Truncated)
    } else {
        Err(VarintError::NonCanonical)
    }
}

/// Bit `n` of `key` (bit 0 is the most significant bit of byte 0), reading
/// past the end as the padding `0x00, 0xFF, 0xFF, …`.
pub fn bit(key: &[u8], n: u32) -> u8 {
    // u32 → usize is lossless on every target with ≥ 32-bit pointers.
    let i = (n >> 3) as usize;
    let byte = padded_byte(key, i);
    (byte >> (7 - (n & 7))) & 1
}

fn padded_byte(key: &[u8], i: usize) -> u8 {
    match key.get(i) {
        Some(&b) => b,
        None if i == key.len() => 0x00,
        None => 0xFF,
    }
}

/// Compares two keys in tree order (byte order of the padded keys) and
/// returns the number of leading bits they share. Equal keys share
/// `u32::MAX` bits. Distinct keys of at most [`MAX_LEN`] bytes share at most
/// [`MAX_BIT`] bits.
pub fn compare(a: &[u8], b: &[u8]) -> (Ordering, u32) {
    if a == b {
        return (Ordering::Equal, u32::MAX);
    }
    // Distinct keys differ at or before index max(len a, len b): past the
    // shorter key's end its padding starts 0x00 FF FF…, and the longer key's
    // own padding starts with 0x00 where the shorter one has 0xFF.
    let end = a.len().max(b.len());
    for i in 0..=end {
        let (x, y) = (padded_byte(a, i), padded_byte(b, i));
        if x != y {
            let bits = (i as u64) * 8 + u64::from((x ^ y).leading_zeros());
            return (x.cmp(&y), u32::try_from(bits).unwrap_or(u32::MAX));
        }
    }
    // Unreachable for distinct keys (see above); answer conservatively.
    (a.len().cmp(&b.len()), u32::MAX)
}

/// First differing bit of two distinct 32-byte keys (0..=255), or `None` when
/// they are equal.
pub fn first_difference(a: &[u8; 32], b: &[u8; 32]) -> Option<u8> {
    for i in 0..32 {
        let x = a[i] ^ b[i];
        if x != 0 {
            // i < 32 and leading_zeros < 8, so the sum is at most 255.
            return Some((i as u8) * 8 + x.leading_zeros() as u8);
        }
    }
    None
}

/// Bit `n` (< 256) of a 32-byte key.
#[inline]
pub fn bit32(key: &[u8; 32], n: u8) -> u8 {
    (key[usize::from(n >> 3)] >> (7 - (n & 7))) & 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_minimal_and_bounded() {
        let mut v = Vec::new();
        for x in [0u64, 1, 127, 128, 255, 256, 8192, 16383, 16384] {
            v.clear();
            append_varint(&mut v, x);
            assert_eq!(read_varint(&v, u64::MAX), Ok((x, v.len())));
        }
        assert_eq!(read_varint(&[], 10), Err(VarintError::Truncated));
        assert_eq!(read_varint(&[0x80], 10), Err(VarintError::Truncated));
        assert_eq!(
            read_varint(&[0x80, 0x00], 10),
            Err(VarintError::NonCanonical)
        );
        assert_eq!(
            read_varint(&[0x81, 0x00], 10),
            Err(VarintError::NonCanonical)
        );
        assert_eq!(
            read_varint(&[0x80; 6], u64::MAX),
            Err(VarintError::NonCanonical)
        );
        assert_eq!(
            read_varint(&[0x80, 0x02], 255),
            Err(VarintError::TooLarge(256))
        );
        assert_eq!(
            read_varint(&[0x80, 0x80, 0x80, 0x80, 0x10], u64::MAX),
            Ok((1 << 32, 5))
        );
    }

    #[test]
    fn padding_orders_prefixes_as_torchwood_documents() {
        // K||00 < K||00||FE < K||00||FF < K < K||01 (torchwood's treehash.txt).
        let keys: [&[u8]; 5] = [
            &[0xab, 0x00],
            &[0xab, 0x00, 0xfe],
            &[0xab, 0x00, 0xff],
            &[0xab],
            &[0xab, 0x01],
        ];
        for w in keys.windows(2) {
            assert_eq!(compare(w[0], w[1]).0, Ordering::Less, "{:02x?}", w);
            assert_eq!(compare(w[1], w[0]).0, Ordering::Greater);
        }
        // {00} < {} (00 00 FF… vs 00 FF…), first difference at bit 8.
        assert_eq!(compare(&[0x00], &[]), (Ordering::Less, 8));
        assert_eq!(bit(&[], 0), 0);
        assert_eq!(bit(&[], 8), 1);
        assert_eq!(bit(&[0xff], 8), 0);
        assert_eq!(bit(&[0xff], 16), 1);
    }

    #[test]
    fn fixed_width_helpers_agree_with_the_general_ones() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        a[16] = 0x80;
        assert_eq!(first_difference(&a, &b), Some(128));
        assert_eq!(compare(&a, &b), (Ordering::Greater, 128));
        b[31] = 1;
        a[16] = 0;
        assert_eq!(first_difference(&a, &b), Some(255));
        assert_eq!(bit32(&b, 255), 1);
        assert_eq!(bit(&b, 255), 1);
        assert_eq!(first_difference(&a, &a), None);
    }
}
