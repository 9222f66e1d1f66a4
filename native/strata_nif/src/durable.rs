//! The durable tier's NIF side: the journal resource, acknowledgements sent to waiting
//! processes, and the conversions of errors and options shared by every structure.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustler::env::OwnedEnv;
use rustler::{
    Atom, Binary, Encoder, Env, Error, LocalPid, NewBinary, NifResult, Resource, ResourceArc, Term,
};
use strata_core::codec::DecodeError;
use strata_core::journal::{self, Journal, Report, StoreError, SyncMode};
use strata_core::persist::Persist;

use crate::error::{arg, bad_arg};
use crate::resource::{Freeze, Shared};

/// Defines the snapshot NIFs of a structure kept in one `Shared<T>` resource: `dump`
/// (dirty CPU), `load` (dirty CPU), `save`, `open` and `checkpoint` (dirty IO), given the
/// structure type, the function that decodes its handle argument and the one that wraps an
/// in-memory structure in a handle.
macro_rules! snapshot_nifs {
    ($t:ty, $handle:path, $wrap:path, $dump:ident, $load:ident, $save:ident, $open:ident, $checkpoint:ident) => {
        /// The structure as a snapshot binary (format in `Strata.Durable`), encoded from a
        /// frozen copy (writers are held only while it is taken).
        #[rustler::nif(schedule = "DirtyCpu")]
        fn $dump<'a>(env: Env<'a>, x: Term<'a>) -> NifResult<Term<'a>> {
            let x = $handle(x)?;
            let bytes = x.snapshot()?;
            durable::binary(env, &bytes)
        }

        /// `{:ok, handle}` from a snapshot binary, or `{:error, {:corrupt, why}}`.
        #[rustler::nif(schedule = "DirtyCpu")]
        fn $load<'a>(env: Env<'a>, bytes: rustler::Binary<'a>) -> NifResult<Term<'a>> {
            Ok(match durable::load::<$t>(env, bytes) {
                Ok(x) => (crate::ok(), $wrap(x)).encode(env),
                Err(e) => e,
            })
        }

        /// Writes a snapshot file atomically.
        #[rustler::nif(schedule = "DirtyIo")]
        fn $save<'a>(env: Env<'a>, x: Term<'a>, path: Term<'a>) -> NifResult<Term<'a>> {
            let x = $handle(x)?;
            let path = durable::path(path, "path")?;
            let bytes = x.snapshot()?;
            Ok(durable::save(env, &path, &bytes))
        }

        /// `{:ok, handle}` from a snapshot file, or `{:error, reason}`.
        #[rustler::nif(schedule = "DirtyIo")]
        fn $open<'a>(env: Env<'a>, path: Term<'a>) -> NifResult<Term<'a>> {
            let path = durable::path(path, "path")?;
            Ok(match durable::open_file::<$t>(env, &path) {
                Ok(x) => (crate::ok(), $wrap(x)).encode(env),
                Err(e) => e,
            })
        }

        /// Checkpoints a durable structure (see `durable::checkpoint`).
        #[rustler::nif(schedule = "DirtyIo")]
        fn $checkpoint<'a>(env: Env<'a>, x: Term<'a>) -> NifResult<Term<'a>> {
            let x = $handle(x)?;
            durable::checkpoint(env, &x)
        }
    };
}

pub(crate) use snapshot_nifs;

/// A process waiting for its writes to be durable, and the token it waits for.
pub struct Waiter {
    pid: LocalPid,
    token: u64,
}

pub type SharedJournal = Journal<Waiter>;

/// The journal of a durable structure, as Elixir holds it (in the structure's `journal`
/// field) to wait for acknowledgements, sync and close.
pub struct JournalResource(pub Arc<SharedJournal>);

#[rustler::resource_impl]
impl Resource for JournalResource {}

mod atoms {
    rustler::atoms! {
        strata_ack,
        wait,
        corrupt,
        locked,
        closed,
        journal_failed,
        record_too_large,
        wrong_kind,
        not_regular_file,
        io,
        always,
        none,
        interval,
    }
}

/// The errno names `File` uses, for the errors a store meets.
fn posix(errno: i32) -> Option<&'static str> {
    Some(match errno {
        1 => "eperm",
        2 => "enoent",
        5 => "eio",
        9 => "ebadf",
        12 => "enomem",
        13 => "eacces",
        17 => "eexist",
        20 => "enotdir",
        21 => "eisdir",
        22 => "einval",
        24 => "emfile",
        27 => "efbig",
        28 => "enospc",
        30 => "erofs",
        36 => "enametoolong",
        40 => "eloop",
        122 => "edquot",
        _ => return None,
    })
}

/// The reason term of a store error: a posix atom, `{:io, message}`, `{:corrupt, message}`,
/// `:locked`, `{:journal_failed, message}`, `:closed`, `:record_too_large`,
/// `{:wrong_kind, kind}` or `:not_regular_file`.
pub fn reason<'a>(env: Env<'a>, e: &StoreError) -> Term<'a> {
    match e {
        StoreError::Io { errno, .. } => match errno.and_then(posix) {
            Some(name) => Atom::from_str(env, name)
                .map(|a| a.encode(env))
                .unwrap_or_else(|_| (atoms::io(), e.to_string()).encode(env)),
            None => (atoms::io(), e.to_string()).encode(env),
        },
        StoreError::Corrupt(why) => (atoms::corrupt(), why.as_str()).encode(env),
        StoreError::Locked(_) => atoms::locked().encode(env),
        StoreError::Failed(why) => (atoms::journal_failed(), why.as_str()).encode(env),
        StoreError::Closed => atoms::closed().encode(env),
        StoreError::RecordTooLarge(_) => atoms::record_too_large().encode(env),
        StoreError::WrongKind(kind) => (atoms::wrong_kind(), atom(env, kind)).encode(env),
        StoreError::NotRegularFile(_) => atoms::not_regular_file().encode(env),
    }
}

/// `{:error, reason}` for a store error.
pub fn error<'a>(env: Env<'a>, e: &StoreError) -> Term<'a> {
    (crate::error(), reason(env, e)).encode(env)
}

/// `{:error, {:corrupt, message}}` for bytes that failed their checks, or
/// `{:error, {:wrong_kind, kind}}` for a whole valid snapshot of another structure.
pub fn decode_error<'a>(env: Env<'a>, e: &DecodeError) -> Term<'a> {
    match e {
        DecodeError::WrongKind { found, .. } => {
            let kind = strata_core::codec::Kind::from_byte(*found).map_or("unknown", |k| k.name());
            (crate::error(), (atoms::wrong_kind(), atom(env, kind))).encode(env)
        }
        _ => (crate::error(), (atoms::corrupt(), e.to_string())).encode(env),
    }
}

/// Raises `Strata.DurabilityError`: a change that could not be recorded (and so was not
/// applied).
struct DurabilityError(StoreError);

impl Encoder for DurabilityError {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        let keys = [
            Atom::from_str(env, "__struct__").map(|a| a.encode(env)),
            Atom::from_str(env, "__exception__").map(|a| a.encode(env)),
            Atom::from_str(env, "message").map(|a| a.encode(env)),
            Atom::from_str(env, "reason").map(|a| a.encode(env)),
        ];
        let module = Atom::from_str(env, "Elixir.Strata.DurabilityError").map(|a| a.encode(env));
        let message = format!("the change was not recorded: {}", self.0).encode(env);
        let values = [
            module,
            Ok(true.encode(env)),
            Ok(message),
            Ok(reason(env, &self.0)),
        ];
        let keys: Vec<Term> = keys.into_iter().filter_map(Result::ok).collect();
        let values: Vec<Term> = values.into_iter().filter_map(Result::ok).collect();
        Term::map_from_term_arrays(env, &keys, &values)
            .unwrap_or_else(|_| (atoms::journal_failed(), self.0.to_string()).encode(env))
    }
}

pub fn durability_error(e: StoreError) -> Error {
    Error::RaiseTerm(Box::new(DurabilityError(e)))
}

/// Sends each waiter `{:strata_ack, token, :ok | {:error, reason}}` (from the journal's own
/// thread, never a scheduler).
fn notify(waiters: Vec<Waiter>, result: Result<(), StoreError>) {
    let mut env = OwnedEnv::new();
    for w in waiters {
        let _ = env.send_and_clear(&w.pid, |env| {
            let result = match &result {
                Ok(()) => crate::ok().encode(env),
                Err(e) => error(env, e),
            };
            (atoms::strata_ack(), w.token, result).encode(env)
        });
    }
}

/// Reads `sync` (`:always`, `:none`, or `{:interval, ms}` as the Elixir side passes it).
pub fn sync_mode(term: Term) -> NifResult<SyncMode> {
    let expected = "argument sync: expected :always, :none or {:interval, ms} with ms in 1..60000";
    if let Ok(atom) = term.decode::<Atom>() {
        if atom == atoms::always() {
            return Ok(SyncMode::Always);
        }
        if atom == atoms::none() {
            return Ok(SyncMode::Never);
        }
    } else if let Ok((tag, ms)) = term.decode::<(Atom, u64)>() {
        if tag == atoms::interval() && (1..=60_000).contains(&ms) {
            return Ok(SyncMode::Interval(Duration::from_millis(ms)));
        }
    }
    Err(bad_arg(expected))
}

pub fn path(term: Term, name: &str) -> NifResult<PathBuf> {
    let path: String = arg(term, name, "a path (a string)")?;
    if path.is_empty() || path.contains('\0') {
        return Err(bad_arg(format!(
            "argument {name}: expected a non-empty path"
        )));
    }
    Ok(PathBuf::from(path))
}

/// Opens or creates the durable structure in `dir`.
pub fn recover<T: Persist>(
    dir: &Path,
    mode: SyncMode,
    fresh: impl FnOnce() -> T,
) -> Result<(T, Arc<SharedJournal>, Report), StoreError> {
    let (value, journal, report) = journal::open(dir, mode, fresh, Box::new(notify))?;
    Ok((value, Arc::new(journal), report))
}

/// What recovery reports to Elixir: `%{snapshot: gen, replayed: n, set_aside: [..],
/// truncated: nil | {segment, offset, bytes}}` as a keyword-ready tuple list.
pub fn report<'a>(env: Env<'a>, r: &Report) -> Term<'a> {
    let pairs: Vec<(Term, Term)> = vec![
        (atom(env, "snapshot"), r.snapshot.encode(env)),
        (atom(env, "replayed"), r.replayed.encode(env)),
        (atom(env, "set_aside"), r.set_aside.encode(env)),
        (atom(env, "truncated"), r.truncated.clone().encode(env)),
    ];
    Term::map_from_pairs(env, &pairs).unwrap_or_else(|_| crate::nil().encode(env))
}

fn atom<'a>(env: Env<'a>, name: &str) -> Term<'a> {
    Atom::from_str(env, name)
        .map(|a| a.encode(env))
        .unwrap_or_else(|_| crate::nil().encode(env))
}

/// A binary term holding `bytes`.
pub fn binary<'a>(env: Env<'a>, bytes: &[u8]) -> NifResult<Term<'a>> {
    Ok(NewBinary::from_slice(env, bytes).into())
}

/// `:ok` or `{:error, reason}` for saving a snapshot to `path`.
pub fn save<'a>(env: Env<'a>, path: &Path, bytes: &[u8]) -> Term<'a> {
    match journal::write_atomically(path, bytes) {
        Ok(()) => crate::ok().encode(env),
        Err(e) => error(env, &e),
    }
}

/// Reads a snapshot file: `Ok(value)` or the `{:error, reason}` term.
pub fn open_file<'a, T: Persist>(env: Env<'a>, path: &Path) -> Result<T, Term<'a>> {
    journal::read_snapshot::<T>(path).map_err(|e| match e {
        journal::ReadError::Io(e) => error(env, &e),
        journal::ReadError::Decode(e) => decode_error(env, &e),
    })
}

/// Checks and decodes a snapshot binary: `Ok(value)` or the `{:error, reason}` term.
pub fn load<'a, T: Persist>(env: Env<'a>, bytes: Binary) -> Result<T, Term<'a>> {
    T::load(bytes.as_slice()).map_err(|e| decode_error(env, &e))
}

fn journal_arg(term: Term) -> NifResult<ResourceArc<JournalResource>> {
    arg(term, "journal", "a Strata journal")
}

static TOKENS: AtomicU64 = AtomicU64::new(1);

/// `:ok` when the caller's writes so far are as durable as the sync mode promises,
/// `{:wait, token}` when the caller should wait for `{:strata_ack, token, result}`, or
/// `{:error, reason}`.
#[rustler::nif]
fn journal_ack<'a>(env: Env<'a>, journal: Term<'a>) -> NifResult<Term<'a>> {
    let journal = journal_arg(journal)?;
    let token = TOKENS.fetch_add(1, Ordering::Relaxed);
    let waiter = Waiter {
        pid: env.pid(),
        token,
    };
    Ok(match journal.0.acknowledge(waiter) {
        Some(Ok(())) => crate::ok().encode(env),
        Some(Err(e)) => error(env, &e),
        None => (atoms::wait(), token).encode(env),
    })
}

/// fsyncs everything written so far.
#[rustler::nif(schedule = "DirtyIo")]
fn journal_sync<'a>(env: Env<'a>, journal: Term<'a>) -> NifResult<Term<'a>> {
    let journal = journal_arg(journal)?;
    let result = journal.0.sync();
    send_fsync_reports(env);
    Ok(match result {
        Ok(()) => crate::ok().encode(env),
        Err(e) => error(env, &e),
    })
}

/// Syncs, stops the journal and releases its directory.
#[rustler::nif(schedule = "DirtyIo")]
fn journal_close<'a>(env: Env<'a>, journal: Term<'a>) -> NifResult<Term<'a>> {
    let journal = journal_arg(journal)?;
    let result = journal.0.close();
    send_fsync_reports(env);
    Ok(match result {
        Ok(()) => crate::ok().encode(env),
        Err(e) => error(env, &e),
    })
}

/// Appends `record` to a journal as it is, unchecked: for tests that need a record no
/// change could have written (as a damaged or foreign journal holds).
#[rustler::nif]
fn journal_append_raw<'a>(
    env: Env<'a>,
    journal: Term<'a>,
    record: Binary<'a>,
) -> NifResult<Term<'a>> {
    let journal = journal_arg(journal)?;
    Ok(match journal.0.append(record.as_slice()) {
        Ok(_) => crate::ok().encode(env),
        Err(e) => error(env, &e),
    })
}

/// `{:error, :not_durable}`.
pub fn not_durable<'a>(env: Env<'a>) -> Term<'a> {
    (
        crate::error(),
        Atom::from_str(env, "not_durable")
            .map(|a| a.encode(env))
            .unwrap_or_else(|_| crate::nil().encode(env)),
    )
        .encode(env)
}

/// Checkpoints a durable structure. First from the journal alone, without holding up any
/// writer ([`SharedJournal::checkpoint_from_log`]); if the files cannot be read back, from
/// the live structure: under its read lock (no change can be recorded meanwhile) the journal
/// moves to a new segment and a frozen copy of the state is taken (see [`Freeze`]), which is
/// encoded and written with the lock released.
pub fn checkpoint<'a, T: Freeze>(env: Env<'a>, shared: &Shared<T>) -> NifResult<Term<'a>> {
    let Some(journal) = shared.journal() else {
        return Ok(not_durable(env));
    };
    checkpoint_with::<T>(env, journal, || {
        let next = journal.next_segment()?;
        let (gen, frozen) = {
            let state = shared.read()?;
            (journal.switch_to(next)?, state.freeze())
        };
        Ok((gen, T::seal(frozen, shared)?))
    })
}

/// What a checkpoint's snapshot taking can fail with: the store, or (never on the dirty
/// scheduler a checkpoint runs on) a lock.
pub enum TakeError {
    Store(StoreError),
    Nif(Error),
}

impl From<StoreError> for TakeError {
    fn from(e: StoreError) -> TakeError {
        TakeError::Store(e)
    }
}

impl From<Error> for TakeError {
    fn from(e: Error) -> TakeError {
        TakeError::Nif(e)
    }
}

/// [`checkpoint`] for any structure: `take` encodes the live state and starts the next
/// segment under the structure's lock, returning `(generation, snapshot)`.
pub fn checkpoint_with<'a, T: Persist>(
    env: Env<'a>,
    journal: &SharedJournal,
    take: impl FnOnce() -> Result<(u64, Vec<u8>), TakeError>,
) -> NifResult<Term<'a>> {
    let done = match journal.checkpoint_from_log::<T>() {
        Ok(true) => Ok(()),
        Ok(false) => {
            let _one = journal.exclusive();
            match take() {
                Ok((gen, bytes)) => journal.checkpoint(gen, &bytes),
                Err(TakeError::Store(e)) => Err(e),
                Err(TakeError::Nif(e)) => return Err(e),
            }
        }
        Err(e) => Err(e),
    };
    send_fsync_reports(env);
    Ok(match done {
        Ok(()) => crate::ok().encode(env),
        Err(e) => error(env, &e),
    })
}

/// The process that turns the shared writer's fsync reports into telemetry events.
static FSYNC_REPORTER: parking_lot::Mutex<Option<LocalPid>> = parking_lot::Mutex::new(None);

/// One fsync's report, as sent: `(dir, kind, nanoseconds, records, bytes)`.
type FsyncMessage = (String, &'static str, u64, u64, u64);

/// Reports of fsyncs made on a scheduler thread (a `sync/1`, `close/1` or checkpoint runs
/// the last fsync itself), which cannot send from there without its own env: the NIF that
/// made them sends them before it returns (`send_fsync_reports`).
static PENDING_FSYNCS: parking_lot::Mutex<Vec<FsyncMessage>> = parking_lot::Mutex::new(Vec::new());

fn fsync_term<'a>(env: Env<'a>, (dir, kind, nanos, records, bytes): &FsyncMessage) -> Term<'a> {
    let fields = [
        atom(env, "strata_fsync"),
        dir.as_str().encode(env),
        atom(env, kind),
        nanos.encode(env),
        records.encode(env),
        bytes.encode(env),
    ];
    rustler::types::tuple::make_tuple(env, &fields)
}

/// Sends the fsync reports made on this scheduler thread (see `PENDING_FSYNCS`).
pub fn send_fsync_reports(env: Env) {
    let pending = std::mem::take(&mut *PENDING_FSYNCS.lock());
    if let (Some(pid), false) = (*FSYNC_REPORTER.lock(), pending.is_empty()) {
        for report in &pending {
            let _ = env.send(&pid, fsync_term(env, report));
        }
    }
}

/// Makes `pid` receive `{:strata_fsync, dir, kind, duration_ns, records, bytes}` after each
/// journal fsync (the last caller is the one that receives).
#[rustler::nif]
fn journal_report_fsyncs(pid: LocalPid) -> Atom {
    *FSYNC_REPORTER.lock() = Some(pid);
    journal::observe_fsyncs(Box::new(|report| {
        let Some(pid) = *FSYNC_REPORTER.lock() else {
            return;
        };
        let message: FsyncMessage = (
            report.dir.to_string_lossy().into_owned(),
            report.kind.name(),
            report.duration.as_nanos() as u64,
            report.records,
            report.bytes,
        );
        if rustler::thread::is_scheduler_thread() {
            PENDING_FSYNCS.lock().push(message);
            return;
        }
        let mut env = OwnedEnv::new();
        let _ = env.send_and_clear(&pid, |env| fsync_term(env, &message));
    }));
    crate::ok()
}
