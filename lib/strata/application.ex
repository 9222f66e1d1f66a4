defmodule Strata.Application do
  @moduledoc false
  # Strata's one process: the reporter of journal fsyncs for telemetry.
  use Application

  @impl true
  def start(_type, _args) do
    Supervisor.start_link([Strata.Telemetry.Reporter],
      strategy: :one_for_one,
      name: Strata.Supervisor
    )
  end
end
