defmodule Strata.SortedSetNativeTest do
  # Not async: these tests read the VM-wide native memory counter and the scheduler monitor.
  use ExUnit.Case, async: false

  alias Strata.SortedSet

  test "dropping every reference frees the native memory" do
    # Structures of earlier tests may still be on their way out (a large ETS table that held
    # handles is freed in the background): start once the count has settled.
    before = settled_native_memory()
    parent = self()

    pid =
      spawn(fn ->
        set = SortedSet.from_enumerable(for i <- 1..200_000, do: {i, "member-name-#{i}"})
        SortedSet.add_all(set, for(i <- 1..1000, do: -i))
        send(parent, {:held, SortedSet.memory(set), Strata.native_memory()})

        receive do
          :stop -> :ok
        end
      end)

    assert_receive {:held, held, during}, 30_000
    assert held > 200_000 * 16
    assert during - before >= held

    ref = Process.monitor(pid)
    send(pid, :stop)
    assert_receive {:DOWN, ^ref, _, _, _}
    :erlang.garbage_collect()

    # The resource destructor runs once the last reference is gone; give it a moment.
    assert eventually(fn -> Strata.native_memory() - before < held / 100 end)
  end

  test "memory/1 follows the set up and back down" do
    set = SortedSet.new()
    empty = SortedSet.memory(set)
    SortedSet.add_all(set, for(i <- 1..50_000, do: "a binary longer than the inline size #{i}"))
    full = SortedSet.memory(set)
    assert full > empty + 50_000 * 50
    for i <- 1..50_000, do: SortedSet.remove(set, "a binary longer than the inline size #{i}")
    assert SortedSet.memory(set) < empty + 4096
  end

  @tag timeout: 300_000
  test "no call on a normal scheduler runs long at 1M items" do
    set = SortedSet.from_enumerable(Enum.shuffle(1..1_000_000))
    tuples = SortedSet.from_enumerable(for i <- 1..1_000_000, do: {rem(i, 10), "user#{i}", i})

    reports =
      Strata.SchedulerCheck.long_schedules(fn ->
        for s <- [set, tuples], _ <- 1..2000 do
          i = :rand.uniform(1_000_000)
          SortedSet.index_add(s, -i)
          SortedSet.find_index(s, i)
          SortedSet.at(s, i - 1)
          SortedSet.slice(s, i, 100)
          SortedSet.member?(s, {1, "user1", 1})
          SortedSet.rank(s, {5, "x", 0})
          SortedSet.at_many(s, Enum.to_list(i..(i + 999)))
          SortedSet.index_remove(s, -i)
        end

        # Long reads and batches go through in chunks (kept to a few thousand items here, so
        # that the garbage collection of a large result in this process is not counted).
        SortedSet.add_all(set, Enum.to_list(2_000_000..2_020_000))
        SortedSet.slice(set, 10, 5_000)
        SortedSet.range(tuples, {0, "", 0}, {9, "", 0}, limit: 5_000)
        # Traverse every chunk without building a 1M-item list (whose garbage collection, not
        # a NIF, could hold the scheduler).
        assert Enum.reduce(set, 0, fn _, n -> n + 1 end) == 1_020_001
        assert Enum.reduce(tuples, 0, fn _, n -> n + 1 end) == 1_000_000
        assert Enum.count(tuples) == 1_000_000
        SortedSet.memory(set)
        SortedSet.debug(set)
      end)

    assert reports == []
    assert length(SortedSet.to_list(set)) == 1_020_001
  end

  defp settled_native_memory(last \\ nil, tries \\ 100) do
    Process.sleep(50)
    now = Strata.native_memory()
    if now == last or tries == 0, do: now, else: settled_native_memory(now, tries - 1)
  end

  defp eventually(fun, tries \\ 50) do
    cond do
      fun.() ->
        true

      tries == 0 ->
        false

      true ->
        Process.sleep(20)
        :erlang.garbage_collect()
        eventually(fun, tries - 1)
    end
  end

  @tag timeout: 300_000
  test "single large terms go to a dirty scheduler, never hold a normal one" do
    set = SortedSet.new()
    big = :binary.copy("x", 50_000_000)
    map = Map.new(1..200_000, &{&1, &1})
    list = Enum.to_list(1..500_000)
    SortedSet.add(set, big)

    reports =
      Strata.SchedulerCheck.long_schedules(fn ->
        # Each call returns a small result: only the native call's time is measured.
        assert SortedSet.index_add(set, map) |> elem(0) == 0
        assert SortedSet.member?(set, list) == false
        assert SortedSet.member?(set, map)
        assert SortedSet.find_index(set, big) == 1
        assert SortedSet.rank(set, big) == 1
        assert {0, 0} = SortedSet.update(set, map, {map})
        assert {_, _} = SortedSet.index_remove(set, {map})
        assert SortedSet.add_all(set, [list]) == [0]
        assert SortedSet.range(set, list, list) |> length() == 1
        assert byte_size(SortedSet.last(set)) == 50_000_000
        assert byte_size(SortedSet.at(set, 1)) == 50_000_000
        assert [_, _] = SortedSet.slice(set, 0, 5)
        assert [_, nil] = SortedSet.at_many(set, [1, 9])
      end)

    assert reports == []
    assert SortedSet.check(set) == :ok
  end
end
