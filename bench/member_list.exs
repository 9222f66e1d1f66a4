# Strata.MemberList at guild scale: `mix run bench/member_list.exs`.
#
# A guild of STRATA_BENCH_MEMBERS members (default 1M; 10 hoisted roles, 10% online),
# STRATA_BENCH_SUBSCRIBERS subscribers (default 10k) each watching [0, 99] and one random
# other range of 100, and a stream of presence flips, renames, joins and leaves. Reports the
# time of each mutation (computing every subscriber's ops, not delivering them), how many
# subscribers got ops and how many ops, against the naive way (recompute every subscriber's
# windows from scratch after each mutation), all in the same run.
Code.require_file("harness.exs", __DIR__)

defmodule MemberListBench do
  import Bitwise
  alias Strata.{Bench, MemberList}

  @roles for i <- 1..10, do: :"role#{i}"

  def member(id, status \\ nil) do
    h = :erlang.phash2(id, 1 <<< 32)
    len = 4 + rem(h, 9)
    name = for i <- 1..len, into: "", do: <<?a + rem(div(h, i * 7) + i * id, 26)>>
    name = if rem(h, 3) == 0, do: String.capitalize(name), else: name
    roles = if rem(h, 4) == 0, do: [Enum.at(@roles, rem(div(h, 5), 10))], else: []
    online = status || if(rem(div(h, 11), 10) == 0, do: :online, else: :offline)
    %{id: id, name: name, roles: roles, status: online}
  end

  def main do
    n = String.to_integer(System.get_env("STRATA_BENCH_MEMBERS", "1000000"))
    subscribers = String.to_integer(System.get_env("STRATA_BENCH_SUBSCRIBERS", "10000"))
    mutations = String.to_integer(System.get_env("STRATA_BENCH_MUTATIONS", "2000"))
    :rand.seed(:exsss, 7)

    groups = for {r, i} <- Enum.with_index(@roles), do: %{id: r, position: 100 - i}
    list = MemberList.new(groups: groups)
    bare = MemberList.new(groups: groups)

    {ms, _} =
      Bench.ms(fn ->
        for id <- 1..n do
          MemberList.upsert(list, member(id))
          MemberList.upsert(bare, member(id))
        end
      end)

    size = MemberList.size(list)
    IO.puts("# Strata.MemberList: #{n} members, #{subscribers} subscribers\n")
    IO.puts("Built two lists by upserts in #{round(ms)} ms; #{size} rows.\n")

    # Subscribe: [0, 99] plus a random range of 100.
    sub_ranges =
      for _ <- 1..subscribers do
        start = :rand.uniform(div(size, 100) - 1) * 100
        [0..99, start..(start + 99)]
      end

    subscribe_times =
      for {ranges, s} <- Enum.with_index(sub_ranges) do
        t0 = :erlang.monotonic_time(:nanosecond)
        MemberList.subscribe(list, s, ranges)
        :erlang.monotonic_time(:nanosecond) - t0
      end

    # The stream: presence flips, renames, joins and leaves.
    stream =
      for _ <- 1..mutations do
        id = :rand.uniform(n)

        case :rand.uniform(4) do
          1 -> {:upsert, member(id, Enum.random([:online, :offline]))}
          2 -> {:upsert, %{member(id) | name: "renamed#{:rand.uniform(1_000_000)}"}}
          3 -> {:upsert, member(n + :rand.uniform(n))}
          4 -> {:remove, id}
        end
      end

    run = fn target ->
      Enum.map(stream, fn op ->
        t0 = :erlang.monotonic_time(:nanosecond)
        changes = apply_op(target, op)
        t = :erlang.monotonic_time(:nanosecond) - t0
        {t, length(changes), Enum.reduce(changes, 0, fn {_, ops}, acc -> acc + length(ops) end)}
      end)
    end

    base = run.(bare)
    full = run.(list)

    # The naive way: after a mutation, every subscriber's windows are sliced again.
    naive_samples = min(5, mutations)

    naive =
      for op <- Enum.take(stream, naive_samples) do
        {us, _} =
          :timer.tc(fn ->
            apply_op(bare, op)
            Enum.each(sub_ranges, fn rs -> Enum.each(rs, &MemberList.slice(bare, &1)) end)
          end)

        us * 1000
      end

    pct = fn xs, p ->
      xs |> Enum.sort() |> Enum.at(min(length(xs) - 1, div(length(xs) * p, 100)))
    end

    times = Enum.map(full, &elem(&1, 0))
    base_times = Enum.map(base, &elem(&1, 0))
    affected = Enum.map(full, &elem(&1, 1))
    ops = Enum.map(full, &elem(&1, 2))
    mean = fn xs -> Enum.sum(xs) / max(length(xs), 1) end
    per_affected = (mean.(times) - mean.(base_times)) / max(mean.(affected), 1)

    Bench.table(
      ["measure", "p50", "p99", "mean"],
      [
        [
          "mutation, no subscribers",
          us(pct.(base_times, 50)),
          us(pct.(base_times, 99)),
          us(mean.(base_times))
        ],
        [
          "mutation, #{subscribers} subscribers",
          us(pct.(times, 50)),
          us(pct.(times, 99)),
          us(mean.(times))
        ],
        [
          "subscribers with ops per mutation",
          pct.(affected, 50),
          pct.(affected, 99),
          Float.round(mean.(affected), 1)
        ],
        [
          "ops per mutation (all subscribers)",
          pct.(ops, 50),
          pct.(ops, 99),
          Float.round(mean.(ops), 1)
        ],
        [
          "naive: re-slice every window (#{naive_samples} mutations)",
          us(pct.(naive, 50)),
          us(pct.(naive, 99)),
          us(mean.(naive))
        ],
        [
          "subscribe (two 100-item SYNCs)",
          us(pct.(subscribe_times, 50)),
          us(pct.(subscribe_times, 99)),
          us(mean.(subscribe_times))
        ]
      ]
    )

    IO.puts("Cost per subscriber that gets ops: #{Float.round(per_affected / 1000, 2)} µs")
    IO.puts("Naive / Strata (mean per mutation): #{Float.round(mean.(naive) / mean.(times), 1)}x")
  end

  defp apply_op(list, {:upsert, m}), do: MemberList.upsert(list, m)
  defp apply_op(list, {:remove, id}), do: MemberList.remove(list, id)

  defp us(ns), do: "#{Float.round(ns / 1000, 1)} µs"
end

MemberListBench.main()
