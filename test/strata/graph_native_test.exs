defmodule Strata.GraphNativeTest do
  # Not async: it watches the schedulers of the whole VM.
  use ExUnit.Case, async: false

  alias Strata.{FollowerMap, Interner, Timeline}

  @tag timeout: 300_000
  test "no graph, interner or timeline call holds a normal scheduler for long" do
    # (Checked to catch a 300,000-follower fan-out forced onto a normal scheduler.)
    edges = for f <- 1..20_000, do: {f, 0}
    edges = edges ++ for(f <- 1..200_000, do: {f, rem(f * 7919, 5000) + 1})

    map =
      FollowerMap.from_edges(for {a, b} <- edges, into: <<>>, do: <<a::32-little, b::32-little>>)

    tl = Timeline.new(follower_map: map, fanout_limit: 50_000)
    interner = Interner.new()

    reports =
      Strata.SchedulerCheck.long_schedules(fn ->
        # A 20,000-follower author (under the limit: fanned out) and small ones; fresh ids
        # each time the check runs.
        base = System.unique_integer([:positive, :monotonic]) * 10_000
        for i <- 1..20, do: Timeline.insert_post(tl, base + i, 0)
        for i <- 21..2000, do: Timeline.insert_post(tl, base + i, rem(i, 5000) + 1)
        for u <- 1..2000, do: Timeline.get_timeline(tl, u, limit: 100)
        for u <- 1..200, do: Timeline.follow(tl, u, 0)
        FollowerMap.follow_many(map, for(f <- 300_000..310_000, do: {f, 1}))
        FollowerMap.known_followers(map, 0, 0, limit: 10_000)
        FollowerMap.mutuals(map, 0, limit: 10_000)
        FollowerMap.followers(map, 0, limit: 10_000)
        for i <- 1..20_000, do: Interner.intern(interner, "did:plc:#{i}")
      end)

    assert reports == []
    assert Timeline.get_timeline(tl, 5, limit: 3) |> elem(0) |> length() == 3
  end
end
