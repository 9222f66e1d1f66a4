defmodule Strata.Native do
  @moduledoc false
  # NIF stubs, replaced when `priv/native/libstrata_nif.so` loads. If it does not load, every
  # stub raises an error that says why and what to run, instead of a bare :nif_not_loaded.

  @on_load :load_nif

  @doc false
  def load_nif do
    path = :filename.join(:code.priv_dir(:strata), ~c"native/libstrata_nif")

    case :erlang.load_nif(path, 0) do
      :ok ->
        :ok

      {:error, {reason, text}} ->
        message =
          "could not load Strata's native library #{path}.so (#{reason}: #{text}). " <>
            "It is missing or stale: run `mix compile` in the project (set " <>
            "STRATA_NATIVE_FORCE=1 to force a rebuild)."

        :persistent_term.put({__MODULE__, :load_error}, message)
        # Keep the module loaded so that calls raise this message.
        :ok
    end
  end

  defp not_loaded do
    message =
      :persistent_term.get(
        {__MODULE__, :load_error},
        "Strata's native library is not loaded: run `mix compile`"
      )

    :erlang.nif_error({:strata_not_loaded, message})
  end

  # Runtime
  def runtime_memory, do: not_loaded()
  def runtime_noop(_term), do: not_loaded()
  def runtime_malloc_in_use, do: not_loaded()
  def runtime_check_term(_term, _name), do: not_loaded()
  def runtime_check_term_dirty(_term, _name), do: not_loaded()

  # SortedSet (each `_dirty` twin is the call its normal one reschedules itself as, on a
  # dirty scheduler, when its terms are too heavy for a normal one)
  def sorted_set_new(_capacity, _bucket_size), do: not_loaded()
  def sorted_set_from_list(_list, _bucket_size), do: not_loaded()
  def sorted_set_from_sorted_list(_list, _bucket_size), do: not_loaded()
  def sorted_set_add(_set, _item), do: not_loaded()
  def sorted_set_add_dirty(_set, _item), do: not_loaded()
  def sorted_set_add_all(_set, _items), do: not_loaded()
  def sorted_set_add_all_dirty(_set, _items), do: not_loaded()
  def sorted_set_remove(_set, _item), do: not_loaded()
  def sorted_set_remove_dirty(_set, _item), do: not_loaded()
  def sorted_set_update(_set, _old, _new), do: not_loaded()
  def sorted_set_update_dirty(_set, _old, _new), do: not_loaded()
  def sorted_set_size(_set), do: not_loaded()
  def sorted_set_member(_set, _item), do: not_loaded()
  def sorted_set_member_dirty(_set, _item), do: not_loaded()
  def sorted_set_find_index(_set, _item), do: not_loaded()
  def sorted_set_find_index_dirty(_set, _item), do: not_loaded()
  def sorted_set_rank(_set, _item), do: not_loaded()
  def sorted_set_rank_dirty(_set, _item), do: not_loaded()
  def sorted_set_at(_set, _index), do: not_loaded()
  def sorted_set_at_dirty(_set, _index), do: not_loaded()
  def sorted_set_at_many(_set, _indices, _default), do: not_loaded()
  def sorted_set_at_many_dirty(_set, _indices, _default), do: not_loaded()
  def sorted_set_first(_set), do: not_loaded()
  def sorted_set_first_dirty(_set), do: not_loaded()
  def sorted_set_last(_set), do: not_loaded()
  def sorted_set_last_dirty(_set), do: not_loaded()
  def sorted_set_slice(_set, _start, _amount), do: not_loaded()
  def sorted_set_slice_dirty(_set, _start, _amount), do: not_loaded()
  def sorted_set_range(_set, _min, _max, _limit), do: not_loaded()
  def sorted_set_range_dirty(_set, _min, _max, _limit), do: not_loaded()
  def sorted_set_memory(_set), do: not_loaded()
  def sorted_set_debug(_set), do: not_loaded()
  def sorted_set_check(_set), do: not_loaded()
  def sorted_set_dump(_set), do: not_loaded()
  def sorted_set_load(_bytes), do: not_loaded()
  def sorted_set_save(_set, _path), do: not_loaded()
  def sorted_set_open(_path), do: not_loaded()
  def sorted_set_checkpoint(_set), do: not_loaded()
  def sorted_set_recover(_dir, _sync, _bucket_size), do: not_loaded()

  # FollowerMap
  def follower_map_new, do: not_loaded()
  def follower_map_follow(_map, _follower, _followee), do: not_loaded()
  def follower_map_unfollow(_map, _follower, _followee), do: not_loaded()
  def follower_map_follows(_map, _follower, _followee), do: not_loaded()
  def follower_map_follow_many(_map, _edges), do: not_loaded()
  def follower_map_follow_packed(_map, _edges), do: not_loaded()
  def follower_map_follower_count(_map, _user), do: not_loaded()
  def follower_map_following_count(_map, _user), do: not_loaded()
  def follower_map_followers(_map, _user, _after, _limit), do: not_loaded()
  def follower_map_following(_map, _user, _after, _limit), do: not_loaded()
  def follower_map_known_followers(_map, _viewer, _target, _after, _limit), do: not_loaded()
  def follower_map_mutuals(_map, _user, _after, _limit), do: not_loaded()
  def follower_map_common_following(_map, _a, _b, _after, _limit), do: not_loaded()
  def follower_map_info(_map), do: not_loaded()
  def follower_map_dump(_map), do: not_loaded()
  def follower_map_load(_bytes), do: not_loaded()
  def follower_map_save(_map, _path), do: not_loaded()
  def follower_map_open(_path), do: not_loaded()
  def follower_map_checkpoint(_map), do: not_loaded()
  def follower_map_recover(_dir, _sync), do: not_loaded()

  # Interner
  def interner_new, do: not_loaded()
  def interner_intern(_interner, _key), do: not_loaded()
  def interner_lookup(_interner, _key), do: not_loaded()
  def interner_key(_interner, _id), do: not_loaded()
  def interner_info(_interner), do: not_loaded()
  def interner_dump(_interner), do: not_loaded()
  def interner_load(_bytes), do: not_loaded()
  def interner_save(_interner, _path), do: not_loaded()
  def interner_open(_path), do: not_loaded()
  def interner_checkpoint(_interner), do: not_loaded()
  def interner_recover(_dir, _sync), do: not_loaded()

  # Timeline
  def timeline_new(_map, _feed_capacity, _fanout_limit, _backfill), do: not_loaded()
  def timeline_insert_post(_tl, _post, _author, _kind), do: not_loaded()
  def timeline_insert_post_dirty(_tl, _post, _author, _kind), do: not_loaded()
  def timeline_relate(_tl, _relation, _user, _other, _on), do: not_loaded()
  def timeline_insert_repost(_tl, _repost, _reposter, _post), do: not_loaded()
  def timeline_insert_repost_dirty(_tl, _repost, _reposter, _post), do: not_loaded()
  def timeline_delete_post(_tl, _post), do: not_loaded()
  def timeline_delete_repost(_tl, _repost), do: not_loaded()
  def timeline_follow(_tl, _follower, _followee), do: not_loaded()
  def timeline_follow_dirty(_tl, _follower, _followee), do: not_loaded()
  def timeline_unfollow(_tl, _follower, _followee), do: not_loaded()
  def timeline_unfollow_dirty(_tl, _follower, _followee), do: not_loaded()
  def timeline_read(_tl, _user, _before, _limit, _filter), do: not_loaded()
  def timeline_author_feed(_tl, _author, _before, _limit, _filter), do: not_loaded()
  def timeline_list_feed(_tl, _members, _before, _limit, _filter), do: not_loaded()
  def timeline_list_feed_dirty(_tl, _members, _before, _limit, _filter), do: not_loaded()

  def timeline_info(_tl), do: not_loaded()
  def timeline_dump(_tl), do: not_loaded()
  def timeline_load(_bytes), do: not_loaded()
  def timeline_save(_tl, _path), do: not_loaded()
  def timeline_open(_path), do: not_loaded()
  def timeline_checkpoint(_tl), do: not_loaded()
  def timeline_recover(_dir, _sync, _feed_capacity, _fanout_limit, _backfill), do: not_loaded()
  def timeline_deliver(_tl, _id, _by, _repost_of, _here, _followers), do: not_loaded()
  def timeline_deliver_dirty(_tl, _id, _by, _repost_of, _here, _followers), do: not_loaded()
  def timeline_follow_edge(_tl, _follower, _followee), do: not_loaded()
  def timeline_has_item(_tl, _id), do: not_loaded()
  def timeline_feed_users(_tl), do: not_loaded()
  def timeline_take_feeds(_tl, _users), do: not_loaded()
  def timeline_merge_feed(_tl, _user, _ids), do: not_loaded()

  # Durable tier
  def journal_ack(_journal), do: not_loaded()
  def journal_sync(_journal), do: not_loaded()
  def journal_close(_journal), do: not_loaded()
  def journal_report_fsyncs(_pid), do: not_loaded()
  def journal_append_raw(_journal, _record), do: not_loaded()

  # MemberList
  def member_list_new(_groups, _bucket_size), do: not_loaded()
  def member_list_recover(_dir, _sync, _groups, _bucket_size), do: not_loaded()
  def member_list_upsert(_list, _member), do: not_loaded()
  def member_list_upsert_dirty(_list, _member), do: not_loaded()
  def member_list_remove(_list, _id), do: not_loaded()
  def member_list_remove_dirty(_list, _id), do: not_loaded()
  def member_list_define_groups(_list, _groups), do: not_loaded()
  def member_list_batch(_list, _mutations), do: not_loaded()
  def member_list_batch_dirty(_list, _mutations), do: not_loaded()
  def member_list_deliver(_outbox, _id, _send, _acc, _current), do: not_loaded()
  def member_list_subscribe(_list, _subscriber, _ranges), do: not_loaded()
  def member_list_subscribe_dirty(_list, _subscriber, _ranges), do: not_loaded()
  def member_list_unsubscribe(_list, _subscriber), do: not_loaded()
  def member_list_slice(_list, _first, _last), do: not_loaded()
  def member_list_slice_dirty(_list, _first, _last), do: not_loaded()
  def member_list_index_of(_list, _id), do: not_loaded()
  def member_list_size(_list), do: not_loaded()
  def member_list_group_counts(_list), do: not_loaded()
  def member_list_info(_list), do: not_loaded()
  def member_list_dump(_list), do: not_loaded()
  def member_list_load(_bytes), do: not_loaded()
  def member_list_save(_list, _path), do: not_loaded()
  def member_list_open(_path), do: not_loaded()
  def member_list_checkpoint(_list), do: not_loaded()
end
