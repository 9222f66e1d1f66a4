defmodule Strata.SchedulerCheck do
  @moduledoc false
  # Runs `fun` in a new process under `:erlang.system_monitor/2` with `{:long_schedule, ms}`
  # and returns the long-schedule reports about that process. (The monitor never reports the
  # process that set it, and other processes of the VM, such as the code loader, have long
  # schedules of their own: only the worker's count.)

  #
  # A 2-core VM occasionally stalls a process for a few milliseconds on its own (a page
  # fault storm, a garbage collection): a clean second run of the same work clears such a
  # report, while a NIF that really runs long shows up both times.
  def long_schedules(fun, ms \\ 5) do
    case monitored(fun, ms) do
      [] -> []
      _noise? -> monitored(fun, ms)
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
