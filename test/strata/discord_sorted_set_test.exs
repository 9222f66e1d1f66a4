defmodule Strata.DiscordSortedSetTest do
  # Pins each difference between Strata.DiscordSortedSet (Discord.SortedSet 2.x's contract)
  # and Strata.SortedSet, and checks the contract against a model over random terms.
  use ExUnit.Case, async: true

  alias Strata.DiscordSortedSet, as: SortedSet

  doctest Strata.DiscordSortedSet
  doctest Strata.DiscordSortedSet.NifBridge

  test "sets are bare references; new/0,1,2 take a capacity and any bucket size from 1" do
    set = SortedSet.new()
    assert is_reference(set)
    assert SortedSet.default_capacity() == 500 and SortedSet.default_bucket_size() == 500

    for bucket <- [1, 2, 3] do
      set = Enum.reduce([5, 1, 4, 2, 3], SortedSet.new(3, bucket), &SortedSet.add(&2, &1))
      assert SortedSet.to_list(set) == [1, 2, 3, 4, 5]

      assert Enum.reduce([1, 3, 5], set, &SortedSet.remove(&2, &1)) |> SortedSet.to_list() == [
               2,
               4
             ]
    end

    assert SortedSet.new(10) |> SortedSet.size() == 0
    # Strata.SortedSet keeps its own minimum of 4; Discord's panics on 0, this raises.
    assert_raise ArgumentError, ~r/bucket_size/, fn -> Strata.SortedSet.new(10, 2) end
    assert_raise ArgumentError, ~r/bucket_size/, fn -> SortedSet.new(10, 0) end
  end

  test "unsupported terms give {:error, :unsupported_type} and change nothing" do
    port = Port.open({:spawn, "cat"}, [:binary])

    unsupported = [
      1.5,
      {1, 2.0},
      [1, [2, 3.0]],
      %{a: 1},
      2 ** 64,
      -(2 ** 63) - 1,
      <<255, 0>>,
      <<1::3>>,
      self(),
      make_ref(),
      port,
      & &1,
      [1 | 2]
    ]

    set = SortedSet.from_enumerable([1, 2])

    for term <- unsupported do
      assert SortedSet.add(set, term) == {:error, :unsupported_type}, inspect(term)
      assert SortedSet.index_add(set, term) == {:error, :unsupported_type}
      assert SortedSet.remove(set, term) == {:error, :unsupported_type}
      assert SortedSet.index_remove(set, term) == {:error, :unsupported_type}
      assert SortedSet.find_index(set, term) == {:error, :unsupported_type}
      assert SortedSet.from_enumerable([1, term]) == {:error, :unsupported_type}
      assert SortedSet.from_proper_enumerable([1, term]) == {:error, :unsupported_type}
    end

    Port.close(port)
    assert SortedSet.to_list(set) == [1, 2]
    # Strata.SortedSet stores floats, maps and big integers, and raises on the rest.
    assert Strata.SortedSet.to_list(Strata.SortedSet.from_enumerable([1.5, %{a: 1}, 2 ** 64])) ==
             [1.5, 2 ** 64, %{a: 1}]

    assert_raise ArgumentError, fn -> Strata.SortedSet.add(Strata.SortedSet.new(), self()) end
  end

  test "the largest and smallest 64-bit integers, UTF-8 binaries and nested terms are supported" do
    terms = [2 ** 63 - 1, -(2 ** 63), "ünïcödé", {[:a, "b"], {1, [2, [3]]}}, [], {}]
    set = SortedSet.from_enumerable(terms)
    assert SortedSet.to_list(set) == Enum.sort(terms)
  end

  test "indices: negative ones raise, ones past the end (and past usize::MAX) give the default" do
    set = SortedSet.from_enumerable([1, 2, 3])
    max = SortedSet.NifBridge.usize_max()
    assert SortedSet.at(set, 2) == 3
    assert SortedSet.at(set, 3, :default) == :default
    assert SortedSet.at(set, max + 1, :default) == :default
    assert SortedSet.slice(set, max + 1, 10) == []
    assert SortedSet.slice(set, 1, max + 1) == [2, 3]
    assert SortedSet.slice(SortedSet.new(), 5, 0) == []
    # Strata.SortedSet counts negative indices from the end; Discord's set raises.
    assert Strata.SortedSet.at(SortedSet.to_strata(set), -1) == 3
    assert_raise ArgumentError, ~r/index/, fn -> SortedSet.at(set, -1) end
    assert_raise ArgumentError, ~r/start/, fn -> SortedSet.slice(set, -1, 2) end
    assert_raise ArgumentError, ~r/argument set/, fn -> SortedSet.size(:not_a_set) end
  end

  test "from_proper_enumerable of a list that is not proper still builds the right set" do
    set = SortedSet.from_proper_enumerable([3, 1, 2, 2])
    assert SortedSet.to_list(set) == [1, 2, 3]
    assert SortedSet.from_proper_enumerable([]) |> SortedSet.add(1) |> SortedSet.size() == 1
    # Strata.SortedSet refuses it instead.
    assert_raise ArgumentError, fn -> Strata.SortedSet.from_proper_enumerable([3, 1]) end
  end

  test "concurrent writers never see {:error, :lock_fail}" do
    set = SortedSet.new()

    1..8
    |> Enum.map(fn p ->
      Task.async(fn -> for i <- 1..2000, do: SortedSet.add(set, i * 8 + p) end)
    end)
    |> Enum.flat_map(&Task.await(&1, 30_000))
    |> Enum.each(&assert(&1 == set))

    assert SortedSet.size(set) == 16_000
  end

  test "adds, removes and lookups of random supported terms match a sorted list (PropEr)" do
    import Strata.PropCheck

    scalar =
      :proper_types.oneof([
        :proper_types.integer(),
        :proper_types.elements([:a, :b, :"Elixir", true, nil]),
        let(Strata.Gen.binary(), fn b -> for <<c <- b>>, c < 128, into: "", do: <<c>> end)
      ])

    term =
      :proper_types.oneof([
        scalar,
        {scalar},
        {scalar, [scalar]},
        Strata.Gen.list_of(:proper_types.oneof([scalar, {scalar}]), 3)
      ])

    ops = :proper_types.list({:proper_types.elements([:add, :add, :remove, :find]), term})

    property =
      forall({:proper_types.integer(1, 8), ops}, fn {bucket, ops} ->
        set = SortedSet.new(10, bucket)

        {model, ok} =
          Enum.reduce(ops, {[], true}, fn {op, x}, {model, ok} ->
            index = Enum.count(model, &(&1 < x))
            present = x in model

            case op do
              :add ->
                got = SortedSet.index_add(set, x)

                {Enum.sort(Enum.uniq([x | model])),
                 ok and got == {if(present, do: nil, else: index), set}}

              :remove ->
                got = SortedSet.index_remove(set, x)
                {List.delete(model, x), ok and got == {if(present, do: index), set}}

              :find ->
                {model, ok and SortedSet.find_index(set, x) == if(present, do: index)}
            end
          end)

        ok and SortedSet.to_list(set) == model and SortedSet.size(set) == length(model)
      end)

    check("discord sorted set", property, 200, 100)
  end
end
