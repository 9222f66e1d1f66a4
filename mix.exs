# The native library's compiler and precompiled artifacts (see mix/strata_native.exs).
Code.require_file("mix/strata_native.exs", __DIR__)

defmodule Strata.MixProject do
  use Mix.Project

  # Where the repository is published (set it to the real location before a release).
  @source_url "https://github.com/strata-beam/strata"

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
      source_url: @source_url,
      package: package(),
      docs: [
        main: "readme",
        source_url: @source_url,
        extras: ["README.md", "CHANGELOG.md", "LICENSE"]
      ]
    ]
  end

  def application do
    [mod: {Strata.Application, []}, extra_applications: [:logger]]
  end

  # What a hex package of Strata carries: the Elixir code, the native sources (no target/),
  # the Cargo files, the checksums of the precompiled libraries, and the docs.
  defp package do
    [
      licenses: ["Apache-2.0"],
      links: %{"Source" => @source_url, "Changelog" => @source_url <> "/blob/main/CHANGELOG.md"},
      files: [
        "lib",
        "mix",
        "mix.exs",
        "Cargo.toml",
        "Cargo.lock",
        "native/strata_core/Cargo.toml",
        "native/strata_core/src",
        "native/strata_core/benches",
        "native/strata_nif/Cargo.toml",
        "native/strata_nif/src",
        "checksum-Elixir.Strata.Native.exs",
        "README.md",
        "LICENSE",
        "CHANGELOG.md"
      ]
    ]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end
