# The README's commands. Each builds .venv from pyproject.toml on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Test processes: XLA compiles on one thread, and most of the suite is compiling.
TEST_WORKERS ?= 2
# make bench SUITE=full for the published configs; BENCH_ARGS="--setup-peers --repeats 2" adds the peers
SUITE ?= quick
BENCH_ARGS ?=

.PHONY: demo test test-fast bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python experiments/ppo.py --env CartPole-v1 --seeds 8 --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest tests -n $(TEST_WORKERS) --dist loadscope --durations=15

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -n $(TEST_WORKERS) --dist loadscope -m "not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py --suite $(SUITE) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) runs *.egg-info
