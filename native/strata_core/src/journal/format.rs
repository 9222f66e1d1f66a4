//! The byte format of journal segments, and the scan that tells a torn tail from damage.
//!
//! A segment is a 32-byte header, then records:
//!
//! | bytes | header field |
//! |---|---|
//! | 0..8 | magic `\x89STRLOG\n` |
//! | 8..10 | segment format version (2) |
//! | 10 | kind (which structure) |
//! | 11..16 | reserved, 0 |
//! | 16..24 | generation |
//! | 24..28 | salt: random, chosen when the segment is created |
//! | 28..32 | CRC32C of bytes 0..28 |
//!
//! A record is `len: u32, payload_crc: u32, header_crc: u32, payload` (little-endian), where
//! `payload_crc` is the CRC32C of the salt and the payload and `header_crc` the CRC32C of
//! the salt, `len` and `payload_crc`. `len` is 1..=[`MAX_RECORD`](super::MAX_RECORD).
//!
//! The salt is what makes the framing unforgeable: a record's bytes are valid only in the
//! segment whose salt they were made with, so neither a payload that embeds the bytes of a
//! record (a binary a user stored), nor zeros left by a failed write, nor a record of an
//! earlier incarnation of the file can pass for a record. And because a record header is
//! checked on its own 12 bytes before any payload is read, the search for a valid record
//! after a damaged one costs a constant per byte: recovery is linear in the log's size.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::codec::Kind;

pub const SEGMENT_MAGIC: [u8; 8] = *b"\x89STRLOG\n";
/// The segment format this code writes and reads. Version 1 (no salt, one CRC a record)
/// could not tell a torn tail from damage by construction.
pub const SEGMENT_VERSION: u16 = 2;
pub const SEGMENT_HEADER: usize = 32;
pub const RECORD_HEADER: usize = 12;

/// A segment's identity, from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub kind: Kind,
    pub gen: u64,
    pub salt: u32,
}

impl SegmentHeader {
    /// A new segment's header, with a fresh random salt.
    pub fn new(kind: Kind, gen: u64) -> SegmentHeader {
        SegmentHeader {
            kind,
            gen,
            salt: random_salt(),
        }
    }

    pub fn to_bytes(self) -> [u8; SEGMENT_HEADER] {
        let mut h = [0u8; SEGMENT_HEADER];
        h[0..8].copy_from_slice(&SEGMENT_MAGIC);
        h[8..10].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
        h[10] = self.kind as u8;
        h[16..24].copy_from_slice(&self.gen.to_le_bytes());
        h[24..28].copy_from_slice(&self.salt.to_le_bytes());
        let crc = crc32c::crc32c(&h[0..28]);
        h[28..32].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Checks a header read from segment `gen` of a `kind` journal.
    pub fn parse(h: &[u8], kind: Kind, gen: u64) -> Result<SegmentHeader, HeaderError> {
        if h.len() < SEGMENT_HEADER {
            return Err(HeaderError::Damaged("header cut short".into()));
        }
        if h[0..8] != SEGMENT_MAGIC {
            return Err(HeaderError::Damaged(
                "not a Strata journal segment (bad magic)".into(),
            ));
        }
        let crc = u32::from_le_bytes([h[28], h[29], h[30], h[31]]);
        if crc != crc32c::crc32c(&h[0..28]) {
            return Err(HeaderError::Damaged(
                "segment header checksum mismatch".into(),
            ));
        }
        let version = u16::from_le_bytes([h[8], h[9]]);
        if version != SEGMENT_VERSION {
            return Err(HeaderError::Damaged(format!(
                "segment format version {version} (this build reads version {SEGMENT_VERSION})"
            )));
        }
        if h[10] != kind as u8 {
            return Err(HeaderError::WrongKind(h[10]));
        }
        let found = u64::from_le_bytes(h[16..24].try_into().unwrap_or_default());
        if h[11..16] != [0; 5] || found != gen {
            return Err(HeaderError::Damaged(format!(
                "segment header is not generation {gen} (found {found}) or has reserved bits set"
            )));
        }
        Ok(SegmentHeader {
            kind,
            gen,
            salt: u32::from_le_bytes(h[24..28].try_into().unwrap_or_default()),
        })
    }
}

/// Why a segment header was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// A valid header of another kind of structure: the directory is not this kind's.
    WrongKind(u8),
    Damaged(String),
}

fn random_salt() -> u32 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() as u32
}

fn payload_crc(salt: u32, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&salt.to_le_bytes()), payload)
}

fn header_crc(salt: u32, len_and_crc: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&salt.to_le_bytes()), len_and_crc)
}

/// Appends `payload` framed for a segment with `salt`.
pub fn frame(salt: u32, payload: &[u8], out: &mut Vec<u8>) {
    let mut h = [0u8; RECORD_HEADER];
    h[0..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[4..8].copy_from_slice(&payload_crc(salt, payload).to_le_bytes());
    let hcrc = header_crc(salt, &h[0..8]);
    h[8..12].copy_from_slice(&hcrc.to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
}

/// The payload length of a valid record header, or `None`. Constant time.
pub fn header_len(salt: u32, h: &[u8]) -> Option<usize> {
    let h = h.get(..RECORD_HEADER)?;
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
    let stored = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    ((1..=super::MAX_RECORD).contains(&len) && header_crc(salt, &h[0..8]) == stored).then_some(len)
}

/// Whether `payload` matches the payload CRC in the valid record header `h`.
pub fn payload_ok(salt: u32, h: &[u8], payload: &[u8]) -> bool {
    u32::from_le_bytes([h[4], h[5], h[6], h[7]]) == payload_crc(salt, payload)
}

/// Bytes scanned at a time when looking for a valid record after damage.
const SCAN_CHUNK: usize = 4 << 20;

/// Whether a whole valid record starts anywhere in `file` in `from..size`: one pass, a
/// constant amount of work a byte (a header is checked on its own 12 bytes; a payload is
/// read only under a valid header, which damage cannot forge without the salt).
pub fn any_record_after(file: &File, salt: u32, from: u64, size: u64) -> io::Result<bool> {
    let mut buf = vec![0u8; SCAN_CHUNK + RECORD_HEADER];
    let mut payload = Vec::new();
    let mut start = from;
    while start + RECORD_HEADER as u64 <= size {
        let want = ((size - start) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..want], start)?;
        let last = want.saturating_sub(RECORD_HEADER);
        for i in 0..=last {
            let Some(len) = header_len(salt, &buf[i..want]) else {
                continue;
            };
            let at = start + i as u64 + RECORD_HEADER as u64;
            if at + len as u64 > size {
                continue;
            }
            payload.resize(len, 0);
            file.read_exact_at(&mut payload, at)?;
            if payload_ok(salt, &buf[i..i + RECORD_HEADER], &payload) {
                return Ok(true);
            }
        }
        start += last as u64 + 1;
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_valid_only_with_their_salt() {
        let mut out = Vec::new();
        frame(7, b"hello", &mut out);
        assert_eq!(header_len(7, &out), Some(5));
        assert!(payload_ok(7, &out, &out[RECORD_HEADER..]));
        assert_eq!(header_len(8, &out), None);
        // Zeros never make a record.
        assert_eq!(header_len(0, &[0; RECORD_HEADER]), None);
        // A payload embedding a whole record of another salt is not one.
        let mut inner = Vec::new();
        frame(99, b"x", &mut inner);
        assert_eq!(header_len(7, &inner), None);
    }

    #[test]
    fn headers_round_trip_and_name_their_kind() {
        let h = SegmentHeader::new(Kind::Timeline, 5);
        let bytes = h.to_bytes();
        assert_eq!(SegmentHeader::parse(&bytes, Kind::Timeline, 5), Ok(h));
        assert_eq!(
            SegmentHeader::parse(&bytes, Kind::SortedSet, 5),
            Err(HeaderError::WrongKind(Kind::Timeline as u8))
        );
        assert!(SegmentHeader::parse(&bytes, Kind::Timeline, 6).is_err());
        for i in 0..SEGMENT_HEADER {
            let mut bad = bytes;
            bad[i] ^= 4;
            assert!(
                SegmentHeader::parse(&bad, Kind::Timeline, 5).is_err(),
                "flip {i}"
            );
        }
    }
}
