# Run by Strata.CrashTest in a separate OS process, which the test kills with SIGKILL:
#
#     elixir -pa <strata ebin> test/support/crash_writer.exs <dir>
#
# Opens the durable timeline in <dir> with sync: :always, then 8 writers each post as their
# own author (writer w posts ids w, w + 8, w + 16, ... continuing after what the directory
# holds) and print "ack <id>" once each insert has returned, while another process
# checkpoints every 150 ms.
[dir] = System.argv()
alias Strata.Timeline

{:ok, tl} = Timeline.open_durable(dir, sync: :always, feed_capacity: 100_000)

posted = fn w ->
  Stream.unfold(nil, fn
    :done ->
      nil

    cursor ->
      case Timeline.get_timeline(tl, w, limit: 100, cursor: cursor) do
        {items, nil} -> {items, :done}
        {items, next} -> {items, next}
      end
  end)
  |> Enum.concat()
  |> length()
end

for w <- 0..7 do
  start = posted.(w)

  spawn_link(fn ->
    Enum.each(Stream.iterate(start, &(&1 + 1)), fn k ->
      id = w + 8 * k
      1 = Timeline.insert_post(tl, id, w)
      IO.puts("ack #{id}")
    end)
  end)
end

spawn_link(fn ->
  Stream.repeatedly(fn ->
    Process.sleep(150)
    :ok = Timeline.checkpoint(tl)
  end)
  |> Stream.run()
end)

IO.puts("ready")
Process.sleep(:infinity)
