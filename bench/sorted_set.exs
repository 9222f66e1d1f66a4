# Strata.SortedSet against :gb_sets, ETS ordered_set, :ordsets and the no-op NIF floor,
# measured in the same run. Run with `mix run bench/sorted_set.exs` (release build: the
# default native profile). Figures are p50 / p99 nanoseconds per call, clock cost included.
#
#   STRATA_BENCH_SIZES=5000,50000   sizes to run (default 5000,50000,250000,1000000)
#   STRATA_BENCH_SAMPLES=20000      timed calls per cell
Code.require_file("harness.exs", __DIR__)

defmodule SortedSetBench do
  import Bitwise
  # Everything lives in a compiled module: closures in a script are interpreted and would
  # time the interpreter, not the structures.
  alias Strata.{Bench, SortedSet}

  # A member of a guild: {role_priority, display_name, user_id}. Names are 5 to 12 letters,
  # drawn from the id, so that any id always gives the same member.
  def member(id) do
    h = :erlang.phash2(id, 1 <<< 32)
    len = 5 + rem(h, 8)
    name = for i <- 1..len, into: "", do: <<?a + rem(div(h, i * 7) + i * id, 26)>>
    {rem(h, 10), name, id}
  end

  def main do
    memory()
    latency()
    build()
  end

  def latency do
    sizes =
      System.get_env("STRATA_BENCH_SIZES", "5000,50000,250000,1000000")
      |> String.split(",")
      |> Enum.map(&String.to_integer/1)

    samples = String.to_integer(System.get_env("STRATA_BENCH_SAMPLES", "20000"))
    :rand.seed(:exsss, 42)

    # Items: integers (even numbers present, odd numbers new) and member tuples
    # {role_priority, name, user_id} (ids up to n present, above n new).
    kinds = %{
      integers: %{
        present: fn n -> Enum.map(1..n, &(&1 * 2)) end,
        fresh: fn n -> :rand.uniform(n) * 2 + 1 end,
        existing: fn n -> :rand.uniform(n) * 2 end
      },
      member_tuples: %{
        present: fn n -> Enum.map(1..n, &member/1) end,
        fresh: fn n -> member(n + :rand.uniform(n)) end,
        existing: fn n -> member(:rand.uniform(n)) end
      }
    }

    inputs = fn gen, n -> List.to_tuple(for _ <- 1..1000, do: gen.(n)) end

    IO.puts("# Strata.SortedSet benchmark (p50 / p99 ns per call, #{samples} calls a cell)\n")

    IO.puts(
      "No-op NIF floor: #{Bench.fmt(Bench.measure(&Strata.Native.runtime_noop/1, {1, 2, 3}, samples))}\n"
    )

    for {kind, gen} <- kinds, n <- sizes do
      items = gen.present.(n)
      sorted = Enum.sort(items)
      set = SortedSet.from_proper_enumerable(sorted)
      gb = :gb_sets.from_ordset(sorted)
      ets = :ets.new(:bench, [:ordered_set, :public])
      :ets.insert(ets, Enum.map(sorted, &{&1}))
      ord = if n <= 250_000, do: sorted

      fresh = inputs.(gen.fresh, n)
      existing = inputs.(gen.existing, n)
      indices = List.to_tuple(for _ <- 1..1000, do: :rand.uniform(n) - 1)

      # Each add is undone (untimed) and each remove is of an existing item put back (untimed),
      # so every sample sees a set of size n.
      add_remove = fn add, remove ->
        %{
          add: Bench.measure(add, fresh, samples, remove),
          remove: Bench.measure(remove, existing, samples, add)
        }
      end

      strata =
        Map.merge(
          add_remove.(&SortedSet.index_add(set, &1), &SortedSet.index_remove(set, &1)),
          %{
            find_index: Bench.measure(&SortedSet.find_index(set, &1), existing, samples),
            at: Bench.measure(&SortedSet.at(set, &1), indices, samples),
            slice25: Bench.measure(&SortedSet.slice(set, &1, 25), indices, samples),
            member?: Bench.measure(&SortedSet.member?(set, &1), existing, samples)
          }
        )

      gb_row = %{
        add: Bench.measure(&:gb_sets.add(&1, gb), fresh, samples),
        remove: Bench.measure(&:gb_sets.delete_any(&1, gb), existing, samples),
        member?: Bench.measure(&:gb_sets.is_member(&1, gb), existing, samples)
      }

      ets_row =
        Map.merge(
          add_remove.(&:ets.insert(ets, {&1}), &:ets.delete(ets, &1)),
          %{member?: Bench.measure(&:ets.member(ets, &1), existing, samples)}
        )

      ord_row =
        ord &&
          %{
            add: Bench.measure(&:ordsets.add_element(&1, ord), fresh, div(samples, 20)),
            remove: Bench.measure(&:ordsets.del_element(&1, ord), existing, div(samples, 20)),
            member?: Bench.measure(&:ordsets.is_element(&1, ord), existing, div(samples, 20)),
            at: Bench.measure(&Enum.at(ord, &1), indices, div(samples, 20))
          }

      IO.puts("## #{kind}, #{n} items\n")

      rows =
        for {name, row} <- [
              {"Strata.SortedSet", strata},
              {":gb_sets", gb_row},
              {"ETS ordered_set", ets_row},
              {":ordsets", ord_row}
            ],
            row != nil do
          [
            name
            | Enum.map([:add, :remove, :find_index, :at, :slice25, :member?], &Bench.fmt(row[&1]))
          ]
        end

      Bench.table(
        ["structure", "add", "remove", "find_index", "at", "slice(25)", "member?"],
        rows
      )

      ratio = fn op -> Float.round(gb_row[op].p50 / strata[op].p50, 1) end
      IO.puts("add vs :gb_sets (p50): #{ratio.(:add)}x faster; member? #{ratio.(:member?)}x\n")

      :ets.delete(ets)
    end
  end

  # Bulk construction.
  def build do
    n = 1_000_000
    shuffled = Enum.shuffle(1..n)
    {strata_ms, _set} = Bench.ms(fn -> SortedSet.from_enumerable(shuffled) end)
    {gb_ms, _} = Bench.ms(fn -> :gb_sets.from_list(shuffled) end)
    {sort_ms, _} = Bench.ms(fn -> Enum.sort(shuffled) end)

    IO.puts("## Building from 1M shuffled integers\n")

    Bench.table(["from_enumerable", ":gb_sets.from_list", "Enum.sort"], [
      [
        "#{Float.round(strata_ms, 1)} ms",
        "#{Float.round(gb_ms, 1)} ms",
        "#{Float.round(sort_ms, 1)} ms"
      ]
    ])
  end

  # Runs first, before the other sections grow the BEAM's own heaps.
  def memory do
    # Native memory versus the raw payload and versus the RSS growth it causes. Items are made
    # in small batches so that the BEAM heap does not grow along.
    IO.puts("## Memory at 1M items (added one by one in random order)\n")
    n = 1_000_000

    memory_row = fn kind, make, payload ->
      :erlang.garbage_collect()
      rss0 = Bench.rss()
      set = SortedSet.new()

      Enum.each(0..(div(n, 1000) - 1), fn chunk ->
        SortedSet.add_all(
          set,
          for(i <- (chunk * 1000 + 1)..(chunk * 1000 + 1000), do: make.(rem(i * 7919, n)))
        )
      end)

      :erlang.garbage_collect()
      grown = Bench.rss() - rss0
      mem = SortedSet.memory(set)
      raw = payload * n

      [
        kind,
        "#{Float.round(mem / n, 1)} B",
        "#{Float.round(raw / n, 1)} B",
        "#{Float.round(mem / raw, 2)}x",
        "#{Float.round(grown / 1_048_576, 1)} MiB",
        "#{Float.round(mem / 1_048_576, 1)} MiB",
        "#{Float.round((mem - grown) / grown * 100, 1)}%"
      ]
    end

    # Raw payload: the word holding the term plus its heap cells (what a list of them costs
    # beyond the cons cells).
    raw_bytes = fn term -> 8 * (1 + :erts_debug.flat_size(term)) end

    Bench.table(
      [
        "items",
        "memory/1 per item",
        "raw payload per item",
        "ratio",
        "RSS growth",
        "memory/1",
        "memory/1 vs RSS"
      ],
      [
        memory_row.("integers", &(&1 * 2), raw_bytes.(123_456)),
        memory_row.("member tuples", &member/1, raw_bytes.(member(123_456)))
      ]
    )
  end
end

SortedSetBench.main()
