defmodule Strata.SortedSetTest do
  use ExUnit.Case, async: true

  alias Strata.{Seeded, SortedSet}

  doctest SortedSet

  # A sorted list with `==` uniqueness: the model the set is checked against.
  defmodule Model do
    @moduledoc false
    def add(list, x) do
      {before, rest} = Enum.split_while(list, &(&1 < x))

      case rest do
        [y | _] when y == x -> {nil, list}
        _ -> {length(before), before ++ [x | rest]}
      end
    end

    def remove(list, x) do
      case Enum.find_index(list, &(&1 == x)) do
        nil -> {nil, list}
        i -> {i, List.delete_at(list, i)}
      end
    end

    def rank(list, x), do: Enum.count(list, &(&1 < x))
  end

  describe "term order" do
    test "to_list equals :lists.usort/1 for random mixed terms (PropEr, shrinking)" do
      import Strata.PropCheck

      property =
        forall(:proper_types.list(Strata.Gen.term(3)), fn terms ->
          expected = :lists.usort(terms)
          built = SortedSet.from_enumerable(terms, bucket_size: 8)
          added = SortedSet.new(bucket_size: 4)
          Enum.each(terms, &SortedSet.add(added, &1))

          SortedSet.to_list(built) === expected and SortedSet.check(built) == :ok and
            SortedSet.to_list(added) === expected and SortedSet.check(added) == :ok
        end)

      check("usort", property, 200, 400)
    end

    test "integers and floats compare exactly, == items are one item and the first is kept" do
      set = SortedSet.new()
      assert SortedSet.index_add(set, 1) == {0, set}
      assert SortedSet.index_add(set, 1.0) == {nil, set}
      assert SortedSet.to_list(set) === [1]
      SortedSet.add(set, 9_007_199_254_740_993)
      SortedSet.add(set, 9_007_199_254_740_992.0)
      assert SortedSet.to_list(set) === [1, 9_007_199_254_740_992.0, 9_007_199_254_740_993]
      assert SortedSet.find_index(set, 9_007_199_254_740_992) == 1
    end

    test "maps order integer keys before float keys, values by ==" do
      items = [%{1.0 => :a}, %{1 => :a}, %{a: 1}, %{a: 1.0}, %{2 => 0, 1.0 => 0}]
      set = SortedSet.from_enumerable(items)
      assert SortedSet.to_list(set) === :lists.usort(items)
    end
  end

  # The stateful property: random command sequences against the sorted-list model; PropEr
  # shrinks a failure to the shortest sequence that still fails.
  defmodule Statem do
    @moduledoc false
    alias Strata.SortedSet
    alias Strata.SortedSetTest.Model

    # Items: mostly from a small domain (so that removes, updates and lookups hit present
    # items; integers sometimes as the equal float), the rest any supported term.
    def item do
      small =
        Strata.PropCheck.let({:proper_types.integer(1, 60), :proper_types.integer(1, 4)}, fn
          {i, 1} -> i * 1.0
          {i, 2} -> {rem(i, 7), "m#{i}"}
          {i, _} -> i
        end)

      :proper_types.frequency([{4, small}, {1, Strata.Gen.term(2)}])
    end

    def set, do: Process.get(__MODULE__)

    def initial_state, do: []

    def command(_model) do
      index = :proper_types.integer(-3, 80)
      start = :proper_types.integer(0, 80)
      amount = :proper_types.integer(0, 30)

      :proper_types.frequency([
        {4, {:call, __MODULE__, :index_add, [item()]}},
        {3, {:call, __MODULE__, :index_remove, [item()]}},
        {1, {:call, __MODULE__, :update, [item(), item()]}},
        {1, {:call, __MODULE__, :lookup, [item()]}},
        {1, {:call, __MODULE__, :at, [index]}},
        {1, {:call, __MODULE__, :slice, [start, amount]}},
        {1, {:call, __MODULE__, :range, [item(), item()]}}
      ])
    end

    def precondition(_model, _call), do: true

    def index_add(x), do: elem(SortedSet.index_add(set(), x), 0)
    def index_remove(x), do: elem(SortedSet.index_remove(set(), x), 0)
    def update(old, new), do: SortedSet.update(set(), old, new)

    def lookup(x),
      do: {SortedSet.find_index(set(), x), SortedSet.rank(set(), x), SortedSet.member?(set(), x)}

    def at(i), do: SortedSet.at(set(), i, :none)
    def slice(start, amount), do: SortedSet.slice(set(), start, amount)

    def range(a, b) do
      {a, b} = Enum.min_max([a, b])
      SortedSet.range(set(), a, b, min_inclusive: false)
    end

    def next_state(model, _result, {:call, _, :index_add, [x]}), do: elem(Model.add(model, x), 1)

    def next_state(model, _result, {:call, _, :index_remove, [x]}),
      do: elem(Model.remove(model, x), 1)

    def next_state(model, _result, {:call, _, :update, [old, new]}) do
      {_, model} = Model.remove(model, old)
      elem(Model.add(model, new), 1)
    end

    def next_state(model, _result, _read), do: model

    def postcondition(model, {:call, _, :index_add, [x]}, got),
      do: got == elem(Model.add(model, x), 0)

    def postcondition(model, {:call, _, :index_remove, [x]}, got),
      do: got == elem(Model.remove(model, x), 0)

    def postcondition(model, {:call, _, :update, [old, new]}, got) do
      {old_index, m1} = Model.remove(model, old)
      got == {old_index, elem(Model.add(m1, new), 0)}
    end

    def postcondition(model, {:call, _, :lookup, [x]}, got) do
      found = Enum.find_index(model, &(&1 == x))
      got == {found, Model.rank(model, x), found != nil}
    end

    def postcondition(model, {:call, _, :at, [i]}, got), do: got === Enum.at(model, i, :none)

    def postcondition(model, {:call, _, :slice, [start, amount]}, got),
      do: got === Enum.slice(model, start, amount)

    def postcondition(model, {:call, _, :range, [a, b]}, got) do
      {a, b} = Enum.min_max([a, b])
      got === Enum.filter(model, &(&1 > a and &1 <= b))
    end

    def property do
      import Strata.PropCheck
      gen = {:proper_types.integer(4, 8), :proper_statem.commands(__MODULE__)}

      forall(gen, fn {bucket, commands} ->
        Process.put(__MODULE__, SortedSet.new(bucket_size: bucket))

        run_statem(__MODULE__, commands, fn model ->
          SortedSet.to_list(set()) === model and SortedSet.check(set()) == :ok
        end)
      end)
    end
  end

  describe "model test" do
    test "random command sequences match a sorted-list model (PropEr, shrinking)" do
      Strata.PropCheck.check("sorted set statem", Statem.property(), 200, 150)
    end
  end

  describe "reads in chunks" do
    test "to_list, slice, range and Enum across many chunks" do
      set = SortedSet.from_enumerable(1..5000, bucket_size: 16)
      assert SortedSet.to_list(set) == Enum.to_list(1..5000)
      assert SortedSet.slice(set, 1234, 2500) == Enum.to_list(1235..3734)
      assert SortedSet.range(set, 100, 4000, limit: 3500) == Enum.to_list(100..3599)
      assert SortedSet.range(set, 100, 4000, limit: :infinity) == Enum.to_list(100..4000)
      assert Enum.count(set) == 5000
      assert Enum.slice(set, 4990..5010) == Enum.to_list(4991..5000)
      assert Enum.slice(set, 0..20//5) == [1, 6, 11, 16, 21]
      assert Enum.take(set, 3) == [1, 2, 3]
      assert Enum.member?(set, 4999.0)
      assert Enum.reduce(set, 0, &+/2) == Enum.sum(1..5000)
      assert Enum.into([0, -1], SortedSet.new()) |> SortedSet.to_list() == [-1, 0]
      assert SortedSet.first(set) == 1 and SortedSet.last(set) == 5000
      assert SortedSet.first(SortedSet.new(), :empty) == :empty
      assert inspect(set) == "#Strata.SortedSet<size: 5000>"
    end

    test "a traversal is ascending and unique while others write" do
      set = SortedSet.from_enumerable(Enum.map(1..20_000, &(&1 * 2)))

      writer =
        Task.async(fn ->
          for i <- 1..20_000 do
            SortedSet.add(set, i * 2 + 1)
            SortedSet.remove(set, i * 2)
          end
        end)

      for _ <- 1..5 do
        list = SortedSet.to_list(set)
        assert list == Enum.uniq(Enum.sort(list))
      end

      Task.await(writer, 60_000)
      assert SortedSet.to_list(set) == Enum.map(1..20_000, &(&1 * 2 + 1))
    end
  end

  describe "from_proper_enumerable/2" do
    test "builds in order and verifies the order" do
      set = SortedSet.from_proper_enumerable(1..3000, 8)
      assert SortedSet.to_list(set) == Enum.to_list(1..3000)
      assert SortedSet.check(set) == :ok

      assert_raise ArgumentError, ~r/not strictly ascending at index 2/, fn ->
        SortedSet.from_proper_enumerable([1, 2, 2.0])
      end
    end
  end

  describe "concurrency" do
    test "32 processes mutating and reading one set end at the union of their models" do
      Seeded.run("concurrency", fn seed ->
        set = SortedSet.new(bucket_size: 8)

        tasks =
          for p <- 0..31 do
            Task.async(fn ->
              :rand.seed(:exsss, seed + p)
              # Each process owns the values congruent to p mod 32, so the union is exact.
              Enum.reduce(1..2000, MapSet.new(), fn _, mine ->
                x = :rand.uniform(200) * 32 + p

                case :rand.uniform(5) do
                  1 ->
                    SortedSet.remove(set, x)
                    MapSet.delete(mine, x)

                  2 ->
                    slice = SortedSet.slice(set, :rand.uniform(100), 50)
                    assert slice == Enum.sort(slice) and slice == Enum.uniq(slice)
                    mine

                  _ ->
                    {_, ^set} = SortedSet.index_add(set, x)
                    MapSet.put(mine, x)
                end
              end)
            end)
          end

        expected = tasks |> Enum.map(&Task.await(&1, 60_000)) |> Enum.reduce(&MapSet.union/2)
        assert SortedSet.to_list(set) == Enum.sort(expected)
        assert SortedSet.check(set) == :ok
      end)
    end
  end

  describe "bad input raises ArgumentError and leaves the set untouched" do
    setup do
      %{set: SortedSet.from_enumerable([1, 2, 3])}
    end

    test "unsupported terms name their type", %{set: set} do
      for {bad, name} <- [
            {self(), "pid"},
            {make_ref(), "reference"},
            {fn -> :ok end, "fun"},
            {<<1::3>>, "bitstring"},
            {[1 | 2], "improper list"},
            {{:ok, [self()]}, "pid"},
            {Port.list() |> hd(), "port"}
          ] do
        for fun <- [
              &SortedSet.add(set, &1),
              &SortedSet.index_add(set, &1),
              &SortedSet.remove(set, &1),
              &SortedSet.member?(set, &1),
              &SortedSet.find_index(set, &1),
              &SortedSet.rank(set, &1),
              &SortedSet.update(set, 1, &1),
              &SortedSet.update(set, &1, 9),
              &SortedSet.add_all(set, [7, &1]),
              &SortedSet.range(set, &1, 5),
              &SortedSet.from_enumerable([1, &1]),
              &SortedSet.from_proper_enumerable([1, &1])
            ] do
          error = assert_raise ArgumentError, fn -> fun.(bad) end
          assert error.message =~ name
        end
      end

      assert SortedSet.to_list(set) == [1, 2, 3]
    end

    test "deep nesting is refused, not a stack overflow", %{set: set} do
      deep = Enum.reduce(1..10_000, [], fn _, acc -> [acc] end)
      assert_raise ArgumentError, ~r/nested deeper/, fn -> SortedSet.add(set, deep) end
    end

    test "wrong argument types", %{set: set} do
      not_a_set = [%{resource: make_ref()}, :set, make_ref(), nil]

      for s <- not_a_set,
          fun <- [
            &SortedSet.add(&1, 1),
            &SortedSet.index_add(&1, 1),
            &SortedSet.remove(&1, 1),
            &SortedSet.index_remove(&1, 1),
            &SortedSet.size/1,
            &SortedSet.to_list/1,
            &SortedSet.at(&1, 0),
            &SortedSet.at_many(&1, [0]),
            &SortedSet.slice(&1, 0, 1),
            &SortedSet.find_index(&1, 1),
            &SortedSet.member?(&1, 1),
            &SortedSet.first/1,
            &SortedSet.last/1,
            &SortedSet.update(&1, 1, 2),
            &SortedSet.rank(&1, 1),
            &SortedSet.range(&1, 1, 2),
            &SortedSet.add_all(&1, [1]),
            &SortedSet.memory/1,
            &SortedSet.debug/1
          ] do
        assert_raise ArgumentError, ~r/argument set/, fn -> fun.(s) end
      end

      assert_raise ArgumentError, ~r/argument index/, fn -> SortedSet.at(set, :x) end
      assert_raise ArgumentError, ~r/argument start/, fn -> SortedSet.slice(set, -1, 2) end
      assert_raise ArgumentError, ~r/argument amount/, fn -> SortedSet.slice(set, 0, "2") end
      assert_raise ArgumentError, ~r/limit/, fn -> SortedSet.range(set, 0, 2, limit: -1) end
      assert_raise ArgumentError, ~r/argument bucket_size/, fn -> SortedSet.new(10, 1) end
      assert_raise ArgumentError, ~r/argument capacity/, fn -> SortedSet.new(-1, 16) end
      assert_raise ArgumentError, ~r/argument opts/, fn -> SortedSet.new(:x) end
      assert_raise ArgumentError, fn -> SortedSet.new(bucket: 3) end
      assert_raise ArgumentError, ~r/argument items/, fn -> SortedSet.add_all(set, 5) end

      assert_raise ArgumentError, ~r/argument enumerable/, fn ->
        SortedSet.from_proper_enumerable([1 | 2])
      end

      assert SortedSet.to_list(set) == [1, 2, 3]
    end
  end

  describe "numbers at the edges of the term order" do
    test "integers in [2^63, 2^64) nested in terms compare with floats as Erlang does" do
      set = SortedSet.new()
      assert {0, _} = SortedSet.index_add(set, {2 ** 63})
      # {2 ** 63} == {2 ** 63 * 1.0}: the same item.
      assert {nil, _} = SortedSet.index_add(set, {2 ** 63 * 1.0})
      assert SortedSet.size(set) == 1
      assert {1, _} = SortedSet.index_add(set, {1.0e19})
      assert {0, _} = SortedSet.index_add(set, {-(2 ** 63) - 1})
      assert {3, _} = SortedSet.index_add(set, [2 ** 64 - 1])
      assert SortedSet.member?(set, [2 ** 64 * 1.0]) == false
      assert SortedSet.member?(set, {2 ** 63 * 1.0})
      items = SortedSet.to_list(set)
      assert items == Enum.sort(items)
    end

    test "every integer the VM can make is stored and round-trips through a snapshot",
         %{} do
      big = Bitwise.bsl(1, 8_400_000)
      huge = Bitwise.bsl(1, 33_000_000) - 1
      set = SortedSet.from_enumerable([big, -big, huge, {big}])
      assert {:ok, back} = SortedSet.load(SortedSet.dump(set))
      assert SortedSet.to_list(back) == SortedSet.to_list(set)
    end
  end

  describe "errors a caller can handle" do
    test "indices past any set are past the end, whatever their size" do
      set = SortedSet.from_enumerable([1, 2])
      assert SortedSet.at(set, 2 ** 32) == nil
      assert SortedSet.at(set, 2 ** 64, :none) == :none
      assert SortedSet.at(set, 2 ** 200, :none) == :none
    end

    test "options of the wrong kind raise ArgumentError naming them" do
      set = SortedSet.from_enumerable([1, 2])

      assert_raise ArgumentError, ~r/option :min_inclusive/, fn ->
        SortedSet.range(set, 1, 2, min_inclusive: nil)
      end

      assert_raise ArgumentError, ~r/argument opts/, fn -> SortedSet.range(set, 1, 2, :x) end
      assert_raise ArgumentError, ~r/argument opts/, fn -> SortedSet.new([:bucket_size]) end
      assert_raise ArgumentError, ~r/argument bytes/, fn -> SortedSet.load(:x) end
    end
  end
end
