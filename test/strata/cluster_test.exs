defmodule Strata.ClusterTest do
  # Three (then four) real nodes started with :peer. Every test compares the cluster with
  # the single-node structures in this VM, fed the same calls.
  use ExUnit.Case, async: false

  alias Strata.{Cluster, MemberList, Peers, Seeded, Timeline}

  doctest Strata.Cluster

  @moduletag :cluster
  @moduletag :tmp_dir
  @moduletag :capture_log
  @moduletag timeout: 300_000

  @tl_opts [feed_capacity: 5, fanout_limit: 3, backfill: 2]
  @users 0..30

  setup_all do
    Peers.ensure_distributed()
  end

  defp start_cluster(name, count, opts) do
    peers = for i <- 1..count, do: add_peer("#{name}_#{i}")
    for {_, node} <- peers, do: Peers.start_member(node, [name: name] ++ opts)
    nodes = Enum.map(peers, &elem(&1, 1))
    await_members(nodes, name, Enum.sort(nodes))
    peers
  end

  # A peer node, stopped when the test ends.
  defp add_peer(prefix) do
    {pid, node} = Peers.start(:"#{prefix}_#{System.unique_integer([:positive])}")
    on_exit(fn -> stop_peer(pid) end)
    {pid, node}
  end

  defp stop_peer(pid) do
    :peer.stop(pid)
  catch
    _, _ -> :ok
  end

  defp await_members(nodes, name, expected) do
    Peers.eventually(fn ->
      Enum.all?(nodes, &(:erpc.call(&1, Cluster, :nodes, [name]) == expected))
    end)
  end

  defp on(node, mod, fun, args), do: :erpc.call(node, mod, fun, args, 30_000)

  # --- a single-node model fed the same calls -------------------------------------------

  defp random_op do
    {a, b} = {Enum.random(@users), Enum.random(@users)}

    case :rand.uniform(10) do
      n when n <= 3 and a != b -> {:follow, a, b}
      4 when a != b -> {:unfollow, a, b}
      5 -> {:repost, :rand.uniform(5000), a, :rand.uniform(5000)}
      6 -> {:delete_post, :rand.uniform(5000)}
      _ -> {:post, :rand.uniform(5000), a}
    end
  end

  defp apply_single(tl, {:follow, a, b}), do: Timeline.follow(tl, a, b)
  defp apply_single(tl, {:unfollow, a, b}), do: Timeline.unfollow(tl, a, b)
  defp apply_single(tl, {:post, id, a}), do: Timeline.insert_post(tl, id, a)
  defp apply_single(tl, {:repost, id, a, p}), do: Timeline.insert_repost(tl, id, a, p)
  defp apply_single(tl, {:delete_post, id}), do: Timeline.delete_post(tl, id)

  defp apply_cluster(node, c, {:follow, a, b}), do: on(node, Cluster.Timeline, :follow, [c, a, b])

  defp apply_cluster(node, c, {:unfollow, a, b}),
    do: on(node, Cluster.Timeline, :unfollow, [c, a, b])

  defp apply_cluster(node, c, {:post, id, a}),
    do: on(node, Cluster.Timeline, :insert_post, [c, id, a])

  defp apply_cluster(node, c, {:repost, id, a, p}),
    do: on(node, Cluster.Timeline, :insert_repost, [c, id, a, p])

  defp apply_cluster(node, c, {:delete_post, id}),
    do: on(node, Cluster.Timeline, :delete_post, [c, id])

  defp pages(read) do
    Stream.unfold(nil, fn
      :done ->
        nil

      cursor ->
        {items, next} = read.(cursor)
        {items, next || :done}
    end)
    |> Enum.concat()
  end

  defp same_timelines(model, nodes, c) do
    for user <- @users do
      node = Enum.random(nodes)
      got = pages(&on(node, Cluster.Timeline, :get_timeline, [c, user, [limit: 3, cursor: &1]]))
      want = pages(&Timeline.get_timeline(model, user, limit: 3, cursor: &1))
      assert got == want, "user #{user}, read on #{node}"
    end
  end

  defp run_ops(model, nodes, c, count) do
    for i <- 1..count do
      op = random_op()
      node = Enum.random(nodes)

      {got, want} = {apply_cluster(node, c, op), apply_single(model, op)}

      assert got == want,
             "op #{i} #{inspect(op)} on #{node}: #{inspect(got)}, not #{inspect(want)}"
    end
  end

  defp write_until_done(model, nodes, c, task) do
    run_ops(model, nodes, c, 1)

    case Task.yield(task, 0) do
      nil -> write_until_done(model, nodes, c, task)
      {:ok, :ok} -> :ok
    end
  end

  # --- tests ------------------------------------------------------------------------------

  test "routing equals the ring, from every node" do
    peers = start_cluster(:ring, 3, [])
    nodes = peers |> Enum.map(&elem(&1, 1)) |> Enum.sort()

    for node <- nodes, key <- 1..300 do
      owner = Cluster.owner_in(nodes, key)
      assert on(node, Cluster, :owner, [:ring, key]) == owner
      assert on(node, Cluster, :call_owner, [:ring, key, Kernel, :node, [], 5000]) == {:ok, owner}
    end
  end

  test "timelines across nodes equal one node's, and survive a node's death with the durable tier",
       %{tmp_dir: dir} do
    Seeded.run("cluster timeline", fn _seed ->
      peers = start_cluster(:tl, 3, durable: dir, timeline: @tl_opts)
      nodes = Enum.map(peers, &elem(&1, 1))
      model = Timeline.new(@tl_opts)
      run_ops(model, nodes, :tl, 400)
      same_timelines(model, nodes, :tl)

      # Kill one node abruptly; its users move and their feeds are rebuilt from its files.
      [{victim_pid, victim} | rest] = peers
      :peer.stop(victim_pid)
      alive = Enum.map(rest, &elem(&1, 1))
      await_members(alive, :tl, Enum.sort(alive))

      Peers.eventually(fn ->
        Enum.sum(Enum.map(alive, &on(&1, Cluster, :stats, [:tl]).rebuilt)) > 0
      end)

      same_timelines(model, alive, :tl)
      run_ops(model, alive, :tl, 200)
      same_timelines(model, alive, :tl)
      refute victim in Enum.flat_map(alive, &on(&1, Cluster, :nodes, [:tl]))
    end)
  end

  test "a joining node takes about 1/N of the keys, without losing a feed" do
    Seeded.run("cluster join", fn _seed ->
      peers = start_cluster(:grow, 3, timeline: @tl_opts)
      nodes = Enum.map(peers, &elem(&1, 1))
      model = Timeline.new(@tl_opts)
      run_ops(model, nodes, :grow, 300)

      {_pid, new} = add_peer("grow_4")
      # The node joins while writes go on (from one process, so the model stays exact).
      joining = Task.async(fn -> Peers.start_member(new, name: :grow, timeline: @tl_opts) end)
      write_until_done(model, nodes, :grow, joining)
      all = Enum.sort([new | nodes])
      await_members(all, :grow, all)

      moved = Enum.count(1..10_000, &(Cluster.owner_in(nodes, &1) != Cluster.owner_in(all, &1)))
      assert moved in 1800..3200, "#{moved} of 10000 keys moved"

      assert Enum.all?(
               1..10_000,
               &(Cluster.owner_in(all, &1) in [new, Cluster.owner_in(nodes, &1)])
             )

      same_timelines(model, all, :grow)
      run_ops(model, all, :grow, 200)
      same_timelines(model, all, :grow)
      assert on(new, Cluster, :stats, [:grow]).moved_in > 0
    end)
  end

  test "member lists live on their guild's owner and move with it", %{tmp_dir: dir} do
    Seeded.run("cluster member lists", fn _seed ->
      peers = start_cluster(:ml, 3, durable: dir)
      nodes = Enum.map(peers, &elem(&1, 1))
      guilds = 1..6
      models = Map.new(guilds, &{&1, MemberList.new()})

      check = fn nodes, phase ->
        for guild <- guilds do
          node = Enum.random(nodes)
          want = MemberList.slice(models[guild], 0..200)
          got = on(node, Cluster.MemberList, :slice, [:ml, guild, 0..200])
          owner = Cluster.owner_in(nodes, guild)
          assert got == want, "#{phase}: guild #{guild} read on #{node}, owner #{owner}"

          assert on(node, Cluster.MemberList, :size, [:ml, guild]) ==
                   MemberList.size(models[guild])
        end
      end

      change = fn nodes, count ->
        for _ <- 1..count do
          guild = Enum.random(guilds)
          id = :rand.uniform(40)

          {fun, args} =
            if :rand.uniform(5) == 1,
              do: {:remove, [id]},
              else:
                {:upsert,
                 [
                   %{
                     id: id,
                     name: "m#{:rand.uniform(20)}",
                     roles: [],
                     status: Enum.random([:online, :offline])
                   }
                 ]}

          want = apply(MemberList, fun, [models[guild] | args])
          assert on(Enum.random(nodes), Cluster.MemberList, fun, [:ml, guild | args]) == want
        end
      end

      change.(nodes, 300)
      check.(nodes, "3 nodes")

      {pid, new} = add_peer("ml_4")
      Peers.start_member(new, name: :ml, durable: dir)
      all = Enum.sort([new | nodes])
      await_members(all, :ml, all)
      check.(all, "after the join")
      change.(all, 200)
      check.(all, "after changes on 4 nodes")

      # The owner of guild 1 dies: its guilds are rebuilt on their new owners from its
      # durable files.
      everyone = [{pid, new} | peers]
      victim = Cluster.owner_in(all, 1)
      {victim_pid, ^victim} = List.keyfind(everyone, victim, 1)
      :peer.stop(victim_pid)
      alive = all -- [victim]
      await_members(alive, :ml, alive)
      check.(alive, "after the death of #{victim}")
      change.(alive, 100)
      check.(alive, "after changes on 3 nodes")
    end)
  end

  test "a node that stops hands its feeds and member lists over first: nothing is lost" do
    Seeded.run("cluster graceful stop", fn _seed ->
      peers = start_cluster(:bye, 3, timeline: @tl_opts)
      nodes = Enum.map(peers, &elem(&1, 1))
      model = Timeline.new(@tl_opts)
      run_ops(model, nodes, :bye, 300)
      members = for id <- 1..30, do: %{id: id, name: "n#{id}", roles: [], status: :online}

      # No one subscribes: no upsert has ops to return.
      for guild <- 1..6, m <- members do
        assert on(Enum.random(nodes), Cluster.MemberList, :upsert, [:bye, guild, m]) == []
      end

      [leaving | staying] = nodes
      :ok = on(leaving, Cluster, :stop, [:bye])
      await_members(staying, :bye, Enum.sort(staying))
      same_timelines(model, staying, :bye)

      for guild <- 1..6 do
        assert on(Enum.random(staying), Cluster.MemberList, :size, [:bye, guild]) == 31
      end

      assert Enum.all?(staying, &(on(&1, Cluster, :stats, [:bye]).lost == 0))
    end)
  end

  test "a call to an unreachable owner fails within its timeout instead of hanging" do
    peers = start_cluster(:dead, 2, timeline: @tl_opts)
    [{pid, victim}, {_, alive}] = peers
    # A user owned by the victim, read from the survivor while the victim is being killed.
    user = Enum.find(1..1000, &(Cluster.owner_in(Enum.sort([victim, alive]), &1) == victim))
    :peer.stop(pid)

    {us, result} =
      :timer.tc(fn ->
        on(alive, Cluster.Timeline, :get_timeline, [:dead, user, [timeout: 2000]])
      end)

    assert result == {[], nil} or result == {:error, :unavailable}
    assert us < 5_000_000
    # Without a durable tier the dead node's feeds are lost, and counted.
    Peers.eventually(fn -> on(alive, Cluster, :stats, [:dead]).lost == 1 end)
  end

  test "a member whose guild registry dies stops (with a reason) instead of going on without it" do
    {:ok, member} = Cluster.start(name: :linked_exit, timeline: @tl_opts)
    ref = Process.monitor(member)
    registry = Process.whereis(:strata_cluster_linked_exit_guilds)
    Process.exit(registry, :kill)
    assert_receive {:DOWN, ^ref, :process, ^member, {:shutdown, {:linked_exit, :killed}}}, 5000
  end

  test "the child spec gives a graceful stop time for its hand-off" do
    assert Cluster.child_spec(name: :x).shutdown >= 60_000
  end
end
