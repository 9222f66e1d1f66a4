defmodule Strata.Cluster do
  @moduledoc """
  Strata across distributed Erlang nodes: membership in a `:pg` group, ownership of keys by
  rendezvous hashing, handoff when nodes come and go.

  Add it to the supervision tree of every node that should hold a share of the data:

      children = [
        {Strata.Cluster, name: :strata, durable: "data/strata", timeline: [fanout_limit: 10_000]}
      ]

  Nodes running a cluster of the same `name` find each other through `:pg` (scope
  `:"strata_cluster_\#{name}"`) once they are connected (`Node.connect/1`, libcluster, ...).
  `Strata.Cluster.Timeline` and `Strata.Cluster.MemberList` route each call to the node that
  owns its key.

  ## Ownership

  The owner of a key (a user id, a guild id) is the member node `n` with the highest
  `:erlang.phash2({n, key})` (rendezvous hashing): every node computes the same owner from
  the same members, and a node joining or leaving moves only the keys it wins or held
  (about 1/N of them).

  ## Membership changes

  * **A node joins.** It enters the `:joining` group first, so writes start reaching it; then
    copies the replicated state (follow graph, posts) from a member, takes copies of the
    feeds it will own from their current owners (merged with the writes that reached it
    meanwhile), and only then enters the `:active` group. Until that moment the old owners
    keep serving those keys; afterwards each node drops the feeds it no longer owns. Member
    lists move the same way (the old owner hands over a snapshot before the new one serves).
  * **A node stops** (`stop/1`, or its supervisor shuts it down): a join in reverse. It
    enters a `:leaving` group (writes then also reach the next owners), copies its feeds
    to them and hands its member lists over, tells the others, then leaves: nothing is
    lost, with or without `:durable`.
  * **A node dies.** Its keys go to the next owners at once. With `:durable`,
    one survivor reopens the dead node's directory (its journal makes it exact up to the last
    acknowledged write) and hands every feed and member list to its new owner; until it is
    done, reads of those keys and calls on those member lists wait (within their timeout),
    while new posts already reach the new owners (handed-over feeds are merged with them).
    Without it, the dead node's feeds and member lists are lost: counted in `stats/1`
    (`lost`), and logged. Follow edges and posts are replicated on every node and survive
    either way.
  * While a membership change propagates (milliseconds on a LAN), a node that has not yet
    seen it may route a call to the previous owner.

  ## Failures

  A call to a node that has just died is retried once on the new owner (after the
  membership change is seen); otherwise, or after the caller's `:timeout`, it returns
  `{:error, :unavailable}`. No call waits longer than its timeout.
  """

  use GenServer
  require Logger

  # The message that carries a write to a member still joining (kept in its mailbox, in
  # order, until the cluster's state is in).
  @buffer :strata_cluster_buffered_write

  # A copy of a member's state or feeds for a joining node: a bound, not an expectation.
  @copy_timeout 120_000

  alias Strata.{Durable, Timeline}
  alias Strata.Cluster.MemberList.Host

  @typedoc "A cluster, by the name it was started with."
  @type t :: atom()

  @doc """
  Starts the cluster member of this node, registered as `name`.

  ## Options

    * `:name` (required) - the cluster's name, the same on every node.
    * `:durable` - a directory shared by the nodes' data (each node uses its own
      subdirectory `<durable>/<node>`); see `Strata.Durable`. Default: in memory only.
    * `:sync` - the durable tier's sync mode (default `:always`).
    * `:timeline` - options of each node's `Strata.Timeline` (`:feed_capacity`,
      `:fanout_limit`, `:backfill`); the same on every node.
  """
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts),
    do: GenServer.start_link(__MODULE__, opts, name: Keyword.fetch!(opts, :name))

  @doc "As `start_link/1`, unlinked."
  @spec start(keyword()) :: GenServer.on_start()
  def start(opts), do: GenServer.start(__MODULE__, opts, name: Keyword.fetch!(opts, :name))

  # A graceful stop hands this node's feeds and member lists off (calls of up to 30 s each):
  # the supervisor gives it that long, not the default 5 s, before killing it.
  @shutdown 60_000

  @doc false
  def child_spec(opts) do
    %{
      id: {__MODULE__, Keyword.fetch!(opts, :name)},
      start: {__MODULE__, :start_link, [opts]},
      shutdown: @shutdown
    }
  end

  @doc "Stops this node's member (its keys move to the other nodes)."
  @spec stop(t()) :: :ok
  def stop(cluster), do: GenServer.stop(cluster)

  @doc """
  The member nodes that serve keys, sorted.

      iex> Strata.Cluster.owner_in([:a@host, :b@host], 42) in [:a@host, :b@host]
      true
  """
  @spec nodes(t()) :: [node()]
  def nodes(cluster), do: members(scope(cluster), :active)

  @doc "The node that owns `key`."
  @spec owner(t(), term()) :: node()
  def owner(cluster, key), do: owner_in(nodes(cluster), key)

  @doc """
  The owner of `key` among `nodes` (rendezvous hashing).

      iex> Strata.Cluster.owner_in([:a@h], :anything)
      :a@h
  """
  @spec owner_in([node()], term()) :: node()
  def owner_in([], _key), do: raise(ArgumentError, "argument nodes: no member node is up")
  def owner_in(nodes, key), do: Enum.max_by(nodes, &:erlang.phash2({&1, key}))

  @doc """
  Counts of this node's member: `:moved_in` (feeds and member lists received in handoffs),
  `:moved_out`, `:rebuilt` (taken over from a dead node's durable directory), `:lost` (held by
  a node that died without a durable copy: its feeds are counted as one loss per node).
  """
  @spec stats(t()) :: %{atom() => non_neg_integer()}
  def stats(cluster), do: GenServer.call(cluster, :stats)

  # --- internal API used by Strata.Cluster.Timeline and MemberList ----------------------

  @doc false
  def scope(cluster), do: :"strata_cluster_#{cluster}"

  @doc false
  # The nodes that receive writes: active members and those joining.
  def writers(cluster) do
    scope = scope(cluster)
    Enum.uniq(members(scope, :active) ++ members(scope, :joining)) |> Enum.sort()
  end

  @doc false
  # For each receiving node, the keys of `keys` it should hold: its keys under the active
  # ring and, while nodes join, under the ring that includes them.
  def spread(cluster, keys) do
    scope = scope(cluster)
    active = members(scope, :active)
    future = Enum.sort(Enum.uniq(active ++ members(scope, :joining)) -- members(scope, :leaving))

    Enum.reduce(keys, %{}, fn key, acc ->
      now = owner_in(active, key)
      acc = Map.update(acc, now, [key], &[key | &1])
      next = owner_in(future, key)
      if next == now, do: acc, else: Map.update(acc, next, [key], &[key | &1])
    end)
  end

  @doc false
  def local(cluster), do: :persistent_term.get({__MODULE__, cluster})

  @doc false
  # Before serving `key` on this node: if the node that held it before died and its data is
  # still being rebuilt from its durable files, waits for that (at most `timeout` ms).
  def await_takeover(cluster, key, timeout \\ 30_000) do
    local = local(cluster)
    # Nodes being rebuilt, and nodes that left but whose leaving this node's member has not
    # handled yet (`:pg` changes before its notice arrives).
    pending =
      if local.opts[:durable],
        do: Enum.uniq(local.pending ++ (local.active -- nodes(cluster))),
        else: []

    cond do
      pending == [] ->
        :ok

      owner_in(Enum.sort(nodes(cluster) ++ pending), key) not in pending ->
        :ok

      timeout <= 0 ->
        {:error, :unavailable}

      true ->
        Process.sleep(10)
        await_takeover(cluster, key, timeout - 10)
    end
  end

  @doc false
  # Calls `fun` with `args` on `node` (directly when it is this node), as {:ok, result} or
  # {:error, :unavailable}.
  def call(node, mod, fun, args, timeout) when node == node() do
    _ = timeout
    {:ok, apply(mod, fun, args)}
  end

  def call(node, mod, fun, args, timeout) do
    {:ok, :erpc.call(node, mod, fun, args, timeout)}
  catch
    :error, {:erpc, reason} when reason in [:noconnection, :timeout] -> {:error, :unavailable}
    # An exception on the other node is raised here, as a local call would raise it.
    :error, {:exception, exception, stack} -> :erlang.raise(:error, exception, stack)
  end

  @doc false
  # Calls the owner of `key`; if it is unreachable, waits for the membership to change and
  # tries the new owner once.
  def call_owner(cluster, key, mod, fun, args, timeout) do
    deadline = System.monotonic_time(:millisecond) + timeout
    first = owner(cluster, key)

    case call(first, mod, fun, args, timeout) do
      {:error, :unavailable} -> retry(cluster, key, first, mod, fun, args, deadline)
      ok -> ok
    end
  end

  defp retry(cluster, key, failed, mod, fun, args, deadline) do
    left = deadline - System.monotonic_time(:millisecond)

    cond do
      left <= 0 ->
        {:error, :unavailable}

      (next = owner(cluster, key)) != failed ->
        call(next, mod, fun, args, left)

      true ->
        Process.sleep(min(20, left))
        retry(cluster, key, failed, mod, fun, args, deadline)
    end
  end

  @doc false
  # Runs `fun` on every writing node in parallel: [{node, {:ok, result} | {:error, :unavailable}}].
  def multicall(cluster, fun_for_node, timeout) do
    cluster
    |> writers()
    |> Enum.map(fn node -> {node, Task.async(fn -> fun_for_node.(node) end)} end)
    |> Enum.map(fn {node, task} ->
      case Task.yield(task, timeout) || Task.shutdown(task, :brutal_kill) do
        {:ok, result} -> {node, result}
        _ -> {node, {:error, :unavailable}}
      end
    end)
  end

  # --- the member process -----------------------------------------------------------------

  @impl true
  def init(opts) do
    opts = Strata.Options.validate!(opts, [:name, durable: nil, sync: :always, timeline: []])
    name = opts[:name]
    scope = scope(name)
    Process.flag(:trap_exit, true)
    {:ok, _} = start_scope(scope)
    {:ok, linked} = Host.start_links(name)
    {ref, _} = :pg.monitor_scope(scope)
    others = members(scope, :active) -- [node()]
    dir = opts[:durable] && Path.join(Durable.path(opts[:durable]), Atom.to_string(node()))
    # A node joining a running cluster starts from the cluster's state, not its old files.
    if dir && others != [], do: File.rm_rf!(dir)
    tl = open_timeline(dir, opts[:sync], opts[:timeline])

    state = %{
      name: name,
      scope: scope,
      ref: ref,
      opts: opts,
      tl: tl,
      bootstrapping: others != [],
      active: [],
      pending: [],
      handed_off: [],
      linked: linked,
      stats: %{moved_in: 0, moved_out: 0, rebuilt: 0, lost: 0}
    }

    publish(state)
    :ok = :pg.join(scope, :joining, self())
    {:ok, state, {:continue, :join}}
  end

  @impl true
  def handle_continue(:join, state) do
    meta = %{cluster: state.name, node: node()}

    state =
      Strata.Telemetry.span([:strata, :cluster, :join], meta, fn -> {join(state), %{}, %{}} end)

    {:noreply, state}
  end

  defp join(state) do
    state = if state.bootstrapping, do: bootstrap(state), else: state
    # Writes that reached this node during the copy wait in the mailbox: applied in order
    # before writes are applied directly, and once more for any sent just before the switch.
    drain_buffered(state.tl)
    state = %{state | bootstrapping: false}
    publish(state)
    drain_buffered(state.tl)
    :ok = :pg.join(state.scope, :active, self())
    :ok = :pg.leave(state.scope, :joining, self())
    state = %{state | active: members(state.scope, :active)}
    publish(state)
    state
  end

  defp drain_buffered(tl) do
    receive do
      {@buffer, op} ->
        apply_op(tl, op)
        drain_buffered(tl)
    after
      0 -> :ok
    end
  end

  @impl true
  def handle_call(:stats, _from, state), do: {:reply, state.stats, state}

  # A write buffered while joining (sent by `apply_or_buffer/2`).
  @impl true
  def handle_info({@buffer, op}, state) do
    apply_op(state.tl, op)
    {:noreply, state}
  end

  @impl true
  def handle_info({ref, :leave, :active, pids}, %{ref: ref} = state) do
    # Nodes that handed their data off before leaving need no takeover.
    left = (pids |> Enum.map(&node/1) |> Enum.uniq()) -- members(state.scope, :active)
    gone = left -- state.handed_off
    state = %{state | handed_off: state.handed_off -- left}
    now = members(state.scope, :active)
    # Until a dead node's data is rebuilt, calls for its keys wait (see `await_takeover/2`).
    state = if state.opts[:durable], do: %{state | pending: state.pending ++ gone}, else: state
    publish(state)
    state = Enum.reduce(gone, state, &take_over(&2, &1, now))
    state = %{state | active: now}
    publish(state)
    {:noreply, state}
  end

  def handle_info({:handed_off, node}, state),
    do: {:noreply, %{state | handed_off: [node | state.handed_off]}}

  def handle_info({:taken_over, dead}, state) do
    state = %{state | pending: state.pending -- [dead]}
    publish(state)
    {:noreply, state}
  end

  def handle_info({ref, :join, :active, _pids}, %{ref: ref} = state) do
    now = members(state.scope, :active)
    state = state |> drop_moved(now) |> Map.put(:active, now)
    publish(state)
    {:noreply, state}
  end

  def handle_info({ref, _event, _group, _pids}, %{ref: ref} = state), do: {:noreply, state}
  # The guilds' Registry and DynamicSupervisor are linked: without them no member list can be
  # served, so the member stops too (and its supervisor restarts it). Other linked
  # processes (tasks) that fail are logged, not dropped silently.
  def handle_info({:EXIT, pid, reason}, state) do
    cond do
      pid in state.linked ->
        {:stop, {:shutdown, {:linked_exit, reason}}, state}

      reason in [:normal, :shutdown] or match?({:shutdown, _}, reason) ->
        {:noreply, state}

      true ->
        Logger.warning("Strata.Cluster #{state.name}: #{inspect(pid)} exited: #{inspect(reason)}")
        {:noreply, state}
    end
  end

  @impl true
  def terminate(_reason, state) do
    :pg.leave(state.scope, :joining, self())
    rest = members(state.scope, :active) -- [node()]
    if rest != [] and not state.bootstrapping, do: hand_off_all(state, rest)
    :pg.leave(state.scope, :active, self())
    :pg.leave(state.scope, :leaving, self())
    if state.tl.journal, do: Timeline.close(state.tl)
    Host.stop_all(state.name)
    :persistent_term.erase({__MODULE__, state.name})
    :ok
  end

  # A graceful stop: like a join in reverse. In the `:leaving` group, writes also reach the
  # next owners (see `spread/2`) while this node copies its feeds and hands its member lists
  # to them; the others are told, so that its leaving is not taken for a death.
  defp hand_off_all(state, rest) do
    meta = %{cluster: state.name, node: node(), to: rest}
    Strata.Telemetry.span([:strata, :cluster, :handoff], meta, fn -> hand_off(state, rest) end)
  catch
    kind, reason ->
      Logger.error("Strata.Cluster #{state.name}: hand-off failed: #{inspect({kind, reason})}")
  end

  defp hand_off(state, rest) do
    :ok = :pg.join(state.scope, :leaving, self())
    me = self()

    for node <- rest do
      wait_until(fn -> me in members_on(node, state.scope, :leaving) end)
    end

    Process.sleep(100)

    feeds = Strata.Native.timeline_take_feeds(state.tl, pack(feed_users(state.tl)))

    feeds
    |> Enum.group_by(fn {user, _} -> owner_in(rest, user) end)
    |> Enum.each(fn {node, feeds} ->
      call(node, __MODULE__, :merge_feeds, [state.name, feeds], 30_000)
    end)

    Host.drop_moved(state.name, rest)
    for node <- rest, do: send({state.name, node}, {:handed_off, node()})
    {:ok, %{users: length(feeds)}, %{}}
  end

  defp start_scope(scope) do
    case :pg.start(scope) do
      {:ok, pid} -> {:ok, pid}
      {:error, {:already_started, pid}} -> {:ok, pid}
    end
  end

  defp members(scope, group) do
    scope |> :pg.get_members(group) |> Enum.map(&node/1) |> Enum.uniq() |> Enum.sort()
  end

  defp open_timeline(nil, _sync, opts), do: Timeline.new(opts)
  defp open_timeline(dir, sync, opts), do: Timeline.new([durable: dir, sync: sync] ++ opts)

  defp publish(state) do
    :persistent_term.put({__MODULE__, state.name}, %{
      tl: state.tl,
      bootstrapping: state.bootstrapping,
      opts: state.opts,
      pending: state.pending,
      active: state.active
    })
  end

  # Joining: the replicated state from one member, the feeds this node will own from their
  # owners, then the writes that reached this node meanwhile.
  defp bootstrap(state) do
    me = node()
    await_seen(state)
    [donor | _] = active = members(state.scope, :active) -- [me]
    future = Enum.sort([me | active])
    bytes = :erpc.call(donor, __MODULE__, :export_state, [state.name], @copy_timeout)
    tl = replace_timeline(state, bytes)
    keep = fn user -> owner_in(future, user) == me end
    drop = tl |> feed_users() |> Enum.reject(keep)
    Strata.Native.timeline_take_feeds(tl, pack(drop))

    moved =
      for node <- active, node != donor, reduce: 0 do
        n ->
          feeds =
            :erpc.call(node, __MODULE__, :copy_feeds, [state.name, future, me], @copy_timeout)

          Enum.each(feeds, fn {user, ids} -> Strata.Native.timeline_merge_feed(tl, user, ids) end)
          n + length(feeds)
      end

    donor_moved = tl |> feed_users() |> length()
    Host.take_moved(state.name, future)
    state = %{state | tl: tl}
    update_in(state.stats.moved_in, &(&1 + moved + donor_moved))
  end

  # Every active member has seen this node among the joining ones (so writes it starts
  # reach this node too), and writes that started before had time to finish.
  defp await_seen(state) do
    me = self()

    for node <- members(state.scope, :active) -- [node()] do
      wait_until(fn -> me in members_on(node, state.scope, :joining) end)
    end

    Process.sleep(100)
  end

  # The members of a group as another node sees them (a node that does not answer within
  # 5 s raises, as a dead one does).
  defp members_on(node, scope, group),
    do: :erpc.call(node, :pg, :get_members, [scope, group], 5000)

  # Waits for the other nodes to see a membership change: at most @wait_limit ms, then exits
  # (a join crashes and is retried by the member's supervisor; a hand-off is logged and the
  # stop goes on).
  @wait_limit 30_000

  defp wait_until(fun, deadline \\ System.monotonic_time(:millisecond) + @wait_limit) do
    cond do
      fun.() ->
        :ok

      System.monotonic_time(:millisecond) > deadline ->
        exit({:timeout, {__MODULE__, :wait_until}})

      true ->
        Process.sleep(10)
        wait_until(fun, deadline)
    end
  end

  defp replace_timeline(%{tl: old} = state, bytes) do
    case state.opts[:durable] do
      nil ->
        {:ok, tl} = Timeline.load(bytes)
        tl

      base ->
        dir = Path.join(Durable.path(base), Atom.to_string(node()))
        :ok = Timeline.close(old)
        File.rm_rf!(dir)
        File.mkdir_p!(dir)
        File.write!(Path.join(dir, "snap-0000000000000000.snap"), bytes)
        {:ok, tl} = Timeline.open_durable(dir, sync: state.opts[:sync])
        tl
    end
  end

  @doc false
  # On a member: its timeline as a snapshot, for a joining node.
  def export_state(cluster), do: Timeline.dump(local(cluster).tl)

  @doc false
  # On a member: copies of the feeds it holds that `node` owns among `future`.
  def copy_feeds(cluster, future, node) do
    tl = local(cluster).tl
    users = tl |> feed_users() |> Enum.filter(&(owner_in(future, &1) == node))
    # Taken and put straight back: the node keeps serving them until the new owner is active.
    feeds = Strata.Native.timeline_take_feeds(tl, pack(users))
    Enum.each(feeds, fn {user, ids} -> Strata.Native.timeline_merge_feed(tl, user, ids) end)
    feeds
  end

  # After the active members changed: feeds of users now owned elsewhere are dropped.
  defp drop_moved(state, active) do
    if active == state.active or not Enum.member?(active, node()) do
      state
    else
      me = node()
      gone = state.tl |> feed_users() |> Enum.reject(&(owner_in(active, &1) == me))
      Strata.Native.timeline_take_feeds(state.tl, pack(gone))
      Host.drop_moved(state.name, active)
      update_in(state.stats.moved_out, &(&1 + length(gone)))
    end
  end

  # A member left or died: the survivor that sorts first rebuilds its feeds from its
  # durable directory, if there is one, and hands them to their new owners.
  defp take_over(state, dead, active) do
    cond do
      active == [] or hd(active) != node() ->
        state

      state.opts[:durable] == nil ->
        Logger.warning("Strata.Cluster #{state.name}: #{dead} left without a durable copy")
        update_in(state.stats.lost, &(&1 + 1))

      true ->
        dir = Path.join(Durable.path(state.opts[:durable]), Atom.to_string(dead))
        meta = %{cluster: state.name, node: node(), dead: dead}

        n =
          Strata.Telemetry.span([:strata, :cluster, :takeover], meta, fn ->
            n = rebuild_from(state, dir, active, dead)
            Host.rebuild_from(state.name, Path.join(dir, "guilds"), active, dead)
            {n, %{users: n}, %{}}
          end)

        for node <- active, do: send({state.name, node}, {:taken_over, dead})
        update_in(state.stats.rebuilt, &(&1 + n))
    end
  end

  defp rebuild_from(state, dir, active, dead) do
    case open_when_free(dir, state.opts[:timeline], 100) do
      {:ok, copy} ->
        # Only the users the dead node owned when it died: any other feed there is stale.
        before = Enum.sort([dead | active])
        users = copy |> feed_users() |> Enum.filter(&(owner_in(before, &1) == dead))
        feeds = Strata.Native.timeline_take_feeds(copy, pack(users))
        :ok = Timeline.close(copy)

        feeds
        |> Enum.group_by(fn {user, _} -> owner_in(active, user) end)
        |> Enum.each(fn {node, list} ->
          call(node, __MODULE__, :merge_feeds, [state.name, list], 30_000)
        end)

        length(feeds)

      {:error, reason} ->
        Logger.error("Strata.Cluster #{state.name}: could not rebuild #{dir}: #{inspect(reason)}")
        0
    end
  end

  defp open_when_free(dir, opts, tries) do
    case Timeline.open_durable(dir, opts) do
      {:error, :locked} when tries > 0 ->
        Process.sleep(50)
        open_when_free(dir, opts, tries - 1)

      other ->
        other
    end
  end

  @doc false
  def merge_feeds(cluster, feeds) do
    tl = local(cluster).tl
    Enum.each(feeds, fn {user, ids} -> Strata.Native.timeline_merge_feed(tl, user, ids) end)
    length(feeds)
  end

  # Writes that reach a joining node before it has the cluster's state are kept in order
  # and applied after it (they are idempotent, so one also in the copied state is harmless).
  @doc false
  def apply_or_buffer(cluster, op) do
    local = local(cluster)

    if local.bootstrapping do
      send(cluster, {@buffer, op})
      :buffered
    else
      apply_op(local.tl, op)
    end
  end

  defp apply_op(tl, {:deliver_post, post, author, here, followers}),
    do: deliver(tl, post, author, nil, here, followers)

  defp apply_op(tl, {:deliver_repost, repost, by, post, here, followers}),
    do: deliver(tl, repost, by, post, here, followers)

  defp apply_op(tl, {:follow, a, b, true}), do: Timeline.follow(tl, a, b)
  defp apply_op(tl, {:follow, a, b, false}), do: follow_edge(tl, a, b)
  defp apply_op(tl, {:unfollow, a, b}), do: Timeline.unfollow(tl, a, b)
  defp apply_op(tl, {:delete_post, id}), do: Timeline.delete_post(tl, id)
  defp apply_op(tl, {:delete_repost, id}), do: Timeline.delete_repost(tl, id)

  defp follow_edge(tl, a, b) do
    added = Strata.Native.timeline_follow_edge(tl, a, b)
    Durable.ack!(tl)
    if added, do: :ok, else: :already
  end

  # Deliveries with many followers move to a dirty scheduler themselves, as fan-outs do.
  defp deliver(tl, id, by, repost_of, here, followers) do
    result = Strata.Native.timeline_deliver(tl, id, by, repost_of, here, followers)
    Durable.ack!(tl)
    result
  end

  @doc false
  def feed_users(tl) do
    for <<u::32-little <- Strata.Native.timeline_feed_users(tl)>>, do: u
  end

  @doc false
  def pack(users), do: for(u <- users, into: <<>>, do: <<u::32-little>>)
end
