# The baseline for bench/followers.exs and bench/timeline.exs: the ETS dataplane described in
# ../shared/context/bitcrowd-timelines-from-elixir.txt, written from the article's
# description. Follows in two duplicate_bag tables, posts in a set, fan-out into a
# duplicate_bag of feeds, and a duplicate_bag of celebrity posts merged in at read time. The
# only addition: reads sort newest first and take a page, as a timeline endpoint must.
defmodule EtsDataplane do
  defstruct [:followers, :following, :posts, :feeds, :celebrity_posts, :fanout_limit]

  def new(fanout_limit) do
    bag = [:duplicate_bag, :public, read_concurrency: true, write_concurrency: true]

    %__MODULE__{
      followers: :ets.new(:followers, bag),
      following: :ets.new(:following, bag),
      posts: :ets.new(:posts, [:set, :public, read_concurrency: true, write_concurrency: true]),
      feeds: :ets.new(:feeds, [{:decentralized_counters, true} | bag]),
      celebrity_posts: :ets.new(:celebrity_posts, [{:decentralized_counters, true} | bag]),
      fanout_limit: fanout_limit
    }
  end

  def follow(d, follower, followee) do
    :ets.insert(d.followers, {followee, follower})
    :ets.insert(d.following, {follower, followee})
  end

  def follow_many(d, edges) do
    :ets.insert(d.followers, Enum.map(edges, fn {a, b} -> {b, a} end))
    :ets.insert(d.following, edges)
  end

  def unfollow(d, follower, followee) do
    :ets.delete_object(d.followers, {followee, follower})
    :ets.delete_object(d.following, {follower, followee})
  end

  def follows?(d, follower, followee),
    do: :ets.match_object(d.following, {follower, followee}) != []

  def followers_page(d, user, limit) do
    d.followers |> :ets.lookup(user) |> Enum.take(limit) |> Enum.map(&elem(&1, 1))
  end

  # Returns the number of feed writes.
  def insert_post(d, post_id, author_id) do
    :ets.insert(d.posts, {post_id, author_id})
    follower_entries = :ets.lookup(d.followers, author_id)

    if length(follower_entries) <= d.fanout_limit do
      Enum.each(follower_entries, fn {_subject, follower_id} ->
        :ets.insert(d.feeds, {follower_id, post_id})
      end)

      length(follower_entries)
    else
      :ets.insert(d.celebrity_posts, {author_id, post_id})
      0
    end
  end

  def get_timeline(d, user_id, limit) do
    fan_out_posts = d.feeds |> :ets.lookup(user_id) |> Enum.map(&elem(&1, 1))

    celebrity_posts =
      d.following
      |> :ets.lookup(user_id)
      |> Enum.flat_map(fn {_actor, followed_id} -> :ets.lookup(d.celebrity_posts, followed_id) end)
      |> Enum.map(&elem(&1, 1))

    (fan_out_posts ++ celebrity_posts) |> Enum.sort(:desc) |> Enum.take(limit)
  end

  def bytes(d, tables) do
    word = :erlang.system_info(:wordsize)
    tables |> Enum.map(&:ets.info(Map.fetch!(d, &1), :memory)) |> Enum.sum() |> Kernel.*(word)
  end
end
