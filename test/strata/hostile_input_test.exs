defmodule Strata.HostileInputTest do
  # Files and bytes a hostile user or a faulty disk can hand Strata: each must be refused
  # with `{:error, reason}`, never crash the VM, never allocate more than the bytes justify.
  # The memory bombs run in a child OS process under `ulimit -v`, so that a regression
  # kills that process, not the test VM.
  use ExUnit.Case, async: true

  alias Strata.{ChildVM, FollowerMap, SnapshotBytes, SortedSet, Timeline}

  @moduletag :tmp_dir
  @moduletag :capture_log

  # 4 GiB of address space: enough for a VM (2 GiB is not: it faults at start), far less
  # than the 16 GiB the bitmap bomb asks for.
  @limit_kb 4_000_000

  # A portable Roaring bitmap of `n` run containers (keys 1..n), each one run over all
  # 65,536 values: ~14 bytes a container that a run-expanding decoder turns into 8 KiB and
  # 65,536 values.
  defp run_bitmap(n) do
    import Bitwise
    flags = :binary.copy(<<0xFF>>, div(n + 7, 8))
    descriptions = for k <- 1..n, into: <<>>, do: <<k::16-little, 0xFFFF::16-little>>
    offsets = if n >= 4, do: :binary.copy(<<0::32>>, n), else: <<>>
    runs = :binary.copy(<<1::16-little, 0::16-little, 0xFFFF::16-little>>, n)
    <<bor(12347, (n - 1) <<< 16)::32-little>> <> flags <> descriptions <> offsets <> runs
  end

  defp varint(n) when n < 128, do: <<n>>
  defp varint(n), do: <<Bitwise.bor(Bitwise.band(n, 127), 128)>> <> varint(Bitwise.bsr(n, 7))

  defp graph_bomb do
    bitmap = run_bitmap(65_535)
    direction = varint(1) <> <<0::32-little>> <> varint(byte_size(bitmap)) <> bitmap
    edges = 65_535 * 65_536

    SnapshotBytes.seal(
      :follower_map,
      <<edges::64-little, 1::64-little>> <> direction <> direction
    )
  end

  test "a graph snapshot whose bitmaps use run containers is refused before it expands",
       %{tmp_dir: dir} do
    bomb = graph_bomb()
    assert byte_size(bomb) < 2_000_000
    path = Path.join(dir, "bomb.snap")
    File.write!(path, bomb)

    {out, status} =
      ChildVM.run(
        """
        bytes = File.read!(#{inspect(path)})
        IO.inspect(Strata.FollowerMap.load(bytes), label: "load", width: :infinity)
        IO.inspect(Strata.FollowerMap.open(#{inspect(path)}), label: "open", width: :infinity)
        """,
        ulimit_kb: @limit_kb
      )

    assert status == 0, out
    assert out =~ ~s(load: {:error, {:corrupt, "invalid contents: bitmap: run containers)
    assert out =~ ~s(open: {:error, {:corrupt, "invalid contents: bitmap: run containers)
    # And in this VM, the same answer.
    assert {:error, {:corrupt, _}} = FollowerMap.load(bomb)
    assert {:error, {:corrupt, _}} = Timeline.load(bomb |> rekind(:timeline))
  end

  defp rekind(snapshot, kind), do: SnapshotBytes.seal(kind, SnapshotBytes.payload(snapshot))

  test "devices and FIFOs are refused unread, under a memory limit" do
    {out, status} =
      ChildVM.run(
        """
        IO.inspect(Strata.SortedSet.open("/dev/zero"), label: "zero")
        IO.inspect(Strata.FollowerMap.open("/dev/urandom"), label: "urandom")
        """,
        ulimit_kb: @limit_kb
      )

    assert status == 0, out
    assert out =~ "zero: {:error, :not_regular_file}"
    assert out =~ "urandom: {:error, :not_regular_file}"
  end

  test "a FIFO is refused without blocking", %{tmp_dir: dir} do
    fifo = Path.join(dir, "pipe")
    {_, 0} = System.cmd("mkfifo", [fifo])
    task = Task.async(fn -> SortedSet.open(fifo) end)
    assert {:ok, {:error, :not_regular_file}} = Task.yield(task, 20_000)
  end

  test "a symbolic link in a durable directory is not followed", %{tmp_dir: dir} do
    durable = Path.join(dir, "set")
    set = SortedSet.new(durable: durable)
    SortedSet.add(set, 1)
    :ok = SortedSet.close(set)
    [snap] = Path.wildcard(Path.join(durable, "snap-*.snap"))
    elsewhere = Path.join(dir, "elsewhere.snap")
    :ok = SortedSet.save(SortedSet.from_enumerable(1..100), elsewhere)
    File.rm!(snap)
    File.ln_s!(elsewhere, snap)
    assert {:error, :eloop} = SortedSet.open_durable(durable)
    # Refused, not set aside: the link is where it was.
    assert {:ok, %File.Stat{type: :symlink}} = File.lstat(snap)
  end

  test "a directory of another kind is refused, and nothing in it is touched",
       %{tmp_dir: dir} do
    set = SortedSet.new(durable: dir)
    SortedSet.add_all(set, 1..10)
    :ok = SortedSet.checkpoint(set)
    SortedSet.add(set, 11)
    :ok = SortedSet.close(set)
    before = dir |> File.ls!() |> Enum.sort()

    assert {:error, {:wrong_kind, :sorted_set}} = FollowerMap.open_durable(dir)
    assert {:error, {:wrong_kind, :sorted_set}} = Timeline.open_durable(dir)
    assert dir |> File.ls!() |> Enum.sort() == before

    # The rightful owner still opens it, with everything.
    assert {:ok, set} = SortedSet.open_durable(dir)
    assert SortedSet.to_list(set) == Enum.to_list(1..11)
    :ok = SortedSet.close(set)
  end
end
