//! C2SP tlog-tiles entry bundles: the entries `N*256 ..` of a log as
//! big-endian `u16` length-prefixed byte strings, concatenated, served at
//! `tile/entries/<N>[.p/<W>]`. The u16 prefix is why an entry is at most
//! 65,535 bytes (and why the statement cap is that, not 64 KiB).

use super::tile::{TileId, parse_c2sp_path};

/// Largest entry a bundle can hold.
pub const MAX_ENTRY_BYTES: usize = u16::MAX as usize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("entry {0} of the bundle is {1} bytes; a bundle entry is at most 65,535")]
    TooLong(usize, usize),
    #[error("the bundle ends inside entry {0}")]
    Truncated(usize),
    /// `got` is a lower bound when the bundle holds more than `want`
    /// (parsing stops at the first entry too many).
    #[error("the bundle holds {got} entries, not {want}")]
    WrongCount { got: usize, want: usize },
}

/// Concatenates length-prefixed entries.
pub fn encode<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<u8>, BundleError> {
    let mut out = Vec::new();
    for (i, e) in entries.into_iter().enumerate() {
        let len = u16::try_from(e.len()).map_err(|_| BundleError::TooLong(i, e.len()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// Splits a bundle that must hold exactly `want` entries.
pub fn parse(bytes: &[u8], want: usize) -> Result<Vec<&[u8]>, BundleError> {
    let mut out = Vec::with_capacity(want);
    let mut rest = bytes;
    while !rest.is_empty() {
        let i = out.len();
        if i == want {
            return Err(BundleError::WrongCount { got: i + 1, want });
        }
        let (len, tail) = rest
            .split_first_chunk::<2>()
            .ok_or(BundleError::Truncated(i))?;
        let len = u16::from_be_bytes(*len) as usize;
        if tail.len() < len {
            return Err(BundleError::Truncated(i));
        }
        let (entry, tail) = tail.split_at(len);
        out.push(entry);
        rest = tail;
    }
    if out.len() != want {
        return Err(BundleError::WrongCount {
            got: out.len(),
            want,
        });
    }
    Ok(out)
}

/// `<N>[.p/<W>]` after `tile/entries/`: the bundle index and the partial
/// width, in the canonical C2SP form only.
pub fn parse_path(segments: &[&str]) -> Option<(u64, Option<usize>)> {
    let mut with_level = vec!["0"];
    with_level.extend_from_slice(segments);
    parse_c2sp_path(&with_level).map(|(id, w)| (id.index, w))
}

/// The path of bundle `index` holding `width` entries (256: full).
pub fn path(prefix: &str, index: u64, width: usize) -> String {
    let n = TileId::c2sp_index_path(index);
    if width >= super::tile::WIDTH {
        format!("{prefix}/{n}")
    } else {
        format!("{prefix}/{n}.p/{width}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_split_exactly_and_refuse_what_is_not_one() {
        let entries: [&[u8]; 3] = [b"one", b"", b"three"];
        let b = encode(entries).unwrap();
        assert_eq!(b, b"\x00\x03one\x00\x00\x00\x05three");
        assert_eq!(parse(&b, 3).unwrap(), entries.to_vec());
        assert_eq!(
            parse(&b, 2),
            Err(BundleError::WrongCount { got: 3, want: 2 })
        );
        assert_eq!(parse(&b[..b.len() - 1], 3), Err(BundleError::Truncated(2)));
        assert_eq!(parse(&b[..1], 1), Err(BundleError::Truncated(0)));
        let big = vec![0u8; MAX_ENTRY_BYTES + 1];
        assert_eq!(
            encode([big.as_slice()]),
            Err(BundleError::TooLong(0, MAX_ENTRY_BYTES + 1))
        );
        assert!(encode([&big[1..]]).is_ok());
        assert_eq!(parse_path(&["x001", "234.p", "7"]), Some((1234, Some(7))));
        assert_eq!(parse_path(&["000"]), Some((0, None)));
        assert_eq!(parse_path(&["0"]), None);
        assert_eq!(path("tile/entries", 1234, 7), "tile/entries/x001/234.p/7");
        assert_eq!(path("tile/entries", 5, 256), "tile/entries/005");
    }
}
