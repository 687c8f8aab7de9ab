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

.PHONY: demo test test-all test-fast lint bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python experiments/ppo.py --env CartPole-v1 --seeds 8 --out runs/demo

# make test (CI): everything but the tests marked slow; it keeps one learning test per family.
# make test-all: every test, every learning variant and every brax env.
# make test-fast: no learning tests at all (seconds to a few minutes).
test: $(STAMP)
	$(BIN)/python -m pytest tests -n $(TEST_WORKERS) --dist loadscope -m "not slow" --durations=20

test-all: $(STAMP)
	$(BIN)/python -m pytest tests -n $(TEST_WORKERS) --dist loadscope --durations=30

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -n $(TEST_WORKERS) --dist loadscope -m "not slow and not learning"

# mypy checks the package as installed, where envs/ and algos/ are purejaxlib.envs and purejaxlib.algos
# (package-dir). It can't see through the editable install's import hook, so it reads TYPECHECK, a tree
# of links with the installed layout; errors name files as purejaxlib/envs/host.py and so on.
TYPECHECK := build/typecheck

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	rm -rf $(TYPECHECK)/purejaxlib && mkdir -p $(TYPECHECK)/purejaxlib
	ln -s $(CURDIR)/purejaxlib/*.py $(TYPECHECK)/purejaxlib/
	ln -s $(CURDIR)/envs $(TYPECHECK)/purejaxlib/envs
	ln -s $(CURDIR)/algos $(TYPECHECK)/purejaxlib/algos
	cd $(TYPECHECK) && $(abspath $(BIN))/mypy --config-file $(CURDIR)/pyproject.toml --cache-dir .mypy_cache -p purejaxlib

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py --suite $(SUITE) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) runs *.egg-info build .ruff_cache .mypy_cache
