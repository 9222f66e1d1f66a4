defmodule Strata.Cluster.MemberList.Host do
  @moduledoc false
  # The process that owns one guild's Strata.MemberList on the guild's owner node. Hosts
  # are registered by guild in a Registry and started under a DynamicSupervisor, both per
  # cluster and node.

  use GenServer
  alias Strata.{Cluster, Durable, MemberList}

  defp registry(cluster), do: :"strata_cluster_#{cluster}_guilds"
  defp supervisor(cluster), do: :"strata_cluster_#{cluster}_hosts"

  # Started by the cluster's member process (and linked to it).
  # Returns both pids: the member stops if either exits.
  def start_links(cluster) do
    with {:ok, registry} <- Registry.start_link(keys: :unique, name: registry(cluster)),
         {:ok, sup} <-
           DynamicSupervisor.start_link(strategy: :one_for_one, name: supervisor(cluster)) do
      {:ok, [registry, sup]}
    end
  end

  def child_spec({cluster, guild, source}) do
    %{
      id: guild,
      start: {__MODULE__, :start_link, [{cluster, guild, source}]},
      restart: :temporary
    }
  end

  def start_link({cluster, guild, source}) do
    GenServer.start_link(__MODULE__, {cluster, guild, source},
      name: {:via, Registry, {registry(cluster), guild}}
    )
  end

  # Runs `MemberList.fun(list | args)` in the guild's host on this node, creating it if
  # needed. Exceptions come back as {:raise, e} to be raised in the caller.
  def call(cluster, guild, fun, args) do
    with :ok <- Cluster.await_takeover(cluster, guild),
         {:ok, pid} <- host(cluster, guild, :new) do
      GenServer.call(pid, {:call, fun, args}, :infinity)
    end
  end

  defp host(cluster, guild, source) do
    case Registry.lookup(registry(cluster), guild) do
      [{pid, _}] ->
        {:ok, pid}

      [] ->
        case DynamicSupervisor.start_child(
               supervisor(cluster),
               {__MODULE__, {cluster, guild, source}}
             ) do
          {:ok, pid} -> {:ok, pid}
          {:error, {:already_started, pid}} -> {:ok, pid}
          {:error, reason} -> {:error, reason}
        end
    end
  end

  # --- handoffs, driven by Strata.Cluster ----------------------------------------------

  # On a joining node: takes over the guilds it will own among `future` from their owners.
  def take_moved(cluster, future) do
    me = node()

    for node <- future -- [me], reduce: 0 do
      n -> n + :erpc.call(node, __MODULE__, :hand_over_to, [cluster, future, me], 120_000)
    end
  end

  # On a member: hands the guilds that `to` owns among `future` over to it; they forward
  # calls there until this node sees the new owner active.
  def hand_over_to(cluster, future, to) do
    cluster
    |> guilds()
    |> Enum.filter(&(Cluster.owner_in(future, &1) == to))
    |> Enum.count(fn guild ->
      [{pid, _}] = Registry.lookup(registry(cluster), guild)
      GenServer.call(pid, {:hand_over, to}, 60_000) == :ok
    end)
  end

  # On the new owner: a guild handed over as a snapshot.
  def receive_handoff(cluster, guild, bytes) do
    case Registry.lookup(registry(cluster), guild) do
      [{pid, _}] ->
        GenServer.call(pid, {:replace, bytes}, 60_000)

      [] ->
        case host(cluster, guild, {:snapshot, bytes}) do
          {:ok, _} -> :ok
          error -> error
        end
    end
  end

  # After the active members changed: hosts of guilds owned elsewhere hand over (if not
  # done yet) and stop.
  def drop_moved(cluster, active) do
    me = node()

    for guild <- guilds(cluster), (to = Cluster.owner_in(active, guild)) != me do
      [{pid, _}] = Registry.lookup(registry(cluster), guild)
      GenServer.call(pid, {:hand_over, to}, 60_000)
      GenServer.stop(pid)
    end
  end

  # A dead node's durable guild lists (those it owned when it died), reopened and handed to
  # their new owners.
  def rebuild_from(cluster, dir, active, dead) do
    for path <- Path.wildcard(Path.join(dir, "*")), File.dir?(path) do
      with {:ok, guild} <- read_guild(path),
           true <- Cluster.owner_in(Enum.sort([dead | active]), guild) == dead,
           {:ok, list} <- MemberList.open_durable(path) do
        bytes = MemberList.dump(list)
        :ok = MemberList.close(list)

        Cluster.call(
          Cluster.owner_in(active, guild),
          __MODULE__,
          :receive_handoff,
          [cluster, guild, bytes],
          30_000
        )
      end
    end
  end

  def stop_all(cluster) do
    case Process.whereis(supervisor(cluster)) do
      nil -> :ok
      sup -> for {_, pid, _, _} <- DynamicSupervisor.which_children(sup), do: GenServer.stop(pid)
    end
  catch
    :exit, _ -> :ok
  end

  defp guilds(cluster), do: Registry.select(registry(cluster), [{{:"$1", :_, :_}, [], [:"$1"]}])

  # --- the host -------------------------------------------------------------------------

  @impl true
  def init({cluster, guild, source}) do
    {:ok,
     %{list: open_list(cluster, guild, source), guild: guild, cluster: cluster, forward: nil}}
  end

  # Where a durable guild list lives on this node.
  defp list_dir(cluster, guild) do
    case Cluster.local(cluster).opts[:durable] do
      nil -> nil
      base -> Path.join([Durable.path(base), Atom.to_string(node()), "guilds", dir_name(guild)])
    end
  end

  defp open_list(cluster, guild, source) do
    opts = Cluster.local(cluster).opts

    case {opts[:durable], source} do
      {nil, :new} ->
        MemberList.new()

      {nil, {:snapshot, bytes}} ->
        {:ok, list} = MemberList.load(bytes)
        list

      {_base, source} ->
        dir = list_dir(cluster, guild)
        # A handed-over snapshot replaces whatever an earlier stay of the guild left here.
        if source != :new, do: File.rm_rf!(dir)
        File.mkdir_p!(dir)
        File.write!(Path.join(dir, "guild.term"), :erlang.term_to_binary(guild))
        seed(dir, source)
        MemberList.new(durable: dir, sync: opts[:sync])
    end
  end

  # A handed-over snapshot becomes the first snapshot of the new owner's durable copy.
  defp seed(_dir, :new), do: :ok

  defp seed(dir, {:snapshot, bytes}) do
    File.write!(Path.join(dir, "snap-0000000000000000.snap"), bytes)
  end

  defp dir_name(guild), do: guild |> :erlang.term_to_binary() |> Base.url_encode64(padding: false)

  defp read_guild(path) do
    with {:ok, bytes} <- File.read(Path.join(path, "guild.term")),
         do: {:ok, :erlang.binary_to_term(bytes, [:safe])}
  end

  @impl true
  def handle_call({:call, fun, args}, _from, %{forward: nil} = state) do
    reply =
      try do
        {:ok, apply(MemberList, fun, [state.list | args])}
      rescue
        e -> {:raise, e}
      end

    {:reply, reply, state}
  end

  def handle_call({:call, fun, args}, _from, %{forward: to} = state) do
    reply =
      case Cluster.call(to, __MODULE__, :call, [state.cluster, state.guild, fun, args], 30_000) do
        {:ok, reply} -> reply
        error -> error
      end

    {:reply, reply, state}
  end

  def handle_call({:replace, bytes}, _from, state) do
    if state.list.journal, do: MemberList.close(state.list)
    list = open_list(state.cluster, state.guild, {:snapshot, bytes})
    {:reply, :ok, %{state | list: list, forward: nil}}
  end

  def handle_call({:hand_over, _to}, _from, %{forward: to} = state) when to != nil,
    do: {:reply, :ok, state}

  def handle_call({:hand_over, to}, _from, state) do
    bytes = MemberList.dump(state.list)

    case Cluster.call(
           to,
           __MODULE__,
           :receive_handoff,
           [state.cluster, state.guild, bytes],
           60_000
         ) do
      {:ok, :ok} ->
        # The list lives on the new owner now: no stale copy stays behind to be "rebuilt".
        if state.list.journal do
          MemberList.close(state.list)
          File.rm_rf!(list_dir(state.cluster, state.guild))
        end

        {:reply, :ok, %{state | forward: to}}

      error ->
        {:reply, error, state}
    end
  end
end
