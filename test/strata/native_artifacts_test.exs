defmodule Strata.NativeArtifactsTest do
  # Precompiled native libraries: packaged as rustler_precompiled names them, installed by
  # the compiler after a sha256 check (from a directory or over HTTP), never running cargo.
  use ExUnit.Case, async: false

  alias Strata.NativeArtifacts

  @moduletag :tmp_dir
  @moduletag timeout: 600_000

  @version Mix.Project.config()[:version]

  # Packs the library this test run loaded as this target's artifact into `dir`, with its
  # checksum in `root`'s checksum file.
  defp package(dir, root) do
    lib = Mix.Tasks.Compile.StrataNative.dest()
    NativeArtifacts.package(lib, dir, root, @version, NativeArtifacts.target())
  end

  defp artifact_name, do: NativeArtifacts.name(@version, NativeArtifacts.target())

  test "names follow rustler_precompiled's, for the running target" do
    assert NativeArtifacts.target_of("x86_64-pc-linux-gnu") == "x86_64-unknown-linux-gnu"
    assert NativeArtifacts.target_of("aarch64-unknown-linux-musl") == "aarch64-unknown-linux-musl"
    assert NativeArtifacts.target_of("aarch64-apple-darwin23.1.0") == "aarch64-apple-darwin"

    assert NativeArtifacts.name("0.1.0", "x86_64-unknown-linux-gnu") ==
             "libstrata_nif-v0.1.0-nif-2.16-x86_64-unknown-linux-gnu.so.tar.gz"
  end

  test "installs from a directory and over HTTP after checking the checksum", %{tmp_dir: tmp} do
    artifacts = Path.join(tmp, "artifacts")
    path = package(artifacts, tmp)
    lib = File.read!(Mix.Tasks.Compile.StrataNative.dest())

    assert {:ok, "sha256:" <> _} =
             NativeArtifacts.install(artifacts, Path.join(tmp, "a.so"), tmp, @version)

    assert File.read!(Path.join(tmp, "a.so")) == lib

    # The same from OTP's own HTTP server on loopback.
    :inets.start()

    {:ok, httpd} =
      :inets.start(:httpd,
        port: 0,
        bind_address: {127, 0, 0, 1},
        server_name: ~c"strata-test",
        server_root: String.to_charlist(tmp),
        document_root: String.to_charlist(artifacts)
      )

    on_exit(fn -> :inets.stop(:httpd, httpd) end)
    port = :httpd.info(httpd)[:port]
    url = "http://127.0.0.1:#{port}"
    assert {:ok, _} = NativeArtifacts.install(url, Path.join(tmp, "b.so"), tmp, @version)
    assert File.read!(Path.join(tmp, "b.so")) == lib

    # Tampered: one byte changed.
    bytes = File.read!(path)
    <<head::binary-size(1000), b, rest::binary>> = bytes
    File.write!(path, head <> <<Bitwise.bxor(b, 1)>> <> rest)

    for source <- [artifacts, url] do
      assert {:error, message} =
               NativeArtifacts.install(source, Path.join(tmp, "c.so"), tmp, @version)

      assert message =~ "checksum mismatch" and message =~ "STRATA_NATIVE_FORCE_BUILD=1"
      refute File.exists?(Path.join(tmp, "c.so"))
    end

    # Missing: an artifact not there, and a target the checksum file does not list.
    File.rm!(path)

    assert {:error, "could not read " <> _} =
             NativeArtifacts.install(artifacts, Path.join(tmp, "d.so"), tmp, @version)

    assert {:error, "could not fetch " <> _} =
             NativeArtifacts.install(url, Path.join(tmp, "d.so"), tmp, @version)

    File.write!(NativeArtifacts.checksum_file(tmp), "%{}\n")

    assert {:error, {:missing_target, message}} =
             NativeArtifacts.install(artifacts, Path.join(tmp, "d.so"), tmp, @version)

    assert message =~ artifact_name() and message =~ "STRATA_NATIVE_FORCE_BUILD=1"
  end

  # A fresh clone of this repository with nothing built, run with no cargo to be found.
  defp clone(tmp) do
    root = Path.expand("../..", __DIR__)
    clone = Path.join(tmp, "clone")
    {_, 0} = System.cmd("git", ["clone", "--quiet", root, clone], stderr_to_stdout: true)
    clone
  end

  defp mix_without_cargo(clone, tmp, args, env) do
    home = Path.join(tmp, "home")
    File.mkdir_p!(home)

    env =
      [
        {"PATH", "/usr/local/bin:/usr/bin:/bin"},
        {"HOME", home},
        {"MIX_HOME", Path.join(home, ".mix")},
        {"CARGO", nil},
        {"CARGO_HOME", nil},
        {"RUSTUP_HOME", nil},
        {"MIX_ENV", "test"}
      ] ++ env

    System.cmd(System.find_executable("mix"), args, cd: clone, env: env, stderr_to_stdout: true)
  end

  @tag :clean_clone
  test "a clean clone with the checksum file and no cargo compiles from artifacts and passes its tests",
       %{tmp_dir: tmp} do
    clone = clone(tmp)
    artifacts = Path.join(tmp, "artifacts")
    path = package(artifacts, clone)
    assert :os.find_executable(~c"cargo", ~c"/usr/local/bin:/usr/bin:/bin") == false

    {output, status} =
      mix_without_cargo(clone, tmp, ["test", "test/strata/interner_test.exs"], [
        {"STRATA_NATIVE_ARTIFACTS", artifacts}
      ])

    assert status == 0, output
    assert output =~ "Installed Strata's precompiled native library"
    assert output =~ "0 failures"
    refute File.exists?(Path.join(clone, "target")), "cargo ran"

    # A tampered artifact is refused, saying what to do.
    bytes = File.read!(path)
    File.write!(path, binary_part(bytes, 0, byte_size(bytes) - 10) <> :binary.copy(<<0>>, 10))

    {output, status} =
      mix_without_cargo(clone, tmp, ["compile"], [{"STRATA_NATIVE_ARTIFACTS", artifacts}])

    assert status != 0 and output =~ "checksum mismatch", output

    # No artifact for this target and no cargo: the error says how to force a build.
    File.write!(NativeArtifacts.checksum_file(clone), "%{}\n")

    {output, status} =
      mix_without_cargo(clone, tmp, ["compile"], [{"STRATA_NATIVE_ARTIFACTS", artifacts}])

    assert status != 0 and output =~ "STRATA_NATIVE_FORCE_BUILD=1", output
  end
end
