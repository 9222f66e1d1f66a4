//! An owned copy of an Erlang term, ordered exactly as the BEAM orders terms.
//!
//! Erlang's standard order is `number < atom < reference < fun < port < pid < tuple < map <
//! nil < list < bitstring`. Numbers compare by value (`1 == 1.0`, and an integer compares
//! exactly against a float, with no rounding); tuples compare by size, then element by
//! element; lists element by element, a prefix first; binaries byte by byte; maps by size, then
//! by their keys in *map-key order* (where every integer sorts before every float), then by
//! their values in key order.
//!
//! References, funs, ports, pids, improper lists and non-binary bitstrings are not
//! representable: they have no stable meaning outside the VM that made them.
//!
//! A [`Term`] is 16 bytes. Integers, floats, atoms and binaries of up to 14 bytes are stored
//! inline; everything else owns one heap allocation per level.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::OnceLock;

use num_bigint::BigInt;
use num_traits::{FromPrimitive, Signed, ToPrimitive};
use parking_lot::RwLock;
use thin_vec::ThinVec;

/// Longest binary stored inline in a [`Term`].
pub const INLINE_BINARY: usize = 14;

/// Largest magnitude of a big integer, in bytes: 2^25 bits, above the BEAM's own limit
/// (an integer of 33,554,431 bits is already a `system_limit` on OTP 25), so that every
/// integer the VM can make is stored, written to snapshots and journals, and read back.
pub const MAX_BIG_BYTES: usize = 1 << 22;

/// An interned atom name. Like atoms in the BEAM, interned names live for the rest of the
/// process: there are at most as many of them as the VM's atom table allows.
#[derive(Clone, Copy)]
pub struct Atom(&'static AtomName); // a thin pointer keeps `Term` at 16 bytes

struct AtomName {
    name: Box<str>,
    /// An opaque word the embedding runtime may attach (the NIF layer keeps the VM's own
    /// term for the atom here, so that encoding needs no table lookup).
    host_tag: AtomicUsize,
}

fn atom_table() -> &'static RwLock<HashMap<&'static str, Atom>> {
    static TABLE: OnceLock<RwLock<HashMap<&'static str, Atom>>> = OnceLock::new();
    TABLE.get_or_init(|| RwLock::new(HashMap::new()))
}

impl Atom {
    /// Interns `name` (UTF-8) and returns its atom.
    pub fn intern(name: &str) -> Atom {
        if let Some(atom) = atom_table().read().get(name) {
            return *atom;
        }
        let mut table = atom_table().write();
        if let Some(atom) = table.get(name) {
            return *atom;
        }
        let leaked: &'static AtomName = Box::leak(Box::new(AtomName {
            name: name.into(),
            host_tag: AtomicUsize::new(0),
        }));
        let atom = Atom(leaked);
        table.insert(&leaked.name, atom);
        atom
    }

    /// The atom's name.
    pub fn name(self) -> &'static str {
        &self.0.name
    }

    /// The word attached with [`Atom::set_host_tag`], or 0.
    pub fn host_tag(self) -> usize {
        self.0.host_tag.load(AtomicOrdering::Relaxed)
    }

    /// Attaches an opaque word to the atom, for the embedding runtime.
    pub fn set_host_tag(self, tag: usize) {
        self.0.host_tag.store(tag, AtomicOrdering::Relaxed);
    }
}

impl PartialEq for Atom {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for Atom {}

impl fmt::Debug for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, ":{}", self.name())
    }
}

/// A binary of up to [`INLINE_BINARY`] bytes, stored inside the term.
#[derive(Clone, Copy)]
pub struct InlineBinary {
    len: u8,
    bytes: [u8; INLINE_BINARY],
}

impl InlineBinary {
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// An owned Erlang term. See the module documentation for its order.
#[derive(Clone)]
pub enum Term {
    /// An integer that fits in 64 bits.
    Int(i64),
    /// An integer outside the `i64` range (never one inside it).
    BigInt(Box<BigInt>),
    /// A float (never NaN or infinite: the BEAM has neither).
    Float(f64),
    Atom(Atom),
    /// A binary of at most [`INLINE_BINARY`] bytes.
    SmallBinary(InlineBinary),
    /// A binary longer than [`INLINE_BINARY`] bytes, after its [`Prefix`].
    Binary(Prefix, ThinVec<u8>),
    /// A tuple's [`Prefix`] and elements; build it with [`Term::tuple`].
    Tuple(Prefix, ThinVec<Term>),
    /// A proper list's [`Prefix`] and elements (none for `[]`); build it with [`Term::list`].
    List(Prefix, ThinVec<Term>),
    /// A map's [`Prefix`] and pairs sorted by key in map-key order; build it with [`Term::map`].
    Map(Prefix, ThinVec<(Term, Term)>),
}

/// Seven bytes stored inline, in the slack of a 16-byte [`Term`], that summarise a heap term
/// in an order-preserving way: if `a < b` then `prefix(a) <= prefix(b)`, and `a == b` gives
/// equal prefixes. Two terms with different prefixes are therefore ordered by their prefixes
/// alone, without touching the heap: most comparisons in a search never follow a pointer.
///
/// The bytes are the start of a memcomparable encoding of the term (numbers by value, so `1`
/// and `1.0` encode alike), cut after seven bytes, or earlier where the encoding would lose
/// information (a fraction, a map's contents); the rest is zero.
pub type Prefix = [u8; 7];

impl Term {
    /// A binary term holding `bytes`.
    pub fn binary(bytes: &[u8]) -> Term {
        if bytes.len() <= INLINE_BINARY {
            let mut inline = InlineBinary {
                len: bytes.len() as u8,
                bytes: [0; INLINE_BINARY],
            };
            inline.bytes[..bytes.len()].copy_from_slice(bytes);
            Term::SmallBinary(inline)
        } else {
            let mut prefix = Prefix::default();
            prefix.copy_from_slice(&bytes[..std::mem::size_of::<Prefix>()]);
            Term::Binary(prefix, ThinVec::from(bytes))
        }
    }

    /// A tuple term.
    pub fn tuple(items: impl Into<ThinVec<Term>>) -> Term {
        let items = items.into();
        let mut w = PrefixWriter::default();
        let _ = w.tuple_body(&items);
        Term::Tuple(w.buf, items)
    }

    /// A proper list term (`[]` when `items` is empty).
    pub fn list(items: impl Into<ThinVec<Term>>) -> Term {
        let items = items.into();
        let mut w = PrefixWriter::default();
        let _ = w.list_body(&items);
        Term::List(w.buf, items)
    }

    /// An integer term, normalised so that values in the `i64` range are [`Term::Int`].
    pub fn integer(value: BigInt) -> Term {
        match value.to_i64() {
            Some(small) => Term::Int(small),
            None => Term::BigInt(Box::new(value)),
        }
    }

    /// An atom term.
    pub fn atom(name: &str) -> Term {
        Term::Atom(Atom::intern(name))
    }

    /// A map term; `pairs` may come in any order but must not repeat a key (by `=:=`).
    /// Returns `None` when a key is repeated.
    pub fn map(mut pairs: Vec<(Term, Term)>) -> Option<Term> {
        pairs.sort_by(|a, b| compare_exact(&a.0, &b.0));
        if pairs
            .windows(2)
            .any(|w| compare_exact(&w[0].0, &w[1].0) == Ordering::Equal)
        {
            return None;
        }
        let mut prefix = Prefix::default();
        prefix[..4].copy_from_slice(&(pairs.len().min(u32::MAX as usize) as u32).to_be_bytes());
        Some(Term::Map(prefix, ThinVec::from(pairs)))
    }

    /// The bytes of a binary term.
    pub fn as_binary(&self) -> Option<&[u8]> {
        match self {
            Term::SmallBinary(b) => Some(b.as_slice()),
            Term::Binary(_, b) => Some(b),
            _ => None,
        }
    }

    /// Bytes this term owns on the heap, beyond its own 16 bytes (atoms are shared and count
    /// nothing). Kept cheap: it is called on every insert and remove.
    pub fn heap_bytes(&self) -> usize {
        use crate::heap::chunk;
        const HEADER: usize = 16; // a ThinVec's length and capacity
        match self {
            Term::Int(_) | Term::Float(_) | Term::Atom(_) | Term::SmallBinary(_) => 0,
            Term::BigInt(b) => {
                chunk(std::mem::size_of::<BigInt>()) + chunk(b.bits().div_ceil(64) as usize * 8)
            }
            Term::Binary(_, b) => chunk(HEADER + b.capacity()),
            Term::Tuple(_, items) | Term::List(_, items) => {
                if items.capacity() == 0 {
                    0
                } else {
                    chunk(HEADER + items.capacity() * std::mem::size_of::<Term>())
                        + items.iter().map(Term::heap_bytes).sum::<usize>()
                }
            }
            Term::Map(_, pairs) => {
                chunk(HEADER + pairs.capacity() * 2 * std::mem::size_of::<Term>())
                    + pairs
                        .iter()
                        .map(|(k, v)| k.heap_bytes() + v.heap_bytes())
                        .sum::<usize>()
            }
        }
    }

    /// The class of the term in the standard order (numbers first, bitstrings last).
    fn class(&self) -> u8 {
        match self {
            Term::Int(_) | Term::BigInt(_) | Term::Float(_) => 0,
            Term::Atom(_) => 1,
            Term::Tuple(..) => 6,
            Term::Map(..) => 7,
            Term::List(..) => 8,
            Term::SmallBinary(_) | Term::Binary(..) => 9,
        }
    }
}

impl PartialEq for Term {
    /// Erlang's `==`: `1 == 1.0`.
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Term {}

impl PartialOrd for Term {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Term {
    /// Erlang's standard term order.
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        // Fast path for the most common keys; `compare` handles every other pair.
        if let (Term::Int(a), Term::Int(b)) = (self, other) {
            return a.cmp(b);
        }
        compare(self, other, false)
    }
}

/// Compares two terms in map-key order: as the standard order, except that numbers of
/// different types are never equal and every integer sorts before every float.
pub fn compare_exact(a: &Term, b: &Term) -> Ordering {
    compare(a, b, true)
}

fn compare(a: &Term, b: &Term, exact: bool) -> Ordering {
    use Term::*;
    match (a, b) {
        (Int(x), Int(y)) => x.cmp(y),
        (Atom(x), Atom(y)) => {
            if x == y {
                Ordering::Equal
            } else {
                x.name().as_bytes().cmp(y.name().as_bytes())
            }
        }
        (Float(x), Float(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (BigInt(x), BigInt(y)) => x.cmp(y),
        (Int(_), BigInt(y)) => sign_order(y).reverse(),
        (BigInt(x), Int(_)) => sign_order(x),
        (Int(_) | BigInt(_), Float(_)) if exact => Ordering::Less,
        (Float(_), Int(_) | BigInt(_)) if exact => Ordering::Greater,
        (Int(x), Float(y)) => compare_int_float(*x, *y),
        (Float(x), Int(y)) => compare_int_float(*y, *x).reverse(),
        (BigInt(x), Float(y)) => compare_big_float(x, *y),
        (Float(x), BigInt(y)) => compare_big_float(y, *x).reverse(),
        // Differing prefixes decide without following a pointer. Map-key order (`exact`)
        // ranks numbers by type first, which prefixes do not know: there they are skipped.
        (Tuple(p, _), Tuple(q, _)) | (List(p, _), List(q, _)) | (Binary(p, _), Binary(q, _))
            if !exact && p != q =>
        {
            p.cmp(q)
        }
        (Tuple(_, x), Tuple(_, y)) => x.len().cmp(&y.len()).then_with(|| compare_seq(x, y, exact)),
        (List(_, x), List(_, y)) => compare_seq(x, y, exact).then_with(|| x.len().cmp(&y.len())),
        (Map(p, _), Map(q, _)) if p != q => p.cmp(q), // the size, in both orders
        (Map(_, x), Map(_, y)) => x.len().cmp(&y.len()).then_with(|| {
            x.iter()
                .zip(y.iter())
                .map(|(p, q)| compare_exact(&p.0, &q.0))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
                .then_with(|| {
                    x.iter()
                        .zip(y.iter())
                        .map(|(p, q)| compare(&p.1, &q.1, exact))
                        .find(|o| o.is_ne())
                        .unwrap_or(Ordering::Equal)
                })
        }),
        _ => match (a.as_binary(), b.as_binary()) {
            (Some(x), Some(y)) => x.cmp(y),
            _ => a.class().cmp(&b.class()),
        },
    }
}

/// Compares the common prefix of two sequences.
fn compare_seq(x: &[Term], y: &[Term], exact: bool) -> Ordering {
    x.iter()
        .zip(y.iter())
        .map(|(p, q)| compare(p, q, exact))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// Where a big integer (always outside the `i64` range) stands against any `i64`.
fn sign_order(big: &BigInt) -> Ordering {
    if big.is_negative() {
        Ordering::Less
    } else {
        Ordering::Greater
    }
}

/// Exact comparison of an integer with a float, as the BEAM does it (no rounding).
fn compare_int_float(int: i64, float: f64) -> Ordering {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if float >= TWO_63 {
        return Ordering::Less;
    }
    if float < -TWO_63 {
        return Ordering::Greater;
    }
    let whole = float.trunc();
    // `whole` is integral and inside [-2^63, 2^63): the cast is exact.
    int.cmp(&(whole as i64))
        .then_with(|| whole.partial_cmp(&float).unwrap_or(Ordering::Equal))
}

fn compare_big_float(big: &BigInt, float: f64) -> Ordering {
    let whole = float.trunc();
    match BigInt::from_f64(whole) {
        Some(w) => big
            .cmp(&w)
            .then_with(|| whole.partial_cmp(&float).unwrap_or(Ordering::Equal)),
        None => Ordering::Equal, // unreachable: the BEAM has no NaN or infinity
    }
}

/// Writes the memcomparable encoding behind a [`Prefix`]. Each method returns `false` when
/// the encoding stops (the buffer is full, or going on would lose order information).
#[derive(Default)]
struct PrefixWriter {
    buf: Prefix,
    len: usize,
}

// Tags, in term-class order. Number tags run from 0x0B to 0x1D (0x14 is zero).
const NUM_ZERO: u8 = 0x14;
const NUM_NEG_HUGE: u8 = NUM_ZERO - 9;
const NUM_POS_HUGE: u8 = NUM_ZERO + 9;
const FRACTION: u8 = 0xFF;
const ATOM: u8 = 0x30;
const TUPLE: u8 = 0x60;
const MAP: u8 = 0x70;
const LIST: u8 = 0x80;
const BINARY: u8 = 0x90;
const END_OF_LIST: u8 = 0x01;

impl PrefixWriter {
    fn push(&mut self, byte: u8) -> bool {
        match self.buf.get_mut(self.len) {
            Some(slot) => {
                *slot = byte;
                self.len += 1;
                true
            }
            None => false,
        }
    }

    /// Pushes a last byte: nothing after it would keep the order.
    fn last(&mut self, byte: u8) -> bool {
        self.push(byte);
        false
    }

    fn term(&mut self, term: &Term) -> bool {
        match term {
            Term::Int(i) => self.integer(*i as i128),
            // A big integer of magnitude below 2^64 ([2^63, 2^64) and its negative) encodes
            // as any integer does, so that it orders against floats of that range exactly.
            Term::BigInt(b) => match b.to_i128() {
                Some(v) => self.integer(v),
                None => self.last(if b.is_negative() {
                    NUM_NEG_HUGE
                } else {
                    NUM_POS_HUGE
                }),
            },
            Term::Float(f) => self.float(*f),
            Term::Atom(a) => self.push(ATOM) && self.bytes(a.name().as_bytes()),
            Term::SmallBinary(_) | Term::Binary(..) => {
                self.push(BINARY) && self.bytes(term.as_binary().unwrap_or_default())
            }
            Term::Tuple(_, items) => self.push(TUPLE) && self.tuple_body(items),
            Term::List(_, items) => self.push(LIST) && self.list_body(items),
            Term::Map(_, pairs) => self.push(MAP) && self.last(pairs.len().min(255) as u8),
        }
    }

    fn tuple_body(&mut self, items: &[Term]) -> bool {
        if items.len() >= 255 {
            return self.last(255);
        }
        self.push(items.len() as u8) && items.iter().all(|item| self.term(item))
    }

    fn list_body(&mut self, items: &[Term]) -> bool {
        items.iter().all(|item| self.term(item)) && self.push(END_OF_LIST)
    }

    /// Bytes with 0x00 escaped as 0x00 0xFF, then the terminator 0x00 0x01: a shorter string
    /// sorts before its extensions.
    fn bytes(&mut self, bytes: &[u8]) -> bool {
        bytes
            .iter()
            .all(|&b| self.push(b) && (b != 0 || self.push(0xFF)))
            && self.push(0)
            && self.push(1)
    }

    /// An integer: a tag holding the sign and byte count, then the magnitude's bytes (ones'
    /// complement when negative). Magnitudes of 2^64 and above get a tag of their own and
    /// end the encoding.
    fn integer(&mut self, v: i128) -> bool {
        let magnitude = v.unsigned_abs();
        if magnitude > u64::MAX as u128 {
            return self.last(if v < 0 { NUM_NEG_HUGE } else { NUM_POS_HUGE });
        }
        let magnitude = magnitude as u64;
        let n = 8 - magnitude.leading_zeros() as usize / 8;
        let (tag, bits) = if v < 0 {
            (NUM_ZERO - n as u8, !magnitude)
        } else {
            (NUM_ZERO + n as u8, magnitude)
        };
        self.push(tag) && bits.to_be_bytes()[8 - n..].iter().all(|&b| self.push(b))
    }

    /// An integral float encodes as the equal integer; any other as its floor and a fraction
    /// marker, after which nothing more is known.
    fn float(&mut self, f: f64) -> bool {
        const TWO_64: f64 = 18_446_744_073_709_551_616.0;
        if f.abs() >= TWO_64 {
            return self.last(if f < 0.0 { NUM_NEG_HUGE } else { NUM_POS_HUGE });
        }
        let floor = f.floor();
        // |floor| < 2^64, so the cast is exact.
        self.integer(floor as i128) && (floor == f || self.last(FRACTION))
    }
}

impl fmt::Debug for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Term::Int(i) => write!(f, "{i}"),
            Term::BigInt(i) => write!(f, "{i}"),
            Term::Float(x) => write!(f, "{x:?}"),
            Term::Atom(a) => write!(f, "{a:?}"),
            Term::SmallBinary(_) | Term::Binary(..) => {
                write!(f, "<<{:?}>>", self.as_binary().unwrap_or_default())
            }
            Term::Tuple(_, items) => {
                f.write_str("{")?;
                write_seq(f, items)?;
                f.write_str("}")
            }
            Term::List(_, items) => {
                f.write_str("[")?;
                write_seq(f, items)?;
                f.write_str("]")
            }
            Term::Map(_, pairs) => {
                f.write_str("%{")?;
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k:?} => {v:?}")?;
                }
                f.write_str("}")
            }
        }
    }
}

fn write_seq(f: &mut fmt::Formatter<'_>, items: &[Term]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{item:?}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    fn t(items: Vec<Term>) -> Term {
        Term::tuple(items)
    }

    fn l(items: Vec<Term>) -> Term {
        Term::list(items)
    }

    #[test]
    fn term_is_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<Term>(), 16);
    }

    #[test]
    fn class_order() {
        let ordered = [
            Term::Int(5),
            Term::atom("a"),
            t(vec![]),
            Term::map(vec![]).unwrap(),
            l(vec![]),
            l(vec![Term::Int(1)]),
            Term::binary(b""),
        ];
        for w in ordered.windows(2) {
            assert_eq!(w[0].cmp(&w[1]), Less, "{:?} < {:?}", w[0], w[1]);
        }
    }

    #[test]
    fn numbers_compare_exactly() {
        assert_eq!(Term::Int(1).cmp(&Term::Float(1.0)), Equal);
        assert_eq!(Term::Int(1).cmp(&Term::Float(1.5)), Less);
        assert_eq!(Term::Int(-1).cmp(&Term::Float(-1.5)), Greater);
        // 2^53 + 1 is not representable as a float: exact comparison still tells them apart.
        let big = (1i64 << 53) + 1;
        assert_eq!(
            Term::Int(big).cmp(&Term::Float((1u64 << 53) as f64)),
            Greater
        );
        let huge = Term::integer(BigInt::from(1u8) << 70);
        assert_eq!(huge.cmp(&Term::Float(2f64.powi(70))), Equal);
        assert_eq!(huge.cmp(&Term::Float(2f64.powi(71))), Less);
        assert_eq!(huge.cmp(&Term::Int(i64::MAX)), Greater);
        assert_eq!(Term::Float(-0.0).cmp(&Term::Int(0)), Equal);
        assert_eq!(compare_exact(&Term::Int(2), &Term::Float(1.0)), Less);
    }

    #[test]
    fn binaries_compare_by_bytes_inline_or_not() {
        let short = Term::binary(b"abc");
        let long = Term::binary(b"abcdefghijklmnopqrstuvwxyz");
        assert_eq!(short.cmp(&long), Less);
        assert_eq!(Term::binary(b"abd").cmp(&long), Greater);
        assert_eq!(Term::binary(&[7; 20]).cmp(&Term::binary(&[7; 20])), Equal);
    }

    #[test]
    fn maps_compare_keys_exactly_then_values() {
        let m1 = Term::map(vec![(Term::Int(1), Term::atom("a"))]).unwrap();
        let m2 = Term::map(vec![(Term::Float(1.0), Term::atom("a"))]).unwrap();
        assert_eq!(m1.cmp(&m2), Less); // integer keys before float keys
        let v1 = Term::map(vec![(Term::atom("k"), Term::Int(1))]).unwrap();
        let v2 = Term::map(vec![(Term::atom("k"), Term::Float(1.0))]).unwrap();
        assert_eq!(v1.cmp(&v2), Equal); // values compare with ==
        assert!(Term::map(vec![
            (Term::Int(1), Term::Int(1)),
            (Term::Int(1), Term::Int(2))
        ])
        .is_none());
    }

    /// Numbers around every boundary of the prefix encoding: 0, 2^53, 2^63, 2^64, both signs,
    /// as integers, big integers and floats, with neighbours.
    fn edge_numbers() -> Vec<Term> {
        let mut out = Vec::new();
        for base in [
            0f64,
            2f64.powi(53),
            2f64.powi(63),
            2f64.powi(64),
            1.0e19,
            2f64.powi(70),
        ] {
            for sign in [1f64, -1f64] {
                let f = base * sign;
                out.push(Term::Float(f));
                out.push(Term::Float(f + 0.5 * sign));
                let whole = BigInt::from_f64(f).unwrap();
                for d in [-2i64, -1, 0, 1, 2] {
                    out.push(Term::integer(&whole + d));
                }
                if f.abs() > 1.0 {
                    out.push(Term::Float(f64::from_bits(f.to_bits() + 1)));
                    out.push(Term::Float(f64::from_bits(f.to_bits() - 1)));
                }
            }
        }
        out
    }

    #[test]
    fn nested_numbers_order_as_bare_ones() {
        // Prefixes must never disagree with the full comparison: `{2^63}` and `{2^63 * 1.0}`
        // are equal, and `{2^63}` sorts before `{1.0e19}`.
        let nums = edge_numbers();
        for a in &nums {
            for b in &nums {
                let bare = a.cmp(b);
                assert_eq!(
                    t(vec![a.clone()]).cmp(&t(vec![b.clone()])),
                    bare,
                    "{a:?} {b:?}"
                );
                assert_eq!(
                    l(vec![a.clone()]).cmp(&l(vec![b.clone()])),
                    bare,
                    "{a:?} {b:?}"
                );
                let wrapped = |x: &Term| t(vec![Term::atom("k"), x.clone(), Term::Int(1)]);
                assert_eq!(wrapped(a).cmp(&wrapped(b)), bare, "{a:?} {b:?}");
            }
        }
        let two_63 = Term::integer(BigInt::from(1u64 << 63));
        assert_eq!(
            t(vec![two_63.clone()]).cmp(&t(vec![Term::Float(2f64.powi(63))])),
            Equal
        );
        assert_eq!(t(vec![two_63]).cmp(&t(vec![Term::Float(1.0e19)])), Less);
    }

    #[test]
    fn tuples_by_size_then_elements() {
        let a = t(vec![Term::Int(9)]);
        let b = t(vec![Term::Int(1), Term::Int(1)]);
        assert_eq!(a.cmp(&b), Less);
        assert_eq!(
            l(vec![Term::Int(1)]).cmp(&l(vec![Term::Int(1), Term::Int(0)])),
            Less
        );
    }
}
