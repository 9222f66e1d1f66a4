# Strata.MemberList at Maxjourney scale: `mix run bench/member_list.exs`.
#
# A guild of STRATA_BENCH_MEMBERS members (default 1M; 10 hoisted roles, ~12% online),
# STRATA_BENCH_ACTIVE active subscribers (default 10,000 session processes: 70% watch rows
# 0-99, the others 0-99 and a 100-row range biased toward the top) and STRATA_BENCH_PASSIVE
# passive ones (default 90,000, no ranges). A stream of STRATA_BENCH_MUTATIONS mutations
# (default 2000): presence flips (60%), role changes (15%), renames (10%), joins (8%) and
# leaves (7%). A mutation's time is the whole call: the change, its ops, and the
# `[{subscriber, ops}]` list returned.
#
# Baselines measured in the same run: the same stream on a list with no subscribers (the
# per-subscriber cost is the difference, over the subscribers that got ops), the naive way
# (after each mutation, re-slice every subscriber's windows), and one `SortedSet.at/2` call
# on a set of 1M integers (the per-call floor of a NIF).
Code.require_file("harness.exs", __DIR__)

defmodule MemberListBench do
  import Bitwise
  alias Strata.{Bench, MemberList, SortedSet}

  @roles for i <- 1..10, do: :"role#{i}"

  def member(id, status \\ nil) do
    h = :erlang.phash2(id, 1 <<< 32)
    len = 4 + rem(h, 9)
    name = for i <- 1..len, into: "", do: <<?a + rem(div(h, i * 7) + i * id, 26)>>
    name = if rem(h, 3) == 0, do: String.capitalize(name), else: name
    roles = if rem(h, 4) == 0, do: [Enum.at(@roles, rem(div(h, 5), 10))], else: []
    status = status || if(rem(div(h, 11), 25) < 3, do: :online, else: :offline)
    %{id: id, name: name, roles: roles, status: status}
  end

  defp env(name, default), do: String.to_integer(System.get_env(name, default))

  def main do
    n = env("STRATA_BENCH_MEMBERS", "1000000")
    active = env("STRATA_BENCH_ACTIVE", "10000")
    passive = env("STRATA_BENCH_PASSIVE", "90000")
    mutations = env("STRATA_BENCH_MUTATIONS", "2000")
    :rand.seed(:exsss, 7)

    groups = for {r, i} <- Enum.with_index(@roles), do: %{id: r, position: 100 - i}
    # Three lists kept identical: without subscribers, with the active ones, with the active
    # and the passive ones.
    [bare, list, crowd] = lists = for _ <- 1..3, do: MemberList.new(groups: groups)

    {build_ms, _} =
      Bench.ms(fn ->
        1..n
        |> Stream.chunk_every(10_000)
        |> Enum.each(fn ids ->
          batch = for id <- ids, do: {:upsert, member(id)}
          for l <- lists, do: MemberList.batch(l, batch)
        end)
      end)

    size = MemberList.size(list)
    online = n - List.last(MemberList.group_counts(list)).count

    IO.puts(
      "# Strata.MemberList: #{n} members (#{online} online), #{active} active and " <>
        "#{passive} passive subscribers\n"
    )

    IO.puts("Built three lists with batch/2 in #{round(build_ms)} ms; #{size} rows.\n")

    sessions = for _ <- 1..(active + passive), do: spawn(fn -> receive(do: (:stop -> :ok)) end)
    {actives, passives} = Enum.split(sessions, active)
    ranges = Map.new(actives, &{&1, ranges(size)})

    for {pid, rs} <- ranges, l <- [list, crowd], do: MemberList.subscribe(l, pid, rs)
    for pid <- passives, do: MemberList.subscribe(crowd, pid, [])
    IO.puts("Distinct views: #{MemberList.info(list).views}\n")

    stream = for _ <- 1..mutations, do: mutation(n)

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
    crowded = run.(crowd)

    # Batches of 100 against the same 100 as single calls, on two lists in the same state
    # (they swap roles each round, so that neither is always second).
    {batch_times, single_times} =
      Enum.unzip(
        for round <- 1..10 do
          ops = for _ <- 1..100, do: mutation(n)
          {a, b} = if rem(round, 2) == 0, do: {list, crowd}, else: {crowd, list}
          {batch_ns, _} = ns(fn -> MemberList.batch(a, ops) end)
          {single_ns, _} = ns(fn -> Enum.each(ops, &apply_op(b, &1)) end)
          {batch_ns, single_ns}
        end
      )

    # The naive way: after a mutation, every active subscriber's windows are sliced again.
    naive =
      for op <- Enum.take(stream, 3) do
        {t, _} =
          ns(fn ->
            apply_op(bare, op)
            for {_, rs} <- ranges, r <- rs, do: MemberList.slice(bare, r)
          end)

        t
      end

    # This process holds the stream and the results: a full collection first, so that the
    # calls below pay for their own garbage only, not for a sweep of the bench's data.
    probes =
      for i <- 1..1000,
          do: {i, ranges(size) |> then(&if(length(&1) == 1, do: [0..99, 100..199], else: &1))}

    :erlang.garbage_collect()

    subscribe_times =
      for {i, rs} <- probes do
        {t, _} = ns(fn -> MemberList.subscribe(list, {:probe, i}, rs) end)
        MemberList.unsubscribe(list, {:probe, i})
        t
      end

    # The floor: one SortedSet.at/2 call on 1M items, from a loop of 100,000.
    set = SortedSet.from_enumerable(1..1_000_000)
    indices = for _ <- 1..100_000, do: :rand.uniform(1_000_000) - 1
    {at_total, _} = ns(fn -> Enum.each(indices, &SortedSet.at(set, &1)) end)
    at_ns = at_total / length(indices)

    # Delivery by message to the 10,000 session processes, on the list with subscribers.
    sender = %{list | delivery: :send}

    send_times =
      for op <- Enum.take(Enum.shuffle(stream), 200),
          do: elem(ns(fn -> apply_op(sender, op) end), 0)

    report(
      base,
      full,
      crowded,
      naive,
      subscribe_times,
      batch_times,
      single_times,
      at_ns,
      send_times
    )

    for pid <- sessions, do: send(pid, :stop)
  end

  # 70%: rows 0-99; otherwise 0-99 and a 100-row range, the k-th with probability ~ 0.7^k.
  defp ranges(size) do
    if :rand.uniform() < 0.7 do
      [0..99]
    else
      k = min(geometric(0.3), div(size, 100) - 1)
      [0..99, (k * 100)..(k * 100 + 99)]
    end
  end

  defp geometric(p, k \\ 1), do: if(:rand.uniform() < p, do: k, else: geometric(p, k + 1))

  defp mutation(n) do
    id = :rand.uniform(n)
    roll = :rand.uniform(100)

    cond do
      roll <= 60 -> {:upsert, member(id, Enum.random([:online, :idle, :offline]))}
      roll <= 75 -> {:upsert, %{member(id) | roles: [Enum.random(@roles)]}}
      roll <= 85 -> {:upsert, %{member(id) | name: "renamed#{:rand.uniform(1_000_000)}"}}
      roll <= 93 -> {:upsert, member(n + :rand.uniform(n), :online)}
      true -> {:remove, id}
    end
  end

  defp apply_op(list, {:upsert, m}), do: MemberList.upsert(list, m)
  defp apply_op(list, {:remove, id}), do: MemberList.remove(list, id)

  defp ns(fun) do
    t0 = :erlang.monotonic_time(:nanosecond)
    result = fun.()
    {:erlang.monotonic_time(:nanosecond) - t0, result}
  end

  defp pct(xs, p), do: xs |> Enum.sort() |> Enum.at(min(length(xs) - 1, div(length(xs) * p, 100)))
  defp mean(xs), do: Enum.sum(xs) / max(length(xs), 1)
  defp us(ns), do: "#{Float.round(ns / 1000, 1)} µs"

  defp row(name, xs, fmt), do: [name, fmt.(pct(xs, 50)), fmt.(pct(xs, 99)), fmt.(mean(xs))]

  defp report(base, full, crowded, naive, subscribe, batch, single, at_ns, send_times) do
    [times, base_times, crowd_times] =
      for r <- [full, base, crowded], do: Enum.map(r, &elem(&1, 0))

    affected = Enum.map(full, &elem(&1, 1))
    ops = Enum.map(full, &elem(&1, 2))
    count = &Float.round(&1 * 1.0, 1)

    Bench.table(["measure", "p50", "p99", "mean"], [
      row("mutation, no subscribers", base_times, &us/1),
      row("mutation, 10k active subscribers", times, &us/1),
      row("mutation, 10k active + 90k passive", crowd_times, &us/1),
      row("subscribers with ops per mutation", affected, count),
      row("ops per mutation (all subscribers)", ops, count),
      row("naive: re-slice every window (3 mutations)", naive, &us/1),
      row("subscribe (two 100-row SYNCs)", subscribe, &us/1),
      row("mutation, delivery: :send to 10k pids (200)", send_times, &us/1),
      row("batch/2 of 100 mutations (10 rounds)", batch, &us/1),
      row("the same 100 as single calls", single, &us/1)
    ])

    per = (mean(times) - mean(base_times)) / max(mean(affected), 1)
    IO.puts("One SortedSet.at/2 call (1M items): #{Float.round(at_ns, 1)} ns")

    IO.puts(
      "Per subscriber that gets ops: #{Float.round(per, 1)} ns = #{Float.round(per / at_ns, 2)}x one at/2 call (target <= 0.5x)"
    )

    IO.puts(
      "Naive / Strata at p99: #{round(pct(naive, 99) / pct(times, 99))}x (target >= 500x); mean: #{round(mean(naive) / mean(times))}x"
    )

    IO.puts(
      "Passive subscribers: mean #{us(mean(crowd_times))} with vs #{us(mean(times))} without (#{Float.round((mean(crowd_times) / mean(times) - 1) * 100, 1)}%)"
    )

    IO.puts(
      "100 single calls / one batch of 100: #{Float.round(mean(single) / mean(batch), 1)}x (target >= 5x)"
    )

    IO.puts("subscribe p99: #{us(pct(subscribe, 99))} (target <= 50 µs)")
  end
end

MemberListBench.main()
