defmodule Strata.FollowerMap do
  @moduledoc """
  A follow graph held natively as Roaring bitmaps, in both directions: for every user, who
  follows them and whom they follow.

  User ids are integers in `0..4294967295`; map external keys (such as Bluesky DIDs) to dense
  ids with `Strata.Interner`. Like every Strata structure, the map is a **mutable, shared
  handle**: `follow/3` changes the graph that every holder sees.

      iex> map = Strata.FollowerMap.new()
      iex> Strata.FollowerMap.follow(map, 1, 2)
      :ok
      iex> Strata.FollowerMap.follow(map, 1, 2)
      :already
      iex> Strata.FollowerMap.follow(map, 3, 2)
      :ok
      iex> Strata.FollowerMap.followers(map, 2)
      [1, 3]
      iex> Strata.FollowerMap.follows?(map, 2, 1)
      false

  ## Performance

  | function | cost |
  |---|---|
  | `follow/3`, `unfollow/3`, `follows?/3` | `O(1)` expected |
  | `follower_count/2`, `following_count/2` | `O(c)`, `c` the containers of one bitmap (1 per 65536 ids) |
  | `followers/3`, `following/3` (a page of `k`) | `O(log + k)` |
  | `known_followers/4`, `mutuals/3`, `common_following/4` | `O(s)`, `s` the smaller of the two sets |
  | `follow_many/2` | `O(edges)`, in batches of 1000 (a binary of packed edges: one dirty call) |

  Pages are ascending by id: pass the last id of a page as `after:` to get the next one.

  ## Long operations and other callers

  A `follow_many/2` of a packed binary is sorted without the lock, then added in slices of
  about 150 µs of work each, recorded in the journal one by one, with the lock given up
  between them: a reader meanwhile sees the edges of the slices made so far (and all of a
  slice or none of it), and other writers go on between slices. `dump/1`, `save/2` and a
  checkpoint of the live graph encode a copy-on-write copy taken under the lock (a pointer per
  shard): they see the graph as it was when it was taken. A call on a normal scheduler waits
  at most 200 µs for the lock, then moves to a dirty scheduler to wait there.
  """

  alias Strata.{Durable, Native}
  use Durable, prefix: :follower_map

  @enforce_keys [:resource]
  defstruct [:resource, journal: nil]

  @typedoc "A handle to a native follow graph (mutable and shared); `journal` when durable."
  @type t :: %__MODULE__{resource: reference(), journal: reference() | nil}

  @typedoc "A user id."
  @type user :: 0..4_294_967_295

  @typedoc "Paging options: `after:` (an id; the page starts after it) and `limit:`."
  @type page_opts :: [after: user() | nil, limit: non_neg_integer()]

  @default_limit 100
  @batch 1000

  @doc """
  Creates an empty graph.

  ## Options

    * `:durable` - a directory: the graph is kept there too, as by `open_durable/2` (which
      this raises `Strata.DurabilityError` instead of returning an error).
    * `:sync` - with `:durable`: `:always` (default), `{:interval, ms}` or `:none`; see
      `Strata.Durable`.

      iex> Strata.FollowerMap.new() |> inspect()
      "#Strata.FollowerMap<users: 0, edges: 0>"
  """
  @spec new(keyword()) :: t()
  def new(opts \\ []) do
    case Durable.split_options!(opts, []) do
      {nil, _, _} -> Native.follower_map_new()
      {dir, sync, _} -> dir |> open_durable(sync: sync) |> Durable.open!(dir)
    end
  end

  @doc """
  Opens the durable graph kept in directory `dir`, creating it when `dir` holds none and
  recovering it otherwise. Every change is journaled before it is applied and acknowledged
  as `:sync` (`:always`, `{:interval, ms}` or `:none`; default `:always`) says. See
  `Strata.Durable`.

      iex> dir = Path.join(System.tmp_dir!(), "strata-graph-\#{System.os_time()}")
      iex> {:ok, map} = Strata.FollowerMap.open_durable(dir)
      iex> Strata.FollowerMap.follow(map, 1, 2)
      :ok
      iex> Strata.FollowerMap.close(map)
      :ok
      iex> {:ok, map} = Strata.FollowerMap.open_durable(dir)
      iex> Strata.FollowerMap.followers(map, 2)
      [1]
  """
  @spec open_durable(Path.t(), keyword()) :: {:ok, t()} | {:error, Durable.reason()}
  def open_durable(dir, opts \\ []) do
    opts = Strata.Options.validate!(opts, sync: :always)
    dir = Durable.path(dir)
    Durable.recover(__MODULE__, dir, fn -> Native.follower_map_recover(dir, opts[:sync]) end)
  end

  @doc """
  `follower` follows `followee`: `:ok`, or `:already` if it did. A user cannot follow itself
  (`ArgumentError`).
  """
  @spec follow(t(), user(), user()) :: :ok | :already
  def follow(map, follower, followee) do
    added = Native.follower_map_follow(map, follower, followee)
    Durable.ack!(map)
    if added, do: :ok, else: :already
  end

  @doc """
  `follower` stops following `followee`: `:ok`, or `:not_following`.

      iex> map = Strata.FollowerMap.new()
      iex> Strata.FollowerMap.unfollow(map, 1, 2)
      :not_following
  """
  @spec unfollow(t(), user(), user()) :: :ok | :not_following
  def unfollow(map, follower, followee) do
    removed = Native.follower_map_unfollow(map, follower, followee)
    Durable.ack!(map)
    if removed, do: :ok, else: :not_following
  end

  @doc "Whether `follower` follows `followee`."
  @spec follows?(t(), user(), user()) :: boolean()
  def follows?(map, follower, followee), do: Native.follower_map_follows(map, follower, followee)

  @doc """
  Adds many edges (`{follower, followee}` pairs, or a binary of packed
  `<<follower::32-little, followee::32-little>>` edges) without a round trip per edge.
  Returns how many were new. A list goes in batches of #{@batch} (each atomic); a binary in
  one call on a dirty scheduler.

      iex> map = Strata.FollowerMap.new()
      iex> Strata.FollowerMap.follow_many(map, [{1, 2}, {2, 1}, {1, 2}])
      2
      iex> Strata.FollowerMap.follow_many(map, <<3::32-little, 1::32-little>>)
      1
  """
  @spec follow_many(t(), Enumerable.t() | binary()) :: non_neg_integer()
  def follow_many(map, edges) when is_binary(edges) do
    added = Native.follower_map_follow_packed(map, edges)
    Durable.ack!(map)
    added
  end

  def follow_many(map, edges) do
    unless Enumerable.impl_for(edges) do
      raise ArgumentError, "argument edges: expected an enumerable of pairs or a binary"
    end

    edges
    |> Stream.chunk_every(@batch)
    |> Enum.reduce(0, fn batch, total ->
      added = Native.follower_map_follow_many(map, batch)
      Durable.ack!(map)
      total + added
    end)
  end

  @doc """
  Builds a graph from edges (as `follow_many/2` takes them).

      iex> map = Strata.FollowerMap.from_edges([{1, 2}, {3, 2}])
      iex> Strata.FollowerMap.follower_count(map, 2)
      2
  """
  @spec from_edges(Enumerable.t() | binary()) :: t()
  def from_edges(edges) do
    map = new()
    follow_many(map, edges)
    map
  end

  @doc "How many users follow `user`."
  @spec follower_count(t(), user()) :: non_neg_integer()
  def follower_count(map, user), do: Native.follower_map_follower_count(map, user)

  @doc "How many users `user` follows."
  @spec following_count(t(), user()) :: non_neg_integer()
  def following_count(map, user), do: Native.follower_map_following_count(map, user)

  @doc """
  A page of `user`'s followers, ascending by id (at most `:limit`, default #{@default_limit},
  at most 10,000).

      iex> map = Strata.FollowerMap.from_edges(for f <- 1..5, do: {f, 0})
      iex> Strata.FollowerMap.followers(map, 0, after: 2, limit: 2)
      [3, 4]
  """
  @spec followers(t(), user(), page_opts()) :: [user()]
  def followers(map, user, opts \\ []) do
    {after_id, limit} = page!(opts)
    map |> Native.follower_map_followers(user, after_id, limit) |> elem(0)
  end

  @doc "A page of the users `user` follows, ascending by id (options as `followers/3`)."
  @spec following(t(), user(), page_opts()) :: [user()]
  def following(map, user, opts \\ []) do
    {after_id, limit} = page!(opts)
    map |> Native.follower_map_following(user, after_id, limit) |> elem(0)
  end

  @doc """
  Social proof: the users `viewer` follows who follow `target` (a page, as `followers/3`), and
  how many there are in all ("followed by A, B and 12 others").

      iex> map = Strata.FollowerMap.from_edges([{1, 10}, {1, 11}, {10, 99}, {11, 99}, {12, 99}])
      iex> Strata.FollowerMap.known_followers(map, 1, 99)
      {[10, 11], 2}
  """
  @spec known_followers(t(), user(), user(), page_opts()) :: {[user()], non_neg_integer()}
  def known_followers(map, viewer, target, opts \\ []) do
    {after_id, limit} = page!(opts)
    Native.follower_map_known_followers(map, viewer, target, after_id, limit)
  end

  @doc """
  The users who follow `user` and whom `user` follows (a page), and how many in all.

      iex> map = Strata.FollowerMap.from_edges([{1, 2}, {2, 1}, {1, 3}])
      iex> Strata.FollowerMap.mutuals(map, 1)
      {[2], 1}
  """
  @spec mutuals(t(), user(), page_opts()) :: {[user()], non_neg_integer()}
  def mutuals(map, user, opts \\ []) do
    {after_id, limit} = page!(opts)
    Native.follower_map_mutuals(map, user, after_id, limit)
  end

  @doc """
  The users both `a` and `b` follow (a page), and how many in all.

      iex> map = Strata.FollowerMap.from_edges([{1, 5}, {2, 5}, {1, 6}])
      iex> Strata.FollowerMap.common_following(map, 1, 2)
      {[5], 1}
  """
  @spec common_following(t(), user(), user(), page_opts()) :: {[user()], non_neg_integer()}
  def common_following(map, a, b, opts \\ []) do
    {after_id, limit} = page!(opts)
    Native.follower_map_common_following(map, a, b, after_id, limit)
  end

  @doc """
  Bytes held natively (the bitmaps and their index), kept as a running count.
  """
  @spec memory(t()) :: non_neg_integer()
  def memory(map), do: map |> Native.follower_map_info() |> elem(2)

  @doc "`%{users: n, edges: m}`: users with at least one edge, and follow edges."
  @spec stats(t()) :: %{users: non_neg_integer(), edges: non_neg_integer()}
  def stats(map) do
    {users, edges, _} = Native.follower_map_info(map)
    %{users: users, edges: edges}
  end

  defp page!(opts) do
    opts = Strata.Options.validate!(opts, after: nil, limit: @default_limit)
    {opts[:after], opts[:limit]}
  end

  defimpl Inspect do
    def inspect(map, _opts) do
      %{users: users, edges: edges} = Strata.FollowerMap.stats(map)
      "#Strata.FollowerMap<users: #{users}, edges: #{edges}>"
    end
  end
end
