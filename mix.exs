defmodule Mix.Tasks.Compile.StrataNative do
  @moduledoc """
  Builds the Rust NIF (`native/strata_nif`) with cargo and copies it to `priv/native/`.

  Runs as the first of Strata's compilers, so plain `mix compile` (or compiling Strata as a
  dependency) builds it. It rebuilds only when a file under `native/`, `Cargo.toml` or
  `Cargo.lock` is newer than the library in `priv/native/`, or the profile changed.

  Environment:

    * `STRATA_NATIVE_PROFILE` - `release` (default) or `debug` (faster builds, slow code).
    * `STRATA_NATIVE_FORCE=1` - rebuild even when nothing changed.
    * `CARGO` - the cargo executable (default: `cargo` on the `PATH`, then `~/.cargo/bin`).
  """
  use Mix.Task.Compiler

  @root __DIR__
  @lib "libstrata_nif.so"

  @impl true
  def run(_args) do
    profile = System.get_env("STRATA_NATIVE_PROFILE", "release")

    unless profile in ["release", "debug"] do
      Mix.raise("STRATA_NATIVE_PROFILE must be release or debug, got: #{inspect(profile)}")
    end

    dest = Path.join([@root, "priv", "native", @lib])
    stamp = dest <> ".profile"

    if stale?(dest, stamp, profile) do
      build(profile, dest, stamp)
    else
      {:noop, []}
    end
  end

  defp stale?(dest, stamp, profile) do
    System.get_env("STRATA_NATIVE_FORCE") in ["1", "true"] or
      not File.exists?(dest) or
      File.read(stamp) != {:ok, profile} or
      newest_source() > mtime(dest)
  end

  defp newest_source do
    ["Cargo.toml", "Cargo.lock", "native/*/Cargo.toml", "native/*/src/**/*.rs"]
    |> Enum.flat_map(&Path.wildcard(Path.join(@root, &1)))
    |> Enum.map(&mtime/1)
    |> Enum.max(fn -> 0 end)
  end

  defp mtime(path) do
    case File.stat(path, time: :posix) do
      {:ok, %{mtime: mtime}} -> mtime
      {:error, _} -> 0
    end
  end

  defp build(profile, dest, stamp) do
    cargo = cargo!()

    args =
      ["build", "-p", "strata_nif", "--locked"] ++
        if(profile == "release", do: ["--release"], else: [])

    Mix.shell().info("Compiling Strata's native library (cargo #{Enum.join(args, " ")})")

    case System.cmd(cargo, args, cd: @root, stderr_to_stdout: true, into: IO.stream()) do
      {_, 0} ->
        target = System.get_env("CARGO_TARGET_DIR", Path.join(@root, "target"))
        File.mkdir_p!(Path.dirname(dest))
        # Copy to a temporary name and rename, so a running VM never sees a half-written file.
        tmp = dest <> ".tmp"
        File.cp!(Path.join([target, profile, @lib]), tmp)
        File.rename!(tmp, dest)
        File.write!(stamp, profile)
        {:ok, []}

      {_, status} ->
        Mix.raise("cargo failed with exit status #{status} while building Strata's NIF")
    end
  end

  defp cargo! do
    candidates = [
      System.get_env("CARGO"),
      System.find_executable("cargo"),
      Path.expand("~/.cargo/bin/cargo")
    ]

    Enum.find(candidates, &(&1 && File.exists?(&1))) ||
      Mix.raise(
        "cargo was not found: install Rust (https://rustup.rs) or set CARGO, then run mix compile"
      )
  end
end

defmodule Strata.MixProject do
  use Mix.Project

  def project do
    [
      app: :strata,
      version: "0.1.0",
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      compilers: [:strata_native | Mix.compilers()],
      elixirc_paths: elixirc_paths(Mix.env()),
      deps: [],
      # PropEr and :telemetry are used when present, never required.
      xref: [exclude: [:proper, :proper_types, :proper_statem, :telemetry]],
      description: "Mutable, index-reporting data structures for BEAM services, in Rust.",
      docs: [main: "readme", extras: ["README.md"]]
    ]
  end

  def application do
    [mod: {Strata.Application, []}, extra_applications: [:logger]]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end
