# A stand-in for :telemetry (see test/doubles/telemetry.exs), in this VM only; its object
# code is kept for the tests that load it on peer nodes.
[{:telemetry, beam}] = Code.compile_file("doubles/telemetry.exs", __DIR__)
:persistent_term.put({:telemetry, :beam}, beam)

ExUnit.start()
