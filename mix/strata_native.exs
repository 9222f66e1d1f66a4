# Builds or installs Strata's native library; loaded by mix.exs (these modules must exist
# before the project compiles, so they cannot live in lib/).

defmodule Strata.NativeArtifacts do
  @moduledoc """
  Precompiled native libraries, as rustler_precompiled names and checks them: an artifact is
  `libstrata_nif-v<version>-nif-<nif version>-<target>.so.tar.gz` holding the library under
  the same name without `.tar.gz`, and the checksum file `checksum-Elixir.Strata.Native.exs`
  at the project root maps each artifact's name to `"sha256:<hex>"`.
  """

  @nif_version "2.16"

  @doc "The checksum file of the project in `root`."
  def checksum_file(root), do: Path.join(root, "checksum-Elixir.Strata.Native.exs")

  @doc """
  The Rust target triple of the running system (`STRATA_NATIVE_TARGET` overrides it), from
  the VM's architecture string (`x86_64-pc-linux-gnu` -> `x86_64-unknown-linux-gnu`).
  """
  def target do
    System.get_env("STRATA_NATIVE_TARGET") ||
      target_of(List.to_string(:erlang.system_info(:system_architecture)))
  end

  @doc false
  def target_of(architecture) do
    [arch | rest] = String.split(architecture, "-")
    arch = if arch == "arm", do: "aarch64", else: arch

    cond do
      Enum.any?(rest, &String.starts_with?(&1, "linux")) ->
        abi = if String.contains?(architecture, "musl"), do: "musl", else: "gnu"
        "#{arch}-unknown-linux-#{abi}"

      Enum.any?(rest, &String.starts_with?(&1, "darwin")) ->
        "#{arch}-apple-darwin"

      Enum.any?(rest, &String.starts_with?(&1, "freebsd")) ->
        "#{arch}-unknown-freebsd"

      true ->
        architecture
    end
  end

  @doc "The artifact's file name for a version and target."
  def name(version, target),
    do: "libstrata_nif-v#{version}-nif-#{@nif_version}-#{target}.so.tar.gz"

  @doc "The checksums of the project in `root` (an empty map when it has no checksum file)."
  def checksums(root) do
    path = checksum_file(root)

    if File.regular?(path) do
      {map, _} = Code.eval_file(path)
      map
    else
      %{}
    end
  end

  @doc """
  Packs the library `lib` as the artifact of `version` for `target` in `out_dir`, and adds
  its checksum to the checksum file of the project in `root` (keeping the other targets').
  Returns the artifact's path.
  """
  def package(lib, out_dir, root, version, target) do
    name = name(version, target)
    inner = String.trim_trailing(name, ".tar.gz")
    File.mkdir_p!(out_dir)
    path = Path.join(out_dir, name)

    :ok =
      :erl_tar.create(String.to_charlist(path), [{String.to_charlist(inner), File.read!(lib)}], [
        :compressed
      ])

    checksums = Map.put(checksums(root), name, "sha256:" <> sha256(File.read!(path)))

    body =
      checksums
      |> Enum.sort()
      |> Enum.map_join(",\n", fn {k, v} -> "  #{inspect(k)} => #{inspect(v)}" end)

    File.write!(checksum_file(root), "%{\n" <> body <> "\n}\n")
    path
  end

  @doc """
  Installs the artifact of `version` for the running target from `source` (a directory, or
  a base URL fetched with OTP's `:httpc`) at `dest`, after checking its sha256 against the
  checksum file of the project in `root`. Returns `{:ok, checksum}` or `{:error, message}`
  where the message says what to do; `{:error, {:missing_target, message}}` when the checksum
  file lists no artifact for this target.
  """
  def install(source, dest, root, version) do
    target = target()
    name = name(version, target)

    with {:ok, expected} <- expected(root, name, target),
         {:ok, bytes} <- fetch(source, name),
         :ok <- verify(bytes, expected, name, source),
         {:ok, lib} <- unpack(bytes, String.trim_trailing(name, ".tar.gz")) do
      File.mkdir_p!(Path.dirname(dest))
      tmp = dest <> ".tmp"
      File.write!(tmp, lib)
      File.rename!(tmp, dest)
      {:ok, expected}
    end
  end

  defp expected(root, name, target) do
    case Map.fetch(checksums(root), name) do
      {:ok, checksum} ->
        {:ok, checksum}

      :error ->
        {:error,
         {:missing_target,
          "no precompiled Strata library for #{target} in #{checksum_file(root)} (looked for " <>
            "#{name}); build it from source with STRATA_NATIVE_FORCE_BUILD=1 (needs a Rust " <>
            "toolchain), or package one for this target with mix strata.native.package"}}
    end
  end

  defp fetch("http://" <> _ = base, name), do: http_get(base, name)
  defp fetch("https://" <> _ = base, name), do: http_get(base, name)

  defp fetch(dir, name) do
    path = Path.join(dir, name)

    case File.read(path) do
      {:ok, bytes} -> {:ok, bytes}
      {:error, reason} -> {:error, "could not read #{path}: #{:file.format_error(reason)}"}
    end
  end

  defp http_get(base, name) do
    {:ok, _} = Application.ensure_all_started(:inets)
    {:ok, _} = Application.ensure_all_started(:ssl)
    url = String.trim_trailing(base, "/") <> "/" <> name

    ssl = [
      verify: :verify_peer,
      cacerts: :public_key.cacerts_get(),
      customize_hostname_check: [match_fun: :public_key.pkix_verify_hostname_match_fun(:https)]
    ]

    request = {String.to_charlist(url), []}

    case :httpc.request(:get, request, [ssl: ssl, timeout: 120_000], body_format: :binary) do
      {:ok, {{_, 200, _}, _headers, body}} -> {:ok, body}
      {:ok, {{_, status, _}, _, _}} -> {:error, "could not fetch #{url}: HTTP #{status}"}
      {:error, reason} -> {:error, "could not fetch #{url}: #{inspect(reason)}"}
    end
  end

  defp verify(bytes, expected, name, source) do
    actual = "sha256:" <> sha256(bytes)

    if actual == expected do
      :ok
    else
      {:error,
       "checksum mismatch for #{name} from #{source}: the checksum file says #{expected}, the " <>
         "artifact is #{actual}. It is not the library this release was built with (a " <>
         "tampered or partial download, or a stale checksum file): refusing to install it. " <>
         "Fetch it again from a trusted location, or build from source with " <>
         "STRATA_NATIVE_FORCE_BUILD=1."}
    end
  end

  defp unpack(bytes, inner) do
    case :erl_tar.extract({:binary, bytes}, [:compressed, :memory]) do
      {:ok, files} ->
        case List.keyfind(files, String.to_charlist(inner), 0) do
          {_, lib} -> {:ok, lib}
          nil -> {:error, "the artifact holds no #{inner}"}
        end

      {:error, reason} ->
        {:error, "the artifact is not a gzipped tar: #{inspect(reason)}"}
    end
  end

  defp sha256(bytes), do: Base.encode16(:crypto.hash(:sha256, bytes), case: :lower)
end

defmodule Mix.Tasks.Compile.StrataNative do
  @moduledoc """
  Puts Strata's native library in `priv/native/`: installs a precompiled artifact when
  `STRATA_NATIVE_ARTIFACTS` says where they are, else builds it from `native/strata_nif`
  with cargo.

  Runs as the first of Strata's compilers, so plain `mix compile` (or compiling Strata as a
  dependency) does it. A source build reruns only when a file under `native/`, `Cargo.toml`
  or `Cargo.lock` is newer than the library, or the profile changed; an artifact is
  installed once (again only when its checksum changes).

  Environment:

    * `STRATA_NATIVE_ARTIFACTS` - a directory, or a base URL (`http(s)://...`, fetched with
      OTP's `:httpc`), holding the artifacts `mix strata.native.package` made. The artifact
      for the running target is checked against `checksum-Elixir.Strata.Native.exs` (sha256)
      and installed; cargo never runs. A wrong checksum is refused. When the checksum file
      lists no artifact for this target, the library is built from source if cargo is
      there, and otherwise the error says how to force a build.
    * `STRATA_NATIVE_FORCE_BUILD=1` - build from source even with `STRATA_NATIVE_ARTIFACTS`.
    * `STRATA_NATIVE_TARGET` - the target triple to install for (default: the running one).
    * `STRATA_NATIVE_PROFILE` - `release` (default) or `debug` (faster builds, slow code).
    * `STRATA_NATIVE_FORCE=1` - rebuild even when nothing changed.
    * `CARGO` - the cargo executable (default: `cargo` on the `PATH`, then `~/.cargo/bin`).
  """
  use Mix.Task.Compiler

  @root Path.expand("..", __DIR__)
  @lib "libstrata_nif.so"

  @doc "Where the library goes."
  def dest, do: Path.join([@root, "priv", "native", @lib])

  @impl true
  def run(_args) do
    source = System.get_env("STRATA_NATIVE_ARTIFACTS")
    forced = System.get_env("STRATA_NATIVE_FORCE_BUILD") in ["1", "true"]
    if source && !forced, do: install(source), else: build_if_stale()
  end

  defp install(source) do
    version = Mix.Project.config()[:version] || "0.0.0"
    stamp = dest() <> ".profile"

    case Strata.NativeArtifacts.install(source, dest() <> ".new", @root, version) do
      {:ok, checksum} ->
        if File.exists?(dest()) and File.read(stamp) == {:ok, "artifact " <> checksum} do
          File.rm(dest() <> ".new")
          {:noop, []}
        else
          File.rename!(dest() <> ".new", dest())
          File.write!(stamp, "artifact " <> checksum)
          Mix.shell().info("Installed Strata's precompiled native library (#{checksum})")
          {:ok, []}
        end

      {:error, {:missing_target, message}} ->
        if cargo(), do: Mix.shell().info(message <> "; building from source")
        if cargo(), do: build_if_stale(), else: Mix.raise(message)

      {:error, message} ->
        Mix.raise(message)
    end
  end

  defp build_if_stale do
    profile = profile!()
    stamp = dest() <> ".profile"

    if stale?(stamp, profile) do
      build(profile)
      File.write!(stamp, profile)
      {:ok, []}
    else
      {:noop, []}
    end
  end

  defp profile! do
    profile = System.get_env("STRATA_NATIVE_PROFILE", "release")

    unless profile in ["release", "debug"] do
      Mix.raise("STRATA_NATIVE_PROFILE must be release or debug, got: #{inspect(profile)}")
    end

    profile
  end

  defp stale?(stamp, profile) do
    System.get_env("STRATA_NATIVE_FORCE") in ["1", "true"] or
      not File.exists?(dest()) or
      File.read(stamp) != {:ok, profile} or
      newest_source() > mtime(dest())
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

  @doc "Builds the library with cargo and copies it to `priv/native/`; returns its path."
  def build(profile \\ "release") do
    cargo =
      cargo() ||
        Mix.raise(
          "cargo was not found: install Rust (https://rustup.rs) or set CARGO, then run " <>
            "mix compile (or set STRATA_NATIVE_ARTIFACTS to install a precompiled library)"
        )

    args =
      ["build", "-p", "strata_nif", "--locked"] ++
        if(profile == "release", do: ["--release"], else: [])

    Mix.shell().info("Compiling Strata's native library (cargo #{Enum.join(args, " ")})")

    case System.cmd(cargo, args, cd: @root, stderr_to_stdout: true, into: IO.stream()) do
      {_, 0} ->
        target = System.get_env("CARGO_TARGET_DIR", Path.join(@root, "target"))
        File.mkdir_p!(Path.dirname(dest()))
        # Copy to a temporary name and rename, so a running VM never sees a half-written file.
        tmp = dest() <> ".tmp"
        File.cp!(Path.join([target, profile, @lib]), tmp)
        File.rename!(tmp, dest())
        dest()

      {_, status} ->
        Mix.raise("cargo failed with exit status #{status} while building Strata's NIF")
    end
  end

  defp cargo do
    [System.get_env("CARGO"), System.find_executable("cargo"), Path.expand("~/.cargo/bin/cargo")]
    |> Enum.find(&(&1 && File.exists?(&1)))
  end
end
