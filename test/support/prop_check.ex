defmodule Strata.PropCheck do
  @moduledoc false
  # Runs PropEr properties (Debian's erlang-proper, installed by scripts/setup) from ExUnit.
  # A failing property is shrunk by PropEr to a minimal counterexample (for a stateful one,
  # the shortest command sequence that still fails), which the failure message prints.
  #
  #   STRATA_PROPER_TESTS=n   run every property n times instead of its own count
  #
  # A property here is built with PropEr's functions rather than its macros (Elixir has no
  # `-include`): `forall(gen, fun)` is `?FORALL`, `let(gen, fun)` is `?LET`, and
  # `when_fail(fun, prop)` is `?WHENFAIL`.

  import ExUnit.Assertions

  @doc """
  Checks `property` `numtests` times, with generated sizes up to `max_size` (for a stateful
  property, about the longest command sequence); on failure, flunks with the shrunk
  counterexample.
  """
  def check(name, property, numtests, max_size \\ 42) do
    numtests = String.to_integer(System.get_env("STRATA_PROPER_TESTS", "#{numtests}"))
    opts = [{:numtests, numtests}, {:max_size, max_size}, {:on_output, &output/2}]

    case :proper.quickcheck(property, opts) do
      true ->
        :ok

      false ->
        counterexample = :proper.counterexample()

        flunk("""
        property #{name} failed; PropEr shrank it to this counterexample:
        #{inspect(counterexample, pretty: true, limit: :infinity, width: 100, charlists: :as_lists)}
        """)

      other ->
        flunk("property #{name} could not run: #{inspect(other)}")
    end
  end

  @doc """
  `?FORALL(X, Gen, Prop)`. An exception in `fun` fails the property with the exception
  printed (PropEr 1.2, as Debian packages it, would itself crash on one: it calls
  `erlang:get_stacktrace/0`, which OTP 23 removed).
  """
  def forall(gen, fun) do
    :proper.forall(gen, fn x ->
      try do
        fun.(x)
      catch
        kind, reason ->
          text = Exception.format(kind, reason, __STACKTRACE__)
          when_fail(fn -> IO.puts(text) end, false)
      end
    end)
  end

  @doc "`?LET(X, Gen, Expr)`: a generator of `fun.(x)` for `x` from `gen`."
  def let(gen, fun), do: :proper_types.bind(gen, fun, false)

  @doc "`?WHENFAIL(Action, Prop)`."
  def when_fail(action, prop), do: :proper.whenfail(action, fn -> prop end)

  @doc """
  Runs a stateful property's commands against a fresh system made by `setup` (whose result
  `check_end` gets with the final model); fails with the command history.
  """
  def run_statem(module, commands, check_end \\ fn _model -> true end) do
    {history, model, result} = :proper_statem.run_commands(module, commands)
    ok = result == :ok and check_end.(model)

    when_fail(
      fn ->
        IO.puts("""
        commands: #{inspect(commands, pretty: true, limit: :infinity, charlists: :as_lists)}
        result: #{inspect(result, pretty: true, limit: 50)}
        steps run: #{length(history)}
        """)
      end,
      ok
    )
  end

  # PropEr's progress dots and success line go nowhere; what it prints about a failure goes
  # to the test's output.
  defp output(format, args) do
    text = IO.chardata_to_string(:io_lib.format(format, args))

    unless String.trim(text, ".") |> String.trim() == "" or String.contains?(text, "OK: Passed") do
      IO.write(text)
    end
  end
end
