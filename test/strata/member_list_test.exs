defmodule Strata.MemberListTest do
  use ExUnit.Case, async: true

  alias Strata.{MemberList, MemberListClient}

  doctest MemberList

  # The whole rendered list, rebuilt from the members alone: the model.
  def model_list(members, groups) do
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

  # The acid test, as a stateful property: random mutations (joins, presence, name and role
  # changes, leaves, new groups) against a list watched by 12 clients with random ranges.
  # After every mutation the server's list equals the model rebuilt from the members alone,
  # and every client, applying exactly the ops it was sent, shows what the server shows in
  # each of its ranges, with at most one op per changed position (or one SYNC per range).
  # PropEr shrinks a failure to the shortest command sequence that still fails.
  defmodule Acid do
    @moduledoc false
    import Strata.PropCheck, only: [let: 2]
    alias Strata.{Gen, MemberList, MemberListClient}
    alias Strata.MemberListTest, as: T

    @names ~w(amy Amy bob BOB cy dee eve Eve fin gus hal ivy jo kai lu max)
    @roles [:r1, :r2, :r3, :r4]

    def member(id) do
      fields = {
        :proper_types.elements(@names),
        :proper_types.elements(["", "", "x", "Z"]),
        roles(),
        :proper_types.elements([:online, :idle, :dnd, :offline, :offline])
      }

      let(fields, fn {name, suffix, roles, status} ->
        %{id: id, name: name <> suffix, roles: roles, status: status}
      end)
    end

    defp roles, do: let(Gen.list_of(:proper_types.elements(@roles), 2), &Enum.uniq/1)

    def groups do
      let({Gen.list_of(:proper_types.elements(@roles), 3), :proper_types.integer(1, 20)}, fn
        {roles, p} ->
          roles |> Enum.uniq() |> Enum.with_index(&%{id: &1, position: p + 7 * &2})
      end)
    end

    # 1 to 3 disjoint ranges: near the top, in the middle, or far past the end.
    def ranges do
      starts = :proper_types.elements([0, 0, 3, 10, 20, 35, 60, 200])
      widths = :proper_types.elements([0, 2, 5, 9])

      let({{starts, widths}, Gen.list_of({starts, widths}, 2)}, fn {first, more} ->
        [first | more]
        |> Enum.uniq_by(&elem(&1, 0))
        |> Enum.sort()
        |> Enum.map(fn {s, w} -> s..(s + w) end)
        |> Enum.reduce([], fn r, acc ->
          case acc do
            [prev | _] when r.first <= prev.last -> acc
            _ -> [r | acc]
          end
        end)
        |> Enum.reverse()
      end)
    end

    def list, do: Process.get({__MODULE__, :list})
    def clients, do: Process.get({__MODULE__, :clients})

    def command({members, _groups}) do
      # A member that is there, its status, name or roles changed.
      changes =
        case Map.values(members) do
          [] ->
            []

          present ->
            what = :proper_types.elements([:status, :name, :roles])
            changed = let({:proper_types.elements(present), what, member(0)}, &changed/1)
            [{7, {:call, __MODULE__, :upsert, [changed]}}]
        end

      :proper_types.frequency(
        [
          {9, {:call, __MODULE__, :upsert, [let(:proper_types.integer(1, 60), &member/1)]}},
          {3, {:call, __MODULE__, :remove, [:proper_types.integer(1, 60)]}},
          {1, {:call, __MODULE__, :define_groups, [groups()]}}
        ] ++ changes
      )
    end

    def precondition(_state, _call), do: true

    def next_state({members, groups}, _, {:call, _, :upsert, [m]}),
      do: {Map.put(members, m.id, m), groups}

    def next_state({members, groups}, _, {:call, _, :remove, [id]}),
      do: {Map.delete(members, id), groups}

    def next_state({members, _}, _, {:call, _, :define_groups, [groups]}), do: {members, groups}

    def changed({m, :status, new}), do: %{m | status: new.status}
    def changed({m, :name, new}), do: %{m | name: new.name}
    def changed({m, :roles, new}), do: %{m | roles: new.roles}

    def upsert(m), do: mutate(fn -> MemberList.upsert(list(), m) end)

    def remove(id), do: mutate(fn -> MemberList.remove(list(), id) end)
    def define_groups(groups), do: mutate(fn -> MemberList.define_groups(list(), groups) end)

    # Makes a change, hands each client its ops, and returns the server's whole list and
    # every way a client disagrees with the server (none when all is well).
    def mutate(fun) do
      before = Map.new(clients(), fn {s, c} -> {s, Enum.map(c.ranges, &window(&1))} end)
      changes = fun.()
      receivers = Map.new(changes)
      problems = if map_size(receivers) == length(changes), do: [], else: [:repeated_receiver]

      {clients, problems} =
        Enum.map_reduce(clients(), problems, fn {s, c}, problems ->
          c = MemberListClient.apply_ops(c, Map.get(receivers, s, []))
          after_ = Enum.map(c.ranges, &window/1)
          {{s, c}, problems ++ disagreements(s, c, receivers[s], before[s], after_)}
        end)

      Process.put({__MODULE__, :clients}, Map.new(clients))
      {MemberList.slice(list(), 0..200), MemberList.size(list()), problems}
    end

    defp window(range), do: MemberList.slice(list(), range)

    defp disagreements(s, c, ops, before, after_) do
      shown =
        for {r, server} <- Enum.zip(c.ranges, after_),
            MemberListClient.window(c, r) != server or
              MemberListClient.positions(c, r) != Enum.take(r, length(server)),
            do: {:client_differs, s, r}

      sent =
        cond do
          ops == nil -> []
          after_ == before -> [{:ops_without_change, s, ops}]
          not T.minimal?(ops, c.ranges, before, after_) -> [{:not_minimal, s, ops}]
          true -> []
        end

      shown ++ sent
    end

    def postcondition(state, call, {list, size, problems}) do
      {members, groups} = next_state(state, nil, call)
      expected = T.model_list(members, groups)
      list == expected and size == length(expected) and problems == []
    end

    def property do
      import Strata.PropCheck
      gen = let({groups(), :proper_types.vector(12, ranges())}, &setup_commands/1)

      forall(gen, fn {groups, all_ranges, commands} ->
        list = MemberList.new(groups: groups, bucket_size: 4)

        clients =
          all_ranges
          |> Enum.with_index(1)
          |> Map.new(fn {ranges, s} ->
            ops = MemberList.subscribe(list, {:client, s}, ranges)
            {{:client, s}, MemberListClient.apply_ops(MemberListClient.new(ranges), ops)}
          end)

        Process.put({__MODULE__, :list}, list)
        Process.put({__MODULE__, :clients}, clients)
        run_statem(__MODULE__, commands)
      end)
    end

    defp setup_commands({groups, all_ranges}) do
      let(:proper_statem.commands(__MODULE__, {%{}, groups}), &{groups, all_ranges, &1})
    end

    def property(module) do
      import Strata.PropCheck
      gen = let({groups(), :proper_types.vector(12, ranges())}, &commands(module, &1))

      forall(gen, fn {groups, all_ranges, commands} ->
        list = MemberList.new(groups: groups, bucket_size: 4)

        clients =
          all_ranges
          |> Enum.with_index(1)
          |> Map.new(fn {ranges, s} ->
            ops = MemberList.subscribe(list, {:client, s}, ranges)
            {{:client, s}, MemberListClient.apply_ops(MemberListClient.new(ranges), ops)}
          end)

        Process.put({__MODULE__, :list}, list)
        Process.put({__MODULE__, :clients}, clients)
        run_statem(module, commands)
      end)
    end

    defp commands(module, {groups, all_ranges}) do
      let(:proper_statem.commands(module, {%{}, groups}), &{groups, all_ranges, &1})
    end
  end

  # The acid test's batched variant: each command is a batch of up to 8 mutations (joins,
  # changes of members, possibly the same one several times, leaves, new groups); after
  # every batch each client, applying the one op list it got for the whole batch, equals the
  # server, with at most one op per changed position (or one SYNC per range).
  defmodule BatchedAcid do
    @moduledoc false
    import Strata.PropCheck, only: [let: 2]
    alias Strata.{Gen, MemberList}
    alias Strata.MemberListTest.Acid

    def command({members, _groups}) do
      {:call, __MODULE__, :batch, [Gen.list_of(mutation(members), 8)]}
    end

    defp mutation(members) do
      changes =
        case Map.values(members) do
          [] ->
            []

          present ->
            what = :proper_types.elements([:status, :name, :roles])

            changed =
              let({:proper_types.elements(present), what, Acid.member(0)}, &Acid.changed/1)

            [{7, let(changed, &{:upsert, &1})}]
        end

      :proper_types.frequency(
        [
          {9, let(let(:proper_types.integer(1, 30), &Acid.member/1), &{:upsert, &1})},
          {3, let(:proper_types.integer(1, 30), &{:remove, &1})},
          {1, let(Acid.groups(), &{:define_groups, &1})}
        ] ++ changes
      )
    end

    def precondition(_state, _call), do: true

    def next_state(state, _, {:call, _, :batch, [mutations]}),
      do: Enum.reduce(mutations, state, &step/2)

    defp step({:upsert, m}, {members, groups}), do: {Map.put(members, m.id, m), groups}
    defp step({:remove, id}, {members, groups}), do: {Map.delete(members, id), groups}
    defp step({:define_groups, groups}, {members, _}), do: {members, groups}

    def batch(mutations), do: Acid.mutate(fn -> MemberList.batch(Acid.list(), mutations) end)

    def postcondition(state, call, {list, size, problems}) do
      {members, groups} = next_state(state, nil, call)
      expected = Strata.MemberListTest.model_list(members, groups)
      list == expected and size == length(expected) and problems == []
    end
  end

  test "the acid test: every client's windows equal the server's, after every mutation" do
    Strata.PropCheck.check("member list acid", Acid.property(), 300, 200)
  end

  test "the batched acid test: every client's windows equal the server's, after every batch" do
    Strata.PropCheck.check("member list batched acid", Acid.property(BatchedAcid), 200, 60)
  end

  # At most one op per changed position (or one SYNC per range), and never both kinds.
  def minimal?(ops, ranges, before, after_) do
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
    (moves == 0 or syncs == 0) and syncs <= length(ranges) and moves <= changed
  end

  describe "subscribers" do
    defp online(i), do: %{id: i, name: "m#{1000 + i}", roles: [], status: :online}

    defp idle_process do
      spawn(fn ->
        receive do
          :stop -> :ok
        end
      end)
    end

    test "a pid subscriber that exits is unsubscribed, with nothing for the owner to do" do
      list = MemberList.new()
      pids = for _ <- 1..20, do: idle_process()
      for pid <- pids, do: MemberList.subscribe(list, pid, [0..9])
      MemberList.subscribe(list, :session, [0..9])
      # Subscribing again keeps one subscription (and one monitor).
      MemberList.subscribe(list, hd(pids), [0..9])
      assert %{subscribers: 21, views: 1} = MemberList.info(list)

      {dead, alive} = Enum.split(pids, 15)

      for pid <- dead do
        ref = Process.monitor(pid)
        send(pid, :stop)
        assert_receive {:DOWN, ^ref, :process, ^pid, :normal}
      end

      # The list's monitors fire on their own; no call on the list is needed.
      wait_until(fn -> MemberList.info(list).subscribers == 6 end)
      changes = MemberList.upsert(list, online(1))
      assert Enum.sort(Enum.map(changes, &elem(&1, 0))) == Enum.sort([:session | alive])

      # An explicit unsubscribe removes the monitor: the exit afterwards changes nothing.
      MemberList.unsubscribe(list, hd(alive))
      send(hd(alive), :stop)
      assert %{subscribers: 5} = MemberList.info(list)
    end

    test "exits that arrive while a change holds the list are applied by the next call" do
      list = MemberList.new()
      for i <- 1..50_000, do: MemberList.upsert(list, %{online(i) | roles: [rem(i, 3)]})
      pids = for _ <- 1..200, do: idle_process()
      for pid <- pids, do: MemberList.subscribe(list, pid, [0..99])
      # Exits during a long change of groups (the lock is taken to install them).
      task = Task.async(fn -> for pid <- pids, do: send(pid, :stop) end)
      MemberList.define_groups(list, [%{id: 0, position: 1}, %{id: 1, position: 2}])
      Task.await(task)
      wait_until(fn -> MemberList.upsert(list, online(0)) == [] end)
      wait_until(fn -> MemberList.info(list).subscribers == 0 end)
    end

    test "a subscriber with no ranges gets the group counts and then nothing" do
      list = MemberList.new()
      MemberList.upsert(list, online(1))
      assert MemberList.subscribe(list, :passive, []) == [{:groups, [%{id: :online, count: 1}]}]
      assert MemberList.upsert(list, online(2)) == []
      assert MemberList.subscribe(list, :passive, [0..1]) |> hd() |> elem(0) == :sync
      assert [{:passive, _}] = MemberList.upsert(list, online(0))
    end

    test "with delivery: :send, pid subscribers get messages and the others are returned" do
      list = MemberList.new(delivery: :send, id: {:guild, 1})
      me = self()

      other =
        spawn(fn -> receive(do: ({:strata_member_list, _, _} = m -> send(me, {:got, m}))) end)

      MemberList.subscribe(list, me, [0..9])
      MemberList.subscribe(list, other, [0..9])
      MemberList.subscribe(list, :session, [0..9])
      assert [{:session, ops}] = MemberList.upsert(list, online(1))
      assert_receive {:strata_member_list, {:guild, 1}, ^ops}
      assert_receive {:got, {:strata_member_list, {:guild, 1}, ^ops}}

      # In order, one message per change.
      for i <- 2..50, do: MemberList.upsert(list, online(i))
      client = MemberListClient.apply_ops(MemberListClient.new([0..9]), ops)

      client =
        Enum.reduce(2..50, client, fn _, c ->
          assert_receive {:strata_member_list, {:guild, 1}, ops}
          MemberListClient.apply_ops(c, ops)
        end)

      assert MemberListClient.window(client, 0..9) == MemberList.slice(list, 0..9)
      refute_received {:strata_member_list, _, _}
    end

    test "a change that reaches 50,000 subscribers is delivered without a long schedule" do
      # All in the monitored process (the list's owner): building the list, then changes that
      # each reach 20,000 pids (sent) and 30,000 sessions (returned).
      reports =
        Strata.SchedulerCheck.long_schedules(fn ->
          list = MemberList.new(delivery: :send)
          pids = for _ <- 1..20_000, do: idle_process()
          for pid <- pids, do: MemberList.subscribe(list, pid, [0..99])
          for s <- 1..30_000, do: MemberList.subscribe(list, {:session, s}, [0..99])

          for i <- 1..5 do
            changes = MemberList.upsert(list, online(i))
            30_000 = length(changes)
          end

          {:messages, messages} = Process.info(hd(pids), :messages)
          5 = length(messages)
          for pid <- pids, do: send(pid, :stop)
        end)

      assert reports == []
    end
  end

  defp wait_until(fun, tries \\ 200) do
    cond do
      fun.() -> :ok
      tries == 0 -> flunk("condition not reached")
      true -> Process.sleep(10) && wait_until(fun, tries - 1)
    end
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
    assert_raise ArgumentError, ~r/argument ranges/, fn -> MemberList.subscribe(list, :c, :x) end

    assert_raise ArgumentError, ~r/argument ranges/, fn ->
      MemberList.subscribe(list, :c, for(i <- 0..8, do: (i * 10)..(i * 10 + 1)))
    end

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
      :ok = Strata.Native.journal_append_raw(list.journal, <<1, 1, 1, 0>>)
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
