defmodule Strata.JournalFaultsTest do
  # Faults a journal meets, driven from Elixir through the real NIFs: close racing writers in
  # every sync mode, a full disk (a small tmpfs), and SIGKILL of the VM during close. After
  # each, reopening succeeds and holds every acknowledged write. (EIO at each write, fsync
  # and rename step is injected in the Rust tests of `strata_core::journal`.)
  use ExUnit.Case, async: false

  alias Strata.SortedSet

  @moduletag :tmp_dir
  @moduletag :capture_log
  @moduletag timeout: 300_000

  # Writers add {writer, i} until a write raises; returns what each had acknowledged.
  defp race_close(set, writers, after_ms) do
    parent = self()

    pids =
      for w <- 1..writers do
        spawn_link(fn ->
          acked =
            Enum.reduce_while(Stream.iterate(0, &(&1 + 1)), [], fn i, acked ->
              try do
                SortedSet.add(set, {w, i})
                {:cont, [{w, i} | acked]}
              rescue
                Strata.DurabilityError -> {:halt, acked}
              end
            end)

          send(parent, {:acked, self(), acked})
        end)
      end

    Process.sleep(after_ms)
    :ok = SortedSet.close(set)

    for pid <- pids, reduce: [] do
      all ->
        receive do
          {:acked, ^pid, acked} -> acked ++ all
        after
          30_000 -> flunk("a writer did not stop after close")
        end
    end
  end

  for sync <- [:none, {:interval, 5}, :always] do
    test "close racing writers loses nothing acknowledged (sync: #{inspect(sync)})",
         %{tmp_dir: dir} do
      for round <- 1..5 do
        path = Path.join(dir, "r#{round}")
        set = SortedSet.new(durable: path, sync: unquote(Macro.escape(sync)))
        acked = race_close(set, 16, 20 + :rand.uniform(40))
        assert acked != []
        {:ok, back} = SortedSet.open_durable(path)
        items = MapSet.new(SortedSet.to_list(back))
        lost = Enum.reject(acked, &MapSet.member?(items, &1))
        assert lost == [], "round #{round}: #{length(lost)} of #{length(acked)} lost"
        assert MapSet.size(items) == length(acked)
        :ok = SortedSet.close(back)
      end
    end
  end

  defp mount_tmpfs!(path, size) do
    File.mkdir_p!(path)

    case System.cmd("mount", ["-t", "tmpfs", "-o", "size=#{size}", "tmpfs", path],
           stderr_to_stdout: true
         ) do
      {_, 0} -> :ok
      {out, _} -> flunk("this test mounts a tmpfs (it needs root): #{out}")
    end
  end

  test "a full disk: writes fail as errors, and every acknowledged write is recovered",
       %{tmp_dir: dir} do
    disk = Path.join(dir, "disk")
    mount_tmpfs!(disk, "512k")

    try do
      path = Path.join(disk, "set")
      set = SortedSet.new(durable: path, sync: :always)
      payload = :binary.copy("x", 2000)

      {acked, failure} =
        Enum.reduce_while(Stream.iterate(0, &(&1 + 1)), {[], nil}, fn i, {acked, _} ->
          try do
            SortedSet.add(set, {i, payload})
            # A checkpoint now and then, so that the disk fills during one too.
            if rem(i, 40) == 39, do: SortedSet.checkpoint(set)
            {:cont, {[i | acked], nil}}
          rescue
            e in Strata.DurabilityError -> {:halt, {acked, e.reason}}
          end
        end)

      assert failure != nil
      assert length(acked) > 10
      _ = SortedSet.close(set)
      # Reopen on the same full disk.
      assert {:ok, back} = SortedSet.open_durable(path)
      have = MapSet.new(SortedSet.to_list(back), fn {i, _} -> i end)
      assert Enum.reject(acked, &MapSet.member?(have, &1)) == []
      :ok = SortedSet.close(back)
    after
      System.cmd("umount", [disk])
    end
  end

  @doc false
  def writer_script(dir, sync) do
    """
    set = Strata.SortedSet.new(durable: #{inspect(dir)}, sync: #{inspect(sync)})
    n = #{:rand.uniform(3000)}
    for i <- 1..n do
      Strata.SortedSet.add(set, i)
      IO.puts("ack \#{i}")
    end
    spawn(fn -> for i <- (n + 1)..(n + 100_000), do: Strata.SortedSet.add(set, i) end)
    :ok = Strata.SortedSet.close(set)
    IO.puts("closed")
    Process.sleep(:infinity)
    """
  end

  test "SIGKILL during close: reopen succeeds and holds what was acknowledged",
       %{tmp_dir: dir} do
    for round <- 1..6, sync <- [:always, :none] do
      path = Path.join(dir, "k#{round}-#{inspect(sync)}")
      script = Path.join(dir, "writer-#{round}.exs")
      File.write!(script, writer_script(path, sync))
      ebin = Path.join(:code.lib_dir(:strata), "ebin")

      port =
        Port.open({:spawn_executable, System.find_executable("elixir")}, [
          :binary,
          :exit_status,
          {:line, 64},
          args: ["-pa", ebin, script]
        ])

      {:os_pid, os_pid} = Port.info(port, :os_pid)
      {acked, closed} = collect(port, os_pid, MapSet.new(), false, 100 + :rand.uniform(600))

      case SortedSet.open_durable(path) do
        {:ok, back} ->
          have = MapSet.new(SortedSet.to_list(back))
          # With :always every acknowledged write is there; with :none, all of them once
          # close returned.
          if sync == :always or closed do
            assert MapSet.subset?(acked, have), "round #{round} #{inspect(sync)}"
          end

          :ok = SortedSet.close(back)

        {:error, :enoent} ->
          # Killed before the directory was made.
          assert acked == MapSet.new()
      end
    end
  end

  defp collect(port, os_pid, acked, closed, kill_after) do
    receive do
      {^port, {:data, {:eol, "ack " <> i}}} ->
        acked = MapSet.put(acked, String.to_integer(i))
        if MapSet.size(acked) == 1, do: Process.send_after(self(), :kill, kill_after)
        collect(port, os_pid, acked, closed, kill_after)

      {^port, {:data, {:eol, "closed"}}} ->
        collect(port, os_pid, acked, true, kill_after)

      :kill ->
        System.cmd("kill", ["-KILL", Integer.to_string(os_pid)])
        collect(port, os_pid, acked, closed, kill_after)

      {^port, {:data, _}} ->
        collect(port, os_pid, acked, closed, kill_after)

      {^port, {:exit_status, _}} ->
        {acked, closed}
    after
      60_000 -> flunk("the writer did not finish")
    end
  end
end
