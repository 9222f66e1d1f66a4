defmodule Strata.MemberList do
  @moduledoc """
  A lazy guild member list: groups, members, and subscribers that watch index ranges and
  receive, for each change, only the operations that touch what they see.

  The list a client renders is a sequence of items: a header `{:group, id, count}` for each
  non-empty group, each followed by its members `{:member, member}`. Groups are the hoisted
  roles (highest `position` first), then `:online`, then `:offline`. A member appears once:
  under its highest hoisted role when it is not offline, otherwise under `:online` or
  `:offline`. Within a group, members are ordered by name (case-insensitive), then by id.

  A member is a map with at least `:id` (any term), `:name` (a binary), `:roles` (a list of
  role ids) and `:status` (`:offline` or any other atom, such as `:online`, `:idle`, `:dnd`).

      iex> list = Strata.MemberList.new(groups: [%{id: :mods, position: 10}])
      iex> Strata.MemberList.subscribe(list, :client, [0..9])
      [{:sync, 0..9, []}, {:groups, []}]
      iex> Strata.MemberList.upsert(list, %{id: 1, name: "Zed", roles: [], status: :online})
      [
        {:client,
         [
           {:insert, 0, {:group, :online, 1}},
           {:insert, 1, {:member, %{id: 1, name: "Zed", roles: [], status: :online}}},
           {:groups, [%{id: :online, count: 1}]}
         ]}
      ]
      iex> [{:client, ops}] = Strata.MemberList.upsert(list, %{id: 2, name: "amy", roles: [:mods], status: :idle})
      iex> ops
      [
        {:insert, 0, {:group, :mods, 1}},
        {:insert, 1, {:member, %{id: 2, name: "amy", roles: [:mods], status: :idle}}},
        {:groups, [%{id: :mods, count: 1}]}
      ]
      iex> Strata.MemberList.slice(list, 0..9) |> length()
      4

  ## Operations

  Each mutation returns `[{subscriber, ops}]` for the subscribers whose visible ranges it
  changes, and for no one else (in no particular order). Ops follow Discord's lazy member list protocol and are to be
  applied in order to the client's copy of the list, a sparse list of which the client keeps
  only the positions inside its ranges:

    * `{:sync, range, items}` - the items of `range` (replace what is held there);
    * `{:insert, index, item}` - insert at `index`, shifting later positions up by one;
    * `{:delete, index}` - delete at `index`, shifting later positions down by one;
    * `{:update, index, item}` - replace the item at `index`;
    * `{:invalidate, range}` - forget `range` (the subscriber no longer watches it);
    * `{:groups, [%{id: id, count: count}]}` - the group counts that changed.

  After each op the client drops positions outside its ranges. An insert or delete above a
  range shifts items into it from outside; the server follows with an `{:update, ...}` for
  each position that slid in, or sends one `{:sync, ...}` per range when that is fewer items.

  ## Delivery

  With `delivery: :send` (an option of `new/1`, `open_durable/2`, `load/2` and `open/2`), a
  mutation sends each pid subscriber its ops directly, as the message

      {:strata_member_list, id, ops}

  where `id` is the list's `:id` option (by default a reference made for the list, see
  `id/1`), and returns `[{subscriber, ops}]` for the other subscribers only: a change that
  reaches 50,000 sessions does not build a 50,000-element list on the caller's heap. Sends
  happen after the change is durable, in order: a subscriber gets the ops of one change
  before those of the next.

  ## Subscribers

  A subscriber is any term: a pid, a session id. Pid subscribers are monitored by the list:
  when the process exits, its subscription ends, with nothing for the owner to do. A
  subscriber with no ranges (`subscribe(list, who, [])`, a passive session) costs nothing
  when the list changes. Subscribers watching the same ranges share the work of a change:
  its ops are computed, and built as terms, once for all of them.

  ## Ownership and cost

  Like a protected ETS table, a member list is changed only by the process that created it
  (usually the guild's process); any process can read it. Reads run in parallel with changes,
  and see each change whole.

  The engine is native (`strata_core::member_list`): a change costs `O(log n)` on the member
  set plus `O(g)` for the `g` groups, then, for each distinct set of watched ranges it can
  reach (every one at or below a join or leave; those between the two rows of a move), a
  replay of its few edits; subscribers cost a term each. `batch/2` pays that once per batch.
  `define_groups/2` costs `O(online members)`, regrouped on a dirty scheduler from a
  copy-on-write copy while readers go on.
  """

  alias Strata.{Durable, Native}

  @enforce_keys [:resource]
  defstruct [:resource, journal: nil, id: nil, delivery: :return]

  @typedoc """
  A handle to a member list (mutable; changed by its owner process only): the native
  resource, its journal when durable, its id (in sent messages) and how it delivers ops.
  """
  @type t :: %__MODULE__{
          resource: reference(),
          journal: reference() | nil,
          id: term(),
          delivery: :return | :send
        }

  @typedoc "A member: at least `:id`, `:name`, `:roles` and `:status`."
  @type member :: %{
          required(:id) => term(),
          required(:name) => String.t(),
          required(:roles) => [term()],
          required(:status) => atom(),
          optional(any()) => any()
        }

  @typedoc "A group: a hoisted role id, `:online` or `:offline`."
  @type group_id :: term()

  @typedoc "An item of the rendered list."
  @type item :: {:group, group_id(), pos_integer()} | {:member, member()}

  @typedoc "An operation for a subscriber's client."
  @type op ::
          {:sync, Range.t(), [item()]}
          | {:insert, non_neg_integer(), item()}
          | {:delete, non_neg_integer()}
          | {:update, non_neg_integer(), item()}
          | {:invalidate, Range.t()}
          | {:groups, [%{id: group_id(), count: non_neg_integer()}]}

  @typedoc "What a mutation returns: the ops for each subscriber that sees a change."
  @type changes :: [{subscriber :: term(), [op()]}]

  @typedoc "A mutation of a batch."
  @type mutation ::
          {:upsert, member()} | {:remove, term()} | {:define_groups, [map()]}

  @max_ranges 8
  @max_range_length 1000
  # Positions one native read returns; longer slices are read in pieces.
  @slice_chunk 10_000

  @doc """
  Creates an empty member list owned by the calling process.

  ## Options

    * `:groups` - the hoisted roles, as for `define_groups/2` (default `[]`).
    * `:bucket_size` - the bucket size of the member set (default 512).
    * `:delivery` - `:return` (default) or `:send` (see "Delivery").
    * `:id` - the list's id in sent messages (default: a new reference).
    * `:durable` - a directory: the list is kept there too, as by `open_durable/2` (which
      this raises `Strata.DurabilityError` instead of returning an error).
    * `:sync` - with `:durable`: `:always` (default), `{:interval, ms}` or `:none`; see
      `Strata.Durable`.

  ## Examples

      iex> list = Strata.MemberList.new()
      iex> Strata.MemberList.size(list)
      0
  """
  @spec new(keyword()) :: t()
  def new(opts \\ []) do
    defaults = [groups: [], bucket_size: 512, delivery: :return, id: nil]

    case Durable.split_options!(opts, defaults) do
      {nil, _, opts} ->
        resource = Native.member_list_new(group_pairs!(opts[:groups]), opts[:bucket_size])
        handle(resource, nil, opts)

      {dir, sync, opts} ->
        dir |> open_durable([sync: sync] ++ opts) |> Durable.open!(dir)
    end
  end

  defp handle(resource, journal, opts) do
    delivery =
      case opts[:delivery] do
        d when d in [:return, :send] ->
          d

        other ->
          raise ArgumentError,
                "option :delivery: expected :return or :send, got: #{inspect(other)}"
      end

    %__MODULE__{
      resource: resource,
      journal: journal,
      id: opts[:id] || make_ref(),
      delivery: delivery
    }
  end

  @doc """
  Opens the durable member list kept in directory `dir`, creating it (with `:groups` and
  `:bucket_size`, as in `new/1`) when `dir` holds none and recovering it otherwise: members
  and groups, not subscribers (clients subscribe again after a restart). Every change is
  journaled before it is applied and acknowledged as `:sync` says; see `Strata.Durable`. The
  list is owned by the calling process. Takes `:delivery` and `:id` as `new/1` does.

      iex> dir = Path.join(System.tmp_dir!(), "strata-ml-\#{System.os_time()}")
      iex> list = Strata.MemberList.new(durable: dir, groups: [%{id: :mods, position: 1}])
      iex> Strata.MemberList.upsert(list, %{id: 1, name: "ann", roles: [:mods], status: :online})
      []
      iex> :ok = Strata.MemberList.close(list)
      iex> {:ok, list} = Strata.MemberList.open_durable(dir)
      iex> Strata.MemberList.slice(list, 0..1)
      [{:group, :mods, 1}, {:member, %{id: 1, name: "ann", roles: [:mods], status: :online}}]
  """
  @spec open_durable(Path.t(), keyword()) :: {:ok, t()} | {:error, Durable.reason()}
  def open_durable(dir, opts \\ []) do
    opts =
      Strata.Options.validate!(opts,
        sync: :always,
        groups: [],
        bucket_size: 512,
        delivery: :return,
        id: nil
      )

    dir = Durable.path(dir)
    groups = group_pairs!(opts[:groups])

    Durable.recover(__MODULE__, dir, fn ->
      case Native.member_list_recover(dir, opts[:sync], groups, opts[:bucket_size]) do
        {:ok, resource, journal, report} -> {:ok, handle(resource, journal, opts), report}
        {:error, _} = error -> error
      end
    end)
  end

  @doc """
  Encodes the members and groups (not the subscribers) as a snapshot binary (format in
  `Strata.Durable`), from a copy-on-write copy taken under the list's lock.

      iex> list = Strata.MemberList.new()
      iex> Strata.MemberList.upsert(list, %{id: 1, name: "a", roles: [], status: :online})
      iex> {:ok, copy} = list |> Strata.MemberList.dump() |> Strata.MemberList.load()
      iex> Strata.MemberList.slice(copy, 0..9) == Strata.MemberList.slice(list, 0..9)
      true
  """
  @spec dump(t()) :: binary()
  def dump(list) do
    list = list!(list)

    Durable.snapshot_span(:dump, __MODULE__, %{}, fn ->
      bytes = Native.member_list_dump(list.resource)
      {bytes, %{bytes: byte_size(bytes)}, %{}}
    end)
  end

  @doc """
  Checks and decodes a snapshot binary made by `dump/1` into a new list owned by the
  calling process (options `:delivery` and `:id` as in `new/1`).

      iex> Strata.MemberList.load("junk")
      {:error, {:corrupt, "not a Strata snapshot (bad magic)"}}
  """
  @spec load(binary(), keyword()) :: {:ok, t()} | {:error, Durable.reason()}
  def load(bytes, opts \\ [])

  def load(bytes, opts) when is_binary(bytes) do
    opts = Strata.Options.validate!(opts, delivery: :return, id: nil)

    Durable.snapshot_span(:load, __MODULE__, %{}, fn ->
      result = bytes |> Native.member_list_load() |> opened(opts)
      {result, %{bytes: byte_size(bytes)}, %{result: Durable.outcome(result)}}
    end)
  end

  def load(other, _opts),
    do: raise(ArgumentError, "argument bytes: expected a binary, got: #{inspect(other)}")

  defp opened({:ok, resource}, opts), do: {:ok, handle(resource, nil, opts)}
  defp opened({:error, _} = error, _opts), do: error

  @doc "Writes a snapshot of the list to `path` atomically (see `Strata.Durable`)."
  @spec save(t(), Path.t()) :: :ok | {:error, Durable.reason()}
  def save(list, path) do
    {list, path} = {list!(list), Durable.path(path)}

    Durable.snapshot_span(:save, __MODULE__, %{path: path}, fn ->
      Strata.Telemetry.result(Native.member_list_save(list.resource, path))
    end)
  end

  @doc """
  Reads a snapshot file written by `save/2` into a new list owned by the calling process
  (options as for `load/2`).

      iex> Strata.MemberList.open("/nonexistent/strata.snap")
      {:error, :enoent}
  """
  @spec open(Path.t(), keyword()) :: {:ok, t()} | {:error, Durable.reason()}
  def open(path, opts \\ []) do
    {path, opts} =
      {Durable.path(path), Strata.Options.validate!(opts, delivery: :return, id: nil)}

    Durable.snapshot_span(:open, __MODULE__, %{path: path}, fn ->
      Strata.Telemetry.result(path |> Native.member_list_open() |> opened(opts))
    end)
  end

  @doc """
  Writes a snapshot of a durable list and starts a new journal segment.

      iex> Strata.MemberList.checkpoint(Strata.MemberList.new())
      {:error, :not_durable}
  """
  @spec checkpoint(t()) :: :ok | {:error, Durable.reason()}
  def checkpoint(list) do
    list = list!(list)

    Strata.Telemetry.span([:strata, :checkpoint], %{structure: __MODULE__, handle: list}, fn ->
      Strata.Telemetry.result(Native.member_list_checkpoint(list.resource))
    end)
  end

  @doc """
  Makes every change to a durable list durable and releases its directory; later changes
  raise `Strata.DurabilityError`.
  """
  @spec close(t()) :: :ok | {:error, Durable.reason()}
  def close(list), do: Durable.close(list!(list))

  @doc "fsyncs every change made so far to a durable list (see `Strata.Durable`)."
  @spec sync(t()) :: :ok | {:error, Durable.reason()}
  def sync(list), do: Durable.sync(list!(list))

  @doc """
  The id of the list in the messages it sends (see "Delivery").

      iex> Strata.MemberList.new(id: {:guild, 7}) |> Strata.MemberList.id()
      {:guild, 7}
  """
  @spec id(t()) :: term()
  def id(list), do: list!(list).id

  @doc """
  Sets the hoisted roles: a list of `%{id: role_id, position: non_neg_integer}`, shown
  highest position first. Members are regrouped at once; returns the changes for
  subscribers (a `{:sync, ...}` for each watched range whose items changed).

      iex> list = Strata.MemberList.new()
      iex> Strata.MemberList.upsert(list, %{id: 1, name: "a", roles: [:vip], status: :online})
      iex> Strata.MemberList.define_groups(list, [%{id: :vip, position: 1}])
      []
      iex> Strata.MemberList.group_counts(list)
      [%{id: :vip, count: 1}, %{id: :online, count: 0}, %{id: :offline, count: 0}]
  """
  @spec define_groups(t(), [%{id: group_id(), position: non_neg_integer()}]) :: changes()
  def define_groups(list, groups) do
    list = list!(list)
    list.resource |> Native.member_list_define_groups(group_pairs!(groups)) |> deliver(list)
  end

  @doc """
  Adds a member or changes one (a join, a rename, a role or presence change). Returns the
  changes for the subscribers that see them.

      iex> list = Strata.MemberList.new()
      iex> Strata.MemberList.upsert(list, %{id: 7, name: "ann", roles: [], status: :offline})
      []
      iex> Strata.MemberList.index_of(list, 7)
      1
  """
  @spec upsert(t(), member()) :: changes()
  def upsert(list, member) do
    list = list!(list)
    list.resource |> Native.member_list_upsert(member) |> deliver(list)
  end

  @doc """
  Removes the member with `id`; returns the changes for the subscribers that see them (`[]`
  when there is no such member).

      iex> list = Strata.MemberList.new()
      iex> Strata.MemberList.upsert(list, %{id: 1, name: "a", roles: [], status: :online})
      iex> Strata.MemberList.remove(list, 1)
      []
      iex> Strata.MemberList.size(list)
      0
  """
  @spec remove(t(), term()) :: changes()
  def remove(list, id) do
    list = list!(list)
    list.resource |> Native.member_list_remove(id) |> deliver(list)
  end

  @doc """
  Applies `mutations` (`{:upsert, member}`, `{:remove, id}`, `{:define_groups, groups}`, at
  most 10,000) in order, as one change: journaled as one record, and returning one
  coalesced op list per subscriber for the whole batch. A member changed several times in
  the batch counts once, as its last change; each subscriber gets at most one op per
  position whose item changed, or a SYNC per range when that is fewer. Emits a
  `[:strata, :member_list, :batch]` span (see `Strata.Telemetry`).

      iex> list = Strata.MemberList.new()
      iex> Strata.MemberList.subscribe(list, :c, [0..9])
      iex> [{:c, ops}] =
      ...>   Strata.MemberList.batch(list, [
      ...>     {:upsert, %{id: 1, name: "a", roles: [], status: :online}},
      ...>     {:upsert, %{id: 1, name: "a", roles: [], status: :offline}},
      ...>     {:upsert, %{id: 1, name: "a", roles: [], status: :online}}
      ...>   ])
      iex> ops
      [
        {:insert, 0, {:group, :online, 1}},
        {:insert, 1, {:member, %{id: 1, name: "a", roles: [], status: :online}}},
        {:groups, [%{id: :online, count: 1}]}
      ]
  """
  @spec batch(t(), [mutation()]) :: changes()
  def batch(list, mutations) do
    list = list!(list)

    unless is_list(mutations) do
      raise ArgumentError, "argument mutations: expected a list, got: #{inspect(mutations)}"
    end

    mutations =
      Enum.map(mutations, fn
        {:define_groups, groups} -> {:define_groups, group_pairs!(groups)}
        other -> other
      end)

    meta = %{list: list.id, mutations: length(mutations)}

    Strata.Telemetry.span([:strata, :member_list, :batch], meta, fn ->
      changes = list.resource |> Native.member_list_batch(mutations) |> deliver(list)
      {changes, %{subscribers: length(changes)}, %{}}
    end)
  end

  # After a change: waits until it is durable, then hands each subscriber its ops.
  defp deliver(:none, _list), do: []

  defp deliver(outbox, list) do
    Durable.ack!(list)
    Native.member_list_deliver(outbox, list.id, list.delivery == :send, [], nil)
  end

  @doc """
  Subscribes `subscriber` (any term: a pid, a session id) to `ranges` of the list (at most
  #{@max_ranges} disjoint `first..last` ranges of at most #{@max_range_length} positions;
  none for a passive subscriber), replacing any earlier subscription. Returns its ops: an
  `{:invalidate, range}` for each range it watched before and no longer does, a
  `{:sync, range, items}` for each range, and the counts of the non-empty groups. A pid
  subscriber is unsubscribed when it exits.

      iex> list = Strata.MemberList.new()
      iex> Strata.MemberList.upsert(list, %{id: 1, name: "a", roles: [], status: :online})
      iex> Strata.MemberList.subscribe(list, self(), [0..99])
      [
        {:sync, 0..99, [{:group, :online, 1}, {:member, %{id: 1, name: "a", roles: [], status: :online}}]},
        {:groups, [%{id: :online, count: 1}]}
      ]
  """
  @spec subscribe(t(), term(), [Range.t()]) :: [op()]
  def subscribe(list, subscriber, ranges) do
    list = list!(list)
    Native.member_list_subscribe(list.resource, subscriber, spans!(ranges))
  end

  @doc """
  Ends the subscription of `subscriber`; returns an `{:invalidate, range}` for each range it
  watched (`[]` if it had none).

      iex> list = Strata.MemberList.new()
      iex> Strata.MemberList.subscribe(list, :c, [0..9])
      iex> Strata.MemberList.unsubscribe(list, :c)
      [{:invalidate, 0..9}]
  """
  @spec unsubscribe(t(), term()) :: [op()]
  def unsubscribe(list, subscriber) do
    Native.member_list_unsubscribe(list!(list).resource, subscriber)
  end

  @doc """
  The items at the positions of `range` (fewer past the end of the list).

      iex> list = Strata.MemberList.new()
      iex> Strata.MemberList.upsert(list, %{id: 1, name: "a", roles: [], status: :offline})
      iex> Strata.MemberList.slice(list, 0..5)
      [{:group, :offline, 1}, {:member, %{id: 1, name: "a", roles: [], status: :offline}}]
  """
  @spec slice(t(), Range.t()) :: [item()]
  def slice(%__MODULE__{} = list, first..last//1) when is_integer(first) and first >= 0 do
    if last - first < @slice_chunk do
      Native.member_list_slice(list.resource, first, max(last, first - 1))
    else
      first..last//@slice_chunk
      |> Enum.flat_map(
        &Native.member_list_slice(list.resource, &1, min(&1 + @slice_chunk - 1, last))
      )
    end
  end

  def slice(%__MODULE__{}, range) do
    raise ArgumentError,
          "argument range: expected a first..last range of non-negative integers, got: #{inspect(range)}"
  end

  def slice(other, _range), do: list!(other)

  @doc """
  The position of the member with `id` in the rendered list, or `nil`.

      iex> list = Strata.MemberList.new()
      iex> Strata.MemberList.upsert(list, %{id: 1, name: "b", roles: [], status: :online})
      iex> Strata.MemberList.upsert(list, %{id: 2, name: "A", roles: [], status: :online})
      iex> {Strata.MemberList.index_of(list, 1), Strata.MemberList.index_of(list, 3)}
      {2, nil}
  """
  @spec index_of(t(), term()) :: non_neg_integer() | nil
  def index_of(list, id), do: Native.member_list_index_of(list!(list).resource, id)

  @doc """
  The number of items in the rendered list: members plus a header per non-empty group.

      iex> Strata.MemberList.new() |> Strata.MemberList.size()
      0
  """
  @spec size(t()) :: non_neg_integer()
  def size(list), do: Native.member_list_size(list!(list).resource)

  @doc """
  Every group in display order with its member count.

      iex> Strata.MemberList.new(groups: [%{id: :a, position: 1}]) |> Strata.MemberList.group_counts()
      [%{id: :a, count: 0}, %{id: :online, count: 0}, %{id: :offline, count: 0}]
  """
  @spec group_counts(t()) :: [%{id: group_id(), count: non_neg_integer()}]
  def group_counts(list), do: Native.member_list_group_counts(list!(list).resource)

  @doc """
  Counts and native memory: `members`, `subscribers` (passive ones included), `views` (the
  distinct sets of watched ranges, each computed once per change) and `memory` (bytes).

      iex> list = Strata.MemberList.new()
      iex> Strata.MemberList.subscribe(list, :a, [0..99])
      iex> Strata.MemberList.subscribe(list, :b, [0..99])
      iex> Strata.MemberList.subscribe(list, :c, [])
      iex> Strata.MemberList.info(list) |> Map.delete(:memory)
      %{members: 0, subscribers: 3, views: 1}
  """
  @spec info(t()) :: %{
          members: non_neg_integer(),
          subscribers: non_neg_integer(),
          views: non_neg_integer(),
          memory: non_neg_integer()
        }
  def info(list) do
    {members, subscribers, views, memory} = Native.member_list_info(list!(list).resource)
    %{members: members, subscribers: subscribers, views: views, memory: memory}
  end

  # --- arguments -------------------------------------------------------------------------

  defp list!(%__MODULE__{} = list), do: list

  defp list!(other) do
    raise ArgumentError, "argument list: expected a %Strata.MemberList{}, got: #{inspect(other)}"
  end

  defp group_pairs!(groups) when is_list(groups) do
    Enum.map(groups, fn
      %{id: id, position: p} when is_integer(p) and p >= 0 and id not in [:online, :offline] ->
        {id, p}

      other ->
        raise ArgumentError,
              "argument groups: expected %{id: role_id, position: non_neg_integer} " <>
                "(ids other than :online and :offline), got: #{inspect(other)}"
    end)
  end

  defp group_pairs!(other) do
    raise ArgumentError, "argument groups: expected a list, got: #{inspect(other)}"
  end

  defp spans!(ranges) when is_list(ranges) and length(ranges) <= @max_ranges do
    ranges
    |> Enum.map(fn
      first..last//1 = r
      when is_integer(first) and first >= 0 and last >= first and last - first < @max_range_length ->
        r

      other ->
        raise ArgumentError,
              "argument ranges: expected first..last ranges of at most #{@max_range_length} positions, got: #{inspect(other)}"
    end)
    |> Enum.sort()
    |> Enum.chunk_every(2, 1)
    |> Enum.map(fn
      [a, b] when b.first <= a.last ->
        raise ArgumentError, "argument ranges: ranges overlap: #{inspect(a)}, #{inspect(b)}"

      [a | _] ->
        {a.first, a.last}
    end)
  end

  defp spans!(other) do
    raise ArgumentError,
          "argument ranges: expected a list of at most #{@max_ranges} ranges, got: #{inspect(other)}"
  end

  defimpl Inspect do
    def inspect(list, _opts) do
      "#Strata.MemberList<size: #{Strata.MemberList.size(list)}>"
    end
  end
end
