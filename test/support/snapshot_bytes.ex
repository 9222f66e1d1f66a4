defmodule Strata.SnapshotBytes do
  @moduledoc false
  # Builds and takes apart snapshot and journal bytes in plain Elixir, independently of the
  # Rust code, so that tests can forge files whose checksums are valid.
  import Bitwise

  @table List.to_tuple(
           for n <- 0..255 do
             Enum.reduce(1..8, n, fn _, c ->
               if (c &&& 1) == 1, do: bxor(0x82F63B78, c >>> 1), else: c >>> 1
             end)
           end
         )

  @doc "CRC-32C (Castagnoli) of `data`."
  def crc32c(data), do: bxor(crc(data, 0xFFFFFFFF), 0xFFFFFFFF)

  defp crc(<<b, rest::binary>>, c),
    do: crc(rest, bxor(elem(@table, band(bxor(c, b), 0xFF)), c >>> 8))

  defp crc(<<>>, c), do: c

  @kinds %{sorted_set: 1, follower_map: 2, interner: 3, timeline: 4, member_list: 5}

  @doc "A snapshot of `kind` around `payload`, with a correct checksum."
  def seal(kind, payload, opts \\ []) do
    head =
      <<0x89, "STRATA\n", Keyword.get(opts, :version, 1)::16-little, Map.fetch!(@kinds, kind), 0,
        Keyword.get(opts, :flags, 0)::32-little,
        Keyword.get(opts, :length, byte_size(payload))::64-little>>

    head <> <<crc32c(head <> payload)::32-little, 0::32>> <> payload
  end

  @doc "The payload of a snapshot (no checks)."
  def payload(<<_::binary-size(32), payload::binary>>), do: payload

  @doc "The byte offsets at which each record of a journal segment ends."
  def record_ends(<<_header::binary-size(32), records::binary>>), do: ends(records, 32, [])

  # A record is `len::32, payload_crc::32, header_crc::32, payload` (format v2).
  defp ends(<<len::32-little, _crc::32, _hcrc::32, _::binary-size(len), rest::binary>>, at, acc)
       when len > 0,
       do: ends(rest, at + 12 + len, [at + 12 + len | acc])

  defp ends(_, _, acc), do: Enum.reverse(acc)
end
