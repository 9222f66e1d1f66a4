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

  ## Long operations and other callers

  The keys are split over 4096 tables, so that a table's growth rehashes 1/4096 of them (about
  0.5 ms at 10M keys). `dump/1`, `save/2` and a checkpoint of the live interner take its
  count of keys under the lock and copy the keys out 16,384 at a time, each chunk under the
  lock on its own (ids are never reused, so the first `n` keys are the interner as it was).
  A call on a normal scheduler waits at most 200 µs for the lock, then moves to a dirty
  scheduler to wait there.
  """

  alias Strata.{Durable, Native}
  use Durable, prefix: :interner

  @enforce_keys [:resource]
  defstruct [:resource, journal: nil]

  @typedoc "A handle to a native interner (mutable and shared); `journal` when durable."
  @type t :: %__MODULE__{resource: reference(), journal: reference() | nil}

  @typedoc "A dense id."
  @type id :: 0..4_294_967_295

  @doc """
  Creates an empty interner.

  ## Options

    * `:durable` - a directory: the interner is kept there too, as by `open_durable/2`
      (which this raises `Strata.DurabilityError` instead of returning an error).
    * `:sync` - with `:durable`: `:always` (default), `{:interval, ms}` or `:none`; see
      `Strata.Durable`.
  """
  @spec new(keyword()) :: t()
  def new(opts \\ []) do
    case Durable.split_options!(opts, []) do
      {nil, _, _} -> Native.interner_new()
      {dir, sync, _} -> dir |> open_durable(sync: sync) |> Durable.open!(dir)
    end
  end

  @doc """
  Opens the durable interner kept in directory `dir`, creating it when `dir` holds none and
  recovering it otherwise; ids survive restarts. Option `:sync` as in `Strata.Durable`.

      iex> dir = Path.join(System.tmp_dir!(), "strata-ids-\#{System.os_time()}")
      iex> interner = Strata.Interner.new(durable: dir)
      iex> Strata.Interner.intern(interner, "did:plc:alice")
      0
      iex> :ok = Strata.Interner.close(interner)
      iex> {:ok, interner} = Strata.Interner.open_durable(dir)
      iex> Strata.Interner.lookup(interner, "did:plc:alice")
      0
  """
  @spec open_durable(Path.t(), keyword()) :: {:ok, t()} | {:error, Durable.reason()}
  def open_durable(dir, opts \\ []) do
    opts = Strata.Options.validate!(opts, sync: :always)
    dir = Durable.path(dir)
    Durable.recover(__MODULE__, dir, fn -> Native.interner_recover(dir, opts[:sync]) end)
  end

  @doc """
  The id of `key` (a binary of at most 65,535 bytes), giving it the next id if it has none.

  On a durable interner the call returns once the id is durable, even when another process
  gave it out a moment before.
  """
  @spec intern(t(), binary()) :: id()
  def intern(interner, key) do
    case Native.interner_intern(interner, key) do
      id when is_integer(id) ->
        Durable.ack!(interner)
        id

      {:error, :full} ->
        raise ArgumentError, "argument interner: all 2^32 ids are taken"
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
