defmodule Strata.Stalls do
  @moduledoc false
  # How long small calls from other processes take while long work runs. Each of `probes`
  # processes calls `small` once a millisecond (sleeping between calls, so that the probes
  # leave the CPU to the long work and measure waiting, not contention for the two cores)
  # from just before `long` starts until it returns. Used by the stall tests and by
  # bench/stalls.exs (which loads this file).

  @doc "Runs `long` and returns `{its result, its milliseconds, probe latencies in µs}`."
  def during(long, small, probes \\ 2) do
    parent = self()
    ref = make_ref()
    pids = for _ <- 1..probes, do: spawn_link(fn -> probe(small, ref, parent, []) end)
    Process.sleep(20)
    {us, result} = :timer.tc(long)
    for pid <- pids, do: send(pid, {:stop, ref})

    latencies =
      Enum.flat_map(pids, fn pid ->
        monitor = Process.monitor(pid)

        receive do
          {^ref, ^pid, samples} ->
            # Gone before this returns: a probe holds the structures it calls, which are
            # freed (and the VM's native memory count falls) only when it exits.
            receive do
              {:DOWN, ^monitor, :process, ^pid, _} -> samples
            end
        end
      end)

    {result, us / 1000, latencies}
  end

  @doc "Probe latencies in µs over `ms` milliseconds with nothing else running."
  def idle(small, ms, probes \\ 2) do
    {:ok, _, latencies} = during(fn -> Process.sleep(ms) end, small, probes)
    latencies
  end

  @doc "The `q` quantile (0..1) and the maximum of a list of latencies."
  def summary(latencies) do
    sorted = latencies |> Enum.sort() |> List.to_tuple()
    n = tuple_size(sorted)
    at = fn q -> elem(sorted, min(n - 1, trunc(n * q))) end
    %{samples: n, p50: at.(0.5), p99: at.(0.99), p999: at.(0.999), max: elem(sorted, n - 1)}
  end

  defp probe(small, ref, parent, acc) do
    receive do
      {:stop, ^ref} ->
        send(parent, {ref, self(), acc})
    after
      1 ->
        t0 = System.monotonic_time(:microsecond)
        small.()
        probe(small, ref, parent, [System.monotonic_time(:microsecond) - t0 | acc])
    end
  end
end

defmodule Strata.Stalls.Scenarios do
  @moduledoc false
  # The long operations of the stall tests and of bench/stalls.exs, each at a size given by
  # the caller: `setup` builds the structures (untimed), and returns `{long, small}` or
  # `{long, small, cleanup}`: the long operation, a small call another process makes
  # meanwhile, and what to do once the probes stopped.

  alias Strata.{FollowerMap, MemberList, SortedSet, Timeline}

  def all,
    do: [:fan_out, :bulk_follow, :backfill, :dump, :save, :checkpoint_fallback, :define_groups]

  @doc "A post by an author with `n` followers (below the fan-out limit)."
  def setup(:fan_out, n) do
    map = FollowerMap.new()
    FollowerMap.follow_many(map, pack(for f <- 1..n, do: {f, 0}))
    tl = Timeline.new(follower_map: map, fanout_limit: n + 1, feed_capacity: 100)
    long = fn -> Timeline.insert_post(tl, 1_000_000_000, 0) end
    small = fn -> small_timeline_calls(tl) end
    {long, small}
  end

  # `n` new follow edges in one call (over `n / 10` users).
  def setup(:bulk_follow, n) do
    map = FollowerMap.new()
    users = max(div(n, 10), 2)
    edges = for i <- 1..n, do: {rem(i * 7919, users), rem(i * 104_729 + 1, users)}
    edges = pack(for {a, b} <- edges, a != b, do: {a, b})
    long = fn -> FollowerMap.follow_many(map, edges) end

    small = fn ->
      :ok = FollowerMap.follow(map, System.unique_integer([:positive, :monotonic]) + users, 1)
    end

    {long, small}
  end

  # Follows and unfollows between feeds of `n` ids (feed capacity `n`, backfill `n`).
  def setup(:backfill, n) do
    tl = Timeline.new(feed_capacity: n, backfill: n, fanout_limit: 1_000_000)
    :ok = Timeline.follow(tl, 1, 2)
    for i <- 1..n, do: Timeline.insert_post(tl, 2 * i, 2)
    for i <- 1..n, do: Timeline.insert_post(tl, 2 * i + 1, 3)

    long = fn ->
      for _ <- 1..100 do
        :ok = Timeline.follow(tl, 1, 3)
        :ok = Timeline.unfollow(tl, 1, 3)
      end
    end

    {long, fn -> small_timeline_calls(tl) end}
  end

  # A dump of a graph of `n` edges.
  def setup(:dump, n) do
    map = FollowerMap.new()
    FollowerMap.follow_many(map, pack(power_law(n, max(div(n, 2), 2))))
    long = fn -> byte_size(FollowerMap.dump(map)) end

    small = fn ->
      :ok = FollowerMap.follow(map, System.unique_integer([:positive, :monotonic]) + n, 1)
    end

    {long, small}
  end

  # A save of a set of `n` member-like items.
  def setup(:save, n) do
    set = SortedSet.new()
    Enum.each(Stream.chunk_every(1..n, 10_000), &SortedSet.add_all(set, members(&1)))

    path =
      Path.join(
        System.tmp_dir!(),
        "strata-stall-#{System.unique_integer([:positive, :monotonic])}"
      )

    long = fn ->
      :ok = SortedSet.save(set, path)
      File.rm!(path)
    end

    {long, fn -> small_set_calls(set, n) end}
  end

  # A checkpoint of a durable set of `n` items whose base snapshot went bad: the live set is
  # snapshotted (the fallback).
  def setup(:checkpoint_fallback, n) do
    dir =
      Path.join(
        System.tmp_dir!(),
        "strata-stall-#{System.unique_integer([:positive, :monotonic])}"
      )

    set = SortedSet.new(durable: dir, sync: :none)
    Enum.each(Stream.chunk_every(1..n, 10_000), &SortedSet.add_all(set, members(&1)))

    long = fn ->
      File.write!(Path.join(dir, "snap-0000000000000000.snap"), "bad sector")
      :ok = SortedSet.checkpoint(set)
    end

    done = fn ->
      :ok = SortedSet.close(set)
      File.rm_rf!(dir)
    end

    {long, fn -> small_set_calls(set, n) end, done}
  end

  # New groups for a member list of `n` online members (the caller owns the list).
  def setup(:define_groups, n) do
    roles = for r <- 1..10, do: %{id: r, position: r}
    list = MemberList.new(groups: roles)

    for i <- 1..n do
      MemberList.upsert(list, %{id: i, name: "m#{i}", roles: [rem(i, 12)], status: :online})
    end

    reversed = for r <- 1..10, do: %{id: r, position: 11 - r}
    long = fn -> MemberList.define_groups(list, reversed) end
    small = fn -> [{:group, _, _} | _] = MemberList.slice(list, 0..99) end
    {long, small}
  end

  # The small calls check what they get (a call moved to a dirty scheduler while the lock
  # was held must answer as one that was not): a probe that gets anything else crashes its
  # caller, which is linked to it.
  defp small_timeline_calls(tl) do
    1 =
      Timeline.insert_post(tl, 2_000_000_000 + System.unique_integer([:positive, :monotonic]), 9)

    {items, _cursor} = Timeline.get_timeline(tl, 1, limit: 20)
    true = is_list(items)
  end

  defp small_set_calls(set, n) do
    %SortedSet{} = SortedSet.add(set, {9, "late", System.unique_integer([:positive, :monotonic])})
    {_, "member " <> _, _} = SortedSet.at(set, :rand.uniform(n) - 1)
  end

  defp members(ids), do: for(i <- ids, do: {rem(i, 7), "member #{i}", i})

  defp pack(edges), do: for({a, b} <- edges, into: <<>>, do: <<a::32-little, b::32-little>>)

  defp power_law(count, users) do
    for _ <- 1..count do
      a = :rand.uniform(users) - 1
      b = trunc(users * :math.pow(:rand.uniform(), 4))
      if a == b, do: {a, rem(b + 1, users)}, else: {a, b}
    end
  end
end
