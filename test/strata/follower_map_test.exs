defmodule Strata.FollowerMapTest do
  use ExUnit.Case, async: true

  alias Strata.FollowerMap

  doctest FollowerMap

  # Random command sequences against a set of edges (PropEr, shrinking to the shortest failing
  # sequence); every read is checked against the model as it goes.
  defmodule Statem do
    @moduledoc false
    alias Strata.FollowerMap

    def map, do: Process.get(__MODULE__)
    def user, do: :proper_types.integer(0, 12)
    def page, do: {:proper_types.oneof([nil, user()]), :proper_types.integer(1, 5)}

    def initial_state, do: MapSet.new()

    def command(_edges) do
      :proper_types.frequency([
        {5, {:call, __MODULE__, :follow, [user(), user()]}},
        {2, {:call, __MODULE__, :unfollow, [user(), user()]}},
        {1, {:call, __MODULE__, :follow_many, [:proper_types.list({user(), user()})]}},
        {1, {:call, __MODULE__, :counts, [user()]}},
        {1, {:call, __MODULE__, :pages, [user(), page()]}},
        {1, {:call, __MODULE__, :social, [user(), user(), page()]}}
      ])
    end

    def precondition(_edges, {:call, _, :follow_many, [pairs]}),
      do: Enum.all?(pairs, fn {a, b} -> a != b end)

    def precondition(_edges, _call), do: true

    def follow(a, b) do
      FollowerMap.follow(map(), a, b)
    rescue
      e in ArgumentError -> {:raised, e.message}
    end

    def unfollow(a, b), do: FollowerMap.unfollow(map(), a, b)
    def follow_many(pairs), do: FollowerMap.follow_many(map(), pairs)

    def counts(u),
      do: {FollowerMap.follower_count(map(), u), FollowerMap.following_count(map(), u)}

    def pages(u, {after_, limit}) do
      opts = [after: after_, limit: limit]
      {FollowerMap.followers(map(), u, opts), FollowerMap.following(map(), u, opts)}
    end

    def social(u, t, {after_, limit}) do
      opts = [after: after_, limit: limit]

      {FollowerMap.known_followers(map(), u, t, opts), FollowerMap.mutuals(map(), u, opts),
       FollowerMap.common_following(map(), u, t, opts), FollowerMap.follows?(map(), u, t)}
    end

    def next_state(edges, _, {:call, _, :follow, [a, b]}) when a != b,
      do: MapSet.put(edges, {a, b})

    def next_state(edges, _, {:call, _, :unfollow, [a, b]}), do: MapSet.delete(edges, {a, b})

    def next_state(edges, _, {:call, _, :follow_many, [pairs]}),
      do: Enum.into(pairs, edges)

    def next_state(edges, _, _), do: edges

    defp followers(edges, u), do: for({f, ^u} <- edges, do: f) |> Enum.sort()
    defp following(edges, u), do: for({^u, f} <- edges, do: f) |> Enum.sort()

    defp page(ids, nil, limit), do: Enum.take(ids, limit)
    defp page(ids, after_, limit), do: ids |> Enum.filter(&(&1 > after_)) |> Enum.take(limit)

    defp counted(ids, after_, limit), do: {page(ids, after_, limit), length(ids)}

    def postcondition(edges, {:call, _, :follow, [a, b]}, got) do
      cond do
        a == b -> match?({:raised, "argument followee: " <> _}, got)
        {a, b} in edges -> got == :already
        true -> got == :ok
      end
    end

    def postcondition(edges, {:call, _, :unfollow, [a, b]}, got),
      do: got == if({a, b} in edges, do: :ok, else: :not_following)

    def postcondition(edges, {:call, _, :follow_many, [pairs]}, got),
      do: got == MapSet.size(MapSet.difference(MapSet.new(pairs), edges))

    def postcondition(edges, {:call, _, :counts, [u]}, got),
      do: got == {length(followers(edges, u)), length(following(edges, u))}

    def postcondition(edges, {:call, _, :pages, [u, {after_, limit}]}, got) do
      got ==
        {page(followers(edges, u), after_, limit), page(following(edges, u), after_, limit)}
    end

    def postcondition(edges, {:call, _, :social, [u, t, {after_, limit}]}, got) do
      known = Enum.filter(following(edges, u), &({&1, t} in edges))
      mutual = Enum.filter(following(edges, u), &(&1 in followers(edges, u)))
      common = Enum.filter(following(edges, u), &(&1 in following(edges, t)))

      got ==
        {counted(known, after_, limit), counted(mutual, after_, limit),
         counted(common, after_, limit), {u, t} in edges}
    end

    def property do
      import Strata.PropCheck

      forall(:proper_statem.commands(__MODULE__), fn commands ->
        Process.put(__MODULE__, FollowerMap.new())

        run_statem(__MODULE__, commands, fn edges ->
          users = edges |> Enum.flat_map(&Tuple.to_list/1) |> Enum.uniq() |> length()
          FollowerMap.stats(map()) == %{users: users, edges: MapSet.size(edges)}
        end)
      end)
    end
  end

  test "random command sequences match a set of edges, for every read (PropEr, shrinking)" do
    Strata.PropCheck.check("follower map statem", Statem.property(), 200, 100)
  end

  test "bulk follows, as a list in batches or as packed binary" do
    edges = for a <- 1..100, b <- 1..50, a != b, do: {a, b}
    map = FollowerMap.new()
    assert FollowerMap.follow_many(map, edges) == length(edges)
    assert FollowerMap.follow_many(map, edges) == 0
    packed = for {a, b} <- edges, into: <<>>, do: <<a::32-little, b::32-little>>
    other = FollowerMap.from_edges(packed)
    assert FollowerMap.stats(other) == FollowerMap.stats(map)

    assert FollowerMap.followers(other, 7, limit: 1000) ==
             FollowerMap.followers(map, 7, limit: 1000)

    assert FollowerMap.memory(map) > 0
  end

  test "concurrent writers and readers end at the union of their edges" do
    map = FollowerMap.new()

    tasks =
      for p <- 0..15 do
        Task.async(fn ->
          for i <- 1..500 do
            FollowerMap.follow(map, p, 100 + i)
            FollowerMap.followers(map, 100 + i)
          end
        end)
      end

    Enum.each(tasks, &Task.await(&1, 30_000))
    assert FollowerMap.stats(map).edges == 16 * 500
    assert FollowerMap.followers(map, 250) == Enum.to_list(0..15)
  end

  test "bad input raises ArgumentError naming the argument, and changes nothing" do
    map = FollowerMap.from_edges([{1, 2}])
    assert_raise ArgumentError, ~r/argument follower/, fn -> FollowerMap.follow(map, -1, 2) end

    assert_raise ArgumentError, ~r/argument followee/, fn ->
      FollowerMap.follow(map, 1, 2 ** 32)
    end

    assert_raise ArgumentError, ~r/argument followee/, fn -> FollowerMap.follow(map, 1, :x) end
    assert_raise ArgumentError, ~r/argument map/, fn -> FollowerMap.follow(:map, 1, 2) end
    assert_raise ArgumentError, ~r/argument user/, fn -> FollowerMap.followers(map, "1") end

    assert_raise ArgumentError, ~r/argument limit/, fn ->
      FollowerMap.followers(map, 1, limit: 100_000)
    end

    assert_raise ArgumentError, ~r/argument after/, fn ->
      FollowerMap.followers(map, 1, after: -5)
    end

    assert_raise ArgumentError, ~r/cannot follow itself/, fn ->
      FollowerMap.follow_many(map, [{3, 4}, {5, 5}])
    end

    assert_raise ArgumentError, ~r/argument edges/, fn ->
      FollowerMap.follow_many(map, <<1, 2, 3>>)
    end

    assert_raise ArgumentError, ~r/argument edges/, fn ->
      FollowerMap.follow_many(map, [{1, :x}])
    end

    assert_raise ArgumentError, ~r/argument edges/, fn -> FollowerMap.follow_many(map, 5) end
    assert FollowerMap.stats(map) == %{users: 2, edges: 1}
    assert FollowerMap.followers(map, 12_345) == []
  end
end
