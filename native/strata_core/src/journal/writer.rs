//! The journal of one durable structure: records appended to a buffer by writers (never
//! touching the file system on their thread), written and fsynced by the journal's own
//! thread, and acknowledged as each sync mode promises.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::codec::{self, Kind};
use crate::persist::Persist;

use super::files::{io_error, read_snapshot_with, sync_dir, Links};
use super::format::frame;
use super::recover::{create_segment, replay_closed};
use super::MAX_RECORD;
use super::{
    fault, list, pool, segment_name, snapshot_name, write_atomically, StoreError, SyncMode,
};

/// Where records go, under the journal's writer lock.
struct Writer {
    file: Option<Arc<File>>,
    gen: u64,
    /// The current segment's salt, which every record's framing uses.
    salt: u32,
    /// Set first thing by `close`: from then on appends fail, so that nothing can be
    /// appended after close has taken the last batch.
    closed: bool,
    /// Segments replaced by a checkpoint and not yet fsynced.
    retired: Vec<Arc<File>>,
    /// Records appended to a segment before a checkpoint replaced it, not yet written to it
    /// (the next flush writes them first, so `flushed` never counts them early).
    unwritten: Option<Unwritten>,
    failed: Option<StoreError>,
    /// Framed records appended and not yet written to the file (the journal's thread writes
    /// them, so that no scheduler thread ever waits on the file system).
    pending: Vec<u8>,
}

/// What one fsync of a journal made durable (see [`observe_fsyncs`]).
#[derive(Debug, Clone, Copy)]
pub struct FsyncReport<'a> {
    pub dir: &'a Path,
    pub kind: Kind,
    pub duration: std::time::Duration,
    /// Records made durable by this fsync.
    pub records: u64,
    /// Bytes written since the previous fsync.
    pub bytes: u64,
}

type Observer = Box<dyn Fn(&FsyncReport) + Send + Sync>;

static OBSERVER: std::sync::OnceLock<Observer> = std::sync::OnceLock::new();

/// Installs the process-wide observer of journal fsyncs (telemetry): called on the writer
/// thread after each successful fsync. Only the first call installs one; returns whether it
/// did.
pub fn observe_fsyncs(observer: Observer) -> bool {
    OBSERVER.set(observer).is_ok()
}

/// The last records of a replaced segment (`file` is `None` when it was closed while idle).
struct Unwritten {
    gen: u64,
    file: Option<Arc<File>>,
    batch: Vec<u8>,
}

/// A segment created for the next checkpoint, not yet in use ([`Journal::switch_to`]).
pub struct NextSegment {
    gen: u64,
    file: File,
    salt: u32,
}

/// Pending bytes past which writers are made to wait for the journal's thread (with any
/// sync mode), so that a disk slower than the writers cannot make the buffer grow without
/// bound.
const BACKLOG: usize = 16 << 20;
/// With `Interval` and `Never`, how long records may wait in the buffer before the shared
/// writer hands them to the OS (so that the records of that moment go in one write).
const WRITE_DELAY: std::time::Duration = std::time::Duration::from_millis(1);

struct Waiters<W> {
    list: Vec<(u64, W)>,
    closing: bool,
}

/// Called from the journal's thread with the waiters whose writes are now durable (or
/// whose fsync failed).
pub type Notify<W> = Box<dyn Fn(Vec<W>, Result<(), StoreError>) + Send + Sync>;

struct Inner<W> {
    dir: PathBuf,
    /// The device the directory is on (the shared writer serves each device's journals on
    /// at most half its workers).
    device: u64,
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
    /// Bytes written since the last fsync (for [`FsyncReport`]).
    unsynced_bytes: AtomicU64,
    waiters: Mutex<Waiters<W>>,
    /// The shared writer's scheduling state of this journal.
    slot: pool::Slot,
    /// When the last fsync was made (interval mode).
    last_sync: Mutex<std::time::Instant>,
    notify: Notify<W>,
    /// The directory's lock, held until the journal is closed or dropped.
    lock: Mutex<Option<File>>,
    /// Signalled when a closing pass has released `lock`.
    released: parking_lot::Condvar,
}

/// An open journal. Dropping it asks its thread to make everything durable and stop.
pub struct Journal<W: Send + 'static> {
    inner: Arc<Inner<W>>,
}

impl<W: Send + 'static> Journal<W> {
    /// Starts the journal of a recovered directory: records go to segment `gen` (`file`,
    /// open for appending, with `salt`); `lock` is the directory's lock, held until close.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start(
        dir: &Path,
        kind: Kind,
        mode: SyncMode,
        gen: u64,
        file: Arc<File>,
        salt: u32,
        notify: Notify<W>,
        lock: File,
    ) -> Result<Journal<W>, StoreError> {
        use std::os::unix::fs::MetadataExt;
        let device = fs::metadata(dir).map_or(0, |m| m.dev());
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            device,
            kind,
            mode,
            writer: Mutex::new(Writer {
                file: Some(file),
                gen,
                salt,
                closed: false,
                retired: Vec::new(),
                unwritten: None,
                failed: None,
                pending: Vec::new(),
            }),
            syncing: Mutex::new(()),
            checkpoints: Mutex::new(()),
            written: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            unsynced_bytes: AtomicU64::new(0),
            waiters: Mutex::new(Waiters {
                list: Vec::new(),
                closing: false,
            }),
            slot: pool::Slot::default(),
            last_sync: Mutex::new(std::time::Instant::now()),
            notify,
            lock: Mutex::new(Some(lock)),
            released: parking_lot::Condvar::new(),
        });
        Ok(Journal { inner })
    }

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
        if w.closed {
            return Err(StoreError::Closed);
        }
        let first = w.pending.is_empty();
        let salt = w.salt;
        frame(salt, record, &mut w.pending);
        let seq = self.inner.written.fetch_add(1, Ordering::SeqCst) + 1;
        drop(w);
        if first {
            match self.inner.mode {
                // Writers wait for the fsync: the shared writer starts at once.
                SyncMode::Always => pool::schedule(self.inner.clone()),
                // Nobody waits: the records of the next moment go to the OS in one write.
                _ => {
                    let job: Arc<dyn pool::Service> = self.inner.clone();
                    pool::arm(
                        &job,
                        std::time::Instant::now() + WRITE_DELAY,
                        pool::Due::Write,
                    );
                }
            }
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
        drop(waiters);
        pool::schedule(self.inner.clone());
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
                read_snapshot_with::<T>(&dir.join(snapshot_name(g)), Links::Refuse)
                    .ok()
                    .map(|v| (g, v))
            });
        let Some((from, mut value)) = base else {
            return Ok(false);
        };
        if replay_closed(dir, T::KIND, from, gen, &mut value).is_err() {
            return Ok(false);
        }
        let bytes = value.dump();
        drop(value);
        self.checkpoint(gen, &bytes)?;
        Ok(true)
    }

    /// Starts the next segment, for a checkpoint: [`Journal::next_segment`], then
    /// [`Journal::switch_to`] it, then writes what the old one still had to take. Returns
    /// the new generation.
    pub fn rotate(&self) -> Result<u64, StoreError> {
        let next = self.next_segment()?;
        let gen = self.switch_to(next)?;
        self.inner.flush(false)?;
        Ok(gen)
    }

    /// Creates (and makes durable) the segment that the next [`Journal::switch_to`] starts:
    /// the file system work of a rotation, done before the structure's lock is taken. Hold
    /// [`Journal::exclusive`] from here to the switch.
    pub fn next_segment(&self) -> Result<NextSegment, StoreError> {
        let gen = {
            let w = self.inner.writer.lock();
            if let Some(e) = &w.failed {
                return Err(e.clone());
            }
            if w.closed {
                return Err(StoreError::Closed);
            }
            w.gen + 1
        };
        let (file, salt) = create_segment(&self.inner.dir, self.inner.kind, gen)?;
        Ok(NextSegment { gen, file, salt })
    }

    /// Makes `next` the segment records go to, in `O(1)` and touching no file: call it while
    /// no record can be appended (under the structure's lock), right before taking the state
    /// to snapshot, so that the snapshot holds exactly the records of the segments before
    /// it. Records appended to the old segment and not yet written go to it with the next
    /// flush. Returns the new generation.
    pub fn switch_to(&self, next: NextSegment) -> Result<u64, StoreError> {
        let mut w = self.inner.writer.lock();
        if let Some(e) = &w.failed {
            return Err(e.clone());
        }
        if w.closed {
            return Err(StoreError::Closed);
        }
        if next.gen != w.gen + 1 {
            return Err(StoreError::Failed(format!(
                "segment {} prepared while {} was current",
                next.gen, w.gen
            )));
        }
        let batch = std::mem::take(&mut w.pending);
        let old = w.file.replace(Arc::new(next.file));
        if w.unwritten.is_some() {
            // Only with two rotations between flushes, which `exclusive` rules out.
            return Err(self
                .inner
                .fail_locked(&mut w, "rotated twice before a flush"));
        }
        w.unwritten = Some(Unwritten {
            gen: w.gen,
            file: old,
            batch,
        });
        w.gen = next.gen;
        w.salt = next.salt;
        Ok(next.gen)
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
        // No append may slip in after the last batch is taken: refuse them first.
        self.inner.writer.lock().closed = true;
        let result = self.inner.flush(true);
        self.inner.writer.lock().file = None;
        self.inner.waiters.lock().closing = true;
        // A last pass by the shared writer answers every waiter left (from its own thread:
        // a scheduler thread cannot send them messages) and releases the directory.
        pool::schedule(self.inner.clone());
        let mut lock = self.inner.lock.lock();
        while lock.is_some() {
            self.inner.released.wait(&mut lock);
        }
        drop(lock);
        match result {
            Err(StoreError::Closed) => Ok(()),
            other => other,
        }
    }
}

impl<W: Send + 'static> Drop for Journal<W> {
    fn drop(&mut self) {
        // A destructor must not wait for an fsync: the shared writer syncs and releases the
        // directory.
        self.inner.waiters.lock().closing = true;
        pool::schedule(self.inner.clone());
    }
}

impl<W: Send + 'static> Inner<W> {
    /// Writes the pending records to the current segment and, with `fsync`, fsyncs it and
    /// any retired segment. Marks the journal failed on any error (never retried).
    fn flush(&self, fsync: bool) -> Result<(), StoreError> {
        let _serial = self.syncing.lock();
        let (unwritten, batch, file, gen, target, closed) = {
            let mut w = self.writer.lock();
            if let Some(e) = &w.failed {
                return Err(e.clone());
            }
            let target = self.written.load(Ordering::SeqCst);
            let unwritten = w.unwritten.take();
            let batch = std::mem::take(&mut w.pending);
            (unwritten, batch, w.file.clone(), w.gen, target, w.closed)
        };
        // A replaced segment's last records go to it first, and it is fsynced with the
        // other retired segments.
        if let Some(old) = unwritten {
            let file = match old.file {
                Some(f) => Some(f),
                // Closed while idle (everything in it synced): reopened only for what is new.
                None if !old.batch.is_empty() => Some(self.reopen(old.gen)?),
                None => None,
            };
            if let Some(f) = file {
                self.write_out(&f, &old.batch, old.gen)?;
                self.writer.lock().retired.push(f);
            }
        }
        let retired = if fsync {
            std::mem::take(&mut self.writer.lock().retired)
        } else {
            Vec::new()
        };
        // A segment closed while idle is reopened when records come.
        let file = match file {
            None if !batch.is_empty() => {
                let f = self.reopen(gen)?;
                let mut w = self.writer.lock();
                if !w.closed && w.gen == gen {
                    w.file = Some(f.clone());
                }
                Some(f)
            }
            other => other,
        };
        match &file {
            Some(f) => self.write_out(f, &batch, gen)?,
            None if batch.is_empty() && !retired.is_empty() => {}
            None if closed => return Err(StoreError::Closed),
            // Closed while idle: nothing new to write, and all of it fsynced already.
            None => {}
        }
        self.flushed.fetch_max(target, Ordering::SeqCst);
        if fsync {
            let began = std::time::Instant::now();
            for f in retired.iter().chain(file.as_ref()) {
                if let Err(e) = fault::check("fsync", &self.dir) {
                    return Err(self.fail(e));
                }
                if let Err(e) = f.sync_data() {
                    return Err(self.fail(io_error("fsync", &self.dir)(e)));
                }
            }
            let before = self.synced.fetch_max(target, Ordering::SeqCst);
            let bytes = self.unsynced_bytes.swap(0, Ordering::SeqCst);
            if let (Some(observe), true) = (OBSERVER.get(), target > before || bytes > 0) {
                observe(&FsyncReport {
                    dir: &self.dir,
                    kind: self.kind,
                    duration: began.elapsed(),
                    records: target.saturating_sub(before),
                    bytes,
                });
            }
        }
        Ok(())
    }

    /// Writes framed records to segment `gen` (under `syncing`).
    fn write_out(&self, file: &File, batch: &[u8], gen: u64) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut f = file;
        let path = self.dir.join(segment_name(gen));
        if let Err(e) = fault::check("append", &path) {
            // As a real failure may: part of the batch reached the file.
            let _ = f.write_all(&batch[..batch.len() / 2]);
            return Err(self.fail(e));
        }
        f.write_all(batch)
            .map_err(|e| self.fail(io_error("append to", &path)(e)))?;
        self.unsynced_bytes
            .fetch_add(batch.len() as u64, Ordering::SeqCst);
        Ok(())
    }

    /// Opens segment `gen` again for appending (it was closed while idle).
    fn reopen(&self, gen: u64) -> Result<Arc<File>, StoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.dir.join(segment_name(gen));
        std::fs::OpenOptions::new()
            .append(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map(Arc::new)
            .map_err(|e| self.fail(io_error("open", &path)(e)))
    }

    /// Records that the journal failed; returns the error.
    fn fail(&self, error: StoreError) -> StoreError {
        self.writer.lock().failed = Some(StoreError::Failed(error.to_string()));
        error
    }

    /// [`Inner::fail`] with the writer lock held.
    fn fail_locked(&self, w: &mut Writer, why: &str) -> StoreError {
        let error = StoreError::Failed(why.to_string());
        w.failed = Some(error.clone());
        error
    }

    /// One pass of the shared writer over this journal: writes appended records to the
    /// file, and fsyncs when writers wait for it (group commit: one fsync for every writer
    /// that arrived meanwhile), when an interval fsync is due, or at close. Returns when the
    /// next interval fsync is due, if one is pending.
    fn serve(self: &Arc<Self>) -> Option<std::time::Instant> {
        let (closing, waiting) = {
            let waiters = self.waiters.lock();
            (waiters.closing, !waiters.list.is_empty())
        };
        let unsynced = self.written.load(Ordering::SeqCst) > self.synced.load(Ordering::SeqCst);
        let last_sync = *self.last_sync.lock();
        let due = match self.mode {
            SyncMode::Interval(every) => unsynced && last_sync.elapsed() >= every,
            _ => false,
        };
        let fsync = closing || due || (waiting && unsynced);
        let unwritten = self.written.load(Ordering::SeqCst) > self.flushed.load(Ordering::SeqCst);
        let result = if fsync || unwritten {
            self.flush(fsync)
        } else {
            Ok(())
        };
        if fsync {
            *self.last_sync.lock() = std::time::Instant::now();
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
            self.released.notify_all();
            return None;
        }
        {
            // Idle with everything fsynced: the segment's file is closed, so that an idle
            // journal holds one file (its directory's lock), not two. (Never with unsynced
            // data: an fsync through a later descriptor might not report a writeback error
            // that happened before it was opened.)
            let mut w = self.writer.lock();
            let synced = self.written.load(Ordering::SeqCst) == self.synced.load(Ordering::SeqCst);
            if synced && w.pending.is_empty() && w.retired.is_empty() && w.unwritten.is_none() {
                w.file = None;
            }
        }
        match self.mode {
            SyncMode::Interval(every)
                if self.written.load(Ordering::SeqCst) > self.synced.load(Ordering::SeqCst) =>
            {
                Some(*self.last_sync.lock() + every)
            }
            _ => None,
        }
    }
}

impl<W: Send + 'static> pool::Service for Inner<W> {
    fn slot(&self) -> &pool::Slot {
        &self.slot
    }

    fn device(&self) -> u64 {
        self.device
    }

    fn pass(self: Arc<Self>) -> Option<std::time::Instant> {
        self.serve()
    }
}
