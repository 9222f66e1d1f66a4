defmodule Mix.Tasks.Strata.Native.Package do
  @shortdoc "Builds Strata's native library as a precompiled artifact"
  @moduledoc """
  Builds Strata's native library (release profile) and packs it as the precompiled artifact
  of this machine's target, the way rustler_precompiled names them:

      mix strata.native.package DIR

  writes `DIR/libstrata_nif-v<version>-nif-2.16-<target>.so.tar.gz` and adds its sha256 to
  `checksum-Elixir.Strata.Native.exs` at the project root (keeping other targets' lines), the
  file a package carries. Run it on each target (`STRATA_NATIVE_TARGET` names the target of a
  cross-build's library), publish `DIR`, and point users' `STRATA_NATIVE_ARTIFACTS` at it
  (see `Mix.Tasks.Compile.StrataNative`).
  """
  use Mix.Task

  @impl true
  def run([dir]) do
    lib = Mix.Tasks.Compile.StrataNative.build("release")
    root = Path.dirname(Mix.Project.project_file())
    version = Mix.Project.config()[:version]
    target = Strata.NativeArtifacts.target()
    path = Strata.NativeArtifacts.package(lib, dir, root, version, target)

    Mix.shell().info(
      "Wrote #{path} and its checksum in #{Strata.NativeArtifacts.checksum_file(root)}"
    )
  end

  def run(_args), do: Mix.raise("usage: mix strata.native.package DIR")
end
