defmodule Strata.Seeded do
  @moduledoc false
  # Seeded random tests, for what PropEr (test/support/prop_check.ex) does not do here: runs
  # whose randomness is not a sequence of commands to shrink (processes racing each other,
  # SIGKILL at a random moment, calls spread over peer nodes, random damage sampled from a
  # file). Every run uses a fresh seed (derived from ExUnit's, or taken from STRATA_SEED),
  # and a failure reports the seed so that it can be replayed. The model tests of the
  # structures are PropEr properties.

  @doc "Seeds `:rand` for this process and runs `fun`; on failure, re-raises naming the seed."
  def run(name, fun) do
    seed =
      case System.get_env("STRATA_SEED") do
        nil -> :erlang.phash2({ExUnit.configuration()[:seed], name, :erlang.unique_integer()})
        s -> String.to_integer(s)
      end

    :rand.seed(:exsss, seed)

    try do
      fun.(seed)
    rescue
      e in ExUnit.AssertionError ->
        reraise %{e | message: "#{e.message}\n(seed #{seed}: rerun with STRATA_SEED=#{seed})"},
                __STACKTRACE__

      e ->
        reraise RuntimeError,
                [
                  message:
                    "#{Exception.message(e)}\n(seed #{seed}: rerun with STRATA_SEED=#{seed})"
                ],
                __STACKTRACE__
    end
  end

  @edge_numbers [
    2 ** 70,
    -(2 ** 70),
    2 ** 64,
    2 ** 64 - 1,
    -(2 ** 64),
    -(2 ** 64) + 1,
    18_446_744_073_709_551_616.0,
    -18_446_744_073_709_551_616.0,
    9_007_199_254_740_993,
    9_007_199_254_740_992.0,
    1.0e300,
    -0.0,
    0,
    []
  ]

  @doc "A random term of any supported kind, at most `depth` levels deep."
  def term(depth \\ 2) do
    case :rand.uniform(if depth > 0, do: 13, else: 7) do
      1 -> :rand.uniform(200) - 100
      2 -> (:rand.uniform(40) - 20) * 1.0
      3 -> :rand.uniform() * 100 - 50
      4 -> Enum.random([:a, :b, nil, :ok, :ü, :日本, :zz])
      5 -> binary()
      6 -> Enum.random(@edge_numbers)
      7 -> number_near()
      # Terms that share long encodings, so that ordering must look past the inline prefix.
      11 -> {:rand.uniform(3), "user" <> binary(), number_near()}
      12 -> Enum.map(1..:rand.uniform(4)//1, fn _ -> number_near() end)
      13 -> {term(depth - 1), binary(), [binary()]}
      8 -> List.to_tuple(for _ <- 1..:rand.uniform(3)//1, do: term(depth - 1))
      9 -> for _ <- 0..:rand.uniform(3)//1, do: term(depth - 1)
      10 -> Map.new(1..:rand.uniform(3)//1, fn _ -> {term(0), term(depth - 1)} end)
    end
  end

  # Numbers close to each other: small integers, the equal floats, and fractions between.
  defp number_near do
    base = :rand.uniform(600) - 300

    case :rand.uniform(4) do
      1 -> base
      2 -> base * 1.0
      3 -> base + Enum.random([0.5, 0.25, 0.999, -0.001])
      4 -> base * 257
    end
  end

  defp binary do
    len = Enum.random([0, 1, 3, 14, 15, 30])
    for _ <- 1..len//1, into: <<>>, do: <<Enum.random([?a, ?b, ?c, 0, 255])>>
  end
end
