# The two commands of the README: `make serve` and `make test`. Each sets up .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The two commands may run at once on a fresh machine: installs into the shared .venv take turns.
LOCKED := flock $(VENV).lock

.PHONY: serve test openapi

serve: $(VENV)/.server-installed
	$(BIN)/lrserve serve

test: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder

openapi: $(VENV)/.server-installed
	$(BIN)/lrserve openapi > openapi.json

$(VENV)/bin/pip:
	$(LOCKED) $(PYTHON) -m venv $(VENV)

$(VENV)/.server-installed: pyproject.toml | $(VENV)/bin/pip
	$(LOCKED) $(BIN)/pip install -e '.[server]'
	touch $@

# torch is pinned to the local CPU wheel first, so that no resolver ever picks a CUDA build.
$(VENV)/.dev-installed: pyproject.toml | $(VENV)/bin/pip
	$(LOCKED) sh -c "$(BIN)/pip install torch==2.13.0 && $(BIN)/pip install -e '.[server,keras,torch,lightning,dev]'"
	touch $@ $(VENV)/.server-installed
