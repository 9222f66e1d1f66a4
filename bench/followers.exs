# Strata.FollowerMap and Strata.Interner against the ETS design of the bitcrowd article and
# the no-op NIF floor: `mix run bench/followers.exs`. p50 / p99 ns per call.
#
#   STRATA_BENCH_EDGES=100,100000,1000000,10000000   graph sizes (the last over 1M users)
#   STRATA_BENCH_KEYS=10000000                        keys for the Interner
Code.require_file("harness.exs", __DIR__)
Code.require_file("ets_dataplane.exs", __DIR__)

defmodule FollowersBench do
  alias Strata.{Bench, FollowerMap, Interner}

  def main do
    sizes =
      System.get_env("STRATA_BENCH_EDGES", "100,100000,1000000,10000000")
      |> String.split(",")
      |> Enum.map(&String.to_integer/1)

    :rand.seed(:exsss, 11)
    samples = 20_000
    IO.puts("# Strata.FollowerMap (p50 / p99 ns per call, #{samples} calls a cell)\n")

    IO.puts(
      "No-op NIF floor: #{Bench.fmt(Bench.measure(&Strata.Native.runtime_noop/1, {1, 2}, samples))}\n"
    )

    rows =
      for count <- sizes do
        users = if count >= 10_000_000, do: 1_000_000, else: max(10, div(count, 10))
        list = Bench.power_law_edges(count, users)
        packed = Bench.pack_edges(list)
        {rss_before, malloc_before} = {Bench.rss(), Strata.Native.runtime_malloc_in_use()}
        {strata_ms, map} = Bench.ms(fn -> FollowerMap.from_edges(packed) end)
        rss_growth = Bench.rss() - rss_before
        malloc_growth = Strata.Native.runtime_malloc_in_use() - malloc_before
        ets = EtsDataplane.new(10_000)

        {ets_ms, _} =
          Bench.ms(fn ->
            list |> Enum.chunk_every(10_000) |> Enum.each(&EtsDataplane.follow_many(ets, &1))
          end)

        present = list |> Enum.take_random(1000) |> List.to_tuple()

        fresh =
          List.to_tuple(
            for _ <- 1..1000, do: {users + :rand.uniform(users), :rand.uniform(users) - 1}
          )

        celebrity = 0

        strata = %{
          follows:
            Bench.measure(fn {a, b} -> FollowerMap.follows?(map, a, b) end, present, samples),
          follow:
            Bench.measure(fn {a, b} -> FollowerMap.follow(map, a, b) end, fresh, samples, fn {a,
                                                                                              b} ->
              FollowerMap.unfollow(map, a, b)
            end),
          unfollow:
            Bench.measure(
              fn {a, b} -> FollowerMap.unfollow(map, a, b) end,
              present,
              samples,
              fn {a, b} -> FollowerMap.follow(map, a, b) end
            ),
          page:
            Bench.measure(
              fn _ -> FollowerMap.followers(map, celebrity, limit: 100) end,
              {0},
              div(samples, 4)
            )
        }

        baseline = %{
          follows:
            Bench.measure(fn {a, b} -> EtsDataplane.follows?(ets, a, b) end, present, samples),
          follow:
            Bench.measure(fn {a, b} -> EtsDataplane.follow(ets, a, b) end, fresh, samples, fn {a,
                                                                                               b} ->
              EtsDataplane.unfollow(ets, a, b)
            end),
          unfollow:
            Bench.measure(
              fn {a, b} -> EtsDataplane.unfollow(ets, a, b) end,
              present,
              div(samples, 20),
              fn {a, b} -> EtsDataplane.follow(ets, a, b) end
            ),
          page:
            Bench.measure(
              fn _ -> EtsDataplane.followers_page(ets, celebrity, 100) end,
              {0},
              div(samples, 100)
            )
        }

        edges_now = FollowerMap.stats(map).edges
        strata_bytes = FollowerMap.memory(map) / edges_now
        ets_bytes = EtsDataplane.bytes(ets, [:followers, :following]) / edges_now
        top = FollowerMap.follower_count(map, celebrity)

        IO.puts("## #{count} edges over #{users} users (top author: #{top} followers)\n")

        # What the C allocator handed out over the build and kept (exact: temporaries freed
        # do not count), and the RSS growth (which memory freed by earlier sizes hides).
        memory = FollowerMap.memory(map)

        rss =
          if rss_growth > 0,
            do: "RSS grew #{rss_growth} bytes (#{Float.round(memory / rss_growth, 2)}x)",
            else: "RSS fell by #{-rss_growth} bytes (memory freed by earlier sizes was reused)"

        IO.puts(
          "memory/1: #{memory} bytes = #{Float.round(memory / max(malloc_growth, 1), 3)}x " <>
            "the allocator's growth over the build (#{malloc_growth} bytes); #{rss}\n"
        )

        Bench.table(
          [
            "structure",
            "follows?",
            "follow",
            "unfollow",
            "followers page (100, top author)",
            "bytes per edge",
            "build"
          ],
          [
            [
              "Strata.FollowerMap"
              | Enum.map([:follows, :follow, :unfollow, :page], &Bench.fmt(strata[&1]))
            ] ++
              ["#{Float.round(strata_bytes, 1)}", "#{round(strata_ms)} ms (packed binary)"],
            [
              "ETS (article design)"
              | Enum.map([:follows, :follow, :unfollow, :page], &Bench.fmt(baseline[&1]))
            ] ++
              ["#{Float.round(ets_bytes, 1)}", "#{round(ets_ms)} ms"]
          ]
        )

        Enum.each(
          [:followers, :following, :posts, :feeds, :celebrity_posts],
          &:ets.delete(Map.fetch!(ets, &1))
        )

        {count, strata.follows}
      end

    [{_, small} | _] = rows
    {_, large} = List.last(rows)

    IO.puts(
      "follows? p99 from #{elem(hd(rows), 0)} to #{elem(List.last(rows), 0)} edges: #{small.p99} -> #{large.p99} ns\n"
    )

    interner()
  end

  def interner do
    n = String.to_integer(System.get_env("STRATA_BENCH_KEYS", "10000000"))
    interner = Interner.new()
    did = fn i -> "did:plc:" <> String.pad_leading(Integer.to_string(i * 7_919, 32), 24, "a") end
    {ms, _} = Bench.ms(fn -> Enum.each(1..n, &Interner.intern(interner, did.(&1))) end)
    known = List.to_tuple(for _ <- 1..1000, do: did.(:rand.uniform(n)))
    fresh = List.to_tuple(for i <- 1..20_000, do: did.(n + i))

    IO.puts(
      "## Strata.Interner at #{n} keys (built in #{round(ms)} ms; #{Float.round(Interner.memory(interner) / n, 1)} bytes a key)\n"
    )

    Bench.table(["operation", "p50 / p99 ns"], [
      [
        "intern (known key)",
        Bench.fmt(Bench.measure(&Interner.intern(interner, &1), known, 20_000))
      ],
      [
        "intern (new key)",
        Bench.fmt(Bench.measure(&Interner.intern(interner, &1), fresh, 20_000))
      ],
      ["lookup", Bench.fmt(Bench.measure(&Interner.lookup(interner, &1), known, 20_000))],
      [
        "key",
        Bench.fmt(
          Bench.measure(&Interner.key(interner, &1), List.to_tuple(Enum.to_list(1..1000)), 20_000)
        )
      ]
    ])
  end
end

FollowersBench.main()
