defmodule Strata.Bench do
  @moduledoc """
  A small benchmark harness (no hex deps here): times each call on its own with the
  monotonic clock and reports the median and 99th percentile in nanoseconds. Every figure
  includes the clock's own cost, which the no-op NIF row shows.
  """

  @doc """
  Calls `fun.(input)` for each input after a warm-up and returns `%{p50: ns, p99: ns}`.
  `inputs` is a tuple, cycled through. `undo`, if given, runs untimed after each call (to
  remove what an add added, say), so that every sample sees the same state.
  """
  def measure(fun, inputs, samples, undo \\ fn _ -> :ok end) do
    n = tuple_size(inputs)

    for i <- 0..min(999, samples) do
      fun.(elem(inputs, rem(i, n)))
      undo.(elem(inputs, rem(i, n)))
    end

    sorted = time(fun, undo, inputs, n, 0, samples, []) |> Enum.sort() |> List.to_tuple()
    count = tuple_size(sorted)
    %{p50: elem(sorted, div(count, 2)), p99: elem(sorted, min(count - 1, div(count * 99, 100)))}
  end

  defp time(_fun, _undo, _inputs, _n, i, samples, acc) when i == samples, do: acc

  defp time(fun, undo, inputs, n, i, samples, acc) do
    input = elem(inputs, rem(i, n))
    t0 = :erlang.monotonic_time(:nanosecond)
    fun.(input)
    t1 = :erlang.monotonic_time(:nanosecond)
    undo.(input)
    time(fun, undo, inputs, n, i + 1, samples, [t1 - t0 | acc])
  end

  @doc "Runs `fun` once and returns `{milliseconds, result}`."
  def ms(fun) do
    {us, result} = :timer.tc(fun)
    {us / 1000, result}
  end

  @doc "The resident set size of this OS process, in bytes."
  def rss do
    "/proc/self/status"
    |> File.read!()
    |> String.split("\n")
    |> Enum.find_value(fn
      "VmRSS:" <> rest ->
        rest |> String.trim() |> String.trim_trailing(" kB") |> String.to_integer()

      _ ->
        nil
    end)
    |> Kernel.*(1024)
  end

  @doc "Prints a markdown table."
  def table(headers, rows) do
    line = fn cells -> "| " <> Enum.join(cells, " | ") <> " |" end
    IO.puts(line.(headers))
    IO.puts(line.(Enum.map(headers, fn _ -> "---" end)))
    Enum.each(rows, &IO.puts(line.(Enum.map(&1, fn c -> to_string(c) end))))
    IO.puts("")
  end

  @doc "Formats a `%{p50:, p99:}` as `p50 / p99`."
  def fmt(nil), do: "n/a"
  def fmt(%{p50: p50, p99: p99}), do: "#{p50} / #{p99}"

  @doc """
  `count` follow edges over `users` users with a power-law follower distribution: followers
  uniform, followees drawn as `users * u^4`, so a few low ids gather a large share (100k+
  followers at 10M edges). No self-follows.
  """
  def power_law_edges(count, users) do
    Stream.repeatedly(fn ->
      a = :rand.uniform(users) - 1
      b = trunc(users * :math.pow(:rand.uniform(), 4))
      if a == b, do: {a, rem(b + 1, users)}, else: {a, b}
    end)
    |> Enum.take(count)
  end

  @doc "Edges packed as `<<follower::32-little, followee::32-little, ...>>`."
  def pack_edges(edges), do: for({a, b} <- edges, into: <<>>, do: <<a::32-little, b::32-little>>)
end
