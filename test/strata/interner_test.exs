defmodule Strata.InternerTest do
  use ExUnit.Case, async: true

  alias Strata.{Interner, Seeded}

  doctest Interner

  test "random keys get dense, stable ids, as a map would give them" do
    Seeded.run("interner", fn _seed ->
      interner = Interner.new()

      model =
        Enum.reduce(1..20_000, %{}, fn _, model ->
          key = "did:plc:" <> Integer.to_string(:rand.uniform(5000), 36)
          id = Map.get(model, key, map_size(model))
          assert Interner.intern(interner, key) == id
          Map.put(model, key, id)
        end)

      assert Interner.size(interner) == map_size(model)

      for {key, id} <- model do
        assert Interner.lookup(interner, key) == id
        assert Interner.key(interner, id) == key
      end

      assert Interner.key(interner, map_size(model)) == nil
      assert Interner.lookup(interner, "did:plc:unknown!") == nil
      assert Interner.memory(interner) > 0
      assert inspect(interner) == "#Strata.Interner<size: #{map_size(model)}>"
    end)
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
