defmodule Strata.Cluster.Timeline do
  @moduledoc """
  `Strata.Timeline` across the nodes of a `Strata.Cluster`: the same functions, with the
  cluster's name in place of the timeline.

  Every node holds the follow graph and the posts (replicated: a follow or a post is applied
  on every node), and the home feeds of the users it owns. So a post's fan-out crosses nodes
  the way it should: the calling node splits the author's followers by owner and sends each
  node **one** message with its share (never one per follower); large authors are fanned in
  at read time from the posts every node holds. A read goes to the owner of the user and
  stays local there. Every node classifies large authors from the same graph, so pages are
  the ones one `Strata.Timeline` would give for the same calls.

  While a node stops gracefully, the count `insert_post/4` returns (feeds entered) also
  counts the copies pushed to the next owners of its users.

  Calls from one process are applied in order on every node; calls from different
  processes that race on the same author or user may be applied in different orders on
  different nodes.

  Call these functions on a node that runs a member of the cluster (`Strata.Cluster`): the
  caller's node splits each fan-out with its copy of the graph.

  Every function takes `timeout:` (milliseconds, default 5000): a node that does not answer
  in time counts as unavailable. Writes return `{:error, :unavailable}` when a node that
  should have applied them did not; reads retry once on the new owner when the owner died.
  """

  alias Strata.{Cluster, FollowerMap, Timeline}

  @default_timeout 5000
  @page 10_000

  @doc "As `Strata.Timeline.insert_post/3`, across the cluster."
  @spec insert_post(Cluster.t(), non_neg_integer(), FollowerMap.user(), keyword()) ::
          non_neg_integer() | {:error, :duplicate_id | :unavailable}
  def insert_post(cluster, post_id, author_id, opts \\ []) do
    fan_out(cluster, post_id, author_id, opts, fn here, share ->
      {:deliver_post, post_id, author_id, here, share}
    end)
  end

  @doc "As `Strata.Timeline.insert_repost/4`, across the cluster."
  @spec insert_repost(
          Cluster.t(),
          non_neg_integer(),
          FollowerMap.user(),
          non_neg_integer(),
          keyword()
        ) :: non_neg_integer() | {:error, :duplicate_id | :unknown_post | :unavailable}
  def insert_repost(cluster, repost_id, reposter_id, post_id, opts \\ []) do
    fan_out(cluster, repost_id, reposter_id, opts, fn here, share ->
      {:deliver_repost, repost_id, reposter_id, post_id, here, share}
    end)
  end

  @doc "As `Strata.Timeline.delete_post/2`, on every node."
  @spec delete_post(Cluster.t(), non_neg_integer(), keyword()) ::
          :ok | {:error, :not_found | :unavailable}
  def delete_post(cluster, post_id, opts \\ []),
    do: everywhere(cluster, {:delete_post, post_id}, opts)

  @doc "As `Strata.Timeline.delete_repost/2`, on every node."
  @spec delete_repost(Cluster.t(), non_neg_integer(), keyword()) ::
          :ok | {:error, :not_found | :unavailable}
  def delete_repost(cluster, repost_id, opts \\ []),
    do: everywhere(cluster, {:delete_repost, repost_id}, opts)

  @doc """
  As `Strata.Timeline.follow/3`: the edge on every node, the backfill on the follower's
  owner.
  """
  @spec follow(Cluster.t(), FollowerMap.user(), FollowerMap.user(), keyword()) ::
          :ok | :already | {:error, :unavailable}
  def follow(cluster, follower, followee, opts \\ []) do
    owners = Cluster.spread(cluster, [follower])

    run(cluster, opts, fn node ->
      {:follow, follower, followee, Map.has_key?(owners, node)}
    end)
    |> agree()
  end

  @doc "As `Strata.Timeline.unfollow/3`, on every node."
  @spec unfollow(Cluster.t(), FollowerMap.user(), FollowerMap.user(), keyword()) ::
          :ok | :not_following | {:error, :unavailable}
  def unfollow(cluster, follower, followee, opts \\ []),
    do: everywhere(cluster, {:unfollow, follower, followee}, opts)

  @doc """
  As `Strata.Timeline.get_timeline/3`, read on the owner of `user_id` (options `:limit`,
  `:cursor` and `:timeout`).
  """
  @spec get_timeline(Cluster.t(), FollowerMap.user(), keyword()) ::
          {[Timeline.item()], Timeline.cursor() | nil}
          | {:error, :invalid_cursor | :unavailable}
  def get_timeline(cluster, user_id, opts \\ []) do
    {timeout, read_opts} = Keyword.pop(opts, :timeout, @default_timeout)

    case Cluster.call_owner(
           cluster,
           user_id,
           __MODULE__,
           :local_read,
           [cluster, user_id, read_opts],
           timeout
         ) do
      {:ok, page} -> page
      error -> error
    end
  end

  @doc false
  def local_read(cluster, user_id, opts) do
    with :ok <- Cluster.await_takeover(cluster, user_id),
         do: Timeline.get_timeline(Cluster.local(cluster).tl, user_id, opts)
  end

  @doc false
  def local_apply(cluster, op), do: Cluster.apply_or_buffer(cluster, op)

  # The author's followers split by the node that holds their feeds; one delivery per node
  # (the author's own node also pushes into the author's feed). The author's followers are
  # listed only when the author is not large (a large author's posts are fanned in).
  defp fan_out(cluster, id, author, opts, op) do
    tl = Cluster.local(cluster).tl
    # Items are on every node: an id already here is a duplicate everywhere (a node may be
    # sent a delivery twice during a handoff, so deliveries themselves accept repeats).
    if Strata.Native.timeline_has_item(tl, id),
      do: {:error, :duplicate_id},
      else: spread_out(cluster, tl, author, opts, op)
  end

  defp spread_out(cluster, tl, author, opts, op) do
    map = Timeline.follower_map(tl)
    limit = tl_option(cluster, :fanout_limit)

    followers =
      if FollowerMap.follower_count(map, author) > limit, do: [], else: all_followers(map, author)

    shares = Cluster.spread(cluster, followers)
    author_nodes = Cluster.spread(cluster, [author])

    # A joining node gets copies of its future users' pushes; the count (feeds entered) is
    # the active owners', as one timeline would give it.
    joining = Cluster.writers(cluster) -- Cluster.nodes(cluster)

    run(cluster, opts, fn node ->
      op.(Map.has_key?(author_nodes, node), Cluster.pack(Map.get(shares, node, [])))
    end)
    |> Enum.reduce_while(0, fn
      {node, {:ok, n}}, acc when is_integer(n) ->
        {:cont, if(node in joining, do: acc, else: acc + n)}

      {_node, {:ok, :buffered}}, acc ->
        {:cont, acc}

      {_node, {:ok, {:error, _} = e}}, _ ->
        {:halt, e}

      {_node, {:error, _} = e}, _ ->
        {:halt, e}
    end)
  end

  defp all_followers(map, author, after_id \\ nil, acc \\ []) do
    page = FollowerMap.followers(map, author, after: after_id, limit: @page)

    if length(page) < @page,
      do: Enum.concat(Enum.reverse([page | acc])),
      else: all_followers(map, author, List.last(page), [page | acc])
  end

  defp tl_option(cluster, key) do
    defaults = [feed_capacity: 1000, fanout_limit: 10_000, backfill: 50]
    Keyword.get(Cluster.local(cluster).opts[:timeline], key, defaults[key])
  end

  defp everywhere(cluster, op, opts), do: run(cluster, opts, fn _ -> op end) |> agree()

  # Applies the op each node gets on every node that receives writes.
  defp run(cluster, opts, op_for) do
    timeout = Keyword.get(opts, :timeout, @default_timeout)

    Cluster.multicall(
      cluster,
      fn node ->
        Cluster.call(node, __MODULE__, :local_apply, [cluster, op_for.(node)], timeout)
      end,
      timeout
    )
  end

  # Replicated ops give the same answer on every node; an unreachable node is an error.
  defp agree(results) do
    case Enum.find(results, &match?({_, {:error, :unavailable}}, &1)) do
      nil ->
        results
        |> Enum.map(fn {_, {:ok, r}} -> r end)
        |> Enum.find(:ok, &(&1 not in [:ok, :buffered]))

      {_, error} ->
        error
    end
  end
end
