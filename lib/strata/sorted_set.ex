defmodule Strata.SortedSet do
  @moduledoc """
  A sorted set of Erlang terms, held natively, that reports the index of every change.

  Built for member lists: a client renders only a window of a large sorted list, so the server
  must know *where* each insert and remove lands. `index_add/2` and `index_remove/2` say it.

  The set is a **mutable, shared handle**, like an ETS table: `add/2` changes the set that every
  holder of the handle sees, in every process. Functions that change it return the same handle
  so that pipelines read naturally. The memory is freed when no process holds the handle any
  more (after garbage collection).

      iex> set = Strata.SortedSet.new()
      iex> Strata.SortedSet.index_add(set, "bob")
      {0, set}
      iex> Strata.SortedSet.index_add(set, "alice")
      {0, set}
      iex> Strata.SortedSet.find_index(set, "bob")
      1
      iex> Strata.SortedSet.to_list(set)
      ["alice", "bob"]

  ## Terms and order

  Items are kept in exact Erlang term order, and two items are the same item when they are
  `==` (as in `:gb_sets`, `:ordsets` and ETS `ordered_set`): `1` and `1.0` are one item, and the
  one added first is kept. Supported: integers of any size, floats, atoms, binaries, tuples,
  proper lists and maps, nested to 256 levels. Pids, references, ports, funs, bitstrings that are
  not binaries and improper lists raise `ArgumentError` naming the type, and leave the set as it
  was.

  ## Structure and performance

  Items live in sorted buckets of at most `bucket_size` items that split when they overflow and
  merge when they run under a quarter full. A Fenwick tree over the bucket sizes answers index
  questions without walking the buckets. With `n` items and bucket size `B`:

  | function | cost |
  |---|---|
  | `add/2`, `index_add/2`, `remove/2`, `index_remove/2`, `update/3` | `O(log n + B)` |
  | `member?/2`, `find_index/2`, `rank/2` | `O(log n)` |
  | `at/3`, `first/1`, `last/1` | `O(log(n / B))`, `O(1)` |
  | `size/1` | `O(1)` |
  | `slice/3`, `range/4` (`k` items) | `O(log n + k)` |
  | `from_enumerable/2` | `O(n log n)` on a dirty scheduler |
  | `from_proper_enumerable/2` | `O(n)` on a dirty scheduler |
  | `to_list/1` | `O(n)`, in chunks of 1000 items |

  No call holds a normal scheduler for long: reads of many items are made in chunks of 1000,
  `add_all/2` in batches of 1000, and the bulk constructors run on dirty schedulers. Readers run
  in parallel; writers take a lock only for the change itself, never while converting terms,
  and callers never see lock contention as an error.

  ## Long operations and other callers

  Nothing holds the set's lock for long. Reads take the items they return as shared pointers
  to the buckets that hold them (copy-on-write: a writer that changes such a bucket meanwhile
  changes a copy) and convert them after releasing the lock, however large they are. `dump/1`,
  `save/2` and a checkpoint that has to snapshot the live set take a copy-on-write copy of the
  set under its lock (a pointer per bucket) and encode it with the lock released: they see the
  set as it was at that moment, and writers go on meanwhile. A call on a normal scheduler
  waits at most 200 µs for the lock; past that it moves to a dirty scheduler and waits there,
  so that no normal scheduler, and no process queued on it, is held up.

  ## Reading while others write

  Every single call is atomic. Reads that span several calls (`to_list/1`, `range/4` past
  1000 items, `slice/3` past 1000 items, `Enum` functions) continue from the last item they
  returned, so they always produce strictly ascending items with no duplicates; an item added or
  removed by another process while they run may or may not appear, as with an ETS traversal.

  ## Protocols

  `Enumerable` (`count`, `member?` and `slice` answered natively), `Collectable` (adds items) and
  `Inspect` (`#Strata.SortedSet<size: 3>`, never the items).
  """

  alias Strata.{Durable, Native}
  use Durable, prefix: :sorted_set

  @enforce_keys [:resource]
  defstruct [:resource, journal: nil]

  @typedoc """
  A handle to a native sorted set (mutable and shared, like an ETS table); `journal` is set
  when the set is durable.
  """
  @type t :: %__MODULE__{resource: reference(), journal: reference() | nil}

  @typedoc "Any term the set can hold: numbers, atoms, binaries, tuples, proper lists, maps."
  @type item :: term()

  @typedoc "A zero-based position in the set."
  @type index :: non_neg_integer()

  @default_bucket_size 512
  @min_bucket_size 4
  @default_capacity @default_bucket_size
  @chunk 1000

  @doc """
  The bucket size used when none is given (#{@default_bucket_size}).

      iex> Strata.SortedSet.default_bucket_size()
      512
  """
  @spec default_bucket_size() :: pos_integer()
  def default_bucket_size, do: @default_bucket_size

  @doc """
  The capacity used when none is given (#{@default_capacity}).

      iex> Strata.SortedSet.default_capacity()
      512
  """
  @spec default_capacity() :: pos_integer()
  def default_capacity, do: @default_capacity

  @doc """
  Creates an empty set.

  Takes either keyword options or, as `Discord.SortedSet.new/2` does, a capacity and a bucket
  size as positional arguments.

  ## Options

    * `:capacity` - how many items to reserve bucket index room for (default
      #{@default_capacity}). Only the index is reserved, not the items.
    * `:bucket_size` - most items in one bucket (default #{@default_bucket_size}, between 4 and
      65536). Smaller buckets make inserts cheaper and the index larger.
    * `:durable` - a directory: the set is kept there too, as by `open_durable/2` (which
      this raises `Strata.DurabilityError` instead of returning an error). `:bucket_size`
      applies when the directory holds no set yet.
    * `:sync` - with `:durable`: `:always` (default), `{:interval, ms}` or `:none`; see
      `Strata.Durable`.

  ## Examples

      iex> Strata.SortedSet.new() |> Strata.SortedSet.size()
      0
      iex> Strata.SortedSet.new(bucket_size: 64) |> Strata.SortedSet.add(1) |> Strata.SortedSet.size()
      1
      iex> Strata.SortedSet.new(10_000, 128) |> Strata.SortedSet.size()
      0
  """
  @spec new(keyword() | non_neg_integer()) :: t()
  def new(opts \\ [])

  def new(opts) when is_list(opts) do
    defaults = [capacity: @default_capacity, bucket_size: @default_bucket_size]

    case Durable.split_options!(opts, defaults) do
      {nil, _, opts} ->
        new(opts[:capacity], opts[:bucket_size])

      {dir, sync, opts} ->
        dir |> open_durable(sync: sync, bucket_size: opts[:bucket_size]) |> Durable.open!(dir)
    end
  end

  def new(capacity) when is_integer(capacity), do: new(capacity, @default_bucket_size)

  def new(other) do
    raise ArgumentError,
          "argument opts: expected a keyword list or a capacity, got: #{inspect(other)}"
  end

  @doc """
  Creates an empty set with room for `capacity` items and buckets of at most `bucket_size`.

      iex> Strata.SortedSet.new(1000, 16) |> Strata.SortedSet.size()
      0
  """
  @spec new(non_neg_integer(), pos_integer()) :: t()
  def new(capacity, bucket_size),
    do: Native.sorted_set_new(capacity, check_bucket_size!(bucket_size))

  @doc """
  Builds a set from any enumerable, sorting it and dropping duplicates (of items that are `==`,
  the first is kept). Runs on a dirty scheduler.

  The second argument is a bucket size (as in `Discord.SortedSet`) or options `bucket_size:`.

      iex> Strata.SortedSet.from_enumerable([3, 1, 2, 1.0]) |> Strata.SortedSet.to_list()
      [1, 2, 3]
  """
  @spec from_enumerable(Enumerable.t(), pos_integer() | keyword()) :: t()
  def from_enumerable(enumerable, opts \\ []) do
    Native.sorted_set_from_list(to_list!(enumerable, "enumerable"), bucket_size(opts))
  end

  @doc """
  Builds a set from an enumerable that is already strictly ascending in term order, in `O(n)`.

  The order is verified: an enumerable that is not strictly ascending raises `ArgumentError`
  with the first offending position. Runs on a dirty scheduler.

      iex> Strata.SortedSet.from_proper_enumerable([1, 2, 3]) |> Strata.SortedSet.size()
      3
      iex> Strata.SortedSet.from_proper_enumerable([1, 3, 2])
      ** (ArgumentError) argument enumerable: not strictly ascending at index 2
  """
  @spec from_proper_enumerable(Enumerable.t(), pos_integer() | keyword()) :: t()
  def from_proper_enumerable(enumerable, opts \\ []) do
    case Native.sorted_set_from_sorted_list(to_list!(enumerable, "enumerable"), bucket_size(opts)) do
      {:ok, set} ->
        set

      {:error, {:not_sorted, at}} ->
        raise ArgumentError, "argument enumerable: not strictly ascending at index #{at}"
    end
  end

  defp to_list!(list, _name) when is_list(list), do: list
  defp to_list!(enumerable, name), do: enumerable |> enumerable!(name) |> Enum.to_list()

  defp enumerable!(enumerable, name) do
    if Enumerable.impl_for(enumerable) do
      enumerable
    else
      raise ArgumentError, "argument #{name}: expected an enumerable, got: #{inspect(enumerable)}"
    end
  end

  defp bucket_size(size) when is_integer(size), do: check_bucket_size!(size)

  defp bucket_size(opts) when is_list(opts) do
    check_bucket_size!(
      Strata.Options.validate!(opts, bucket_size: @default_bucket_size)[:bucket_size]
    )
  end

  defp bucket_size(other) do
    raise ArgumentError,
          "argument opts: expected a bucket size or keyword list, got: #{inspect(other)}"
  end

  # Buckets of fewer than 4 items work (`Strata.DiscordSortedSet` accepts them, as Discord's
  # set does), but cost more memory and time than they save: this module refuses them.
  defp check_bucket_size!(size) when is_integer(size) and size in @min_bucket_size..65_536,
    do: size

  defp check_bucket_size!(size) when is_integer(size) do
    raise ArgumentError,
          "argument bucket_size: expected an integer in #{@min_bucket_size}..65536, got #{size}"
  end

  defp check_bucket_size!(other), do: other

  @doc """
  Adds `item` and returns the set. Adding an item that is already present changes nothing.

      iex> set = Strata.SortedSet.new() |> Strata.SortedSet.add(:b) |> Strata.SortedSet.add(:a)
      iex> Strata.SortedSet.to_list(set)
      [:a, :b]
  """
  @spec add(t(), item()) :: t()
  def add(set, item) do
    Native.sorted_set_add(set, item)
    Durable.ack!(set)
    set
  end

  @doc """
  Adds `item` and returns `{index, set}`: where it landed, or `nil` if it was already present.

      iex> set = Strata.SortedSet.from_enumerable([10, 30])
      iex> Strata.SortedSet.index_add(set, 20)
      {1, set}
      iex> Strata.SortedSet.index_add(set, 20.0)
      {nil, set}
  """
  @spec index_add(t(), item()) :: {index() | nil, t()}
  def index_add(set, item) do
    index = Native.sorted_set_add(set, item)
    Durable.ack!(set)
    {index, set}
  end

  @doc """
  Adds every item of `enumerable`, in order, and returns the index each one landed at (`nil`
  for one already present), each as of the moment it was added.

  Items go in batches of #{@chunk}; each batch is atomic, the whole call is not.

      iex> set = Strata.SortedSet.new()
      iex> Strata.SortedSet.add_all(set, [5, 1, 5, 3])
      [0, 0, nil, 1]
      iex> Strata.SortedSet.to_list(set)
      [1, 3, 5]
  """
  @spec add_all(t(), Enumerable.t()) :: [index() | nil]
  def add_all(set, enumerable) do
    enumerable
    |> enumerable!("items")
    |> Stream.chunk_every(@chunk)
    |> Enum.flat_map(fn batch ->
      indices = Native.sorted_set_add_all(set, batch)
      Durable.ack!(set)
      indices
    end)
  end

  @doc """
  Removes `item` (or the item `==` to it) and returns the set; absent items are ignored.

      iex> set = Strata.SortedSet.from_enumerable([1, 2])
      iex> set |> Strata.SortedSet.remove(1.0) |> Strata.SortedSet.to_list()
      [2]
  """
  @spec remove(t(), item()) :: t()
  def remove(set, item) do
    Native.sorted_set_remove(set, item)
    Durable.ack!(set)
    set
  end

  @doc """
  Removes `item` and returns `{index, set}`: the index it had, or `nil` if it was absent.

      iex> set = Strata.SortedSet.from_enumerable([:a, :b, :c])
      iex> Strata.SortedSet.index_remove(set, :b)
      {1, set}
      iex> Strata.SortedSet.index_remove(set, :b)
      {nil, set}
  """
  @spec index_remove(t(), item()) :: {index() | nil, t()}
  def index_remove(set, item) do
    index = Native.sorted_set_remove(set, item)
    Durable.ack!(set)
    {index, set}
  end

  @doc """
  Replaces `old` with `new` in one atomic step, as when a member is renamed or re-ranked.

  Returns `{old_index, new_index}`: the index `old` had before the change (`nil` if it was
  absent) and the index `new` has after it (`nil` if an item `==` to `new` was already present,
  in which case nothing is inserted). Both terms are validated before anything changes.

      iex> set = Strata.SortedSet.from_enumerable([{1, "ann"}, {1, "bob"}, {2, "cat"}])
      iex> Strata.SortedSet.update(set, {1, "ann"}, {2, "ann"})
      {0, 1}
      iex> Strata.SortedSet.to_list(set)
      [{1, "bob"}, {2, "ann"}, {2, "cat"}]
  """
  @spec update(t(), item(), item()) :: {index() | nil, index() | nil}
  def update(set, old, new) do
    indices = Native.sorted_set_update(set, old, new)
    Durable.ack!(set)
    indices
  end

  @doc """
  Opens the durable set kept in directory `dir`, creating it when `dir` holds none, and
  recovering it otherwise (the newest valid snapshot plus its journal). Every change is then
  journaled before it is applied and acknowledged as `:sync` says. See `Strata.Durable`.

  Options: `:sync` (`:always`, `{:interval, ms}` or `:none`; default `:always`) and
  `:bucket_size` (for a new set).

      iex> dir = Path.join(System.tmp_dir!(), "strata-durable-\#{System.os_time()}")
      iex> {:ok, set} = Strata.SortedSet.open_durable(dir, sync: :none)
      iex> Strata.SortedSet.add_all(set, [2, 1])
      [0, 0]
      iex> Strata.SortedSet.open_durable(dir)
      {:error, :locked}
      iex> Strata.SortedSet.close(set)
      :ok
      iex> {:ok, set} = Strata.SortedSet.open_durable(dir)
      iex> Strata.SortedSet.to_list(set)
      [1, 2]
  """
  @spec open_durable(Path.t(), keyword()) :: {:ok, t()} | {:error, Durable.reason()}
  def open_durable(dir, opts \\ []) do
    opts = Strata.Options.validate!(opts, sync: :always, bucket_size: @default_bucket_size)
    dir = Durable.path(dir)

    bucket_size = check_bucket_size!(opts[:bucket_size])

    Durable.recover(__MODULE__, dir, fn ->
      Native.sorted_set_recover(dir, opts[:sync], bucket_size)
    end)
  end

  @doc """
  The number of items, in `O(1)`.

      iex> Strata.SortedSet.from_enumerable(1..5) |> Strata.SortedSet.size()
      5
  """
  @spec size(t()) :: non_neg_integer()
  def size(set), do: Native.sorted_set_size(set)

  @doc """
  Whether an item `==` to `item` is in the set.

      iex> set = Strata.SortedSet.from_enumerable([1, 2])
      iex> {Strata.SortedSet.member?(set, 2.0), Strata.SortedSet.member?(set, 3)}
      {true, false}
  """
  @spec member?(t(), item()) :: boolean()
  def member?(set, item), do: Native.sorted_set_member(set, item)

  @doc """
  The index of `item`, or `nil` when it is absent.

      iex> set = Strata.SortedSet.from_enumerable(["a", "b"])
      iex> {Strata.SortedSet.find_index(set, "b"), Strata.SortedSet.find_index(set, "z")}
      {1, nil}
  """
  @spec find_index(t(), item()) :: index() | nil
  def find_index(set, item), do: Native.sorted_set_find_index(set, item)

  @doc """
  How many items sort strictly before `item`: its index if present, otherwise the index it
  would be inserted at.

      iex> set = Strata.SortedSet.from_enumerable([10, 20, 30])
      iex> {Strata.SortedSet.rank(set, 20), Strata.SortedSet.rank(set, 25), Strata.SortedSet.rank(set, :atom)}
      {1, 2, 3}
  """
  @spec rank(t(), item()) :: index()
  def rank(set, item), do: Native.sorted_set_rank(set, item)

  @doc """
  The item at `index`, or `default` when out of range. A negative index counts from the end.

      iex> set = Strata.SortedSet.from_enumerable([:a, :b, :c])
      iex> {Strata.SortedSet.at(set, 0), Strata.SortedSet.at(set, -1), Strata.SortedSet.at(set, 9, :none)}
      {:a, :c, :none}
  """
  @spec at(t(), integer(), default) :: item() | default when default: term()
  def at(set, index, default \\ nil)

  def at(set, index, default) when is_integer(index) and index < 0 do
    case size(set) + index do
      i when i >= 0 -> at(set, i, default)
      _ -> default
    end
  end

  # Past any index a set can have (the native side takes 64-bit indices).
  def at(_set, index, default) when is_integer(index) and index >= 0x1_0000_0000_0000_0000,
    do: default

  def at(set, index, default) do
    case Native.sorted_set_at(set, index) do
      {:ok, item} -> item
      :error -> default
    end
  end

  @doc """
  The items at several indices, in the order given, with `default` for an index past the end.
  Cheaper than one `at/3` per index: they are looked up in ascending order under one lock
  (#{@chunk} indices per call).

      iex> set = Strata.SortedSet.from_enumerable([:a, :b, :c])
      iex> Strata.SortedSet.at_many(set, [2, 0, 7])
      [:c, :a, nil]
  """
  @spec at_many(t(), [index()], default) :: [item() | default] when default: term()
  def at_many(set, indices, default \\ nil) do
    indices
    |> enumerable!("indices")
    |> Stream.chunk_every(@chunk)
    |> Enum.flat_map(&Native.sorted_set_at_many(set, &1, default))
  end

  @doc """
  The smallest item, or `default` when the set is empty.

      iex> Strata.SortedSet.from_enumerable([3, 1, 2]) |> Strata.SortedSet.first()
      1
  """
  @spec first(t(), default) :: item() | default when default: term()
  def first(set, default \\ nil) do
    case Native.sorted_set_first(set) do
      {:ok, item} -> item
      :error -> default
    end
  end

  @doc """
  The largest item, or `default` when the set is empty.

      iex> Strata.SortedSet.from_enumerable([3, 1, 2]) |> Strata.SortedSet.last()
      3
  """
  @spec last(t(), default) :: item() | default when default: term()
  def last(set, default \\ nil) do
    case Native.sorted_set_last(set) do
      {:ok, item} -> item
      :error -> default
    end
  end

  @doc """
  Up to `amount` items starting at index `start`; `[]` when `start` is past the end.

      iex> set = Strata.SortedSet.from_enumerable(1..10)
      iex> Strata.SortedSet.slice(set, 2, 3)
      [3, 4, 5]
      iex> Strata.SortedSet.slice(set, 8, 100)
      [9, 10]
  """
  @spec slice(t(), index(), non_neg_integer()) :: [item()]
  def slice(set, start, amount) when is_integer(amount) and amount > @chunk do
    case Native.sorted_set_slice(set, start, @chunk) do
      [] -> []
      first -> first ++ collect_after(set, List.last(first), :unbounded, amount - @chunk)
    end
  end

  def slice(set, start, amount), do: Native.sorted_set_slice(set, start, amount)

  @doc """
  Items between `min` and `max` (both included by default), ascending, at most `:limit` of them.

  ## Options

    * `:limit` - most items returned (default 1000; a positive integer or `:infinity`).
    * `:min_inclusive` - whether an item `==` to `min` is included (default `true`).
    * `:max_inclusive` - whether an item `==` to `max` is included (default `true`).

  ## Examples

      iex> set = Strata.SortedSet.from_enumerable(1..100)
      iex> Strata.SortedSet.range(set, 10, 20, limit: 3)
      [10, 11, 12]
      iex> Strata.SortedSet.range(set, 10, 13, min_inclusive: false)
      [11, 12, 13]
      iex> Strata.SortedSet.range(set, {:a}, {:b})
      []
  """
  @spec range(t(), item(), item(), keyword()) :: [item()]
  def range(set, min, max, opts \\ []) do
    opts = Strata.Options.validate!(opts, limit: 1000, min_inclusive: true, max_inclusive: true)
    limit = opts[:limit]

    unless limit == :infinity or (is_integer(limit) and limit >= 0) do
      raise ArgumentError,
            "option :limit: expected a non-negative integer or :infinity, got: #{inspect(limit)}"
    end

    lower = bound(min, Strata.Options.boolean!(opts[:min_inclusive], :min_inclusive))
    upper = bound(max, Strata.Options.boolean!(opts[:max_inclusive], :max_inclusive))
    collect_range(set, lower, upper, limit)
  end

  defp bound(term, true), do: {:included, term}
  defp bound(term, false), do: {:excluded, term}

  # Reads up to `limit` items in [lower, upper], chunk by chunk, each chunk continuing after the
  # last item of the previous one.
  defp collect_range(_set, _lower, _upper, 0), do: []

  defp collect_range(set, lower, upper, limit) do
    n = if limit == :infinity, do: @chunk, else: min(limit, @chunk)

    case Native.sorted_set_range(set, lower, upper, n) do
      chunk when length(chunk) < n ->
        chunk

      chunk ->
        rest = if limit == :infinity, do: :infinity, else: limit - n
        chunk ++ collect_after(set, List.last(chunk), upper, rest)
    end
  end

  defp collect_after(set, last, upper, limit),
    do: collect_range(set, {:excluded, last}, upper, limit)

  @doc """
  All items, ascending. Read in chunks of #{@chunk} (see "Reading while others write").

      iex> Strata.SortedSet.from_enumerable([:b, 2, "c"]) |> Strata.SortedSet.to_list()
      [2, :b, "c"]
  """
  @spec to_list(t()) :: [item()]
  def to_list(set), do: collect_range(set, :unbounded, :unbounded, :infinity)

  @doc """
  Bytes held natively by this set: item slots, item data and the bucket index, kept as a
  running count (so `O(1)`). This memory is invisible to `:erlang.memory/0`; see
  `Strata.native_memory/0` for all sets together.

      iex> Strata.SortedSet.from_enumerable(1..1000) |> Strata.SortedSet.memory() > 16_000
      true
  """
  @spec memory(t()) :: non_neg_integer()
  def memory(set), do: Native.sorted_set_memory(set)

  @doc """
  A description of the internal layout (size, bucket size, the first bucket sizes), for
  debugging. Never lists the items.

      iex> Strata.SortedSet.from_enumerable(1..3) |> Strata.SortedSet.debug() |> String.starts_with?("SortedSet { size: 3")
      true
  """
  @spec debug(t()) :: String.t()
  def debug(set), do: Native.sorted_set_debug(set)

  @doc false
  # Checks every internal invariant in O(n); for tests.
  @spec check(t()) :: :ok | {:error, String.t()}
  def check(set), do: Native.sorted_set_check(set)

  @doc false
  # Streams items in chunks from `lower` (a bound), each chunk after the last item seen.
  @spec chunks(t(), term()) :: Enumerable.t()
  def chunks(set, lower \\ :unbounded) do
    Stream.unfold(lower, fn
      nil ->
        nil

      lower ->
        case Native.sorted_set_range(set, lower, :unbounded, @chunk) do
          [] -> nil
          chunk when length(chunk) < @chunk -> {chunk, nil}
          chunk -> {chunk, {:excluded, List.last(chunk)}}
        end
    end)
  end

  defimpl Enumerable do
    alias Strata.SortedSet

    def count(set), do: {:ok, SortedSet.size(set)}
    def member?(set, item), do: {:ok, SortedSet.member?(set, item)}

    def slice(set) do
      size = SortedSet.size(set)
      {:ok, size, fn start, length, step -> slice(set, start, length, step) end}
    end

    defp slice(set, start, length, 1), do: SortedSet.slice(set, start, length)

    defp slice(set, start, length, step) do
      set
      |> SortedSet.slice(start, (length - 1) * step + 1)
      |> Enum.take_every(step)
    end

    def reduce(set, acc, fun) do
      set |> SortedSet.chunks() |> Stream.flat_map(& &1) |> Enumerable.reduce(acc, fun)
    end
  end

  defimpl Collectable do
    alias Strata.SortedSet

    def into(set) do
      collector = fn
        set, {:cont, item} -> SortedSet.add(set, item)
        set, :done -> set
        _set, :halt -> :ok
      end

      {set, collector}
    end
  end

  defimpl Inspect do
    def inspect(set, _opts) do
      "#Strata.SortedSet<size: #{Strata.SortedSet.size(set)}>"
    end
  end
end
