defmodule Strata.Telemetry do
  @moduledoc """
  `:telemetry` events, emitted when the `:telemetry` library is loaded and not at all when it
  is absent: Strata does not depend on it (add `{:telemetry, "~> 1.0"}` to your own deps to
  get them). Names and measurements follow Ecto's, Finch's and Broadway's conventions: a
  span is `[..., :start]` (measurements `system_time`, `monotonic_time`), then `[..., :stop]`
  (`duration`, `monotonic_time`) or `[..., :exception]` (`duration`; metadata adds `kind`,
  `reason`, `stacktrace`); durations are in `:native` time units
  (`System.convert_time_unit/3`).

  | event | measurements | metadata |
  |---|---|---|
  | `[:strata, :checkpoint, :start \\| :stop \\| :exception]` | span | `structure` (the module), `handle`; `:stop` adds `result` |
  | `[:strata, :recovery, :start \\| :stop \\| :exception]` | span; `:stop` adds `replayed` (journal records) | `structure`, `dir`; `:stop` adds `result` (`:ok` or `{:error, reason}`) and `snapshot` (the generation recovered from) |
  | `[:strata, :snapshot, :save \\| :open \\| :dump \\| :load, :start \\| :stop \\| :exception]` | span; `:stop` of `:dump` and `:load` adds `bytes` | `structure`; `path` for `:save` and `:open`; `:stop` adds `result` |
  | `[:strata, :journal, :fsync]` | `duration`, `records` (made durable by this fsync), `bytes` | `dir`, `kind` (`:sorted_set`, `:follower_map`, `:interner`, `:timeline`, `:member_list`) |
  | `[:strata, :timeline, :fanout]` | `duration`, `feeds` (the feeds the item entered) | `timeline`, `author`, `item`; only for items entering at least #{1000} feeds |
  | `[:strata, :member_list, :batch, :start \\| :stop \\| :exception]` | span; `:stop` adds `subscribers` (those its ops were returned to: with `delivery: :send`, the non-pid ones) | `list` (its id), `mutations` |
  | `[:strata, :cluster, :join \\| :handoff \\| :takeover, :start \\| :stop \\| :exception]` | span; `:stop` of `:handoff` and `:takeover` adds `users` (feeds moved) | `cluster`, `node`; `:handoff` adds `to` (the nodes), `:takeover` adds `dead` (the node taken over) |

  A handler runs in the process that made the call (for `[:strata, :journal, :fsync]`, in
  `Strata.Telemetry.Reporter`, which receives the native writer's reports), so keep it short.

      iex> Strata.Telemetry.span([:strata, :example], %{structure: Strata.SortedSet}, fn -> {:done, %{}, %{}} end)
      :done
  """

  @doc """
  Whether events are emitted (the `:telemetry` module could be loaded). Decided once, at the
  first event.
  """
  @spec enabled?() :: boolean()
  def enabled? do
    case :persistent_term.get(__MODULE__, nil) do
      nil ->
        enabled = Code.ensure_loaded?(:telemetry) and function_exported?(:telemetry, :execute, 3)
        :persistent_term.put(__MODULE__, enabled)
        enabled

      enabled ->
        enabled
    end
  end

  @doc "Emits `event` when telemetry is enabled; does nothing otherwise."
  @spec execute([atom()], map(), map()) :: :ok
  def execute(event, measurements, metadata) do
    if enabled?(), do: apply(:telemetry, :execute, [event, measurements, metadata])
    :ok
  end

  @doc """
  Runs `fun` as a span named `prefix` (`:start`, then `:stop` or `:exception`): `fun` returns
  `{result, measurements, metadata}`, which the `:stop` event adds to its own, and `span/3`
  returns `result`. Without telemetry, runs `fun` and nothing else.
  """
  @spec span([atom()], map(), (() -> {result, map(), map()})) :: result when result: term()
  def span(prefix, metadata, fun) do
    if enabled?() do
      start = System.monotonic_time()

      execute(
        prefix ++ [:start],
        %{system_time: System.system_time(), monotonic_time: start},
        metadata
      )

      try do
        {result, measurements, more} = fun.()
        stop = System.monotonic_time()
        measurements = Map.merge(%{duration: stop - start, monotonic_time: stop}, measurements)
        execute(prefix ++ [:stop], measurements, Map.merge(metadata, more))
        result
      catch
        kind, reason ->
          stop = System.monotonic_time()
          meta = Map.merge(metadata, %{kind: kind, reason: reason, stacktrace: __STACKTRACE__})
          execute(prefix ++ [:exception], %{duration: stop - start, monotonic_time: stop}, meta)
          :erlang.raise(kind, reason, __STACKTRACE__)
      end
    else
      {result, _measurements, _metadata} = fun.()
      result
    end
  end

  @doc false
  # What most spans return: the result, and `result:` (`:ok` or the error) in the metadata.
  def result(result), do: {result, %{}, %{result: outcome(result)}}

  defp outcome({:ok, _}), do: :ok
  defp outcome({:error, _} = error), do: error
  defp outcome(other), do: other
end
