defmodule Strata.Durable do
  @moduledoc """
  The durable tier: snapshots, a write-through journal, and recovery.

  The structures in memory are the fast tier. Every structure can also be kept on local disk
  (embedded, no server), in two ways.

  ## Snapshots

  `dump/1` encodes a structure as a binary and `load/1` checks and decodes one; `save/2`
  writes that binary to a file and `open/1` reads it back. Every structure module
  (`Strata.SortedSet`, `Strata.FollowerMap`, `Strata.Interner`, `Strata.Timeline`,
  `Strata.MemberList`) has these four functions.

  A snapshot is a 32-byte header (magic `\\x89STRATA\\n`, format version, kind of structure,
  flags, payload length, a CRC32C over header and payload) and the payload. Reading checks,
  in order: the magic, version, kind and flags (unknown flags are refused); that the length
  is below the cap and equals the bytes present (no trailing bytes); the checksum; then the
  payload, where every count is checked against the bytes left before anything is allocated
  for it; and finally the structure itself (sorted, unique, counts agree, a follow graph's
  two directions hold the same edges). A follow graph's bitmaps are in the standard Roaring
  portable format without run containers (a run container expands to far more than its
  bytes, so it is refused before it is decoded): nothing in a snapshot can make the decoder
  allocate more than a small multiple of the snapshot's size. Anything wrong gives
  `{:error, {:corrupt, why}}`; nothing raises. A whole, checksum-valid snapshot of another
  kind of structure gives `{:error, {:wrong_kind, kind}}` (`kind` one of `:sorted_set`,
  `:follower_map`, `:interner`, `:timeline`, `:member_list`).

  `open/1` reads only regular files (a device, a FIFO or a directory is
  `{:error, :not_regular_file}`, refused without reading or blocking), and never more than
  the machine's physical memory.

  `dump/1` and `save/2` of a structure that others keep changing encode a consistent copy of
  it, taken under its lock in time that does not grow with the data (copy-on-write buckets
  and shards; see each module's "Long operations" section): writers wait microseconds, not
  for the encoding.

  `save/2` writes a temporary file in the target's directory, fsyncs it, renames it over the
  target and fsyncs the directory, so the file is always either the old or the new snapshot.
  A failed fsync is an error (the temporary file is removed), never retried on the same file.

  Loading a snapshot creates the atoms it names, like `:erlang.binary_to_term/1`: load only
  snapshots your own service wrote.

  ## Durable structures

  `open_durable(dir, opts)` (or `new(durable: dir)`, which raises instead of returning an
  error) opens a structure kept in directory `dir`, creating it if `dir` holds none. Every
  change is then appended to an append-only journal, each record with its own CRC32C, before
  the change is applied. A shared writer (a pool of 4 to 8 OS threads, by the machine's
  cores, serving every durable structure of the VM, plus one timer thread) writes records
  to the files and fsyncs as the `:sync` option says, so no scheduler ever waits on the
  disk; it wakes only for work, so an idle structure costs no thread and no CPU, and holds
  one open file (its directory's lock: the journal file is closed once everything in it is
  fsynced). At most half of the writer threads serve the journals of one file system at a
  time (the others wait their turn in that file system's queue), so a slow or failing disk
  never holds up the journals kept on other disks beyond their own fsyncs; fsyncs of
  different journals on one file system run side by side, which lets the file system fold
  them into shared commits. The `:sync` option also says when a change is acknowledged (when
  the call returns):

    * `:always` (default) - after an fsync covers it. Nothing acknowledged is lost, even on
      power loss. Concurrent writers share fsyncs (group commit): the shared writer fsyncs
      everything written so far while the writers that need it wait (in a `receive`, not
      holding a scheduler), so the fsync rate, not the writer count, bounds throughput.
    * `{:interval, ms}` - once the record is in the journal's buffer in memory; fsynced
      every `ms`. The buffer goes to the OS 1 ms after its first record (one write for the
      records of that moment), but not while the journal fsyncs: a crash of the VM
      (SIGKILL, a NIF abort) can lose the changes of the last millisecond, and those made
      during an fsync under way (on a slow disk more; at most the 16 MiB backlog below); a
      power loss the last `ms` of changes on top.
    * `:none` - as `{:interval, ms}`, but fsynced only at `checkpoint/1`, `close/1` and
      `sync/1`. A crash of the VM can lose what the buffer holds (at most 16 MiB); a power
      loss everything since the last of those calls.

  `close/1` refuses changes from the moment it starts (they raise `Strata.DurabilityError`
  and are not applied), then writes and fsyncs everything before it: after `close/1`
  returns, every change that returned normally is durable, whatever the mode.

  With any mode, a writer that finds more than 16 MiB waiting to be written waits until it
  is written and fsynced, so a slow disk slows writers down instead of growing the buffer.

  `checkpoint/1` starts a new journal segment and writes a snapshot; the journal's old
  segments and all but the two newest snapshots are removed only after the new snapshot is
  durable. The snapshot is built from the files alone (the previous snapshot plus the
  records after it, in a second, temporary copy of the structure, on a dirty scheduler), so
  a checkpoint never holds up readers or writers; only when those files cannot be read back
  is the live structure snapshotted instead: a copy-on-write copy of it is taken under its
  lock (in time that does not grow with the data) and encoded with the lock released.
  `close/1` makes everything durable and releases the directory (a directory is locked by
  the structure that has it open; opening it twice gives `{:error, :locked}`).

  Directory layout: `snap-<generation>.snap`, `log-<generation>.wal` (the records after the
  snapshot of the same generation) and `LOCK`. Files in it are opened without following
  symbolic links (a link is `{:error, :eloop}`) and must be regular files.

  A journal segment is a 32-byte header (magic, format version 2, kind, generation, a random
  salt chosen when the segment is created, CRC32C) and records, each
  `len, payload_crc, header_crc, payload` where both CRC32Cs start from the salt: a record's
  bytes are valid only in the segment that wrote them, so neither a payload that holds the
  bytes of a record, nor zeros left by an unfinished write, can pass for one.

  ## Recovery

  Opening a directory loads the newest snapshot that passes its checks and replays the
  journal after it. A bad record that no valid record follows, in its segment or any later
  one, is a torn tail (a write cut short by a crash, a full disk, or a checkpoint that made
  the next segment and then failed) and is cut off; finding that out costs one pass over
  the journal, whatever its bytes. A snapshot
  that fails its checks is set aside (renamed `*.corrupt`, and logged) and recovery falls
  back to the previous snapshot and a longer journal: the repair comes from the durable copy,
  as a bad sector on a fast disk would be. A damaged record followed by valid ones, a
  missing segment, or no valid snapshot left gives `{:error, {:corrupt, details}}`: never a
  crash, and never a silently empty structure.

  ## Errors

  Functions return `{:error, reason}` with `reason` one of: a `t:File.posix/0` atom (such as
  `:enoent`, `:eacces`, `:enospc`, `:eloop`), `{:io, message}` for other I/O errors,
  `{:corrupt, message}`, `{:wrong_kind, kind}` (the bytes or the directory hold another kind
  of structure; nothing in the directory is touched), `:not_regular_file`, `:locked`,
  `:closed`, `{:journal_failed, message}` (an earlier write or fsync failed; reopen the
  structure), or `:not_durable`. A change whose journal record would exceed 64 MiB raises
  `Strata.DurabilityError` with reason `:record_too_large` (and is not applied). A change to a structure whose journal
  has failed or is closed raises `Strata.DurabilityError` (and is not applied); so does a
  change whose fsync fails while its writer waits (it was applied but never acknowledged).

      iex> dir = Path.join(System.tmp_dir!(), "strata-doc-\#{System.os_time()}")
      iex> set = Strata.SortedSet.new(durable: dir)
      iex> Strata.SortedSet.add(set, :hello) |> Strata.SortedSet.close()
      :ok
      iex> {:ok, again} = Strata.SortedSet.open_durable(dir)
      iex> Strata.SortedSet.to_list(again)
      [:hello]
  """

  require Logger
  alias Strata.Native

  @typedoc "When a change to a durable structure is acknowledged; see the module doc."
  @type sync :: :always | :none | {:interval, pos_integer()}

  @typedoc "Why a durable operation failed; see the module doc."
  @type reason ::
          File.posix()
          | {:io, String.t()}
          | {:corrupt, String.t()}
          | {:wrong_kind, atom()}
          | :not_regular_file
          | :record_too_large
          | :locked
          | :closed
          | {:journal_failed, String.t()}
          | :not_durable

  # Longest wait for an fsync before a writer gives up.
  @ack_timeout 60_000

  @doc false
  # Defines dump/1, load/1, save/2, open/1, checkpoint/1, close/1 and sync/1 of a structure module
  # whose NIFs are named `<prefix>_dump` and so on.
  defmacro __using__(prefix: prefix) do
    native = fn name -> String.to_atom("#{prefix}_#{name}") end

    quote do
      mod = inspect(__MODULE__)

      @doc """
      Encodes the structure as a snapshot binary (format in `Strata.Durable`), on a dirty
      scheduler, from a copy-on-write copy taken under its lock (writers go on meanwhile).

          iex> x = #{mod}.new()
          iex> {:ok, copy} = x |> #{mod}.dump() |> #{mod}.load()
          iex> inspect(copy) == inspect(x)
          true
      """
      @spec dump(t()) :: binary()
      def dump(x) do
        Strata.Durable.snapshot_span(:dump, __MODULE__, %{}, fn ->
          bytes = Strata.Native.unquote(native.(:dump))(x)
          {bytes, %{bytes: byte_size(bytes)}, %{}}
        end)
      end

      @doc """
      Checks and decodes a snapshot binary made by `dump/1` into a new, in-memory structure.

          iex> #{mod}.load("not a snapshot")
          {:error, {:corrupt, "not a Strata snapshot (bad magic)"}}
      """
      @spec load(binary()) :: {:ok, t()} | {:error, Strata.Durable.reason()}
      def load(bytes) when is_binary(bytes) do
        Strata.Durable.snapshot_span(:load, __MODULE__, %{}, fn ->
          result = Strata.Native.unquote(native.(:load))(bytes)
          {result, %{bytes: byte_size(bytes)}, %{result: Strata.Durable.outcome(result)}}
        end)
      end

      def load(other),
        do: raise(ArgumentError, "argument bytes: expected a binary, got: #{inspect(other)}")

      @doc """
      Writes a snapshot to `path` atomically: temporary file, fsync, rename, directory fsync.

          iex> path = Path.join(System.tmp_dir!(), "strata-\#{System.os_time()}")
          iex> :ok = #{mod}.save(#{mod}.new(), path)
          iex> {:ok, x} = #{mod}.open(path)
          iex> inspect(x) == inspect(#{mod}.new())
          true
      """
      @spec save(t(), Path.t()) :: :ok | {:error, Strata.Durable.reason()}
      def save(x, path) do
        path = Strata.Durable.path(path)

        Strata.Durable.snapshot_span(:save, __MODULE__, %{path: path}, fn ->
          Strata.Telemetry.result(Strata.Native.unquote(native.(:save))(x, path))
        end)
      end

      @doc """
      Reads a snapshot file written by `save/2` into a new, in-memory structure.

          iex> #{mod}.open("/nonexistent/strata.snap")
          {:error, :enoent}
      """
      @spec open(Path.t()) :: {:ok, t()} | {:error, Strata.Durable.reason()}
      def open(path) do
        path = Strata.Durable.path(path)

        Strata.Durable.snapshot_span(:open, __MODULE__, %{path: path}, fn ->
          Strata.Telemetry.result(Strata.Native.unquote(native.(:open))(path))
        end)
      end

      @doc """
      Starts a new journal segment and writes a snapshot of a durable structure, built from
      its files without holding up readers or writers (see `Strata.Durable`); files no
      recovery needs are removed once the snapshot is durable. `{:error, :not_durable}` for
      an in-memory structure.

          iex> #{mod}.checkpoint(#{mod}.new())
          {:error, :not_durable}
      """
      @spec checkpoint(t()) :: :ok | {:error, Strata.Durable.reason()}
      def checkpoint(x) do
        Strata.Telemetry.span([:strata, :checkpoint], %{structure: __MODULE__, handle: x}, fn ->
          Strata.Telemetry.result(Strata.Native.unquote(native.(:checkpoint))(x))
        end)
      end

      @doc """
      Makes every change to a durable structure durable and releases its directory. Reads
      go on working; later changes raise `Strata.DurabilityError`.
      """
      @spec close(t()) :: :ok | {:error, Strata.Durable.reason()}
      def close(x), do: Strata.Durable.close(x)

      @doc """
      fsyncs every change made so far to a durable structure (useful with `sync: :none` or
      `{:interval, ms}`; with `:always` every acknowledged change already is).

          iex> #{mod}.sync(#{mod}.new())
          {:error, :not_durable}
      """
      @spec sync(t()) :: :ok | {:error, Strata.Durable.reason()}
      def sync(x), do: Strata.Durable.sync(x)
    end
  end

  @doc false
  # Waits until the caller's changes to `struct` are durable as its sync mode promises.
  def ack!(%{journal: nil}), do: :ok

  def ack!(%{journal: journal}) do
    case Native.journal_ack(journal) do
      :ok ->
        :ok

      {:wait, token} ->
        receive do
          {:strata_ack, ^token, :ok} -> :ok
          {:strata_ack, ^token, {:error, reason}} -> raise Strata.DurabilityError, reason: reason
        after
          @ack_timeout -> raise Strata.DurabilityError, reason: :timeout
        end

      {:error, reason} ->
        raise Strata.DurabilityError, reason: reason
    end
  end

  @doc false
  # A snapshot span (see `Strata.Telemetry`).
  def snapshot_span(what, structure, metadata, fun) do
    metadata = Map.put(metadata, :structure, structure)
    Strata.Telemetry.span([:strata, :snapshot, what], metadata, fun)
  end

  @doc false
  def outcome({:ok, _}), do: :ok
  def outcome(other), do: other

  @doc false
  # Opens a durable structure of module `structure` in `dir` with `recover` (its recovery
  # NIF, or a function returning what one returns), in a `[:strata, :recovery]` span.
  def recover(structure, dir, recover) do
    Strata.Telemetry.span([:strata, :recovery], %{structure: structure, dir: dir}, fn ->
      result = recover.()

      case result do
        {:ok, _struct, report} ->
          {opened(result, dir), %{replayed: report.replayed},
           %{result: :ok, snapshot: report.snapshot}}

        error ->
          {opened(error, dir), %{}, %{result: error}}
      end
    end)
  end

  @doc false
  # `{:ok, struct}` after logging what recovery repaired, or the error.
  def opened({:ok, struct, report}, dir) do
    for aside <- report.set_aside do
      Logger.error("Strata: #{dir}: snapshot set aside as *.corrupt: #{aside}")
    end

    with {segment, offset, bytes} <- report.truncated do
      Logger.warning(
        "Strata: #{dir}: cut a torn record of #{bytes} bytes at #{segment}:#{offset}"
      )
    end

    {:ok, struct}
  end

  def opened({:error, _} = error, _dir), do: error

  @doc false
  def open!({:ok, struct}, _dir), do: struct

  def open!({:error, reason}, dir) do
    raise Strata.DurabilityError,
      reason: reason,
      message: "could not open the durable structure in #{dir}: #{inspect(reason)}"
  end

  @doc false
  def close(%{journal: nil}), do: {:error, :not_durable}
  def close(%{journal: journal}), do: Native.journal_close(journal)

  @doc false
  def sync(%{journal: nil}), do: {:error, :not_durable}
  def sync(%{journal: journal}), do: Native.journal_sync(journal)

  @doc false
  def path(path) when is_binary(path), do: path
  def path(path) when is_list(path), do: List.to_string(path)

  def path(other),
    do: raise(ArgumentError, "argument path: expected a path, got: #{inspect(other)}")

  @doc false
  # The `:durable`/`:sync` options and the others, validated.
  def split_options!(opts, defaults) do
    opts = Strata.Options.validate!(opts, [durable: nil, sync: :always] ++ defaults)
    {opts[:durable] && path(opts[:durable]), opts[:sync], Keyword.drop(opts, [:durable, :sync])}
  end
end
