defmodule Strata.DurableTest do
  use ExUnit.Case, async: true

  alias Strata.{FollowerMap, Interner, MemberList, Seeded, SnapshotBytes, SortedSet, Timeline}

  doctest Strata.Durable

  @moduletag :tmp_dir
  @moduletag :capture_log

  # --- random operations, applied alike to a durable structure and an in-memory one -----

  # A durable structure and an in-memory one take the same random operations, with
  # checkpoints and close/reopen cycles between them, as a PropEr stateful property: every
  # operation answers the same on both, and a reopened structure holds what the in-memory
  # one holds. PropEr shrinks a failure to the shortest sequence that still fails.
  defmodule Cycles do
    @moduledoc false
    import Strata.PropCheck, only: [let: 2]
    alias Strata.{FollowerMap, Gen, Interner, MemberList, SortedSet, Timeline}

    @modules %{
      sorted_set: SortedSet,
      follower_map: FollowerMap,
      interner: Interner,
      timeline: Timeline,
      member_list: MemberList
    }

    def module(kind), do: @modules[kind]

    defp user, do: :proper_types.integer(1, 60)
    defp id, do: :proper_types.integer(1, 2000)
    defp pair, do: let({user(), user()}, fn {a, b} -> {a, if(a == b, do: b + 1, else: b)} end)

    def op(:sorted_set) do
      :proper_types.oneof([
        {:add, Gen.term()},
        {:add_all, Gen.list_of(Gen.term(), 5)},
        {:remove, Gen.term()},
        {:update, Gen.term(), Gen.term()}
      ])
    end

    def op(:follower_map) do
      :proper_types.frequency([
        {3, let(pair(), fn {a, b} -> {:follow, a, b} end)},
        {1, {:unfollow, user(), user()}},
        {1, {:follow_many, Gen.list_of(pair(), 5)}}
      ])
    end

    def op(:interner), do: {:intern, let(:proper_types.integer(1, 300), &"key-#{&1}")}

    def op(:timeline) do
      :proper_types.frequency([
        {3, {:post, id(), user()}},
        {1, {:repost, id(), user(), id()}},
        {1, {:delete_post, id()}},
        {1, {:delete_repost, id()}},
        {2, let(pair(), fn {a, b} -> {:follow, a, b} end)},
        {1, {:unfollow, user(), user()}}
      ])
    end

    def op(:member_list) do
      member = {
        :proper_types.integer(1, 80),
        :proper_types.integer(1, 30),
        Gen.list_of(:proper_types.elements([:a, :b, :c]), 2),
        :proper_types.elements([:online, :offline, :idle])
      }

      groups = [%{id: :a, position: 3}, %{id: :b, position: 1}, %{id: :c, position: 2}]

      :proper_types.frequency([
        {8,
         let(member, fn {id, n, roles, status} ->
           {:upsert, %{id: id, name: "n#{n}", roles: Enum.uniq(roles), status: status}}
         end)},
        {1, {:remove, :proper_types.integer(1, 80)}},
        {1, {:groups, let(Gen.list_of(:proper_types.elements(groups), 3), &Enum.uniq/1)}}
      ])
    end

    def apply_op(%SortedSet{} = s, {:add, x}), do: SortedSet.index_add(s, x) |> elem(0)
    def apply_op(%SortedSet{} = s, {:add_all, xs}), do: SortedSet.add_all(s, xs)
    def apply_op(%SortedSet{} = s, {:remove, x}), do: SortedSet.index_remove(s, x) |> elem(0)
    def apply_op(%SortedSet{} = s, {:update, x, y}), do: SortedSet.update(s, x, y)
    def apply_op(%FollowerMap{} = m, {:follow, a, b}), do: FollowerMap.follow(m, a, b)
    def apply_op(%FollowerMap{} = m, {:unfollow, a, b}), do: FollowerMap.unfollow(m, a, b)
    def apply_op(%FollowerMap{} = m, {:follow_many, es}), do: FollowerMap.follow_many(m, es)
    def apply_op(%Interner{} = i, {:intern, k}), do: Interner.intern(i, k)
    def apply_op(%Timeline{} = t, {:post, id, a}), do: Timeline.insert_post(t, id, a)
    def apply_op(%Timeline{} = t, {:repost, id, a, p}), do: Timeline.insert_repost(t, id, a, p)
    def apply_op(%Timeline{} = t, {:delete_post, id}), do: Timeline.delete_post(t, id)
    def apply_op(%Timeline{} = t, {:delete_repost, id}), do: Timeline.delete_repost(t, id)
    def apply_op(%Timeline{} = t, {:follow, a, b}), do: Timeline.follow(t, a, b)
    def apply_op(%Timeline{} = t, {:unfollow, a, b}), do: Timeline.unfollow(t, a, b)
    def apply_op(%MemberList{} = l, {:upsert, m}), do: MemberList.upsert(l, m)
    def apply_op(%MemberList{} = l, {:remove, id}), do: MemberList.remove(l, id)
    def apply_op(%MemberList{} = l, {:groups, gs}), do: MemberList.define_groups(l, gs)

    # The whole visible state of each structure.
    def state(%SortedSet{} = s), do: SortedSet.to_list(s)

    def state(%FollowerMap{} = m) do
      {FollowerMap.stats(m),
       for(
         u <- 0..61,
         do:
           {FollowerMap.followers(m, u, limit: 10_000),
            FollowerMap.following(m, u, limit: 10_000)}
       )}
    end

    def state(%Interner{} = i),
      do: for(id <- 0..(Interner.size(i) - 1)//1, do: Interner.key(i, id))

    def state(%Timeline{} = tl) do
      {Timeline.stats(tl), state(Timeline.follower_map(tl)),
       for(u <- 0..61, do: all_pages(tl, u, nil, []))}
    end

    def state(%MemberList{} = l), do: MemberList.slice(l, 0..(MemberList.size(l) + 1))

    defp all_pages(tl, user, cursor, acc) do
      {items, next} = Timeline.get_timeline(tl, user, limit: 7, cursor: cursor)
      if next, do: all_pages(tl, user, next, acc ++ items), else: acc ++ items
    end

    def options(:sorted_set), do: [bucket_size: 8]
    def options(:timeline), do: [feed_capacity: 6, fanout_limit: 4, backfill: 2]
    def options(_), do: []

    def fresh(kind, opts), do: module(kind).new(options(kind) ++ opts)

    # The statem: its model is the kind and sync mode (the in-memory twin is the oracle);
    # the two structures live in this process's dictionary.
    defp get(key), do: Process.get({__MODULE__, key})
    defp put(key, value), do: Process.put({__MODULE__, key}, value)

    def command({kind, sync}) do
      :proper_types.frequency([
        {30, {:call, __MODULE__, :apply_both, [op(kind)]}},
        {1, {:call, __MODULE__, :checkpoint, []}},
        {1, {:call, __MODULE__, :reopen, [kind, sync]}}
      ])
    end

    def precondition(_model, _call), do: true
    def next_state(model, _result, _call), do: model

    def apply_both(op), do: {apply_op(get(:durable), op), apply_op(get(:memory), op)}
    def checkpoint, do: module_of(get(:durable)).checkpoint(get(:durable))

    def reopen(kind, sync) do
      :ok = module(kind).close(get(:durable))
      {:ok, again} = module(kind).open_durable(get(:dir), [sync: sync] ++ options(kind))
      put(:durable, again)
      state(again) == state(get(:memory))
    end

    defp module_of(%mod{}), do: mod

    def postcondition(_model, {:call, _, :apply_both, _}, {durable, memory}),
      do: durable == memory

    def postcondition(_model, {:call, _, :checkpoint, []}, result), do: result == :ok
    def postcondition(_model, {:call, _, :reopen, _}, same?), do: same?

    def property(kind, root) do
      import Strata.PropCheck
      syncs = :proper_types.elements([:always, :none, {:interval, 5}])
      gen = let(syncs, &{&1, :proper_statem.commands(__MODULE__, {kind, &1})})

      forall(gen, fn {sync, commands} ->
        dir = Path.join(root, "run-#{System.unique_integer([:positive])}")
        put(:dir, dir)
        put(:memory, fresh(kind, []))
        put(:durable, fresh(kind, durable: dir, sync: sync))

        run_statem(__MODULE__, commands, fn _ ->
          d = get(:durable)
          :ok = module(kind).close(d)
          {:ok, again} = module(kind).open_durable(dir, [sync: sync] ++ options(kind))
          same = state(again) == state(get(:memory))
          :ok = module(kind).close(again)
          snapshots = length(Path.wildcard(Path.join(dir, "snap-*.snap")))
          File.rm_rf!(dir)
          # At most the two newest snapshots are kept.
          same and snapshots <= 2
        end)
      end)
    end
  end

  alias __MODULE__.Cycles

  # --- round trips ----------------------------------------------------------------------

  for kind <- [:sorted_set, :follower_map, :interner, :timeline, :member_list] do
    test "#{kind}: dump/load and save/open round trips, empty and after many ops (PropEr)", %{
      tmp_dir: dir
    } do
      import Strata.PropCheck
      kind = unquote(kind)
      mod = Cycles.module(kind)

      property =
        forall(:proper_types.list(Cycles.op(kind)), fn ops ->
          x = Cycles.fresh(kind, [])
          Enum.each(ops, &Cycles.apply_op(x, &1))
          {:ok, copy} = x |> mod.dump() |> mod.load()
          path = Path.join(dir, "#{kind}-#{System.unique_integer([:positive])}.snap")
          :ok = mod.save(x, path)
          {:ok, opened} = mod.open(path)
          File.rm!(path)

          # Same contents, same bytes; no temporary file left.
          Cycles.state(copy) == Cycles.state(x) and Cycles.state(opened) == Cycles.state(x) and
            mod.dump(opened) == mod.dump(x) and Path.wildcard(Path.join(dir, ".*tmp*")) == []
        end)

      check("round trip #{kind}", property, 30, 300)
    end

    test "#{kind}: a durable structure recovers to the in-memory model across checkpoints and reopens (PropEr)",
         %{tmp_dir: dir} do
      kind = unquote(kind)
      Strata.PropCheck.check("durable #{kind}", Cycles.property(kind, dir), 25, 150)
    end
  end

  # --- damaged snapshots ----------------------------------------------------------------

  defp mixed_set do
    Seeded.run("mixed set", fn _ ->
      SortedSet.from_enumerable(for _ <- 1..300, do: Seeded.term(), into: [])
    end)
  end

  test "every flipped byte, cut and appended junk of a snapshot is refused" do
    bytes = SortedSet.dump(mixed_set())
    size = byte_size(bytes)

    for i <- 0..(size - 1), rem(i, max(div(size, 1500), 1)) == 0 do
      <<a::binary-size(i), b, c::binary>> = bytes
      flip = :rand.uniform(255)

      assert {:error, {:corrupt, _}} = SortedSet.load(a <> <<Bitwise.bxor(b, flip)>> <> c),
             "byte #{i}"
    end

    for n <- 0..(size - 1) do
      assert {:error, {:corrupt, _}} = SortedSet.load(binary_part(bytes, 0, n)), "cut at #{n}"
    end

    assert {:error, {:corrupt, "1 trailing bytes"}} = SortedSet.load(bytes <> <<0>>)
    assert {:error, {:corrupt, _}} = SortedSet.load(bytes <> :crypto.strong_rand_bytes(100))
  end

  test "forged lengths, versions, kinds and flags are refused before anything is allocated" do
    payload = SnapshotBytes.payload(SortedSet.dump(SortedSet.from_enumerable(1..10)))

    assert {:error, {:corrupt, "truncated"}} =
             SortedSet.load(SnapshotBytes.seal(:sorted_set, payload, length: 2 ** 63))

    assert {:error, {:corrupt, "unsupported format version 2"}} =
             SortedSet.load(SnapshotBytes.seal(:sorted_set, payload, version: 2))

    assert {:error, {:corrupt, "unknown flags 0x4"}} =
             SortedSet.load(SnapshotBytes.seal(:sorted_set, payload, flags: 4))

    assert {:error, {:wrong_kind, :sorted_set}} =
             Timeline.load(SnapshotBytes.seal(:sorted_set, payload))

    # A count of 2^62 items in a valid envelope: refused by the bytes left, not allocated.
    forged = <<8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x3F>>
    assert {:error, {:corrupt, msg}} = SortedSet.load(SnapshotBytes.seal(:sorted_set, forged))
    assert msg =~ "exceeds the limit"
  end

  test "a snapshot file larger than the machine's memory is refused unread", %{tmp_dir: dir} do
    # A sparse file of 4 TiB: nothing to read, but far above any cap.
    path = Path.join(dir, "huge.snap")
    {:ok, file} = :file.open(path, [:write, :raw, :binary])
    :ok = :file.pwrite(file, 4 * 1024 ** 4, "x")
    :ok = :file.close(file)
    assert {:error, {:corrupt, msg}} = SortedSet.open(path)
    assert msg =~ "exceeds the limit"
  end

  test "a checksum-valid payload with a broken structure is refused" do
    # bucket 8, two items, 2 then 1 (zigzag varints): valid encoding, unsorted.
    unsorted = <<8, 2, 0, 4, 0, 2>>

    assert {:error, {:corrupt, "invalid contents: items are not strictly ascending"}} =
             SortedSet.load(SnapshotBytes.seal(:sorted_set, unsorted))

    assert {:error, {:corrupt, "invalid contents: key 1 repeats an earlier key"}} =
             Interner.load(SnapshotBytes.seal(:interner, <<2, 1, ?a, 1, ?a>>))

    assert {:error,
            {:corrupt, "invalid contents: a member list in the format of pre-release" <> _}} =
             MemberList.load(SnapshotBytes.seal(:member_list, :erlang.term_to_binary(:nope)))

    # The same member twice: a valid encoding whose count is doubled and member repeated.
    list = MemberList.new(bucket_size: 8)
    MemberList.upsert(list, %{id: 1, name: "a", roles: [], status: :online})
    <<2, 8, 0, 1, member::binary>> = list |> MemberList.dump() |> SnapshotBytes.payload()
    twice = <<2, 8, 0, 2>> <> member <> member

    assert {:error, {:corrupt, "invalid contents: member id 1 repeats"}} =
             MemberList.load(SnapshotBytes.seal(:member_list, twice))

    # Random damage under a recomputed checksum: an error or a valid structure, never a crash.
    Seeded.run("resealed damage", fn _ ->
      tl = Timeline.new(fanout_limit: 3)

      for i <- 1..200 do
        Timeline.follow(tl, :rand.uniform(30), 30 + :rand.uniform(30))
        Timeline.insert_post(tl, i, :rand.uniform(60))
      end

      for {kind, mod, x} <- [
            {:timeline, Timeline, tl},
            {:follower_map, FollowerMap, Timeline.follower_map(tl)},
            {:sorted_set, SortedSet, mixed_set()}
          ],
          _ <- 1..300 do
        payload = SnapshotBytes.payload(mod.dump(x))
        i = :rand.uniform(byte_size(payload)) - 1
        <<a::binary-size(i), b, c::binary>> = payload
        damaged = a <> <<Bitwise.bxor(b, :rand.uniform(255))>> <> c

        case mod.load(SnapshotBytes.seal(kind, damaged)) do
          {:ok, loaded} -> assert is_binary(mod.dump(loaded))
          {:error, {:corrupt, _}} -> :ok
        end
      end
    end)
  end

  # --- damaged journals -----------------------------------------------------------------

  # A durable set in `dir` after `n` single adds; returns the state after each record.
  defp journaled_set(dir, n) do
    set = SortedSet.new(durable: dir, sync: :none, bucket_size: 8)

    states =
      Enum.map(1..n, fn i ->
        SortedSet.add(set, {i, "item #{i}"})
        SortedSet.to_list(set)
      end)

    :ok = SortedSet.close(set)
    [[] | states]
  end

  defp recover_set(dir, log, bytes) do
    File.write!(log, bytes)

    case SortedSet.open_durable(dir) do
      {:ok, set} ->
        :ok = SortedSet.close(set)
        {:ok, SortedSet.to_list(set)}

      error ->
        error
    end
  end

  test "a log cut at any offset recovers exactly the records before the cut", %{tmp_dir: dir} do
    states = journaled_set(dir, 40)
    log = Path.join(dir, "log-0000000000000000.wal")
    bytes = File.read!(log)
    ends = SnapshotBytes.record_ends(bytes)
    assert length(ends) == 40

    for cut <- 32..byte_size(bytes) do
      complete = Enum.count(ends, &(&1 <= cut))
      assert {:ok, list} = recover_set(dir, log, binary_part(bytes, 0, cut))
      assert list == Enum.at(states, complete), "cut at #{cut}"
    end

    # Junk after the last record is a torn tail too.
    assert {:ok, list} = recover_set(dir, log, bytes <> :crypto.strong_rand_bytes(37))
    assert list == List.last(states)
  end

  test "a flipped byte in a log is a torn tail only in the last record", %{tmp_dir: dir} do
    states = journaled_set(dir, 40)
    log = Path.join(dir, "log-0000000000000000.wal")
    bytes = File.read!(log)
    last_start = bytes |> SnapshotBytes.record_ends() |> Enum.at(-2)

    for i <- 0..(byte_size(bytes) - 1), rem(i, 3) == 0 or i >= last_start do
      <<a::binary-size(i), b, c::binary>> = bytes
      damaged = a <> <<Bitwise.bxor(b, 1 + :rand.uniform(254))>> <> c

      if i >= last_start do
        assert {:ok, list} = recover_set(dir, log, damaged)
        assert list == Enum.at(states, 39), "byte #{i}"
      else
        assert {:error, {:corrupt, _}} = recover_set(dir, log, damaged), "byte #{i}"
      end
    end

    # A record length forged to 2^32 - 1 in the first record: records follow, so refused.
    <<head::binary-size(32), _len::32, rest::binary>> = bytes

    assert {:error, {:corrupt, msg}} =
             recover_set(dir, log, head <> <<0xFFFFFFFF::32-little>> <> rest)

    assert msg =~ "damaged record at offset 32"
  end

  test "a corrupt newest snapshot is set aside and the previous one plus a longer log used",
       %{tmp_dir: dir} do
    set = SortedSet.new(durable: dir, bucket_size: 8)
    SortedSet.add_all(set, 1..50)
    :ok = SortedSet.checkpoint(set)
    SortedSet.add_all(set, 51..80)
    :ok = SortedSet.checkpoint(set)
    SortedSet.add_all(set, 81..90)
    :ok = SortedSet.close(set)

    [older, newest] = Enum.sort(Path.wildcard(Path.join(dir, "snap-*.snap")))
    bytes = File.read!(newest)
    File.write!(newest, binary_part(bytes, 0, byte_size(bytes) - 3) <> "bad")

    {{:ok, again}, log} = ExUnit.CaptureLog.with_log(fn -> SortedSet.open_durable(dir) end)
    assert log =~ "set aside"
    assert SortedSet.to_list(again) == Enum.to_list(1..90)
    assert File.exists?(newest <> ".corrupt")
    :ok = SortedSet.close(again)

    # Nothing valid left: an error, not an empty set, now and on every later open.
    File.write!(older, "junk")
    assert {:error, {:corrupt, msg}} = SortedSet.open_durable(dir)
    assert msg =~ "no valid snapshot"
    assert {:error, {:corrupt, _}} = SortedSet.open_durable(dir)
  end

  test "a checkpoint whose files cannot be read back snapshots the live structure", %{
    tmp_dir: dir
  } do
    set = SortedSet.new(durable: dir, bucket_size: 8)
    SortedSet.add_all(set, 1..100)
    # The only snapshot (generation 0) goes bad under the open set.
    File.write!(Path.join(dir, "snap-0000000000000000.snap"), "bad sector")
    assert :ok = SortedSet.checkpoint(set)
    SortedSet.add_all(set, 101..120)
    :ok = SortedSet.close(set)
    {:ok, again} = SortedSet.open_durable(dir)
    assert SortedSet.to_list(again) == Enum.to_list(1..120)
  end

  test "checkpoints keep writers and readers on time", %{tmp_dir: dir} do
    set = SortedSet.new(durable: dir, sync: :none)
    SortedSet.add_all(set, for(i <- 1..300_000, do: {rem(i, 7), "member #{i}", i}))
    :ok = SortedSet.checkpoint(set)
    SortedSet.add_all(set, for(i <- 1..1000, do: {9, "late #{i}", i}))

    # Writes and reads while another process checkpoints three times (each run of the check
    # makes its own checkpoints).
    work = fn ->
      checkpointer = Task.async(fn -> for _ <- 1..3, do: :ok = SortedSet.checkpoint(set) end)

      Stream.iterate(0, &(&1 + 1))
      |> Enum.find(fn i ->
        SortedSet.add(set, {8, "writer", i})
        SortedSet.at(set, rem(i * 7919, 300_000))
        Task.yield(checkpointer, 0) != nil
      end)
    end

    assert Strata.SchedulerCheck.long_schedules(work) == []
    :ok = SortedSet.close(set)
  end

  test "errors name what went wrong", %{tmp_dir: dir} do
    file = Path.join(dir, "a-file")
    File.write!(file, "x")
    assert {:error, :enotdir} = SortedSet.open_durable(Path.join(file, "sub"))
    assert {:error, :enoent} = SortedSet.save(SortedSet.new(), Path.join([dir, "missing", "x"]))
    assert {:error, {:corrupt, _}} = SortedSet.open(file)
    assert {:error, :not_durable} = SortedSet.close(SortedSet.new())

    assert_raise ArgumentError, ~r/argument sync/, fn ->
      SortedSet.open_durable(Path.join(dir, "s"), sync: :sometimes)
    end

    assert_raise ArgumentError, ~r/owns its follow graph/, fn ->
      Timeline.new(durable: Path.join(dir, "t"), follower_map: FollowerMap.new())
    end

    tl = Timeline.new(durable: Path.join(dir, "t2"))

    assert_raise ArgumentError, ~r/belongs to a durable Strata.Timeline/, fn ->
      FollowerMap.follow(Timeline.follower_map(tl), 1, 2)
    end

    # Nor through a second timeline over the same graph: its follows would go unrecorded.
    assert_raise ArgumentError, ~r/argument follower_map: belongs to a durable/, fn ->
      Timeline.new(follower_map: Timeline.follower_map(tl))
    end

    :ok = Timeline.close(tl)
    assert_raise Strata.DurabilityError, ~r/closed/, fn -> Timeline.insert_post(tl, 1, 1) end
    assert Timeline.get_timeline(tl, 1) == {[], nil}
  end

  test "a durable follower map shared with an in-memory timeline records its follows",
       %{tmp_dir: dir} do
    map = FollowerMap.new(durable: dir)
    tl = Timeline.new(follower_map: map)
    :ok = Timeline.follow(tl, 1, 2)
    :ok = FollowerMap.close(map)
    {:ok, map} = FollowerMap.open_durable(dir)
    assert FollowerMap.follows?(map, 1, 2)
  end

  test "concurrent writers are all acknowledged and all recovered", %{tmp_dir: dir} do
    tl = Timeline.new(durable: dir, sync: :always)

    1..16
    |> Task.async_stream(
      fn w -> for i <- 1..50, do: 0 = Timeline.insert_post(tl, w * 1000 + i, 1000 + w) - 1 end,
      max_concurrency: 16
    )
    |> Stream.run()

    :ok = Timeline.close(tl)
    {:ok, tl} = Timeline.open_durable(dir)
    assert Timeline.stats(tl).posts == 800
  end

  test "whatever add accepts, the journal and the snapshot hold", %{tmp_dir: dir} do
    big = Bitwise.bsl(1, 8_400_000)
    huge = Bitwise.bsl(1, 33_000_000) - 1
    set = SortedSet.new(durable: dir)
    SortedSet.add(set, big)
    SortedSet.add(set, {-huge})
    :ok = SortedSet.close(set)
    assert {:ok, set} = SortedSet.open_durable(dir)
    assert SortedSet.to_list(set) == [{-huge}, big] |> Enum.sort()
    :ok = SortedSet.checkpoint(set)
    :ok = SortedSet.close(set)
    assert {:ok, set} = SortedSet.open_durable(dir)
    assert SortedSet.size(set) == 2
    :ok = SortedSet.close(set)
  end
end
