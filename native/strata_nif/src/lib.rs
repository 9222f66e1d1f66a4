//! The rustler adapter: decodes terms, calls `strata_core`, encodes results.
//! One file per Elixir module; NIF names carry the module's prefix.

mod durable;
mod error;
mod follower_map;
mod interner;
mod member_list;
mod resource;
mod runtime;
mod sorted_set;
mod term;
mod timeline;

rustler::atoms! {
    ok,
    error,
    nil,
    included,
    excluded,
    unbounded,
    not_sorted,
    full,
    repost,
    duplicate_id,
    unknown_post,
    not_found,
    post,
    reply,
    quote_of,
    mute,
    block,
}

rustler::init!("Elixir.Strata.Native");
