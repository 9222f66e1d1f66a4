defmodule Strata.Interner do
  @moduledoc """
  Maps external keys (binaries, such as Bluesky DIDs `"did:plc:..."`) to dense integer ids and
  back, natively, for structures that key users by small integers (`Strata.FollowerMap`).

  Ids are handed out from 0 in the order keys are first seen and never change or get reused.
  Keys are stored once, end to end; the table holds 4-byte ids. The interner is a mutable,
  shared handle.

      iex> interner = Strata.Interner.new()
      iex> Strata.Interner.intern(interner, "did:plc:alice")
      0
      iex> Strata.Interner.intern(interner, "did:plc:bob")
      1
      iex> Strata.Interner.intern(interner, "did:plc:alice")
      0
      iex> Strata.Interner.lookup(interner, "did:plc:carol")
      nil
      iex> Strata.Interner.key(interner, 1)
      "did:plc:bob"

  ## Performance

  `intern/2`, `lookup/2` and `key/2` are `O(key length)` expected: one hash and one compare.
  A key already interned is found under a read lock, so concurrent interning of known keys
  runs in parallel.
  """

  alias Strata.Native

  @enforce_keys [:resource]
  defstruct [:resource]

  @typedoc "A handle to a native interner (mutable and shared)."
  @type t :: %__MODULE__{resource: reference()}

  @typedoc "A dense id."
  @type id :: 0..4_294_967_295

  @doc "Creates an empty interner."
  @spec new(keyword()) :: t()
  def new(opts \\ []) do
    Keyword.validate!(opts, [])
    Native.interner_new()
  end

  @doc "The id of `key` (a binary of at most 65,535 bytes), giving it the next id if it has none."
  @spec intern(t(), binary()) :: id()
  def intern(interner, key) do
    case Native.interner_intern(interner, key) do
      id when is_integer(id) -> id
      {:error, :full} -> raise ArgumentError, "argument interner: all 2^32 ids are taken"
    end
  end

  @doc "The id of `key`, or `nil` if it was never interned."
  @spec lookup(t(), binary()) :: id() | nil
  def lookup(interner, key), do: Native.interner_lookup(interner, key)

  @doc "The key of `id`, or `nil` if no key has it."
  @spec key(t(), id()) :: binary() | nil
  def key(interner, id), do: Native.interner_key(interner, id)

  @doc """
  The number of keys.

      iex> Strata.Interner.new() |> Strata.Interner.size()
      0
  """
  @spec size(t()) :: non_neg_integer()
  def size(interner), do: interner |> Native.interner_info() |> elem(0)

  @doc "Bytes held natively, kept as a running count."
  @spec memory(t()) :: non_neg_integer()
  def memory(interner), do: interner |> Native.interner_info() |> elem(1)

  defimpl Inspect do
    def inspect(interner, _opts), do: "#Strata.Interner<size: #{Strata.Interner.size(interner)}>"
  end
end
