//! Conversion between BEAM terms and `strata_core::Term`.

use std::collections::HashMap;
use std::sync::OnceLock;

use num_bigint::BigInt;
use parking_lot::RwLock;
use std::ffi::c_uint;

use rustler::sys::{self, ErlNifTerm};
use rustler::types::tuple::get_tuple;
use rustler::{Binary, Encoder, Env, Error, MapIterator, NewBinary, Term, TermType};
use strata_core::term::Atom;
use strata_core::Term as Value;

use crate::error::bad_arg;

/// Deepest nesting of tuples, lists and maps accepted (bounds recursion).
pub const MAX_DEPTH: usize = 256;

/// Atoms are immediate, VM-global and never freed, so a raw atom term identifies its atom
/// for the life of the VM. Decoding looks atoms up here; encoding uses the term kept in the
/// atom's host tag.
fn atom_cache() -> &'static RwLock<HashMap<ErlNifTerm, Atom>> {
    static CACHE: OnceLock<RwLock<HashMap<ErlNifTerm, Atom>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
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
            Err(_) => match term.decode::<BigInt>() {
                Ok(big)
                    if (big.bits() as usize).div_ceil(8) <= strata_core::term::MAX_BIG_BYTES =>
                {
                    Ok(Value::integer(big))
                }
                Ok(_) => Err("an integer above 2^(2^25)"),
                Err(_) => Err("an integer"),
            },
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
    if let Some(atom) = atom_cache().read().get(&raw) {
        return Some(Value::Atom(*atom));
    }
    // The latin-1 interface fails for code points above 255 on OTP 25.
    let name = match term.atom_to_string() {
        Ok(name) => name,
        Err(_) => utf8_atom_name(term)?,
    };
    let atom = Atom::intern(&name);
    // SAFETY: a word-sized transparent wrapper (see `encode_atom`).
    atom.set_host_tag(unsafe { std::mem::transmute::<ErlNifTerm, usize>(raw) });
    atom_cache().write().insert(raw, atom);
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
    // SAFETY: every raw term below is made in `env` and lives as long as `env`.
    unsafe { Term::new(env, encode_raw(env, value)) }
}

/// Encodes values as a list.
pub fn encode_list<'a, 'v>(env: Env<'a>, values: impl Iterator<Item = &'v Value>) -> Term<'a> {
    let raw: Vec<ErlNifTerm> = values.map(|v| encode_raw(env, v)).collect();
    // SAFETY: `raw` holds terms of `env`; the array is read, not kept.
    unsafe { Term::new(env, make_list(env, &raw)) }
}

/// Terms of a tuple, list or map of up to this many elements are gathered on the stack.
const STACK_ELEMENTS: usize = 8;

/// Encodes `items` into a buffer (on the stack when short) and hands it to `make`.
fn with_encoded<F>(
    env: Env,
    items: impl ExactSizeIterator<Item = ErlNifTerm>,
    make: F,
) -> ErlNifTerm
where
    F: FnOnce(&[ErlNifTerm]) -> ErlNifTerm,
{
    let n = items.len();
    if n <= STACK_ELEMENTS {
        let mut buf = [ErlNifTerm::default(); STACK_ELEMENTS];
        for (slot, t) in buf.iter_mut().zip(items) {
            *slot = t;
        }
        make(&buf[..n])
    } else {
        let _ = env;
        make(&items.collect::<Vec<_>>())
    }
}

fn make_list(env: Env, terms: &[ErlNifTerm]) -> ErlNifTerm {
    // SAFETY: `terms` is a valid array of `terms.len()` terms of `env`.
    unsafe { sys::enif_make_list_from_array(env.as_c_arg(), terms.as_ptr(), terms.len() as c_uint) }
}

fn encode_raw(env: Env, value: &Value) -> ErlNifTerm {
    match value {
        Value::Int(i) => i.encode(env).as_c_arg(),
        Value::BigInt(b) => b.as_ref().encode(env).as_c_arg(),
        Value::Float(f) => f.encode(env).as_c_arg(),
        Value::Atom(atom) => encode_atom(env, *atom).as_c_arg(),
        Value::SmallBinary(_) | Value::Binary(..) => {
            let bytes = value.as_binary().unwrap_or_default();
            let mut bin = NewBinary::new(env, bytes.len());
            bin.as_mut_slice().copy_from_slice(bytes);
            Term::from(bin).as_c_arg()
        }
        Value::Tuple(_, items) => {
            with_encoded(env, items.iter().map(|v| encode_raw(env, v)), |terms| {
                // SAFETY: as in `make_list`.
                unsafe {
                    sys::enif_make_tuple_from_array(
                        env.as_c_arg(),
                        terms.as_ptr(),
                        terms.len() as c_uint,
                    )
                }
            })
        }
        Value::List(_, items) => {
            with_encoded(env, items.iter().map(|v| encode_raw(env, v)), |terms| {
                make_list(env, terms)
            })
        }
        Value::Map(_, pairs) => {
            let keys: Vec<ErlNifTerm> = pairs.iter().map(|(k, _)| encode_raw(env, k)).collect();
            with_encoded(
                env,
                pairs.iter().map(|(_, v)| encode_raw(env, v)),
                |values| {
                    let mut map = ErlNifTerm::default();
                    // SAFETY: `keys` and `values` are arrays of `values.len()` terms of `env`; the
                    // keys are distinct, so the call succeeds and writes `map`.
                    let ok = unsafe {
                        sys::enif_make_map_from_arrays(
                            env.as_c_arg(),
                            keys.as_ptr(),
                            values.as_ptr(),
                            values.len(),
                            &mut map,
                        )
                    };
                    if ok == 0 {
                        Term::map_new(env).as_c_arg()
                    } else {
                        map
                    }
                },
            )
        }
    }
}

fn encode_atom(env: Env, atom: Atom) -> Term {
    let tag = atom.host_tag();
    if tag != 0 {
        // SAFETY: the tag is an atom term of this VM (set below); atoms are immediate
        // values, valid in every environment and never freed. `ErlNifTerm` is a transparent
        // wrapper of a machine word.
        return unsafe { Term::new(env, std::mem::transmute::<usize, ErlNifTerm>(tag)) };
    }
    let term = match rustler::Atom::from_str(env, atom.name()) {
        Ok(a) => a.encode(env),
        Err(_) => utf8_atom_term(env, atom.name()),
    };
    // SAFETY: as above, a word-sized transparent wrapper.
    atom.set_host_tag(unsafe { std::mem::transmute::<ErlNifTerm, usize>(term.as_c_arg()) });
    atom_cache().write().insert(term.as_c_arg(), atom);
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
