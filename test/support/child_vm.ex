defmodule Strata.ChildVM do
  @moduledoc false
  # Runs Elixir code in a separate OS process that loads Strata, optionally under
  # `ulimit -v` (KiB of address space), so that a test of a memory bomb or a crash cannot
  # take the test VM down. Returns `{output, exit_status}`.

  def run(code, opts \\ []) do
    ebin = Path.join(:code.lib_dir(:strata), "ebin")
    elixir = System.find_executable("elixir")
    limit = Keyword.get(opts, :ulimit_kb)
    ulimit = if limit, do: "ulimit -v #{limit}; ", else: ""

    script =
      Path.join(System.tmp_dir!(), "strata-child-#{System.unique_integer([:positive])}.exs")

    File.write!(script, code)

    try do
      System.cmd("bash", ["-c", ~s(#{ulimit}exec "$0" -pa "$1" "$2"), elixir, ebin, script],
        stderr_to_stdout: true,
        env: Keyword.get(opts, :env, [])
      )
    after
      File.rm(script)
    end
  end
end
