//! Files of the durable tier: atomic replacement, and reads that take only regular files
//! and never more bytes than the cap.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::codec::DecodeError;
use crate::persist::Persist;

use super::{snapshot_cap, StoreError};

pub(super) fn io_error<'a>(
    doing: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |e| StoreError::Io {
        doing,
        path: path.to_path_buf(),
        errno: e.raw_os_error(),
        message: e.to_string(),
    }
}

/// fsyncs a directory, making renames and creations in it durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
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
        super::fault::check("write", &tmp)?;
        file.write_all(bytes).map_err(io_error("write", &tmp))?;
        super::fault::check("fsync", &tmp)?;
        file.sync_all().map_err(io_error("fsync", &tmp))?;
        drop(file);
        super::fault::check("rename", path)?;
        fs::rename(&tmp, path).map_err(io_error("rename", path))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// How a file is opened for reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// A path the caller named: a symbolic link to a regular file is followed.
    Follow,
    /// A file of a durable directory: a symbolic link is refused (`ELOOP`).
    Refuse,
}

/// Opens `path` for reading only if it is a regular file: never blocks on a FIFO (opened
/// non-blocking, then checked), never opens a device for reading.
pub fn open_regular(path: &Path, links: Links, write: bool) -> Result<File, StoreError> {
    let mut flags = libc::O_NONBLOCK;
    if links == Links::Refuse {
        flags |= libc::O_NOFOLLOW;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(flags)
        .open(path)
        .map_err(io_error("open", path))?;
    let meta = file.metadata().map_err(io_error("stat", path))?;
    if !meta.is_file() {
        return Err(StoreError::NotRegularFile(path.to_path_buf()));
    }
    Ok(file)
}

/// Reads a whole regular file of at most `cap` bytes; a longer one is refused before it is
/// read, and a file that grows while read is never read past the cap.
pub fn read_capped(path: &Path, links: Links, cap: u64) -> Result<Vec<u8>, ReadError> {
    let file = open_regular(path, links, false).map_err(ReadError::Io)?;
    let size = file
        .metadata()
        .map_err(io_error("stat", path))
        .map_err(ReadError::Io)?
        .len();
    if size > cap {
        return Err(ReadError::Decode(DecodeError::TooLarge {
            length: size,
            limit: cap,
        }));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error("read", path))
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > cap {
        return Err(ReadError::Decode(DecodeError::TooLarge {
            length: bytes.len() as u64,
            limit: cap,
        }));
    }
    Ok(bytes)
}

/// Reads and checks a snapshot file the caller named (see [`read_capped`]; the cap is
/// [`snapshot_cap`]).
pub fn read_snapshot<T: Persist>(path: &Path) -> Result<T, ReadError> {
    read_snapshot_with(path, Links::Follow)
}

pub(super) fn read_snapshot_with<T: Persist>(path: &Path, links: Links) -> Result<T, ReadError> {
    let bytes = read_capped(path, links, snapshot_cap())?;
    T::load(&bytes).map_err(ReadError::Decode)
}

/// Why a snapshot file could not be read: the file system, or its contents.
#[derive(Debug)]
pub enum ReadError {
    Io(StoreError),
    Decode(DecodeError),
}
