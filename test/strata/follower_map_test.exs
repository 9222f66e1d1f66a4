defmodule Strata.FollowerMapTest do
  use ExUnit.Case, async: true

  alias Strata.{FollowerMap, Seeded}

  doctest FollowerMap

  test "random follows and unfollows match a set of edges, for every read" do
    Seeded.run("follower_map", fn _seed ->
      map = FollowerMap.new()
      users = 0..40

      model =
        Enum.reduce(1..5000, MapSet.new(), fn _, edges ->
          {a, b} = {Enum.random(users), Enum.random(users)}

          cond do
            a == b ->
              assert_raise ArgumentError, ~r/cannot follow itself/, fn ->
                FollowerMap.follow(map, a, b)
              end

              edges

            :rand.uniform(3) == 1 ->
              expected = if {a, b} in edges, do: :ok, else: :not_following
              assert FollowerMap.unfollow(map, a, b) == expected
              MapSet.delete(edges, {a, b})

            true ->
              expected = if {a, b} in edges, do: :already, else: :ok
              assert FollowerMap.follow(map, a, b) == expected
              MapSet.put(edges, {a, b})
          end
        end)

      followers = fn u -> for({f, ^u} <- model, do: f) |> Enum.sort() end
      following = fn u -> for({^u, f} <- model, do: f) |> Enum.sort() end

      for u <- users do
        assert FollowerMap.followers(map, u, limit: 1000) == followers.(u)
        assert FollowerMap.following(map, u, limit: 1000) == following.(u)
        assert FollowerMap.follower_count(map, u) == length(followers.(u))
        assert FollowerMap.following_count(map, u) == length(following.(u))

        assert FollowerMap.followers(map, u, after: 10, limit: 3) ==
                 followers.(u) |> Enum.filter(&(&1 > 10)) |> Enum.take(3)

        mutual = Enum.filter(following.(u), &(&1 in followers.(u)))
        assert FollowerMap.mutuals(map, u, limit: 1000) == {mutual, length(mutual)}

        t = Enum.random(users)
        known = Enum.filter(following.(u), &({&1, t} in model))
        assert FollowerMap.known_followers(map, u, t, limit: 1000) == {known, length(known)}

        assert FollowerMap.known_followers(map, u, t, limit: 1) ==
                 {Enum.take(known, 1), length(known)}

        common = Enum.filter(following.(u), &(&1 in following.(t)))
        assert FollowerMap.common_following(map, u, t, limit: 1000) == {common, length(common)}
      end

      edges = MapSet.size(model)
      users_with_edges = model |> Enum.flat_map(&Tuple.to_list/1) |> Enum.uniq() |> length()
      assert FollowerMap.stats(map) == %{users: users_with_edges, edges: edges}
      assert inspect(map) == "#Strata.FollowerMap<users: #{users_with_edges}, edges: #{edges}>"
    end)
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
