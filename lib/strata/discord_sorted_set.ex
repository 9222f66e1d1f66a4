defmodule Strata.DiscordSortedSet do
  @moduledoc """
  Discord's `Discord.SortedSet` 2.x contract (the `sorted_set_nif` package) on Strata's sorted
  set: teams running it switch by changing one alias,

      alias Strata.DiscordSortedSet, as: SortedSet

  and keep every call and every result: sets are bare references; an unsupported term gives
  `{:error, :unsupported_type}` instead of raising; `new/2` takes a capacity and a bucket size
  (any size from 1, as Discord's does: 2 included); `at/3` and `slice/3` past the end (or past
  `usize::MAX`) give the default and `[]`.

      iex> alias Strata.DiscordSortedSet, as: SortedSet
      iex> set = SortedSet.new() |> SortedSet.add(3) |> SortedSet.add(1)
      iex> is_reference(set)
      true
      iex> SortedSet.index_add(set, 2)
      {1, set}
      iex> SortedSet.to_list(set)
      [1, 2, 3]
      iex> SortedSet.add(set, 1.5)
      {:error, :unsupported_type}

  Supported terms are Discord's: integers that fit in 64 bits, atoms, UTF-8 binaries, and
  tuples and proper lists of those. Floats, maps, bigger integers, binaries that are not UTF-8,
  pids, references, ports and functions are refused with `{:error, :unsupported_type}`
  (`Strata.SortedSet` stores all of them but pids, references, ports and functions). Order is
  Erlang's term order, as in Discord's set.

  What differs from `Discord.SortedSet`, none of it visible to code that works with it:

    * No `{:error, :lock_fail}`: concurrent calls wait for each other (a normal scheduler at
      most 200 µs, then on a dirty one) instead of failing.
    * `from_proper_enumerable/2` of a list that is not sorted and unique builds the right set
      (Discord's would be silently out of order).
    * `to_list/1` reads in chunks of 1000 items, so a concurrent writer can interleave (the
      result is still ascending and unique); Discord copies under one lock.
    * `debug/1` describes Strata's layout (size, bucket sizes), not Rust's `Debug` output.
    * A bucket size of 0 raises `ArgumentError` (Discord's NIF panics).

  Anything a `Strata.SortedSet` does more (durability, `range/4`, `update/3`, the protocols) is
  reached with `to_strata/1`.
  """

  alias Strata.{Native, SortedSet}

  @default_bucket_size 500
  @default_capacity @default_bucket_size

  @typedoc "A set: a bare reference, as Discord's (mutable and shared, like an ETS table)."
  @type t :: reference()

  @typedoc "The terms Discord's set supports."
  @type supported_term ::
          integer() | atom() | String.t() | tuple() | [supported_term()]

  @typedoc "The error every call gives for a term it does not support."
  @type common_errors :: {:error, :unsupported_type}

  defmodule NifBridge do
    @moduledoc """
    The one function of `Discord.SortedSet.NifBridge` that code outside the library uses:
    Discord's own tests ask it for `usize::MAX`.
    """

    @doc """
    `usize::MAX` of a 64-bit machine.

        iex> Strata.DiscordSortedSet.NifBridge.usize_max()
        18446744073709551615
    """
    @spec usize_max() :: pos_integer()
    def usize_max, do: 18_446_744_073_709_551_615
  end

  @doc """
  A new set with room reserved for `capacity` items, in buckets of at most `bucket_size`.

      iex> Strata.DiscordSortedSet.new(10, 2) |> Strata.DiscordSortedSet.size()
      0
  """
  @spec new(non_neg_integer(), pos_integer()) :: t()
  def new(capacity \\ @default_capacity, bucket_size \\ @default_bucket_size),
    do: ref(Native.sorted_set_new(capacity, bucket_size))

  @doc """
  A set of the terms of an enumerable (sorted, duplicates dropped), or
  `{:error, :unsupported_type}` if any is not supported.

      iex> Strata.DiscordSortedSet.from_enumerable([3, 1, 3]) |> Strata.DiscordSortedSet.to_list()
      [1, 3]
  """
  @spec from_enumerable(Enumerable.t(), pos_integer()) :: t() | common_errors()
  def from_enumerable(terms, bucket_size \\ @default_bucket_size) do
    terms = Enum.to_list(terms)

    if Enum.all?(terms, &supported?/1),
      do: ref(Native.sorted_set_from_list(terms, bucket_size)),
      else: unsupported()
  end

  @doc """
  A set of the terms of an enumerable that is sorted and without duplicates (built in
  `O(n)`), or `{:error, :unsupported_type}`.

      iex> Strata.DiscordSortedSet.from_proper_enumerable([1, 2, 3]) |> Strata.DiscordSortedSet.size()
      3
  """
  @spec from_proper_enumerable(Enumerable.t(), pos_integer()) :: t() | common_errors()
  def from_proper_enumerable(terms, bucket_size \\ @default_bucket_size) do
    terms = Enum.to_list(terms)

    cond do
      terms == [] ->
        new(@default_capacity, bucket_size)

      not Enum.all?(terms, &supported?/1) ->
        unsupported()

      true ->
        case Native.sorted_set_from_sorted_list(terms, bucket_size) do
          {:ok, set} -> ref(set)
          # Not proper after all: built from the sorted terms rather than out of order.
          {:error, {:not_sorted, _}} -> ref(Native.sorted_set_from_list(terms, bucket_size))
        end
    end
  end

  @doc """
  Adds `item`; returns the set (also when it was there), or `{:error, :unsupported_type}`.
  """
  @spec add(t(), supported_term()) :: t() | common_errors()
  def add(set, item) do
    case index_add(set, item) do
      {:error, :unsupported_type} = error -> error
      {_index, _set} -> set
    end
  end

  @doc """
  Adds `item`; returns `{index, set}`, with `nil` for an item that was there already, or
  `{:error, :unsupported_type}`.
  """
  @spec index_add(t(), supported_term()) :: {non_neg_integer() | nil, t()} | common_errors()
  def index_add(set, item) do
    handle = handle(set)

    if supported?(item),
      do: {Native.sorted_set_add(handle, item), set},
      else: unsupported()
  end

  @doc "Removes `item`; returns the set (also when it was not there)."
  @spec remove(t(), supported_term()) :: t() | common_errors()
  def remove(set, item) do
    case index_remove(set, item) do
      {:error, :unsupported_type} = error -> error
      {_index, _set} -> set
    end
  end

  @doc """
  Removes `item`; returns `{index it had, set}`, with `nil` when it was not there, or
  `{:error, :unsupported_type}`.
  """
  @spec index_remove(t(), supported_term()) :: {non_neg_integer() | nil, t()} | common_errors()
  def index_remove(set, item) do
    handle = handle(set)
    if supported?(item), do: {Native.sorted_set_remove(handle, item), set}, else: unsupported()
  end

  @doc "The number of items, in `O(1)`."
  @spec size(t()) :: non_neg_integer()
  def size(set), do: Native.sorted_set_size(handle(set))

  @doc "Every item, ascending."
  @spec to_list(t()) :: [supported_term()]
  def to_list(set), do: SortedSet.to_list(handle(set))

  @doc """
  The item at `index` (from 0), or `default` past the end.

      iex> set = Strata.DiscordSortedSet.from_enumerable([:a, :b])
      iex> Strata.DiscordSortedSet.at(set, 1)
      :b
      iex> Strata.DiscordSortedSet.at(set, 2, :none)
      :none
  """
  @spec at(t(), non_neg_integer(), default) :: supported_term() | default when default: term()
  def at(set, index, default \\ nil) do
    index!(index, "index")
    SortedSet.at(handle(set), index, default)
  end

  @doc """
  Up to `amount` items from index `start` (`[]` when `start` is past the end).

      iex> Strata.DiscordSortedSet.from_enumerable([1, 2, 3]) |> Strata.DiscordSortedSet.slice(1, 5)
      [2, 3]
  """
  @spec slice(t(), non_neg_integer(), non_neg_integer()) :: [supported_term()]
  def slice(set, start, amount) do
    index!(start, "start")
    index!(amount, "amount")
    handle = handle(set)

    if start >= Native.sorted_set_size(handle),
      do: [],
      else: SortedSet.slice(handle, start, amount)
  end

  @doc "The index of `item`, `nil` when absent, or `{:error, :unsupported_type}`."
  @spec find_index(t(), supported_term()) :: non_neg_integer() | nil | common_errors()
  def find_index(set, item) do
    handle = handle(set)
    if supported?(item), do: Native.sorted_set_find_index(handle, item), else: unsupported()
  end

  @doc "A description of the set's layout (size and bucket sizes)."
  @spec debug(t()) :: String.t()
  def debug(set), do: Native.sorted_set_debug(handle(set))

  @doc "The capacity `new/0` reserves: #{@default_capacity}."
  @spec default_capacity() :: pos_integer()
  def default_capacity, do: @default_capacity

  @doc "The bucket size `new/0` uses: #{@default_bucket_size}."
  @spec default_bucket_size() :: pos_integer()
  def default_bucket_size, do: @default_bucket_size

  @doc """
  The same set as a `Strata.SortedSet` (not a copy: changes through either are seen by both).

      iex> set = Strata.DiscordSortedSet.from_enumerable([1, 2])
      iex> Strata.DiscordSortedSet.to_strata(set) |> Strata.SortedSet.range(1, 1)
      [1]
  """
  @spec to_strata(t()) :: SortedSet.t()
  def to_strata(set), do: handle(set)

  @doc """
  Whether Discord's set supports `term` (see the module doc).

      iex> Strata.DiscordSortedSet.supported?({1, [:a, "b"]})
      true
      iex> Strata.DiscordSortedSet.supported?(%{a: 1})
      false
  """
  @spec supported?(term()) :: boolean()
  def supported?(term) when is_integer(term),
    do: term >= -9_223_372_036_854_775_808 and term <= 9_223_372_036_854_775_807

  def supported?(term) when is_atom(term), do: true
  def supported?(term) when is_binary(term), do: String.valid?(term)
  def supported?(term) when is_tuple(term), do: tuple_supported?(term, tuple_size(term) - 1)
  def supported?(term) when is_list(term), do: list_supported?(term)
  def supported?(_term), do: false

  defp tuple_supported?(_tuple, -1), do: true

  defp tuple_supported?(tuple, i),
    do: supported?(elem(tuple, i)) and tuple_supported?(tuple, i - 1)

  defp list_supported?([]), do: true
  defp list_supported?([head | tail]), do: supported?(head) and list_supported?(tail)
  # An improper list's tail.
  defp list_supported?(_tail), do: false

  defp unsupported, do: {:error, :unsupported_type}

  defp ref(%SortedSet{resource: resource}), do: resource

  defp handle(set) when is_reference(set), do: %SortedSet{resource: set}

  defp handle(other) do
    raise ArgumentError, "argument set: expected a set (a reference), got: #{inspect(other)}"
  end

  # Discord's NIF takes indices as unsigned integers: a negative one raises.
  defp index!(i, _name) when is_integer(i) and i >= 0, do: i

  defp index!(other, name) do
    raise ArgumentError,
          "argument #{name}: expected a non-negative integer, got: #{inspect(other)}"
  end
end
