# Two commands: `make run` (set up, then a real team run on the offline model) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TASK ?= Build a REST API for todo management

.PHONY: run test lint clean real-model bench

$(BIN)/troupe: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "troupe needs Python 3.11+: make PYTHON=python3.11 ..."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

run: $(BIN)/troupe
	$(BIN)/troupe run hierarchical "$(TASK)"

lint: $(BIN)/troupe
	$(BIN)/ruff check graphs nodes state tools tests bench
	$(BIN)/mypy graphs nodes state tools

test: lint
	LANGSMITH_TRACING=false $(BIN)/pytest

# Every benchmark, side by side in one run each: tables on stdout, plots in bench/results/ (matplotlib).
BENCHES := fanout speedup patterns context_scaling storage_growth storage_scaling team_run startup crewai_compare
# The fan-out runs on PostgreSQL too when a server answers on 127.0.0.1:5432.
bench: $(BIN)/troupe
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@export TROUPE_BENCH_POSTGRES=$$(pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && \
		echo postgresql://postgres@127.0.0.1:5432/postgres); \
	for b in $(BENCHES); do echo "== bench/$$b.py"; $(BIN)/python bench/$$b.py || exit 1; done

# Every pattern and recipe on a real LLM served by llama.cpp on this CPU (offline; builds and caches on first use).
real-model: $(BIN)/troupe
	$(BIN)/python bench/real_model.py $(RUNS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
