//! The journal's tests: recovery across checkpoints, torn tails against damage, group
//! commit, close racing writers, directories of another kind, files that are not regular,
//! and every injected I/O failure.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;

use parking_lot::Mutex;

use super::format::{frame, SegmentHeader, RECORD_HEADER, SEGMENT_HEADER};
use super::*;
use crate::codec::Kind;
use crate::op::{Encode, SetOp};
use crate::persist::Persist;
use crate::sorted_set::SortedSet;
use crate::term::Term;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("strata-journal-{name}-{}", std::process::id()));
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
    SetOp::Add(Term::Int(i)).encode(&mut rec);
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
                    SetOp::Add(Term::Int(i64::from(t * 1000 + i))).encode(&mut rec);
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

/// The records of a segment file, as (offset, length) pairs, read with its own salt.
fn records_of(path: &Path) -> Vec<(usize, usize)> {
    let bytes = fs::read(path).unwrap();
    let salt = u32::from_le_bytes(bytes[24..28].try_into().unwrap());
    let mut at = SEGMENT_HEADER;
    let mut out = Vec::new();
    while let Some(len) = format::header_len(salt, &bytes[at..]) {
        out.push((at, len));
        at += RECORD_HEADER + len;
    }
    out
}

#[test]
fn a_cut_whose_lost_bytes_are_zeros_is_a_torn_tail() {
    let dir = scratch("zeros");
    let (mut set, journal, _) = open_set(&dir).unwrap();
    for i in 0..10 {
        add(&mut set, &journal, i);
    }
    journal.close().unwrap();
    let log = dir.join(segment_name(0));
    let mut bytes = fs::read(&log).unwrap();
    let (last, _) = *records_of(&log).last().unwrap();
    // The last record's bytes replaced by zeros (a write the disk never made), then more
    // zeros, as a file extended but never written leaves it: no valid frame among them.
    for b in &mut bytes[last..] {
        *b = 0;
    }
    bytes.extend([0u8; 64]);
    fs::write(&log, &bytes).unwrap();
    let (back, journal, report) = open_set(&dir).unwrap();
    assert_eq!(back.len(), 9);
    assert_eq!(report.truncated.as_ref().map(|t| t.1), Some(last as u64));
    journal.close().unwrap();
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_payload_holding_a_whole_record_cannot_pass_for_one() {
    // A stored binary that holds the exact bytes of a framed record (as a hostile user
    // could write), in the segment of a journal with another salt: after a cut inside it,
    // recovery still sees a torn tail, not "valid records after the damage".
    let dir = scratch("embedded");
    let (mut set, journal, _) = open_set(&dir).unwrap();
    let mut inner_rec = Vec::new();
    SetOp::Add(Term::Int(1)).encode(&mut inner_rec);
    let mut framed = Vec::new();
    frame(0x1234_5678, &inner_rec, &mut framed);
    let evil = Term::binary(&framed.repeat(50));
    let mut rec = Vec::new();
    SetOp::Add(evil.clone()).encode(&mut rec);
    journal.append(&rec).unwrap();
    set.insert(evil);
    journal.close().unwrap();
    let log = dir.join(segment_name(0));
    let bytes = fs::read(&log).unwrap();
    fs::write(&log, &bytes[..bytes.len() - 5]).unwrap();
    let (back, journal, report) = open_set(&dir).unwrap();
    assert_eq!(back.len(), 0);
    assert!(report.truncated.is_some());
    journal.close().unwrap();
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_torn_record_before_an_empty_newer_segment_is_a_torn_tail() {
    // A checkpoint that created the next segment and then failed (full disk, power loss):
    // writes went on in the older segment and its last record was cut.
    for newer in [0usize, 10, SEGMENT_HEADER] {
        let dir = scratch(&format!("empty-newer-{newer}"));
        let (mut set, journal, _) = open_set(&dir).unwrap();
        for i in 0..10 {
            add(&mut set, &journal, i);
        }
        journal.close().unwrap();
        let log = dir.join(segment_name(0));
        let bytes = fs::read(&log).unwrap();
        fs::write(&log, &bytes[..bytes.len() - 3]).unwrap();
        let header = SegmentHeader::new(Kind::SortedSet, 1).to_bytes();
        fs::write(dir.join(segment_name(1)), &header[..newer]).unwrap();
        let (mut back, journal, report) = open_set(&dir).unwrap();
        assert_eq!(back.len(), 9, "newer segment of {newer} bytes");
        assert!(report.truncated.is_some());
        // The journal goes on, and the next recovery holds what it was given.
        add(&mut back, &journal, 100);
        journal.close().unwrap();
        let (again, journal, _) = open_set(&dir).unwrap();
        assert_eq!(ints(&again), ints(&back));
        journal.close().unwrap();
        let _ = fs::remove_dir_all(&dir);
    }
}

#[test]
fn a_torn_record_before_a_newer_segment_with_records_is_damage() {
    let dir = scratch("torn-then-records");
    let (mut set, journal, _) = open_set(&dir).unwrap();
    for i in 0..10 {
        add(&mut set, &journal, i);
    }
    journal.rotate().unwrap();
    add(&mut set, &journal, 50);
    journal.close().unwrap();
    let log = dir.join(segment_name(0));
    let bytes = fs::read(&log).unwrap();
    fs::write(&log, &bytes[..bytes.len() - 3]).unwrap();
    assert!(matches!(open_set(&dir), Err(StoreError::Corrupt(_))));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn the_search_after_damage_is_linear() {
    // A tail crafted against the old framing: a record header at every offset announcing
    // a length up to the end of the file made each probe read the rest (quadratic: 16 MiB
    // took over 300 s). Headers here are checked on their own 12 bytes.
    let dir = scratch("linear");
    let (_, journal, _) = open_set(&dir).unwrap();
    journal.close().unwrap();
    let log = dir.join(segment_name(0));
    let mut bytes = fs::read(&log).unwrap();
    let n = 16 << 20;
    let mut tail = Vec::with_capacity(n);
    while tail.len() < n {
        let left = (n - tail.len()) as u32;
        tail.extend_from_slice(&left.to_le_bytes());
    }
    bytes.extend_from_slice(&tail);
    fs::write(&log, &bytes).unwrap();
    let began = std::time::Instant::now();
    let (back, journal, report) = open_set(&dir).unwrap();
    // A wide bound, for a stalled machine; linear takes well under a second.
    assert!(began.elapsed().as_secs() < 60, "{:?}", began.elapsed());
    assert_eq!(back.len(), 0);
    assert_eq!(report.truncated.as_ref().map(|t| t.2), Some(n as u64));
    journal.close().unwrap();
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn close_racing_writers_loses_nothing_acknowledged() {
    for mode in [
        SyncMode::Never,
        SyncMode::Interval(std::time::Duration::from_millis(5)),
        SyncMode::Always,
    ] {
        let dir = scratch(
            &format!("close-race-{mode:?}").replace([' ', '(', ')', '{', '}', ':', ','], ""),
        );
        let (_, journal, _) =
            open::<SortedSet, u32>(&dir, mode, || SortedSet::new(8, 0), Box::new(|_, _| {}))
                .unwrap();
        let journal = Arc::new(journal);
        let acked = Arc::new(Mutex::new(Vec::new()));
        let writers: Vec<_> = (0..8i64)
            .map(|t| {
                let (journal, acked) = (journal.clone(), acked.clone());
                thread::spawn(move || {
                    for i in 0.. {
                        let v = t * 1_000_000 + i;
                        let mut rec = Vec::new();
                        SetOp::Add(Term::Int(v)).encode(&mut rec);
                        if journal.append(&rec).is_err() {
                            return;
                        }
                        acked.lock().push(v);
                    }
                })
            })
            .collect();
        thread::sleep(std::time::Duration::from_millis(30));
        journal.close().unwrap();
        for w in writers {
            w.join().unwrap();
        }
        let acked = acked.lock().clone();
        assert!(!acked.is_empty());
        let (back, j, _) = open_set(&dir).unwrap();
        assert_eq!(back.len(), acked.len(), "{mode:?}");
        for v in acked {
            assert!(back.contains(&Term::Int(v)), "{mode:?}: {v} lost");
        }
        j.close().unwrap();
        let _ = fs::remove_dir_all(&dir);
    }
}

#[test]
fn a_directory_of_another_kind_is_refused_untouched() {
    let dir = scratch("other-kind");
    let (graph, journal, _) = open::<crate::FollowerMap, u32>(
        &dir,
        SyncMode::Always,
        crate::FollowerMap::new,
        Box::new(|_, _| {}),
    )
    .unwrap();
    drop(graph);
    let gen = journal.rotate().unwrap();
    journal
        .checkpoint(gen, &crate::FollowerMap::new().dump())
        .unwrap();
    journal.close().unwrap();
    let before: Vec<_> = list_names(&dir);
    assert_eq!(
        open_set(&dir).err(),
        Some(StoreError::WrongKind("follower_map"))
    );
    assert_eq!(list_names(&dir), before);
    // Only snapshots (no segment) of another kind: refused too.
    for seg in list(&dir).unwrap().segments {
        fs::remove_file(dir.join(segment_name(seg))).unwrap();
    }
    assert_eq!(
        open_set(&dir).err(),
        Some(StoreError::WrongKind("follower_map"))
    );
    assert!(list(&dir).unwrap().corrupt.is_empty());
    // The rightful owner opens it.
    let (_, j, _) = open::<crate::FollowerMap, u32>(
        &dir,
        SyncMode::Always,
        crate::FollowerMap::new,
        Box::new(|_, _| {}),
    )
    .unwrap();
    j.close().unwrap();
    let _ = fs::remove_dir_all(&dir);
}

fn list_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn only_regular_files_are_read_and_never_past_the_cap() {
    // A device reads forever; a FIFO blocks its reader: both refused before a read.
    for path in ["/dev/zero", "/dev/null"] {
        assert!(matches!(
            read_snapshot::<SortedSet>(Path::new(path)),
            Err(ReadError::Io(StoreError::NotRegularFile(_)))
        ));
    }
    let dir = scratch("fifo");
    fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("pipe");
    let c = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert!(matches!(
        read_snapshot::<SortedSet>(&fifo),
        Err(ReadError::Io(StoreError::NotRegularFile(_)))
    ));
    // A capped read of a file longer than the cap reads nothing.
    let long = dir.join("long");
    fs::write(&long, vec![1u8; 1000]).unwrap();
    assert!(matches!(
        files::read_capped(&long, files::Links::Follow, 999),
        Err(ReadError::Decode(
            crate::codec::DecodeError::TooLarge { .. }
        ))
    ));
    let _ = fs::remove_dir_all(&dir);

    // In a durable directory, a symbolic link is not followed.
    let dir = scratch("symlink");
    let (mut set, journal, _) = open_set(&dir).unwrap();
    add(&mut set, &journal, 1);
    journal.close().unwrap();
    let elsewhere = scratch("symlink-target");
    fs::create_dir_all(&elsewhere).unwrap();
    let target = elsewhere.join("snap");
    fs::write(&target, SortedSet::new(8, 0).dump()).unwrap();
    let snap = dir.join(snapshot_name(0));
    fs::remove_file(&snap).unwrap();
    std::os::unix::fs::symlink(&target, &snap).unwrap();
    assert!(matches!(
        open_set(&dir),
        Err(StoreError::Io {
            errno: Some(libc::ELOOP),
            ..
        })
    ));
    // Refused, not set aside: the link is still there.
    assert!(fs::symlink_metadata(&snap)
        .unwrap()
        .file_type()
        .is_symlink());
    let _ = fs::remove_dir_all(&dir);
    let _ = fs::remove_dir_all(&elsewhere);
}

#[test]
fn a_failed_open_releases_the_lock() {
    let dir = scratch("failed-open");
    let (_, journal, _) = open_set(&dir).unwrap();
    journal.close().unwrap();
    fs::write(dir.join(snapshot_name(0)), b"junk").unwrap();
    assert!(matches!(open_set(&dir), Err(StoreError::Corrupt(_))));
    assert!(matches!(open_set(&dir), Err(StoreError::Corrupt(_))));
    let _ = fs::remove_dir_all(&dir);
}

/// Drives one injected failure: `ops` adds with a checkpoint in the middle, the fault armed
/// at the `nth` `step`; returns what was acknowledged. After it, reopening must succeed and
/// hold every acknowledged add.
fn with_fault(step: &'static str, nth: u64, errno: i32) -> bool {
    let dir = scratch(&format!("fault-{step}-{nth}-{errno}"));
    let (mut set, journal, _) = open_set(&dir).unwrap();
    fault::arm(&dir, step, nth, errno);
    let mut acked = Vec::new();
    for i in 0..40 {
        let mut rec = Vec::new();
        SetOp::Add(Term::Int(i)).encode(&mut rec);
        if journal.append(&rec).is_err() {
            break;
        }
        set.insert(Term::Int(i));
        if journal.sync().is_ok() {
            acked.push(i);
        } else {
            break;
        }
        if i == 20 {
            let _one = journal.exclusive();
            if let Ok(gen) = journal.rotate() {
                let _ = journal.checkpoint(gen, &set.dump());
            }
        }
    }
    let _ = journal.close();
    let fired = !fault::disarm(&dir);
    let (back, j, _) = open_set(&dir).unwrap_or_else(|e| panic!("{step} #{nth}: {e}"));
    for v in &acked {
        assert!(back.contains(&Term::Int(*v)), "{step} #{nth}: {v} lost");
    }
    assert!(back.len() >= acked.len());
    j.close().unwrap();
    let _ = fs::remove_dir_all(&dir);
    fired
}

#[test]
fn every_injected_io_failure_leaves_a_recoverable_directory() {
    for step in ["append", "fsync", "write", "rename", "truncate"] {
        for nth in [1, 2, 3, 5, 8, 21, 22, 23, 30] {
            for errno in [libc::EIO, libc::ENOSPC] {
                let fired = with_fault(step, nth, errno);
                // Every step is met at least once in the run (truncate only in recovery).
                assert!(
                    fired || nth > 1 || step == "truncate",
                    "{step} #{nth} never met"
                );
            }
        }
    }
}

/// A journal on another device is acknowledged on time while the journals of a slow disk
/// (every fsync 1.5 s) keep workers busy: they never take more than half of them.
#[test]
fn a_slow_disk_does_not_hold_up_the_journals_of_another() {
    use std::os::unix::fs::MetadataExt;
    use std::time::{Duration, Instant};
    let slow_root = scratch("slow-disk");
    let fast_root = PathBuf::from("/dev/shm").join(format!("strata-fast-{}", std::process::id()));
    fs::create_dir_all(&slow_root).unwrap();
    if fs::create_dir_all(&fast_root).is_err()
        || fs::metadata(&fast_root).unwrap().dev() == fs::metadata(&slow_root).unwrap().dev()
    {
        eprintln!("skipped: no second file system (/dev/shm) to put the fast journal on");
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel::<(u32, Instant)>();
    let tx = Mutex::new(tx);
    let notify = move || -> Notify<u32> {
        let tx = Mutex::new(tx.lock().clone());
        Box::new(move |ws, _| {
            for w in ws {
                let _ = tx.lock().send((w, Instant::now()));
            }
        })
    };
    let open_in = |dir: PathBuf| -> J {
        let (_, j, _): (SortedSet, J, _) =
            open(&dir, SyncMode::Always, || SortedSet::new(8, 0), notify()).unwrap();
        j
    };
    let slow: Vec<J> = (0..2 * pool::workers())
        .map(|i| open_in(slow_root.join(i.to_string())))
        .collect();
    let fast = open_in(fast_root.join("0"));
    fault::slow(&slow_root, "fsync", Duration::from_millis(1500));
    let mut rec = Vec::new();
    SetOp::Add(Term::Int(1)).encode(&mut rec);
    for (i, j) in slow.iter().enumerate() {
        j.append(&rec).unwrap();
        assert!(j.acknowledge(i as u32).is_none());
    }
    thread::sleep(Duration::from_millis(100)); // the slow fsyncs are under way
    let asked = Instant::now();
    fast.append(&rec).unwrap();
    assert!(fast.acknowledge(999).is_none());
    let waited = loop {
        let (w, at) = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        if w == 999 {
            break at - asked;
        }
    };
    fault::disarm(&slow_root);
    assert!(
        waited < Duration::from_millis(700),
        "the fast journal waited {waited:?} behind the slow disk"
    );
    for j in slow.iter().chain([&fast]) {
        j.close().unwrap();
    }
    let _ = fs::remove_dir_all(&slow_root);
    let _ = fs::remove_dir_all(&fast_root);
}
