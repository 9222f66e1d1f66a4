defmodule Strata.TimelineTest do
  use ExUnit.Case, async: true

  alias Strata.{FollowerMap, Timeline}

  doctest Timeline

  # A pure Elixir model of the documented semantics.
  defmodule Model do
    @moduledoc false
    defstruct follows: MapSet.new(),
              records: %{},
              kinds: %{},
              mutes: MapSet.new(),
              blocks: MapSet.new(),
              feeds: %{},
              own: %{},
              large: MapSet.new(),
              opts: nil

    def new(opts), do: %__MODULE__{opts: Map.new(opts)}

    # Inserts id into an ascending list of at most cap ids; returns {added?, list}.
    defp push(list, id, cap) do
      cond do
        id in list -> {false, list}
        length(list) < cap -> {true, Enum.sort([id | list])}
        id < hd(list) -> {false, list}
        true -> {true, tl(Enum.sort([id | list]))}
      end
    end

    defp push_feed(m, user, id) do
      {added, feed} = push(Map.get(m.feeds, user, []), id, m.opts.feed_capacity)
      {added, %{m | feeds: Map.put(m.feeds, user, feed)}}
    end

    defp followers(m, user), do: for({f, ^user} <- m.follows, do: f)

    # Once an author's follower count passes the limit, they are large for good.
    defp reclassify(m, author) do
      if length(followers(m, author)) > m.opts.fanout_limit,
        do: %{m | large: MapSet.put(m.large, author)},
        else: m
    end

    defp publish(m, author, id) do
      m = reclassify(m, author)
      {_, own} = push(Map.get(m.own, author, []), id, m.opts.feed_capacity)
      m = %{m | own: Map.put(m.own, author, own)}
      {added, m} = push_feed(m, author, id)
      targets = if author in m.large, do: [], else: followers(m, author)

      Enum.reduce(targets, {if(added, do: 1, else: 0), m}, fn f, {n, m} ->
        {added, m} = push_feed(m, f, id)
        {if(added, do: n + 1, else: n), m}
      end)
    end

    def insert_post(m, id, author, kind \\ nil) do
      if Map.has_key?(m.records, id) do
        {{:error, :duplicate_id}, m}
      else
        kinds =
          case kind do
            nil -> m.kinds
            {reply, quote} -> Map.put(m.kinds, id, %{reply: reply, quote_of: quote})
          end

        m = %{m | records: Map.put(m.records, id, {:post, author, false}), kinds: kinds}
        publish(m, author, id)
      end
    end

    # Mutes and blocks: {:ok | unchanged, m}.
    def relate(m, relation, a, b, on) do
      key = if relation == :mute, do: :mutes, else: :blocks
      set = Map.fetch!(m, key)

      cond do
        on and {a, b} in set -> {:already, m}
        on -> {:ok, Map.put(m, key, MapSet.put(set, {a, b}))}
        {a, b} in set -> {:ok, Map.put(m, key, MapSet.delete(set, {a, b}))}
        relation == :mute -> {:not_muted, m}
        true -> {:not_blocked, m}
      end
    end

    def insert_repost(m, id, reposter, post) do
      cond do
        Map.has_key?(m.records, id) ->
          {{:error, :duplicate_id}, m}

        not match?({:post, _, false}, m.records[post]) ->
          {{:error, :unknown_post}, m}

        true ->
          publish(
            %{m | records: Map.put(m.records, id, {:repost, post, reposter, false})},
            reposter,
            id
          )
      end
    end

    # A deleted item leaves its author's (or reposter's) own list at once.
    def delete(m, id, kind) do
      case m.records[id] do
        {^kind, a, false} ->
          {:ok, %{drop_own(m, a, id) | records: Map.put(m.records, id, {kind, a, true})}}

        {^kind, a, b, false} ->
          {:ok, %{drop_own(m, b, id) | records: Map.put(m.records, id, {kind, a, b, true})}}

        _ ->
          {{:error, :not_found}, m}
      end
    end

    defp drop_own(m, owner, id),
      do: %{m | own: Map.update(m.own, owner, [], &List.delete(&1, id))}

    def follow(m, a, b) do
      if {a, b} in m.follows do
        {:already, m}
      else
        m = reclassify(%{m | follows: MapSet.put(m.follows, {a, b})}, b)

        m =
          if b in m.large do
            m
          else
            m.own
            |> Map.get(b, [])
            |> Enum.reverse()
            |> Enum.take(m.opts.backfill)
            |> Enum.reduce(m, fn id, m -> m |> push_feed(a, id) |> elem(1) end)
          end

        {:ok, m}
      end
    end

    def unfollow(m, a, b) do
      if {a, b} in m.follows do
        feed = Map.get(m.feeds, a, []) |> Enum.reject(&(source(m, &1) == b))
        {:ok, %{m | follows: MapSet.delete(m.follows, {a, b}), feeds: Map.put(m.feeds, a, feed)}}
      else
        {:not_following, m}
      end
    end

    defp source(m, id) do
      case m.records[id] do
        {:post, author, _} -> author
        {:repost, _, reposter, _} -> reposter
      end
    end

    defp visible(m, id) do
      case m.records[id] do
        {:post, _, false} ->
          shape(m, id, nil)

        {:repost, post, reposter, false} ->
          if match?({:post, _, false}, m.records[post]), do: shape(m, post, reposter)

        _ ->
          nil
      end
    end

    defp shape(m, post, nil), do: if(k = m.kinds[post], do: {:post, post, k}, else: post)

    defp shape(m, post, by),
      do: if(k = m.kinds[post], do: {:repost, post, by, k}, else: {:repost, post, by})

    defp blocked?(m, a, b), do: {a, b} in m.blocks or {b, a} in m.blocks

    # Whether a filter ({no replies, no reposts, no quotes, since}), a viewer's mutes and
    # blocks and (home timelines) the reply rule let item `id` through.
    defp passes?(m, id, item, {no_replies, no_reposts, no_quotes, since}, viewer, rule) do
      {post, reposter} =
        case item do
          {:repost, p, by} -> {p, by}
          {:repost, p, by, _} -> {p, by}
          {:post, p, _} -> {p, nil}
          p -> {p, nil}
        end

      kind = m.kinds[post] || %{reply: nil, quote_of: nil}
      {:post, author, _} = m.records[post]
      thread = if r = kind.reply, do: [elem(r, 1), elem(r, 3)], else: []

      cond do
        since != nil and id <= since -> false
        no_reposts and reposter != nil -> false
        no_replies and kind.reply != nil -> false
        no_quotes and kind.quote_of != nil -> false
        viewer == nil -> true
        Enum.any?([author, reposter], &({viewer, &1} in m.mutes)) -> false
        Enum.any?([author, reposter | thread], &(&1 && blocked?(m, viewer, &1))) -> false
        rule and reposter == nil and kind.reply != nil -> reply_shown?(m, viewer, author, thread)
        true -> true
      end
    end

    defp reply_shown?(m, viewer, author, thread) do
      case Enum.uniq(thread) -- [author] do
        [] -> true
        others -> Enum.any?(others, &(&1 == viewer or {viewer, &1} in m.follows))
      end
    end

    @no_filter {false, false, false, nil}

    # Items of these ids, newest first, visible and through the filter.
    defp through(m, ids, filter, viewer, rule) do
      ids
      |> Enum.uniq()
      |> Enum.sort(:desc)
      |> Enum.map(&{&1, visible(m, &1)})
      |> Enum.filter(fn {id, item} -> item && passes?(m, id, item, filter, viewer, rule) end)
      |> Enum.map(&elem(&1, 1))
    end

    # The whole timeline, newest first.
    def timeline(m, user, filter \\ @no_filter) do
      fanned_in = for {^user, b} <- m.follows, b in m.large, id <- Map.get(m.own, b, []), do: id
      through(m, Map.get(m.feeds, user, []) ++ fanned_in, filter, user, true)
    end

    def author_feed(m, author, filter, viewer),
      do: through(m, Map.get(m.own, author, []), filter, viewer, false)

    def list_feed(m, members, filter, viewer),
      do: through(m, Enum.flat_map(members, &Map.get(m.own, &1, [])), filter, viewer, false)
  end

  # Reads every page; returns the items and checks each page's size.
  defp read_all(tl, user, limit, cursor \\ nil, acc \\ []) do
    {items, next} = Timeline.get_timeline(tl, user, limit: limit, cursor: cursor)
    assert length(items) <= limit
    if next == nil, do: acc ++ items, else: read_all(tl, user, limit, next, acc ++ items)
  end

  @opts [feed_capacity: 5, fanout_limit: 2, backfill: 3]

  # Random command sequences against the model (PropEr, shrinking to the shortest failing
  # sequence): follows, unfollows, posts, reposts, deletes and reads of every page.
  defmodule Statem do
    @moduledoc false
    alias Strata.Timeline
    alias Strata.TimelineTest.Model

    @opts [feed_capacity: 5, fanout_limit: 2, backfill: 3]
    def opts, do: @opts

    def timeline, do: Process.get(__MODULE__)
    defp user, do: :proper_types.integer(0, 7)

    def initial_state, do: {Model.new(@opts), 1000}

    def command({m, next_id}) do
      # Ids mostly rise, as time-ordered ids do, with some arriving late.
      id =
        :proper_types.frequency([{4, next_id}, {1, :proper_types.integer(next_id - 50, next_id)}])

      known = :proper_types.elements(Map.keys(m.records) ++ [1])
      reply = {known, user(), known, user()}
      bool = :proper_types.boolean()
      since = :proper_types.frequency([{3, nil}, {1, known}])

      filter =
        :proper_types.frequency([{2, {false, false, false, nil}}, {3, {bool, bool, bool, since}}])

      viewer = :proper_types.frequency([{1, nil}, {2, user()}])
      limit = :proper_types.elements([1, 2, 3, 50])

      kind =
        :proper_types.frequency([
          {3, nil},
          {2, {reply, nil}},
          {1, {nil, known}},
          {1, {reply, known}}
        ])

      :proper_types.frequency([
        {2, {:call, __MODULE__, :follow, [user(), user()]}},
        {1, {:call, __MODULE__, :unfollow, [user(), user()]}},
        {4, {:call, __MODULE__, :post, [id, user(), kind]}},
        {1, {:call, __MODULE__, :repost, [id, user(), known]}},
        {1, {:call, __MODULE__, :delete, [known, :proper_types.elements([:post, :repost])]}},
        {1,
         {:call, __MODULE__, :relate,
          [:proper_types.elements([:mute, :block]), user(), user(), bool]}},
        {2, {:call, __MODULE__, :read, [user(), limit, filter]}},
        {1, {:call, __MODULE__, :author_feed, [user(), limit, filter, viewer]}},
        {1, {:call, __MODULE__, :list_feed, [:proper_types.list(user()), limit, filter, viewer]}}
      ])
    end

    def precondition(_state, {:call, _, f, [a, b]}) when f in [:follow, :unfollow], do: a != b
    def precondition(_state, _call), do: true

    def follow(a, b), do: Timeline.follow(timeline(), a, b)
    def unfollow(a, b), do: Timeline.unfollow(timeline(), a, b)
    def post(id, author, nil), do: Timeline.insert_post(timeline(), id, author)

    def post(id, author, {reply, quote}),
      do: Timeline.insert_post(timeline(), id, author, reply_to: reply, quote_of: quote)

    def relate(:mute, a, b, true), do: Timeline.mute(timeline(), a, b)
    def relate(:mute, a, b, false), do: Timeline.unmute(timeline(), a, b)
    def relate(:block, a, b, true), do: Timeline.block(timeline(), a, b)
    def relate(:block, a, b, false), do: Timeline.unblock(timeline(), a, b)

    defp read_opts({no_replies, no_reposts, no_quotes, since}) do
      [
        exclude_replies: no_replies,
        exclude_reposts: no_reposts,
        exclude_quotes: no_quotes,
        since: since && Timeline.cursor(since)
      ]
    end

    def author_feed(author, limit, filter, viewer) do
      opts = [viewer: viewer] ++ read_opts(filter)
      pages(&Timeline.author_feed(timeline(), author, &1 ++ opts), limit)
    end

    def list_feed(members, limit, filter, viewer) do
      opts = [viewer: viewer] ++ read_opts(filter)
      pages(&Timeline.list_feed(timeline(), members, &1 ++ opts), limit)
    end

    # Every page of a read, in order; `:page_too_long` if a page held more than asked for.
    defp pages(read, limit, cursor \\ nil, acc \\ []) do
      {items, next} = read.(limit: limit, cursor: cursor)

      cond do
        length(items) > limit -> :page_too_long
        next == nil -> acc ++ items
        true -> pages(read, limit, next, acc ++ items)
      end
    end

    def repost(id, reposter, post), do: Timeline.insert_repost(timeline(), id, reposter, post)
    def delete(id, :post), do: Timeline.delete_post(timeline(), id)
    def delete(id, :repost), do: Timeline.delete_repost(timeline(), id)

    def read(user, limit, filter \\ {false, false, false, nil}),
      do: pages(&Timeline.get_timeline(timeline(), user, &1 ++ read_opts(filter)), limit)

    # The model's answer and state after a command.
    def model({m, _}, {:call, _, :follow, [a, b]}), do: Model.follow(m, a, b)
    def model({m, _}, {:call, _, :unfollow, [a, b]}), do: Model.unfollow(m, a, b)
    def model({m, _}, {:call, _, :post, [id, a, kind]}), do: Model.insert_post(m, id, a, kind)
    def model({m, _}, {:call, _, :relate, [r, a, b, on]}), do: Model.relate(m, r, a, b, on)
    def model({m, _}, {:call, _, :repost, [id, a, p]}), do: Model.insert_repost(m, id, a, p)
    def model({m, _}, {:call, _, :delete, [id, kind]}), do: Model.delete(m, id, kind)
    def model({m, _}, {:call, _, :read, [user, _, f]}), do: {Model.timeline(m, user, f), m}

    def model({m, _}, {:call, _, :author_feed, [a, _, f, v]}),
      do: {Model.author_feed(m, a, f, v), m}

    def model({m, _}, {:call, _, :list_feed, [ms, _, f, v]}),
      do: {Model.list_feed(m, ms, f, v), m}

    def next_state({_, next_id} = state, _result, {:call, _, f, _} = call) do
      {_, m} = model(state, call)
      {m, if(f in [:post, :repost], do: next_id + 1, else: next_id)}
    end

    def postcondition(state, call, got), do: got == elem(model(state, call), 0)

    def property do
      import Strata.PropCheck

      forall(:proper_statem.commands(__MODULE__), fn commands ->
        Process.put(__MODULE__, Timeline.new(@opts))

        run_statem(__MODULE__, commands, fn {m, _} ->
          Enum.all?(0..7, &(read(&1, 2) == Model.timeline(m, &1))) and
            Timeline.stats(timeline()).large_authors == MapSet.size(m.large)
        end)
      end)
    end
  end

  test "random command sequences match the model, every page of every read (PropEr)" do
    Strata.PropCheck.check("timeline statem", Statem.property(), 300, 150)
  end

  @tag :tmp_dir
  test "kinds, mutes and blocks are journaled and snapshotted: a reopened timeline reads the same",
       %{tmp_dir: dir} do
    {:ok, tl} = Timeline.open_durable(dir, feed_capacity: 50, fanout_limit: 3)
    for u <- 1..6, v <- 1..6, u != v, do: Timeline.follow(tl, u, v)

    for id <- 1..40 do
      opts =
        case rem(id, 4) do
          0 -> [reply_to: {id - 1, rem(id, 6) + 1, 1, 1}]
          1 -> [quote_of: id - 1]
          _ -> []
        end

      Timeline.insert_post(tl, id, rem(id * 7, 6) + 1, opts)
    end

    :ok = Timeline.mute(tl, 1, 2)
    :ok = Timeline.block(tl, 3, 4)
    :ok = Timeline.block(tl, 5, 1)
    :ok = Timeline.unblock(tl, 5, 1)
    :already = Timeline.mute(tl, 1, 2)
    reads = fn tl -> for u <- 1..6, do: read_all(tl, u, 7) end
    before = reads.(tl)
    assert Enum.any?(before, &Enum.any?(&1, fn item -> Timeline.reply?(item) end))
    assert Timeline.close(tl) == :ok
    # Replayed from the journal alone, then from a snapshot.
    {:ok, tl} = Timeline.open_durable(dir)
    assert reads.(tl) == before
    assert Timeline.checkpoint(tl) == :ok
    assert Timeline.close(tl) == :ok
    {:ok, tl} = Timeline.open_durable(dir)
    assert reads.(tl) == before
    assert Timeline.unmute(tl, 1, 2) == :ok
    assert reads.(tl) != before
  end

  test "the cursor is stable under concurrent inserts" do
    tl = Timeline.new()
    Timeline.follow(tl, 1, 2)
    for id <- 1..30, do: Timeline.insert_post(tl, id, 2)
    {page1, cursor} = Timeline.get_timeline(tl, 1, limit: 10)
    for id <- 31..40, do: Timeline.insert_post(tl, id, 2)
    {page2, _} = Timeline.get_timeline(tl, 1, limit: 10, cursor: cursor)
    assert page1 == Enum.to_list(30..21//-1)
    assert page2 == Enum.to_list(20..11//-1)
  end

  test "many processes posting, following and reading end where the model does" do
    tl = Timeline.new(@opts)

    # Each process owns its users, so that the final state is the union of independent runs.
    tasks =
      for p <- 0..7 do
        Task.async(fn ->
          :rand.seed(:exsss, p)
          users = Enum.map(0..4, &(p * 10 + &1))

          {m, _} =
            Enum.reduce(1..300, {Model.new(@opts), p * 100_000}, fn _, {m, id} ->
              {a, b} = {Enum.random(users), Enum.random(users)}

              cond do
                a != b and :rand.uniform(3) == 1 ->
                  {_, m} = Model.follow(m, a, b)
                  Timeline.follow(tl, a, b)
                  {m, id}

                true ->
                  {_, m} = Model.insert_post(m, id, a)
                  Timeline.insert_post(tl, id, a)
                  Timeline.get_timeline(tl, b)
                  {m, id + 1}
              end
            end)

          {users, m}
        end)
      end

    for {users, m} <- Enum.map(tasks, &Task.await(&1, 30_000)), u <- users do
      assert read_all(tl, u, 100) == Model.timeline(m, u)
    end
  end

  test "a given follower map is shared" do
    map = FollowerMap.new()
    tl = Timeline.new(follower_map: map)
    Timeline.follow(tl, 1, 2)
    assert FollowerMap.follows?(map, 1, 2)
    assert Timeline.follower_map(tl) == map
  end

  test "bad input: ArgumentError for wrong types, errors for what can happen" do
    tl = Timeline.new()
    assert_raise ArgumentError, ~r/argument post_id/, fn -> Timeline.insert_post(tl, -1, 1) end

    assert_raise ArgumentError, ~r/argument author_id/, fn ->
      Timeline.insert_post(tl, 1, 2 ** 32)
    end

    assert_raise ArgumentError, ~r/argument author_id/, fn -> Timeline.insert_post(tl, 1, "x") end
    assert_raise ArgumentError, ~r/argument timeline/, fn -> Timeline.insert_post(:tl, 1, 1) end
    assert_raise ArgumentError, ~r/cannot follow itself/, fn -> Timeline.follow(tl, 3, 3) end

    assert_raise ArgumentError, ~r/option :limit/, fn ->
      Timeline.get_timeline(tl, 1, limit: 101)
    end

    # A page of none cannot say whether more items follow: refused, never a nil cursor.
    Timeline.insert_post(tl, 991, 2)

    assert_raise ArgumentError, ~r/option :limit/, fn ->
      Timeline.get_timeline(tl, 1, limit: 0)
    end

    assert_raise ArgumentError, ~r/argument opts/, fn -> Timeline.get_timeline(tl, 1, :x) end

    assert_raise ArgumentError, ~r/argument user_id/, fn -> Timeline.get_timeline(tl, -1) end

    assert_raise ArgumentError, ~r/argument feed_capacity/, fn ->
      Timeline.new(feed_capacity: 0)
    end

    assert Timeline.get_timeline(tl, 1, cursor: "not a cursor!") == {:error, :invalid_cursor}
    assert Timeline.get_timeline(tl, 1, cursor: 12) == {:error, :invalid_cursor}
    assert Timeline.get_timeline(tl, 777) == {[], nil}
    assert Timeline.insert_post(tl, 5, 1) == 1
    assert Timeline.insert_post(tl, 5, 1) == {:error, :duplicate_id}
    assert Timeline.insert_repost(tl, 6, 2, 99) == {:error, :unknown_post}
    assert Timeline.delete_repost(tl, 5) == {:error, :not_found}
    assert Timeline.delete_post(tl, 5) == :ok
    assert Timeline.delete_post(tl, 5) == {:error, :not_found}

    assert_raise ArgumentError, ~r/argument kind/, fn ->
      Timeline.insert_post(tl, 7, 1, reply_to: {1, 2})
    end

    assert_raise ArgumentError, ~r/argument kind/, fn ->
      Timeline.insert_post(tl, 7, 1, quote_of: -1)
    end

    assert_raise ArgumentError, ~r/reply_tO|unknown keys/, fn ->
      Timeline.insert_post(tl, 7, 1, reply_tO: {1, 2, 3, 4})
    end

    # Refused before anything was recorded: the id is still free.
    assert Timeline.insert_post(tl, 7, 1, quote_of: 5) == 1
    assert Timeline.insert_post(tl, 7, 1, quote_of: 5) == {:error, :duplicate_id}
    assert_raise ArgumentError, ~r/argument other_id/, fn -> Timeline.mute(tl, 1, :x) end
    assert_raise ArgumentError, ~r/argument user_id/, fn -> Timeline.block(tl, -1, 2) end
    assert_raise ArgumentError, ~r/argument members/, fn -> Timeline.list_feed(tl, :x) end
    assert_raise ArgumentError, ~r/argument members/, fn -> Timeline.list_feed(tl, [-1]) end

    assert_raise ArgumentError, ~r/at most 10000/, fn ->
      Timeline.list_feed(tl, Enum.to_list(1..10_001))
    end

    assert_raise ArgumentError, ~r/option :exclude_replies/, fn ->
      Timeline.get_timeline(tl, 1, exclude_replies: :yes)
    end

    assert_raise ArgumentError, ~r/argument filter/, fn ->
      Timeline.author_feed(tl, 1, viewer: "me")
    end

    assert Timeline.get_timeline(tl, 1, since: "bad") == {:error, :invalid_cursor}

    assert {[991, {:post, 7, %{quote_of: 5}}], nil} =
             Timeline.list_feed(tl, Enum.to_list(1..5000))

    assert Timeline.unmute(tl, 1, 2) == :not_muted
    assert Timeline.unblock(tl, 1, 2) == :not_blocked
  end

  @tag timeout: 300_000
  test "big backfills, unfollows and reads over many deletes never hold a normal scheduler" do
    tl = Timeline.new(feed_capacity: 100_000, backfill: 100_000, fanout_limit: 1_000_000)
    for i <- 1..100_000, do: Timeline.insert_post(tl, i, 2)
    for i <- 1..100_000, do: Timeline.insert_post(tl, 1_000_000 + i, 3)
    :ok = Timeline.follow(tl, 1, 3)

    fan_in = Timeline.new(fanout_limit: 0, feed_capacity: 100)
    for a <- 1..2000, do: Timeline.follow(fan_in, 99_999, a)

    for i <- 1..100_000 do
      Timeline.insert_post(fan_in, 10_000_000 + i, rem(i, 2000) + 1)
      Timeline.delete_post(fan_in, 10_000_000 + i)
    end

    reports =
      Strata.SchedulerCheck.long_schedules(fn ->
        :ok = Timeline.unfollow(tl, 1, 3)
        :ok = Timeline.follow(tl, 1, 2)
        {page, _} = Timeline.get_timeline(tl, 1, limit: 5)
        assert length(page) == 5
        assert {[], nil} = Timeline.get_timeline(fan_in, 99_999, limit: 100)
        # A feed of 100,000 items of a muted author: each read looks at a bounded number.
        :ok = Timeline.mute(tl, 1, 2)
        assert {[], cursor} = Timeline.get_timeline(tl, 1, limit: 5, exclude_quotes: true)
        assert is_binary(cursor)
        assert {[], _} = Timeline.author_feed(tl, 2, viewer: 1, exclude_replies: true)
      end)

    assert reports == []
    assert Timeline.stats(tl).feed_entries <= 2 * 100_000 + 100_000
  end
end
