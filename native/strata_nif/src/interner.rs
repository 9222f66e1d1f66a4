//! NIFs behind `Strata.Interner` (prefix `interner_`).

use rustler::{Binary, Encoder, Env, NewBinary, NifResult, NifStruct, Resource, ResourceArc, Term};
use std::borrow::Cow;

use strata_core::op::InternOp;
use strata_core::Interner;

use crate::durable::{self, JournalResource};
use crate::error::{arg, bad_arg};
use crate::resource::{Log, Shared};
use crate::runtime::yielding_nif;

/// Longest key accepted.
const MAX_KEY: usize = 65_535;

pub type InternerResource = Shared<Interner>;

#[rustler::resource_impl]
impl Resource for Shared<Interner> {}

#[derive(NifStruct)]
#[module = "Strata.Interner"]
pub struct InternerHandle {
    resource: ResourceArc<InternerResource>,
    journal: Option<ResourceArc<JournalResource>>,
}

fn wrap(interner: Interner) -> InternerHandle {
    InternerHandle {
        resource: Shared::wrap(interner),
        journal: None,
    }
}

fn handle(term: Term) -> NifResult<ResourceArc<InternerResource>> {
    arg::<InternerHandle>(term, "interner", "a %Strata.Interner{}").map(|h| h.resource)
}

fn key<'a>(term: Term<'a>) -> NifResult<Binary<'a>> {
    let key: Binary = arg(term, "key", "a binary")?;
    if key.len() > MAX_KEY {
        return Err(bad_arg(format!(
            "argument key: at most {MAX_KEY} bytes, got {}",
            key.len()
        )));
    }
    Ok(key)
}

#[rustler::nif]
fn interner_new(env: Env) -> Term {
    wrap(Interner::new()).encode(env)
}

yielding_nif!(interner_intern, interner_intern_body, (interner, k));

/// The id of `key`, giving it the next one if it has none.
fn interner_intern_body<'a>(_env: Env<'a>, interner: Term<'a>, k: Term<'a>) -> NifResult<u32> {
    let interner = handle(interner)?;
    let k = key(k)?;
    // Most keys are already known: look them up under the read lock first.
    if let Some(id) = interner.read()?.lookup(k.as_slice()) {
        return Ok(id);
    }
    interner
        .write_logged(|i, log| {
            let op = InternOp(Cow::Borrowed(k.as_slice()));
            if i.lookup(k.as_slice()).is_none() {
                log.record(&op)?;
            }
            Ok(op.apply(i))
        })?
        .map(|(id, _)| id)
        .map_err(|_| rustler::Error::Term(Box::new(crate::full())))
}

yielding_nif!(interner_lookup, interner_lookup_body, (interner, k));

fn interner_lookup_body<'a>(
    _env: Env<'a>,
    interner: Term<'a>,
    k: Term<'a>,
) -> NifResult<Option<u32>> {
    let interner = handle(interner)?;
    let k = key(k)?;
    let id = interner.read()?.lookup(k.as_slice());
    Ok(id)
}

yielding_nif!(interner_key, interner_key_body, (interner, id));

fn interner_key_body<'a>(env: Env<'a>, interner: Term<'a>, id: Term<'a>) -> NifResult<Term<'a>> {
    let interner = handle(interner)?;
    let id: u32 = arg(id, "id", "an id (an integer in 0..4294967295)")?;
    let guard = interner.read()?;
    Ok(match guard.key(id) {
        Some(bytes) => {
            let mut bin = NewBinary::new(env, bytes.len());
            bin.as_mut_slice().copy_from_slice(bytes);
            Term::from(bin)
        }
        None => crate::nil().encode(env),
    })
}

yielding_nif!(interner_info, interner_info_body, (interner));

/// `{size, memory}`, in `O(1)`.
fn interner_info_body<'a>(_env: Env<'a>, interner: Term<'a>) -> NifResult<(usize, usize)> {
    let interner = handle(interner)?;
    let i = interner.read()?;
    Ok((i.len(), i.memory()))
}

/// `{:ok, interner, report}` for the durable interner in `dir`, or `{:error, reason}`.
#[rustler::nif(schedule = "DirtyIo")]
fn interner_recover<'a>(env: Env<'a>, dir: Term<'a>, sync: Term<'a>) -> NifResult<Term<'a>> {
    let dir = durable::path(dir, "durable")?;
    let mode = durable::sync_mode(sync)?;
    Ok(match durable::recover(&dir, mode, Interner::new) {
        Ok((interner, journal, report)) => {
            let handle = InternerHandle {
                resource: ResourceArc::new(Shared::with_log(
                    interner,
                    Log::Journal(journal.clone()),
                )),
                journal: Some(ResourceArc::new(JournalResource(journal))),
            };
            (crate::ok(), handle, durable::report(env, &report)).encode(env)
        }
        Err(e) => durable::error(env, &e),
    })
}

durable::snapshot_nifs!(
    Interner,
    handle,
    wrap,
    interner_dump,
    interner_load,
    interner_save,
    interner_open,
    interner_checkpoint
);
