defmodule Strata.CrashTest do
  # Kills a writer OS process with SIGKILL at random moments and checks that recovery keeps
  # every acknowledged write, and that each writer's recovered posts are exactly a prefix of
  # what it attempted: no holes, nothing twice.
  use ExUnit.Case, async: false

  alias Strata.{Seeded, Timeline}

  @moduletag :tmp_dir
  @moduletag :capture_log
  @moduletag timeout: 300_000
  @rounds 12

  test "acknowledged writes survive SIGKILL at random moments", %{tmp_dir: dir} do
    Seeded.run("crash", fn _seed ->
      Enum.reduce(1..@rounds, MapSet.new(), fn round, acked ->
        acked = MapSet.union(acked, run_and_kill(dir, 150 + :rand.uniform(900)))
        check(dir, acked, round)
        acked
      end)
    end)
  end

  # Starts the writer, kills it `after_ms` after it is ready; returns the ids it acknowledged.
  defp run_and_kill(dir, after_ms) do
    ebin = Path.join(:code.lib_dir(:strata), "ebin")
    script = Path.expand("../support/crash_writer.exs", __DIR__)

    port =
      Port.open({:spawn_executable, System.find_executable("elixir")}, [
        :binary,
        :exit_status,
        {:line, 256},
        args: ["-pa", ebin, script, dir]
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)
    assert_receive {^port, {:data, {:eol, "ready"}}}, 30_000
    Process.send_after(self(), :kill, after_ms)
    collect(port, os_pid, MapSet.new())
  end

  defp collect(port, os_pid, acked) do
    receive do
      :kill ->
        {_, 0} = System.cmd("kill", ["-KILL", Integer.to_string(os_pid)])
        collect(port, os_pid, acked)

      {^port, {:data, {:eol, "ack " <> id}}} ->
        collect(port, os_pid, MapSet.put(acked, String.to_integer(id)))

      {^port, {:data, _other}} ->
        collect(port, os_pid, acked)

      {^port, {:exit_status, status}} ->
        # 137: killed by SIGKILL, not exited on its own.
        assert status == 137
        acked
    after
      60_000 -> flunk("the writer neither acknowledged nor exited")
    end
  end

  defp check(dir, acked, round) do
    {:ok, tl} = Timeline.open_durable(dir, feed_capacity: 100_000)

    recovered =
      for w <- 0..7 do
        ids = pages(tl, w, nil) |> Enum.sort()
        n = length(ids)
        # Exactly w, w + 8, ..., w + 8 (n - 1): a prefix, no holes, no duplicates.
        assert ids == Enum.map(0..(n - 1)//1, &(w + 8 * &1)), "writer #{w}, round #{round}"
        MapSet.new(ids)
      end
      |> Enum.reduce(&MapSet.union/2)

    missing = MapSet.difference(acked, recovered)
    assert MapSet.size(missing) == 0, "round #{round}: acknowledged but lost: #{inspect(missing)}"
    assert Timeline.stats(tl).posts == MapSet.size(recovered)
    assert MapSet.size(acked) > 0
    :ok = Timeline.close(tl)
  end

  defp pages(tl, user, cursor) do
    case Timeline.get_timeline(tl, user, limit: 100, cursor: cursor) do
      {items, nil} -> items
      {items, next} -> items ++ pages(tl, user, next)
    end
  end
end
