//! The byte format of snapshots and journal records.
//!
//! A snapshot is a 32-byte header and a payload, all little-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | magic `\x89STRATA\n` |
//! | 8..10 | format version (1) |
//! | 10 | kind (which structure) |
//! | 11 | reserved, 0 |
//! | 12..16 | flags (none defined yet: any set bit is refused) |
//! | 16..24 | payload length |
//! | 24..28 | CRC32C of bytes 0..24 and the payload |
//! | 28..32 | reserved, 0 |
//!
//! Decoding checks, in order: the magic, version, kind and flags; that the payload length is
//! under the caller's cap and equals the bytes that follow (no trailing bytes); the checksum;
//! and only then the payload, with a [`Reader`] that checks every count against the bytes
//! left *before* allocating for it. Each structure then validates what it decoded (sorted,
//! unique, counts agree), so a payload with a valid checksum but a broken structure is
//! refused too.

use std::fmt;

use num_bigint::{BigInt, Sign};
use thin_vec::ThinVec;

use crate::term::Term;

/// The first eight bytes of every snapshot.
pub const MAGIC: [u8; 8] = *b"\x89STRATA\n";
/// The snapshot format version this code writes and reads.
pub const VERSION: u16 = 1;
/// Header bytes before the payload.
pub const HEADER: usize = 32;
/// Flags this version understands (none).
pub const KNOWN_FLAGS: u32 = 0;
/// Deepest term nesting accepted (as when decoding from the VM).
pub const MAX_DEPTH: usize = 256;

thread_local! {
    static SERIAL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether encoders and decoders may use a second thread (the follow graph's two
/// directions). True, except inside [`serially`].
pub fn parallel() -> bool {
    !SERIAL.with(std::cell::Cell::get)
}

/// Runs `f` with encoders and decoders on this thread only: for background work (a
/// checkpoint) that should leave the other cores to the VM.
pub fn serially<R>(f: impl FnOnce() -> R) -> R {
    let before = SERIAL.with(|s| s.replace(true));
    let result = f();
    SERIAL.with(|s| s.set(before));
    result
}

/// Which structure a snapshot or journal holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    SortedSet = 1,
    FollowerMap = 2,
    Interner = 3,
    Timeline = 4,
    MemberList = 5,
}

impl Kind {
    pub fn from_byte(byte: u8) -> Option<Kind> {
        Some(match byte {
            1 => Kind::SortedSet,
            2 => Kind::FollowerMap,
            3 => Kind::Interner,
            4 => Kind::Timeline,
            5 => Kind::MemberList,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::SortedSet => "sorted_set",
            Kind::FollowerMap => "follower_map",
            Kind::Interner => "interner",
            Kind::Timeline => "timeline",
            Kind::MemberList => "member_list",
        }
    }
}

/// Why bytes were refused. Every decoder returns one of these; none panics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    BadMagic,
    UnsupportedVersion(u16),
    WrongKind {
        expected: Kind,
        found: u8,
    },
    UnknownFlags(u32),
    /// The bytes end before what they announce.
    Truncated,
    /// A length above the cap or the bytes available.
    TooLarge {
        length: u64,
        limit: u64,
    },
    TrailingBytes(usize),
    Checksum {
        stored: u32,
        computed: u32,
    },
    /// The checksum matched but the contents do not make a valid structure.
    Invalid(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::BadMagic => write!(f, "not a Strata snapshot (bad magic)"),
            DecodeError::UnsupportedVersion(v) => write!(f, "unsupported format version {v}"),
            DecodeError::WrongKind { expected, found } => match Kind::from_byte(*found) {
                Some(kind) => write!(f, "holds a {}, not a {}", kind.name(), expected.name()),
                None => write!(f, "unknown kind {found}"),
            },
            DecodeError::UnknownFlags(flags) => write!(f, "unknown flags {flags:#x}"),
            DecodeError::Truncated => write!(f, "truncated"),
            DecodeError::TooLarge { length, limit } => {
                write!(f, "length {length} exceeds the limit {limit}")
            }
            DecodeError::TrailingBytes(n) => write!(f, "{n} trailing bytes"),
            DecodeError::Checksum { stored, computed } => write!(
                f,
                "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            DecodeError::Invalid(why) => write!(f, "invalid contents: {why}"),
        }
    }
}

impl std::error::Error for DecodeError {}

pub fn invalid<T>(why: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError::Invalid(why.into()))
}

/// Wraps `payload` (built by `fill`) in a header: returns the whole snapshot.
pub fn seal(kind: Kind, fill: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = vec![0u8; HEADER];
    fill(&mut out);
    let payload_len = (out.len() - HEADER) as u64;
    out[0..8].copy_from_slice(&MAGIC);
    out[8..10].copy_from_slice(&VERSION.to_le_bytes());
    out[10] = kind as u8;
    out[12..16].copy_from_slice(&0u32.to_le_bytes());
    out[16..24].copy_from_slice(&payload_len.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out[0..24]), &out[HEADER..]);
    out[24..28].copy_from_slice(&crc.to_le_bytes());
    out
}

/// The payload length a header announces, after checking everything in the header that
/// does not need the payload. `limit` caps the length (a file's size, or a memory cap).
pub fn check_header(header: &[u8], kind: Kind, limit: u64) -> Result<u64, DecodeError> {
    if header.len() < HEADER {
        return Err(if MAGIC.starts_with(header) {
            DecodeError::Truncated
        } else {
            DecodeError::BadMagic
        });
    }
    if header[0..8] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let version = u16::from_le_bytes([header[8], header[9]]);
    if version != VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    if header[10] != kind as u8 {
        return Err(DecodeError::WrongKind {
            expected: kind,
            found: header[10],
        });
    }
    let flags = u32::from_le_bytes(header[12..16].try_into().unwrap_or_default());
    if flags & !KNOWN_FLAGS != 0 {
        return Err(DecodeError::UnknownFlags(flags));
    }
    if header[11] != 0 || header[28..32] != [0; 4] {
        return invalid("reserved header bytes are not zero");
    }
    let length = u64::from_le_bytes(header[16..24].try_into().unwrap_or_default());
    if length > limit {
        return Err(DecodeError::TooLarge { length, limit });
    }
    Ok(length)
}

/// Checks a whole snapshot and returns its payload. A snapshot of another kind is
/// [`DecodeError::WrongKind`] only when its checksum holds (a flipped kind byte is damage,
/// a whole snapshot of another structure is not).
pub fn open(bytes: &[u8], kind: Kind) -> Result<&[u8], DecodeError> {
    if let Some(other) = bytes.get(10).and_then(|&k| Kind::from_byte(k)) {
        if other != kind {
            open(bytes, other)?;
            return Err(DecodeError::WrongKind {
                expected: kind,
                found: other as u8,
            });
        }
    }
    let limit = bytes.len().saturating_sub(HEADER) as u64;
    let length = check_header(bytes, kind, u64::MAX)?;
    if length > limit {
        return Err(DecodeError::Truncated);
    }
    if length < limit {
        return Err(DecodeError::TrailingBytes((limit - length) as usize));
    }
    let stored = u32::from_le_bytes(bytes[24..28].try_into().unwrap_or_default());
    let computed = crc32c::crc32c_append(crc32c::crc32c(&bytes[0..24]), &bytes[HEADER..]);
    if stored != computed {
        return Err(DecodeError::Checksum { stored, computed });
    }
    Ok(&bytes[HEADER..])
}

/// Appends little-endian values and LEB128 varints.
pub trait Put {
    fn put_u8(&mut self, v: u8);
    fn put_u32(&mut self, v: u32);
    fn put_u64(&mut self, v: u64);
    fn put_varint(&mut self, v: u64);
    fn put_bytes(&mut self, v: &[u8]);
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.push(v as u8);
    }
    /// A length, then the bytes.
    fn put_bytes(&mut self, v: &[u8]) {
        self.put_varint(v.len() as u64);
        self.extend_from_slice(v);
    }
}

/// Reads a payload front to back; every read checks the bytes left first.
#[derive(Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len()
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.bytes.len() {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut word = [0u8; 8];
        word.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(word))
    }

    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            if shift == 63 && byte > 1 {
                break;
            }
            value |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        invalid("varint longer than 64 bits")
    }

    /// A count of items each at least `min_bytes` long, refused if the bytes left cannot
    /// hold that many: nothing is allocated for a forged count.
    pub fn count(&mut self, min_bytes: usize) -> Result<usize, DecodeError> {
        let n = self.varint()?;
        let limit = (self.bytes.len() / min_bytes.max(1)) as u64;
        if n > limit {
            return Err(DecodeError::TooLarge { length: n, limit });
        }
        Ok(n as usize)
    }

    /// A length-prefixed byte string.
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.count(1)?;
        self.take(n)
    }

    /// Checks that everything was read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.bytes.len() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }
}

const T_INT: u8 = 0;
const T_BIGINT: u8 = 1;
const T_FLOAT: u8 = 2;
const T_ATOM: u8 = 3;
const T_BINARY: u8 = 4;
const T_TUPLE: u8 = 5;
const T_LIST: u8 = 6;
const T_MAP: u8 = 7;

/// Appends `term`: a tag byte, then its contents (integers zigzag-varint, floats as bits,
/// atoms and binaries length-prefixed, containers as a count and their elements).
pub fn put_term(out: &mut Vec<u8>, term: &Term) {
    match term {
        Term::Int(i) => {
            out.put_u8(T_INT);
            out.put_varint(((i << 1) ^ (i >> 63)) as u64);
        }
        Term::BigInt(b) => {
            out.put_u8(T_BIGINT);
            let (sign, magnitude) = b.to_bytes_le();
            out.put_u8(u8::from(sign != Sign::Minus));
            out.put_bytes(&magnitude);
        }
        Term::Float(f) => {
            out.put_u8(T_FLOAT);
            out.put_u64(f.to_bits());
        }
        Term::Atom(a) => {
            out.put_u8(T_ATOM);
            out.put_bytes(a.name().as_bytes());
        }
        Term::SmallBinary(_) | Term::Binary(..) => {
            out.put_u8(T_BINARY);
            out.put_bytes(term.as_binary().unwrap_or_default());
        }
        Term::Tuple(_, items) | Term::List(_, items) => {
            out.put_u8(if matches!(term, Term::Tuple(..)) {
                T_TUPLE
            } else {
                T_LIST
            });
            out.put_varint(items.len() as u64);
            for item in items.iter() {
                put_term(out, item);
            }
        }
        Term::Map(_, pairs) => {
            out.put_u8(T_MAP);
            out.put_varint(pairs.len() as u64);
            for (k, v) in pairs.iter() {
                put_term(out, k);
                put_term(out, v);
            }
        }
    }
}

/// Reads a term written by [`put_term`], refusing anything [`put_term`] cannot have written
/// (non-canonical integers, NaN, atoms the VM would refuse, repeated map keys, nesting past
/// [`MAX_DEPTH`]).
pub fn get_term(r: &mut Reader) -> Result<Term, DecodeError> {
    get_term_at(r, 0)
}

fn get_term_at(r: &mut Reader, depth: usize) -> Result<Term, DecodeError> {
    if depth > MAX_DEPTH {
        return invalid("term nested deeper than 256 levels");
    }
    match r.u8()? {
        T_INT => {
            let z = r.varint()?;
            Ok(Term::Int(((z >> 1) as i64) ^ -((z & 1) as i64)))
        }
        T_BIGINT => {
            let sign = match r.u8()? {
                0 => Sign::Minus,
                1 => Sign::Plus,
                _ => return invalid("bad integer sign"),
            };
            let magnitude = r.bytes()?;
            if magnitude.len() > crate::term::MAX_BIG_BYTES {
                return invalid("integer too large");
            }
            let value = BigInt::from_bytes_le(sign, magnitude);
            match Term::integer(value) {
                big @ Term::BigInt(_) => Ok(big),
                _ => invalid("big integer within the 64-bit range"),
            }
        }
        T_FLOAT => {
            let f = f64::from_bits(r.u64()?);
            if !f.is_finite() {
                return invalid("float is not finite");
            }
            Ok(Term::Float(f))
        }
        T_ATOM => {
            let bytes = r.bytes()?;
            let name = std::str::from_utf8(bytes)
                .map_err(|_| DecodeError::Invalid("atom name is not UTF-8".into()))?;
            if name.chars().count() > 255 {
                return invalid("atom name longer than 255 characters");
            }
            Ok(Term::atom(name))
        }
        T_BINARY => Ok(Term::binary(r.bytes()?)),
        tag @ (T_TUPLE | T_LIST) => {
            let n = r.count(2)?;
            let mut items = ThinVec::with_capacity(n);
            for _ in 0..n {
                items.push(get_term_at(r, depth + 1)?);
            }
            Ok(if tag == T_TUPLE {
                Term::tuple(items)
            } else {
                Term::list(items)
            })
        }
        T_MAP => {
            let n = r.count(4)?;
            let mut pairs = Vec::with_capacity(n);
            for _ in 0..n {
                let k = get_term_at(r, depth + 1)?;
                let v = get_term_at(r, depth + 1)?;
                pairs.push((k, v));
            }
            Term::map(pairs).ok_or_else(|| DecodeError::Invalid("map key repeated".into()))
        }
        tag => invalid(format!("unknown term tag {tag}")),
    }
}

const NO_RUNS: u32 = 12346;
const WITH_RUNS: u16 = 12347;
/// Most values an array container holds in the portable format.
const ARRAY_MAX: usize = 4096;

/// Writes a Roaring bitmap in the standard portable format (no run containers), length-
/// prefixed. Written from the values rather than with `serialize_into`, which is several
/// times slower on the millions of small bitmaps of a follow graph.
pub fn put_bitmap(out: &mut Vec<u8>, bitmap: &roaring::RoaringBitmap) {
    put_bitmap_with(out, bitmap, &mut Vec::new(), &mut Vec::new());
}

/// [`put_bitmap`] with scratch buffers reused across calls.
pub fn put_bitmap_with(
    out: &mut Vec<u8>,
    bitmap: &roaring::RoaringBitmap,
    values: &mut Vec<u32>,
    containers: &mut Vec<(u16, usize, usize)>,
) {
    // Containers: (key, first value index, cardinality).
    values.clear();
    values.extend(bitmap.iter());
    containers.clear();
    for (i, v) in values.iter().enumerate() {
        let key = (v >> 16) as u16;
        match containers.last_mut() {
            Some((k, _, n)) if *k == key => *n += 1,
            _ => containers.push((key, i, 1)),
        }
    }
    let header = 8 + containers.len() * 8;
    let body: usize = containers
        .iter()
        .map(|&(_, _, n)| if n > ARRAY_MAX { 8192 } else { 2 * n })
        .sum();
    out.put_varint((header + body) as u64);
    out.put_u32(NO_RUNS);
    out.put_u32(containers.len() as u32);
    for &(key, _, n) in containers.iter() {
        out.extend_from_slice(&key.to_le_bytes());
        out.extend_from_slice(&((n - 1) as u16).to_le_bytes());
    }
    let mut offset = header;
    for &(_, _, n) in containers.iter() {
        out.put_u32(offset as u32);
        offset += if n > ARRAY_MAX { 8192 } else { 2 * n };
    }
    for &(_, first, n) in containers.iter() {
        let slice = &values[first..first + n];
        if n > ARRAY_MAX {
            let mut words = [0u64; 1024];
            for v in slice {
                let low = (v & 0xFFFF) as usize;
                words[low / 64] |= 1 << (low % 64);
            }
            for w in words {
                out.put_u64(w);
            }
        } else {
            for v in slice {
                out.extend_from_slice(&(*v as u16).to_le_bytes());
            }
        }
    }
}

/// Reads a length-prefixed Roaring bitmap in the portable format, with `deserialize_from`
/// (which checks each container's contents) after checking what it does not: that the
/// container keys strictly ascend, and that there are no run containers (which expand to
/// far more than their bytes). Without runs an array container holds 2 bytes a value and a
/// bitmap container 65,536 values in 8,192 bytes, so the values decoded are at most 8 per
/// byte of input. The bitmap must use exactly the bytes given.
pub fn get_bitmap(r: &mut Reader) -> Result<roaring::RoaringBitmap, DecodeError> {
    get_bitmap_with(r, &mut Vec::new())
}

/// [`get_bitmap`], also leaving the bitmap's values in `values` (reused across calls).
pub fn get_bitmap_with(
    r: &mut Reader,
    values: &mut Vec<u32>,
) -> Result<roaring::RoaringBitmap, DecodeError> {
    values.clear();
    let bytes = r.bytes()?;
    let bitmap = decode_portable(bytes)?;
    if bitmap.len() > 8 * bytes.len() as u64 {
        return invalid("bitmap: more values than its bytes can hold");
    }
    if !portable_values(bytes, values) {
        values.clear();
        values.extend(bitmap.iter());
    }
    Ok(bitmap)
}

/// The values of a portable bitmap without run containers, read straight from its bytes
/// (several times faster than iterating the decoded bitmap); `false` for other input. Call
/// it only on bytes `deserialize_from` accepted.
fn portable_values(bytes: &[u8], values: &mut Vec<u32>) -> bool {
    let mut r = Reader::new(bytes);
    let (Ok(NO_RUNS), Ok(size)) = (r.u32(), r.u32()) else {
        return false;
    };
    let (Ok(descriptions), Ok(_offsets)) = (r.take(size as usize * 4), r.take(size as usize * 4))
    else {
        return false;
    };
    for d in descriptions.chunks_exact(4) {
        let high = u32::from(u16::from_le_bytes([d[0], d[1]])) << 16;
        let n = usize::from(u16::from_le_bytes([d[2], d[3]])) + 1;
        if n <= ARRAY_MAX {
            let Ok(raw) = r.take(2 * n) else { return false };
            values.extend(
                raw.chunks_exact(2)
                    .map(|p| high | u32::from(u16::from_le_bytes([p[0], p[1]]))),
            );
        } else {
            let Ok(raw) = r.take(8192) else { return false };
            for (w, word) in raw.chunks_exact(8).enumerate() {
                let mut bits = u64::from_le_bytes(word.try_into().unwrap_or_default());
                while bits != 0 {
                    values.push(high | (w as u32 * 64 + bits.trailing_zeros()));
                    bits &= bits - 1;
                }
            }
        }
    }
    true
}

fn decode_portable(bytes: &[u8]) -> Result<roaring::RoaringBitmap, DecodeError> {
    check_container_keys(bytes)?;
    let mut rest = bytes;
    let bitmap = roaring::RoaringBitmap::deserialize_from(&mut rest)
        .map_err(|e| DecodeError::Invalid(format!("bitmap: {e}")))?;
    if !rest.is_empty() {
        return invalid("bitmap followed by stray bytes");
    }
    Ok(bitmap)
}

/// Checks that the container keys in a portable Roaring header strictly ascend.
fn check_container_keys(bytes: &[u8]) -> Result<(), DecodeError> {
    let mut r = Reader::new(bytes);
    let cookie = r.u32()?;
    let size = if cookie == NO_RUNS {
        r.u32()? as usize
    } else if cookie as u16 == WITH_RUNS {
        // A run container holds up to 65,536 values in 4 bytes, and roaring's decoder
        // expands it before anything can check the count: a few bytes could make it
        // allocate gigabytes. Strata never writes runs, so bitmaps with runs are refused.
        return invalid("bitmap: run containers are not accepted");
    } else {
        return invalid("bitmap: unknown cookie");
    };
    if size > 1 << 16 {
        return invalid("bitmap: too many containers");
    }
    let descriptions = r.take(size * 4)?;
    let mut last: Option<u16> = None;
    for d in descriptions.chunks_exact(4) {
        let key = u16::from_le_bytes([d[0], d[1]]);
        if last.is_some_and(|l| l >= key) {
            return invalid("bitmap: container keys do not ascend");
        }
        last = Some(key);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(term: &Term) -> Term {
        let mut out = Vec::new();
        put_term(&mut out, term);
        let mut r = Reader::new(&out);
        let back = get_term(&mut r).unwrap();
        r.finish().unwrap();
        back
    }

    #[test]
    fn terms_round_trip() {
        let big = Term::integer(BigInt::from(i64::MAX) * 1000);
        let samples = vec![
            Term::Int(0),
            Term::Int(-1),
            Term::Int(i64::MIN),
            Term::Int(i64::MAX),
            big.clone(),
            Term::integer(-BigInt::from(i64::MAX) * 1000),
            Term::Float(-0.5),
            Term::atom("hello"),
            Term::binary(b"short"),
            Term::binary(&[7u8; 100]),
            Term::tuple(vec![Term::Int(1), big, Term::list(vec![])]),
            Term::map(vec![
                (Term::Int(1), Term::atom("a")),
                (Term::Float(1.0), Term::atom("b")),
            ])
            .unwrap(),
        ];
        for t in &samples {
            let back = roundtrip(t);
            assert_eq!(format!("{back:?}"), format!("{t:?}"));
            assert_eq!(back.cmp(t), std::cmp::Ordering::Equal);
        }
    }

    #[test]
    fn envelope_refuses_damage() {
        let sealed = seal(Kind::SortedSet, |out| out.extend_from_slice(b"payload"));
        assert_eq!(open(&sealed, Kind::SortedSet).unwrap(), b"payload");
        assert!(matches!(
            open(&sealed, Kind::Timeline),
            Err(DecodeError::WrongKind { .. })
        ));
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x10;
            assert!(open(&bad, Kind::SortedSet).is_err(), "flip at {i}");
        }
        for n in 0..sealed.len() {
            assert!(open(&sealed[..n], Kind::SortedSet).is_err(), "cut at {n}");
        }
        let mut longer = sealed.clone();
        longer.push(0);
        assert_eq!(
            open(&longer, Kind::SortedSet),
            Err(DecodeError::TrailingBytes(1))
        );
        let mut forged = sealed;
        forged[16..24].copy_from_slice(&(1u64 << 63).to_le_bytes());
        assert_eq!(open(&forged, Kind::SortedSet), Err(DecodeError::Truncated));
    }

    #[test]
    fn forged_counts_allocate_nothing() {
        let mut out = vec![T_LIST];
        out.put_varint(u64::MAX >> 1);
        assert!(matches!(
            get_term(&mut Reader::new(&out)),
            Err(DecodeError::TooLarge { .. })
        ));
        let mut deep = [T_LIST, 1].repeat(300);
        deep.extend([T_INT, 0]);
        assert!(get_term(&mut Reader::new(&deep)).is_err());
    }

    #[test]
    fn bitmaps_read_and_write_the_portable_format() {
        let mut big: roaring::RoaringBitmap = (0..10_000u32).map(|i| i * 3).collect();
        big.extend([1u32 << 20, u32::MAX]);
        for bitmap in [
            roaring::RoaringBitmap::new(),
            [7u32].into_iter().collect(),
            big,
        ] {
            // Ours is readable by roaring, and roaring's (with runs too) by ours.
            let mut ours = Vec::new();
            put_bitmap(&mut ours, &bitmap);
            let mut r = Reader::new(&ours);
            let bytes = r.bytes().unwrap();
            assert_eq!(
                roaring::RoaringBitmap::deserialize_from(bytes).unwrap(),
                bitmap
            );
            assert_eq!(get_bitmap(&mut Reader::new(&ours)).unwrap(), bitmap);
            // roaring's own format is read too, but run containers are refused: they
            // expand to far more than their bytes.
            let mut theirs = Vec::new();
            theirs.put_varint(bitmap.serialized_size() as u64);
            bitmap.serialize_into(&mut theirs).unwrap();
            assert_eq!(get_bitmap(&mut Reader::new(&theirs)).unwrap(), bitmap);
            assert!(get_bitmap(&mut Reader::new(&run_bitmap(1))).is_err());
        }
    }

    /// A portable bitmap of `containers` run containers, each one run covering all 65,536
    /// values of its key: 10 bytes a container that roaring would expand to 8 KiB.
    fn run_bitmap(containers: u16) -> Vec<u8> {
        let mut bytes = Vec::new();
        let size = usize::from(containers);
        bytes.put_u32(u32::from(WITH_RUNS) | (u32::from(containers - 1) << 16));
        bytes.extend(std::iter::repeat_n(0xFF, size.div_ceil(8)));
        for key in 0..containers {
            bytes.extend_from_slice(&key.to_le_bytes());
            bytes.extend_from_slice(&u16::MAX.to_le_bytes());
        }
        if size >= 4 {
            for _ in 0..containers {
                bytes.put_u32(0);
            }
        }
        for _ in 0..containers {
            bytes.extend_from_slice(&1u16.to_le_bytes());
            bytes.extend_from_slice(&0u16.to_le_bytes());
            bytes.extend_from_slice(&u16::MAX.to_le_bytes());
        }
        let mut out = Vec::new();
        out.put_bytes(&bytes);
        out
    }

    #[test]
    fn run_containers_are_refused_before_they_expand() {
        // 65,535 full runs: 2^32 values from ~1 MB. roaring itself would decode it.
        let bomb = run_bitmap(u16::MAX);
        let mut r = Reader::new(&bomb);
        let inner = r.bytes().unwrap();
        assert!(inner.len() < 1 << 20);
        assert!(matches!(
            get_bitmap(&mut Reader::new(&bomb)),
            Err(DecodeError::Invalid(_))
        ));
        let small = run_bitmap(1);
        let mut r = Reader::new(&small);
        let inner = r.bytes().unwrap();
        assert!(
            roaring::RoaringBitmap::deserialize_from(inner)
                .unwrap()
                .len()
                > 60_000
        );
    }

    #[test]
    fn bitmaps_with_unordered_keys_are_refused() {
        let bitmap: roaring::RoaringBitmap = [1u32, 70_000, 140_000].into_iter().collect();
        let mut out = Vec::new();
        put_bitmap(&mut out, &bitmap);
        assert_eq!(get_bitmap(&mut Reader::new(&out)).unwrap(), bitmap);
        // Swap the first two container descriptions (after the varint length, cookie, size).
        let at = 1 + 8;
        let (a, b) = (out[at..at + 4].to_vec(), out[at + 4..at + 8].to_vec());
        out[at..at + 4].copy_from_slice(&b);
        out[at + 4..at + 8].copy_from_slice(&a);
        assert!(get_bitmap(&mut Reader::new(&out)).is_err());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = get_term(&mut Reader::new(&bytes));
            let _ = get_bitmap(&mut Reader::new(&bytes));
            let _ = open(&bytes, Kind::MemberList);
        }
    }
}
