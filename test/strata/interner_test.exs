defmodule Strata.InternerTest do
  use ExUnit.Case, async: true

  alias Strata.Interner

  doctest Interner

  test "random keys get dense, stable ids, as a map would give them (PropEr)" do
    import Strata.PropCheck
    key = let(:proper_types.integer(1, 400), &("did:plc:" <> Integer.to_string(&1, 36)))

    property =
      forall(:proper_types.list(key), fn keys ->
        interner = Interner.new()

        {model, ok} =
          Enum.reduce(keys, {%{}, true}, fn key, {model, ok} ->
            id = Map.get(model, key, map_size(model))
            {Map.put(model, key, id), ok and Interner.intern(interner, key) == id}
          end)

        ok and Interner.size(interner) == map_size(model) and
          Enum.all?(model, fn {key, id} ->
            Interner.lookup(interner, key) == id and Interner.key(interner, id) == key
          end) and
          Interner.key(interner, map_size(model)) == nil and
          Interner.lookup(interner, "did:plc:unknown!") == nil and
          inspect(interner) == "#Strata.Interner<size: #{map_size(model)}>"
      end)

    check("interner", property, 200, 600)
  end

  test "concurrent interning gives every key exactly one id" do
    interner = Interner.new()
    keys = for i <- 1..2000, do: "k#{i}"

    ids =
      1..8
      |> Enum.map(fn _ ->
        Task.async(fn -> Map.new(Enum.shuffle(keys), &{&1, Interner.intern(interner, &1)}) end)
      end)
      |> Enum.map(&Task.await/1)

    assert Enum.uniq(ids) |> length() == 1
    assert hd(ids) |> Map.values() |> Enum.sort() == Enum.to_list(0..1999)
  end

  test "bad input raises ArgumentError naming the argument" do
    interner = Interner.new()
    assert_raise ArgumentError, ~r/argument key/, fn -> Interner.intern(interner, :atom) end

    assert_raise ArgumentError, ~r/argument key/, fn ->
      Interner.intern(interner, String.duplicate("x", 70_000))
    end

    assert_raise ArgumentError, ~r/argument id/, fn -> Interner.key(interner, -1) end
    assert_raise ArgumentError, ~r/argument interner/, fn -> Interner.lookup(:nope, "k") end
    assert Interner.size(interner) == 0
  end
end
