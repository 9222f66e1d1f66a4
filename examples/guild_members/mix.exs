defmodule GuildMembers.MixProject do
  use Mix.Project

  def project do
    [
      app: :guild_members,
      version: "0.1.0",
      elixir: "~> 1.14",
      deps: [{:strata, path: "../.."}]
    ]
  end

  def application, do: [extra_applications: [:logger]]
end
