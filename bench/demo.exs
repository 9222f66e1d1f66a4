# `make demo`: a guild member list on Strata.SortedSet. Members sort by role priority, then
# name, then id; each join and leave reports the row it lands at, and a client watching rows
# 0..99 needs only the changes that land there.
Code.require_file("harness.exs", __DIR__)

defmodule Demo do
  alias Strata.{Bench, SortedSet}

  @members 100_000
  @window 0..99

  def main do
    :rand.seed(:exsss, 2026)
    names = ~w(ada bo cy dee eli fay gus hal ivy jo kai lu max nia oz pia)
    member = fn id -> {rem(id, 5), "#{Enum.at(names, rem(id * 7, 16))}#{id}", id} end

    IO.puts("Building a guild of #{@members} members (5 role tiers)...")

    {ms, list} = Bench.ms(fn -> SortedSet.from_enumerable(Stream.map(1..@members, member)) end)

    IO.puts(
      "  #{SortedSet.size(list)} members in #{Float.round(ms, 1)} ms, " <>
        "#{div(SortedSet.memory(list), 1024)} KiB native\n"
    )

    IO.puts("A client watches rows #{inspect(@window)}. Joins and leaves:")

    events =
      for _ <- 1..8 do
        if :rand.uniform(2) == 1 do
          {:join, member.(@members + :rand.uniform(1_000_000))}
        else
          {:leave, SortedSet.at(list, :rand.uniform(SortedSet.size(list)) - 1)}
        end
      end

    for {kind, m} <- events ++ [{:join, {0, "aaron", 1}}, {:leave, {0, "aaron", 1}}] do
      {index, _} =
        if kind == :join, do: SortedSet.index_add(list, m), else: SortedSet.index_remove(list, m)

      visible = if index in @window, do: "-> send to the client", else: "(outside the window)"

      IO.puts(
        "  #{kind |> to_string() |> String.pad_trailing(5)} #{inspect(m)} at row #{index} #{visible}"
      )
    end

    {old, new} = SortedSet.update(list, SortedSet.at(list, 5), {4, "renamed", 5})
    IO.puts("  rename: row #{old} moved to row #{new}\n")

    IO.puts("Per-call cost at #{@members} members (p50 / p99 ns, same run):\n")

    existing =
      List.to_tuple(for _ <- 1..1000, do: SortedSet.at(list, :rand.uniform(@members) - 1))

    fresh = List.to_tuple(for i <- 1..1000, do: member.(2_000_000 + i))
    gb = :gb_sets.from_list(SortedSet.to_list(list))

    Bench.table(["operation", "Strata.SortedSet", ":gb_sets"], [
      [
        "add (new member)",
        Bench.fmt(
          Bench.measure(
            &SortedSet.index_add(list, &1),
            fresh,
            20_000,
            &SortedSet.remove(list, &1)
          )
        ),
        Bench.fmt(Bench.measure(&:gb_sets.add(&1, gb), fresh, 20_000))
      ],
      [
        "member?",
        Bench.fmt(Bench.measure(&SortedSet.member?(list, &1), existing, 20_000)),
        Bench.fmt(Bench.measure(&:gb_sets.is_member(&1, gb), existing, 20_000))
      ],
      [
        "find_index",
        Bench.fmt(Bench.measure(&SortedSet.find_index(list, &1), existing, 20_000)),
        "n/a"
      ],
      [
        "slice(100) at a random row",
        Bench.fmt(Bench.measure(&SortedSet.slice(list, &1, 100), {0, 5000, 50_000}, 5_000)),
        "n/a"
      ]
    ])
  end
end

Demo.main()
