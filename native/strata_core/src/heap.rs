//! What allocations really cost, for `memory()`: the allocator's chunks, not the bytes asked
//! for. Modelled on glibc's malloc (the system allocator on Linux): a chunk is the request
//! plus an 8-byte header, rounded up to 16 bytes, at least 32. A hash table's allocation is
//! modelled on hashbrown's layout. Tests check the figures against a counting allocator that
//! asks malloc for each chunk's real size (`testing::live_chunks`). Past malloc's mmap
//! threshold (128 KiB and up) a chunk is rounded to pages instead: under 4 KiB more, a few
//! percent at most, not modelled.

use std::mem::{align_of, size_of};

#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub use libc::mallinfo2;

/// The bytes malloc holds for a request of `bytes` (none for none).
pub const fn chunk(bytes: usize) -> usize {
    if bytes == 0 {
        return 0;
    }
    let c = (bytes + 8 + 15) & !15;
    if c < 32 {
        32
    } else {
        c
    }
}

/// The chunk bytes of a `Vec`/`VecDeque` buffer of `capacity` elements of `T`.
pub const fn buffer<T>(capacity: usize) -> usize {
    chunk(capacity * size_of::<T>())
}

/// The chunk bytes of an `Arc<T>`'s allocation (two counts and the value).
pub const fn arc<T>() -> usize {
    chunk(2 * size_of::<usize>() + size_of::<T>())
}

/// The chunk bytes of a hashbrown table of `(K, V)` entries that reports `capacity`.
pub fn table<K, V>(capacity: usize) -> usize {
    if capacity == 0 {
        return 0; // the empty singleton: no allocation
    }
    let buckets = if capacity < 8 {
        (capacity + 1).next_power_of_two()
    } else {
        (capacity * 8 / 7).next_power_of_two()
    };
    let align = align_of::<(K, V)>().max(16);
    let data = (buckets * size_of::<(K, V)>() + align - 1) & !(align - 1);
    chunk(data + buckets + 16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::live_chunks;

    /// Exact, but for malloc's leeway: a free chunk whose remainder would be too small to
    /// split off (under 32 bytes) is handed out whole, and past the mmap threshold (128 KiB
    /// and up) a chunk is rounded to pages.
    fn close(real: usize, model: usize) -> bool {
        real >= model && (real - model < 32 || (model > 128 << 10 && real - model < 4096))
    }

    #[test]
    fn chunks_match_the_allocator() {
        for n in [1usize, 7, 8, 24, 25, 40, 100, 1000, 8192, 100_000] {
            let start = live_chunks();
            let v: Vec<u8> = Vec::with_capacity(n);
            let (real, model) = ((live_chunks() - start) as usize, buffer::<u8>(n));
            assert!(
                close(real, model),
                "{n} bytes: {real} bytes, modelled {model}"
            );
            drop(v);
        }
        for n in [1usize, 3, 4, 7, 8, 14, 15, 100, 1000, 10_000, 100_000] {
            let start = live_chunks();
            let mut t: hashbrown::HashMap<u32, u64> = hashbrown::HashMap::with_capacity(n);
            t.insert(1, 1);
            let (real, model) = (
                (live_chunks() - start) as usize,
                table::<u32, u64>(t.capacity()),
            );
            assert!(
                close(real, model),
                "table of capacity {}: {real} bytes, modelled {model}",
                t.capacity()
            );
        }
    }

    /// Every structure's `memory()` against the allocator's chunks, built the usual ways.
    #[test]
    fn every_structure_reports_what_it_holds() {
        use crate::member_list::{Layout, Member};
        use crate::testing::memory_within_10pct;
        use crate::{Interner, MemberList, SortedSet, Term};
        let member = |i: i64| {
            Term::tuple(thin_vec::thin_vec![
                Term::Int(i % 7),
                Term::binary(format!("user name {i:08}").as_bytes()),
                Term::Int(i)
            ])
        };
        let mut ratios = Vec::new();
        let (_, r) = memory_within_10pct(
            "SortedSet of 200k integers, inserted",
            || {
                let mut set = SortedSet::new(512, 0);
                for i in 0..200_000i64 {
                    set.insert(Term::Int(i * 7919 % 200_003));
                }
                set
            },
            SortedSet::memory,
        );
        ratios.push(r);
        let (_, r) = memory_within_10pct(
            "SortedSet of 100k member tuples, built",
            || SortedSet::from_unsorted((0..100_000).map(member).collect(), 512),
            SortedSet::memory,
        );
        ratios.push(r);
        let (_, r) = memory_within_10pct(
            "Interner of 200k keys",
            || {
                let mut interner = Interner::new();
                for i in 0..200_000 {
                    interner
                        .intern(format!("did:plc:{i:024}").as_bytes())
                        .unwrap();
                }
                interner
            },
            Interner::memory,
        );
        ratios.push(r);
        let (_, r) = memory_within_10pct(
            "MemberList of 50k members, upserted",
            || {
                let mut list = MemberList::new(Layout::default(), 256);
                for i in 0..50_000i64 {
                    let map = Term::map(vec![
                        (Term::atom("id"), Term::Int(i)),
                        (
                            Term::atom("name"),
                            Term::binary(format!("member {i}").as_bytes()),
                        ),
                        (Term::atom("roles"), Term::list(vec![])),
                        (
                            Term::atom("status"),
                            Term::atom(if i % 8 == 0 { "online" } else { "offline" }),
                        ),
                    ])
                    .unwrap();
                    list.upsert(Member::parse(map).unwrap());
                }
                list
            },
            MemberList::memory,
        );
        ratios.push(r);
        eprintln!("memory()/allocated: {ratios:.3?}");
    }
}
