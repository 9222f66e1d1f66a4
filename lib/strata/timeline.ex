defmodule Strata.Timeline do
  @moduledoc """
  A fan-out timeline store for Bluesky-style home feeds, held natively.

  A post is pushed into the bounded feed of each of its author's followers (fan-out on
  write), except for large authors, those with more followers than `:fanout_limit`, whose
  posts are merged in when a timeline is read (fan-in). Reads are newest first and paged with
  an opaque cursor.

      iex> tl = Strata.Timeline.new(fanout_limit: 1)
      iex> Strata.Timeline.follow(tl, 1, 10)
      :ok
      iex> Strata.Timeline.insert_post(tl, 1001, 10)
      2
      iex> Strata.Timeline.insert_repost(tl, 1002, 2, 1001)
      1
      iex> Strata.Timeline.follow(tl, 1, 2)
      :ok
      iex> {items, nil} = Strata.Timeline.get_timeline(tl, 1)
      iex> items
      [{:repost, 1001, 2}, 1001]

  ## Semantics

    * Post and repost ids are integers ordered by time (snowflakes, TIDs) in one id space;
      a timeline item is a `post_id` or `{:repost, post_id, reposter_id}`, ordered by its own
      id (a repost by the repost's).
    * Every user's feed keeps the `:feed_capacity` newest item ids pushed to it (default
      1000); when a push makes it longer, the oldest falls off. An author's own items are kept
      the same way, and are what fan-in and backfill read.
    * An author becomes large when a post or follow finds their follower count above
      `:fanout_limit` (default 10,000), and stays large, so nothing they posted while large
      goes missing.
      Their posts still enter their own feed.
    * `follow/3` backfills the followee's `:backfill` most recent items (default 50) into the
      follower's feed (nothing for a large followee: their items are fanned in).
      `unfollow/3` removes the followee's posts and reposts from the follower's feed.
    * Deletes are filtered at read time: a deleted post, and every repost of it, no longer
      appears in any timeline; its feed entries leave as newer items push them out (until
      then they count towards the capacity).
    * A cursor names the last item returned; the next page holds items strictly older. New
      posts never enter a later page, so no item is seen twice or skipped across pages.
    * Posts may be replies and quotes (`insert_post/4`); users may mute and block others
      (`mute/3`, `block/3`). Reads leave out what Bluesky's timeline leaves out (muted and
      blocked users, replies under the Following feed's rule) and what the reader excludes
      (`get_timeline/3`); `author_feed/3` and `list_feed/3` read authors' own items.

  The timeline reads its follow graph from a `Strata.FollowerMap`, its own or one given
  with `follower_map:` (so a graph can be bulk-loaded first). Whether an author is large is
  checked at each of their posts and follows; backfill and unfollow cleanup happen only for
  follows made through `follow/3` and `unfollow/3`.

  ## Long operations and other callers

  No call holds the timeline's locks for long, so reads and small writes from other
  processes go on during a long one:

    * A post (or repost) that reaches more than 1000 followers runs on a dirty scheduler; past
      1024 it is fanned out in slices of about 150 µs of work each, with the locks given up
      between them. It is recorded first (with its author's own items and feed) but hidden
      from every reader until the last slice is in: then it appears in every timeline at once.
      Each slice pushes it to the followers it covers as the graph is at that moment, so a
      follow or unfollow made during the fan-out acts as if made before or after it. Every
      step is journaled; a fan-out a crash cut short is completed when the timeline is opened
      again (or loaded from a snapshot).
    * `follow/3` and `unfollow/3` compute the backfill merge or the cleanup of the follower's
      feed before they take the write locks, and install it in `O(1)` if the feed has not
      changed meanwhile (otherwise they redo it under the locks).
    * `dump/1`, `save/2` and a checkpoint that snapshots the live timeline encode a
      copy-on-write copy of it and its graph, taken under the locks in time that does not
      grow with the data: the timeline as it was at that moment.
    * A call on a normal scheduler waits at most 200 µs for a lock, then moves to a dirty
      scheduler to wait there.
  """

  alias Strata.{Durable, FollowerMap, Native}
  use Durable, prefix: :timeline

  @enforce_keys [:resource, :follower_map]
  defstruct [:resource, :follower_map, journal: nil]

  @typedoc "A handle to a native timeline store (mutable and shared)."
  @type t :: %__MODULE__{
          resource: reference(),
          follower_map: FollowerMap.t(),
          journal: reference() | nil
        }

  @typedoc """
  A timeline item: a plain post's id, or `{:repost, post_id, reposter_id}`; for a reply or a
  quote (or a repost of one), `{:post, post_id, kind}` or `{:repost, post_id, reposter_id,
  kind}`. See `reply?/1`, `repost?/1`, `quote?/1`.
  """
  @type item ::
          non_neg_integer()
          | {:repost, non_neg_integer(), FollowerMap.user()}
          | {:post, non_neg_integer(), kind()}
          | {:repost, non_neg_integer(), FollowerMap.user(), kind()}

  @typedoc """
  What a post is besides a post: `reply` is `{parent_id, parent_author, root_id,
  root_author}` for a reply, `quote_of` the quoted post's id for a quote.
  """
  @type kind :: %{
          reply:
            nil | {non_neg_integer(), FollowerMap.user(), non_neg_integer(), FollowerMap.user()},
          quote_of: nil | non_neg_integer()
        }

  @typedoc "An opaque page cursor."
  @type cursor :: String.t()

  @doc """
  Creates a timeline store.

  ## Options

    * `:feed_capacity` - items kept per feed (default 1000, at most 100,000).
    * `:fanout_limit` - authors with more followers are fanned in at read (default 10,000).
    * `:backfill` - recent items of a newly followed author put into the feed (default 50).
    * `:follower_map` - the `Strata.FollowerMap` to read the graph from (default: a new one).
      A durable follower map records the follows made through the timeline.
    * `:durable` - a directory: the timeline and its own graph are kept there too, as by
      `open_durable/2` (which this raises `Strata.DurabilityError` instead of returning an
      error). Not with `:follower_map`.
    * `:sync` - with `:durable`: `:always` (default), `{:interval, ms}` or `:none`; see
      `Strata.Durable`.
  """
  @spec new(keyword()) :: t()
  def new(opts \\ []) do
    defaults = [feed_capacity: 1000, fanout_limit: 10_000, backfill: 50, follower_map: nil]

    case Durable.split_options!(opts, defaults) do
      {nil, _, opts} ->
        map = opts[:follower_map] || FollowerMap.new()
        Native.timeline_new(map, opts[:feed_capacity], opts[:fanout_limit], opts[:backfill])

      {dir, sync, opts} ->
        dir |> open_durable([sync: sync] ++ opts) |> Durable.open!(dir)
    end
  end

  @doc """
  Opens the durable timeline kept in directory `dir`, creating it when `dir` holds none and
  recovering it otherwise. The timeline owns its follow graph (in the same snapshots and
  journal): change it through `follow/3` and `unfollow/3`; `follower_map/1` is for reading.

  Options: `:sync` (see `Strata.Durable`) and, for a new timeline, `:feed_capacity`,
  `:fanout_limit` and `:backfill` as in `new/1`.

      iex> dir = Path.join(System.tmp_dir!(), "strata-tl-\#{System.os_time()}")
      iex> {:ok, tl} = Strata.Timeline.open_durable(dir)
      iex> :ok = Strata.Timeline.follow(tl, 1, 2)
      iex> Strata.Timeline.insert_post(tl, 100, 2)
      2
      iex> :ok = Strata.Timeline.close(tl)
      iex> {:ok, tl} = Strata.Timeline.open_durable(dir)
      iex> Strata.Timeline.get_timeline(tl, 1)
      {[100], nil}
  """
  @spec open_durable(Path.t(), keyword()) :: {:ok, t()} | {:error, Durable.reason()}
  def open_durable(dir, opts \\ []) do
    opts =
      Strata.Options.validate!(opts,
        sync: :always,
        feed_capacity: 1000,
        fanout_limit: 10_000,
        backfill: 50,
        follower_map: nil
      )

    if opts[:follower_map] do
      raise ArgumentError,
            "argument follower_map: a durable timeline owns its follow graph; pass no :follower_map"
    end

    dir = Durable.path(dir)

    Durable.recover(__MODULE__, dir, fn ->
      Native.timeline_recover(
        dir,
        opts[:sync],
        opts[:feed_capacity],
        opts[:fanout_limit],
        opts[:backfill]
      )
    end)
  end

  @doc "The follow graph the timeline reads."
  @spec follower_map(t()) :: FollowerMap.t()
  def follower_map(%__MODULE__{follower_map: map}), do: map

  @doc """
  Records a post and pushes it into the feeds of its author and, unless the author is large,
  every follower. Returns how many feeds it entered, or `{:error, :duplicate_id}`.

  ## Options

    * `:reply_to` - `{parent_id, parent_author, root_id, root_author}`: the post is a reply
      to `parent_id` in the thread that `root_id` began (for a reply to a thread's first
      post, the parent and the root are the same). The parent need not be recorded here.
    * `:quote_of` - the id of the post this one quotes.

  A reply enters the same feeds as any post; which readers see it is decided at read time
  (see `get_timeline/3`).

      iex> tl = Strata.Timeline.new()
      iex> Strata.Timeline.insert_post(tl, 1, 10)
      1
      iex> Strata.Timeline.insert_post(tl, 2, 11, reply_to: {1, 10, 1, 10}, quote_of: 1)
      1
      iex> Strata.Timeline.author_feed(tl, 11)
      {[{:post, 2, %{reply: {1, 10, 1, 10}, quote_of: 1}}], nil}
  """
  @spec insert_post(t(), non_neg_integer(), FollowerMap.user(), keyword()) ::
          non_neg_integer() | {:error, :duplicate_id}
  def insert_post(tl, post_id, author_id, opts \\ []) do
    opts = Strata.Options.validate!(opts, reply_to: nil, quote_of: nil)

    kind =
      if opts[:reply_to] == nil and opts[:quote_of] == nil,
        do: nil,
        else: {opts[:reply_to], opts[:quote_of]}

    began = System.monotonic_time()
    result = Native.timeline_insert_post(tl, post_id, author_id, kind)
    fanned_out(tl, began, author_id, post_id, result)
    Durable.ack!(tl)
    result
  end

  # Fan-outs into at least this many feeds emit `[:strata, :timeline, :fanout]`.
  @fanout_event 1000

  defp fanned_out(tl, began, author, item, feeds)
       when is_integer(feeds) and feeds >= @fanout_event do
    Strata.Telemetry.execute(
      [:strata, :timeline, :fanout],
      %{duration: System.monotonic_time() - began, feeds: feeds},
      %{timeline: tl, author: author, item: item}
    )
  end

  defp fanned_out(_tl, _began, _author, _item, _result), do: :ok

  @doc """
  Records a repost of `post_id` by `reposter_id` and fans it out like a post of the reposter.
  Returns how many feeds it entered, or `{:error, :duplicate_id | :unknown_post}`.
  """
  @spec insert_repost(t(), non_neg_integer(), FollowerMap.user(), non_neg_integer()) ::
          non_neg_integer() | {:error, :duplicate_id | :unknown_post}
  def insert_repost(tl, repost_id, reposter_id, post_id) do
    began = System.monotonic_time()
    result = Native.timeline_insert_repost(tl, repost_id, reposter_id, post_id)
    fanned_out(tl, began, reposter_id, repost_id, result)
    Durable.ack!(tl)
    result
  end

  @doc "Deletes a post (and so every repost of it) from every timeline."
  @spec delete_post(t(), non_neg_integer()) :: :ok | {:error, :not_found}
  def delete_post(tl, post_id), do: tl |> Native.timeline_delete_post(post_id) |> acked(tl)

  @doc "Deletes a repost from every timeline."
  @spec delete_repost(t(), non_neg_integer()) :: :ok | {:error, :not_found}
  def delete_repost(tl, repost_id),
    do: tl |> Native.timeline_delete_repost(repost_id) |> acked(tl)

  @doc "`follower` follows `followee`, and gets the followee's recent items: `:ok` or `:already`."
  @spec follow(t(), FollowerMap.user(), FollowerMap.user()) :: :ok | :already
  def follow(tl, follower, followee) do
    if tl |> Native.timeline_follow(follower, followee) |> acked(tl), do: :ok, else: :already
  end

  @doc "`follower` unfollows `followee`, whose items leave the follower's feed."
  @spec unfollow(t(), FollowerMap.user(), FollowerMap.user()) :: :ok | :not_following
  def unfollow(tl, follower, followee) do
    if tl |> Native.timeline_unfollow(follower, followee) |> acked(tl),
      do: :ok,
      else: :not_following
  end

  # Returns `result` once the change is durable: in the timeline's journal, or (for follows
  # into a durable graph shared with an in-memory timeline) in the graph's.
  defp acked(result, tl) do
    Durable.ack!(tl)
    Durable.ack!(tl.follower_map)
    result
  end

  @doc """
  A page of `user`'s home timeline, newest first: `{items, cursor}`, with `cursor` `nil` on
  the last page.

  ## Options

    * `:limit` - items per page (default 50, from 1 to 100; a page of none could not
      tell "no more items" from "none asked for").
    * `:cursor` - the cursor of the previous page.
    * `:exclude_replies`, `:exclude_reposts`, `:exclude_quotes` - leave out replies,
      reposts, quotes (a repost of a reply is a reply here, and so on). Default `false`.
    * `:since` - a cursor: only items newer than the item it names (the "new posts" poll).
      Keep the cursor of a `limit: 1` read made before reading the first page: the next
      poll with it returns everything that arrived since (an item may come twice, never
      not at all).

  What a user sees (all of it decided when the page is read, from the graph, mutes and
  blocks at that moment, so a later follow, unfollow, mute or block changes the next read):

    * Not the posts or reposts of users they mute, nor of users they block or who block
      them, nor replies whose parent's or root's author blocks them or is blocked by them.
    * A reply only if it continues its author's own thread (parent and root by the reply's
      author), or the user is, or follows, one of the other authors above it (the
      parent's or the root's) - Bluesky's Following feed. A reply reaches the feeds of
      its author's followers when posted; one hidden by this rule appears in a later read
      once the user follows the parent's or root's author (while it is still in the feed),
      and hides again on unfollowing them. A repost of a reply is shown (the user follows
      the reposter).

  A malformed cursor gives `{:error, :invalid_cursor}`. An unknown user has an empty
  timeline.

      iex> Strata.Timeline.new() |> Strata.Timeline.get_timeline(42)
      {[], nil}
  """
  @spec get_timeline(t(), FollowerMap.user(), keyword()) ::
          {[item()], cursor() | nil} | {:error, :invalid_cursor}
  def get_timeline(tl, user_id, opts \\ []) do
    with {:ok, before, limit, filter} <- read_options(opts, []) do
      {items, next} = Native.timeline_read(tl, user_id, before, limit, filter)
      {items, next && encode_cursor(next)}
    end
  end

  @doc """
  A page of `author`'s own posts and reposts, newest first (Bluesky's author feed):
  `{items, cursor}`. Takes the options of `get_timeline/3` (without its reply rule) and
  `:viewer`: a user whose mutes and blocks apply.

      iex> tl = Strata.Timeline.new()
      iex> Strata.Timeline.insert_post(tl, 1, 7)
      iex> Strata.Timeline.insert_post(tl, 2, 7, reply_to: {1, 7, 1, 7})
      iex> Strata.Timeline.author_feed(tl, 7, exclude_replies: true)
      {[1], nil}
  """
  @spec author_feed(t(), FollowerMap.user(), keyword()) ::
          {[item()], cursor() | nil} | {:error, :invalid_cursor}
  def author_feed(tl, author_id, opts \\ []) do
    with {:ok, before, limit, filter} <- read_options(opts, viewer: nil) do
      {items, next} = Native.timeline_author_feed(tl, author_id, before, limit, filter)
      {items, next && encode_cursor(next)}
    end
  end

  @doc """
  A page of the posts and reposts of `members` (at most 10,000 users), newest first (a
  Bluesky list feed): `{items, cursor}`. Options as `author_feed/3`.

      iex> tl = Strata.Timeline.new()
      iex> for {id, author} <- [{1, 7}, {2, 8}, {3, 9}], do: Strata.Timeline.insert_post(tl, id, author)
      iex> Strata.Timeline.list_feed(tl, [7, 9])
      {[3, 1], nil}
  """
  @spec list_feed(t(), [FollowerMap.user()], keyword()) ::
          {[item()], cursor() | nil} | {:error, :invalid_cursor}
  def list_feed(tl, members, opts \\ []) do
    unless is_list(members) do
      raise ArgumentError,
            "argument members: expected a list of user ids, got: #{inspect(members)}"
    end

    with {:ok, before, limit, filter} <- read_options(opts, viewer: nil) do
      {items, next} = Native.timeline_list_feed(tl, members, before, limit, filter)
      {items, next && encode_cursor(next)}
    end
  end

  @read_defaults [
    limit: 50,
    cursor: nil,
    since: nil,
    exclude_replies: false,
    exclude_reposts: false,
    exclude_quotes: false
  ]

  defp read_options(opts, extra) do
    opts = Strata.Options.validate!(opts, @read_defaults ++ extra)
    limit = opts[:limit]

    unless is_integer(limit) and limit in 1..100 do
      raise ArgumentError, "option :limit: expected an integer in 1..100, got: #{inspect(limit)}"
    end

    flags =
      for key <- [:exclude_replies, :exclude_reposts, :exclude_quotes],
          do: Strata.Options.boolean!(opts[key], key)

    with {:ok, before} <- decode_cursor(opts[:cursor]),
         {:ok, since} <- decode_cursor(opts[:since]) do
      {:ok, before, limit, List.to_tuple(flags ++ [since, opts[:viewer]])}
    end
  end

  @doc """
  A cursor naming the item with this id (a post's or a repost's): for `:cursor` (items
  older than it) or `:since` (items newer).

      iex> Strata.Timeline.cursor(1001)
      "AAAAAAAAA-k"
  """
  @spec cursor(non_neg_integer()) :: cursor()
  def cursor(id) when is_integer(id) and id >= 0 and id < 0x1_0000_0000_0000_0000,
    do: encode_cursor(id)

  def cursor(id),
    do: raise(ArgumentError, "argument id: expected an item id, got: #{inspect(id)}")

  @doc "Whether an item is a reply (a repost of a reply is one)."
  @spec reply?(item()) :: boolean()
  def reply?(item), do: match?(%{reply: {_, _, _, _}}, kind(item))

  @doc "Whether an item is a quote (a repost of a quote is one)."
  @spec quote?(item()) :: boolean()
  def quote?(item), do: match?(%{quote_of: id} when is_integer(id), kind(item))

  @doc """
  Whether an item is a repost.

      iex> Strata.Timeline.repost?({:repost, 1, 2})
      true
      iex> Strata.Timeline.repost?(1)
      false
  """
  @spec repost?(item()) :: boolean()
  def repost?(item), do: is_tuple(item) and elem(item, 0) == :repost

  defp kind({:post, _, kind}), do: kind
  defp kind({:repost, _, _, kind}), do: kind
  defp kind(_item), do: nil

  @doc """
  `user` mutes `other`: their posts and reposts leave `user`'s reads. `:ok`, or `:already`.
  Journaled when the timeline is durable.

      iex> tl = Strata.Timeline.new()
      iex> Strata.Timeline.follow(tl, 1, 2)
      iex> Strata.Timeline.insert_post(tl, 10, 2)
      iex> Strata.Timeline.mute(tl, 1, 2)
      :ok
      iex> Strata.Timeline.get_timeline(tl, 1)
      {[], nil}
      iex> Strata.Timeline.unmute(tl, 1, 2)
      :ok
      iex> Strata.Timeline.get_timeline(tl, 1)
      {[10], nil}
  """
  @spec mute(t(), FollowerMap.user(), FollowerMap.user()) :: :ok | :already
  def mute(tl, user, other), do: if(relate(tl, :mute, user, other, true), do: :ok, else: :already)

  @doc "`user` no longer mutes `other`: `:ok`, or `:not_muted`."
  @spec unmute(t(), FollowerMap.user(), FollowerMap.user()) :: :ok | :not_muted
  def unmute(tl, user, other),
    do: if(relate(tl, :mute, user, other, false), do: :ok, else: :not_muted)

  @doc """
  `blocker` blocks `user`: each stops seeing the other's posts and reposts, and `user` the
  replies in threads `blocker` began or is answered in. `:ok`, or `:already`.
  """
  @spec block(t(), FollowerMap.user(), FollowerMap.user()) :: :ok | :already
  def block(tl, blocker, user),
    do: if(relate(tl, :block, blocker, user, true), do: :ok, else: :already)

  @doc "`blocker` no longer blocks `user`: `:ok`, or `:not_blocked`."
  @spec unblock(t(), FollowerMap.user(), FollowerMap.user()) :: :ok | :not_blocked
  def unblock(tl, blocker, user),
    do: if(relate(tl, :block, blocker, user, false), do: :ok, else: :not_blocked)

  # Whether it changed anything (acknowledged once durable).
  defp relate(tl, relation, user, other, on),
    do: tl |> Native.timeline_relate(relation, user, other, on) |> acked(tl)

  defp encode_cursor(id), do: Base.url_encode64(<<id::unsigned-64>>, padding: false)

  defp decode_cursor(nil), do: {:ok, nil}

  defp decode_cursor(cursor) when is_binary(cursor) do
    case Base.url_decode64(cursor, padding: false) do
      {:ok, <<id::unsigned-64>>} -> {:ok, id}
      _ -> {:error, :invalid_cursor}
    end
  end

  defp decode_cursor(_cursor), do: {:error, :invalid_cursor}

  @doc "Bytes held natively by the timeline store (not counting its follow graph)."
  @spec memory(t()) :: non_neg_integer()
  def memory(tl), do: tl |> Native.timeline_info() |> elem(5)

  @doc """
  Counts: users with a feed, posts and reposts recorded (deleted ones included), feed
  entries, large authors.

      iex> Strata.Timeline.new() |> Strata.Timeline.stats()
      %{users: 0, posts: 0, reposts: 0, feed_entries: 0, large_authors: 0}
  """
  @spec stats(t()) :: %{
          users: non_neg_integer(),
          posts: non_neg_integer(),
          reposts: non_neg_integer(),
          feed_entries: non_neg_integer(),
          large_authors: non_neg_integer()
        }
  def stats(tl) do
    {users, posts, reposts, entries, large, _} = Native.timeline_info(tl)
    %{users: users, posts: posts, reposts: reposts, feed_entries: entries, large_authors: large}
  end

  defimpl Inspect do
    def inspect(tl, _opts) do
      s = Strata.Timeline.stats(tl)
      "#Strata.Timeline<users: #{s.users}, posts: #{s.posts}, large_authors: #{s.large_authors}>"
    end
  end
end
