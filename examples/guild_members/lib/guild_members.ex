defmodule GuildMembers do
  @moduledoc """
  A tiny guild member list on `Strata.SortedSet`: members sort by role priority, then name,
  then id, and every join or leave says at which row of the list it lands, which is what a
  client showing rows 0..99 needs to know.
  """

  alias Strata.SortedSet

  @type member :: {priority :: integer(), name :: String.t(), id :: pos_integer()}

  @doc "An empty member list."
  @spec new() :: SortedSet.t()
  def new, do: SortedSet.new(bucket_size: 64)

  @doc "A member joins; returns the row it appears at."
  @spec join(SortedSet.t(), member()) :: non_neg_integer() | nil
  def join(list, member), do: list |> SortedSet.index_add(member) |> elem(0)

  @doc "A member leaves; returns the row it had."
  @spec leave(SortedSet.t(), member()) :: non_neg_integer() | nil
  def leave(list, member), do: list |> SortedSet.index_remove(member) |> elem(0)

  @doc "The rows a client sees, from `first` to `last`."
  @spec window(SortedSet.t(), non_neg_integer(), non_neg_integer()) :: [member()]
  def window(list, first, last), do: SortedSet.slice(list, first, last - first + 1)
end
