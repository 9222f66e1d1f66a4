[
  inputs: [
    "{mix,.formatter}.exs",
    "mix/*.exs",
    "{config,lib,test,bench}/**/*.{ex,exs}",
    "examples/*/{mix,.formatter}.exs",
    "examples/*/{lib,test}/**/*.{ex,exs}"
  ]
]
