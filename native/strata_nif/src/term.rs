//! Conversion between BEAM terms and `strata_core::Term`.

use std::collections::HashMap;
use std::sync::OnceLock;

use num_bigint::BigInt;
use parking_lot::RwLock;
use rustler::types::tuple::{get_tuple, make_tuple};
use rustler::{Binary, Encoder, Env, Error, MapIterator, NewBinary, Term, TermType};
use strata_core::term::Atom;
use strata_core::Term as Value;

use crate::error::bad_arg;

/// Deepest nesting of tuples, lists and maps accepted (bounds recursion).
pub const MAX_DEPTH: usize = 256;

/// Atoms are immediate, VM-global and never freed, so a raw atom term identifies its atom
/// for the life of the VM: both directions are cached.
#[derive(Default)]
struct AtomCache {
    by_term: HashMap<rustler::sys::ErlNifTerm, Atom>,
    by_atom: HashMap<usize, rustler::sys::ErlNifTerm>,
}

fn atom_cache() -> &'static RwLock<AtomCache> {
    static CACHE: OnceLock<RwLock<AtomCache>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn atom_key(atom: Atom) -> usize {
    atom.name().as_ptr() as usize
}

/// Decodes argument `name` into an owned value, or raises `ArgumentError` naming the
/// argument and the unsupported type.
pub fn decode(term: Term, name: &str) -> Result<Value, Error> {
    decode_at(term, 0).map_err(|what| {
        bad_arg(format!(
            "argument {name}: {what} cannot be stored (supported: numbers, atoms, binaries, \
             tuples, proper lists and maps)"
        ))
    })
}

/// Decodes every element of a proper list.
pub fn decode_list(term: Term, name: &str) -> Result<Vec<Value>, Error> {
    let mut items = Vec::with_capacity(term.list_length().unwrap_or(0));
    let mut rest = term;
    while !rest.is_empty_list() {
        let (head, tail) = rest
            .list_get_cell()
            .map_err(|_| bad_arg(format!("argument {name}: expected a proper list")))?;
        items.push(decode(head, name)?);
        rest = tail;
    }
    Ok(items)
}

fn decode_at(term: Term, depth: usize) -> Result<Value, &'static str> {
    if depth > MAX_DEPTH {
        return Err("a term nested deeper than 256 levels");
    }
    match term.get_type() {
        TermType::Integer => match term.decode::<i64>() {
            Ok(i) => Ok(Value::Int(i)),
            Err(_) => term
                .decode::<BigInt>()
                .map(Value::integer)
                .map_err(|_| "an integer"),
        },
        TermType::Float => term
            .decode::<f64>()
            .map(Value::Float)
            .map_err(|_| "a float"),
        TermType::Atom => decode_atom(term).ok_or("an atom"),
        TermType::Binary => {
            if !term.is_binary() {
                return Err("a bitstring that is not a binary");
            }
            let bin = Binary::from_term(term).map_err(|_| "a binary")?;
            Ok(Value::binary(bin.as_slice()))
        }
        TermType::Tuple => {
            let elems = get_tuple(term).map_err(|_| "a tuple")?;
            let items = elems
                .into_iter()
                .map(|e| decode_at(e, depth + 1))
                .collect::<Result<thin_vec::ThinVec<_>, _>>()?;
            Ok(Value::tuple(items))
        }
        TermType::List => {
            let mut items = thin_vec::ThinVec::new();
            let mut rest = term;
            while !rest.is_empty_list() {
                let (head, tail) = rest.list_get_cell().map_err(|_| "an improper list")?;
                items.push(decode_at(head, depth + 1)?);
                rest = tail;
            }
            Ok(Value::list(items))
        }
        TermType::Map => {
            let iter = MapIterator::new(term).ok_or("a map")?;
            let mut pairs = Vec::with_capacity(term.map_size().unwrap_or(0));
            for (k, v) in iter {
                pairs.push((decode_at(k, depth + 1)?, decode_at(v, depth + 1)?));
            }
            Value::map(pairs).ok_or("a map")
        }
        TermType::Pid => Err("a pid"),
        TermType::Port => Err("a port"),
        TermType::Ref => Err("a reference"),
        TermType::Fun => Err("a fun"),
        TermType::Unknown => Err("a term of unknown type"),
    }
}

fn decode_atom(term: Term) -> Option<Value> {
    let raw = term.as_c_arg();
    if let Some(atom) = atom_cache().read().by_term.get(&raw) {
        return Some(Value::Atom(*atom));
    }
    // The latin-1 interface fails for code points above 255 on OTP 25.
    let name = match term.atom_to_string() {
        Ok(name) => name,
        Err(_) => utf8_atom_name(term)?,
    };
    let atom = Atom::intern(&name);
    let mut cache = atom_cache().write();
    cache.by_term.insert(raw, atom);
    cache.by_atom.insert(atom_key(atom), raw);
    Some(Value::Atom(atom))
}

/// The name of an atom with code points above 255, read from its external format
/// (`ATOM_UTF8_EXT` or `SMALL_ATOM_UTF8_EXT`).
fn utf8_atom_name(term: Term) -> Option<String> {
    let ext = term.to_binary();
    let bytes = ext.as_slice();
    let (len, start) = match bytes.get(1)? {
        118 => (
            u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]) as usize,
            4,
        ),
        119 => (*bytes.get(2)? as usize, 3),
        _ => return None,
    };
    let name = bytes.get(start..start + len)?;
    String::from_utf8(name.to_vec()).ok()
}

/// Encodes a stored value back into a term.
pub fn encode<'a>(env: Env<'a>, value: &Value) -> Term<'a> {
    match value {
        Value::Int(i) => i.encode(env),
        Value::BigInt(b) => b.as_ref().encode(env),
        Value::Float(f) => f.encode(env),
        Value::Atom(atom) => encode_atom(env, *atom),
        Value::SmallBinary(_) | Value::Binary(..) => {
            let bytes = value.as_binary().unwrap_or_default();
            let mut bin = NewBinary::new(env, bytes.len());
            bin.as_mut_slice().copy_from_slice(bytes);
            bin.into()
        }
        Value::Tuple(_, items) => {
            let terms: Vec<Term> = items.iter().map(|v| encode(env, v)).collect();
            make_tuple(env, &terms)
        }
        Value::List(_, items) => {
            let terms: Vec<Term> = items.iter().map(|v| encode(env, v)).collect();
            terms.encode(env)
        }
        Value::Map(_, pairs) => {
            let keys: Vec<Term> = pairs.iter().map(|(k, _)| encode(env, k)).collect();
            let values: Vec<Term> = pairs.iter().map(|(_, v)| encode(env, v)).collect();
            Term::map_from_term_arrays(env, &keys, &values).unwrap_or_else(|_| Term::map_new(env))
        }
    }
}

/// Encodes values as a list.
pub fn encode_list<'a, 'v>(env: Env<'a>, values: impl Iterator<Item = &'v Value>) -> Term<'a> {
    let terms: Vec<Term> = values.map(|v| encode(env, v)).collect();
    terms.encode(env)
}

fn encode_atom(env: Env, atom: Atom) -> Term {
    if let Some(raw) = atom_cache().read().by_atom.get(&atom_key(atom)) {
        // SAFETY: `raw` was read from an atom term of this VM; atoms are immediate values,
        // valid in every environment and never freed.
        return unsafe { Term::new(env, *raw) };
    }
    let term = match rustler::Atom::from_str(env, atom.name()) {
        Ok(a) => a.encode(env),
        Err(_) => utf8_atom_term(env, atom.name()),
    };
    let mut cache = atom_cache().write();
    cache.by_atom.insert(atom_key(atom), term.as_c_arg());
    cache.by_term.insert(term.as_c_arg(), atom);
    term
}

/// Makes an atom with code points above 255 through the external format.
fn utf8_atom_term<'a>(env: Env<'a>, name: &str) -> Term<'a> {
    let mut ext = vec![131, 118];
    ext.extend_from_slice(&(name.len() as u16).to_be_bytes());
    ext.extend_from_slice(name.as_bytes());
    env.binary_to_term(&ext)
        .map(|(t, _)| t)
        .unwrap_or_else(|| crate::nil().encode(env))
}
