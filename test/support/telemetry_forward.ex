defmodule Strata.TelemetryForward do
  @moduledoc false
  # A telemetry handler that exists on every node of the tests (it is in Strata's test
  # ebin): sends each event to the process given as the handler's config.
  def handle(event, measurements, metadata, pid),
    do: send(pid, {:telemetry_event, node(), event, measurements, metadata})
end
