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
  changes, and for no one else. Ops follow Discord's lazy member list protocol and are to be
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

  ## Ownership and cost

  Like a protected ETS table, a member list is changed only by the process that created it
  (usually the guild's process); any process can read it. Reads run in parallel with changes.

  A change costs `O(log n)` on the native sorted set plus `O(g)` for the `g` groups, plus
  `O(1)` for each subscriber with a range the change can reach: for a join or leave, every
  range at or below the changed row (their rows shift); for a move, the ranges between its
  two rows; for a header update, the ranges containing it. They are found through an index
  of watched ranges by their last row. Reads from other processes may see a change half
  applied (its rows before its group counts). `define_groups/2` costs `O(online members)`.
  """

  alias Strata.{Durable, Native, SortedSet}

  @enforce_keys [:set, :table, :subs]
  defstruct [:set, :table, :subs, journal: nil]

  @typedoc """
  A handle to a member list (mutable; changed by its owner process only); `journal` when
  durable.
  """
  @type t :: %__MODULE__{
          set: SortedSet.t(),
          table: :ets.tid(),
          subs: :ets.tid(),
          journal: reference() | nil
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

  @max_ranges 8
  @max_range_length 1000

  # Layout of the ETS table (`:protected`, owned by the creator):
  #   :groups          -> {order, sort}: `order` a tuple of group ids in display order,
  #                       `sort` a map from hoisted role id to its sort value
  #   :counts          -> a tuple of member counts, by display order of the groups
  #   {:member, id}    -> the member's key in the sorted set
  #   {:sub, who}      -> {seq, ranges, last} for each subscriber
  #   :seq             -> the last subscription sequence number
  # and of `subs`, an ordered_set of keys only, one per watched range:
  # {{b, seq, who, spans, last}} for the range a..b of the subscriber `who` (its ranges
  # `spans`, the last of them ending at `last`). Ranges are at most #{@max_range_length} long,
  # so the ranges that contain position h all have b in h..h + #{@max_range_length - 1}: the
  # candidates of a change are found by walking a bounded stretch with `:ets.next/2`.
  #
  # Keys in the sorted set are {sort, downcased_name, id, member}; `sort` is -position for a
  # hoisted role (higher positions first), 1 for online, 2 for offline.
  @online_sort 1
  @offline_sort 2
  @pending :"$strata_pending"

  @doc """
  Creates an empty member list owned by the calling process.

  ## Options

    * `:groups` - the hoisted roles, as for `define_groups/2` (default `[]`).
    * `:bucket_size` - the bucket size of the underlying `Strata.SortedSet` (default 512).
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
    defaults = [groups: [], bucket_size: SortedSet.default_bucket_size()]

    case Durable.split_options!(opts, defaults) do
      {nil, _, opts} ->
        create(opts)

      {dir, sync, opts} ->
        dir |> open_durable([sync: sync] ++ opts) |> Durable.open!(dir)
    end
  end

  defp create(opts) do
    table = :ets.new(__MODULE__, [:set, :protected, read_concurrency: true])
    subs = :ets.new(__MODULE__.Subscribers, [:ordered_set, :protected, read_concurrency: true])

    list = %__MODULE__{
      set: SortedSet.new(bucket_size: opts[:bucket_size]),
      table: table,
      subs: subs
    }

    {order, sort} = group_layout(opts[:groups])

    :ets.insert(table, [
      {:groups, order, sort},
      {:counts, zero_counts(order)},
      {:seq, 0},
      {:bucket_size, opts[:bucket_size]}
    ])

    list
  end

  @doc """
  Opens the durable member list kept in directory `dir`, creating it (with `:groups` and
  `:bucket_size`, as in `new/1`) when `dir` holds none and recovering it otherwise: members
  and groups, not subscribers (clients subscribe again after a restart). Every change is
  journaled before it is applied and acknowledged as `:sync` says; see `Strata.Durable`. The
  list is owned by the calling process.

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
        bucket_size: SortedSet.default_bucket_size()
      )

    dir = Durable.path(dir)
    Durable.recover(__MODULE__, dir, fn -> recover(dir, opts) end)
  end

  defp recover(dir, opts) do
    case Native.blob_recover(dir, opts[:sync]) do
      {:ok, journal, payload, records, report} ->
        # Whatever happens below, a failed open releases the directory.
        try do
          base = if payload == "", do: {:ok, create(opts)}, else: restore(payload)

          with {:ok, list} <- base,
               :ok <- replay(list, records),
               list = %{list | journal: journal},
               :ok <- if(payload == "", do: checkpoint(list), else: :ok) do
            {:ok, list, report}
          else
            {:error, _} = error ->
              Native.journal_close(journal)
              error
          end
        rescue
          e ->
            Native.journal_close(journal)
            reraise e, __STACKTRACE__
        end

      {:error, _} = error ->
        error
    end
  end

  @doc """
  Encodes the members and groups (not the subscribers) as a snapshot binary (format in
  `Strata.Durable`).

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
      bytes = list |> payload() |> Native.blob_seal()
      {bytes, %{bytes: byte_size(bytes)}, %{}}
    end)
  end

  @doc """
  Checks and decodes a snapshot binary made by `dump/1` into a new list owned by the
  calling process.

      iex> Strata.MemberList.load("junk")
      {:error, {:corrupt, "not a Strata snapshot (bad magic)"}}
  """
  @spec load(binary()) :: {:ok, t()} | {:error, Durable.reason()}
  def load(bytes) when is_binary(bytes) do
    Durable.snapshot_span(:load, __MODULE__, %{}, fn ->
      result = with {:ok, payload} <- Native.blob_unseal(bytes), do: restore(payload)
      {result, %{bytes: byte_size(bytes)}, %{result: Durable.outcome(result)}}
    end)
  end

  def load(other),
    do: raise(ArgumentError, "argument bytes: expected a binary, got: #{inspect(other)}")

  @doc "Writes a snapshot of the list to `path` atomically (see `Strata.Durable`)."
  @spec save(t(), Path.t()) :: :ok | {:error, Durable.reason()}
  def save(list, path) do
    {list, path} = {list!(list), Durable.path(path)}

    Durable.snapshot_span(:save, __MODULE__, %{path: path}, fn ->
      Strata.Telemetry.result(list |> payload() |> Native.blob_save(path))
    end)
  end

  @doc """
  Reads a snapshot file written by `save/2` into a new list owned by the calling process.

      iex> Strata.MemberList.open("/nonexistent/strata.snap")
      {:error, :enoent}
  """
  @spec open(Path.t()) :: {:ok, t()} | {:error, Durable.reason()}
  def open(path) do
    path = Durable.path(path)

    Durable.snapshot_span(:open, __MODULE__, %{path: path}, fn ->
      Strata.Telemetry.result(with {:ok, payload} <- Native.blob_open(path), do: restore(payload))
    end)
  end

  @doc """
  Writes a snapshot of a durable list and starts a new journal segment (owner only).

      iex> Strata.MemberList.checkpoint(Strata.MemberList.new())
      {:error, :not_durable}
  """
  @spec checkpoint(t()) :: :ok | {:error, Durable.reason()}
  def checkpoint(%__MODULE__{journal: nil}), do: {:error, :not_durable}

  def checkpoint(%__MODULE__{journal: journal} = list) do
    owner!(list)

    Strata.Telemetry.span([:strata, :checkpoint], %{structure: __MODULE__, handle: list}, fn ->
      Strata.Telemetry.result(Native.blob_checkpoint(journal, payload(list)))
    end)
  end

  def checkpoint(other), do: list!(other)

  @doc """
  Makes every change to a durable list durable and releases its directory; later changes
  raise `Strata.DurabilityError`.
  """
  @spec close(t()) :: :ok | {:error, Durable.reason()}
  def close(list), do: Durable.close(list!(list))

  @doc "fsyncs every change made so far to a durable list (see `Strata.Durable`)."
  @spec sync(t()) :: :ok | {:error, Durable.reason()}
  def sync(list), do: Durable.sync(list!(list))

  # The snapshot payload: format version, options, groups and members, in external term
  # format.
  defp payload(list) do
    [{:groups, _order, sort}] = :ets.lookup(list.table, :groups)
    [{:bucket_size, bucket_size}] = :ets.lookup(list.table, :bucket_size)
    groups = for {id, s} <- Enum.sort_by(sort, &elem(&1, 1)), do: %{id: id, position: -s}
    members = for {_, _, _, member} <- SortedSet.to_list(list.set), do: member
    :erlang.term_to_binary({:strata_member_list, 1, bucket_size, groups, members})
  end

  # A new list from a snapshot payload, every part checked.
  defp restore(payload) do
    # Like the other structures' snapshots, a payload may name atoms this VM has not made
    # yet: they are created (load only your own snapshots). What it holds is then checked
    # as every change is.
    {:strata_member_list, 1, bucket_size, groups, members} = :erlang.binary_to_term(payload)

    unless is_list(members), do: raise(ArgumentError, "members are not a list")

    # Everything is checked before the list's tables are made.
    unless is_integer(bucket_size) and bucket_size in 4..65_536 do
      raise ArgumentError, "bucket size #{inspect(bucket_size)} out of range"
    end

    {order, sort} = group_layout(groups)
    Enum.each(members, &validate_member!/1)

    if length(Enum.uniq_by(members, & &1.id)) != length(members) do
      raise ArgumentError, "a member id repeats"
    end

    list = create(groups: groups, bucket_size: bucket_size)
    keys = Enum.map(members, &key(&1, sort))
    SortedSet.add_all(list.set, keys)

    :ets.insert(list.table, for({_, _, _, m} = k <- keys, do: {{:member, m.id}, k}))
    :ets.insert(list.table, {:counts, recount(list, order, sort)})
    {:ok, list}
  rescue
    e -> {:error, {:corrupt, "member list: " <> Exception.message(e)}}
  end

  # Applies journal records in order (as the owner, with no journal yet: nothing is
  # recorded again).
  defp replay(list, records) do
    Enum.each(records, fn record ->
      case :erlang.binary_to_term(record) do
        {:upsert, member} -> upsert(list, member)
        {:remove, id} -> remove(list, id)
        {:define_groups, groups} -> define_groups(list, groups)
      end
    end)
  rescue
    e -> {:error, {:corrupt, "member list journal: " <> Exception.message(e)}}
  end

  # Journals a change before it is applied (a durable list only).
  defp record!(%__MODULE__{journal: nil}, _op), do: :ok

  defp record!(%__MODULE__{journal: journal}, op) do
    case Native.blob_append(journal, :erlang.term_to_binary(op)) do
      :ok -> :ok
      {:error, reason} -> raise Strata.DurabilityError, reason: reason
    end
  end

  @doc """
  Sets the hoisted roles: a list of `%{id: role_id, position: integer}`, shown highest
  position first. Members are regrouped at once; returns the changes for subscribers (a
  `{:sync, ...}` for each watched range from the first position that changed on).

      iex> list = Strata.MemberList.new()
      iex> Strata.MemberList.upsert(list, %{id: 1, name: "a", roles: [:vip], status: :online})
      iex> Strata.MemberList.define_groups(list, [%{id: :vip, position: 1}])
      []
      iex> Strata.MemberList.group_counts(list)
      [%{id: :vip, count: 1}, %{id: :online, count: 0}, %{id: :offline, count: 0}]
  """
  @spec define_groups(t(), [%{id: group_id(), position: integer()}]) :: changes()
  def define_groups(list, groups) do
    list = list!(list)
    owner!(list)
    {order, sort} = group_layout(groups)
    record!(list, {:define_groups, groups})
    changes = apply_groups(list, order, sort)
    Durable.ack!(list)
    changes
  end

  defp apply_groups(list, order, sort) do
    [{:groups, old_order, _}] = :ets.lookup(list.table, :groups)
    old_counts = counts(list)

    # Groups before the first one whose id changes keep their members and positions.
    case Enum.find(0..(tuple_size(order) - 1), &(elem_or(old_order, &1) != elem(order, &1))) do
      nil ->
        # Same display order: only the sort values of the keys change.
        regroup(list, order, sort, old_counts)
        []

      g ->
        bound = header_position(old_counts, g)
        ranges = subscribed_ranges(list, bound)
        before = Map.new(ranges, &{&1, :erlang.phash2(slice(list, &1))})
        counts = regroup(list, order, sort, old_counts)

        changed =
          for {id, c} <- group_pairs(order, counts),
              c != count_of(old_order, old_counts, id),
              do: %{id: id, count: c}

        resync(list, bound, before, changed)
    end
  end

  # Re-keys every member that is not offline (only they can change group) and recounts.
  defp regroup(list, order, sort, old_counts) do
    [{:groups, old_order, _}] = :ets.lookup(list.table, :groups)
    online = total(old_counts) - count_of(old_order, old_counts, :offline)

    for {_, _, _, member} = old <- SortedSet.slice(list.set, 0, online),
        (new = key(member, sort)) != old do
      SortedSet.update(list.set, old, new)
      :ets.insert(list.table, {{:member, member.id}, new})
    end

    counts = recount(list, order, sort)
    :ets.insert(list.table, [{:groups, order, sort}, {:counts, counts}])
    counts
  end

  defp subscribed_ranges(list, bound) do
    list.subs
    |> :ets.select([{{{:"$1", :_, :_, :_, :_}}, [{:>=, :"$1", bound}], [:"$_"]}])
    |> Enum.map(fn {{b, _, _, spans, _}} -> Enum.find(spans, &(elem(&1, 1) == b)) end)
    |> Enum.uniq()
    |> Enum.map(fn {a, b} -> a..b end)
  end

  # A SYNC for every watched range (ending at or after `bound`) whose items changed.
  defp resync(list, bound, before, changed) do
    after_ = Map.new(before, fn {r, _} -> {r, slice(list, r)} end)

    list.subs
    |> :ets.select([{{{:"$1", :_, :"$2", :"$3", :_}}, [{:>=, :"$1", bound}], [{{:"$2", :"$3"}}]}])
    |> Enum.uniq_by(&elem(&1, 0))
    |> Enum.flat_map(fn {who, spans} ->
      syncs =
        for {a, b} <- spans,
            r = a..b,
            b >= bound,
            :erlang.phash2(after_[r]) != before[r],
            do: {:sync, r, after_[r]}

      groups = if changed == [], do: [], else: [{:groups, changed}]
      if syncs == [], do: [], else: [{who, syncs ++ groups}]
    end)
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
    owner!(list)
    validate_member!(member)
    record!(list, {:upsert, member})
    changes = apply_upsert(list, member)
    Durable.ack!(list)
    changes
  end

  defp apply_upsert(list, member) do
    [{:groups, order, sort}] = :ets.lookup(list.table, :groups)
    new_key = key(member, sort)

    case :ets.lookup(list.table, {:member, member.id}) do
      [{_, ^new_key}] ->
        []

      [{_, old_key}] ->
        {from, to} = SortedSet.update(list.set, old_key, new_key)
        :ets.insert(list.table, {{:member, member.id}, new_key})
        change(list, order, {old_key, from}, {new_key, to})

      [] ->
        {to, _} = SortedSet.index_add(list.set, new_key)
        :ets.insert(list.table, {{:member, member.id}, new_key})
        change(list, order, nil, {new_key, to})
    end
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
    owner!(list)

    case :ets.lookup(list.table, {:member, id}) do
      [] ->
        []

      [{_, old_key}] ->
        record!(list, {:remove, id})
        changes = apply_remove(list, id, old_key)
        Durable.ack!(list)
        changes
    end
  end

  defp apply_remove(list, id, old_key) do
    {from, _} = SortedSet.index_remove(list.set, old_key)
    :ets.delete(list.table, {:member, id})
    [{:groups, order, _}] = :ets.lookup(list.table, :groups)
    change(list, order, {old_key, from}, nil)
  end

  @doc """
  Subscribes `subscriber` (any term: a pid, a session id) to `ranges` of the list (at most
  #{@max_ranges}, each a `first..last` range of at most #{@max_range_length} positions),
  replacing any earlier subscription. Returns its ops: a `{:sync, range, items}` for each
  range, an `{:invalidate, range}` for each range it watched before and no longer does, and
  the counts of the non-empty groups.

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
    owner!(list)
    ranges = normalize_ranges!(ranges)
    old = drop_subscription(list, subscriber)
    seq = :ets.update_counter(list.table, :seq, 1)
    spans = for r <- ranges, do: {r.first, r.last}
    {_, last} = List.last(spans)
    :ets.insert(list.table, {{:sub, subscriber}, seq, spans, last})
    :ets.insert(list.subs, for({_, b} <- spans, do: {{b, seq, subscriber, spans, last}}))

    invalidate = for r <- old, r not in ranges, do: {:invalidate, r}
    syncs = for r <- ranges, do: {:sync, r, slice(list, r)}
    [{:groups, order, _}] = :ets.lookup(list.table, :groups)
    counts = counts(list)
    groups = for {id, c} <- group_pairs(order, counts), c > 0, do: %{id: id, count: c}
    invalidate ++ syncs ++ [{:groups, groups}]
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
    list = list!(list)
    owner!(list)
    for r <- drop_subscription(list, subscriber), do: {:invalidate, r}
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
    [{:groups, order, _}] = :ets.lookup(list.table, :groups)
    counts = counts(list)
    slice_items(list, group_pairs(order, counts), first, last, 0, 0, [])
  end

  def slice(%__MODULE__{}, range) do
    raise ArgumentError,
          "argument range: expected a first..last range of non-negative integers, got: #{inspect(range)}"
  end

  def slice(other, _range), do: list!(other)

  defp slice_items(_list, [], _first, _last, _pos, _before, acc), do: Enum.reverse(acc)

  defp slice_items(list, [{_id, 0} | rest], first, last, pos, before, acc),
    do: slice_items(list, rest, first, last, pos, before, acc)

  defp slice_items(_list, _groups, _first, last, pos, _before, acc) when pos > last,
    do: Enum.reverse(acc)

  defp slice_items(list, [{id, count} | rest], first, last, pos, before, acc) do
    acc = if pos >= first, do: [{:group, id, count} | acc], else: acc
    # Members of this group sit at positions pos + 1 .. pos + count.
    from = max(first, pos + 1)
    to = min(last, pos + count)

    acc =
      if from <= to do
        list.set
        |> SortedSet.slice(before + from - pos - 1, to - from + 1)
        |> Enum.reduce(acc, fn key, acc -> [{:member, elem(key, 3)} | acc] end)
      else
        acc
      end

    slice_items(list, rest, first, last, pos + count + 1, before + count, acc)
  end

  @doc """
  The position of the member with `id` in the rendered list, or `nil`.

      iex> list = Strata.MemberList.new()
      iex> Strata.MemberList.upsert(list, %{id: 1, name: "b", roles: [], status: :online})
      iex> Strata.MemberList.upsert(list, %{id: 2, name: "A", roles: [], status: :online})
      iex> {Strata.MemberList.index_of(list, 1), Strata.MemberList.index_of(list, 3)}
      {2, nil}
  """
  @spec index_of(t(), term()) :: non_neg_integer() | nil
  def index_of(list, id) do
    list = list!(list)

    case :ets.lookup(list.table, {:member, id}) do
      [] ->
        nil

      [{_, key}] ->
        [{:groups, order, _}] = :ets.lookup(list.table, :groups)
        position(SortedSet.find_index(list.set, key), group_index(order, key), counts(list))
    end
  end

  @doc """
  The number of items in the rendered list: members plus a header per non-empty group.

      iex> Strata.MemberList.new() |> Strata.MemberList.size()
      0
  """
  @spec size(t()) :: non_neg_integer()
  def size(list) do
    list = list!(list)
    counts = counts(list)
    total(counts) + nonempty_before(counts, tuple_size(counts))
  end

  @doc """
  Every group in display order with its member count.

      iex> Strata.MemberList.new(groups: [%{id: :a, position: 1}]) |> Strata.MemberList.group_counts()
      [%{id: :a, count: 0}, %{id: :online, count: 0}, %{id: :offline, count: 0}]
  """
  @spec group_counts(t()) :: [%{id: group_id(), count: non_neg_integer()}]
  def group_counts(list) do
    list = list!(list)
    [{:groups, order, _}] = :ets.lookup(list.table, :groups)
    for {id, c} <- group_pairs(order, counts(list)), do: %{id: id, count: c}
  end

  # --- groups, keys and positions ---------------------------------------------------------

  defp group_layout(groups) when is_list(groups) do
    roles =
      Enum.map(groups, fn
        %{id: id, position: p} when is_integer(p) and p >= 0 and id not in [:online, :offline] ->
          {id, p}

        other ->
          raise ArgumentError,
                "argument groups: expected %{id: role_id, position: non_neg_integer} " <>
                  "(ids other than :online and :offline), got: #{inspect(other)}"
      end)

    if length(Enum.uniq_by(roles, &elem(&1, 0))) != length(roles) or
         length(Enum.uniq_by(roles, &elem(&1, 1))) != length(roles) do
      raise ArgumentError, "argument groups: role ids and positions must be unique"
    end

    sorted = Enum.sort_by(roles, fn {_, p} -> -p end)
    order = List.to_tuple(Enum.map(sorted, &elem(&1, 0)) ++ [:online, :offline])
    {order, Map.new(roles, fn {id, p} -> {id, -p} end)}
  end

  defp group_layout(other) do
    raise ArgumentError, "argument groups: expected a list, got: #{inspect(other)}"
  end

  defp zero_counts(order), do: Tuple.duplicate(0, tuple_size(order))

  defp key(%{status: :offline} = m, _sort),
    do: {@offline_sort, String.downcase(m.name), exact_id(m.id), m}

  defp key(m, sort) do
    # The highest hoisted role has the lowest sort value.
    group =
      Enum.reduce(m.roles, @online_sort, fn role, best ->
        case sort do
          %{^role => s} when s < best -> s
          _ -> best
        end
      end)

    {group, String.downcase(m.name), exact_id(m.id), m}
  end

  # The set compares keys with `==`, under which `1` and `1.0` are one id, while members
  # are told apart by `===`: an id holding a float is keyed by its exact encoding (after
  # every id without one of the same name), so that no two members ever share a key.
  defp exact_id(id) when is_integer(id) or is_binary(id) or is_atom(id), do: {0, id}

  defp exact_id(id) do
    if float_inside?(id), do: {1, :erlang.term_to_binary(id)}, else: {0, id}
  end

  defp float_inside?(x) when is_float(x), do: true
  defp float_inside?(x) when is_tuple(x), do: float_inside?(Tuple.to_list(x))
  defp float_inside?([x | rest]), do: float_inside?(x) or float_inside?(rest)
  defp float_inside?(%{} = m), do: float_inside?(Map.to_list(m))
  defp float_inside?(_), do: false

  # The display index of the group of a key.
  defp group_index(order, {@offline_sort, _, _, _}), do: tuple_size(order) - 1
  defp group_index(order, {@online_sort, _, _, _}), do: tuple_size(order) - 2

  defp group_index(order, {_, _, _, m}) do
    # The member's highest hoisted role is the first group in `order` that it has.
    Enum.find(0..(tuple_size(order) - 3), fn g -> elem(order, g) in m.roles end)
  end

  defp counts(list), do: :ets.lookup_element(list.table, :counts, 2)

  defp total(counts), do: sum(Tuple.to_list(counts), 0)

  defp sum([c | rest], acc) when is_integer(c), do: sum(rest, acc + c)
  defp sum([], acc), do: acc

  defp count_of(order, counts, id) do
    Enum.find_value(0..(tuple_size(order) - 1), 0, fn g ->
      elem(order, g) == id && elem(counts, g)
    end)
  end

  defp group_pairs(order, counts) do
    Enum.zip(Tuple.to_list(order), Tuple.to_list(counts))
  end

  defp nonempty_before(counts, g) do
    Enum.count(0..(g - 1)//1, &(elem(counts, &1) > 0))
  end

  # Position of the header of group g.
  defp header_position(counts, g) do
    Enum.reduce(0..(g - 1)//1, 0, fn k, pos ->
      c = elem(counts, k)
      if c > 0, do: pos + c + 1, else: pos
    end)
  end

  # Position of a member from its index in the set and its group.
  defp position(set_index, g, counts), do: set_index + nonempty_before(counts, g + 1)

  defp recount(list, order, sort) do
    # Counts come from the set itself: a group starts at the rank of {its sort value, 0, 0, 0},
    # which sorts before every key of the group (numbers sort before binaries).
    starts =
      for g <- 0..(tuple_size(order) - 1) do
        group_sort =
          Map.get(
            sort,
            elem(order, g),
            if(elem(order, g) == :online, do: @online_sort, else: @offline_sort)
          )

        SortedSet.rank(list.set, {group_sort, 0, 0, 0})
      end

    ends = tl(starts) ++ [SortedSet.size(list.set)]
    starts |> Enum.zip(ends) |> Enum.map(fn {a, b} -> b - a end) |> List.to_tuple()
  end

  # --- changes ---------------------------------------------------------------------------

  # One member moved from `old` ({key, set_index} or nil) to `new` ({key, set_index} or
  # nil). Works out the edits in order, applies them to the counts, and fans out.
  defp change(list, order, old, new) do
    counts = counts(list)

    {edits, counts, changed} =
      case {old, new} do
        {{ok, from}, {nk, to}} ->
          og = group_index(order, ok)
          ng = group_index(order, nk)

          cond do
            og == ng and from == to ->
              # Same group, same place: the item changed in place.
              {[{:update, position(from, og, counts), {:member, elem(nk, 3)}}], counts, []}

            og == ng ->
              # Moved within its group: the header stays as it is.
              delete = {:delete, position(from, og, counts)}
              {[delete, {:insert, position(to, ng, counts), {:member, elem(nk, 3)}}], counts, []}

            true ->
              {e1, counts, c1} = leave(order, counts, og, from)
              {e2, counts, c2} = join(order, counts, ng, to, nk)
              {e1 ++ e2, counts, c1 ++ c2}
          end

        {{ok, from}, nil} ->
          leave(order, counts, group_index(order, ok), from)

        {nil, {nk, to}} ->
          join(order, counts, group_index(order, nk), to, nk)
      end

    :ets.insert(list.table, {:counts, counts})
    fan_out(list, edits, changed, order, counts)
  end

  defp leave(order, counts, g, from) do
    delete = {:delete, position(from, g, counts)}
    counts = put_elem(counts, g, elem(counts, g) - 1)
    c = elem(counts, g)
    h = header_position(counts, g)
    header = if c == 0, do: {:delete, h}, else: {:update, h, {:group, elem(order, g), c}}
    {[delete, header], counts, [%{id: elem(order, g), count: c}]}
  end

  defp join(order, counts, g, to, key) do
    counts = put_elem(counts, g, elem(counts, g) + 1)
    c = elem(counts, g)
    h = header_position(counts, g)

    header =
      if c == 1,
        do: {:insert, h, {:group, elem(order, g), 1}},
        else: {:update, h, {:group, elem(order, g), c}}

    insert = {:insert, position(to, g, counts), {:member, elem(key, 3)}}
    {[header, insert], counts, [%{id: elem(order, g), count: c}]}
  end

  # The ops for every subscriber whose ranges a list of edits touches.
  defp fan_out(list, edits, changed, order, counts) do
    size = total(counts) + nonempty_before(counts, tuple_size(counts))
    # Items that slid into windows are first noted as placeholders, then fetched together.
    fetch = fn p -> if p < size, do: {@pending, p} end
    groups_op = if changed == [], do: [], else: [{:groups, changed}]

    net =
      Enum.count(edits, &(elem(&1, 0) == :insert)) - Enum.count(edits, &(elem(&1, 0) == :delete))

    ctx = {edits, size, size - net, fetch, groups_op}
    changes = list.subs |> candidates(edits, net) |> collect(ctx, %{}, [])
    resolve(list, group_pairs(order, counts), changes)
  end

  # The subscribers {who, spans, last} with a range the edits may change, each once:
  #   * inserts and deletes from position lo to hi shift every range that ends at or after
  #     lo, or, when they cancel out (a move), only the ranges that meet lo..hi + 1;
  #   * an update at h changes the ranges that contain h.
  # Each is found by walking the range index over a stretch, with `:ets.next/2`.
  defp candidates(subs, edits, net) do
    shifts = for({:insert, i, _} <- edits, do: i) ++ for({:delete, i} <- edits, do: i)

    {region, found} =
      case shifts do
        [] ->
          {nil, []}

        _ when net != 0 ->
          # Every subscriber whose last range ends at or after lo, met at that range.
          lo = Enum.min(shifts)

          {{lo, :infinity}, walk(subs, lo, :infinity, fn {_, _, last}, b -> b == last end, [])}

        _ ->
          # A move: the subscribers with a range meeting lo..hi, met at the last such range.
          {lo, hi} = region = {Enum.min(shifts), Enum.max(shifts) + 1}
          {region, walk(subs, lo, hi, &last_meeting?(&1, &2, region), [])}
      end

    {found, _} =
      Enum.reduce(for({:update, h, _} <- edits, do: h), {found, []}, fn h, {found, seen} ->
        # The ranges containing h; a subscriber reached another way is already there.
        fresh? = fn {_, spans, last}, _b ->
          not meets?(spans, last, region) and not Enum.any?(seen, &contains?(spans, &1))
        end

        {walk(subs, h, h, fresh?, found), [h | seen]}
      end)

    found
  end

  # Walks the range index over the ranges a..b with b >= lo, keeping the subscribers of those
  # with a <= hi (every range when hi is :infinity) for which `keep?.(subscriber, b)` holds;
  # stops past b = hi + the longest range. (The start key is a 5-tuple like the keys: tuples
  # compare by size first.)
  defp walk(subs, lo, hi, keep?, acc) do
    stop = if hi == :infinity, do: :infinity, else: hi + @max_range_length - 1
    walk_next(subs, :ets.next(subs, {lo, -1, nil, nil, nil}), hi, stop, keep?, acc)
  end

  defp walk_next(_subs, :"$end_of_table", _hi, _stop, _keep?, acc), do: acc
  defp walk_next(_subs, {b, _, _, _, _}, _hi, stop, _keep?, acc) when b > stop, do: acc

  defp walk_next(subs, {b, _seq, who, spans, last} = k, hi, stop, keep?, acc) do
    sub = {who, spans, last}

    acc =
      if (hi == :infinity or range_first(spans, b) <= hi) and keep?.(sub, b),
        do: [sub | acc],
        else: acc

    walk_next(subs, :ets.next(subs, k), hi, stop, keep?, acc)
  end

  defp range_first([{a, b} | _], b), do: a
  defp range_first([_ | rest], b), do: range_first(rest, b)

  # Whether the range ending at b is the subscriber's last range meeting lo..hi.
  defp last_meeting?({_, spans, _}, b, {lo, hi}) do
    not Enum.any?(spans, fn {a2, b2} -> b2 > b and a2 <= hi and b2 >= lo end)
  end

  defp meets?(_spans, _last, nil), do: false
  defp meets?(_spans, last, {lo, :infinity}), do: last >= lo
  defp meets?(spans, _last, {lo, hi}), do: Enum.any?(spans, fn {a, b} -> a <= hi and b >= lo end)

  defp contains?(spans, h), do: Enum.any?(spans, fn {a, b} -> a <= h and h <= b end)

  # Replaces the placeholders in `changes` by the items, looked up in one native call.
  defp resolve(_list, _pairs, []), do: []

  defp resolve(list, pairs, changes) do
    wanted = for {_, ops} <- changes, op <- ops, {@pending, p} <- pending(op), uniq: true, do: p

    items = Map.new(Enum.zip(wanted, items_at(list, pairs, wanted)))

    if items == %{} do
      changes
    else
      for {who, ops} <- changes, do: {who, Enum.map(ops, &fill_in(&1, items))}
    end
  end

  defp pending({:update, _, {@pending, _} = p}), do: [p]
  defp pending({:sync, _, items}), do: Enum.filter(items, &match?({@pending, _}, &1))
  defp pending(_op), do: []

  defp fill_in({:update, p, {@pending, _}}, items), do: {:update, p, Map.fetch!(items, p)}

  defp fill_in({:sync, r, list}, items),
    do:
      {:sync, r,
       Enum.map(list, fn
         {@pending, p} -> Map.fetch!(items, p)
         item -> item
       end)}

  defp fill_in(op, _items), do: op

  # The items at rendered positions: headers from the group counts, members from the set in
  # one `at_many` call.
  defp items_at(list, pairs, positions) do
    located = Enum.map(positions, &locate(pairs, &1, 0, 0))
    indices = for {:member, i} <- located, do: i
    members = list.set |> SortedSet.at_many(indices) |> Enum.map(&{:member, elem(&1, 3)})

    {items, []} =
      Enum.map_reduce(located, members, fn
        {:member, _}, [m | rest] -> {m, rest}
        header, rest -> {header, rest}
      end)

    items
  end

  defp locate([{_, 0} | rest], p, pos, before), do: locate(rest, p, pos, before)
  defp locate([{id, c} | _], p, p, _before), do: {:group, id, c}
  defp locate([{_, c} | _], p, pos, before) when p <= pos + c, do: {:member, before + p - pos - 1}
  defp locate([{_, c} | rest], p, pos, before), do: locate(rest, p, pos + c + 1, before + c)

  defp collect(candidates, ctx, cache, acc) do
    {edits, size, size_before, fetch, groups_op} = ctx

    {acc, _cache} =
      Enum.reduce(candidates, {acc, cache}, fn {who, spans, last}, {acc, cache} ->
        {ops, cache} = ops_for(spans, last, edits, {size_before, size}, fetch, cache)
        {if(ops == [], do: acc, else: [{who, ops ++ groups_op} | acc]), cache}
      end)

    acc
  end

  # The ops that bring a client watching `spans` ({first, last} pairs, ascending, ending at
  # `last`) through `edits`, then fill the positions that slid in from outside. `sizes` are
  # the list's sizes before and after the edits; a range starting past both ends is unchanged.
  defp ops_for(spans, last, edits, {before, after_} = sizes, fetch, cache) do
    beyond = max(before, after_)

    if Enum.all?(spans, fn {a, _} = span -> a >= beyond or unchanged?(span, edits, 0) end) do
      {[], cache}
    else
      window_ops(spans, last, edits, sizes, fetch, cache)
    end
  end

  # A range is unchanged when no edit lands inside it and the inserts and deletes above it
  # cancel out (its items shift away and back).
  defp unchanged?(_span, [], shift), do: shift == 0
  defp unchanged?({a, b}, [{_, i, _} | _], _) when i >= a and i <= b, do: false
  defp unchanged?({a, b}, [{:delete, i} | _], _) when i >= a and i <= b, do: false

  defp unchanged?({a, _} = s, [{:insert, i, _} | rest], n) when i < a,
    do: unchanged?(s, rest, n + 1)

  defp unchanged?({a, _} = s, [{:delete, i} | rest], n) when i < a, do: unchanged?(s, rest, n - 1)
  defp unchanged?(span, [_ | rest], n), do: unchanged?(span, rest, n)

  defp window_ops(spans, last, edits, {size_before, size}, fetch, cache) do
    {ops, holes} = replay(edits, spans, last, size_before, [], [])
    {fills, cache} = fill(Enum.sort(holes), size, fetch, cache, [])
    ops = :lists.reverse(ops, fills)
    count = length(ops)

    # Replaying the edits is usually the fewest ops (a shift of a whole window is one op).
    # When it might send more ops than there are changed positions, count those exactly and
    # send one update per changed position, or one SYNC per range, if that is fewer.
    if count <= 1 or count <= changed_lower_bound(spans, edits, size_before, size) do
      {ops, cache}
    else
      changed = Enum.flat_map(spans, &changed_positions(&1, edits, size_before, size))
      window = Enum.reduce(spans, 0, fn {a, b}, n -> n + b - a + 1 end)

      cond do
        length(changed) >= count and count <= window ->
          {ops, cache}

        length(changed) <= window ->
          # Positions past the new end are emptied from the top down, so that no delete
          # shifts another held position.
          {updates, cache} = fill(changed, size, fetch, cache, [])
          deletes = for p <- Enum.reverse(changed), p >= size, do: {:delete, p}
          {updates ++ deletes, cache}

        true ->
          syncs =
            for {a, b} <- spans,
                do: {:sync, a..b, a..b |> Enum.map(fetch) |> Enum.reject(&is_nil/1)}

          {syncs, cache}
      end
    end
  end

  # A cheap lower bound of the positions whose item changes: every held position of a range
  # whose items all shift (no edit inside it), or one position of a range an edit lands in.
  defp changed_lower_bound([], _edits, _before, _after), do: 0

  defp changed_lower_bound([{a, b} | rest], edits, before, after_) do
    held = min(b, max(before, after_) - 1) - a + 1

    n =
      cond do
        held <= 0 -> 0
        lands_in?(edits, a, b) -> 1
        net_shift_above(a, edits, 0) != 0 -> held
        true -> 0
      end

    n + changed_lower_bound(rest, edits, before, after_)
  end

  defp lands_in?([], _a, _b), do: false
  defp lands_in?([{_, i, _} | _], a, b) when i >= a and i <= b, do: true
  defp lands_in?([{_, i} | _], a, b) when i >= a and i <= b, do: true
  defp lands_in?([_ | rest], a, b), do: lands_in?(rest, a, b)

  defp net_shift_above(_a, [], n), do: n

  defp net_shift_above(a, [{:insert, i, _} | rest], n) when i < a,
    do: net_shift_above(a, rest, n + 1)

  defp net_shift_above(a, [{:delete, i} | rest], n) when i < a,
    do: net_shift_above(a, rest, n - 1)

  defp net_shift_above(a, [_ | rest], n), do: net_shift_above(a, rest, n)

  # The positions of a range whose item differs after the edits: each position is traced
  # back through the edits to where its item was before them (or to no item).
  defp changed_positions({a, b}, edits, before, after_) do
    backwards = Enum.reverse(edits)

    for p <- a..b,
        p < before or p < after_,
        p >= after_ or p >= before or origin(p, backwards) != p,
        do: p
  end

  defp origin(p, []), do: p
  defp origin(p, [{:update, p, _} | _]), do: :new
  defp origin(p, [{:insert, p, _} | _]), do: :new
  defp origin(p, [{:insert, i, _} | rest]) when p > i, do: origin(p - 1, rest)
  defp origin(p, [{:delete, i} | rest]) when p >= i, do: origin(p + 1, rest)
  defp origin(p, [_ | rest]), do: origin(p, rest)

  # Replays the edits on the client's ranges: which ops to send (reversed) and which held
  # positions are holes, their item having slid in from outside the ranges. `n` is the size
  # of the list before each edit. An insert or delete that lands outside the ranges with no
  # held position after it changes nothing the client shows, and is not sent.
  defp replay([], _spans, _last, _n, ops, holes), do: {ops, holes}

  defp replay([{:insert, i, _} = op | rest], spans, last, n, ops, holes) when i <= last do
    ops = if visible?(spans, i, n), do: [op | ops], else: ops
    holes = for h <- holes, h = if(h >= i, do: h + 1, else: h), inside?(h, spans), do: h
    holes = opened(spans, spans, i, :insert, holes)
    replay(rest, spans, last, n + 1, ops, holes)
  end

  defp replay([{:delete, i} = op | rest], spans, last, n, ops, holes) when i <= last do
    ops = if visible?(spans, i, n), do: [op | ops], else: ops
    holes = for h <- holes, h != i, h = if(h > i, do: h - 1, else: h), inside?(h, spans), do: h
    holes = opened(spans, spans, i, :delete, holes)
    replay(rest, spans, last, n - 1, ops, holes)
  end

  defp replay([{:update, i, _} = op | rest], spans, last, n, ops, holes) do
    if inside?(i, spans) and not :lists.member(i, holes),
      do: replay(rest, spans, last, n, [op | ops], holes),
      else: replay(rest, spans, last, n, ops, holes)
  end

  defp replay([{:insert, _, _} | rest], spans, last, n, ops, holes),
    do: replay(rest, spans, last, n + 1, ops, holes)

  defp replay([{:delete, _} | rest], spans, last, n, ops, holes),
    do: replay(rest, spans, last, n - 1, ops, holes)

  # Whether an edit at i, in a list of n items, lands inside a range or before a held item.
  defp visible?([], _i, _n), do: false
  defp visible?([{a, b} | _], i, _n) when i >= a and i <= b, do: true
  # Some held position p (a <= p <= b, p < n) lies at or after i.
  defp visible?([{a, b} | _], i, n) when i <= b and a < n and i < n, do: true
  defp visible?([_ | rest], i, n), do: visible?(rest, i, n)

  # The positions an insert or delete at i opens to items from outside: an insert above a
  # range pulls in the item above its first position; a delete at or above a range's end
  # pulls in the item below its last position (unless a neighbouring range holds it).
  defp opened([], _spans, _i, _kind, holes), do: holes

  defp opened([{a, _} | rest], spans, i, :insert, holes) when i < a do
    holes = if inside?(a - 1, spans) or :lists.member(a, holes), do: holes, else: [a | holes]
    opened(rest, spans, i, :insert, holes)
  end

  defp opened([{_, b} | rest], spans, i, :delete, holes) when i <= b do
    holes = if inside?(b + 1, spans) or :lists.member(b, holes), do: holes, else: [b | holes]
    opened(rest, spans, i, :delete, holes)
  end

  defp opened([_ | rest], spans, i, kind, holes), do: opened(rest, spans, i, kind, holes)

  # An update for each hole inside the list, its item fetched once per mutation.
  defp fill([], _size, _fetch, cache, acc), do: {:lists.reverse(acc), cache}
  defp fill([p | _], size, _fetch, cache, acc) when p >= size, do: {:lists.reverse(acc), cache}

  defp fill([p | rest], size, fetch, cache, acc) do
    case cache do
      %{^p => item} ->
        fill(rest, size, fetch, cache, [{:update, p, item} | acc])

      _ ->
        item = fetch.(p)
        fill(rest, size, fetch, Map.put(cache, p, item), [{:update, p, item} | acc])
    end
  end

  defp inside?(_p, []), do: false
  defp inside?(p, [{a, b} | _]) when p >= a and p <= b, do: true
  defp inside?(p, [_ | rest]), do: inside?(p, rest)

  defp elem_or(tuple, i) when i < tuple_size(tuple), do: elem(tuple, i)
  defp elem_or(_tuple, _i), do: nil

  # --- validation and subscriptions -------------------------------------------------------

  defp list!(%__MODULE__{} = list), do: list

  defp list!(other) do
    raise ArgumentError, "argument list: expected a %Strata.MemberList{}, got: #{inspect(other)}"
  end

  defp owner!(list) do
    if :ets.info(list.table, :owner) != self() do
      raise ArgumentError,
            "argument list: a member list is changed only by the process that created it"
    end
  end

  # Everything a change needs is checked before it is journaled: the member's shape, and
  # that the set can store it (the same check the native decoder makes: no pids, refs,
  # funs or ports, proper lists only), so that a journaled record always replays.
  defp validate_member!(%{id: _, name: name, roles: roles, status: status} = member)
       when is_binary(name) and is_list(roles) and is_atom(status) do
    Native.runtime_check_term(member, "member")
  end

  defp validate_member!(other) do
    raise ArgumentError,
          "argument member: expected %{id: term, name: binary, roles: list, status: atom}, " <>
            "got: #{inspect(other)}"
  end

  defp normalize_ranges!(ranges)
       when is_list(ranges) and ranges != [] and length(ranges) <= @max_ranges do
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
    |> check_disjoint!()
  end

  defp normalize_ranges!(other) do
    raise ArgumentError,
          "argument ranges: expected a list of 1 to #{@max_ranges} ranges, got: #{inspect(other)}"
  end

  defp check_disjoint!(ranges) do
    ranges
    |> Enum.chunk_every(2, 1, :discard)
    |> Enum.each(fn [a, b] ->
      if b.first <= a.last,
        do: raise(ArgumentError, "argument ranges: ranges overlap: #{inspect(a)}, #{inspect(b)}")
    end)

    ranges
  end

  defp drop_subscription(list, subscriber) do
    case :ets.lookup(list.table, {:sub, subscriber}) do
      [{_, seq, spans, last}] ->
        :ets.delete(list.table, {:sub, subscriber})
        for {_, b} <- spans, do: :ets.delete(list.subs, {b, seq, subscriber, spans, last})
        for {a, b} <- spans, do: a..b

      [] ->
        []
    end
  end

  defimpl Inspect do
    def inspect(list, _opts) do
      "#Strata.MemberList<size: #{Strata.MemberList.size(list)}>"
    end
  end
end
