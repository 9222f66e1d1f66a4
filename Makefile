# The two commands: `make demo` and `make test` (each runs scripts/setup first).
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
export MIX_ENV ?= dev

.PHONY: setup demo test test-rust test-elixir test-example dialyzer bench

setup:
	@scripts/setup

demo: setup
	mix run bench/demo.exs

test: setup test-rust test-elixir dialyzer test-example

test-rust:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace

test-elixir:
	mix format --check-formatted
	MIX_ENV=test mix compile --warnings-as-errors
	MIX_ENV=test mix test

dialyzer:
	scripts/dialyzer

test-example:
	cd examples/guild_members && rm -rf _build && MIX_ENV=test mix test

bench: setup
	mix run bench/sorted_set.exs
	mix run bench/member_list.exs
	mix run bench/followers.exs
	mix run bench/timeline.exs
	mix run bench/durability.exs
	mix run bench/stalls.exs
	mix run bench/cluster.exs
