defmodule Strata.DurabilityError do
  @moduledoc """
  Raised by a change to a durable structure that could not be made durable as its sync mode
  promises: the journal had already failed or was closed (nothing was changed in memory), or
  the write or fsync covering the change failed while its writer waited (the change is in
  memory but was never acknowledged).

  After either, the journal refuses every later change (a failed fsync is not retried on the
  same file); reopen the structure with `open_durable/2` to recover its acknowledged state.
  `reason` is the same term the `{:error, reason}` results carry (see `Strata.Durable`).
  """
  defexception [:message, :reason]

  @impl true
  def exception(opts) do
    reason = Keyword.fetch!(opts, :reason)

    message =
      Keyword.get_lazy(opts, :message, fn ->
        "the change was not made durable: #{inspect(reason)}"
      end)

    %__MODULE__{message: message, reason: reason}
  end
end
