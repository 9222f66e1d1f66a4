# Strata.Cluster.Timeline on 1, 2 and 3 local nodes (loopback), against one Strata.Timeline
# in this VM fed the same calls: `mix run bench/cluster.exs`.
#
#   STRATA_BENCH_USERS=5000     users
#   STRATA_BENCH_FOLLOWS=25000  follows (power law)
#   STRATA_BENCH_POSTS=5000     posts by random authors
harness = Code.require_file("harness.exs", __DIR__)
# The tests' helper for peer nodes (started with this VM's code path).
Code.require_file("../test/support/peers.ex", __DIR__)

{:module, ClusterBench, binary, _} =
  defmodule ClusterBench do
    alias Strata.{Bench, Cluster, Timeline}

    @opts [feed_capacity: 200, fanout_limit: 1000, backfill: 10]

    def main do
      users = env("STRATA_BENCH_USERS", 5000)
      follows = env("STRATA_BENCH_FOLLOWS", 25_000)
      posts = env("STRATA_BENCH_POSTS", 5000)
      System.cmd("epmd", ["-daemon"])
      {:ok, _} = :net_kernel.start([:"strata_bench_#{System.os_time()}@127.0.0.1", :longnames])
      :rand.seed(:exsss, 3)
      edges = Bench.power_law_edges(follows, users)
      authors = for _ <- 1..posts, do: :rand.uniform(users) - 1
      readers = for _ <- 1..2000, do: :rand.uniform(users) - 1

      IO.puts(
        "# Strata.Cluster.Timeline: #{users} users, #{follows} follows, #{posts} posts (#{inspect(@opts)})\n"
      )

      single = single_node(edges, authors, readers)

      rows =
        for n <- 1..3 do
          row = cluster(n, edges, authors, readers)
          ["#{n} node#{if n > 1, do: "s"}" | row]
        end

      Bench.table(
        [
          "setup",
          "posts/s",
          "feed writes/s",
          "get_timeline(50) p50 / p99 ns",
          "local read p50 / p99 ns",
          "remote read p50 / p99 ns"
        ],
        [["one Strata.Timeline (this VM)" | single] | rows]
      )
    end

    defp env(name, default), do: String.to_integer(System.get_env(name, "#{default}"))

    defp single_node(edges, authors, readers) do
      tl = Timeline.new(@opts)
      Enum.each(edges, fn {a, b} -> Timeline.follow(tl, a, b) end)

      {ms, writes} =
        Bench.ms(fn ->
          authors
          |> Enum.with_index(1)
          |> Enum.map(fn {a, id} -> Timeline.insert_post(tl, id, a) end)
          |> Enum.sum()
        end)

      read =
        Bench.measure(&Timeline.get_timeline(tl, &1, limit: 50), List.to_tuple(readers), 2000)

      [rate(length(authors), ms), rate(writes, ms), Bench.fmt(read), "-", "-"]
    end

    defp cluster(n, edges, authors, readers) do
      peers = for i <- 1..n, do: start_peer(:"bench_#{n}_#{i}")
      nodes = Enum.map(peers, &elem(&1, 1))

      for node <- nodes,
          do: {:ok, _} = :erpc.call(node, Cluster, :start, [[name: :bench, timeline: @opts]])

      Strata.Peers.eventually(fn ->
        Enum.all?(nodes, &(length(:erpc.call(&1, Cluster, :nodes, [:bench])) == n))
      end)

      [driver | _] = nodes
      # The work runs on the first node, as a service's own process would.
      result = :erpc.call(driver, __MODULE__, :drive, [edges, authors, readers], :infinity)
      for {pid, _} <- peers, do: :peer.stop(pid)
      result
    end

    @doc false
    # On a cluster node: follows, then timed posts and reads.
    def drive(edges, authors, readers) do
      Enum.each(edges, fn {a, b} -> Cluster.Timeline.follow(:bench, a, b) end)

      {ms, writes} =
        Bench.ms(fn ->
          authors
          |> Enum.with_index(1)
          |> Enum.map(fn {a, id} -> Cluster.Timeline.insert_post(:bench, id, a) end)
          |> Enum.sum()
        end)

      read = fn user -> Cluster.Timeline.get_timeline(:bench, user, limit: 50) end
      {local, remote} = Enum.split_with(readers, &(Cluster.owner(:bench, &1) == node()))
      all = Bench.measure(read, List.to_tuple(readers), 2000)
      local = if local == [], do: nil, else: Bench.measure(read, List.to_tuple(local), 2000)
      remote = if remote == [], do: nil, else: Bench.measure(read, List.to_tuple(remote), 2000)

      [
        rate(length(authors), ms),
        rate(writes, ms),
        Bench.fmt(all),
        Bench.fmt(local),
        Bench.fmt(remote)
      ]
    end

    defp rate(count, ms), do: round(count / (ms / 1000))

    defp start_peer(name) do
      {pid, node} = Strata.Peers.start(name)

      # The harness and this module (compiled from scripts: no .beam files), on the peer too.
      for {mod, bin} <- :persistent_term.get(:strata_bench_modules) do
        {:module, ^mod} = :erpc.call(node, :code, :load_binary, [mod, ~c"nofile", bin])
      end

      {pid, node}
    end
  end

:persistent_term.put(:strata_bench_modules, [{ClusterBench, binary} | harness])
ClusterBench.main()
