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
//! The concerns, one file each: [`format`] (segment and record bytes, the scan after
//! damage), [`files`] (atomic replacement, capped reads of regular files only),
//! [`recover`] (opening a directory: snapshot, replay, torn tails) and [`writer`] (the
//! journal that appends, writes, fsyncs and acknowledges).
//!
//! A record is appended to the journal's buffer before the mutation it describes is
//! applied; the journal's own thread writes the buffer to the file as records arrive and
//! fsyncs it when writers wait for that (group commit), every interval, or at close, so no
//! scheduler thread ever waits on the file system. After any failed write or fsync the
//! journal refuses further records (a failed fsync is not retried).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod fault;
pub mod files;
pub mod format;
pub mod pool;
pub mod recover;
pub mod writer;

pub use files::{read_snapshot, write_atomically, ReadError};
pub use recover::{open, Report};
pub use writer::{observe_fsyncs, FsyncReport, Journal, Notify};

use files::io_error;

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

/// When appended records are forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// fsync before a write is acknowledged; concurrent writers share one fsync.
    Always,
    /// fsync every interval; a write is acknowledged once it is in the journal's buffer,
    /// which its thread hands to the OS as records arrive.
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
    /// The directory holds another kind of structure (named): nothing in it was touched.
    WrongKind(&'static str),
    /// A path that had to be a regular file is not (a device, a FIFO, a directory).
    NotRegularFile(PathBuf),
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
            StoreError::WrongKind(kind) => write!(f, "the directory holds a {kind}"),
            StoreError::NotRegularFile(path) => {
                write!(f, "{} is not a regular file", path.display())
            }
        }
    }
}

pub(crate) fn snapshot_name(gen: u64) -> String {
    format!("snap-{gen:016x}.snap")
}

pub(crate) fn segment_name(gen: u64) -> String {
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
pub(crate) struct Listing {
    pub snapshots: Vec<u64>,
    pub segments: Vec<u64>,
    pub corrupt: Vec<u64>,
}

pub(crate) fn list(dir: &Path) -> Result<Listing, StoreError> {
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

#[cfg(test)]
mod tests;
