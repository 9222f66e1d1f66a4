# Strata.Timeline against the ETS design of the bitcrowd article, in the same run:
# `mix run bench/timeline.exs`.
#
#   STRATA_BENCH_EDGES=10000000   follow edges (power-law followees) over
#   STRATA_BENCH_USERS=1000000    users
#   STRATA_BENCH_POSTS=200000     posts by random authors before reads are timed (a fifth
#                                 of them replies, a tenth quotes)
#
# Reads are timed for 1000 random readers, each muting 10 users and blocking 2: plain
# (the reply rule, mutes and blocks apply) and with replies, reposts and quotes excluded.
Code.require_file("harness.exs", __DIR__)
Code.require_file("ets_dataplane.exs", __DIR__)

defmodule TimelineBench do
  alias Strata.{Bench, FollowerMap, Timeline}

  @fanout_limit 10_000

  def main do
    edges = String.to_integer(System.get_env("STRATA_BENCH_EDGES", "10000000"))
    users = String.to_integer(System.get_env("STRATA_BENCH_USERS", "1000000"))
    posts = String.to_integer(System.get_env("STRATA_BENCH_POSTS", "200000"))
    :rand.seed(:exsss, 5)

    IO.puts("# Strata.Timeline: #{edges} edges over #{users} users, #{posts} posts\n")

    list = Bench.power_law_edges(edges, users)

    # A fan-out author with 9000 followers (under the limit), for the throughput figure.
    fanout_author = users + 1
    fans = for f <- Enum.take_random(0..(users - 1), 9000), do: {f, fanout_author}
    list = fans ++ list

    map =
      FollowerMap.from_edges(for {a, b} <- list, into: <<>>, do: <<a::32-little, b::32-little>>)

    tl = Timeline.new(follower_map: map, fanout_limit: @fanout_limit)
    ets = EtsDataplane.new(@fanout_limit)
    list |> Enum.chunk_every(10_000) |> Enum.each(&EtsDataplane.follow_many(ets, &1))

    authors = for _ <- 1..posts, do: :rand.uniform(users) - 1
    # A fifth of the posts are replies to an earlier post, a tenth quote one.
    kinds =
      for {a, i} <- Enum.with_index(authors, 1) do
        parent = max(i - :rand.uniform(1000), 1)
        parent_author = Enum.at(authors, parent - 1, a)

        case :rand.uniform(10) do
          r when r <= 2 -> [reply_to: {parent, parent_author, parent, parent_author}]
          3 -> [quote_of: parent]
          _ -> []
        end
      end

    {memory_before, malloc_before} = {Timeline.memory(tl), Strata.Native.runtime_malloc_in_use()}

    {strata_us, strata_writes} =
      :timer.tc(fn ->
        authors
        |> Enum.zip(kinds)
        |> Enum.with_index(1)
        |> Enum.reduce(0, fn {{a, kind}, i}, n -> n + Timeline.insert_post(tl, i, a, kind) end)
      end)

    malloc_growth = Strata.Native.runtime_malloc_in_use() - malloc_before
    memory_growth = Timeline.memory(tl) - memory_before

    {ets_us, ets_writes} =
      :timer.tc(fn ->
        authors
        |> Enum.with_index(1)
        |> Enum.reduce(0, fn {a, i}, n -> n + EtsDataplane.insert_post(ets, i, a) end)
      end)

    {fan_us, fan_writes} =
      :timer.tc(fn ->
        Enum.reduce(1..200, 0, fn i, n ->
          n + Timeline.insert_post(tl, posts + i, fanout_author)
        end)
      end)

    {ets_fan_us, ets_fan_writes} =
      :timer.tc(fn ->
        Enum.reduce(1..200, 0, fn i, n ->
          n + EtsDataplane.insert_post(ets, posts + i, fanout_author)
        end)
      end)

    readers = List.to_tuple(for _ <- 1..1000, do: :rand.uniform(users) - 1)

    # Each reader mutes 10 users and blocks 2 (most-followed authors among them).
    for r <- Tuple.to_list(readers) do
      for _ <- 1..10, do: Timeline.mute(tl, r, trunc(users * :rand.uniform() ** 4))
      for _ <- 1..2, do: Timeline.block(tl, r, :rand.uniform(users) - 1)
    end

    strata_read = Bench.measure(&Timeline.get_timeline(tl, &1, limit: 50), readers, 20_000)

    filters = [exclude_replies: true, exclude_reposts: true, exclude_quotes: true]

    filtered_read =
      Bench.measure(&Timeline.get_timeline(tl, &1, [limit: 50] ++ filters), readers, 20_000)

    ets_read = Bench.measure(&EtsDataplane.get_timeline(ets, &1, 50), readers, 5_000)
    per_sec = fn writes, us -> round(writes / (us / 1_000_000)) end
    graph_bytes = FollowerMap.memory(map) / FollowerMap.stats(map).edges

    ets_graph_bytes =
      EtsDataplane.bytes(ets, [:followers, :following]) / FollowerMap.stats(map).edges

    Bench.table(["measure", "Strata.Timeline", "ETS (article design)", "ratio"], [
      [
        "get_timeline(limit 50), p50 / p99 ns",
        Bench.fmt(strata_read),
        Bench.fmt(ets_read),
        "#{Float.round(ets_read.p50 / strata_read.p50, 1)}x / #{Float.round(ets_read.p99 / strata_read.p99, 1)}x"
      ],
      [
        "get_timeline(limit 50, excluding replies, reposts, quotes), p50 / p99 ns",
        Bench.fmt(filtered_read),
        "-",
        "-"
      ],
      [
        "#{posts} posts by random authors: feed writes/s",
        per_sec.(strata_writes, strata_us),
        per_sec.(ets_writes, ets_us),
        "#{Float.round(per_sec.(strata_writes, strata_us) / max(per_sec.(ets_writes, ets_us), 1), 1)}x"
      ],
      [
        "posts of a 9000-follower author: feed writes/s",
        per_sec.(fan_writes, fan_us),
        per_sec.(ets_fan_writes, ets_fan_us),
        "#{Float.round(per_sec.(fan_writes, fan_us) / max(per_sec.(ets_fan_writes, ets_fan_us), 1), 1)}x"
      ],
      [
        "follow graph: bytes per edge (both directions)",
        Float.round(graph_bytes, 1),
        Float.round(ets_graph_bytes, 1),
        "#{Float.round(ets_graph_bytes / graph_bytes, 1)}x"
      ]
    ])

    IO.puts(
      "Timeline: #{inspect(Timeline.stats(tl))}, #{div(Timeline.memory(tl), 1_048_576)} MiB native"
    )

    IO.puts(
      "Over the #{posts} posts, memory/1 grew #{memory_growth} bytes = " <>
        "#{Float.round(memory_growth / max(malloc_growth, 1), 3)}x the allocator's growth " <>
        "(#{malloc_growth} bytes)"
    )
  end
end

TimelineBench.main()
