defmodule Strata.Peers do
  @moduledoc false
  # Real BEAM nodes on this machine for the cluster tests, started with OTP's :peer (epmd
  # is started here when it is not running), with this node's code path.

  # Several VMs share this machine's cores: schedulers that spin while idle would take
  # them from each other.
  @vm_args Enum.map(~w(+sbwt none +sbwtdcpu none +sbwtdio none), &String.to_charlist/1)

  def ensure_distributed do
    System.cmd("epmd", ["-daemon"])

    unless Node.alive?() do
      name = :"strata_test_#{System.unique_integer([:positive])}@127.0.0.1"
      {:ok, _} = :net_kernel.start([name, :longnames])
    end

    :ok
  end

  @doc "Starts a peer node and connects it to every node this one knows."
  def start(name) do
    paths = Enum.flat_map(:code.get_path(), &[~c"-pa", &1])
    cookie = Atom.to_charlist(Node.get_cookie())

    {:ok, pid, node} =
      :peer.start(%{
        name: name,
        host: ~c"127.0.0.1",
        longnames: true,
        args: [~c"-setcookie", cookie, ~c"-connect_all", ~c"false" | @vm_args ++ paths]
      })

    {:ok, _} = :erpc.call(node, :application, :ensure_all_started, [:elixir])
    {:ok, _} = :erpc.call(node, :application, :ensure_all_started, [:logger])
    :erpc.call(node, Logger, :configure, [[level: :error]])
    for other <- Node.list(), other != node, do: true = :erpc.call(node, Node, :connect, [other])
    {pid, node}
  end

  @doc "Starts a cluster member on `node`."
  def start_member(node, opts) do
    {:ok, _} = :erpc.call(node, Strata.Cluster, :start, [opts])
    :ok
  end

  @doc "Waits until `fun` returns true (at most ~10 s)."
  def eventually(fun, tries \\ 500) do
    cond do
      fun.() -> :ok
      tries == 0 -> raise "condition not reached"
      true -> Process.sleep(20) && eventually(fun, tries - 1)
    end
  end
end
