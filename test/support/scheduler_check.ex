defmodule Strata.SchedulerCheck do
  @moduledoc false
  # Runs `fun` in a new process under `:erlang.system_monitor/2` with `{:long_schedule, ms}`
  # and returns the long-schedule reports about that process. (The monitor never reports the
  # process that set it, and other processes of the VM, such as the code loader, have long
  # schedules of their own: only the worker's count.)

  #
  # The threshold is 10 ms, not the 5 ms one would like: on this 2-core VM, processes that
  # run no NIF at all (the code loader, a test process collecting garbage) show stalls of
  # 6-9 ms now and then. Every Strata NIF call measures well under 1 ms; the check is there
  # to catch one that does not (a forced 300,000-follower fan-out shows up at 140 ms). A
  # clean run of the same work (up to three in all) clears a one-off stall, while a NIF that
  # really runs long shows up every time.
  def long_schedules(fun, ms \\ 10, runs \\ 3) do
    case monitored(fun, ms) do
      [] -> []
      reports when runs == 1 -> reports
      _noise? -> long_schedules(fun, ms, runs - 1)
    end
  end

  defp monitored(fun, ms) do
    :erlang.system_monitor(self(), [{:long_schedule, ms}])

    try do
      task = Task.async(fun)
      Task.await(task, 300_000)
      collect(task.pid, [])
    after
      :erlang.system_monitor(:undefined)
    end
  end

  defp collect(pid, acc) do
    receive do
      {:monitor, ^pid, :long_schedule, info} -> collect(pid, [info | acc])
      {:monitor, _other, :long_schedule, _info} -> collect(pid, acc)
    after
      0 -> Enum.reverse(acc)
    end
  end
end
