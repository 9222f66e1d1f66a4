//! Strata's data structures in plain Rust, with no BEAM types: the NIF crate
//! (`strata_nif`) converts terms and calls into these.

pub mod codec;
pub mod follower_map;
#[cfg(any(test, feature = "fuzz"))]
pub mod fuzz;
pub mod heap;
pub mod interner;
pub mod journal;
pub mod member_list;
pub mod op;
pub mod persist;
pub mod sharded;
pub mod sorted_set;
pub mod term;
#[cfg(test)]
pub(crate) mod testing;
pub mod timeline;

pub use follower_map::FollowerMap;
pub use interner::Interner;
pub use member_list::MemberList;
pub use sorted_set::SortedSet;
pub use term::{Atom, Term};
pub use timeline::Timeline;
