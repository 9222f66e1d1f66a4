//! Opening a durable directory: the newest valid snapshot, then every record after it.
//!
//! A bad record (a header that fails its check, a length past the file, a payload that
//! fails its CRC) is a **torn tail** when no valid record follows it anywhere: not later in
//! its segment, not in any later segment. Then it and everything after it were never
//! acknowledged as durable by an fsync that completed, and recovery cuts them off. Any
//! valid record after the damage means acknowledged records would be lost: the directory is
//! refused as corrupt. The framing (see [`format`](super::format)) makes "a valid record"
//! something that neither payload bytes nor zeros can fake, and the search for one costs a
//! constant per byte, so this is decided exactly, in linear time.
//!
//! This covers every state a crash or a full disk can leave: a record cut by a crash; a
//! checkpoint that created the next segment (empty, or with a partial header) and then
//! failed, after which writes went on in the older one and the last of them was cut; a
//! power loss between a segment's creation and its first record.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::Path;
use std::sync::Arc;

use crate::codec::{DecodeError, Kind};
use crate::persist::Persist;

use super::files::{io_error, open_regular, read_snapshot_with, sync_dir, Links, ReadError};
use super::format::{self, HeaderError, SegmentHeader, RECORD_HEADER, SEGMENT_HEADER};
use super::writer::{Journal, Notify};
use super::{fault, list, segment_name, snapshot_name, write_atomically, StoreError, SyncMode};

/// What recovery did, for the caller to log.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// The snapshot generation recovery started from.
    pub snapshot: u64,
    /// Records replayed after it.
    pub replayed: u64,
    /// Snapshots set aside as `*.corrupt`, with the reason.
    pub set_aside: Vec<String>,
    /// A torn tail cut off: `(segment, offset, bytes cut)`.
    pub truncated: Option<(String, u64, u64)>,
}

/// Creates segment `gen` with a new header, durably (file and directory fsynced). Returns
/// the file, open for appending, and the segment's salt.
pub(super) fn create_segment(dir: &Path, kind: Kind, gen: u64) -> Result<(File, u32), StoreError> {
    let path = dir.join(segment_name(gen));
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_error("create", &path))?;
    let header = reset_segment(&file, &path, kind, gen)?;
    sync_dir(dir)?;
    Ok((file, header.salt))
}

/// Empties a segment file and writes a new header into it, fsynced.
fn reset_segment(
    file: &File,
    path: &Path,
    kind: Kind,
    gen: u64,
) -> Result<SegmentHeader, StoreError> {
    let header = SegmentHeader::new(kind, gen);
    file.set_len(0).map_err(io_error("truncate", path))?;
    fault::check("write", path)?;
    (&*file)
        .write_all(&header.to_bytes())
        .map_err(io_error("write", path))?;
    fault::check("fsync", path)?;
    file.sync_all().map_err(io_error("fsync", path))?;
    Ok(header)
}

/// One segment as recovery found it.
struct Segment {
    gen: u64,
    file: File,
    size: u64,
    /// `None` when the header is missing or damaged.
    header: Option<SegmentHeader>,
    /// A header that cannot be a failed creation (not short, not all zeros) yet is invalid.
    damaged_header: Option<String>,
}

fn open_segment(dir: &Path, kind: Kind, gen: u64) -> Result<Segment, StoreError> {
    let path = dir.join(segment_name(gen));
    let file = open_regular(&path, Links::Refuse, true)?;
    let size = file.metadata().map_err(io_error("stat", &path))?.len();
    let mut bytes = [0u8; SEGMENT_HEADER];
    let n = (size as usize).min(SEGMENT_HEADER);
    read_exact_at(&file, &mut bytes[..n], 0).map_err(io_error("read", &path))?;
    let (header, damaged_header) = match SegmentHeader::parse(&bytes[..n], kind, gen) {
        Ok(h) => (Some(h), None),
        Err(HeaderError::WrongKind(k)) => {
            return Err(StoreError::WrongKind(kind_name(k)));
        }
        Err(HeaderError::Damaged(why)) => {
            // Created but never fully written: a short or zero header holds no record.
            let unwritten = n < SEGMENT_HEADER || bytes.iter().all(|&b| b == 0);
            (
                None,
                (!unwritten).then(|| format!("{}: {why}", segment_name(gen))),
            )
        }
    };
    Ok(Segment {
        gen,
        file,
        size,
        header,
        damaged_header,
    })
}

fn read_exact_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, at)
}

fn kind_name(byte: u8) -> &'static str {
    Kind::from_byte(byte).map_or("structure of an unknown kind", Kind::name)
}

/// Replays the records of `seg` into `value` from the start; returns the offset of the
/// first bad record, if there is one.
fn replay_records<T: Persist>(
    dir: &Path,
    seg: &Segment,
    salt: u32,
    value: &mut T,
    report: &mut Report,
) -> Result<Option<u64>, StoreError> {
    let name = segment_name(seg.gen);
    let path = dir.join(&name);
    let mut reader = BufReader::with_capacity(1 << 20, &seg.file);
    let mut skip = [0u8; SEGMENT_HEADER];
    reader
        .read_exact(&mut skip)
        .map_err(io_error("read", &path))?;
    let mut at = SEGMENT_HEADER as u64;
    let mut head = [0u8; RECORD_HEADER];
    let mut payload = Vec::new();
    while at < seg.size {
        if seg.size - at < RECORD_HEADER as u64 {
            return Ok(Some(at));
        }
        reader
            .read_exact(&mut head)
            .map_err(io_error("read", &path))?;
        let Some(len) = format::header_len(salt, &head) else {
            return Ok(Some(at));
        };
        if len as u64 > seg.size - at - RECORD_HEADER as u64 {
            return Ok(Some(at));
        }
        payload.resize(len, 0);
        reader
            .read_exact(&mut payload)
            .map_err(io_error("read", &path))?;
        if !format::payload_ok(salt, &head, &payload) {
            return Ok(Some(at));
        }
        value
            .replay(&payload)
            .map_err(|e| StoreError::Corrupt(format!("{name}: record at offset {at}: {e}")))?;
        report.replayed += 1;
        at += (RECORD_HEADER + len) as u64;
    }
    Ok(None)
}

/// Whether any valid record is in `seg` at or after `from`.
fn holds_record_after(dir: &Path, seg: &Segment, from: u64) -> Result<bool, StoreError> {
    match seg.header {
        Some(h) => format::any_record_after(&seg.file, h.salt, from, seg.size)
            .map_err(io_error("read", &dir.join(segment_name(seg.gen)))),
        None => Ok(false),
    }
}

/// Replays every segment in order, cutting a torn tail. Returns the segment the journal
/// appends to next (its file and salt).
fn replay_all<T: Persist>(
    dir: &Path,
    kind: Kind,
    segments: Vec<Segment>,
    value: &mut T,
    report: &mut Report,
) -> Result<(u64, File, u32), StoreError> {
    if let Some(why) = segments.iter().find_map(|s| s.damaged_header.clone()) {
        return Err(StoreError::Corrupt(why));
    }
    let mut torn: Option<(usize, u64)> = None;
    for (i, seg) in segments.iter().enumerate() {
        let Some(header) = seg.header else {
            // Never written: holds nothing; every later segment must hold nothing too.
            torn = Some((i, 0));
            break;
        };
        if let Some(at) = replay_records(dir, seg, header.salt, value, report)? {
            torn = Some((i, at));
            break;
        }
    }
    if let Some((i, at)) = torn {
        let seg = &segments[i];
        let name = segment_name(seg.gen);
        let mut later = holds_record_after(dir, seg, at.max(SEGMENT_HEADER as u64) + 1)?;
        for next in &segments[i + 1..] {
            later = later || holds_record_after(dir, next, SEGMENT_HEADER as u64)?;
        }
        if later {
            return Err(StoreError::Corrupt(format!(
                "{}: {name}: damaged record at offset {at}, with valid records after it",
                dir.display()
            )));
        }
        // A torn tail: cut it, and empty any later segment (none holds a record).
        let path = dir.join(&name);
        if seg.header.is_some() {
            fault::check("truncate", &path)?;
            seg.file.set_len(at).map_err(io_error("truncate", &path))?;
            seg.file.sync_all().map_err(io_error("fsync", &path))?;
        } else {
            reset_segment(&seg.file, &path, kind, seg.gen)?;
        }
        report.truncated = Some((name, at, seg.size - at));
        for next in &segments[i + 1..] {
            let path = dir.join(segment_name(next.gen));
            if next.header.is_none() || next.size > SEGMENT_HEADER as u64 {
                reset_segment(&next.file, &path, kind, next.gen)?;
            }
        }
    }
    let Some(last) = segments.last() else {
        return Err(StoreError::Corrupt("no segment".into()));
    };
    let path = dir.join(segment_name(last.gen));
    // Read the header again: it may have just been rewritten.
    let mut bytes = [0u8; SEGMENT_HEADER];
    read_exact_at(&last.file, &mut bytes, 0).map_err(io_error("read", &path))?;
    let header = SegmentHeader::parse(&bytes, kind, last.gen)
        .map_err(|e| StoreError::Corrupt(format!("{}: {e:?}", segment_name(last.gen))))?;
    let file = OpenOptions::new()
        .append(true)
        .read(true)
        .custom_flags_nofollow()
        .open(&path)
        .map_err(io_error("open", &path))?;
    Ok((last.gen, file, header.salt))
}

trait NoFollow {
    fn custom_flags_nofollow(&mut self) -> &mut Self;
}

impl NoFollow for OpenOptions {
    fn custom_flags_nofollow(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NOFOLLOW)
    }
}

/// Opens the durable structure in `dir`, creating it with `fresh()` if the directory holds
/// none, and recovering it otherwise: the newest snapshot that passes its checks (damaged
/// ones are renamed `*.corrupt`) and every record after it. Fails with
/// [`StoreError::Corrupt`] when nothing valid remains, never with an empty structure, and
/// with [`StoreError::WrongKind`], touching nothing, when the directory holds another kind
/// of structure. The directory's lock is released on every failure.
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
        .custom_flags_nofollow()
        .open(&lock_path)
        .map_err(io_error("open", &lock_path))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => return Err(StoreError::Locked(dir.to_path_buf())),
        Err(fs::TryLockError::Error(e)) => return Err(io_error("lock", &lock_path)(e)),
    }
    // Dropping `lock` on any early return below releases the directory.
    let (value, report, gen, file, salt) = recover::<T>(dir, fresh)?;
    let journal = Journal::start(dir, T::KIND, mode, gen, Arc::new(file), salt, notify, lock)?;
    Ok((value, journal, report))
}

type Recovered<T> = (T, Report, u64, File, u32);

fn recover<T: Persist>(dir: &Path, fresh: impl FnOnce() -> T) -> Result<Recovered<T>, StoreError> {
    let found = list(dir)?;
    let mut report = Report::default();
    if found.snapshots.is_empty() && found.segments.is_empty() && found.corrupt.is_empty() {
        let value = fresh();
        write_atomically(&dir.join(snapshot_name(0)), &value.dump())?;
        let (file, salt) = create_segment(dir, T::KIND, 0)?;
        return Ok((value, report, 0, file, salt));
    }
    // Every segment's kind first: a directory of another kind is refused untouched.
    for &gen in &found.segments {
        open_segment(dir, T::KIND, gen)?;
    }
    let mut chosen = None;
    let mut aside = Vec::new();
    for &gen in found.snapshots.iter().rev() {
        let name = snapshot_name(gen);
        match read_snapshot_with::<T>(&dir.join(&name), Links::Refuse) {
            Ok(value) => {
                chosen = Some((value, gen));
                break;
            }
            Err(ReadError::Io(e)) => return Err(e),
            Err(ReadError::Decode(DecodeError::WrongKind { found, .. })) => {
                return Err(StoreError::WrongKind(kind_name(found)));
            }
            Err(ReadError::Decode(e)) => aside.push((name, e)),
        }
    }
    let mut reasons = Vec::new();
    for (name, e) in aside {
        let path = dir.join(&name);
        let to = dir.join(format!("{name}.corrupt"));
        fs::rename(&path, &to).map_err(io_error("rename", &path))?;
        sync_dir(dir)?;
        report.set_aside.push(format!("{name}: {e}"));
        reasons.push(format!("{name}: {e}"));
    }
    let Some((mut value, base)) = chosen else {
        if reasons.is_empty() {
            reasons.push("no snapshot left (earlier ones were set aside as *.corrupt)".into());
        }
        return Err(StoreError::Corrupt(format!(
            "{}: no valid snapshot: {}",
            dir.display(),
            reasons.join("; ")
        )));
    };
    report.snapshot = base;
    let gens: Vec<u64> = found
        .segments
        .iter()
        .copied()
        .filter(|&g| g >= base)
        .collect();
    for (i, &gen) in gens.iter().enumerate() {
        if gen != base + i as u64 {
            return Err(StoreError::Corrupt(format!(
                "{}: {} is missing",
                dir.display(),
                segment_name(base + i as u64)
            )));
        }
    }
    if gens.is_empty() {
        let (file, salt) = create_segment(dir, T::KIND, base)?;
        return Ok((value, report, base, file, salt));
    }
    let segments = gens
        .iter()
        .map(|&g| open_segment(dir, T::KIND, g))
        .collect::<Result<Vec<_>, _>>()?;
    let (gen, file, salt) = replay_all(dir, T::KIND, segments, &mut value, &mut report)?;
    Ok((value, report, gen, file, salt))
}

/// Replays segments `from..to` (all closed) onto `value`, for a checkpoint built from the
/// files; any bad record is an error (nothing is cut: the segments are not the tail).
pub(super) fn replay_closed<T: Persist>(
    dir: &Path,
    kind: Kind,
    from: u64,
    to: u64,
    value: &mut T,
) -> Result<(), StoreError> {
    let mut report = Report::default();
    for gen in from..to {
        let seg = open_segment(dir, kind, gen)?;
        let Some(header) = seg.header else {
            return Err(StoreError::Corrupt(format!(
                "{}: no header",
                segment_name(gen)
            )));
        };
        if let Some(at) = replay_records(dir, &seg, header.salt, value, &mut report)? {
            return Err(StoreError::Corrupt(format!(
                "{}: bad record at offset {at}",
                segment_name(gen)
            )));
        }
    }
    Ok(())
}
