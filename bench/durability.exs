# The durable tier: snapshot and load times and file sizes, recovery (snapshot + journal
# replay) and journal throughput under each sync mode: `mix run bench/durability.exs`.
#
#   STRATA_BENCH_DIR=/path         where files go (default: a directory under the system tmp;
#                                  it must be a real disk for fsync figures to mean anything)
#   STRATA_BENCH_SET=1000000       members in the SortedSet
#   STRATA_BENCH_EDGES=10000000    edges in the FollowerMap (over 1M users)
#   STRATA_BENCH_TL_USERS=1000000  users in the Timeline
#   STRATA_BENCH_SECONDS=3         seconds per journal throughput cell
#   STRATA_BENCH_ONLY=...          some of sorted_set,follower_map,timeline,throughput
Code.require_file("harness.exs", __DIR__)

defmodule DurabilityBench do
  alias Strata.{Bench, FollowerMap, SortedSet, Timeline}

  @replayed 100_000

  def main do
    root =
      System.get_env("STRATA_BENCH_DIR") ||
        Path.join(System.tmp_dir!(), "strata-bench-#{System.os_time()}")

    File.mkdir_p!(root)
    IO.puts("# Strata durable tier (files in #{root})\n")
    :rand.seed(:exsss, 5)

    only = System.get_env("STRATA_BENCH_ONLY", "sorted_set,follower_map,timeline,throughput,many")
    run? = &String.contains?(only, &1)

    rows =
      for {name, fun} <- [
            {"sorted_set", &sorted_set/1},
            {"follower_map", &follower_map/1},
            {"timeline", &timeline/1}
          ],
          run?.(name),
          do: fun.(root)

    Bench.table(
      [
        "structure",
        "memory/1",
        "snapshot file",
        "file / memory",
        "dump",
        "load",
        "save (fsync)",
        "checkpoint (slowest write meanwhile)",
        "recovery (new VM): snapshot + #{@replayed} records"
      ],
      rows
    )

    if run?.("throughput"), do: throughput(root)
    if run?.("many"), do: many(root)
    unless System.get_env("STRATA_BENCH_KEEP"), do: File.rm_rf!(root)
  end

  defp mb(bytes), do: "#{Float.round(bytes / 1_048_576, 1)} MB"
  defp t(ms), do: "#{round(ms)} ms"

  # Dumps, loads and saves `x`; then measures recovery of a durable copy in `dir` built by
  # `fill` (a snapshot) plus `@replayed` single-change records made by `change`.
  defp row(name, mod, x, memory, dir, open_opts, change) do
    {dump_ms, bytes} = Bench.ms(fn -> mod.dump(x) end)
    {load_ms, {:ok, _}} = Bench.ms(fn -> mod.load(bytes) end)
    path = Path.join(dir, "#{name}.snap")
    {save_ms, :ok} = Bench.ms(fn -> mod.save(x, path) end)
    size = File.stat!(path).size

    # A durable copy: the snapshot placed as generation 0, then records appended to it.
    durable = Path.join(dir, "#{name}-durable")
    File.mkdir_p!(durable)
    File.write!(Path.join(durable, "snap-0000000000000000.snap"), bytes)
    {:ok, d} = mod.open_durable(durable, [sync: :none] ++ open_opts)
    for i <- 1..@replayed, do: change.(d, i)
    {checkpoint_ms, blocked} = checkpoint_blocking(mod, d, change)
    # Again, with no writer: recovery then replays exactly the records made next.
    :ok = mod.checkpoint(d)
    for i <- 1..@replayed, do: change.(d, @replayed + i)
    :ok = mod.close(d)
    recover_ms = recover_in_new_vm(mod, durable, open_opts)

    IO.puts(
      "#{name}: dump #{t(dump_ms)}, load #{t(load_ms)}, save #{t(save_ms)}, recovery #{t(recover_ms)}"
    )

    [
      name,
      mb(memory),
      mb(size),
      Float.round(size / memory, 2),
      t(dump_ms),
      t(load_ms),
      t(save_ms),
      "#{t(checkpoint_ms)} (#{t(blocked)})",
      t(recover_ms)
    ]
  end

  # Recovery as after a restart: in a new VM (this one's heap is full of the structures just
  # built), timed around open_durable/2.
  defp recover_in_new_vm(mod, dir, opts) do
    ebin = Path.join(:code.lib_dir(:strata), "ebin")

    code = """
    {us, {:ok, _}} = :timer.tc(fn -> #{inspect(mod)}.open_durable(#{inspect(dir)}, #{inspect(opts)}) end)
    IO.puts(us)
    """

    {out, 0} = System.cmd(System.find_executable("elixir"), ["-pa", ebin, "-e", code])
    lines = String.split(out, "\n", trim: true)
    # Anything recovery logged (a set-aside snapshot, a torn record) is shown.
    Enum.each(Enum.drop(lines, -1), &IO.puts("  recovery: " <> &1))
    lines |> List.last() |> String.to_integer() |> Kernel./(1000)
  end

  # Checkpoints while another process keeps changing the structure; returns the checkpoint
  # time and the longest single change meanwhile (the time writers were held up).
  defp checkpoint_blocking(mod, d, change) do
    parent = self()

    writer =
      spawn_link(fn ->
        worst =
          Stream.iterate(10_000_000, &(&1 + 1))
          |> Enum.reduce_while(0, fn i, worst ->
            {us, _} = :timer.tc(fn -> change.(d, i) end)

            receive do
              :stop -> {:halt, max(worst, us)}
            after
              0 -> {:cont, max(worst, us)}
            end
          end)

        send(parent, {:worst, worst})
      end)

    Process.sleep(50)
    {ms, :ok} = Bench.ms(fn -> mod.checkpoint(d) end)
    send(writer, :stop)
    worst = receive(do: ({:worst, us} -> us / 1000))
    {ms, worst}
  end

  defp sorted_set(root) do
    n = String.to_integer(System.get_env("STRATA_BENCH_SET", "1000000"))
    members = for id <- 1..n, do: {rem(id, 11), "member #{:rand.uniform(n)}", id}
    set = SortedSet.from_enumerable(members)
    change = fn s, i -> SortedSet.add(s, {11, "new member #{i}", n + i}) end
    row("SortedSet, #{n} members", SortedSet, set, SortedSet.memory(set), root, [], change)
  end

  defp follower_map(root) do
    edges = String.to_integer(System.get_env("STRATA_BENCH_EDGES", "10000000"))
    users = 1_000_000
    map = FollowerMap.from_edges(Bench.pack_edges(Bench.power_law_edges(edges, users)))

    change = fn m, i ->
      a = rem(i * 7919, users)
      FollowerMap.follow(m, a, rem(a + 1 + rem(i, 1000), users))
    end

    row(
      "FollowerMap, #{edges} edges",
      FollowerMap,
      map,
      FollowerMap.memory(map),
      root,
      [],
      change
    )
  end

  defp timeline(root) do
    users = String.to_integer(System.get_env("STRATA_BENCH_TL_USERS", "1000000"))
    tl = Timeline.new(fanout_limit: 10_000, feed_capacity: 100)
    edges = Bench.power_law_edges(users * 5, users)
    Enum.each(edges, fn {a, b} -> Timeline.follow(tl, a, b) end)
    for id <- 1..div(users, 5), do: Timeline.insert_post(tl, id, :rand.uniform(users) - 1)
    change = fn t, i -> Timeline.insert_post(t, 1_000_000_000 + i, rem(i * 7919, users)) end

    row(
      "Timeline, #{users} users, #{users * 5} edges, #{div(users, 5)} posts",
      Timeline,
      tl,
      Timeline.memory(tl) + FollowerMap.memory(Timeline.follower_map(tl)),
      root,
      [feed_capacity: 100],
      change
    )
  end

  # Acknowledged writes per second for each sync mode and writer count, against the same
  # writes to an in-memory set.
  defp throughput(root) do
    seconds = String.to_integer(System.get_env("STRATA_BENCH_SECONDS", "3"))

    IO.puts(
      "## Journal throughput (acknowledged SortedSet.add/2 per second, #{seconds} s a cell)\n"
    )

    rows =
      for writers <- [1, 8, 64] do
        cells =
          for mode <- [nil, :none, {:interval, 10}, :always] do
            opts =
              if mode,
                do: [durable: Path.join(root, "tp-#{System.os_time()}"), sync: mode],
                else: []

            set = SortedSet.new(opts)
            rate = run_writers(set, writers, seconds)
            if mode, do: :ok = SortedSet.close(set)
            rate
          end

        ["#{writers}" | Enum.map(cells, &"#{round(&1)}")]
      end

    Bench.table(["writers", "in memory", ":none", "{:interval, 10}", ":always"], rows)
  end

  # Many small durable structures in one VM: OS threads and idle CPU (this OS process's
  # utime + stime over 3 s), then close and reopen them all.
  defp many(root) do
    n = String.to_integer(System.get_env("STRATA_BENCH_MANY", "10000"))
    IO.puts("\n## #{n} durable sets open in one VM (sync: :always, one write each)\n")
    threads = fn -> length(File.ls!("/proc/self/task")) end

    cpu = fn ->
      [_, rest] = String.split(File.read!("/proc/self/stat"), ") ", parts: 2)
      fields = String.split(rest)
      String.to_integer(Enum.at(fields, 11)) + String.to_integer(Enum.at(fields, 12))
    end

    before = threads.()

    {open_us, sets} =
      :timer.tc(fn ->
        for i <- 1..n do
          set = SortedSet.new(durable: Path.join(root, "many-#{i}"), sync: :always)
          SortedSet.add(set, i)
          set
        end
      end)

    opened = threads.()
    Process.sleep(500)
    c0 = cpu.()
    Process.sleep(3000)
    idle_ms = (cpu.() - c0) * 10
    Enum.each(sets, &(:ok = SortedSet.close(&1)))

    {reopen_us, _} =
      :timer.tc(fn ->
        for i <- 1..n do
          {:ok, set} = SortedSet.open_durable(Path.join(root, "many-#{i}"))
          :ok = SortedSet.close(set)
        end
      end)

    Bench.table(
      [
        "structures",
        "OS threads before / open",
        "idle CPU over 3 s",
        "open + write",
        "close + reopen all"
      ],
      [
        [
          "#{n}",
          "#{before} / #{opened}",
          "#{idle_ms} ms",
          "#{div(open_us, 1000)} ms",
          "#{div(reopen_us, 1000)} ms"
        ]
      ]
    )
  end

  defp run_writers(set, writers, seconds) do
    deadline = System.monotonic_time(:millisecond) + seconds * 1000

    1..writers
    |> Enum.map(fn w ->
      Task.async(fn -> write_until(set, w * 100_000_000, deadline, 0) end)
    end)
    |> Enum.map(&Task.await(&1, :infinity))
    |> Enum.sum()
    |> Kernel./(seconds)
  end

  defp write_until(set, i, deadline, done) do
    if rem(done, 64) == 0 and System.monotonic_time(:millisecond) >= deadline do
      done
    else
      SortedSet.add(set, i)
      write_until(set, i + 1, deadline, done + 1)
    end
  end
end

DurabilityBench.main()
