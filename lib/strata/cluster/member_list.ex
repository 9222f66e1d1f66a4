defmodule Strata.Cluster.MemberList do
  @moduledoc """
  `Strata.MemberList` across the nodes of a `Strata.Cluster`: one member list per guild, kept
  by a process on the node that owns the guild id, created on first use. The same functions
  as `Strata.MemberList`, with the cluster and the guild id in place of the list; each call
  runs on the owner (locally when that is this node) and returns what the single-node
  function returns.

  When a guild moves to a joining node, its old owner hands over a snapshot from inside the
  list's process (so no change is lost between the snapshot and the switch) and forwards
  calls that still reach it to the new owner. Subscriptions are not moved: a client
  subscribes again after a move, as after a restart. With the cluster's `:durable` option
  every list is durable (`Strata.MemberList.open_durable/2`) and a dead node's lists are
  rebuilt on their new owners; without it they are lost (`Strata.Cluster.stats/1`).

  Every function takes `timeout:` in its last argument's place (`opts`, default 5000 ms).
  """

  alias Strata.Cluster
  alias Strata.Cluster.MemberList.Host

  @default_timeout 5000

  for {fun, args} <- [
        upsert: [:member],
        remove: [:id],
        define_groups: [:groups],
        subscribe: [:subscriber, :ranges],
        unsubscribe: [:subscriber],
        slice: [:range],
        size: [],
        index_of: [:id],
        group_counts: []
      ] do
    vars = Enum.map(args, &Macro.var(&1, __MODULE__))

    @doc "As `Strata.MemberList.#{fun}/#{length(args) + 1}`, on the guild's owner."
    @spec unquote(fun)(
            Cluster.t(),
            term(),
            unquote_splicing(Enum.map(args, fn _ -> quote(do: term()) end)),
            keyword()
          ) ::
            term() | {:error, :unavailable}
    def unquote(fun)(cluster, guild, unquote_splicing(vars), opts \\ []) do
      timeout = Keyword.get(opts, :timeout, @default_timeout)
      call = [cluster, guild, unquote(fun), unquote(vars)]

      case Cluster.call_owner(cluster, guild, Host, :call, call, timeout) do
        {:ok, {:ok, result}} -> result
        {:ok, {:raise, exception}} -> raise exception
        {:ok, {:error, _} = error} -> error
        error -> error
      end
    end
  end
end
