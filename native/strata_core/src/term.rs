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
use std::sync::OnceLock;

use num_bigint::BigInt;
use num_traits::{FromPrimitive, Signed, ToPrimitive};
use parking_lot::RwLock;
use thin_vec::ThinVec;

/// Longest binary stored inline in a [`Term`].
pub const INLINE_BINARY: usize = 14;

/// An interned atom name. Like atoms in the BEAM, interned names live for the rest of the
/// process: there are at most as many of them as the VM's atom table allows.
#[derive(Clone, Copy)]
pub struct Atom(&'static AtomName); // a thin pointer keeps `Term` at 16 bytes

struct AtomName {
    name: Box<str>,
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
        let leaked: &'static AtomName = Box::leak(Box::new(AtomName { name: name.into() }));
        let atom = Atom(leaked);
        table.insert(&leaked.name, atom);
        atom
    }

    /// The atom's name.
    pub fn name(self) -> &'static str {
        &self.0.name
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
    /// A binary longer than [`INLINE_BINARY`] bytes.
    Binary(ThinVec<u8>),
    Tuple(ThinVec<Term>),
    /// A proper list; the empty one is `[]` (nil).
    List(ThinVec<Term>),
    /// Key-value pairs sorted by key in map-key order.
    Map(ThinVec<(Term, Term)>),
}

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
            Term::Binary(ThinVec::from(bytes))
        }
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
        Some(Term::Map(ThinVec::from(pairs)))
    }

    /// The bytes of a binary term.
    pub fn as_binary(&self) -> Option<&[u8]> {
        match self {
            Term::SmallBinary(b) => Some(b.as_slice()),
            Term::Binary(b) => Some(b),
            _ => None,
        }
    }

    /// Bytes this term owns on the heap, beyond its own 16 bytes (atoms are shared and count
    /// nothing). Kept cheap: it is called on every insert and remove.
    pub fn heap_bytes(&self) -> usize {
        const HEADER: usize = 16; // a ThinVec's length and capacity
        match self {
            Term::Int(_) | Term::Float(_) | Term::Atom(_) | Term::SmallBinary(_) => 0,
            Term::BigInt(b) => std::mem::size_of::<BigInt>() + b.bits().div_ceil(64) as usize * 8,
            Term::Binary(b) => HEADER + b.capacity(),
            Term::Tuple(items) | Term::List(items) => {
                if items.capacity() == 0 {
                    0
                } else {
                    HEADER
                        + items.capacity() * std::mem::size_of::<Term>()
                        + items.iter().map(Term::heap_bytes).sum::<usize>()
                }
            }
            Term::Map(pairs) => {
                HEADER
                    + pairs.capacity() * 2 * std::mem::size_of::<Term>()
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
            Term::Tuple(_) => 6,
            Term::Map(_) => 7,
            Term::List(_) => 8,
            Term::SmallBinary(_) | Term::Binary(_) => 9,
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
        (Tuple(x), Tuple(y)) => x.len().cmp(&y.len()).then_with(|| compare_seq(x, y, exact)),
        (List(x), List(y)) => compare_seq(x, y, exact).then_with(|| x.len().cmp(&y.len())),
        (Map(x), Map(y)) => x.len().cmp(&y.len()).then_with(|| {
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

impl fmt::Debug for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Term::Int(i) => write!(f, "{i}"),
            Term::BigInt(i) => write!(f, "{i}"),
            Term::Float(x) => write!(f, "{x:?}"),
            Term::Atom(a) => write!(f, "{a:?}"),
            Term::SmallBinary(_) | Term::Binary(_) => {
                write!(f, "<<{:?}>>", self.as_binary().unwrap_or_default())
            }
            Term::Tuple(items) => {
                f.write_str("{")?;
                write_seq(f, items)?;
                f.write_str("}")
            }
            Term::List(items) => {
                f.write_str("[")?;
                write_seq(f, items)?;
                f.write_str("]")
            }
            Term::Map(pairs) => {
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
        Term::Tuple(ThinVec::from(items))
    }

    fn l(items: Vec<Term>) -> Term {
        Term::List(ThinVec::from(items))
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
