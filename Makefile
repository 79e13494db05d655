# Two commands do all set-up on a fresh machine (Python 3.10+ with venv):
#   make run    install, then execute the two-moons solution end to end and write its figures to runs/
#   make test   install, then lint (ruff) and run the whole test suite (unit tests + every solution notebook, fast mode)
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install run test labs lab jupyter clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -e .
	touch $@

run: install
	$(BIN)/flowlab run 02_two_moons --out runs

# flowlab does not guess where a machine keeps MNIST; the course machines and CI keep the official
# test set beside the repository. An FLOWLAB_MNIST_DIR already set wins.
test: export FLOWLAB_MNIST_DIR ?= $(realpath $(CURDIR)/../shared/data/mnist)
# Two workers, one per core of the CI machine: tracing and notebook kernels are single-threaded most of
# the time. A file's tests stay in one worker, in order (conftest.py); PYTEST_PARALLEL= runs one process.
PYTEST_PARALLEL ?= -n 2 --dist loadfile --no-loadscope-reorder
# Lint first (a second); the tests run even when it fails, and `make test` fails if either did.
test: install
	@lint=0; $(BIN)/ruff check . || lint=$$?; \
	FLOWLAB_FAST=1 $(BIN)/python -m pytest $(PYTEST_PARALLEL) && exit $$lint

labs: install
	$(BIN)/flowlab make-labs

jupyter: install
	$(BIN)/jupyter lab labs/

clean:
	rm -rf runs .pytest_cache
