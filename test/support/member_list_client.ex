defmodule Strata.MemberListClient do
  @moduledoc false
  # A client of the lazy member list, as a Discord client holds it: a sparse copy of the list
  # that keeps only the positions inside its subscribed ranges, and applies ops exactly as
  # they say (an insert shifts later positions up, a delete shifts them down, a sync replaces
  # a range, an update replaces one position).

  defstruct ranges: [], items: %{}, ops: 0

  def new(ranges), do: %__MODULE__{ranges: ranges}

  def apply_ops(client, ops), do: Enum.reduce(ops, client, &apply_op/2)

  defp apply_op({:sync, first..last//1, items}, c) do
    kept = Map.reject(c.items, fn {p, _} -> p >= first and p <= last end)
    synced = items |> Enum.with_index(first) |> Map.new(fn {item, p} -> {p, item} end)
    trim(%{c | items: Map.merge(kept, synced), ops: c.ops + 1})
  end

  defp apply_op({:insert, i, item}, c) do
    shifted = Map.new(c.items, fn {p, x} -> if p >= i, do: {p + 1, x}, else: {p, x} end)
    trim(%{c | items: Map.put(shifted, i, item), ops: c.ops + 1})
  end

  defp apply_op({:delete, i}, c) do
    shifted =
      c.items
      |> Map.delete(i)
      |> Map.new(fn {p, x} -> if p > i, do: {p - 1, x}, else: {p, x} end)

    trim(%{c | items: shifted, ops: c.ops + 1})
  end

  defp apply_op({:update, i, item}, c),
    do: trim(%{c | items: Map.put(c.items, i, item), ops: c.ops + 1})

  defp apply_op({:invalidate, first..last//1}, c) do
    %{c | items: Map.reject(c.items, fn {p, _} -> p >= first and p <= last end), ops: c.ops + 1}
  end

  defp apply_op({:groups, counts}, c) when is_list(counts), do: c

  defp trim(c) do
    %{c | items: Map.filter(c.items, fn {p, _} -> Enum.any?(c.ranges, &(p in &1)) end)}
  end

  @doc "What the client shows for `range`: the items it holds there, in order."
  def window(c, range) do
    for p <- range, Map.has_key?(c.items, p), do: c.items[p]
  end

  @doc "The positions it holds in `range`."
  def positions(c, range), do: for(p <- range, Map.has_key?(c.items, p), do: p)
end
