defmodule :telemetry do
  @moduledoc false
  # A stand-in for the :telemetry library, which hex would bring and this machine cannot
  # reach: attach_many/4, detach/1 and execute/3 with telemetry's semantics (handlers run in
  # the caller, in attach order). Loaded by test_helper.exs into the test VM only (and pushed
  # to peer nodes by the tests that need it), never compiled into Strata's ebin, so that a
  # child VM sees Strata without telemetry.

  def attach_many(id, events, fun, config) do
    handlers = :persistent_term.get(__MODULE__, [])

    if List.keymember?(handlers, id, 0) do
      {:error, :already_exists}
    else
      :persistent_term.put(__MODULE__, handlers ++ [{id, events, fun, config}])
      :ok
    end
  end

  def detach(id) do
    :persistent_term.put(__MODULE__, List.keydelete(:persistent_term.get(__MODULE__, []), id, 0))
    :ok
  end

  def execute(event, measurements, metadata) do
    for {_id, events, fun, config} <- :persistent_term.get(__MODULE__, []), event in events do
      fun.(event, measurements, metadata, config)
    end

    :ok
  end
end
