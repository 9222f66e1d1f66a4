defmodule Strata do
  @moduledoc """
  Mutable, index-reporting data structures for BEAM services, implemented in Rust.

    * `Strata.SortedSet` - a bucketed sorted set of Erlang terms that reports the index of
      every insert and remove.
    * `Strata.MemberList` - a lazy guild member list: groups, subscribers watching index
      ranges, and the minimal ops for each change.
    * `Strata.FollowerMap` - a follow graph in Roaring bitmaps, both directions, with social
      proof (known followers, mutuals, common follows).
    * `Strata.Interner` - external keys (such as DIDs) to dense integer ids and back.
    * `Strata.Timeline` - a fan-out timeline store with fan-in for large authors.
    * `Strata.Durable` - the durable tier behind each of them: snapshots (`dump/1`,
      `save/2`, ...), and structures opened with `durable: dir` that journal every change
      before acknowledging it and recover after a crash.
    * `Strata.Cluster` - the timeline and member lists across distributed Erlang nodes
      (`Strata.Cluster.Timeline`, `Strata.Cluster.MemberList`).

  Each structure is a handle to native memory, shared and mutable like an ETS table. That
  memory does not show in `:erlang.memory/0`; `native_memory/0` reports it.
  """

  @doc """
  Bytes held natively by every live Strata structure in this VM.

  Structures are freed when the last process holding their handle drops it (after garbage
  collection); this figure goes down then.

      iex> is_integer(Strata.native_memory())
      true
  """
  @spec native_memory() :: non_neg_integer()
  def native_memory, do: Strata.Native.runtime_memory()
end
