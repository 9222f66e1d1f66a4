defmodule Strata.Options do
  @moduledoc false
  # Option lists checked the same way everywhere: anything but a keyword list, an unknown
  # key or a value of the wrong kind raises ArgumentError naming it.

  @doc "`Keyword.validate!/2`, but a non-list raises `ArgumentError` too."
  @spec validate!(term(), keyword() | [atom()]) :: keyword()
  def validate!(opts, defaults) when is_list(opts) do
    if Enum.all?(opts, &match?({k, _} when is_atom(k), &1)) do
      Keyword.validate!(opts, defaults)
    else
      raise ArgumentError, "argument opts: expected a keyword list, got: #{inspect(opts)}"
    end
  end

  def validate!(opts, _defaults) do
    raise ArgumentError, "argument opts: expected a keyword list, got: #{inspect(opts)}"
  end

  @doc "Raises `ArgumentError` unless `value` is a boolean."
  @spec boolean!(term(), atom()) :: boolean()
  def boolean!(value, _name) when is_boolean(value), do: value

  def boolean!(value, name) do
    raise ArgumentError, "option #{inspect(name)}: expected a boolean, got: #{inspect(value)}"
  end
end
