# Two commands work on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   ?= examples/llama3-70b-64xh100.yaml

.PHONY: demo test lint bench clean web

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

# The [torch] extra lets the tests run `superscale calibrate` on the CPU (the 2.13.0 CPU
# build, ~40 s to install), and [ray] the Ray sweep test (~15 s); `make demo` needs neither.
$(VENV)/.torch: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[dev,torch,ray]'
	touch $@

# The service's tests need the [web] extra, httpx, schemathesis, playwright, and Debian's
# Chromium (installed with apt when /usr/bin/chromium is missing; playwright launches it by
# path, so no browser is downloaded).
$(VENV)/.webtest: $(VENV)/.installed
	test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)
	$(BIN)/python -m pip install -q -e '.[dev,webtest]'
	touch $@

$(VENV)/.web: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[dev,web]'
	touch $@

web: $(VENV)/.web
	$(BIN)/superscale web --host 127.0.0.1 --port 8000

demo: $(VENV)/.installed
	$(BIN)/superscale check $(DEMO)
	$(BIN)/superscale simulate $(DEMO)

test: $(VENV)/.torch $(VENV)/.webtest
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/python -m pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

bench: $(VENV)/.torch $(VENV)/.webtest
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b $(BENCH_ARGS) || exit 1; done

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache .mypy_cache
