defmodule Strata.TelemetryTest do
  # Every event in Strata.Telemetry's table, seen by an attached handler; and nothing at all
  # (with everything working) where :telemetry is absent.
  use ExUnit.Case, async: false

  alias Strata.{Cluster, FollowerMap, Peers, SortedSet, Timeline}

  @moduletag :tmp_dir
  @moduletag :capture_log
  @moduletag timeout: 300_000

  @spans [
    [:strata, :checkpoint],
    [:strata, :recovery],
    [:strata, :snapshot, :save],
    [:strata, :snapshot, :open],
    [:strata, :snapshot, :dump],
    [:strata, :snapshot, :load],
    [:strata, :cluster, :join],
    [:strata, :cluster, :handoff],
    [:strata, :cluster, :takeover],
    [:strata, :member_list, :batch]
  ]
  @events [[:strata, :journal, :fsync], [:strata, :timeline, :fanout]] ++
            for(span <- @spans, suffix <- [:start, :stop, :exception], do: span ++ [suffix])

  # Forwards every Strata event on `node` to this process.
  defp attach(node \\ node()) do
    id = "strata-test-#{System.unique_integer([:positive])}"
    fun = &Strata.TelemetryForward.handle/4
    :ok = :erpc.call(node, :telemetry, :attach_many, [id, @events, fun, self()])
    on_exit(fn -> if node == node(), do: :telemetry.detach(id) end)
  end

  defp span_received(event, node \\ node(), pattern) do
    assert_receive {:telemetry_event, ^node, ^event, %{duration: d}, meta} when d >= 0, 10_000
    assert pattern.(meta), "#{inspect(event)} metadata: #{inspect(meta)}"
  end

  test "checkpoint, recovery, snapshot and fsync events of a durable structure", %{tmp_dir: dir} do
    attach()
    set_dir = Path.join(dir, "set")
    set = SortedSet.new(durable: set_dir, sync: :always)

    assert_receive {:telemetry_event, _, [:strata, :recovery, :start], %{system_time: _}, meta}
    assert meta == %{structure: SortedSet, dir: set_dir}

    span_received([:strata, :recovery, :stop], &(&1.result == :ok and &1.snapshot == 0))

    SortedSet.add(set, 1)

    assert_receive {:telemetry_event, _, [:strata, :journal, :fsync], m, %{dir: ^set_dir} = meta},
                   10_000

    assert m.records >= 1 and m.bytes > 0 and m.duration >= 0 and meta.kind == :sorted_set

    :ok = SortedSet.checkpoint(set)

    span_received(
      [:strata, :checkpoint, :stop],
      &(&1.structure == SortedSet and &1.result == :ok)
    )

    bytes = SortedSet.dump(set)
    assert_receive {:telemetry_event, _, [:strata, :snapshot, :dump, :stop], m, _}
    assert m.bytes == byte_size(bytes)
    {:ok, _} = SortedSet.load(bytes)
    span_received([:strata, :snapshot, :load, :stop], &(&1.result == :ok))

    path = Path.join(dir, "set.snap")
    :ok = SortedSet.save(set, path)
    span_received([:strata, :snapshot, :save, :stop], &(&1.path == path and &1.result == :ok))
    {:error, :enoent} = SortedSet.open(path <> ".missing")
    span_received([:strata, :snapshot, :open, :stop], &(&1.result == {:error, :enoent}))
    :ok = SortedSet.close(set)

    # An fsync made by close/1 on the caller's (dirty) scheduler is reported too.
    lazy_dir = Path.join(dir, "lazy")
    lazy = SortedSet.new(durable: lazy_dir, sync: :none)
    SortedSet.add(lazy, 1)
    :ok = SortedSet.close(lazy)

    assert_receive {:telemetry_event, _, [:strata, :journal, :fsync], %{records: 1},
                    %{dir: ^lazy_dir}}

    # A span whose call raises ends with :exception.
    assert_raise ArgumentError, fn -> SortedSet.load(SortedSet.dump(:not_a_set)) end
    assert_receive {:telemetry_event, _, [:strata, :snapshot, :dump, :exception], _, meta}
    assert meta.kind == :error and meta.structure == SortedSet
  end

  test "a fan-out into 1000 feeds or more" do
    attach()
    map = FollowerMap.new()

    FollowerMap.follow_many(
      map,
      for(f <- 1..1500, into: <<>>, do: <<f::32-little, 0::32-little>>)
    )

    tl = Timeline.new(follower_map: map, fanout_limit: 10_000)
    Timeline.insert_post(tl, 1, 0)
    assert_receive {:telemetry_event, _, [:strata, :timeline, :fanout], m, meta}
    assert m.feeds == 1501 and m.duration >= 0
    assert meta == %{timeline: tl, author: 0, item: 1}
    # A small one emits nothing.
    Timeline.insert_post(tl, 2, 1)
    refute_receive {:telemetry_event, _, [:strata, :timeline, :fanout], _, %{item: 2}}
  end

  test "a member list batch" do
    attach()
    list = Strata.MemberList.new(id: :guild)
    Strata.MemberList.subscribe(list, :c, [0..9])
    ms = for i <- 1..3, do: {:upsert, %{id: i, name: "m", roles: [], status: :online}}
    [{:c, _}] = Strata.MemberList.batch(list, ms)
    meta = %{list: :guild, mutations: 3}
    assert_receive {:telemetry_event, _, [:strata, :member_list, :batch, :start], _, ^meta}
    assert_receive {:telemetry_event, _, [:strata, :member_list, :batch, :stop], m, ^meta}
    assert m.subscribers == 1 and m.duration >= 0
  end

  @tag :cluster
  test "cluster join, hand-off and takeover", %{tmp_dir: dir} do
    Peers.ensure_distributed()
    beam = :persistent_term.get({:telemetry, :beam})

    peers =
      for i <- 1..3 do
        {pid, node} = Peers.start(:"telemetry_#{i}_#{System.unique_integer([:positive])}")
        on_exit(fn -> stop_peer(pid) end)

        {:module, :telemetry} =
          :erpc.call(node, :code, :load_binary, [:telemetry, ~c"telemetry.beam", beam])

        attach(node)
        {pid, node}
      end

    nodes = Enum.map(peers, &elem(&1, 1))
    for node <- nodes, do: Peers.start_member(node, name: :tele, durable: dir)

    for node <- nodes do
      span_received([:strata, :cluster, :join, :stop], node, &(&1.cluster == :tele))
    end

    Peers.eventually(fn ->
      Enum.all?(nodes, &(:erpc.call(&1, Cluster, :nodes, [:tele]) == Enum.sort(nodes)))
    end)

    for user <- 1..50, do: :erpc.call(hd(nodes), Cluster.Timeline, :follow, [:tele, user, 0])

    # A graceful stop hands the node's feeds over.
    [leaving | staying] = nodes
    :ok = :erpc.call(leaving, Cluster, :stop, [:tele])

    span_received([:strata, :cluster, :handoff, :stop], leaving, fn meta ->
      Enum.sort(meta.to) == Enum.sort(staying)
    end)

    # A death: the survivor that sorts first takes over from the dead node's directory.
    [{victim_pid, victim}] = for {pid, node} <- peers, node == hd(staying), do: {pid, node}
    :peer.stop(victim_pid)
    [survivor] = staying -- [victim]
    span_received([:strata, :cluster, :takeover, :stop], survivor, &(&1.dead == victim))
  end

  defp stop_peer(pid) do
    :peer.stop(pid)
  catch
    _, _ -> :ok
  end

  test "without :telemetry, nothing is emitted and everything works", %{tmp_dir: dir} do
    code = """
    false = Strata.Telemetry.enabled?()
    set = Strata.SortedSet.new(durable: #{inspect(dir)})
    Strata.SortedSet.add(set, 1)
    :ok = Strata.SortedSet.checkpoint(set)
    {:ok, _} = Strata.SortedSet.load(Strata.SortedSet.dump(set))
    :ok = Strata.SortedSet.close(set)
    IO.puts("done")
    """

    assert {"done\n", 0} = Strata.ChildVM.run(code)
  end
end
