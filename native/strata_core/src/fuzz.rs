//! Entry points for fuzzing every decoder of the durable tier. Each takes arbitrary bytes
//! and must return without panicking, and without allocating for a length it was not given
//! the bytes for. The cargo-fuzz targets in `native/fuzz` call these (nightly); the tests
//! below run them on stable over random and mutated inputs.

use std::path::PathBuf;

use crate::codec::{self, Kind};
use crate::follower_map::FollowerMap;
use crate::interner::Interner;
use crate::journal::{self, SyncMode};
use crate::member_list::MemberList;
use crate::persist::{Persist, TimelineState};
use crate::sorted_set::SortedSet;
use crate::term::Term;

/// Decodes a value and, when it is accepted, checks that it is whole: its own snapshot
/// decodes again to the same bytes.
fn load_and_check<T: Persist>(bytes: &[u8]) {
    if let Ok(value) = T::load(bytes) {
        let again = value.dump();
        let reloaded = T::load(&again);
        assert!(reloaded.is_ok(), "a loaded {:?} does not reload", T::KIND);
        assert_eq!(reloaded.map(|v| v.dump()).ok(), Some(again));
    }
}

/// `data` as a whole snapshot of each kind.
pub fn snapshot(data: &[u8]) {
    load_and_check::<SortedSet>(data);
    load_and_check::<FollowerMap>(data);
    load_and_check::<Interner>(data);
    load_and_check::<TimelineState>(data);
    load_and_check::<MemberList>(data);
}

/// `data` as the payload of each kind under a valid header and checksum, so that the
/// structural checks (not the checksum) are what must refuse it.
pub fn payload(data: &[u8]) {
    load_and_check::<SortedSet>(&codec::seal(Kind::SortedSet, |o| o.extend_from_slice(data)));
    if let Ok(set) = SortedSet::load(&codec::seal(Kind::SortedSet, |o| o.extend_from_slice(data))) {
        assert_eq!(set.check_invariants(), Ok(()));
    }
    load_and_check::<FollowerMap>(&codec::seal(Kind::FollowerMap, |o| {
        o.extend_from_slice(data)
    }));
    load_and_check::<Interner>(&codec::seal(Kind::Interner, |o| o.extend_from_slice(data)));
    load_and_check::<TimelineState>(&codec::seal(Kind::Timeline, |o| o.extend_from_slice(data)));
    load_and_check::<MemberList>(&codec::seal(Kind::MemberList, |o| {
        o.extend_from_slice(data)
    }));
}

/// `data` as one journal record of each structure, replayed onto a small state.
pub fn record(data: &[u8]) {
    let mut set = SortedSet::new(4, 0);
    for i in 0..10 {
        set.insert(Term::Int(i));
    }
    let _ = set.replay(data);
    assert_eq!(set.check_invariants(), Ok(()));
    let mut graph = FollowerMap::new();
    let _ = graph.follow(1, 2);
    let _ = graph.replay(data);
    let _ = Interner::new().replay(data);
    let mut state = TimelineState::default();
    let _ = state.follow(1, 2);
    let _ = state.timeline.insert_post(&state.graph, 5, 2);
    let _ = state.replay(data);
    let mut list = MemberList::default();
    let _ = list.subscribe(1, vec![(0, 9)]);
    let _ = list.replay(data);
}

/// `data` as the journal segment after an empty sorted set's snapshot: recovery must
/// succeed (cutting a torn tail) or fail with an error, never panic.
pub fn segment(data: &[u8]) {
    thread_local! {
        static DIR: PathBuf = {
            let dir = std::env::temp_dir().join(format!("strata-fuzz-{}-{:?}", std::process::id(), std::thread::current().id()));
            let _ = std::fs::create_dir_all(&dir);
            dir
        };
    }
    DIR.with(|dir| {
        let _ = std::fs::remove_dir_all(dir);
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        let snapshot = SortedSet::new(4, 0).dump();
        if journal::write_atomically(&dir.join("snap-0000000000000000.snap"), &snapshot).is_err()
            || std::fs::write(dir.join("log-0000000000000000.wal"), data).is_err()
        {
            return;
        }
        let opened = journal::open::<SortedSet, ()>(
            dir,
            SyncMode::Never,
            || SortedSet::new(4, 0),
            Box::new(|_, _| {}),
        );
        if let Ok((set, j, _)) = opened {
            assert_eq!(set.check_invariants(), Ok(()));
            let _ = j.close();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Put;
    use crate::op::{Encode, FeedOp, SetOp, TimelineOp};
    use proptest::prelude::*;

    /// Valid inputs to mutate: a snapshot of each kind and some records.
    fn seeds() -> Vec<Vec<u8>> {
        let mut state = TimelineState::default();
        for a in 1..20u32 {
            let _ = state.follow(a, (a * 7) % 20);
            let _ = state
                .timeline
                .insert_post(&state.graph, u64::from(a) * 2, a % 6);
        }
        let _ = state.timeline.insert_repost(&state.graph, 1, 3, 8);
        let mut set = SortedSet::new(4, 0);
        for i in 0..30 {
            set.insert(Term::tuple(vec![
                Term::Int(i % 7),
                Term::binary(b"member name"),
            ]));
        }
        let mut interner = Interner::new();
        for k in ["a", "bb", "did:plc:x"] {
            let _ = interner.intern(k.as_bytes());
        }
        let mut list = MemberList::default();
        let mut upserts = Vec::new();
        for i in 0..12 {
            let member = Term::map(vec![
                (Term::atom("id"), Term::Int(i)),
                (
                    Term::atom("name"),
                    Term::binary(format!("n{}", i % 5).as_bytes()),
                ),
                (Term::atom("roles"), Term::list(vec![Term::atom("r")])),
                (
                    Term::atom("status"),
                    Term::atom(if i % 3 == 0 { "offline" } else { "online" }),
                ),
            ]);
            if let Some(Ok(m)) = member.map(crate::member_list::Member::parse) {
                upserts.push(crate::member_list::Mutation::Upsert(m));
            }
        }
        let mut list_record = Vec::new();
        crate::op::ListOp(std::borrow::Cow::Borrowed(&upserts)).encode(&mut list_record);
        list.batch(upserts);
        let mut records = Vec::new();
        SetOp::Add(Term::atom("x")).encode(&mut records);
        let mut post = Vec::new();
        TimelineOp::Feed(FeedOp::Post(9, 3)).encode(&mut post);
        let mut log = Vec::new();
        let header = journal::format::SegmentHeader::new(Kind::SortedSet, 0);
        log.extend_from_slice(&header.to_bytes());
        journal::format::frame(header.salt, &records, &mut log);
        vec![
            state.dump(),
            state.graph.dump(),
            set.dump(),
            interner.dump(),
            records,
            post,
            log,
            list.dump(),
            list_record,
        ]
    }

    /// Most bytes a decoder may hold at once for `n` bytes of input: a constant factor (a
    /// bitmap container's 8 values a byte, each a 4-byte value in the scratch list, is the
    /// largest expansion a container type allows) plus fixed buffers.
    fn bound(n: usize) -> usize {
        64 * n + (1 << 20)
    }

    /// Runs a decoder entry point on one thread and checks its peak allocation.
    fn bounded(what: &str, data: &[u8], f: impl FnOnce(&[u8])) {
        let ((), peak) = crate::testing::peak_during(|| codec::serially(|| f(data)));
        assert!(
            peak <= bound(data.len()),
            "{what}: {peak} bytes allocated for {} bytes of input",
            data.len()
        );
    }

    fn all(data: &[u8]) {
        bounded("snapshot", data, snapshot);
        bounded("payload", data, payload);
        bounded("record", data, record);
    }

    #[test]
    fn containers_cannot_make_the_decoders_allocate_past_the_bound() {
        // For each container type, a forged count or length at the largest value a varint
        // holds and at the most the bytes allow, in every kind's payload and in records.
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for tag in 0u8..8 {
            for count in [u64::MAX >> 1, 1 << 40, 1 << 20, 300] {
                let mut v = vec![tag];
                v.put_varint(count);
                v.extend(std::iter::repeat_n(0u8, 64));
                inputs.push(v.clone());
                // As a sorted set payload: bucket size, count, then the term.
                let mut p = vec![8u8];
                p.put_varint(count);
                p.extend_from_slice(&v);
                inputs.push(p);
                // As a member list payload: format, bucket size, no groups, the count.
                let mut p = vec![2u8, 8, 0];
                p.put_varint(count);
                p.extend_from_slice(&v);
                inputs.push(p);
                // As a member list record: the count of mutations.
                let mut p = vec![1u8];
                p.put_varint(count);
                p.extend_from_slice(&[1]);
                p.extend_from_slice(&v);
                inputs.push(p);
            }
        }
        // Graph payloads whose directions announce many users and huge bitmaps.
        for users in [1u64 << 40, 1000] {
            let mut p = Vec::new();
            p.put_u64(u64::MAX);
            p.put_u64(users);
            p.put_varint(users);
            p.put_u32(1);
            p.put_varint(1 << 30);
            p.extend(std::iter::repeat_n(0u8, 100));
            inputs.push(p);
        }
        // A graph whose bitmap holds run containers: 64 full runs in ~500 bytes would be
        // 4 million values.
        let mut runs = Vec::new();
        runs.put_u32(12347 | (63 << 16));
        runs.extend([0xFF; 8]);
        for key in 0..64u16 {
            runs.extend_from_slice(&key.to_le_bytes());
            runs.extend_from_slice(&u16::MAX.to_le_bytes());
        }
        runs.extend(std::iter::repeat_n(0u8, 64 * 4));
        for _ in 0..64 {
            runs.extend_from_slice(&[1, 0, 0, 0, 0xFF, 0xFF]);
        }
        let mut p = Vec::new();
        p.put_u64(64 << 16);
        p.put_u64(2);
        for _ in 0..2 {
            p.put_varint(1);
            p.put_u32(1 << 30);
            p.put_bytes(&runs);
        }
        inputs.push(p);
        for data in &inputs {
            all(data);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn random_bytes(data in prop::collection::vec(any::<u8>(), 0..200)) {
            all(&data);
        }

        #[test]
        fn mutated_inputs(
            which in 0usize..7,
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
        ) {
            let mut data = seeds()[which].clone();
            for (at, byte, how) in edits {
                if data.is_empty() {
                    data.push(byte);
                    continue;
                }
                let i = at.index(data.len());
                match how {
                    0 => data[i] ^= byte | 1,
                    1 => data.truncate(i),
                    _ => data.insert(i, byte),
                }
            }
            bounded("snapshot", &data, snapshot);
            if data.len() > codec::HEADER {
                bounded("payload", &data[codec::HEADER..], payload);
            }
            bounded("record", &data, record);
        }

        #[test]
        fn mutated_segments(
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        ) {
            let mut data = seeds()[6].clone();
            for (at, byte) in edits {
                let i = at.index(data.len());
                data[i] ^= byte;
            }
            let ((), peak) = crate::testing::peak_during(|| segment(&data));
            // File buffers (1 MiB read, 4 MiB scan) on top of the decoder's bound.
            prop_assert!(peak <= bound(data.len()) + (8 << 20), "segment: {} bytes", peak);
        }
    }
}
