defmodule Strata.Telemetry.Reporter do
  @moduledoc """
  Turns the native shared writer's fsync reports into `[:strata, :journal, :fsync]` events
  (see `Strata.Telemetry`). Started by Strata's application; the writer threads cannot call
  Elixir, so they send this process a message after each fsync, and it emits the event (or
  drops the message when telemetry is absent).
  """
  use GenServer

  @doc false
  def start_link(opts), do: GenServer.start_link(__MODULE__, opts, name: __MODULE__)

  @impl true
  def init(_opts) do
    Strata.Native.journal_report_fsyncs(self())
    {:ok, nil}
  end

  @impl true
  def handle_info({:strata_fsync, dir, kind, nanoseconds, records, bytes}, state) do
    duration = System.convert_time_unit(nanoseconds, :nanosecond, :native)

    Strata.Telemetry.execute(
      [:strata, :journal, :fsync],
      %{duration: duration, records: records, bytes: bytes},
      %{dir: dir, kind: kind}
    )

    {:noreply, state}
  end
end
