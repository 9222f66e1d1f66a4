defmodule Strata.ManyJournalsTest do
  # 10,000 durable structures open in one VM: a bounded number of OS threads (the shared
  # writer), no CPU while idle, every write acknowledged with sync: :always and recovered.
  # Runs in a child VM. An idle structure holds one file (its directory's lock: the journal
  # segment is closed once everything in it is fsynced), so this fits the 20,000 open files a
  # process may have here.
  use ExUnit.Case, async: false

  @moduletag :tmp_dir
  @moduletag timeout: 600_000

  test "10,000 durable sets cost a few threads and no idle CPU", %{tmp_dir: dir} do
    {out, status} =
      Strata.ChildVM.run("""
      dir = #{inspect(dir)}
      threads = fn -> length(File.ls!("/proc/self/task")) end
      # utime + stime of this OS process, in clock ticks.
      cpu = fn ->
        [_, rest] = String.split(File.read!("/proc/self/stat"), ") ", parts: 2)
        fields = String.split(rest)
        String.to_integer(Enum.at(fields, 11)) + String.to_integer(Enum.at(fields, 12))
      end
      n = 10_000
      before = threads.()
      sets =
        for i <- 1..n do
          set = Strata.SortedSet.new(durable: Path.join(dir, "s\#{i}"), sync: :always)
          Strata.SortedSet.add(set, i)
          set
        end
      opened = threads.()
      Process.sleep(500)
      c0 = cpu.()
      Process.sleep(3000)
      idle = cpu.() - c0
      Enum.each(sets, &(:ok = Strata.SortedSet.close(&1)))
      reopened =
        Enum.count(1..n, fn i ->
          {:ok, set} = Strata.SortedSet.open_durable(Path.join(dir, "s\#{i}"))
          ok = Strata.SortedSet.to_list(set) == [i]
          :ok = Strata.SortedSet.close(set)
          ok
        end)
      IO.puts("threads \#{before} \#{opened} idle_ticks \#{idle} reopened \#{reopened}")
      """)

    assert status == 0, out

    [_, before, opened, idle, reopened] =
      Regex.run(~r/threads (\d+) (\d+) idle_ticks (\d+) reopened (\d+)/, out)

    extra = String.to_integer(opened) - String.to_integer(before)
    assert extra <= 16, "#{extra} extra OS threads"
    # 3 s idle: under 1% of one core (ticks are 10 ms), with room for the VM's own timers.
    assert String.to_integer(idle) <= 10, "#{idle} ticks of CPU while idle"
    assert reopened == "10000"
  end
end
