defmodule Strata.MemberListTest do
  use ExUnit.Case, async: true

  alias Strata.{MemberList, MemberListClient, Seeded}

  doctest MemberList

  @names ~w(amy Amy bob BOB cy dee eve Eve fin gus hal ivy jo kai lu max)
  @roles [:r1, :r2, :r3, :r4]

  defp random_member(id) do
    %{
      id: id,
      name: Enum.random(@names) <> Enum.random(["", "", "x", "Z"]),
      roles: Enum.take_random(@roles, :rand.uniform(3) - 1),
      status: Enum.random([:online, :idle, :dnd, :offline, :offline])
    }
  end

  defp random_groups do
    @roles
    |> Enum.take_random(:rand.uniform(4) - 1)
    |> Enum.zip(Enum.take_random(1..20, 4))
    |> Enum.map(fn {id, p} -> %{id: id, position: p} end)
  end

  defp random_ranges do
    # 1 to 3 disjoint ranges: near the top, in the middle, or far past the end.
    starts = Enum.take_random([0, 0, 3, 10, 20, 35, 60, 200], :rand.uniform(3))

    starts
    |> Enum.uniq()
    |> Enum.sort()
    |> Enum.map(&(&1..(&1 + Enum.random([0, 2, 5, 9]))))
    |> Enum.reduce([], fn r, acc ->
      case acc do
        [prev | _] when r.first <= prev.last -> acc
        _ -> [r | acc]
      end
    end)
    |> Enum.reverse()
  end

  # The whole rendered list, rebuilt from the members alone: the model.
  defp model_list(members, groups) do
    hoisted = groups |> Enum.sort_by(&(-&1.position)) |> Enum.map(& &1.id)

    group_of = fn m ->
      cond do
        m.status == :offline -> :offline
        g = Enum.find(hoisted, &(&1 in m.roles)) -> g
        true -> :online
      end
    end

    by_group = Enum.group_by(Map.values(members), group_of)

    Enum.flat_map(hoisted ++ [:online, :offline], fn g ->
      case Map.get(by_group, g, []) do
        [] ->
          []

        ms ->
          sorted = Enum.sort_by(ms, &{String.downcase(&1.name), &1.id})
          [{:group, g, length(ms)} | Enum.map(sorted, &{:member, &1})]
      end
    end)
  end

  test "the acid test: every client's windows equal the server's, after every mutation" do
    for round <- 1..8 do
      Seeded.run("member_list acid #{round}", fn _seed ->
        groups = random_groups()
        list = MemberList.new(groups: groups, bucket_size: 4)

        clients =
          Map.new(1..12, fn s ->
            ranges = random_ranges()
            ops = MemberList.subscribe(list, {:client, s}, ranges)
            {{:client, s}, MemberListClient.apply_ops(MemberListClient.new(ranges), ops)}
          end)

        Enum.reduce(1..500, {clients, %{}, groups}, fn step, {clients, members, groups} ->
          before =
            Map.new(clients, fn {s, c} -> {s, Enum.map(c.ranges, &MemberList.slice(list, &1))} end)

          {changes, members, groups} =
            case :rand.uniform(20) do
              n when n <= 9 ->
                m = random_member(:rand.uniform(60))
                {MemberList.upsert(list, m), Map.put(members, m.id, m), groups}

              n when n <= 16 and members != %{} ->
                id = Enum.random(Map.keys(members))
                m = members[id]

                m =
                  Enum.random([
                    %{m | status: Enum.random([:online, :idle, :offline])},
                    %{m | name: Enum.random(@names)},
                    %{m | roles: Enum.take_random(@roles, :rand.uniform(3) - 1)}
                  ])

                {MemberList.upsert(list, m), Map.put(members, id, m), groups}

              n when n <= 19 ->
                id = :rand.uniform(60)
                {MemberList.remove(list, id), Map.delete(members, id), groups}

              _ ->
                groups = random_groups()
                {MemberList.define_groups(list, groups), members, groups}
            end

          expected = model_list(members, groups)
          assert MemberList.slice(list, 0..200) == expected, "server list at step #{step}"
          assert MemberList.size(list) == length(expected)

          receivers = Map.new(changes)

          assert map_size(receivers) == length(changes),
                 "one entry per subscriber: #{inspect(Enum.map(changes, &elem(&1, 0)))}"

          clients =
            Map.new(clients, fn {s, c} ->
              c = MemberListClient.apply_ops(c, Map.get(receivers, s, []))

              for r <- c.ranges do
                server = MemberList.slice(list, r)

                assert MemberListClient.window(c, r) == server,
                       "step #{step}, #{inspect(s)} watching #{inspect(r)} after #{inspect(receivers[s])}"

                assert MemberListClient.positions(c, r) == Enum.take(r, length(server))
              end

              after_ = Enum.map(c.ranges, &MemberList.slice(list, &1))

              if Map.has_key?(receivers, s) do
                assert after_ != before[s],
                       "step #{step}: #{inspect(s)} got ops but sees no change"

                assert_minimal(receivers[s], c.ranges, before[s], after_)
              end

              {s, c}
            end)

          {clients, members, groups}
        end)
      end)
    end
  end

  # At most one op per changed position (or one SYNC per range), and never both kinds.
  defp assert_minimal(ops, ranges, before, after_) do
    changed =
      [before, after_]
      |> Enum.zip()
      |> Enum.map(fn {old, new} ->
        length = max(length(old), length(new))
        pad = fn xs -> xs ++ List.duplicate(:none, length - length(xs)) end
        Enum.zip(pad.(old), pad.(new)) |> Enum.count(fn {a, b} -> a != b end)
      end)
      |> Enum.sum()

    moves = Enum.count(ops, &(elem(&1, 0) in [:insert, :delete, :update]))
    syncs = Enum.count(ops, &(elem(&1, 0) == :sync))
    assert moves == 0 or syncs == 0
    assert syncs <= length(ranges)
    assert moves <= changed, "#{moves} ops for #{changed} changed positions: #{inspect(ops)}"
  end

  test "items sliding into a window from above arrive as updates" do
    list = MemberList.new()

    for i <- 1..30,
        do: MemberList.upsert(list, %{id: i, name: "m#{100 + i}", roles: [], status: :online})

    [{:sync, 10..14, window}, _] = MemberList.subscribe(list, :far, [10..14])
    assert window == MemberList.slice(list, 10..14)

    # A join at the very top shifts every row down by one.
    [{:far, ops}] = MemberList.upsert(list, %{id: 99, name: "a", roles: [], status: :online})

    assert [{:insert, 1, _}, {:update, 10, slid_in}, {:groups, _}] =
             Enum.reject(ops, &match?({:update, 0, _}, &1))

    assert slid_in == hd(MemberList.slice(list, 10..10))

    client =
      MemberListClient.new([10..14])
      |> MemberListClient.apply_ops([{:sync, 10..14, window}] ++ ops)

    assert MemberListClient.window(client, 10..14) == MemberList.slice(list, 10..14)
  end

  test "a subscriber whose window does not change gets nothing" do
    list = MemberList.new()

    for i <- 1..30,
        do: MemberList.upsert(list, %{id: i, name: "m#{100 + i}", roles: [], status: :online})

    MemberList.subscribe(list, :top, [0..4])
    MemberList.subscribe(list, :bottom, [20..24])
    # A rename at row 25 moves within the group below both windows... and far above none.
    assert [] == MemberList.upsert(list, %{id: 28, name: "m1299", roles: [], status: :online})
    # A rename near the top that keeps the member at its row is one update.
    [{:top, [{:update, 2, {:member, %{name: "m102b"}}}]}] =
      MemberList.upsert(list, %{id: 2, name: "m102b", roles: [], status: :online})
  end

  test "unsubscribe and resubscribe invalidate what is no longer watched" do
    list = MemberList.new()
    MemberList.subscribe(list, :c, [0..9, 20..29])

    assert [{:invalidate, 20..29}, {:sync, 0..9, []}, {:sync, 40..49, []}, {:groups, []}] ==
             MemberList.subscribe(list, :c, [0..9, 40..49])

    assert MemberList.unsubscribe(list, :c) == [{:invalidate, 0..9}, {:invalidate, 40..49}]
    assert MemberList.unsubscribe(list, :c) == []
    assert MemberList.upsert(list, %{id: 1, name: "a", roles: [], status: :online}) == []
  end

  test "bad input raises ArgumentError naming the argument" do
    list = MemberList.new()
    assert_raise ArgumentError, ~r/argument member/, fn -> MemberList.upsert(list, %{id: 1}) end
    assert_raise ArgumentError, ~r/argument member/, fn -> MemberList.upsert(list, :x) end
    assert_raise ArgumentError, ~r/argument ranges/, fn -> MemberList.subscribe(list, :c, []) end

    assert_raise ArgumentError, ~r/argument ranges/, fn ->
      MemberList.subscribe(list, :c, [5..1//-1])
    end

    assert_raise ArgumentError, ~r/overlap/, fn ->
      MemberList.subscribe(list, :c, [0..9, 5..12])
    end

    assert_raise ArgumentError, ~r/argument ranges/, fn ->
      MemberList.subscribe(list, :c, [0..5000])
    end

    assert_raise ArgumentError, ~r/argument groups/, fn ->
      MemberList.define_groups(list, [%{id: :a}])
    end

    assert_raise ArgumentError, ~r/unique/, fn ->
      MemberList.define_groups(list, [%{id: :a, position: 1}, %{id: :b, position: 1}])
    end

    assert_raise ArgumentError, ~r/argument range/, fn -> MemberList.slice(list, :x) end
    assert_raise ArgumentError, fn -> MemberList.new(bucket: 3) end
    assert_raise ArgumentError, ~r/argument opts/, fn -> MemberList.new(:groups) end
    assert_raise ArgumentError, ~r/argument bytes/, fn -> MemberList.load(:x) end

    # A handle that is not a member list, to every function that takes one.
    for call <- [
          fn -> MemberList.upsert(:nope, %{id: 1, name: "a", roles: [], status: :online}) end,
          fn -> MemberList.remove(%{}, 1) end,
          fn -> MemberList.subscribe(self(), :c, [0..9]) end,
          fn -> MemberList.unsubscribe(:nope, :c) end,
          fn -> MemberList.slice(:nope, 0..9) end,
          fn -> MemberList.index_of(:nope, 1) end,
          fn -> MemberList.size(:nope) end,
          fn -> MemberList.group_counts(:nope) end,
          fn -> MemberList.define_groups(:nope, []) end,
          fn -> MemberList.dump(:nope) end,
          fn -> MemberList.save(:nope, "/tmp/x") end,
          fn -> MemberList.checkpoint(:nope) end,
          fn -> MemberList.close(:nope) end,
          fn -> MemberList.sync(:nope) end
        ] do
      assert_raise ArgumentError, ~r/argument list: expected a %Strata.MemberList{}/, call
    end

    # Crafted payloads under a valid checksum: {:error, {:corrupt, _}}, never a raise.
    for payload <- [
          :erlang.term_to_binary({:strata_member_list, 1, 64, [], :not_a_list}),
          :erlang.term_to_binary({:strata_member_list, 1, 64, :x, []}),
          :erlang.term_to_binary({:strata_member_list, 1, 64, [], [%{id: 1}]}),
          :erlang.term_to_binary(
            {:strata_member_list, 1, 64, [], [%{id: 1, name: "a", roles: [1 | 2], status: :a}]}
          ),
          :erlang.term_to_binary(:junk),
          "not a term"
        ] do
      assert {:error, {:corrupt, _}} =
               MemberList.load(Strata.SnapshotBytes.seal(:member_list, payload))
    end
  end

  test "only the owner changes the list; anyone reads it" do
    list = MemberList.new()
    MemberList.upsert(list, %{id: 1, name: "a", roles: [], status: :online})

    task =
      Task.async(fn ->
        read = MemberList.slice(list, 0..5)

        error =
          catch_error(MemberList.upsert(list, %{id: 2, name: "b", roles: [], status: :online}))

        {read, error}
      end)

    assert {[_, _], %ArgumentError{message: message}} = Task.await(task)
    assert message =~ "process that created it"
    assert inspect(list) == "#Strata.MemberList<size: 2>"
  end

  describe "ids, members and journals that must not break the list" do
    @describetag :tmp_dir

    test "ids 1 and 1.0 are two members, each removed on its own" do
      list = MemberList.new()
      a = %{id: 1, name: "same", roles: [], status: :online}
      b = %{id: 1.0, name: "same", roles: [], status: :online}
      MemberList.upsert(list, a)
      MemberList.upsert(list, b)
      assert MemberList.size(list) == 3
      assert MemberList.slice(list, 0..2) == [{:group, :online, 2}, {:member, a}, {:member, b}]
      assert MemberList.index_of(list, 1) == 1
      assert MemberList.index_of(list, 1.0) == 2
      MemberList.remove(list, 1.0)
      assert MemberList.slice(list, 0..9) == [{:group, :online, 1}, {:member, a}]
      MemberList.upsert(list, %{b | id: {1.0}})
      MemberList.upsert(list, %{b | id: {1}})
      assert MemberList.size(list) == 4
    end

    test "a member the set cannot store is refused before it is journaled", %{tmp_dir: dir} do
      list = MemberList.new(durable: dir)
      good = %{id: 1, name: "ok", roles: [:r1], status: :online}
      MemberList.upsert(list, good)

      for bad <- [
            %{id: 2, name: "pid", roles: [], status: :online, session: self()},
            %{id: 3, name: "ref", roles: [make_ref()], status: :online},
            %{id: 4, name: "fun", roles: [], status: :online, f: fn -> :ok end},
            %{id: 5, name: "improper", roles: [:r1 | :r2], status: :online}
          ] do
        assert_raise ArgumentError, ~r/argument member/, fn -> MemberList.upsert(list, bad) end
      end

      assert MemberList.size(list) == 2
      :ok = MemberList.close(list)
      assert {:ok, list} = MemberList.open_durable(dir)
      assert MemberList.slice(list, 0..9) == [{:group, :online, 1}, {:member, good}]
      :ok = MemberList.close(list)
    end

    test "a reopen that fails releases the directory", %{tmp_dir: dir} do
      list = MemberList.new(durable: dir)
      MemberList.upsert(list, %{id: 1, name: "ok", roles: [], status: :online})
      # A record no change could have written (as a damaged or foreign journal holds).
      :ok = Strata.Native.blob_append(list.journal, :erlang.term_to_binary({:upsert, :junk}))
      :ok = MemberList.close(list)
      assert {:error, {:corrupt, _}} = MemberList.open_durable(dir)
      # Not {:error, :locked}: the failed open let go.
      assert {:error, {:corrupt, _}} = MemberList.open_durable(dir)
    end

    test "a durable list holding an atom the reopening VM has never seen reopens",
         %{tmp_dir: dir} do
      atom = "strata_status_#{System.unique_integer([:positive])}"

      {out, 0} =
        Strata.ChildVM.run("""
        list = Strata.MemberList.new(durable: #{inspect(dir)})
        Strata.MemberList.upsert(list, %{id: 1, name: "a", roles: [], status: String.to_atom(#{inspect(atom)})})
        :ok = Strata.MemberList.checkpoint(list)
        Strata.MemberList.upsert(list, %{id: 2, name: "b", roles: [String.to_atom(#{inspect(atom <> "_role")})], status: :online})
        :ok = Strata.MemberList.close(list)
        """)

      assert out == ""

      {out, 0} =
        Strata.ChildVM.run("""
        {:ok, list} = Strata.MemberList.open_durable(#{inspect(dir)})
        IO.inspect(Strata.MemberList.size(list))
        """)

      assert out == "3\n"
    end
  end
end
