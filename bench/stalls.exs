# Latency isolation: how long small calls from other processes take while a long operation
# runs on the same structure, against the same calls with nothing else running, in the same
# run: `mix run bench/stalls.exs`.
#
# Four probe processes each make their small call once a millisecond (see
# test/support/stalls.ex, shared with the stall tests, for the scenarios and the probes).
#
#   STRATA_BENCH_SCALE=1      multiplies every size below
#   STRATA_BENCH_ONLY=...     some of fan_out,bulk_follow,backfill,dump,save,checkpoint_fallback,define_groups
Code.require_file("harness.exs", __DIR__)
Code.require_file("../test/support/stalls.ex", __DIR__)

defmodule StallsBench do
  alias Strata.{Bench, Stalls}

  @sizes [
    fan_out: {1_000_000, "a post fanned out to 1M followers", "get_timeline + insert_post"},
    bulk_follow: {5_000_000, "follow_many of 5M edges", "follow"},
    backfill:
      {100_000, "100 follow + unfollow between 100k-id feeds", "get_timeline + insert_post"},
    dump: {5_000_000, "dump of a 5M-edge graph", "follow"},
    save: {2_000_000, "save of a 2M-item set", "add + at"},
    checkpoint_fallback: {2_000_000, "checkpoint fallback, 2M-item set", "add + at"},
    define_groups: {100_000, "define_groups, 100k online members", "slice(0..99)"}
  ]

  def main do
    scale = String.to_integer(System.get_env("STRATA_BENCH_SCALE") || "1")
    only = System.get_env("STRATA_BENCH_ONLY")
    wanted = if only, do: String.split(only, ","), else: Enum.map(@sizes, &to_string(elem(&1, 0)))

    rows =
      for {scenario, {size, what, small_name}} <- @sizes, to_string(scenario) in wanted do
        {long, small, done} =
          case Stalls.Scenarios.setup(scenario, size * scale) do
            {long, small} -> {long, small, fn -> :ok end}
            three -> three
          end

        idle = Stalls.idle(small, 1000, 4)
        {_, long_ms, during} = Stalls.during(long, small, 4)
        done.()
        [i, d] = Enum.map([idle, during], &Stalls.summary/1)

        [
          what,
          small_name,
          "#{round(long_ms)} ms",
          "#{i.p999} / #{i.max}",
          "#{d.p999} / #{d.max}",
          d.samples
        ]
      end

    Bench.table(
      [
        "long operation",
        "small call (other processes)",
        "long op took",
        "idle p99.9 / max (µs)",
        "during p99.9 / max (µs)",
        "samples during"
      ],
      rows
    )
  end
end

StallsBench.main()
