//! Strata's data structures in plain Rust, with no BEAM types: the NIF crate
//! (`strata_nif`) converts terms and calls into these.

pub mod sorted_set;
pub mod term;

pub use sorted_set::SortedSet;
pub use term::{Atom, Term};
