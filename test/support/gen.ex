defmodule Strata.Gen do
  @moduledoc false
  # PropEr generators of the terms Strata stores: every kind of supported term, with the
  # numbers whose order is hard to get right (integers and equal floats, floats past 2^53,
  # big integers near 2^64) and terms that share long encodings (so that ordering must look
  # past the inline prefix). PropEr shrinks them towards small integers and short binaries.

  import Strata.PropCheck, only: [let: 2]

  @edge_numbers [
    2 ** 70,
    -(2 ** 70),
    2 ** 64,
    2 ** 64 - 1,
    -(2 ** 64),
    -(2 ** 64) + 1,
    2 ** 63,
    2 ** 63 * 1.0,
    18_446_744_073_709_551_616.0,
    -18_446_744_073_709_551_616.0,
    9_007_199_254_740_993,
    9_007_199_254_740_992.0,
    1.0e300,
    -0.0,
    0,
    []
  ]

  @doc "A term of any supported kind, at most `depth` containers deep."
  def term(depth \\ 2) do
    leaves = [
      {6, number_near()},
      {2, :proper_types.elements([:a, :b, nil, :ok, :ü, :日本, :zz])},
      {3, binary()},
      {2, :proper_types.elements(@edge_numbers)},
      {1, :proper_types.float(-50.0, 50.0)}
    ]

    containers =
      if depth > 0 do
        inner = :proper_types.lazy(fn -> term(depth - 1) end)

        [
          {2, let({:proper_types.integer(1, 3), binary(), number_near()}, &shared/1)},
          {1, list_of(number_near(), 4)},
          {1, {inner, binary(), [binary()]}},
          {1, let(list_of(inner, 3), &List.to_tuple/1)},
          {1, list_of(inner, 4)},
          {1, let(list_of({term(0), inner}, 3), &Map.new/1)}
        ]
      else
        []
      end

    :proper_types.frequency(leaves ++ containers)
  end

  # `{group, "user...", number}`: a member-like tuple whose encodings share a long prefix.
  defp shared({group, name, number}), do: {group, "user" <> name, number}

  @doc "Numbers close to each other: small integers, the equal floats, and fractions between."
  def number_near do
    let({:proper_types.integer(-300, 300), :proper_types.integer(1, 4)}, fn
      {base, 1} -> base
      {base, 2} -> base * 1.0
      {base, 3} -> base + 0.5
      {base, 4} -> base * 257
    end)
  end

  @doc "A short binary over a few byte values (so that prefixes repeat)."
  def binary do
    let(list_of(:proper_types.elements([?a, ?b, ?c, 0, 255]), 30), &:erlang.list_to_binary/1)
  end

  @doc "A list of at most `max` items of `gen` (whatever the generation size)."
  def list_of(gen, max) do
    :proper_types.bind(:proper_types.integer(0, max), &:proper_types.vector(&1, gen), false)
  end
end
