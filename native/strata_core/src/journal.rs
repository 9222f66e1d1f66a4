//! The durable tier: snapshot files written atomically, a write-through journal with group
//! commit, and recovery that survives torn writes and corrupt snapshots.
//!
//! A durable structure lives in a directory:
//!
//! ```text
//! LOCK                      held (flock) while the structure is open
//! snap-<gen>.snap           snapshots, newest two kept
//! log-<gen>.wal             journal segments; log-N holds the records after snap-N
//! snap-<gen>.snap.corrupt   snapshots that failed their checks, set aside
//! ```
//!
//! Generations are 16 hex digits. A checkpoint at generation N+1 first starts segment N+1
//! (records from then on go there), then writes `snap-(N+1)` from the state at that moment;
//! only once it is durable are snapshots older than N and segments older than N removed. So
//! recovery from `snap-K` replays `log-K, log-(K+1), ...`, and when the newest snapshot is
//! damaged the previous one and a longer log are still there.
//!
//! A segment is a 32-byte header (magic, version, kind, generation, CRC32C) and records, each
//! `len: u32, crc: u32, payload`, the CRC32C covering the length and payload. A record is
//! appended to the journal's buffer before the mutation it describes is applied; the
//! journal's own thread writes the buffer to the file as records arrive and fsyncs it when
//! writers wait for that (group commit), every interval, or at close, so no scheduler thread
//! ever waits on the file system. After any failed write or fsync the journal refuses
//! further records (a failed fsync is not retried).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::codec::{self, DecodeError, Kind};
use crate::persist::Persist;

/// Largest journal record accepted (a bulk op is split by the caller below it).
pub const MAX_RECORD: usize = 64 << 20;
/// Largest snapshot file read when the machine's memory is unknown.
const MAX_SNAPSHOT: u64 = 1 << 40;

/// Largest snapshot file read: the machine's physical memory (a bigger file cannot be a
/// snapshot this machine wrote and could load), from `/proc/meminfo` where there is one.
pub fn snapshot_cap() -> u64 {
    static CAP: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *CAP.get_or_init(|| {
        fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|info| {
                let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
                let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                kib.checked_mul(1024)
            })
            .unwrap_or(MAX_SNAPSHOT)
    })
}
const SEGMENT_MAGIC: [u8; 8] = *b"\x89STRLOG\n";
const SEGMENT_HEADER: usize = 32;
const RECORD_HEADER: usize = 8;

/// When appended records are forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// fsync before a write is acknowledged; concurrent writers share one fsync.
    Always,
    /// fsync every interval; a write is acknowledged once it is in the OS.
    Interval(Duration),
    /// fsync only at checkpoints and close.
    Never,
}

/// Why a durable operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// An I/O error: what was being done, the path, the OS error number if any.
    Io {
        doing: &'static str,
        path: PathBuf,
        errno: Option<i32>,
        message: String,
    },
    /// Bytes that fail their checks; the message says which file and why.
    Corrupt(String),
    /// Another open structure holds the directory.
    Locked(PathBuf),
    /// An earlier write or fsync of this journal failed; it takes no more records.
    Failed(String),
    /// The structure was closed.
    Closed,
    /// A single record larger than [`MAX_RECORD`].
    RecordTooLarge(usize),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Io {
                doing,
                path,
                message,
                ..
            } => write!(f, "{doing} {}: {message}", path.display()),
            StoreError::Corrupt(why) => write!(f, "corrupt: {why}"),
            StoreError::Locked(dir) => write!(f, "{} is open elsewhere", dir.display()),
            StoreError::Failed(why) => write!(f, "journal failed earlier: {why}"),
            StoreError::Closed => write!(f, "closed"),
            StoreError::RecordTooLarge(n) => write!(f, "record of {n} bytes is too large"),
        }
    }
}

fn io_error<'a>(doing: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |e| StoreError::Io {
        doing,
        path: path.to_path_buf(),
        errno: e.raw_os_error(),
        message: e.to_string(),
    }
}

/// fsyncs a directory, making renames and creations in it durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("fsync directory", dir))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, written and
/// fsynced, renamed over `path`, then the directory fsynced. On any failure the temporary
/// file is removed and `path` is as it was (or, if only the last fsync failed, replaced but
/// not known to be durable: an error all the same).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = parent(path);
    let name = path
        .file_name()
        .map_or_else(|| "snapshot".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io_error("create", &tmp))?;
        file.write_all(bytes).map_err(io_error("write", &tmp))?;
        file.sync_all().map_err(io_error("fsync", &tmp))?;
        drop(file);
        fs::rename(&tmp, path).map_err(io_error("rename", path))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads and checks a snapshot file. A file larger than [`snapshot_cap`] is refused before
/// anything is read; the length in its header is then checked against its real size.
pub fn read_snapshot<T: Persist>(path: &Path) -> Result<T, ReadError> {
    let size = fs::metadata(path)
        .map_err(io_error("stat", path))
        .map_err(ReadError::Io)?
        .len();
    if size > snapshot_cap() {
        return Err(ReadError::Decode(DecodeError::TooLarge {
            length: size,
            limit: snapshot_cap(),
        }));
    }
    let bytes = fs::read(path)
        .map_err(io_error("read", path))
        .map_err(ReadError::Io)?;
    T::load(&bytes).map_err(ReadError::Decode)
}

/// Why a snapshot file could not be read: the file system, or its contents.
#[derive(Debug)]
pub enum ReadError {
    Io(StoreError),
    Decode(DecodeError),
}

fn snapshot_name(gen: u64) -> String {
    format!("snap-{gen:016x}.snap")
}

fn segment_name(gen: u64) -> String {
    format!("log-{gen:016x}.wal")
}

fn parse_gen(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let hex = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// The generations found in a directory.
#[derive(Debug, Default)]
struct Listing {
    snapshots: Vec<u64>,
    segments: Vec<u64>,
    corrupt: Vec<u64>,
}

fn list(dir: &Path) -> Result<Listing, StoreError> {
    let mut found = Listing::default();
    for entry in fs::read_dir(dir).map_err(io_error("list", dir))? {
        let entry = entry.map_err(io_error("list", dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(gen) = parse_gen(&name, "snap-", ".snap") {
            found.snapshots.push(gen);
        } else if let Some(gen) = parse_gen(&name, "log-", ".wal") {
            found.segments.push(gen);
        } else if let Some(gen) = parse_gen(&name, "snap-", ".snap.corrupt") {
            found.corrupt.push(gen);
        } else if name.starts_with(".snap-") && name.contains(".tmp-") {
            // A save that never completed.
            let _ = fs::remove_file(entry.path());
        }
    }
    found.snapshots.sort_unstable();
    found.segments.sort_unstable();
    Ok(found)
}

/// The header of journal segment `gen` of a `kind` of structure.
pub fn segment_header(kind: Kind, gen: u64) -> [u8; SEGMENT_HEADER] {
    let mut h = [0u8; SEGMENT_HEADER];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..10].copy_from_slice(&codec::VERSION.to_le_bytes());
    h[10] = kind as u8;
    h[16..24].copy_from_slice(&gen.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

fn check_segment_header(h: &[u8], kind: Kind, gen: u64) -> Result<(), String> {
    if h[0..8] != SEGMENT_MAGIC {
        return Err("not a Strata journal segment (bad magic)".into());
    }
    let crc = u32::from_le_bytes([h[28], h[29], h[30], h[31]]);
    if crc != crc32c::crc32c(&h[0..28]) {
        return Err("segment header checksum mismatch".into());
    }
    if h[..SEGMENT_HEADER] != segment_header(kind, gen) {
        return Err(format!(
            "segment header is not version {}, kind {}, generation {gen}",
            codec::VERSION,
            kind.name()
        ));
    }
    Ok(())
}

/// Creates segment `gen` with its header, durably (file and directory fsynced).
fn create_segment(dir: &Path, kind: Kind, gen: u64) -> Result<File, StoreError> {
    let path = dir.join(segment_name(gen));
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_error("create", &path))?;
    file.set_len(0).map_err(io_error("truncate", &path))?;
    file.write_all(&segment_header(kind, gen))
        .map_err(io_error("write", &path))?;
    file.sync_all().map_err(io_error("fsync", &path))?;
    sync_dir(dir)?;
    Ok(file)
}

/// A record framed for the log: length, CRC32C of length and payload, payload.
pub fn frame(record: &[u8], out: &mut Vec<u8>) {
    let len = (record.len() as u32).to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len), record);
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(record);
}

/// The record starting at `bytes[0]`, if a whole valid one is there.
fn valid_record(bytes: &[u8]) -> Option<&[u8]> {
    let header = bytes.get(..RECORD_HEADER)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_RECORD {
        return None;
    }
    let payload = bytes.get(RECORD_HEADER..RECORD_HEADER + len)?;
    let computed = crc32c::crc32c_append(crc32c::crc32c(&header[0..4]), payload);
    (computed == crc).then_some(payload)
}

/// What recovery did, for the caller to log.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// The snapshot generation recovery started from.
    pub snapshot: u64,
    /// Records replayed after it.
    pub replayed: u64,
    /// Snapshots set aside as `*.corrupt`, with the reason.
    pub set_aside: Vec<String>,
    /// A torn last record cut off: `(segment, offset, bytes cut)`.
    pub truncated: Option<(String, u64, u64)>,
}

/// Replays one segment into `value`. Returns the length it ends at (shorter than the file
/// when a torn tail was cut, which only the last segment may have).
fn replay_segment<T: Persist>(
    dir: &Path,
    kind: Kind,
    gen: u64,
    last: bool,
    value: &mut T,
    report: &mut Report,
) -> Result<u64, StoreError> {
    let name = segment_name(gen);
    let path = dir.join(&name);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io_error("open", &path))?;
    let size = file.metadata().map_err(io_error("stat", &path))?.len();
    if size < SEGMENT_HEADER as u64 {
        if !last {
            return Err(StoreError::Corrupt(format!("{name}: header cut short")));
        }
        // Created but its header never fully written: start it again.
        file.set_len(0).map_err(io_error("truncate", &path))?;
        file.write_all(&segment_header(kind, gen))
            .map_err(io_error("write", &path))?;
        file.sync_all().map_err(io_error("fsync", &path))?;
        return Ok(SEGMENT_HEADER as u64);
    }
    let mut reader = io::BufReader::with_capacity(1 << 20, &file);
    let mut header = [0u8; SEGMENT_HEADER];
    reader
        .read_exact(&mut header)
        .map_err(io_error("read", &path))?;
    check_segment_header(&header, kind, gen)
        .map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))?;
    let mut at = SEGMENT_HEADER as u64;
    let mut payload = Vec::new();
    loop {
        if at == size {
            return Ok(at);
        }
        let mut rec = [0u8; RECORD_HEADER];
        let whole = size - at >= RECORD_HEADER as u64 && reader.read_exact(&mut rec).is_ok() && {
            let len = u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]) as u64;
            len <= MAX_RECORD as u64 && len <= size - at - RECORD_HEADER as u64 && {
                payload.resize(len as usize, 0);
                reader.read_exact(&mut payload).is_ok()
            }
        };
        let valid = whole && {
            let crc = u32::from_le_bytes([rec[4], rec[5], rec[6], rec[7]]);
            crc == crc32c::crc32c_append(crc32c::crc32c(&rec[0..4]), &payload)
        };
        if !valid {
            drop(reader);
            return torn_tail(&mut file, &path, &name, at, size, last, report);
        }
        value
            .replay(&payload)
            .map_err(|e| StoreError::Corrupt(format!("{name}: record at offset {at}: {e}")))?;
        report.replayed += 1;
        at += (RECORD_HEADER + payload.len()) as u64;
    }
}

/// A bad record at `at`: a torn tail (cut it off) if this is the last segment and no valid
/// record follows it anywhere; corruption otherwise (records after it would be lost).
fn torn_tail(
    file: &mut File,
    path: &Path,
    name: &str,
    at: u64,
    size: u64,
    last: bool,
    report: &mut Report,
) -> Result<u64, StoreError> {
    let mut rest = Vec::new();
    file.seek(SeekFrom::Start(at))
        .and_then(|_| file.read_to_end(&mut rest))
        .map_err(io_error("read", path))?;
    let later = (1..rest.len()).find(|&i| valid_record(&rest[i..]).is_some());
    if !last || later.is_some() {
        return Err(StoreError::Corrupt(format!(
            "{name}: damaged record at offset {at} with {} more bytes of log after it",
            size - at
        )));
    }
    file.set_len(at).map_err(io_error("truncate", path))?;
    file.sync_all().map_err(io_error("fsync", path))?;
    report.truncated = Some((name.to_string(), at, size - at));
    Ok(at)
}

/// Where records go, under the journal's writer lock.
struct Writer {
    file: Option<Arc<File>>,
    gen: u64,
    /// Segments replaced by a checkpoint and not yet fsynced.
    retired: Vec<Arc<File>>,
    failed: Option<StoreError>,
    /// Framed records appended and not yet written to the file (the journal's thread writes
    /// them, so that no scheduler thread ever waits on the file system).
    pending: Vec<u8>,
}

/// Pending bytes past which writers are made to wait for the journal's thread (with any
/// sync mode), so that a disk slower than the writers cannot make the buffer grow without
/// bound.
const BACKLOG: usize = 16 << 20;
/// How long the journal's thread sleeps when idle before it looks for work again (a wake-up
/// it missed costs at most this).
const IDLE: Duration = Duration::from_millis(5);

struct Waiters<W> {
    list: Vec<(u64, W)>,
    closing: bool,
}

/// Called from the journal's thread with the waiters whose writes are now durable (or
/// whose fsync failed).
pub type Notify<W> = Box<dyn Fn(Vec<W>, Result<(), StoreError>) + Send + Sync>;

struct Inner<W> {
    dir: PathBuf,
    kind: Kind,
    mode: SyncMode,
    writer: Mutex<Writer>,
    /// Serialises writes and fsyncs: records reach the files in the order they were
    /// appended, and `synced` never runs ahead of a retired segment's fsync.
    syncing: Mutex<()>,
    /// Serialises checkpoints (each starts the next segment).
    checkpoints: Mutex<()>,
    /// Records appended (the sequence number of the last one).
    written: AtomicU64,
    /// Records written to the OS.
    flushed: AtomicU64,
    /// Records fsynced.
    synced: AtomicU64,
    waiters: Mutex<Waiters<W>>,
    wake: Condvar,
    notify: Notify<W>,
    /// The directory's lock, held until the journal is closed or dropped.
    lock: Mutex<Option<File>>,
}

/// An open journal. Dropping it asks its thread to make everything durable and stop.
pub struct Journal<W: Send + 'static> {
    inner: Arc<Inner<W>>,
    thread: Mutex<Option<thread::JoinHandle<()>>>,
}

impl<W: Send + 'static> Journal<W> {
    /// Appends one record to the journal's buffer, which its thread writes to the file at
    /// once (and fsyncs as the sync mode says). Never touches the file system itself, so it
    /// is safe on a normal scheduler. Returns the record's sequence number.
    pub fn append(&self, record: &[u8]) -> Result<u64, StoreError> {
        if record.len() > MAX_RECORD {
            return Err(StoreError::RecordTooLarge(record.len()));
        }
        let mut w = self.inner.writer.lock();
        if let Some(e) = &w.failed {
            return Err(e.clone());
        }
        if w.file.is_none() {
            return Err(StoreError::Closed);
        }
        let first = w.pending.is_empty();
        frame(record, &mut w.pending);
        let seq = self.inner.written.fetch_add(1, Ordering::SeqCst) + 1;
        drop(w);
        if first {
            self.inner.wake.notify_one();
        }
        Ok(seq)
    }

    /// Whether everything appended so far is as durable as the sync mode promises: `Some`
    /// at once, or `None` after queueing `waiter`, which is notified when it is. With
    /// `Interval` and `Never` that is at once, unless the buffer holds more than `BACKLOG`
    /// bytes: then the writer waits until its records are written and fsynced.
    pub fn acknowledge(&self, waiter: W) -> Option<Result<(), StoreError>> {
        if self.inner.mode != SyncMode::Always && self.inner.writer.lock().pending.len() < BACKLOG {
            return Some(Ok(()));
        }
        let target = self.inner.written.load(Ordering::SeqCst);
        if self.inner.synced.load(Ordering::SeqCst) >= target {
            return Some(Ok(()));
        }
        let mut waiters = self.inner.waiters.lock();
        if let Some(e) = &self.inner.writer.lock().failed {
            return Some(Err(e.clone()));
        }
        if waiters.closing {
            return Some(Err(StoreError::Closed));
        }
        waiters.list.push((target, waiter));
        self.inner.wake.notify_one();
        None
    }

    /// Writes and fsyncs everything appended so far.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.inner.flush(true)
    }

    /// Holds off other checkpoints of this journal (hold it across [`Journal::rotate`] and
    /// [`Journal::checkpoint`]; [`Journal::checkpoint_from_log`] takes it itself).
    pub fn exclusive(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.inner.checkpoints.lock()
    }

    /// A checkpoint that never holds up writers: starts the next segment, then builds the
    /// snapshot from the files alone (the newest readable snapshot plus every record after
    /// it, all in segments now closed), in a second copy of the structure. Returns `false`,
    /// having written nothing, when those files cannot be read back: the caller then takes
    /// the snapshot from the live structure instead.
    pub fn checkpoint_from_log<T: Persist>(&self) -> Result<bool, StoreError> {
        // Background work: one thread, leaving the other cores to the VM's schedulers.
        codec::serially(|| self.rebuild_snapshot::<T>())
    }

    fn rebuild_snapshot<T: Persist>(&self) -> Result<bool, StoreError> {
        let _one = self.exclusive();
        let gen = self.rotate()?;
        let dir = &self.inner.dir;
        let found = list(dir)?;
        let base = found
            .snapshots
            .iter()
            .rev()
            .filter(|&&g| g < gen)
            .find_map(|&g| {
                read_snapshot::<T>(&dir.join(snapshot_name(g)))
                    .ok()
                    .map(|v| (g, v))
            });
        let Some((from, mut value)) = base else {
            return Ok(false);
        };
        let mut report = Report::default();
        for g in from..gen {
            if replay_segment(dir, T::KIND, g, false, &mut value, &mut report).is_err() {
                return Ok(false);
            }
        }
        let bytes = value.dump();
        drop(value);
        self.checkpoint(gen, &bytes)?;
        Ok(true)
    }

    /// Starts the next segment, for a checkpoint: call it while no record can be appended
    /// (under the structure's lock), right after taking the state to snapshot. The new
    /// segment's file is made durable first. Returns its generation.
    pub fn rotate(&self) -> Result<u64, StoreError> {
        let gen = {
            let w = self.inner.writer.lock();
            if let Some(e) = &w.failed {
                return Err(e.clone());
            }
            if w.file.is_none() {
                return Err(StoreError::Closed);
            }
            w.gen + 1
        };
        let file = create_segment(&self.inner.dir, self.inner.kind, gen)?;
        // Records appended before the switch belong to the old segment: write them there.
        let _serial = self.inner.syncing.lock();
        let (old, batch) = {
            let mut w = self.inner.writer.lock();
            let batch = std::mem::take(&mut w.pending);
            let old = w.file.replace(Arc::new(file));
            w.gen = gen;
            (old, batch)
        };
        if let Some(old) = old {
            self.inner.write_out(&old, &batch, gen - 1)?;
            self.inner.writer.lock().retired.push(old);
        }
        Ok(gen)
    }

    /// Finishes a checkpoint begun with [`Journal::rotate`]: writes the snapshot of
    /// generation `gen`, makes the older segments durable, then removes the files no
    /// recovery needs (all but the newest two snapshots and the segments since the older).
    pub fn checkpoint(&self, gen: u64, snapshot: &[u8]) -> Result<(), StoreError> {
        let dir = &self.inner.dir;
        write_atomically(&dir.join(snapshot_name(gen)), snapshot)?;
        self.sync()?;
        let found = list(dir)?;
        let keep_from = match found.snapshots.len() {
            0 | 1 => return Ok(()),
            n => found.snapshots[n - 2],
        };
        for &g in found.snapshots.iter().filter(|&&g| g < keep_from) {
            let _ = fs::remove_file(dir.join(snapshot_name(g)));
        }
        for &g in found.segments.iter().filter(|&&g| g < keep_from) {
            let _ = fs::remove_file(dir.join(segment_name(g)));
        }
        sync_dir(dir)
    }

    /// Makes everything durable, stops the thread and releases the directory. Later
    /// appends fail with [`StoreError::Closed`].
    pub fn close(&self) -> Result<(), StoreError> {
        let result = self.inner.flush(true);
        self.inner.writer.lock().file = None;
        self.inner.waiters.lock().closing = true;
        self.inner.wake.notify_all();
        if let Some(handle) = self.thread.lock().take() {
            let _ = handle.join();
        }
        self.inner.lock.lock().take();
        match result {
            Err(StoreError::Closed) => Ok(()),
            other => other,
        }
    }
}

impl<W: Send + 'static> Drop for Journal<W> {
    fn drop(&mut self) {
        // Not joined: a destructor must not wait for an fsync. The thread syncs and exits.
        self.inner.waiters.lock().closing = true;
        self.inner.wake.notify_all();
    }
}

impl<W: Send + 'static> Inner<W> {
    /// Writes the pending records to the current segment and, with `fsync`, fsyncs it and
    /// any retired segment. Marks the journal failed on any error (never retried).
    fn flush(&self, fsync: bool) -> Result<(), StoreError> {
        let _serial = self.syncing.lock();
        let (batch, file, gen, retired, target) = {
            let mut w = self.writer.lock();
            if let Some(e) = &w.failed {
                return Err(e.clone());
            }
            let target = self.written.load(Ordering::SeqCst);
            let batch = std::mem::take(&mut w.pending);
            let retired = if fsync {
                std::mem::take(&mut w.retired)
            } else {
                Vec::new()
            };
            (batch, w.file.clone(), w.gen, retired, target)
        };
        match &file {
            Some(f) => self.write_out(f, &batch, gen)?,
            None if batch.is_empty() && !retired.is_empty() => {}
            None => return Err(StoreError::Closed),
        }
        self.flushed.fetch_max(target, Ordering::SeqCst);
        if fsync {
            for f in retired.iter().chain(file.as_ref()) {
                if let Err(e) = f.sync_data() {
                    return Err(self.fail(io_error("fsync", &self.dir)(e)));
                }
            }
            self.synced.fetch_max(target, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Writes framed records to segment `gen` (under `syncing`).
    fn write_out(&self, file: &File, batch: &[u8], gen: u64) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut f = file;
        f.write_all(batch).map_err(|e| {
            let path = self.dir.join(segment_name(gen));
            self.fail(io_error("append to", &path)(e))
        })
    }

    /// Records that the journal failed; returns the error.
    fn fail(&self, error: StoreError) -> StoreError {
        self.writer.lock().failed = Some(StoreError::Failed(error.to_string()));
        error
    }

    /// The journal's thread: writes appended records to the file as they come, and fsyncs
    /// when writers wait for it (group commit: one fsync for every writer that arrived
    /// meanwhile), every interval, or at close.
    fn run(self: Arc<Self>) {
        let mut last_sync = std::time::Instant::now();
        loop {
            let (closing, waiting) = {
                let mut waiters = self.waiters.lock();
                let idle =
                    self.written.load(Ordering::SeqCst) == self.flushed.load(Ordering::SeqCst);
                if idle && waiters.list.is_empty() && !waiters.closing {
                    let nap = match self.mode {
                        SyncMode::Interval(every) => every.min(IDLE),
                        _ => IDLE,
                    };
                    self.wake.wait_for(&mut waiters, nap);
                }
                (waiters.closing, !waiters.list.is_empty())
            };
            let unsynced = self.written.load(Ordering::SeqCst) > self.synced.load(Ordering::SeqCst);
            let due = match self.mode {
                SyncMode::Interval(every) => unsynced && last_sync.elapsed() >= every,
                _ => false,
            };
            let fsync = closing || due || (waiting && unsynced);
            let unwritten =
                self.written.load(Ordering::SeqCst) > self.flushed.load(Ordering::SeqCst);
            let result = if fsync || unwritten {
                self.flush(fsync)
            } else {
                Ok(())
            };
            if fsync {
                last_sync = std::time::Instant::now();
            }
            let (done, failed): (Vec<W>, Vec<W>) = {
                let mut waiters = self.waiters.lock();
                let synced = self.synced.load(Ordering::SeqCst);
                let all = std::mem::take(&mut waiters.list);
                let (done, rest): (Vec<_>, Vec<_>) =
                    all.into_iter().partition(|(target, _)| *target <= synced);
                let (failed, rest): (Vec<_>, Vec<_>) =
                    rest.into_iter().partition(|_| result.is_err() || closing);
                waiters.list = rest;
                let strip = |v: Vec<(u64, W)>| v.into_iter().map(|(_, w)| w).collect();
                (strip(done), strip(failed))
            };
            if !done.is_empty() {
                (self.notify)(done, Ok(()));
            }
            if !failed.is_empty() {
                (self.notify)(failed, Err(result.err().unwrap_or(StoreError::Closed)));
            }
            if closing {
                self.lock.lock().take();
                return;
            }
        }
    }
}

/// Opens the durable structure in `dir`, creating it with `fresh()` if the directory holds
/// none, and recovering it otherwise: the newest snapshot that passes its checks (damaged
/// ones are renamed `*.corrupt`) and every record after it. Fails with
/// [`StoreError::Corrupt`] when nothing valid remains, never with an empty structure.
pub fn open<T: Persist, W: Send + 'static>(
    dir: &Path,
    mode: SyncMode,
    fresh: impl FnOnce() -> T,
    notify: Notify<W>,
) -> Result<(T, Journal<W>, Report), StoreError> {
    fs::create_dir_all(dir).map_err(io_error("create", dir))?;
    let lock_path = dir.join("LOCK");
    let lock = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(io_error("open", &lock_path))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => return Err(StoreError::Locked(dir.to_path_buf())),
        Err(fs::TryLockError::Error(e)) => return Err(io_error("lock", &lock_path)(e)),
    }
    let found = list(dir)?;
    let mut report = Report::default();
    let (value, base) =
        if found.snapshots.is_empty() && found.segments.is_empty() && found.corrupt.is_empty() {
            let value = fresh();
            write_atomically(&dir.join(snapshot_name(0)), &value.dump())?;
            (value, 0)
        } else {
            let mut chosen = None;
            let mut reasons = Vec::new();
            for &gen in found.snapshots.iter().rev() {
                let name = snapshot_name(gen);
                let path = dir.join(&name);
                match read_snapshot::<T>(&path) {
                    Ok(value) => {
                        chosen = Some((value, gen));
                        break;
                    }
                    Err(ReadError::Io(e)) => return Err(e),
                    Err(ReadError::Decode(e)) => {
                        let aside = dir.join(format!("{name}.corrupt"));
                        fs::rename(&path, &aside).map_err(io_error("rename", &path))?;
                        sync_dir(dir)?;
                        report.set_aside.push(format!("{name}: {e}"));
                        reasons.push(format!("{name}: {e}"));
                    }
                }
            }
            let Some(chosen) = chosen else {
                if reasons.is_empty() {
                    reasons
                        .push("no snapshot left (earlier ones were set aside as *.corrupt)".into());
                }
                return Err(StoreError::Corrupt(format!(
                    "{}: no valid snapshot: {}",
                    dir.display(),
                    reasons.join("; ")
                )));
            };
            chosen
        };
    report.snapshot = base;
    let mut value = value;
    let segments: Vec<u64> = found
        .segments
        .iter()
        .copied()
        .filter(|&g| g >= base)
        .collect();
    for (i, &gen) in segments.iter().enumerate() {
        if gen != base + i as u64 {
            return Err(StoreError::Corrupt(format!(
                "{}: {} is missing",
                dir.display(),
                segment_name(base + i as u64)
            )));
        }
    }
    let mut current = base;
    for (i, &gen) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        replay_segment(dir, T::KIND, gen, last, &mut value, &mut report)?;
        current = gen;
    }
    let file = if segments.is_empty() {
        create_segment(dir, T::KIND, base)?
    } else {
        let path = dir.join(segment_name(current));
        OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_error("open", &path))?
    };
    let inner = Arc::new(Inner {
        dir: dir.to_path_buf(),
        kind: T::KIND,
        mode,
        writer: Mutex::new(Writer {
            file: Some(Arc::new(file)),
            gen: current,
            retired: Vec::new(),
            failed: None,
            pending: Vec::new(),
        }),
        syncing: Mutex::new(()),
        checkpoints: Mutex::new(()),
        written: AtomicU64::new(0),
        flushed: AtomicU64::new(0),
        synced: AtomicU64::new(0),
        waiters: Mutex::new(Waiters {
            list: Vec::new(),
            closing: false,
        }),
        wake: Condvar::new(),
        notify,
        lock: Mutex::new(Some(lock)),
    });
    let runner = inner.clone();
    let handle = thread::Builder::new()
        .name("strata-journal".into())
        .spawn(move || runner.run())
        .map_err(io_error("start the journal thread for", dir))?;
    let journal = Journal {
        inner,
        thread: Mutex::new(Some(handle)),
    };
    Ok((value, journal, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::SetOp;
    use crate::sorted_set::SortedSet;
    use crate::term::Term;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("strata-journal-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    type J = Journal<u32>;

    fn open_set(dir: &Path) -> Result<(SortedSet, J, Report), StoreError> {
        open(
            dir,
            SyncMode::Always,
            || SortedSet::new(8, 0),
            Box::new(|_, _| {}),
        )
    }

    fn add(set: &mut SortedSet, journal: &J, i: i64) {
        let mut rec = Vec::new();
        SetOp::Add(&Term::Int(i)).encode(&mut rec);
        journal.append(&rec).unwrap();
        set.insert(Term::Int(i));
    }

    fn ints(set: &SortedSet) -> Vec<String> {
        set.iter().map(|t| format!("{t:?}")).collect()
    }

    #[test]
    fn recovers_snapshot_and_log_across_checkpoints() {
        let dir = scratch("checkpoints");
        let (mut set, journal, _) = open_set(&dir).unwrap();
        assert!(matches!(open_set(&dir), Err(StoreError::Locked(_))));
        for i in 0..100 {
            add(&mut set, &journal, i);
            if i % 30 == 29 {
                let gen = journal.rotate().unwrap();
                journal.checkpoint(gen, &set.dump()).unwrap();
            }
        }
        journal.close().unwrap();
        let (back, journal, report) = open_set(&dir).unwrap();
        assert_eq!(ints(&back), ints(&set));
        assert_eq!((report.snapshot, report.replayed), (3, 10));
        let found = list(&dir).unwrap();
        assert_eq!(found.snapshots, vec![2, 3]);
        assert_eq!(found.segments, vec![2, 3]);
        journal.close().unwrap();

        // The newest snapshot damaged: set aside, the previous one plus a longer log.
        let newest = dir.join(snapshot_name(3));
        let mut bytes = fs::read(&newest).unwrap();
        bytes[40] ^= 1;
        fs::write(&newest, bytes).unwrap();
        let (back, journal, report) = open_set(&dir).unwrap();
        assert_eq!(ints(&back), ints(&set));
        assert_eq!((report.snapshot, report.replayed), (2, 40));
        assert_eq!(report.set_aside.len(), 1);
        assert!(dir.join("snap-0000000000000003.snap.corrupt").exists());
        journal.close().unwrap();

        // Both damaged: an error, never an empty set.
        let older = dir.join(snapshot_name(2));
        fs::write(&older, b"junk").unwrap();
        assert!(matches!(open_set(&dir), Err(StoreError::Corrupt(_))));
        assert!(matches!(open_set(&dir), Err(StoreError::Corrupt(_))));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn torn_tails_are_cut_and_damage_before_the_tail_is_refused() {
        let dir = scratch("torn");
        let (mut set, journal, _) = open_set(&dir).unwrap();
        for i in 0..20 {
            add(&mut set, &journal, i);
        }
        journal.close().unwrap();
        let log = dir.join(segment_name(0));
        let whole = fs::read(&log).unwrap();
        let record = (whole.len() - SEGMENT_HEADER) / 20;
        // Every cut inside the last record recovers the first 19 records.
        for cut in 1..record {
            fs::write(&log, &whole[..whole.len() - cut]).unwrap();
            let (back, journal, report) = open_set(&dir).unwrap();
            assert_eq!(back.len(), 19, "cut {cut}");
            assert!(report.truncated.is_some());
            journal.close().unwrap();
            assert_eq!(fs::read(&log).unwrap().len(), whole.len() - record);
        }
        // A flipped byte in an earlier record: records after it would be lost, so refuse.
        let mut bad = whole.clone();
        bad[SEGMENT_HEADER + record + 3] ^= 0x40;
        fs::write(&log, &bad).unwrap();
        assert!(matches!(open_set(&dir), Err(StoreError::Corrupt(_))));
        // A forged huge length in the last record: a torn tail, no allocation of 2^32.
        let mut forged = whole.clone();
        let last = whole.len() - record;
        forged[last..last + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        fs::write(&log, &forged).unwrap();
        let (back, journal, _) = open_set(&dir).unwrap();
        assert_eq!(back.len(), 19);
        journal.close().unwrap();
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn group_commit_acknowledges_waiters() {
        let dir = scratch("group");
        let (tx, rx) = std::sync::mpsc::channel::<(Vec<u32>, bool)>();
        let tx = Mutex::new(tx);
        let (_, journal, _): (SortedSet, Journal<u32>, _) = open(
            &dir,
            SyncMode::Always,
            || SortedSet::new(8, 0),
            Box::new(move |ws, r| {
                let _ = tx.lock().send((ws, r.is_ok()));
            }),
        )
        .unwrap();
        let journal = Arc::new(journal);
        let threads: Vec<_> = (0..8u32)
            .map(|t| {
                let journal = journal.clone();
                thread::spawn(move || {
                    for i in 0..50u32 {
                        let mut rec = Vec::new();
                        SetOp::Add(&Term::Int(i64::from(t * 1000 + i))).encode(&mut rec);
                        journal.append(&rec).unwrap();
                        if journal.acknowledge(t * 1000 + i).is_some() {
                            continue;
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        journal.sync().unwrap();
        journal.close().unwrap();
        let acked: usize = rx
            .try_iter()
            .map(|(ws, ok)| {
                assert!(ok);
                ws.len()
            })
            .sum();
        assert!(acked <= 400);
        let (back, j, _) = open_set(&dir).unwrap();
        assert_eq!(back.len(), 400);
        j.close().unwrap();
        let _ = fs::remove_dir_all(&dir);
    }
}
